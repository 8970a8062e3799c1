/* AWS Signature Version 4 (header-based, "AWS4-HMAC-SHA256") for requests to
 * S3 and S3-compatible stores. The caller builds the request (method, path as
 * sent on the wire, raw query, the headers to sign, the payload hash) and gets
 * back the value of the Authorization header. Pure computation: no I/O, no
 * clock reads, no global state; SHA-256 and HMAC come from OpenSSL's libcrypto.
 * Not installed. */
#ifndef LUMIO_REMOTE_SIGV4_H
#define LUMIO_REMOTE_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

typedef struct sigv4_header {
    const char *name;
    const char *value;
} sigv4_header;

typedef struct sigv4_request {
    const char *method; /* "GET" */
    /* The path exactly as sent on the wire, already URI-encoded, e.g.
     * "/bucket/my%20key". S3 style: signed as is, neither normalised nor encoded
     * again. NULL or "" stands for "/". */
    const char *path;
    /* Raw query string without '?', may be NULL or "". Canonicalised: split on
     * '&', each name and value percent-decoded and encoded again per the AWS
     * rules, sorted by name then value. A '+' is a literal plus (sent as %2B),
     * not a space; a malformed %-escape is -EINVAL. */
    const char *query;
    /* Every header to sign, including host (required) and x-amz-date (which
     * must equal amz_date when present). Names in any case (HTTP tokens);
     * values trimmed and inner runs of spaces and tabs collapsed to one space,
     * other control characters (CR, LF) are -EINVAL; repeated names joined
     * with ',' in the order given. */
    const sigv4_header *headers;
    size_t nheaders;
    const char *payload_hash; /* lowercase hex SHA-256 of the body, or "UNSIGNED-PAYLOAD" */
    const char *amz_date;     /* "20150830T123600Z" */
    const char *region;       /* "us-east-1" */
    const char *service;      /* "s3" */
    const char *access_key, *secret_key;
} sigv4_request;

/* Writes the Authorization header value ("AWS4-HMAC-SHA256 Credential=...,
 * SignedHeaders=..., Signature=...") into out. Returns 0, -EINVAL (a missing or
 * malformed field), -ENOSPC (out too small; out is then ""), -ENOMEM, or -EIO
 * if libcrypto fails. */
int lumio__sigv4_authorization(const sigv4_request *rq, char *out, size_t out_cap);

/* Same, also returning the malloc'd canonical request and string to sign
 * (caller frees); either pointer may be NULL. On error both are set to NULL. */
int lumio__sigv4_authorization_debug(const sigv4_request *rq, char *out, size_t out_cap,
                                     char **canonical, char **string_to_sign);

/* Lowercase hex SHA-256 of data (65 bytes incl. NUL); "" if libcrypto fails. */
void lumio__sigv4_sha256_hex(const void *data, size_t len, char out[65]);

/* URI-encodes per the AWS rules: the unreserved A-Z a-z 0-9 - . _ ~ are kept,
 * every other byte becomes %XX (uppercase hex); keep_slash keeps '/' too (for
 * object keys). Returns the bytes written excluding the NUL, -ENOSPC if out
 * (cap bytes) cannot hold them and the NUL, or -EINVAL. */
int lumio__sigv4_uri_encode(const char *in, size_t len, bool keep_slash, char *out, size_t cap);

/* Formats t (UTC) as an amz_date "YYYYMMDDTHHMMSSZ" (17 bytes incl. NUL); ""
 * if the year does not fit in four digits. */
void lumio__sigv4_amz_date(time_t t, char out[17]);

#endif
