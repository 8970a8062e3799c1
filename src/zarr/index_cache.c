/* Shard index caches: a sharded array's shard indexes (16 bytes an inner
 * chunk), kept so that a shard read again skips its index read. An array
 * opened with a cache keeps one beside its chunk cache, updated by its
 * writes; a batch of reads of an array without one keeps its own for the
 * batch, so that regions sharing shards read each index once. */
#include "zarr/zarr.h"

/* An index cache entry: a shard's index entries, as shard.c keeps them. */
static uint64_t entry_bytes(const zarr_meta *m) {
    return 16 * m->ninner;
}

uint64_t lumio__zarr_index_budget(const zarr_meta *m, uint64_t cache_bytes) {
    if (!m->sharded) return 0;
    /* Room for every shard's index, up to an eighth. */
    uint64_t each = entry_bytes(m) + 128, cap = cache_bytes / 8;
    uint64_t shards = m->info.nchunks;
    return shards > cap / each ? cap : each * shards;
}

zarr_cache *lumio__zarr_index_cache_new(const zarr_meta *m, uint64_t budget) {
    return lumio__zarr_cache_new(budget, entry_bytes(m), false);
}

zarr_cache *lumio__zarr_index_cache(lumio_zarr *z, bool *own) {
    *own = false;
    if (!z->m.sharded || z->index_cache) return z->index_cache;
    *own = true; /* for one call: what it reads is as fresh as a read's */
    return lumio__zarr_index_cache_new(&z->m, 16u << 20);
}
