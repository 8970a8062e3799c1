/*
 * lumio stream: a crash-proof, streamable, chunked format for sampled stacks
 * and records. The bytes are specified in docs/FORMAT.md.
 *
 * A stream is a signature followed by chunks. Every chunk is self-contained
 * (its own string, frame and thread tables, its own compression frame) and
 * checksummed, and is committed atomically: a reader never returns data from
 * a chunk that does not verify, and after a kill at any instant every chunk
 * that was sealed is recovered.
 *
 * Writing:
 *     lumio_stream_writer *w;
 *     lumio_stream_writer_options o;
 *     lumio_stream_writer_options_default(&o);
 *     o.flush_samples = 100000;                      // seal every 100k samples
 *     if (lumio_stream_writer_open(&w, "profile.lumio", &o) < 0) ...
 *     lumio_frame stack[2] = {{"inner", "a.c", 10}, {"main", "a.c", 3}};
 *     lumio_sample s = {.timestamp_us = t, .thread_id = tid, .status = 0,
 *                       .frames = stack, .depth = 2};
 *     lumio_stream_write_sample(w, &s);
 *     lumio_stream_write_meta(w, t, "command", "./a.out");
 *     lumio_stream_writer_close(w);                  // seals the last chunk
 *
 * Reading:
 *     lumio_stream_reader *r;
 *     lumio_stream_reader_open(&r, "profile.lumio", NULL);
 *     lumio_stream_read(r, on_sample, on_meta, arg); // every valid chunk, in order
 *     lumio_stream_reader_close(r);
 *
 * Threads: a writer or reader is used by one thread at a time.
 */
#ifndef LUMIO_STREAM_H
#define LUMIO_STREAM_H

#include "lumio.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One frame of a stack: strings are UTF-8, NUL-terminated; file may be ""
 * and line 0 when unknown (stacks from perf script have no lines). */
typedef struct lumio_frame {
    const char *function;
    const char *file;
    uint32_t line;
} lumio_frame;

/* A stack sample. frames[0] is the innermost frame (the one running). */
typedef struct lumio_sample {
    uint64_t timestamp_us;
    uint64_t thread_id;
    uint8_t status; /* caller-defined: running, waiting, GIL held, ... */
    const lumio_frame *frames;
    uint32_t depth;
} lumio_sample;

#define LUMIO_STREAM_MAX_DEPTH 4096

typedef struct lumio_stream_writer lumio_stream_writer;
typedef struct lumio_stream_reader lumio_stream_reader;

#ifdef __cplusplus
}
#endif

#endif
