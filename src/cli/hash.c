/* lumio hash: xxHash digests of files and trees, printed exactly as
 * `xxhsum -H1` (xxh64), `-H2` (xxh128) and `-H3` (xxh3) print them.
 *
 * Files are walked into batches; each batch is one in-order group. A small
 * file is read whole and hashed on the engine's compute workers, which store
 * the digest in the batch and hand the buffer back at once, so many files
 * hash in parallel and memory holds only reads in flight. A large file is
 * read in blocks, delivered in order, and hashed here with the streaming API.
 * Several batches are in flight; each is printed once it and every batch
 * before it have ended, so the output keeps the walk order. */
#include "cli/common.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#define HASH_SMALL_MAX (4ull << 20) /* read whole and hash on a worker */
#define HASH_BLOCK     (1u << 20)   /* block size for larger files */
#define BATCH_FILES    256
#define BATCHES        4
#define WAIT_MAX       256

/* An entry that is not a regular file (a fifo or device named on the command
 * line): kept apart from errno codes because it needs its own message. */
#define ERR_NOT_REGULAR 1

static const char hash_usage[] =
    "usage: lumio hash [--algo xxh64|xxh3|xxh128] PATH...\n"
    "\n"
    "Print the xxHash digest of each file, as xxhsum does: --algo xxh64 (the\n"
    "default) as 'xxhsum -H1', xxh128 as 'xxhsum -H2', xxh3 as 'xxhsum -H3'.\n"
    "Directories are walked recursively, entries sorted by name; symbolic links\n"
    "inside them are not followed. A file that cannot be read is reported on\n"
    "standard error, the others are still hashed, and the exit status is 1.\n"
    "\n"
    "  --algo NAME   xxh64, xxh3 or xxh128\n"
    "  -h, --help    show this help\n";

typedef enum algo { ALGO_XXH64, ALGO_XXH3, ALGO_XXH128 } algo;

typedef struct hentry {
    char *path;
    int err;                  /* negative code, ERR_NOT_REGULAR, or 0 */
    bool large;               /* hashed here, block by block */
    void *state;              /* XXH64_state_t or XXH3_state_t of a large file */
    unsigned char digest[16]; /* canonical (big-endian) form */
} hentry;

/* One group of files. The compute workers read `algo`, `op_entry` and the
 * `large` flags and write digests; the main thread does not touch an entry
 * of a busy batch except to stream a large file's blocks. */
typedef struct hbatch {
    algo algo;
    size_t n, nops;
    bool busy; /* submitted, group not ended */
    uint64_t group;
    uint32_t op_entry[BATCH_FILES]; /* op index -> entry index */
    hentry e[BATCH_FILES];
} hbatch;

typedef struct hasher {
    lumio_ring *r;
    walker *w;
    algo algo;
    bool walk_done;
    int status;
    hbatch *b[BATCHES]; /* a ring of batches: b[head] prints next */
    unsigned head, count;
    lumio_op ops[BATCH_FILES];
    lumio_range whole[BATCH_FILES];
    progress prog;
    uint64_t files, bytes;
} hasher;

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

/* The compute stage: a small file's digest, straight from the pool buffer
 * into its entry. Blocks of large files pass through to the main thread,
 * which sees them in order; failures pass through unchanged. */
static int hash_compute(void *arg, lumio_completion *c) {
    hbatch *b = arg;
    if (c->result < 0 || c->op_index >= b->nops) return c->result;
    hentry *e = &b->e[b->op_entry[c->op_index]];
    if (e->large) return 0;
    digest_buffer(b->algo, c->data, c->length, e->digest);
    lumio_buffer_release(c->buffer);
    c->buffer = NULL;
    c->data = NULL;
    c->out = e->digest;
    c->out_length = digest_len(b->algo);
    return 0;
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

/* Print the batches that are done, oldest first. */
static void print_ready(hasher *h) {
    while (h->count && !h->b[h->head]->busy) {
        batch_flush(h, h->b[h->head]);
        h->head = (h->head + 1) % BATCHES;
        h->count--;
    }
    progress_update(&h->prog, h->files, h->bytes);
}

/* ---- building batches ------------------------------------------------------------ */

static int add_entry(hbatch *b, const char *path, int err) {
    hentry *e = &b->e[b->n];
    *e = (hentry){.err = err};
    if (!(e->path = strdup(path))) return -ENOMEM;
    b->n++;
    return 0;
}

/* Add a regular file: an entry and the op that reads it. */
static int add_file(hasher *h, hbatch *b, const char *path, uint64_t size) {
    int rc = add_entry(b, path, 0);
    if (rc < 0) return rc;
    hentry *e = &b->e[b->n - 1];
    lumio_op *op = &h->ops[b->nops];
    *op = (lumio_op){.kind = LUMIO_OP_GET, .path = e->path};
    if (size > HASH_SMALL_MAX) {
        e->large = true;
        if (!(e->state = stream_new(b->algo))) return -ENOMEM;
        op->block_size = HASH_BLOCK;
    } else {
        op->ranges = &h->whole[b->nops];
        op->nranges = 1;
    }
    b->op_entry[b->nops++] = (uint32_t)(b->n - 1);
    return 0;
}

/* What a walk entry adds: a file, an error, or nothing (directories, and
 * links or special files met inside a tree, as `find -type f` skips them). */
static int take_entry(hasher *h, hbatch *b, const walk_entry *we) {
    switch (we->kind) {
    case WALK_FILE:
        return add_file(h, b, we->path, (uint64_t)we->st->st_size);
    case WALK_ERROR:
        return add_entry(b, we->path, we->err);
    case WALK_SYMLINK: /* at the root only a dangling link is left unfollowed */
        return we->level == 0 ? add_entry(b, we->path, -ENOENT) : 0;
    case WALK_OTHER:
        return we->level == 0 ? add_entry(b, we->path, ERR_NOT_REGULAR) : 0;
    default:
        return 0;
    }
}

/* Fill the batch from the walk and submit it. */
static int batch_build(hasher *h, hbatch *b) {
    b->algo = h->algo;
    walk_entry we;
    while (b->n < BATCH_FILES) {
        if (walker_next(h->w, &we) == 0) {
            h->walk_done = true;
            break;
        }
        int rc = take_entry(h, b, &we);
        if (rc < 0) return rc;
    }
    if (b->nops == 0) return 0;
    lumio_group_options go;
    lumio_group_options_default(&go);
    go.in_order = 1; /* blocks of a large file must come in order */
    go.compute = hash_compute;
    go.compute_arg = b;
    int rc = lumio_ring_submit(h->r, h->ops, b->nops, &go, &b->group);
    if (rc < 0) return rc;
    b->busy = true;
    return 0;
}

static int fill(hasher *h) {
    while (h->count < BATCHES && !h->walk_done) {
        hbatch *b = h->b[(h->head + h->count) % BATCHES];
        int rc = batch_build(h, b);
        if (b->n) h->count++;
        if (rc < 0) return rc;
    }
    return 0;
}

/* ---- completions ------------------------------------------------------------------- */

static hbatch *batch_of(hasher *h, uint64_t group) {
    for (unsigned i = 0; i < BATCHES; i++)
        if (h->b[i]->busy && h->b[i]->group == group) return h->b[i];
    return NULL;
}

static void take_completion(hasher *h, const lumio_completion *c) {
    hbatch *b = batch_of(h, c->group);
    if (b && c->op_index < b->nops) {
        hentry *e = &b->e[b->op_entry[c->op_index]];
        if (c->result < 0 && !e->err)
            e->err = c->result;
        else if (c->result == 0 && e->large && !e->err)
            stream_update(b->algo, e->state, c->data, c->length);
    }
    h->bytes += c->length;
    lumio_buffer_release(c->buffer);
    if (b && (c->flags & LUMIO_CQE_GROUP_END)) b->busy = false;
}

static bool any_busy(const hasher *h) {
    for (unsigned i = 0; i < BATCHES; i++)
        if (h->b[i]->busy) return true;
    return false;
}

static int hash_loop(hasher *h) {
    lumio_completion c[WAIT_MAX];
    for (;;) {
        int rc = fill(h);
        if (rc < 0) return rc;
        print_ready(h);
        if (!any_busy(h)) {
            if (h->walk_done && h->count == 0) return 0;
            continue;
        }
        int n = lumio_ring_wait(h->r, LUMIO_ANY_GROUP, c, WAIT_MAX, 1);
        if (n < 0) return n;
        if (n == 0) {
            /* The engine has nothing left yet a group never ended. */
            cli_error("engine finished with a group not ended (a bug in lumio)");
            return LUMIO_E_BASE;
        }
        for (int i = 0; i < n; i++) take_completion(h, &c[i]);
    }
}

/* ---- setup --------------------------------------------------------------------------- */

static int parse_algo(const char *s, algo *out) {
    if (!strcmp(s, "xxh64"))
        *out = ALGO_XXH64;
    else if (!strcmp(s, "xxh3"))
        *out = ALGO_XXH3;
    else if (!strcmp(s, "xxh128"))
        *out = ALGO_XXH128;
    else
        return -1;
    return 0;
}

/* io_uring reads cached data inline, in the thread that submits: that
 * thread is then a busy core of its own, so the compute workers get one core
 * fewer (on two cores this is about a third faster). The threads backend
 * copies on its own threads and keeps a worker per core. */
static int hash_ring(lumio_ring **r) {
    lumio_ring_options o;
    lumio_ring_options_default(&o);
    o.queue_depth = 64;
    int rc = lumio_ring_create(r, &o);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (rc < 0 || lumio_ring_backend(*r) != LUMIO_BACKEND_URING || cores < 2) return rc;
    lumio_ring_destroy(*r);
    o.backend = LUMIO_BACKEND_URING;
    o.workers = (unsigned)cores - 1;
    return lumio_ring_create(r, &o);
}

static int hasher_start(hasher *h, char **paths, int n) {
    for (unsigned i = 0; i < BATCH_FILES; i++)
        h->whole[i] = (lumio_range){.offset = 0, .length = LUMIO_WHOLE};
    for (unsigned i = 0; i < BATCHES; i++)
        if (!(h->b[i] = calloc(1, sizeof(hbatch)))) return -ENOMEM;
    int rc = hash_ring(&h->r);
    if (rc < 0) return rc;
    return walker_open(&h->w, paths, n, WALK_FOLLOW_ROOTS);
}

/* Free what is left after a failure: entries of batches never printed. */
static void hasher_stop(hasher *h) {
    lumio_ring_destroy(h->r); /* first: workers may still write into batches */
    walker_close(h->w);
    for (unsigned i = 0; i < BATCHES; i++) {
        hbatch *b = h->b[i];
        for (size_t j = 0; b && j < b->n; j++) {
            free(b->e[j].path);
            if (b->e[j].state) stream_finish(b->algo, b->e[j].state, b->e[j].digest);
        }
        free(b);
    }
}

static int hash_run(char **paths, int n, algo a) {
    hasher h = {.algo = a};
    progress_init(&h.prog, "hashed");
    int rc = hasher_start(&h, paths, n);
    if (rc == 0) rc = hash_loop(&h);
    progress_done(&h.prog);
    if (rc < 0 && rc != LUMIO_E_BASE) {
        cli_error("%s", rc == -ENOMEM                        ? "out of memory"
                        : h.r && *lumio_ring_last_error(h.r) ? lumio_ring_last_error(h.r)
                                                             : lumio_strerror(rc));
    }
    hasher_stop(&h);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("standard output: %s", strerror(errno));
        return EXIT_FILES;
    }
    return rc < 0 ? EXIT_FILES : h.status;
}

int cmd_hash(int argc, char **argv) {
    static const struct option longopts[] = {
        {"algo", required_argument, NULL, 'a'}, {"help", no_argument, NULL, 'h'}, {0}};
    algo a = ALGO_XXH64;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(hash_usage, stdout);
            return 0;
        case 'a':
            if (parse_algo(optarg, &a) < 0) {
                cli_error("invalid --algo '%s' (xxh64, xxh3 or xxh128)", optarg);
                return EXIT_USAGE;
            }
            break;
        default:
            return cli_option_error(c, argv);
        }
    }
    if (optind >= argc) {
        cli_error("missing PATH (see 'lumio hash --help')");
        return EXIT_USAGE;
    }
    return hash_run(argv + optind, argc - optind, a);
}
