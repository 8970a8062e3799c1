/* Locations: an http(s) URL is used as given; s3://BUCKET/KEY becomes a
 * path-style or virtual-host URL on the endpoint, and its requests are signed
 * with AWS Signature V4 when credentials are set. Objects are cached by
 * location while referenced, so every reader of one object pins one ETag. */
#include "remote/client.h"
#include "remote/sigv4.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void robj_free(robj *o) {
    if (!o) return;
    free(o->location);
    free(o->url);
    free(o->shown);
    free(o->host);
    free(o->path);
    free(o);
}

/* scheme, host[:port] (default ports left out, as curl sends Host) and the
 * base path of an endpoint URL. */
static int split_endpoint(const char *endpoint, char **scheme, char **authority, char **base) {
    CURLU *u = curl_url();
    if (!u) return -ENOMEM;
    char *host = NULL, *port = NULL, *path = NULL;
    int rc = -EINVAL;
    if (curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK) goto out;
    if (curl_url_get(u, CURLUPART_SCHEME, scheme, 0) != CURLUE_OK) goto out;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) goto out;
    /* As curl sends Host: without the scheme's default port, even if given. */
    curl_url_get(u, CURLUPART_PORT, &port, CURLU_NO_DEFAULT_PORT);
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    size_t n = strlen(host) + (port ? strlen(port) + 1 : 0) + 1;
    *authority = malloc(n);
    const char *p = path && strcmp(path, "/") ? path : "";
    size_t pl = strlen(p);
    while (pl && p[pl - 1] == '/') pl--;
    *base = strndup(p, pl);
    if (!*authority || !*base) {
        rc = -ENOMEM;
        goto out;
    }
    snprintf(*authority, n, "%s%s%s", host, port ? ":" : "", port ? port : "");
    rc = 0;
out:
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}

static int make_s3(lumio_remote *rm, robj *o, const char *loc, char *err, size_t errlen) {
    char shown[1024];
    lumio_redact(loc, shown, sizeof shown);
    const char *b = loc + 5;
    const char *slash = strchr(b, '/');
    if (!slash || slash == b || !slash[1]) {
        snprintf(err, errlen, "%s: an S3 location is s3://BUCKET/KEY", shown);
        return -EINVAL;
    }
    size_t blen = (size_t)(slash - b);
    const char *key = slash + 1;
    size_t cap = strlen(key) * 3 + 1;
    char *ekey = malloc(cap);
    char *bucket = strndup(b, blen);
    char *scheme = NULL, *authority = NULL, *base = NULL;
    int rc = -ENOMEM;
    if (!ekey || !bucket) goto out;
    lumio__sigv4_uri_encode(key, strlen(key), true, ekey, cap);
    if (rm->endpoint) {
        rc = split_endpoint(rm->endpoint, &scheme, &authority, &base);
        if (rc < 0) {
            char ep[1024];
            snprintf(err, errlen, "%s: the S3 endpoint '%s' is not a valid URL", shown,
                     lumio_redact(rm->endpoint, ep, sizeof ep));
            goto out;
        }
    } else {
        scheme = strdup("https");
        base = strdup("");
        size_t n = strlen(rm->region) + 32;
        authority = malloc(n);
        if (!scheme || !base || !authority) goto out;
        snprintf(authority, n, "s3.%s.amazonaws.com", rm->region);
    }
    bool path_style =
        rm->o.s3_style == LUMIO_S3_PATH || (rm->o.s3_style == LUMIO_S3_AUTO && rm->endpoint);
    size_t n = strlen(authority) + strlen(base) + blen + strlen(ekey) + 8;
    o->host = malloc(n);
    o->path = malloc(n);
    if (!o->host || !o->path) goto out;
    if (path_style) {
        snprintf(o->host, n, "%s", authority);
        snprintf(o->path, n, "%s/%s/%s", base, bucket, ekey);
    } else {
        snprintf(o->host, n, "%s.%s", bucket, authority);
        snprintf(o->path, n, "%s/%s", base, ekey);
    }
    n = strlen(scheme) + strlen(o->host) + strlen(o->path) + 4;
    o->url = malloc(n);
    if (!o->url) goto out;
    snprintf(o->url, n, "%s://%s%s", scheme, o->host, o->path);
    o->s3 = true;
    rc = 0;
out:
    if (rc == -ENOMEM) snprintf(err, errlen, "%s: out of memory", shown);
    free(ekey);
    free(bucket);
    curl_free(scheme);
    free(authority);
    free(base);
    return rc;
}

int lumio__robj_get(lumio_remote *rm, const char *location, robj **out, char *err, size_t errlen) {
    *out = NULL;
    pthread_mutex_lock(&rm->mu);
    for (robj *o = rm->objects; o; o = o->next)
        if (!strcmp(o->location, location)) {
            o->refs++;
            pthread_mutex_unlock(&rm->mu);
            *out = o;
            return 0;
        }
    pthread_mutex_unlock(&rm->mu);
    char shown[1024];
    lumio_redact(location, shown, sizeof shown);
    if (!lumio_remote_is_url(location)) {
        snprintf(err, errlen, "%s: not an http://, https:// or s3:// location", shown);
        return -EINVAL;
    }
    robj *o = calloc(1, sizeof *o);
    if (!o || !(o->location = strdup(location))) {
        free(o);
        snprintf(err, errlen, "%s: out of memory", shown);
        return -ENOMEM;
    }
    int rc = 0;
    if (!strncmp(location, "s3://", 5)) {
        rc = make_s3(rm, o, location, err, errlen);
    } else if (!(o->url = strdup(location))) {
        snprintf(err, errlen, "%s: out of memory", shown);
        rc = -ENOMEM;
    }
    if (rc == 0) {
        size_t n = strlen(o->url) + 1; /* redaction never makes it longer than this + stars */
        n += n * 3;
        if ((o->shown = malloc(n)))
            lumio_redact(o->url, o->shown, n);
        else {
            snprintf(err, errlen, "%s: out of memory", shown);
            rc = -ENOMEM;
        }
    }
    if (rc < 0) {
        robj_free(o);
        return rc;
    }
    o->refs = 1;
    pthread_mutex_lock(&rm->mu);
    /* Another thread may have made it meanwhile: use theirs. */
    for (robj *x = rm->objects; x; x = x->next)
        if (!strcmp(x->location, location)) {
            x->refs++;
            pthread_mutex_unlock(&rm->mu);
            robj_free(o);
            *out = x;
            return 0;
        }
    o->next = rm->objects;
    rm->objects = o;
    pthread_mutex_unlock(&rm->mu);
    *out = o;
    return 0;
}

void lumio__robj_put(lumio_remote *rm, robj *o) {
    if (!o) return;
    if (o->refs == 0) { /* the client is going away */
        robj_free(o);
        return;
    }
    pthread_mutex_lock(&rm->mu);
    bool last = --o->refs == 0;
    if (last)
        for (robj **pp = &rm->objects; *pp; pp = &(*pp)->next)
            if (*pp == o) {
                *pp = o->next;
                break;
            }
    pthread_mutex_unlock(&rm->mu);
    if (last) robj_free(o);
}

bool lumio__robj_signed(const lumio_remote *rm, const robj *o) {
    return o->s3 && rm->access_key && rm->secret_key;
}

static struct curl_slist *add(struct curl_slist *l, const char *name, const char *value) {
    size_t len = strlen(name) + strlen(value) + 3; /* session tokens run to kilobytes */
    char *line = malloc(len);
    struct curl_slist *n = NULL;
    if (line) {
        snprintf(line, len, "%s: %s", name, value);
        n = curl_slist_append(l, line);
        free(line);
    }
    if (!n) curl_slist_free_all(l);
    return n;
}

/* Called on the client's thread (the ETag is read under no lock: only this
 * thread writes it, in check_head, under the lock). */
void *lumio__robj_headers(lumio_remote *rm, robj *o, const char *method, const char *range,
                          const char *put_sha256) {
    struct curl_slist *l = NULL;
    char etag[128];
    memcpy(etag, o->etag, sizeof etag);
    if (put_sha256) etag[0] = 0; /* a write replaces whatever is there */
    /* If-Match compares strongly: a weak tag never matches. The client still
     * compares each response's tag and size with the pinned ones. */
    if (!strncmp(etag, "W/", 2)) etag[0] = 0;
    if (range && !(l = add(l, "Range", range))) return NULL;
    if (etag[0] && !(l = add(l, "If-Match", etag))) return NULL;
    if (!lumio__robj_signed(rm, o)) return l;
    char date[17];
    lumio__sigv4_amz_date(time(NULL), date);
    static const char empty_sha256[] =
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    sigv4_header h[6];
    size_t nh = 0;
    h[nh++] = (sigv4_header){"host", o->host};
    if (range) h[nh++] = (sigv4_header){"range", range};
    if (etag[0]) h[nh++] = (sigv4_header){"if-match", etag};
    size_t amz = nh; /* the headers from here on are not sent yet */
    const char *payload = put_sha256 ? put_sha256 : empty_sha256;
    h[nh++] = (sigv4_header){"x-amz-content-sha256", payload};
    h[nh++] = (sigv4_header){"x-amz-date", date};
    if (rm->session_token) h[nh++] = (sigv4_header){"x-amz-security-token", rm->session_token};
    sigv4_request rq = {.method = method,
                        .path = o->path,
                        .query = NULL,
                        .headers = h,
                        .nheaders = nh,
                        .payload_hash = payload,
                        .amz_date = date,
                        .region = rm->region,
                        .service = "s3",
                        .access_key = rm->access_key,
                        .secret_key = rm->secret_key};
    char auth[512];
    if (lumio__sigv4_authorization(&rq, auth, sizeof auth) < 0)
        return l; /* the server will refuse */
    for (size_t i = amz; i < nh; i++)
        if (!(l = add(l, h[i].name, h[i].value))) return NULL;
    return add(l, "Authorization", auth);
}
