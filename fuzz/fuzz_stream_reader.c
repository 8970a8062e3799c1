/* libFuzzer target: any bytes as a lumio stream. The reader must never
 * crash, hang or leak, and what it returns must be well formed: every frame
 * has its strings, depths are within the limit, counts add up. */
#include <lumio/stream.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct seen {
    uint64_t samples, records;
} seen;

static int on_sample(void *arg, const lumio_sample *s) {
    seen *n = arg;
    if (s->depth > LUMIO_STREAM_MAX_DEPTH) abort();
    for (uint32_t i = 0; i < s->depth; i++)
        if (!s->frames[i].function || !s->frames[i].file)
            abort();
        else
            (void)strlen(s->frames[i].function), (void)strlen(s->frames[i].file);
    n->samples++;
    return 0;
}

static int on_meta(void *arg, uint64_t ts, const char *k, const char *v) {
    seen *n = arg;
    (void)ts;
    (void)strlen(k), (void)strlen(v);
    n->records++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (write(fd, data, size) != (ssize_t)size || lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        return 0;
    }
    lumio_stream_reader *r;
    if (lumio_stream_reader_open_fd(&r, fd, NULL) == 0) {
        seen n = {0};
        if (lumio_stream_reader_read(r, on_sample, on_meta, &n) == 0) {
            lumio_stream_reader_stats st;
            lumio_stream_reader_get_stats(r, &st);
            if (st.samples != n.samples || st.records != n.records) abort();
        }
        lumio_stream_reader_close(r);
    }
    close(fd);
    return 0;
}
