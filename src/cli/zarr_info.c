/* lumio zarr info: shape, chunks, dtype, order, codecs, fill value; for a
 * directory also the chunks present and the bytes they take. */
#include "cli/zarr_cli.h"
#include "cli/zarr_slab.h"

#include <inttypes.h>
#include <string.h>

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

static bool is_metadata(const char *name) {
    return !strcmp(name, ".zarray") || !strcmp(name, ".zattrs") || !strcmp(name, ".zgroup") ||
           !strcmp(name, "zarr.json") || !strcmp(name, ".zmetadata");
}

static void print_layout(const lumio_zarr_info *in) {
    printf("%-12s%d\n", "format", in->format);
    print_dims("shape", in->shape, in->ndim);
    if (in->ndim && in->inner_chunks[0]) {
        print_dims("shards", in->chunks, in->ndim);
        print_dims("chunks", in->inner_chunks, in->ndim);
    } else {
        print_dims("chunks", in->chunks, in->ndim);
    }
    printf("%-12s%s (%s)\n", "dtype", in->dtype, type_name(in->type));
    printf("%-12s%s\n", "order", in->fortran_order ? "F" : "C");
    printf("%-12s%s\n", "codecs", in->codecs);
    printf("%-12s%s\n", "fill_value", in->fill_value); /* the library's text of it */
    /* Exact, past 2^64 too (a virtual array of missing chunks may be). */
    uint64_t grid[LUMIO_ZARR_MAX_DIMS];
    for (unsigned i = 0; i < in->ndim; i++)
        grid[i] = in->shape[i] / in->chunks[i] + (in->shape[i] % in->chunks[i] != 0);
    char big[700];
    printf("%-12s%s\n", "grid", zarr_big_product(grid, in->ndim, 1, big, sizeof big));
}

/* A directory: the chunks stored and the bytes they take. */
static void print_stored(const char *loc, const lumio_zarr_info *in) {
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
    double raw = zarr_product_double(in->shape, in->ndim, in->itemsize);
    char big[700];
    printf("%-12s%" PRIu64 "\n", "present", present);
    printf("%-12s%" PRIu64 " bytes for %s raw (ratio %.3g)\n", "stored", bytes,
           zarr_big_product(in->shape, in->ndim, in->itemsize, big, sizeof big),
           bytes ? raw / (double)bytes : 0.0);
}

static int info_run(const char *loc, lumio_remote *rm) {
    lumio_zarr *z;
    lumio_zarr_options zo;
    zo = (lumio_zarr_options){0};
    zo.remote = rm;
    if (lumio_zarr_open(&z, loc, &zo) < 0) {
        cli_error("%s", lumio_zarr_last_error(NULL, ERRBUF));
        return EXIT_FILES;
    }
    lumio_zarr_info in;
    lumio_zarr_get_info(z, &in);
    print_layout(&in);
    if (!lumio_remote_is_url(loc)) print_stored(loc, &in);
    lumio_zarr_close(z);
    return 0;
}

int zarr_info(int argc, char **argv) {
    static const struct option opts[] = {CLI_OPT_TIMEOUT, CLI_OPT_END};
    cli_remote_opts ro = {0};
    int c;
    while ((c = cli_getopt(argc, argv, ":h", opts)) != -1) {
        int r = zarr_timeout_option(c, optarg, &ro);
        if (r < 0) return EXIT_USAGE;
        if (r == 0) return cli_option_default(c, argv, zarr_usage);
    }
    if (zarr_one_array(argc)) return EXIT_USAGE;
    lumio_remote *rm;
    int status = zarr_client((const char *const *)argv + optind, 1, &ro, &rm);
    if (status == 0) status = info_run(argv[optind], rm);
    lumio_remote_close(rm);
    return status;
}
