/* lumio zarr rechunk: copy an array to new chunks (and codec, format,
 * order), in blocks that fit --memory; either end may be a URL. */
#include "cli/zarr_cli.h"

#include <errno.h>
#include <malloc.h>

static void on_progress(void *arg, uint64_t done, uint64_t total) {
    progress_total(arg, total);
    progress_update(arg, 0, done);
}

/* src to dst in chunks of o (of n dimensions), URLs through zo->remote. */
static int rechunk_run(const char *src, const char *dst, const lumio_zarr_create_options *o,
                       unsigned n, uint64_t memory, const lumio_zarr_options *zo) {
    /* The source's dimensions must match: checked by opening it first. */
    lumio_zarr *z;
    if (lumio_zarr_open(&z, src, zo) < 0) {
        cli_error("%s", lumio_zarr_last_error(NULL, ERRBUF));
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
    progress_start(&p, "rechunked", 0);
    int rc = lumio_zarr_rechunk(src, dst, o, zo, memory, on_progress, &p);
    progress_end(&p, rc == 0);
    if (rc < 0) {
        cli_error("%s", lumio_zarr_last_error(NULL, ERRBUF));
        return rc == -EINVAL || rc == LUMIO_E_UNSUPPORTED ? EXIT_USAGE : EXIT_FILES;
    }
    return 0;
}

int zarr_rechunk(int argc, char **argv) {
    static const struct option opts[] = {{"chunks", required_argument, NULL, 'c'},
                                         {"codec", required_argument, NULL, 'k'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"order", required_argument, NULL, 'O'},
                                         {"shard", required_argument, NULL, 'H'},
                                         {"checksum", no_argument, NULL, 'x'},
                                         {"memory", required_argument, NULL, 'm'},
                                         CLI_OPT_TIMEOUT,
                                         CLI_OPT_END};
    lumio_zarr_create_options o;
    o = (lumio_zarr_create_options){0};
    o.fill_value = NULL; /* the source's */
    const char *chunks = NULL, *shard = NULL;
    uint64_t memory = ZARR_MEMORY;
    cli_remote_opts ro = {0};
    int c;
    while ((c = cli_getopt(argc, argv, ":h", opts)) != -1) {
        int r = zarr_layout_option(c, optarg, &o, &chunks, &shard);
        if (r == 0) r = zarr_timeout_option(c, optarg, &ro);
        if (r == 0 && c == 'm') r = cli_parse_memory(optarg, ZARR_MEMORY_MIN, &memory) < 0 ? -1 : 1;
        if (r < 0) return EXIT_USAGE;
        if (r == 0) return cli_option_default(c, argv, zarr_usage);
    }
    if (optind + 2 != argc || !chunks)
        return cli_usage_error("lumio zarr", "rechunk needs SRC, DST and --chunks");
    unsigned n, ns = 0;
    if (zarr_parse_list("--chunks", chunks, o.chunks, &n) < 0) return EXIT_USAGE;
    if (shard && zarr_parse_list("--shard", shard, o.shard, &ns) < 0) return EXIT_USAGE;
    if (shard && ns != n) {
        cli_error("--shard has %u dimensions, --chunks %u", ns, n);
        return EXIT_USAGE;
    }
    lumio_zarr_options zo;
    zo = (lumio_zarr_options){0};
    int status = zarr_client((const char *const *)argv + optind, 2, &ro, &zo.remote);
    if (status == 0) status = rechunk_run(argv[optind], argv[optind + 1], &o, n, memory, &zo);
    lumio_remote_close(zo.remote);
    return status;
}
