/* lumio zarr: Zarr arrays from a directory, an http(s) URL or S3. This file
 * only dispatches; each subcommand lives in its own file:
 *
 *   info     zarr_info.c     shape, chunks, dtype, codecs, fill value, stored bytes
 *   cat      zarr_cat.c      a region's raw bytes in C order and the array's byte order
 *   create   zarr_create.c   a new array, filled from raw bytes or not
 *   rechunk  zarr_rechunk.c  a copy in new chunks, codec, format, order
 *   bench    zarr_bench.c    read speed: the whole array, random crops, a series
 *
 * What they share is in zarr_common.c; the slabs they move data in, in
 * zarr_slab.c. */
#include "cli/zarr_cli.h"

#include <string.h>

const char zarr_usage[] =
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

typedef struct subcommand {
    const char *name, *prefix;
    int (*run)(int argc, char **argv);
} subcommand;

static const subcommand subcommands[] = {
    {"info", "lumio zarr info", zarr_info},       {"cat", "lumio zarr cat", zarr_cat},
    {"create", "lumio zarr create", zarr_create}, {"rechunk", "lumio zarr rechunk", zarr_rechunk},
    {"bench", "lumio zarr bench", zarr_bench},
};

int cmd_zarr(int argc, char **argv) {
    if (argc < 2)
        return cli_usage_error("lumio zarr",
                               "missing subcommand: info, cat, create, rechunk or bench");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(zarr_usage, stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++) {
        if (strcmp(argv[1], subcommands[i].name)) continue;
        cli_set_name(subcommands[i].prefix);
        return subcommands[i].run(argc - 1, argv + 1);
    }
    cli_error("unknown subcommand '%s' (info, cat, create, rechunk or bench)", argv[1]);
    return EXIT_USAGE;
}
