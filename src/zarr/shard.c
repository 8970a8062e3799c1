/* v3 sharding_indexed. A shard holds inner chunks, each encoded on its own,
 * and an index of (offset, nbytes) pairs, little endian, in C order of the
 * inner grid, optionally followed by its crc32c; a missing inner chunk is
 * (2^64-1, 2^64-1). A region read fetches each shard's index with one ranged
 * read, then the inner chunks it needs as ranges of one op per shard, which
 * the ring coalesces; writes rebuild whole shards. */
#include "zarr/zarr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MISSING UINT64_MAX

void lumio__zarr_inner_meta(const zarr_meta *m, zarr_meta *im) {
    *im = *m;
    im->sharded = false;
    memcpy(im->chain, m->ichain, sizeof im->chain);
    im->nchain = m->nichain;
    memcpy(im->info.chunks, m->inner, sizeof im->info.chunks);
    uint64_t b = m->info.itemsize, n = 1;
    im->grid_big = false;
    for (unsigned d = 0; d < m->info.ndim; d++) {
        b *= m->inner[d]; /* inner divides the shard, whose size was checked */
        const uint64_t s = m->info.shape[d], g = s / m->inner[d] + (s % m->inner[d] != 0);
        if (g == 0) {
            n = 0;
            im->grid_big = false;
        } else if (n && __builtin_mul_overflow(n, g, &n)) {
            n = UINT64_MAX;
            im->grid_big = true;
        }
    }
    im->chunk_bytes = b;
    im->info.nchunks = n;
}

static uint64_t index_bytes(const zarr_meta *m) {
    return m->ninner * 16 + (m->index_crc ? 4 : 0);
}

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* The index into entries (2 x ninner); its checksum checked. */
static int parse_index(const zarr_meta *m, const uint8_t *p, size_t len, uint64_t *entries,
                       char *err, size_t errlen) {
    uint64_t n = index_bytes(m);
    if (len != n) {
        snprintf(err, errlen, "shard index: %zu bytes, expected %llu", len, (unsigned long long)n);
        return LUMIO_E_FORMAT;
    }
    if (m->index_crc) {
        uint32_t want = (uint32_t)p[n - 4] | (uint32_t)p[n - 3] << 8 | (uint32_t)p[n - 2] << 16 |
                        (uint32_t)p[n - 1] << 24;
        uint32_t got = lumio__zarr_crc32c(p, n - 4);
        if (want != got) {
            snprintf(err, errlen, "shard index: crc32c %08x, stored %08x", got, want);
            return LUMIO_E_CHECKSUM;
        }
    }
    for (uint64_t i = 0; i < 2 * m->ninner; i++) entries[i] = le64(p + 8 * i);
    return 0;
}

/* A region covering one whole shard buffer (C order), over the inner grid. */
static int shard_region(region *x, zarr_meta *sm, const zarr_meta *m, uint64_t *zero,
                        uint8_t *buf) {
    lumio__zarr_inner_meta(m, sm);
    memcpy(sm->info.shape, m->info.chunks, sizeof sm->info.shape);
    memset(zero, 0, LUMIO_ZARR_MAX_DIMS * sizeof *zero);
    return lumio__region_init(x, NULL, sm, zero, m->info.chunks, buf);
}

int lumio__zarr_decode_shard(const zarr_meta *m, const uint8_t *src, size_t len, uint8_t *out,
                             char *err, size_t errlen) {
    uint64_t ib = index_bytes(m);
    if (len < ib) {
        snprintf(err, errlen, "shard: %zu bytes, shorter than its index", len);
        return LUMIO_E_FORMAT;
    }
    uint64_t *entries = malloc(2 * m->ninner * sizeof *entries);
    zarr_meta sm;
    region x;
    uint64_t zero[LUMIO_ZARR_MAX_DIMS];
    uint8_t *tmp = NULL;
    bool have_region = false;
    int rc = entries ? 0 : -ENOMEM;
    if (rc == 0)
        rc = parse_index(m, m->index_at_start ? src : src + len - ib, ib, entries, err, errlen);
    if (rc == 0) have_region = (rc = shard_region(&x, &sm, m, zero, out)) == 0;
    if (rc == 0 && !(tmp = malloc(sm.chunk_bytes))) rc = -ENOMEM;
    for (uint64_t i = 0; rc == 0 && i < m->ninner; i++) {
        uint64_t off = entries[2 * i], nb = entries[2 * i + 1];
        uint64_t cc[LUMIO_ZARR_MAX_DIMS];
        lumio__region_chunk(&x, i, cc);
        if (off == MISSING && nb == MISSING) {
            lumio__region_to_buf(&x, cc, NULL);
            continue;
        }
        if (off > len || nb > len - off) {
            snprintf(err, errlen,
                     "shard index: inner chunk %llu at %llu+%llu is past the shard's %zu bytes",
                     (unsigned long long)i, (unsigned long long)off, (unsigned long long)nb, len);
            rc = LUMIO_E_FORMAT;
            break;
        }
        rc = lumio__zarr_decode(&sm, src + off, nb, tmp, err, errlen);
        if (rc == 0) lumio__region_to_buf(&x, cc, tmp);
    }
    if (have_region) lumio__region_fini(&x);
    free(tmp);
    free(entries);
    return rc;
}

static bool all_fill(const zarr_meta *m, const uint8_t *p, uint64_t n) {
    unsigned isz = m->info.itemsize;
    for (uint64_t i = 0; i < n; i += isz)
        if (memcmp(p + i, m->info.fill, isz)) return false;
    return true;
}

int lumio__zarr_encode_shard(const zarr_meta *m, uint8_t *shard, uint8_t **out, size_t *outlen,
                             char *err, size_t errlen) {
    uint64_t ib = index_bytes(m);
    uint64_t *entries = malloc(2 * m->ninner * sizeof *entries);
    uint8_t **parts = calloc(m->ninner, sizeof *parts);
    zarr_meta sm;
    region x;
    uint64_t zero[LUMIO_ZARR_MAX_DIMS];
    uint8_t *tmp = NULL;
    bool have_region = false;
    int rc = entries && parts ? 0 : -ENOMEM;
    if (rc == 0) have_region = (rc = shard_region(&x, &sm, m, zero, shard)) == 0;
    if (rc == 0 && !(tmp = malloc(sm.chunk_bytes))) rc = -ENOMEM;
    uint64_t total = ib;
    for (uint64_t i = 0; rc == 0 && i < m->ninner; i++) {
        uint64_t cc[LUMIO_ZARR_MAX_DIMS];
        lumio__region_chunk(&x, i, cc);
        lumio__zarr_fill_chunk(&sm, tmp);
        lumio__region_to_chunk(&x, cc, tmp);
        if (all_fill(&sm, tmp, sm.chunk_bytes)) { /* not stored: reads as the fill value */
            entries[2 * i] = entries[2 * i + 1] = MISSING;
            continue;
        }
        size_t n;
        rc = lumio__zarr_encode(&sm, tmp, &parts[i], &n, err, errlen);
        entries[2 * i] = total - (m->index_at_start ? 0 : ib); /* fixed up below */
        entries[2 * i + 1] = n;
        total += n;
    }
    uint8_t *buf = rc == 0 ? malloc(total) : NULL;
    if (rc == 0 && !buf) rc = -ENOMEM;
    if (rc == 0) {
        uint64_t at = m->index_at_start ? ib : 0;
        for (uint64_t i = 0; i < m->ninner; i++) {
            if (!parts[i]) continue;
            entries[2 * i] = at;
            memcpy(buf + at, parts[i], entries[2 * i + 1]);
            at += entries[2 * i + 1];
        }
        uint8_t *idx = m->index_at_start ? buf : buf + total - ib;
        for (uint64_t i = 0; i < 2 * m->ninner; i++) put_le64(idx + 8 * i, entries[i]);
        if (m->index_crc) {
            uint32_t c = lumio__zarr_crc32c(idx, ib - 4);
            for (int k = 0; k < 4; k++) idx[ib - 4 + k] = (uint8_t)(c >> (8 * k));
        }
        *out = buf;
        *outlen = total;
    }
    for (uint64_t i = 0; parts && i < m->ninner; i++) free(parts[i]);
    if (have_region) lumio__region_fini(&x);
    free(parts);
    free(entries);
    free(tmp);
    return rc;
}
/* ---- region reads with ranged reads -------------------------------------------- */

/* An inner chunk that landed: its shard exists (its index was read). */
static uint64_t index_hash(const uint64_t *entries, uint64_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a over the words */
    for (uint64_t i = 0; i < n; i++) h = (h ^ entries[i]) * 0x100000001b3ull;
    return h;
}

/* The shard's index again, read by the same op as its inner chunks (so
 * from the same file, or the same version of the object): if it is not the
 * index the reads were planned with, the shard was replaced in between, and
 * the inner chunks may be another version's bytes. */
static int check_index(region *x, lumio_completion *c) {
    const lumio_zarr *z = x->z;
    const zarr_meta *m = &z->m;
    uint64_t s = c->user_data - x->nchunks;
    uint64_t *e = malloc(2 * m->ninner * sizeof *e);
    char why[256], text[1200];
    int rc = e ? parse_index(m, c->data, c->length, e, why, sizeof why) : -ENOMEM;
    /* It parsed when the read was planned: now unreadable or different, it
     * is another version of the shard. */
    if (rc != -ENOMEM && (rc || index_hash(e, 2 * m->ninner) != x->shard_check[2 * s + 1])) {
        rc = LUMIO_E_CHANGED;
        snprintf(text, sizeof text,
                 "%s: the shard was replaced while it was read (its index is not the one the "
                 "read was planned with); read again",
                 c->path ? c->path : "shard");
        if (z->index_cache) lumio__zarr_cache_drop(z->index_cache, x->shard_check[2 * s]);
        /* The cause, over whatever its inner chunks' bytes made the decoder say. */
        pthread_mutex_lock(&x->mu);
        x->error = rc;
        snprintf(x->err, sizeof x->err, "%.1000s", text);
        pthread_mutex_unlock(&x->mu);
    } else if (rc) {
        lumio__region_error(x, rc, "out of memory");
    }
    free(e);
    lumio_buffer_release(c->buffer);
    c->buffer = NULL;
    c->data = NULL;
    return rc;
}

static int on_inner(void *arg, lumio_completion *c) {
    region *x = arg;
    if (c->result < 0) return c->result;
    if (c->user_data >= x->nchunks) return check_index(x, c);
    return lumio__zarr_decode_landed(x, c, NULL);
}

/* Submit a group of ops; failures go to the region's error. */
static int submit(lumio_zarr *z, region *x, lumio_op *ops, size_t n, lumio_group_options *go,
                  uint64_t *g) {
    int rc = lumio_ring_submit(z->ring, ops, n, go, g);
    if (rc < 0) lumio__region_error(x, rc, lumio_ring_last_error(z->ring, LUMIO__ERRBUF));
    return rc;
}

/* Collect a group's completions to its end. */
static int drain(lumio_zarr *z, region *x, uint64_t g, void (*each)(void *, lumio_completion *),
                 void *arg) {
    lumio_completion c[64];
    int got;
    while ((got = lumio_ring_wait(z->ring, g, c, 64, 1)) > 0)
        for (int i = 0; i < got; i++) {
            if (each)
                each(arg, &c[i]);
            else if (c[i].result < 0)
                lumio__region_error(x, c[i].result, lumio_ring_last_error(z->ring, LUMIO__ERRBUF));
            lumio_buffer_release(c[i].buffer);
        }
    if (got < 0) {
        lumio__region_error(x, got, lumio_ring_last_error(z->ring, LUMIO__ERRBUF));
        lumio__zarr_abandon(z, g);
    }
    return x->error;
}

/* The shards a region touches: their grid span, and the j-th of them. */
typedef struct shard_span {
    uint64_t lo[LUMIO_ZARR_MAX_DIMS], count[LUMIO_ZARR_MAX_DIMS], n;
} shard_span;

static void span_init(shard_span *sp, const zarr_meta *m, const uint64_t *start,
                      const uint64_t *shape) {
    sp->n = 1;
    for (unsigned d = 0; d < m->info.ndim; d++) {
        sp->lo[d] = start[d] / m->info.chunks[d];
        sp->count[d] = (start[d] + shape[d] - 1) / m->info.chunks[d] - sp->lo[d] + 1;
        sp->n *= sp->count[d];
    }
}

static void span_shard(const shard_span *sp, unsigned nd, uint64_t i, uint64_t *sc) {
    for (unsigned d = nd; d-- > 0;) {
        sc[d] = sp->lo[d] + i % sp->count[d];
        i /= sp->count[d];
    }
}

/* Indexes being fetched for slots 0..n of a batch of shards. */
typedef struct index_batch {
    lumio_zarr *z;
    region *x;
    zarr_cache *ic;  /* where fetched indexes are kept too (NULL: nowhere) */
    uint64_t ic_gen; /* its generation when they were asked for */
    const uint64_t *keys;
    uint64_t *entries; /* 2 x ninner per slot */
    bool *missing;
} index_batch;

static void on_index(void *arg, lumio_completion *c) {
    index_batch *b = arg;
    const zarr_meta *m = &b->z->m;
    uint64_t s = c->user_data, *e = b->entries + s * 2 * m->ninner;
    if (c->result == -ENOENT) {
        b->missing[s] = true;
        if (b->ic) lumio__zarr_cache_add(b->ic, b->keys[s], NULL, 0, b->ic_gen);
        return;
    }
    if (c->result < 0) {
        lumio__region_error(b->x, c->result, lumio_ring_last_error(b->z->ring, LUMIO__ERRBUF));
        return;
    }
    char why[256], text[1024];
    int rc = parse_index(m, c->data, c->length, e, why, sizeof why);
    if (rc) {
        snprintf(text, sizeof text, "%s: %s", c->path, why);
        lumio__region_error(b->x, rc, text);
        return;
    }
    size_t bytes = 2 * m->ninner * sizeof *e;
    uint8_t *copy = b->ic ? malloc(bytes) : NULL;
    if (copy) {
        memcpy(copy, e, bytes);
        lumio__zarr_cache_add(b->ic, b->keys[s], copy, bytes, b->ic_gen);
    }
}

/* Slot s's index from the cache: true if it was there. */
static bool index_cached(zarr_cache *ic, const zarr_meta *m, uint64_t key, uint64_t *entries,
                         bool *missing) {
    centry *pin;
    uint64_t bytes;
    const uint8_t *d = ic ? lumio__zarr_cache_pin(ic, key, &bytes, &pin) : NULL;
    if (!d) return false;
    *missing = bytes == 0;
    if (bytes) memcpy(entries, d, 2 * m->ninner * sizeof *entries);
    lumio__zarr_cache_unpin(ic, pin);
    return true;
}

/* The index reads of a batch of n shards (those not in the cache) as one
 * group; *g its id, false when every index was cached. */
static int submit_indexes(lumio_zarr *z, region *x, const shard_span *sp, uint64_t first,
                          uint64_t n, index_batch *b, uint64_t *keys, char (*paths)[1024],
                          lumio_op *ops, lumio_range *iranges, uint64_t *g, bool *pending) {
    const zarr_meta *m = &z->m;
    uint64_t ib = index_bytes(m);
    size_t nops = 0;
    *pending = false;
    for (uint64_t s = 0; s < n; s++) {
        uint64_t sc[LUMIO_ZARR_MAX_DIMS];
        span_shard(sp, m->info.ndim, first + s, sc);
        char key[256];
        lumio__zarr_chunk_key(z, sc, key, sizeof key);
        snprintf(paths[s], sizeof paths[s], "%s/%s", z->base, key);
        keys[s] = lumio__zarr_chunk_linear(m, sc);
        b->missing[s] = false;
        if (index_cached(b->ic, m, keys[s], b->entries + s * 2 * m->ninner, &b->missing[s]))
            continue;
        iranges[nops] = (lumio_range){
            .offset = m->index_at_start ? 0 : -(int64_t)ib, .length = ib, .user_data = s};
        ops[nops] = (lumio_op){.kind = LUMIO_OP_GET,
                               .path = paths[s],
                               .ranges = &iranges[nops],
                               .nranges = 1,
                               .user_data = s};
        nops++;
    }
    if (!nops) return 0;
    lumio_group_options go;
    go = (lumio_group_options){0};
    int rc = submit(z, x, ops, nops, &go, g);
    *pending = rc == 0;
    return rc;
}

/* The inner chunks of the region in a batch of n shards whose indexes are
 * in b, as ranges of one op per shard; fill for those never written. */
/* The inner chunks of shard sc that the region touches: their grid
 * coordinates from lo to below hi; false when none. */
static bool shard_part(const zarr_meta *m, const region *x, const uint64_t *sc, uint64_t *lo,
                       uint64_t *hi) {
    for (unsigned d = 0; d < m->info.ndim; d++) {
        uint64_t per = m->info.chunks[d] / m->inner[d];
        lo[d] = LUMIO_MAX(sc[d] * per, x->lo[d]);
        hi[d] = LUMIO_MIN(sc[d] * per + per, x->lo[d] + x->count[d]);
        if (lo[d] >= hi[d]) return false;
    }
    return true;
}

/* The read of inner chunk cc (number q in its shard) into ranges[*nr], or
 * its fill, or nothing when cached. */
static int plan_one(region *x, const zarr_meta *m, const index_batch *b, uint64_t s,
                    const uint64_t *cc, uint64_t q, const char *path, lumio_range *ranges,
                    size_t *nr) {
    if (lumio__zarr_cached(x, lumio__region_index(x, cc))) return 0;
    const uint64_t *e = b->entries + s * 2 * m->ninner;
    uint64_t off = b->missing[s] ? MISSING : e[2 * q];
    uint64_t nb = b->missing[s] ? MISSING : e[2 * q + 1];
    if (off == MISSING && nb == MISSING) {
        lumio__region_to_buf(x, cc, NULL);
        return 0;
    }
    if (off > INT64_MAX || nb > INT64_MAX - off) {
        char text[1200];
        snprintf(text, sizeof text, "%s: shard index entry %llu is out of range", path,
                 (unsigned long long)q);
        lumio__region_error(x, LUMIO_E_FORMAT, text);
        return LUMIO_E_FORMAT;
    }
    ranges[(*nr)++] = (lumio_range){
        .offset = (int64_t)off, .length = nb, .user_data = lumio__region_index(x, cc)};
    return 0;
}

static int plan_inner(lumio_zarr *z, region *x, const shard_span *sp, uint64_t first, uint64_t n,
                      const index_batch *b, char (*paths)[1024], lumio_range *ranges,
                      lumio_op *dops, size_t *nops) {
    const zarr_meta *m = &z->m;
    unsigned nd = m->info.ndim;
    size_t nr = 0;
    *nops = 0;
    for (uint64_t s = 0; s < n; s++) {
        uint64_t sc[LUMIO_ZARR_MAX_DIMS], lo[LUMIO_ZARR_MAX_DIMS], hi[LUMIO_ZARR_MAX_DIMS];
        uint64_t cc[LUMIO_ZARR_MAX_DIMS];
        span_shard(sp, nd, first + s, sc);
        size_t r0 = nr;
        /* Only the inner chunks the region touches (not all of a shard's,
         * which may be millions), in the shard's C order. */
        bool any = shard_part(m, x, sc, lo, hi);
        memcpy(cc, lo, sizeof cc);
        while (any) {
            uint64_t q = 0;
            for (unsigned d = 0; d < nd; d++) {
                uint64_t per = m->info.chunks[d] / m->inner[d];
                q = q * per + (cc[d] - sc[d] * per);
            }
            int rc = plan_one(x, m, b, s, cc, q, paths[s], ranges, &nr);
            if (rc) return rc;
            unsigned d = nd;
            while (d-- > 0) {
                if (++cc[d] < hi[d]) break;
                cc[d] = lo[d];
            }
            any = d != (unsigned)-1;
        }
        if (nr > r0) {
            /* And the index once more, to check it is the one planned with. */
            const uint64_t *e = b->entries + s * 2 * m->ninner;
            uint64_t ib = index_bytes(m), j = first + s;
            ranges[nr++] = (lumio_range){.offset = m->index_at_start ? 0 : -(int64_t)ib,
                                         .length = ib,
                                         .user_data = x->nchunks + j};
            x->shard_check[2 * j] = b->keys[s];
            x->shard_check[2 * j + 1] = index_hash(e, 2 * m->ninner);
            dops[(*nops)++] = (lumio_op){
                .kind = LUMIO_OP_GET, .path = paths[s], .ranges = &ranges[r0], .nranges = nr - r0};
        }
    }
    return 0;
}

/* Scratch for reading the indexes and planning the inner reads of up to n
 * shards at a time. */
typedef struct shard_plan {
    uint64_t *entries, *keys;
    bool *missing;
    lumio_op *ops, *dops;
    lumio_range *iranges, *ranges;
    char (*paths)[1024];
} shard_plan;

static int plan_alloc(shard_plan *p, const zarr_meta *m, uint64_t n, uint64_t region_chunks) {
    memset(p, 0, sizeof *p);
    /* n shards of a region, of up to ZARR_INNER_LIMIT inner chunks each:
     * calloc checks each count times its size; the products are checked.
     * A range per inner chunk the region touches, and per shard its index. */
    uint64_t ne, nr;
    if (__builtin_mul_overflow(n, 2 * m->ninner, &ne)) return -ENOMEM;
    if (__builtin_mul_overflow(n, m->ninner + 1, &nr)) nr = UINT64_MAX;
    if (region_chunks < UINT64_MAX - n) nr = LUMIO_MIN(nr, region_chunks + n);
    p->entries = calloc(LUMIO_MAX(ne, 1), sizeof *p->entries);
    p->keys = calloc(LUMIO_MAX(n, 1), sizeof *p->keys);
    p->missing = calloc(LUMIO_MAX(n, 1), sizeof *p->missing);
    p->ops = calloc(LUMIO_MAX(n, 1), sizeof *p->ops);
    p->dops = calloc(LUMIO_MAX(n, 1), sizeof *p->dops);
    p->iranges = calloc(LUMIO_MAX(n, 1), sizeof *p->iranges);
    p->ranges = calloc(LUMIO_MAX(nr, 1), sizeof *p->ranges);
    p->paths = calloc(LUMIO_MAX(n, 1), sizeof *p->paths);
    return p->entries && p->keys && p->missing && p->ops && p->dops && p->iranges && p->ranges &&
                   p->paths
               ? 0
               : -ENOMEM;
}

static void plan_free(shard_plan *p) {
    free(p->entries);
    free(p->keys);
    free(p->missing);
    free(p->ops);
    free(p->dops);
    free(p->iranges);
    free(p->ranges);
    free(p->paths);
}

int lumio__zarr_submit_sharded(lumio_zarr *z, region *x, zarr_cache *ic, uint64_t *g) {
    shard_span sp;
    span_init(&sp, &z->m, x->start, x->shape);
    shard_plan p;
    int rc = plan_alloc(&p, &z->m, sp.n, x->nchunks);
    if (rc == 0 && !(x->shard_check = calloc(LUMIO_MAX(sp.n, 1), 2 * sizeof *x->shard_check)))
        rc = -ENOMEM;
    index_batch b = {
        .z = z, .x = x, .ic = ic, .keys = p.keys, .entries = p.entries, .missing = p.missing};
    if (ic) b.ic_gen = lumio__zarr_cache_gen(ic);
    uint64_t ig;
    bool pending = false;
    if (rc == 0)
        rc = submit_indexes(z, x, &sp, 0, sp.n, &b, p.keys, p.paths, p.ops, p.iranges, &ig,
                            &pending);
    if (rc == 0 && pending) rc = drain(z, x, ig, on_index, &b);
    size_t nops = 0;
    if (rc == 0) rc = plan_inner(z, x, &sp, 0, sp.n, &b, p.paths, p.ranges, p.dops, &nops);
    if (rc == 0) {
        lumio_group_options go;
        go = (lumio_group_options){0};
        go.compute = on_inner;
        go.compute_arg = x;
        rc = submit(z, x, p.dops, nops, &go, g);
    }
    if (rc == -ENOMEM && !x->error) lumio__region_error(x, rc, "out of memory");
    plan_free(&p);
    return rc;
}

static int read_sharded_once(lumio_zarr *z, const uint64_t *start, const uint64_t *shape,
                             void *buf) {
    const zarr_meta *m = &z->m;
    region xr, *x = &xr;
    int rc = lumio__region_init(x, z, &z->im, start, shape, buf);
    if (rc) return rc < 0 ? rc : 0;
    shard_span sp;
    span_init(&sp, m, start, shape);
    /* 16 shards a batch, fewer where their plans (every index entry, a
     * range per inner chunk) would take more than 64 MiB. */
    const uint64_t per_shard = m->ninner * (2 * sizeof(uint64_t) + sizeof(lumio_range));
    const uint64_t BATCH = LUMIO_MAX(1, LUMIO_MIN(16, (64u << 20) / per_shard));
    shard_plan p;
    rc = plan_alloc(&p, m, BATCH, x->nchunks);
    if (rc == 0 && !(x->shard_check = calloc(LUMIO_MAX(sp.n, 1), 2 * sizeof *x->shard_check)))
        rc = -ENOMEM;
    index_batch b = {.z = z,
                     .x = x,
                     .ic = z->index_cache,
                     .ic_gen = z->index_cache ? lumio__zarr_cache_gen(z->index_cache) : 0,
                     .keys = p.keys,
                     .entries = p.entries,
                     .missing = p.missing};
    /* Batches of shards, pipelined: the indexes of batch k are fetched and
     * its inner reads planned while the inner chunks of batches k-1 and k-2
     * are read and decoded (the ring copies the ops it is given, so the plan
     * is reused). */
    uint64_t data_group[2];
    unsigned pending = 0; /* data groups in flight, oldest first */
    uint64_t nbatches = (sp.n + BATCH - 1) / BATCH;
    for (uint64_t k = 0; rc == 0 && k < nbatches; k++) {
        uint64_t first = k * BATCH, n = LUMIO_MIN(BATCH, sp.n - first), ig;
        bool fetching;
        if ((rc = submit_indexes(z, x, &sp, first, n, &b, p.keys, p.paths, p.ops, p.iranges, &ig,
                                 &fetching)) < 0)
            break;
        if (fetching && (rc = drain(z, x, ig, on_index, &b))) break;
        size_t nops = 0;
        if ((rc = plan_inner(z, x, &sp, first, n, &b, p.paths, p.ranges, p.dops, &nops))) break;
        if (pending == 2) {
            pending--;
            rc = drain(z, x, data_group[0], NULL, NULL);
            data_group[0] = data_group[1];
            if (rc) break;
        }
        lumio_group_options go;
        go = (lumio_group_options){0};
        go.compute = on_inner;
        go.compute_arg = x;
        if ((rc = submit(z, x, p.dops, nops, &go, &data_group[pending])) < 0) break;
        pending++;
    }
    /* The rest collected; after an error, what is in flight given up on. */
    for (unsigned i = 0; i < pending; i++) {
        if (rc) {
            lumio__zarr_abandon(z, data_group[i]);
            continue;
        }
        rc = drain(z, x, data_group[i], NULL, NULL);
    }
    if (rc == -ENOMEM && !x->error) lumio__region_error(x, rc, "out of memory");
    if (rc < 0 && x->error) snprintf(z->err, sizeof z->err, "%.1000s", x->err);
    lumio__region_fini(x);
    plan_free(&p);
    return rc;
}

int lumio__zarr_read_sharded(lumio_zarr *z, const uint64_t *start, const uint64_t *shape,
                             void *buf) {
    /* A shard replaced between its index read and its inner reads: once
     * more, from a fresh index. */
    int rc = read_sharded_once(z, start, shape, buf);
    if (rc == LUMIO_E_CHANGED) rc = read_sharded_once(z, start, shape, buf);
    return rc;
}
