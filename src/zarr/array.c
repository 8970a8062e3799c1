/* Arrays: opening (the metadata, from any store), chunk keys, and region
 * reads. A read submits the chunks it touches to the ring in batches; each
 * chunk is decoded on the worker pool as it lands and copied into its place
 * in the caller's buffer there, so no chunk waits for another and memory is
 * bounded by the batch, whatever the region's size. */
#include "zarr/zarr.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static __thread char open_error[1024];

char *zarr_open_error(void) {
    return open_error;
}

void lumio_zarr_options_default(lumio_zarr_options *o) {
    memset(o, 0, sizeof *o);
    o->max_chunks_in_flight = 64;
}

const char *lumio_zarr_last_error(const lumio_zarr *z) {
    /* Locations come as the caller gave them, passwords and presigned
     * queries too: the text handed out never shows them. */
    static __thread char shown[1024];
    return lumio_redact(z ? z->err : open_error, shown, sizeof shown);
}

void lumio_zarr_get_info(const lumio_zarr *z, lumio_zarr_info *info) {
    *info = z->m.info;
}

void lumio_zarr_get_stats(const lumio_zarr *z, lumio_zarr_stats *s) {
    memset(s, 0, sizeof *s);
    if (z->cache) zarr_cache_stats(z->cache, &s->cache_hits, &s->cache_misses, &s->cache_bytes);
}

/* ---- the store ---------------------------------------------------------------- */

static char *join(const char *base, const char *key) {
    size_t n = strlen(base) + strlen(key) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", base, key);
    return p;
}

int zarr_fetch_key(lumio_zarr *z, const char *key, char **data, size_t *len) {
    char *path = join(z->base, key);
    if (!path) return -ENOMEM;
    lumio_range rg = {.offset = 0, .length = LUMIO_WHOLE};
    lumio_op op = {.kind = LUMIO_OP_GET, .path = path, .ranges = &rg, .nranges = 1};
    uint64_t g;
    int rc = lumio_ring_submit(z->ring, &op, 1, NULL, &g);
    *data = NULL;
    lumio_completion c[4];
    int n = 0;
    while (rc == 0 && (n = lumio_ring_wait(z->ring, g, c, 4, 1)) > 0)
        for (int i = 0; i < n; i++) {
            if (c[i].result < 0) {
                rc = c[i].result;
                snprintf(z->err, sizeof z->err, "%s", lumio_ring_last_error(z->ring));
            } else if (!*data) {
                *data = malloc(c[i].length + 1);
                if (!*data)
                    rc = -ENOMEM;
                else {
                    if (c[i].length) memcpy(*data, c[i].data, c[i].length); /* empty: no data */
                    (*data)[c[i].length] = 0;
                    *len = c[i].length;
                }
            }
            lumio_buffer_release(c[i].buffer);
        }
    if (n < 0) { /* the ring itself failed (stalled on a shared ring) */
        rc = n;
        snprintf(z->err, sizeof z->err, "%s", lumio_ring_last_error(z->ring));
        zarr_abandon(z, g);
    } else if (rc == 0 && !*data) {
        rc = -EIO;
        snprintf(z->err, sizeof z->err, "%s: no data came back", path);
    }
    if (rc < 0) {
        free(*data);
        *data = NULL;
    }
    free(path);
    return rc;
}

int lumio_zarr_open(lumio_zarr **out, const char *location, const lumio_zarr_options *opts) {
    return zarr_open_meta(out, location, opts, NULL, 0);
}

/* With meta (a document of that format): the array it describes, which the
 * store need not hold yet (a create whose metadata is written last). */
int zarr_open_meta(lumio_zarr **out, const char *location, const lumio_zarr_options *opts,
                   const char *meta, int format) {
    *out = NULL;
    lumio_zarr_options o;
    if (opts)
        o = *opts;
    else
        lumio_zarr_options_default(&o);
    lumio_zarr *z = calloc(1, sizeof *z);
    if (!z || !(z->base = strdup(location))) {
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
    z->remote = lumio_is_remote(location);
    z->max_inflight = o.max_chunks_in_flight ? o.max_chunks_in_flight : 64;
    int rc = 0;
    if (o.ring) {
        z->ring = o.ring;
    } else {
        lumio_ring_options ro;
        lumio_ring_options_default(&ro);
        ro.remote = o.remote; /* (NULL: the ring makes its own on the first URL) */
        rc = lumio_ring_create(&z->ring, &ro);
        z->own_ring = rc == 0;
        if (rc < 0) snprintf(z->err, sizeof z->err, "%s: cannot start the I/O engine", location);
    }
    char *text = NULL;
    size_t len = 0;
    char why[512] = "";
    if (rc == 0 && meta) {
        rc = (format == 2 ? zarr_parse_v2 : zarr_parse_v3)(meta, strlen(meta), &z->m, why,
                                                           sizeof why);
        if (rc < 0) snprintf(z->err, sizeof z->err, "%s: %s", z->base, why);
    } else if (rc == 0) {
        rc = zarr_fetch_key(z, ".zarray", &text, &len);
        if (rc == 0) {
            rc = zarr_parse_v2(text, len, &z->m, why, sizeof why);
            if (rc < 0) snprintf(z->err, sizeof z->err, "%s/.zarray: %s", z->base, why);
        } else if (rc == -ENOENT) {
            rc = zarr_fetch_key(z, "zarr.json", &text, &len);
            if (rc == 0 && zarr_group_error(z, text, len)) {
                rc = -ENOENT;
            } else if (rc == 0) {
                rc = zarr_parse_v3(text, len, &z->m, why, sizeof why);
                if (rc < 0) snprintf(z->err, sizeof z->err, "%s/zarr.json: %s", z->base, why);
            } else if (rc == -ENOENT && !zarr_group_error(z, NULL, 0)) {
                snprintf(z->err, sizeof z->err, "%s: not a Zarr array (no .zarray or zarr.json)",
                         z->base);
            }
        }
    }
    free(text);
    if (rc == 0 && z->m.sharded) zarr_inner_meta(&z->m, &z->im);
    if (rc == 0 && o.cache_bytes && zarr_grid(z)->grid_big) {
        /* Cached chunks are keyed by their place in the grid (64 bits). */
        snprintf(z->err, sizeof z->err,
                 "%s: a grid of more than 2^64 chunks cannot be cached (open it without a cache)",
                 z->base);
        rc = LUMIO_E_UNSUPPORTED;
    }
    if (rc == 0 && o.cache_bytes) {
        /* A sharded array: room for every shard's index, up to an eighth. */
        uint64_t ib = 0;
        if (z->m.sharded) {
            uint64_t each = 16 * z->m.ninner + 128, cap = o.cache_bytes / 8;
            uint64_t shards = z->m.info.nchunks;
            ib = shards > cap / each ? cap : each * shards;
        }
        if (!(z->cache = zarr_cache_new(o.cache_bytes - ib, zarr_grid(z)->chunk_bytes, true)) ||
            (ib && !(z->index_cache = zarr_cache_new(ib, 16 * z->m.ninner, false))))
            rc = -ENOMEM;
    }
    if (rc < 0) {
        snprintf(open_error, sizeof open_error, "%s", z->err);
        lumio_zarr_close(z);
        return rc;
    }
    *out = z;
    return 0;
}

void lumio_zarr_close(lumio_zarr *z) {
    if (!z) return;
    zarr_discard_pending(z);
    if (z->own_ring) lumio_ring_destroy(z->ring);
    zarr_cache_free(z->cache);
    zarr_cache_free(z->index_cache);
    for (unsigned i = 0; i < z->nkits; i++) {
        zarr_cctx_free(z->kits[i].cctx);
        free(z->kits[i].own);
        free(z->kits[i].enc);
    }
    free(z->kits);
    free(z->base);
    free(z);
}

/* ---- reading a region ----------------------------------------------------- */

int zarr_decode_landed(region *x, lumio_completion *c, uint8_t *into) {
    const zarr_meta *m = x->m;
    zarr_cache *cache = into || !x->z ? NULL : x->z->cache;
    /* A slot of the cache, which keeps the whole chunk; otherwise (or when
     * every slot is being read from) the thread's scratch. */
    uint8_t *kept = cache ? zarr_cache_buffer(cache) : NULL;
    uint8_t *chunk = into ? into : kept ? kept : zarr_scratch_get(m->chunk_bytes);
    char why[256];
    uint64_t cc[LUMIO_ZARR_MAX_DIMS];
    region_chunk(x, c->user_data, cc);
    /* Into place: only as far as the region reaches into the chunk, unless
     * the cache keeps it. */
    uint64_t need = into || kept ? m->chunk_bytes : region_chunk_need(x, cc);
    int rc =
        chunk ? zarr_decode_prefix(m, c->data, c->length, chunk, need, why, sizeof why) : -ENOMEM;
    if (rc == 0 && !into) {
        region_to_buf(x, cc, chunk);
        if (kept) {
            zarr_cache_add(cache, zarr_chunk_linear(m, cc), kept, m->chunk_bytes, x->cache_gen);
            kept = chunk = NULL;
        }
    } else if (rc < 0) {
        char where[512], text[1024];
        lumio_completion_describe(c, where, sizeof where);
        char *colon = strrchr(where, ':'); /* drop the code's own text: why says more */
        if (colon) *colon = 0;
        snprintf(text, sizeof text, "%s: %s", where, chunk ? why : "out of memory");
        region_error(x, rc, text);
    }
    if (kept)
        zarr_cache_release(cache, kept);
    else if (!into && chunk)
        zarr_scratch_put(chunk, m->chunk_bytes);
    lumio_buffer_release(c->buffer);
    c->buffer = NULL;
    c->data = NULL;
    return rc;
}

/* On a worker: decode the chunk that landed and place it; a chunk never
 * written is the fill value. */
int zarr_on_chunk(void *arg, lumio_completion *c) {
    region *x = arg;
    if (c->result == -ENOENT) {
        uint64_t cc[LUMIO_ZARR_MAX_DIMS];
        region_chunk(x, c->user_data, cc);
        region_to_buf(x, cc, NULL);
        return 0;
    }
    if (c->result < 0) return c->result; /* the ring names the key and why */
    return zarr_decode_landed(x, c, NULL);
}

/* Keep the first failure among n completions in x. For the last failure it
 * delivered, the ring's text says more than the code: for a URL, the
 * request, the server's answer or the time limit. */
static void note_failures(lumio_zarr *z, region *x, const lumio_completion *c, int n) {
    int last = -1;
    for (int i = 0; i < n; i++)
        if (c[i].result < 0) last = i;
    for (int i = 0; i <= last; i++) {
        if (c[i].result >= 0) continue;
        char text[1024];
        if (i == last)
            snprintf(text, sizeof text, "%s", lumio_ring_last_error(z->ring));
        else
            lumio_completion_describe(&c[i], text, sizeof text);
        region_error(x, c[i].result, text);
    }
}

bool zarr_cached(const region *x, uint64_t i) {
    zarr_cache *cache = x->z ? x->z->cache : NULL;
    if (!cache) return false;
    uint64_t cc[LUMIO_ZARR_MAX_DIMS];
    region_chunk(x, i, cc);
    centry *pin;
    uint64_t bytes;
    const uint8_t *chunk = zarr_cache_pin(cache, zarr_chunk_linear(x->m, cc), &bytes, &pin);
    if (!chunk) return false;
    region_to_buf(x, cc, chunk); /* outside the cache's lock: the workers go on adding */
    zarr_cache_unpin(cache, pin);
    return true;
}

/* The op reading the whole key of the region's chunk idx (user_data idx). */
static void chunk_op(const lumio_zarr *z, const region *x, uint64_t idx, lumio_op *op,
                     lumio_range *rg, char (*path)[1024]) {
    uint64_t cc[LUMIO_ZARR_MAX_DIMS];
    region_chunk(x, idx, cc);
    char key[256];
    zarr_chunk_key(z, cc, key, sizeof key);
    snprintf(*path, sizeof *path, "%s/%s", z->base, key);
    *rg = (lumio_range){.offset = 0, .length = LUMIO_WHOLE, .user_data = idx};
    *op = (lumio_op){
        .kind = LUMIO_OP_GET, .path = *path, .ranges = rg, .nranges = 1, .user_data = idx};
}

void zarr_abandon(lumio_zarr *z, uint64_t g) {
    lumio_ring_cancel(z->ring, g);
    lumio_completion c[64];
    int got;
    while ((got = lumio_ring_wait(z->ring, g, c, 64, 1)) > 0)
        for (int i = 0; i < got; i++) lumio_buffer_release(c[i].buffer);
}

int zarr_fetch_chunks(lumio_zarr *z, region *x, uint64_t first, uint64_t n, lumio_compute_fn fn,
                      const uint64_t *which) {
    lumio_group_options go;
    lumio_group_options_default(&go);
    go.compute = fn;
    go.compute_arg = x;
    /* Batches of ops, two groups in flight: the ring reads one while the
     * other is decoded and the caller's thread plans the next. */
    uint64_t batch = LUMIO_MAX(z->max_inflight / 2, 1);
    lumio_op *ops = calloc(batch, sizeof *ops);
    lumio_range *rgs = calloc(batch, sizeof *rgs);
    char(*paths)[1024] = malloc(batch * sizeof *paths);
    int rc = ops && rgs && paths ? 0 : -ENOMEM;
    uint64_t next = 0;
    uint64_t gids[2];
    unsigned groups = 0; /* ours in flight, oldest first in gids */
    lumio_completion c[64];
    while (rc == 0 && (next < n || groups > 0)) {
        while (rc == 0 && next < n && groups < 2) {
            uint64_t k = 0;
            for (; k < batch && next < n; next++) {
                uint64_t idx = which ? which[next] : first + next;
                if (fn == zarr_on_chunk && zarr_cached(x, idx)) continue;
                chunk_op(z, x, idx, &ops[k], &rgs[k], &paths[k]);
                k++;
            }
            rc = lumio_ring_submit(z->ring, ops, k, &go, &gids[groups]);
            if (rc < 0) {
                snprintf(z->err, sizeof z->err, "%s", lumio_ring_last_error(z->ring));
                break;
            }
            groups++;
        }
        if (groups == 0) break;
        /* Our oldest group only: another user's groups on a shared ring (a
         * series, the caller's own) keep their completions. */
        int got = lumio_ring_wait(z->ring, gids[0], c, 64, 1);
        if (got < 0) {
            rc = got;
            snprintf(z->err, sizeof z->err, "%s", lumio_ring_last_error(z->ring));
            break;
        }
        if (got == 0) zarr_abandon(z, gids[0]); /* not ended: nothing can come */
        bool ended = got == 0;
        note_failures(z, x, c, got);
        for (int i = 0; i < got; i++) {
            lumio_buffer_release(c[i].buffer);
            ended |= (c[i].flags & LUMIO_CQE_GROUP_END) != 0;
        }
        if (ended) {
            gids[0] = gids[1];
            groups--;
        }
        if (x->error) rc = x->error;
    }
    /* After an error, what is still in flight is given up on: all of it
     * canceled first, so that none waits for another's files or buffers. */
    for (unsigned gi = 0; gi < groups; gi++) lumio_ring_cancel(z->ring, gids[gi]);
    for (unsigned gi = 0; gi < groups; gi++) zarr_abandon(z, gids[gi]);
    if (rc < 0 && x->error) snprintf(z->err, sizeof z->err, "%s", x->err);
    free(ops);
    free(rgs);
    free(paths);
    return rc;
}

int lumio_zarr_read(lumio_zarr *z, const uint64_t *start, const uint64_t *shape, void *buf) {
    region x;
    if (z->m.sharded) return zarr_read_sharded(z, start, shape, buf);
    int rc = region_init(&x, z, &z->m, start, shape, buf);
    if (rc) return rc < 0 ? rc : 0;
    rc = zarr_fetch_chunks(z, &x, 0, x.nchunks, zarr_on_chunk, NULL);
    region_fini(&x);
    return rc;
}

/* ---- many regions at once ------------------------------------------------------ */

/* All chunks of one region as one group; its id in *g. */
int zarr_submit_region(lumio_zarr *z, region *x, uint64_t *g) {
    uint64_t n = x->nchunks;
    lumio_op *ops = calloc(n, sizeof *ops);
    lumio_range *rgs = calloc(n, sizeof *rgs);
    char(*paths)[1024] = calloc(n, sizeof *paths); /* calloc: n * size checked */
    int rc = ops && rgs && paths ? 0 : -ENOMEM;
    uint64_t k = 0;
    for (uint64_t i = 0; rc == 0 && i < n; i++)
        if (!zarr_cached(x, i)) chunk_op(z, x, i, &ops[k], &rgs[k], &paths[k]), k++;
    if (rc == 0) { /* all cached: an empty group, which ends at once */
        lumio_group_options go;
        lumio_group_options_default(&go);
        go.compute = zarr_on_chunk;
        go.compute_arg = x;
        rc = lumio_ring_submit(z->ring, ops, k, &go, g);
    }
    if (rc < 0)
        region_error(x, rc, rc == -ENOMEM ? "out of memory" : lumio_ring_last_error(z->ring));
    free(ops);
    free(rgs);
    free(paths);
    return rc;
}

int zarr_submit_any(lumio_zarr *z, region *x, zarr_cache *ic, uint64_t *g) {
    return z->m.sharded ? zarr_submit_sharded(z, x, ic, g) : zarr_submit_region(z, x, g);
}

zarr_cache *zarr_index_cache(lumio_zarr *z, bool *own) {
    *own = false;
    if (!z->m.sharded || z->index_cache) return z->index_cache;
    *own = true; /* for one call: what it reads is as fresh as a read's */
    return zarr_cache_new(16u << 20, 16 * z->m.ninner, false);
}

int lumio_zarr_read_batch(lumio_zarr *z, size_t n, const uint64_t *starts, const uint64_t *shape,
                          void *const *bufs) {
    unsigned nd = z->m.info.ndim;
    enum { INFLIGHT = 16 };
    region *xs = calloc(INFLIGHT, sizeof *xs);
    uint64_t gids[INFLIGHT];
    bool busy[INFLIGHT] = {false}, own_ic;
    /* A sharded array: each region's shard indexes are read first (those
     * of earlier regions are kept), while earlier regions decode. */
    zarr_cache *ic = zarr_index_cache(z, &own_ic);
    if (!xs || (z->m.sharded && !ic)) {
        free(xs);
        if (own_ic) zarr_cache_free(ic);
        return -ENOMEM;
    }
    size_t next = 0;
    unsigned pending = 0;
    int rc = 0;
    while ((rc == 0 && next < n) || pending) {
        /* Keep up to INFLIGHT regions in the ring: their chunks decode on the
         * workers while others are still being read. */
        while (rc == 0 && next < n && pending < INFLIGHT) {
            unsigned s = 0;
            while (busy[s]) s++;
            int r = region_init(&xs[s], z, zarr_grid(z), starts + next * nd, shape, bufs[next]);
            next++;
            if (r == 1) continue; /* empty */
            if (r < 0) {
                rc = r;
                break;
            }
            if ((r = zarr_submit_any(z, &xs[s], ic, &gids[s])) < 0) {
                rc = r;
                snprintf(z->err, sizeof z->err, "%s", xs[s].err);
                region_fini(&xs[s]);
                break;
            }
            busy[s] = true;
            pending++;
        }
        if (!pending) break;
        /* The oldest region in flight (the others progress meanwhile). */
        unsigned s = INFLIGHT;
        for (unsigned t = 0; t < INFLIGHT; t++)
            if (busy[t] && (s == INFLIGHT || gids[t] < gids[s])) s = t;
        lumio_completion c[64];
        /* After an error the regions still in flight are given up on. */
        int got = rc < 0 ? 0 : lumio_ring_wait(z->ring, gids[s], c, 64, 1);
        if (got < 0) {
            rc = got;
            snprintf(z->err, sizeof z->err, "%s", lumio_ring_last_error(z->ring));
        }
        if (rc < 0) /* every region still in flight is given up on */
            for (unsigned t = 0; t < INFLIGHT; t++)
                if (busy[t]) lumio_ring_cancel(z->ring, gids[t]);
        if (got <= 0) zarr_abandon(z, gids[s]); /* a no-op for an ended group */
        bool ended = got <= 0;
        note_failures(z, &xs[s], c, got);
        for (int i = 0; i < got; i++) {
            lumio_buffer_release(c[i].buffer);
            ended |= (c[i].flags & LUMIO_CQE_GROUP_END) != 0;
        }
        if (ended) {
            if (xs[s].error && rc == 0) {
                rc = xs[s].error;
                snprintf(z->err, sizeof z->err, "%s", xs[s].err);
            }
            region_fini(&xs[s]);
            busy[s] = false;
            pending--;
        }
    }
    free(xs);
    if (own_ic) zarr_cache_free(ic);
    return rc;
}
