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
 *     lumio_stream_writer_options o = {.flush_samples = 100000}; // zero: defaults
 *     if (lumio_stream_writer_open(&w, "profile.lumio", &o) < 0) ...
 *     lumio_frame stack[2] = {{.function = "inner", .file = "a.c", .line = 10},
 *                             {.function = "main", .file = "a.c", .line = 3}};
 *     lumio_sample s = {.timestamp_us = t, .thread_id = tid, .status = 0,
 *                       .frames = stack, .depth = 2};
 *     lumio_stream_writer_write_sample(w, &s);
 *     lumio_stream_writer_write_meta(w, t, "command", "./a.out");
 *     int rc = lumio_stream_writer_finish(w);        // seals the last chunk
 *     lumio_stream_writer_close(w);
 *
 * Reading:
 *     lumio_stream_reader *r;
 *     lumio_stream_reader_open(&r, "profile.lumio", NULL);
 *     lumio_stream_reader_read(r, on_sample, on_meta, arg); // every valid chunk, in order
 *     lumio_stream_reader_close(r);
 *
 * The whole program: examples/stream_profile.c (built with lumio).
 *
 * Threads: a writer or reader is used by one thread at a time; its
 * last_error may be read from any thread. Conventions shared by every pillar
 * (names, errors, options): docs/API.md.
 */
#ifndef LUMIO_STREAM_H
#define LUMIO_STREAM_H

#include "lumio.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One frame of a stack: strings are UTF-8, NUL-terminated; file may be ""
 * and line 0 when unknown (stacks from perf script have no lines). */
typedef struct lumio_frame {
    const char *function;
    const char *file;
    uint32_t line;
    uint32_t reserved[3]; /* must be 0 (zero in frames lumio hands out) */
} lumio_frame;

/* A stack sample. frames[0] is the innermost frame (the one running). */
typedef struct lumio_sample {
    uint64_t timestamp_us;
    uint64_t thread_id;
    uint8_t status; /* caller-defined: running, waiting, GIL held, ... */
    const lumio_frame *frames;
    uint32_t depth;
    uint64_t reserved[2]; /* must be 0 (zero in samples lumio hands out) */
} lumio_sample;

#define LUMIO_STREAM_MAX_DEPTH 4096

/* Callbacks of reading and importing: 0 goes on; a negative code stops and
 * is returned as it is; a positive value stops with -ECANCELED. */
typedef int (*lumio_sample_fn)(void *arg, const lumio_sample *s);
typedef int (*lumio_meta_fn)(void *arg, uint64_t timestamp_us, const char *key, const char *value);

typedef struct lumio_stream_writer lumio_stream_writer;
typedef struct lumio_stream_reader lumio_stream_reader;

/* ---- writing ------------------------------------------------------------ */

/* Options: zero is the default in every field (docs/API.md). */
typedef struct lumio_stream_writer_options {
    int64_t flush_samples;     /* seal after this many samples (default 65536; -1: never) */
    int64_t flush_bytes;       /* seal when the chunk's records reach this size (default 4 MiB;
                                  -1: never) */
    uint32_t flush_ms;         /* seal a chunk this old, even with no write (default 0: never) */
    int zstd_level;            /* 1 to 22 (default 3); -1: no compression */
    int fsync;                 /* fsync every sealed chunk (files): durable when the call returns */
    int append;                /* files: keep the valid chunks already there, trim a torn tail */
    uint64_t tcp_buffer;       /* TCP and WebSocket sinks: bytes of sealed chunks kept for the
                                  consumer (64 MiB) */
    uint32_t close_timeout_ms; /* TCP and WebSocket sinks: how long finish waits to send the
                                  rest (5000) */
    int dump_thread;           /* 1: lumio_stream_writer_dump seals at once, from the writer's own
                                  thread (started at open, as flush_ms starts it); 0: it seals at
                                  the writer's next call */
    /* wss:// sinks, as lumio_remote_options names them: */
    int insecure_tls;     /* 1: do NOT verify the server's certificate (default 0) */
    const char *ca_file;  /* CA certificates (PEM) to verify with; NULL: the system's */
    uint64_t reserved[5]; /* must be 0 */
} lumio_stream_writer_options;

typedef struct lumio_stream_writer_stats {
    uint64_t chunks, samples, records, bytes; /* sealed and written */
    /* TCP: chunks not delivered: dropped when the buffer was full, or sent
     * and never acknowledged by the consumer's TCP when a connection broke;
     * after lumio_stream_writer_finish, also those still unsent or
     * unacknowledged then. A chunk the consumer's TCP acknowledged counts as
     * delivered (without acknowledgements from the application, lumio cannot
     * know more). dropped_bytes: those dropped from a full buffer. */
    uint64_t dropped_chunks, dropped_bytes;
    uint64_t connections; /* TCP, WebSocket: consumers connected so far */
    uint64_t reserved[4]; /* zero */
} lumio_stream_writer_stats;

/* Set o's flush triggers from a policy as text, as the CLI's --flush and
 * Python's Writer take it: "samples:5000", "bytes:4M" (k, M, G), and
 * "interval:180s" (ms, s, m, h), joined by commas ("interval:10s,
 * samples:5000"); also the older "samples=N,seconds=S". Only the triggers
 * named seal: the others are set off. -EINVAL, naming the part that is
 * wrong, in lumio_stream_writer_last_error(NULL, ...). Any thread. */
LUMIO_API int lumio_stream_flush_policy(const char *spec, lumio_stream_writer_options *o);

/* Open a writer on a sink: a file path (created or truncated, or with
 * `append` continued after its last valid chunk; each chunk is committed by
 * writing its magic last), "-" (standard output), "tcp:HOST:PORT" (connect
 * now, so an unknown host, a bad port or a refused connection fails the
 * open; on a later lost connection reconnect with backoff), or
 * "tcp-listen:[HOST:]PORT" (serve one consumer at a time; HOST defaults to
 * 127.0.0.1), or "ws://HOST[:PORT]/PATH" and "wss://..." (a WebSocket
 * client: connect and upgrade now, so a refused connection, an unknown host
 * or a refused upgrade, named by its HTTP status, fails the open; each
 * connection sends the signature as one binary message, then each sealed
 * chunk as one; later losses reconnect with backoff; wss verifies the
 * server's certificate unless insecure_tls). A port is a decimal number
 * from 1 to 65535. A TCP or WebSocket consumer that is slow or gone never
 * blocks the writer: sealed chunks wait in a buffer of `tcp_buffer` bytes,
 * and the oldest are dropped (and counted) when it is full. Options NULL:
 * the defaults; the sink's name is copied. A failure's text is in
 * lumio_stream_writer_last_error(NULL, ...). Any thread; the writer is then
 * used by one thread at a time (the "writer's thread" below; it may
 * change), which the writer's own thread (flush_ms, dump_thread) never
 * disturbs. */
LUMIO_API int lumio_stream_writer_open(lumio_stream_writer **out, const char *sink,
                                       const lumio_stream_writer_options *o);
/* Open a writer on a descriptor the caller keeps open (pipe, socket, file;
 * close does not close it): every chunk is written whole, with one write
 * call where it can be. As lumio_stream_writer_open otherwise. */
LUMIO_API int lumio_stream_writer_open_fd(lumio_stream_writer **out, int fd,
                                          const lumio_stream_writer_options *o);

/* Write a sample by value: each frame is interned (hashed) on every call;
 * the strings are copied before it returns. A sample that fills the chunk
 * (flush_samples, flush_bytes) seals it, and its error (the sink's) is
 * returned here. The writer's thread. */
LUMIO_API int lumio_stream_writer_write_sample(lumio_stream_writer *w, const lumio_sample *s);
/* The fast path: intern a frame once (its strings copied) and keep its id,
 * valid for the writer's life; then write stacks of ids (innermost first).
 * The writer's thread. */
LUMIO_API int lumio_stream_writer_intern_frame(lumio_stream_writer *w, const lumio_frame *f,
                                               uint32_t *id);
LUMIO_API int lumio_stream_writer_write_ids(lumio_stream_writer *w, uint64_t timestamp_us,
                                            uint64_t thread_id, uint8_t status, const uint32_t *ids,
                                            uint32_t depth);
/* A key and a value (copied) for readers: the command, a marker, ... The
 * writer's thread. */
LUMIO_API int lumio_stream_writer_write_meta(lumio_stream_writer *w, uint64_t timestamp_us,
                                             const char *key, const char *value);
/* Seal the current chunk now (nothing happens if it is empty). The writer's
 * thread. */
LUMIO_API int lumio_stream_writer_flush(lumio_stream_writer *w);
/* The proposal's "dump": ask for the current chunk to be sealed now (nothing
 * happens if it is empty), as SIGUSR1 does to `lumio stream gen`. Safe from
 * a signal handler and from any thread: it only sets a flag and writes a
 * byte to a pipe. The seal happens at once on the writer's own thread when
 * the writer has one (dump_thread or flush_ms), else at its next call; its
 * failure is returned by the writer's next call. 0, or -EINVAL for NULL. A
 * handler must be done with w before lumio_stream_writer_close. */
LUMIO_API int lumio_stream_writer_dump(lumio_stream_writer *w);
/* The counters so far (chunks sealed, samples, bytes; TCP deliveries). The
 * writer's thread. */
LUMIO_API void lumio_stream_writer_get_stats(const lumio_stream_writer *w,
                                             lumio_stream_writer_stats *s);
/* The text of the writer's last failure, naming the sink and the byte
 * offset, copied into buf (LUMIO_ERROR_MAX bytes suffice), which is
 * returned; "" if none. With NULL: this thread's last failed open. Any
 * thread. */
LUMIO_API char *lumio_stream_writer_last_error(const lumio_stream_writer *w, char *buf, size_t len);
/* Seal what is left and, on a TCP sink, wait (close_timeout_ms at most) for
 * the consumer to take it; then the stats are final. Returns the first error
 * of the seal, or for TCP a negative code when some chunk was not delivered
 * (lumio_stream_writer_last_error says how many and why). The writer still
 * needs lumio_stream_writer_close, which then does not wait again unless
 * samples were written after it. The writer's thread. */
LUMIO_API int lumio_stream_writer_finish(lumio_stream_writer *w);
/* Finish (unless done; call finish first to know whether everything was
 * written), close the sink, free. Accepts NULL. The writer's thread. */
LUMIO_API void lumio_stream_writer_close(lumio_stream_writer *w);

/* ---- other profilers' formats --------------------------------------------- */

/* Read a profile in another tool's text format and call on_sample for each
 * sample, in order, holding one sample in memory at a time (the sample and
 * its strings live until the callback returns). format: "perf" (the text of
 * `perf script` with call chains: thread_id the TID, timestamps in
 * microseconds, file the DSO) or "folded" (flamegraph.pl's collapsed
 * stacks, "outer;inner COUNT": COUNT samples each). Returns 0 at the end of
 * the input, -ECANCELED or the callback's negative code when it stopped the
 * import, LUMIO_E_FORMAT naming the line, -ENOMEM, -EIO; the text in
 * lumio_stream_reader_last_error(NULL, ...). Any thread (one per `in`). */
LUMIO_API int lumio_stream_import(FILE *in, const char *format, lumio_sample_fn on_sample,
                                  void *arg);
/* As lumio_stream_import, with the profile's records too: on_meta (NULL:
 * records are dropped) gets each, in order with the samples. More formats:
 * "austin" (austin's text, 3.x and 1.x), "speedscope" (speedscope's JSON,
 * sampled profiles; at most 128 MiB), "tachyon" (CPython's sampling-profiler
 * binary format v1; a pipe is first copied to an unlinked temporary file).
 * What each keeps, the record keys (thread_name, source, interval_us,
 * python_version, ...) and what is lost: docs/PROFILES.md. The text of a
 * failure names the line, the JSON field or the byte offset. Any thread (one
 * per `in`). */
LUMIO_API int lumio_stream_import_records(FILE *in, const char *format, lumio_sample_fn on_sample,
                                          lumio_meta_fn on_meta, void *arg);

/* Write one sample as a folded-stacks line, "outer;...;inner COUNT\n" (';'
 * inside a name becomes ':', line breaks spaces). Returns 0, -EINVAL for a
 * sample without frames, -EIO. Any thread (one per `out`). */
LUMIO_API int lumio_stream_print_folded(FILE *out, const lumio_sample *s, uint64_t count);

/* ---- exporting to other tools' formats ------------------------------------
 * An exporter takes samples and records (from a reader, an import, or a
 * program) and writes them in a viewer's format:
 *   "collapsed"  folded stacks, a line per sample as it comes;
 *   "jsonl"      one JSON object per sample and record, as they come;
 *   "speedscope" speedscope's file format (one sampled profile per thread);
 *   "gecko"      the Firefox Profiler's processed format;
 *   "pprof"      pprof's profile.proto, gzip-compressed;
 *   "tachyon"    CPython's sampling-profiler binary format, version 1.
 * The streaming ones (collapsed, jsonl) write as samples come; the others
 * keep the profile's tables and samples (compactly) and write the file at
 * finish. docs/PROFILES.md says what each holds. */
typedef struct lumio_stream_exporter lumio_stream_exporter;

/* Options: zero is the default in every field (docs/API.md). */
typedef struct lumio_stream_export_options {
    const char *name;     /* the profile's name where the format has one (default "lumio") */
    uint64_t reserved[6]; /* must be 0 */
} lumio_stream_export_options;

/* An exporter writing to out (kept open by the caller; for "pprof" and
 * "tachyon" a binary stream). -EINVAL for an unknown format, naming it, in
 * lumio_stream_exporter_last_error(NULL, ...). Any thread; the exporter is
 * then used by one thread at a time. */
LUMIO_API int lumio_stream_exporter_create(lumio_stream_exporter **e, const char *format, FILE *out,
                                           const lumio_stream_export_options *o);
/* Add a sample; a record (command line, rate, thread names: docs/PROFILES.md).
 * 0, -ENOMEM, -EIO (writing out), -EINVAL. The exporter's thread. */
LUMIO_API int lumio_stream_exporter_sample(lumio_stream_exporter *e, const lumio_sample *s);
LUMIO_API int lumio_stream_exporter_meta(lumio_stream_exporter *e, uint64_t timestamp_us,
                                         const char *key, const char *value);
/* Write what is held and flush out: 0 or the first error. The exporter's
 * thread. */
LUMIO_API int lumio_stream_exporter_finish(lumio_stream_exporter *e);
/* The text of the exporter's last failure (NULL: this thread's last failed
 * create), copied into buf, which is returned; "" if none. Any thread. */
LUMIO_API char *lumio_stream_exporter_last_error(const lumio_stream_exporter *e, char *buf,
                                                 size_t len);
/* Free (without finishing). Accepts NULL. The exporter's thread. */
LUMIO_API void lumio_stream_exporter_close(lumio_stream_exporter *e);
/* The name of the index-th format this build knows (from 0), NULL past the
 * last: the one list a program shows its users. Any thread. */
LUMIO_API const char *lumio_stream_export_format(size_t index);

/* ---- chunks as they travel ------------------------------------------------
 * A receiver or relay (lumio stream recv) takes another writer's bytes as
 * they arrive: the signature, then whole chunks, each appended to its own
 * stream verified and renumbered, never decoded into samples and encoded
 * again. */

#define LUMIO_STREAM_SIGNATURE_LEN 16
#define LUMIO_STREAM_CHUNK_MAX     ((256u << 20) + 48) /* the largest chunk, header included */

/* Whether data (n bytes) starts with a stream's signature: 0 yes,
 * LUMIO_E_FORMAT no, -EAGAIN too short to say. Any thread. */
LUMIO_API int lumio_stream_check_signature(const void *data, size_t n);

typedef struct lumio_stream_chunk_info {
    uint64_t length;    /* the whole chunk, its header included */
    uint64_t raw_bytes; /* its records decoded: what verifying it decompresses into */
    uint64_t seq;       /* its number in the stream it came from */
    uint64_t samples, records;
    int compressed;
    uint64_t reserved[4]; /* zero */
} lumio_stream_chunk_info;

/* Read the header of the chunk at the start of data (n bytes), checking its
 * limits but not its checksum: 0 when the whole chunk is there, -EAGAIN when
 * more bytes are needed (info->length says how many in all once the header
 * is there, else 0), LUMIO_E_FORMAT when it is not a chunk. Any thread. */
LUMIO_API int lumio_stream_chunk_peek(const void *data, size_t n, lumio_stream_chunk_info *info);

/* Listen for writers on "tcp-listen:[HOST:]PORT" (HOST 127.0.0.1 unless
 * given; a port from 1 to 65535), as a receiver of many writers does (lumio
 * stream recv): a non-blocking, close-on-exec listening socket, the
 * caller's to accept on and close. Returns it, -EINVAL for a spec that is
 * not one, or another negative code (-EADDRINUSE, ...); the text in
 * lumio_stream_reader_last_error(NULL, ...). Any thread. */
LUMIO_API int lumio_stream_listen(const char *spec);

/* WebSocket writers ("ws-listen:[HOST:]PORT", HOST 127.0.0.1 unless given),
 * as a receiver of many writers takes them (lumio stream recv): a listener
 * served from the caller's thread, handing over each whole binary message
 * (a writer sends the signature, then one message a chunk). It drops, and
 * says so with a DROPPED event naming the peer: text messages, messages
 * larger than LUMIO_STREAM_CHUNK_MAX or than the memory left, connections
 * not upgraded within handshake_ms, peers stalled inside a message for
 * stall_ms, and writers beyond max_peers (refused). Fragmented messages are
 * put together (within the same caps). What a message holds is the
 * caller's to check: a callback returning a negative code drops the peer. */
typedef struct lumio_stream_ws_listener lumio_stream_ws_listener;

enum {
    LUMIO_WS_CONNECTED = 1, /* a writer finished its handshake */
    LUMIO_WS_MESSAGE = 2,   /* data, len: one whole binary message */
    LUMIO_WS_CLOSED = 3,    /* the writer went; len: bytes of an unfinished message */
    LUMIO_WS_DROPPED = 4    /* dropped or refused by the listener; why says what it did */
};

typedef struct lumio_stream_ws_event {
    int type;              /* LUMIO_WS_* */
    uint64_t peer;         /* the connection, numbered from 1 */
    const char *peer_name; /* "HOST:PORT" */
    const void *data;      /* valid until the callback returns */
    size_t len;
    const char *why;
    uint64_t reserved[4]; /* zero */
} lumio_stream_ws_event;

/* 0 goes on; a negative code drops the peer (its connection is closed). */
typedef int (*lumio_stream_ws_fn)(void *arg, const lumio_stream_ws_event *ev);

/* Options: zero is the default in every field (docs/API.md). */
typedef struct lumio_stream_ws_listen_options {
    uint32_t max_peers;    /* writers at once (16) */
    uint32_t handshake_ms; /* to finish the WebSocket handshake (10000) */
    uint32_t stall_ms;     /* silence allowed inside a message (60000) */
    uint64_t memory;       /* all writers' unfinished messages together (512 MiB) */
    uint64_t reserved[4];  /* must be 0 */
} lumio_stream_ws_listen_options;

/* Listen now. -EINVAL for a spec that is not one, another negative code
 * (-EADDRINUSE, ...); the text in lumio_stream_reader_last_error(NULL, ...).
 * Any thread; the listener is then used by one thread at a time. */
LUMIO_API int lumio_stream_ws_listener_open(lumio_stream_ws_listener **out, const char *spec,
                                            const lumio_stream_ws_listen_options *o);
/* Serve for at most timeout_ms, returning sooner after events: fn runs on
 * this thread for each. 0, or a negative code. The listener's thread. */
LUMIO_API int lumio_stream_ws_listener_service(lumio_stream_ws_listener *l, int timeout_ms,
                                               lumio_stream_ws_fn fn, void *arg);
/* The text of the listener's last failure (NULL: this thread's last failed
 * open), copied into buf, which is returned; "" if none. Any thread. */
LUMIO_API char *lumio_stream_ws_listener_last_error(const lumio_stream_ws_listener *l, char *buf,
                                                    size_t len);
/* Close every connection and the listening socket; free. Accepts NULL. */
LUMIO_API void lumio_stream_ws_listener_close(lumio_stream_ws_listener *l);

/* Append one whole chunk taken from another stream (len bytes, exactly one
 * chunk): its checksum is verified and its records decoded (nothing is
 * appended otherwise: LUMIO_E_CHECKSUM or LUMIO_E_FORMAT), then it is
 * renumbered and written as the writer writes its own. Samples written
 * with the other calls must be flushed first, or they seal after it. The
 * writer's thread. */
LUMIO_API int lumio_stream_writer_write_chunk(lumio_stream_writer *w, const void *chunk,
                                              size_t len);

/* ---- reading ------------------------------------------------------------ */

typedef struct lumio_stream_reader_stats {
    uint64_t chunks, samples, records;
    uint64_t damaged_ranges, damaged_bytes; /* skipped in the middle */
    uint64_t first_damage_offset;           /* valid when damaged_ranges > 0 */
    uint64_t torn_tail_bytes;               /* discarded at the end */
    uint64_t valid_end;                     /* offset just past the last valid chunk */
    uint64_t last_seq;                      /* seq of the last valid chunk */
    uint64_t stored_bytes, raw_bytes;       /* payloads of valid chunks, as stored and decoded */
    uint64_t reserved[4];                   /* zero */
} lumio_stream_reader_stats;

/* Called for each damaged byte range when the reader is past it: where it
 * starts in the stream, how long it is, and whether it is the torn tail. */
typedef void (*lumio_damage_fn)(void *arg, uint64_t offset, uint64_t length, int torn_tail);

/* Following a file that is truncated or replaced (its size falls below what
 * was read, its inode changes, or its first chunk is no longer the one read),
 * the reader starts again at the beginning of the new content; the callback
 * is told where in the old content it was. Stats keep counting across
 * restarts. */
typedef void (*lumio_restart_fn)(void *arg, uint64_t old_offset);

/* Options: zero is the default in every field (docs/API.md). */
typedef struct lumio_stream_reader_options {
    /* Follow a growing file (like tail -f): at the end of the data, wait
     * for more instead of ending, until nothing new has come for
     * follow_idle_ms (0: wait forever). An unfinished chunk at the end is
     * awaited, not taken as damage, while following. */
    int follow;
    uint32_t follow_idle_ms;
    lumio_damage_fn on_damage;   /* NULL: damage is only counted */
    lumio_restart_fn on_restart; /* NULL: restarts are only followed */
    void *arg;                   /* passed to on_damage and on_restart */
    uint64_t reserved[4];        /* must be 0 */
} lumio_stream_reader_options;

/* Open a stream: a file path, "-" for standard input, tcp:HOST:PORT (or
 * tcp-connect:HOST:PORT) to read from a writer serving
 * tcp-listen:[HOST:]PORT, or tcp-listen:[HOST:]PORT / ws-listen:[HOST:]PORT
 * to listen (127.0.0.1 unless HOST is given) and read the writers that
 * connect (tcp: or ws:// sinks), one at a time: without `follow` the read
 * ends when the first is done; with it the next is awaited (until
 * follow_idle_ms), its stream going on in the same read. Options NULL: the
 * defaults. A failure's text is in lumio_stream_reader_last_error(NULL,
 * ...). Any thread; the reader is then used by one thread at a time. */
LUMIO_API int lumio_stream_reader_open(lumio_stream_reader **out, const char *source,
                                       const lumio_stream_reader_options *o);
/* Read from a descriptor the caller keeps open (close does not close it). */
LUMIO_API int lumio_stream_reader_open_fd(lumio_stream_reader **out, int fd,
                                          const lumio_stream_reader_options *o);
/* Read to the end: every sample and record of every valid chunk, in order.
 * Damaged bytes are skipped (the next valid chunk is found by scanning) and
 * counted. The pointers a callback gets live until it returns. A callback
 * returns 0 to go on; a negative code stops reading and is returned as it
 * is, a positive value stops it with -ECANCELED. Returns 0, LUMIO_E_FORMAT
 * when there is no stream signature, or -errno; the text (source, byte
 * offset) in lumio_stream_reader_last_error. The reader's thread; the
 * callbacks run on it. */
LUMIO_API int lumio_stream_reader_read(lumio_stream_reader *r, lumio_sample_fn on_sample,
                                       lumio_meta_fn on_meta, void *arg);
/* Stop the read in progress (or, if none, the next one) with -ECANCELED,
 * wherever it waits: following a file, or on a pipe or socket for a
 * writer. Safe from a signal handler and from any thread (a flag and a
 * write(2)); the reader stays usable, and a later read goes on where this
 * one stopped. 0, or -EINVAL for NULL. Must not race with
 * lumio_stream_reader_close. */
LUMIO_API int lumio_stream_reader_cancel(lumio_stream_reader *r);
/* What was read so far (chunks, samples, damage). The reader's thread. */
LUMIO_API void lumio_stream_reader_get_stats(const lumio_stream_reader *r,
                                             lumio_stream_reader_stats *s);
/* The text of the reader's last failure, copied into buf (LUMIO_ERROR_MAX
 * bytes suffice), which is returned; "" if none. With NULL: this thread's
 * last failed open. Any thread. */
LUMIO_API char *lumio_stream_reader_last_error(const lumio_stream_reader *r, char *buf, size_t len);
/* Free the reader (and close the source it opened). Accepts NULL. The
 * reader's thread. */
LUMIO_API void lumio_stream_reader_close(lumio_stream_reader *r);

#ifdef __cplusplus
}
#endif

#endif
