/*
 * lumio: move chunked data at the speed of the hardware.
 *
 * This header holds what every pillar shares: the version, the error codes
 * and the export macro. Each pillar has its own header (ring.h, ...).
 *
 * Errors: every public function that can fail returns an int that is 0 (or a
 * non-negative count) on success and a negative code on failure. A code
 * between -1 and -4095 is a negated errno value (-ENOENT, -EIO, ...); codes
 * at or below LUMIO_E_BASE are lumio's own and are never renumbered.
 * lumio_strerror() explains any of them. The library never prints, exits or
 * aborts on bad input.
 */
#ifndef LUMIO_LUMIO_H
#define LUMIO_LUMIO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(LUMIO_BUILDING) && defined(__GNUC__)
#define LUMIO_API __attribute__((visibility("default")))
#else
#define LUMIO_API
#endif

#define LUMIO_VERSION_MAJOR 0
#define LUMIO_VERSION_MINOR 1
#define LUMIO_VERSION_PATCH 0
#define LUMIO_VERSION_NUMBER                                                                       \
    (LUMIO_VERSION_MAJOR * 10000 + LUMIO_VERSION_MINOR * 100 + LUMIO_VERSION_PATCH)
#define LUMIO_VERSION_STRING "0.1.0"

/* lumio's own error codes. Values are fixed forever; new ones are appended. */
enum {
    LUMIO_E_BASE = -5000,
    LUMIO_E_RANGE = -5001,   /* a byte range lies (partly) past the end of the file */
    LUMIO_E_TOOBIG = -5002,  /* a range is larger than the buffer pool's byte cap */
    LUMIO_E_STALLED = -5003, /* nothing can progress: every pool buffer is held by the caller */
    /* -5004 is retired (it was a second code for -ECANCELED) */
    LUMIO_E_BACKEND = -5005,     /* the requested backend is not available here */
    LUMIO_E_COMPUTE = -5006,     /* the caller's compute function failed without a code */
    LUMIO_E_FORMAT = -5007,      /* malformed input data */
    LUMIO_E_CHECKSUM = -5008,    /* a checksum did not match */
    LUMIO_E_CODEC = -5009,       /* a codec failed or is not supported */
    LUMIO_E_HTTP = -5010,        /* an HTTP request failed */
    LUMIO_E_UNSUPPORTED = -5011, /* a valid request lumio does not support */
    LUMIO_E_CHANGED = -5012,     /* a remote object changed while it was being read */
    LUMIO_E_LAST = -5012
};

/* Enough bytes for any last-error text (docs/API.md): pass a buffer of this
 * size to the lumio_*_last_error functions. */
#define LUMIO_ERROR_MAX 1024

/* The library's version as "MAJOR.MINOR.PATCH". Any thread. */
LUMIO_API const char *lumio_version(void);

/* A static, human-readable text for any code returned by lumio (never NULL;
 * it lives as long as the program). Any thread. */
LUMIO_API const char *lumio_strerror(int code);

/* Copy `text` into out (outlen bytes, NUL-terminated, truncated if need
 * be) with the secrets of every URL in it replaced by "***": the password
 * of user:password@, and the values of the query parameters that sign or
 * authorize a request (X-Amz-Signature, X-Amz-Credential,
 * X-Amz-Security-Token, X-Goog-Signature, X-Goog-Credential, Signature,
 * AWSAccessKeyId, sig, token, access_token). Every text lumio makes that
 * names a URL goes through it. Returns out. Any thread. */
LUMIO_API char *lumio_redact(const char *text, char *out, size_t outlen);

#ifdef __cplusplus
}
#endif

#endif
