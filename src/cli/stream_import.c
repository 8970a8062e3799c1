/* lumio stream import: another profiler's output (folded stacks, perf
 * script, austin, speedscope, tachyon) into a stream, its records too. */
#include "cli/common.h"
#include "cli/stream_cli.h"

#include <errno.h>
#include <string.h>

typedef struct import_opts {
    const char *format; /* the library's name of --from's format */
    const char *out, *path;
    lumio_stream_writer_options o;
} import_opts;

/* --from, as the library names the formats. */
static const char *const formats[] = {"collapsed",  "perf-script", "austin",
                                      "speedscope", "tachyon",     NULL};

/* An option of import's: 1 taken, 0 not one, -1 a bad value (said). */
static int import_option(int c, const char *arg, import_opts *m, int *from, uint64_t *level) {
    switch (c) {
    case 'F':
        return (*from = cli_opt_choice("--from", arg, formats)) < 0 ? -1 : 1;
    case 'l':
        return cli_opt_count("--level", arg, 0, 22, level) < 0 ? -1 : 1;
    case 'f':
        return stream_flush_option(arg, &m->o) < 0 ? -1 : 1;
    case 'o':
        m->out = arg;
        return 1;
    case 'a':
        m->o.append = 1;
        return 1;
    default:
        return stream_tls_option(c, arg, &m->o);
    }
}

/* The command line into m: STREAM_RUN, or the exit status (of --help too). */
static int import_parse(int argc, char **argv, import_opts *m) {
    static const struct option lo[] = {{"from", 1, NULL, 'F'},  {"flush", 1, NULL, 'f'},
                                       {"level", 1, NULL, 'l'}, {"append", 0, NULL, 'a'},
                                       STREAM_TLS_OPTIONS,      CLI_OPT_END};
    int c, from = -1;
    uint64_t level = 3;
    while ((c = cli_getopt(argc, argv, ":ho:", lo)) != -1) {
        int r = import_option(c, optarg, m, &from, &level);
        if (r < 0) return EXIT_USAGE;
        if (r == 0) return cli_option_default(c, argv, stream_usage);
    }
    if (from < 0 || !m->out || optind != argc - 1)
        return cli_usage_error(
            "lumio stream", "import needs --from collapsed|perf-script|austin|speedscope|tachyon, "
                            "FILE|- and -o SINK");
    m->format = formats[from];
    m->path = argv[optind];
    m->o.zstd_level = level ? (int)level : -1; /* --level 0: uncompressed */
    return STREAM_RUN;
}

typedef struct import_sink {
    lumio_stream_writer *w;
    bool failed; /* the output failed: its own message, not the input's */
} import_sink;

static int import_sample(void *arg, const lumio_sample *s) {
    import_sink *k = arg;
    int rc = lumio_stream_writer_write_sample(k->w, s);
    k->failed = rc < 0;
    return rc;
}

static int import_meta(void *arg, uint64_t ts, const char *key, const char *value) {
    import_sink *k = arg;
    int rc = lumio_stream_writer_write_meta(k->w, ts, key, value);
    k->failed = rc < 0;
    return rc;
}

/* in into a writer of m->out; an exit status, after a message on failure. */
static int import_run(const import_opts *m, FILE *in) {
    lumio_stream_writer *w;
    outfile of;
    int rc = stream_out_open(&of, m->out, &m->o, &w);
    if (rc < 0) {
        stream_open_error(m->out, rc);
        stream_out_close(&of, NULL, false);
        return EXIT_FILES;
    }
    stream_dump_on_signal(w);
    import_sink k = {.w = w};
    rc = lumio_stream_import_records(in, m->format, import_sample, import_meta, &k);
    if (rc != 0 && k.failed)
        stream_writer_error(m->out, w);
    else if (rc != 0)
        cli_error("%s: %s", m->path, lumio_stream_reader_last_error(NULL, ERRBUF));
    int crc = stream_out_close(&of, w, rc == 0);
    return rc != 0 || crc < 0 ? EXIT_FILES : 0;
}

int stream_import(int argc, char **argv) {
    import_opts m = {0};
    m.o = (lumio_stream_writer_options){.dump_thread = 1}; /* SIGUSR1 seals at once */
    int status = import_parse(argc, argv, &m);
    if (status != STREAM_RUN) return status;
    FILE *in = strcmp(m.path, "-") ? fopen(m.path, "rb") : stdin;
    if (!in) {
        cli_path_error(m.path, -errno);
        return EXIT_FILES;
    }
    status = import_run(&m, in);
    if (in != stdin) fclose(in);
    return status;
}
