/* The lumio stream: write a small profile of two threads to PATH, sealed in
 * chunks of 100 samples, then read it back and print, per thread, how many
 * samples came and how many of them were in "work".
 *     cc stream_profile.c $(pkg-config --cflags --libs lumio) */
#include <lumio/stream.h>
#include <stdio.h>
#include <string.h>

typedef struct counts {
    unsigned long long samples[2], in_work[2];
} counts;

static int on_sample(void *arg, const lumio_sample *s) {
    counts *c = arg;
    unsigned t = s->thread_id == 1 ? 0 : 1;
    c->samples[t]++;
    for (uint32_t i = 0; i < s->depth; i++)
        if (!strcmp(s->frames[i].function, "work")) {
            c->in_work[t]++;
            break;
        }
    return 0; /* go on */
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH\n", argv[0]);
        return 2;
    }
    char err[LUMIO_ERROR_MAX];
    lumio_stream_writer_options o = {0};
    o.flush_samples = 100;
    lumio_stream_writer *w;
    if (lumio_stream_writer_open(&w, argv[1], &o) < 0) {
        fprintf(stderr, "%s\n", lumio_stream_writer_last_error(NULL, err, sizeof err));
        return 1;
    }
    lumio_frame stack[3] = {{.function = "work", .file = "app.c", .line = 42},
                            {.function = "loop", .file = "app.c", .line = 17},
                            {.function = "main", .file = "app.c", .line = 5}};
    int rc = lumio_stream_writer_write_meta(w, 0, "command", "example");
    for (unsigned i = 0; i < 1000 && rc == 0; i++) {
        lumio_sample s = {0};
        s.timestamp_us = 1000ull * i;
        s.thread_id = 1 + i % 2;
        s.frames = stack + (i % 3 == 0); /* every third sample is in "loop" */
        s.depth = i % 3 == 0 ? 2 : 3;
        rc = lumio_stream_writer_write_sample(w, &s);
    }
    if (rc == 0) rc = lumio_stream_writer_finish(w); /* seals the last chunk */
    if (rc < 0) fprintf(stderr, "%s\n", lumio_stream_writer_last_error(w, err, sizeof err));
    lumio_stream_writer_close(w);
    if (rc < 0) return 1;

    lumio_stream_reader *r;
    if (lumio_stream_reader_open(&r, argv[1], NULL) < 0) {
        fprintf(stderr, "%s\n", lumio_stream_reader_last_error(NULL, err, sizeof err));
        return 1;
    }
    counts c = {{0, 0}, {0, 0}};
    rc = lumio_stream_reader_read(r, on_sample, NULL, &c);
    lumio_stream_reader_stats st;
    lumio_stream_reader_get_stats(r, &st);
    if (rc < 0) fprintf(stderr, "%s\n", lumio_stream_reader_last_error(r, err, sizeof err));
    lumio_stream_reader_close(r);
    if (rc < 0) return 1;
    printf("chunks %llu\n", (unsigned long long)st.chunks);
    for (int t = 0; t < 2; t++)
        printf("thread %d: %llu samples, %llu in work\n", t + 1, c.samples[t], c.in_work[t]);
    return 0;
}
