/* Secrets out of messages: every URL inside a text loses its password and
 * the values of the query parameters that sign a request (a presigned S3 or
 * GCS URL, an Azure SAS), so that an error line, a log or a progress line
 * can name the URL without handing out what grants access to it. */
#include <lumio/remote.h>

#include <stdbool.h>
#include <string.h>
#include <strings.h>

static const char *const secret_params[] = {
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "X-Goog-Signature",
    "X-Goog-Credential",
    "Signature",
    "AWSAccessKeyId",
    "sig",
    "token",
    "access_token",
};

static bool secret_param(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof secret_params / sizeof *secret_params; i++)
        if (strlen(secret_params[i]) == len && !strncasecmp(name, secret_params[i], len))
            return true;
    return false;
}

typedef struct sink {
    char *out;
    size_t cap, n;
} sink;

static void put(sink *s, const char *p, size_t len) {
    for (size_t i = 0; i < len && s->n + 1 < s->cap; i++) s->out[s->n++] = p[i];
}

/* Where a URL that starts at p ends: at white space, a quote or the end. */
static size_t url_len(const char *p) {
    size_t n = 0;
    while (p[n] && !strchr(" \t\r\n\"'<>", p[n])) n++;
    return n;
}

/* The authority: "user:password@" keeps the user. */
static void put_authority(sink *s, const char *p, size_t len) {
    const char *at = NULL;
    for (size_t i = 0; i < len; i++)
        if (p[i] == '@') at = p + i; /* the last '@': a password may hold one */
    const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
    if (!colon) {
        put(s, p, len);
        return;
    }
    put(s, p, (size_t)(colon - p) + 1);
    put(s, "***", 3);
    put(s, at, len - (size_t)(at - p));
}

static void put_query(sink *s, const char *p, size_t len) {
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && p[j] != '&' && p[j] != '#') j++;
        const char *eq = memchr(p + i, '=', j - i);
        if (eq && secret_param(p + i, (size_t)(eq - (p + i)))) {
            put(s, p + i, (size_t)(eq - (p + i)) + 1);
            put(s, "***", 3);
        } else {
            put(s, p + i, j - i);
        }
        if (j < len && p[j] == '#') { /* the fragment goes as it is */
            put(s, p + j, len - j);
            return;
        }
        if (j < len) put(s, "&", 1);
        i = j + 1;
    }
}

static void put_url(sink *s, const char *p, size_t len) {
    const char *sep = strstr(p, "://");
    size_t start = (size_t)(sep - p) + 3;
    put(s, p, start);
    size_t auth = start;
    while (auth < len && !strchr("/?#", p[auth])) auth++;
    put_authority(s, p + start, auth - start);
    const char *q = memchr(p + auth, '?', len - auth);
    const char *hash = memchr(p + auth, '#', len - auth);
    if (!q || (hash && hash < q)) {
        put(s, p + auth, len - auth);
        return;
    }
    put(s, p + auth, (size_t)(q - (p + auth)) + 1);
    put_query(s, q + 1, len - (size_t)(q + 1 - p));
}

char *lumio_redact(const char *text, char *out, size_t outlen) {
    if (!outlen) return out;
    sink s = {out, outlen, 0};
    const char *p = text ? text : "";
    while (*p) {
        const char *sep = strstr(p, "://");
        if (!sep) {
            put(&s, p, strlen(p));
            break;
        }
        /* The scheme: the letters before "://". */
        const char *b = sep;
        while (b > p && (((b[-1] | 32) >= 'a' && (b[-1] | 32) <= 'z') ||
                         (b[-1] >= '0' && b[-1] <= '9') || strchr("+-.", b[-1])))
            b--;
        put(&s, p, (size_t)(b - p));
        size_t n = url_len(b);
        put_url(&s, b, n);
        p = b + n;
    }
    out[s.n] = 0;
    return out;
}
