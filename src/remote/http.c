/* Response head parsing: the status, Content-Range, ETag, Last-Modified and
 * Retry-After, strictly (digits only, no signs, no overflow). */
#include "remote/http.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

void lumio__http_head_reset(http_head *h) {
    memset(h, 0, sizeof *h);
    h->range_start = h->range_end = h->total = HTTP_NONE;
    h->retry_after_ms = -1;
    h->content_length = HTTP_NONE;
}

/* Digits at *p (advanced past them) as a number; false if none or it
 * overflows. */
static bool number(const char **p, const char *end, uint64_t *out) {
    const char *s = *p;
    uint64_t v = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        if (v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + (uint64_t)(*s - '0');
        s++;
    }
    if (s == *p) return false;
    *p = s;
    *out = v;
    return true;
}

static void content_range(http_head *h, const char *p, const char *end) {
    /* A repeated header replaces the earlier one whole, valid or not. */
    h->range_start = h->range_end = h->total = HTTP_NONE;
    if (end - p < 6 || strncasecmp(p, "bytes ", 6)) return;
    p += 6;
    uint64_t a, b, t;
    if (p < end && *p == '*') { /* "bytes STAR/T": the range was not satisfiable */
        p++;
        if (p < end && *p == '/' && (p++, number(&p, end, &t)) && p == end) h->total = t;
        return;
    }
    if (!number(&p, end, &a) || p == end || *p++ != '-' || !number(&p, end, &b) || p == end ||
        *p++ != '/' || a > b)
        return;
    if (p < end && *p == '*' && p + 1 == end) {
        t = HTTP_NONE;
    } else if (!number(&p, end, &t) || p != end || b >= t) {
        return;
    }
    h->range_start = a;
    h->range_end = b;
    h->total = t;
}

static void copy_value(char *out, size_t cap, const char *p, const char *end) {
    size_t n = (size_t)(end - p);
    if (n >= cap) n = cap - 1; /* longer than any real value: truncated, then it differs */
    memcpy(out, p, n);
    out[n] = 0;
}

int lumio__http_head_line(http_head *h, const char *line, size_t len) {
    const char *end = line + len;
    while (end > line && (end[-1] == '\r' || end[-1] == '\n')) end--;
    if (end - line >= 5 && !strncmp(line, "HTTP/", 5)) {
        lumio__http_head_reset(h);
        const char *sp = memchr(line, ' ', (size_t)(end - line));
        uint64_t s;
        if (sp && (sp++, number(&sp, end, &s)) && s < 1000) h->status = (int)s;
        return 1;
    }
    const char *colon = memchr(line, ':', (size_t)(end - line));
    if (!colon) return 0;
    size_t nlen = (size_t)(colon - line);
    const char *v = colon + 1;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
    if (nlen == 13 && !strncasecmp(line, "content-range", 13)) {
        content_range(h, v, end);
    } else if (nlen == 4 && !strncasecmp(line, "etag", 4)) {
        copy_value(h->etag, sizeof h->etag, v, end);
    } else if (nlen == 13 && !strncasecmp(line, "last-modified", 13)) {
        copy_value(h->last_modified, sizeof h->last_modified, v, end);
    } else if (nlen == 14 && !strncasecmp(line, "content-length", 14)) {
        uint64_t n;
        const char *p = v;
        /* RFC 9110: a repeated length must repeat the same number. */
        if (!number(&p, end, &n) || p != end ||
            (h->content_length != HTTP_NONE && h->content_length != n))
            h->content_length_bad = 1;
        else
            h->content_length = n;
    } else if (nlen == 8 && !strncasecmp(line, "location", 8)) {
        copy_value(h->location, sizeof h->location, v, end);
    } else if (nlen == 19 && !strncasecmp(line, "x-amz-bucket-region", 19)) {
        copy_value(h->bucket_region, sizeof h->bucket_region, v, end);
    } else if (nlen == 11 && !strncasecmp(line, "retry-after", 11)) {
        uint64_t s;
        const char *p = v;
        if (number(&p, end, &s) && p == end && s < 3600) h->retry_after_ms = (int)s * 1000;
    }
    return 0;
}
