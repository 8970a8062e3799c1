/* lumio cp: walking the sources and making what is not a regular file:
 * directories, links, FIFOs and devices; where each file goes and how it is
 * copied (see cp.c for the whole). */
#include "cli/common.h"
#include "cli/cp.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

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

/* ---- destinations ----------------------------------------------------------------- */

/* A regular file replaced keeps what cp keeps: cp refuses one the caller
 * may not write, and writes in place, so keeps its mode, owner and links.
 * Here the copy goes under a temporary name (nothing half-written under the
 * final name) and takes the old file's mode, and its owner when we are
 * root; only when a rename cannot do it (other hard links, or a directory
 * we may not write) is the file written in place, as cp does. Returns false
 * after a message. */
static bool replacing(copier *cp, cp_job *j, const struct stat *ls) {
    if (access(j->dst, W_OK) < 0) {
        cp_fail_errno(cp, j->dst, errno);
        return false;
    }
    char *d = strdup(j->dst);
    if (!d) {
        cp_fail_errno(cp, j->dst, ENOMEM);
        return false;
    }
    bool dir_ok = access(dirname(d), W_OK | X_OK) == 0;
    free(d);
    j->mode = ls->st_mode & 07777;
    if (!dir_ok || ls->st_nlink > 1) {
        j->in_place = j->truncate = true;
        return true;
    }
    j->chown = cp->euid == 0 && (ls->st_uid != 0 || ls->st_gid != getegid());
    j->uid = ls->st_uid;
    j->gid = ls->st_gid;
    return true;
}

/* What is already at a file's destination decides how it is written: a
 * regular file is replaced (above), a symlink is followed (as cp does), a
 * device or FIFO is written in place, a directory is an error. Returns
 * false after a message. */
static bool resolve_dst(copier *cp, cp_job *j) {
    struct stat ls, ts;
    if (lstat(j->dst, &ls) < 0) {
        if (errno == ENOENT) return true;
        cp_fail_errno(cp, j->dst, errno);
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
                cp_fail_errno(cp, j->dst, errno);
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
    j->dst_type = ls.st_mode & S_IFMT;
    if (S_ISREG(ls.st_mode)) return replacing(cp, j, &ls);
    j->in_place = true;
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
    while (ld > 1 && cp->dst[ld - 1] == '/') ld--; /* "dir/" + "f": "dir/f" */
    if (ld == 1 && cp->dst[0] == '/') ld = 0;
    char *s = malloc(ld + 1 + (n - b) + 1);
    if (!s) return NULL;
    snprintf(s, ld + 1 + (n - b) + 1, "%.*s/%.*s", (int)ld, cp->dst, (int)(n - b), src + b);
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
 * destination, and a directory does not go inside itself or over a file.
 * A source named as a symlink to anything but a directory is followed, as
 * cp does without -r (and cp -H): `cp <(cmd) f` or `cp /dev/stdin f` copy
 * the data, not a link to "pipe:[N]". */
static bool source_ok(copier *cp, const char *src, const char *dst) {
    struct stat ss, ds, ts;
    if (lstat(src, &ss) < 0) {
        cp_fail_errno(cp, src, errno);
        return false;
    }
    cp->follow_root = S_ISLNK(ss.st_mode) && stat(src, &ts) == 0 && !S_ISDIR(ts.st_mode);
    if (cp->follow_root) ss = ts;
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

static bool is_dir(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int made_index(const copier *cp, const char *dst) {
    for (size_t i = 0; i < cp->nmade; i++)
        if (!strcmp(cp->made[i].dst, dst)) return (int)i;
    return -1;
}

static void remember(copier *cp, const char *dst, bool dir) {
    made_name *m = realloc(cp->made, (cp->nmade + 1) * sizeof(*m));
    if (!m) return;
    cp->made = m;
    if ((m[cp->nmade].dst = strdup(dst))) m[cp->nmade++].dir = dir;
}

/* Nothing of the earlier sources is still being written. */
static bool drained(copier *cp) {
    return !cp->in_ring && !cp->ngets && !cp_helpers_pending(&cp->h);
}

/* A source whose destination an earlier source took: a file is refused, as
 * cp refuses it; otherwise it goes on once the earlier one is complete and
 * under its name (a directory then merges into it). */
static bool same_name_ok(copier *cp, const char *src, int prev) {
    if (prev < 0 || cp->made[prev].dir || is_dir(src)) return true;
    cli_error("will not overwrite just-created '%s' with '%s'", cp->dst_root, src);
    cp->status = EXIT_FILES;
    return false;
}

/* Move to the next source that passes its checks; false when none is left.
 * True with cp->stalled when the next one must wait for the earlier ones. */
bool cp_next_source(copier *cp) {
    walker_close(cp->w);
    cp->w = NULL;
    free(cp->dst_root);
    cp->dst_root = NULL;
    cp->fresh_level = -1;
    cp->stalled = false;
    if (cp->root) {
        cp->root->walked = true;
        if (!cp->root->pending) cp_root_commit(cp, cp->root);
        cp->root = NULL;
    }
    while (cp->next_src < cp->nsrcs) {
        char **src = &cp->srcs[cp->next_src];
        if (!(cp->dst_root = dest_for(cp, *src))) return false;
        int prev = made_index(cp, cp->dst_root);
        if (prev >= 0 && !drained(cp)) {
            free(cp->dst_root);
            cp->dst_root = NULL;
            cp->stalled = true;
            return true;
        }
        cp->next_src++;
        if (same_name_ok(cp, *src, prev) && source_ok(cp, *src, cp->dst_root) &&
            walker_open(&cp->w, src, 1, cp->follow_root ? WALK_FOLLOW_ROOTS : 0) == 0) {
            if (prev < 0) remember(cp, cp->dst_root, is_dir(*src));
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
        char *copy = strdup(dst); /* a tree's: its modes come before its rename */
        if (copy)
            cp->dirs[cp->ndirs++] =
                (dir_mode){.path = copy, .root = cp->root, .mode = cp_copy_mode(cp, e->st)};
        return;
    }
    struct stat st;
    int err = errno;
    if (err == EEXIST && stat(dst, &st) == 0 && S_ISDIR(st.st_mode)) return; /* merge */
    if (err == EEXIST)
        cli_error("cannot overwrite non-directory '%s' with directory '%s'", dst, e->path);
    else
        cp_path_error(cp, dst, -err);
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
    cp_path_error(cp, dst, -errno);
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
    mode_t m = cp_copy_mode(cp, e->st);
    if (S_ISFIFO(e->st->st_mode)) return mkfifo(dst, m);
    return mknod(dst, (e->st->st_mode & S_IFMT) | m, e->st->st_rdev);
}

static void make_link(copier *cp, const walk_entry *e, const char *dst) {
    char target[PATH_MAX];
    if (readlink(e->path, target, sizeof target) < 0) {
        cp_fail_errno(cp, e->path, errno);
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
    bool small =
        !j->sparse && (uint64_t)st->st_size <= CP_SMALL && !cp_mode_after(j->mode) && !j->chown;
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
    j->mode = cp_copy_mode(cp, e->st);
    j->follow = cp->follow_root && e->level == 0;
    j->pair = -1;
    j->clone = CLONE_NO;
    bool fresh = cp->fresh_level >= 0 && e->level > cp->fresh_level;
    if (!fresh && !resolve_dst(cp, j)) {
        cp_job_free(j);
        return 0;
    }
    j->root = cp->root; /* its tree is renamed when its last file is done */
    j->direct = cp->root != NULL;
    if (j->root) j->root->pending++;
    route(cp, j, e);
    if (S_ISREG(e->st->st_mode))
        cp->expect += (uint64_t)e->st->st_size;
    else
        cp->unsized = true;
    if (j->route == CP_RING) {
        cp->gets[cp->ngets++] = j;
        return cp->ngets == CP_BATCH ? cp_submit_gets(cp) : 0;
    }
    j->moved = &cp->h.moved;
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
    char *dst = cp_join(cp->root ? cp->root->tmp : cp->dst_root, e->rel);
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
int cp_walk_some(copier *cp) {
    while (!cp->walk_done && cp->in_ring + cp->ngets < cp->ring_max &&
           cp_helpers_pending(&cp->h) < cp->helper_max) {
        walk_entry e;
        if (!cp->w || walker_next(cp->w, &e) == 0) {
            if (!cp_next_source(cp)) cp->walk_done = true;
            if (cp->stalled) break; /* the ring and the helpers finish first */
            continue;
        }
        int rc = take_entry(cp, &e);
        if (rc < 0) return rc;
    }
    return cp_submit_gets(cp);
}
