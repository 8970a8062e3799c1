/* lumio zarr bench: read an array as a job would and time it: whole in
 * slabs (all), random crops in batches (crops, as a training loader asks),
 * or an ordered series along the first axis (series). One JSON object. */
#include "cli/zarr_cli.h"
#include "cli/zarr_slab.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

enum { RUN = -1 };
enum { ALL, CROPS, SERIES };

typedef struct bench_opts {
    int pattern;
    const char *crop;
    uint64_t count, batch, memory, cache;
    cli_remote_opts ro;
} bench_opts;

/* What a run read. */
typedef struct bench_run {
    zarr_reader r;
    const char *loc;
    const bench_opts *b;
    uint64_t cshape[LUMIO_ZARR_MAX_DIMS]; /* crops */
    uint64_t bytes, crops;
    progress p;
} bench_run;

/* An option of bench's own: 1 taken, 0 not one, -1 a bad value (said). */
static int bench_option(int c, const char *arg, bench_opts *b) {
    static const char *const patterns[] = {"all", "crops", "series", NULL};
    switch (c) {
    case 'p':
        return (b->pattern = cli_opt_choice("--pattern", arg, patterns)) < 0 ? -1 : 1;
    case 'c':
        b->crop = arg;
        return 1;
    case 'n':
        return cli_opt_count("--count", arg, 1, UINT32_MAX, &b->count) < 0 ? -1 : 1;
    case 'b':
        return cli_opt_count("--batch", arg, 1, 1024, &b->batch) < 0 ? -1 : 1;
    case 'C':
        return cli_opt_size("--cache", arg, 0, UINT64_MAX, &b->cache) < 0 ? -1 : 1;
    case 'm':
        return cli_parse_memory(arg, ZARR_MEMORY_MIN, &b->memory) < 0 ? -1 : 1;
    default:
        return zarr_timeout_option(c, arg, &b->ro);
    }
}

/* The command line into b: RUN, or the exit status (of --help too). */
static int bench_parse(int argc, char **argv, bench_opts *b) {
    static const struct option opts[] = {{"pattern", required_argument, NULL, 'p'},
                                         {"crop", required_argument, NULL, 'c'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"cache", required_argument, NULL, 'C'},
                                         {"memory", required_argument, NULL, 'm'},
                                         CLI_OPT_TIMEOUT,
                                         CLI_OPT_END};
    int c;
    while ((c = cli_getopt(argc, argv, ":h", opts)) != -1) {
        int r = bench_option(c, optarg, b);
        if (r < 0) return EXIT_USAGE;
        if (r == 0) return cli_option_default(c, argv, zarr_usage);
    }
    return zarr_one_array(argc) ? EXIT_USAGE : RUN;
}

/* --crop, default the chunk shape (within the array). */
static int crop_shape(bench_run *x) {
    const lumio_zarr_info *in = &x->r.in;
    for (unsigned d = 0; d < in->ndim; d++)
        x->cshape[d] = in->chunks[d] < in->shape[d] ? in->chunks[d] : in->shape[d];
    if (!x->b->crop) return 0;
    unsigned n;
    if (zarr_parse_list("--crop", x->b->crop, x->cshape, &n) < 0) return EXIT_USAGE;
    if (n != in->ndim) {
        cli_error("--crop has %u dimensions, the array %u", n, in->ndim);
        return EXIT_USAGE;
    }
    for (unsigned d = 0; d < n; d++)
        if (!x->cshape[d] || x->cshape[d] > in->shape[d]) {
            cli_error("--crop: %" PRIu64 " is outside dimension %u (%" PRIu64 ")", x->cshape[d], d,
                      in->shape[d]);
            return EXIT_USAGE;
        }
    return 0;
}

/* What each pattern holds besides the reads must fit what the cap leaves:
 * a batch of crops, or the series' slabs (the next four and the one handed
 * out); all must be countable. */
static int check_fits(const bench_run *x) {
    const lumio_zarr_info *in = &x->r.in;
    uint64_t used = x->b->memory - x->r.spare;
    if (x->b->pattern == CROPS) {
        uint64_t batch = zarr_sat_mul(zarr_region_bytes(in, x->cshape), x->b->batch);
        if (batch <= x->r.spare) return 0;
        zarr_say_memory(x->loc, "a batch of crops", batch, zarr_sat_add(used, batch));
        return EXIT_USAGE;
    }
    if (x->b->pattern == SERIES) {
        uint64_t slab = in->itemsize, rows = in->ndim ? zarr_read_grid(in)[0] : 1;
        for (unsigned d = 0; d < in->ndim; d++)
            slab = zarr_sat_mul(slab, d ? in->shape[d] : rows ? rows : 1);
        if (zarr_sat_mul(slab, 5) <= x->r.spare) return 0;
        zarr_say_memory(x->loc, "five slabs of the series", zarr_sat_mul(slab, 5),
                        zarr_sat_add(used, zarr_sat_mul(slab, 5)));
        return EXIT_USAGE;
    }
    if (zarr_product_double(in->shape, in->ndim, in->itemsize) < 0x1p64) return 0;
    cli_error("%s: the array holds more than 2^64 bytes: --pattern all cannot read it whole",
              x->loc);
    return EXIT_USAGE;
}

/* A read that failed, in one line. */
static int read_failed(const bench_run *x, int rc) {
    const char *e = lumio_zarr_last_error(x->r.z, ERRBUF);
    cli_error("%s", *e ? e : lumio_strerror(rc));
    return EXIT_FILES;
}

static int run_series(bench_run *x) {
    lumio_zarr_series *s;
    int rc = lumio_zarr_series_open(&s, x->r.z, 0, 0, NULL, NULL, 4);
    int64_t n = 0;
    const void *data;
    while (rc == 0 && (n = lumio_zarr_series_next(s, &data, NULL)) > 0) {
        x->bytes += (uint64_t)n;
        progress_update(&x->p, 0, x->bytes);
    }
    if (n < 0) rc = (int)n;
    lumio_zarr_series_close(s);
    return rc < 0 ? read_failed(x, rc) : 0;
}

/* Batches of crops at random places, each batch read at once. */
static int read_crops(bench_run *x, uint8_t *mem, uint64_t crop, uint64_t *starts, void **bufs) {
    const lumio_zarr_info *in = &x->r.in;
    uint64_t batch = x->b->batch, count = x->b->count, seed = 42;
    for (uint64_t i = 0; i < batch; i++) bufs[i] = mem + i * crop;
    for (uint64_t k = 0; k < count;) {
        uint64_t m = count - k < batch ? count - k : batch;
        for (uint64_t i = 0; i < m; i++)
            for (unsigned d = 0; d < in->ndim; d++)
                starts[i * in->ndim + d] = cli_splitmix(&seed) % (in->shape[d] - x->cshape[d] + 1);
        int rc = lumio_zarr_read_batch(x->r.z, m, starts, x->cshape, bufs);
        if (rc < 0) return read_failed(x, rc);
        x->bytes += crop * m;
        x->crops += m;
        k += m;
        progress_update(&x->p, 0, x->bytes);
    }
    return 0;
}

static int run_crops(bench_run *x) {
    const lumio_zarr_info *in = &x->r.in;
    uint64_t batch = x->b->batch, crop = in->itemsize, all;
    bool big = false;
    for (unsigned d = 0; d < in->ndim; d++)
        big |= __builtin_mul_overflow(crop, x->cshape[d], &crop);
    if (big || __builtin_mul_overflow(crop, batch, &all) || all > PTRDIFF_MAX) {
        cli_error("--crop: a batch of %" PRIu64 " crops of that shape does not fit in memory",
                  batch);
        return EXIT_USAGE;
    }
    progress_total(&x->p, zarr_sat_mul(crop, x->b->count));
    uint8_t *mem = zarr_buf_alloc(all);
    uint64_t *starts = malloc((batch * in->ndim + 1) * sizeof *starts);
    void **bufs = malloc(batch * sizeof *bufs);
    int status = EXIT_FILES;
    if (mem && starts && bufs)
        status = read_crops(x, mem, crop, starts, bufs);
    else
        cli_error("%s: cannot allocate %" PRIu64 " bytes for a batch of %" PRIu64 " crops", x->loc,
                  all, batch);
    zarr_buf_free(mem, all);
    free(starts);
    free(bufs);
    return status;
}

static int read_slab(void *arg, const uint64_t *start, const uint64_t *shape, void *buf,
                     uint64_t bytes) {
    bench_run *x = arg;
    int rc = lumio_zarr_read(x->r.z, start, shape, buf);
    if (rc < 0) return read_failed(x, rc);
    x->bytes += bytes;
    progress_update(&x->p, 0, x->bytes);
    return 0;
}

/* all: slabs of chunk rows (inner chunks of shards), within the cap. */
static int run_all(bench_run *x) {
    const lumio_zarr_info *in = &x->r.in;
    uint64_t start[LUMIO_ZARR_MAX_DIMS] = {0};
    zarr_slabs sl;
    zarr_slabs_init(&sl, in->ndim, in->itemsize, zarr_read_grid(in), start, in->shape,
                    x->r.spare < ZARR_SLAB_CAP ? x->r.spare : ZARR_SLAB_CAP);
    int rc = zarr_slabs_each(&sl, read_slab, x);
    if (rc == -ENOMEM)
        cli_error("%s: cannot allocate %" PRIu64 " bytes for a slab", x->loc,
                  zarr_slabs_max_bytes(&sl));
    return rc ? EXIT_FILES : 0;
}

static void print_result(const bench_run *x, double secs) {
    json j;
    json_begin(&j, stdout);
    char shown[4096]; /* a URL's password or signature stays out of the output */
    static const char *const names[] = {"all", "crops", "series"};
    json_str(&j, "array", lumio_redact(x->loc, shown, sizeof shown));
    json_str(&j, "pattern", names[x->b->pattern]);
    json_u64(&j, "bytes", x->bytes);
    json_num(&j, "seconds", secs);
    json_num(&j, "mib_per_s", secs > 0 ? (double)x->bytes / secs / (1 << 20) : 0);
    if (x->crops) {
        json_u64(&j, "crops", x->crops);
        json_u64(&j, "batch", x->b->batch);
        json_num(&j, "crops_per_s", secs > 0 ? (double)x->crops / secs : 0);
    }
    if (x->b->cache) {
        lumio_zarr_stats st;
        lumio_zarr_get_stats(x->r.z, &st);
        json_u64(&j, "cache_bytes", x->b->cache);
        json_u64(&j, "cache_hits", st.cache_hits);
        json_u64(&j, "cache_misses", st.cache_misses);
    }
    json_end(&j);
}

/* Read loc as b says, URLs through rm; one JSON object on success. */
static int bench_array(const char *loc, const bench_opts *b, lumio_remote *rm) {
    bench_run x = {.loc = loc, .b = b};
    double t0 = now_seconds();
    int status = zarr_reader_open(&x.r, loc, b->memory, b->cache, rm);
    if (status) return status;
    status = crop_shape(&x);
    if (status == 0) status = check_fits(&x);
    progress_start(&x.p, "read", 0);
    progress_total(&x.p, zarr_region_bytes(&x.r.in, x.r.in.shape));
    if (status == 0)
        status = b->pattern == SERIES  ? run_series(&x)
                 : b->pattern == CROPS ? run_crops(&x)
                                       : run_all(&x);
    progress_end(&x.p, status == 0);
    if (status == 0) print_result(&x, now_seconds() - t0);
    zarr_reader_close(&x.r);
    return status;
}

int zarr_bench(int argc, char **argv) {
    bench_opts b = {.pattern = ALL, .count = 1000, .batch = 16, .memory = ZARR_MEMORY};
    int status = bench_parse(argc, argv, &b);
    if (status != RUN) return status;
    lumio_remote *rm;
    status = zarr_client((const char *const *)argv + optind, 1, &b.ro, &rm);
    if (status == 0) status = bench_array(argv[optind], &b, rm);
    lumio_remote_close(rm);
    return status;
}
