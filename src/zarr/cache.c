/* The decoded-chunk cache: whole decoded chunks, keyed by their place in the
 * chunk grid, kept up to a byte budget and evicted least recently used
 * first. Readers look chunks up on the caller's thread before asking the
 * ring for them; the workers add what they decode. An entry being copied out
 * is pinned: evicting it only unlinks it, and the last reader frees it.
 *
 * A chunk cache keeps its chunks in fixed slots of one mapping: a worker
 * takes a slot before it decodes (a fresh one, a spare, or the least
 * recently used entry's), and an evicted chunk's slot goes back to the
 * spares. Each slot's pages are faulted in once. Chunk-sized mallocs and
 * frees instead faulted in most chunks anew (200k page faults for 1000
 * crops through a 512 MiB cache, against 145k). Huge pages (MADV_HUGEPAGE)
 * cut the faults to a few hundred but cost more system time than they
 * saved here: the kernel compacts memory to find them. */
#include "zarr/zarr.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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
    /* Slots (lumio__zarr_cache_new with slots): nslots of `entry` bytes at slab;
     * those from `fresh` on were never handed out. */
    uint64_t entry;
    bool none; /* slots asked for, but the budget holds not one */
    uint8_t *slab;
    size_t slab_bytes, nslots, fresh;
    uint8_t **spare;
    size_t nspare;
};

static size_t slot(const zarr_cache *c, uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (size_t)key & c->mask;
}

zarr_cache *lumio__zarr_cache_new(uint64_t budget, uint64_t chunk_bytes, bool slots) {
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
    c->entry = chunk_bytes;
    c->none = slots && entries <= 1;
    if (slots && chunk_bytes && entries > 1) {
        /* Reserved, not committed: pages are touched as slots are first
         * used. Without the mapping, chunks are malloc'd one by one. */
        uint64_t want = (entries - 1) * chunk_bytes;
        void *p = want <= SIZE_MAX ? mmap(NULL, (size_t)want, PROT_READ | PROT_WRITE,
                                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
                                   : MAP_FAILED;
        c->spare = p != MAP_FAILED ? calloc(entries - 1, sizeof *c->spare) : NULL;
        if (c->spare) {
            c->slab = p;
            c->slab_bytes = (size_t)want;
            c->nslots = (size_t)(entries - 1);
        } else if (p != MAP_FAILED) {
            munmap(p, (size_t)want);
        }
    }
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static bool in_slab(const zarr_cache *c, const uint8_t *p) {
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)c->slab;
    return c->slab && a >= lo && a - lo < c->slab_bytes;
}

/* Data no entry holds any more: a slot back to the spares, or freed. */
static void release(zarr_cache *c, uint8_t *p) {
    if (in_slab(c, p))
        c->spare[c->nspare++] = p;
    else
        free(p);
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
        release(c, e->data);
        free(e);
    }
}

void lumio__zarr_cache_free(zarr_cache *c) {
    if (!c) return;
    while (c->head) drop(c, c->head);
    pthread_mutex_destroy(&c->mu);
    if (c->slab) munmap(c->slab, c->slab_bytes);
    free(c->spare);
    free(c->table);
    free(c);
}

uint8_t *lumio__zarr_cache_buffer(zarr_cache *c) {
    if (c->none) return NULL; /* nothing would be kept: decode only what is needed */
    if (!c->slab) return malloc(LUMIO_MAX(c->entry, 1));
    uint8_t *p = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->nspare) {
        p = c->spare[--c->nspare];
    } else if (c->fresh < c->nslots) {
        p = c->slab + c->fresh++ * c->entry;
    } else {
        /* Every slot is held: take the least recently used entry's that
         * no reader is copying out of. */
        centry *e = c->tail;
        while (e && (e->refs || !in_slab(c, e->data))) e = e->prev;
        if (e) {
            unlink_entry(c, e);
            p = e->data;
            free(e);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return p;
}

void lumio__zarr_cache_release(zarr_cache *c, uint8_t *data) {
    pthread_mutex_lock(&c->mu);
    release(c, data);
    pthread_mutex_unlock(&c->mu);
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

const uint8_t *lumio__zarr_cache_pin(zarr_cache *c, uint64_t key, uint64_t *bytes, centry **pin) {
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

void lumio__zarr_cache_unpin(zarr_cache *c, centry *e) {
    pthread_mutex_lock(&c->mu);
    bool gone = --e->refs == 0 && !e->linked;
    if (gone) release(c, e->data);
    pthread_mutex_unlock(&c->mu);
    if (gone) free(e);
}

uint64_t lumio__zarr_cache_gen(zarr_cache *c) {
    pthread_mutex_lock(&c->mu);
    uint64_t g = c->gen;
    pthread_mutex_unlock(&c->mu);
    return g;
}

void lumio__zarr_cache_add(zarr_cache *c, uint64_t key, uint8_t *data, uint64_t bytes,
                           uint64_t gen) {
    centry *e = bytes + sizeof *e <= c->budget ? malloc(sizeof *e) : NULL;
    if (!e) {
        lumio__zarr_cache_release(c, data);
        return;
    }
    bytes += sizeof *e; /* what it takes, so empty entries count too */
    *e = (centry){.key = key, .data = data, .bytes = bytes, .linked = true};
    pthread_mutex_lock(&c->mu);
    /* Two regions decoded it side by side; or it was read before a write
     * that changed it (a series reading ahead while the caller writes). */
    if (gen != c->gen || find(c, key)) {
        release(c, data);
        pthread_mutex_unlock(&c->mu);
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

void lumio__zarr_cache_forget(zarr_cache *c, const zarr_meta *grid, const uint64_t *start,
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

void lumio__zarr_cache_drop(zarr_cache *c, uint64_t key) {
    pthread_mutex_lock(&c->mu);
    c->gen++;
    centry *e = find(c, key);
    if (e) drop(c, e);
    pthread_mutex_unlock(&c->mu);
}

void lumio__zarr_cache_stats(zarr_cache *c, uint64_t *hits, uint64_t *misses, uint64_t *bytes) {
    pthread_mutex_lock(&c->mu);
    *hits = c->hits;
    *misses = c->misses;
    *bytes = c->used;
    pthread_mutex_unlock(&c->mu);
}

uint64_t lumio__zarr_chunk_linear(const zarr_meta *grid, const uint64_t *cc) {
    const lumio_zarr_info *in = &grid->info;
    uint64_t k = 0;
    for (unsigned d = 0; d < in->ndim; d++)
        k = k * ((in->shape[d] + in->chunks[d] - 1) / in->chunks[d]) + cc[d];
    return k;
}
