/*
 * lumio ring engine: many byte ranges of many files, read and written at once.
 *
 * Model (see docs/ENGINE.md):
 *   - The caller submits operations in groups. An operation reads ranges of one
 *     file (LUMIO_OP_GET) or writes buffers at offsets of one file
 *     (LUMIO_OP_PUT). Every range carries a caller's user_data back with its
 *     completion.
 *   - lumio_ring_wait() drives the I/O and returns completions, from any group
 *     or from one group. The last completion of a group carries
 *     LUMIO_CQE_GROUP_END.
 *   - Data read into the engine's buffer pool is handed out with the
 *     completion; the caller gives it back with lumio_buffer_release(). The
 *     pool is capped in buffers and bytes: when the cap is reached the engine
 *     stops reading ahead until buffers come back.
 *   - An optional compute function runs on a worker pool on each range as it
 *     lands; completions are delivered after it, under the same group and
 *     ordering rules.
 *
 * Example: read two ranges of a file and the whole of another.
 *
 *     lumio_ring *r;
 *     lumio_ring_options o = {.queue_depth = 128}; // zero fields: defaults
 *     if (lumio_ring_create(&r, &o) < 0) ...
 *     lumio_range ra[2] = {{.offset = 0, .length = 4096, .user_data = 1},
 *                          {.offset = -100, .length = 100, .user_data = 2}};
 *     lumio_range whole = {.offset = 0, .length = LUMIO_WHOLE, .user_data = 3};
 *     lumio_op ops[2] = {{.kind = LUMIO_OP_GET, .path = "a.bin", .ranges = ra, .nranges = 2},
 *                        {.kind = LUMIO_OP_GET, .path = "b.bin", .ranges = &whole, .nranges = 1}};
 *     uint64_t g;
 *     lumio_ring_submit(r, ops, 2, NULL, &g);
 *     lumio_completion c[8];
 *     int n;
 *     while ((n = lumio_ring_wait(r, g, c, 8, 1)) > 0)
 *         for (int i = 0; i < n; i++) {
 *             if (c[i].result < 0) report(c[i].path, c[i].offset, c[i].result);
 *             else use(c[i].data, c[i].length, c[i].user_data);
 *             lumio_buffer_release(c[i].buffer);
 *         }
 *     lumio_ring_close(r);
 *
 * The whole program: examples/ring_read_ranges.c (built with lumio).
 *
 * Threads: a ring is driven by one thread at a time (the "driving thread"
 * below: submit, wait, cancel, close), which may change over its life.
 * lumio_buffer_release(), lumio_ring_last_error() and
 * lumio_completion_describe() may be called from any thread.
 * Conventions shared by every pillar (names, errors, options): docs/API.md.
 */
#ifndef LUMIO_RING_H
#define LUMIO_RING_H

#include "lumio.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lumio_ring lumio_ring;
typedef struct lumio_buffer lumio_buffer;
typedef struct lumio_remote lumio_remote; /* remote.h */

/* A range length meaning "up to the end of the file". */
#define LUMIO_WHOLE UINT64_MAX

/* Wait on completions of any group. */
#define LUMIO_ANY_GROUP UINT64_MAX

/* range_index of a completion that stands for a whole operation (a file that
 * could not be opened, a put with no ranges, an empty group). A failed fsync
 * of LUMIO_OP_FSYNC is reported on each range of its put. */
#define LUMIO_NO_RANGE UINT32_MAX

typedef enum lumio_backend {
    LUMIO_BACKEND_AUTO = 0, /* io_uring when usable, else threads; env LUMIO_BACKEND overrides */
    LUMIO_BACKEND_URING = 1,
    LUMIO_BACKEND_THREADS = 2
} lumio_backend;

/* Range flags. */
#define LUMIO_RANGE_ALLOW_SHORT 0x1u /* reaching end of file is a short result, not an error */

typedef struct lumio_range {
    /* Offset in the file; a negative offset counts from the end of the file
     * (-100 is the last 100 bytes). A file without a trustworthy size (see
     * lumio_op) has no end to count from: -ESPIPE. */
    int64_t offset;
    /* Bytes to read or write; LUMIO_WHOLE reads to the end of the file. */
    uint64_t length;
    /* Returned with the completion. */
    uint64_t user_data;
    /* GET: optional destination (read straight into it; at least `length`
     * bytes; LUMIO_WHOLE needs the pool). PUT: the bytes to write (required).
     * The memory must stay valid until the range completes. */
    void *buf;
    uint32_t flags;       /* LUMIO_RANGE_* */
    uint32_t reserved[3]; /* must be 0 */
} lumio_range;

typedef enum lumio_op_kind { LUMIO_OP_GET = 0, LUMIO_OP_PUT = 1 } lumio_op_kind;

/* Operation flags. */
#define LUMIO_OP_CREATE   0x1u /* PUT: create the file if missing (mode from `mode`) */
#define LUMIO_OP_TRUNCATE 0x2u /* PUT: truncate the file first */
#define LUMIO_OP_FSYNC    0x4u /* PUT: fsync after the last write, before completing */
#define LUMIO_OP_EXCL     0x8u /* PUT: fail if the file exists */
#define LUMIO_OP_NOFOLLOW                                                                          \
    0x10u /* GET or PUT: a path whose last component is a                                          \
             symbolic link fails (-ELOOP) instead of being                                         \
             followed (a file walked earlier and replaced                                          \
             by a link since is not read through it) */

typedef struct lumio_op {
    lumio_op_kind kind;
    /* The file. When NULL, `fd` is used instead (the caller's open file; the
     * engine neither closes it nor changes its position). A GET may name a
     * remote object instead: http://, https:// or s3:// (see remote.h). */
    const char *path;
    int fd;
    uint32_t flags; /* LUMIO_OP_* */
    unsigned mode;  /* with LUMIO_OP_CREATE; 0 means 0644 */
    const lumio_range *ranges;
    size_t nranges;
    /* GET with nranges == 0: read the whole file in ranges of block_size
     * bytes (the last may be shorter); range i has user_data = user_data + i.
     * An empty file yields no completion for that operation.
     *
     * Files without a trustworthy size (pipes, FIFOs, sockets, terminals,
     * devices, files of /proc, /sys and other pseudo file systems, empty
     * regular files) are read until end of file. A whole-file GET (no
     * ranges, block_size 0; or one range {offset >= 0, LUMIO_WHOLE}) grows
     * one pool buffer and completes once, with LUMIO_E_TOOBIG past about a
     * third of max_bytes. A GET in blocks yields a series of pool buffers in
     * file order, each with block_size bytes or, from a file that cannot
     * seek, what one read returned; block i has range_index i, user_data +
     * i and its file offset; the group ends after the last. Other ranges of
     * such files are read where they are (past the end: LUMIO_E_RANGE), and
     * fail with -ESPIPE if they need the size or the file cannot seek (known
     * only when the op is stat'ed: read pipes whole or in blocks). */
    uint64_t block_size;
    /* Returned with a completion that stands for the whole operation (for
     * example the error of a file that does not exist). */
    uint64_t user_data;
    uint64_t reserved[4]; /* must be 0 (docs/API.md) */
} lumio_op;

/* Flags of a completion. */
#define LUMIO_CQE_GROUP_END 0x1u /* the last completion of its group */
#define LUMIO_CQE_SHORT     0x2u /* end of file came first (LUMIO_RANGE_ALLOW_SHORT) */

typedef struct lumio_completion {
    uint64_t group;
    uint64_t user_data;
    /* 0 or a negative code (see lumio_strerror); for a compute stage, what
     * the compute function returned. */
    int result;
    uint32_t flags;       /* LUMIO_CQE_* */
    uint32_t op_index;    /* the operation's position in its submit call */
    uint32_t range_index; /* the range's position in the op, or LUMIO_NO_RANGE */
    /* The resolved absolute offset in the file, and the bytes read or
     * written; for a failed range, the length asked for (LUMIO_WHOLE: to
     * the end of the file); 0 for a completion that stands for an op. */
    uint64_t offset;
    uint64_t length;
    /* GET: the data (in the pool buffer or the caller's buf); NULL on error. */
    uint8_t *data;
    /* The pool buffer holding `data`, to release with lumio_buffer_release();
     * NULL when the caller supplied the memory or on error. */
    lumio_buffer *buffer;
    /* The file's path as submitted (NULL for fd operations). Valid until the
     * next lumio_ring_wait() after this group's LUMIO_CQE_GROUP_END. */
    const char *path;
    /* Free for the compute function to fill (its output). Once delivered,
     * what it points to is the caller's to free; undelivered, the discard
     * function's. */
    void *out;
    uint64_t out_length;
    uint64_t reserved[2]; /* zero */
} lumio_completion;

/* A compute function: runs on each completion before it is delivered
 * (including failed ones, which it should pass through), on a worker
 * thread or on the thread in lumio_ring_wait (which lends a hand when the
 * workers are busy): it must be thread-safe. It may replace data, release
 * the buffer (set `buffer` to NULL), and fill out/out_length. Its return
 * value becomes the completion's result: 0, a negative code, or for a
 * positive value -ECANCELED (docs/API.md). */
typedef int (*lumio_compute_fn)(void *arg, lumio_completion *c);

/* Called by lumio_ring_close(), on its thread, for each completion that went
 * through the compute function but was never delivered, so that its `out`
 * can be freed. The engine releases the buffer itself afterwards if it is
 * still set. */
typedef void (*lumio_discard_fn)(void *arg, lumio_completion *c);

/* Options: zero is the default in every field (docs/API.md), so
 * `lumio_ring_options o = {0}` is a complete configuration. */
typedef struct lumio_ring_options {
    lumio_backend backend;
    unsigned queue_depth; /* I/O requests in flight (default 64; at most 4096) */
    unsigned max_buffers; /* pool cap on buffers handed out or in flight (default 256) */
    uint64_t max_bytes;   /* pool cap on bytes handed out or in flight (default 256 MiB) */
    /* Files open at once (default 128; at most 4096). An open that meets EMFILE/ENFILE
     * waits for another file of the ring to close, and lowers this cap. */
    unsigned max_open_files;
    unsigned io_threads;   /* threads backend: I/O threads (default 2 x cores, at least 4) */
    unsigned workers;      /* compute workers (default: the number of cores) */
    int ordered_groups;    /* group n finishes loading before group n+1 starts */
    int in_order;          /* deliver each group's completions in submission order */
    int direct;            /* O_DIRECT reads, aligned as statx reports; falls back if unsupported */
    int64_t coalesce_gap;  /* merge ranges of one GET whose gap is below this (default 4 KiB;
                              -1: never) */
    uint64_t coalesce_max; /* largest merged read (default 1 MiB) */
    uint64_t max_io_size;  /* split reads and writes larger than this (default 1 GiB) */
    int sqpoll;            /* io_uring: a kernel thread polls the submission queue */
    int fixed_files;       /* io_uring: open into the registered file table (default off) */
    /* GET ops whose path is an http://, https:// or s3:// location are read
     * through this remote client (remote.h), with its part size and merge
     * gap; NULL: the ring makes one with the defaults on the first URL. The
     * client must outlive the ring. */
    lumio_remote *remote;
    lumio_compute_fn compute; /* default compute function for every group (or NULL) */
    lumio_discard_fn discard; /* frees what compute made, for undelivered completions */
    void *compute_arg;
    uint64_t reserved[8]; /* must be 0 */
} lumio_ring_options;

/* Per-group options; pass NULL to submit for the ring's defaults. */
typedef struct lumio_group_options {
    int in_order;             /* 0: the ring's default; 1: in submission order; -1: as they land */
    lumio_compute_fn compute; /* NULL: the ring's */
    lumio_discard_fn discard;
    void *compute_arg;
    uint64_t reserved[4]; /* must be 0 */
} lumio_group_options;

/* Create a ring (options NULL: the defaults). Fails with LUMIO_E_BACKEND if
 * LUMIO_BACKEND_URING is asked for and io_uring is not usable; the text is
 * in lumio_ring_last_error(NULL, ...). Any thread; the ring may then be
 * driven from any one thread at a time. */
LUMIO_API int lumio_ring_create(lumio_ring **out, const lumio_ring_options *o);

/* Cancel what is in flight, wait for the kernel to let go of it, free
 * everything. Buffers the caller still holds stay valid until released.
 * A read from a pipe or terminal already in flight waits for data or end of
 * file (close the other end first). Accepts NULL. The driving thread. */
LUMIO_API void lumio_ring_close(lumio_ring *r);

/* The backend in use: LUMIO_BACKEND_URING or LUMIO_BACKEND_THREADS. Any
 * thread. */
LUMIO_API lumio_backend lumio_ring_backend(const lumio_ring *r);

/* Submit a group of operations. Everything the arrays point to (ops, paths,
 * ranges) is copied before it returns, except the ranges' buffers. Returns 0
 * and the group id, or a negative code if the request itself is malformed
 * (then nothing was submitted; lumio_ring_last_error() names the op, the
 * range and the field: "submit: op 2 range 0: a put needs a buffer").
 * Errors of files and ranges come back as completions. The driving
 * thread. */
LUMIO_API int lumio_ring_submit(lumio_ring *r, const lumio_op *ops, size_t nops,
                                const lumio_group_options *go, uint64_t *group_out);

/* Drive the I/O and collect completions: of group `group`, or of any group
 * with LUMIO_ANY_GROUP. Blocks until at least `min_complete` completions are
 * ready (fewer if the group, or the ring, runs out of work). Returns the
 * number stored in `out` (0 when there is nothing left to wait for), or a
 * negative code: LUMIO_E_STALLED when the engine cannot progress because the
 * caller holds every pool buffer. A failed completion's text (path, range)
 * is kept for lumio_ring_last_error(). The driving thread. */
LUMIO_API int lumio_ring_wait(lumio_ring *r, uint64_t group, lumio_completion *out, unsigned max,
                              unsigned min_complete);

/* Give up on a group (the driving thread). Its ops not yet opened end at once with -ECANCELED
 * (one completion per op, no file opened, whatever holds the open-file cap
 * or, with ordered groups, the groups before it), and its ranges not yet
 * issued end with -ECANCELED without I/O, needing no pool buffer. Ranges
 * already in flight finish as they would have, except that the group's
 * compute function is not called again (not even for jobs already queued
 * for the workers; one already running finishes): a range that needed it
 * ends with -ECANCELED. A PUT range that ends so may have been written in
 * part. The group must still be waited on to its LUMIO_CQE_GROUP_END; after
 * a LUMIO_E_STALLED that wait no longer needs the caller's buffers back.
 * Returns 0, or -ENOENT if the group has ended or never was. */
LUMIO_API int lumio_ring_cancel(lumio_ring *r, uint64_t group);

/* Groups submitted and not yet delivered to their LUMIO_CQE_GROUP_END. The
 * driving thread. */
LUMIO_API size_t lumio_ring_pending_groups(const lumio_ring *r);

/* The text of the ring's last failure (a submit, a failed completion
 * collected by lumio_ring_wait, a cancel of no group), copied into buf
 * (LUMIO_ERROR_MAX bytes suffice), which is returned; "" if none. With NULL:
 * this thread's last failed lumio_ring_create. Any thread (docs/API.md). */
LUMIO_API char *lumio_ring_last_error(const lumio_ring *r, char *buf, size_t len);

/* The remote client the ring reads URLs with (options.remote, or its own,
 * made here if no URL was read yet); NULL if it cannot be made. It lives as
 * long as the ring (or as the caller keeps its own). The driving thread. */
LUMIO_API struct lumio_remote *lumio_ring_remote(lumio_ring *r);

/* Describe a completion's error into buf: "PATH: range I (offset O, length
 * L): text", or "PATH: text" for the whole op. A URL's password and signing
 * parameters are redacted (lumio_redact). Returns the length of the whole
 * text, as snprintf does (len or more: it was truncated).
 * Any thread. */
LUMIO_API int lumio_completion_describe(const lumio_completion *c, char *buf, size_t len);

/* Give a pool buffer back. Any thread, including a compute function.
 * Accepts NULL. */
LUMIO_API void lumio_buffer_release(lumio_buffer *b);

typedef struct lumio_ring_stats {
    uint64_t bytes_read, bytes_written;
    uint64_t reads, writes;    /* I/O requests issued (after coalescing and splitting) */
    uint64_t ranges_coalesced; /* ranges served by a merged read */
    uint64_t short_retries;    /* short reads or writes resubmitted */
    uint64_t files_opened;
    uint64_t pool_waits;        /* times reading ahead stopped at the pool cap */
    uint64_t pool_buffers_peak; /* most buffers out at once */
    uint64_t pool_bytes_peak;   /* most bytes out at once */
    uint64_t reserved[8];       /* zero */
} lumio_ring_stats;

/* The counters so far. The driving thread. */
LUMIO_API void lumio_ring_get_stats(const lumio_ring *r, lumio_ring_stats *s);

#ifdef __cplusplus
}
#endif

#endif
