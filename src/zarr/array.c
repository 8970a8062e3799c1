/* Arrays: the public open and read API. Opening reads the metadata from any
 * store (store.c) and sets up the caches; a read hands the region to the
 * fetch machinery (fetch.c, or shard.c for a sharded array); a batch keeps
 * many regions in the ring at once. */
#include "zarr/zarr.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static __thread char open_error[1024];

char *lumio__zarr_open_error(void) {
    return open_error;
}

/* The text of a failure is made in z->err (or the thread's open_error) by
 * the thread using the array, then published at the public call's return,
 * redacted, where any thread may read it (docs/API.md). */
int lumio__zarr_begin(lumio_zarr *z) {
    if (z)
        z->err[0] = 0;
    else
        open_error[0] = 0;
    return 0;
}

int lumio__zarr_published(lumio_zarr *z, int rc) {
    if (rc >= 0) return rc;
    const char *text = z ? z->err : open_error;
    if (text[0])
        lumio__err_set(z ? &z->e : NULL, "%s", text);
    else /* a failure that said nothing more (out of memory) */
        lumio__err_set(z ? &z->e : NULL, "%s: %s", z ? z->base : "zarr", lumio_strerror(rc));
    return rc;
}

char *lumio_zarr_last_error(const lumio_zarr *z, char *buf, size_t len) {
    return lumio__err_get(z ? &z->e : NULL, buf, len);
}

void lumio_zarr_get_info(const lumio_zarr *z, lumio_zarr_info *info) {
    *info = z->m.info;
    lumio__zarr_fill_to_text(info, info->fill_value, sizeof info->fill_value);
}

void lumio_zarr_get_stats(const lumio_zarr *z, lumio_zarr_stats *s) {
    memset(s, 0, sizeof *s);
    if (z->cache)
        lumio__zarr_cache_stats(z->cache, &s->cache_hits, &s->cache_misses, &s->cache_bytes);
}

/* ---- opening -------------------------------------------------------------------- */

int lumio_zarr_open(lumio_zarr **out, const char *location, const lumio_zarr_options *opts) {
    if (!out) return -EINVAL;
    return lumio__zarr_published(
        NULL, lumio__zarr_begin(NULL) ? 0 : lumio__zarr_open_meta(out, location, opts, NULL, 0));
}

/* A new handle for the array at location (its base without trailing '/'). */
static int new_array(lumio_zarr **out, const char *location) {
    lumio_zarr *z = calloc(1, sizeof *z);
    if (!z || !(z->base = strdup(location))) {
        snprintf(open_error, sizeof open_error, "%s: out of memory", location);
        free(z);
        return -ENOMEM;
    }
    size_t bl = strlen(z->base);
    while (bl > 1 && z->base[bl - 1] == '/') z->base[--bl] = 0;
    if (bl > 700) { /* keys are joined to it in fixed buffers of 1 KiB */
        snprintf(open_error, sizeof open_error, "%.100s...: a location longer than 700 bytes",
                 location);
        free(z->base);
        free(z);
        return -ENAMETOOLONG;
    }
    z->remote = lumio_remote_is_url(location);
    lumio__err_init(&z->e);
    *out = z;
    return 0;
}

/* The caller's ring, or one of the array's own. */
static int start_ring(lumio_zarr *z, const lumio_zarr_options *o, const char *location) {
    if (o->ring) {
        z->ring = o->ring;
        return 0;
    }
    lumio_ring_options ro = {0};
    ro.remote = o->remote; /* (NULL: the ring makes its own on the first URL) */
    int rc = lumio_ring_create(&z->ring, &ro);
    z->own_ring = rc == 0;
    if (rc < 0) snprintf(z->err, sizeof z->err, "%s: cannot start the I/O engine", location);
    return rc;
}

/* The metadata from the store: .zarray, or else zarr.json; a group where
 * the array was expected is named as one. */
static int fetch_meta(lumio_zarr *z) {
    char *text = NULL;
    size_t len = 0;
    char why[512] = "";
    int rc = lumio__zarr_fetch_key(z, ".zarray", &text, &len);
    if (rc == 0) {
        rc = lumio__zarr_parse_v2(text, len, &z->m, why, sizeof why);
        if (rc < 0) snprintf(z->err, sizeof z->err, "%s/.zarray: %s", z->base, why);
    } else if (rc == -ENOENT) {
        rc = lumio__zarr_fetch_key(z, "zarr.json", &text, &len);
        if (rc == 0 && lumio__zarr_group_error(z, text, len)) {
            rc = -ENOENT;
        } else if (rc == 0) {
            rc = lumio__zarr_parse_v3(text, len, &z->m, why, sizeof why);
            if (rc < 0) snprintf(z->err, sizeof z->err, "%s/zarr.json: %s", z->base, why);
        } else if (rc == -ENOENT && !lumio__zarr_group_error(z, NULL, 0)) {
            snprintf(z->err, sizeof z->err, "%s: not a Zarr array (no .zarray or zarr.json)",
                     z->base);
        }
    }
    free(text);
    return rc;
}

/* The metadata: the document given, or the store's. */
static int read_meta(lumio_zarr *z, const char *meta, int format) {
    if (!meta) return fetch_meta(z);
    char why[512] = "";
    int rc = (format == 2 ? lumio__zarr_parse_v2 : lumio__zarr_parse_v3)(meta, strlen(meta), &z->m,
                                                                         why, sizeof why);
    if (rc < 0) snprintf(z->err, sizeof z->err, "%s: %s", z->base, why);
    return rc;
}

/* The decoded-chunk cache of cache_bytes, and for a sharded array the
 * index cache carved out of it. */
static int open_caches(lumio_zarr *z, uint64_t cache_bytes) {
    if (zarr_grid(z)->grid_big) {
        /* Cached chunks are keyed by their place in the grid (64 bits). */
        snprintf(z->err, sizeof z->err,
                 "%s: a grid of more than 2^64 chunks cannot be cached (open it without a cache)",
                 z->base);
        return LUMIO_E_UNSUPPORTED;
    }
    uint64_t ib = lumio__zarr_index_budget(&z->m, cache_bytes);
    if (!(z->cache = lumio__zarr_cache_new(cache_bytes - ib, zarr_grid(z)->chunk_bytes, true)) ||
        (ib && !(z->index_cache = lumio__zarr_index_cache_new(&z->m, ib))))
        return -ENOMEM;
    return 0;
}

int lumio__zarr_open_store(lumio_zarr **out, const char *location, const lumio_zarr_options *o) {
    lumio_zarr_options none = {0};
    int rc = new_array(out, location);
    if (rc < 0) return rc;
    rc = start_ring(*out, o ? o : &none, location);
    if (rc < 0) {
        snprintf(open_error, sizeof open_error, "%s", (*out)->err);
        lumio_zarr_close(*out);
        *out = NULL;
    }
    return rc;
}

int lumio__zarr_open_meta(lumio_zarr **out, const char *location, const lumio_zarr_options *opts,
                          const char *meta, int format) {
    *out = NULL;
    lumio_zarr_options o = {0};
    if (opts) o = *opts;
    if (!location || !lumio__zero(o.reserved, sizeof o.reserved)) {
        snprintf(open_error, sizeof open_error, "%s",
                 location ? "lumio_zarr_options: reserved fields are not zero" : "no location");
        return -EINVAL;
    }
    lumio_zarr *z;
    int rc = new_array(&z, location);
    if (rc < 0) return rc;
    z->max_inflight = o.max_chunks_in_flight ? o.max_chunks_in_flight : 64;
    rc = start_ring(z, &o, location);
    if (rc == 0) rc = read_meta(z, meta, format);
    if (rc == 0 && z->m.sharded) lumio__zarr_inner_meta(&z->m, &z->im);
    if (rc == 0 && o.cache_bytes) rc = open_caches(z, o.cache_bytes);
    if (rc < 0) {
        snprintf(open_error, sizeof open_error, "%s", z->err);
        lumio_zarr_close(z);
        return rc;
    }
    *out = z;
    return 0;
}

/* A create never committed: nothing can open what was written; a directory
 * that create made holds nothing else, and goes, so that no later array
 * inherits its chunks. */
static void discard_pending(lumio_zarr *z) {
    if (!z->pending_meta) return;
    free(z->pending_meta);
    z->pending_meta = NULL;
    if (!z->made_dir || z->remote) return;
    /* (unless another creator committed an array there meanwhile) */
    lumio__zarr_remove_unless_array(z->base);
}

void lumio_zarr_close(lumio_zarr *z) {
    if (!z) return;
    discard_pending(z);
    if (z->own_ring) lumio_ring_close(z->ring);
    lumio__zarr_cache_free(z->cache);
    lumio__zarr_cache_free(z->index_cache);
    for (unsigned i = 0; i < z->nkits; i++) {
        lumio__zarr_cctx_free(z->kits[i].cctx);
        free(z->kits[i].own);
        free(z->kits[i].enc);
    }
    free(z->kits);
    free(z->attrs);
    free(z->base);
    lumio__err_fini(&z->e);
    free(z);
}

/* ---- reading -------------------------------------------------------------------- */

static int zarr_read(lumio_zarr *z, const uint64_t *start, const uint64_t *shape, void *buf) {
    region x;
    if (z->m.sharded) return lumio__zarr_read_sharded(z, start, shape, buf);
    int rc = lumio__region_init(&x, z, &z->m, start, shape, buf);
    if (rc) return rc < 0 ? rc : 0;
    rc = lumio__zarr_fetch_chunks(z, &x, 0, x.nchunks, lumio__zarr_on_chunk, NULL);
    lumio__region_fini(&x);
    return rc;
}

/* ---- many regions at once ------------------------------------------------------- */

enum { INFLIGHT = 16 }; /* regions in the ring at once */

typedef struct batch {
    lumio_zarr *z;
    zarr_cache *ic; /* shard indexes, kept from region to region */
    region *xs;     /* INFLIGHT slots */
    uint64_t gids[INFLIGHT];
    bool busy[INFLIGHT];
    unsigned pending;
} batch;

/* Regions from *next on submitted into free slots, until INFLIGHT are in
 * the ring: their chunks decode on the workers while others are still
 * being read. */
static int batch_fill(batch *b, size_t n, const uint64_t *starts, const uint64_t *shape,
                      void *const *bufs, size_t *next) {
    lumio_zarr *z = b->z;
    unsigned nd = z->m.info.ndim;
    while (*next < n && b->pending < INFLIGHT) {
        unsigned s = 0;
        while (b->busy[s]) s++;
        region *x = &b->xs[s];
        int r = lumio__region_init(x, z, zarr_grid(z), starts + *next * nd, shape, bufs[*next]);
        ++*next;
        if (r == 1) continue; /* empty */
        if (r < 0) return r;
        if ((r = zarr_submit_any(z, x, b->ic, &b->gids[s])) < 0) {
            snprintf(z->err, sizeof z->err, "%s", x->err);
            lumio__region_fini(x);
            return r;
        }
        b->busy[s] = true;
        b->pending++;
    }
    return 0;
}

/* Completions of the oldest region in flight (the others progress
 * meanwhile); a region that ended frees its slot, its error the batch's if
 * it is the first. After an error (rc) every region still in flight is
 * given up on. The batch's code. */
static int batch_collect(batch *b, int rc) {
    lumio_zarr *z = b->z;
    unsigned s = INFLIGHT;
    for (unsigned t = 0; t < INFLIGHT; t++)
        if (b->busy[t] && (s == INFLIGHT || b->gids[t] < b->gids[s])) s = t;
    lumio_completion c[64];
    int got = rc < 0 ? 0 : lumio_ring_wait(z->ring, b->gids[s], c, 64, 1);
    if (got < 0) {
        rc = got;
        lumio_ring_last_error(z->ring, z->err, sizeof z->err);
    }
    if (rc < 0)
        for (unsigned t = 0; t < INFLIGHT; t++)
            if (b->busy[t]) lumio_ring_cancel(z->ring, b->gids[t]);
    if (got <= 0) lumio__zarr_abandon(z, b->gids[s]); /* a no-op for an ended group */
    region *x = &b->xs[s];
    bool ended = lumio__zarr_take_completions(z, x, c, got) || got <= 0;
    if (!ended) return rc;
    if (x->error && rc == 0) {
        rc = x->error;
        snprintf(z->err, sizeof z->err, "%s", x->err);
    }
    lumio__region_fini(x);
    b->busy[s] = false;
    b->pending--;
    return rc;
}

static int zarr_read_batch(lumio_zarr *z, size_t n, const uint64_t *starts, const uint64_t *shape,
                           void *const *bufs) {
    batch b = {.z = z};
    bool own_ic;
    /* A sharded array: each region's shard indexes are read first (those
     * of earlier regions are kept), while earlier regions decode. */
    b.ic = lumio__zarr_index_cache(z, &own_ic);
    b.xs = calloc(INFLIGHT, sizeof *b.xs);
    int rc = b.xs && (!z->m.sharded || b.ic) ? 0 : -ENOMEM;
    size_t next = 0;
    while ((rc == 0 && next < n) || b.pending) {
        if (rc == 0) rc = batch_fill(&b, n, starts, shape, bufs, &next);
        if (!b.pending) break;
        rc = batch_collect(&b, rc);
    }
    free(b.xs);
    if (own_ic) lumio__zarr_cache_free(b.ic);
    return rc;
}

int lumio_zarr_read(lumio_zarr *z, const uint64_t *start, const uint64_t *shape, void *buf) {
    if (!z) return -EINVAL;
    return lumio__zarr_published(z, lumio__zarr_begin(z) ? 0 : zarr_read(z, start, shape, buf));
}

int lumio_zarr_read_batch(lumio_zarr *z, size_t n, const uint64_t *starts, const uint64_t *shape,
                          void *const *bufs) {
    if (!z) return -EINVAL;
    return lumio__zarr_published(
        z, lumio__zarr_begin(z) ? 0 : zarr_read_batch(z, n, starts, shape, bufs));
}
