/*
 * lumio remote reader: objects in S3 or on any HTTP server, read at the speed
 * of the link (see docs/REMOTE.md).
 *
 *   - A client (lumio_remote) owns a libcurl multi handle driven by one
 *     thread of its own: `concurrency` requests in flight over a pool of
 *     `pool_size` kept-alive connections per host.
 *   - Locations are http:// and https:// URLs, and s3://BUCKET/KEY with the
 *     endpoint, region and credentials from the AWS_* environment variables
 *     (signed with AWS Signature V4; anonymous when no key is set).
 *   - The first response pins the object's size and ETag; every later request
 *     for it carries If-Match, so an overwrite in between is an error
 *     (LUMIO_E_CHANGED), never a mix of two versions.
 *   - Large reads are split into parts fetched at once, each written straight
 *     into place (the caller's memory, or a file at its offset).
 *   - Failures are retried with exponential backoff and jitter (connection
 *     errors, resets and stalls mid-body resume from the last byte received;
 *     429 and 5xx); 403, 404 and 412 are final. Every error names the URL and
 *     the byte range.
 *
 * Batches of ranges go through the ring engine (ring.h): an op whose path is
 * a URL is read by the ring's remote client, with the same groups, ordering,
 * buffers, compute stage and completions as a local file; its ranges are
 * coalesced when the gap between them is below `coalesce_gap` and handed back
 * as slices of the merged reads.
 *
 * Example: a prefetching file-like read of an object.
 *
 *     lumio_remote *rm;
 *     lumio_remote_create(&rm, NULL);
 *     lumio_rfile *f;
 *     char err[LUMIO_ERROR_MAX];
 *     if (lumio_rfile_open(&f, rm, "s3://bucket/data.bin") < 0)
 *         fprintf(stderr, "%s\n", lumio_rfile_last_error(NULL, err, sizeof err));
 *     char buf[65536];
 *     int64_t n;
 *     while ((n = lumio_rfile_read(f, buf, sizeof buf)) > 0) use(buf, n);
 *     lumio_rfile_close(f);
 *     lumio_remote_close(rm);
 *
 * The whole program: examples/remote_read.c (built with lumio).
 *
 * Threads: a client may be used from many threads at once (every function
 * taking a lumio_remote), and closed once nothing else uses it. An rfile is
 * used by one thread at a time. Conventions shared by every pillar (names,
 * errors, options): docs/API.md.
 */
#ifndef LUMIO_REMOTE_H
#define LUMIO_REMOTE_H

#include "lumio.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lumio_remote lumio_remote;
typedef struct lumio_rfile lumio_rfile;

/* S3 addressing: the bucket in the path or in the host name. */
typedef enum lumio_s3_style {
    LUMIO_S3_AUTO = 0,   /* path style with a custom endpoint, virtual host on AWS
                            (LUMIO_S3_ADDRESSING=path or virtual overrides it) */
    LUMIO_S3_PATH = 1,   /* always path style */
    LUMIO_S3_VIRTUAL = 2 /* always virtual host */
} lumio_s3_style;

/* Options: zero is the default in every field (docs/API.md), so
 * `lumio_remote_options o = {0}` is a complete configuration. */
typedef struct lumio_remote_options {
    unsigned concurrency;        /* requests in flight (default 16) */
    unsigned pool_size;          /* connections kept alive per host (default: concurrency) */
    uint64_t part_size;          /* large reads are split into parts of this size (8 MiB) */
    int64_t coalesce_gap;        /* ring ops: merge ranges closer than this (1 MiB; -1: never) */
    uint64_t coalesce_max;       /* ring ops: largest merged request (16 MiB) */
    uint64_t readahead_max;      /* rfile: cap of the read-ahead window (256 MiB) */
    uint32_t connect_timeout_ms; /* (default 10 s) */
    uint32_t stall_timeout_ms;   /* no byte for this long: abort and retry (default 30 s) */
    int retries;                 /* retries after the first attempt (default 8; -1: none) */
    uint32_t backoff_ms;         /* first retry delay, doubled each time (default 100 ms) */
    uint32_t backoff_max_ms;     /* cap of the retry delay (default 5 s) */
    int http2;                   /* 0: offer HTTP/2 over TLS and multiplex on it; -1: HTTP/1.1 */
    int insecure_tls;            /* 1: do NOT verify the server's certificate (default 0) */
    const char *ca_file;         /* CA certificates (PEM) to verify with; NULL: AWS_CA_BUNDLE, or
                                    the system's */
    /* S3. NULL takes AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3), AWS_REGION
     * (or AWS_DEFAULT_REGION, else us-east-1), AWS_ACCESS_KEY_ID,
     * AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN from the environment. */
    const char *s3_endpoint;
    const char *s3_region;
    const char *access_key;
    const char *secret_key;
    const char *session_token;
    lumio_s3_style s3_style;
    /* No progress (no byte of a response) for this long ends a request,
     * retries included, with -ETIMEDOUT (default 60 s; each attempt also
     * stops after stall_timeout_ms without a byte, and is retried while
     * this allows). */
    uint32_t timeout_ms;
    uint64_t reserved[8]; /* must be 0 */
} lumio_remote_options;

/* Create a client (options NULL: the defaults): its thread starts now,
 * connections are made on demand. The strings of the options are copied.
 * The text of a failure is in lumio_remote_last_error(NULL, ...). Any
 * thread. */
LUMIO_API int lumio_remote_create(lumio_remote **out, const lumio_remote_options *o);

/* Cancel what is in flight and free the client. Every rfile must be closed
 * and every ring using it closed first; no other thread may be using it.
 * Accepts NULL. */
LUMIO_API void lumio_remote_close(lumio_remote *rm);

/* Whether a path is a location of the remote reader (http://, https://,
 * s3://). Any thread. */
LUMIO_API int lumio_remote_is_url(const char *path);

/* The text of the client's last failure (the URL, the range, the server's
 * status), copied into buf (LUMIO_ERROR_MAX bytes suffice), which is
 * returned; "" if none. On the thread that made the failing call it is that
 * call's text even while other threads fail on the same client; elsewhere
 * the client's latest. With NULL: this thread's last failed
 * lumio_remote_create or lumio_rfile_open. Any thread. */
LUMIO_API char *lumio_remote_last_error(const lumio_remote *rm, char *buf, size_t len);

typedef struct lumio_remote_info {
    uint64_t size;
    char etag[128];         /* as the server sent it, quotes included ("" if none) */
    char last_modified[64]; /* "" if none */
    char url[2048];         /* the HTTP URL requested (an s3:// location resolved), as
                               messages show it: secrets redacted (lumio_redact) */
    uint64_t reserved[4];   /* zero */
} lumio_remote_info;

/* Size and identity of an object (a HEAD request; where HEAD is refused, as
 * for a URL presigned for GET only, a ranged GET of the first byte). 0, or -ENOENT, -EACCES,
 * LUMIO_E_HTTP, ... Any thread. */
LUMIO_API int lumio_remote_stat(lumio_remote *rm, const char *location, lumio_remote_info *info);

/* Read `length` bytes at `offset` into buf, in parts fetched at once.
 * Returns the bytes read (fewer only where the object ends), or a negative
 * code. Any thread. */
LUMIO_API int64_t lumio_remote_read(lumio_remote *rm, const char *location, uint64_t offset,
                                    uint64_t length, void *buf);

/* Progress of long work: bytes (or units) done so far of total (0: not
 * known). Called on the thread that made the call, at most about ten times
 * a second. */
typedef void (*lumio_progress_fn)(void *arg, uint64_t done, uint64_t total);

/* Download a whole object into the open file fd: the file is sized first,
 * then every part writes its bytes at their offset as they arrive. Returns
 * the object's size or a negative code. Any thread. */
LUMIO_API int64_t lumio_remote_download(lumio_remote *rm, const char *location, int fd,
                                        lumio_progress_fn progress, void *arg);

typedef struct lumio_remote_stats {
    uint64_t requests;      /* HTTP requests sent (parts, ranges, retries, HEAD) */
    uint64_t bytes_fetched; /* body bytes received */
    uint64_t retries;       /* requests sent again after a failure */
    uint64_t connections;   /* connections opened */
    uint64_t bytes_read;    /* rfile: bytes handed to the caller */
    uint64_t whole_gets;    /* reads made as one streaming GET because the server
                               ignored Range (or gave no size) */
    uint64_t reserved[4];   /* zero */
} lumio_remote_stats;

/* The client's counters so far (every thread's requests). Any thread. */
LUMIO_API void lumio_remote_get_stats(const lumio_remote *rm, lumio_remote_stats *s);

/* Write a whole object (an HTTP PUT; S3 signed with the body's SHA-256):
 * it is replaced at once, never seen half written. Up to 5 GiB (more needs a
 * multipart upload: -EFBIG). Retried like reads (from the start of the
 * body). 0 or a negative code: -EACCES (401/403), -ENOENT (404: no such
 * bucket or directory), LUMIO_E_HTTP (others, such as 405 from a server
 * that does not take writes); the text in lumio_remote_last_error(). Any
 * thread. */
LUMIO_API int lumio_remote_put(lumio_remote *rm, const char *location, const void *data,
                               uint64_t len);

/* ---- file-like reader with adaptive read-ahead ---------------------------
 *
 * Sequential reads (each starting where the previous ended; from the third
 * one on) open a read-ahead window that grows with the streak up to
 * readahead_max and is kept filled in the background with parts fetched at
 * once. A small forward skip inside the window keeps the streak; any other
 * seek cancels what is in flight and closes the window, so random reads fetch
 * only what they ask for. */

/* Open an object (a HEAD request: its size and ETag; where HEAD is refused
 * or gives no size, a GET of the first byte). A server that ignores Range,
 * or gives no size (chunked or connection-close bodies), is read as one
 * stream in order: a backward seek starts it again from the beginning, a
 * forward one skips the bytes in between; lumio_rfile_size() is then
 * UINT64_MAX until the end has been read. The client must outlive the
 * rfile. A failure's text is in lumio_rfile_last_error(NULL, ...) (and the
 * client's lumio_remote_last_error). Any
 * thread; the rfile is then used by one thread at a time. */
LUMIO_API int lumio_rfile_open(lumio_rfile **out, lumio_remote *rm, const char *location);

/* Read up to n bytes at the position and advance it. Returns the bytes read
 * (0 at the end of the object) or a negative code. After an error the next
 * read starts afresh. The rfile's thread (one at a time; the read-ahead runs
 * on the client's thread). */
LUMIO_API int64_t lumio_rfile_read(lumio_rfile *f, void *buf, size_t n);

/* Read up to n bytes at offset without moving the position (it feeds the
 * same access-pattern detection). The rfile's thread. */
LUMIO_API int64_t lumio_rfile_pread(lumio_rfile *f, void *buf, size_t n, uint64_t offset);

/* Move the position (SEEK_SET, SEEK_CUR, SEEK_END); returns it, or -EINVAL.
 * The rfile's thread. */
LUMIO_API int64_t lumio_rfile_seek(lumio_rfile *f, int64_t offset, int whence);

/* The object's size (UINT64_MAX while not known, see lumio_rfile_open).
 * The rfile's thread. */
LUMIO_API uint64_t lumio_rfile_size(const lumio_rfile *f);

/* Requests and bytes of this file alone. The rfile's thread. */
LUMIO_API void lumio_rfile_get_stats(const lumio_rfile *f, lumio_remote_stats *s);

/* The text of the rfile's last failure (URL and range), copied into buf
 * (LUMIO_ERROR_MAX bytes suffice), which is returned; "" if none. With
 * NULL: this thread's last failed open. Any thread. */
LUMIO_API char *lumio_rfile_last_error(const lumio_rfile *f, char *buf, size_t len);

/* Cancel the read-ahead and free. Accepts NULL. The rfile's thread. */
LUMIO_API void lumio_rfile_close(lumio_rfile *f);

#ifdef __cplusplus
}
#endif

#endif
