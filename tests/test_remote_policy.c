/* The remote reader's retry and status policy (src/remote/policy.c), without
 * a network: every status class, libcurl's error classes, the codes they map
 * to, backoff growth, cap and jitter, Retry-After, the time budget across
 * attempts, resumed ranges and the answers accepted to them. */
#include "remote/policy.h"
#include "tests/testutil.h"

#include <lumio/lumio.h>

#include <curl/curl.h>
#include <errno.h>

static const lumio__limits lim = {
    .retries = 8,
    .backoff_ms = 100,
    .backoff_max_ms = 5000,
    .timeout_ms = 60000,
    .stall_timeout_ms = 30000,
};

static http_head head(int status) {
    http_head h;
    lumio__http_head_reset(&h);
    h.status = status;
    return h;
}

/* A GET of bytes [off, off + len) that got a whole head with status s. */
static lumio__attempt get(const http_head *h, uint64_t off, uint64_t len) {
    return (lumio__attempt){.span = {RREQ_GET, off, len, 0},
                            .curl = CURLE_OK,
                            .h = h,
                            .hdr_done = true,
                            .hdr_lines = 4};
}

static lumio__verdict classify(const lumio__attempt *a, char *why) {
    return lumio__classify(a, &lim, why, 256);
}

/* What every final status of a GET (with no size pinned) means. */
static void expect_status(int s, lumio__verdict v, const char *why) {
    if (s >= 200 && s < 300) {
        CHECK_EQ(v.action, LUMIO__SUCCESS);
    } else if (s == 416) {
        CHECK_EQ(v.action, LUMIO__AT_END);
    } else if (s >= 300 && s < 400) {
        CHECK(v.action == LUMIO__FAIL && v.code == LUMIO_E_HTTP);
        CHECK(!strncmp(why, "HTTP ", 5) && strstr(why, "redirect not followed"));
    } else if (s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504) {
        CHECK_EQ(v.action, LUMIO__RETRY);
    } else {
        int code = s == 404 || s == 410   ? -ENOENT
                   : s == 401 || s == 403 ? -EACCES
                   : s == 412             ? LUMIO_E_CHANGED
                                          : LUMIO_E_HTTP;
        CHECK_EQ(v.action, LUMIO__FAIL);
        CHECK_EQ(v.code, code);
    }
}

TEST(every_status) {
    for (int s = 100; s < 600; s++) {
        http_head h = head(s);
        lumio__attempt a = get(&h, 0, 100);
        char why[256];
        lumio__verdict v = classify(&a, why);
        expect_status(s, v, why);
        if (v.action == LUMIO__RETRY || (v.action == LUMIO__FAIL && (s < 300 || s >= 400))) {
            char want[64];
            snprintf(want, sizeof want, "HTTP %d %s", s, lumio__status_text(s));
            CHECK(!strcmp(why, want));
        }
    }
}

TEST(status_texts) {
    char why[256];
    static const struct {
        int status, code;
        const char *why;
    } cases[] = {
        {404, -ENOENT, "HTTP 404 Not Found"},
        {410, -ENOENT, "HTTP 410 "},
        {401, -EACCES, "HTTP 401 Unauthorized"},
        {403, -EACCES, "HTTP 403 Forbidden"},
        {412, LUMIO_E_CHANGED, "HTTP 412 Precondition Failed (the object changed)"},
        {400, LUMIO_E_HTTP, "HTTP 400 "},
        {405, LUMIO_E_HTTP, "HTTP 405 Method Not Allowed"},
        {501, LUMIO_E_HTTP, "HTTP 501 "},
        {503, 0, "HTTP 503 Service Unavailable"},
        {429, 0, "HTTP 429 Too Many Requests"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        http_head h = head(cases[i].status);
        lumio__attempt a = get(&h, 0, 10);
        lumio__verdict v = classify(&a, why);
        CHECK_EQ(v.action, cases[i].code ? LUMIO__FAIL : LUMIO__RETRY);
        if (cases[i].code) CHECK_EQ(v.code, cases[i].code);
        CHECK(!strcmp(why, cases[i].why));
    }
    /* A 416 is the end of the object only for a GET. */
    http_head h = head(416);
    lumio__attempt a = get(&h, 0, 10);
    a.span.kind = RREQ_HEAD;
    lumio__verdict v = classify(&a, why);
    CHECK(v.action == LUMIO__FAIL && v.code == LUMIO_E_HTTP);
    CHECK(!strcmp(why, "HTTP 416 Range Not Satisfiable"));
}

TEST(head_refused) {
    for (int s = 100; s < 600; s++)
        CHECK_EQ(lumio__head_refused(s), s == 400 || s == 401 || s == 403 || s == 405 || s == 501);
}

TEST(redirects) {
    char why[256];
    http_head h = head(302);
    lumio__attempt a = get(&h, 0, 10);
    lumio__verdict v = classify(&a, why);
    CHECK(v.action == LUMIO__FAIL && v.code == LUMIO_E_HTTP);
    CHECK(!strcmp(why, "HTTP 302 redirect not followed (no Location)"));
    snprintf(h.location, sizeof h.location, "http://elsewhere/x");
    classify(&a, why);
    CHECK(!strcmp(why, "HTTP 302 redirect not followed"));
    /* A signed request: refused, the Location shown without its secrets,
     * and where S3 says the bucket is, what to set. */
    h = head(301);
    snprintf(h.location, sizeof h.location, "https://b.s3.eu-west-1.amazonaws.com/k");
    snprintf(h.bucket_region, sizeof h.bucket_region, "eu-west-1");
    a.signed_req = true;
    v = classify(&a, why);
    CHECK(v.action == LUMIO__FAIL && v.code == LUMIO_E_HTTP);
    CHECK(!strcmp(why, "HTTP 301 redirect to https://b.s3.eu-west-1.amazonaws.com/k refused: a "
                       "signed request is not sent on (the bucket is in eu-west-1: set "
                       "AWS_REGION=eu-west-1)"));
    h = head(307);
    snprintf(h.location, sizeof h.location, "https://x/k?X-Amz-Signature=deadbeef");
    classify(&a, why);
    CHECK(strstr(why, "HTTP 307 redirect to https://x/k?X-Amz-Signature=") == why);
    CHECK(!strstr(why, "deadbeef"));
    h = head(307);
    classify(&a, why);
    CHECK(!strcmp(why, "HTTP 307 redirect to (no Location) refused: a signed request is not "
                       "sent on"));
    /* What libcurl follows: neither a write nor a signed request. */
    CHECK(lumio__follow_redirects(RREQ_GET, false));
    CHECK(lumio__follow_redirects(RREQ_HEAD, false));
    CHECK(!lumio__follow_redirects(RREQ_GET, true));
    CHECK(!lumio__follow_redirects(RREQ_HEAD, true));
    CHECK(!lumio__follow_redirects(RREQ_PUT, false));
    CHECK(!lumio__follow_redirects(RREQ_PUT, true));
}

/* libcurl's result on a GET that got no head at all. */
static lumio__verdict curl_result(int cc, char *why) {
    static http_head h;
    h = head(0);
    lumio__attempt a = get(&h, 0, 10);
    a.hdr_done = false;
    a.hdr_lines = 0;
    a.curl = cc;
    return classify(&a, why);
}

TEST(curl_errors) {
    char why[256];
    static const int retried[] = {
        CURLE_COULDNT_CONNECT,    CURLE_RECV_ERROR,          CURLE_SEND_ERROR, CURLE_PARTIAL_FILE,
        CURLE_OPERATION_TIMEDOUT, CURLE_GOT_NOTHING,         CURLE_HTTP2,      CURLE_HTTP2_STREAM,
        CURLE_SSL_CONNECT_ERROR,  CURLE_ABORTED_BY_CALLBACK,
    };
    for (size_t i = 0; i < sizeof retried / sizeof *retried; i++) {
        CHECK(lumio__curl_retryable(retried[i]));
        CHECK_EQ(curl_result(retried[i], why).action, LUMIO__RETRY);
        CHECK(!strcmp(why, curl_easy_strerror((CURLcode)retried[i])));
    }
    /* Final: what another attempt cannot change. */
    static const int final[] = {
        CURLE_URL_MALFORMAT,
        CURLE_PEER_FAILED_VERIFICATION,
        CURLE_SSL_CACERT_BADFILE,
        CURLE_LOGIN_DENIED,
        CURLE_WRITE_ERROR,
        CURLE_FILESIZE_EXCEEDED,
        CURLE_READ_ERROR,
        CURLE_BAD_CONTENT_ENCODING,
        CURLE_COULDNT_RESOLVE_PROXY,
    };
    for (size_t i = 0; i < sizeof final / sizeof *final; i++) {
        CHECK(!lumio__curl_retryable(final[i]));
        lumio__verdict v = curl_result(final[i], why);
        CHECK(v.action == LUMIO__FAIL && v.code == LUMIO_E_HTTP);
        CHECK(!strcmp(why, curl_easy_strerror((CURLcode) final[i])));
    }
    lumio__verdict v = curl_result(CURLE_COULDNT_RESOLVE_HOST, why);
    CHECK(v.action == LUMIO__FAIL && v.code == -EHOSTUNREACH);
    /* Every code libcurl has: retried exactly when lumio__curl_retryable says. */
    for (int cc = 1; cc < CURL_LAST; cc++) {
        v = curl_result(cc, why);
        if (cc == CURLE_WEIRD_SERVER_REPLY || cc == CURLE_UNSUPPORTED_PROTOCOL ||
            cc == CURLE_OUT_OF_MEMORY || cc == CURLE_TOO_MANY_REDIRECTS)
            CHECK_EQ(v.action, LUMIO__FAIL);
        else
            CHECK_EQ(v.action, lumio__curl_retryable(cc) ? LUMIO__RETRY : LUMIO__FAIL);
        if (v.action == LUMIO__FAIL)
            CHECK_EQ(v.code, cc == CURLE_COULDNT_RESOLVE_HOST ? -EHOSTUNREACH : LUMIO_E_HTTP);
    }
}

TEST(broken_responses) {
    char why[256];
    CHECK_EQ(curl_result(CURLE_WEIRD_SERVER_REPLY, why).action, LUMIO__FAIL);
    CHECK(!strcmp(why, "not an HTTP response (no status line)"));
    CHECK_EQ(curl_result(CURLE_OUT_OF_MEMORY, why).action, LUMIO__FAIL);
    CHECK(!strcmp(why, "a response header line longer than 100 KiB"));
    CHECK_EQ(curl_result(CURLE_TOO_MANY_REDIRECTS, why).action, LUMIO__FAIL);
    CHECK(!strcmp(why, "more than 5 redirects"));

    http_head h = head(302);
    snprintf(h.location, sizeof h.location, "file:///etc/passwd");
    lumio__attempt a = get(&h, 0, 10);
    a.curl = CURLE_UNSUPPORTED_PROTOCOL;
    CHECK_EQ(classify(&a, why).action, LUMIO__FAIL);
    CHECK(!strcmp(why, "redirect to a file:// URL refused (only http and https are followed)"));
    snprintf(h.location, sizeof h.location, "gopher:x");
    classify(&a, why);
    CHECK(!strcmp(why, "redirect refused (only http and https are followed)"));
    h = head(200);
    a.curl = CURLE_WEIRD_SERVER_REPLY;
    CHECK_EQ(classify(&a, why).code, LUMIO_E_HTTP);
    char want[160];
    snprintf(want, sizeof want, "a malformed HTTP response (%s)",
             curl_easy_strerror(CURLE_WEIRD_SERVER_REPLY));
    CHECK(!strcmp(why, want));
    /* Out of memory once the head is whole is not about the head. */
    a.curl = CURLE_OUT_OF_MEMORY;
    CHECK_EQ(classify(&a, why).action, LUMIO__FAIL);
    CHECK(!strcmp(why, curl_easy_strerror(CURLE_OUT_OF_MEMORY)));

    /* A head cut off, with or without libcurl noticing: final. */
    a.curl = CURLE_OK;
    a.hdr_done = false;
    a.hdr_lines = 1;
    lumio__verdict v = classify(&a, why);
    CHECK(v.action == LUMIO__FAIL && v.code == LUMIO_E_HTTP);
    CHECK(!strcmp(why, "the connection closed after the status line"));
    a.curl = CURLE_RECV_ERROR;
    a.hdr_lines = 3;
    CHECK_EQ(classify(&a, why).action, LUMIO__FAIL);
    CHECK(!strcmp(why, "the connection closed inside the response header"));
    a.hdr_done = true;
    CHECK_EQ(classify(&a, why).action, LUMIO__RETRY); /* the body cut: resumed */

    /* A Content-Length that is not a number: final, whatever libcurl said. */
    h.content_length_bad = 1;
    v = classify(&a, why);
    CHECK(v.action == LUMIO__FAIL && v.code == LUMIO_E_HTTP);
    CHECK(!strcmp(why, "the Content-Length is out of range or not a number"));
}

TEST(own_clocks) {
    char why[256];
    http_head h = head(200);
    lumio__attempt a = get(&h, 0, 10);
    a.curl = CURLE_ABORTED_BY_CALLBACK;
    a.stalled = true;
    CHECK_EQ(classify(&a, why).action, LUMIO__RETRY);
    CHECK(!strcmp(why, "no data for 30 s"));
    /* The request's own time is final, whatever else happened. */
    a.timed_out = true;
    lumio__verdict v = classify(&a, why);
    CHECK(v.action == LUMIO__FAIL && v.code == -ETIMEDOUT);
    CHECK(!strcmp(why, "no progress for 60 s"));
    lumio__limits half = lim;
    half.timeout_ms = 500;
    h = head(503);
    lumio__classify(&a, &half, why, sizeof why);
    CHECK(!strcmp(why, "no progress for 0.5 s"));
}

TEST(more_than_asked) {
    /* The body callback stops a server sending past the range: once the
     * whole range is in, that is a success. */
    char why[256];
    http_head h = head(200);
    lumio__attempt a = get(&h, 0, 10);
    a.curl = CURLE_WRITE_ERROR;
    a.span.got = 10;
    CHECK_EQ(classify(&a, why).action, LUMIO__SUCCESS);
    a.span.got = 9;
    CHECK_EQ(classify(&a, why).action, LUMIO__FAIL);
    a.span.got = 10;
    a.span.kind = RREQ_PUT;
    CHECK_EQ(classify(&a, why).action, LUMIO__FAIL);
}

TEST(past_the_end) {
    char why[256];
    http_head h = head(416);
    h.total = 1000;
    lumio__attempt a = get(&h, 1000, 10);
    a.have_size = true;
    a.size = 1000;
    lumio__verdict v = classify(&a, why);
    CHECK(v.action == LUMIO__AT_END && !v.pin_size);
    /* The object is not the size pinned, or ends before where we are. */
    h.total = 900;
    v = classify(&a, why);
    CHECK(v.action == LUMIO__FAIL && v.code == LUMIO_E_CHANGED);
    CHECK(!strcmp(why, "the object changed size while it was read"));
    h.total = HTTP_NONE;
    a.span.off = 500;
    CHECK_EQ(classify(&a, why).code, LUMIO_E_CHANGED);
    a.span.off = 1000;
    CHECK_EQ(classify(&a, why).action, LUMIO__AT_END);
    /* Nothing pinned: from byte 0 the object is empty, its size learned. */
    a.have_size = false;
    h.total = 0;
    a.span.off = 0;
    v = classify(&a, why);
    CHECK(v.action == LUMIO__AT_END && v.pin_size);
    a.span.got = 5;
    CHECK(!classify(&a, why).pin_size);
    a.span.got = 0;
    h.total = HTTP_NONE;
    CHECK(!classify(&a, why).pin_size);
}

TEST(short_body) {
    char why[256];
    http_head h = head(206);
    lumio__span s = {RREQ_GET, 100, 50, 20};
    bool eof = false;
    CHECK_EQ(lumio__success(&s, &h, &eof, why, sizeof why), LUMIO__RETRY);
    CHECK(!eof);
    CHECK(!strcmp(why, "the body ended at byte 120"));
    s.got = 50;
    CHECK_EQ(lumio__success(&s, &h, &eof, why, sizeof why), LUMIO__SUCCESS);
    /* Where the object ends, the range may end early. */
    s.got = 20;
    eof = true;
    CHECK_EQ(lumio__success(&s, &h, &eof, why, sizeof why), LUMIO__SUCCESS);
    /* A 200 without a length ends where the connection ends it. */
    h = head(200);
    eof = false;
    CHECK_EQ(lumio__success(&s, &h, &eof, why, sizeof why), LUMIO__SUCCESS);
    CHECK(eof);
    h.content_length = 70;
    eof = false;
    CHECK_EQ(lumio__success(&s, &h, &eof, why, sizeof why), LUMIO__RETRY);
    /* A HEAD has no body to be short of. */
    s.kind = RREQ_HEAD;
    CHECK_EQ(lumio__success(&s, &h, &eof, why, sizeof why), LUMIO__SUCCESS);
}

TEST(resumed_ranges) {
    char buf[64];
    lumio__span s = {RREQ_GET, 100, 50, 0};
    lumio__range_header(&s, buf, sizeof buf);
    CHECK(!strcmp(buf, "bytes=100-149"));
    s.got = 30; /* from the last byte landed */
    lumio__range_header(&s, buf, sizeof buf);
    CHECK(!strcmp(buf, "bytes=130-149"));
    s = (lumio__span){RREQ_GET, 0, UINT64_MAX, 0}; /* the whole object */
    lumio__range_header(&s, buf, sizeof buf);
    CHECK(!strcmp(buf, ""));
    s.got = 4096; /* a stream resumed */
    lumio__range_header(&s, buf, sizeof buf);
    CHECK(!strcmp(buf, "bytes=4096-"));
    s = (lumio__span){RREQ_GET, 7, UINT64_MAX, 0};
    lumio__range_header(&s, buf, sizeof buf);
    CHECK(!strcmp(buf, "bytes=7-"));
    s = (lumio__span){RREQ_HEAD, 0, 0, 0};
    lumio__range_header(&s, buf, sizeof buf);
    CHECK(!strcmp(buf, ""));
    s = (lumio__span){RREQ_PUT, 0, 10, 0};
    lumio__range_header(&s, buf, sizeof buf);
    CHECK(!strcmp(buf, ""));
}

TEST(answers_to_a_range) {
    char why[128];
    lumio__range_check r;
    lumio__span s = {RREQ_GET, 100, 50, 20};
    http_head h = head(206);
    h.range_start = 120;
    h.range_end = 149;
    h.total = 1000;
    CHECK_EQ(lumio__check_range(&s, &h, false, &r, why, sizeof why), 0);
    CHECK(r.total == 1000 && r.body_at == 120 && !r.ignored && !r.norange && !r.eof);
    h.total = 140; /* the object ends inside the range */
    CHECK_EQ(lumio__check_range(&s, &h, false, &r, why, sizeof why), 0);
    CHECK(r.eof);
    /* A 206 from elsewhere than the first byte not yet landed. */
    h.range_start = 100;
    CHECK_EQ(lumio__check_range(&s, &h, false, &r, why, sizeof why), LUMIO_E_HTTP);
    CHECK(!strcmp(why, "the server answered a range starting at byte 100"));
    h.range_start = HTTP_NONE;
    CHECK_EQ(lumio__check_range(&s, &h, false, &r, why, sizeof why), LUMIO_E_HTTP);
    CHECK(!strcmp(why, "a 206 response without a valid Content-Range"));
    h = head(206);
    h.content_length_bad = 1;
    CHECK_EQ(lumio__check_range(&s, &h, false, &r, why, sizeof why), LUMIO_E_HTTP);
    CHECK(!strcmp(why, "the Content-Length is out of range or not a number"));

    /* A 200 to a range: the whole object. Not where bytes have landed,
     * unless the caller skips to them (whole_ok). */
    h = head(200);
    h.content_length = 1000;
    CHECK_EQ(lumio__check_range(&s, &h, false, &r, why, sizeof why), LUMIO_E_HTTP);
    CHECK(r.norange && r.ignored);
    CHECK(!strcmp(why, "the server ignored the Range header"));
    CHECK_EQ(lumio__check_range(&s, &h, true, &r, why, sizeof why), 0);
    CHECK(r.ignored && !r.norange && r.body_at == 0 && r.total == 1000);
    /* From byte 0 its first bytes are the range. */
    s = (lumio__span){RREQ_GET, 0, 50, 0};
    CHECK_EQ(lumio__check_range(&s, &h, false, &r, why, sizeof why), 0);
    CHECK(r.ignored && !r.eof);
    h.content_length = 50; /* exactly the range: nothing was ignored */
    CHECK_EQ(lumio__check_range(&s, &h, false, &r, why, sizeof why), 0);
    CHECK(!r.ignored);
    h.content_length = HTTP_NONE;
    CHECK_EQ(lumio__check_range(&s, &h, false, &r, why, sizeof why), 0);
    CHECK(r.ignored && r.total == HTTP_NONE);
    /* The whole object asked for. */
    s = (lumio__span){RREQ_GET, 0, UINT64_MAX, 0};
    h.content_length = 1000;
    CHECK_EQ(lumio__check_range(&s, &h, false, &r, why, sizeof why), 0);
    CHECK(!r.ignored && r.eof && r.total == 1000);
    /* Other successes carry no size. */
    h = head(204);
    CHECK_EQ(lumio__check_range(&s, &h, false, &r, why, sizeof why), 0);
    CHECK(r.total == UINT64_MAX && !r.eof);
}

TEST(backoff_growth_and_cap) {
    /* rand 0: the fixed half; the delay doubles until the cap. */
    static const int64_t low[] = {50, 100, 200, 400, 800, 1600, 2500, 2500, 2500};
    for (unsigned n = 1; n <= 9; n++) CHECK_EQ(lumio__backoff(n, &lim, -1, 0), low[n - 1]);
    /* The largest jitter: the whole delay. */
    CHECK_EQ(lumio__backoff(1, &lim, -1, 50), 100);
    CHECK_EQ(lumio__backoff(3, &lim, -1, 200), 400);
    CHECK_EQ(lumio__backoff(30, &lim, -1, 2500), 5000);
    /* No count overflows the doubling. */
    CHECK_EQ(lumio__backoff(UINT32_MAX, &lim, -1, 0), 2500);
    lumio__limits none = lim;
    none.backoff_ms = 0;
    CHECK_EQ(lumio__backoff(5, &none, -1, 12345), 0);
}

TEST(backoff_jitter_bounds) {
    uint64_t seed = 42;
    for (unsigned n = 1; n <= 12; n++) {
        uint64_t d = 100ull << (n - 1);
        if (d > 5000) d = 5000;
        int64_t lo = INT64_MAX, hi = 0;
        for (int i = 0; i < 2000; i++) {
            int64_t w = lumio__backoff(n, &lim, -1, rnd(&seed));
            CHECK(w >= (int64_t)(d / 2) && w <= (int64_t)(d / 2 * 2));
            lo = w < lo ? w : lo;
            hi = w > hi ? w : hi;
        }
        /* Random indeed: spread over most of the range. */
        CHECK(hi - lo >= (int64_t)(d / 2) * 8 / 10);
    }
}

TEST(retry_after) {
    CHECK_EQ(lumio__backoff(1, &lim, 3000, 0), 3000);    /* longer than the backoff: waited */
    CHECK_EQ(lumio__backoff(1, &lim, 0, 0), 50);         /* shorter: the backoff stands */
    CHECK_EQ(lumio__backoff(7, &lim, 2000, 0), 2500);    /* shorter than the grown delay */
    CHECK_EQ(lumio__backoff(1, &lim, 3599000, 0), 5000); /* capped at backoff_max_ms */
    lumio__limits none = lim;
    none.backoff_ms = 0;
    CHECK_EQ(lumio__backoff(1, &none, 1000, 0), 1000);
}

static lumio__retry decide(const lumio__attempt *a, int64_t progress_ms, int64_t now, char *text) {
    return lumio__retry_decide(a, &lim, progress_ms, now, 0, "HTTP 503 Service Unavailable", text,
                               400);
}

TEST(retry_count) {
    char text[400];
    http_head h = head(503);
    lumio__attempt a = get(&h, 0, 10);
    int64_t now = 1000000;
    for (unsigned n = 0; n < lim.retries; n++) {
        a.attempt = n;
        lumio__retry r = decide(&a, now, now, text);
        CHECK(r.retry);
        CHECK_EQ(r.attempt, n + 1);
        CHECK_EQ(r.wait_ms, lumio__backoff(n + 1, &lim, -1, 0));
        CHECK_EQ(r.retry_at_ms, now + r.wait_ms);
    }
    a.attempt = lim.retries; /* the last retry failed too */
    lumio__retry r = decide(&a, now, now, text);
    CHECK(!r.retry);
    CHECK_EQ(r.attempt, lim.retries);
    CHECK_EQ(r.code, LUMIO_E_HTTP);
    CHECK(!strcmp(text, "HTTP 503 Service Unavailable (gave up after 9 attempts)"));
    /* The server's Retry-After is the wait. */
    h.retry_after_ms = 2000;
    a.attempt = 0;
    r = decide(&a, now, now, text);
    CHECK(r.retry && r.wait_ms == 2000 && r.retry_at_ms == now + 2000);
}

TEST(give_up_codes) {
    char text[400];
    http_head h = head(0);
    lumio__attempt a = get(&h, 0, 10);
    a.attempt = lim.retries;
    static const struct {
        int curl, status;
        bool stalled;
        int code;
    } cases[] = {
        {CURLE_RECV_ERROR, 0, false, -EIO},
        {CURLE_GOT_NOTHING, 0, false, -EIO},
        {CURLE_PARTIAL_FILE, 200, false, -EIO},
        {CURLE_OK, 503, false, LUMIO_E_HTTP},
        {CURLE_OK, 429, false, LUMIO_E_HTTP},
        {CURLE_OPERATION_TIMEDOUT, 0, false, -ETIMEDOUT},
        {CURLE_ABORTED_BY_CALLBACK, 200, true, -ETIMEDOUT},
        {CURLE_COULDNT_CONNECT, 0, false, -ECONNREFUSED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        h.status = cases[i].status;
        a.curl = cases[i].curl;
        a.stalled = cases[i].stalled;
        lumio__retry r = decide(&a, 0, 0, text);
        CHECK(!r.retry);
        CHECK_EQ(r.code, cases[i].code);
    }
    /* No retries at all: the first failure is the last. */
    lumio__limits once = lim;
    once.retries = 0;
    a.attempt = 0;
    a.curl = CURLE_RECV_ERROR;
    a.stalled = false;
    h.status = 0;
    lumio__retry r = lumio__retry_decide(&a, &once, 0, 0, 0,
                                         "Failure when receiving data from "
                                         "the peer",
                                         text, sizeof text);
    CHECK(!r.retry && r.attempt == 0 && r.code == -EIO);
    CHECK(!strcmp(text, "Failure when receiving data from the peer (gave up after 1 attempts)"));
}

TEST(progress_earns_fresh_retries) {
    char text[400];
    http_head h = head(0);
    lumio__attempt a = get(&h, 0, 100u << 20);
    a.curl = CURLE_PARTIAL_FILE;
    a.attempt = lim.retries; /* out of retries, but this attempt moved */
    a.moved = LUMIO__RESUME_FRESH;
    lumio__retry r = decide(&a, 0, 5, text);
    CHECK(r.retry && r.attempt == 1 && r.wait_ms == 0 && r.retry_at_ms == 0);
    a.moved = LUMIO__RESUME_FRESH - 1; /* not enough */
    r = decide(&a, 0, 5, text);
    CHECK(!r.retry && r.attempt == lim.retries);
}

TEST(time_budget) {
    char text[400];
    http_head h = head(503);
    lumio__attempt a = get(&h, 0, 10);
    a.attempt = 2; /* the next wait: 200 ms (rand 0) */
    int64_t progress = 0;
    lumio__retry r = decide(&a, progress, 59800, text); /* starts at 60000: in time */
    CHECK(r.retry && r.wait_ms == 200);
    r = decide(&a, progress, 59801, text); /* would start past the limit */
    CHECK(!r.retry && r.code == -ETIMEDOUT && r.attempt == 2);
    CHECK(!strcmp(text, "HTTP 503 Service Unavailable (gave up after 3 attempts: no progress for "
                        "60 s)"));
    /* Progress moves the budget. */
    r = decide(&a, 1, 59801, text);
    CHECK(r.retry);
    /* A Retry-After past the budget is not waited for. */
    h.retry_after_ms = 3000;
    r = decide(&a, 0, 58000, text);
    CHECK(!r.retry && r.code == -ETIMEDOUT);
}

TEST(clocks) {
    lumio__clocks c = {0};
    lumio__clocks_start(&c, 0, 1000);
    CHECK(c.progress_ms == 1000 && c.last_byte_ms == 1000);
    /* Waiting for a connection of the pool on the first attempt: never out
     * of time, never stalled. */
    CHECK_EQ(lumio__clocks_tick(&c, &lim, 500000, 0, false, false), LUMIO__GOING);
    CHECK(c.progress_ms == 500000 && c.last_byte_ms == 500000);
    /* On the wire: stalled after stall_timeout_ms without a byte. */
    CHECK_EQ(lumio__clocks_tick(&c, &lim, 530000, 0, true, false), LUMIO__GOING);
    CHECK_EQ(lumio__clocks_tick(&c, &lim, 530001, 0, true, false), LUMIO__STALLED);
    /* A paused reader is not a silent server. */
    CHECK_EQ(lumio__clocks_tick(&c, &lim, 540000, 0, true, true), LUMIO__GOING);
    CHECK(c.progress_ms == 540000 && c.last_byte_ms == 540000);
    /* Bytes keep the stall quiet; only progress keeps the time limit. */
    c.last_byte_ms = 590000;
    CHECK_EQ(lumio__clocks_tick(&c, &lim, 600000, 0, true, false), LUMIO__GOING);
    CHECK_EQ(lumio__clocks_tick(&c, &lim, 600001, 0, true, false), LUMIO__TIMED_OUT);

    /* A retry: the limit runs on from the earlier attempts, less the wait
     * for a free slot after the retry was due. */
    c = (lumio__clocks){.progress_ms = 1000, .last_byte_ms = 1000, .queued_ms = 2000};
    lumio__clocks_start(&c, 1, 5000);
    CHECK(c.progress_ms == 4000 && c.last_byte_ms == 5000);
    c = (lumio__clocks){.progress_ms = 1000, .last_byte_ms = 1000, .queued_ms = 4999};
    lumio__clocks_start(&c, 1, 5000); /* one ms late */
    CHECK_EQ(c.progress_ms, 1001);
    c = (lumio__clocks){.progress_ms = 1000, .last_byte_ms = 1000, .queued_ms = 9000};
    lumio__clocks_start(&c, 1, 5000); /* started before it was due */
    CHECK(c.progress_ms == 1000 && c.last_byte_ms == 5000);
    /* The retry's wait for the pool counts against the limit. */
    CHECK_EQ(lumio__clocks_tick(&c, &lim, 61000, 1, false, false), LUMIO__GOING);
    CHECK_EQ(c.last_byte_ms, 61000);
    CHECK_EQ(lumio__clocks_tick(&c, &lim, 61001, 1, false, false), LUMIO__TIMED_OUT);
}

int main(void) {
    return run_tests("remote_policy");
}
