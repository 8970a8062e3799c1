/* lumio get: download an object. To a file, the parts are fetched at once
 * and each writes its bytes at their offset (into FILE.part, renamed when
 * complete); to standard output, the prefetching reader streams it in order. */
#include "cli/common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <lumio/remote.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char get_usage[] =
    "usage: lumio get URL [-o FILE|-] [--concurrency N] [--pool N] [--part-size SIZE]\n"
    "\n"
    "Download an object from an HTTP(S) server or S3 (s3://BUCKET/KEY; endpoint,\n"
    "region and keys from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,\n"
    "AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).\n"
    "\n"
    "  -o, --output FILE    write to FILE ('-': standard output); default: the last\n"
    "                       part of the URL's path, in the current directory\n"
    "  --concurrency N      requests in flight (default 16)\n"
    "  --pool N             connections per host (default: as concurrency)\n"
    "  --part-size SIZE     split the object into parts of SIZE (default 8M)\n"
    "  -h, --help           show this help\n";

int cli_remote_create(lumio_remote **rm, uint64_t concurrency, uint64_t pool, uint64_t part) {
    lumio_remote_options o;
    lumio_remote_options_default(&o);
    if (concurrency) o.concurrency = (unsigned)concurrency;
    o.pool_size = pool ? (unsigned)pool : o.concurrency;
    if (part) o.part_size = part;
    int rc = lumio_remote_create(rm, &o);
    if (rc < 0) cli_error("cannot start the remote client: %s", lumio_strerror(rc));
    return rc;
}

int cli_remote_option(int c, const char *arg, uint64_t *concurrency, uint64_t *pool,
                      uint64_t *part) {
    switch (c) {
    case 'C':
        if (parse_count(arg, 1, 1024, concurrency) < 0) {
            cli_error("--concurrency: '%s' is not a count from 1 to 1024", arg);
            return -1;
        }
        return 1;
    case 'P':
        if (parse_count(arg, 1, 1024, pool) < 0) {
            cli_error("--pool: '%s' is not a count from 1 to 1024", arg);
            return -1;
        }
        return 1;
    case 'S':
        if (parse_size(arg, part) < 0 || *part < 4096) {
            cli_error("--part-size: '%s' is not a size of at least 4K", arg);
            return -1;
        }
        return 1;
    default:
        return 0;
    }
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

static void on_progress(void *arg, uint64_t done, uint64_t total) {
    (void)total;
    progress_update(arg, 0, done);
}

static int to_file(lumio_remote *rm, const char *url, const char *out) {
    size_t n = strlen(out) + 6;
    char *tmp = malloc(n);
    if (!tmp) return EXIT_FILES;
    snprintf(tmp, n, "%s.part", out);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        cli_path_error(tmp, -errno);
        free(tmp);
        return EXIT_FILES;
    }
    progress p;
    progress_init(&p, "fetched");
    int64_t rc = lumio_remote_download(rm, url, fd, on_progress, &p);
    progress_done(&p);
    if (rc >= 0 && close(fd) < 0) rc = -errno, fd = -1;
    if (rc < 0) {
        cli_error("%s", *lumio_remote_last_error(rm) ? lumio_remote_last_error(rm)
                                                     : lumio_strerror((int)rc));
        if (fd >= 0) close(fd);
        unlink(tmp);
        free(tmp);
        return EXIT_FILES;
    }
    if (rename(tmp, out) < 0) {
        cli_path_error(out, -errno);
        unlink(tmp);
        free(tmp);
        return EXIT_FILES;
    }
    free(tmp);
    return 0;
}

/* Stream a remote object to fd through the prefetching reader. */
int cli_remote_to_fd(lumio_remote *rm, const char *url, int fd) {
    lumio_rfile *f;
    int rc = lumio_rfile_open(rm, url, &f);
    if (rc < 0) {
        cli_error("%s", lumio_remote_last_error(rm));
        return EXIT_FILES;
    }
    size_t cap = 4u << 20;
    char *buf = malloc(cap);
    int status = buf ? 0 : EXIT_FILES;
    while (buf) {
        int64_t n = lumio_rfile_read(f, buf, cap);
        if (n < 0) {
            cli_error("%s", lumio_rfile_last_error(f));
            status = EXIT_FILES;
            break;
        }
        if (n == 0) break;
        int w = write_all(fd, buf, (size_t)n);
        if (w < 0) {
            if (w != -EPIPE) cli_error("standard output: %s", lumio_strerror(w));
            status = EXIT_FILES;
            break;
        }
    }
    free(buf);
    lumio_rfile_close(f);
    return status;
}

int cmd_get(int argc, char **argv) {
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'}, {"concurrency", required_argument, NULL, 'C'},
        {"pool", required_argument, NULL, 'P'},   {"part-size", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *out = NULL;
    uint64_t conc = 0, pool = 0, part = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        int r = cli_remote_option(c, optarg, &conc, &pool, &part);
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
    if (cli_remote_create(&rm, conc, pool, part) < 0) return EXIT_FILES;
    int status =
        !strcmp(out, "-") ? cli_remote_to_fd(rm, url, STDOUT_FILENO) : to_file(rm, url, out);
    lumio_remote_destroy(rm);
    return status;
}
