/* Exporter "tachyon": CPython's sampling-profiler binary format, version 1
 * (stream/tachyon.h), so that `python -m profiling.sampling replay` reads a
 * lumio stream. Records are encoded as CPython's writer encodes them (a run
 * of identical stacks of a thread becomes one REPEAT record, written when
 * its stack changes or at the end; otherwise SUFFIX, POP_PUSH or FULL by
 * the same rule), compressed with zstd level 5 as they come, and the file is
 * written in one pass at finish: the header needs the counts and offsets,
 * and `out` need not be seekable.
 *
 * What the format cannot hold is lost: records other than python_version,
 * interval_us and rate_hz (which fill the header), frames past the 256
 * innermost, line numbers above 2^31-1. */
#include "stream/bytes.h"
#include "stream/export.h"
#include "stream/tachyon.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#define RLE_MAX_BYTES       (16u << 10) /* a thread's pending repeats, as CPython flushes them */
#define RAW_FLUSH           (512u << 10)
#define DEFAULT_INTERVAL_US 1000u

/* Open addressing over indices: slot = index + 1, 0 empty. */
typedef struct imap {
    uint32_t *slot;
    size_t cap; /* a power of two */
} imap;

typedef struct tthread {
    uint64_t tid, prev_ts;
    uint32_t stack[TACH_MAX_DEPTH]; /* frame indices, innermost first */
    uint32_t depth;
    uint32_t rle_count; /* pending repeats, their (delta, status) pairs in rle */
    bbuf rle;
} tthread;

typedef struct tach {
    bbuf sdata;     /* string bytes, back to back */
    uint64_t *soff; /* string i: sdata.p + soff[i], slen[i] bytes */
    uint32_t *slen;
    uint64_t *shash;
    size_t nstr, str_cap;
    imap smap;
    uint32_t *ffn, *ffile; /* frame i: function and file string indices, line */
    int32_t *fline;
    size_t nframes, frame_cap;
    imap fmap;
    tthread **threads;
    size_t nthreads, thread_cap;
    imap tmap;
    bbuf raw, z; /* records not yet compressed, and the compressed stream */
    ZSTD_CCtx *cctx;
    uint64_t start, samples;
    bool have_first;
    uint8_t py[3];
    uint64_t interval_us, rate_interval_us;
} tach;

/* ---- interning ----------------------------------------------------------------- */

typedef bool (*imap_eq)(const tach *t, uint32_t idx, const void *key);
typedef uint64_t (*imap_hash)(const tach *t, uint32_t idx);

static int imap_grow(tach *t, imap *m, imap_hash rehash, size_t n) {
    if (n * 2 < m->cap) return 0;
    size_t cap = m->cap ? m->cap * 2 : 1024;
    uint32_t *s = calloc(cap, sizeof *s);
    if (!s) return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slot[i]) continue;
        size_t k = rehash(t, m->slot[i] - 1) & (cap - 1);
        while (s[k]) k = (k + 1) & (cap - 1);
        s[k] = m->slot[i];
    }
    free(m->slot);
    m->slot = s;
    m->cap = cap;
    return 0;
}

/* The slot of key (hash h): holding its index + 1, or 0 where it would go. */
static uint32_t *imap_find(const tach *t, const imap *m, uint64_t h, imap_eq eq, const void *key) {
    size_t k = h & (m->cap - 1);
    while (m->slot[k] && !eq(t, m->slot[k] - 1, key)) k = (k + 1) & (m->cap - 1);
    return &m->slot[k];
}

typedef struct skey {
    const char *s;
    size_t n;
} skey;

static bool str_eq(const tach *t, uint32_t i, const void *key) {
    const skey *k = key;
    return t->slen[i] == k->n && memcmp(t->sdata.p + t->soff[i], k->s, k->n) == 0;
}
static uint64_t str_rehash(const tach *t, uint32_t i) {
    return t->shash[i];
}

static int grow_arrays(void **arrs[], const size_t sizes[], int n, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap * 2 : 1024;
    for (int i = 0; i < n; i++) {
        void *p = realloc(*arrs[i], c * sizes[i]);
        if (!p) return -ENOMEM;
        *arrs[i] = p;
    }
    *cap = c;
    return 0;
}

static int intern_string(tach *t, const char *s, uint32_t *out) {
    skey k = {s ? s : "", strlen(s ? s : "")};
    uint64_t h = XXH3_64bits(k.s, k.n);
    if (imap_grow(t, &t->smap, str_rehash, t->nstr) < 0) return -ENOMEM;
    uint32_t *slot = imap_find(t, &t->smap, h, str_eq, &k);
    if (*slot) {
        *out = *slot - 1;
        return 0;
    }
    if (t->nstr >= UINT32_MAX || k.n > UINT32_MAX) return -EOVERFLOW;
    void **arrs[] = {(void **)&t->soff, (void **)&t->slen, (void **)&t->shash};
    const size_t sizes[] = {sizeof *t->soff, sizeof *t->slen, sizeof *t->shash};
    if (grow_arrays(arrs, sizes, 3, &t->str_cap, t->nstr + 1) < 0) return -ENOMEM;
    t->soff[t->nstr] = t->sdata.len;
    bbuf_put(&t->sdata, k.s, k.n);
    if (t->sdata.oom) return -ENOMEM;
    t->slen[t->nstr] = (uint32_t)k.n;
    t->shash[t->nstr] = h;
    *slot = (uint32_t)++t->nstr;
    *out = *slot - 1;
    return 0;
}

typedef struct fkey {
    uint32_t fn, file;
    int32_t line;
} fkey;

static uint64_t frame_hash(uint32_t fn, uint32_t file, int32_t line) {
    uint32_t v[3] = {fn, file, (uint32_t)line};
    return XXH3_64bits(v, sizeof v);
}
static bool frame_eq(const tach *t, uint32_t i, const void *key) {
    const fkey *k = key;
    return t->ffn[i] == k->fn && t->ffile[i] == k->file && t->fline[i] == k->line;
}
static uint64_t frame_rehash(const tach *t, uint32_t i) {
    return frame_hash(t->ffn[i], t->ffile[i], t->fline[i]);
}

static int intern_frame(tach *t, const lumio_frame *f, uint32_t *out) {
    fkey k;
    int rc = intern_string(t, f->function ? f->function : "[unknown]", &k.fn);
    if (rc == 0) rc = intern_string(t, f->file, &k.file);
    if (rc < 0) return rc;
    k.line = f->line <= INT32_MAX ? (int32_t)f->line : 0;
    if (imap_grow(t, &t->fmap, frame_rehash, t->nframes) < 0) return -ENOMEM;
    uint32_t *slot = imap_find(t, &t->fmap, frame_hash(k.fn, k.file, k.line), frame_eq, &k);
    if (*slot) {
        *out = *slot - 1;
        return 0;
    }
    if (t->nframes >= UINT32_MAX) return -EOVERFLOW;
    void **arrs[] = {(void **)&t->ffn, (void **)&t->ffile, (void **)&t->fline};
    const size_t sizes[] = {sizeof *t->ffn, sizeof *t->ffile, sizeof *t->fline};
    if (grow_arrays(arrs, sizes, 3, &t->frame_cap, t->nframes + 1) < 0) return -ENOMEM;
    t->ffn[t->nframes] = k.fn;
    t->ffile[t->nframes] = k.file;
    t->fline[t->nframes] = k.line;
    *slot = (uint32_t)++t->nframes;
    *out = *slot - 1;
    return 0;
}

static bool thread_eq(const tach *t, uint32_t i, const void *key) {
    return t->threads[i]->tid == *(const uint64_t *)key;
}
static uint64_t thread_rehash(const tach *t, uint32_t i) {
    return XXH3_64bits(&t->threads[i]->tid, sizeof(uint64_t));
}

/* The thread's state, made at its first sample (its clock at the start). */
static tthread *thread_of(tach *t, uint64_t tid) {
    if (imap_grow(t, &t->tmap, thread_rehash, t->nthreads) < 0) return NULL;
    uint32_t *slot = imap_find(t, &t->tmap, XXH3_64bits(&tid, sizeof tid), thread_eq, &tid);
    if (*slot) return t->threads[*slot - 1];
    if (t->nthreads >= TACH_MAX_THREADS) return NULL;
    void **arrs[] = {(void **)&t->threads};
    const size_t sizes[] = {sizeof *t->threads};
    if (grow_arrays(arrs, sizes, 1, &t->thread_cap, t->nthreads + 1) < 0) return NULL;
    tthread *th = calloc(1, sizeof *th);
    if (!th) return NULL;
    th->tid = tid;
    th->prev_ts = t->start;
    t->threads[t->nthreads] = th;
    *slot = (uint32_t)++t->nthreads;
    return th;
}

/* ---- records ------------------------------------------------------------------- */

static void record_head(bbuf *b, uint64_t tid, uint8_t encoding) {
    uint8_t h[TACH_RECORD_HEAD];
    put_le64(h, tid);
    put_le32(h + 8, 0); /* interpreter id: lumio samples have none */
    h[12] = encoding;
    bbuf_put(b, h, sizeof h);
}

/* Feed what is in raw to the compressor (all of it, and the frame's end
 * when last). */
static int compress_raw(tach *t, bool last) {
    ZSTD_inBuffer in = {t->raw.p, t->raw.len, 0};
    for (;;) {
        size_t room = ZSTD_CStreamOutSize();
        if (!bbuf_reserve(&t->z, room)) return -ENOMEM;
        ZSTD_outBuffer out = {t->z.p + t->z.len, room, 0};
        size_t r = ZSTD_compressStream2(t->cctx, &out, &in, last ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(r)) return LUMIO_E_CODEC;
        t->z.len += out.pos;
        if (last ? r == 0 : in.pos == in.size) break;
    }
    t->raw.len = 0;
    return 0;
}

static void flush_repeats(tach *t, tthread *th) {
    if (th->rle_count == 0) return;
    record_head(&t->raw, th->tid, TACH_REPEAT);
    bbuf_varint(&t->raw, th->rle_count);
    bbuf_put(&t->raw, th->rle.p, th->rle.len);
    th->rle.len = 0;
    th->rle_count = 0;
}

/* CPython's choice of encoding for a stack that differs from the previous. */
static void write_changed(tach *t, tthread *th, uint64_t delta, uint8_t status, const uint32_t *ids,
                          uint32_t depth) {
    uint32_t suffix = 0;
    while (suffix < depth && suffix < th->depth &&
           th->stack[th->depth - 1 - suffix] == ids[depth - 1 - suffix])
        suffix++;
    uint32_t pop = th->depth - suffix, push = depth - suffix;
    uint8_t enc = suffix == 0            ? TACH_FULL
                  : pop == 0 && push > 0 ? TACH_SUFFIX
                  : suffix < depth / 2   ? TACH_FULL
                                         : TACH_POP_PUSH;
    bbuf *b = &t->raw;
    record_head(b, th->tid, enc);
    bbuf_varint(b, delta);
    bbuf_u8(b, status);
    uint32_t n = enc == TACH_FULL ? depth : push;
    bbuf_varint(b, enc == TACH_FULL ? depth : enc == TACH_SUFFIX ? suffix : pop);
    if (enc != TACH_FULL) bbuf_varint(b, push);
    for (uint32_t i = 0; i < n; i++) bbuf_varint(b, ids[i]);
}

static int tach_sample(lumio_stream_exporter *e, const lumio_sample *s) {
    tach *t = e->state;
    if (!t->have_first) {
        t->start = s->timestamp_us; /* so that every delta is small */
        t->have_first = true;
    }
    uint32_t depth = LUMIO_MIN(s->depth, TACH_MAX_DEPTH), ids[TACH_MAX_DEPTH];
    for (uint32_t i = 0; i < depth; i++) {
        int rc = intern_frame(t, &s->frames[i], &ids[i]);
        if (rc < 0) return lumio__export_fail(e, rc, "interning a frame: %s", lumio_strerror(rc));
    }
    tthread *th = thread_of(t, s->thread_id);
    if (!th && t->nthreads >= TACH_MAX_THREADS)
        return lumio__export_fail(e, -E2BIG, "more than %u threads (lumio reads no more)",
                                  TACH_MAX_THREADS);
    if (!th) return -ENOMEM;
    uint64_t delta = s->timestamp_us - th->prev_ts; /* modulo 2^64, as readers add it back */
    if (depth == th->depth && memcmp(ids, th->stack, depth * sizeof *ids) == 0) {
        if (th->rle.len + 11 > RLE_MAX_BYTES) flush_repeats(t, th);
        bbuf_varint(&th->rle, delta);
        bbuf_u8(&th->rle, s->status);
        th->rle_count++;
    } else {
        flush_repeats(t, th);
        write_changed(t, th, delta, s->status, ids, depth);
        memcpy(th->stack, ids, depth * sizeof *ids);
        th->depth = depth;
    }
    th->prev_ts = s->timestamp_us;
    t->samples++;
    if (t->raw.oom || th->rle.oom) return -ENOMEM;
    return t->raw.len >= RAW_FLUSH ? compress_raw(t, false) : 0;
}

/* ---- the header's records ---------------------------------------------------------- */

static bool parse_u64_text(const char *s, uint64_t *v) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-') return false;
    *v = x;
    return true;
}

static int tach_meta(lumio_stream_exporter *e, uint64_t ts, const char *key, const char *value) {
    tach *t = e->state;
    (void)ts;
    uint64_t v;
    if (!strcmp(key, "python_version")) {
        unsigned a = 0, b = 0, c = 0;
        if (sscanf(value, "%u.%u.%u", &a, &b, &c) >= 2 && a < 256 && b < 256 && c < 256)
            t->py[0] = (uint8_t)a, t->py[1] = (uint8_t)b, t->py[2] = (uint8_t)c;
    } else if (!strcmp(key, "interval_us") && parse_u64_text(value, &v)) {
        t->interval_us = v;
    } else if (!strcmp(key, "rate_hz") && parse_u64_text(value, &v) && v > 0) {
        t->rate_interval_us = 1000000 / v;
    }
    return 0;
}

/* ---- the file ------------------------------------------------------------------------ */

static void tables(const tach *t, bbuf *st, bbuf *ft) {
    for (size_t i = 0; i < t->nstr; i++) {
        bbuf_varint(st, t->slen[i]);
        bbuf_put(st, t->sdata.p + t->soff[i], t->slen[i]);
    }
    for (size_t i = 0; i < t->nframes; i++) {
        bbuf_varint(ft, t->ffile[i]);
        bbuf_varint(ft, t->ffn[i]);
        bbuf_varint(ft, zigzag(t->fline[i]));
        bbuf_varint(ft, 0);          /* end line: the same line */
        bbuf_varint(ft, zigzag(-1)); /* column: not available */
        bbuf_varint(ft, 0);
        bbuf_u8(ft, TACH_OPCODE_NONE);
    }
}

static void header(const tach *t, uint8_t h[TACH_HEADER], uint64_t str_off, uint64_t frame_off) {
    memset(h, 0, TACH_HEADER);
    put_le32(h, TACH_MAGIC);
    put_le32(h + TACH_OFF_VERSION, TACH_VERSION);
    memcpy(h + TACH_OFF_PYVER, t->py, 3);
    put_le64(h + TACH_OFF_START, t->start);
    uint64_t interval = t->interval_us        ? t->interval_us
                        : t->rate_interval_us ? t->rate_interval_us
                                              : DEFAULT_INTERVAL_US;
    put_le64(h + TACH_OFF_INTERVAL, interval);
    put_le64(h + TACH_OFF_SAMPLES, t->samples);
    put_le32(h + TACH_OFF_THREADS, (uint32_t)t->nthreads);
    put_le64(h + TACH_OFF_STRTAB, str_off);
    put_le64(h + TACH_OFF_FRAMETAB, frame_off);
    put_le32(h + TACH_OFF_COMPRESSION, TACH_ZSTD);
}

static int tach_finish(lumio_stream_exporter *e) {
    tach *t = e->state;
    for (size_t i = 0; i < t->nthreads; i++) flush_repeats(t, t->threads[i]);
    if (t->raw.oom) return -ENOMEM;
    int rc = compress_raw(t, true);
    if (rc < 0) return lumio__export_fail(e, rc, "compressing the samples: %s", lumio_strerror(rc));
    bbuf st = {0}, ft = {0};
    tables(t, &st, &ft);
    if (st.oom || ft.oom) {
        bbuf_free(&st);
        bbuf_free(&ft);
        return -ENOMEM;
    }
    uint64_t str_off = TACH_HEADER + t->z.len, frame_off = str_off + st.len;
    uint8_t h[TACH_HEADER], footer[TACH_FOOTER] = {0};
    header(t, h, str_off, frame_off);
    put_le32(footer, (uint32_t)t->nstr);
    put_le32(footer + 4, (uint32_t)t->nframes);
    put_le64(footer + 8, frame_off + ft.len + TACH_FOOTER);
    fwrite(h, 1, sizeof h, e->out);
    fwrite(t->z.p, 1, t->z.len, e->out);
    fwrite(st.p, 1, st.len, e->out);
    fwrite(ft.p, 1, ft.len, e->out);
    fwrite(footer, 1, sizeof footer, e->out);
    bbuf_free(&st);
    bbuf_free(&ft);
    return ferror(e->out) ? -EIO : 0;
}

static int tach_begin(lumio_stream_exporter *e) {
    tach *t = calloc(1, sizeof *t);
    if (!t) return -ENOMEM;
    e->state = t;
    t->cctx = ZSTD_createCCtx();
    if (!t->cctx ||
        ZSTD_isError(ZSTD_CCtx_setParameter(t->cctx, ZSTD_c_compressionLevel, TACH_ZSTD_LEVEL)))
        return lumio__export_fail(e, -ENOMEM, "creating the zstd compressor");
    return 0;
}

static void tach_release(lumio_stream_exporter *e) {
    tach *t = e->state;
    if (!t) return;
    for (size_t i = 0; i < t->nthreads; i++) {
        bbuf_free(&t->threads[i]->rle);
        free(t->threads[i]);
    }
    free(t->threads);
    free(t->tmap.slot);
    bbuf_free(&t->sdata);
    free(t->soff);
    free(t->slen);
    free(t->shash);
    free(t->smap.slot);
    free(t->ffn);
    free(t->ffile);
    free(t->fline);
    free(t->fmap.slot);
    bbuf_free(&t->raw);
    bbuf_free(&t->z);
    ZSTD_freeCCtx(t->cctx);
    free(t);
    e->state = NULL;
}

const lumio__export_ops lumio__export_tachyon = {.name = "tachyon",
                                                 .begin = tach_begin,
                                                 .sample = tach_sample,
                                                 .meta = tach_meta,
                                                 .finish = tach_finish,
                                                 .release = tach_release};
