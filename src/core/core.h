/* Internal helpers shared by every part of lumio: errors, the buffer pool,
 * the worker pool, small utilities. Not installed. */
#ifndef LUMIO_CORE_H
#define LUMIO_CORE_H

#include <lumio/lumio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef NDEBUG
#define LUMIO_ASSERT(x) ((void)0)
#else
#include <assert.h>
#define LUMIO_ASSERT(x) assert(x)
#endif

#define LUMIO_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LUMIO_MAX(a, b) ((a) > (b) ? (a) : (b))

static inline uint64_t lumio_align_down(uint64_t x, uint64_t a) {
    return x & ~(a - 1);
}
static inline uint64_t lumio_align_up(uint64_t x, uint64_t a) {
    return (x + a - 1) & ~(a - 1);
}

/* Number of online cores (at least 1). */
unsigned lumio_ncores(void);

/* mem.c: a buffer of n bytes for large regions: from 4 MiB up a mapping of
 * its own with huge pages asked for (as numpy does), else malloc'd. Free it
 * with lumio_large_free and the same n. NULL when out of memory. */
void *lumio_large_alloc(size_t n);
void lumio_large_free(void *p, size_t n);

/* ---- worker pool ----------------------------------------------------------
 * Threads that run jobs in FIFO order. */
typedef struct lumio_job {
    void (*run)(struct lumio_job *);
    struct lumio_job *next;
} lumio_job;

typedef struct lumio_workers lumio_workers;
int lumio_workers_create(lumio_workers **out, unsigned n);
void lumio_workers_push(lumio_workers *w, lumio_job *j);
/* Run one queued job in the calling thread, if there is one. A thread that
 * would otherwise sleep waiting for the jobs' results helps instead. */
bool lumio_workers_run_one(lumio_workers *w);
/* Runs every queued job, then joins the threads. Accepts NULL. */
void lumio_workers_destroy(lumio_workers *w);

/* Format into a fixed buffer, never overflowing; returns buf. */
char *lumio_fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
