/* The ring engine: read a few ranges of a file in one group and print, for
 * each, its offset, length and the XOR of its bytes. Built with lumio, and
 * by tests/install_test.sh against the installed library:
 *     cc ring_read_ranges.c $(pkg-config --cflags --libs lumio) */
#include <lumio/ring.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }
    lumio_ring *r;
    int rc = lumio_ring_create(&r, NULL);
    if (rc < 0) {
        fprintf(stderr, "lumio_ring_create: %s\n", lumio_strerror(rc));
        return 1;
    }
    lumio_range ranges[3] = {{.offset = 0, .length = 16, .user_data = 0},
                             {.offset = -16, .length = 16, .user_data = 1},
                             {.offset = 0, .length = LUMIO_WHOLE, .user_data = 2}};
    lumio_op op = {.kind = LUMIO_OP_GET, .path = argv[1], .ranges = ranges, .nranges = 3};
    uint64_t g;
    if ((rc = lumio_ring_submit(r, &op, 1, NULL, &g)) < 0) {
        char err[LUMIO_ERROR_MAX];
        fprintf(stderr, "%s\n", lumio_ring_last_error(r, err, sizeof err));
        lumio_ring_close(r);
        return 1;
    }
    int status = 0, ended = 0;
    while (!ended) {
        lumio_completion c[4];
        int n = lumio_ring_wait(r, g, c, 4, 1);
        if (n <= 0) break;
        for (int i = 0; i < n; i++) {
            ended |= (c[i].flags & LUMIO_CQE_GROUP_END) != 0;
            if (c[i].result < 0) {
                char msg[LUMIO_ERROR_MAX];
                lumio_completion_describe(&c[i], msg, sizeof msg);
                fprintf(stderr, "%s\n", msg);
                status = 1;
                continue;
            }
            unsigned x = 0;
            for (uint64_t k = 0; k < c[i].length; k++) x ^= c[i].data[k];
            printf("range %llu: offset %llu length %llu xor %02x\n",
                   (unsigned long long)c[i].user_data, (unsigned long long)c[i].offset,
                   (unsigned long long)c[i].length, x);
            lumio_buffer_release(c[i].buffer);
        }
    }
    lumio_ring_close(r);
    printf("lumio %s\n", lumio_version());
    return status;
}
