/* lumio hash: xxHash digests of files and trees, printed exactly as
 * `xxhsum -H1` (xxh64), `-H2` (xxh128) and `-H3` (xxh3) print them.
 *
 * Files are walked into batches. Each core has a lane: a thread with a ring
 * of its own that takes the next batch, reads its files (small ones whole,
 * large ones in blocks delivered in order) and hashes every buffer in the
 * same thread as it lands. io_uring copies cached data in the thread that
 * submits, so the bytes are hashed while they are still in that core's
 * cache; handing them to another core costs more than the hash. Batches are
 * printed in walk order as they finish, and only a few are in memory. */
#include "cli/common.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define HASH_SMALL_MAX (4ull << 20) /* read whole in one buffer */
#define HASH_BLOCK     (1u << 20)   /* block size for larger files */
#define BATCH_FILES    128
#define MAX_LANES      64
#define WAIT_MAX       256
#define HASH_MEMORY    (256ull << 20) /* default --memory */
#define LANE_MEMORY    (16ull << 20)  /* a lane's pool at least: whole files and blocks */
#define MEMORY_MIN     (8ull << 20)   /* two small files of HASH_SMALL_MAX */

/* An entry that is not a regular file (a fifo or device named on the command
 * line): kept apart from errno codes because it needs its own message. */
#define ERR_NOT_REGULAR 1

static const char hash_usage[] =
    "usage: lumio hash [--algo xxh64|xxh3|xxh128] [--memory SIZE] PATH|-...\n"
    "\n"
    "Print the xxHash digest of each file, as xxhsum does: --algo xxh64 (the\n"
    "default) as 'xxhsum -H1', xxh128 as 'xxhsum -H2', xxh3 as 'xxhsum -H3'.\n"
    "Directories are walked recursively, entries sorted by name; symbolic links\n"
    "inside them are not followed. Pipes, devices and files of /proc and /sys\n"
    "named on the command line are read to their end; - is standard input.\n"
    "A file that cannot be read is reported on standard error, the others are\n"
    "still hashed, and the exit status is 1.\n"
    "\n"
    "  --algo NAME   xxh64, xxh3 or xxh128\n"
    "  --memory SIZE most memory held in buffers (default 256M, at least 8M)\n"
    "  -h, --help    show this help\n";

typedef enum algo { ALGO_XXH64, ALGO_XXH3, ALGO_XXH128 } algo;

typedef struct hentry {
    char *path;
    int err;                  /* negative code, ERR_NOT_REGULAR, or 0 */
    bool large;               /* hashed here, block by block */
    void *state;              /* XXH64_state_t or XXH3_state_t of a large file */
    unsigned char digest[16]; /* canonical (big-endian) form */
} hentry;

/* One group of files: filled by the main thread, read and hashed by one
 * lane, printed by the main thread once `done`. */
typedef struct hbatch {
    algo algo;
    size_t n, nops;
    bool busy; /* handed to a lane, not done */
    bool done;
    uint32_t op_entry[BATCH_FILES]; /* op index -> entry index */
    lumio_op ops[BATCH_FILES];
    hentry e[BATCH_FILES];
    struct hbatch *next; /* the lanes' queue */
} hbatch;

typedef struct hasher hasher;

typedef struct lane {
    hasher *h;
    lumio_ring *r;
    pthread_t thread;
    bool started;
    int err; /* a failure of the engine itself */
} lane;

struct hasher {
    walker *w;
    algo algo;
    uint64_t memory;
    bool walk_done;
    int status;
    unsigned nbatches;
    hbatch **b; /* a ring of batches: b[head] prints next */
    unsigned head, count;
    unsigned nlanes;
    lane lanes[MAX_LANES];
    pthread_mutex_t mu;
    pthread_cond_t lane_cv; /* a batch is queued, or stop */
    pthread_cond_t main_cv; /* a batch is done */
    hbatch *queue_head, *queue_tail;
    bool stop;
    progress prog;
    uint64_t files, bytes;
    uint64_t expect; /* the sizes of the files walked */
    bool unsized;    /* and some (a pipe, a device) have none */
};

/* ---- digests ---------------------------------------------------------------- */

static size_t digest_len(algo a) {
    return a == ALGO_XXH128 ? 16 : 8;
}

static void put64(unsigned char *out, XXH64_hash_t h) {
    XXH64_canonical_t c;
    XXH64_canonicalFromHash(&c, h);
    memcpy(out, c.digest, sizeof c.digest);
}

static void put128(unsigned char *out, XXH128_hash_t h) {
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    memcpy(out, c.digest, sizeof c.digest);
}

static void digest_buffer(algo a, const void *p, size_t n, unsigned char *out) {
    switch (a) {
    case ALGO_XXH64:
        put64(out, XXH64(p, n, 0));
        break;
    case ALGO_XXH3:
        put64(out, XXH3_64bits(p, n));
        break;
    case ALGO_XXH128:
        put128(out, XXH3_128bits(p, n));
        break;
    }
}

static void *stream_new(algo a) {
    if (a == ALGO_XXH64) {
        XXH64_state_t *s = XXH64_createState();
        if (s) XXH64_reset(s, 0);
        return s;
    }
    XXH3_state_t *s = XXH3_createState();
    if (s && a == ALGO_XXH3)
        XXH3_64bits_reset(s);
    else if (s)
        XXH3_128bits_reset(s);
    return s;
}

static void stream_update(algo a, void *s, const void *p, size_t n) {
    switch (a) {
    case ALGO_XXH64:
        XXH64_update(s, p, n);
        break;
    case ALGO_XXH3:
        XXH3_64bits_update(s, p, n);
        break;
    case ALGO_XXH128:
        XXH3_128bits_update(s, p, n);
        break;
    }
}

static void stream_finish(algo a, void *s, unsigned char *out) {
    switch (a) {
    case ALGO_XXH64:
        put64(out, XXH64_digest(s));
        XXH64_freeState(s);
        break;
    case ALGO_XXH3:
        put64(out, XXH3_64bits_digest(s));
        XXH3_freeState(s);
        break;
    case ALGO_XXH128:
        put128(out, XXH3_128bits_digest(s));
        XXH3_freeState(s);
        break;
    }
}

/* ---- output ------------------------------------------------------------------ */

static void print_entry(algo a, const hentry *e) {
    if (e->err == ERR_NOT_REGULAR) {
        cli_error("%s: not a regular file", e->path);
        return;
    }
    if (e->err) {
        cli_path_error(e->path, e->err);
        return;
    }
    char hex[33];
    size_t n = digest_len(a);
    for (size_t i = 0; i < n; i++) snprintf(hex + 2 * i, 3, "%02x", e->digest[i]);
    if (a == ALGO_XXH3)
        printf("XXH3 (%s) = %s\n", e->path, hex);
    else
        printf("%s  %s\n", hex, e->path);
}

/* Print and empty the batch. */
static void batch_flush(hasher *h, hbatch *b) {
    progress_before_output(&h->prog);
    for (size_t i = 0; i < b->n; i++) {
        hentry *e = &b->e[i];
        if (e->state) stream_finish(b->algo, e->state, e->digest);
        if (e->err) h->status = EXIT_FILES;
        print_entry(b->algo, e);
        free(e->path);
    }
    h->files += b->n;
    b->n = b->nops = 0;
}

/* Print the batches that are done, oldest first (main thread, under mu). */
static void print_ready(hasher *h) {
    while (h->count && h->b[h->head]->done) {
        batch_flush(h, h->b[h->head]);
        h->b[h->head]->done = false;
        h->head = (h->head + 1) % h->nbatches;
        h->count--;
    }
    progress_update(&h->prog, h->files, __atomic_load_n(&h->bytes, __ATOMIC_RELAXED));
}

/* ---- building batches ------------------------------------------------------------ */

static int add_entry(hbatch *b, const char *path, int err) {
    hentry *e = &b->e[b->n];
    *e = (hentry){.err = err};
    if (!(e->path = strdup(path))) return -ENOMEM;
    b->n++;
    return 0;
}

/* Add a file: an entry and the op that reads it. A file whose size is not
 * to be trusted (0 for an empty file and for a /proc file alike; a pipe, a
 * device, standard input as "-", printed "stdin" as xxhsum does) is read in
 * blocks until its end. */
static int add_file(hbatch *b, const char *path, uint64_t size, bool sized) {
    bool in = !strcmp(path, "-");
    int rc = add_entry(b, in ? "stdin" : path, 0);
    if (rc < 0) return rc;
    static const lumio_range whole = {.offset = 0, .length = LUMIO_WHOLE};
    hentry *e = &b->e[b->n - 1];
    lumio_op *op = &b->ops[b->nops];
    *op = (lumio_op){.kind = LUMIO_OP_GET, .path = in ? NULL : e->path, .fd = in ? 0 : -1};
    if (size > HASH_SMALL_MAX || size == 0 || !sized) {
        e->large = true;
        if (!(e->state = stream_new(b->algo))) return -ENOMEM;
        op->block_size = HASH_BLOCK;
        /* A file as standard input: from where it was left, as xxhsum. */
        static lumio_range from_stdin = {.length = LUMIO_WHOLE};
        off_t at = in ? cli_stdin_offset() : -1;
        if (at > 0) {
            from_stdin.offset = (int64_t)at;
            op->ranges = &from_stdin;
            op->nranges = 1;
        }
    } else {
        op->ranges = &whole;
        op->nranges = 1;
    }
    b->op_entry[b->nops++] = (uint32_t)(b->n - 1);
    return 0;
}

/* What a walk entry adds: a file, an error, or nothing (directories, and
 * links or special files met inside a tree, as `find -type f` skips them). */
static int take_entry(hbatch *b, const walk_entry *we) {
    if (we->level == 0 && !strcmp(we->path, "-")) return add_file(b, "-", 0, false);
    switch (we->kind) {
    case WALK_FILE:
        return add_file(b, we->path, (uint64_t)we->st->st_size, true);
    case WALK_ERROR:
        return add_entry(b, we->path, we->err);
    case WALK_SYMLINK: /* at the root, a link the walk could not follow: why */
        return we->level == 0 ? add_entry(b, we->path, cli_link_error(we->path)) : 0;
    case WALK_OTHER: /* a pipe or device named as a root is read to its end */
        if (we->level != 0) return 0;
        if (S_ISSOCK(we->st->st_mode)) return add_entry(b, we->path, ERR_NOT_REGULAR);
        return add_file(b, we->path, 0, false);
    default:
        return 0;
    }
}

/* What the walk adds to the bytes to read, for the progress line's total. */
static void expect(hasher *h, const walk_entry *we) {
    bool root_special = we->level == 0 && (!strcmp(we->path, "-") || we->kind == WALK_OTHER);
    if (root_special)
        h->unsized = true;
    else if (we->kind == WALK_FILE)
        h->expect += (uint64_t)we->st->st_size;
}

/* Fill the batch from the walk and queue it for a lane. */
static int batch_build(hasher *h, hbatch *b) {
    b->algo = h->algo;
    walk_entry we;
    while (b->n < BATCH_FILES) {
        if (walker_next(h->w, &we) == 0) {
            h->walk_done = true;
            progress_total(&h->prog, h->unsized ? 0 : h->expect);
            break;
        }
        expect(h, &we);
        int rc = take_entry(b, &we);
        if (rc < 0) return rc;
    }
    if (b->n == 0) return 0;
    pthread_mutex_lock(&h->mu);
    if (b->nops == 0) {
        b->done = true; /* errors only: nothing to read */
    } else {
        b->busy = true;
        b->next = NULL;
        if (h->queue_tail)
            h->queue_tail->next = b;
        else
            h->queue_head = b;
        h->queue_tail = b;
        pthread_cond_signal(&h->lane_cv);
    }
    pthread_mutex_unlock(&h->mu);
    return 0;
}

static int fill(hasher *h) {
    while (h->count < h->nbatches && !h->walk_done) {
        hbatch *b = h->b[(h->head + h->count) % h->nbatches];
        int rc = batch_build(h, b);
        if (b->n) h->count++;
        if (rc < 0) return rc;
    }
    return 0;
}

/* ---- lanes --------------------------------------------------------------------- */

/* A completion, in the lane that read it: hash it now, while it is hot. */
static void take_completion(hbatch *b, const lumio_completion *c) {
    if (c->op_index < b->nops) {
        hentry *e = &b->e[b->op_entry[c->op_index]];
        if (c->result < 0 && !e->err)
            e->err = c->result;
        else if (c->result == 0 && !e->err && e->large)
            stream_update(b->algo, e->state, c->data, c->length);
        else if (c->result == 0 && !e->err)
            digest_buffer(b->algo, c->data, c->length, e->digest);
    }
    lumio_buffer_release(c->buffer);
}

/* Read and hash one batch. Returns 0 or an engine error. */
static int lane_batch(lane *l, hbatch *b) {
    lumio_group_options go;
    go = (lumio_group_options){0};
    go.in_order = 1; /* blocks of a large file must come in order */
    uint64_t g;
    int rc = lumio_ring_submit(l->r, b->ops, b->nops, &go, &g);
    if (rc < 0) return rc;
    lumio_completion c[WAIT_MAX];
    for (bool ended = false; !ended;) {
        int n = lumio_ring_wait(l->r, g, c, WAIT_MAX, 1);
        if (n < 0) return n;
        if (n == 0) return LUMIO_E_BASE; /* a group that never ends: a bug */
        uint64_t bytes = 0;
        for (int i = 0; i < n; i++) {
            bytes += c[i].length;
            take_completion(b, &c[i]);
            ended |= (c[i].flags & LUMIO_CQE_GROUP_END) != 0;
        }
        /* Seen by the progress line while a large file is still read. */
        __atomic_fetch_add(&l->h->bytes, bytes, __ATOMIC_RELAXED);
    }
    return 0;
}

static void *lane_main(void *arg) {
    lane *l = arg;
    hasher *h = l->h;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->queue_head && !h->stop) pthread_cond_wait(&h->lane_cv, &h->mu);
        hbatch *b = h->queue_head;
        if (!b) break;
        h->queue_head = b->next;
        if (!h->queue_head) h->queue_tail = NULL;
        pthread_mutex_unlock(&h->mu);
        int rc = l->err ? l->err : lane_batch(l, b);
        pthread_mutex_lock(&h->mu);
        if (rc < 0 && !l->err) l->err = rc;
        b->busy = false;
        b->done = true;
        pthread_cond_signal(&h->main_cv);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static int lanes_error(hasher *h) {
    for (unsigned i = 0; i < h->nlanes; i++)
        if (h->lanes[i].err) return h->lanes[i].err;
    return 0;
}

/* Wait for a lane to finish a batch (under mu); with a progress line, wake
 * ten times a second to draw it, a large file taking long. */
static void wait_lanes(hasher *h) {
    if (!h->prog.on) {
        pthread_cond_wait(&h->main_cv, &h->mu);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100000000;
    if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
    pthread_cond_timedwait(&h->main_cv, &h->mu, &ts);
    progress_update(&h->prog, h->files, __atomic_load_n(&h->bytes, __ATOMIC_RELAXED));
}

static int hash_loop(hasher *h) {
    for (;;) {
        int rc = fill(h);
        if (rc < 0) return rc;
        pthread_mutex_lock(&h->mu);
        print_ready(h);
        while (h->count == h->nbatches || (h->walk_done && h->count > 0)) {
            if (h->b[h->head]->done) break;
            wait_lanes(h);
        }
        print_ready(h);
        rc = lanes_error(h);
        bool finished = h->walk_done && h->count == 0;
        pthread_mutex_unlock(&h->mu);
        if (rc < 0) return rc;
        if (finished) return 0;
    }
}

/* ---- setup --------------------------------------------------------------------------- */

static int hasher_start(hasher *h, char **paths, int n) {
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->lane_cv, NULL);
    pthread_cond_init(&h->main_cv, NULL);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    h->nlanes = cores < 1 ? 1 : cores > MAX_LANES ? MAX_LANES : (unsigned)cores;
    /* --memory is shared by the lanes: fewer lanes rather than starved ones. */
    uint64_t fit = h->memory / LANE_MEMORY;
    if (fit < h->nlanes) h->nlanes = fit ? (unsigned)fit : 1;
    /* And the descriptor limit: a lane's ring and a few files each. */
    fit = cli_fds_free(16) / 6;
    if (fit < h->nlanes) h->nlanes = fit ? (unsigned)fit : 1;
    h->nbatches = 2 * h->nlanes + 1; /* every lane busy, the next ones ready */
    if (!(h->b = calloc(h->nbatches, sizeof(hbatch *)))) return -ENOMEM;
    for (unsigned i = 0; i < h->nbatches; i++)
        if (!(h->b[i] = calloc(1, sizeof(hbatch)))) return -ENOMEM;
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.queue_depth = 32;
    o.max_bytes = h->memory / h->nlanes;
    o.max_buffers = 256;
    o.max_open_files = cli_ring_open_files(h->nlanes, 64);
    for (unsigned i = 0; i < h->nlanes; i++) {
        lane *l = &h->lanes[i];
        l->h = h;
        int rc = lumio_ring_create(&l->r, &o);
        if (rc < 0) return rc;
        if ((rc = pthread_create(&l->thread, NULL, lane_main, l)) != 0) return -rc;
        l->started = true;
    }
    return walker_open(&h->w, paths, n, WALK_FOLLOW_ROOTS);
}

/* Stop the lanes, then free what is left: entries of batches never printed. */
static void hasher_stop(hasher *h) {
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_cond_broadcast(&h->lane_cv);
    pthread_mutex_unlock(&h->mu);
    for (unsigned i = 0; i < h->nlanes; i++) {
        if (h->lanes[i].started) pthread_join(h->lanes[i].thread, NULL);
        lumio_ring_close(h->lanes[i].r);
    }
    walker_close(h->w);
    for (unsigned i = 0; h->b && i < h->nbatches; i++) {
        hbatch *b = h->b[i];
        for (size_t j = 0; b && j < b->n; j++) {
            free(b->e[j].path);
            if (b->e[j].state) stream_finish(b->algo, b->e[j].state, b->e[j].digest);
        }
        free(b);
    }
    free(h->b);
    pthread_cond_destroy(&h->lane_cv);
    pthread_cond_destroy(&h->main_cv);
    pthread_mutex_destroy(&h->mu);
}

static int hash_run(char **paths, int n, algo a, uint64_t memory) {
    hasher h = {.algo = a, .memory = memory};
    progress_start(&h.prog, "hashed", PROGRESS_FILES);
    int rc = hasher_start(&h, paths, n);
    if (rc == 0) rc = hash_loop(&h);
    progress_end(&h.prog, rc == 0);
    if (rc < 0 && rc != LUMIO_E_BASE) {
        cli_error("%s", rc == -ENOMEM ? "out of memory" : lumio_strerror(rc));
    }
    hasher_stop(&h);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("standard output: %s", strerror(errno));
        return EXIT_FILES;
    }
    return rc < 0 ? EXIT_FILES : h.status;
}

int cmd_hash(int argc, char **argv) {
    static const struct option longopts[] = {{"algo", required_argument, NULL, 'a'},
                                             {"memory", required_argument, NULL, 'm'},
                                             CLI_OPT_END};
    static const char *const algos[] = {"xxh64", "xxh3", "xxh128", NULL};
    algo a = ALGO_XXH64;
    uint64_t memory = HASH_MEMORY;
    int c;
    while ((c = cli_getopt(argc, argv, ":h", longopts)) != -1) {
        int i;
        switch (c) {
        case 'a':
            if ((i = cli_opt_choice("--algo", optarg, algos)) < 0) return EXIT_USAGE;
            a = i == 0 ? ALGO_XXH64 : i == 1 ? ALGO_XXH3 : ALGO_XXH128;
            break;
        case 'm':
            if (cli_parse_memory(optarg, MEMORY_MIN, &memory) < 0) return EXIT_USAGE;
            break;
        default:
            return cli_option_default(c, argv, hash_usage);
        }
    }
    if (optind >= argc) return cli_usage_error("lumio hash", "missing PATH");
    return hash_run(argv + optind, argc - optind, a, memory);
}
