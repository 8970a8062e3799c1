/* The chunk decoder: verify a chunk (limits, checksum, decompression), then
 * replay it. Everything here reads bytes from outside, so every count and
 * index is checked before it is used, and nothing is delivered from a chunk
 * until all of it has been parsed once. */
#include "stream/chunk.h"

#include <errno.h>
#include <xxhash.h>
#include <zstd.h>

void lumio__chunk_dec_init(chunk_dec *d) {
    memset(d, 0, sizeof(*d));
}

void lumio__chunk_dec_free(chunk_dec *d) {
    ZSTD_freeDCtx(d->dctx);
    bbuf_free(&d->raw);
    free(d->strings);
    free(d->frames);
    for (size_t i = 0; i < d->thr_cap; i++) free(d->threads[i].stack);
    free(d->threads);
    free(d->strbuf);
}

void lumio__chunk_dec_trim(chunk_dec *d, size_t keep) {
    if (d->raw.cap <= keep) return;
    bbuf_free(&d->raw);
}

/* The decode buffer is reused from chunk to chunk and grown to the exact
 * need, not doubled: a 129 MiB chunk takes 129 MiB, not 256. */
static bool raw_room(chunk_dec *d, size_t need) {
    if (need <= d->raw.cap) return true;
    uint8_t *p = realloc(d->raw.p, need);
    if (!p) return false;
    d->raw.p = p;
    d->raw.cap = need;
    return true;
}

int lumio__chunk_verify(chunk_dec *d, const uint8_t *p, size_t avail, chunk_view *v) {
    if (avail < 4) return memcmp(p, lumio__chunk_magic, avail) ? LUMIO_E_FORMAT : -EAGAIN;
    if (memcmp(p, lumio__chunk_magic, 4) != 0) return LUMIO_E_FORMAT;
    if (avail < CHUNK_HDR) return -EAGAIN;
    uint32_t stored = get_le32(p + 8), raw = get_le32(p + 12);
    if (p[4] != 1 || p[5] > 1 || p[6] || p[7] || stored > CHUNK_MAX_LEN || raw > CHUNK_MAX_LEN ||
        (p[5] == 0 && stored != raw))
        return LUMIO_E_FORMAT;
    if (avail - CHUNK_HDR < stored) return -EAGAIN;
    XXH3_state_t *st = XXH3_createState();
    if (!st) return -ENOMEM;
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, p + 4, 36);
    XXH3_64bits_update(st, p + CHUNK_HDR, stored);
    uint64_t sum = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    if (sum != get_le64(p + 40)) return LUMIO_E_CHECKSUM;
    v->seq = get_le64(p + 16);
    v->samples = get_le32(p + 24);
    v->records = get_le32(p + 28);
    v->t_first = (int64_t)get_le64(p + 32);
    v->total_len = CHUNK_HDR + stored;
    v->stored_len = stored;
    v->raw_len = raw;
    if (p[5] == 0) {
        v->payload = p + CHUNK_HDR;
        v->payload_len = raw;
        return 0;
    }
    if (!d->dctx && !(d->dctx = ZSTD_createDCtx())) return -ENOMEM;
    d->raw.len = 0;
    if (!raw_room(d, raw ? raw : 1)) return -ENOMEM;
    size_t n = ZSTD_decompressDCtx(d->dctx, d->raw.p, raw, p + CHUNK_HDR, stored);
    if (ZSTD_isError(n) || n != raw) return LUMIO_E_FORMAT;
    v->payload = d->raw.p;
    v->payload_len = raw;
    return 0;
}

static bool grow(void **a, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *p = realloc(*a, c * elem);
    if (!p) return false;
    *a = p;
    *cap = c;
    return true;
}

/* Tables: strings (copied NUL-terminated), frames, threads. */
static int read_tables(chunk_dec *d, rcur *c, int64_t t_first) {
    uint64_t n = rc_varint(c);
    if (c->bad || n > (uint64_t)(c->end - c->p)) return LUMIO_E_FORMAT;
    if (!grow((void **)&d->strbuf, &d->strbuf_cap, (size_t)(c->end - c->p) + n + 1, 1) ||
        !grow((void **)&d->strings, &d->str_cap, n + 1, sizeof(char *)))
        return -ENOMEM;
    char *sp = d->strbuf;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = rc_varint(c);
        if (c->bad || len > CHUNK_MAX_STRING || len > (uint64_t)(c->end - c->p))
            return LUMIO_E_FORMAT;
        if (memchr(c->p, 0, len)) return LUMIO_E_FORMAT; /* strings are C strings */
        memcpy(sp, c->p, len);
        sp[len] = 0;
        d->strings[i] = sp;
        sp += len + 1;
        c->p += len;
    }
    d->nstrings = n;
    uint64_t nf = rc_varint(c);
    if (c->bad || nf > (uint64_t)(c->end - c->p) / 3 + 1) return LUMIO_E_FORMAT;
    if (!grow((void **)&d->frames, &d->frm_cap, nf + 1, sizeof(lumio_frame))) return -ENOMEM;
    for (uint64_t i = 0; i < nf; i++) {
        uint64_t fn = rc_varint(c), file = rc_varint(c), line = rc_varint(c);
        if (c->bad || fn >= n || file >= n || line > UINT32_MAX) return LUMIO_E_FORMAT;
        d->frames[i] = (lumio_frame){d->strings[fn], d->strings[file], (uint32_t)line};
    }
    d->nframes = nf;
    uint64_t nt = rc_varint(c);
    if (c->bad || nt > (uint64_t)(c->end - c->p) / 2 + 1) return LUMIO_E_FORMAT;
    size_t old = d->thr_cap;
    if (!grow((void **)&d->threads, &d->thr_cap, nt + 1, sizeof(dthread))) return -ENOMEM;
    memset(d->threads + old, 0, (d->thr_cap - old) * sizeof(dthread));
    for (uint64_t i = 0; i < nt; i++) {
        dthread *t = &d->threads[i];
        t->tid = rc_varint(c);
        t->base = t->last = t_first + unzigzag(rc_varint(c));
        t->depth = t->max = 0;
    }
    d->nthreads = nt;
    return c->bad ? LUMIO_E_FORMAT : 0;
}

/* A callback asked to stop: its code as it is, or -ECANCELED for a positive
 * one; marked, so that the reader never takes it for damage. */
static int callback_stop(chunk_dec *d, int rc) {
    d->stopped = true;
    return rc < 0 ? rc : -ECANCELED;
}

/* One record, checked (deliver == false: depths only, to find each thread's
 * deepest stack) or delivered. Returns the samples it holds, or < 0. */
static int64_t one_record(chunk_dec *d, rcur *c, const chunk_view *v, bool deliver,
                          chunk_sample_fn on_sample, chunk_meta_fn on_meta, void *arg) {
    uint8_t tag = rc_u8(c);
    if (tag == TAG_META) {
        int64_t dt = unzigzag(rc_varint(c));
        uint64_t k = rc_varint(c), val = rc_varint(c);
        if (c->bad || k >= d->nstrings || val >= d->nstrings) return LUMIO_E_FORMAT;
        if (deliver && on_meta) {
            int rc = on_meta(arg, (uint64_t)(v->t_first + dt), d->strings[k], d->strings[val]);
            if (rc) return callback_stop(d, rc);
        }
        return 0;
    }
    if (tag > TAG_META) return LUMIO_E_FORMAT;
    uint64_t ti = rc_varint(c);
    if (c->bad || ti >= d->nthreads) return LUMIO_E_FORMAT;
    dthread *t = &d->threads[ti];
    if (tag == TAG_REPEAT) {
        uint64_t count = rc_varint(c);
        if (c->bad || count == 0 || count > (uint64_t)(c->end - c->p)) return LUMIO_E_FORMAT;
        for (uint64_t i = 0; i < count; i++) {
            t->last += unzigzag(rc_varint(c));
            uint8_t status = rc_u8(c);
            if (c->bad) return LUMIO_E_FORMAT;
            if (deliver && on_sample) {
                lumio_sample s = {(uint64_t)t->last, t->tid, status,
                                  t->stack ? t->stack + (t->max - t->depth) : NULL, t->depth};
                int rc = on_sample(arg, &s);
                if (rc) return callback_stop(d, rc);
            }
        }
        return (int64_t)count;
    }
    t->last += unzigzag(rc_varint(c));
    uint8_t status = rc_u8(c);
    uint64_t pop = tag == TAG_FULL ? t->depth : tag == TAG_POP_PUSH ? rc_varint(c) : 0;
    uint64_t push = rc_varint(c);
    if (c->bad || pop > t->depth || push > LUMIO_STREAM_MAX_DEPTH - (t->depth - pop))
        return LUMIO_E_FORMAT;
    uint32_t depth = (uint32_t)(t->depth - pop + push);
    if (!deliver) {
        for (uint64_t i = 0; i < push; i++)
            if (rc_varint(c) >= d->nframes) return LUMIO_E_FORMAT;
        if (c->bad) return LUMIO_E_FORMAT;
        t->depth = depth;
        if (depth > t->max) t->max = depth;
        return 1;
    }
    /* The stack grows down in its buffer: frames[0] stays the innermost. */
    lumio_frame *top = t->stack ? t->stack + (t->max - depth) : NULL;
    for (uint64_t i = 0; i < push; i++) top[i] = d->frames[rc_varint(c)];
    t->depth = depth;
    if (on_sample) {
        lumio_sample s = {(uint64_t)t->last, t->tid, status, top, depth};
        int rc = on_sample(arg, &s);
        if (rc) return callback_stop(d, rc);
    }
    return 1;
}

static int all_records(chunk_dec *d, const chunk_view *v, rcur c, bool deliver,
                       chunk_sample_fn on_sample, chunk_meta_fn on_meta, void *arg) {
    uint64_t samples = 0, records = 0;
    while (c.p < c.end) {
        const uint8_t *at = c.p;
        int64_t n = one_record(d, &c, v, deliver, on_sample, on_meta, arg);
        if (n < 0) return (int)n;
        samples += (uint64_t)n;
        records += *at == TAG_META;
    }
    if (samples != v->samples || records != v->records) return LUMIO_E_FORMAT;
    return 0;
}

int lumio__chunk_replay(chunk_dec *d, const chunk_view *v, chunk_sample_fn on_sample,
                        chunk_meta_fn on_meta, void *arg) {
    rcur c = {v->payload, v->payload + v->payload_len, false};
    int rc = read_tables(d, &c, v->t_first);
    if (rc < 0) return rc;
    rcur records = c;
    /* First pass: check everything, and learn each thread's deepest stack. */
    rc = all_records(d, v, records, false, NULL, NULL, NULL);
    if (rc < 0) return rc;
    for (size_t i = 0; i < d->nthreads; i++) {
        dthread *t = &d->threads[i];
        if (t->max > t->stack_cap) {
            lumio_frame *s = realloc(t->stack, t->max * sizeof(lumio_frame));
            if (!s) return -ENOMEM;
            t->stack = s;
            t->stack_cap = t->max;
        }
        t->depth = 0;
        t->last = t->base;
    }
    /* Second pass: deliver. */
    return all_records(d, v, records, true, on_sample, on_meta, arg);
}
