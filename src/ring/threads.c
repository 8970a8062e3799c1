/* The thread-pool backend: blocking open/statx/pread/pwrite/fsync/close on a
 * few threads. Used where io_uring is not available, or when asked for. */
#include "core/core.h"
#include "ring/backend.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct threads_backend {
    backend b;
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* tasks queued, or stop */
    pthread_cond_t done_cv; /* tasks done, or woken */
    task *todo_head, *todo_tail;
    task *done_head, *done_tail;
    task *staged_head, *staged_tail; /* queued by the engine, not yet flushed */
    bool woken;
    bool stop;
    unsigned nthreads;
    pthread_t threads[];
} threads_backend;

static void run_task(task *t) {
    ssize_t r;
    switch (t->kind) {
    case TASK_OPEN:
        do r = open(t->path, t->open_flags | O_CLOEXEC, t->mode);
        while (r < 0 && errno == EINTR);
        break;
    case TASK_STATX:
        if (t->path)
            r = statx(AT_FDCWD, t->path, 0, STATX_TYPE | STATX_SIZE | STATX_DIOALIGN, t->stx);
        else
            r = statx(t->fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE | STATX_DIOALIGN, t->stx);
        break;
    case TASK_READ: /* UINT64_MAX: at the file position (a pipe cannot pread) */
        do
            r = t->off == UINT64_MAX ? read(t->fd, t->buf, t->len)
                                     : pread(t->fd, t->buf, t->len, (off_t)t->off);
        while (r < 0 && errno == EINTR);
        break;
    case TASK_WRITE:
        do r = pwrite(t->fd, t->buf, t->len, (off_t)t->off);
        while (r < 0 && errno == EINTR);
        break;
    case TASK_FSYNC:
        r = fsync(t->fd);
        break;
    case TASK_CLOSE:
        r = close(t->fd);
        break;
    case TASK_POLL: {
        struct pollfd p = {.fd = t->fd, .events = POLLIN};
        do r = poll(&p, 1, -1);
        while (r < 0 && errno == EINTR);
        break;
    }
    default:
        r = -1;
        errno = EINVAL;
    }
    t->res = r < 0 ? -errno : (int)r;
}

static void *io_main(void *arg) {
    threads_backend *tb = arg;
    pthread_mutex_lock(&tb->mu);
    for (;;) {
        while (!tb->todo_head && !tb->stop) pthread_cond_wait(&tb->work_cv, &tb->mu);
        task *t = tb->todo_head;
        if (!t) break;
        tb->todo_head = t->next;
        if (!tb->todo_head) tb->todo_tail = NULL;
        pthread_mutex_unlock(&tb->mu);
        run_task(t);
        pthread_mutex_lock(&tb->mu);
        t->next = NULL;
        if (tb->done_tail)
            tb->done_tail->next = t;
        else
            tb->done_head = t;
        tb->done_tail = t;
        pthread_cond_signal(&tb->done_cv);
    }
    pthread_mutex_unlock(&tb->mu);
    return NULL;
}

static void threads_queue(backend *b, task *t) {
    threads_backend *tb = (threads_backend *)b;
    t->next = NULL; /* only the engine's thread touches the staged list */
    if (tb->staged_tail)
        tb->staged_tail->next = t;
    else
        tb->staged_head = t;
    tb->staged_tail = t;
}

static void threads_flush(backend *b) {
    threads_backend *tb = (threads_backend *)b;
    if (!tb->staged_head) return;
    pthread_mutex_lock(&tb->mu);
    if (tb->todo_tail)
        tb->todo_tail->next = tb->staged_head;
    else
        tb->todo_head = tb->staged_head;
    tb->todo_tail = tb->staged_tail;
    pthread_cond_broadcast(&tb->work_cv);
    pthread_mutex_unlock(&tb->mu);
    tb->staged_head = tb->staged_tail = NULL;
}

static int threads_reap(backend *b, task **out, int max, bool block) {
    threads_backend *tb = (threads_backend *)b;
    threads_flush(b);
    pthread_mutex_lock(&tb->mu);
    while (block && !tb->done_head && !tb->woken) pthread_cond_wait(&tb->done_cv, &tb->mu);
    tb->woken = false;
    int n = 0;
    while (tb->done_head && n < max) {
        out[n++] = tb->done_head;
        tb->done_head = tb->done_head->next;
    }
    if (!tb->done_head) tb->done_tail = NULL;
    pthread_mutex_unlock(&tb->mu);
    return n;
}

static void threads_wake(backend *b) {
    threads_backend *tb = (threads_backend *)b;
    pthread_mutex_lock(&tb->mu);
    tb->woken = true;
    pthread_cond_signal(&tb->done_cv);
    pthread_mutex_unlock(&tb->mu);
}

static void threads_destroy(backend *b) {
    threads_backend *tb = (threads_backend *)b;
    pthread_mutex_lock(&tb->mu);
    tb->stop = true;
    pthread_cond_broadcast(&tb->work_cv);
    pthread_mutex_unlock(&tb->mu);
    for (unsigned i = 0; i < tb->nthreads; i++) pthread_join(tb->threads[i], NULL);
    pthread_cond_destroy(&tb->work_cv);
    pthread_cond_destroy(&tb->done_cv);
    pthread_mutex_destroy(&tb->mu);
    free(tb);
}

int lumio__backend_threads_create(backend **out, const backend_config *cfg) {
    unsigned n = cfg->io_threads ? cfg->io_threads : LUMIO_MAX(4u, 2 * lumio__ncores());
    threads_backend *tb = calloc(1, sizeof(*tb) + n * sizeof(pthread_t));
    if (!tb) return -ENOMEM;
    pthread_mutex_init(&tb->mu, NULL);
    pthread_cond_init(&tb->work_cv, NULL);
    pthread_cond_init(&tb->done_cv, NULL);
    tb->b.name = "threads";
    tb->b.queue = threads_queue;
    tb->b.flush = threads_flush;
    tb->b.reap = threads_reap;
    tb->b.wake = threads_wake;
    tb->b.destroy = threads_destroy;
    for (unsigned i = 0; i < n; i++) {
        int rc = lumio__thread_create(&tb->threads[i], io_main, tb);
        if (rc != 0) {
            tb->nthreads = i;
            threads_destroy(&tb->b);
            return -rc;
        }
    }
    tb->nthreads = n;
    *out = &tb->b;
    return 0;
}
