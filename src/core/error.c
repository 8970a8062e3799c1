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
    case LUMIO_E_CANCELED:
        return "operation canceled";
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

char *lumio_fmt(char *buf, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return buf;
}

unsigned lumio_ncores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}
