/* Flush policies as text, the way the proposal writes them and every lumio
 * front end takes them (CLI --flush, Python's Writer): "samples:5000",
 * "bytes:4M", "interval:180s" (ms, s, m, h), joined by commas; and the
 * older "samples=N,seconds=S,bytes=B,ms=N". Only the triggers named seal. */
#include "core/core.h"

#include <lumio/stream.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A decimal number with an optional unit from units (names and factors);
 * 0, or -1 when malformed or out of range. */
static int number(const char *s, size_t n, const char *const *names, const uint64_t *factors,
                  uint64_t max, uint64_t *out) {
    uint64_t v = 0;
    size_t i = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
            return -1;
    if (i == 0) return -1;
    uint64_t f = 1;
    if (i < n) {
        size_t k = 0;
        while (names[k] && (strlen(names[k]) != n - i || strncmp(names[k], s + i, n - i))) k++;
        if (!names[k]) return -1;
        f = factors[k];
    }
    if (__builtin_mul_overflow(v, f, &v) || v > max || v == 0) return -1;
    *out = v;
    return 0;
}

static const char *const size_units[] = {"k", "K", "KiB", "m", "M", "MiB", "g", "G", "GiB", NULL};
static const uint64_t size_factors[] = {1u << 10, 1u << 10, 1u << 10, 1u << 20, 1u << 20,
                                        1u << 20, 1u << 30, 1u << 30, 1u << 30};
static const char *const time_units[] = {"ms", "s", "m", "h", NULL};
static const uint64_t time_factors[] = {1, 1000, 60000, 3600000};
static const char *const none[] = {NULL};

int lumio_stream_flush_policy(const char *spec, lumio_stream_writer_options *o) {
    if (!spec || !o) return -EINVAL;
    uint64_t samples = 0, bytes = 0, ms = 0;
    const char *p = spec, *bad = NULL;
    while (!bad) {
        size_t n = strcspn(p, ",");
        size_t k = strcspn(p, ":=");
        if (k >= n) {
            bad = p;
            break;
        }
        const char *v = p + k + 1;
        size_t vn = n - k - 1;
        int rc = -1;
        if (k == 7 && !strncmp(p, "samples", 7))
            rc = number(v, vn, none, NULL, INT64_MAX, &samples);
        else if (k == 5 && !strncmp(p, "bytes", 5))
            rc = number(v, vn, size_units, size_factors, INT64_MAX, &bytes);
        else if (k == 8 && !strncmp(p, "interval", 8))
            rc = number(v, vn, time_units, time_factors, UINT32_MAX, &ms);
        else if (k == 7 && !strncmp(p, "seconds", 7) && p[k] == '=') {
            rc = number(v, vn, none, NULL, UINT32_MAX / 1000, &ms);
            ms *= 1000;
        } else if (k == 2 && !strncmp(p, "ms", 2) && p[k] == '=')
            rc = number(v, vn, none, NULL, UINT32_MAX, &ms);
        if (rc < 0) bad = p;
        if (!p[n]) break;
        p += n + 1;
    }
    if (bad) {
        lumio__err_set(NULL,
                       "flush policy '%s': '%.*s' is not samples:N, bytes:SIZE or "
                       "interval:DURATION (ms, s, m, h), joined by commas",
                       spec, (int)strcspn(bad, ","), bad);
        return -EINVAL;
    }
    o->flush_samples = samples ? (int64_t)samples : -1;
    o->flush_bytes = bytes ? (int64_t)bytes : -1;
    o->flush_ms = (uint32_t)ms;
    return 0;
}
