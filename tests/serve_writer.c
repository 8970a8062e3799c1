/* A writer for the tests of lumio stream serve: appends to a stream (a new
 * one if absent) COUNT samples of one stack for thread TID, one every
 * STEP_US from START_US, after a "thread_name" record "TID NAME", sealed as
 * chunks of CHUNK samples.
 *
 *   serve_writer FILE START_US STEP_US COUNT CHUNK TID NAME OUTER [... INNER] */
#include <lumio/stream.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 9) {
        fprintf(stderr, "usage: %s FILE START_US STEP_US COUNT CHUNK TID NAME FRAME...\n", argv[0]);
        return 2;
    }
    uint64_t start = strtoull(argv[2], NULL, 10), step = strtoull(argv[3], NULL, 10);
    uint64_t count = strtoull(argv[4], NULL, 10), chunk = strtoull(argv[5], NULL, 10);
    uint64_t tid = strtoull(argv[6], NULL, 10);
    uint32_t depth = (uint32_t)(argc - 8);
    lumio_frame *frames = calloc(depth, sizeof *frames);
    if (!frames) return 1;
    for (uint32_t i = 0; i < depth; i++) /* innermost first */
        frames[i] =
            (lumio_frame){.function = argv[argc - 1 - (int)i], .file = "test.py", .line = i + 1};
    lumio_stream_writer_options o = {.flush_samples = (int64_t)chunk, .append = 1};
    lumio_stream_writer *w;
    char err[LUMIO_ERROR_MAX];
    if (lumio_stream_writer_open(&w, argv[1], &o) < 0) {
        fprintf(stderr, "%s\n", lumio_stream_writer_last_error(NULL, err, sizeof err));
        return 1;
    }
    char name[300];
    snprintf(name, sizeof name, "%llu %s", (unsigned long long)tid, argv[7]);
    int rc = lumio_stream_writer_write_meta(w, start, "thread_name", name);
    for (uint64_t i = 0; i < count && rc == 0; i++) {
        lumio_sample s = {
            .timestamp_us = start + i * step, .thread_id = tid, .frames = frames, .depth = depth};
        rc = lumio_stream_writer_write_sample(w, &s);
    }
    if (rc == 0) rc = lumio_stream_writer_finish(w);
    if (rc < 0) fprintf(stderr, "%s\n", lumio_stream_writer_last_error(w, err, sizeof err));
    lumio_stream_writer_close(w);
    free(frames);
    return rc < 0;
}
