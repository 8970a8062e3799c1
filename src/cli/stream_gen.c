/* lumio stream gen: a deterministic synthetic profile (stream_synth.c) into
 * a sink, saying on stderr as each chunk is sealed, or as folded stacks. */
#include "cli/common.h"
#include "cli/stream_cli.h"
#include "cli/stream_synth.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

typedef struct gen_opts {
    synth_opts so;
    uint64_t rate; /* samples a second; 0: as fast as it goes */
    const char *out, *to;
    lumio_stream_writer_options o;
} gen_opts;

/* An option of gen's: 1 taken, 0 not one, -1 a bad value (said). */
static int gen_option(int c, const char *arg, gen_opts *g) {
    static const char *const formats[] = {"collapsed", NULL};
    switch (c) {
    case 'r':
        return cli_opt_count("--rate", arg, 1, UINT64_MAX, &g->rate) < 0 ? -1 : 1;
    case 'f':
        return stream_flush_option(arg, &g->o) < 0 ? -1 : 1;
    case 'T':
        g->to = arg;
        return cli_opt_choice("--to", arg, formats) < 0 ? -1 : 1;
    case 'y':
        g->o.fsync = 1;
        return 1;
    case 'o':
        g->out = arg;
        return 1;
    default:
        return stream_tls_option(c, arg, &g->o) ? 1 : synth_option(c, arg, &g->so);
    }
}

/* The command line into g: STREAM_RUN, or the exit status (of --help too). */
static int gen_parse(int argc, char **argv, gen_opts *g) {
    static const struct option lo[] = {{"seed", 1, NULL, 's'},
                                       {"samples", 1, NULL, 'n'},
                                       {"threads", 1, NULL, 't'},
                                       {"depth", 1, NULL, 'd'},
                                       {"flush", 1, NULL, 'f'},
                                       {"fsync", 0, NULL, 'y'},
                                       {"level", 1, NULL, 'l'},
                                       {"to", 1, NULL, 'T'},
                                       {"rate", 1, NULL, 'r'},
                                       STREAM_TLS_OPTIONS,
                                       CLI_OPT_END};
    int c;
    while ((c = cli_getopt(argc, argv, ":ho:", lo)) != -1) {
        int r = gen_option(c, optarg, g);
        if (r < 0) return EXIT_USAGE;
        if (r == 0) return cli_option_default(c, argv, stream_usage);
    }
    if (!g->out && !g->to) return cli_usage_error("lumio stream", "missing -o SINK");
    g->o.zstd_level = g->so.level ? (int)g->so.level : -1; /* --level 0: uncompressed */
    return STREAM_RUN;
}

/* --to collapsed: the same samples as folded stacks on standard output. */
static int gen_folded(synth *s, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) synth_folded(s, stdout);
    if (fflush(stdout) == 0) return 0;
    cli_error("standard output: %s", strerror(errno));
    return EXIT_FILES;
}

/* One line for each chunk sealed since *sealed: a consumer (a test, a
 * supervisor) knows what is safe on disk. */
static void announce_seals(lumio_stream_writer *w, uint64_t *sealed) {
    lumio_stream_writer_stats st;
    lumio_stream_writer_get_stats(w, &st);
    if (st.chunks == *sealed) return;
    *sealed = st.chunks;
    fprintf(stderr, "sealed chunks=%" PRIu64 " samples=%" PRIu64 "\n", st.chunks, st.samples);
}

/* The profile into w, paced to g->rate as a live profiler would be. */
static int gen_write(synth *s, lumio_stream_writer *w, const gen_opts *g) {
    int rc = synth_intern(s, w);
    char meta[64];
    snprintf(meta, sizeof meta, "seed=%" PRIu64 " threads=%" PRIu64, g->so.seed, g->so.threads);
    if (rc == 0) rc = lumio_stream_writer_write_meta(w, s->ts[0], "generator", meta);
    uint64_t sealed = 0;
    double start = now_seconds();
    for (uint64_t i = 0; i < g->so.samples && rc == 0; i++) {
        rc = synth_write(s, w);
        if (g->rate && i % 100 == 99) {
            double ahead = (double)(i + 1) / (double)g->rate - (now_seconds() - start);
            if (ahead > 0) usleep((useconds_t)(ahead * 1e6));
        }
        announce_seals(w, &sealed);
    }
    if (rc < 0) cli_error("%s", lumio_stream_writer_last_error(w, ERRBUF));
    return rc;
}

/* Seal the last chunk and deliver it (TCP), then close: one line for the
 * outcome, which for TCP counts the chunks that did not reach the consumer. */
static int gen_finish(lumio_stream_writer *w, const char *out, int rc) {
    stream_dump_on_signal(NULL);
    lumio_stream_writer_stats before, st;
    lumio_stream_writer_get_stats(w, &before);
    int frc = lumio_stream_writer_finish(w);
    lumio_stream_writer_get_stats(w, &st);
    if (rc == 0 && st.chunks > before.chunks) /* the last chunk */
        fprintf(stderr, "sealed chunks=%" PRIu64 " samples=%" PRIu64 "\n", st.chunks, st.samples);
    if (frc < 0 && rc == 0) {
        if (lumio_stream_writer_last_error(w, ERRBUF)[0])
            cli_error("%s", lumio_stream_writer_last_error(w, ERRBUF));
        else
            cli_path_error(out, frc);
        rc = frc;
    } else if (rc == 0 && stream_is_tcp(out)) {
        fprintf(stderr, "%s: connections=%" PRIu64 " dropped_chunks=%" PRIu64 "\n",
                strncmp(out, "ws", 2) ? "tcp" : "ws", st.connections, st.dropped_chunks);
    }
    lumio_stream_writer_close(w);
    return rc;
}

int stream_gen(int argc, char **argv) {
    gen_opts g = {.so = {.seed = 1, .samples = 100000, .threads = 4, .depth = 40, .level = 3}};
    g.o = (lumio_stream_writer_options){.dump_thread = 1}; /* SIGUSR1 seals at once */
    int status = gen_parse(argc, argv, &g);
    if (status != STREAM_RUN) return status;
    synth s;
    if (synth_init(&s, g.so.seed, (unsigned)g.so.threads, (unsigned)g.so.depth) < 0) {
        synth_free(&s);
        cli_error("out of memory");
        return EXIT_FILES;
    }
    lumio_stream_writer *w;
    int rc;
    if (g.to) {
        status = gen_folded(&s, g.so.samples);
    } else if ((rc = lumio_stream_writer_open(&w, g.out, &g.o)) < 0) {
        stream_open_error(g.out, rc);
        status = EXIT_FILES;
    } else {
        stream_dump_on_signal(w);
        status = gen_finish(w, g.out, gen_write(&s, w, &g)) < 0 ? EXIT_FILES : 0;
    }
    synth_free(&s);
    return status;
}
