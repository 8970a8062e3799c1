/* lumio get: download an object. To a file, the parts are fetched at once
 * and each writes its bytes at their offset (into FILE.part, renamed when
 * complete); to standard output, the prefetching reader streams it in order. */
#include "cli/common.h"
#include "cli/output.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <getopt.h>
#include <signal.h>
#include <lumio/remote.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

int cli_remote_create(lumio_remote **rm, const cli_remote_opts *c) {
    lumio_remote_options o;
    lumio_remote_options_default(&o);
    if (c->concurrency) o.concurrency = (unsigned)c->concurrency;
    o.pool_size = c->pool ? (unsigned)c->pool : o.concurrency;
    if (c->part) o.part_size = c->part;
    if (c->timeout_ms) o.timeout_ms = c->timeout_ms;
    int rc = lumio_remote_create(rm, &o);
    if (rc < 0) cli_error("cannot start the remote client: %s", lumio_strerror(rc));
    return rc;
}

/* "2", "0.5": seconds, as milliseconds (at least 1, at most a day). */
static int parse_timeout(const char *arg, unsigned *ms) {
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || !(v > 0) || v > 86400) return -1;
    *ms = v * 1000 < 1 ? 1 : (unsigned)(v * 1000);
    return 0;
}

int cli_remote_option(int c, const char *arg, cli_remote_opts *o) {
    switch (c) {
    case 'C':
        if (parse_count(arg, 1, 1024, &o->concurrency) < 0) {
            cli_error("--concurrency: '%s' is not a count from 1 to 1024", arg);
            return -1;
        }
        return 1;
    case 'P':
        if (parse_count(arg, 1, 1024, &o->pool) < 0) {
            cli_error("--pool: '%s' is not a count from 1 to 1024", arg);
            return -1;
        }
        return 1;
    case 'S':
        if (parse_size(arg, &o->part) < 0 || o->part < 4096) {
            cli_error("--part-size: '%s' is not a size of at least 4K", arg);
            return -1;
        }
        return 1;
    case 'T':
        if (parse_timeout(arg, &o->timeout_ms) < 0) {
            cli_error("--timeout: '%s' is not a number of seconds from 0.001 to 86400", arg);
            return -1;
        }
        return 1;
    default:
        return 0;
    }
}

void cli_remote_note(cli_remote_note_state *n, lumio_remote *rm, const char *url, uint64_t bytes,
                     uint64_t part) {
    if (n->said || bytes <= part) return;
    lumio_remote_stats st;
    lumio_remote_get_stats(rm, &st);
    if (!st.whole_gets) return;
    n->said = true;
    cli_error("note: %s: the server does not serve byte ranges (or gives no size): it is read "
              "as one stream, not in parts",
              url);
}

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
    progress_update(&g->p, 0, done);
    cli_remote_note(&g->note, g->rm, g->url, done > total ? done : total, g->part);
}

static int download_to(lumio_remote *rm, const char *url, int fd, uint64_t part) {
    get_state g = {.rm = rm, .url = url, .part = part};
    progress_init(&g.p, "fetched");
    int64_t rc = lumio_remote_download(rm, url, fd, on_progress, &g);
    progress_done(&g.p);
    if (rc >= 0) cli_remote_note(&g.note, rm, url, (uint64_t)rc, part);
    if (rc < 0)
        cli_error("%s", *lumio_remote_last_error(rm) ? lumio_remote_last_error(rm)
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

/* Stream a remote object to fd through the prefetching reader. */
int cli_remote_to_fd(lumio_remote *rm, const char *url, int fd, uint64_t part) {
    lumio_rfile *f;
    int rc = lumio_rfile_open(rm, url, &f);
    if (rc < 0) {
        cli_error("%s", lumio_remote_last_error(rm));
        return EXIT_FILES;
    }
    size_t cap = 4u << 20;
    char *buf = malloc(cap);
    int status = buf ? 0 : EXIT_FILES;
    cli_remote_note_state note = {0};
    uint64_t total = 0;
    while (buf) {
        int64_t n = lumio_rfile_read(f, buf, cap);
        if (n < 0) {
            cli_error("%s", lumio_rfile_last_error(f));
            status = EXIT_FILES;
            break;
        }
        if (n == 0) break;
        total += (uint64_t)n;
        cli_remote_note(&note, rm, url, total, part ? part : 8u << 20);
        int w = write_all(fd, buf, (size_t)n);
        if (w < 0) {
            if (w != -EPIPE)
                cli_error("%s: %s", fd == STDOUT_FILENO ? "standard output" : "output",
                          lumio_strerror(w));
            status = EXIT_FILES;
            break;
        }
    }
    free(buf);
    lumio_rfile_close(f);
    return status;
}

int cmd_get(int argc, char **argv) {
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                         {"concurrency", required_argument, NULL, 'C'},
                                         {"pool", required_argument, NULL, 'P'},
                                         {"part-size", required_argument, NULL, 'S'},
                                         {"timeout", required_argument, NULL, 'T'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *out = NULL;
    cli_remote_opts ro = {0};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        int r = cli_remote_option(c, optarg, &ro);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'h':
            fputs(get_usage, stdout);
            return 0;
        default:
            return cli_option_error(c, argv);
        }
    }
    if (optind + 1 != argc) {
        cli_error(optind == argc ? "missing URL (see 'lumio get --help')"
                                 : "one URL at a time (see 'lumio get --help')");
        return EXIT_USAGE;
    }
    const char *url = argv[optind];
    if (!lumio_is_remote(url)) {
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
    lumio_remote_destroy(rm);
    return status;
}
