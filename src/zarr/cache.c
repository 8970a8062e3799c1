/* The decoded-chunk cache: whole decoded chunks, keyed by their place in the
 * chunk grid, kept up to a byte budget and evicted least recently used
 * first. Readers look chunks up on the caller's thread before asking the
 * ring for them; the workers add what they decode. An entry being copied out
 * is pinned: evicting it only unlinks it, and the last reader frees it. */
#include "zarr/zarr.h"

#include <stdlib.h>
#include <string.h>

typedef struct centry {
    uint64_t key;
    uint8_t *data;
    uint64_t bytes;
    unsigned refs; /* readers copying out of it */
    bool linked;   /* in the table and the list */
    struct centry *hnext;
    struct centry *prev, *next; /* most recently used first */
} centry;

struct zarr_cache {
    pthread_mutex_t mu;
    uint64_t budget, used;
    centry **table;
    size_t mask;
    centry *head, *tail;
    uint64_t hits, misses;
    uint64_t gen; /* bumped by every forget: older decodes are not added */
};

static size_t slot(const zarr_cache *c, uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (size_t)key & c->mask;
}

zarr_cache *zarr_cache_new(uint64_t budget, uint64_t chunk_bytes) {
    zarr_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    uint64_t entries = budget / (chunk_bytes + sizeof(centry)) + 1;
    size_t n = 64;
    while (n < 2 * entries && n < (1u << 24)) n *= 2;
    if (!(c->table = calloc(n, sizeof *c->table))) {
        free(c);
        return NULL;
    }
    c->mask = n - 1;
    c->budget = budget;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void unlink_entry(zarr_cache *c, centry *e) {
    centry **p = &c->table[slot(c, e->key)];
    while (*p != e) p = &(*p)->hnext;
    *p = e->hnext;
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    c->used -= e->bytes;
    e->linked = false;
}

static void drop(zarr_cache *c, centry *e) {
    unlink_entry(c, e);
    if (e->refs == 0) {
        free(e->data);
        free(e);
    }
}

void zarr_cache_free(zarr_cache *c) {
    if (!c) return;
    while (c->head) drop(c, c->head);
    pthread_mutex_destroy(&c->mu);
    free(c->table);
    free(c);
}

static centry *find(zarr_cache *c, uint64_t key) {
    centry *e = c->table[slot(c, key)];
    while (e && e->key != key) e = e->hnext;
    return e;
}

static void to_front(zarr_cache *c, centry *e) {
    if (c->head == e) return;
    e->prev->next = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = NULL;
    e->next = c->head;
    c->head->prev = e;
    c->head = e;
}

const uint8_t *zarr_cache_pin(zarr_cache *c, uint64_t key, uint64_t *bytes, centry **pin) {
    pthread_mutex_lock(&c->mu);
    centry *e = find(c, key);
    if (!e) {
        c->misses++;
        pthread_mutex_unlock(&c->mu);
        return NULL;
    }
    c->hits++;
    to_front(c, e);
    e->refs++;
    pthread_mutex_unlock(&c->mu);
    *pin = e;
    *bytes = e->bytes - sizeof *e;
    return e->data ? e->data : (const uint8_t *)"";
}

void zarr_cache_unpin(zarr_cache *c, centry *e) {
    pthread_mutex_lock(&c->mu);
    bool gone = --e->refs == 0 && !e->linked;
    pthread_mutex_unlock(&c->mu);
    if (gone) {
        free(e->data);
        free(e);
    }
}

uint64_t zarr_cache_gen(zarr_cache *c) {
    pthread_mutex_lock(&c->mu);
    uint64_t g = c->gen;
    pthread_mutex_unlock(&c->mu);
    return g;
}

void zarr_cache_add(zarr_cache *c, uint64_t key, uint8_t *data, uint64_t bytes, uint64_t gen) {
    centry *e = bytes + sizeof *e <= c->budget ? malloc(sizeof *e) : NULL;
    if (!e) {
        free(data);
        return;
    }
    bytes += sizeof *e; /* what it takes, so empty entries count too */
    *e = (centry){.key = key, .data = data, .bytes = bytes, .linked = true};
    pthread_mutex_lock(&c->mu);
    /* Two regions decoded it side by side; or it was read before a write
     * that changed it (a series reading ahead while the caller writes). */
    if (gen != c->gen || find(c, key)) {
        pthread_mutex_unlock(&c->mu);
        free(data);
        free(e);
        return;
    }
    while (c->tail && c->used + bytes > c->budget) drop(c, c->tail);
    size_t s = slot(c, key);
    e->hnext = c->table[s];
    c->table[s] = e;
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
    c->used += bytes;
    pthread_mutex_unlock(&c->mu);
}

void zarr_cache_forget(zarr_cache *c, const zarr_meta *grid, const uint64_t *start,
                       const uint64_t *shape) {
    const lumio_zarr_info *in = &grid->info;
    uint64_t lo[LUMIO_ZARR_MAX_DIMS], hi[LUMIO_ZARR_MAX_DIMS], dims[LUMIO_ZARR_MAX_DIMS];
    for (unsigned d = 0; d < in->ndim; d++) {
        if (shape[d] == 0) return;
        lo[d] = start[d] / in->chunks[d];
        hi[d] = (start[d] + shape[d] - 1) / in->chunks[d];
        dims[d] = (in->shape[d] + in->chunks[d] - 1) / in->chunks[d];
    }
    pthread_mutex_lock(&c->mu);
    c->gen++;
    for (centry *e = c->head, *next; e; e = next) {
        next = e->next;
        uint64_t k = e->key;
        bool inside = true;
        for (unsigned d = in->ndim; d-- > 0;) {
            uint64_t at = k % dims[d];
            k /= dims[d];
            inside &= at >= lo[d] && at <= hi[d];
        }
        if (inside) drop(c, e);
    }
    pthread_mutex_unlock(&c->mu);
}

void zarr_cache_drop(zarr_cache *c, uint64_t key) {
    pthread_mutex_lock(&c->mu);
    c->gen++;
    centry *e = find(c, key);
    if (e) drop(c, e);
    pthread_mutex_unlock(&c->mu);
}

void zarr_cache_stats(zarr_cache *c, uint64_t *hits, uint64_t *misses, uint64_t *bytes) {
    pthread_mutex_lock(&c->mu);
    *hits = c->hits;
    *misses = c->misses;
    *bytes = c->used;
    pthread_mutex_unlock(&c->mu);
}

uint64_t zarr_chunk_linear(const zarr_meta *grid, const uint64_t *cc) {
    const lumio_zarr_info *in = &grid->info;
    uint64_t k = 0;
    for (unsigned d = 0; d < in->ndim; d++)
        k = k * ((in->shape[d] + in->chunks[d] - 1) / in->chunks[d]) + cc[d];
    return k;
}
