/* lumio bench remote: read an object through the file-like reader as an
 * application would (sequential or random reads of one size) and print one
 * JSON object: bytes, seconds, mib_per_s, requests, bytes_fetched. */
#include "cli/common.h"

#include <getopt.h>
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

int bench_remote_main(int argc, char **argv) {
    static const struct option opts[] = {{"pattern", required_argument, NULL, 'p'},
                                         {"read-size", required_argument, NULL, 'r'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"concurrency", required_argument, NULL, 'C'},
                                         {"pool", required_argument, NULL, 'P'},
                                         {"part-size", required_argument, NULL, 'S'},
                                         {"timeout", required_argument, NULL, 'T'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    bool random = false;
    uint64_t size = 64 << 10, count = 0;
    cli_remote_opts ro = {0};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int r = cli_remote_option(c, optarg, &ro);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        switch (c) {
        case 'p':
            if (strcmp(optarg, "seq") && strcmp(optarg, "random")) {
                cli_error("--pattern: '%s' is not seq or random", optarg);
                return EXIT_USAGE;
            }
            random = !strcmp(optarg, "random");
            break;
        case 'r':
            if (parse_size(optarg, &size) < 0 || size == 0 || size > (1ull << 30)) {
                cli_error("--read-size: '%s' is not a size from 1 to 1G", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'n':
            if (parse_count(optarg, 1, UINT32_MAX, &count) < 0) {
                cli_error("--count: '%s' is not a count from 1", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'h':
            fputs(remote_usage, stdout);
            return 0;
        default:
            return cli_option_error(c, argv);
        }
    }
    if (optind + 1 != argc) {
        cli_error("one URL (see 'lumio bench remote --help')");
        return EXIT_USAGE;
    }
    const char *url = argv[optind];
    if (!lumio_is_remote(url)) {
        cli_error("%s: not an http://, https:// or s3:// URL", url); /* redacted by cli_error */
        return EXIT_USAGE;
    }
    lumio_remote *rm;
    if (cli_remote_create(&rm, &ro) < 0) return EXIT_FILES;
    char *buf = malloc(size);
    lumio_rfile *f = NULL;
    int status = EXIT_FILES;
    if (!buf) {
        cli_error("out of memory");
        goto out;
    }
    double t0 = now_seconds();
    if (lumio_rfile_open(rm, url, &f) < 0) {
        cli_error("%s", lumio_remote_last_error(rm));
        goto out;
    }
    uint64_t objsize = lumio_rfile_size(f), bytes = 0, reads = 0, seed = 42;
    uint64_t slots = objsize / size;
    if (random && objsize == UINT64_MAX) {
        cli_error("%s: the server gives no size: random reads need one", url);
        goto out;
    }
    if (random && slots == 0) {
        cli_error("%s: the object (%llu bytes) is smaller than one read", url,
                  (unsigned long long)objsize);
        goto out;
    }
    if (!count && random) count = 1000;
    for (;;) {
        if (count && reads == count) break;
        int64_t n = random ? lumio_rfile_pread(f, buf, size, cli_splitmix(&seed) % slots * size)
                           : lumio_rfile_read(f, buf, size);
        if (n < 0) {
            cli_error("%s", lumio_rfile_last_error(f));
            goto out;
        }
        if (n == 0) break;
        bytes += (uint64_t)n;
        reads++;
    }
    double secs = now_seconds() - t0;
    lumio_remote_stats st;
    lumio_rfile_get_stats(f, &st);
    json j;
    json_begin(&j, stdout);
    char shown[4096];
    json_str(&j, "url", lumio_redact(url, shown, sizeof shown));
    json_str(&j, "pattern", random ? "random" : "seq");
    json_u64(&j, "read_size", size);
    json_u64(&j, "reads", reads);
    json_u64(&j, "bytes", bytes);
    json_num(&j, "seconds", secs);
    json_num(&j, "mib_per_s", secs > 0 ? bytes / secs / (1 << 20) : 0);
    json_u64(&j, "requests", st.requests);
    json_u64(&j, "bytes_fetched", st.bytes_fetched);
    json_num(&j, "fetched_ratio", bytes ? (double)st.bytes_fetched / (double)bytes : 0);
    json_u64(&j, "retries", st.retries);
    json_end(&j);
    status = 0;
out:
    lumio_rfile_close(f);
    free(buf);
    lumio_remote_destroy(rm);
    return status;
}
