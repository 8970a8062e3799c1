/* The buffer pool: bounded, recycled, 4 KiB aligned buffers. */
#include "ring/pool.h"

#include <lumio/ring.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Size classes: 4 KiB x {1, 1.5} x 2^k, so a buffer wastes at most a third. */
#define NCLASSES 96
#define MIN_SIZE 4096u

struct lumio_pool {
    pthread_mutex_t mu;
    lumio_buffer *free_list[NCLASSES];
    unsigned max_buffers;
    uint64_t max_bytes;
    unsigned out_buffers; /* handed out */
    uint64_t out_bytes;
    unsigned kept_buffers; /* released, kept for reuse */
    uint64_t kept_bytes;
    uint64_t peak_buffers, peak_bytes;
    bool waiting;
    bool dead; /* destroyed while buffers were out */
    void (*wake)(void *);
    void *wake_arg;
};

static uint64_t class_size(unsigned cls) {
    uint64_t base = (uint64_t)MIN_SIZE << (cls / 2);
    return (cls & 1) ? base + base / 2 : base;
}

static unsigned size_class(uint64_t size) {
    unsigned cls = 0;
    while (cls + 1 < NCLASSES && class_size(cls) < size) cls++;
    return cls;
}

int lumio__pool_create(lumio_pool **out, unsigned max_buffers, uint64_t max_bytes,
                       void (*wake)(void *), void *wake_arg) {
    lumio_pool *p = calloc(1, sizeof(*p));
    if (!p) return -ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    p->max_buffers = max_buffers ? max_buffers : 1;
    p->max_bytes = max_bytes ? max_bytes : MIN_SIZE;
    p->wake = wake;
    p->wake_arg = wake_arg;
    *out = p;
    return 0;
}

static void drop_kept(lumio_pool *p, unsigned cls) {
    lumio_buffer *b = p->free_list[cls];
    p->free_list[cls] = b->next;
    p->kept_buffers--;
    p->kept_bytes -= b->cap;
    free(b->mem);
    free(b);
}

/* Free kept buffers (other classes first) until `need` more bytes fit. */
static void make_room(lumio_pool *p, uint64_t need, unsigned keep_cls) {
    for (unsigned c = NCLASSES; c-- > 0 && p->out_bytes + p->kept_bytes + need > p->max_bytes;)
        while (c != keep_cls && p->free_list[c] &&
               p->out_bytes + p->kept_bytes + need > p->max_bytes)
            drop_kept(p, c);
    while (p->free_list[keep_cls] && p->out_bytes + p->kept_bytes + need > p->max_bytes)
        drop_kept(p, keep_cls);
}

bool lumio__pool_fits(const lumio_pool *p, uint64_t size) {
    return class_size(size_class(size)) <= p->max_bytes && size <= class_size(NCLASSES - 1);
}

lumio_buffer *lumio__pool_get(lumio_pool *p, uint64_t size) {
    unsigned cls = size_class(size);
    uint64_t cap = class_size(cls);
    lumio_buffer *b = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->out_buffers >= p->max_buffers || p->out_bytes + cap > p->max_bytes) goto full;
    if (p->free_list[cls]) {
        b = p->free_list[cls];
        p->free_list[cls] = b->next;
        p->kept_buffers--;
        p->kept_bytes -= cap;
    } else {
        make_room(p, cap, cls);
        if (p->out_bytes + p->kept_bytes + cap > p->max_bytes) goto full;
        b = calloc(1, sizeof(*b));
        void *mem = NULL;
        if (!b || posix_memalign(&mem, 4096, cap) != 0) {
            free(b);
            b = NULL;
            goto full; /* out of memory: behave as a full pool; a release will retry */
        }
        b->mem = mem;
        b->cap = cap;
        b->cls = cls;
        b->pool = p;
    }
    p->out_buffers++;
    p->out_bytes += cap;
    if (p->out_buffers > p->peak_buffers) p->peak_buffers = p->out_buffers;
    if (p->out_bytes > p->peak_bytes) p->peak_bytes = p->out_bytes;
    atomic_store(&b->refs, 1);
    b->next = NULL;
    pthread_mutex_unlock(&p->mu);
    return b;
full:
    p->waiting = true;
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void lumio__buffer_ref(lumio_buffer *b, unsigned n) {
    atomic_fetch_add(&b->refs, n);
}

static void pool_free(lumio_pool *p) {
    for (unsigned c = 0; c < NCLASSES; c++)
        while (p->free_list[c]) drop_kept(p, c);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void lumio_buffer_release(lumio_buffer *b) {
    if (!b) return;
    if (atomic_fetch_sub(&b->refs, 1) != 1) return;
    lumio_pool *p = b->pool;
    pthread_mutex_lock(&p->mu);
    p->out_buffers--;
    p->out_bytes -= b->cap;
    if (p->dead) {
        free(b->mem);
        free(b);
        bool last = p->out_buffers == 0;
        pthread_mutex_unlock(&p->mu);
        if (last) pool_free(p);
        return;
    }
    b->next = p->free_list[b->cls];
    p->free_list[b->cls] = b;
    p->kept_buffers++;
    p->kept_bytes += b->cap;
    /* Wake under the lock: lumio__pool_destroy() takes it, so the owner
     * cannot be gone while its wake function runs. */
    if (p->waiting && p->wake) p->wake(p->wake_arg);
    p->waiting = false;
    pthread_mutex_unlock(&p->mu);
}

void lumio__pool_destroy(lumio_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    for (unsigned c = 0; c < NCLASSES; c++)
        while (p->free_list[c]) drop_kept(p, c);
    p->wake = NULL;
    if (p->out_buffers > 0) {
        p->dead = true; /* the last release frees the pool */
        pthread_mutex_unlock(&p->mu);
        return;
    }
    pthread_mutex_unlock(&p->mu);
    pool_free(p);
}

void lumio__pool_counts(lumio_pool *p, unsigned *out_buffers, uint64_t *out_bytes,
                        uint64_t *peak_buffers, uint64_t *peak_bytes) {
    pthread_mutex_lock(&p->mu);
    if (out_buffers) *out_buffers = p->out_buffers;
    if (out_bytes) *out_bytes = p->out_bytes;
    if (peak_buffers) *peak_buffers = p->peak_buffers;
    if (peak_bytes) *peak_bytes = p->peak_bytes;
    pthread_mutex_unlock(&p->mu);
}
