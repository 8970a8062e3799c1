/* lumio bench remote: read an object through the file-like reader as an
 * application would (sequential or random reads of one size) and print one
 * JSON object: bytes, seconds, mib_per_s, requests, bytes_fetched. */
#include "cli/common.h"

#include <lumio/remote.h>
#include <stdlib.h>
#include <string.h>

static const char remote_usage[] =
    "usage: lumio bench remote URL [--pattern seq|random] [--read-size SIZE] [--count N]\n"
    "                          [--concurrency N] [--pool N] [--part-size SIZE]\n"
    "                          [--timeout SECONDS]\n"
    "\n"
    "Read an object through the prefetching reader and print one JSON object:\n"
    "bytes, seconds, mib_per_s, requests, bytes_fetched, ...\n"
    "\n"
    "  --pattern P        seq (from the start; default) or random (offsets drawn\n"
    "                     uniformly, aligned to the read size, fixed seed)\n"
    "  --read-size SIZE   bytes per read (default 64K)\n"
    "  --count N          reads (default: seq, the whole object; random, 1000)\n"
    "  --concurrency N, --pool N, --part-size SIZE, --timeout SECONDS\n"
    "                     as for 'lumio get'\n"
    "  -h, --help         show this help\n";

typedef struct rbench {
    const char *url;
    bool random;
    uint64_t size, count; /* count 0: seq, the whole object */
    cli_remote_opts ro;
    /* Results. */
    uint64_t bytes, reads;
    double secs;
} rbench;

enum { RUN = -1 };

/* The command line into b: RUN, or the exit status (of --help too). */
static int parse(int argc, char **argv, rbench *b) {
    static const struct option opts[] = {{"pattern", required_argument, NULL, 'p'},
                                         {"read-size", required_argument, NULL, 'r'},
                                         {"count", required_argument, NULL, 'n'},
                                         CLI_OPT_REMOTE,
                                         CLI_OPT_END};
    static const char *const patterns[] = {"seq", "random", NULL};
    int c, i;
    while ((c = cli_getopt(argc, argv, ":h", opts)) != -1) {
        int r = cli_remote_option(c, optarg, &b->ro);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        if (c == 'p' && (i = cli_opt_choice("--pattern", optarg, patterns)) < 0) return EXIT_USAGE;
        if (c == 'p') b->random = i == 1;
        if (c == 'r' && cli_opt_size("--read-size", optarg, 1, 1u << 30, &b->size) < 0)
            return EXIT_USAGE;
        if (c == 'n' && cli_opt_count("--count", optarg, 1, UINT32_MAX, &b->count) < 0)
            return EXIT_USAGE;
        if (c != 'p' && c != 'r' && c != 'n') return cli_option_default(c, argv, remote_usage);
    }
    if (optind + 1 != argc) return cli_usage_error("lumio bench remote", "one URL");
    b->url = argv[optind];
    if (!lumio_remote_is_url(b->url)) {
        cli_error("%s: not an http://, https:// or s3:// URL", b->url); /* redacted by cli_error */
        return EXIT_USAGE;
    }
    return RUN;
}

/* The reads b asks for of f (of objsize bytes), through buf. 0, or -1
 * after a message. */
static int read_all(rbench *b, lumio_rfile *f, uint64_t objsize, char *buf) {
    uint64_t slots = objsize / b->size, seed = 42;
    uint64_t asked = b->count * b->size; /* (at most 2^32 reads of 1 GiB) */
    progress p;
    progress_start(&p, "read", 0);
    if (!b->count || (!b->random && objsize < asked))
        progress_total(&p, objsize == UINT64_MAX ? 0 : objsize);
    else
        progress_total(&p, asked);
    int rc = 0;
    while (!b->count || b->reads < b->count) {
        int64_t n = b->random
                        ? lumio_rfile_pread(f, buf, b->size, cli_splitmix(&seed) % slots * b->size)
                        : lumio_rfile_read(f, buf, b->size);
        if (n < 0) {
            cli_error("%s", lumio_rfile_last_error(f, ERRBUF));
            rc = -1;
            break;
        }
        if (n == 0) break;
        b->bytes += (uint64_t)n;
        b->reads++;
        progress_update(&p, 0, b->bytes);
    }
    progress_end(&p, rc == 0);
    return rc;
}

/* Open the URL, read it as b says and time it: 0, or -1 after a message. */
static int run(rbench *b, lumio_remote *rm, lumio_rfile **f, char *buf) {
    double t0 = now_seconds();
    if (lumio_rfile_open(f, rm, b->url) < 0) {
        cli_error("%s", lumio_rfile_last_error(NULL, ERRBUF));
        return -1;
    }
    uint64_t objsize = lumio_rfile_size(*f);
    if (b->random && objsize == UINT64_MAX) {
        cli_error("%s: the server gives no size: random reads need one", b->url);
        return -1;
    }
    if (b->random && objsize / b->size == 0) {
        cli_error("%s: the object (%llu bytes) is smaller than one read", b->url,
                  (unsigned long long)objsize);
        return -1;
    }
    if (!b->count && b->random) b->count = 1000;
    if (read_all(b, *f, objsize, buf) < 0) return -1;
    b->secs = now_seconds() - t0;
    return 0;
}

static void print_result(const rbench *b, lumio_rfile *f) {
    lumio_remote_stats st;
    lumio_rfile_get_stats(f, &st);
    json j;
    json_begin(&j, stdout);
    char shown[4096];
    json_str(&j, "url", lumio_redact(b->url, shown, sizeof shown));
    json_str(&j, "pattern", b->random ? "random" : "seq");
    json_u64(&j, "read_size", b->size);
    json_u64(&j, "reads", b->reads);
    json_u64(&j, "bytes", b->bytes);
    json_num(&j, "seconds", b->secs);
    json_num(&j, "mib_per_s", b->secs > 0 ? b->bytes / b->secs / (1 << 20) : 0);
    json_u64(&j, "requests", st.requests);
    json_u64(&j, "bytes_fetched", st.bytes_fetched);
    json_num(&j, "fetched_ratio", b->bytes ? (double)st.bytes_fetched / (double)b->bytes : 0);
    json_u64(&j, "retries", st.retries);
    json_end(&j);
}

int bench_remote_main(int argc, char **argv) {
    rbench b = {.size = 64 << 10};
    int status = parse(argc, argv, &b);
    if (status != RUN) return status;
    lumio_remote *rm;
    if (cli_remote_create(&rm, &b.ro) < 0) return EXIT_FILES;
    char *buf = malloc(b.size);
    lumio_rfile *f = NULL;
    status = EXIT_FILES;
    if (!buf)
        cli_error("out of memory");
    else if (run(&b, rm, &f, buf) == 0)
        status = 0;
    if (status == 0) print_result(&b, f);
    lumio_rfile_close(f);
    free(buf);
    lumio_remote_close(rm);
    return status;
}
