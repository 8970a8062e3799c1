/* What the lumio zarr subcommands share: see zarr_cli.h. */
#include "cli/zarr_cli.h"

#include <unistd.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ---- remote locations ------------------------------------------------------------ */

int zarr_timeout_option(int c, const char *arg, cli_remote_opts *ro) {
    return c == 'T' ? cli_remote_option(c, arg, ro) : 0;
}

int zarr_client(const char *const *locs, int n, const cli_remote_opts *ro, lumio_remote **rm) {
    *rm = NULL;
    bool any = false;
    for (int i = 0; i < n; i++) any |= lumio_remote_is_url(locs[i]);
    return any && cli_remote_create(rm, ro) < 0 ? EXIT_FILES : 0;
}

int zarr_one_array(int argc) {
    return optind + 1 == argc ? 0 : cli_usage_error("lumio zarr", "one array");
}

/* ---- memory --------------------------------------------------------------------- */

uint64_t zarr_sat_mul(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

uint64_t zarr_sat_add(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

const uint64_t *zarr_read_grid(const lumio_zarr_info *in) {
    return in->ndim && in->inner_chunks[0] ? in->inner_chunks : in->chunks;
}

/* The library decodes on one worker per core. */
static uint64_t ncores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (uint64_t)n : 1;
}

uint64_t zarr_chunk_bytes(const lumio_zarr_info *in) {
    return zarr_region_bytes(in, zarr_read_grid(in));
}

uint64_t zarr_region_bytes(const lumio_zarr_info *in, const uint64_t *shape) {
    uint64_t n = in->itemsize;
    for (unsigned d = 0; d < in->ndim; d++) n = zarr_sat_mul(n, shape[d]);
    return n;
}

/* What reading takes besides the caller's buffers: the ring's pool (a
 * quarter of the cap, and room for one stored chunk at least) and a decoded
 * chunk on each worker. */
static uint64_t read_memory(uint64_t memory, const lumio_zarr_info *in, uint64_t *pool) {
    uint64_t chunk = zarr_chunk_bytes(in);
    *pool = ZARR_MAX(memory / 4, zarr_sat_add(zarr_sat_add(chunk, chunk / 128), 64u << 10));
    return zarr_sat_add(zarr_sat_add(*pool, zarr_sat_mul(ncores(), chunk)), ZARR_BASE_MEMORY);
}

uint64_t zarr_write_memory(const lumio_zarr_info *in, uint64_t slab_bytes) {
    uint64_t chunk = zarr_region_bytes(in, in->chunks);
    return zarr_sat_add(zarr_sat_add(slab_bytes, zarr_sat_mul(2 * ncores(), chunk)),
                        ZARR_BASE_MEMORY);
}

void zarr_say_memory(const char *loc, const char *what, uint64_t bytes, uint64_t need) {
    cli_error("%s: %s of %" PRIu64 " bytes need --memory of at least %" PRIu64 "M", loc, what,
              bytes, (need >> 20) + 1);
}

/* ---- arrays open for reading within a cap ----------------------------------------- */

static bool same_layout(const lumio_zarr_info *a, const lumio_zarr_info *b) {
    size_t dims = a->ndim * sizeof(uint64_t);
    return a->format == b->format && a->ndim == b->ndim && a->type == b->type &&
           a->itemsize == b->itemsize && a->big_endian == b->big_endian &&
           a->fortran_order == b->fortran_order && !memcmp(a->shape, b->shape, dims) &&
           !memcmp(a->chunks, b->chunks, dims) && !memcmp(a->inner_chunks, b->inner_chunks, dims) &&
           !memcmp(a->fill, b->fill, sizeof a->fill) && !strcmp(a->dtype, b->dtype) &&
           !strcmp(a->codecs, b->codecs);
}

/* The layout, from an open of its own (the ring is sized from it). */
static int probe(const char *loc, const lumio_zarr_options *zo, lumio_zarr_info *in) {
    lumio_zarr *z;
    if (lumio_zarr_open(&z, loc, zo) < 0) {
        cli_error("%s", lumio_zarr_last_error(NULL, ERRBUF));
        return EXIT_FILES;
    }
    lumio_zarr_get_info(z, in);
    lumio_zarr_close(z);
    return 0;
}

int zarr_reader_open(zarr_reader *r, const char *loc, uint64_t memory, uint64_t cache,
                     lumio_remote *rm) {
    *r = (zarr_reader){0};
    lumio_zarr_options zo;
    zo = (lumio_zarr_options){0};
    zo.remote = rm;
    if (probe(loc, &zo, &r->in)) return EXIT_FILES;
    lumio_ring_options ro;
    ro = (lumio_ring_options){0};
    ro.remote = rm;
    uint64_t need = zarr_sat_add(read_memory(memory, &r->in, &ro.max_bytes), cache);
    if (need > memory) {
        zarr_say_memory(loc, cache ? "decoding chunks and the cache" : "decoding chunks",
                        zarr_chunk_bytes(&r->in), need);
        return EXIT_USAGE;
    }
    r->spare = memory - need;
    zo.cache_bytes = cache;
    if (lumio_ring_create(&r->ring, &ro) < 0) {
        cli_error("%s: cannot start the I/O engine", loc);
        return EXIT_FILES;
    }
    zo.ring = r->ring;
    lumio_zarr_info again;
    if (lumio_zarr_open(&r->z, loc, &zo) < 0) {
        cli_error("%s", lumio_zarr_last_error(NULL, ERRBUF));
    } else {
        /* The caller's buffers are sized from the first open's layout, the
         * reads follow the second's: metadata rewritten in between (by a
         * server that means harm, or a writer) must not make them disagree. */
        lumio_zarr_get_info(r->z, &again);
        if (same_layout(&r->in, &again)) return 0;
        cli_error("%s: the array's metadata changed while it was being opened", loc);
    }
    zarr_reader_close(r);
    return EXIT_FILES;
}

void zarr_reader_close(zarr_reader *r) {
    lumio_zarr_close(r->z);
    lumio_ring_close(r->ring);
    r->z = NULL;
    r->ring = NULL;
}

/* ---- lists and layouts ------------------------------------------------------------ */

int zarr_parse_index(const char **p, uint64_t *v) {
    if (**p < '0' || **p > '9') return -1;
    errno = 0;
    char *end;
    *v = strtoull(*p, &end, 10);
    if (errno) return -1;
    *p = end;
    return 0;
}

int zarr_parse_list(const char *opt, const char *s, uint64_t *out, unsigned *n) {
    *n = 0;
    const char *p = s;
    while (*p) {
        if (*n == LUMIO_ZARR_MAX_DIMS) {
            cli_error("%s: '%.60s%s' has too many dimensions (at most %d)", opt, s,
                      strlen(s) > 60 ? "..." : "", LUMIO_ZARR_MAX_DIMS);
            return -1;
        }
        uint64_t v;
        if (zarr_parse_index(&p, &v) < 0) break;
        out[(*n)++] = v;
        if (*p == ',' && p[1])
            p++;
        else if (*p)
            break;
        else
            return 0;
    }
    cli_bad_value(opt, s, "a list of sizes like 100,200");
    return -1;
}

int zarr_layout_option(int c, const char *arg, lumio_zarr_create_options *o, const char **chunks,
                       const char **shard) {
    static const char *const formats[] = {"2", "3", NULL}, *const orders[] = {"C", "F", NULL};
    switch (c) {
    case 'c':
        *chunks = arg;
        return 1;
    case 'k':
        o->codec = arg;
        return 1;
    case 'f':
        if (cli_opt_choice("--format", arg, formats) < 0) return -1;
        o->format = arg[0] - '0';
        return 1;
    case 'O':
        if (cli_opt_choice("--order", arg, orders) < 0) return -1;
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
