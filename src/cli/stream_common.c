/* What the lumio stream subcommands share: see stream_cli.h. */
#include "cli/stream_cli.h"

#include "cli/common.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool stream_is_tcp(const char *s) {
    return !strncmp(s, "tcp:", 4) || !strncmp(s, "tcp-connect:", 12) ||
           !strncmp(s, "tcp-listen:", 11) || !strncmp(s, "ws://", 5) || !strncmp(s, "wss://", 6) ||
           !strncmp(s, "ws-listen:", 10);
}

void stream_open_error(const char *what, int rc) {
    if (rc == LUMIO_E_FORMAT) /* only an append to something else gives this */
        cli_error("%s: not a lumio stream (appending continues only a stream)", what);
    else if (stream_is_tcp(what)) /* the text names the host, the port, and why */
        cli_error("%s", lumio_stream_reader_last_error(NULL, ERRBUF));
    else
        cli_path_error(what, rc);
}

void stream_read_error(const char *path, int rc, const lumio_stream_reader_stats *s) {
    struct stat sb;
    if (rc != LUMIO_E_FORMAT && s->valid_end)
        cli_error("%s: reading after byte %" PRIu64 ": %s", path, s->valid_end, lumio_strerror(rc));
    else if (rc != LUMIO_E_FORMAT)
        cli_path_error(path, rc);
    else if (strcmp(path, "-") && !stream_is_tcp(path) && stat(path, &sb) == 0 &&
             S_ISREG(sb.st_mode) && sb.st_size < 16)
        cli_error("%s: not a lumio stream (%s: %lld bytes, a stream starts with 16)", path,
                  sb.st_size ? "too short" : "empty file", (long long)sb.st_size);
    else
        cli_error("%s: byte 0: not a lumio stream (no \\x89LUMIO\\r\\n signature)", path);
}

void stream_damage_note(const char *path, const lumio_stream_reader_stats *s) {
    char tail[96] = "";
    if (s->torn_tail_bytes)
        snprintf(tail, sizeof tail, "a torn tail of %" PRIu64 " bytes at byte %" PRIu64,
                 s->torn_tail_bytes, s->valid_end);
    if (s->damaged_ranges)
        cli_error("%s: damaged: skipped %" PRIu64 " bytes in %" PRIu64
                  " ranges, the first at byte %" PRIu64 "%s%s",
                  path, s->damaged_bytes, s->damaged_ranges, s->first_damage_offset,
                  tail[0] ? ", and " : "", tail);
    else if (tail[0])
        cli_error("%s: skipped %s (a writer killed mid-chunk; the chunks before it are whole)",
                  path, tail);
}

int stream_out_open(outfile *of, const char *out, const lumio_stream_writer_options *o,
                    lumio_stream_writer **w) {
    memset(of, 0, sizeof *of);
    if (!strcmp(out, "-") || stream_is_tcp(out) || (o && o->append))
        return lumio_stream_writer_open(w, out, o);
    int rc = cli_output_open(&of->co, out);
    if (rc < 0) return rc;
    of->used = true;
    if ((rc = lumio_stream_writer_open_fd(w, of->co.fd, o)) < 0) {
        cli_output_close(&of->co, EXIT_FILES);
        of->used = false;
    }
    return rc;
}

/* The proposal's dump: SIGUSR1 seals the chunk being written. The handler
 * may run on any thread, but the writer it names is finished only by the
 * main thread after stream_dump_on_signal(NULL), or by the writer's own
 * thread's join, so it never outlives it... except for a handler already
 * past its load on another thread: the library's threads are the only
 * others, and the writer's own one is joined before its pipe closes. */
static lumio_stream_writer *volatile dump_writer;

static void on_sigusr1(int sig) {
    (void)sig;
    lumio_stream_writer *w = dump_writer;
    if (w) lumio_stream_writer_dump(w);
}

void stream_dump_on_signal(lumio_stream_writer *w) {
    dump_writer = w;
    if (!w) return;
    struct sigaction sa = {.sa_handler = on_sigusr1, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
}

int stream_tls_option(int c, const char *arg, lumio_stream_writer_options *o) {
    if (c == 'C') o->ca_file = arg;
    if (c == 'K') o->insecure_tls = 1;
    return c == 'C' || c == 'K';
}

int stream_out_close(outfile *of, lumio_stream_writer *w, bool ok) {
    stream_dump_on_signal(NULL);
    int rc = w ? lumio_stream_writer_finish(w) : 0;
    lumio_stream_writer_close(w);
    if (!of->used) return rc;
    of->used = false;
    if (rc == 0 && ok && cli_output_is_file(&of->co) && fsync(of->co.fd) < 0) rc = -errno;
    if (rc < 0 && ok) cli_path_error(of->co.name, rc);
    if (cli_output_close(&of->co, rc == 0 && ok ? 0 : EXIT_FILES) != 0 && rc == 0 && ok)
        rc = -EIO; /* (said, naming the path) */
    return rc;
}

void stream_writer_error(const char *out, const lumio_stream_writer *w) {
    const char *e = lumio_stream_writer_last_error(w, ERRBUF);
    size_t n = strlen(out);
    if (!strncmp(e, out, n) && !strncmp(e + n, ": ", 2))
        cli_error("%s", e);
    else if (!strncmp(e, "fd ", 3) && strstr(e, ": "))
        cli_error("%s: %s", out, strstr(e, ": ") + 2);
    else
        cli_error("%s: %s", out, e[0] ? e : "write failed");
}

int stream_open_reader(const char *path, lumio_stream_reader **r,
                       const lumio_stream_reader_options *o) {
    int rc = lumio_stream_reader_open(r, path, o);
    if (rc < 0) stream_open_error(path, rc);
    return rc;
}

int stream_flush_option(const char *arg, lumio_stream_writer_options *o) {
    if (lumio_stream_flush_policy(arg, o) == 0) return 0;
    cli_bad_value("--flush", arg, "a policy like interval:10s,samples:5000,bytes:4M");
    return -1;
}

int stream_one_file(int argc, char **argv, const char *what, const char **path) {
    static const struct option lo[] = {CLI_OPT_END};
    int c;
    while ((c = cli_getopt(argc, argv, ":h", lo)) != -1)
        return cli_option_default(c, argv, stream_usage);
    if (optind != argc - 1) return cli_usage_error("lumio stream", "%s needs one FILE", what);
    *path = argv[optind];
    return STREAM_RUN;
}

int stream_read_all(const char *path, lumio_sample_fn fn, void *arg, lumio_damage_fn on_damage,
                    lumio_stream_reader_stats *s) {
    lumio_stream_reader *r;
    lumio_stream_reader_options o = {.on_damage = on_damage, .arg = (void *)path};
    if (stream_open_reader(path, &r, &o) < 0) return -1;
    int rc = lumio_stream_reader_read(r, fn, NULL, arg);
    lumio_stream_reader_get_stats(r, s);
    lumio_stream_reader_close(r);
    if (rc == 0) return 0;
    stream_read_error(path, rc, s);
    return -1;
}
