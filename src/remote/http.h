/* The parts of an HTTP response head the remote reader acts on, parsed line
 * by line as libcurl hands them over. Outside bytes: every field is checked,
 * nothing is trusted (fuzz/fuzz_http_head.c). */
#ifndef LUMIO_REMOTE_HTTP_H
#define LUMIO_REMOTE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_NONE UINT64_MAX

typedef struct http_head {
    int status;           /* 0 until a status line */
    uint64_t range_start; /* Content-Range "bytes A-B/T": A, B, T (HTTP_NONE if absent) */
    uint64_t range_end;
    uint64_t total; /* T, also from "bytes STAR/T" (416); HTTP_NONE if absent or "*" */
    char etag[128]; /* as sent, quotes included; "" if absent */
    char last_modified[64];
    int retry_after_ms;      /* Retry-After in seconds (under an hour), as ms; -1 if absent */
    uint64_t content_length; /* HTTP_NONE if absent */
    int content_length_bad;  /* present but not a number that fits (or two that differ) */
    char location[512];      /* Location of a redirect, truncated; "" if absent */
    char bucket_region[32];  /* S3's x-amz-bucket-region; "" if absent */
} http_head;

void lumio__http_head_reset(http_head *h);

/* Feed one header line (with or without its CRLF). A status line ("HTTP/...")
 * starts a new response (after a redirect or a 100 Continue) and resets the
 * fields; returns 1 for it, 0 for any other line. Malformed values are
 * ignored (the field stays absent). */
int lumio__http_head_line(http_head *h, const char *line, size_t len);

#endif
