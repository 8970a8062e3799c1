/* lumio get: download an object. To a file, the parts are fetched at once
 * and each writes its bytes at their offset (into FILE.part, renamed when
 * complete); to standard output, the prefetching reader streams it in order. */
#include "cli/common.h"
#include "cli/output.h"

#include <lumio/remote.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static const char get_usage[] =
    "usage: lumio get URL [-o FILE|-] [--concurrency N] [--pool N] [--part-size SIZE]\n"
    "                 [--timeout SECONDS]\n"
    "\n"
    "Download an object from an HTTP(S) server or S3 (s3://BUCKET/KEY; endpoint,\n"
    "region and keys from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,\n"
    "AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).\n"
    "\n"
    "  -o, --output FILE    write to FILE ('-': standard output); default: the last\n"
    "                       part of the URL's path, in the current directory. A\n"
    "                       regular FILE is written under a temporary name and\n"
    "                       renamed when complete (a symlink: its target); a\n"
    "                       device or FIFO is written in place\n"
    "  --concurrency N      requests in flight (default 16)\n"
    "  --pool N             connections per host (default: as concurrency)\n"
    "  --part-size SIZE     split the object into parts of SIZE (default 8M)\n"
    "  --timeout SECONDS    give up when no data came for SECONDS, retries\n"
    "                       included (default 60)\n"
    "  -h, --help           show this help\n";

/* The default output name: the last part of the URL's path. */
static const char *default_name(const char *url, char *buf, size_t len) {
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    const char *slash = strchr(p, '/');
    if (!slash) return NULL;
    const char *end = slash + strcspn(slash, "?#");
    const char *start = end;
    while (start > slash && start[-1] != '/') start--;
    if (start == end || (size_t)(end - start) >= len) return NULL;
    memcpy(buf, start, (size_t)(end - start));
    buf[end - start] = 0;
    return buf;
}

typedef struct get_state {
    progress p;
    lumio_remote *rm;
    const char *url;
    uint64_t part;
    cli_remote_note_state note;
} get_state;

static void on_progress(void *arg, uint64_t done, uint64_t total) {
    get_state *g = arg;
    progress_total(&g->p, total);
    progress_update(&g->p, 0, done);
    cli_remote_note(&g->note, g->rm, g->url, done > total ? done : total, g->part);
}

static int download_to(lumio_remote *rm, const char *url, int fd, uint64_t part) {
    get_state g = {.rm = rm, .url = url, .part = part};
    /* One object: bytes of a total, no count of files. */
    progress_start(&g.p, "fetched", 0);
    int64_t rc = lumio_remote_download(rm, url, fd, on_progress, &g);
    if (rc >= 0) progress_update(&g.p, 0, (uint64_t)rc);
    progress_end(&g.p, rc >= 0);
    if (rc >= 0) cli_remote_note(&g.note, rm, url, (uint64_t)rc, part);
    if (rc < 0)
        cli_error("%s", *lumio_remote_last_error(rm, ERRBUF) ? lumio_remote_last_error(rm, ERRBUF)
                                                             : lumio_strerror((int)rc));
    return rc < 0 ? EXIT_FILES : 0;
}

/* -o PATH (output.h): a regular file through a temporary name, its parts
 * written in place at their offsets; a device, a FIFO or a descriptor
 * (/dev/stdout) in order. Errors name the path the user gave. */
static int to_file(lumio_remote *rm, const char *url, const char *out, uint64_t part) {
    cli_output o;
    int rc = cli_output_open(&o, out);
    if (rc < 0) {
        cli_path_error(out, rc);
        return EXIT_FILES;
    }
    int status = cli_output_is_file(&o) ? download_to(rm, url, o.fd, part)
                                        : cli_remote_to_fd(rm, url, o.fd, part);
    return cli_output_close(&o, status);
}

int cmd_get(int argc, char **argv) {
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'}, CLI_OPT_REMOTE, CLI_OPT_END};
    const char *out = NULL;
    cli_remote_opts ro = {0};
    int c;
    while ((c = cli_getopt(argc, argv, ":o:h", opts)) != -1) {
        int r = cli_remote_option(c, optarg, &ro);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        if (c != 'o') return cli_option_default(c, argv, get_usage);
        out = optarg;
    }
    if (optind + 1 != argc)
        return cli_usage_error("lumio get", optind == argc ? "missing URL" : "one URL at a time");
    const char *url = argv[optind];
    if (!lumio_remote_is_url(url)) {
        cli_error("%s: not an http://, https:// or s3:// URL", url);
        return EXIT_USAGE;
    }
    char name[256];
    if (!out && !(out = default_name(url, name, sizeof name))) {
        cli_error("%s: no file name in the URL; give one with -o", url);
        return EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN); /* a closed pipe is an EPIPE, said once */
    lumio_remote *rm;
    if (cli_remote_create(&rm, &ro) < 0) return EXIT_FILES;
    uint64_t part = ro.part ? ro.part : 8u << 20;
    int status = !strcmp(out, "-") ? cli_remote_to_fd(rm, url, STDOUT_FILENO, part)
                                   : to_file(rm, url, out, part);
    lumio_remote_close(rm);
    return status;
}
