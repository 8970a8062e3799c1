/* lumio cp: one file copied with system calls, and the helper threads that
 * do it (see cp.h). Used for what the ring cannot do well: a file system
 * that shares extents (FICLONE), large files (copy_file_range keeps the data
 * in the kernel), sparse files (only the data between holes is copied),
 * files whose size means nothing (proc, sys, FIFOs, devices: read until end
 * of file), and destinations that are not regular files (written in place).
 *
 * A regular destination is written under a temporary name in its directory,
 * created with O_CREAT | O_EXCL | O_NOFOLLOW (so nothing planted there is
 * followed or reused), and renamed over the final name only when complete;
 * on failure the temporary file is removed. */
#include "cli/cp.h"
#include "cli/common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CFR_MAX (1u << 30) /* bytes per copy_file_range call */

/* ---- temporary names -------------------------------------------------------------- */

static uint64_t name_seed;
static _Atomic uint64_t name_count;

void cp_names_init(void) {
    if (getrandom(&name_seed, sizeof name_seed, 0) != sizeof name_seed)
        name_seed = (uint64_t)now_seconds() * 1000003u ^ (uint64_t)getpid() << 32;
}

char *cp_tmp_name(const char *dst) {
    uint64_t state = name_seed + atomic_fetch_add(&name_count, 1) * 0x9e3779b97f4a7c15ull;
    uint64_t r = cli_splitmix(&state);
    const char *slash = strrchr(dst, '/');
    int dirlen = slash ? (int)(slash - dst) + 1 : 0;
    size_t n = (size_t)dirlen + 32;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%.*s.lumio-cp.%012llx", dirlen, dst, (unsigned long long)(r >> 16));
    return s;
}

mode_t cp_create_mode(mode_t mode) {
    return (mode & 0777) ? (mode & 0777) : 0600;
}

bool cp_mode_after(mode_t mode) {
    return (mode & 07000) || !(mode & 0777);
}

/* ---- errors --------------------------------------------------------------------------- */

static void fail(cp_job *j, int err, bool on_src) {
    if (j->err) return;
    j->err = -err;
    j->err_on_src = on_src;
}

/* copy_file_range errors that say "not here": the read/write path does it. */
static bool cfr_unsupported(int e) {
    return e == EXDEV || e == EINVAL || e == ENOSYS || e == EOPNOTSUPP || e == ENOTSUP ||
           e == EBADF || e == ETXTBSY || e == EPERM;
}

/* An error of a copy in the kernel is the destination's when it is about
 * room or writing, else the source's. */
static bool is_write_error(int e) {
    return e == ENOSPC || e == EDQUOT || e == EFBIG || e == EROFS || e == EACCES || e == EPERM;
}

/* ---- moving the bytes ---------------------------------------------------------------- */

/* n more bytes of the job copied. */
static void moved(cp_job *j, uint64_t n) {
    j->bytes_done += n;
    if (j->moved) __atomic_fetch_add(j->moved, n, __ATOMIC_RELAXED);
}

static int pwrite_all(int fd, const char *p, size_t len, off_t off) {
    while (len) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n == 0) return -EIO;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

typedef struct copy_ctx {
    cp_job *j;
    int in, out;
    bool cfr; /* copy_file_range still worth trying */
    char *buf;
    size_t bufsize;
} copy_ctx;

/* Copy [pos, end) by reads and writes; stops early at end of file. */
static int rw_range(copy_ctx *x, off_t pos, off_t end) {
    while (pos < end) {
        size_t want = (size_t)(end - pos) < x->bufsize ? (size_t)(end - pos) : x->bufsize;
        ssize_t n = pread(x->in, x->buf, want, pos);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            fail(x->j, errno, true);
            return -1;
        }
        if (n == 0) return 0;
        int rc = pwrite_all(x->out, x->buf, (size_t)n, pos);
        if (rc < 0) {
            fail(x->j, -rc, false);
            return -1;
        }
        pos += n;
        moved(x->j, (uint64_t)n);
    }
    return 0;
}

/* Copy [pos, end) in the kernel where it can, else by reads and writes. */
static int copy_range(copy_ctx *x, off_t pos, off_t end) {
    while (x->cfr && pos < end) {
        loff_t io = pos, oo = pos;
        size_t want = (uint64_t)(end - pos) < CFR_MAX ? (size_t)(end - pos) : CFR_MAX;
        ssize_t n = copy_file_range(x->in, &io, x->out, &oo, want, 0);
        if (n > 0) {
            pos += n;
            moved(x->j, (uint64_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && !cfr_unsupported(errno)) {
            fail(x->j, errno, !is_write_error(errno));
            return -1;
        }
        /* Unsupported, or 0 before the size said (a file system that
         * cannot tell, or the file shrank): reads find out which. */
        x->cfr = false;
    }
    return rw_range(x, pos, end);
}

/* A sparse file: only the data between holes is copied; the size is set at
 * the end, which leaves a trailing hole a hole. */
static int copy_sparse(copy_ctx *x, off_t size) {
    off_t pos = 0;
    while (pos < size) {
        off_t data = lseek(x->in, pos, SEEK_DATA);
        if (data < 0 && errno == ENXIO) break; /* only a hole is left */
        if (data < 0) return copy_range(x, pos, size);
        off_t hole = lseek(x->in, data, SEEK_HOLE);
        if (hole < 0 || hole > size) hole = size;
        if (copy_range(x, data, hole) < 0) return -1;
        pos = hole;
    }
    if (ftruncate(x->out, size) < 0) {
        fail(x->j, errno, false);
        return -1;
    }
    return 0;
}

/* No size to trust: read until end of file. */
static int copy_stream(copy_ctx *x) {
    for (;;) {
        ssize_t n = read(x->in, x->buf, x->bufsize);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            fail(x->j, errno, true);
            return -1;
        }
        if (n == 0) return 0;
        int rc = write_all(x->out, x->buf, (size_t)n);
        if (rc < 0) {
            fail(x->j, -rc, false);
            return -1;
        }
        moved(x->j, (uint64_t)n);
    }
}

/* Share the extents when the file systems can (as cp --reflink=auto). */
static bool try_clone(copy_ctx *x) {
    if (x->j->clone == CLONE_NO) return false;
    if (ioctl(x->out, FICLONE, x->in) == 0) {
        x->j->clone = CLONE_YES;
        return true;
    }
    /* Any failure falls back to copying; these say it never works here. */
    int e = errno;
    if (e == EOPNOTSUPP || e == ENOTTY || e == EXDEV || e == EINVAL || e == ENOSYS || e == EBADF)
        x->j->clone = CLONE_NO;
    return false;
}

static int copy_data(copy_ctx *x, const struct stat *st) {
    /* A FIFO or device has no offsets: plain reads and writes. */
    if (x->j->route == CP_STREAM || x->j->in_place || !S_ISREG(st->st_mode)) return copy_stream(x);
    if (try_clone(x)) {
        moved(x->j, (uint64_t)st->st_size);
        return 0;
    }
    /* As cp does: a larger read-ahead for a file read once from start to end. */
    if (st->st_size > (off_t)CP_SMALL) posix_fadvise(x->in, 0, 0, POSIX_FADV_SEQUENTIAL);
    if (x->j->sparse) return copy_sparse(x, st->st_size);
    return copy_range(x, 0, st->st_size);
}

/* ---- one file -------------------------------------------------------------------------- */

/* In place: the file must still be of the type found by the walk (a
 * regular file put where a device was is not written through), and a
 * regular one is cut only once that is known. */
static int open_in_place(cp_job *j) {
    int nofollow = j->truncate ? O_NOFOLLOW : 0; /* its name was resolved */
    int fd = open(j->dst, O_WRONLY | O_CLOEXEC | O_NOCTTY | nofollow);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        fail(j, errno, false);
    } else if ((st.st_mode & S_IFMT) != j->dst_type) {
        fail(j, EEXIST, false); /* "File exists": not what was there */
    } else if (j->truncate && ftruncate(fd, 0) < 0) {
        fail(j, errno, false);
    } else {
        j->truncated = j->truncate;
        return fd;
    }
    if (fd >= 0) close(fd);
    return -1;
}

static int open_out(cp_job *j) {
    if (j->in_place) return open_in_place(j);
    if (j->direct) {
        int fd = open(j->dst, O_WRONLY | O_CLOEXEC | O_CREAT | O_EXCL | O_NOFOLLOW,
                      cp_create_mode(j->mode));
        if (fd < 0) fail(j, errno, false);
        return fd;
    }
    for (int tries = 0; tries < 16; tries++) {
        free(j->tmp);
        if (!(j->tmp = cp_tmp_name(j->dst))) break;
        int fd = open(j->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                      cp_create_mode(j->mode));
        if (fd >= 0) return fd;
        if (errno != EEXIST) {
            fail(j, errno, false);
            free(j->tmp);
            j->tmp = NULL;
            return -1;
        }
    }
    fail(j, j->tmp ? EEXIST : ENOMEM, false);
    free(j->tmp);
    j->tmp = NULL;
    return -1;
}

void cp_remove_direct(cp_job *j) {
    if (j->err && j->direct) {
        unlink(j->dst);
        j->removed = true;
    }
}

void cp_commit(cp_job *j) {
    if (!j->err && rename(j->tmp, j->dst) < 0) {
        fail(j, errno, false);
        j->complete = true;
    }
    if (j->err) {
        unlink(j->tmp);
        j->removed = true;
    }
    free(j->tmp);
    j->tmp = NULL;
}

void cp_copy_file(cp_job *j, char *buf, size_t bufsize) {
    copy_ctx x = {.j = j, .cfr = true, .buf = buf, .bufsize = bufsize};
    /* The walk copies a symlink as a link: one here now was put there since
     * (but a command-line one to a file is read through). */
    x.in = open(j->src, O_RDONLY | O_CLOEXEC | O_NOCTTY | (j->follow ? 0 : O_NOFOLLOW));
    if (x.in < 0) {
        fail(j, errno, true);
        return;
    }
    struct stat st;
    if (fstat(x.in, &st) < 0) {
        fail(j, errno, true);
        close(x.in);
        return;
    }
    x.out = open_out(j);
    bool made = x.out >= 0;
    if (made) {
        if (!buf) fail(j, ENOMEM, false);
        if (!j->err) copy_data(&x, &st);
        /* The owner first: a chown clears the set-id bits. */
        if (!j->err && j->chown && fchown(x.out, j->uid, j->gid) < 0) fail(j, errno, false);
        bool mode_after = cp_mode_after(j->mode) || j->chown;
        if (!j->err && !j->in_place && mode_after && fchmod(x.out, j->mode) < 0)
            fail(j, errno, false);
        if (close(x.out) < 0) fail(j, errno, false); /* NFS reports write errors here */
    }
    close(x.in);
    if (j->tmp) cp_commit(j); /* any mode after was set on the descriptor */
    if (made) cp_remove_direct(j);
}

/* ---- helper threads ------------------------------------------------------------------ */

#define HELPER_BUF (1u << 20)

static void *helper_main(void *arg) {
    cp_helpers *h = arg;
    char *buf = malloc(HELPER_BUF);
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->queue && !h->stop) pthread_cond_wait(&h->work, &h->mu);
        if (h->stop) break;
        cp_job *j = h->queue;
        h->queue = j->next;
        if (!h->queue) h->queue_tail = NULL;
        pthread_mutex_unlock(&h->mu);
        cp_copy_file(j, buf, HELPER_BUF);
        pthread_mutex_lock(&h->mu);
        j->next = h->done;
        h->done = j;
        pthread_cond_signal(&h->done_cv);
    }
    pthread_mutex_unlock(&h->mu);
    free(buf);
    return NULL;
}

int cp_helpers_start(cp_helpers *h, unsigned nthreads) {
    *h = (cp_helpers){0};
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->work, NULL);
    pthread_cond_init(&h->done_cv, NULL);
    if (nthreads > sizeof h->th / sizeof h->th[0]) nthreads = sizeof h->th / sizeof h->th[0];
    for (; h->nthreads < nthreads; h->nthreads++)
        if (pthread_create(&h->th[h->nthreads], NULL, helper_main, h) != 0) break;
    return h->nthreads ? 0 : -EAGAIN;
}

/* Jobs still queued are left on the queue, not copied: the caller frees
 * them (nothing was created for them). */
void cp_helpers_stop(cp_helpers *h) {
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_cond_broadcast(&h->work);
    pthread_mutex_unlock(&h->mu);
    for (unsigned i = 0; i < h->nthreads; i++) pthread_join(h->th[i], NULL);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->work);
    pthread_cond_destroy(&h->done_cv);
}

unsigned cp_helpers_pending(cp_helpers *h) {
    pthread_mutex_lock(&h->mu);
    unsigned n = h->outstanding;
    pthread_mutex_unlock(&h->mu);
    return n;
}

void cp_helpers_push(cp_helpers *h, cp_job *j) {
    j->next = NULL;
    pthread_mutex_lock(&h->mu);
    if (h->queue_tail)
        h->queue_tail->next = j;
    else
        h->queue = j;
    h->queue_tail = j;
    h->outstanding++;
    pthread_cond_signal(&h->work);
    pthread_mutex_unlock(&h->mu);
}

cp_job *cp_helpers_take(cp_helpers *h, int wait_ms) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) until.tv_sec++, until.tv_nsec -= 1000000000;
    pthread_mutex_lock(&h->mu);
    while (wait_ms != 0 && !h->done && h->outstanding) {
        if (wait_ms < 0)
            pthread_cond_wait(&h->done_cv, &h->mu);
        else if (pthread_cond_timedwait(&h->done_cv, &h->mu, &until) == ETIMEDOUT)
            break;
    }
    cp_job *list = h->done;
    h->done = NULL;
    for (cp_job *j = list; j; j = j->next) h->outstanding--;
    pthread_mutex_unlock(&h->mu);
    return list;
}
