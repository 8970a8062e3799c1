/* The ring engine's remote backend: the engine's tasks on objects named by
 * URL, run by the remote client (the ring depends on the remote layer, never
 * the other way). OPEN makes an object handle (no request), STATX is a HEAD, READ a
 * ranged GET straight into the engine's memory, CLOSE drops the handle.
 * Tasks finish on the client's thread, which queues them for reap() and
 * wakes the engine. */
#include "remote/client.h"
#include "ring/backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rtask {
    rreq q;
    task *t;
    struct rbackend *rb;
    robj *stat_obj; /* STATX: a reference held for the HEAD */
    bool by_get;    /* STATX: HEAD was refused, a GET of the first byte asked */
    uint8_t byte;   /* and its landing place */
    struct rtask *next_free;
    struct rtask *live_prev, *live_next; /* in flight (under rb->mu), for cancel */
} rtask;

typedef struct rbackend {
    backend b;
    lumio_remote *rm;
    void (*notify)(void *);
    void *notify_arg;
    pthread_mutex_t mu;
    task *done_head, *done_tail; /* under mu */
    robj **slots;                /* open objects by handle */
    unsigned nslots, cap;
    rtask *free_tasks;
    rtask *live; /* requests in flight */
} rbackend;

/* Under rb->mu: queue a finished task for reap(). */
static void push_done(rbackend *rb, task *t) {
    t->next = NULL;
    if (rb->done_tail)
        rb->done_tail->next = t;
    else
        rb->done_head = t;
    rb->done_tail = t;
}

static void finish(rbackend *rb, task *t) {
    pthread_mutex_lock(&rb->mu);
    push_done(rb, t);
    pthread_mutex_unlock(&rb->mu);
}

static char *dup_text(const char *s) {
    return s && *s ? strdup(s) : NULL;
}

/* A STATX whose HEAD was refused or gave no size: asked again as a GET of
 * the first byte, as lumio_remote_stat does (completions may submit). */
static bool stat_by_get(rtask *rt, bool have_size) {
    rreq *q = &rt->q;
    if (q->kind != RREQ_HEAD || rt->by_get) return false;
    if (q->res < 0 ? !lumio__head_refused(q->h.status) : have_size) return false;
    rt->by_get = true;
    q->kind = RREQ_GET;
    q->off = 0;
    q->len = 1;
    q->dst = &rt->byte;
    q->whole_ok = true;
    lumio__rc_submit(rt->rb->rm, q);
    return true;
}

static void rtask_done(rreq *q) {
    rtask *rt = q->arg;
    rbackend *rb = rt->rb;
    task *t = rt->t;
    if (q->kind == RREQ_HEAD) {
        pthread_mutex_lock(&rb->rm->mu);
        bool have_size = q->obj->have_size;
        pthread_mutex_unlock(&rb->rm->mu);
        if (stat_by_get(rt, have_size)) return;
    }
    if (q->res < 0) {
        t->res = q->res;
        t->detail = dup_text(q->err);
    } else if (t->kind == TASK_STATX) {
        robj *o = q->obj;
        pthread_mutex_lock(&rb->rm->mu);
        bool have = o->have_size;
        uint64_t size = o->size;
        pthread_mutex_unlock(&rb->rm->mu);
        if (!have) {
            char text[1200];
            snprintf(text, sizeof text, "GET %s: the server gives no size (no Content-Length)",
                     o->shown);
            t->res = LUMIO_E_HTTP;
            t->detail = dup_text(text);
        } else {
            memset(t->stx, 0, sizeof *t->stx);
            t->stx->stx_mask = STATX_SIZE | STATX_TYPE;
            t->stx->stx_mode = S_IFREG | 0444;
            t->stx->stx_size = size;
            t->res = 0;
        }
    } else {
        t->res = (int)q->got; /* fewer than asked only where the object ends */
    }
    if (rt->stat_obj) lumio__robj_put(rb->rm, rt->stat_obj);
    /* Queue and wake under the lock: once the engine can reap this task it
     * may destroy the ring, so nothing of it is touched after the unlock. */
    pthread_mutex_lock(&rb->mu);
    if (rt->live_prev)
        rt->live_prev->live_next = rt->live_next;
    else
        rb->live = rt->live_next;
    if (rt->live_next) rt->live_next->live_prev = rt->live_prev;
    rt->next_free = rb->free_tasks;
    rb->free_tasks = rt;
    push_done(rb, t);
    rb->notify(rb->notify_arg);
    pthread_mutex_unlock(&rb->mu);
}

static rtask *rtask_new(rbackend *rb) {
    pthread_mutex_lock(&rb->mu);
    rtask *rt = rb->free_tasks;
    if (rt) rb->free_tasks = rt->next_free;
    pthread_mutex_unlock(&rb->mu);
    if (!rt) rt = malloc(sizeof *rt);
    if (rt) memset(rt, 0, sizeof *rt);
    return rt;
}

static int slot_new(rbackend *rb, robj *o) {
    for (unsigned i = 0; i < rb->nslots; i++)
        if (!rb->slots[i]) {
            rb->slots[i] = o;
            return (int)i;
        }
    if (rb->nslots == rb->cap) {
        unsigned cap = rb->cap ? rb->cap * 2 : 64;
        robj **s = realloc(rb->slots, cap * sizeof *s);
        if (!s) return -ENOMEM;
        rb->slots = s;
        rb->cap = cap;
    }
    rb->slots[rb->nslots] = o;
    return (int)rb->nslots++;
}

static void fail_now(rbackend *rb, task *t, int code, const char *text) {
    t->res = code;
    t->detail = dup_text(text);
    finish(rb, t);
}

static void rb_queue(backend *b, task *t) {
    rbackend *rb = (rbackend *)b;
    char err[512];
    t->detail = NULL;
    switch (t->kind) {
    case TASK_OPEN: {
        robj *o;
        int rc = lumio__robj_get(rb->rm, t->path, &o, err, sizeof err);
        if (rc < 0) {
            fail_now(rb, t, rc, err);
            return;
        }
        int slot = slot_new(rb, o);
        if (slot < 0) lumio__robj_put(rb->rm, o);
        t->res = slot;
        finish(rb, t);
        return;
    }
    case TASK_CLOSE:
        if (t->fd >= 0 && (unsigned)t->fd < rb->nslots && rb->slots[t->fd]) {
            lumio__robj_put(rb->rm, rb->slots[t->fd]);
            rb->slots[t->fd] = NULL;
        }
        t->res = 0;
        finish(rb, t);
        return;
    case TASK_STATX:
    case TASK_READ: {
        robj *o = NULL, *stat_obj = NULL;
        if (t->kind == TASK_STATX) {
            int rc = lumio__robj_get(rb->rm, t->path, &stat_obj, err, sizeof err);
            if (rc < 0) {
                fail_now(rb, t, rc, err);
                return;
            }
            o = stat_obj;
        } else if (t->fd >= 0 && (unsigned)t->fd < rb->nslots) {
            o = rb->slots[t->fd];
        }
        rtask *rt = o ? rtask_new(rb) : NULL;
        if (!rt) {
            if (stat_obj) lumio__robj_put(rb->rm, stat_obj);
            fail_now(rb, t, o ? -ENOMEM : -EBADF, NULL);
            return;
        }
        rt->t = t;
        rt->rb = rb;
        rt->stat_obj = stat_obj;
        rt->q.kind = t->kind == TASK_STATX ? RREQ_HEAD : RREQ_GET;
        rt->q.obj = o;
        rt->q.off = t->off;
        rt->q.len = t->len;
        rt->q.dst = t->buf;
        rt->q.fd = -1;
        rt->q.done = rtask_done;
        rt->q.arg = rt;
        pthread_mutex_lock(&rb->mu);
        rt->live_next = rb->live;
        if (rb->live) rb->live->live_prev = rt;
        rb->live = rt;
        pthread_mutex_unlock(&rb->mu);
        lumio__rc_submit(rb->rm, &rt->q);
        return;
    }
    default: /* writes never get here: the engine refuses them at submit */
        fail_now(rb, t, -EROFS, NULL);
        return;
    }
}

static void rb_flush(backend *b) {
    (void)b;
}

static int rb_reap(backend *b, task **out, int max, bool block) {
    rbackend *rb = (rbackend *)b;
    (void)block; /* the engine blocks in the local backend, which notify wakes */
    int n = 0;
    pthread_mutex_lock(&rb->mu);
    while (rb->done_head && n < max) {
        out[n++] = rb->done_head;
        rb->done_head = rb->done_head->next;
    }
    if (!rb->done_head) rb->done_tail = NULL;
    pthread_mutex_unlock(&rb->mu);
    return n;
}

static void rb_wake(backend *b) {
    rbackend *rb = (rbackend *)b;
    rb->notify(rb->notify_arg);
}

/* The ring is going away: what is in flight ends as soon as it can. */
static void rb_cancel(backend *b) {
    rbackend *rb = (rbackend *)b;
    pthread_mutex_lock(&rb->mu);
    for (rtask *rt = rb->live; rt; rt = rt->live_next) lumio__rc_cancel(rb->rm, &rt->q);
    pthread_mutex_unlock(&rb->mu);
}

static void rb_destroy(backend *b) {
    rbackend *rb = (rbackend *)b;
    /* A barrier: a done callback still inside its critical section ends
     * before the memory goes. */
    pthread_mutex_lock(&rb->mu);
    pthread_mutex_unlock(&rb->mu);
    for (unsigned i = 0; i < rb->nslots; i++)
        if (rb->slots[i]) lumio__robj_put(rb->rm, rb->slots[i]);
    free(rb->slots);
    while (rb->free_tasks) {
        rtask *rt = rb->free_tasks;
        rb->free_tasks = rt->next_free;
        free(rt);
    }
    for (task *t = rb->done_head; t; t = t->next) free(t->detail);
    pthread_mutex_destroy(&rb->mu);
    free(rb);
}

int lumio__backend_remote_create(backend **out, lumio_remote *rm, void (*notify)(void *),
                                 void *arg) {
    rbackend *rb = calloc(1, sizeof *rb);
    if (!rb) return -ENOMEM;
    rb->rm = rm;
    rb->notify = notify;
    rb->notify_arg = arg;
    pthread_mutex_init(&rb->mu, NULL);
    rb->b.name = "remote";
    rb->b.queue = rb_queue;
    rb->b.flush = rb_flush;
    rb->b.reap = rb_reap;
    rb->b.wake = rb_wake;
    rb->b.destroy = rb_destroy;
    rb->b.cancel = rb_cancel;
    *out = &rb->b;
    return 0;
}

void lumio__backend_remote_sizes(const lumio_remote *rm, uint64_t *gap, uint64_t *cmax,
                                 uint64_t *part) {
    /* One request's result is an int: stay under 2 GiB. */
    *gap = rm->o.coalesce_gap;
    *cmax = LUMIO_MIN(rm->o.coalesce_max, 0x7ffff000u);
    *part = LUMIO_MIN(rm->o.part_size, 0x7ffff000u);
}
