/* lumio stream verify: exit 1, saying where, on any damage. */
#include "cli/common.h"
#include "cli/stream_cli.h"

#include <inttypes.h>

static int skip_sample(void *arg, const lumio_sample *s) {
    (void)arg, (void)s;
    return 0;
}

/* The report, on standard output: every damaged range (the one line on
 * standard error sums them up). */
static void report_damage(void *arg, uint64_t off, uint64_t len, int torn) {
    printf("%s: %s at byte %" PRIu64 ", %" PRIu64 " bytes\n", (const char *)arg,
           torn ? "torn tail" : "damaged range", off, len);
}

int stream_verify(int argc, char **argv) {
    const char *path;
    int status = stream_one_file(argc, argv, "verify", &path);
    if (status != STREAM_RUN) return status;
    lumio_stream_reader_stats s;
    if (stream_read_all(path, skip_sample, NULL, report_damage, &s) < 0) return EXIT_FILES;
    if (s.damaged_ranges) {
        cli_error("%s: damaged: %" PRIu64 " bytes in %" PRIu64
                  " ranges, the first at byte %" PRIu64,
                  path, s.damaged_bytes, s.damaged_ranges, s.first_damage_offset);
        return EXIT_FILES;
    }
    if (s.torn_tail_bytes) {
        cli_error("%s: torn tail: %" PRIu64 " bytes from byte %" PRIu64 " are not a whole chunk",
                  path, s.torn_tail_bytes, s.valid_end);
        return EXIT_FILES;
    }
    printf("%s: ok, %" PRIu64 " chunks, %" PRIu64 " samples\n", path, s.chunks, s.samples);
    return 0;
}
