/* Secrets out of messages: every URL inside a text loses its password and
 * the values of the query parameters that sign a request (a presigned S3 or
 * GCS URL, an Azure SAS), so that an error line, a log or a progress line
 * can name the URL without handing out what grants access to it. */
#include <lumio/lumio.h>

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
    "key",
    "api_key",
    "apikey",
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "access_key",
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

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The first of ':', '/', '?', '#' from p (past an IPv6 "[...]"), before
 * white space or stop; NULL if none. */
static const char *first_sep(const char *p, const char *stop) {
    if (*p == '[') {
        const char *close = p;
        while (close < stop && *close && *close != ']' && !is_space(*close)) close++;
        if (close < stop && *close == ']') p = close + 1;
    }
    for (; p < stop && *p && !is_space(*p); p++)
        if (strchr(":/?#", *p)) return p;
    return NULL;
}

/* A ':' followed by something that is not a port number: a password cut
 * by white space (or quotes), since a host's port is digits only. */
static bool not_a_port(const char *colon) {
    const char *p = colon + 1;
    while (*p >= '0' && *p <= '9') p++;
    /* A message goes on after a URL: "http://h:8080: no such key". */
    if (p > colon + 1 && strchr(":,;.)]", *p) && (p[1] == 0 || is_space(p[1]))) return false;
    return !(*p == 0 || is_space(*p) || strchr("/?#\"'<>", *p));
}

/* Where the password of the URL whose authority starts at p begins and the
 * host (its '@') begins; false if it has no password. The password may hold
 * '/', '?', '#' or '@', so the userinfo ends at the last '@' before white
 * space; one with white space in it ends at the next '@' anywhere. */
static bool find_password(const char *p, const char **pw, const char **host) {
    const char *end = p, *at = NULL;
    for (; *end && !is_space(*end); end++)
        if (*end == '@') at = end;
    const char *colon = first_sep(p, at ? at : end);
    if (!colon || *colon != ':') return false;
    if (at) {
        *pw = colon + 1;
        *host = at;
        return true;
    }
    if (!not_a_port(colon)) return false;
    *pw = colon + 1;
    const char *next_at = strchr(*pw, '@');
    *host = next_at ? next_at : *pw + url_len(*pw);
    return true;
}

/* Host, path, query and fragment: the query's secrets go. */
static void put_rest(sink *s, const char *p, size_t len) {
    size_t auth = 0;
    while (auth < len && !strchr("/?#", p[auth])) auth++;
    const char *q = memchr(p + auth, '?', len - auth);
    const char *hash = memchr(p + auth, '#', len - auth);
    if (!q || (hash && hash < q)) {
        put(s, p, len);
        return;
    }
    put(s, p, (size_t)(q - p) + 1);
    put_query(s, q + 1, len - (size_t)(q + 1 - p));
}

/* The URL whose scheme starts at b; returns where it ends. */
static const char *put_url(sink *s, const char *b, const char *sep) {
    const char *start = sep + 3, *pw, *host = start;
    put(s, b, (size_t)(start - b));
    if (find_password(start, &pw, &host)) {
        put(s, start, (size_t)(pw - start));
        put(s, "***", 3);
    }
    size_t n = url_len(host);
    put_rest(s, host, n);
    return host + n;
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
        p = put_url(&s, b, sep);
    }
    out[s.n] = 0;
    return out;
}
