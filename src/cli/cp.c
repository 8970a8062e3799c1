/* lumio cp: copy files and directory trees, like `cp -r`.
 *
 * Sources are walked into batches of files; each batch is one GET group
 * reading its files in blocks. Every block that lands becomes a PUT, by file
 * descriptor, of that same pool buffer at the same offset of the destination;
 * the buffer goes back to the pool when its PUT completes. So reads and
 * writes are in flight together and memory stays within the pool's cap.
 * Directories are created as the walk meets them and get their final modes
 * at the end (a read-only directory must stay writable while it fills);
 * symbolic links are recreated as links. */
#include "cli/common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CP_BLOCK  (1u << 20)
#define CP_BATCH  64 /* files per GET group */
#define CP_GROUPS 4  /* GET groups in flight */
#define WAIT_MAX  256
#define PUT_TAG   (1ull << 63) /* user_data of a PUT: the tag and a slot index */
#define NO_SLOT   UINT32_MAX

static const char cp_usage[] =
    "usage: lumio cp SRC... DST\n"
    "\n"
    "Copy files and directory trees, as 'cp -r': when DST is an existing\n"
    "directory each SRC is copied inside it; with one SRC and no DST, SRC is\n"
    "copied to DST. Contents and modes are kept; symbolic links are copied\n"
    "as links. An error names the path and the copy goes on; the exit status\n"
    "is then 1.\n"
    "\n"
    "  -h, --help    show this help\n";

typedef struct cpbatch cpbatch;

typedef struct cpfile {
    cpbatch *batch;
    char *src, *dst;
    mode_t mode;
    int fd;         /* destination, opened when its first block lands */
    unsigned puts;  /* writes in flight */
    bool failed;    /* reported; later blocks are dropped */
    bool read_done; /* its group has ended */
    bool finished;
} cpfile;

struct cpbatch {
    cpfile f[CP_BATCH];
    size_t n;
    size_t unfinished; /* files not yet closed: their PUTs point here */
    uint64_t group;
    bool busy; /* group not ended */
};

/* A PUT in flight: the pool buffer it writes from and its file. */
typedef struct put_slot {
    lumio_buffer *buf;
    cpfile *file;
    uint32_t next_free;
} put_slot;

typedef struct dir_mode {
    char *path;
    mode_t mode;
} dir_mode;

typedef struct copier {
    lumio_ring *r;
    int status;
    /* Sources, and the walk of the current one. */
    char **srcs;
    int nsrcs, next_src;
    const char *dst;
    bool dst_is_dir;
    walker *w;
    char *dst_root; /* where the current source goes */
    bool walk_done;
    /* GET groups. */
    cpbatch *b[CP_GROUPS];
    lumio_op ops[CP_BATCH];
    /* PUTs. */
    put_slot *slots;
    uint32_t nslots, free_slot;
    uint64_t puts_inflight;
    lumio_op put_ops[WAIT_MAX];
    lumio_range put_ranges[WAIT_MAX];
    size_t nputs;
    /* Directories we created, in creation order. */
    dir_mode *dirs;
    size_t ndirs, cap_dirs;
    progress prog;
    uint64_t files, bytes;
} copier;

/* ---- small helpers -------------------------------------------------------------- */

static void fail_errno(copier *cp, const char *path, int err) {
    cli_path_error(path, -err);
    cp->status = EXIT_FILES;
}

static char *join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

/* The mode a copy gets: the source's permission bits, but set-id bits only
 * for files we own, since the copy belongs to us and not to the source's
 * owner (cp -p drops them in the same case). */
static mode_t copy_mode(const struct stat *st) {
    mode_t m = st->st_mode & 07777;
    if (st->st_uid != geteuid()) m &= (mode_t) ~(S_ISUID | S_ISGID);
    return m;
}

/* ---- PUT slots -------------------------------------------------------------------- */

static uint32_t slot_get(copier *cp) {
    if (cp->free_slot == NO_SLOT) {
        /* Grows to the most PUTs in flight at once (bounded by the pool). */
        uint32_t n = cp->nslots ? cp->nslots * 2 : 256;
        put_slot *s = realloc(cp->slots, n * sizeof(*s));
        if (!s) return NO_SLOT;
        for (uint32_t i = cp->nslots; i < n; i++)
            s[i] = (put_slot){.next_free = i + 1 < n ? i + 1 : NO_SLOT};
        cp->slots = s;
        cp->free_slot = cp->nslots;
        cp->nslots = n;
    }
    uint32_t i = cp->free_slot;
    cp->free_slot = cp->slots[i].next_free;
    return i;
}

static void slot_put(copier *cp, uint32_t i) {
    cp->slots[i].buf = NULL;
    cp->slots[i].next_free = cp->free_slot;
    cp->free_slot = i;
}

/* ---- finishing files -------------------------------------------------------------- */

static int open_dst(const char *path) {
    return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

/* All blocks of the file are read and written: set its mode and close it. A
 * file that gave no data (it became empty) is created here. */
static void file_finish(copier *cp, cpbatch *b, cpfile *f) {
    if (f->fd < 0 && !f->failed && (f->fd = open_dst(f->dst)) < 0) {
        fail_errno(cp, f->dst, errno);
        f->failed = true;
    }
    if (f->fd >= 0) {
        if (!f->failed && fchmod(f->fd, f->mode) < 0) fail_errno(cp, f->dst, errno);
        if (close(f->fd) < 0 && !f->failed) fail_errno(cp, f->dst, errno);
        f->fd = -1;
    }
    free(f->src);
    free(f->dst);
    f->src = f->dst = NULL;
    f->finished = true;
    b->unfinished--;
    cp->files++;
    progress_update(&cp->prog, cp->files, cp->bytes);
}

/* An empty file needs no reads: create it at once. */
static void copy_empty(copier *cp, const char *dst, mode_t mode) {
    int fd = open_dst(dst);
    if (fd < 0) {
        fail_errno(cp, dst, errno);
        return;
    }
    if (fchmod(fd, mode) < 0) fail_errno(cp, dst, errno);
    if (close(fd) < 0) fail_errno(cp, dst, errno);
    cp->files++;
}

/* ---- completions ------------------------------------------------------------------ */

static cpbatch *batch_of(copier *cp, uint64_t group) {
    for (unsigned i = 0; i < CP_GROUPS; i++)
        if (cp->b[i]->busy && cp->b[i]->group == group) return cp->b[i];
    return NULL;
}

/* A block was read: queue its PUT (submitted after this round of
 * completions), or drop it if its file has failed. Returns whether the PUT
 * now owns the completion's buffer. */
static bool got_block(copier *cp, cpfile *f, const lumio_completion *c) {
    if (c->result < 0) {
        if (!f->failed) cli_path_error(f->src, c->result);
        f->failed = true;
        cp->status = EXIT_FILES;
        return false;
    }
    if (f->failed || c->length == 0) return false;
    if (f->fd < 0 && (f->fd = open_dst(f->dst)) < 0) {
        fail_errno(cp, f->dst, errno);
        f->failed = true;
        return false;
    }
    uint32_t s = slot_get(cp);
    if (s == NO_SLOT) {
        cli_error("out of memory");
        f->failed = true;
        cp->status = EXIT_FILES;
        return false;
    }
    cp->slots[s] = (put_slot){.buf = c->buffer, .file = f};
    size_t k = cp->nputs++;
    cp->put_ranges[k] = (lumio_range){.offset = (int64_t)c->offset,
                                      .length = c->length,
                                      .buf = c->data,
                                      .user_data = PUT_TAG | s};
    cp->put_ops[k] = (lumio_op){.kind = LUMIO_OP_PUT,
                                .fd = f->fd,
                                .ranges = &cp->put_ranges[k],
                                .nranges = 1,
                                .user_data = PUT_TAG | s};
    f->puts++;
    cp->puts_inflight++;
    return true;
}

static void get_done(copier *cp, const lumio_completion *c) {
    cpbatch *b = batch_of(cp, c->group);
    bool kept = b && c->op_index < b->n && got_block(cp, &b->f[c->op_index], c);
    if (!kept) lumio_buffer_release(c->buffer);
    if (b && (c->flags & LUMIO_CQE_GROUP_END)) {
        b->busy = false;
        for (size_t i = 0; i < b->n; i++) {
            cpfile *f = &b->f[i];
            f->read_done = true;
            if (!f->puts && !f->finished) file_finish(cp, b, f);
        }
    }
}

static void put_done(copier *cp, const lumio_completion *c) {
    uint32_t s = (uint32_t)(c->user_data & ~PUT_TAG);
    put_slot *slot = &cp->slots[s];
    cpfile *f = slot->file;
    lumio_buffer_release(slot->buf);
    slot_put(cp, s);
    cp->puts_inflight--;
    f->puts--;
    if (c->result < 0 && !f->failed) {
        cli_path_error(f->dst, c->result);
        f->failed = true;
        cp->status = EXIT_FILES;
    } else {
        cp->bytes += c->length;
    }
    if (f->read_done && !f->puts) file_finish(cp, f->batch, f);
}

static int submit_puts(copier *cp) {
    if (!cp->nputs) return 0;
    uint64_t g;
    int rc = lumio_ring_submit(cp->r, cp->put_ops, cp->nputs, NULL, &g);
    if (rc < 0) { /* the slots keep the buffers: copier_stop() releases them */
        cli_error("%s", lumio_ring_last_error(cp->r));
        return rc;
    }
    cp->nputs = 0;
    return 0;
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

/* Checks before copying one source: it exists, it is not its own
 * destination, and a directory does not go inside itself. */
static bool source_ok(copier *cp, const char *src, const char *dst) {
    struct stat ss, ds;
    if (lstat(src, &ss) < 0) {
        fail_errno(cp, src, errno);
        return false;
    }
    if (stat(dst, &ds) == 0 && ss.st_dev == ds.st_dev && ss.st_ino == ds.st_ino) {
        cli_error("'%s' and '%s' are the same file", src, dst);
        cp->status = EXIT_FILES;
        return false;
    }
    if (S_ISDIR(ss.st_mode) && inside(src, dst)) {
        cli_error("cannot copy directory '%s' into itself, '%s'", src, dst);
        cp->status = EXIT_FILES;
        return false;
    }
    return true;
}

/* Move to the next source that passes its checks; false when none is left. */
static bool next_source(copier *cp) {
    walker_close(cp->w);
    cp->w = NULL;
    free(cp->dst_root);
    cp->dst_root = NULL;
    while (cp->next_src < cp->nsrcs) {
        char **src = &cp->srcs[cp->next_src++];
        if (!(cp->dst_root = dest_for(cp, *src))) return false;
        if (source_ok(cp, *src, cp->dst_root) && walker_open(&cp->w, src, 1, 0) == 0) return true;
        free(cp->dst_root);
        cp->dst_root = NULL;
    }
    return false;
}

static void make_dir(copier *cp, const walk_entry *e, const char *dst) {
    /* Owner-writable while we fill it; the real mode comes at the end. */
    if (mkdir(dst, 0700) == 0) {
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
        char *copy = strdup(dst);
        if (copy) cp->dirs[cp->ndirs++] = (dir_mode){.path = copy, .mode = copy_mode(e->st)};
        return;
    }
    struct stat st;
    int err = errno;
    if (err == EEXIST && stat(dst, &st) == 0 && S_ISDIR(st.st_mode)) return; /* merge */
    fail_errno(cp, dst, err == EEXIST ? ENOTDIR : err);
    walker_skip(cp->w);
}

static void make_link(copier *cp, const walk_entry *e, const char *dst) {
    char target[PATH_MAX];
    ssize_t n = readlink(e->path, target, sizeof target - 1);
    if (n < 0) {
        fail_errno(cp, e->path, errno);
        return;
    }
    target[n] = 0;
    if (symlink(target, dst) == 0) return;
    struct stat st;
    /* Like a file, an existing non-directory is replaced. */
    if (errno == EEXIST && lstat(dst, &st) == 0 && !S_ISDIR(st.st_mode) && unlink(dst) == 0 &&
        symlink(target, dst) == 0)
        return;
    fail_errno(cp, dst, errno);
}

/* Add a non-empty file to the batch being built. */
static int add_file(copier *cp, cpbatch *b, const walk_entry *e, char *dst) {
    cpfile *f = &b->f[b->n];
    *f = (cpfile){
        .batch = b, .src = strdup(e->path), .dst = dst, .mode = copy_mode(e->st), .fd = -1};
    if (!f->src) {
        free(dst);
        return -ENOMEM;
    }
    cp->ops[b->n] = (lumio_op){.kind = LUMIO_OP_GET, .path = f->src, .block_size = CP_BLOCK};
    b->n++;
    b->unfinished++;
    return 0;
}

/* Act on one walk entry: directories, links and empty files right away,
 * other files into the batch. */
static int take_entry(copier *cp, cpbatch *b, const walk_entry *e) {
    if (e->kind == WALK_DIR_POST) return 0;
    if (e->kind == WALK_ERROR) {
        cli_path_error(e->path, e->err);
        cp->status = EXIT_FILES;
        return 0;
    }
    if (e->kind == WALK_OTHER) {
        cli_error("%s: not a regular file, directory or link; skipped", e->path);
        cp->status = EXIT_FILES;
        return 0;
    }
    char *dst = join(cp->dst_root, e->rel);
    if (!dst) return -ENOMEM;
    if (e->kind == WALK_FILE && e->st->st_size > 0) return add_file(cp, b, e, dst);
    if (e->kind == WALK_FILE)
        copy_empty(cp, dst, copy_mode(e->st));
    else if (e->kind == WALK_DIR)
        make_dir(cp, e, dst);
    else
        make_link(cp, e, dst);
    free(dst);
    return 0;
}

static int batch_build(copier *cp, cpbatch *b) {
    b->n = 0;
    while (b->n < CP_BATCH) {
        walk_entry e;
        if (!cp->w || walker_next(cp->w, &e) == 0) {
            if (!next_source(cp)) {
                cp->walk_done = true;
                break;
            }
            continue;
        }
        int rc = take_entry(cp, b, &e);
        if (rc < 0) return rc;
    }
    if (b->n == 0) return 0;
    int rc = lumio_ring_submit(cp->r, cp->ops, b->n, NULL, &b->group);
    if (rc < 0) {
        cli_error("%s", lumio_ring_last_error(cp->r));
        return rc;
    }
    b->busy = true;
    return 0;
}

static int fill(copier *cp) {
    for (unsigned i = 0; i < CP_GROUPS && !cp->walk_done; i++) {
        cpbatch *b = cp->b[i];
        if (b->busy || b->unfinished) continue;
        int rc = batch_build(cp, b);
        if (rc < 0) return rc;
    }
    return 0;
}

static bool batches_idle(const copier *cp) {
    for (unsigned i = 0; i < CP_GROUPS; i++)
        if (cp->b[i]->busy || cp->b[i]->unfinished) return false;
    return true;
}

static int copy_loop(copier *cp) {
    lumio_completion c[WAIT_MAX];
    for (;;) {
        int rc = fill(cp);
        if (rc < 0) return rc;
        if (batches_idle(cp) && !cp->puts_inflight) {
            if (cp->walk_done) return 0;
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
        for (int i = 0; i < n; i++) {
            if (c[i].user_data & PUT_TAG)
                put_done(cp, &c[i]);
            else
                get_done(cp, &c[i]);
        }
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

static int copier_start(copier *cp) {
    for (unsigned i = 0; i < CP_GROUPS; i++)
        if (!(cp->b[i] = calloc(1, sizeof(cpbatch)))) return -ENOMEM;
    lumio_ring_options o;
    lumio_ring_options_default(&o);
    o.coalesce_gap = 0; /* blocks are already as large as a merge would make them */
    return lumio_ring_create(&cp->r, &o);
}

static void copier_stop(copier *cp) {
    lumio_ring_destroy(cp->r); /* drains writes still in flight */
    /* After a failure, PUTs that never completed still own buffers. */
    for (uint32_t i = 0; i < cp->nslots; i++) lumio_buffer_release(cp->slots[i].buf);
    for (unsigned i = 0; i < CP_GROUPS && cp->b[i]; i++) {
        for (size_t j = 0; j < cp->b[i]->n; j++) {
            cpfile *f = &cp->b[i]->f[j];
            if (f->fd >= 0) close(f->fd);
            free(f->src);
            free(f->dst);
        }
        free(cp->b[i]);
    }
    free(cp->slots);
    walker_close(cp->w);
    free(cp->dst_root);
}

static int cp_run(char **srcs, int nsrcs, const char *dst) {
    copier cp = {.srcs = srcs, .nsrcs = nsrcs, .dst = dst, .free_slot = NO_SLOT};
    struct stat st;
    cp.dst_is_dir = stat(dst, &st) == 0 && S_ISDIR(st.st_mode);
    if (nsrcs > 1 && !cp.dst_is_dir) {
        cli_error("target '%s' is not a directory", dst);
        return EXIT_FILES;
    }
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
