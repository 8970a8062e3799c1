/* The remote reader's library calls against servers that misbehave on
 * purpose (tests/hostile_http.py, started by tests/hostile_env.sh): servers
 * that ignore Range, give no length, refuse HEAD, never answer or answer
 * garbage. Every read is compared byte for byte with the served file; every
 * failure must name the URL and say what happened. */
#include "tests/testutil.h"

#include <errno.h>
#include <stdbool.h>
#include <lumio/remote.h>
#include <lumio/ring.h>
#include <sys/stat.h>

static const char *base, *root;
static uint8_t *data;
enum { SIZE = 5000000 + 7 };

static const char *url(const char *path) {
    static char bufs[4][1024];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, 1024, "%s/%s", base, path);
    return b;
}

static lumio_remote *client(uint64_t part, unsigned timeout_ms) {
    lumio_remote_options o;
    o = (lumio_remote_options){0};
    o.part_size = part;
    o.backoff_ms = 10;
    o.backoff_max_ms = 50;
    if (timeout_ms) o.timeout_ms = timeout_ms;
    lumio_remote *rm = NULL;
    if (lumio_remote_create(&rm, &o) < 0) return NULL;
    return rm;
}

static uint64_t whole_gets(lumio_remote *rm) {
    lumio_remote_stats st;
    lumio_remote_get_stats(rm, &st);
    return st.whole_gets;
}

/* lumio_remote_read of a range far from byte 0, in parts of 256 KiB. */
static void read_range(const char *mode, bool expect_stream) {
    lumio_remote *rm = client(256 << 10, 0);
    CHECK(rm);
    if (!rm) return;
    char path[64];
    snprintf(path, sizeof path, "%s/obj.bin", mode);
    uint64_t off = 3000001, len = 1500000;
    uint8_t *buf = malloc(len);
    int64_t n = lumio_remote_read(rm, url(path), off, len, buf);
    if (n < 0) fprintf(stderr, "  %s\n", lumio_remote_last_error(rm, ERRBUF));
    CHECK_EQ(n, (int64_t)len);
    CHECK(n == (int64_t)len && !memcmp(buf, data + off, len));
    CHECK(expect_stream ? whole_gets(rm) > 0 : whole_gets(rm) == 0);
    /* Past the end: what there is. */
    n = lumio_remote_read(rm, url(path), SIZE - 10, 100, buf);
    CHECK_EQ(n, 10);
    CHECK(n == 10 && !memcmp(buf, data + SIZE - 10, 10));
    free(buf);
    lumio_remote_close(rm);
}

TEST(read_plain) {
    read_range("plain", false);
}
TEST(read_ignoring_range) {
    read_range("norange", true);
}
TEST(read_chunked_without_length) {
    read_range("chunked", true);
}
TEST(read_close_delimited) {
    read_range("close", true);
}

/* The whole object through the prefetching reader, in reads of an odd
 * size, then a seek back and a seek forward. */
static void rfile_all(const char *path, bool size_known) {
    lumio_remote *rm = client(256 << 10, 0);
    CHECK(rm);
    if (!rm) return;
    lumio_rfile *f = NULL;
    int rc = lumio_rfile_open(&f, rm, url(path));
    if (rc < 0) fprintf(stderr, "  %s: %s\n", path, lumio_remote_last_error(rm, ERRBUF));
    CHECK_EQ(rc, 0);
    if (rc < 0) {
        lumio_remote_close(rm);
        return;
    }
    CHECK(size_known ? lumio_rfile_size(f) == SIZE : lumio_rfile_size(f) == UINT64_MAX);
    uint8_t *out = malloc(SIZE + 1);
    uint64_t got = 0;
    int64_t n;
    while ((n = lumio_rfile_read(f, out + got, 77777)) > 0) got += (uint64_t)n;
    if (n < 0) fprintf(stderr, "  %s: %s\n", path, lumio_rfile_last_error(f, ERRBUF));
    CHECK_EQ(n, 0);
    CHECK_EQ(got, SIZE);
    CHECK(got == SIZE && !memcmp(out, data, SIZE));
    CHECK_EQ(lumio_rfile_size(f), SIZE);        /* known once read to the end */
    n = lumio_rfile_pread(f, out, 1000, 12345); /* back */
    CHECK(n == 1000 && !memcmp(out, data + 12345, 1000));
    n = lumio_rfile_pread(f, out, 1000, 4000000); /* forward */
    CHECK(n == 1000 && !memcmp(out, data + 4000000, 1000));
    lumio_rfile_close(f);
    free(out);
    lumio_remote_close(rm);
}

/* "http://u:hunter2@127.0.0.1:PORT/PATH": a password the messages must hide. */
static const char *url_with_password(const char *path) {
    static char b[1024];
    snprintf(b, sizeof b, "http://u:hunter2@%s/%s", base + strlen("http://"), path);
    return b;
}

/* Reads f to its end; the status of the last read. */
static int64_t read_to_end(lumio_rfile *f, uint8_t *out) {
    uint64_t got = 0;
    int64_t n;
    while ((n = lumio_rfile_read(f, out + got, 100000)) > 0) got += (uint64_t)n;
    return n;
}

static void says_cut_short(lumio_rfile *f, int64_t n) {
    const char *e = lumio_rfile_last_error(f, ERRBUF);
    CHECK_EQ(n, LUMIO_E_CHANGED);
    if (!strstr(e, "its size was 5000007") || strstr(e, "hunter2"))
        fprintf(stderr, "  shortbody: \"%s\"\n", e);
    CHECK(strstr(e, "shortbody/obj.bin") && strstr(e, "its size was 5000007"));
    CHECK(!strstr(e, "hunter2"));
}

/* HEAD gives the size, the GET a body that ends early: an error, not an
 * end of file, whether the read is one ranged request or the stream a
 * server that ignores Range is read as. */
TEST(rfile_body_shorter_than_size) {
    lumio_remote *rm = client(256 << 10, 0);
    CHECK(rm);
    if (!rm) return;
    lumio_rfile *f = NULL, *g = NULL;
    int rc = lumio_rfile_open(&f, rm, url_with_password("shortbody/obj.bin"));
    CHECK_EQ(rc, 0);
    uint8_t *out = malloc(SIZE);
    if (rc == 0) {
        CHECK_EQ(lumio_rfile_size(f), SIZE);
        says_cut_short(f, read_to_end(f, out)); /* found out by a ranged read */
        /* The object is known to ignore Range now: g reads one stream. */
        rc = lumio_rfile_open(&g, rm, url_with_password("shortbody/obj.bin"));
        CHECK_EQ(rc, 0);
    }
    if (g) {
        says_cut_short(g, read_to_end(g, out));
        CHECK(whole_gets(rm) > 0);
        lumio_rfile_close(g);
    }
    if (f) lumio_rfile_close(f);
    free(out);
    lumio_remote_close(rm);
}

TEST(rfile_ignoring_range) {
    rfile_all("norange/obj.bin", true);
}
TEST(rfile_chunked) {
    rfile_all("chunked/obj.bin", false);
}
TEST(rfile_close_delimited) {
    rfile_all("close/obj.bin", false);
}
TEST(rfile_head_forbidden) { /* a URL presigned for GET: HEAD is 403 */
    rfile_all("nohead/obj.bin?X-Amz-Signature=good", true);
}

TEST(stat_head_forbidden) {
    lumio_remote *rm = client(0, 0);
    lumio_remote_info in;
    int rc = lumio_remote_stat(rm, url("nohead/obj.bin?X-Amz-Signature=good"), &in);
    CHECK_EQ(rc, 0);
    CHECK_EQ(in.size, SIZE);
    CHECK(!strcmp(in.etag, "\"hostile-1\""));
    /* A wrong signature: the GET's own answer is the error. */
    rc = lumio_remote_stat(rm, url("nohead/obj.bin?X-Amz-Signature=bad"), &in);
    CHECK_EQ(rc, -EACCES);
    char want[1200];
    snprintf(want, sizeof want, "GET %s bytes=0-0: HTTP 403 Forbidden",
             url("nohead/obj.bin?X-Amz-Signature=***"));
    CHECK_STREQ(lumio_remote_last_error(rm, ERRBUF), want);
    lumio_remote_close(rm);
}

TEST(download_head_forbidden) {
    lumio_remote *rm = client(1 << 20, 0);
    const char *out = tmp_path("dl");
    FILE *fp = fopen(out, "w+");
    int64_t n = lumio_remote_download(rm, url("nohead/obj.bin?X-Amz-Signature=good"), fileno(fp),
                                      NULL, NULL);
    fclose(fp);
    CHECK_EQ(n, SIZE);
    size_t len = 0;
    uint8_t *got = read_file(out, &len);
    CHECK(got && len == SIZE && !memcmp(got, data, SIZE));
    free(got);
    lumio_remote_close(rm);
}

/* The ring's whole-object GET of a URL learns the size by HEAD: where HEAD
 * is refused (a URL presigned for GET), by a GET of the first byte, as
 * lumio_remote_stat does; a wrong signature is the GET's own 403. */
static int ring_whole(lumio_remote *rm, const char *path, uint8_t **got, uint64_t *len, char *err,
                      size_t errlen) {
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.remote = rm;
    lumio_ring *r;
    if (lumio_ring_create(&r, &o) < 0) return -1;
    lumio_range whole = {.offset = 0, .length = LUMIO_WHOLE, .user_data = 1};
    lumio_op op = {.kind = LUMIO_OP_GET, .path = path, .ranges = &whole, .nranges = 1};
    uint64_t g;
    int rc = lumio_ring_submit(r, &op, 1, NULL, &g);
    *got = NULL;
    *len = 0;
    lumio_completion c[4];
    int n;
    while (rc == 0 && (n = lumio_ring_wait(r, g, c, 4, 1)) > 0)
        for (int i = 0; i < n; i++) {
            if (c[i].result < 0) {
                rc = c[i].result;
                snprintf(err, errlen, "%s", lumio_ring_last_error(r, ERRBUF));
            } else if ((*got = realloc(*got, *len + c[i].length))) {
                memcpy(*got + *len, c[i].data, c[i].length);
                *len += c[i].length;
            }
            lumio_buffer_release(c[i].buffer);
        }
    lumio_ring_close(r);
    return rc;
}

TEST(ring_head_forbidden) {
    lumio_remote *rm = client(1 << 20, 0);
    uint8_t *got;
    uint64_t len;
    char err[1024] = "";
    int rc =
        ring_whole(rm, url("nohead/obj.bin?X-Amz-Signature=good"), &got, &len, err, sizeof err);
    if (rc < 0) fprintf(stderr, "  %s\n", err);
    CHECK_EQ(rc, 0);
    CHECK(len == SIZE && got && !memcmp(got, data, SIZE));
    free(got);
    rc = ring_whole(rm, url("nohead/obj.bin?X-Amz-Signature=bad"), &got, &len, err, sizeof err);
    CHECK_EQ(rc, -EACCES);
    char want[1200];
    snprintf(want, sizeof want, "GET %s bytes=0-0: HTTP 403 Forbidden",
             url("nohead/obj.bin?X-Amz-Signature=***"));
    CHECK_STREQ(err, want);
    free(got);
    /* No size at all (chunked, and HEAD without a length): said so. */
    rc = ring_whole(rm, url("chunked/obj.bin"), &got, &len, err, sizeof err);
    CHECK(rc < 0);
    CHECK(strstr(err, "gives no size") != NULL);
    free(got);
    lumio_remote_close(rm);
}

TEST(timeout_never_answers) {
    CHECK(1);
    lumio_remote *rm = client(0, 300);
    lumio_rfile *f = NULL;
    int rc = lumio_rfile_open(&f, rm, url("hang/x"));
    CHECK_EQ(rc, -ETIMEDOUT);
    char want[1200];
    snprintf(want, sizeof want, "HEAD %s: no progress for 0.3 s", url("hang/x"));
    CHECK_STREQ(lumio_remote_last_error(rm, ERRBUF), want);
    uint8_t b[16];
    CHECK_EQ(lumio_remote_read(rm, url("hang/y"), 0, sizeof b, b), -ETIMEDOUT);
    lumio_remote_close(rm);
}

/* One line naming the request and what happened: "HEAD URL: says". */
static void broken(const char *path, const char *says) {
    lumio_remote *rm = client(0, 30000);
    int rc = lumio_remote_stat(rm, url(path), NULL);
    CHECK(rc < 0);
    char want[1200];
    snprintf(want, sizeof want, "HEAD %s: %s", url(path), says);
    CHECK_STREQ(lumio_remote_last_error(rm, ERRBUF), want);
    lumio_remote_close(rm);
}

TEST(clear_errors) {
    broken("garbage/x", "not an HTTP response (no status line)");
    broken("http09/x", "not an HTTP response (no status line)");
    broken("redirect-file/x",
           "redirect to a file:// URL refused (only http and https are followed)");
    broken("redirect-gopher/x",
           "redirect to a gopher:// URL refused (only http and https are followed)");
    broken("bighdr/x", "a response header line longer than 100 KiB");
    broken("hugelen/x", "the Content-Length is out of range or not a number");
    broken("statusonly/x?delay=0.2", "the connection closed after the status line");
    broken("many100/x", "more than 16 interim (1xx) responses");
    broken("big100/x", "a response header larger than 256 KiB");
}

/* Interim heads are not progress: endless "100 Continue" ends at the
 * request's time limit (the server would go on for 30 s). */
TEST(endless_interim_heads_time_out) {
    lumio_remote *rm = client(256 << 10, 1500);
    CHECK(rm);
    if (!rm) return;
    int rc = lumio_remote_stat(rm, url("spam100/x"), NULL);
    char want[1200];
    snprintf(want, sizeof want, "HEAD %s: no progress for 1.5 s", url("spam100/x"));
    CHECK_STREQ(lumio_remote_last_error(rm, ERRBUF), want);
    CHECK_EQ(rc, -ETIMEDOUT);
    lumio_remote_close(rm);
}

/* One interim head before the response is fine. */
TEST(read_after_early_hints) {
    read_range("early", false);
}

/* A completion's description names its path with the secrets out. */
TEST(describe_redacts) {
    lumio_completion c;
    memset(&c, 0, sizeof c);
    c.path = "https://u:p/w?d#x@h/o?X-Amz-Signature=SIG&api_key=KEY";
    c.result = -EIO;
    c.range_index = LUMIO_NO_RANGE;
    char out[256];
    {
        int whole = lumio_completion_describe(&c, out, sizeof out);
        CHECK_EQ(whole, (int)strlen(out)); /* not truncated: its whole length */
    }
    if (strstr(out, "p/w") || strstr(out, "SIG") || strstr(out, "KEY"))
        fprintf(stderr, "  describe: %s\n", out);
    CHECK(!strncmp(out, "https://u:***@h/o?X-Amz-Signature=***&api_key=***: ", 51));
    c.range_index = 2;
    c.offset = 10;
    c.length = 5;
    {
        int whole = lumio_completion_describe(&c, out, sizeof out);
        CHECK_EQ(whole, (int)strlen(out)); /* not truncated: its whole length */
    }
    CHECK(!strstr(out, "p/w") && strstr(out, "u:***@h/o") && strstr(out, "range 2 (offset 10"));
    char tiny[12];
    CHECK(lumio_completion_describe(&c, tiny, sizeof tiny) > (int)sizeof tiny); /* truncated */
    CHECK(strlen(tiny) == 11 && !strstr(tiny, "p/w"));
}

TEST(redact) {
    char out[512];
    static const char *const cases[][2] = {
        {"GET http://user:pw@host/x: 404", "GET http://user:***@host/x: 404"},
        {"https://a:b@c@h:8/p?q", "https://a:***@h:8/p?q"},
        {"http://h/o?X-Amz-Signature=abc&x=1&X-Amz-Credential=AK%2F1",
         "http://h/o?X-Amz-Signature=***&x=1&X-Amz-Credential=***"},
        {"s3 x-amz-security-token: t http://h/o?x-amz-security-token=TOK#frag",
         "s3 x-amz-security-token: t http://h/o?x-amz-security-token=***#frag"},
        {"see http://u@h/ and 'http://u:p@h2/' end", "see http://u@h/ and 'http://u:***@h2/' end"},
        {"no url here", "no url here"},
        {"://x:y@", "://x:***@"},
        /* A port, then the message: no password there. */
        {"http://127.0.0.1:8080: not a Zarr group", "http://127.0.0.1:8080: not a Zarr group"},
        {"GET http://h:8080: HTTP 500 (user@example.com)",
         "GET http://h:8080: HTTP 500 (user@example.com)"},
        /* A password holding what ends an authority: the userinfo ends at
         * the last '@' before white space. */
        {"GET http://u:a/b@h/x: 404", "GET http://u:***@h/x: 404"},
        {"http://u:a?b=c@h/x?sig=S", "http://u:***@h/x?sig=***"},
        {"http://u:a#b@h:80/x", "http://u:***@h:80/x"},
        {"http://u:a/b?c#d@e@h/x y@z", "http://u:***@h/x y@z"},
        {"x http://u:pa ss@h/x: 404", "x http://u:***@h/x: 404"},
        {"http://u:pa\tss@h/", "http://u:***@h/"},
        {"http://u:pa ss", "http://u:*** ss"},
        /* An '@' in the query is not a userinfo's. */
        {"http://h/o?sig=S&mail=a@b.c", "http://h/o?sig=***&mail=a@b.c"},
        {"http://u@h/o?token=T", "http://u@h/o?token=***"},
        {"http://h:8080/x and http://[::1]:9/y?key=K",
         "http://h:8080/x and http://[::1]:9/y?key=***"},
        /* Keys and passwords by the names services give them. */
        {"http://h/o?key=1&api_key=2&APIKEY=3&Password=4&secret=5&client_secret=6&access_key=7&"
         "keys=8",
         "http://h/o?key=***&api_key=***&APIKEY=***&Password=***&secret=***&client_secret=***&"
         "access_key=***&keys=8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lumio_redact(cases[i][0], out, sizeof out);
        if (strcmp(out, cases[i][1]))
            fprintf(stderr, "  redact: \"%s\" gave \"%s\"\n", cases[i][0], out);
        CHECK(!strcmp(out, cases[i][1]));
    }
    char small[8];
    lumio_redact("http://u:secret@host/", small, sizeof small);
    CHECK(strlen(small) == 7 && !strstr(small, "secret"));
}

int main(void) {
    base = getenv("LUMIO_HOSTILE_URL");
    root = getenv("LUMIO_HOSTILE_ROOT");
    if (!base || !root) {
        printf("run under tests/hostile_env.sh\n");
        return 77;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/obj.bin", root);
    data = make_file(path, SIZE, 11);
    if (!data) return 1;
    int rc = run_tests("remote_hostile");
    free(data);
    return rc;
}
