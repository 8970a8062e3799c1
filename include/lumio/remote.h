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
 *     if (lumio_rfile_open(rm, "s3://bucket/data.bin", &f) < 0)
 *         fprintf(stderr, "%s\n", lumio_remote_last_error(rm));
 *     char buf[65536];
 *     int64_t n;
 *     while ((n = lumio_rfile_read(f, buf, sizeof buf)) > 0) use(buf, n);
 *     lumio_rfile_close(f);
 *     lumio_remote_destroy(rm);
 *
 * Threads: a client may be used from many threads at once. An rfile is used
 * by one thread at a time.
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

typedef struct lumio_remote_options {
    unsigned concurrency;        /* requests in flight (default 16) */
    unsigned pool_size;          /* connections kept alive per host (default 16) */
    uint64_t part_size;          /* large reads are split into parts of this size (8 MiB) */
    uint64_t coalesce_gap;       /* ring ops: merge ranges closer than this (1 MiB; 0: never) */
    uint64_t coalesce_max;       /* ring ops: largest merged request (16 MiB) */
    uint64_t readahead_max;      /* rfile: cap of the read-ahead window (256 MiB) */
    unsigned connect_timeout_ms; /* (default 10 s) */
    unsigned stall_timeout_ms;   /* no byte for this long: abort and retry (default 30 s) */
    unsigned retries;            /* retries after the first attempt (default 8) */
    unsigned backoff_ms;         /* first retry delay, doubled each time (default 100 ms) */
    unsigned backoff_max_ms;     /* cap of the retry delay (default 5 s) */
    int http2;                   /* offer HTTP/2 over TLS and multiplex on it (default 1) */
    int verify_tls;              /* verify the server's certificate (default 1) */
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
    /* -1: path-style URLs with a custom endpoint, virtual-host style on AWS
     * (the default; LUMIO_S3_ADDRESSING=path or virtual overrides it); 0:
     * always virtual host; 1: always path style. */
    int s3_path_style;
    /* No progress (no byte of a response) for this long ends a request,
     * retries included, with -ETIMEDOUT (default 60 s; each attempt also
     * stops after stall_timeout_ms without a byte, and is retried while
     * this allows). */
    unsigned timeout_ms;
} lumio_remote_options;

LUMIO_API void lumio_remote_options_default(lumio_remote_options *o);

/* Create a client (options NULL: the defaults). Fill options with
 * lumio_remote_options_default() and change what you need: a zeroed struct
 * means, among others, no TLS verification and no retries. */
LUMIO_API int lumio_remote_create(lumio_remote **out, const lumio_remote_options *o);

/* Cancel what is in flight and free the client. Every rfile must be closed
 * and every ring using it destroyed first. Accepts NULL. */
LUMIO_API void lumio_remote_destroy(lumio_remote *rm);

/* Whether a path is a location of the remote reader (http://, https://,
 * s3://). */
LUMIO_API int lumio_is_remote(const char *path);

/* The text of the last error of a blocking call made by this thread on the
 * client (with the URL and the range). */
LUMIO_API const char *lumio_remote_last_error(const lumio_remote *rm);

typedef struct lumio_remote_info {
    uint64_t size;
    char etag[128];         /* as the server sent it, quotes included ("" if none) */
    char last_modified[64]; /* "" if none */
    char url[2048];         /* the HTTP URL requested (an s3:// location resolved), as
                               messages show it: secrets redacted (lumio_redact) */
} lumio_remote_info;

/* Copy `text` into out (outlen bytes, NUL-terminated, truncated if need
 * be) with the secrets of every URL in it replaced by "***": the password
 * of user:password@, and the values of the query parameters that sign or
 * authorize a request (X-Amz-Signature, X-Amz-Credential,
 * X-Amz-Security-Token, X-Goog-Signature, X-Goog-Credential, Signature,
 * AWSAccessKeyId, sig, token, access_token). Every message lumio makes
 * that names a URL goes through it. Returns out. */
LUMIO_API char *lumio_redact(const char *text, char *out, size_t outlen);

/* Size and identity of an object (a HEAD request; where HEAD is refused, as
 * for a URL presigned for GET only, a ranged GET of the first byte). 0, or -ENOENT, -EACCES,
 * LUMIO_E_HTTP, ... */
LUMIO_API int lumio_remote_stat(lumio_remote *rm, const char *location, lumio_remote_info *info);

/* Read `length` bytes at `offset` into buf, in parts fetched at once.
 * Returns the bytes read (fewer only where the object ends), or a negative
 * code. */
LUMIO_API int64_t lumio_remote_read(lumio_remote *rm, const char *location, uint64_t offset,
                                    uint64_t length, void *buf);

/* Progress of a download: bytes landed so far of total. Called from the
 * calling thread, at most about ten times a second. */
typedef void (*lumio_progress_fn)(void *arg, uint64_t done, uint64_t total);

/* Download a whole object into the open file fd: the file is sized first,
 * then every part writes its bytes at their offset as they arrive. Returns
 * the object's size or a negative code. */
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
} lumio_remote_stats;

LUMIO_API void lumio_remote_get_stats(const lumio_remote *rm, lumio_remote_stats *s);

/* Write a whole object (an HTTP PUT; S3 signed with the body's SHA-256):
 * it is replaced at once, never seen half written. Up to 5 GiB (more needs a
 * multipart upload: -EFBIG). Retried like reads (from the start of the
 * body). 0 or a negative code: -EACCES (401/403), -ENOENT (404: no such
 * bucket or directory), LUMIO_E_HTTP (others, such as 405 from a server
 * that does not take writes); the text in lumio_remote_last_error(). */
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
 * UINT64_MAX until the end has been read. */
LUMIO_API int lumio_rfile_open(lumio_remote *rm, const char *location, lumio_rfile **out);

/* Read up to n bytes at the position and advance it. Returns the bytes read
 * (0 at the end of the object) or a negative code. After an error the next
 * read starts afresh. */
LUMIO_API int64_t lumio_rfile_read(lumio_rfile *f, void *buf, size_t n);

/* Read up to n bytes at offset without moving the position (it feeds the
 * same access-pattern detection). */
LUMIO_API int64_t lumio_rfile_pread(lumio_rfile *f, void *buf, size_t n, uint64_t offset);

/* Move the position (SEEK_SET, SEEK_CUR, SEEK_END); returns it, or -EINVAL. */
LUMIO_API int64_t lumio_rfile_seek(lumio_rfile *f, int64_t offset, int whence);

LUMIO_API uint64_t lumio_rfile_size(const lumio_rfile *f);

/* Requests and bytes of this file alone. */
LUMIO_API void lumio_rfile_get_stats(const lumio_rfile *f, lumio_remote_stats *s);

/* The text of the rfile's last error (URL and range). */
LUMIO_API const char *lumio_rfile_last_error(const lumio_rfile *f);

/* Cancel the read-ahead and free. Accepts NULL. */
LUMIO_API void lumio_rfile_close(lumio_rfile *f);

#ifdef __cplusplus
}
#endif

#endif
