/* The request loop: one thread drives a libcurl multi handle, keeps up to
 * `concurrency` requests in it over at most `pool_size` connections per host,
 * checks every response head against the object's pinned identity, lands the
 * body straight into place, and retries what failed for a reason that may
 * pass, resuming from the last byte received. */
#include "remote/client.h"
#include "remote/sigv4.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What the policy reads of the options. */
static lumio__limits limits(const lumio_remote *rm) {
    const lumio_remote_options *o = &rm->o;
    return (lumio__limits){.retries = (unsigned)o->retries,
                           .backoff_ms = o->backoff_ms,
                           .backoff_max_ms = o->backoff_max_ms,
                           .timeout_ms = o->timeout_ms,
                           .stall_timeout_ms = o->stall_timeout_ms};
}

static lumio__span span(const rreq *q) {
    return (lumio__span){.kind = q->kind, .off = q->off, .len = q->len, .got = q->got};
}

/* ---- options and lifetime ------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) {
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *dup_opt(const char *given, const char *env1, const char *env2) {
    const char *v = given;
    if (!v && env1) v = getenv(env1);
    if ((!v || !*v) && env2) v = getenv(env2);
    return v && *v ? strdup(v) : NULL;
}

static void *run(void *arg);

/* Zero is the default (docs/API.md); -1 turns retries, merging or HTTP/2
 * off. */
static int remote_defaults(lumio_remote_options *o) {
    const char *bad = NULL;
    if (!lumio__zero(o->reserved, sizeof o->reserved))
        bad = "reserved fields are not zero";
    else if (o->retries < -1)
        bad = "retries is out of range";
    else if (o->coalesce_gap < -1)
        bad = "coalesce_gap is out of range";
    else if (o->s3_style > LUMIO_S3_VIRTUAL)
        bad = "s3_style is out of range";
    if (bad) {
        lumio__err_set(NULL, "lumio_remote_options: %s", bad);
        return -EINVAL;
    }
    if (!o->retries) o->retries = 8;
    if (o->retries < 0) o->retries = 0;
    if (!o->coalesce_gap) o->coalesce_gap = 1u << 20;
    if (o->coalesce_gap < 0) o->coalesce_gap = 0;
    if (!o->backoff_ms) o->backoff_ms = 100;
    if (!o->concurrency) o->concurrency = 16;
    if (!o->pool_size) o->pool_size = o->concurrency;
    if (!o->part_size) o->part_size = 8u << 20;
    if (!o->coalesce_max) o->coalesce_max = 16u << 20;
    if (!o->readahead_max) o->readahead_max = 256u << 20;
    if (!o->backoff_max_ms) o->backoff_max_ms = 5000;
    if (!o->stall_timeout_ms) o->stall_timeout_ms = 30000;
    if (!o->connect_timeout_ms) o->connect_timeout_ms = 10000;
    if (!o->timeout_ms) o->timeout_ms = 60000;
    /* No attempt outlives the request's own limit. */
    o->stall_timeout_ms = LUMIO_MIN(o->stall_timeout_ms, o->timeout_ms);
    o->connect_timeout_ms = LUMIO_MIN(o->connect_timeout_ms, o->timeout_ms);
    const char *style = getenv("LUMIO_S3_ADDRESSING");
    if (o->s3_style == LUMIO_S3_AUTO && style && !strcmp(style, "path"))
        o->s3_style = LUMIO_S3_PATH;
    if (o->s3_style == LUMIO_S3_AUTO && style && !strcmp(style, "virtual"))
        o->s3_style = LUMIO_S3_VIRTUAL;
    return 0;
}

static int remote_create_impl(lumio_remote **out, const lumio_remote_options *opts) {
    if (!out) return -EINVAL;
    *out = NULL;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        lumio__err_set(NULL, "lumio_remote_create: libcurl failed to initialise");
        return LUMIO_E_HTTP;
    }
    lumio_remote_options o0 = {0};
    if (opts) o0 = *opts;
    int rc = remote_defaults(&o0);
    if (rc < 0) return rc;
    lumio_remote *rm = calloc(1, sizeof *rm);
    if (!rm) return -ENOMEM;
    rm->o = o0;
    lumio_remote_options *o = &rm->o;
    rm->endpoint = dup_opt(o->s3_endpoint, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
    rm->region = dup_opt(o->s3_region, "AWS_REGION", "AWS_DEFAULT_REGION");
    rm->access_key = dup_opt(o->access_key, "AWS_ACCESS_KEY_ID", NULL);
    rm->secret_key = dup_opt(o->secret_key, "AWS_SECRET_ACCESS_KEY", NULL);
    rm->session_token = dup_opt(o->session_token, "AWS_SESSION_TOKEN", NULL);
    rm->ca_file = dup_opt(o->ca_file, "AWS_CA_BUNDLE", NULL);
    if (!rm->region) rm->region = strdup("us-east-1");
    /* The copied options must not point at the caller's strings. */
    o->s3_endpoint = o->s3_region = o->access_key = o->secret_key = o->session_token = NULL;
    o->ca_file = NULL;
    rm->rng = (uint64_t)now_ms() ^ (uint64_t)(uintptr_t)rm;
    pthread_mutex_init(&rm->mu, NULL);
    lumio__err_init(&rm->err);
    rc = -ENOMEM;
    rm->multi = curl_multi_init();
    rm->share = curl_share_init();
    rm->free_easy = calloc(o->concurrency, sizeof(void *));
    if (!rm->multi || !rm->share || !rm->region || !rm->free_easy) goto fail;
    curl_share_setopt(rm->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_multi_setopt(rm->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->pool_size);
    curl_multi_setopt(rm->multi, CURLMOPT_MAXCONNECTS, (long)o->pool_size * 4);
    curl_multi_setopt(rm->multi, CURLMOPT_PIPELINING,
                      o->http2 >= 0 ? (long)CURLPIPE_MULTIPLEX : (long)CURLPIPE_NOTHING);
    if (lumio__thread_create(&rm->thread, run, rm) != 0) {
        rc = -EAGAIN;
        goto fail;
    }
    rm->started = true;
    *out = rm;
    return 0;
fail:
    lumio__err_set(NULL, "lumio_remote_create: %s", lumio_strerror(rc));
    lumio_remote_close(rm);
    return rc;
}

void lumio_remote_close(lumio_remote *rm) {
    if (!rm) return;
    if (rm->started) {
        pthread_mutex_lock(&rm->mu);
        rm->stop = true;
        pthread_mutex_unlock(&rm->mu);
        curl_multi_wakeup(rm->multi);
        pthread_join(rm->thread, NULL);
    }
    for (unsigned i = 0; i < rm->nfree_easy; i++) curl_easy_cleanup(rm->free_easy[i]);
    free(rm->free_easy);
    if (rm->multi) curl_multi_cleanup(rm->multi);
    if (rm->share) curl_share_cleanup(rm->share);
    while (rm->objects) {
        robj *o = rm->objects;
        rm->objects = o->next;
        o->refs = 0;
        lumio__robj_put(rm, o);
    }
    free(rm->endpoint);
    free(rm->region);
    free(rm->access_key);
    free(rm->secret_key);
    free(rm->session_token);
    free(rm->ca_file);
    pthread_mutex_destroy(&rm->mu);
    lumio__err_fini(&rm->err);
    free(rm);
}

int lumio_remote_is_url(const char *p) {
    return p &&
           (!strncmp(p, "http://", 7) || !strncmp(p, "https://", 8) || !strncmp(p, "s3://", 5));
}

void lumio__rc_set_error(const lumio_remote *rm, const char *text) {
    lumio__err_set((lumio__err *)&rm->err, "%s", text);
}

char *lumio_remote_last_error(const lumio_remote *rm, char *buf, size_t len) {
    return lumio__err_get(rm ? &rm->err : NULL, buf, len);
}

void lumio_remote_get_stats(const lumio_remote *rm, lumio_remote_stats *s) {
    pthread_mutex_lock((pthread_mutex_t *)&rm->mu);
    *s = rm->stats;
    pthread_mutex_unlock((pthread_mutex_t *)&rm->mu);
}

void lumio__rc_stats_add(lumio_remote *rm, uint64_t bytes_read) {
    pthread_mutex_lock(&rm->mu);
    rm->stats.bytes_read += bytes_read;
    pthread_mutex_unlock(&rm->mu);
}

/* ---- submitting ----------------------------------------------------------- */

/* Under mu: queued to start (or to start again). */
static void pend(lumio_remote *rm, rreq *q) {
    q->next = NULL;
    if (rm->pending_tail)
        rm->pending_tail->next = q;
    else
        rm->pending_head = q;
    rm->pending_tail = q;
}

int lumio__rc_submit(lumio_remote *rm, rreq *q) {
    q->res = 0;
    q->got = 0;
    q->err[0] = 0;
    q->attempt = 0;
    q->retry_at_ms = 0;
    q->canceled = false;
    q->eof = false;
    q->norange = false;
    q->timed_out = false;
    q->paused = q->unpause = false;
    q->clk.progress_ms = 0;
    pthread_mutex_lock(&rm->mu);
    pend(rm, q);
    pthread_mutex_unlock(&rm->mu);
    curl_multi_wakeup(rm->multi);
    return 0;
}

void lumio__rc_cancel(lumio_remote *rm, rreq *q) {
    __atomic_store_n(&q->canceled, true, __ATOMIC_RELAXED);
    curl_multi_wakeup(rm->multi);
}

void lumio__rc_unpause(lumio_remote *rm, rreq *q) {
    __atomic_store_n(&q->unpause, true, __ATOMIC_RELEASE);
    curl_multi_wakeup(rm->multi);
}

void lumio__rc_note_whole_get(lumio_remote *rm) {
    pthread_mutex_lock(&rm->mu);
    rm->stats.whole_gets++;
    pthread_mutex_unlock(&rm->mu);
}

/* ---- one response --------------------------------------------------------- */

static const char *method(const rreq *q) {
    return q->kind == RREQ_HEAD ? "HEAD" : q->kind == RREQ_PUT ? "PUT" : "GET";
}

/* "GET URL bytes=A-B" (the whole range asked for, not the resumed part). */
static int describe(const rreq *q, char *buf, size_t len) {
    const char *url = q->obj->shown;
    if (q->kind == RREQ_HEAD) return snprintf(buf, len, "HEAD %s", url);
    if (q->kind == RREQ_PUT)
        return snprintf(buf, len, "PUT %s (%llu bytes)", url, (unsigned long long)q->len);
    if (q->len == 0 || (q->len == UINT64_MAX && q->off == 0))
        return snprintf(buf, len, "GET %s", url);
    if (q->len == UINT64_MAX)
        return snprintf(buf, len, "GET %s bytes=%llu-", url, (unsigned long long)q->off);
    return snprintf(buf, len, "GET %s bytes=%llu-%llu", url, (unsigned long long)q->off,
                    (unsigned long long)(q->off + q->len - 1));
}

static int fail(rreq *q, int code, const char *fmt, const char *detail) {
    int n = describe(q, q->err, sizeof q->err);
    if (n < 0) n = 0;
    if ((size_t)n < sizeof q->err) snprintf(q->err + n, sizeof q->err - n, fmt, detail);
    return code;
}

/* A response head larger than this is refused (libcurl itself stops at a
 * line of 100 KiB). The bytes count over the interim (1xx) heads of an
 * attempt too, and their number is capped, so that a server cannot hold a
 * request forever with heads that never end in a response. */
#define HEAD_MAX    (256u << 10)
#define INTERIM_MAX 16

static size_t on_header(char *p, size_t size, size_t nitems, void *arg) {
    rreq *q = arg;
    size_t len = size * nitems;
    if (lumio__http_head_line(&q->h, p, len)) { /* a new response */
        q->hdr_ok = false;
        q->hdr_done = false;
        q->hdr_lines = 0;
    }
    q->hdr_lines++;
    q->hdr_bytes += len;
    if (q->hdr_bytes > HEAD_MAX && q->res == 0) {
        q->res = fail(q, LUMIO_E_HTTP, ": a response header larger than %s", "256 KiB");
        return 0;
    }
    /* Bytes keep the stall timer quiet; only a whole final head (or body
     * bytes) is progress for timeout_ms. */
    q->clk.last_byte_ms = now_ms();
    if (len > 2 || (len && p[0] != '\r' && p[0] != '\n')) return len;
    if (q->h.status >= 100 && q->h.status < 200) {
        if (++q->hdr_interim > INTERIM_MAX && q->res == 0) {
            q->res = fail(q, LUMIO_E_HTTP, ": more than %s interim (1xx) responses", "16");
            return 0;
        }
        return len;
    }
    q->hdr_done = true;
    q->clk.progress_ms = q->clk.last_byte_ms;
    return len;
}

/* Under mu: pins the object's size and ETag on its first response, or
 * finds that a later one is of another object. */
static int pin_identity(robj *o, const http_head *h, const lumio__range_check *r) {
    if (r->ignored) o->no_ranges = true;
    if (o->etag[0] && h->etag[0] && strcmp(o->etag, h->etag) != 0) return LUMIO_E_CHANGED;
    if (o->have_size && r->total != UINT64_MAX && r->total != o->size) return LUMIO_E_CHANGED;
    if (!o->etag[0] && h->etag[0]) memcpy(o->etag, h->etag, sizeof o->etag);
    if (!o->last_modified[0] && h->last_modified[0])
        memcpy(o->last_modified, h->last_modified, sizeof o->last_modified);
    if (!o->have_size && r->total != UINT64_MAX) {
        o->have_size = true;
        o->size = r->total;
    }
    return 0;
}

/* The head of a successful response: is it the range asked for, of the
 * object we pinned? Pins size and ETag on the first one. */
static int check_head(lumio_remote *rm, rreq *q, bool locked) {
    lumio__span s = span(q);
    lumio__range_check r;
    char why[128];
    int rc = lumio__check_range(&s, &q->h, q->whole_ok, &r, why, sizeof why);
    if (rc < 0 && !r.norange) return fail(q, rc, ": %s", why);
    robj *o = q->obj;
    if (!locked) pthread_mutex_lock(&rm->mu);
    if (rc < 0)
        o->no_ranges = true;
    else
        rc = pin_identity(o, &q->h, &r);
    if (!locked) pthread_mutex_unlock(&rm->mu);
    if (r.norange) {
        q->norange = true;
        return fail(q, rc, ": %s", why);
    }
    if (rc) {
        char d[300];
        snprintf(d, sizeof d, "%s (size %llu), was %s (size %llu)", q->h.etag,
                 (unsigned long long)r.total, o->etag, (unsigned long long)o->size);
        return fail(q, rc, ": the object changed while it was read: ETag %s", d);
    }
    q->body_at = r.body_at;
    q->eof = q->eof || r.eof;
    q->hdr_ok = true;
    return 0;
}

/* PUT: the next piece of the body. */
static size_t on_send(char *p, size_t size, size_t nitems, void *arg) {
    rreq *q = arg;
    size_t n = (size_t)LUMIO_MIN((uint64_t)size * nitems, q->len - q->sent);
    memcpy(p, q->src + q->sent, n);
    q->sent += n;
    q->clk.last_byte_ms = q->clk.progress_ms = now_ms();
    return n;
}

/* PUT: libcurl goes back in the body (a redirect, an auth round). */
static int on_seek(void *arg, curl_off_t off, int origin) {
    rreq *q = arg;
    if (origin != SEEK_SET || off < 0 || (uint64_t)off > q->len) return CURL_SEEKFUNC_FAIL;
    q->sent = (uint64_t)off;
    return CURL_SEEKFUNC_OK;
}

static size_t on_body(char *p, size_t size, size_t nitems, void *arg) {
    rreq *q = arg;
    size_t len = size * nitems;
    if (q->h.status < 200 || q->h.status >= 300) return len; /* an error page: drop it */
    if (q->kind == RREQ_PUT) return len;                     /* what the store says back */
    if (!q->hdr_ok) return CURL_WRITEFUNC_ERROR;             /* checked in on_progress first */
    q->clk.last_byte_ms = q->clk.progress_ms = now_ms();
    /* A whole body answering a range: the bytes before it are skipped. */
    uint64_t want = q->off + q->got;
    size_t skip = q->body_at < want ? (size_t)LUMIO_MIN((uint64_t)len, want - q->body_at) : 0;
    uint64_t room = q->len - q->got;
    size_t take = len - skip > room ? (size_t)room : len - skip;
    if (take && q->sink) {
        if (q->sink(q, (const uint8_t *)p + skip, take) == 0) {
            /* Nothing taken: libcurl hands the same bytes again on resume. */
            __atomic_store_n(&q->paused, true, __ATOMIC_RELEASE);
            return CURL_WRITEFUNC_PAUSE;
        }
    } else if (take) {
        p += skip;
        if (q->dst) {
            memcpy(q->dst + q->got, p, take);
        } else {
            size_t done = 0;
            while (done < take) {
                ssize_t w = pwrite(q->fd, p + done, take - done, (off_t)(q->off + q->got + done));
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) {
                    q->res = fail(q, w < 0 ? -errno : -EIO, ": writing the file: %s",
                                  strerror(w < 0 ? errno : EIO));
                    return CURL_WRITEFUNC_ERROR;
                }
                done += (size_t)w;
            }
        }
    }
    q->body_at += skip + take;
    __atomic_store_n(&q->got, q->got + take, __ATOMIC_RELAXED); /* read by waiters */
    /* More than asked for (a 200 with the whole object): stop here. */
    return skip + take == len ? len : CURL_WRITEFUNC_ERROR;
}

/* ---- the loop -------------------------------------------------------------- */

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    rreq *q = arg;
    lumio_remote *rm = NULL;
    curl_easy_getinfo(q->easy, CURLINFO_PRIVATE, (char **)&rm);
    if (__atomic_load_n(&q->canceled, __ATOMIC_RELAXED)) return 1;
    /* Waiting for a free connection of the pool is not a stall: the clock
     * starts once the request is on the wire. */
    curl_off_t sent = 0;
    curl_easy_getinfo(q->easy, CURLINFO_PRETRANSFER_TIME_T, &sent);
    lumio__limits lim = limits(rm);
    bool paused = __atomic_load_n(&q->paused, __ATOMIC_ACQUIRE);
    switch (lumio__clocks_tick(&q->clk, &lim, now_ms(), q->attempt, sent != 0, paused)) {
    case LUMIO__TIMED_OUT:
        q->timed_out = true;
        return 1;
    case LUMIO__STALLED:
        q->stalled = true;
        return 1;
    default:
        return 0;
    }
}

static CURL *easy_get(lumio_remote *rm) {
    if (rm->nfree_easy) {
        CURL *e = rm->free_easy[--rm->nfree_easy];
        curl_easy_reset(e);
        return e;
    }
    return curl_easy_init();
}

static void easy_put(lumio_remote *rm, CURL *e) {
    if (rm->nfree_easy < rm->o.concurrency)
        rm->free_easy[rm->nfree_easy++] = e;
    else
        curl_easy_cleanup(e);
}

/* The header callback sees the head before the body: check it there, so the
 * body callback can refuse a wrong range before a byte lands. */
static size_t on_header_checked(char *p, size_t size, size_t nitems, void *arg) {
    rreq *q = arg;
    size_t len = on_header(p, size, nitems, arg);
    bool blank = len <= 2 && len > 0 && (p[0] == '\r' || p[0] == '\n');
    if (blank && !q->hdr_ok && q->h.status >= 200 && q->h.status < 300) {
        lumio_remote *rm = NULL;
        curl_easy_getinfo(q->easy, CURLINFO_PRIVATE, (char **)&rm);
        if (q->h.status == 204) return len;
        if (q->kind == RREQ_PUT) { /* nothing to pin: the object is what was sent */
            q->hdr_ok = true;
            return len;
        }
        int rc = check_head(rm, q, false);
        if (rc < 0) {
            q->res = rc;
            return 0; /* abort the transfer */
        }
    }
    return len;
}

/* The options of one attempt's transfer. */
static void easy_setup(lumio_remote *rm, rreq *q, CURL *e) {
    bool put = q->kind == RREQ_PUT;
    curl_easy_setopt(e, CURLOPT_URL, q->obj->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)rm);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, (struct curl_slist *)q->hdrs);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header_checked);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, q);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, q);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_SHARE, (CURLSH *)rm->share);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)rm->o.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     rm->o.http2 >= 0 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, rm->o.insecure_tls ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, rm->o.insecure_tls ? 0L : 2L);
    if (rm->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, rm->ca_file);
    /* A redirect not followed is refused by classify(). */
    bool follow = lumio__follow_redirects(q->kind, lumio__robj_signed(rm, q->obj));
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)LUMIO__MAX_REDIRECTS);
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    /* An S3 key is a name, not a path: "a/../b" is that key, not "b". */
    if (q->obj->s3) curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL); /* bytes as stored, never re-encoded */
    if (q->kind == RREQ_HEAD) curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    if (put) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->len);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_send);
        curl_easy_setopt(e, CURLOPT_READDATA, q);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, q);
    }
}

/* The headers of one attempt: Range from the first byte not yet landed. */
static void *attempt_headers(lumio_remote *rm, rreq *q) {
    lumio__span s = span(q);
    char range[64];
    lumio__range_header(&s, range, sizeof range);
    bool put = q->kind == RREQ_PUT;
    void *h = lumio__robj_headers(rm, q->obj, method(q), range[0] ? range : NULL,
                                  put ? (q->sha256[0] ? q->sha256 : "UNSIGNED-PAYLOAD") : NULL);
    /* No "Expect: 100-continue" round (libcurl would wait for it on bodies
     * from 1 MiB). */
    if (put) h = curl_slist_append(h, "Expect:");
    return h;
}

static int start(lumio_remote *rm, rreq *q) {
    CURL *e = easy_get(rm);
    if (!e) return fail(q, -ENOMEM, ": %s", "out of memory");
    q->easy = e;
    q->got_mark = q->got;
    lumio__http_head_reset(&q->h);
    q->hdr_ok = false;
    q->hdr_done = false;
    q->hdr_lines = 0;
    q->hdr_bytes = 0;
    q->hdr_interim = 0;
    q->stalled = false;
    q->body_at = 0;
    lumio__clocks_start(&q->clk, q->attempt, now_ms());
    q->sent = 0;
    q->hdrs = attempt_headers(rm, q);
    easy_setup(rm, q, e);
    if (curl_multi_add_handle(rm->multi, e) != CURLM_OK) {
        curl_slist_free_all(q->hdrs);
        q->hdrs = NULL;
        easy_put(rm, e);
        q->easy = NULL;
        return fail(q, LUMIO_E_HTTP, ": %s", "libcurl refused the request");
    }
    rm->stats.requests++;
    return 0;
}

static uint64_t next_rand(lumio_remote *rm) {
    uint64_t x = rm->rng += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

enum outcome { DONE, RETRY };

/* Under mu: what the loop saw of the attempt that just ended. */
static lumio__attempt attempt_seen(lumio_remote *rm, const rreq *q, CURLcode cc) {
    return (lumio__attempt){.span = span(q),
                            .moved = q->got - q->got_mark,
                            .attempt = q->attempt,
                            .curl = (int)cc,
                            .h = &q->h,
                            .hdr_done = q->hdr_done,
                            .hdr_lines = q->hdr_lines,
                            .timed_out = q->timed_out,
                            .stalled = q->stalled,
                            .signed_req = lumio__robj_signed(rm, q->obj),
                            .have_size = q->obj->have_size,
                            .size = q->obj->size};
}

/* Under mu, a 2xx: a GET's head is checked (where the header callback did
 * not) and a body that ended short is resumed. */
static enum outcome succeeded(lumio_remote *rm, rreq *q, char *why, size_t whylen) {
    if (q->kind == RREQ_PUT) {
        /* Readers holding this object now see the new one: its size is
         * what was sent; its ETag is pinned by the next read (a store's
         * answer to a PUT need not be the tag its GETs give). */
        robj *o = q->obj;
        o->have_size = true;
        o->size = q->len;
        o->etag[0] = 0;
        o->last_modified[0] = 0;
        return DONE;
    }
    if (!q->hdr_ok && q->h.status != 204) {
        int rc = check_head(rm, q, true);
        if (rc < 0) {
            q->res = rc;
            return DONE;
        }
    }
    lumio__span s = span(q);
    return lumio__success(&s, &q->h, &q->eof, why, whylen) == LUMIO__RETRY ? RETRY : DONE;
}

/* Under mu: a finished transfer is done (a success or a final error) or
 * to be retried. */
static enum outcome classify(lumio_remote *rm, rreq *q, const lumio__attempt *a, char *why,
                             size_t whylen) {
    why[0] = 0;
    /* A failure the callbacks saw (a wrong range, a changed object, a file
     * error) is the request's outcome even when it was canceled meanwhile
     * (its siblings are canceled because of such a failure). */
    if (q->res < 0) return DONE;
    if (__atomic_load_n(&q->canceled, __ATOMIC_RELAXED)) {
        q->res = fail(q, -ECANCELED, ": %s", "canceled");
        return DONE;
    }
    lumio__limits lim = limits(rm);
    lumio__verdict v = lumio__classify(a, &lim, why, whylen);
    switch (v.action) {
    case LUMIO__RETRY:
        return RETRY;
    case LUMIO__SUCCESS:
        return succeeded(rm, q, why, whylen);
    case LUMIO__AT_END:
        if (v.pin_size) { /* an empty object */
            q->obj->have_size = true;
            q->obj->size = q->h.total;
        }
        q->eof = true;
        return DONE;
    default:
        q->res = fail(q, v.code, ": %s", why);
        return DONE;
    }
}

static void release_easy(lumio_remote *rm, rreq *q, bool add_stats) {
    CURL *e = q->easy;
    if (!e) return;
    if (add_stats) {
        long nc = 0;
        curl_off_t body = 0;
        curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &nc);
        curl_easy_getinfo(e, CURLINFO_SIZE_DOWNLOAD_T, &body);
        rm->stats.connections += (uint64_t)nc;
        rm->stats.bytes_fetched += (uint64_t)body;
    }
    curl_multi_remove_handle(rm->multi, e);
    curl_slist_free_all(q->hdrs);
    q->hdrs = NULL;
    easy_put(rm, e);
    q->easy = NULL;
}

typedef struct done_list {
    rreq *head, *tail;
} done_list;

static void push(done_list *l, rreq *q) {
    q->next = NULL;
    if (l->tail)
        l->tail->next = q;
    else
        l->head = q;
    l->tail = q;
}

static void remove_active(lumio_remote *rm, rreq *q) {
    for (rreq **pp = &rm->active; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            rm->nactive--;
            return;
        }
}

/* Under mu, after an attempt that may pass on another: queues the request
 * again (true), or gives up with its final code. */
static bool retry(lumio_remote *rm, rreq *q, const lumio__attempt *a, const char *why) {
    lumio__limits lim = limits(rm);
    char text[360];
    int64_t now = now_ms();
    lumio__retry r = lumio__retry_decide(a, &lim, q->clk.progress_ms, now, next_rand(rm), why, text,
                                         sizeof text);
    q->attempt = r.attempt;
    if (!r.retry) {
        q->res = fail(q, r.code, ": %s", text);
        return false;
    }
    rm->stats.retries++;
    q->retry_at_ms = r.retry_at_ms;
    q->clk.queued_ms = now + r.wait_ms;
    q->res = 0;
    pend(rm, q);
    return true;
}

/* Under mu: a finished transfer, done or queued again. */
static void finished(lumio_remote *rm, rreq *q, CURLcode cc, done_list *done) {
    remove_active(rm, q);
    lumio__attempt a = attempt_seen(rm, q, cc);
    char why[256];
    enum outcome oc = classify(rm, q, &a, why, sizeof why);
    release_easy(rm, q, true);
    if (oc == RETRY && retry(rm, q, &a, why)) return;
    push(done, q);
}

/* Under mu: starts what may start. Returns how long the loop may sleep: up
 * to the earliest retry that is due, at most 250 ms. */
static int64_t start_pending(lumio_remote *rm, done_list *done) {
    int64_t now = now_ms(), wait_ms = 250;
    for (rreq *prev = NULL, *q = rm->pending_head, *next; q; q = next) {
        next = q->next;
        bool cancel = __atomic_load_n(&q->canceled, __ATOMIC_RELAXED);
        if (!cancel && (rm->nactive >= rm->o.concurrency || q->retry_at_ms > now)) {
            if (q->retry_at_ms > now) wait_ms = LUMIO_MIN(wait_ms, q->retry_at_ms - now);
            prev = q;
            continue;
        }
        if (prev)
            prev->next = next;
        else
            rm->pending_head = next;
        if (rm->pending_tail == q) rm->pending_tail = prev;
        if (cancel) {
            q->res = fail(q, -ECANCELED, ": %s", "canceled");
            push(done, q);
            continue;
        }
        int rc = start(rm, q);
        if (rc < 0) {
            q->res = rc;
            push(done, q);
            continue;
        }
        q->next = rm->active;
        rm->active = q;
        rm->nactive++;
    }
    return wait_ms;
}

/* Without the lock: a completion may submit more. */
static void complete(done_list *done) {
    while (done->head) {
        rreq *q = done->head;
        done->head = q->next;
        if (!done->head) done->tail = NULL;
        q->next = NULL;
        q->done(q);
    }
}

/* Transfers whose reader made room. Only this thread changes the active
 * list, so it is walked without the lock (a resumed transfer's callbacks may
 * take the reader's). */
static void unpause_ready(lumio_remote *rm) {
    for (rreq *q = rm->active; q; q = q->next)
        if (__atomic_exchange_n(&q->unpause, false, __ATOMIC_ACQ_REL)) {
            __atomic_store_n(&q->paused, false, __ATOMIC_RELEASE);
            q->clk.last_byte_ms = q->clk.progress_ms = now_ms();
            curl_easy_pause(q->easy, CURLPAUSE_CONT);
        }
}

/* Under mu: the transfers libcurl finished, and those canceled in flight. */
static void reap(lumio_remote *rm, done_list *done) {
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(rm->multi, &left)))
        if (m->msg == CURLMSG_DONE) {
            rreq *q = NULL;
            for (rreq *a = rm->active; a; a = a->next)
                if (a->easy == m->easy_handle) q = a;
            if (q) finished(rm, q, m->data.result, done);
        }
}

/* Under mu, stopping: everything still here is canceled. */
static void cancel_all(lumio_remote *rm, done_list *done) {
    while (rm->active) {
        rreq *q = rm->active;
        q->canceled = true;
        finished(rm, q, CURLE_OK, done);
    }
    while (rm->pending_head) {
        rreq *q = rm->pending_head;
        rm->pending_head = q->next;
        q->res = fail(q, -ECANCELED, ": %s", "canceled");
        push(done, q);
    }
    rm->pending_tail = NULL;
}

static void *run(void *arg) {
    lumio_remote *rm = arg;
    done_list done = {0};
    pthread_mutex_lock(&rm->mu);
    while (!rm->stop) {
        /* Cancellations of requests in flight. */
        for (rreq *q = rm->active, *next; q; q = next) {
            next = q->next;
            if (__atomic_load_n(&q->canceled, __ATOMIC_RELAXED)) finished(rm, q, CURLE_OK, &done);
        }
        int64_t wait_ms = start_pending(rm, &done);
        pthread_mutex_unlock(&rm->mu);
        complete(&done);
        unpause_ready(rm);
        int running = 0;
        curl_multi_perform(rm->multi, &running);
        pthread_mutex_lock(&rm->mu);
        reap(rm, &done);
        if (done.head || rm->stop) continue;
        pthread_mutex_unlock(&rm->mu);
        curl_multi_poll(rm->multi, NULL, 0, (int)wait_ms, NULL);
        pthread_mutex_lock(&rm->mu);
    }
    cancel_all(rm, &done);
    pthread_mutex_unlock(&rm->mu);
    complete(&done);
    return NULL;
}

/* A failure always leaves a text for last_error(NULL) (docs/API.md). */
int lumio_remote_create(lumio_remote **out, const lumio_remote_options *opts) {
    uint64_t mark = lumio__err_mark();
    return lumio__err_ensure(mark, remote_create_impl(out, opts), "lumio_remote_create");
}
