/* lumio cat: files to standard output, in argument order.
 *
 * All files go into one in-order group, each as a GET read in blocks, so a
 * big file streams through a bounded number of pool buffers while the next
 * files are already being opened. */
#include "cli/common.h"

#include <errno.h>
#include <lumio/remote.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CAT_BLOCK  (1u << 20)
#define CAT_MEMORY (64u << 20)

static const char cat_usage[] =
    "usage: lumio cat [--block SIZE] [--memory SIZE] [--timeout SECONDS] PATH|URL|-...\n"
    "\n"
    "Write the bytes of each PATH to standard output, in order. A URL (http://,\n"
    "https://, s3://) is streamed through the prefetching remote reader; - is\n"
    "standard input. Pipes, devices and files of /proc and /sys are read to\n"
    "their end, whatever size they report.\n"
    "A file that cannot be read is reported on standard error and skipped;\n"
    "the exit status is then 1.\n"
    "\n"
    "  --block SIZE   read in blocks of SIZE bytes (default 1M; K, M, G suffixes)\n"
    "  --memory SIZE  most memory held in buffers (default 64M; at least two blocks)\n"
    "  --timeout SECONDS  a URL: give up when no data came for SECONDS, retries\n"
    "                 included (default 60)\n"
    "  -h, --help     show this help\n";

typedef struct cat_state {
    char **paths; /* as given, for messages ("-" has no path in the engine) */
    int status;
    int64_t failed_op; /* the op whose error was reported last: one line per file */
    bool stop;         /* standard output is gone */
} cat_state;

static void cat_one(cat_state *s, const lumio_completion *c) {
    if (c->result < 0) {
        if (c->op_index != LUMIO_NO_RANGE && (int64_t)c->op_index != s->failed_op) {
            const char *path = c->path ? c->path : s->paths[c->op_index];
            if (c->result == LUMIO_E_RANGE) /* cat reads whole files: this one shrank */
                cli_error("%s: the file shrank while it was read (it ends before byte %llu)", path,
                          (unsigned long long)(c->offset + c->length));
            else
                cli_path_error(path, c->result);
        }
        s->failed_op = c->op_index;
        s->status = EXIT_FILES;
        return;
    }
    if (s->stop || !c->data) return;
    int rc = write_all(STDOUT_FILENO, c->data, c->length);
    if (rc < 0) {
        /* A closed pipe is the reader's choice: no message, but no success. */
        if (rc != -EPIPE) cli_error("standard output: %s", lumio_strerror(rc));
        s->status = EXIT_FILES;
        s->stop = true;
    }
}

/* Deliver completions until the group ends (or the engine has nothing more,
 * or output failed). Returns the exit status. */
static int cat_drain(lumio_ring *r, uint64_t g, char **paths) {
    cat_state s = {.paths = paths, .failed_op = -1};
    lumio_completion c[64];
    bool ended = false;
    while (!ended && !s.stop) {
        int n = lumio_ring_wait(r, g, c, 64, 1);
        if (n < 0) {
            cli_error("%s", lumio_ring_last_error(r, ERRBUF));
            return EXIT_FILES;
        }
        if (n == 0) break;
        for (int i = 0; i < n; i++) {
            cat_one(&s, &c[i]);
            lumio_buffer_release(c[i].buffer);
            ended |= (c[i].flags & LUMIO_CQE_GROUP_END) != 0;
        }
    }
    return s.status;
}

static int cat_run(char **paths, int n, uint64_t block, uint64_t memory) {
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    /* Sequential streaming needs little read-ahead: a few MiB in flight keep
     * the disk busy, and the pool cap (--memory) bounds what is held,
     * whatever the block size. */
    o.queue_depth = 32;
    o.max_buffers = 64;
    o.max_bytes = memory;
    o.max_open_files = cli_ring_open_files(1, 128);
    lumio_ring *r;
    int rc = lumio_ring_create(&r, &o);
    if (rc < 0) {
        cli_error("cannot start the I/O engine: %s", lumio_strerror(rc));
        return EXIT_FILES;
    }
    lumio_op *ops = calloc((size_t)n, sizeof(*ops));
    lumio_range *from = calloc((size_t)n, sizeof(*from));
    if (!ops || !from) {
        free(ops);
        free(from);
        lumio_ring_close(r);
        cli_error("out of memory");
        return EXIT_FILES;
    }
    bool seek_in = false;
    for (int i = 0; i < n; i++) {
        bool in = !strcmp(paths[i], "-"); /* standard input, read to its end */
        ops[i] = (lumio_op){.kind = LUMIO_OP_GET,
                            .path = in ? NULL : paths[i],
                            .fd = in ? STDIN_FILENO : -1,
                            .block_size = block};
        /* A file as standard input is read from where the shell (or an
         * earlier reader) left it, as cat does, and left at its end. */
        off_t at = in ? cli_stdin_offset() : -1;
        if (at > 0) {
            from[i] = (lumio_range){.offset = (int64_t)at, .length = LUMIO_WHOLE};
            ops[i].ranges = &from[i];
            ops[i].nranges = 1;
        }
        seek_in |= at >= 0;
    }
    lumio_group_options go;
    go = (lumio_group_options){0};
    go.in_order = 1;
    uint64_t g;
    rc = lumio_ring_submit(r, ops, (size_t)n, &go, &g);
    free(ops); /* the engine copied them */
    free(from);
    int status = EXIT_FILES;
    if (rc < 0)
        cli_error("%s", lumio_ring_last_error(r, ERRBUF));
    else
        status = cat_drain(r, g, paths);
    if (status == 0 && seek_in) (void)!lseek(STDIN_FILENO, 0, SEEK_END);
    lumio_ring_close(r);
    return status;
}

/* One block is written while the next is read: two must fit in memory. */
static int cat_block_fits(uint64_t block, uint64_t memory) {
    if (block <= memory / 2) return 0;
    char b[32], m[32], need[32];
    cli_error("--block %s does not fit twice in --memory %s (raise --memory to %s, or lower "
              "--block)",
              cli_size_text(block, b, sizeof b), cli_size_text(memory, m, sizeof m),
              cli_size_text(2 * block, need, sizeof need));
    return -1;
}

int cmd_cat(int argc, char **argv) {
    static const struct option longopts[] = {{"block", required_argument, NULL, 'b'},
                                             {"memory", required_argument, NULL, 'm'},
                                             CLI_OPT_TIMEOUT,
                                             CLI_OPT_END};
    uint64_t block = CAT_BLOCK, memory = CAT_MEMORY;
    cli_remote_opts ro = {0};
    int c;
    while ((c = cli_getopt(argc, argv, ":h", longopts)) != -1) {
        int r = c == 'T' ? cli_remote_option(c, optarg, &ro) : 0;
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        switch (c) {
        case 'b':
            if (cli_opt_size("--block", optarg, 1, 1u << 30, &block) < 0) return EXIT_USAGE;
            break;
        case 'm':
            if (cli_parse_memory(optarg, 1u << 20, &memory) < 0) return EXIT_USAGE;
            break;
        default:
            return cli_option_default(c, argv, cat_usage);
        }
    }
    if (optind >= argc) return cli_usage_error("lumio cat", "missing PATH");
    if (cat_block_fits(block, memory) < 0) return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN); /* see EPIPE from write() instead of dying */
    /* Runs of files go through the engine; a URL through the prefetching
     * remote reader, in argument order. */
    char **paths = argv + optind;
    int n = argc - optind, status = 0;
    lumio_remote *rm = NULL;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && !lumio_remote_is_url(paths[j])) j++;
        int st = 0;
        if (j > i) {
            st = cat_run(paths + i, j - i, block, memory);
        } else {
            if (!rm && cli_remote_create(&rm, &ro) < 0) return EXIT_FILES;
            st = cli_remote_to_fd(rm, paths[i], STDOUT_FILENO, 8u << 20);
            j = i + 1;
        }
        if (st) status = st;
        i = j;
    }
    lumio_remote_close(rm);
    return status;
}
