/* The ring's buffer pool: the memory completions hand out. */
#ifndef LUMIO_RING_POOL_H
#define LUMIO_RING_POOL_H

#include "core/core.h"

#include <lumio/ring.h>

/* ---- buffer pool ----------------------------------------------------------
 * Buffers are 4 KiB aligned (good for O_DIRECT) and come in size classes. The
 * pool caps the buffers and bytes handed out; it also keeps released buffers
 * for reuse, and the bytes it keeps plus the bytes out never pass the byte cap.
 * Release is thread-safe and reference counted (one buffer can back several
 * completions). */
typedef struct lumio_pool lumio_pool;

struct lumio_buffer {
    lumio_pool *pool;
    uint8_t *mem;
    uint64_t cap;
    atomic_uint refs;
    unsigned cls;
    struct lumio_buffer *next;
};

/* wake(arg) is called (from any thread) when a buffer comes back while the
 * owner said it was waiting for one (lumio__pool_get returned NULL). */
int lumio__pool_create(lumio_pool **out, unsigned max_buffers, uint64_t max_bytes,
                       void (*wake)(void *), void *wake_arg);
/* Destroy: buffers still out stay valid and are freed when released. */
void lumio__pool_destroy(lumio_pool *p);
/* A buffer of at least `size` bytes with one reference, or NULL when the cap
 * is reached (then wake() will be called once one comes back). */
lumio_buffer *lumio__pool_get(lumio_pool *p, uint64_t size);
/* Add references (for a buffer shared by several completions). */
void lumio__buffer_ref(lumio_buffer *b, unsigned n);
/* Whether `size` can ever fit under the byte cap. */
bool lumio__pool_fits(const lumio_pool *p, uint64_t size);
void lumio__pool_counts(lumio_pool *p, unsigned *out_buffers, uint64_t *out_bytes,
                        uint64_t *peak_buffers, uint64_t *peak_bytes);

#endif
