/* Bytes per sample of a lumio stream against CPython's sampling-profiler
 * binary format v1 (../shared/reference/tachyon-v1.md), on the same samples
 * from a `perf script` text (plain or .zst).
 *
 * The v1 size comes from a small reference encoder kept here: one global
 * string and frame table, written once; sample records in one zstd stream at
 * level 5; per-thread repeat runs; FULL, SUFFIX and POP_PUSH stacks.
 *
 * usage: stream_size FILE [lumio zstd level, default 3] [samples per chunk, default 65536]
 * prints one JSON object. */
#include "stream/import.h"

#include <errno.h>
#include <stdbool.h>
#include <lumio/stream.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) exit(2);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void u8(buf *b, uint8_t v) {
    put(b, &v, 1);
}
static void varint(buf *b, uint64_t v) {
    while (v >= 0x80) {
        u8(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    u8(b, (uint8_t)v);
}

/* ---- the v1 reference encoder ----------------------------------------------------- */

typedef struct v1thread {
    uint64_t tid, last_ts;
    uint32_t *stack, depth;
    uint32_t run; /* buffered repeats */
    buf run_buf;
} v1thread;

typedef struct v1 {
    buf records, strings, frames;
    char **str;
    size_t nstr;
    uint32_t *fr_fn, *fr_file;
    size_t nfr;
    v1thread th[4096];
    size_t nth;
    uint64_t start;
    bool started;
    uint64_t samples;
} v1;

static uint32_t v1_string(v1 *e,
                          const char *s) { /* linear probing would be faster; size is what counts */
    for (size_t i = e->nstr; i-- > 0;)
        if (!strcmp(e->str[i], s)) return (uint32_t)i;
    e->str = realloc(e->str, (e->nstr + 1) * sizeof(char *));
    e->str[e->nstr] = strdup(s);
    varint(&e->strings, strlen(s));
    put(&e->strings, s, strlen(s));
    return (uint32_t)e->nstr++;
}

static uint32_t v1_frame(v1 *e, const lumio_frame *f) {
    uint32_t fn = v1_string(e, f->function), file = v1_string(e, f->file);
    for (size_t i = e->nfr; i-- > 0;)
        if (e->fr_fn[i] == fn && e->fr_file[i] == file) return (uint32_t)i;
    e->fr_fn = realloc(e->fr_fn, (e->nfr + 1) * sizeof(uint32_t));
    e->fr_file = realloc(e->fr_file, (e->nfr + 1) * sizeof(uint32_t));
    e->fr_fn[e->nfr] = fn;
    e->fr_file[e->nfr] = file;
    varint(&e->frames, file);
    varint(&e->frames, fn);
    for (int k = 0; k < 4; k++) varint(&e->frames, 0); /* line, end line, column, end column */
    u8(&e->frames, 255);                               /* no opcode */
    return (uint32_t)e->nfr++;
}

static void v1_head(buf *b, uint64_t tid, uint8_t enc) {
    put(b, &tid, 8);
    uint32_t interp = 0;
    put(b, &interp, 4);
    u8(b, enc);
}

static void v1_flush_run(v1 *e, v1thread *t) {
    if (!t->run) return;
    v1_head(&e->records, t->tid, 0);
    varint(&e->records, t->run);
    put(&e->records, t->run_buf.p, t->run_buf.n);
    t->run = 0;
    t->run_buf.n = 0;
}

/* Frames are interned by function and file (perf stacks have no lines). */
static int v1_sample(void *arg, const lumio_sample *s) {
    v1 *e = arg;
    if (!e->started) {
        e->start = s->timestamp_us;
        e->started = true;
    }
    v1thread *t = NULL;
    for (size_t i = 0; i < e->nth; i++)
        if (e->th[i].tid == s->thread_id) t = &e->th[i];
    if (!t) {
        if (e->nth == 4096) return -ENOSPC;
        t = &e->th[e->nth++];
        *t = (v1thread){.tid = s->thread_id, .last_ts = e->start};
        t->stack = malloc(256 * sizeof(uint32_t));
    }
    uint32_t depth = s->depth > 256 ? 256 : s->depth;
    uint32_t ids[256];
    for (uint32_t i = 0; i < depth; i++) ids[i] = v1_frame(e, &s->frames[i]);
    uint64_t delta = s->timestamp_us - t->last_ts;
    t->last_ts = s->timestamp_us;
    e->samples++;
    if (depth == t->depth && !memcmp(ids, t->stack, depth * sizeof(uint32_t)) && e->samples > 1) {
        t->run++;
        varint(&t->run_buf, delta);
        u8(&t->run_buf, s->status);
        return 0;
    }
    v1_flush_run(e, t);
    uint32_t common = 0;
    while (common < depth && common < t->depth &&
           ids[depth - 1 - common] == t->stack[t->depth - 1 - common])
        common++;
    uint32_t pop = t->depth - common, push = depth - common;
    buf *r = &e->records;
    if (common == 0 || common * 2 < depth) {
        v1_head(r, t->tid, 1);
        varint(r, delta);
        u8(r, s->status);
        varint(r, depth);
        for (uint32_t i = 0; i < depth; i++) varint(r, ids[i]);
    } else if (pop == 0) {
        v1_head(r, t->tid, 2);
        varint(r, delta);
        u8(r, s->status);
        varint(r, common);
        varint(r, push);
        for (uint32_t i = 0; i < push; i++) varint(r, ids[i]);
    } else {
        v1_head(r, t->tid, 3);
        varint(r, delta);
        u8(r, s->status);
        varint(r, pop);
        varint(r, push);
        for (uint32_t i = 0; i < push; i++) varint(r, ids[i]);
    }
    memcpy(t->stack, ids, depth * sizeof(uint32_t));
    t->depth = depth;
    return 0;
}

static size_t v1_size(v1 *e) {
    for (size_t i = 0; i < e->nth; i++) v1_flush_run(e, &e->th[i]);
    size_t bound = ZSTD_compressBound(e->records.n);
    void *z = malloc(bound);
    size_t zn = ZSTD_compress(z, bound, e->records.p, e->records.n, 5);
    free(z);
    return 64 + zn + e->strings.n + e->frames.n + 32;
}

/* ---- lumio ---------------------------------------------------------------------------- */

static int lumio_sample_cb(void *arg, const lumio_sample *s) {
    return lumio_stream_writer_write_sample(arg, s);
}

static FILE *open_text(const char *path) {
    size_t n = strlen(path);
    if (n > 4 && !strcmp(path + n - 4, ".zst")) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "zstd -dc '%s'", path);
        return popen(cmd, "r");
    }
    return fopen(path, "r");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PERF_SCRIPT[.zst] [LEVEL] [CHUNK_SAMPLES]\n", argv[0]);
        return 2;
    }
    int level = argc > 2 ? atoi(argv[2]) : 3;
    uint64_t chunk = argc > 3 ? strtoull(argv[3], NULL, 10) : 65536;
    char err[512] = "";
    static v1 e;
    FILE *in = open_text(argv[1]);
    if (!in || lumio__import_perf_script(in, v1_sample, &e, err, sizeof err) != 0) {
        fprintf(stderr, "stream_size: %s: %s\n", argv[1], err[0] ? err : strerror(errno));
        return 1;
    }
    pclose(in);
    size_t v1_bytes = v1_size(&e);

    char path[] = "/tmp/lumio-size-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    lumio_stream_writer_options o;
    o = (lumio_stream_writer_options){0};
    o.zstd_level = level;
    o.flush_samples = chunk;
    o.flush_bytes = -1;
    lumio_stream_writer *w;
    if (lumio_stream_writer_open(&w, path, &o) < 0) return 1;
    in = open_text(argv[1]);
    int rc = lumio__import_perf_script(in, lumio_sample_cb, w, err, sizeof err);
    pclose(in);
    lumio_stream_writer_stats st;
    lumio_stream_writer_get_stats(w, &st);
    if (rc == 0) rc = lumio_stream_writer_finish(w);
    lumio_stream_writer_close(w);
    if (rc != 0) {
        fprintf(stderr, "stream_size: %s\n", err);
        return 1;
    }
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long lumio_bytes = ftell(f);
    fclose(f);
    unlink(path);
    printf(
        "{\"file\": \"%s\", \"samples\": %llu, \"v1_bytes\": %zu, \"v1_bytes_per_sample\": %.3f, "
        "\"lumio_bytes\": %ld, \"lumio_bytes_per_sample\": %.3f, \"lumio_chunks\": %llu, "
        "\"ratio\": %.3f}\n",
        argv[1], (unsigned long long)e.samples, v1_bytes, (double)v1_bytes / (double)e.samples,
        lumio_bytes, (double)lumio_bytes / (double)e.samples, (unsigned long long)st.chunks + 1,
        (double)lumio_bytes / (double)v1_bytes);
    return 0;
}
