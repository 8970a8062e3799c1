/* lumio zarr cat: a region's raw bytes in C order and the array's byte
 * order (as numpy's a[region].tobytes()), in slabs that fit --memory. */
#include "cli/output.h"
#include "cli/zarr_cli.h"
#include "cli/zarr_slab.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* One START:STOP of dimension d (either may be empty) against its size. */
static int parse_span(const char **p, unsigned d, uint64_t size, uint64_t *a, uint64_t *b) {
    bool has_a = **p != ':', has_b;
    *a = 0, *b = size;
    if (has_a && zarr_parse_index(p, a) < 0) return -1;
    if (*(*p)++ != ':') return -1;
    has_b = **p && **p != ',';
    if (has_b && zarr_parse_index(p, b) < 0) return -1;
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
    if (!cli_output_is_file(o) || lumio_remote_is_url(array)) return 0;
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

typedef struct cat_state {
    lumio_zarr *z;
    const char *out;
    int fd;
} cat_state;

static int cat_slab(void *arg, const uint64_t *start, const uint64_t *shape, void *buf,
                    uint64_t bytes) {
    cat_state *c = arg;
    if (lumio_zarr_read(c->z, start, shape, buf) < 0) {
        cli_error("%s", lumio_zarr_last_error(c->z, ERRBUF));
        return EXIT_FILES;
    }
    int w = write_all(c->fd, buf, bytes);
    if (w < 0 && w != -EPIPE) cli_error("%s: %s", c->out, lumio_strerror(w));
    return w < 0 ? EXIT_FILES : 0;
}

/* The region of an open array to o. */
static int cat_region(zarr_reader *r, const char *loc, const uint64_t *start, const uint64_t *shape,
                      const char *out, int fd) {
    /* Slabs of whole chunks where the cap allows (a chunk row along the
     * first dimension, deeper where it does not fit), so that memory stays
     * bounded however large the region, its chunk rows and the array. */
    zarr_slabs sl;
    zarr_slabs_init(&sl, r->in.ndim, r->in.itemsize, zarr_read_grid(&r->in), start, shape,
                    r->spare < ZARR_SLAB_CAP ? r->spare : ZARR_SLAB_CAP);
    cat_state c = {r->z, out, fd};
    int rc = zarr_slabs_each(&sl, cat_slab, &c);
    if (rc == -ENOMEM)
        cli_error("%s: cannot allocate %" PRIu64 " bytes for a slab of the region", loc,
                  zarr_slabs_max_bytes(&sl));
    return rc ? EXIT_FILES : 0;
}

/* The region of loc to out (see output_open), URLs through rm. */
static int cat_run(const char *loc, const char *region, const char *out, uint64_t memory,
                   lumio_remote *rm) {
    zarr_reader r;
    int status = zarr_reader_open(&r, loc, memory, 0, rm);
    if (status) return status;
    uint64_t start[LUMIO_ZARR_MAX_DIMS], shape[LUMIO_ZARR_MAX_DIMS];
    cli_output o;
    if (parse_region(region, &r.in, start, shape) < 0) status = EXIT_USAGE;
    int orc = status ? 0 : output_open(&o, out, loc);
    if (status || orc < 0) {
        zarr_reader_close(&r);
        return status ? status : orc == -2 ? EXIT_USAGE : EXIT_FILES;
    }
    signal(SIGPIPE, SIG_IGN);
    status = cli_output_close(&o, cat_region(&r, loc, start, shape, out, o.fd));
    zarr_reader_close(&r);
    return status;
}

int zarr_cat(int argc, char **argv) {
    static const struct option opts[] = {{"region", required_argument, NULL, 'r'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"memory", required_argument, NULL, 'm'},
                                         CLI_OPT_TIMEOUT,
                                         CLI_OPT_END};
    const char *region = NULL, *out = "-";
    uint64_t memory = ZARR_MEMORY;
    cli_remote_opts ro = {0};
    int c;
    while ((c = cli_getopt(argc, argv, ":o:h", opts)) != -1) {
        int r = zarr_timeout_option(c, optarg, &ro);
        if (r == 0 && c == 'm') r = cli_parse_memory(optarg, ZARR_MEMORY_MIN, &memory) < 0 ? -1 : 1;
        if (r < 0) return EXIT_USAGE;
        if (c == 'r') region = optarg;
        if (c == 'o') out = optarg;
        if (r == 0 && c != 'r' && c != 'o') return cli_option_default(c, argv, zarr_usage);
    }
    if (zarr_one_array(argc)) return EXIT_USAGE;
    lumio_remote *rm;
    int status = zarr_client((const char *const *)argv + optind, 1, &ro, &rm);
    if (status == 0) status = cat_run(argv[optind], region, out, memory, rm);
    lumio_remote_close(rm);
    return status;
}
