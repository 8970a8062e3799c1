/* The response-head parser on well-formed and malformed lines. */
#include "remote/http.h"
#include "tests/testutil.h"

static http_head parse(const char *text) {
    http_head h;
    lumio__http_head_reset(&h);
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
        lumio__http_head_line(&h, p, len);
        p += len;
    }
    return h;
}

TEST(partial_content) {
    http_head h = parse("HTTP/1.1 206 Partial Content\r\n"
                        "Content-Range: bytes 100-199/1000\r\n"
                        "ETag: \"5f1-3e8\"\r\n"
                        "Last-Modified: Mon, 23 Nov 2026 01:00:00 GMT\r\n\r\n");
    CHECK_EQ(h.status, 206);
    CHECK_EQ(h.range_start, 100);
    CHECK_EQ(h.range_end, 199);
    CHECK_EQ(h.total, 1000);
    CHECK(!strcmp(h.etag, "\"5f1-3e8\""));
    CHECK(!strcmp(h.last_modified, "Mon, 23 Nov 2026 01:00:00 GMT"));
    CHECK_EQ(h.retry_after_ms, -1);
}

TEST(new_response_resets) {
    http_head h = parse("HTTP/1.1 100 Continue\r\nETag: \"a\"\r\n\r\n"
                        "HTTP/2 503\r\nretry-after: 3\r\n\r\n");
    CHECK_EQ(h.status, 503);
    CHECK_EQ(h.etag[0], 0);
    CHECK_EQ(h.retry_after_ms, 3000);
}

TEST(content_length) {
    http_head h = parse("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
    CHECK_EQ(h.content_length, 1234);
    CHECK_EQ(h.content_length_bad, 0);
    h = parse("HTTP/1.1 200 OK\r\n\r\n");
    CHECK(h.content_length == HTTP_NONE && !h.content_length_bad);
    /* Out of range, signed, not a number, two that differ: refused, never wrapped. */
    static const char *const bad[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length:\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        h = parse(bad[i]);
        CHECK_EQ(h.content_length_bad, 1);
    }
    h = parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5\r\n");
    CHECK(h.content_length == 5 && !h.content_length_bad);
}

TEST(redirect_fields) {
    http_head h = parse("HTTP/1.1 301 Moved Permanently\r\n"
                        "Location: https://bkt.s3.eu-west-1.amazonaws.com/k\r\n"
                        "x-amz-bucket-region: eu-west-1\r\n\r\n");
    CHECK_EQ(h.status, 301);
    CHECK(!strcmp(h.location, "https://bkt.s3.eu-west-1.amazonaws.com/k"));
    CHECK(!strcmp(h.bucket_region, "eu-west-1"));
    h = parse("HTTP/1.1 301 Moved\r\nLocation: x\r\n\r\nHTTP/1.1 200 OK\r\n\r\n");
    CHECK(h.location[0] == 0 && h.bucket_region[0] == 0);
}

TEST(unsatisfiable) {
    http_head h = parse("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */1000\r\n");
    CHECK_EQ(h.status, 416);
    CHECK_EQ(h.total, 1000);
    CHECK_EQ(h.range_start, HTTP_NONE);
}

TEST(malformed_values_are_absent) {
    static const char *bad[] = {
        "Content-Range: bytes 5-4/10\r\n",                      /* start after end */
        "Content-Range: bytes 0-10/10\r\n",                     /* end past the total */
        "Content-Range: bytes -1-5/10\r\n",                     /* a sign */
        "Content-Range: bytes 0-5/\r\n",                        /* no total */
        "Content-Range: items 0-5/10\r\n",                      /* another unit */
        "Content-Range: bytes 0-99999999999999999999999/1\r\n", /* overflow */
        "Content-Range: bytes 0-5/10 junk\r\n",                 /* trailing bytes */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        http_head h = parse(bad[i]);
        CHECK_EQ(h.range_start, HTTP_NONE);
        CHECK_EQ(h.total, HTTP_NONE);
    }
    http_head h = parse("HTTP/1.1 abc\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n");
    CHECK_EQ(h.status, 0);
    CHECK_EQ(h.retry_after_ms, -1);
    /* An unknown total is allowed. */
    h = parse("Content-Range: bytes 0-5/*\r\n");
    CHECK_EQ(h.range_start, 0);
    CHECK_EQ(h.range_end, 5);
    CHECK_EQ(h.total, HTTP_NONE);
}

int main(void) {
    return run_tests("http_head");
}
