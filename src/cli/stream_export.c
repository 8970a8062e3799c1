/* lumio stream export: samples as folded stacks, or one JSON object per
 * sample and record; --follow reads a stream as it grows. */
#include "cli/common.h"
#include "cli/stream_cli.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

typedef struct export_opts {
    bool jsonl;  /* --to jsonl, else collapsed */
    bool follow; /* --follow */
    bool idle_set;
    uint32_t idle_ms; /* --idle */
    const char *path;
} export_opts;

/* An option of export's: 1 taken, 0 not one, -1 a bad value (said). */
static int export_option(int c, const char *arg, export_opts *e, int *to) {
    static const char *const formats[] = {"collapsed", "jsonl", NULL};
    uint64_t idle;
    switch (c) {
    case 'T':
        return (*to = cli_opt_choice("--to", arg, formats)) < 0 ? -1 : 1;
    case 'i':
        if (cli_opt_count("--idle", arg, 0, 86400, &idle) < 0) return -1;
        e->idle_ms = (uint32_t)(idle * 1000);
        e->idle_set = true;
        return 1;
    case 'F':
        e->follow = true;
        return 1;
    default:
        return 0;
    }
}

/* The command line into e: STREAM_RUN, or the exit status (of --help too). */
static int export_parse(int argc, char **argv, export_opts *e) {
    static const struct option lo[] = {
        {"to", 1, NULL, 'T'}, {"follow", 0, NULL, 'F'}, {"idle", 1, NULL, 'i'}, CLI_OPT_END};
    int c, to = -1;
    while ((c = cli_getopt(argc, argv, ":h", lo)) != -1) {
        int r = export_option(c, optarg, e, &to);
        if (r < 0) return EXIT_USAGE;
        if (r == 0) return cli_option_default(c, argv, stream_usage);
    }
    if (to < 0 || optind != argc - 1)
        return cli_usage_error("lumio stream", "export needs --to collapsed|jsonl and one FILE|-");
    if (e->idle_set && !e->follow) {
        cli_error("--idle needs --follow (it is how long --follow waits for more)");
        return EXIT_USAGE;
    }
    e->jsonl = to == 1;
    e->path = argv[optind];
    return STREAM_RUN;
}

static void collapsed_sample(const lumio_sample *s) {
    for (uint32_t k = s->depth; k-- > 0;) {
        for (const char *p = s->frames[k].function; *p; p++)
            putchar(*p == ';' ? ':' : *p == '\n' ? ' ' : *p);
        putchar(k ? ';' : ' ');
    }
    if (!s->depth) fputs("[empty] ", stdout);
    puts("1");
}

static int export_sample(void *arg, const lumio_sample *s) {
    const export_opts *e = arg;
    if (!e->jsonl) {
        collapsed_sample(s);
        return 0;
    }
    printf("{\"type\":\"sample\",\"ts_us\":%" PRIu64 ",\"tid\":%" PRIu64
           ",\"status\":%u,\"frames\":[",
           s->timestamp_us, s->thread_id, s->status);
    for (uint32_t k = 0; k < s->depth; k++) {
        fputs(k ? ",{\"function\":" : "{\"function\":", stdout);
        json_write_string(stdout, s->frames[k].function);
        fputs(",\"file\":", stdout);
        json_write_string(stdout, s->frames[k].file);
        printf(",\"line\":%u}", s->frames[k].line);
    }
    puts("]}");
    return 0;
}

static int export_meta(void *arg, uint64_t ts, const char *k, const char *v) {
    const export_opts *e = arg;
    if (!e->jsonl) return 0;
    printf("{\"type\":\"meta\",\"ts_us\":%" PRIu64 ",\"key\":", ts);
    json_write_string(stdout, k);
    fputs(",\"value\":", stdout);
    json_write_string(stdout, v);
    puts("}");
    return 0;
}

static void on_restart(void *arg, uint64_t old_offset) {
    cli_error("%s: truncated or replaced (was at byte %" PRIu64
              "); reading again from its beginning",
              (const char *)arg, old_offset);
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
    /* A live view: each sample out as it comes, not when a buffer fills. */
    if (e.follow) setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = lumio_stream_reader_read(r, export_sample, export_meta, &e);
    lumio_stream_reader_stats s;
    lumio_stream_reader_get_stats(r, &s);
    lumio_stream_reader_close(r);
    if (fflush(stdout) || ferror(stdout)) {
        cli_error("standard output: %s", strerror(errno));
        return EXIT_FILES;
    }
    if (rc < 0) {
        stream_read_error(e.path, rc, &s);
        return EXIT_FILES;
    }
    stream_damage_note(e.path, &s); /* every valid sample is out: now the verdict */
    return s.damaged_ranges ? EXIT_FILES : 0;
}
