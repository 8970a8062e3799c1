/* libFuzzer target: any bytes through every importer (perf, folded, austin,
 * speedscope, tachyon; the first byte picks one). They must never crash,
 * hang or leak, every sample they hand over must be well formed, and a
 * failure must leave a text. The callback stops an import after many
 * samples: a tiny file may rightly stand for a billion (counts, repeats). */
#include <lumio/stream.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct seen {
    uint64_t samples;
} seen;

static int on_sample(void *arg, const lumio_sample *s) {
    seen *n = arg;
    if (s->depth > LUMIO_STREAM_MAX_DEPTH) abort();
    for (uint32_t i = 0; i < s->depth; i++) {
        if (!s->frames[i].function || !s->frames[i].file) abort();
        (void)strlen(s->frames[i].function), (void)strlen(s->frames[i].file);
    }
    return ++n->samples >= 100000;
}

static int on_meta(void *arg, uint64_t ts, const char *k, const char *v) {
    (void)arg, (void)ts;
    (void)strlen(k), (void)strlen(v);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const formats[] = {"perf", "folded", "austin", "speedscope", "tachyon"};
    if (size < 1) return 0;
    const char *format = formats[data[0] % 5];
    uint8_t *copy = malloc(size); /* fmemopen wants at least a byte */
    if (!copy) return 0;
    memcpy(copy, data + 1, size - 1);
    FILE *f = fmemopen(copy, size > 1 ? size - 1 : 1, "r");
    if (!f) {
        free(copy);
        return 0;
    }
    if (size == 1) fgetc(f); /* an empty input */
    seen n = {0};
    int rc = lumio_stream_import_records(f, format, on_sample, on_meta, &n);
    fclose(f);
    free(copy);
    char err[LUMIO_ERROR_MAX];
    if (rc < 0 && rc != -ECANCELED && !lumio_stream_reader_last_error(NULL, err, sizeof err)[0])
        abort();
    return 0;
}
