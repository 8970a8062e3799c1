/* The remote reader: print an object's size and ETag, then read it through
 * the prefetching file-like reader and print how many bytes came and their
 * XOR. LOCATION is an http(s):// URL or s3://BUCKET/KEY (credentials and
 * endpoint from the AWS_* environment variables).
 *     cc remote_read.c $(pkg-config --cflags --libs lumio) */
#include <lumio/remote.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s LOCATION\n", argv[0]);
        return 2;
    }
    char err[LUMIO_ERROR_MAX];
    lumio_remote_options o = {0}; /* every zero field takes its default */
    o.retries = 3;
    lumio_remote *rm;
    if (lumio_remote_create(&rm, &o) < 0) {
        fprintf(stderr, "%s\n", lumio_remote_last_error(NULL, err, sizeof err));
        return 1;
    }
    lumio_remote_info info;
    if (lumio_remote_stat(rm, argv[1], &info) < 0) {
        fprintf(stderr, "%s\n", lumio_remote_last_error(rm, err, sizeof err));
        lumio_remote_close(rm);
        return 1;
    }
    printf("size %llu etag %s\n", (unsigned long long)info.size, info.etag);

    lumio_rfile *f;
    if (lumio_rfile_open(&f, rm, argv[1]) < 0) {
        fprintf(stderr, "%s\n", lumio_rfile_last_error(NULL, err, sizeof err));
        lumio_remote_close(rm);
        return 1;
    }
    static unsigned char buf[1 << 16];
    unsigned long long total = 0;
    unsigned x = 0;
    int64_t n;
    while ((n = lumio_rfile_read(f, buf, sizeof buf)) > 0) {
        for (int64_t i = 0; i < n; i++) x ^= buf[i];
        total += (unsigned long long)n;
    }
    if (n < 0)
        fprintf(stderr, "%s\n", lumio_rfile_last_error(f, err, sizeof err));
    else
        printf("read %llu bytes xor %02x\n", total, x);
    lumio_rfile_close(f);
    lumio_remote_close(rm);
    return n < 0;
}
