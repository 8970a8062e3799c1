/* The retry and status policy of the remote reader: pure decisions on what
 * the request loop saw (see policy.h). */
#include "remote/policy.h"

#include <lumio/lumio.h>
#include <lumio/remote.h>

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ---- statuses and libcurl results ---------------------------------------- */

bool lumio__status_retryable(int s) {
    return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

int lumio__status_code(int s) {
    if (s == 404 || s == 410) return -ENOENT;
    if (s == 401 || s == 403) return -EACCES;
    if (s == 412) return LUMIO_E_CHANGED;
    return LUMIO_E_HTTP;
}

const char *lumio__status_text(int s) {
    switch (s) {
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 408:
        return "Request Timeout";
    case 412:
        return "Precondition Failed (the object changed)";
    case 416:
        return "Range Not Satisfiable";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "";
    }
}

bool lumio__head_refused(int s) {
    return s == 400 || s == 401 || s == 403 || s == 405 || s == 501;
}

bool lumio__curl_retryable(int c) {
    switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_ABORTED_BY_CALLBACK: /* a stall */
        return true;
    default:
        return false;
    }
}

/* ---- what a finished attempt means --------------------------------------- */

/* "60 s", "0.5 s". */
static const char *seconds(unsigned ms, char *buf, size_t len) {
    snprintf(buf, len, "%g s", ms / 1000.0);
    return buf;
}

/* "redirect to a file:// URL refused": the scheme of a Location. */
static void redirect_refused(const char *loc, char *why, size_t whylen) {
    size_t n = strcspn(loc, ":/?#");
    if (!strncmp(loc + n, "://", 3) && n < 16)
        snprintf(why, whylen,
                 "redirect to a %.*s:// URL refused (only http and https are followed)", (int)n,
                 loc);
    else
        snprintf(why, whylen, "redirect refused (only http and https are followed)");
}

/* What libcurl's error met, in words a user can act on; whether it may pass
 * on another attempt. */
static bool curl_failure(const lumio__attempt *a, const lumio__limits *lim, int cc, char *why,
                         size_t whylen) {
    int s = a->h->status;
    if (a->stalled) {
        char t[32];
        snprintf(why, whylen, "no data for %s", seconds(lim->stall_timeout_ms, t, sizeof t));
        return true;
    }
    if (a->h->content_length_bad) {
        snprintf(why, whylen, "the Content-Length is out of range or not a number");
        return false;
    }
    switch (cc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_WEIRD_SERVER_REPLY:
        if (s >= 300 && s < 400 && a->h->location[0])
            redirect_refused(a->h->location, why, whylen);
        else if (s == 0)
            snprintf(why, whylen, "not an HTTP response (no status line)");
        else
            snprintf(why, whylen, "a malformed HTTP response (%s)",
                     curl_easy_strerror((CURLcode)cc));
        return false;
    case CURLE_OUT_OF_MEMORY:
        if (a->hdr_done) break;
        /* libcurl's only limit on a response head: one line of 100 KiB. */
        snprintf(why, whylen, "a response header line longer than 100 KiB");
        return false;
    case CURLE_TOO_MANY_REDIRECTS:
        snprintf(why, whylen, "more than %d redirects", LUMIO__MAX_REDIRECTS);
        return false;
    default:
        break;
    }
    if (s != 0 && !a->hdr_done) {
        snprintf(why, whylen, "the connection closed %s",
                 a->hdr_lines <= 1 ? "after the status line" : "inside the response header");
        return false;
    }
    snprintf(why, whylen, "%s", curl_easy_strerror((CURLcode)cc));
    return lumio__curl_retryable(cc);
}

/* A signed request answered by a redirect: the signature and the session
 * token are for this host alone, so the redirect is not followed. S3 says
 * where the bucket is. */
static void signed_redirect(const http_head *h, char *why, size_t whylen) {
    char loc[600];
    lumio_redact(h->location[0] ? h->location : "(no Location)", loc, sizeof loc);
    int n = snprintf(why, whylen, "HTTP %d redirect to %s refused: a signed request is not sent on",
                     h->status, loc);
    if (h->bucket_region[0] && n > 0 && (size_t)n < whylen)
        snprintf(why + n, whylen - (size_t)n, " (the bucket is in %s: set AWS_REGION=%s)",
                 h->bucket_region, h->bucket_region);
}

static lumio__verdict fail(int code) {
    return (lumio__verdict){.action = LUMIO__FAIL, .code = code};
}

/* A 416 to a GET: the range starts at or past the end. That is the end only
 * where the object we pinned ends: else it has shrunk. */
static lumio__verdict range_end(const lumio__attempt *a, char *why, size_t whylen) {
    uint64_t t = a->h->total, at = a->span.off + a->span.got;
    if ((a->have_size && t != HTTP_NONE && t != a->size) || (a->have_size && at < a->size)) {
        snprintf(why, whylen, "the object changed size while it was read");
        return fail(LUMIO_E_CHANGED);
    }
    return (lumio__verdict){.action = LUMIO__AT_END,
                            .pin_size = !a->have_size && t != HTTP_NONE && at == 0};
}

lumio__verdict lumio__classify(const lumio__attempt *a, const lumio__limits *lim, char *why,
                               size_t whylen) {
    why[0] = 0;
    int s = a->h->status, cc = a->curl;
    /* The body callback stops a server that sends more than the range. */
    if (cc == CURLE_WRITE_ERROR && a->span.kind == RREQ_GET && a->span.got == a->span.len)
        cc = CURLE_OK;
    if (a->timed_out) {
        char t[32];
        snprintf(why, whylen, "no progress for %s", seconds(lim->timeout_ms, t, sizeof t));
        return fail(-ETIMEDOUT);
    }
    if (cc == CURLE_OK && s != 0 && !a->hdr_done) cc = CURLE_PARTIAL_FILE; /* a cut head */
    if (cc != CURLE_OK) {
        if (curl_failure(a, lim, cc, why, whylen)) return (lumio__verdict){LUMIO__RETRY, 0, false};
        return fail(cc == CURLE_COULDNT_RESOLVE_HOST ? -EHOSTUNREACH : LUMIO_E_HTTP);
    }
    if (s >= 200 && s < 300) return (lumio__verdict){LUMIO__SUCCESS, 0, false};
    if (s == 416 && a->span.kind == RREQ_GET) return range_end(a, why, whylen);
    if (s >= 300 && s < 400) {
        if (a->signed_req)
            signed_redirect(a->h, why, whylen);
        else
            snprintf(why, whylen, "HTTP %d redirect not followed%s", s,
                     a->h->location[0] ? "" : " (no Location)");
        return fail(LUMIO_E_HTTP);
    }
    snprintf(why, whylen, "HTTP %d %s", s, lumio__status_text(s));
    if (lumio__status_retryable(s)) return (lumio__verdict){LUMIO__RETRY, 0, false};
    return fail(lumio__status_code(s));
}

lumio__action lumio__success(const lumio__span *s, const http_head *h, bool *eof, char *why,
                             size_t whylen) {
    /* A body without a length ends where the connection (or the chunked
     * encoding) ends it, as curl reads it. */
    if (h->status != 206 && h->content_length == HTTP_NONE) *eof = true;
    if (s->kind == RREQ_GET && s->got < s->len && !*eof) {
        /* The server sent less than the range and the object goes on: ask
         * for the rest. */
        snprintf(why, whylen, "the body ended at byte %llu", (unsigned long long)(s->off + s->got));
        return LUMIO__RETRY;
    }
    return LUMIO__SUCCESS;
}

/* ---- resuming ------------------------------------------------------------- */

int lumio__check_range(const lumio__span *s, const http_head *h, bool whole_ok,
                       lumio__range_check *out, char *why, size_t whylen) {
    uint64_t want = s->off + s->got;
    memset(out, 0, sizeof *out);
    out->total = UINT64_MAX;
    if (h->content_length_bad) {
        snprintf(why, whylen, "the Content-Length is out of range or not a number");
        return LUMIO_E_HTTP;
    }
    if (h->status == 206) {
        if (h->range_start == HTTP_NONE) {
            snprintf(why, whylen, "a 206 response without a valid Content-Range");
            return LUMIO_E_HTTP;
        }
        if (h->range_start != want) {
            snprintf(why, whylen, "the server answered a range starting at byte %llu",
                     (unsigned long long)h->range_start);
            return LUMIO_E_HTTP;
        }
        out->total = h->total;
        out->body_at = h->range_start;
    } else if (h->status == 200 || h->status == 203) {
        out->total = h->content_length;
        /* An answer to a range that is not that range: the server ignores
         * Range. From byte 0 its first bytes are the range; elsewhere the
         * caller reads the object as one stream instead (whole_ok). */
        bool ranged = s->kind == RREQ_GET && (s->len != UINT64_MAX || want != 0);
        out->ignored = ranged && (want != 0 || out->total == HTTP_NONE || out->total > s->len);
        if (s->kind == RREQ_GET && want != 0 && !whole_ok) {
            out->norange = true;
            snprintf(why, whylen, "the server ignored the Range header");
            return LUMIO_E_HTTP;
        }
    }
    out->eof = out->total != UINT64_MAX && (out->total < s->off || out->total - s->off < s->len);
    return 0;
}

void lumio__range_header(const lumio__span *s, char *buf, size_t len) {
    uint64_t from = s->off + s->got;
    buf[0] = 0;
    if (s->kind == RREQ_GET && s->len != UINT64_MAX)
        snprintf(buf, len, "bytes=%llu-%llu", (unsigned long long)from,
                 (unsigned long long)(s->off + s->len - 1));
    else if (s->kind == RREQ_GET && from != 0) /* a stream resumed */
        snprintf(buf, len, "bytes=%llu-", (unsigned long long)from);
}

bool lumio__follow_redirects(enum rreq_kind kind, bool signed_req) {
    return kind != RREQ_PUT && !signed_req;
}

/* ---- retrying ------------------------------------------------------------- */

int64_t lumio__backoff(unsigned attempt, const lumio__limits *lim, int retry_after_ms,
                       uint64_t rand) {
    uint64_t d = lim->backoff_ms;
    for (unsigned i = 1; i < attempt && d < lim->backoff_max_ms; i++) d *= 2;
    if (d > lim->backoff_max_ms) d = lim->backoff_max_ms;
    d = d / 2 + (d ? rand % (d / 2 + 1) : 0);
    if (retry_after_ms >= 0 && (uint64_t)retry_after_ms > d)
        d = (uint64_t)retry_after_ms < lim->backoff_max_ms ? (uint64_t)retry_after_ms
                                                           : lim->backoff_max_ms;
    return (int64_t)d;
}

/* The code of a request that ran out of retries or of time. */
static int give_up_code(const lumio__attempt *a, bool in_time) {
    if (a->curl == CURLE_COULDNT_CONNECT) return -ECONNREFUSED;
    if (a->curl == CURLE_OPERATION_TIMEDOUT || a->stalled || !in_time) return -ETIMEDOUT;
    return a->h->status >= 400 ? LUMIO_E_HTTP : -EIO;
}

lumio__retry lumio__retry_decide(const lumio__attempt *a, const lumio__limits *lim,
                                 int64_t progress_ms, int64_t now, uint64_t rand, const char *why,
                                 char *text, size_t textlen) {
    /* An attempt that moved at least 1 MiB earns a fresh count and no wait:
     * a long transfer on a flaky link (or a server that caps its responses)
     * resumes until done, while one that stops moving still runs out of
     * retries. */
    bool moved = a->moved >= LUMIO__RESUME_FRESH;
    unsigned attempt = (moved ? 0 : a->attempt) + 1;
    lumio__retry r = {.attempt = attempt};
    r.wait_ms = moved ? 0 : lumio__backoff(attempt, lim, a->h->retry_after_ms, rand);
    /* No retry that would start past the request's time limit. */
    bool in_time = now + r.wait_ms - progress_ms <= (int64_t)lim->timeout_ms;
    if (attempt <= lim->retries && in_time) {
        r.retry = true;
        r.retry_at_ms = moved ? 0 : now + r.wait_ms;
        return r;
    }
    r.attempt = attempt - 1; /* not made */
    char t[32];
    if (!in_time)
        snprintf(text, textlen, "%s (gave up after %u attempts: no progress for %s)", why, attempt,
                 seconds(lim->timeout_ms, t, sizeof t));
    else
        snprintf(text, textlen, "%s (gave up after %u attempts)", why, attempt);
    r.code = give_up_code(a, in_time);
    return r;
}

/* ---- the clocks ----------------------------------------------------------- */

void lumio__clocks_start(lumio__clocks *c, unsigned attempt, int64_t now) {
    c->last_byte_ms = now;
    /* A retry's wait for a free slot (behind the parts queued before it) is
     * not the server's silence. */
    if (attempt == 0)
        c->progress_ms = now;
    else if (now > c->queued_ms)
        c->progress_ms += now - c->queued_ms;
}

lumio__tick lumio__clocks_tick(lumio__clocks *c, const lumio__limits *lim, int64_t now,
                               unsigned attempt, bool on_wire, bool paused) {
    if (paused) {
        c->last_byte_ms = c->progress_ms = now;
        return LUMIO__GOING;
    }
    /* The request's own limit runs across attempts; only the first
     * attempt's wait for a connection of the pool is not counted. */
    if (!on_wire && attempt == 0) c->progress_ms = now;
    if (now - c->progress_ms > (int64_t)lim->timeout_ms) return LUMIO__TIMED_OUT;
    if (!on_wire) {
        c->last_byte_ms = now;
        return LUMIO__GOING;
    }
    if (now - c->last_byte_ms > (int64_t)lim->stall_timeout_ms) return LUMIO__STALLED;
    return LUMIO__GOING;
}
