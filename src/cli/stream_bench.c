/* lumio stream bench: write and read a synthetic profile (stream_synth.c)
 * and print one JSON object: write_samples_per_s, read_samples_per_s,
 * bytes_per_sample. */
#include "cli/common.h"
#include "cli/stream_cli.h"
#include "cli/stream_synth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* The command line into so: STREAM_RUN, or the exit status. */
static int bench_parse(int argc, char **argv, synth_opts *so) {
    static const struct option lo[] = {{"samples", 1, NULL, 'n'},
                                       {"threads", 1, NULL, 't'},
                                       {"depth", 1, NULL, 'd'},
                                       {"level", 1, NULL, 'l'},
                                       CLI_OPT_END};
    int c;
    while ((c = cli_getopt(argc, argv, ":h", lo)) != -1) {
        if (c == 'n' && cli_opt_count("--samples", optarg, 1, UINT64_MAX, &so->samples) < 0)
            return EXIT_USAGE;
        int got = c == 'n' ? 1 : synth_option(c, optarg, so);
        if (got < 0) return EXIT_USAGE;
        if (got == 0) return cli_option_default(c, argv, stream_usage);
    }
    return STREAM_RUN;
}

/* The generator's own cost, measured alone and taken out of the write time. */
static double time_generator(const synth_opts *so) {
    synth s;
    double t0 = now_seconds();
    if (synth_init(&s, so->seed, (unsigned)so->threads, (unsigned)so->depth) == 0)
        for (uint64_t i = 0; i < so->samples; i++) synth_step(&s);
    synth_free(&s);
    return now_seconds() - t0;
}

/* The profile into path, timed less the generator's own time gen_s. */
static int write_profile(const char *path, const synth_opts *so, double gen_s, double *write_s) {
    lumio_stream_writer_options o;
    o = (lumio_stream_writer_options){0};
    o.zstd_level = so->level ? (int)so->level : -1; /* --level 0: uncompressed */
    synth s;
    lumio_stream_writer *w = NULL;
    int rc = synth_init(&s, so->seed, (unsigned)so->threads, (unsigned)so->depth);
    if (rc == 0) rc = lumio_stream_writer_open(&w, path, &o);
    if (rc == 0) rc = synth_intern(&s, w);
    double t0 = now_seconds();
    for (uint64_t i = 0; i < so->samples && rc == 0; i++) rc = synth_write(&s, w);
    if (w) {
        int frc = lumio_stream_writer_finish(w);
        if (rc == 0) rc = frc;
        lumio_stream_writer_close(w);
    }
    /* The generator was timed on its own: on a loaded machine that time can
     * exceed the whole loop's, and then the loop's time is what we have. */
    double loop_s = now_seconds() - t0;
    *write_s = loop_s - gen_s > 0 ? loop_s - gen_s : loop_s;
    synth_free(&s);
    return rc;
}

static int sum_sample(void *arg, const lumio_sample *s) {
    uint64_t *sum = arg;
    *sum += s->depth + (s->depth ? s->frames[0].line : 0);
    return 0;
}

/* Read it all back; *sum proves the samples were decoded. */
static int read_back(const char *path, double *read_s, uint64_t *sum) {
    lumio_stream_reader *r;
    double t0 = now_seconds();
    int rc = lumio_stream_reader_open(&r, path, NULL);
    if (rc == 0) {
        rc = lumio_stream_reader_read(r, sum_sample, NULL, sum);
        lumio_stream_reader_close(r);
    }
    *read_s = now_seconds() - t0;
    return rc;
}

static void print_result(const synth_opts *so, uint64_t bytes, double write_s, double read_s,
                         double gen_s) {
    uint64_t n = so->samples;
    json j;
    json_begin(&j, stdout);
    json_u64(&j, "samples", n);
    json_u64(&j, "threads", so->threads);
    json_u64(&j, "depth", so->depth);
    json_u64(&j, "zstd_level", so->level);
    json_u64(&j, "bytes", bytes);
    json_num(&j, "bytes_per_sample", (double)bytes / (double)n);
    json_num(&j, "write_seconds", write_s);
    json_num(&j, "write_samples_per_s", write_s > 0 ? (double)n / write_s : 0);
    json_num(&j, "read_seconds", read_s);
    json_num(&j, "read_samples_per_s", read_s > 0 ? (double)n / read_s : 0);
    json_num(&j, "generator_seconds", gen_s);
    json_end(&j);
}

int stream_bench(int argc, char **argv) {
    synth_opts so = {.seed = 42, .samples = 2000000, .threads = 64, .depth = 40, .level = 3};
    int status = bench_parse(argc, argv, &so);
    if (status != STREAM_RUN) return status;
    /* The file is unlinked as soon as it exists, so that a bench killed at
     * any moment leaves nothing behind; the writer and reader reach it through
     * /proc, as they would a path, to measure the same code. */
    const char *dir = getenv("TMPDIR");
    char tmpl[4096], path[64];
    snprintf(tmpl, sizeof tmpl, "%s/lumio-stream-bench-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkostemp(tmpl, O_CLOEXEC);
    if (fd < 0) {
        cli_path_error(tmpl, -errno);
        return EXIT_FILES;
    }
    unlink(tmpl);
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    double write_s, read_s, gen_s = time_generator(&so);
    uint64_t sum = 0;
    int rc = write_profile(path, &so, gen_s, &write_s);
    if (rc < 0) cli_error("%s (unlinked): %s", tmpl, lumio_strerror(rc));
    if (rc == 0 && (rc = read_back(path, &read_s, &sum)) < 0)
        cli_error("%s (unlinked): reading back: %s", tmpl, lumio_strerror(rc));
    struct stat sb = {0};
    if (rc == 0 && fstat(fd, &sb) == 0) /* (a file of ours, open) */
        print_result(&so, (uint64_t)sb.st_size, write_s, read_s, gen_s);
    close(fd);
    return rc < 0 || sum == 0 ? EXIT_FILES : 0;
}
