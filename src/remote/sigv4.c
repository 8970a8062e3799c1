/* AWS Signature Version 4: canonical request -> string to sign -> HMAC chain.
 * See sigv4.h. Everything is built in growable buffers; the derived keys and
 * the "AWS4"+secret key are wiped before they are released. */
#include "remote/sigv4.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SHA256_LEN      32

static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

/* ---- a growable string with a sticky error ------------------------------ */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int err; /* the first failure, so a caller checks once after many appends */
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
    if (b->err) return;
    if (n > SIZE_MAX / 2 - b->len) {
        b->err = -ENOMEM;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->err = -ENOMEM;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) {
    sb_putn(b, s, strlen(s));
}
static void sb_putc(sbuf *b, char c) {
    sb_putn(b, &c, 1);
}

/* The string, never NULL (an untouched buffer yields ""), or NULL on error. */
static char *sb_take(sbuf *b) {
    if (!b->err && !b->p) sb_putn(b, "", 0);
    if (b->err) {
        free(b->p);
        b->p = NULL;
        return NULL;
    }
    char *p = b->p;
    *b = (sbuf){0};
    return p;
}

/* ---- encoding ----------------------------------------------------------- */

static bool is_unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* RFC 7230 tchar: what a header name or a method may be made of. */
static bool is_tchar(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void sb_uri_encode(sbuf *b, const char *in, size_t len, bool keep_slash) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            sb_putc(b, (char)c);
        } else {
            char e[3] = {'%', hex_upper[c >> 4], hex_upper[c & 15]};
            sb_putn(b, e, 3);
        }
    }
}

int lumio__sigv4_uri_encode(const char *in, size_t len, bool keep_slash, char *out, size_t cap) {
    if ((!in && len) || (!out && cap)) return -EINVAL;
    if (cap == 0) return -ENOSPC;
    /* The count is returned as an int: never write more than INT_MAX bytes. */
    if (cap > (size_t)INT_MAX) cap = (size_t)INT_MAX;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        bool keep = is_unreserved(c) || (keep_slash && c == '/');
        size_t w = keep ? 1 : 3;
        if (w > cap - 1 - n) {
            out[0] = '\0';
            return -ENOSPC;
        }
        if (keep) {
            out[n] = (char)c;
        } else {
            out[n] = '%';
            out[n + 1] = hex_upper[c >> 4];
            out[n + 2] = hex_upper[c & 15];
        }
        n += w;
    }
    out[n] = '\0';
    return (int)n;
}

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One query name or value, percent-decoded then encoded again, so that "a%20b"
 * and "a b" (and lowercase escapes) sign the same. A '+' stays a plus. */
static int canonical_query_part(const char *s, size_t len, char **out) {
    sbuf dec = {0}, enc = {0};
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            sb_putc(&dec, s[i]);
            continue;
        }
        int hi = i + 2 < len ? hex_value((unsigned char)s[i + 1]) : -1;
        int lo = hi >= 0 ? hex_value((unsigned char)s[i + 2]) : -1;
        if (lo < 0) {
            free(dec.p);
            return -EINVAL;
        }
        sb_putc(&dec, (char)(hi << 4 | lo));
        i += 2;
    }
    /* dec may hold NULs (from %00): it is passed on with its length. */
    if (dec.err) {
        free(dec.p);
        return dec.err;
    }
    sb_uri_encode(&enc, dec.p ? dec.p : "", dec.len, false);
    free(dec.p);
    *out = sb_take(&enc);
    return *out ? 0 : -ENOMEM;
}

typedef struct qparam {
    char *name, *value; /* both encoded */
} qparam;

static int cmp_qparam(const void *a, const void *b) {
    const qparam *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* Appends the canonical query string: name=value pairs sorted by encoded name
 * then value, joined with '&'. A name without '=' gets an empty value
 * ("lifecycle" -> "lifecycle="); empty parts ("a=1&&b=2") are dropped. */
static int put_canonical_query(sbuf *b, const char *query) {
    if (!query || !*query) return 0;
    size_t max = 1;
    for (const char *p = query; *p; p++) max += *p == '&';
    qparam *v = calloc(max, sizeof *v);
    if (!v) return -ENOMEM;
    size_t n = 0;
    int rc = 0;
    for (const char *p = query; *p && !rc;) {
        size_t len = strcspn(p, "&");
        if (len) {
            const char *eq = memchr(p, '=', len);
            size_t nlen = eq ? (size_t)(eq - p) : len;
            rc = canonical_query_part(p, nlen, &v[n].name);
            if (!rc)
                rc = canonical_query_part(eq ? eq + 1 : p + len, eq ? len - nlen - 1 : 0,
                                          &v[n].value);
            n++;
        }
        p += len;
        if (*p == '&') p++;
    }
    if (!rc) {
        qsort(v, n, sizeof *v, cmp_qparam);
        for (size_t i = 0; i < n; i++) {
            if (i) sb_putc(b, '&');
            sb_puts(b, v[i].name);
            sb_putc(b, '=');
            sb_puts(b, v[i].value);
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
    return rc;
}

/* ---- headers ------------------------------------------------------------ */

typedef struct hentry {
    char *name;  /* lowercased */
    char *value; /* trimmed, inner whitespace runs collapsed */
    size_t idx;  /* position given, so repeated names keep their order */
} hentry;

static int cmp_hentry(const void *a, const void *b) {
    const hentry *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int make_hentry(const sigv4_header *h, size_t idx, hentry *e) {
    if (!h->name || !h->value || !*h->name) return -EINVAL;
    sbuf name = {0}, value = {0};
    for (const char *p = h->name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!is_tchar(c)) {
            free(name.p);
            return -EINVAL;
        }
        sb_putc(&name, (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c));
    }
    /* Spaces and tabs are folded; CR, LF and other controls would let the
     * value escape its line on the wire and in the canonical request. */
    bool pending = false;
    for (const char *p = h->value; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == ' ' || c == '\t') {
            pending = value.len > 0;
            continue;
        }
        if (c < 0x20 || c == 0x7f) {
            free(name.p);
            free(value.p);
            return -EINVAL;
        }
        if (pending) sb_putc(&value, ' ');
        pending = false;
        sb_putc(&value, (char)c);
    }
    e->name = sb_take(&name);
    e->value = sb_take(&value);
    e->idx = idx;
    return e->name && e->value ? 0 : -ENOMEM;
}

/* Appends the canonical headers block (each "name:value\n") to creq and the
 * signed header list ("a;b;c") to signed_list. */
static int put_canonical_headers(sbuf *creq, sbuf *signed_list, const sigv4_request *rq) {
    if (rq->nheaders && !rq->headers) return -EINVAL;
    hentry *v = calloc(rq->nheaders ? rq->nheaders : 1, sizeof *v);
    if (!v) return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < rq->nheaders && !rc; i++) rc = make_hentry(&rq->headers[i], i, &v[i]);
    if (!rc) {
        qsort(v, rq->nheaders, sizeof *v, cmp_hentry);
        bool host = false;
        size_t ndate = 0;
        for (size_t i = 0; i < rq->nheaders; i++) {
            host |= !strcmp(v[i].name, "host");
            /* A second x-amz-date or one that differs from amz_date could only
             * make the server compute another signature. */
            if (!strcmp(v[i].name, "x-amz-date") &&
                (++ndate > 1 || strcmp(v[i].value, rq->amz_date)))
                rc = -EINVAL;
        }
        if (!host) rc = -EINVAL; /* SigV4 requires host to be signed */
    }
    if (!rc) {
        for (size_t i = 0; i < rq->nheaders; i++) {
            if (i && !strcmp(v[i].name, v[i - 1].name)) {
                sb_putc(creq, ',');
            } else {
                if (i) {
                    sb_putc(creq, '\n');
                    sb_putc(signed_list, ';');
                }
                sb_puts(creq, v[i].name);
                sb_putc(creq, ':');
                sb_puts(signed_list, v[i].name);
            }
            sb_puts(creq, v[i].value);
        }
        sb_putc(creq, '\n');
    }
    for (size_t i = 0; i < rq->nheaders; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
    return rc;
}

/* ---- validation --------------------------------------------------------- */

/* Visible ASCII only: these fields go into newline-separated text. */
static bool is_visible(const char *s, const char *forbidden) {
    if (!s || !*s) return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || strchr(forbidden, c)) return false;
    }
    return true;
}

static bool valid_amz_date(const char *d) {
    if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z') return false;
    for (int i = 0; i < 15; i++)
        if (i != 8 && (d[i] < '0' || d[i] > '9')) return false;
    return true;
}

static int check_request(const sigv4_request *rq) {
    if (!rq->method || !*rq->method) return -EINVAL;
    for (const char *p = rq->method; *p; p++)
        if (!is_tchar((unsigned char)*p)) return -EINVAL;
    /* The path is signed as sent: already encoded, so no '?', '#' or spaces. */
    if (rq->path && *rq->path && (rq->path[0] != '/' || !is_visible(rq->path, "?#")))
        return -EINVAL;
    if (rq->query) {
        for (const char *p = rq->query; *p; p++)
            if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '#') return -EINVAL;
    }
    /* '/' and ',' would break the Credential scope apart. */
    if (!is_visible(rq->payload_hash, "") || !valid_amz_date(rq->amz_date) ||
        !is_visible(rq->region, "/,") || !is_visible(rq->service, "/,") ||
        !is_visible(rq->access_key, "/,") || !rq->secret_key || !*rq->secret_key)
        return -EINVAL;
    if (strlen(rq->secret_key) > (size_t)INT_MAX - 4) return -EINVAL; /* HMAC() takes an int */
    return 0;
}

/* ---- crypto ------------------------------------------------------------- */

static void to_hex(const unsigned char *d, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_lower[d[i] >> 4];
        out[2 * i + 1] = hex_lower[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static int sha256(const void *data, size_t len, unsigned char md[SHA256_LEN]) {
    unsigned int n = 0;
    if (!EVP_Digest(data ? data : "", len, md, &n, EVP_sha256(), NULL) || n != SHA256_LEN)
        return -EIO;
    return 0;
}

void lumio__sigv4_sha256_hex(const void *data, size_t len, char out[65]) {
    unsigned char md[SHA256_LEN];
    if (sha256(data, len, md) < 0) {
        out[0] = '\0';
        return;
    }
    to_hex(md, SHA256_LEN, out);
}

static int hmac(const void *key, size_t klen, const char *msg, unsigned char out[SHA256_LEN]) {
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &n) ||
        n != SHA256_LEN)
        return -EIO;
    return 0;
}

/* signature = hex(HMAC(kSigning, sts)), with kSigning =
 * HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
 * Two key buffers take turns: HMAC() is not promised to allow key == out. */
static int sign(const sigv4_request *rq, const char *date, const char *sts, char sig[65]) {
    size_t slen = strlen(rq->secret_key);
    char *k0 = malloc(slen + 4);
    if (!k0) return -ENOMEM;
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, rq->secret_key, slen);
    unsigned char a[SHA256_LEN], b[SHA256_LEN];
    int rc = hmac(k0, slen + 4, date, a);
    OPENSSL_clear_free(k0, slen + 4);
    if (!rc) rc = hmac(a, sizeof a, rq->region, b);
    if (!rc) rc = hmac(b, sizeof b, rq->service, a);
    if (!rc) rc = hmac(a, sizeof a, "aws4_request", b);
    if (!rc) rc = hmac(b, sizeof b, sts, a);
    if (!rc) to_hex(a, sizeof a, sig);
    OPENSSL_cleanse(a, sizeof a);
    OPENSSL_cleanse(b, sizeof b);
    return rc;
}

/* ---- the signer --------------------------------------------------------- */

int lumio__sigv4_authorization_debug(const sigv4_request *rq, char *out, size_t out_cap,
                                     char **canonical, char **string_to_sign) {
    if (canonical) *canonical = NULL;
    if (string_to_sign) *string_to_sign = NULL;
    if (!out) return -EINVAL;
    if (!out_cap) return -ENOSPC;
    out[0] = '\0';
    if (!rq) return -EINVAL;
    int rc = check_request(rq);
    if (rc) return rc;

    sbuf creq = {0}, signed_list = {0}, scope = {0}, sts = {0}, auth = {0};
    unsigned char md[SHA256_LEN];
    char hash[65], sig[65];

    /* CanonicalRequest: method, path, query, headers, signed headers, payload hash. */
    sb_puts(&creq, rq->method);
    sb_putc(&creq, '\n');
    sb_puts(&creq, rq->path && *rq->path ? rq->path : "/");
    sb_putc(&creq, '\n');
    rc = put_canonical_query(&creq, rq->query);
    sb_putc(&creq, '\n');
    if (!rc) rc = put_canonical_headers(&creq, &signed_list, rq);
    if (rc) goto out;
    sb_putc(&creq, '\n');
    sb_putn(&creq, signed_list.p ? signed_list.p : "", signed_list.len);
    sb_putc(&creq, '\n');
    sb_puts(&creq, rq->payload_hash);
    if ((rc = creq.err ? creq.err : signed_list.err)) goto out;

    /* StringToSign: algorithm, timestamp, scope, hash of the canonical request. */
    sb_putn(&scope, rq->amz_date, 8);
    sb_putc(&scope, '/');
    sb_puts(&scope, rq->region);
    sb_putc(&scope, '/');
    sb_puts(&scope, rq->service);
    sb_puts(&scope, "/aws4_request");
    if ((rc = scope.err)) goto out;
    if ((rc = sha256(creq.p, creq.len, md))) goto out;
    to_hex(md, sizeof md, hash);
    sb_puts(&sts, SIGV4_ALGORITHM "\n");
    sb_puts(&sts, rq->amz_date);
    sb_putc(&sts, '\n');
    sb_puts(&sts, scope.p);
    sb_putc(&sts, '\n');
    sb_puts(&sts, hash);
    if ((rc = sts.err)) goto out;

    /* The scope's date is the first 8 bytes of amz_date, ended by its '/'. */
    scope.p[8] = '\0';
    rc = sign(rq, scope.p, sts.p, sig);
    scope.p[8] = '/';
    if (rc) goto out;

    sb_puts(&auth, SIGV4_ALGORITHM " Credential=");
    sb_puts(&auth, rq->access_key);
    sb_putc(&auth, '/');
    sb_puts(&auth, scope.p);
    sb_puts(&auth, ", SignedHeaders=");
    sb_puts(&auth, signed_list.p);
    sb_puts(&auth, ", Signature=");
    sb_puts(&auth, sig);
    if ((rc = auth.err)) goto out;
    if (auth.len >= out_cap) {
        rc = -ENOSPC;
        goto out;
    }
    if (canonical && !(*canonical = sb_take(&creq))) rc = -ENOMEM;
    if (!rc && string_to_sign && !(*string_to_sign = sb_take(&sts))) rc = -ENOMEM;
    if (rc) {
        if (canonical) {
            free(*canonical);
            *canonical = NULL;
        }
        goto out;
    }
    memcpy(out, auth.p, auth.len + 1);

out:
    free(creq.p);
    free(signed_list.p);
    free(scope.p);
    free(sts.p);
    free(auth.p);
    return rc;
}

int lumio__sigv4_authorization(const sigv4_request *rq, char *out, size_t out_cap) {
    return lumio__sigv4_authorization_debug(rq, out, out_cap, NULL, NULL);
}

/* ---- time --------------------------------------------------------------- */

void lumio__sigv4_amz_date(time_t t, char out[17]) {
    struct tm tm;
    out[0] = '\0';
    /* Four-digit years only: anything else is not a valid amz_date. */
    if (!gmtime_r(&t, &tm) || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900) return;
    if (strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16) out[0] = '\0';
}
