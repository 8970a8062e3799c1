/* lumio bench read: read throughput of the ring engine.
 *
 * The files are opened once up front and read by file descriptor, so the
 * measurement is of reads, not of opens. The work is a stream of ranges:
 * every block of every file in order (sequential), or COUNT blocks drawn
 * uniformly at random (fixed seed). Each of --threads rings takes its share
 * of the stream in its own thread, submits it in groups of a few thousand
 * ranges and keeps several groups in flight, so the queue never drains
 * between groups. Every byte read is summed, so nothing is skipped, and each
 * buffer goes back to the pool as soon as it is summed. */
#include "cli/common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GROUP_RANGES 4096
#define GROUPS_AHEAD 4
#define WAIT_MAX     1024
#define SEED         0x6c756d696f626e63ull
#define BENCH_MEMORY (1ull << 30) /* default --memory, shared by the rings */
#define RING_FILES   128          /* files each ring may open by path */

static const char bench_usage[] =
    "usage: lumio bench read [OPTION]... PATH...\n"
    "       lumio bench remote URL [OPTION]...  (see 'lumio bench remote --help')\n"
    "\n"
    "Read every file named (directories recursively) in blocks and print one\n"
    "JSON object with the throughput: bytes, seconds, gib_per_s, ops_per_s, ...\n"
    "\n"
    "  --block SIZE       block size (default 256K; K, M, G suffixes)\n"
    "  --random COUNT     read COUNT random blocks instead of everything\n"
    "  --size SIZE        block size of --random (default: --block); blocks are\n"
    "                     aligned to it and drawn uniformly (fixed seed)\n"
    "  --depth N          requests in flight per ring (default 64)\n"
    "  --threads N        rings, each in its own thread (default 1)\n"
    "  --backend NAME     uring or threads (default: uring when available)\n"
    "  --direct           O_DIRECT reads (buffered where not supported)\n"
    "  --paths            let the engine open the files (timed; default: opened\n"
    "                     before timing and read by descriptor, as fio does)\n"
    "  --coalesce GAP     merge reads of one file whose gap is below GAP (default 0)\n"
    "  --memory SIZE      most memory held in buffers, all rings together (default\n"
    "                     1G); each ring needs two blocks\n"
    "  --sqpoll           io_uring: a kernel thread polls the submission queue\n"
    "  --no-fixed-files   io_uring: plain descriptors, not the registered table\n"
    "  -h, --help         show this help\n";

typedef struct bfile {
    char *path;
    uint64_t size;
    int fd; /* -1: read by path (no descriptor left) */
} bfile;

typedef struct bench_cfg {
    bool direct;
    bool paths;        /* the engine opens the files (timed) */
    uint64_t coalesce; /* merge gap (0: every block is its own read) */
    bool sqpoll;
    bool no_fixed_files;
    uint64_t unit;  /* bytes per read */
    uint64_t count; /* random reads; 0 for sequential */
    unsigned depth, threads;
    uint64_t memory; /* --memory: the rings' pools together */
    uint64_t fds;    /* descriptors left for files opened up front */
    lumio_backend backend;
    bfile *files;
    size_t nfiles;
    uint64_t *cum; /* cum[i]: blocks of the files before file i */
} bench_cfg;

/* A range to read: a block of a file. */
typedef struct rpos {
    uint32_t file;
    uint64_t block;
} rpos;

typedef struct bthread {
    pthread_t tid;
    const bench_cfg *cfg;
    lumio_ring *r;
    /* The share of the work: blocks [next, end) of the sequence, or `left`
     * random blocks. */
    uint64_t next, end, left, rng;
    uint32_t file; /* sequential: the file holding block `next` */
    unsigned groups;
    /* Results. */
    uint64_t bytes, ops, sum;
    uint64_t shown; /* bytes, for the progress line (atomic) */
    double done_at; /* when it finished */
    bool finished;  /* (atomic) */
    char err[512];
    /* Scratch for building groups and collecting completions. */
    rpos pos[GROUP_RANGES];
    lumio_range ranges[GROUP_RANGES];
    lumio_op ops_buf[GROUP_RANGES];
    lumio_completion comp[WAIT_MAX];
} bthread;

/* Where the sums go, so that the compiler cannot drop the reading of data. */
static volatile uint64_t bench_sink;

/* ---- the work ------------------------------------------------------------------ */

static uint64_t touch(const uint8_t *p, uint64_t n) {
    uint64_t s = 0, w, i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8); /* data need not be 8-byte aligned */
        s += w;
    }
    for (; i < n; i++) s += p[i];
    return s;
}

/* The file holding global block k: the last i with cum[i] <= k. */
static uint32_t file_of(const bench_cfg *c, uint64_t k) {
    size_t lo = 0, hi = c->nfiles;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (c->cum[mid] <= k)
            lo = mid;
        else
            hi = mid;
    }
    return (uint32_t)lo;
}

static int cmp_rpos(const void *a, const void *b) {
    const rpos *x = a, *y = b;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    return (x->block > y->block) - (x->block < y->block);
}

static size_t gen_sequential(bthread *t) {
    const bench_cfg *c = t->cfg;
    size_t n = 0;
    for (; n < GROUP_RANGES && t->next < t->end; n++, t->next++) {
        while (c->cum[t->file + 1] <= t->next) t->file++;
        t->pos[n] = (rpos){.file = t->file, .block = t->next - c->cum[t->file]};
    }
    return n;
}

/* Random blocks, sorted by file so that each file is one op. */
static size_t gen_random(bthread *t) {
    const bench_cfg *c = t->cfg;
    uint64_t total = c->cum[c->nfiles];
    size_t n = 0;
    for (; n < GROUP_RANGES && t->left; n++, t->left--) {
        uint64_t k = cli_splitmix(&t->rng) % total;
        uint32_t f = file_of(c, k);
        t->pos[n] = (rpos){.file = f, .block = k - c->cum[f]};
    }
    if (c->nfiles > 1) qsort(t->pos, n, sizeof(rpos), cmp_rpos); /* one op per file */
    return n;
}

/* Build the next group from the work stream and submit it. */
static int submit_group(bthread *t) {
    const bench_cfg *c = t->cfg;
    size_t n = c->count ? gen_random(t) : gen_sequential(t);
    if (n == 0) return 0;
    size_t nops = 0;
    for (size_t i = 0; i < n; i++) {
        const bfile *f = &c->files[t->pos[i].file];
        uint64_t off = t->pos[i].block * c->unit;
        uint64_t len = f->size - off < c->unit ? f->size - off : c->unit;
        t->ranges[i] = (lumio_range){.offset = (int64_t)off, .length = len};
        if (i == 0 || t->pos[i].file != t->pos[i - 1].file) {
            t->ops_buf[nops++] = (lumio_op){.kind = LUMIO_OP_GET,
                                            .path = f->fd < 0 ? f->path : NULL,
                                            .fd = f->fd,
                                            .ranges = &t->ranges[i]};
        }
        t->ops_buf[nops - 1].nranges++;
    }
    uint64_t g;
    int rc = lumio_ring_submit(t->r, t->ops_buf, nops, NULL, &g);
    if (rc < 0) {
        snprintf(t->err, sizeof t->err, "%s", lumio_ring_last_error(t->r, ERRBUF));
        return rc;
    }
    t->groups++;
    return 0;
}

static bool more_work(const bthread *t) {
    return t->cfg->count ? t->left > 0 : t->next < t->end;
}

/* Sum what landed and give the buffers back. Returns -1 on a failed read. */
static int consume(bthread *t, int n) {
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const lumio_completion *c = &t->comp[i];
        if (c->result < 0 && !t->err[0]) {
            lumio_completion_describe(c, t->err, sizeof t->err);
            rc = -1;
        } else if (c->result == 0) {
            t->sum += touch(c->data, c->length);
            t->bytes += c->length;
            t->ops++;
        }
        lumio_buffer_release(c->buffer);
        if (c->flags & LUMIO_CQE_GROUP_END) t->groups--;
    }
    __atomic_store_n(&t->shown, t->bytes, __ATOMIC_RELAXED);
    return rc;
}

static void bench_work(bthread *t) {
    for (;;) {
        while (t->groups < GROUPS_AHEAD && more_work(t))
            if (submit_group(t) < 0) return;
        if (!t->groups) return;
        int n = lumio_ring_wait(t->r, LUMIO_ANY_GROUP, t->comp, WAIT_MAX, 1);
        if (n < 0) {
            snprintf(t->err, sizeof t->err, "%s", lumio_ring_last_error(t->r, ERRBUF));
            return;
        }
        if (n == 0) {
            snprintf(t->err, sizeof t->err, "engine finished with a group not ended (a bug)");
            return;
        }
        if (consume(t, n) < 0) return;
    }
}

static void *bench_thread(void *arg) {
    bthread *t = arg;
    bench_work(t);
    /* The time is each thread's own end: the main thread may be drawing
     * the progress line when the last one ends. */
    t->done_at = now_seconds();
    __atomic_store_n(&t->finished, true, __ATOMIC_RELEASE);
    return NULL;
}

/* ---- files ---------------------------------------------------------------------- */

/* Open for reading; without O_DIRECT where the file system refuses it. When
 * descriptors run out (those kept for the rings aside) the file is read by
 * path instead (fd -1): the engine opens it, within its own cap. */
static int open_file(bench_cfg *c, bfile *f, bool direct) {
    if (c->fds == 0) return 0;
    c->fds--;
    int flags = O_RDONLY | O_CLOEXEC;
    f->fd = open(f->path, flags | (direct ? O_DIRECT : 0));
    if (f->fd < 0 && direct && errno == EINVAL) f->fd = open(f->path, flags);
    if (f->fd >= 0 || errno == EMFILE || errno == ENFILE) return 0;
    return -errno;
}

static int add_file(bench_cfg *c, size_t *cap, const walk_entry *e) {
    if (c->nfiles == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        bfile *nf = realloc(c->files, *cap * sizeof(*nf));
        if (!nf) goto nomem;
        c->files = nf;
    }
    bfile *f = &c->files[c->nfiles];
    *f = (bfile){.path = strdup(e->path), .size = (uint64_t)e->st->st_size, .fd = -1};
    if (!f->path) goto nomem;
    c->nfiles++;
    int rc = c->paths ? 0 : open_file(c, f, c->direct);
    if (rc < 0) cli_path_error(e->path, rc);
    return rc;
nomem:
    cli_error("out of memory");
    return -ENOMEM;
}

/* A root that is neither a file nor a directory. A root link is followed,
 * so one left as a link is dangling. */
static int bad_root(const walk_entry *e) {
    if (e->kind == WALK_SYMLINK) {
        int err = cli_link_error(e->path);
        cli_path_error(e->path, err);
        return err;
    }
    cli_error("%s: not a regular file or directory", e->path);
    return -EINVAL;
}

/* The regular files under the paths, opened. Any error ends the bench. */
static int collect(bench_cfg *c, char **paths, int n) {
    walker *w;
    if (walker_open(&w, paths, n, WALK_FOLLOW_ROOTS) < 0) {
        cli_error("out of memory");
        return -ENOMEM;
    }
    size_t cap = 0;
    walk_entry e;
    int rc = 0;
    while (rc == 0 && walker_next(w, &e)) {
        if (e.kind == WALK_FILE)
            rc = add_file(c, &cap, &e);
        else if (e.kind == WALK_ERROR)
            cli_path_error(e.path, rc = e.err);
        else if (e.level == 0 && (e.kind == WALK_SYMLINK || e.kind == WALK_OTHER))
            rc = bad_root(&e);
    }
    walker_close(w);
    return rc;
}

static int count_blocks(bench_cfg *c) {
    if (!(c->cum = malloc((c->nfiles + 1) * sizeof(uint64_t)))) return -ENOMEM;
    c->cum[0] = 0;
    for (size_t i = 0; i < c->nfiles; i++)
        c->cum[i + 1] = c->cum[i] + c->files[i].size / c->unit + (c->files[i].size % c->unit != 0);
    return 0;
}

static void free_files(bench_cfg *c) {
    for (size_t i = 0; i < c->nfiles; i++) {
        if (c->files[i].fd >= 0) close(c->files[i].fd);
        free(c->files[i].path);
    }
    free(c->files);
    free(c->cum);
}

/* ---- threads and rings ------------------------------------------------------------ */

static int ring_for(const bench_cfg *c, lumio_ring **r) {
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.backend = c->backend;
    o.queue_depth = c->depth;
    o.io_threads = c->depth < 128 ? c->depth : 128; /* the threads backend's depth */
    o.direct = c->direct;
    o.sqpoll = c->sqpoll;
    o.fixed_files = !c->no_fixed_files;
    /* --coalesce 0 (the default): every read is one block, as asked */
    o.coalesce_gap = c->coalesce ? (int64_t)c->coalesce : -1;
    o.max_open_files = cli_ring_open_files(c->threads, RING_FILES);
    /* Room for two depths of blocks, so the cap never throttles the queue,
     * unless --memory says less: then it does. */
    uint64_t unit = c->unit < 4096 ? 4096 : c->unit;
    o.max_buffers = 2 * c->depth > 256 ? 2 * c->depth : 256;
    o.max_bytes = 2 * c->depth * (unit + 4096) > (256ull << 20) ? 2 * c->depth * (unit + 4096)
                                                                : (256ull << 20);
    if (o.max_bytes > c->memory / c->threads) o.max_bytes = c->memory / c->threads;
    return lumio_ring_create(r, &o);
}

/* Thread i's share: a contiguous slice of the blocks, or of the count. */
static void share(const bench_cfg *c, bthread *t, unsigned i) {
    uint64_t total = c->count ? c->count : c->cum[c->nfiles];
    uint64_t q = total / c->threads, rem = total % c->threads;
    uint64_t lo = i * q + (i < rem ? i : rem);
    uint64_t len = q + (i < rem);
    t->cfg = c;
    if (c->count) {
        t->left = len;
        t->rng = SEED + i;
    } else {
        t->next = lo;
        t->end = lo + len;
        t->file = lo < total ? file_of(c, lo) : 0;
    }
}

static void print_result(const bench_cfg *c, lumio_backend be, const bthread *t, double secs) {
    uint64_t bytes = 0, ops = 0;
    for (unsigned i = 0; i < c->threads; i++) {
        bytes += t[i].bytes;
        ops += t[i].ops;
    }
    json j;
    json_begin(&j, stdout);
    json_str(&j, "mode", c->count ? "random" : "sequential");
    json_str(&j, "backend", backend_name(be));
    json_u64(&j, "files", c->nfiles);
    json_u64(&j, "ops", ops);
    json_u64(&j, "bytes", bytes);
    json_num(&j, "seconds", secs);
    json_num(&j, "gib_per_s", secs > 0 ? (double)bytes / secs / (1u << 30) : 0);
    json_num(&j, "ops_per_s", secs > 0 ? (double)ops / secs : 0);
    json_u64(&j, "depth", c->depth);
    json_u64(&j, "threads", c->threads);
    json_u64(&j, "block", c->unit);
    json_bool(&j, "direct", c->direct);
    json_bool(&j, "paths", c->paths);
    json_u64(&j, "coalesce", c->coalesce);
    json_bool(&j, "sqpoll", c->sqpoll);
    json_bool(&j, "fixed_files", !c->no_fixed_files);
    json_end(&j);
}

/* The progress line while the threads run (nothing to do without one). */
static void watch(bthread *t, unsigned n, progress *p) {
    while (p->on) {
        bool all = true;
        uint64_t bytes = 0;
        for (unsigned i = 0; i < n; i++) {
            all &= __atomic_load_n(&t[i].finished, __ATOMIC_ACQUIRE);
            bytes += __atomic_load_n(&t[i].shown, __ATOMIC_RELAXED);
        }
        progress_update(p, 0, bytes);
        if (all) return;
        nanosleep(&(struct timespec){.tv_nsec = 50000000}, NULL);
    }
}

/* The bytes the reads will bring, for the progress line (random reads of
 * the last block of a file may bring less). */
static uint64_t expected_bytes(const bench_cfg *c) {
    uint64_t n = 0;
    if (c->count) return __builtin_mul_overflow(c->count, c->unit, &n) ? 0 : n;
    for (size_t i = 0; i < c->nfiles; i++) n += c->files[i].size;
    return n;
}

/* Start the threads and wait for them: the seconds from the first start to
 * the last end; *rc is 0, or pthread_create's error as a negative errno. */
static double time_threads(const bench_cfg *c, bthread *t, int *rc) {
    progress p;
    progress_start(&p, "read", 0);
    progress_total(&p, expected_bytes(c));
    double t0 = now_seconds(), end = t0;
    unsigned started = 0;
    *rc = 0;
    for (; started < c->threads; started++)
        if ((*rc = -pthread_create(&t[started].tid, NULL, bench_thread, &t[started])) < 0) break;
    watch(t, started, &p);
    bool ok = *rc == 0;
    for (unsigned i = 0; i < started; i++) {
        pthread_join(t[i].tid, NULL);
        if (t[i].done_at > end) end = t[i].done_at;
        ok &= !t[i].err[0];
    }
    progress_end(&p, ok);
    return end - t0;
}

static int run_threads(const bench_cfg *c, bthread *t) {
    for (unsigned i = 0; i < c->threads; i++) {
        int rc = ring_for(c, &t[i].r);
        if (rc < 0) {
            cli_error("cannot start the I/O engine: %s", lumio_strerror(rc));
            return rc;
        }
        share(c, &t[i], i);
    }
    int rc;
    double secs = time_threads(c, t, &rc);
    if (rc < 0) {
        cli_error("cannot start a thread: %s", strerror(-rc));
        return rc;
    }
    for (unsigned i = 0; i < c->threads; i++) {
        bench_sink += t[i].sum;
        if (t[i].err[0]) {
            cli_error("%s", t[i].err);
            rc = -EIO;
        }
    }
    if (rc == 0) print_result(c, lumio_ring_backend(t[0].r), t, secs);
    return rc;
}

/* The engine's pool buffer for n bytes: 4 KiB x {1, 1.5} x 2^k. */
static uint64_t pool_class(uint64_t n) {
    for (uint64_t b = 4096;; b *= 2) {
        if (b >= n) return b;
        if (b + b / 2 >= n) return b + b / 2;
    }
}

/* Each ring reads two blocks at once at least (an O_DIRECT read may be
 * widened by an alignment on each side). */
static int check_memory(const bench_cfg *c) {
    uint64_t need = 2 * pool_class(c->unit + (c->direct ? 8192 : 0)) * c->threads;
    if (c->memory >= need) return 0;
    char b[32], m[32], nd[32];
    cli_error("--block %s needs --memory %s or more for %u ring(s) (it is %s)",
              cli_size_text(c->unit, b, sizeof b), cli_size_text(need, nd, sizeof nd), c->threads,
              cli_size_text(c->memory, m, sizeof m));
    return -1;
}

static int bench_read(bench_cfg *c, char **paths, int n) {
    if (check_memory(c) < 0) return EXIT_USAGE;
    /* Files opened up front take what the rings (their own descriptors and
     * the files they open by path) leave. */
    c->fds = cli_fds_free(16 + c->threads * (4 + RING_FILES));
    int rc = collect(c, paths, n);
    if (rc == 0 && (rc = count_blocks(c)) < 0) cli_error("out of memory");
    if (rc == 0 && c->count && c->cum[c->nfiles] == 0) {
        cli_error("nothing to read: the files are empty");
        rc = -EINVAL;
    }
    bthread *t = rc == 0 ? calloc(c->threads, sizeof(bthread)) : NULL;
    if (rc == 0 && !t) cli_error("out of memory");
    if (t) {
        rc = run_threads(c, t);
        for (unsigned i = 0; i < c->threads; i++) lumio_ring_close(t[i].r);
        free(t);
    }
    free_files(c);
    return rc == 0 && t ? 0 : EXIT_FILES;
}

/* ---- options -------------------------------------------------------------------------- */

enum {
    OPT_BLOCK = 256,
    OPT_RANDOM,
    OPT_SIZE,
    OPT_DEPTH,
    OPT_THREADS,
    OPT_BACKEND,
    OPT_DIRECT,
    OPT_PATHS,
    OPT_SQPOLL,
    OPT_NO_FIXED,
    OPT_COALESCE,
    OPT_MEMORY
};

/* One option's value into the config; returns 0 or an exit status. */
static int take_option(bench_cfg *c, int opt, const char *v, uint64_t *size) {
    static const char *const backends[] = {"uring", "io_uring", "threads", NULL};
    uint64_t x;
    switch (opt) {
    case OPT_BLOCK:
        return cli_opt_size("--block", v, 1, 1ull << 30, &c->unit) < 0 ? EXIT_USAGE : 0;
    case OPT_SIZE:
        return cli_opt_size("--size", v, 1, 1ull << 30, size) < 0 ? EXIT_USAGE : 0;
    case OPT_RANDOM:
        return cli_opt_count("--random", v, 1, UINT64_MAX, &c->count) < 0 ? EXIT_USAGE : 0;
    case OPT_DEPTH:
        if (cli_opt_count("--depth", v, 1, 4096, &x) < 0) return EXIT_USAGE;
        c->depth = (unsigned)x;
        return 0;
    case OPT_THREADS:
        if (cli_opt_count("--threads", v, 1, 256, &x) < 0) return EXIT_USAGE;
        c->threads = (unsigned)x;
        return 0;
    case OPT_BACKEND: {
        int i = cli_opt_choice("--backend", v, backends);
        if (i < 0) return EXIT_USAGE;
        c->backend = i == 2 ? LUMIO_BACKEND_THREADS : LUMIO_BACKEND_URING;
        return 0;
    }
    case OPT_COALESCE:
        return cli_opt_size("--coalesce", v, 0, 1ull << 30, &c->coalesce) < 0 ? EXIT_USAGE : 0;
    case OPT_MEMORY:
        return cli_parse_memory(v, 1u << 20, &c->memory) < 0 ? EXIT_USAGE : 0;
    case OPT_PATHS:
        c->paths = true;
        return 0;
    case OPT_SQPOLL:
        c->sqpoll = true;
        return 0;
    case OPT_NO_FIXED:
        c->no_fixed_files = true;
        return 0;
    default:
        c->direct = true;
        return 0;
    }
}

static int bench_read_main(int argc, char **argv) {
    static const struct option longopts[] = {{"block", required_argument, NULL, OPT_BLOCK},
                                             {"random", required_argument, NULL, OPT_RANDOM},
                                             {"size", required_argument, NULL, OPT_SIZE},
                                             {"depth", required_argument, NULL, OPT_DEPTH},
                                             {"threads", required_argument, NULL, OPT_THREADS},
                                             {"backend", required_argument, NULL, OPT_BACKEND},
                                             {"direct", no_argument, NULL, OPT_DIRECT},
                                             {"paths", no_argument, NULL, OPT_PATHS},
                                             {"coalesce", required_argument, NULL, OPT_COALESCE},
                                             {"memory", required_argument, NULL, OPT_MEMORY},
                                             {"sqpoll", no_argument, NULL, OPT_SQPOLL},
                                             {"no-fixed-files", no_argument, NULL, OPT_NO_FIXED},
                                             CLI_OPT_END};
    bench_cfg c = {.unit = 256 << 10, .depth = 64, .threads = 1, .memory = BENCH_MEMORY};
    uint64_t size = 0;
    int opt;
    while ((opt = cli_getopt(argc, argv, ":h", longopts)) != -1) {
        if (opt == 'h' || opt == '?' || opt == ':')
            return cli_option_default(opt, argv, bench_usage);
        int st = take_option(&c, opt, optarg, &size);
        if (st) return st;
    }
    if (size && !c.count) {
        cli_error("--size goes with --random (use --block for sequential reads)");
        return EXIT_USAGE;
    }
    if (size) c.unit = size;
    if (optind >= argc) return cli_usage_error("lumio bench", "missing PATH");
    return bench_read(&c, argv + optind, argc - optind);
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2) return cli_usage_error("lumio bench", "missing benchmark: read or remote");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(bench_usage, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "remote")) {
        cli_set_name("lumio bench remote");
        return bench_remote_main(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "read")) {
        cli_error("unknown benchmark '%s' (read or remote)", argv[1]);
        return EXIT_USAGE;
    }
    cli_set_name("lumio bench read");
    return bench_read_main(argc - 1, argv + 1);
}
