/* lumio: the command-line front end. This file only dispatches; each
 * subcommand lives in its own file (cat.c, hash.c, cp.c, bench.c). */
#include "cli/common.h"

#include <stdio.h>
#include <string.h>

typedef struct command {
    const char *name;
    const char *prefix; /* message prefix, e.g. "lumio cat" */
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"cat", "lumio cat", cmd_cat, "write files to standard output"},
    {"hash", "lumio hash", cmd_hash, "print xxHash digests of files and trees (as xxhsum)"},
    {"cp", "lumio cp", cmd_cp, "copy files and directory trees"},
    {"bench", "lumio bench", cmd_bench, "measure read throughput"},
    {"stream", "lumio stream", cmd_stream, "write, read, check and measure lumio streams"},
    {"get", "lumio get", cmd_get, "download an object from HTTP(S) or S3"},
    {"zarr", "lumio zarr", cmd_zarr, "Zarr v2 and v3 arrays (info, cat, create, rechunk, bench)"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f, "usage: lumio COMMAND [OPTION]... [ARG]...\n\n"
               "Move chunked data at the speed of the hardware.\n\n"
               "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-6s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n"
               "Options:\n"
               "  -h, --help     show this help\n"
               "  --version      show the version\n\n"
               "'lumio COMMAND --help' describes a command. The environment variable\n"
               "LUMIO_BACKEND=threads|uring chooses the I/O backend.\n");
}

int main(int argc, char **argv) {
    /* Many files at once need many descriptors: take what the hard limit
     * allows, as many tools do; each command keeps below it. */
    cli_raise_fd_limit();
    if (argc < 2) {
        cli_error("missing command (see 'lumio --help')");
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "--version")) {
        printf("lumio %s\n", lumio_version());
        return 0;
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(name, commands[i].name)) continue;
        cli_set_name(commands[i].prefix);
        return commands[i].run(argc - 1, argv + 1);
    }
    cli_error("unknown command '%s' (see 'lumio --help')", name);
    return EXIT_USAGE;
}
