/* lumio zarr: Zarr arrays from a directory, an http(s) URL or S3.
 *   info  shape, chunks, dtype, codecs, fill value, stored bytes
 *   cat   a region's raw bytes in C order and the array's byte order */
#include "cli/common.h"
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
    "usage: lumio zarr info PATH|URL\n"
    "       lumio zarr cat PATH|URL [--region START:STOP,...] [-o FILE|-]\n"
    "       lumio zarr create PATH --shape N,... --chunks N,... --dtype DTYPE [--codec C]\n"
    "                         [--format 2|3] [--order C|F] [--fill V] [--separator .|/]\n"
    "                         [--checksum] [--shard N,...] [--from RAWFILE|-]\n"
    "       lumio zarr rechunk SRC DST --chunks N,... [--codec C] [--format 2|3] [--order C|F]\n"
    "                         [--shard N,...] [--checksum] [--memory SIZE]\n"
    "       lumio zarr bench PATH|URL --pattern all|crops|series [--crop N,...] [--count N]\n"
    "                         [--batch N] [--cache SIZE]\n"
    "\n"
    "Zarr v2 and v3 arrays in a directory, over http(s):// or in s3://BUCKET/PREFIX.\n"
    "\n"
    "  info   shape, chunks, dtype, order, codecs, fill value; for a directory\n"
    "         also the chunks present and the bytes they take\n"
    "  cat    the region's raw bytes in C order and the array's byte order (as\n"
    "         numpy's a[region].tobytes()); a dimension left out of --region is\n"
    "         taken whole, and START or STOP may be left empty (\":10\", \"5:\")\n"
    "  create a new array in a directory, in s3://BUCKET/PREFIX or at an http(s)\n"
    "         URL that takes PUT; DTYPE as numpy writes it (<u2, >i8, |b1)\n"
    "         or by name (uint16); C as zstd[:LEVEL] (default zstd:3), gzip[:LEVEL],\n"
    "         zlib[:LEVEL] (v2), blosc[:CNAME[:LEVEL[:noshuffle|shuffle|bitshuffle]]]\n"
    "         or none, after 'delta,' for numcodecs' delta filter (v2);\n"
    "         --checksum adds crc32c (v3); --shard stores the chunks in\n"
    "         shards of that shape (v3); --from fills it with raw bytes\n"
    "         in C order and the array's byte order\n"
    "  rechunk copy an array to new chunks (and codec, format, order), in blocks\n"
    "         that fit --memory (default 512M); either may be a URL\n"
    "  bench  read the whole array in slabs (all), COUNT random crops (crops; of\n"
    "         --crop, default the chunk shape; 1000; read --batch at a time, default\n"
    "         16, as a training loader asks), or an ordered series along\n"
    "         the first axis (series); --cache keeps up to SIZE of decoded chunks\n"
    "         (default 0: none); prints one JSON object: bytes, seconds,\n"
    "         mib_per_s, crops_per_s for crops, and the cache's hits and misses\n";

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

static int zarr_info(const char *loc) {
    lumio_zarr *z;
    int rc = lumio_zarr_open(&z, loc, NULL);
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
    printf("%-12s%" PRIu64 "\n", "grid", in.nchunks);
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
        uint64_t raw = in.itemsize;
        for (unsigned i = 0; i < in.ndim; i++) raw *= in.shape[i];
        printf("%-12s%" PRIu64 "\n", "present", present);
        printf("%-12s%" PRIu64 " bytes for %" PRIu64 " raw (ratio %.2f)\n", "stored", bytes, raw,
               bytes ? (double)raw / (double)bytes : 0.0);
    }
    lumio_zarr_close(z);
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
            cli_error("--region: more dimensions than the array's %u", in->ndim);
            return -1;
        }
        char *end;
        uint64_t a = 0, b = in->shape[d];
        if (*p != ':') {
            errno = 0;
            a = strtoull(p, &end, 10);
            if (end == p || errno || *p == '-') goto bad;
            p = end;
        }
        if (*p++ != ':') goto bad;
        if (*p && *p != ',') {
            errno = 0;
            b = strtoull(p, &end, 10);
            if (end == p || errno || *p == '-') goto bad;
            p = end;
        }
        if (a > b || b > in->shape[d]) {
            cli_error("--region: %" PRIu64 ":%" PRIu64 " is outside dimension %u (0:%" PRIu64 ")",
                      a, b, d, in->shape[d]);
            return -1;
        }
        start[d] = a;
        shape[d] = b - a;
        if (*p == ',')
            p++;
        else if (*p)
            goto bad;
    }
    return 0;
bad:
    cli_error("--region: '%s' is not START:STOP[,START:STOP...]", s);
    return -1;
}

static int zarr_cat(int argc, char **argv) {
    static const struct option opts[] = {{"region", required_argument, NULL, 'r'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *region = NULL, *out = "-";
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            region = optarg;
            break;
        case 'o':
            out = optarg;
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
    lumio_zarr *z;
    if (lumio_zarr_open(&z, argv[optind], NULL) < 0) {
        cli_error("%s", lumio_zarr_last_error(NULL));
        return EXIT_FILES;
    }
    lumio_zarr_info in;
    lumio_zarr_get_info(z, &in);
    uint64_t start[LUMIO_ZARR_MAX_DIMS], shape[LUMIO_ZARR_MAX_DIMS];
    if (parse_region(region, &in, start, shape) < 0) {
        lumio_zarr_close(z);
        return EXIT_USAGE;
    }
    int fd = STDOUT_FILENO;
    if (strcmp(out, "-") && (fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        cli_path_error(out, -errno);
        lumio_zarr_close(z);
        return EXIT_FILES;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Slabs of whole chunk rows along the first dimension, so that memory
     * stays bounded by one row of chunks however large the region. */
    uint64_t row = in.itemsize;
    for (unsigned d = 1; d < in.ndim; d++) row *= shape[d];
    uint64_t rows = in.ndim ? MAX(in.chunks[0], 1) : 1;
    uint64_t span = in.ndim ? shape[0] : 1;
    bool empty = false;
    for (unsigned d = 0; d < in.ndim; d++) empty |= shape[d] == 0;
    uint8_t *buf = empty ? NULL : lumio_large_alloc(rows * row);
    int status = 0;
    if (!empty && !buf) {
        cli_error("out of memory");
        status = EXIT_FILES;
    }
    for (uint64_t at = 0; buf && at < span && status == 0;) {
        uint64_t s0[LUMIO_ZARR_MAX_DIMS], n0[LUMIO_ZARR_MAX_DIMS];
        memcpy(s0, start, sizeof s0);
        memcpy(n0, shape, sizeof n0);
        uint64_t take = 1;
        if (in.ndim) {
            uint64_t first = start[0] + at;
            take = MIN(rows - first % rows, span - at); /* to the chunk row's end */
            s0[0] = first;
            n0[0] = take;
        }
        if (lumio_zarr_read(z, s0, n0, buf) < 0) {
            cli_error("%s", lumio_zarr_last_error(z));
            status = EXIT_FILES;
            break;
        }
        int w = write_all(fd, buf, take * row);
        if (w < 0) {
            if (w != -EPIPE) cli_error("%s: %s", out, lumio_strerror(w));
            status = EXIT_FILES;
        }
        at += take;
    }
    lumio_large_free(buf, rows * row);
    if (fd != STDOUT_FILENO && close(fd) < 0 && status == 0) {
        cli_path_error(out, -errno);
        status = EXIT_FILES;
    }
    lumio_zarr_close(z);
    return status;
}

static int parse_dims_list(const char *opt, const char *s, uint64_t *out, unsigned *n) {
    *n = 0;
    const char *p = s;
    while (*p) {
        if (*n == LUMIO_ZARR_MAX_DIMS) break;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || errno || *p == '-') break;
        out[(*n)++] = v;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            break;
        else
            return 0;
    }
    if (!*p && *n) return 0;
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
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    lumio_zarr_create_options o;
    lumio_zarr_create_options_default(&o);
    const char *shape = NULL, *chunks = NULL, *from = NULL, *shard = NULL;
    o.dtype = NULL;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int r = layout_option(c, optarg, &o, &chunks, &shard);
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
    lumio_zarr *z;
    int rc = lumio_zarr_create(&z, path, &o, NULL);
    if (rc < 0) {
        cli_error("%s", lumio_zarr_last_error(NULL));
        if (in > STDIN_FILENO) close(in);
        return rc == -EINVAL || rc == LUMIO_E_UNSUPPORTED || rc == LUMIO_E_FORMAT ? EXIT_USAGE
                                                                                  : EXIT_FILES;
    }
    int status = 0;
    if (in >= 0) { /* slabs of whole chunk rows along the first dimension */
        lumio_zarr_info info;
        lumio_zarr_get_info(z, &info);
        uint64_t row = info.itemsize;
        for (unsigned d = 1; d < info.ndim; d++) row *= info.shape[d];
        uint64_t rows = info.ndim ? info.chunks[0] : 1, span = info.ndim ? info.shape[0] : 1;
        uint8_t *buf = lumio_large_alloc(rows * row);
        progress p;
        progress_init(&p, "written");
        uint64_t done = 0;
        for (uint64_t at = 0; buf && at < span && status == 0;) {
            uint64_t take = MIN(rows, span - at), want = take * row, got = 0;
            while (got < want) {
                ssize_t r = read(in, buf + got, want - got);
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) break;
                got += (uint64_t)r;
            }
            if (got < want) {
                cli_error("%s: %llu bytes, the array needs %llu", from,
                          (unsigned long long)(done + got), (unsigned long long)(span * row));
                status = EXIT_FILES;
                break;
            }
            uint64_t s0[LUMIO_ZARR_MAX_DIMS] = {0}, n0[LUMIO_ZARR_MAX_DIMS];
            memcpy(n0, info.shape, sizeof n0);
            if (info.ndim) s0[0] = at, n0[0] = take;
            if (lumio_zarr_write(z, s0, n0, buf) < 0) {
                cli_error("%s", lumio_zarr_last_error(z));
                status = EXIT_FILES;
            }
            done += want;
            progress_update(&p, 0, done);
            at += take;
        }
        progress_done(&p);
        if (!buf) status = EXIT_FILES;
        lumio_large_free(buf, rows * row);
        char extra;
        if (status == 0 && read(in, &extra, 1) > 0) {
            cli_error("%s: longer than the array (%llu bytes)", from,
                      (unsigned long long)(span * row));
            status = EXIT_FILES;
        }
        if (in > STDIN_FILENO) close(in);
    }
    lumio_zarr_close(z);
    return status;
}

static void on_progress(void *arg, uint64_t done, uint64_t total) {
    (void)total;
    progress_update(arg, 0, done);
}

static int zarr_rechunk(int argc, char **argv) {
    static const struct option opts[] = {{"chunks", required_argument, NULL, 'c'},
                                         {"codec", required_argument, NULL, 'k'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"order", required_argument, NULL, 'O'},
                                         {"shard", required_argument, NULL, 'H'},
                                         {"checksum", no_argument, NULL, 'x'},
                                         {"memory", required_argument, NULL, 'm'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    lumio_zarr_create_options o;
    lumio_zarr_create_options_default(&o);
    o.fill_value = NULL; /* the source's */
    const char *chunks = NULL, *shard = NULL;
    uint64_t memory = 512u << 20;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int r = layout_option(c, optarg, &o, &chunks, &shard);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        switch (c) {
        case 'm':
            if (parse_size(optarg, &memory) < 0 || memory < (32u << 20)) {
                cli_error("--memory: '%s' is not a size of at least 32M", optarg);
                return EXIT_USAGE;
            }
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
    /* The source's dimensions must match: checked by opening it first. */
    lumio_zarr *z;
    if (lumio_zarr_open(&z, argv[optind], NULL) < 0) {
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
    int rc = lumio_zarr_rechunk(argv[optind], argv[optind + 1], &o, memory, on_progress, &p);
    progress_done(&p);
    if (rc < 0) {
        cli_error("%s", lumio_zarr_last_error(NULL));
        return rc == -EINVAL || rc == LUMIO_E_UNSUPPORTED ? EXIT_USAGE : EXIT_FILES;
    }
    return 0;
}

static int zarr_bench(int argc, char **argv) {
    static const struct option opts[] = {{"pattern", required_argument, NULL, 'p'},
                                         {"crop", required_argument, NULL, 'c'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"cache", required_argument, NULL, 'C'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *pattern = "all", *crop = NULL;
    uint64_t count = 1000, batch = 16;
    lumio_zarr_options zo;
    lumio_zarr_options_default(&zo);
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
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
            if (parse_size(optarg, &zo.cache_bytes) < 0) {
                cli_error("--cache: '%s' is not a size (such as 256M)", optarg);
                return EXIT_USAGE;
            }
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
    const char *loc = argv[optind];
    lumio_zarr *z;
    double t0 = now_seconds();
    if (lumio_zarr_open(&z, loc, &zo) < 0) {
        cli_error("%s", lumio_zarr_last_error(NULL));
        return EXIT_FILES;
    }
    lumio_zarr_info in;
    lumio_zarr_get_info(z, &in);
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
        uint64_t n = in.itemsize, seed = 42;
        for (unsigned d = 0; d < in.ndim; d++) n *= cshape[d];
        uint8_t *mem = lumio_large_alloc(n * batch);
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
        if (!mem || !starts || !bufs) rc = -ENOMEM;
        lumio_large_free(mem, n * batch);
        free(starts);
        free(bufs);
    } else { /* all: slabs of chunk rows (inner chunks of shards) along the first axis */
        uint64_t row = in.itemsize, start[LUMIO_ZARR_MAX_DIMS] = {0}, shape[LUMIO_ZARR_MAX_DIMS];
        for (unsigned d = 1; d < in.ndim; d++) row *= in.shape[d];
        uint64_t rows = !in.ndim ? 1 : in.inner_chunks[0] ? in.inner_chunks[0] : in.chunks[0];
        uint64_t span = in.ndim ? in.shape[0] : 1;
        uint8_t *buf = lumio_large_alloc(rows * row);
        memcpy(shape, in.shape, sizeof shape);
        for (uint64_t at = 0; buf && rc == 0 && at < span; at += rows) {
            if (in.ndim) start[0] = at, shape[0] = MIN(rows, span - at);
            rc = lumio_zarr_read(z, start, shape, buf);
            bytes += (in.ndim ? shape[0] : 1) * row;
        }
        if (!buf) rc = -ENOMEM;
        lumio_large_free(buf, rows * row);
    }
    double secs = now_seconds() - t0;
    if (rc < 0) {
        cli_error("%s", lumio_zarr_last_error(z));
        lumio_zarr_close(z);
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
    if (zo.cache_bytes) {
        lumio_zarr_stats st;
        lumio_zarr_get_stats(z, &st);
        json_u64(&j, "cache_bytes", zo.cache_bytes);
        json_u64(&j, "cache_hits", st.cache_hits);
        json_u64(&j, "cache_misses", st.cache_misses);
    }
    json_end(&j);
    lumio_zarr_close(z);
    return 0;
usage:
    lumio_zarr_close(z);
    return EXIT_USAGE;
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
        if (argc != 3 || argv[2][0] == '-') {
            if (argc == 3 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help"))) {
                fputs(zarr_usage, stdout);
                return 0;
            }
            cli_error("one array (see 'lumio zarr --help')");
            return EXIT_USAGE;
        }
        return zarr_info(argv[2]);
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
