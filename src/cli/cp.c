/* lumio cp: copy files and directory trees, like `cp -r`.
 *
 * The sources are walked once. Directories, links and special files are made
 * as the walk meets them (directories get their final modes at the end: a
 * read-only one must stay writable while it fills). Each regular file takes
 * one of two ways:
 *
 *  - small dense files (most of a tree) go through the ring: a GET of the
 *    whole file into a pool buffer, then a PUT of that buffer to a new
 *    temporary name (O_CREAT | O_EXCL), then a rename. The ring opens,
 *    reads, writes and closes them, many at once, with no system call of
 *    ours per file but the rename;
 *  - the rest go to helper threads (cp_file.c): large and sparse files are
 *    copied in the kernel (FICLONE, else copy_file_range over the data
 *    between holes), and files with no size to trust are read to their end.
 *
 * Files in the ring are bounded so that their buffers always fit the pool,
 * and open files are bounded below the descriptor limit. */
#include "cli/common.h"
#include "cli/cp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define CP_SMALL   (1u << 20) /* the largest file copied through the ring */
#define CP_BATCH   32         /* files per GET group */
#define CP_IN_RING 128        /* files in the ring: 128 x 1 MiB fits the pool */
#define WAIT_MAX   256

static const char cp_usage[] =
    "usage: lumio cp SRC... DST\n"
    "\n"
    "Copy files and directory trees, as 'cp -r': when DST is an existing\n"
    "directory each SRC is copied inside it; with one SRC and no DST, SRC is\n"
    "copied to DST. Contents and modes are kept; holes stay holes; symbolic\n"
    "links are copied as links, FIFOs and devices inside a tree are made\n"
    "anew; a SRC that is a FIFO, a device or a file of /proc or /sys is read\n"
    "to its end. Each file is written under a temporary name and renamed when\n"
    "complete. An error names the path and the copy goes on; the exit status\n"
    "is then 1.\n"
    "\n"
    "  -h, --help    show this help\n";

typedef struct dir_mode {
    char *path;
    mode_t mode;
} dir_mode;

typedef struct fs_pair {
    dev_t src, dst;
    cp_clone clone;
} fs_pair;

typedef struct fs_kind {
    dev_t dev;
    bool pseudo; /* sizes mean nothing: proc, sys and the like */
} fs_kind;

typedef struct copier {
    lumio_ring *r;
    cp_helpers h;
    bool helpers_on;
    int status;
    /* Sources, and the walk of the current one. */
    char **srcs;
    int nsrcs, next_src;
    const char *dst;
    bool dst_is_dir;
    walker *w;
    char *dst_root; /* where the current source goes */
    cp_root *root;  /* the same, while made under a temporary name */
    dev_t dst_dev;
    bool walk_done;
    int fresh_level; /* entries deeper than this are in a directory we made; -1: none */
    /* The ring's files: those waiting for their GET, and all in it. */
    cp_job *gets[CP_BATCH];
    size_t ngets;
    cp_job *ring_jobs; /* list of jobs the ring holds (for cleanup) */
    unsigned in_ring, ring_max, helper_max;
    lumio_op ops[WAIT_MAX];
    lumio_range ranges[WAIT_MAX];
    size_t nputs;
    fs_pair *pairs;
    size_t npairs;
    fs_kind *kinds;
    size_t nkinds;
    dir_mode *dirs;
    size_t ndirs, cap_dirs;
    progress prog;
    uint64_t files, bytes;
    uid_t euid;
} copier;

/* ---- small helpers -------------------------------------------------------------- */

static void fail_errno(copier *cp, const char *path, int err) {
    cli_path_error(path, -err);
    cp->status = EXIT_FILES;
}

static char *join(const char *a, const char *b);

static char *join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

/* A path under the tree being made, as the user will see it: under its
 * final name. */
static char *shown(const cp_root *root, const char *path) {
    if (!root || strncmp(path, root->tmp, root->tmplen)) return strdup(path);
    return join(root->final, path + root->tmplen);
}

static void path_error(copier *cp, const char *path, int code) {
    char *p = shown(cp->root, path);
    cli_path_error(p ? p : path, code);
    free(p);
    cp->status = EXIT_FILES;
}

/* The mode a copy gets: the source's permission bits, but set-id bits only
 * for files we own, since the copy belongs to us and not to the source's
 * owner (cp -p drops them in the same case). */
static mode_t copy_mode(const copier *cp, const struct stat *st) {
    mode_t m = st->st_mode & 07777;
    if (st->st_uid != cp->euid) m &= (mode_t) ~(S_ISUID | S_ISGID);
    return m;
}

static void job_free(cp_job *j) {
    if (!j) return;
    lumio_buffer_release(j->buf);
    if (j->tmp) unlink(j->tmp); /* never committed: nothing half-written stays */
    free(j->tmp);
    free(j->src);
    free(j->dst);
    free(j);
}

static void root_commit(copier *cp, cp_root *root);

/* A finished job: its one line if it failed, else counted. */
static void job_done(copier *cp, cp_job *j) {
    cp_root *root = j->root;
    if (j->pair >= 0 && j->clone != CLONE_UNKNOWN && cp->pairs[j->pair].clone == CLONE_UNKNOWN)
        cp->pairs[j->pair].clone = j->clone;
    if (!j->err) {
        cp->files++;
        cp->bytes += j->bytes_done;
        progress_update(&cp->prog, cp->files, cp->bytes);
    } else {
        cp->status = EXIT_FILES;
        char *d = j->err_on_src ? NULL : shown(root, j->dst);
        const char *p = j->err_on_src ? j->src : d ? d : j->dst;
        if (j->removed)
            cli_error("%s: %s (the partial copy was removed)", p, lumio_strerror(j->err));
        else
            cli_path_error(p, j->err);
        free(d);
    }
    job_free(j);
    if (root && --root->pending == 0 && root->walked) root_commit(cp, root);
}

/* A tree made under a temporary name is complete: give it its name, unless
 * something took that name meanwhile. */
static void root_commit(copier *cp, cp_root *root) {
    int rc = renameat2(AT_FDCWD, root->tmp, AT_FDCWD, root->final, RENAME_NOREPLACE);
    if (rc < 0 && (errno == EINVAL || errno == ENOSYS)) { /* a file system without the flag */
        struct stat st;
        rc = lstat(root->final, &st) == 0 ? (errno = EEXIST, -1) : rename(root->tmp, root->final);
    }
    if (rc < 0) {
        cli_error("cannot rename '%s' to '%s': %s (the copy is left there)", root->tmp, root->final,
                  strerror(errno));
        cp->status = EXIT_FILES;
    }
    free(root->tmp);
    free(root->final);
    free(root);
}

/* ---- file systems ----------------------------------------------------------------- */

/* Does a file system give sizes that mean nothing (/proc files say 0,
 * /sys files 4096)? Such files are read until end of file. */
static bool pseudo_fs(copier *cp, const char *path, dev_t dev) {
    for (size_t i = 0; i < cp->nkinds; i++)
        if (cp->kinds[i].dev == dev) return cp->kinds[i].pseudo;
    struct statfs sf;
    bool pseudo = false;
    if (statfs(path, &sf) == 0) {
        switch ((unsigned long)sf.f_type) {
        case PROC_SUPER_MAGIC:
        case SYSFS_MAGIC:
        case DEBUGFS_MAGIC:
        case TRACEFS_MAGIC:
        case SECURITYFS_MAGIC:
        case CGROUP_SUPER_MAGIC:
        case CGROUP2_SUPER_MAGIC:
        case BPF_FS_MAGIC:
        case EFIVARFS_MAGIC:
        case PSTOREFS_MAGIC:
        case 0x62656570: /* configfs */
            pseudo = true;
        }
    }
    fs_kind *k = realloc(cp->kinds, (cp->nkinds + 1) * sizeof(*k));
    if (k) {
        cp->kinds = k;
        k[cp->nkinds++] = (fs_kind){dev, pseudo};
    }
    return pseudo;
}

/* The (source, destination) file-system pair, for what FICLONE can do. */
static int pair_of(copier *cp, dev_t src) {
    for (size_t i = 0; i < cp->npairs; i++)
        if (cp->pairs[i].src == src && cp->pairs[i].dst == cp->dst_dev) return (int)i;
    fs_pair *p = realloc(cp->pairs, (cp->npairs + 1) * sizeof(*p));
    if (!p) return -1;
    cp->pairs = p;
    p[cp->npairs] = (fs_pair){src, cp->dst_dev, CLONE_UNKNOWN};
    return (int)cp->npairs++;
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

static int submit_gets(copier *cp) {
    if (!cp->ngets) return 0;
    for (size_t i = 0; i < cp->ngets; i++) {
        cp_job *j = cp->gets[i];
        cp->ranges[i] =
            (lumio_range){.offset = 0, .length = LUMIO_WHOLE, .user_data = (uintptr_t)j};
        cp->ops[i] = (lumio_op){.kind = LUMIO_OP_GET,
                                .path = j->src,
                                .ranges = &cp->ranges[i],
                                .nranges = 1,
                                .user_data = (uintptr_t)j};
    }
    uint64_t g;
    int rc = lumio_ring_submit(cp->r, cp->ops, cp->ngets, NULL, &g);
    if (rc < 0) {
        cli_error("%s", lumio_ring_last_error(cp->r));
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
        cli_error("%s", lumio_ring_last_error(cp->r));
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
    if (j->tmp) cp_commit(j, cp_mode_after(j->mode));
    if (opened) cp_remove_direct(j);
    if (j->direct && !j->err && cp_mode_after(j->mode) && chmod(j->dst, j->mode) < 0)
        j->err = -errno;
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

/* ---- destinations ----------------------------------------------------------------- */

/* What is already at a file's destination decides how it is written: a
 * regular file is replaced by the rename, a symlink is followed (as cp
 * does), a device or FIFO is written in place, a directory is an error.
 * Returns false after a message. */
static bool resolve_dst(copier *cp, cp_job *j) {
    struct stat ls, ts;
    if (lstat(j->dst, &ls) < 0) {
        if (errno == ENOENT) return true;
        fail_errno(cp, j->dst, errno);
        return false;
    }
    if (S_ISLNK(ls.st_mode)) {
        if (stat(j->dst, &ts) < 0) {
            if (errno == ENOENT)
                cli_error("not writing through dangling symlink '%s'", j->dst);
            else
                cli_path_error(j->dst, -errno);
            cp->status = EXIT_FILES;
            return false;
        }
        ls = ts;
        if (S_ISREG(ts.st_mode)) {
            char *real = realpath(j->dst, NULL);
            if (!real) {
                fail_errno(cp, j->dst, errno);
                return false;
            }
            free(j->dst);
            j->dst = real;
        }
    }
    if (S_ISDIR(ls.st_mode)) {
        cli_error("cannot overwrite directory '%s' with non-directory '%s'", j->dst, j->src);
        cp->status = EXIT_FILES;
        return false;
    }
    j->in_place = !S_ISREG(ls.st_mode);
    return true;
}

/* ---- walking the sources ------------------------------------------------------------ */

/* Is `dst` (which may not exist yet) `src` or inside it? */
static bool inside(const char *src, const char *dst) {
    char rs[PATH_MAX], rp[PATH_MAX];
    char *d1 = strdup(dst), *d2 = strdup(dst);
    bool in = false;
    if (d1 && d2 && realpath(src, rs) && realpath(dirname(d1), rp)) {
        const char *base = basename(d2);
        size_t n = strlen(rs);
        char full[2 * PATH_MAX + 2];
        snprintf(full, sizeof full, "%s/%s", rp, base);
        in = !strcmp(full, rs) || (!strncmp(full, rs, n) && (full[n] == '/' || n == 1));
    }
    free(d1);
    free(d2);
    return in;
}

/* Where SRC goes: DST itself, or DST/basename(SRC) when DST is a directory. */
static char *dest_for(const copier *cp, const char *src) {
    if (!cp->dst_is_dir) return strdup(cp->dst);
    size_t n = strlen(src);
    while (n > 1 && src[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && src[b - 1] != '/') b--;
    size_t ld = strlen(cp->dst);
    char *s = malloc(ld + 1 + (n - b) + 1);
    if (!s) return NULL;
    snprintf(s, ld + 1 + (n - b) + 1, "%s/%.*s", cp->dst, (int)(n - b), src + b);
    return s;
}

/* A DST ending in '/' names a directory: only a directory source may
 * create it. */
static bool slash_dst_ok(copier *cp, const struct stat *ss) {
    size_t n = strlen(cp->dst);
    if (cp->dst_is_dir || !n || cp->dst[n - 1] != '/') return true;
    struct stat ds;
    int err = stat(cp->dst, &ds) < 0 ? errno : 0;
    if (err == ENOENT && S_ISDIR(ss->st_mode)) return true;
    if (err == ENOENT)
        cli_error("destination directory '%s' does not exist", cp->dst);
    else if (!err || err == ENOTDIR)
        cli_error("destination '%s' is not a directory", cp->dst);
    else
        cli_path_error(cp->dst, -err);
    cp->status = EXIT_FILES;
    return false;
}

/* Checks before copying one source: it exists, it is not its own
 * destination, and a directory does not go inside itself or over a file. */
static bool source_ok(copier *cp, const char *src, const char *dst) {
    struct stat ss, ds;
    if (lstat(src, &ss) < 0) {
        fail_errno(cp, src, errno);
        return false;
    }
    if (!slash_dst_ok(cp, &ss)) return false;
    bool have_dst = stat(dst, &ds) == 0;
    if (have_dst && ss.st_dev == ds.st_dev && ss.st_ino == ds.st_ino) {
        cli_error("'%s' and '%s' are the same file", src, dst);
    } else if (S_ISDIR(ss.st_mode) && inside(src, dst)) {
        cli_error("cannot copy directory '%s' into itself, '%s'", src, dst);
    } else if (S_ISDIR(ss.st_mode) && have_dst && !S_ISDIR(ds.st_mode)) {
        cli_error("cannot overwrite non-directory '%s' with directory '%s'", dst, src);
    } else {
        return true;
    }
    cp->status = EXIT_FILES;
    return false;
}

/* The device of the directory the current source goes into. */
static void note_dst_dev(copier *cp) {
    char *d = strdup(cp->dst_root);
    struct stat st;
    cp->dst_dev = d && stat(cp->dst_is_dir ? cp->dst : dirname(d), &st) == 0 ? st.st_dev : 0;
    free(d);
}

/* A directory copied to a name that does not exist yet is made under a
 * temporary name (mkdir fails on anything already there, 0700 keeps others
 * out) and renamed when complete; a killed copy leaves only that. */
static void start_root(copier *cp, const char *src) {
    struct stat ss, ds;
    if (lstat(src, &ss) < 0 || !S_ISDIR(ss.st_mode) || lstat(cp->dst_root, &ds) == 0 ||
        errno != ENOENT)
        return;
    cp_root *root = calloc(1, sizeof(*root));
    if (!root || !(root->final = strdup(cp->dst_root))) {
        free(root);
        return;
    }
    for (int tries = 0; tries < 16 && !cp->root; tries++) {
        if (!(root->tmp = cp_tmp_name(cp->dst_root))) break;
        if (mkdir(root->tmp, 0700) == 0) {
            root->tmplen = strlen(root->tmp);
            cp->root = root;
            cp->fresh_level = 0;
            return;
        }
        free(root->tmp);
        root->tmp = NULL;
        if (errno != EEXIST) break;
    }
    free(root->final); /* made in place instead, which reports what fails */
    free(root);
}

/* Move to the next source that passes its checks; false when none is left. */
static bool next_source(copier *cp) {
    walker_close(cp->w);
    cp->w = NULL;
    free(cp->dst_root);
    cp->dst_root = NULL;
    cp->fresh_level = -1;
    if (cp->root) {
        cp->root->walked = true;
        if (!cp->root->pending) root_commit(cp, cp->root);
        cp->root = NULL;
    }
    while (cp->next_src < cp->nsrcs) {
        char **src = &cp->srcs[cp->next_src++];
        if (!(cp->dst_root = dest_for(cp, *src))) return false;
        if (source_ok(cp, *src, cp->dst_root) && walker_open(&cp->w, src, 1, 0) == 0) {
            note_dst_dev(cp);
            start_root(cp, *src);
            return true;
        }
        free(cp->dst_root);
        cp->dst_root = NULL;
    }
    return false;
}

static void make_dir(copier *cp, const walk_entry *e, const char *dst) {
    /* Owner-writable while we fill it; the real mode comes at the end.
     * The root of a tree made under a temporary name is there already. */
    if ((cp->root && e->level == 0) || mkdir(dst, 0700) == 0) {
        if (cp->fresh_level < 0) cp->fresh_level = e->level;
        if (cp->ndirs == cp->cap_dirs) {
            size_t n = cp->cap_dirs ? cp->cap_dirs * 2 : 64;
            dir_mode *d = realloc(cp->dirs, n * sizeof(*d));
            if (!d) {
                cli_error("out of memory");
                cp->status = EXIT_FILES;
                return;
            }
            cp->dirs = d;
            cp->cap_dirs = n;
        }
        char *copy = shown(cp->root, dst); /* its mode is set after the rename */
        if (copy) cp->dirs[cp->ndirs++] = (dir_mode){.path = copy, .mode = copy_mode(cp, e->st)};
        return;
    }
    struct stat st;
    int err = errno;
    if (err == EEXIST && stat(dst, &st) == 0 && S_ISDIR(st.st_mode)) return; /* merge */
    if (err == EEXIST)
        cli_error("cannot overwrite non-directory '%s' with directory '%s'", dst, e->path);
    else
        path_error(cp, dst, -err);
    cp->status = EXIT_FILES;
    walker_skip(cp->w);
}

/* Make `dst` with `mk`; an existing non-directory is replaced, as cp does. */
typedef int (*make_fn)(const copier *cp, const walk_entry *e, const char *dst);

static void make_replacing(copier *cp, const char *dst, make_fn mk, const walk_entry *e) {
    if (mk(cp, e, dst) == 0) return;
    struct stat st;
    if (errno == EEXIST && lstat(dst, &st) == 0 && !S_ISDIR(st.st_mode) && unlink(dst) == 0 &&
        mk(cp, e, dst) == 0)
        return;
    path_error(cp, dst, -errno);
}

static int mk_link(const copier *cp, const walk_entry *e, const char *dst) {
    (void)cp;
    char target[PATH_MAX];
    ssize_t n = readlink(e->path, target, sizeof target - 1);
    if (n < 0) return -1;
    target[n] = 0;
    return symlink(target, dst);
}

/* FIFOs, devices and sockets inside a tree are made anew, as cp -r does. */
static int mk_special(const copier *cp, const walk_entry *e, const char *dst) {
    mode_t m = copy_mode(cp, e->st);
    if (S_ISFIFO(e->st->st_mode)) return mkfifo(dst, m);
    return mknod(dst, (e->st->st_mode & S_IFMT) | m, e->st->st_rdev);
}

static void make_link(copier *cp, const walk_entry *e, const char *dst) {
    char target[PATH_MAX];
    if (readlink(e->path, target, sizeof target) < 0) {
        fail_errno(cp, e->path, errno);
        return;
    }
    make_replacing(cp, dst, mk_link, e);
}

/* How a regular (or, at the top, special) file is copied. */
static void route(copier *cp, cp_job *j, const walk_entry *e) {
    const struct stat *st = e->st;
    if (!S_ISREG(st->st_mode) || st->st_size == 0 || pseudo_fs(cp, e->path, st->st_dev)) {
        j->route = CP_STREAM;
        return;
    }
    j->sparse = (uint64_t)st->st_blocks * 512 < (uint64_t)st->st_size;
    j->pair = pair_of(cp, st->st_dev);
    j->clone = j->pair >= 0 ? cp->pairs[j->pair].clone : CLONE_NO;
    bool small = !j->sparse && (uint64_t)st->st_size <= CP_SMALL;
    j->route = small && j->clone == CLONE_NO && !j->in_place ? CP_RING : CP_KERNEL;
    j->len = (uint64_t)st->st_size;
}

static int add_file(copier *cp, const walk_entry *e, char *dst) {
    cp_job *j = calloc(1, sizeof(*j));
    if (!j || !(j->src = strdup(e->path))) {
        free(j);
        free(dst);
        return -ENOMEM;
    }
    j->dst = dst;
    j->mode = copy_mode(cp, e->st);
    j->root = cp->root;
    j->direct = cp->root != NULL;
    if (j->root) j->root->pending++;
    j->pair = -1;
    j->clone = CLONE_NO;
    bool fresh = cp->fresh_level >= 0 && e->level > cp->fresh_level;
    if (!fresh && !resolve_dst(cp, j)) {
        job_free(j);
        return 0;
    }
    route(cp, j, e);
    if (j->route == CP_RING) {
        cp->gets[cp->ngets++] = j;
        return cp->ngets == CP_BATCH ? submit_gets(cp) : 0;
    }
    cp_helpers_push(&cp->h, j);
    return 0;
}

/* Act on one walk entry: directories, links and special files right away,
 * regular files to the ring or the helpers. */
static int take_entry(copier *cp, const walk_entry *e) {
    if (e->kind == WALK_DIR_POST) {
        if (e->level == cp->fresh_level) cp->fresh_level = -1;
        return 0;
    }
    if (e->kind == WALK_ERROR) {
        cli_path_error(e->path, e->err);
        cp->status = EXIT_FILES;
        return 0;
    }
    char *dst = join(cp->root ? cp->root->tmp : cp->dst_root, e->rel);
    if (!dst) return -ENOMEM;
    if (e->kind == WALK_FILE || (e->kind == WALK_OTHER && e->level == 0))
        return add_file(cp, e, dst);
    if (e->kind == WALK_DIR)
        make_dir(cp, e, dst);
    else if (e->kind == WALK_SYMLINK)
        make_link(cp, e, dst);
    else
        make_replacing(cp, dst, mk_special, e);
    free(dst);
    return 0;
}

/* Walk on while the ring and the helpers have room. */
static int walk_some(copier *cp) {
    while (!cp->walk_done && cp->in_ring + cp->ngets < cp->ring_max &&
           cp_helpers_pending(&cp->h) < cp->helper_max) {
        walk_entry e;
        if (!cp->w || walker_next(cp->w, &e) == 0) {
            if (!next_source(cp)) cp->walk_done = true;
            continue;
        }
        int rc = take_entry(cp, &e);
        if (rc < 0) return rc;
    }
    return submit_gets(cp);
}

static void helpers_done(copier *cp, bool block) {
    cp_job *j = cp_helpers_take(&cp->h, block);
    while (j) {
        cp_job *next = j->next;
        job_done(cp, j);
        j = next;
    }
}

static int copy_loop(copier *cp) {
    lumio_completion c[WAIT_MAX];
    for (;;) {
        int rc = walk_some(cp);
        if (rc < 0) return rc;
        helpers_done(cp, false);
        if (!cp->in_ring) {
            if (!cp_helpers_pending(&cp->h) && cp->walk_done) return 0;
            helpers_done(cp, true);
            continue;
        }
        int n = lumio_ring_wait(cp->r, LUMIO_ANY_GROUP, c, WAIT_MAX, 1);
        if (n < 0) {
            cli_error("%s", lumio_ring_last_error(cp->r));
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

/* Directories get their modes last, deepest first, so that a read-only one
 * was writable while it was filled and still searchable for its children. */
static void set_dir_modes(copier *cp) {
    for (size_t i = cp->ndirs; i-- > 0;) {
        if (chmod(cp->dirs[i].path, cp->dirs[i].mode) < 0) fail_errno(cp, cp->dirs[i].path, errno);
        free(cp->dirs[i].path);
    }
    free(cp->dirs);
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
    lumio_ring_options_default(&o);
    o.coalesce_gap = 0; /* one range per file */
    unsigned helpers;
    fd_budget(cp, &o, &helpers);
    cp->ring_max = CP_IN_RING;
    cp_names_init();
    if (cp_helpers_start(&cp->h, helpers) < 0) return -EAGAIN;
    cp->helpers_on = true;
    return lumio_ring_create(&cp->r, &o);
}

static void copier_stop(copier *cp) {
    lumio_ring_destroy(cp->r); /* drains writes still in flight */
    while (cp->ring_jobs) {
        cp_job *j = cp->ring_jobs;
        ring_unlink(cp, j);
        job_free(j);
    }
    for (size_t i = 0; i < cp->ngets; i++) job_free(cp->gets[i]);
    if (cp->helpers_on) {
        cp_helpers_stop(&cp->h);
        for (cp_job *j = cp->h.queue, *next; j; j = next) {
            next = j->next;
            job_free(j);
        }
        for (cp_job *j = cp->h.done, *next; j; j = next) {
            next = j->next;
            job_done(cp, j);
        }
    }
    free(cp->pairs);
    free(cp->kinds);
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
    /* Modes are given at creation and must come out as given. */
    umask(0);
    progress_init(&cp.prog, "copied");
    int rc = copier_start(&cp);
    if (rc < 0)
        cli_error("cannot start the I/O engine: %s", lumio_strerror(rc));
    else
        rc = copy_loop(&cp);
    progress_done(&cp.prog);
    copier_stop(&cp);
    set_dir_modes(&cp);
    return rc < 0 ? EXIT_FILES : cp.status;
}

int cmd_cp(int argc, char **argv) {
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(cp_usage, stdout);
            return 0;
        }
        return cli_option_error(c, argv);
    }
    if (argc - optind < 2) {
        cli_error("%s (see 'lumio cp --help')",
                  argc == optind ? "missing SRC and DST" : "missing DST");
        return EXIT_USAGE;
    }
    return cp_run(argv + optind, argc - optind - 1, argv[argc - 1]);
}
