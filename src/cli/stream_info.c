/* lumio stream info: chunks, samples, threads, time span, compression. */
#include "cli/common.h"
#include "cli/stream_cli.h"

#include <inttypes.h>
#include <sys/stat.h>

#define MAX_THREADS 1024 /* counted; more are shown as "1024+" */

typedef struct counts {
    uint64_t threads[MAX_THREADS];
    size_t nthreads;
    uint64_t t_min, t_max;
    uint64_t samples;
} counts;

static int count_sample(void *arg, const lumio_sample *s) {
    counts *st = arg;
    if (!st->samples || s->timestamp_us < st->t_min) st->t_min = s->timestamp_us;
    if (!st->samples || s->timestamp_us > st->t_max) st->t_max = s->timestamp_us;
    st->samples++;
    for (size_t i = 0; i < st->nthreads; i++)
        if (st->threads[i] == s->thread_id) return 0;
    if (st->nthreads < MAX_THREADS) st->threads[st->nthreads++] = s->thread_id;
    return 0;
}

static void print_info(const counts *st, const lumio_stream_reader_stats *s, uint64_t size) {
    printf("chunks:          %" PRIu64 "\n", s->chunks);
    printf("samples:         %" PRIu64 "\n", s->samples);
    printf("records:         %" PRIu64 "\n", s->records);
    printf("threads:         %zu%s\n", st->nthreads, st->nthreads == MAX_THREADS ? "+" : "");
    printf("time span:       %.6f s\n", st->samples ? (double)(st->t_max - st->t_min) / 1e6 : 0.0);
    printf("bytes:           %" PRIu64 "\n", size);
    printf("bytes/sample:    %.2f\n", s->samples ? (double)size / (double)s->samples : 0.0);
    printf("compression:     %.2fx (%" PRIu64 " payload bytes from %" PRIu64 ")\n",
           s->stored_bytes ? (double)s->raw_bytes / (double)s->stored_bytes : 1.0, s->stored_bytes,
           s->raw_bytes);
    printf("damaged bytes:   %" PRIu64 " (%" PRIu64 " ranges)\n", s->damaged_bytes,
           s->damaged_ranges);
    printf("torn tail bytes: %" PRIu64 "\n", s->torn_tail_bytes);
}

int stream_info(int argc, char **argv) {
    const char *path;
    int status = stream_one_file(argc, argv, "info", &path);
    if (status != STREAM_RUN) return status;
    counts st = {0};
    lumio_stream_reader_stats s;
    if (stream_read_all(path, count_sample, &st, NULL, &s) < 0) return EXIT_FILES;
    struct stat sb;
    print_info(&st, &s, stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0);
    if (fflush(stdout)) return EXIT_FILES;
    stream_damage_note(path, &s);
    return s.damaged_ranges ? EXIT_FILES : 0;
}
