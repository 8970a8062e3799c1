/* The two I/O backends behind the engine: io_uring and a pthread pool of
 * blocking calls. The engine hands them tasks and reaps them back finished;
 * it never blocks anywhere else. */
#ifndef LUMIO_RING_BACKEND_H
#define LUMIO_RING_BACKEND_H

#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>

typedef enum task_kind {
    TASK_OPEN,  /* path, open_flags, mode -> res = fd (or fixed slot) */
    TASK_STATX, /* path (or fd with AT_EMPTY_PATH) -> stx */
    TASK_READ,  /* fd, buf, len, off -> res = bytes */
    TASK_WRITE, /* fd, buf, len, off -> res = bytes */
    TASK_FSYNC, /* fd */
    TASK_CLOSE, /* fd */
    TASK_POLL   /* fd: wait until it is readable (a non-blocking pipe) */
} task_kind;

typedef struct task {
    task_kind kind;
    int fd;
    bool fixed; /* fd is an io_uring registered-file slot */
    const char *path;
    int open_flags;
    unsigned mode;
    struct statx *stx;
    void *buf;
    uint64_t len;
    uint64_t off;
    int res;           /* filled by the backend: >= 0 or -errno */
    char *detail;      /* remote backend: malloc'd text of a failure (URL, range, why) */
    struct task *next; /* backend queue link */
} task;

typedef struct backend backend;
struct backend {
    const char *name;
    /* Queue a task; submitted at the next flush. Never fails: the engine
     * keeps within `depth` tasks in flight. */
    void (*queue)(backend *b, task *t);
    /* Make queued tasks start. */
    void (*flush)(backend *b);
    /* Collect finished tasks; with `block`, wait until one is finished or
     * wake() is called. Returns the count (may be 0). */
    int (*reap)(backend *b, task **out, int max, bool block);
    /* Wake a blocked reap (any thread). */
    void (*wake)(backend *b);
    void (*destroy)(backend *b);
    /* Optional: make what is in flight end soon (the remote backend cancels
     * its requests); they are still reaped as usual. */
    void (*cancel)(backend *b);
    bool fixed_files; /* opens land in the registered file table */
};

typedef struct backend_config {
    unsigned depth;
    unsigned io_threads;
    unsigned max_open_files;
    bool sqpoll;
    bool fixed_files;
} backend_config;

/* Each returns 0 or a negative code (the uring one: -ENOSYS, -EPERM, ... when
 * io_uring is not usable here). */
int lumio__backend_uring_create(backend **out, const backend_config *cfg);
int lumio__backend_threads_create(backend **out, const backend_config *cfg);

/* Objects on HTTP servers and S3, through a remote client (src/remote):
 * OPEN parses a location into an object handle, STATX is a HEAD, READ a
 * ranged GET. Finished tasks are handed back by reap(); notify(arg) is called
 * from the client's thread when one finishes, to wake the engine. */
struct lumio_remote;
int lumio__backend_remote_create(backend **out, struct lumio_remote *rm, void (*notify)(void *),
                                 void *arg);
/* The remote client's planning sizes: merge gap, largest merged read, part. */
void lumio__backend_remote_sizes(const struct lumio_remote *rm, uint64_t *gap, uint64_t *cmax,
                                 uint64_t *part);

#endif
