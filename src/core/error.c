#include "core/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *lumio_version(void) {
    return LUMIO_VERSION_STRING;
}

const char *lumio_strerror(int code) {
    switch (code) {
    case 0:
        return "success";
    case LUMIO_E_RANGE:
        return "range lies past the end of the file";
    case LUMIO_E_TOOBIG:
        return "range is larger than the buffer pool's byte cap";
    case LUMIO_E_STALLED:
        return "engine stalled: every pool buffer is held by the caller";
    case LUMIO_E_BACKEND:
        return "requested I/O backend is not available";
    case LUMIO_E_COMPUTE:
        return "compute function failed";
    case LUMIO_E_FORMAT:
        return "malformed data";
    case LUMIO_E_CHECKSUM:
        return "checksum mismatch";
    case LUMIO_E_CODEC:
        return "codec failed or not supported";
    case LUMIO_E_HTTP:
        return "HTTP request failed";
    case LUMIO_E_UNSUPPORTED:
        return "not supported";
    case LUMIO_E_CHANGED:
        return "remote object changed while it was being read";
    default:
        break;
    }
    if (code < 0 && code > -4096) {
        /* strerror() may use a shared buffer; strerrordesc_np() is static text. */
        const char *s = strerrordesc_np(-code);
        return s ? s : "unknown system error";
    }
    return "unknown error";
}

char *lumio__fmt(char *buf, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return buf;
}

unsigned lumio__ncores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* ---- last-error texts (docs/API.md) ---------------------------------------- */

static atomic_uint_fast64_t err_ids = 1;

/* This thread's last failures: one with no handle (a failed open), and the
 * last one on a handle (which handle, by its id, and the text). Two slots,
 * so that neither kind of failure hides the other. */
static __thread char tls_open_text[LUMIO_ERROR_MAX];
static __thread uint64_t tls_open_sets; /* texts set with no handle, so far */
static __thread struct {
    uint64_t id; /* 0: none */
    char text[LUMIO_ERROR_MAX];
} tls_err;

void lumio__err_init(lumio__err *e) {
    pthread_mutex_init(&e->mu, NULL);
    e->id = atomic_fetch_add(&err_ids, 1);
    e->text[0] = '\0';
}

void lumio__err_fini(lumio__err *e) {
    if (tls_err.id == e->id) tls_err.id = 0;
    pthread_mutex_destroy(&e->mu);
}

void lumio__err_set(lumio__err *e, const char *fmt, ...) {
    char raw[LUMIO_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    if (!e) {
        lumio_redact(raw, tls_open_text, sizeof tls_open_text);
        tls_open_sets++;
        return;
    }
    lumio_redact(raw, tls_err.text, sizeof tls_err.text);
    tls_err.id = e->id;
    pthread_mutex_lock(&e->mu);
    memcpy(e->text, tls_err.text, sizeof e->text);
    pthread_mutex_unlock(&e->mu);
}

char *lumio__err_get(const lumio__err *e, char *buf, size_t len) {
    if (!buf || len == 0) return buf;
    if (!e) {
        snprintf(buf, len, "%s", tls_open_text);
    } else if (tls_err.id == e->id) {
        snprintf(buf, len, "%s", tls_err.text);
    } else {
        pthread_mutex_t *mu = (pthread_mutex_t *)&e->mu; /* the text, not the handle, changes */
        pthread_mutex_lock(mu);
        snprintf(buf, len, "%s", e->text);
        pthread_mutex_unlock(mu);
    }
    return buf;
}

uint64_t lumio__err_mark(void) {
    return tls_open_sets;
}

int lumio__err_ensure(uint64_t mark, int rc, const char *what) {
    if (rc < 0 && tls_open_sets == mark) lumio__err_set(NULL, "%s: %s", what, lumio_strerror(rc));
    return rc;
}

bool lumio__zero(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return false;
    return true;
}
