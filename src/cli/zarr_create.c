/* lumio zarr create: a new array in a directory, in S3 or at a URL that
 * takes PUT; with --from, filled with raw bytes in C order, its metadata
 * written last so that a failed or killed fill leaves nothing that opens. */
#include "cli/zarr_cli.h"
#include "cli/zarr_slab.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct create_opts {
    lumio_zarr_create_options o;
    const char *shape, *chunks, *shard, *from, *path;
    uint64_t memory;
    cli_remote_opts ro;
} create_opts;

enum { RUN = -1 };

/* An option of create's own: 1 taken, 0 not one, -1 a bad value (said). */
static int create_option(int c, const char *arg, create_opts *k) {
    static const char *const separators[] = {".", "/", NULL};
    switch (c) {
    case 's':
        k->shape = arg;
        return 1;
    case 'd':
        k->o.dtype = arg;
        return 1;
    case 'F':
        k->o.fill_value = arg;
        return 1;
    case 'S':
        if (cli_opt_choice("--separator", arg, separators) < 0) return -1;
        k->o.separator = arg[0];
        return 1;
    case 'r':
        k->from = arg;
        return 1;
    case 'm':
        return cli_parse_memory(arg, ZARR_MEMORY_MIN, &k->memory) < 0 ? -1 : 1;
    default:
        return 0;
    }
}

/* The lists of sizes, of one rank. */
static int create_dims(create_opts *k) {
    unsigned ns, nc, nsh;
    if (zarr_parse_list("--shape", k->shape, k->o.shape, &ns) < 0 ||
        zarr_parse_list("--chunks", k->chunks, k->o.chunks, &nc) < 0)
        return -1;
    if (ns != nc) {
        cli_error("--chunks has %u dimensions, --shape %u", nc, ns);
        return -1;
    }
    k->o.ndim = ns;
    if (k->shard && zarr_parse_list("--shard", k->shard, k->o.shard, &nsh) < 0) return -1;
    if (k->shard && nsh != ns) {
        cli_error("--shard has %u dimensions, --shape %u", nsh, ns);
        return -1;
    }
    return 0;
}

/* The command line into k: RUN, or the exit status (of --help too). */
static int create_parse(int argc, char **argv, create_opts *k) {
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
                                         CLI_OPT_TIMEOUT,
                                         CLI_OPT_END};
    int c;
    while ((c = cli_getopt(argc, argv, ":h", opts)) != -1) {
        int r = zarr_layout_option(c, optarg, &k->o, &k->chunks, &k->shard);
        if (r == 0) r = zarr_timeout_option(c, optarg, &k->ro);
        if (r == 0) r = create_option(c, optarg, k);
        if (r < 0) return EXIT_USAGE;
        if (r == 0) return cli_option_default(c, argv, zarr_usage);
    }
    if (optind + 1 != argc || !k->shape || !k->chunks || !k->o.dtype)
        return cli_usage_error("lumio zarr", "create needs PATH, --shape, --chunks and --dtype");
    k->path = argv[optind];
    return create_dims(k) < 0 ? EXIT_USAGE : RUN;
}

/* Before any data is written (the array is not committed yet): --from's
 * size, if it has a real one, must be the array's, and a slab of chunk rows
 * (of shards) must fit the cap. */
static int check_from(const lumio_zarr_info *info, const char *from, int in, uint64_t memory) {
    uint64_t total = zarr_region_bytes(info, info->shape);
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
    uint64_t slab = info->itemsize;
    for (unsigned d = 0; d < info->ndim; d++) {
        uint64_t rows = info->chunks[0] < info->shape[0] ? info->chunks[0] : info->shape[0];
        slab = zarr_sat_mul(slab, d ? info->shape[d] : rows ? rows : 1);
    }
    uint64_t need = zarr_write_memory(info, slab);
    if (need > memory) {
        zarr_say_memory(from, "a row of chunks", slab, need);
        return EXIT_USAGE;
    }
    return 0;
}

typedef struct filler {
    lumio_zarr *z;
    const char *from;
    int in;
    uint64_t done, total;
    progress p;
} filler;

/* Read exactly bytes from the input: 0, or an exit status after a message. */
static int read_slab(filler *f, uint8_t *buf, uint64_t bytes) {
    uint64_t got = 0;
    while (got < bytes) {
        ssize_t r = read(f->in, buf + got, bytes - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            cli_path_error(f->from, -errno);
            return EXIT_FILES;
        }
        if (r == 0) {
            cli_error("%s: %llu bytes, the array needs %llu", f->from,
                      (unsigned long long)(f->done + got), (unsigned long long)f->total);
            return EXIT_FILES;
        }
        got += (uint64_t)r;
    }
    return 0;
}

static int fill_slab(void *arg, const uint64_t *start, const uint64_t *shape, void *buf,
                     uint64_t bytes) {
    filler *f = arg;
    int status = read_slab(f, buf, bytes);
    if (status) return status;
    if (lumio_zarr_write(f->z, start, shape, buf) < 0) {
        cli_error("%s", lumio_zarr_last_error(f->z, ERRBUF));
        return EXIT_FILES;
    }
    f->done += bytes;
    progress_update(&f->p, 0, f->done);
    return 0;
}

/* Nothing may follow the array's bytes. */
static int check_end(const filler *f) {
    char extra;
    ssize_t r;
    while ((r = read(f->in, &extra, 1)) < 0 && errno == EINTR) {
    }
    if (r <= 0) return 0;
    cli_error("%s: more than the %llu bytes the array needs", f->from,
              (unsigned long long)f->total);
    return EXIT_FILES;
}

/* Fill a new array from `in`, raw bytes in C order, in slabs of whole chunk
 * rows (of shards: whole chunks are written once); exactly the array's
 * size, else an error naming both sizes. */
static int fill_from(lumio_zarr *z, const char *from, int in) {
    lumio_zarr_info info;
    lumio_zarr_get_info(z, &info);
    uint64_t start[LUMIO_ZARR_MAX_DIMS] = {0};
    zarr_slabs sl; /* (check_from made sure that a row of chunks fits) */
    zarr_slabs_init(&sl, info.ndim, info.itemsize, info.chunks, start, info.shape, UINT64_MAX);
    filler f = {.z = z, .from = from, .in = in, .total = zarr_region_bytes(&info, info.shape)};
    progress_start(&f.p, "written", 0);
    progress_total(&f.p, f.total);
    int status = zarr_slabs_each(&sl, fill_slab, &f);
    progress_end(&f.p, status == 0);
    if (status == -ENOMEM)
        cli_error("%s: cannot allocate %llu bytes for a row of chunks", from,
                  (unsigned long long)zarr_slabs_max_bytes(&sl));
    return status ? EXIT_FILES : check_end(&f);
}

/* The array, filled from k->from if given, then committed. */
static int create_run(create_opts *k, int in) {
    /* With data, the metadata is written after it: a fill that fails or is
     * killed leaves nothing that opens as complete. */
    k->o.defer_metadata = in >= 0;
    lumio_zarr_options zo;
    zo = (lumio_zarr_options){0};
    int status = zarr_client(&k->path, 1, &k->ro, &zo.remote);
    lumio_zarr *z = NULL;
    int rc = status ? 0 : lumio_zarr_create(&z, k->path, &k->o, &zo);
    if (rc < 0) {
        cli_error("%s", lumio_zarr_last_error(NULL, ERRBUF));
        status = rc == -EINVAL || rc == LUMIO_E_UNSUPPORTED || rc == LUMIO_E_FORMAT ? EXIT_USAGE
                                                                                    : EXIT_FILES;
    }
    lumio_zarr_info info;
    if (z) lumio_zarr_get_info(z, &info);
    if (z && in >= 0) status = check_from(&info, k->from, in, k->memory);
    if (z && in >= 0 && status == 0) status = fill_from(z, k->from, in);
    if (z && status == 0 && lumio_zarr_commit(z) < 0) {
        cli_error("%s", lumio_zarr_last_error(z, ERRBUF));
        status = EXIT_FILES;
    }
    lumio_zarr_close(z); /* (uncommitted: nothing of it is left to open) */
    lumio_remote_close(zo.remote);
    return status;
}

int zarr_create(int argc, char **argv) {
    create_opts k = {.memory = ZARR_MEMORY};
    k.o = (lumio_zarr_create_options){0};
    k.o.dtype = NULL;
    int status = create_parse(argc, argv, &k);
    if (status != RUN) return status;
    int in = -1;
    if (k.from &&
        (in = !strcmp(k.from, "-") ? STDIN_FILENO : open(k.from, O_RDONLY | O_CLOEXEC)) < 0) {
        cli_path_error(k.from, -errno);
        return EXIT_FILES;
    }
    status = create_run(&k, in);
    if (in > STDIN_FILENO) close(in);
    return status;
}
