/* The io_uring backend: tasks become SQEs, CQEs become finished tasks. */
#include "core/core.h"
#include "ring/backend.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct uring_backend {
    backend b;
    struct io_uring ring;
    int efd;         /* eventfd that wake() writes */
    bool poll_armed; /* a POLL_ADD on efd is in the ring */
    bool has_ring;
    unsigned queued; /* SQEs prepared but not submitted */
    task *failed;    /* tasks that found no SQE: handed back by the next reap */
} uring_backend;

/* user_data of the eventfd poll; never a task address. */
#define WAKE_TAG 1ull

static struct io_uring_sqe *get_sqe(uring_backend *u) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    while (!sqe) {
        /* The SQ is sized for the engine's depth, so this is rare: push what
         * is queued to the kernel and try again. */
        int rc = io_uring_submit(&u->ring);
        /* -EBUSY: completions must be reaped first; fail the task rather than spin. */
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN) return NULL;
        u->queued = 0;
        sqe = io_uring_get_sqe(&u->ring);
    }
    return sqe;
}

static void uring_queue(backend *b, task *t) {
    uring_backend *u = (uring_backend *)b;
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe) { /* only when the ring itself is broken: fail the task */
        t->res = -EIO;
        t->next = u->failed;
        u->failed = t;
        return;
    }
    switch (t->kind) {
    case TASK_OPEN:
        if (b->fixed_files)
            io_uring_prep_openat_direct(sqe, AT_FDCWD, t->path, t->open_flags, t->mode,
                                        IORING_FILE_INDEX_ALLOC - 1); /* liburing adds 1 */
        else
            io_uring_prep_openat(sqe, AT_FDCWD, t->path, t->open_flags, t->mode);
        break;
    case TASK_STATX:
        if (t->path)
            io_uring_prep_statx(sqe, AT_FDCWD, t->path, 0, STATX_TYPE | STATX_SIZE | STATX_DIOALIGN,
                                t->stx);
        else
            io_uring_prep_statx(sqe, t->fd, "", AT_EMPTY_PATH,
                                STATX_TYPE | STATX_SIZE | STATX_DIOALIGN, t->stx);
        break;
    case TASK_READ:
        io_uring_prep_read(sqe, t->fd, t->buf, (unsigned)t->len, t->off);
        break;
    case TASK_WRITE:
        io_uring_prep_write(sqe, t->fd, t->buf, (unsigned)t->len, t->off);
        break;
    case TASK_FSYNC:
        io_uring_prep_fsync(sqe, t->fd, 0);
        break;
    case TASK_POLL:
        io_uring_prep_poll_add(sqe, t->fd, POLLIN);
        break;
    case TASK_CLOSE:
        if (t->fixed)
            io_uring_prep_close_direct(sqe, (unsigned)t->fd);
        else
            io_uring_prep_close(sqe, t->fd);
        break;
    }
    if (t->fixed && t->kind != TASK_CLOSE && t->kind != TASK_OPEN) sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data(sqe, t);
    u->queued++;
}

static void arm_poll(uring_backend *u) {
    if (u->poll_armed) return;
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe) return;
    io_uring_prep_poll_add(sqe, u->efd, POLLIN);
    io_uring_sqe_set_data64(sqe, WAKE_TAG);
    u->poll_armed = true;
    u->queued++;
}

static void uring_flush(backend *b) {
    uring_backend *u = (uring_backend *)b;
    if (!u->queued) return;
    int rc;
    do rc = io_uring_submit(&u->ring);
    while (rc == -EINTR);
    if (rc >= 0) u->queued = 0;
}

static int uring_reap(backend *b, task **out, int max, bool block) {
    uring_backend *u = (uring_backend *)b;
    if (block && !u->failed) arm_poll(u);
    struct io_uring_cqe *cqe;
    int rc;
    if (block && !u->failed) {
        do rc = io_uring_submit_and_wait(&u->ring, 1);
        while (rc == -EINTR);
    } else {
        do rc = u->queued ? io_uring_submit(&u->ring) : 0;
        while (rc == -EINTR);
    }
    if (rc >= 0) u->queued = 0;
    int n = 0;
    while (u->failed && n < max) {
        out[n++] = u->failed;
        u->failed = u->failed->next;
    }
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&u->ring, head, cqe) {
        if (n >= max) break;
        seen++;
        if (cqe->user_data == WAKE_TAG) {
            uint64_t v;
            while (read(u->efd, &v, sizeof v) > 0) {
            }
            u->poll_armed = false;
            continue;
        }
        task *t = io_uring_cqe_get_data(cqe);
        t->res = cqe->res;
        out[n++] = t;
    }
    io_uring_cq_advance(&u->ring, seen);
    return n;
}

static void uring_wake(backend *b) {
    uring_backend *u = (uring_backend *)b;
    uint64_t one = 1;
    ssize_t w = write(u->efd, &one, sizeof one);
    (void)w; /* EAGAIN means a wake-up is already pending */
}

static void uring_destroy(backend *b) {
    uring_backend *u = (uring_backend *)b;
    if (u->has_ring) io_uring_queue_exit(&u->ring);
    if (u->efd >= 0) close(u->efd);
    free(u);
}

/* io_uring may be compiled out, disabled by sysctl, blocked by seccomp or too
 * old for the opcodes we use: any of those sends the engine to threads. */
static int probe_ops(struct io_uring *ring) {
    struct io_uring_probe *p = io_uring_get_probe_ring(ring);
    if (!p) return -ENOSYS;
    static const int ops[] = {IORING_OP_OPENAT, IORING_OP_STATX, IORING_OP_READ,    IORING_OP_WRITE,
                              IORING_OP_CLOSE,  IORING_OP_FSYNC, IORING_OP_POLL_ADD};
    int rc = 0;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (!io_uring_opcode_supported(p, ops[i])) rc = -ENOSYS;
    io_uring_free_probe(p);
    return rc;
}

int lumio__backend_uring_create(backend **out, const backend_config *cfg) {
    uring_backend *u = calloc(1, sizeof(*u));
    if (!u) return -ENOMEM;
    u->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (u->efd < 0) {
        int e = -errno;
        free(u);
        return e;
    }
    unsigned entries = 8;
    while (entries < cfg->depth + cfg->max_open_files + 8) entries *= 2;
    if (entries > 32768) entries = 32768;
    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    p.cq_entries = entries * 4;
    if (cfg->sqpoll) {
        p.flags |= IORING_SETUP_SQPOLL;
        p.sq_thread_idle = 50;
    }
    int rc = io_uring_queue_init_params(entries, &u->ring, &p);
    if (rc == -EINVAL) { /* older kernel: without the task-run hints */
        p = (struct io_uring_params){0};
        p.flags = IORING_SETUP_CQSIZE | (cfg->sqpoll ? IORING_SETUP_SQPOLL : 0);
        p.cq_entries = entries * 4;
        rc = io_uring_queue_init_params(entries, &u->ring, &p);
    }
    if (rc < 0) goto fail;
    u->has_ring = true;
    if ((rc = probe_ops(&u->ring)) < 0) goto fail;
    if (cfg->fixed_files &&
        io_uring_register_files_sparse(&u->ring, cfg->max_open_files + cfg->depth) == 0)
        u->b.fixed_files = true;
    u->b.name = "io_uring";
    u->b.queue = uring_queue;
    u->b.flush = uring_flush;
    u->b.reap = uring_reap;
    u->b.wake = uring_wake;
    u->b.destroy = uring_destroy;
    *out = &u->b;
    return 0;
fail:
    uring_destroy(&u->b);
    return rc;
}
