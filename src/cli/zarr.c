/* lumio zarr: Zarr arrays from a directory, an http(s) URL or S3.
 *   info  shape, chunks, dtype, codecs, fill value, stored bytes
 *   cat   a region's raw bytes in C order and the array's byte order */
#include "cli/common.h"
#include "cli/output.h"
#include "cli/zarr_slab.h"
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <lumio/remote.h>
#include <lumio/zarr.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

static const char zarr_usage[] =
    "usage: lumio zarr info PATH|URL [--timeout SECONDS]\n"
    "       lumio zarr cat PATH|URL [--region START:STOP,...] [-o FILE|-] [--memory SIZE]\n"
    "                         [--timeout SECONDS]\n"
    "       lumio zarr create PATH --shape N,... --chunks N,... --dtype DTYPE [--codec C]\n"
    "                         [--format 2|3] [--order C|F] [--fill V] [--separator .|/]\n"
    "                         [--checksum] [--shard N,...] [--from RAWFILE|-] [--memory SIZE]\n"
    "                         [--timeout SECONDS]\n"
    "       lumio zarr rechunk SRC DST --chunks N,... [--codec C] [--format 2|3] [--order C|F]\n"
    "                         [--shard N,...] [--checksum] [--memory SIZE] [--timeout SECONDS]\n"
    "       lumio zarr bench PATH|URL --pattern all|crops|series [--crop N,...] [--count N]\n"
    "                         [--batch N] [--cache SIZE] [--memory SIZE] [--timeout SECONDS]\n"
    "\n"
    "Zarr v2 and v3 arrays in a directory, over http(s):// or in s3://BUCKET/PREFIX.\n"
    "\n"
    "  info   shape, chunks, dtype, order, codecs, fill value; for a directory\n"
    "         also the chunks present and the bytes they take\n"
    "  cat    the region's raw bytes in C order and the array's byte order (as\n"
    "         numpy's a[region].tobytes()); a dimension left out of --region is\n"
    "         taken whole, and START or STOP may be left empty (\":10\", \"5:\");\n"
    "         -o FILE is replaced at the end (through a temporary name), never\n"
    "         inside the array\n"
    "  create a new array in a directory, in s3://BUCKET/PREFIX or at an http(s)\n"
    "         URL that takes PUT; DTYPE as numpy writes it (<u2, >i8, |b1, u1, f8)\n"
    "         or by name (uint16); C as zstd[:LEVEL] (default zstd:3), gzip[:LEVEL],\n"
    "         zlib[:LEVEL] (v2), blosc[:CNAME[:LEVEL[:noshuffle|shuffle|bitshuffle]]]\n"
    "         or none, after 'delta,' for numcodecs' delta filter (v2);\n"
    "         --checksum adds crc32c (v3); --shard stores the chunks in\n"
    "         shards of that shape (v3); --from fills it with raw bytes\n"
    "         in C order and the array's byte order (its metadata is written\n"
    "         last: a failed or killed fill leaves nothing that opens)\n"
    "  rechunk copy an array to new chunks (and codec, format, order), in blocks\n"
    "         that fit --memory (default 512M); either may be a URL\n"
    "  bench  read the whole array in slabs (all), COUNT random crops (crops; of\n"
    "         --crop, default the chunk shape; 1000; read --batch at a time, default\n"
    "         16, as a training loader asks), or an ordered series along\n"
    "         the first axis (series); --cache keeps up to SIZE of decoded chunks\n"
    "         (default 0: none); prints one JSON object: bytes, seconds,\n"
    "         mib_per_s, crops_per_s for crops, and the cache's hits and misses\n"
    "\n"
    "--memory caps what cat, create, rechunk and bench hold (default 512M, at\n"
    "least 32M); work that cannot fit is refused, saying what it needs.\n"
    "--timeout SECONDS: a URL gives up when no data came for SECONDS, retries\n"
    "included (default 60; fractions allowed, up to 86400).\n";

static const char *type_name(lumio_zarr_type t) {
    static const char *const names[] = {"bool",   "int8",   "int16",  "int32",   "int64",  "uint8",
                                        "uint16", "uint32", "uint64", "float32", "float64"};
    return (unsigned)t < sizeof names / sizeof *names ? names[t] : "?";
}

static void print_dims(const char *label, const uint64_t *v, unsigned n) {
    printf("%-12s", label);
    if (n == 0) printf("()");
    for (unsigned i = 0; i < n; i++) printf("%s%" PRIu64, i ? " x " : "", v[i]);
    printf("\n");
}

static void print_fill(const lumio_zarr_info *in) {
    uint64_t v = 0;
    for (unsigned i = 0; i < in->itemsize; i++)
        v |= (uint64_t)in->fill[in->big_endian ? in->itemsize - 1 - i : i] << (8 * i);
    printf("%-12s", "fill_value");
    switch (in->type) {
    case LUMIO_ZARR_BOOL:
        printf("%s\n", v ? "true" : "false");
        return;
    case LUMIO_ZARR_FLOAT32: {
        uint32_t b = (uint32_t)v;
        float f;
        memcpy(&f, &b, 4);
        printf("%.9g\n", f);
        return;
    }
    case LUMIO_ZARR_FLOAT64: {
        double d;
        memcpy(&d, &v, 8);
        printf("%.17g\n", d);
        return;
    }
    case LUMIO_ZARR_INT8:
        printf("%d\n", (int8_t)v);
        return;
    case LUMIO_ZARR_INT16:
        printf("%d\n", (int16_t)v);
        return;
    case LUMIO_ZARR_INT32:
        printf("%d\n", (int32_t)v);
        return;
    case LUMIO_ZARR_INT64:
        printf("%" PRId64 "\n", (int64_t)v);
        return;
    default:
        printf("%" PRIu64 "\n", v);
        return;
    }
}

static bool is_metadata(const char *name) {
    return !strcmp(name, ".zarray") || !strcmp(name, ".zattrs") || !strcmp(name, ".zgroup") ||
           !strcmp(name, "zarr.json") || !strcmp(name, ".zmetadata");
}

/* ---- remote locations ------------------------------------------------------------ */

/* --timeout ('T'), the option every subcommand takes: 1 when c was it, 0 when
 * not, -1 after a message for a bad value. */
static int timeout_option(int c, const char *arg, cli_remote_opts *ro) {
    return c == 'T' ? cli_remote_option(c, arg, ro) : 0;
}

/* The client URLs go through (with --timeout), made only when one of the n
 * locations is a URL: *rm stays NULL for directories. 0, or an exit status
 * after a message. */
static int zarr_client(const char *const *locs, int n, const cli_remote_opts *ro,
                       lumio_remote **rm) {
    *rm = NULL;
    bool any = false;
    for (int i = 0; i < n; i++) any |= lumio_is_remote(locs[i]);
    return any && cli_remote_create(rm, ro) < 0 ? EXIT_FILES : 0;
}

static int zarr_info(const char *loc, lumio_remote *rm) {
    lumio_zarr *z;
    lumio_zarr_options zo;
    lumio_zarr_options_default(&zo);
    zo.remote = rm;
    int rc = lumio_zarr_open(&z, loc, &zo);
    if (rc < 0) {
        cli_error("%s", lumio_zarr_last_error(NULL));
        return EXIT_FILES;
    }
    lumio_zarr_info in;
    lumio_zarr_get_info(z, &in);
    printf("%-12s%d\n", "format", in.format);
    print_dims("shape", in.shape, in.ndim);
    if (in.ndim && in.inner_chunks[0]) {
        print_dims("shards", in.chunks, in.ndim);
        print_dims("chunks", in.inner_chunks, in.ndim);
    } else {
        print_dims("chunks", in.chunks, in.ndim);
    }
    printf("%-12s%s (%s)\n", "dtype", in.dtype, type_name(in.type));
    printf("%-12s%s\n", "order", in.fortran_order ? "F" : "C");
    printf("%-12s%s\n", "codecs", in.codecs);
    print_fill(&in);
    /* Exact, past 2^64 too (a virtual array of missing chunks may be). */
    uint64_t grid[LUMIO_ZARR_MAX_DIMS];
    for (unsigned i = 0; i < in.ndim; i++)
        grid[i] = in.shape[i] / in.chunks[i] + (in.shape[i] % in.chunks[i] != 0);
    char big[700];
    printf("%-12s%s\n", "grid", zarr_big_product(grid, in.ndim, 1, big, sizeof big));
    if (!lumio_is_remote(loc)) { /* a directory: count what is stored */
        walker *w;
        char *roots[1] = {(char *)loc};
        uint64_t present = 0, bytes = 0;
        if (walker_open(&w, roots, 1, WALK_FOLLOW_ROOTS) == 0) {
            walk_entry e;
            while (walker_next(w, &e) > 0) {
                if (e.kind != WALK_FILE) continue;
                const char *base = strrchr(e.path, '/');
                if (is_metadata(base ? base + 1 : e.path)) continue;
                if (strstr(e.path, ".lumio-tmp.")) continue; /* a killed writer's leftover */
                present++;
                bytes += (uint64_t)e.st->st_size;
            }
            walker_close(w);
        }
        double raw = zarr_product_double(in.shape, in.ndim, in.itemsize);
        printf("%-12s%" PRIu64 "\n", "present", present);
        printf("%-12s%" PRIu64 " bytes for %s raw (ratio %.3g)\n", "stored", bytes,
               zarr_big_product(in.shape, in.ndim, in.itemsize, big, sizeof big),
               bytes ? raw / (double)bytes : 0.0);
    }
    lumio_zarr_close(z);
    return 0;
}

/* A decimal index at *p, digits only (no sign, no blanks): 0, or -1. */
static int parse_index(const char **p, uint64_t *v) {
    if (**p < '0' || **p > '9') return -1;
    errno = 0;
    char *end;
    *v = strtoull(*p, &end, 10);
    if (errno) return -1;
    *p = end;
    return 0;
}

/* One START:STOP of dimension d (either may be empty) against its size. */
static int parse_span(const char **p, unsigned d, uint64_t size, uint64_t *a, uint64_t *b) {
    bool has_a = **p != ':', has_b;
    *a = 0, *b = size;
    if (has_a && parse_index(p, a) < 0) return -1;
    if (*(*p)++ != ':') return -1;
    has_b = **p && **p != ',';
    if (has_b && parse_index(p, b) < 0) return -1;
    if (*a > size) {
        cli_error("--region: start %" PRIu64 " is outside dimension %u (size %" PRIu64 ")", *a, d,
                  size);
        return -2;
    }
    if (has_b && *b > size) {
        cli_error("--region: stop %" PRIu64 " is outside dimension %u (size %" PRIu64 ")", *b, d,
                  size);
        return -2;
    }
    if (*b < *a) {
        cli_error("--region: stop %" PRIu64 " is before start %" PRIu64 " in dimension %u", *b, *a,
                  d);
        return -2;
    }
    return 0;
}

/* "0:10,5:,:3" into start/shape (dimensions left out are whole). */
static int parse_region(const char *s, const lumio_zarr_info *in, uint64_t *start,
                        uint64_t *shape) {
    for (unsigned d = 0; d < in->ndim; d++) start[d] = 0, shape[d] = in->shape[d];
    if (!s) return 0;
    const char *p = s;
    for (unsigned d = 0; *p; d++) {
        if (d >= in->ndim) {
            cli_error("--region: '%s' has more dimensions than the array's %u", s, in->ndim);
            return -1;
        }
        uint64_t a, b;
        int rc = parse_span(&p, d, in->shape[d], &a, &b);
        if (rc == -2) return -1;
        if (rc < 0) goto bad;
        start[d] = a;
        shape[d] = b - a;
        if (*p == ',' && p[1]) /* (a trailing ',' names no dimension) */
            p++;
        else if (*p)
            goto bad;
    }
    return 0;
bad:
    cli_error("--region: '%s' is not START:STOP[,START:STOP...]", s);
    return -1;
}

/* ---- memory --------------------------------------------------------------------- */

enum { BASE_MEMORY = 16u << 20 }; /* the program, its libraries, stacks and arenas */
#define DEFAULT_MEMORY (512ull << 20)

static uint64_t sat_mul(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t sat_add(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* The decoded bytes of one chunk (an inner chunk of a sharded array), the
 * unit the workers decode. */
static uint64_t chunk_bytes(const lumio_zarr_info *in) {
    uint64_t n = in->itemsize;
    for (unsigned d = 0; d < in->ndim; d++)
        n = sat_mul(n, in->inner_chunks[0] ? in->inner_chunks[d] : in->chunks[d]);
    return n;
}

/* Rows of a slab along the first axis: a chunk's (an inner chunk's). */
static uint64_t chunk_rows(const lumio_zarr_info *in) {
    if (!in->ndim) return 1;
    return LUMIO_MAX(in->inner_chunks[0] ? in->inner_chunks[0] : in->chunks[0], 1);
}

static uint64_t region_bytes(const lumio_zarr_info *in, const uint64_t *shape) {
    uint64_t n = in->itemsize;
    for (unsigned d = 0; d < in->ndim; d++) n = sat_mul(n, shape[d]);
    return n;
}

/* What reading takes besides the caller's buffers: the ring's pool (an
 * quarter of the cap, and room for one stored chunk at least) and a decoded
 * chunk on each worker. */
static uint64_t read_memory(uint64_t memory, const lumio_zarr_info *in, uint64_t *pool) {
    uint64_t chunk = chunk_bytes(in);
    *pool = LUMIO_MAX(memory / 4, sat_add(sat_add(chunk, chunk / 128), 64u << 10));
    return sat_add(sat_add(*pool, sat_mul(lumio_ncores(), chunk)), BASE_MEMORY);
}

static int parse_memory(const char *arg, uint64_t *memory) {
    if (parse_size(arg, memory) < 0 || *memory < (32u << 20)) {
        cli_error("--memory: '%s' is not a size of at least 32M", arg);
        return -1;
    }
    return 0;
}

static void say_memory(const char *loc, const char *what, uint64_t bytes, uint64_t need) {
    cli_error("%s: %s of %" PRIu64 " bytes need --memory of at least %" PRIu64 "M", loc, what,
              bytes, (need >> 20) + 1);
}

static bool same_layout(const lumio_zarr_info *a, const lumio_zarr_info *b) {
    size_t dims = a->ndim * sizeof(uint64_t);
    return a->format == b->format && a->ndim == b->ndim && a->type == b->type &&
           a->itemsize == b->itemsize && a->big_endian == b->big_endian &&
           a->fortran_order == b->fortran_order && !memcmp(a->shape, b->shape, dims) &&
           !memcmp(a->chunks, b->chunks, dims) && !memcmp(a->inner_chunks, b->inner_chunks, dims) &&
           !memcmp(a->fill, b->fill, sizeof a->fill) && !strcmp(a->dtype, b->dtype) &&
           !strcmp(a->codecs, b->codecs);
}

static void close_capped(lumio_zarr *z, lumio_ring *ring);

/* Open loc for reading within `memory`: its reads go through a ring whose
 * pool fits the cap. *spare is what the cap leaves for the caller's own
 * buffers; a cap that does not even hold the decoding is refused. */
static int open_capped(const char *loc, uint64_t memory, uint64_t cache, lumio_remote *rm,
                       lumio_zarr **z, lumio_ring **ring, lumio_zarr_info *in, uint64_t *spare) {
    *z = NULL;
    *ring = NULL;
    lumio_zarr_options zo;
    lumio_zarr_options_default(&zo);
    zo.remote = rm;
    if (lumio_zarr_open(z, loc, &zo) < 0) {
        cli_error("%s", lumio_zarr_last_error(NULL));
        return EXIT_FILES;
    }
    lumio_zarr_get_info(*z, in);
    lumio_zarr_close(*z);
    *z = NULL;
    lumio_ring_options ro;
    lumio_ring_options_default(&ro);
    ro.remote = rm;
    uint64_t need = sat_add(read_memory(memory, in, &ro.max_bytes), cache);
    if (need > memory) {
        say_memory(loc, cache ? "decoding chunks and the cache" : "decoding chunks",
                   chunk_bytes(in), need);
        return EXIT_USAGE;
    }
    *spare = memory - need;
    zo.cache_bytes = cache;
    if (lumio_ring_create(ring, &ro) < 0) {
        cli_error("%s: cannot start the I/O engine", loc);
        return EXIT_FILES;
    }
    zo.ring = *ring;
    if (lumio_zarr_open(z, loc, &zo) < 0) {
        cli_error("%s", lumio_zarr_last_error(NULL));
        lumio_ring_destroy(*ring);
        *ring = NULL;
        return EXIT_FILES;
    }
    /* The caller's buffers are sized from the first open's layout, the reads
     * follow the second's: metadata rewritten in between (by a server that
     * means harm, or a writer) must not make them disagree. */
    lumio_zarr_info again;
    lumio_zarr_get_info(*z, &again);
    if (!same_layout(in, &again)) {
        cli_error("%s: the array's metadata changed while it was being opened", loc);
        close_capped(*z, *ring);
        *z = NULL;
        *ring = NULL;
        return EXIT_FILES;
    }
    return 0;
}

static void close_capped(lumio_zarr *z, lumio_ring *ring) {
    lumio_zarr_close(z);
    lumio_ring_destroy(ring);
}

/* ---- cat's output ---------------------------------------------------------------- */

/* Whether dir is the directory at (dev, ino) or inside it. */
static bool is_under(const char *dir, dev_t dev, ino_t ino) {
    char *p = realpath(dir, NULL);
    bool under = false;
    for (size_t n = p ? strlen(p) : 0; p && !under;) {
        struct stat st;
        under = stat(p, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
        if (n <= 1) break;
        char *slash = strrchr(p, '/');
        n = slash == p ? 1 : (size_t)(slash - p);
        p[n] = 0;
    }
    free(p);
    return under;
}

/* Where cat writes (output.h): stdout, a device or FIFO in place, or a
 * regular file through a temporary name renamed over it at the end, so the
 * output never truncates what is still to be read. An output inside a local
 * array is refused (-2, said). */
static int output_open(cli_output *o, const char *name, const char *array) {
    int rc = cli_output_open(o, name);
    if (rc < 0) {
        cli_path_error(name, rc);
        return -1;
    }
    if (!cli_output_is_file(o) || lumio_is_remote(array)) return 0;
    char *slash = strrchr(o->target, '/');
    char *dir = slash ? strndup(o->target, (size_t)(slash - o->target) + 1) : strdup(".");
    struct stat ast;
    bool inside = dir && stat(array, &ast) == 0 && S_ISDIR(ast.st_mode) &&
                  is_under(dir, ast.st_dev, ast.st_ino);
    free(dir);
    if (!inside) return 0;
    cli_output_close(o, EXIT_USAGE);
    cli_error("%s: inside the array %s, which it would overwrite", name, array);
    return -2;
}

static int cat_run(const char *loc, const char *region, const char *out, uint64_t memory,
                   lumio_remote *rm);

static int zarr_cat(int argc, char **argv) {
    static const struct option opts[] = {
        {"region", required_argument, NULL, 'r'}, {"output", required_argument, NULL, 'o'},
        {"memory", required_argument, NULL, 'm'}, {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *region = NULL, *out = "-";
    uint64_t memory = DEFAULT_MEMORY;
    cli_remote_opts ro = {0};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        int r = timeout_option(c, optarg, &ro);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        switch (c) {
        case 'r':
            region = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'm':
            if (parse_memory(optarg, &memory) < 0) return EXIT_USAGE;
            break;
        case 'h':
            fputs(zarr_usage, stdout);
            return 0;
        default:
            return cli_option_error(c, argv);
        }
    }
    if (optind + 1 != argc) {
        cli_error("one array (see 'lumio zarr --help')");
        return EXIT_USAGE;
    }
    lumio_remote *rm;
    int status = zarr_client((const char *const *)argv + optind, 1, &ro, &rm);
    if (status == 0) status = cat_run(argv[optind], region, out, memory, rm);
    lumio_remote_destroy(rm);
    return status;
}

/* The region of loc to out (see output_open), URLs through rm. */
static int cat_run(const char *loc, const char *region, const char *out, uint64_t memory,
                   lumio_remote *rm) {
    lumio_zarr *z;
    lumio_ring *ring;
    lumio_zarr_info in;
    uint64_t spare;
    int status = open_capped(loc, memory, 0, rm, &z, &ring, &in, &spare);
    if (status) return status;
    uint64_t start[LUMIO_ZARR_MAX_DIMS], shape[LUMIO_ZARR_MAX_DIMS];
    cli_output o;
    if (parse_region(region, &in, start, shape) < 0) status = EXIT_USAGE;
    int orc = status ? 0 : output_open(&o, out, loc);
    if (status || orc < 0) {
        close_capped(z, ring);
        return status ? status : orc == -2 ? EXIT_USAGE : EXIT_FILES;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Slabs of whole chunks where the cap allows (a chunk row along the
     * first dimension, deeper where it does not fit), so that memory stays
     * bounded however large the region, its chunk rows and the array. */
    zarr_slabs sl;
    zarr_slabs_init(&sl, in.ndim, in.itemsize,
                    in.ndim && in.inner_chunks[0] ? in.inner_chunks : in.chunks, start, shape,
                    LUMIO_MIN(spare, ZARR_SLAB_CAP));
    uint64_t cap = zarr_slabs_max_bytes(&sl), bytes;
    uint8_t *buf = cap ? lumio_large_alloc(cap) : NULL;
    if (cap && !buf) {
        cli_error("%s: cannot allocate %" PRIu64 " bytes for a slab of the region", loc, cap);
        status = EXIT_FILES;
    }
    uint64_t s0[LUMIO_ZARR_MAX_DIMS], n0[LUMIO_ZARR_MAX_DIMS];
    while (status == 0 && buf && zarr_slabs_next(&sl, s0, n0, &bytes)) {
        if (lumio_zarr_read(z, s0, n0, buf) < 0) {
            cli_error("%s", lumio_zarr_last_error(z));
            status = EXIT_FILES;
            break;
        }
        int w = write_all(o.fd, buf, bytes);
        if (w < 0) {
            if (w != -EPIPE) cli_error("%s: %s", out, lumio_strerror(w));
            status = EXIT_FILES;
        }
    }
    lumio_large_free(buf, cap);
    status = cli_output_close(&o, status);
    close_capped(z, ring);
    return status;
}

static int parse_dims_list(const char *opt, const char *s, uint64_t *out, unsigned *n) {
    *n = 0;
    const char *p = s;
    while (*p) {
        if (*n == LUMIO_ZARR_MAX_DIMS) {
            cli_error("%s: '%.60s%s' has too many dimensions (at most %d)", opt, s,
                      strlen(s) > 60 ? "..." : "", LUMIO_ZARR_MAX_DIMS);
            return -1;
        }
        uint64_t v;
        if (parse_index(&p, &v) < 0) break;
        out[(*n)++] = v;
        if (*p == ',' && p[1])
            p++;
        else if (*p)
            break;
        else
            return 0;
    }
    cli_error("%s: '%s' is not a list of sizes like 100,200", opt, s);
    return -1;
}

/* The options create and rechunk share: --chunks ('c'), --codec ('k'),
 * --format ('f'), --order ('O'), --shard ('H'), --checksum ('x'). Returns 1
 * when c was one of them, 0 when not, -1 after a message for a bad value. */
static int layout_option(int c, const char *arg, lumio_zarr_create_options *o, const char **chunks,
                         const char **shard) {
    switch (c) {
    case 'c':
        *chunks = arg;
        return 1;
    case 'k':
        o->codec = arg;
        return 1;
    case 'f':
        if (strcmp(arg, "2") && strcmp(arg, "3")) {
            cli_error("--format: '%s' is not 2 or 3", arg);
            return -1;
        }
        o->format = arg[0] - '0';
        return 1;
    case 'O':
        if (strcmp(arg, "C") && strcmp(arg, "F")) {
            cli_error("--order: '%s' is not C or F", arg);
            return -1;
        }
        o->fortran_order = arg[0] == 'F';
        return 1;
    case 'H':
        *shard = arg;
        return 1;
    case 'x':
        o->checksum = 1;
        return 1;
    default:
        return 0;
    }
}

/* Before any data is written (the array is not committed yet): --from's
 * size, if it has a real one, must be the array's, and a slab of chunk rows
 * (of shards) must fit the cap. */
static int check_from(const lumio_zarr *z, const char *from, int in, uint64_t memory) {
    lumio_zarr_info info;
    lumio_zarr_get_info(z, &info);
    uint64_t total = info.itemsize, row = info.itemsize, chunk = info.itemsize;
    for (unsigned d = 0; d < info.ndim; d++) {
        total = sat_mul(total, info.shape[d]);
        if (d) row = sat_mul(row, info.shape[d]);
        chunk = sat_mul(chunk, info.chunks[d]);
    }
    if (total == UINT64_MAX) {
        cli_error("%s: the array holds 2^64 bytes or more, too many to fill from raw bytes", from);
        return EXIT_USAGE;
    }
    struct stat st;
    off_t at = lseek(in, 0, SEEK_CUR); /* (a stdin already partly read) */
    if (fstat(in, &st) == 0 && S_ISREG(st.st_mode) && at >= 0 && at <= st.st_size &&
        (uint64_t)(st.st_size - at) != total) {
        cli_error("%s: %llu bytes, the array needs %llu", from,
                  (unsigned long long)(st.st_size - at), (unsigned long long)total);
        return EXIT_FILES;
    }
    uint64_t slab =
        sat_mul(row, info.ndim ? LUMIO_MIN(info.chunks[0], LUMIO_MAX(info.shape[0], 1)) : 1);
    /* The slab, and on each encoder a chunk and its encoded bytes. */
    uint64_t need = sat_add(sat_add(slab, sat_mul(2 * lumio_ncores(), chunk)), BASE_MEMORY);
    if (need > memory) {
        say_memory(from, "a row of chunks", slab, need);
        return EXIT_USAGE;
    }
    return 0;
}

/* Fill a new array from `in`, raw bytes in C order, in slabs of whole chunk
 * rows; exactly the array's size, else an error naming both sizes. */
static int fill_from(lumio_zarr *z, const char *from, int in) {
    lumio_zarr_info info;
    lumio_zarr_get_info(z, &info);
    uint64_t row = info.itemsize;
    for (unsigned d = 1; d < info.ndim; d++) row *= info.shape[d];
    uint64_t rows = info.ndim ? LUMIO_MIN(info.chunks[0], LUMIO_MAX(info.shape[0], 1)) : 1;
    uint64_t span = info.ndim ? info.shape[0] : 1, total = span * row;
    uint8_t *buf = lumio_large_alloc(LUMIO_MAX(rows * row, 1));
    if (!buf) {
        cli_error("%s: cannot allocate %llu bytes for a row of chunks", from,
                  (unsigned long long)(rows * row));
        return EXIT_FILES;
    }
    progress p;
    progress_init(&p, "written");
    int status = 0;
    uint64_t done = 0;
    for (uint64_t at = 0; at < span && status == 0;) {
        uint64_t take = MIN(rows, span - at), want = take * row, got = 0;
        while (got < want) {
            ssize_t r = read(in, buf + got, want - got);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
                cli_path_error(from, -errno);
                status = EXIT_FILES;
            }
            if (r <= 0) break;
            got += (uint64_t)r;
        }
        if (status == 0 && got < want) {
            cli_error("%s: %llu bytes, the array needs %llu", from,
                      (unsigned long long)(done + got), (unsigned long long)total);
            status = EXIT_FILES;
        }
        uint64_t s0[LUMIO_ZARR_MAX_DIMS] = {0}, n0[LUMIO_ZARR_MAX_DIMS];
        memcpy(n0, info.shape, sizeof n0);
        if (info.ndim) s0[0] = at, n0[0] = take;
        if (status == 0 && lumio_zarr_write(z, s0, n0, buf) < 0) {
            cli_error("%s", lumio_zarr_last_error(z));
            status = EXIT_FILES;
        }
        done += want;
        progress_update(&p, 0, done);
        at += take;
    }
    progress_done(&p);
    lumio_large_free(buf, LUMIO_MAX(rows * row, 1));
    char extra;
    ssize_t r;
    while (status == 0 && (r = read(in, &extra, 1)) < 0 && errno == EINTR) {
    }
    if (status == 0 && r > 0) {
        cli_error("%s: more than the %llu bytes the array needs", from, (unsigned long long)total);
        status = EXIT_FILES;
    }
    return status;
}

static int zarr_create(int argc, char **argv) {
    static const struct option opts[] = {{"shape", required_argument, NULL, 's'},
                                         {"chunks", required_argument, NULL, 'c'},
                                         {"dtype", required_argument, NULL, 'd'},
                                         {"codec", required_argument, NULL, 'k'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"order", required_argument, NULL, 'O'},
                                         {"fill", required_argument, NULL, 'F'},
                                         {"separator", required_argument, NULL, 'S'},
                                         {"checksum", no_argument, NULL, 'x'},
                                         {"from", required_argument, NULL, 'r'},
                                         {"shard", required_argument, NULL, 'H'},
                                         {"memory", required_argument, NULL, 'm'},
                                         {"timeout", required_argument, NULL, 'T'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    lumio_zarr_create_options o;
    lumio_zarr_create_options_default(&o);
    const char *shape = NULL, *chunks = NULL, *from = NULL, *shard = NULL;
    uint64_t memory = DEFAULT_MEMORY;
    cli_remote_opts ro = {0};
    o.dtype = NULL;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int r = layout_option(c, optarg, &o, &chunks, &shard);
        if (r == 0) r = timeout_option(c, optarg, &ro);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        switch (c) {
        case 's':
            shape = optarg;
            break;
        case 'd':
            o.dtype = optarg;
            break;
        case 'F':
            o.fill_value = optarg;
            break;
        case 'S':
            if (strcmp(optarg, ".") && strcmp(optarg, "/")) {
                cli_error("--separator: '%s' is not . or /", optarg);
                return EXIT_USAGE;
            }
            o.separator = optarg[0];
            break;
        case 'r':
            from = optarg;
            break;
        case 'm':
            if (parse_memory(optarg, &memory) < 0) return EXIT_USAGE;
            break;
        case 'h':
            fputs(zarr_usage, stdout);
            return 0;
        default:
            return cli_option_error(c, argv);
        }
    }
    if (optind + 1 != argc || !shape || !chunks || !o.dtype) {
        cli_error("create needs PATH, --shape, --chunks and --dtype (see 'lumio zarr --help')");
        return EXIT_USAGE;
    }
    unsigned ns, nc;
    if (parse_dims_list("--shape", shape, o.shape, &ns) < 0 ||
        parse_dims_list("--chunks", chunks, o.chunks, &nc) < 0)
        return EXIT_USAGE;
    if (ns != nc) {
        cli_error("--chunks has %u dimensions, --shape %u", nc, ns);
        return EXIT_USAGE;
    }
    o.ndim = ns;
    unsigned nsh;
    if (shard && parse_dims_list("--shard", shard, o.shard, &nsh) < 0) return EXIT_USAGE;
    if (shard && nsh != ns) {
        cli_error("--shard has %u dimensions, --shape %u", nsh, ns);
        return EXIT_USAGE;
    }
    const char *path = argv[optind];
    int in = -1;
    if (from && (in = !strcmp(from, "-") ? STDIN_FILENO : open(from, O_RDONLY | O_CLOEXEC)) < 0) {
        cli_path_error(from, -errno);
        return EXIT_FILES;
    }
    /* With data, the metadata is written after it: a fill that fails or is
     * killed leaves nothing that opens as complete. */
    o.defer_metadata = in >= 0;
    lumio_zarr_options zo;
    lumio_zarr_options_default(&zo);
    int status = zarr_client(&path, 1, &ro, &zo.remote);
    lumio_zarr *z = NULL;
    int rc = status ? 0 : lumio_zarr_create(&z, path, &o, &zo);
    if (rc < 0) {
        cli_error("%s", lumio_zarr_last_error(NULL));
        status = rc == -EINVAL || rc == LUMIO_E_UNSUPPORTED || rc == LUMIO_E_FORMAT ? EXIT_USAGE
                                                                                    : EXIT_FILES;
    }
    if (z && in >= 0) status = check_from(z, from, in, memory);
    if (z && in >= 0 && status == 0) status = fill_from(z, from, in);
    if (z && status == 0 && lumio_zarr_commit(z) < 0) {
        cli_error("%s", lumio_zarr_last_error(z));
        status = EXIT_FILES;
    }
    if (in > STDIN_FILENO) close(in);
    lumio_zarr_close(z); /* (uncommitted: nothing of it is left to open) */
    lumio_remote_destroy(zo.remote);
    return status;
}

static void on_progress(void *arg, uint64_t done, uint64_t total) {
    (void)total;
    progress_update(arg, 0, done);
}

static int rechunk_run(const char *src, const char *dst, const lumio_zarr_create_options *o,
                       unsigned n, uint64_t memory, const lumio_zarr_options *zo);

static int zarr_rechunk(int argc, char **argv) {
    static const struct option opts[] = {
        {"chunks", required_argument, NULL, 'c'}, {"codec", required_argument, NULL, 'k'},
        {"format", required_argument, NULL, 'f'}, {"order", required_argument, NULL, 'O'},
        {"shard", required_argument, NULL, 'H'},  {"checksum", no_argument, NULL, 'x'},
        {"memory", required_argument, NULL, 'm'}, {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    lumio_zarr_create_options o;
    lumio_zarr_create_options_default(&o);
    o.fill_value = NULL; /* the source's */
    const char *chunks = NULL, *shard = NULL;
    uint64_t memory = 512u << 20;
    cli_remote_opts ro = {0};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int r = layout_option(c, optarg, &o, &chunks, &shard);
        if (r == 0) r = timeout_option(c, optarg, &ro);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        switch (c) {
        case 'm':
            if (parse_memory(optarg, &memory) < 0) return EXIT_USAGE;
            break;
        case 'h':
            fputs(zarr_usage, stdout);
            return 0;
        default:
            return cli_option_error(c, argv);
        }
    }
    if (optind + 2 != argc || !chunks) {
        cli_error("rechunk needs SRC, DST and --chunks (see 'lumio zarr --help')");
        return EXIT_USAGE;
    }
    unsigned n, ns = 0;
    if (parse_dims_list("--chunks", chunks, o.chunks, &n) < 0) return EXIT_USAGE;
    if (shard && parse_dims_list("--shard", shard, o.shard, &ns) < 0) return EXIT_USAGE;
    if (shard && ns != n) {
        cli_error("--shard has %u dimensions, --chunks %u", ns, n);
        return EXIT_USAGE;
    }
    lumio_zarr_options zo;
    lumio_zarr_options_default(&zo);
    int status = zarr_client((const char *const *)argv + optind, 2, &ro, &zo.remote);
    if (status == 0) status = rechunk_run(argv[optind], argv[optind + 1], &o, n, memory, &zo);
    lumio_remote_destroy(zo.remote);
    return status;
}

/* src to dst in chunks of o (of n dimensions), URLs through zo->remote. */
static int rechunk_run(const char *src, const char *dst, const lumio_zarr_create_options *o,
                       unsigned n, uint64_t memory, const lumio_zarr_options *zo) {
    /* The source's dimensions must match: checked by opening it first. */
    lumio_zarr *z;
    if (lumio_zarr_open(&z, src, zo) < 0) {
        cli_error("%s", lumio_zarr_last_error(NULL));
        return EXIT_FILES;
    }
    lumio_zarr_info in;
    lumio_zarr_get_info(z, &in);
    lumio_zarr_close(z);
    if (n != in.ndim) {
        cli_error("--chunks has %u dimensions, the array %u", n, in.ndim);
        return EXIT_USAGE;
    }
    /* Under a memory cap, large buffers go back to the system when freed:
     * glibc otherwise raises its mmap threshold after the first frees and
     * keeps chunk-sized blocks in each thread's arena. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    progress p;
    progress_init(&p, "rechunked");
    int rc = lumio_zarr_rechunk(src, dst, o, zo, memory, on_progress, &p);
    progress_done(&p);
    if (rc < 0) {
        cli_error("%s", lumio_zarr_last_error(NULL));
        return rc == -EINVAL || rc == LUMIO_E_UNSUPPORTED ? EXIT_USAGE : EXIT_FILES;
    }
    return 0;
}

typedef struct bench_opts {
    const char *pattern, *crop;
    uint64_t count, batch, memory, cache;
} bench_opts;

static int bench_run(const char *loc, const bench_opts *b, lumio_remote *rm);

static int zarr_bench(int argc, char **argv) {
    static const struct option opts[] = {{"pattern", required_argument, NULL, 'p'},
                                         {"crop", required_argument, NULL, 'c'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"cache", required_argument, NULL, 'C'},
                                         {"memory", required_argument, NULL, 'm'},
                                         {"timeout", required_argument, NULL, 'T'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *pattern = "all", *crop = NULL;
    uint64_t count = 1000, batch = 16, memory = DEFAULT_MEMORY, cache = 0;
    cli_remote_opts ro = {0};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int r = timeout_option(c, optarg, &ro);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        switch (c) {
        case 'p':
            if (strcmp(optarg, "all") && strcmp(optarg, "crops") && strcmp(optarg, "series")) {
                cli_error("--pattern: '%s' is not all, crops or series", optarg);
                return EXIT_USAGE;
            }
            pattern = optarg;
            break;
        case 'c':
            crop = optarg;
            break;
        case 'n':
            if (parse_count(optarg, 1, UINT32_MAX, &count) < 0) {
                cli_error("--count: '%s' is not a count from 1", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'b':
            if (parse_count(optarg, 1, 1024, &batch) < 0) {
                cli_error("--batch: '%s' is not a count from 1 to 1024", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'C':
            if (parse_size(optarg, &cache) < 0) {
                cli_error("--cache: '%s' is not a size (such as 256M)", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'm':
            if (parse_memory(optarg, &memory) < 0) return EXIT_USAGE;
            break;
        case 'h':
            fputs(zarr_usage, stdout);
            return 0;
        default:
            return cli_option_error(c, argv);
        }
    }
    if (optind + 1 != argc) {
        cli_error("one array (see 'lumio zarr --help')");
        return EXIT_USAGE;
    }
    bench_opts b = {pattern, crop, count, batch, memory, cache};
    lumio_remote *rm;
    int status = zarr_client((const char *const *)argv + optind, 1, &ro, &rm);
    if (status == 0) status = bench_run(argv[optind], &b, rm);
    lumio_remote_destroy(rm);
    return status;
}

/* Read loc as b says, URLs through rm; one JSON object on success. */
static int bench_run(const char *loc, const bench_opts *b, lumio_remote *rm) {
    const char *pattern = b->pattern, *crop = b->crop;
    uint64_t count = b->count, batch = b->batch, memory = b->memory, cache = b->cache;
    lumio_zarr *z;
    lumio_ring *ring;
    lumio_zarr_info in;
    uint64_t spare;
    double t0 = now_seconds();
    int status = open_capped(loc, memory, cache, rm, &z, &ring, &in, &spare);
    if (status) return status;
    uint64_t cshape[LUMIO_ZARR_MAX_DIMS];
    for (unsigned d = 0; d < in.ndim; d++) cshape[d] = MIN(in.chunks[d], in.shape[d]);
    if (crop) {
        unsigned n;
        if (parse_dims_list("--crop", crop, cshape, &n) < 0) goto usage;
        if (n != in.ndim) {
            cli_error("--crop has %u dimensions, the array %u", n, in.ndim);
            goto usage;
        }
        for (unsigned d = 0; d < n; d++)
            if (!cshape[d] || cshape[d] > in.shape[d]) {
                cli_error("--crop: %llu is outside dimension %u (%llu)",
                          (unsigned long long)cshape[d], d, (unsigned long long)in.shape[d]);
                goto usage;
            }
    }
    uint64_t bytes = 0, crops = 0;
    int rc = 0;
    /* What each pattern holds besides the reads: a batch of crops, the
     * series' slabs (the next `ahead` and the one handed out), or one slab. */
    uint64_t crop_bytes = region_bytes(&in, cshape);
    uint64_t series_slab = in.itemsize;
    for (unsigned d = 0; d < in.ndim; d++)
        series_slab = sat_mul(series_slab, d ? in.shape[d] : chunk_rows(&in));
    if (!strcmp(pattern, "crops") && sat_mul(crop_bytes, batch) > spare) {
        say_memory(loc, "a batch of crops", sat_mul(crop_bytes, batch),
                   memory - spare + sat_mul(crop_bytes, batch));
        goto usage;
    }
    if (!strcmp(pattern, "series") && sat_mul(series_slab, 5) > spare) {
        say_memory(loc, "five slabs of the series", sat_mul(series_slab, 5),
                   memory - spare + sat_mul(series_slab, 5));
        goto usage;
    }
    if (!strcmp(pattern, "series")) {
        lumio_zarr_series *s;
        rc = lumio_zarr_series_open(z, 0, 0, NULL, NULL, 4, &s);
        int64_t n = 0;
        const void *data;
        while (rc == 0 && (n = lumio_zarr_series_next(s, &data, NULL)) > 0) bytes += (uint64_t)n;
        if (n < 0) rc = (int)n;
        lumio_zarr_series_close(s);
    } else if (!strcmp(pattern, "crops")) {
        /* Crops in batches (as a training loader asks for them), each batch
         * read at once. */
        uint64_t n = in.itemsize, seed = 42, all;
        bool big = false;
        for (unsigned d = 0; d < in.ndim; d++) big |= __builtin_mul_overflow(n, cshape[d], &n);
        if (big || __builtin_mul_overflow(n, batch, &all) || all > PTRDIFF_MAX) {
            cli_error("--crop: a batch of %" PRIu64 " crops of that shape does not fit in memory",
                      batch);
            goto usage;
        }
        uint8_t *mem = lumio_large_alloc(all);
        uint64_t *starts = malloc(MAX(batch * in.ndim, 1) * sizeof *starts);
        void **bufs = malloc(batch * sizeof *bufs);
        for (uint64_t i = 0; mem && bufs && i < batch; i++) bufs[i] = mem + i * n;
        for (uint64_t k = 0; mem && starts && bufs && rc == 0 && k < count;) {
            uint64_t m = MIN(batch, count - k);
            for (uint64_t i = 0; i < m; i++)
                for (unsigned d = 0; d < in.ndim; d++)
                    starts[i * in.ndim + d] = cli_splitmix(&seed) % (in.shape[d] - cshape[d] + 1);
            rc = lumio_zarr_read_batch(z, m, starts, cshape, bufs);
            bytes += n * m;
            crops += m;
            k += m;
        }
        if (!mem || !starts || !bufs) {
            cli_error("%s: cannot allocate %" PRIu64 " bytes for a batch of %" PRIu64 " crops", loc,
                      n * batch, batch);
            rc = -ENOMEM;
        }
        lumio_large_free(mem, n * batch);
        free(starts);
        free(bufs);
    } else if (zarr_product_double(in.shape, in.ndim, in.itemsize) >= 0x1p64) {
        cli_error("%s: the array holds more than 2^64 bytes: --pattern all cannot read it whole",
                  loc);
        goto usage;
    } else { /* all: slabs of chunk rows (inner chunks of shards), within the cap */
        uint64_t start[LUMIO_ZARR_MAX_DIMS] = {0}, s0[LUMIO_ZARR_MAX_DIMS], n0[LUMIO_ZARR_MAX_DIMS];
        zarr_slabs sl;
        zarr_slabs_init(&sl, in.ndim, in.itemsize,
                        in.ndim && in.inner_chunks[0] ? in.inner_chunks : in.chunks, start,
                        in.shape, LUMIO_MIN(spare, ZARR_SLAB_CAP));
        uint64_t cap = zarr_slabs_max_bytes(&sl), n;
        uint8_t *buf = cap ? lumio_large_alloc(cap) : NULL;
        while (buf && rc == 0 && zarr_slabs_next(&sl, s0, n0, &n)) {
            rc = lumio_zarr_read(z, s0, n0, buf);
            bytes += n;
        }
        if (cap && !buf) {
            cli_error("%s: cannot allocate %" PRIu64 " bytes for a slab", loc, cap);
            rc = -ENOMEM;
        }
        lumio_large_free(buf, cap);
    }
    double secs = now_seconds() - t0;
    if (rc < 0) {
        if (rc != -ENOMEM || *lumio_zarr_last_error(z))
            cli_error("%s",
                      *lumio_zarr_last_error(z) ? lumio_zarr_last_error(z) : lumio_strerror(rc));
        close_capped(z, ring);
        return EXIT_FILES;
    }
    json j;
    json_begin(&j, stdout);
    char shown[4096]; /* a URL's password or signature stays out of the output */
    json_str(&j, "array", lumio_redact(loc, shown, sizeof shown));
    json_str(&j, "pattern", pattern);
    json_u64(&j, "bytes", bytes);
    json_num(&j, "seconds", secs);
    json_num(&j, "mib_per_s", secs > 0 ? (double)bytes / secs / (1 << 20) : 0);
    if (crops) {
        json_u64(&j, "crops", crops);
        json_u64(&j, "batch", batch);
        json_num(&j, "crops_per_s", secs > 0 ? (double)crops / secs : 0);
    }
    if (cache) {
        lumio_zarr_stats st;
        lumio_zarr_get_stats(z, &st);
        json_u64(&j, "cache_bytes", cache);
        json_u64(&j, "cache_hits", st.cache_hits);
        json_u64(&j, "cache_misses", st.cache_misses);
    }
    json_end(&j);
    close_capped(z, ring);
    return 0;
usage:
    close_capped(z, ring);
    return EXIT_USAGE;
}

static int zarr_info_main(int argc, char **argv) {
    static const struct option opts[] = {{"timeout", required_argument, NULL, 'T'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    cli_remote_opts ro = {0};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int r = timeout_option(c, optarg, &ro);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        if (c == 'h') {
            fputs(zarr_usage, stdout);
            return 0;
        }
        return cli_option_error(c, argv);
    }
    if (optind + 1 != argc) {
        cli_error("one array (see 'lumio zarr --help')");
        return EXIT_USAGE;
    }
    lumio_remote *rm;
    int status = zarr_client((const char *const *)argv + optind, 1, &ro, &rm);
    if (status == 0) status = zarr_info(argv[optind], rm);
    lumio_remote_destroy(rm);
    return status;
}

int cmd_zarr(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        if (argc < 2) {
            cli_error("missing subcommand: info, cat, create, rechunk or bench (see 'lumio zarr "
                      "--help')");
            return EXIT_USAGE;
        }
        fputs(zarr_usage, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "info")) {
        cli_set_name("lumio zarr info");
        return zarr_info_main(argc - 1, argv + 1);
    }
    if (!strcmp(argv[1], "cat")) {
        cli_set_name("lumio zarr cat");
        return zarr_cat(argc - 1, argv + 1);
    }
    if (!strcmp(argv[1], "create")) {
        cli_set_name("lumio zarr create");
        return zarr_create(argc - 1, argv + 1);
    }
    if (!strcmp(argv[1], "rechunk")) {
        cli_set_name("lumio zarr rechunk");
        return zarr_rechunk(argc - 1, argv + 1);
    }
    if (!strcmp(argv[1], "bench")) {
        cli_set_name("lumio zarr bench");
        return zarr_bench(argc - 1, argv + 1);
    }
    cli_error("unknown subcommand '%s' (info, cat, create, rechunk or bench)", argv[1]);
    return EXIT_USAGE;
}
