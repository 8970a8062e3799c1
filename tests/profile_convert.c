/* A test helper: a lumio stream through one of the library's exporters,
 * `profile_convert FORMAT STREAM OUT`, so that the tests of an exporter do
 * not depend on the CLI's list of formats. */
#include <lumio/stream.h>

#include <stdio.h>
#include <string.h>

static int on_sample(void *arg, const lumio_sample *s) {
    return lumio_stream_exporter_sample(arg, s);
}

static int on_meta(void *arg, uint64_t ts, const char *key, const char *value) {
    return lumio_stream_exporter_meta(arg, ts, key, value);
}

int main(int argc, char **argv) {
    char err[LUMIO_ERROR_MAX];
    if (argc != 4) {
        fprintf(stderr, "usage: profile_convert FORMAT STREAM OUT\n");
        return 2;
    }
    FILE *out = strcmp(argv[3], "-") ? fopen(argv[3], "wb") : stdout;
    if (!out) {
        perror(argv[3]);
        return 1;
    }
    lumio_stream_reader *r;
    lumio_stream_exporter *e;
    if (lumio_stream_reader_open(&r, argv[2], NULL) < 0) {
        fprintf(stderr, "%s\n", lumio_stream_reader_last_error(NULL, err, sizeof err));
        return 1;
    }
    if (lumio_stream_exporter_create(&e, argv[1], out, NULL) < 0) {
        fprintf(stderr, "%s\n", lumio_stream_exporter_last_error(NULL, err, sizeof err));
        return 1;
    }
    int rc = lumio_stream_reader_read(r, on_sample, on_meta, e);
    if (rc == 0) rc = lumio_stream_exporter_finish(e);
    if (rc < 0)
        fprintf(stderr, "%s%s\n", lumio_stream_reader_last_error(r, err, sizeof err),
                lumio_stream_exporter_last_error(e, err, sizeof err));
    lumio_stream_exporter_close(e);
    lumio_stream_reader_close(r);
    if (out != stdout && fclose(out) != 0) rc = -1;
    return rc < 0;
}
