/* lumio stream export: a stream's samples and records through one of the
 * library's exporters (lumio_stream_exporter_*), to standard output or -o
 * OUT. collapsed and jsonl go out as they are decoded (a line at a time
 * under --follow); the whole-file formats when the stream ends. */
#include "cli/common.h"
#include "cli/stream_cli.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

typedef struct export_opts {
    const char *to; /* --to */
    bool follow;    /* --follow */
    bool idle_set;
    uint32_t idle_ms; /* --idle */
    const char *path, *out;
} export_opts;

/* The formats the library knows, "a, b, c", into buf. */
static const char *format_list(char *buf, size_t len) {
    size_t n = 0;
    buf[0] = 0;
    for (size_t i = 0; lumio_stream_export_format(i) && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "",
                              lumio_stream_export_format(i));
    return buf;
}

/* --to: a format the library knows (--to help lists them): 1, or -1 said. */
static int to_option(const char *arg, export_opts *e) {
    char known[256];
    for (size_t i = 0; lumio_stream_export_format(i); i++)
        if (!strcmp(arg, lumio_stream_export_format(i))) {
            e->to = arg;
            return 1;
        }
    cli_bad_value("--to", arg, format_list(known, sizeof known));
    return -1;
}

/* An option of export's: 1 taken, 0 not one, -1 a bad value (said). */
static int export_option(int c, const char *arg, export_opts *e) {
    uint64_t idle;
    switch (c) {
    case 'T':
        return to_option(arg, e);
    case 'i':
        if (cli_opt_count("--idle", arg, 0, 86400, &idle) < 0) return -1;
        e->idle_ms = (uint32_t)(idle * 1000);
        e->idle_set = true;
        return 1;
    case 'F':
        e->follow = true;
        return 1;
    case 'o':
        e->out = arg;
        return 1;
    default:
        return 0;
    }
}

/* The command line into e: STREAM_RUN, or the exit status (of --help and
 * --to help too). */
static int export_parse(int argc, char **argv, export_opts *e) {
    static const struct option lo[] = {
        {"to", 1, NULL, 'T'}, {"follow", 0, NULL, 'F'}, {"idle", 1, NULL, 'i'}, CLI_OPT_END};
    int c;
    for (int i = 1; i + 1 < argc; i++) /* --to help: the list, one a line */
        if (!strcmp(argv[i], "--to") && !strcmp(argv[i + 1], "help")) {
            for (size_t k = 0; lumio_stream_export_format(k); k++)
                puts(lumio_stream_export_format(k));
            return 0;
        }
    while ((c = cli_getopt(argc, argv, ":ho:", lo)) != -1) {
        int r = export_option(c, optarg, e);
        if (r < 0) return EXIT_USAGE;
        if (r == 0) return cli_option_default(c, argv, stream_usage);
    }
    if (!e->to || optind != argc - 1)
        return cli_usage_error("lumio stream",
                               "export needs --to FORMAT and one SOURCE (--to help lists formats)");
    if (e->idle_set && !e->follow) {
        cli_error("--idle needs --follow (it is how long --follow waits for more)");
        return EXIT_USAGE;
    }
    e->path = argv[optind];
    return STREAM_RUN;
}

typedef struct export_run {
    lumio_stream_exporter *x;
    int rc; /* the exporter's failure: the output's, not the input's */
} export_run;

static int export_sample(void *arg, const lumio_sample *s) {
    export_run *r = arg;
    return r->rc = lumio_stream_exporter_sample(r->x, s);
}

static int export_meta(void *arg, uint64_t ts, const char *k, const char *v) {
    export_run *r = arg;
    return r->rc = lumio_stream_exporter_meta(r->x, ts, k, v);
}

static void on_restart(void *arg, uint64_t old_offset) {
    cli_error("%s: truncated or replaced (was at byte %" PRIu64
              "); reading again from its beginning",
              (const char *)arg, old_offset);
}

/* Where the export goes: standard output, or -o OUT whole or absent. */
typedef struct export_out {
    FILE *f;
    cli_output co;
    bool used;
    const char *name;
} export_out;

static int out_open(export_out *o, const char *out) {
    memset(o, 0, sizeof *o);
    o->name = out && strcmp(out, "-") ? out : "standard output";
    if (!out || !strcmp(out, "-")) {
        o->f = stdout;
        return 0;
    }
    int rc = cli_output_open(&o->co, out), fd = -1;
    if (rc < 0) {
        cli_path_error(out, rc);
        return -1;
    }
    o->used = true;
    if ((fd = dup(o->co.fd)) < 0 || !(o->f = fdopen(fd, "w"))) {
        cli_path_error(out, -errno);
        if (fd >= 0) close(fd);
        cli_output_close(&o->co, EXIT_FILES);
        return -1;
    }
    return 0;
}

/* Flush and close; a regular file is synced and put in place when ok.
 * Returns 0, or EXIT_FILES after a message. */
static int out_close(export_out *o, bool ok) {
    errno = 0;
    int rc = fflush(o->f) || ferror(o->f) ? -(errno ? errno : EIO) : 0;
    if (o->f != stdout && fclose(o->f) && rc == 0) rc = -(errno ? errno : EIO);
    if (rc == 0 && ok && o->used && cli_output_is_file(&o->co) && fsync(o->co.fd) < 0) rc = -errno;
    if (rc < 0 && ok) cli_path_error(o->name, rc);
    int status = rc == 0 && ok ? 0 : EXIT_FILES;
    if (o->used) status = cli_output_close(&o->co, status);
    return status;
}

static int run(const export_opts *e, lumio_stream_reader *r, export_out *out,
               lumio_stream_reader_stats *s) {
    export_run x = {0};
    if (lumio_stream_exporter_create(&x.x, e->to, out->f, NULL) < 0) {
        cli_error("%s", lumio_stream_exporter_last_error(NULL, ERRBUF));
        return -1;
    }
    /* A live view: each line out as it comes, not when a buffer fills. */
    if (e->follow) setvbuf(out->f, NULL, _IOLBF, 0);
    int rc = lumio_stream_reader_read(r, export_sample, export_meta, &x);
    lumio_stream_reader_get_stats(r, s);
    if (x.rc < 0) {
        cli_error("%s: %s", out->name, lumio_stream_exporter_last_error(x.x, ERRBUF));
    } else if (rc < 0) {
        stream_read_error(e->path, rc, s);
    } else if ((rc = lumio_stream_exporter_finish(x.x)) < 0) {
        cli_error("%s: %s", out->name, lumio_stream_exporter_last_error(x.x, ERRBUF));
    }
    lumio_stream_exporter_close(x.x);
    return rc < 0 || x.rc < 0 ? -1 : 0;
}

int stream_export(int argc, char **argv) {
    export_opts e = {0};
    int status = export_parse(argc, argv, &e);
    if (status != STREAM_RUN) return status;
    lumio_stream_reader *r;
    lumio_stream_reader_options o = {.follow = e.follow,
                                     .follow_idle_ms = e.idle_ms,
                                     .on_restart = on_restart,
                                     .arg = (void *)e.path};
    if (stream_open_reader(e.path, &r, &o) < 0) return EXIT_FILES;
    export_out out;
    if (out_open(&out, e.out) < 0) {
        lumio_stream_reader_close(r);
        return EXIT_FILES;
    }
    lumio_stream_reader_stats s = {0};
    int rc = run(&e, r, &out, &s);
    lumio_stream_reader_close(r);
    /* Damage skipped is said, and the exit status says it; what was valid
     * is exported whole all the same (as on standard output). */
    if (out_close(&out, rc == 0) != 0 || rc < 0) return EXIT_FILES;
    stream_damage_note(e.path, &s); /* every valid sample is out: now the verdict */
    return s.damaged_ranges ? EXIT_FILES : 0;
}
