/* The Python recorder (lumio.record): one per process. record.c holds the
 * module's functions (start, stop, the dump signal, fork); record_sampler.c
 * the native thread that samples every thread's Python stack. */
#ifndef LUMIO_PY_RECORD_H
#define LUMIO_PY_RECORD_H

#include "ext.h"

#include <pthread.h>

/* A frame met for the first time in a tick: its strings copied under the
 * GIL, interned after it is released. */
typedef struct rec_pending {
    char *function, *file;
    uint32_t line;
    uint32_t id;  /* once interned */
    int64_t slot; /* its cache slot, -1 when not cached */
} rec_pending;

/* (code object, line) -> frame id; each entry holds a reference to its code
 * object, so that an address is never the key of two code objects. */
typedef struct rec_slot {
    PyObject *code;
    uint32_t line;
    uint32_t id; /* REC_PENDING | index in pend while its tick is on */
} rec_slot;

/* A thread's stack in the tick: depth ids from ids[start]. */
typedef struct rec_stack {
    uint64_t tid;        /* the native thread id */
    unsigned long ident; /* threading's */
    size_t start;
    uint32_t depth;
} rec_stack;

#define REC_PENDING  0x80000000u /* frame ids of a writer stay far below */
#define REC_MAX_HIDE 8

typedef struct rec_sampler {
    lumio_stream_writer *w;
    PyInterpreterState *interp;
    uint64_t period_ns;
    /* The runner's frames, left out of the main thread's stacks: at hide[0]
     * the stack is cut, and the hide[1..] frames just inside it go too. */
    PyObject *hide[REC_MAX_HIDE];
    int nhide;
    pthread_t thread;
    PyThreadState *self; /* the sampler's, made once */
    pthread_mutex_t mu;  /* guards stop, with cv to wake the thread at once */
    pthread_cond_t cv;
    bool stop;
    uint64_t ts; /* the tick's timestamp */
    /* The sampler thread's own, between ticks. */
    rec_slot *slots;
    size_t nslots, used;
    uint32_t *ids;
    size_t nids, ids_cap;
    rec_stack *stacks;
    size_t nstacks, stacks_cap;
    rec_pending *pend;
    size_t npend, pend_cap;
    char *names; /* "TID NAME\0" records of the tick, back to back */
    size_t names_len, names_cap;
    PyObject *known;              /* dict: native thread id -> name recorded */
    uint64_t thread_sig[3];       /* count, sum, xor of the last tick's thread ids */
    uint64_t ticks, next_refresh; /* thread names are looked up again each second */
    uint64_t samples;
    uint64_t held_us; /* the GIL held by the sampler, in all: what the program waited */
    int err;          /* the first failure; the sampler stops there */
    char errtext[LUMIO_ERROR_MAX + 64];
} rec_sampler;

/* Start the thread on s (w, interp and period_ns set, the rest zero); the
 * caller holds the GIL. -errno. */
int lpy_sampler_start(rec_sampler *s);
/* Stop and join it (the caller has released the GIL), then free what it
 * held that needs no GIL. */
void lpy_sampler_join(rec_sampler *s);
/* With the GIL: drop the code objects the cache holds and the names. */
void lpy_sampler_free(rec_sampler *s);

uint64_t lpy_monotonic_us(void);

#endif
