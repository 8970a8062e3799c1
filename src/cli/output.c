/* Outputs written in place or through a temporary name: see output.h. */
#include "cli/output.h"

#include "cli/common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The temporary file being written, removed if the command is interrupted:
 * nothing is left that looks like the output. One output at a time. */
static char *volatile pending;

static void on_signal(int sig) {
    char *t = pending;
    if (t) unlink(t);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* The descriptor a name stands for: /dev/stdout, /dev/stderr, /dev/stdin,
 * /dev/fd/N, /proc/self/fd/N, /proc/thread-self/fd/N; -1 for any other. */
static int fd_name(const char *p) {
    if (!strcmp(p, "/dev/stdout")) return STDOUT_FILENO;
    if (!strcmp(p, "/dev/stderr")) return STDERR_FILENO;
    static const char *const dirs[] = {"/dev/fd/", "/proc/self/fd/", "/proc/thread-self/fd/"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        size_t n = strlen(dirs[i]);
        if (strncmp(p, dirs[i], n) || !p[n]) continue;
        char *end;
        errno = 0;
        long fd = strtol(p + n, &end, 10);
        if (*end || errno || fd < 0 || fd > INT_MAX || p[n] < '0' || p[n] > '9') return -1;
        return (int)fd;
    }
    return -1;
}

/* Follow name's symbolic links, however deep, to the name they end at (which
 * need not exist yet). *fd is set instead when a step names a descriptor. */
static int resolve(const char *name, char **target, int *fd) {
    char *path = strdup(name);
    int rc = -ELOOP;
    *fd = -1;
    for (int depth = 0; path && depth < 40; depth++) {
        if ((*fd = fd_name(path)) >= 0) {
            free(path);
            return 0;
        }
        struct stat st;
        int r = lstat(path, &st);
        if (r < 0 && errno != ENOENT) {
            rc = -errno;
            break;
        }
        if (r < 0 || !S_ISLNK(st.st_mode)) {
            *target = path;
            return 0;
        }
        char link[PATH_MAX];
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n < 0) {
            rc = -errno;
            break;
        }
        link[n] = 0;
        char *next;
        const char *slash = strrchr(path, '/');
        if (link[0] == '/' || !slash) {
            next = strdup(link);
        } else { /* relative to the link's directory */
            size_t dl = (size_t)(slash - path) + 1;
            next = malloc(dl + (size_t)n + 1);
            if (next) memcpy(next, path, dl), memcpy(next + dl, link, (size_t)n + 1);
        }
        free(path);
        path = next;
    }
    if (!path) rc = -ENOMEM;
    free(path);
    return rc;
}

/* A new file beside target that nobody can have planted: O_EXCL (a link or
 * a file already there fails), a random name, the mode of the target. */
static int create_tmp(const char *target, char **tmp) {
    const char *slash = strrchr(target, '/');
    const char *base = slash ? slash + 1 : target;
    int dl = slash ? (int)(slash - target) + 1 : 0;
    size_t n = strlen(target) + 32;
    if (!(*tmp = malloc(n))) return -ENOMEM;
    snprintf(*tmp, n, "%.*s.%s.XXXXXX.part", dl, target, base);
    int fd = mkostemps(*tmp, 5, O_CLOEXEC);
    if (fd < 0) {
        int e = -errno;
        free(*tmp);
        *tmp = NULL;
        return e;
    }
    struct stat st;
    mode_t um = umask(0);
    umask(um);
    mode_t mode = stat(target, &st) == 0 ? st.st_mode & 07777 : 0666 & ~um;
    (void)!fchmod(fd, mode); /* failing leaves it private (0600): no reason to stop */
    return fd;
}

int cli_output_open(cli_output *o, const char *name) {
    memset(o, 0, sizeof *o);
    o->name = name;
    o->fd = STDOUT_FILENO;
    if (!strcmp(name, "-")) return 0;
    int fd, rc = resolve(name, &o->target, &fd);
    if (rc < 0) return rc;
    if (fd >= 0) { /* the descriptor itself, as the shell set it up */
        o->target = NULL;
        if (fcntl(fd, F_GETFD) < 0) return -EBADF;
        o->fd = fd;
        return 0;
    }
    struct stat st;
    if (stat(o->target, &st) == 0 && !S_ISREG(st.st_mode)) {
        /* A device, a FIFO: in place (a directory fails here, by name). */
        free(o->target);
        o->target = NULL;
        if ((o->fd = open(name, O_WRONLY | O_CLOEXEC | O_NOCTTY)) < 0) return -errno;
        o->own_fd = true;
        return 0;
    }
    if ((fd = create_tmp(o->target, &o->tmp)) < 0) {
        free(o->target);
        o->target = NULL;
        return fd;
    }
    o->fd = fd;
    o->own_fd = true;
    pending = o->tmp;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    return 0;
}

bool cli_output_is_file(const cli_output *o) {
    return o->tmp != NULL;
}

int cli_output_close(cli_output *o, int status) {
    if (o->own_fd && close(o->fd) < 0 && status == 0) {
        cli_path_error(o->name, -errno);
        status = EXIT_FILES;
    }
    if (o->tmp && status == 0 && rename(o->tmp, o->target) < 0) {
        cli_path_error(o->name, -errno);
        status = EXIT_FILES;
    }
    if (o->tmp && status != 0) unlink(o->tmp);
    if (o->tmp) pending = NULL;
    free(o->tmp);
    free(o->target);
    o->tmp = o->target = NULL;
    o->own_fd = false;
    return status;
}
