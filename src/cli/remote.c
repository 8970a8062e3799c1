/* URLs as the subcommands read them (get, cat, zarr, bench remote): the
 * client's options, the client, and an object streamed to a descriptor. */
#include "cli/common.h"

#include <errno.h>
#include <lumio/remote.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_remote_create(lumio_remote **rm, const cli_remote_opts *c) {
    lumio_remote_options o;
    o = (lumio_remote_options){0};
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
        return cli_opt_count("--concurrency", arg, 1, 1024, &o->concurrency) < 0 ? -1 : 1;
    case 'P':
        return cli_opt_count("--pool", arg, 1, 1024, &o->pool) < 0 ? -1 : 1;
    case 'S':
        return cli_opt_size("--part-size", arg, 4096, UINT64_MAX, &o->part) < 0 ? -1 : 1;
    case 'T':
        if (parse_timeout(arg, &o->timeout_ms) == 0) return 1;
        cli_bad_value("--timeout", arg, "a number of seconds from 0.001 to 86400");
        return -1;
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

/* Copy f to fd through buf; an exit status, after a message on failure. */
static int pump(lumio_remote *rm, lumio_rfile *f, const char *url, int fd, uint64_t part,
                progress *p) {
    /* A read returns when it is full: smaller ones let the line move. */
    size_t cap = p->on ? 512u << 10 : 4u << 20;
    char *buf = malloc(cap);
    if (!buf) {
        cli_error("out of memory");
        return EXIT_FILES;
    }
    cli_remote_note_state note = {0};
    uint64_t total = 0;
    int status = 0;
    for (;;) {
        int64_t n = lumio_rfile_read(f, buf, cap);
        if (n < 0) {
            cli_error("%s", lumio_rfile_last_error(f, ERRBUF));
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
        progress_update(p, 0, total);
    }
    free(buf);
    return status;
}

int cli_remote_to_fd(lumio_remote *rm, const char *url, int fd, uint64_t part) {
    lumio_rfile *f;
    int rc = lumio_rfile_open(&f, rm, url);
    if (rc < 0) {
        cli_error("%s", lumio_rfile_last_error(NULL, ERRBUF));
        return EXIT_FILES;
    }
    progress p;
    progress_start(&p, "fetched", fd == STDOUT_FILENO ? PROGRESS_TO_STDOUT : 0);
    uint64_t size = lumio_rfile_size(f);
    progress_total(&p, size == UINT64_MAX ? 0 : size);
    int status = pump(rm, f, url, fd, part, &p);
    progress_end(&p, status == 0);
    lumio_rfile_close(f);
    return status;
}
