/* lumio cp: copy files and directory trees, like `cp -r`.
 *
 * The sources are walked once (cp_walk.c). Directories, links and special
 * files are made as the walk meets them (directories get their final modes
 * at the end: a read-only one must stay writable while it fills). Each
 * regular file takes one of two ways:
 *
 *  - small dense files (most of a tree) go through the ring: a GET of the
 *    file into a pool buffer, then a PUT of that buffer to a new file
 *    (O_CREAT | O_EXCL). The ring opens, reads, writes and closes them, many
 *    at once, with no system call of ours per file;
 *  - the rest go to helper threads (cp_file.c): large and sparse files are
 *    copied in the kernel (FICLONE, else copy_file_range over the data
 *    between holes), and files with no size to trust are read to their end.
 *
 * Nothing incomplete is ever under a final name. A directory copied to a
 * new name is made under a temporary name beside it and renamed when all
 * its files are done; any other file is written under a temporary name of
 * its own and renamed. A file that fails is removed.
 *
 * Files in the ring are bounded so that their buffers always fit the pool,
 * and open files are bounded below the descriptor limit. */
#include "cli/common.h"
#include "cli/cp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const char cp_usage[] =
    "usage: lumio cp SRC... DST\n"
    "\n"
    "Copy files and directory trees, as 'cp -r': when DST is an existing\n"
    "directory each SRC is copied inside it; with one SRC and no DST, SRC is\n"
    "copied to DST. Contents are kept; modes too, less the umask and the\n"
    "set-ID bits (a replaced file keeps its own); holes stay holes; symbolic\n"
    "links are copied as links, FIFOs and devices inside a tree are made\n"
    "anew; a SRC that is a FIFO, a device, a file of /proc or /sys, or a link\n"
    "to a file (<(cmd), /dev/stdin) is read to its end. Nothing incomplete\n"
    "is left under a final name: a new tree, or else each file, is written\n"
    "under a temporary name and renamed when complete, and a file that fails\n"
    "is removed. An error names the path and the copy goes on; the exit\n"
    "status is then 1.\n"
    "\n"
    "  -h, --help    show this help\n";

/* ---- small helpers -------------------------------------------------------------- */

void cp_fail_errno(copier *cp, const char *path, int err) {
    cli_path_error(path, -err);
    cp->status = EXIT_FILES;
}

char *cp_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

/* A path under the tree being made, as the user will see it: under its
 * final name. */
char *cp_shown(const cp_root *root, const char *path) {
    if (!root || strncmp(path, root->tmp, root->tmplen)) return strdup(path);
    return cp_join(root->final, path + root->tmplen);
}

void cp_path_error(copier *cp, const char *path, int code) {
    char *p = cp_shown(cp->root, path);
    cli_path_error(p ? p : path, code);
    free(p);
    cp->status = EXIT_FILES;
}

/* The mode a new copy gets, as cp without -p gives it: the source's
 * permission bits less the umask, and never the set-id bits (the copy
 * belongs to the caller, not to the source's owner). */
mode_t cp_copy_mode(const copier *cp, const struct stat *st) {
    return st->st_mode & 01777 & ~cp->umask;
}

void cp_job_free(cp_job *j) {
    if (!j) return;
    lumio_buffer_release(j->buf);
    if (j->tmp) unlink(j->tmp); /* never committed: nothing half-written stays */
    free(j->tmp);
    free(j->src);
    free(j->dst);
    free(j);
}

/* The progress line: the ring's files as they finish, the helpers' bytes as
 * they are copied (a large file takes long). */
static void cp_progress(copier *cp) {
    if (cp->walk_done) progress_total(&cp->prog, cp->unsized ? 0 : cp->expect);
    progress_update(&cp->prog, cp->files,
                    cp->bytes + __atomic_load_n(&cp->h.moved, __ATOMIC_RELAXED));
}

/* A finished job: its one line if it failed, else counted. */
static void job_done(copier *cp, cp_job *j) {
    cp_root *root = j->root;
    if (j->pair >= 0 && j->clone != CLONE_UNKNOWN && cp->pairs[j->pair].clone == CLONE_UNKNOWN)
        cp->pairs[j->pair].clone = j->clone;
    if (!j->err) {
        cp->files++;
        if (!j->moved) cp->bytes += j->bytes_done; /* the helpers' are counted as they go */
        cp_progress(cp);
    } else {
        cp->status = EXIT_FILES;
        char *d = j->err_on_src ? NULL : cp_shown(root, j->dst);
        const char *p = j->err_on_src ? j->src : d ? d : j->dst;
        if (j->removed && j->complete)
            cli_error(
                "%s: %s (the copy, complete, could not be renamed into place and was removed)", p,
                lumio_strerror(j->err));
        else if (j->removed)
            cli_error("%s: %s (the partial copy was removed)", p, lumio_strerror(j->err));
        else if (j->truncated) /* named by the file left so, whichever side failed */
            cli_error("%s: %s%s%s (written in place: the file is left incomplete)", j->dst,
                      j->err_on_src ? j->src : "", j->err_on_src ? ": " : "",
                      lumio_strerror(j->err));
        else
            cli_path_error(p, j->err);
        free(d);
    }
    cp_job_free(j);
    if (root && --root->pending == 0 && root->walked) cp_root_commit(cp, root);
}

/* A directory's mode, on the directory itself: a symlink put in its place
 * is not followed. */
static int chmod_dir(const char *path, mode_t mode) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fchmod(fd, mode), err = errno;
    close(fd);
    errno = err;
    return rc;
}

/* Directories get their modes last, deepest first (the reverse of the
 * walk's order), so that a read-only one was writable while it was filled
 * and still searchable for its children. Those of `root` only: a tree under
 * a temporary name gets them before its rename, never through its final
 * name, where anything may have appeared. */
static void set_dir_modes(copier *cp, const cp_root *root) {
    for (size_t i = cp->ndirs; i-- > 0;) {
        dir_mode *d = &cp->dirs[i];
        if (!d->path || d->root != root) continue;
        if (chmod_dir(d->path, d->mode) < 0) cp_path_error(cp, d->path, -errno);
        free(d->path);
        d->path = NULL;
    }
}

/* A tree made under a temporary name is complete: give it its modes, then
 * its name, unless something took that name meanwhile. */
void cp_root_commit(copier *cp, cp_root *root) {
    cp_root *shown = cp->root;
    cp->root = root; /* errors name its paths as the user will see them */
    set_dir_modes(cp, root);
    cp->root = shown;
    int rc = renameat2(AT_FDCWD, root->tmp, AT_FDCWD, root->final, RENAME_NOREPLACE);
    if (rc < 0 && (errno == EINVAL || errno == ENOSYS)) { /* a file system without the flag */
        struct stat st;
        rc = lstat(root->final, &st) == 0 ? (errno = EEXIST, -1) : rename(root->tmp, root->final);
    }
    if (rc < 0) {
        cli_error("cannot rename '%s' to '%s': %s (the complete copy is left at '%s')", root->tmp,
                  root->final, strerror(errno), root->tmp);
        cp->status = EXIT_FILES;
    }
    for (size_t i = 0; i < cp->ndirs; i++)
        if (cp->dirs[i].root == root) cp->dirs[i].root = NULL; /* its paths are freed */
    free(root->tmp);
    free(root->final);
    free(root);
}

/* ---- the ring's files --------------------------------------------------------------- */

static void ring_link(copier *cp, cp_job *j) {
    j->prev = NULL;
    j->next = cp->ring_jobs;
    if (cp->ring_jobs) cp->ring_jobs->prev = j;
    cp->ring_jobs = j;
    cp->in_ring++;
}

static void ring_unlink(copier *cp, cp_job *j) {
    if (j->prev)
        j->prev->next = j->next;
    else
        cp->ring_jobs = j->next;
    if (j->next) j->next->prev = j->prev;
    cp->in_ring--;
}

int cp_submit_gets(copier *cp) {
    if (!cp->ngets) return 0;
    for (size_t i = 0; i < cp->ngets; i++) {
        cp_job *j = cp->gets[i];
        cp->ranges[i] =
            (lumio_range){.offset = 0, .length = LUMIO_WHOLE, .user_data = (uintptr_t)j};
        cp->ops[i] = (lumio_op){.kind = LUMIO_OP_GET,
                                .path = j->src,
                                /* a file the walk saw, not a link put there since */
                                .flags = j->follow ? 0 : LUMIO_OP_NOFOLLOW,
                                .ranges = &cp->ranges[i],
                                .nranges = 1,
                                .user_data = (uintptr_t)j};
    }
    uint64_t g;
    int rc = lumio_ring_submit(cp->r, cp->ops, cp->ngets, NULL, &g);
    if (rc < 0) {
        cli_error("%s", lumio_ring_last_error(cp->r, ERRBUF));
        return rc;
    }
    for (size_t i = 0; i < cp->ngets; i++) ring_link(cp, cp->gets[i]);
    cp->ngets = 0;
    return 0;
}

/* Queue the PUT of a file's data to a new temporary name (submitted after
 * this round of completions). */
static void queue_put(copier *cp, cp_job *j) {
    free(j->tmp);
    j->tmp = NULL;
    if (!j->direct && !(j->tmp = cp_tmp_name(j->dst))) {
        j->err = -ENOMEM;
        ring_unlink(cp, j);
        job_done(cp, j);
        return;
    }
    size_t k = cp->nputs++;
    cp->ranges[k] =
        (lumio_range){.offset = 0, .length = j->len, .buf = j->data, .user_data = (uintptr_t)j};
    cp->ops[k] = (lumio_op){.kind = LUMIO_OP_PUT,
                            .path = j->direct ? j->dst : j->tmp,
                            .flags = LUMIO_OP_CREATE | LUMIO_OP_EXCL,
                            .mode = cp_create_mode(j->mode),
                            .ranges = j->len ? &cp->ranges[k] : NULL,
                            .nranges = j->len ? 1 : 0,
                            .user_data = (uintptr_t)j};
    j->in_put = true;
}

static int submit_puts(copier *cp) {
    if (!cp->nputs) return 0;
    uint64_t g;
    int rc = lumio_ring_submit(cp->r, cp->ops, cp->nputs, NULL, &g);
    if (rc < 0) { /* the jobs keep their buffers: cleanup releases them */
        cli_error("%s", lumio_ring_last_error(cp->r, ERRBUF));
        return rc;
    }
    cp->nputs = 0;
    return 0;
}

static void got_data(copier *cp, cp_job *j, const lumio_completion *c) {
    if (c->result < 0) {
        lumio_buffer_release(c->buffer);
        j->err = c->result;
        j->err_on_src = true;
        ring_unlink(cp, j);
        job_done(cp, j);
        return;
    }
    j->buf = c->buffer;
    j->data = c->data;
    j->len = c->length;
    queue_put(cp, j);
}

static void put_done(copier *cp, cp_job *j, const lumio_completion *c) {
    bool opened = c->range_index != LUMIO_NO_RANGE || c->result == 0;
    if (!opened && !j->direct && c->result == -EEXIST && ++j->tries < 16) {
        /* Someone made that name first: another name, the same data. */
        free(j->tmp);
        j->tmp = NULL;
        queue_put(cp, j);
        return;
    }
    ring_unlink(cp, j);
    lumio_buffer_release(j->buf);
    j->buf = NULL;
    if (!opened) { /* nothing was created */
        free(j->tmp);
        j->tmp = NULL;
    }
    j->err = c->result;
    j->bytes_done = j->len;
    if (j->tmp) cp_commit(j);
    if (opened) cp_remove_direct(j);
    job_done(cp, j);
}

static void ring_completion(copier *cp, const lumio_completion *c) {
    cp_job *j = (cp_job *)(uintptr_t)c->user_data;
    if (!j) return; /* an empty group's end */
    if (j->in_put)
        put_done(cp, j, c);
    else
        got_data(cp, j, c);
}

static void helpers_done(copier *cp, int wait_ms) {
    cp_job *j = cp_helpers_take(&cp->h, wait_ms);
    while (j) {
        cp_job *next = j->next;
        job_done(cp, j);
        j = next;
    }
}

static int copy_loop(copier *cp) {
    lumio_completion c[WAIT_MAX];
    for (;;) {
        int rc = cp_walk_some(cp);
        if (rc < 0) return rc;
        helpers_done(cp, 0);
        if (!cp->in_ring) {
            if (!cp_helpers_pending(&cp->h) && cp->walk_done) return 0;
            /* With a progress line, waking to draw it. */
            helpers_done(cp, cp->prog.on ? 100 : -1);
            cp_progress(cp);
            continue;
        }
        int n = lumio_ring_wait(cp->r, LUMIO_ANY_GROUP, c, WAIT_MAX, 1);
        if (n < 0) {
            cli_error("%s", lumio_ring_last_error(cp->r, ERRBUF));
            return n;
        }
        if (n == 0) {
            cli_error("engine finished with work not delivered (a bug in lumio)");
            return LUMIO_E_BASE;
        }
        for (int i = 0; i < n; i++) ring_completion(cp, &c[i]);
        if ((rc = submit_puts(cp)) < 0) return rc;
    }
}

/* ---- setup ---------------------------------------------------------------------------- */

static unsigned fds_open_now(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return 3;
    unsigned n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n > 3 ? n - 3 : 3; /* ".", ".." and the directory's own */
}

/* Open files stay below the descriptor limit, whatever it is: the soft
 * limit is raised to the hard one, and what remains after the descriptors
 * already open and a reserve (the ring's own, the walk's directory) is
 * shared between the ring and the helpers (two each). */
static void fd_budget(copier *cp, lumio_ring_options *o, unsigned *helpers) {
    struct rlimit rl;
    uint64_t lim = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            struct rlimit up = {rl.rlim_max, rl.rlim_max};
            if (setrlimit(RLIMIT_NOFILE, &up) == 0) rl = up;
        }
        lim = rl.rlim_cur == RLIM_INFINITY ? 1u << 20 : rl.rlim_cur;
    }
    uint64_t reserve = fds_open_now() + 8;
    uint64_t avail = lim > reserve + 3 ? lim - reserve : 3;
    *helpers = avail / 8 < 1 ? 1 : avail / 8 > 4 ? 4 : (unsigned)(avail / 8);
    uint64_t ring = avail > 2 * *helpers ? avail - 2 * *helpers : 1;
    o->max_open_files = ring > 128 ? 128 : (unsigned)ring;
    cp->helper_max = 2 * *helpers;
}

static int copier_start(copier *cp) {
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.coalesce_gap = -1; /* one range per file: nothing to merge */
    unsigned helpers;
    fd_budget(cp, &o, &helpers);
    cp->ring_max = CP_IN_RING;
    cp_names_init();
    if (cp_helpers_start(&cp->h, helpers) < 0) return -EAGAIN;
    cp->helpers_on = true;
    return lumio_ring_create(&cp->r, &o);
}

static void copier_stop(copier *cp) {
    lumio_ring_close(cp->r); /* drains writes still in flight */
    while (cp->ring_jobs) {
        cp_job *j = cp->ring_jobs;
        ring_unlink(cp, j);
        cp_job_free(j);
    }
    for (size_t i = 0; i < cp->ngets; i++) cp_job_free(cp->gets[i]);
    if (cp->helpers_on) {
        cp_helpers_stop(&cp->h);
        for (cp_job *j = cp->h.queue, *next; j; j = next) {
            next = j->next;
            cp_job_free(j);
        }
        for (cp_job *j = cp->h.done, *next; j; j = next) {
            next = j->next;
            job_done(cp, j);
        }
    }
    free(cp->pairs);
    free(cp->kinds);
    for (size_t i = 0; i < cp->nmade; i++) free(cp->made[i].dst);
    free(cp->made);
    walker_close(cp->w);
    free(cp->dst_root);
}

static int cp_run(char **srcs, int nsrcs, const char *dst) {
    copier cp = {.srcs = srcs, .nsrcs = nsrcs, .dst = dst, .fresh_level = -1, .euid = geteuid()};
    struct stat st;
    cp.dst_is_dir = stat(dst, &st) == 0 && S_ISDIR(st.st_mode);
    if (nsrcs > 1 && !cp.dst_is_dir) {
        cli_error("target '%s' is not a directory", dst);
        return EXIT_FILES;
    }
    /* Modes are given at creation, less the caller's umask (cp_copy_mode),
     * and must come out as given. */
    cp.umask = umask(0);
    progress_start(&cp.prog, "copied", PROGRESS_FILES);
    int rc = copier_start(&cp);
    if (rc < 0)
        cli_error("cannot start the I/O engine: %s", lumio_strerror(rc));
    else
        rc = copy_loop(&cp);
    progress_end(&cp.prog, rc >= 0);
    copier_stop(&cp);
    set_dir_modes(&cp, NULL);                                    /* those made in place */
    for (size_t i = 0; i < cp.ndirs; i++) free(cp.dirs[i].path); /* trees never committed */
    free(cp.dirs);
    return rc < 0 ? EXIT_FILES : cp.status;
}

int cmd_cp(int argc, char **argv) {
    static const struct option longopts[] = {CLI_OPT_END};
    int c;
    while ((c = cli_getopt(argc, argv, ":h", longopts)) != -1)
        return cli_option_default(c, argv, cp_usage);
    if (argc - optind < 2)
        return cli_usage_error("lumio cp", argc == optind ? "missing SRC and DST" : "missing DST");
    return cp_run(argv + optind, argc - optind - 1, argv[argc - 1]);
}
