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
unsigned lumio__ncores(void);

/* mem.c: a buffer of n bytes for large regions: from 4 MiB up a mapping of
 * its own with huge pages asked for (as numpy does), else malloc'd. Free it
 * with lumio__large_free and the same n. NULL when out of memory. */
void *lumio__large_alloc(size_t n);
void lumio__large_free(void *p, size_t n);

/* ---- error texts ----------------------------------------------------------
 * The text of a handle's last failure (docs/API.md, "The last error's text"):
 * one fixed buffer per handle, behind a lock, plus one per thread tagged with
 * the handle it belongs to, so that a thread reads its own failure even when
 * others fail on the same handle at once. Nothing is allocated: nothing can
 * leak when a thread or a handle goes. Texts are redacted when set. */
typedef struct lumio__err {
    pthread_mutex_t mu;
    uint64_t id; /* unique for the process's life: a freed handle's tag never matches a new one */
    char text[LUMIO_ERROR_MAX];
} lumio__err;

void lumio__err_init(lumio__err *e);
void lumio__err_fini(lumio__err *e);
/* Record a failure on e (NULL: a call with no handle, such as a failed
 * open); the text is formatted, then redacted. */
void lumio__err_set(lumio__err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A call that fails with no handle always leaves a text: take a mark when
 * it starts, and at its end lumio__err_ensure sets "WHAT: strerror(rc)" if
 * the failure set none. Returns rc. */
uint64_t lumio__err_mark(void);
int lumio__err_ensure(uint64_t mark, int rc, const char *what);
/* Copy the text for this thread (docs/API.md) into buf; returns buf. */
char *lumio__err_get(const lumio__err *e, char *buf, size_t len);

/* A scratch buffer for a last_error call inside one expression. */
#define LUMIO__ERRBUF (char[LUMIO_ERROR_MAX]){0}, LUMIO_ERROR_MAX

/* Whether n bytes at p are all zero (reserved space of a public struct). */
bool lumio__zero(const void *p, size_t n);

/* ---- worker pool ----------------------------------------------------------
 * Threads that run jobs in FIFO order. */
typedef struct lumio_job {
    void (*run)(struct lumio_job *);
    struct lumio_job *next;
} lumio_job;

typedef struct lumio_workers lumio_workers;
int lumio__workers_create(lumio_workers **out, unsigned n);
void lumio__workers_push(lumio_workers *w, lumio_job *j);
/* Run one queued job in the calling thread, if there is one. A thread that
 * would otherwise sleep waiting for the jobs' results helps instead. */
bool lumio__workers_run_one(lumio_workers *w);
/* Runs every queued job, then joins the threads. Accepts NULL. */
void lumio__workers_destroy(lumio_workers *w);

/* thread.c: pthread_create for the threads the library starts, which block
 * every signal the program could handle or receive: a program's handler (a
 * SIGUSR1 dump, a SIGINT) runs on the program's threads only, never on one
 * of ours while it holds a lock or is being torn down, and a write to a
 * closed socket there is an EPIPE rather than a SIGPIPE. 0 or an errno. */
int lumio__thread_create(pthread_t *t, void *(*fn)(void *), void *arg);

/* Format into a fixed buffer, never overflowing; returns buf. */
char *lumio__fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
