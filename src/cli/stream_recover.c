/* lumio stream recover: every valid chunk's samples into a clean stream. */
#include "cli/common.h"
#include "cli/stream_cli.h"

#include <inttypes.h>
#include <string.h>

/* The reader's samples and records replayed into a new writer. */
typedef struct copier {
    lumio_stream_writer *w;
    int rc;
} copier;

static int copy_sample(void *arg, const lumio_sample *s) {
    copier *c = arg;
    return c->rc = lumio_stream_writer_write_sample(c->w, s);
}

static int copy_meta(void *arg, uint64_t ts, const char *k, const char *v) {
    copier *c = arg;
    return c->rc = lumio_stream_writer_write_meta(c->w, ts, k, v);
}

/* What recover skipped: damage (a chunk that was whole but corrupt, which a
 * killed writer does not leave) is told apart from a torn tail. */
static void recover_note(const lumio_stream_reader_stats *s) {
    char dmg[128] = "no damage";
    if (s->damaged_ranges)
        snprintf(dmg, sizeof dmg,
                 "damage: %" PRIu64 " corrupt bytes in %" PRIu64
                 " ranges, the first at byte %" PRIu64,
                 s->damaged_bytes, s->damaged_ranges, s->first_damage_offset);
    fprintf(stderr,
            "recovered %" PRIu64 " samples from %" PRIu64 " chunks; skipped %s, and a torn tail "
            "of %" PRIu64 " bytes\n",
            s->samples, s->chunks, dmg, s->torn_tail_bytes);
}

/* The command line: STREAM_RUN with FILE and OUT, or the exit status. */
static int recover_parse(int argc, char **argv, const char **in, const char **out) {
    static const struct option lo[] = {CLI_OPT_END};
    int c;
    while ((c = cli_getopt(argc, argv, ":ho:", lo)) != -1) {
        if (c != 'o') return cli_option_default(c, argv, stream_usage);
        *out = optarg;
    }
    if (!*out || optind != argc - 1)
        return cli_usage_error("lumio stream", "recover needs FILE and -o OUT");
    *in = argv[optind];
    return STREAM_RUN;
}

int stream_recover(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    int status = recover_parse(argc, argv, &in, &out);
    if (status != STREAM_RUN) return status;
    lumio_stream_reader *r;
    if (stream_open_reader(in, &r, NULL) < 0) return EXIT_FILES;
    copier c = {0};
    outfile of;
    int rc = stream_out_open(&of, out, NULL, &c.w);
    if (rc < 0) {
        lumio_stream_reader_close(r);
        stream_open_error(out, rc);
        stream_out_close(&of, NULL, false);
        return EXIT_FILES;
    }
    rc = lumio_stream_reader_read(r, copy_sample, copy_meta, &c);
    lumio_stream_reader_stats s;
    lumio_stream_reader_get_stats(r, &s);
    lumio_stream_reader_close(r);
    if (rc < 0 && c.rc < 0)
        stream_writer_error(out, c.w);
    else if (rc < 0)
        stream_read_error(in, rc, &s);
    if (stream_out_close(&of, c.w, rc == 0) < 0 || rc < 0) return EXIT_FILES;
    recover_note(&s);
    return 0;
}
