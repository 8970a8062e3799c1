/* Fetching chunks through the ring: the chunks of a region submitted in
 * groups, each decoded on the worker pool as it lands and copied into its
 * place in the caller's buffer there (or kept in the chunk cache), so no
 * chunk waits for another and memory is bounded by the batch, whatever the
 * region's size. Keys are the store's; shards are shard.c's. */
#include "zarr/zarr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- on the workers ------------------------------------------------------------- */

int lumio__zarr_decode_landed(region *x, lumio_completion *c, uint8_t *into) {
    const zarr_meta *m = x->m;
    zarr_cache *cache = into || !x->z ? NULL : x->z->cache;
    /* A slot of the cache, which keeps the whole chunk; otherwise (or when
     * every slot is being read from) the thread's scratch. */
    uint8_t *kept = cache ? lumio__zarr_cache_buffer(cache) : NULL;
    uint8_t *chunk = into ? into : kept ? kept : lumio__zarr_scratch_get(m->chunk_bytes);
    char why[256];
    uint64_t cc[LUMIO_ZARR_MAX_DIMS];
    lumio__region_chunk(x, c->user_data, cc);
    /* Into place: only as far as the region reaches into the chunk, unless
     * the cache keeps it. */
    uint64_t need = into || kept ? m->chunk_bytes : lumio__region_chunk_need(x, cc);
    int rc = chunk ? lumio__zarr_decode_prefix(m, c->data, c->length, chunk, need, why, sizeof why)
                   : -ENOMEM;
    if (rc == 0 && !into) {
        lumio__region_to_buf(x, cc, chunk);
        if (kept) {
            lumio__zarr_cache_add(cache, lumio__zarr_chunk_linear(m, cc), kept, m->chunk_bytes,
                                  x->cache_gen);
            kept = chunk = NULL;
        }
    } else if (rc < 0) {
        char where[512], text[1024];
        lumio_completion_describe(c, where, sizeof where);
        char *colon = strrchr(where, ':'); /* drop the code's own text: why says more */
        if (colon) *colon = 0;
        snprintf(text, sizeof text, "%s: %s", where, chunk ? why : "out of memory");
        lumio__region_error(x, rc, text);
    }
    if (kept)
        lumio__zarr_cache_release(cache, kept);
    else if (!into && chunk)
        lumio__zarr_scratch_put(chunk, m->chunk_bytes);
    lumio_buffer_release(c->buffer);
    c->buffer = NULL;
    c->data = NULL;
    return rc;
}

/* On a worker: decode the chunk that landed and place it; a chunk never
 * written is the fill value. */
int lumio__zarr_on_chunk(void *arg, lumio_completion *c) {
    region *x = arg;
    if (c->result == -ENOENT) {
        uint64_t cc[LUMIO_ZARR_MAX_DIMS];
        lumio__region_chunk(x, c->user_data, cc);
        lumio__region_to_buf(x, cc, NULL);
        return 0;
    }
    if (c->result < 0) return c->result; /* the ring names the key and why */
    return lumio__zarr_decode_landed(x, c, NULL);
}

/* ---- on the caller's thread ----------------------------------------------------- */

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
            lumio_ring_last_error(z->ring, text, sizeof text);
        else
            lumio_completion_describe(&c[i], text, sizeof text);
        lumio__region_error(x, c[i].result, text);
    }
}

bool lumio__zarr_take_completions(lumio_zarr *z, region *x, lumio_completion *c, int n) {
    bool ended = false;
    note_failures(z, x, c, n);
    for (int i = 0; i < n; i++) {
        lumio_buffer_release(c[i].buffer);
        ended |= (c[i].flags & LUMIO_CQE_GROUP_END) != 0;
    }
    return ended;
}

bool lumio__zarr_cached(const region *x, uint64_t i) {
    zarr_cache *cache = x->z ? x->z->cache : NULL;
    if (!cache) return false;
    uint64_t cc[LUMIO_ZARR_MAX_DIMS];
    lumio__region_chunk(x, i, cc);
    centry *pin;
    uint64_t bytes;
    const uint8_t *chunk =
        lumio__zarr_cache_pin(cache, lumio__zarr_chunk_linear(x->m, cc), &bytes, &pin);
    if (!chunk) return false;
    lumio__region_to_buf(x, cc, chunk); /* outside the cache's lock: the workers go on adding */
    lumio__zarr_cache_unpin(cache, pin);
    return true;
}

/* The op reading the whole key of the region's chunk idx (user_data idx). */
static void chunk_op(const lumio_zarr *z, const region *x, uint64_t idx, lumio_op *op,
                     lumio_range *rg, char (*path)[1024]) {
    uint64_t cc[LUMIO_ZARR_MAX_DIMS];
    lumio__region_chunk(x, idx, cc);
    char key[256];
    lumio__zarr_chunk_key(z, cc, key, sizeof key);
    snprintf(*path, sizeof *path, "%s/%s", z->base, key);
    *rg = (lumio_range){.offset = 0, .length = LUMIO_WHOLE, .user_data = idx};
    *op = (lumio_op){
        .kind = LUMIO_OP_GET, .path = *path, .ranges = rg, .nranges = 1, .user_data = idx};
}

/* Scratch for the ops of one batch: the ring copies what it is given, so
 * one batch's serves the next. */
typedef struct op_batch {
    lumio_op *ops;
    lumio_range *rgs;
    char (*paths)[1024];
} op_batch;

static int batch_alloc(op_batch *b, uint64_t n) {
    b->ops = calloc(n, sizeof *b->ops);
    b->rgs = calloc(n, sizeof *b->rgs);
    b->paths = calloc(n, sizeof *b->paths); /* calloc: n * size checked */
    return b->ops && b->rgs && b->paths ? 0 : -ENOMEM;
}

static void batch_free(op_batch *b) {
    free(b->ops);
    free(b->rgs);
    free(b->paths);
}

/* The next batch of chunks of the region (from *next on, up to `batch` of
 * them not in the cache) as a group of the ring. */
static int submit_batch(lumio_zarr *z, region *x, op_batch *b, uint64_t batch, uint64_t first,
                        uint64_t n, const uint64_t *which, uint64_t *next,
                        const lumio_group_options *go, uint64_t *g) {
    uint64_t k = 0;
    for (; k < batch && *next < n; ++*next) {
        uint64_t idx = which ? which[*next] : first + *next;
        if (go->compute == lumio__zarr_on_chunk && lumio__zarr_cached(x, idx)) continue;
        chunk_op(z, x, idx, &b->ops[k], &b->rgs[k], &b->paths[k]);
        k++;
    }
    int rc = lumio_ring_submit(z->ring, b->ops, k, go, g);
    if (rc < 0) lumio_ring_last_error(z->ring, z->err, sizeof z->err);
    return rc;
}

int lumio__zarr_fetch_chunks(lumio_zarr *z, region *x, uint64_t first, uint64_t n,
                             lumio_compute_fn fn, const uint64_t *which) {
    lumio_group_options go;
    go = (lumio_group_options){0};
    go.compute = fn;
    go.compute_arg = x;
    /* Batches of ops, two groups in flight: the ring reads one while the
     * other is decoded and the caller's thread plans the next. */
    uint64_t batch = LUMIO_MAX(z->max_inflight / 2, 1);
    op_batch b;
    int rc = batch_alloc(&b, batch);
    uint64_t next = 0;
    uint64_t gids[2];
    unsigned groups = 0; /* ours in flight, oldest first in gids */
    lumio_completion c[64];
    while (rc == 0 && (next < n || groups > 0)) {
        while (rc == 0 && next < n && groups < 2)
            if ((rc = submit_batch(z, x, &b, batch, first, n, which, &next, &go, &gids[groups])) ==
                0)
                groups++;
        if (groups == 0) break;
        /* Our oldest group only: another user's groups on a shared ring (a
         * series, the caller's own) keep their completions. */
        int got = lumio_ring_wait(z->ring, gids[0], c, 64, 1);
        if (got < 0) {
            rc = got;
            lumio_ring_last_error(z->ring, z->err, sizeof z->err);
            break;
        }
        if (got == 0) lumio__zarr_abandon(z, gids[0]); /* not ended: nothing can come */
        if (lumio__zarr_take_completions(z, x, c, got) || got == 0) {
            gids[0] = gids[1];
            groups--;
        }
        if (x->error) rc = x->error;
    }
    /* After an error, what is still in flight is given up on: all of it
     * canceled first, so that none waits for another's files or buffers. */
    for (unsigned gi = 0; gi < groups; gi++) lumio_ring_cancel(z->ring, gids[gi]);
    for (unsigned gi = 0; gi < groups; gi++) lumio__zarr_abandon(z, gids[gi]);
    if (rc < 0 && x->error) snprintf(z->err, sizeof z->err, "%s", x->err);
    batch_free(&b);
    return rc;
}

/* All chunks of one region as one group; its id in *g. */
int lumio__zarr_submit_region(lumio_zarr *z, region *x, uint64_t *g) {
    uint64_t n = x->nchunks;
    op_batch b;
    int rc = batch_alloc(&b, n);
    uint64_t k = 0;
    for (uint64_t i = 0; rc == 0 && i < n; i++)
        if (!lumio__zarr_cached(x, i)) chunk_op(z, x, i, &b.ops[k], &b.rgs[k], &b.paths[k]), k++;
    if (rc == 0) { /* all cached: an empty group, which ends at once */
        lumio_group_options go;
        go = (lumio_group_options){0};
        go.compute = lumio__zarr_on_chunk;
        go.compute_arg = x;
        rc = lumio_ring_submit(z->ring, b.ops, k, &go, g);
    }
    if (rc < 0)
        lumio__region_error(
            x, rc, rc == -ENOMEM ? "out of memory" : lumio_ring_last_error(z->ring, LUMIO__ERRBUF));
    batch_free(&b);
    return rc;
}
