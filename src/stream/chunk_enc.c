/* The chunk encoder: samples (as global frame ids) in, one self-contained,
 * checksummed chunk out. Local tables map the writer's global ids to the
 * chunk's own indices; a generation number makes resetting them free. */
#include "stream/chunk.h"

#include <errno.h>
#include <xxhash.h>
#include <zstd.h>

const uint8_t lumio__stream_signature[STREAM_SIG_LEN] = {0x89, 'L', 'U', 'M', 'I', 'O', '\r', '\n',
                                                         1,    0,   0,   0,   0,   0,   0,    0};
const uint8_t lumio__chunk_magic[4] = {'L', 'C', 'H', 'K'};

void lumio__chunk_enc_init(chunk_enc *e) {
    memset(e, 0, sizeof(*e));
    e->gen = 1;
    e->run_thread = -1;
}

void lumio__chunk_enc_free(chunk_enc *e) {
    free(e->str_gen);
    free(e->str_local);
    free(e->frm_gen);
    free(e->frm_local);
    free(e->lstr);
    free(e->lfrm);
    for (size_t i = 0; i < e->threads_cap; i++) free(e->threads[i].stack); /* slots keep theirs */
    free(e->threads);
    free(e->thash);
    bbuf_free(&e->rec);
    bbuf_free(&e->run);
}

bool lumio__chunk_enc_empty(const chunk_enc *e) {
    return e->samples == 0 && e->records == 0;
}

static bool grow_u32(uint32_t **a, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    uint32_t *p = realloc(*a, c * sizeof(uint32_t));
    if (!p) return false;
    *a = p;
    *cap = c;
    return true;
}

/* A global id's index in this chunk, assigned on first use. */
static bool local_of(uint32_t gid, uint32_t gen, uint32_t **genv, uint32_t **local, size_t *cap,
                     uint32_t **list, size_t *n, size_t *list_cap, uint32_t *out) {
    if (gid >= *cap) {
        size_t c = *cap ? *cap : 1024;
        while (c <= gid) c *= 2;
        uint32_t *g = realloc(*genv, c * sizeof(uint32_t));
        if (!g) return false;
        *genv = g;
        uint32_t *l = realloc(*local, c * sizeof(uint32_t));
        if (!l) return false;
        *local = l;
        memset(g + *cap, 0, (c - *cap) * sizeof(uint32_t));
        *cap = c;
    }
    if ((*genv)[gid] != gen) {
        if (!grow_u32(list, list_cap, *n + 1)) return false;
        (*genv)[gid] = gen;
        (*local)[gid] = (uint32_t)*n;
        (*list)[(*n)++] = gid;
    }
    *out = (*local)[gid];
    return true;
}

static bool frame_local(chunk_enc *e, uint32_t gid, uint32_t *out) {
    return local_of(gid, e->gen, &e->frm_gen, &e->frm_local, &e->frm_cap, &e->lfrm, &e->nlfrm,
                    &e->lfrm_cap, out);
}

static bool string_local(chunk_enc *e, uint32_t gid, uint32_t *out) {
    return local_of(gid, e->gen, &e->str_gen, &e->str_local, &e->str_cap, &e->lstr, &e->nlstr,
                    &e->lstr_cap, out);
}

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    return x ^ (x >> 33);
}

static bool thash_rebuild(chunk_enc *e, size_t cap) {
    uint32_t *h = calloc(cap, sizeof(uint32_t));
    if (!h) return false;
    for (size_t i = 0; i < e->nthreads; i++) {
        size_t k = mix(e->threads[i].tid) & (cap - 1);
        while (h[k]) k = (k + 1) & (cap - 1);
        h[k] = (uint32_t)i + 1;
    }
    free(e->thash);
    e->thash = h;
    e->thash_cap = cap;
    return true;
}

/* The chunk's thread for tid, created at its first sample. */
static int64_t thread_of(chunk_enc *e, uint64_t tid, int64_t ts) {
    if (e->thash_cap) {
        for (size_t k = mix(tid) & (e->thash_cap - 1); e->thash[k];
             k = (k + 1) & (e->thash_cap - 1))
            if (e->threads[e->thash[k] - 1].tid == tid) return e->thash[k] - 1;
    }
    if (e->nthreads == e->threads_cap) {
        size_t c = e->threads_cap ? e->threads_cap * 2 : 16;
        ethread *t = realloc(e->threads, c * sizeof(ethread));
        if (!t) return -1;
        memset(t + e->threads_cap, 0, (c - e->threads_cap) * sizeof(ethread));
        e->threads = t;
        e->threads_cap = c;
    }
    ethread *t = &e->threads[e->nthreads];
    uint32_t *stack = t->stack; /* kept from an earlier chunk, if any */
    uint32_t cap = t->cap;
    *t = (ethread){.tid = tid, .last = ts, .base = ts, .stack = stack, .cap = cap};
    e->nthreads++;
    if (e->nthreads * 2 > e->thash_cap) {
        if (!thash_rebuild(e, e->thash_cap ? e->thash_cap * 2 : 32)) return -1;
    } else {
        size_t k = mix(tid) & (e->thash_cap - 1);
        while (e->thash[k]) k = (k + 1) & (e->thash_cap - 1);
        e->thash[k] = (uint32_t)e->nthreads;
    }
    return (int64_t)e->nthreads - 1;
}

static void flush_run(chunk_enc *e) {
    if (e->run_thread < 0) return;
    bbuf_u8(&e->rec, TAG_REPEAT);
    bbuf_varint(&e->rec, (uint64_t)e->run_thread);
    bbuf_varint(&e->rec, e->run_count);
    bbuf_put(&e->rec, e->run.p, e->run.len);
    e->run.len = 0;
    e->run_thread = -1;
    e->run_count = 0;
}

static void first_record(chunk_enc *e, int64_t ts) {
    if (e->have_first) return;
    e->have_first = true;
    e->t_first = ts;
}

/* How many outermost frames two stacks share. Stacks mostly change by a few
 * frames at the top, so try the longest candidates with memcmp (vectorised)
 * first, and fall back to a scan when the stacks differ deeply. */
static uint32_t shared_suffix(const uint32_t *a, uint32_t da, const uint32_t *b, uint32_t db) {
    uint32_t l = LUMIO_MIN(da, db);
    for (int tries = 0; tries < 4 && l > 0; tries++, l--)
        if (memcmp(a + da - l, b + db - l, l * sizeof(uint32_t)) == 0) return l;
    uint32_t c = 0;
    while (c < da && c < db && a[da - 1 - c] == b[db - 1 - c]) c++;
    return c;
}

int lumio__chunk_enc_sample(chunk_enc *e, const gtables *g, uint64_t ts, uint64_t tid,
                            uint8_t status, const uint32_t *ids, uint32_t depth) {
    if (depth > LUMIO_STREAM_MAX_DEPTH) return -EINVAL;
    first_record(e, (int64_t)ts);
    int64_t ti = thread_of(e, tid, (int64_t)ts);
    if (ti < 0) return -ENOMEM;
    ethread *t = &e->threads[ti];
    int64_t dt = (int64_t)ts - t->last;
    t->last = (int64_t)ts;
    bool same =
        depth == t->depth && (depth == 0 || memcmp(ids, t->stack, depth * sizeof(uint32_t)) == 0);
    e->samples++;
    if (same) { /* a repeat: join the open run, or start one */
        if (e->run_thread != ti) {
            flush_run(e);
            e->run_thread = ti;
        }
        bbuf_varint(&e->run, zigzag(dt));
        bbuf_u8(&e->run, status);
        e->run_count++;
        return e->run.oom || e->rec.oom ? -ENOMEM : 0;
    }
    uint32_t pd = t->depth, common = shared_suffix(ids, depth, t->stack, pd);
    uint32_t pop = pd - common, push = depth - common;
    for (uint32_t i = 0; i < push; i++) /* the shared frames were checked before */
        if (ids[i] >= g->nframes) {
            e->samples--;
            t->last -= dt;
            return -EINVAL;
        }
    flush_run(e);
    bbuf *r = &e->rec;
    bbuf_u8(r, common == 0 ? TAG_FULL : pop == 0 ? TAG_PUSH : TAG_POP_PUSH);
    bbuf_varint(r, (uint64_t)ti);
    bbuf_varint(r, zigzag(dt));
    bbuf_u8(r, status);
    if (common != 0 && pop != 0) bbuf_varint(r, pop);
    bbuf_varint(r, push);
    for (uint32_t i = 0; i < push; i++) {
        uint32_t l;
        if (!frame_local(e, ids[i], &l)) return -ENOMEM;
        bbuf_varint(r, l);
    }
    if (depth > t->cap) {
        uint32_t c = t->cap ? t->cap : 64;
        while (c < depth) c *= 2;
        uint32_t *s = realloc(t->stack, c * sizeof(uint32_t));
        if (!s) return -ENOMEM;
        t->stack = s;
        t->cap = c;
    }
    if (depth) memcpy(t->stack, ids, depth * sizeof(uint32_t));
    t->depth = depth;
    return r->oom ? -ENOMEM : 0;
}

int lumio__chunk_enc_meta(chunk_enc *e, uint64_t ts, uint32_t key_sid, uint32_t value_sid) {
    first_record(e, (int64_t)ts);
    flush_run(e);
    uint32_t k, v;
    if (!string_local(e, key_sid, &k) || !string_local(e, value_sid, &v)) return -ENOMEM;
    bbuf_u8(&e->rec, TAG_META);
    bbuf_varint(&e->rec, zigzag((int64_t)ts - e->t_first));
    bbuf_varint(&e->rec, k);
    bbuf_varint(&e->rec, v);
    e->records++;
    return e->rec.oom ? -ENOMEM : 0;
}

/* strings, frames and threads tables, then the records. */
static int build_payload(chunk_enc *e, const gtables *g, bbuf *p) {
    uint32_t *fl = malloc((e->nlfrm ? e->nlfrm : 1) * 2 * sizeof(uint32_t));
    if (!fl) return -ENOMEM;
    for (size_t i = 0; i < e->nlfrm; i++) { /* strings of the frames, before writing them */
        uint32_t gid = e->lfrm[i];
        if (!string_local(e, g->frame_fn[gid], &fl[2 * i]) ||
            !string_local(e, g->frame_file[gid], &fl[2 * i + 1])) {
            free(fl);
            return -ENOMEM;
        }
    }
    bbuf_varint(p, e->nlstr);
    for (size_t i = 0; i < e->nlstr; i++) {
        uint32_t sid = e->lstr[i];
        bbuf_varint(p, g->str_len[sid]);
        bbuf_put(p, g->strings[sid], g->str_len[sid]);
    }
    bbuf_varint(p, e->nlfrm);
    for (size_t i = 0; i < e->nlfrm; i++) {
        bbuf_varint(p, fl[2 * i]);
        bbuf_varint(p, fl[2 * i + 1]);
        bbuf_varint(p, g->frame_line[e->lfrm[i]]);
    }
    free(fl);
    bbuf_varint(p, e->nthreads);
    for (size_t i = 0; i < e->nthreads; i++) {
        bbuf_varint(p, e->threads[i].tid);
        bbuf_varint(p, zigzag(e->threads[i].base - e->t_first));
    }
    bbuf_put(p, e->rec.p, e->rec.len);
    return p->oom ? -ENOMEM : 0;
}

static void reset(chunk_enc *e) {
    e->gen++;
    if (e->gen == 0) { /* wrapped: clear the maps once */
        if (e->str_gen) memset(e->str_gen, 0, e->str_cap * sizeof(uint32_t));
        if (e->frm_gen) memset(e->frm_gen, 0, e->frm_cap * sizeof(uint32_t));
        e->gen = 1;
    }
    e->nlstr = e->nlfrm = 0;
    for (size_t i = 0; i < e->nthreads; i++) e->threads[i].depth = 0;
    e->nthreads = 0;
    if (e->thash) memset(e->thash, 0, e->thash_cap * sizeof(uint32_t));
    e->rec.len = 0;
    e->have_first = false;
    e->samples = e->records = 0;
    e->seq++;
}

int lumio__chunk_enc_seal(chunk_enc *e, const gtables *g, int zstd_level, bbuf *out) {
    flush_run(e);
    bbuf raw = {0};
    int rc = build_payload(e, g, &raw);
    if (rc < 0) goto done;
    if (raw.len > CHUNK_MAX_LEN) {
        rc = -E2BIG;
        goto done;
    }
    out->len = 0;
    size_t bound = zstd_level ? ZSTD_compressBound(raw.len) : raw.len;
    if (!bbuf_reserve(out, CHUNK_HDR + bound)) {
        rc = -ENOMEM;
        goto done;
    }
    uint8_t *h = out->p;
    size_t stored = raw.len;
    if (zstd_level) {
        size_t z = ZSTD_compress(h + CHUNK_HDR, bound, raw.p, raw.len, zstd_level);
        if (ZSTD_isError(z)) {
            rc = LUMIO_E_CODEC;
            goto done;
        }
        stored = z;
    } else {
        memcpy(h + CHUNK_HDR, raw.p, raw.len);
    }
    memcpy(h, lumio__chunk_magic, 4);
    h[4] = 1;
    h[5] = zstd_level ? 1 : 0;
    h[6] = h[7] = 0;
    put_le32(h + 8, (uint32_t)stored);
    put_le32(h + 12, (uint32_t)raw.len);
    put_le64(h + 16, e->seq);
    put_le32(h + 24, e->samples);
    put_le32(h + 28, e->records);
    put_le64(h + 32, (uint64_t)e->t_first);
    XXH3_state_t *st = XXH3_createState();
    if (!st) {
        rc = -ENOMEM;
        goto done;
    }
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, h + 4, 36);
    XXH3_64bits_update(st, h + CHUNK_HDR, stored);
    put_le64(h + 40, XXH3_64bits_digest(st));
    XXH3_freeState(st);
    out->len = CHUNK_HDR + stored;
    reset(e);
    rc = 0;
done:
    bbuf_free(&raw);
    return rc;
}
