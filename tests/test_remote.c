/* The remote reader against a real nginx (started by tests/http_env.sh) and,
 * for the failure cases, the fault-injecting proxy in front of it
 * (tests/faultproxy.c, path in LUMIO_FAULTPROXY). Every download is compared
 * byte for byte with the file nginx serves. */
#include "tests/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <lumio/remote.h>
#include <lumio/ring.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *http_url, *http_root, *proxy_bin;

/* ROOT/name filled with `size` random bytes; returns the bytes. */
static uint8_t *serve(const char *name, size_t size, uint64_t seed) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", http_root, name);
    uint8_t *d = make_file(path, size, seed);
    chmod(path, 0644);
    return d;
}

static char *url_of(const char *base, const char *name) {
    static char bufs[4][1024];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, 1024, "%s/%s", base, name);
    return b;
}

static lumio_remote *client(unsigned concurrency, unsigned pool, uint64_t part) {
    lumio_remote_options o;
    o = (lumio_remote_options){0};
    o.concurrency = concurrency;
    o.pool_size = pool;
    o.part_size = part;
    o.backoff_ms = 10;
    o.backoff_max_ms = 100;
    lumio_remote *rm = NULL;
    if (lumio_remote_create(&rm, &o) < 0) return NULL;
    return rm;
}

/* ---- the fault proxy ----------------------------------------------------- */

typedef struct proxy {
    pid_t pid;
    char url[128];
    char log[1024];
} proxy;

/* Start faultproxy in front of nginx with the given arguments (NULL-ended). */
static int proxy_start(proxy *p, const char *const *args) {
    int fds[2];
    if (pipe(fds) < 0) return -1;
    const char *argv[32];
    int n = 0;
    char upstream[128];
    const char *hp = strstr(http_url, "://") + 3;
    snprintf(upstream, sizeof upstream, "%s", hp);
    snprintf(p->log, sizeof p->log, "%s", tmp_path("proxy.log"));
    unlink(p->log); /* one log per proxy */
    argv[n++] = proxy_bin;
    argv[n++] = "--upstream";
    argv[n++] = upstream;
    argv[n++] = "--log";
    argv[n++] = p->log;
    for (int i = 0; args[i] && n < 30; i++) argv[n++] = args[i];
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    int rc = posix_spawn(&p->pid, proxy_bin, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return -1;
    }
    char line[64] = {0};
    size_t got = 0;
    while (got < sizeof line - 1) {
        ssize_t r = read(fds[0], line + got, 1);
        if (r <= 0 || line[got] == '\n') break;
        got++;
    }
    close(fds[0]);
    int port = 0;
    if (sscanf(line, "port %d", &port) != 1) return -1;
    snprintf(p->url, sizeof p->url, "http://127.0.0.1:%d", port);
    return 0;
}

static void proxy_stop(proxy *p) {
    kill(p->pid, SIGTERM);
    waitpid(p->pid, NULL, 0);
}

/* Requests the proxy saw (lines of its log). */
static int proxy_requests(const proxy *p) {
    size_t size;
    uint8_t *d = read_file(p->log, &size);
    int n = 0;
    for (size_t i = 0; d && i < size; i++) n += d[i] == '\n';
    free(d);
    return n;
}

/* ---- plain HTTP ------------------------------------------------------------ */

TEST(stat_and_missing) {
    uint8_t *d = serve("s.bin", 12345, 1);
    lumio_remote *rm = client(4, 4, 1 << 20);
    lumio_remote_info info;
    CHECK_RC(lumio_remote_stat(rm, url_of(http_url, "s.bin"), &info));
    CHECK_EQ(info.size, 12345);
    CHECK(info.etag[0] == '"');
    int rc = lumio_remote_stat(rm, url_of(http_url, "missing.bin"), &info);
    CHECK_EQ(rc, -ENOENT);
    char want[1200];
    snprintf(want, sizeof want, "HEAD %s: HTTP 404 Not Found", url_of(http_url, "missing.bin"));
    CHECK_STREQ(lumio_remote_last_error(rm, ERRBUF), want);
    CHECK_EQ(lumio_remote_stat(rm, "ftp://x/y", &info), -EINVAL);
    lumio_remote_close(rm);
    free(d);
}

TEST(read_in_parts) {
    size_t size = 3 * 1000 * 1000 + 17;
    uint8_t *d = serve("parts.bin", size, 2);
    lumio_remote *rm = client(8, 8, 256 << 10);
    uint8_t *buf = malloc(size + 100);
    const char *u = url_of(http_url, "parts.bin");
    CHECK_EQ(lumio_remote_read(rm, u, 0, size, buf), (int64_t)size);
    CHECK(memcmp(buf, d, size) == 0);
    /* A range across the end is short; one past the end is empty. */
    CHECK_EQ(lumio_remote_read(rm, u, size - 1000, 5000, buf), 1000);
    CHECK(memcmp(buf, d + size - 1000, 1000) == 0);
    CHECK_EQ(lumio_remote_read(rm, u, size + 10, 100, buf), 0);
    CHECK_EQ(lumio_remote_read(rm, u, 777777, 1234567, buf), 1234567);
    CHECK(memcmp(buf, d + 777777, 1234567) == 0);
    lumio_remote_stats st;
    lumio_remote_get_stats(rm, &st);
    CHECK(st.requests >= 12 + 1 + 1 + 5);
    CHECK(st.connections <= 8);
    free(buf);
    free(d);
    lumio_remote_close(rm);
}

TEST(download_to_file) {
    size_t size = 5 * 1000 * 1000 + 3;
    uint8_t *d = serve("dl.bin", size, 3);
    lumio_remote *rm = client(6, 3, 512 << 10);
    const char *out = tmp_path("dl.out");
    int fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK_EQ(lumio_remote_download(rm, url_of(http_url, "dl.bin"), fd, NULL, NULL), (int64_t)size);
    close(fd);
    size_t got;
    uint8_t *back = read_file(out, &got);
    CHECK_EQ(got, size);
    CHECK(back && memcmp(back, d, size) == 0);
    /* The pool caps the connections, whatever the concurrency. */
    lumio_remote_stats st;
    lumio_remote_get_stats(rm, &st);
    CHECK(st.connections >= 1 && st.connections <= 3);
    free(back);
    free(d);
    lumio_remote_close(rm);
}

TEST(connections_reused) {
    uint8_t *d = serve("reuse.bin", 4 << 20, 4);
    lumio_remote *rm = client(4, 4, 64 << 10);
    uint8_t *buf = malloc(4 << 20);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(lumio_remote_read(rm, url_of(http_url, "reuse.bin"), 0, 4 << 20, buf), 4 << 20);
    CHECK(memcmp(buf, d, 4 << 20) == 0);
    lumio_remote_stats st;
    lumio_remote_get_stats(rm, &st);
    CHECK_EQ(st.requests, 5 * 64);
    CHECK(st.connections <= 4); /* kept alive across 320 requests */
    free(buf);
    free(d);
    lumio_remote_close(rm);
}

/* HTTPS with nginx's self-signed certificate, over HTTP/2: with a pool of
 * one connection, eight requests in flight share it as streams. */
TEST(https_http2_multiplexed) {
    const char *https = getenv("LUMIO_HTTPS_URL"), *ca = getenv("LUMIO_HTTPS_CA");
    if (!https || !ca) SKIP("no LUMIO_HTTPS_URL (http_env.sh serves HTTPS when openssl is here)");
    size_t size = 3 << 20;
    uint8_t *d = serve("tls.bin", size, 40);
    lumio_remote_options o;
    o = (lumio_remote_options){0};
    o.concurrency = 8;
    o.pool_size = 1;
    o.part_size = 128 << 10;
    o.ca_file = ca;
    lumio_remote *rm;
    CHECK_RC(lumio_remote_create(&rm, &o));
    uint8_t *buf = malloc(size);
    int64_t n = lumio_remote_read(rm, url_of(https, "tls.bin"), 0, size, buf);
    if (n < 0) fprintf(stderr, "  %s\n", lumio_remote_last_error(rm, ERRBUF));
    CHECK_EQ(n, (int64_t)size);
    CHECK(memcmp(buf, d, size) == 0);
    lumio_remote_stats st;
    lumio_remote_get_stats(rm, &st);
    CHECK_EQ(st.requests, 24);
    CHECK_EQ(st.connections, 1);
    lumio_remote_close(rm);
    /* Without the CA the certificate is refused: a final error, no retries. */
    o.ca_file = "/dev/null";
    CHECK_RC(lumio_remote_create(&rm, &o));
    CHECK(lumio_remote_read(rm, url_of(https, "tls.bin"), 0, 100, buf) < 0);
    char want[1200];
    snprintf(want, sizeof want, "GET %s bytes=0-99: ", url_of(https, "tls.bin"));
    CHECK_STR_AROUND(lumio_remote_last_error(rm, ERRBUF), want, "");
    lumio_remote_get_stats(rm, &st);
    CHECK_EQ(st.retries, 0);
    lumio_remote_close(rm);
    free(buf);
    free(d);
}

/* ---- the ring engine on URLs -------------------------------------------------- */

TEST(ring_mixed_local_and_remote) {
    size_t size = 2 << 20;
    uint8_t *d = serve("ring.bin", size, 5);
    const char *local = tmp_path("local.bin");
    uint8_t *ld = make_file(local, 100000, 6);
    lumio_remote *rm = client(8, 8, 256 << 10);
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.remote = rm;
    lumio_ring *r;
    CHECK_RC(lumio_ring_create(&r, &o));
    enum { N = 200 };
    lumio_range ranges[N + 3];
    uint64_t seed = 7;
    for (int i = 0; i < N; i++) {
        uint64_t len = 1 + rnd(&seed) % 3000;
        ranges[i] = (lumio_range){.offset = (int64_t)(rnd(&seed) % (size - len)),
                                  .length = len,
                                  .user_data = (uint64_t)i};
    }
    ranges[N] = (lumio_range){.offset = -100, .length = 100, .user_data = N};
    ranges[N + 1] = (lumio_range){.offset = 0, .length = LUMIO_WHOLE, .user_data = N + 1};
    static uint8_t mine[700000];
    ranges[N + 2] =
        (lumio_range){.offset = 1000, .length = sizeof mine, .buf = mine, .user_data = N + 2};
    lumio_range lr = {.offset = 10, .length = 5000, .user_data = 1000};
    lumio_op ops[3] = {{.kind = LUMIO_OP_GET,
                        .path = url_of(http_url, "ring.bin"),
                        .ranges = ranges,
                        .nranges = N + 3},
                       {.kind = LUMIO_OP_GET, .path = local, .ranges = &lr, .nranges = 1},
                       {.kind = LUMIO_OP_GET,
                        .path = url_of(http_url, "nothere.bin"),
                        .ranges = &lr,
                        .nranges = 1,
                        .user_data = 2000}};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, ops, 3, NULL, &g));
    lumio_completion c[64];
    int n, seen = 0, errors = 0;
    while ((n = lumio_ring_wait(r, g, c, 64, 1)) > 0)
        for (int i = 0; i < n; i++) {
            seen++;
            if (c[i].op_index == 2) {
                CHECK_EQ(c[i].result, -ENOENT);
                char want[1200];
                snprintf(want, sizeof want, "GET %s bytes=10-5009: HTTP 404 Not Found",
                         url_of(http_url, "nothere.bin"));
                CHECK_STREQ(lumio_ring_last_error(r, ERRBUF), want);
                errors++;
            } else if (c[i].op_index == 1) {
                CHECK_EQ(c[i].result, 0);
                CHECK(memcmp(c[i].data, ld + 10, 5000) == 0);
            } else {
                CHECK_EQ(c[i].result, 0);
                uint64_t ud = c[i].user_data;
                uint64_t off = ud == N       ? size - 100
                               : ud == N + 1 ? 0
                               : ud == N + 2 ? 1000
                                             : (uint64_t)ranges[ud].offset;
                uint64_t len = ud == N + 1 ? size : ud == N ? 100 : ranges[ud].length;
                CHECK_EQ(c[i].offset, off);
                CHECK_EQ(c[i].length, len);
                CHECK(c[i].data && memcmp(c[i].data, d + off, len) == 0);
                if (ud == N + 2) CHECK(c[i].data == mine);
            }
            lumio_buffer_release(c[i].buffer);
        }
    CHECK_EQ(n, 0);
    CHECK_EQ(seen, N + 3 + 1 + 1);
    CHECK_EQ(errors, 1);
    /* 200 small ranges in 2 MiB coalesce (gap 1 MiB) into a handful of reads. */
    lumio_remote_stats st;
    lumio_remote_get_stats(rm, &st);
    CHECK(st.requests > 0); /* the ring used the client it was given */
    CHECK(st.requests < 40);
    lumio_ring_stats rs;
    lumio_ring_get_stats(r, &rs);
    CHECK(rs.ranges_coalesced >= N);
    lumio_ring_close(r);
    lumio_remote_close(rm);
    free(d);
    free(ld);
}

/* Whole objects in blocks, in order, through a ring that made its own client;
 * and a PUT to a URL is refused at submit. */
TEST(ring_blocks_in_order) {
    size_t size = 1000 * 1000 + 5;
    uint8_t *d = serve("blocks.bin", size, 8);
    lumio_ring *r;
    CHECK_RC(lumio_ring_create(&r, NULL));
    lumio_op op = {
        .kind = LUMIO_OP_GET, .path = url_of(http_url, "blocks.bin"), .block_size = 65536};
    lumio_group_options go;
    go = (lumio_group_options){0};
    go.in_order = 1;
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, &op, 1, &go, &g));
    lumio_completion c[16];
    int n;
    uint64_t next = 0;
    while ((n = lumio_ring_wait(r, g, c, 16, 1)) > 0)
        for (int i = 0; i < n; i++) {
            CHECK_EQ(c[i].result, 0);
            CHECK_EQ(c[i].offset, next);
            CHECK(memcmp(c[i].data, d + next, c[i].length) == 0);
            next += c[i].length;
            lumio_buffer_release(c[i].buffer);
        }
    CHECK_EQ(next, size);
    uint8_t b[4] = {0};
    lumio_range pr = {.offset = 0, .length = 4, .buf = b};
    lumio_op put = {
        .kind = LUMIO_OP_PUT, .path = url_of(http_url, "x"), .ranges = &pr, .nranges = 1};
    CHECK_EQ(lumio_ring_submit(r, &put, 1, NULL, &g), LUMIO_E_UNSUPPORTED);
    lumio_ring_close(r);
    free(d);
}

/* ---- the prefetching reader ------------------------------------------------------ */

TEST(rfile_sequential_prefetches) {
    size_t size = 8 << 20;
    uint8_t *d = serve("seq.bin", size, 9);
    lumio_remote *rm = client(8, 8, 1 << 20);
    lumio_rfile *f;
    CHECK_RC(lumio_rfile_open(&f, rm, url_of(http_url, "seq.bin")));
    CHECK_EQ(lumio_rfile_size(f), size);
    uint8_t *buf = malloc(size);
    size_t got = 0;
    int64_t n;
    while ((n = lumio_rfile_read(f, buf + got, 65536)) > 0) got += (size_t)n;
    CHECK_EQ(n, 0);
    CHECK_EQ(got, size);
    CHECK(memcmp(buf, d, size) == 0);
    lumio_remote_stats st;
    lumio_rfile_get_stats(f, &st);
    CHECK_EQ(st.bytes_fetched, size); /* nothing twice */
    CHECK(st.requests < 128 / 2);     /* 128 reads, far fewer requests */
    /* A soft seek (a forward skip inside the window) reads right. */
    CHECK_EQ(lumio_rfile_seek(f, 0, SEEK_SET), 0);
    for (int i = 0; i < 5; i++) CHECK_EQ(lumio_rfile_read(f, buf, 65536), 65536);
    CHECK_EQ(lumio_rfile_seek(f, 100000, SEEK_CUR), 5 * 65536 + 100000);
    CHECK_EQ(lumio_rfile_read(f, buf, 65536), 65536);
    CHECK(memcmp(buf, d + 5 * 65536 + 100000, 65536) == 0);
    /* Reads at the end. */
    CHECK_EQ(lumio_rfile_seek(f, -10, SEEK_END), (int64_t)size - 10);
    CHECK_EQ(lumio_rfile_read(f, buf, 65536), 10);
    CHECK(memcmp(buf, d + size - 10, 10) == 0);
    CHECK_EQ(lumio_rfile_read(f, buf, 65536), 0);
    CHECK_EQ(lumio_rfile_seek(f, -1, SEEK_SET), -EINVAL);
    lumio_rfile_close(f);
    free(buf);
    free(d);
    lumio_remote_close(rm);
}

TEST(rfile_random_fetches_what_it_asks) {
    size_t size = 16 << 20;
    uint8_t *d = serve("rnd.bin", size, 10);
    lumio_remote *rm = client(8, 8, 8 << 20);
    lumio_rfile *f;
    CHECK_RC(lumio_rfile_open(&f, rm, url_of(http_url, "rnd.bin")));
    uint8_t buf[4096];
    uint64_t seed = 11;
    for (int i = 0; i < 300; i++) {
        uint64_t off = rnd(&seed) % (size / 4096) * 4096;
        CHECK_EQ(lumio_rfile_pread(f, buf, 4096, off), 4096);
        CHECK(memcmp(buf, d + off, 4096) == 0);
    }
    lumio_remote_stats st;
    lumio_rfile_get_stats(f, &st);
    CHECK(st.bytes_fetched <= 2 * 300 * 4096);
    /* Sequential, then a hard seek, then random again: the window closes. */
    for (int i = 0; i < 20; i++)
        CHECK_EQ(lumio_rfile_pread(f, buf, 4096, (uint64_t)i * 4096), 4096);
    CHECK_EQ(lumio_rfile_pread(f, buf, 4096, 12 << 20), 4096);
    CHECK(memcmp(buf, d + (12 << 20), 4096) == 0);
    lumio_rfile_close(f);
    free(d);
    lumio_remote_close(rm);
}

/* The object is replaced while it is read: an error, never mixed bytes. */
TEST(overwrite_is_detected) {
    size_t size = 4 << 20;
    uint8_t *d = serve("ow.bin", size, 12);
    lumio_remote *rm = client(2, 2, 256 << 10);
    lumio_rfile *f;
    CHECK_RC(lumio_rfile_open(&f, rm, url_of(http_url, "ow.bin")));
    uint8_t buf[4096];
    CHECK_EQ(lumio_rfile_pread(f, buf, 4096, 0), 4096);
    free(serve("ow.bin", size, 13)); /* same size, new bytes, new mtime */
    char path[1024];
    snprintf(path, sizeof path, "%s/ow.bin", http_root);
    struct timespec ts[2] = {{.tv_sec = 2000000000}, {.tv_sec = 2000000000}};
    utimensat(AT_FDCWD, path, ts, 0);
    int64_t rc = lumio_rfile_pread(f, buf, 4096, 1 << 20);
    CHECK_EQ(rc, LUMIO_E_CHANGED);
    char want[1200];
    snprintf(want, sizeof want,
             "GET %s bytes=1048576-1052671: HTTP 412 Precondition Failed (the object changed)",
             url_of(http_url, "ow.bin"));
    CHECK_STREQ(lumio_rfile_last_error(f, ERRBUF), want);
    lumio_rfile_close(f);
    free(d);
    lumio_remote_close(rm);
}

/* ---- writes ------------------------------------------------------------------- */

/* PUT to nginx's WebDAV location: whole objects, directories made, read
 * back through the same client (which sees the new object), an empty
 * object, and a location that takes no writes named with its status. */
TEST(put_whole_objects) {
    lumio_remote *rm = client(4, 4, 1 << 20);
    char dav[600], path[1024];
    snprintf(dav, sizeof dav, "%s/dav", http_url);
    uint64_t seed = 41;
    size_t size = 3 << 20;
    uint8_t *d = malloc(size), *back = malloc(size);
    for (size_t i = 0; i < size; i++) d[i] = (uint8_t)rnd(&seed);
    CHECK_RC(lumio_remote_put(rm, url_of(dav, "w/deep/a.bin"), d, size));
    snprintf(path, sizeof path, "%s/w/deep/a.bin", http_root);
    size_t got;
    uint8_t *disk = read_file(path, &got);
    CHECK(disk && got == size && memcmp(disk, d, size) == 0);
    free(disk);
    CHECK_EQ(lumio_remote_read(rm, url_of(http_url, "w/deep/a.bin"), 0, size, back), (int64_t)size);
    CHECK(memcmp(back, d, size) == 0);
    /* Replaced by a shorter one: a reader through the same client sees it. */
    CHECK_EQ(lumio_remote_read(rm, url_of(dav, "w/deep/a.bin"), 0, 100, back), 100);
    CHECK_RC(lumio_remote_put(rm, url_of(dav, "w/deep/a.bin"), d + 1000, 5000));
    CHECK_EQ(lumio_remote_read(rm, url_of(dav, "w/deep/a.bin"), 0, size, back), 5000);
    CHECK(memcmp(back, d + 1000, 5000) == 0);
    CHECK_RC(lumio_remote_put(rm, url_of(dav, "w/empty"), d, 0));
    lumio_remote_info info;
    CHECK_RC(lumio_remote_stat(rm, url_of(http_url, "w/empty"), &info));
    CHECK_EQ(info.size, 0);
    int rc = lumio_remote_put(rm, url_of(http_url, "w/refused.bin"), d, 10);
    CHECK_EQ(rc, LUMIO_E_HTTP);
    char want[1200];
    snprintf(want, sizeof want, "PUT %s (10 bytes): HTTP 405 Method Not Allowed",
             url_of(http_url, "w/refused.bin"));
    CHECK_STREQ(lumio_remote_last_error(rm, ERRBUF), want);
    lumio_remote_close(rm);
    free(d);
    free(back);
}

/* ---- faults --------------------------------------------------------------------- */

/* Download `name` through a proxy with these faults; it must be identical. */
static void through_faults(const char *name, size_t size, uint64_t seed, const char *const *args,
                           unsigned stall_ms, int *retries_out) {
    uint8_t *d = serve(name, size, seed);
    proxy p;
    if (proxy_start(&p, args) < 0) {
        CHECK(!"faultproxy did not start");
        free(d);
        return;
    }
    lumio_remote_options o;
    o = (lumio_remote_options){0};
    o.concurrency = 4;
    o.pool_size = 4;
    o.part_size = 512 << 10;
    o.backoff_ms = 5;
    o.backoff_max_ms = 50;
    o.retries = 20;
    if (stall_ms) o.stall_timeout_ms = stall_ms;
    lumio_remote *rm;
    CHECK_RC(lumio_remote_create(&rm, &o));
    uint8_t *buf = malloc(size);
    int64_t n = lumio_remote_read(rm, url_of(p.url, name), 0, size, buf);
    if (n < 0) fprintf(stderr, "  %s\n", lumio_remote_last_error(rm, ERRBUF));
    CHECK_EQ(n, (int64_t)size);
    CHECK(memcmp(buf, d, size) == 0);
    /* And through the prefetching reader. */
    lumio_rfile *f;
    CHECK_RC(lumio_rfile_open(&f, rm, url_of(p.url, name)));
    memset(buf, 0, size);
    size_t got = 0;
    while ((n = lumio_rfile_read(f, buf + got, 100000)) > 0) got += (size_t)n;
    if (n < 0) fprintf(stderr, "  %s\n", lumio_rfile_last_error(f, ERRBUF));
    CHECK_EQ(got, size);
    CHECK(memcmp(buf, d, size) == 0);
    lumio_rfile_close(f);
    lumio_remote_stats st;
    lumio_remote_get_stats(rm, &st);
    if (retries_out) *retries_out = (int)st.retries;
    lumio_remote_close(rm);
    proxy_stop(&p);
    free(buf);
    free(d);
}

TEST(fault_resets_mid_body) {
    int retries = 0;
    through_faults("reset.bin", 6 << 20, 20,
                   (const char *const[]){"--fault", "reset:3:100000", NULL}, 0, &retries);
    CHECK(retries > 0);
}

TEST(fault_short_bodies) {
    int retries = 0;
    through_faults("short.bin", 6 << 20, 21,
                   (const char *const[]){"--fault", "short:2:70000", NULL}, 0, &retries);
    CHECK(retries > 0);
}

TEST(fault_stalls) {
    int retries = 0;
    through_faults("stall.bin", 3 << 20, 22, (const char *const[]){"--fault", "stall:4:3000", NULL},
                   300, &retries);
    CHECK(retries > 0);
}

TEST(fault_503_bursts_and_latency) {
    int retries = 0;
    through_faults("burst.bin", 4 << 20, 23,
                   (const char *const[]){"--fault", "503:5:3", "--latency-ms", "20", NULL}, 0,
                   &retries);
    CHECK(retries > 0);
}

/* PUTs through 503 bursts and resets of the connection: retried from the
 * start of the body until the object is whole. */
TEST(put_through_faults) {
    proxy p;
    if (proxy_start(&p, (const char *const[]){"--fault", "503:3:2", "--latency-ms", "5", NULL}) <
        0) {
        CHECK(!"faultproxy did not start");
        return;
    }
    lumio_remote_options o;
    o = (lumio_remote_options){0};
    o.backoff_ms = 5;
    o.backoff_max_ms = 20;
    o.retries = 10;
    lumio_remote *rm;
    CHECK_RC(lumio_remote_create(&rm, &o));
    uint64_t seed = 77;
    size_t size = 1 << 20;
    uint8_t *d = malloc(size);
    char dav[600], path[1024];
    snprintf(dav, sizeof dav, "%s/dav", p.url);
    for (int i = 0; i < 6; i++) {
        for (size_t k = 0; k < size; k++) d[k] = (uint8_t)rnd(&seed);
        char name[64];
        snprintf(name, sizeof name, "pf/%d.bin", i);
        int rc = lumio_remote_put(rm, url_of(dav, name), d, size - (size_t)i);
        if (rc < 0) fprintf(stderr, "  %s\n", lumio_remote_last_error(rm, ERRBUF));
        CHECK_RC(rc);
        snprintf(path, sizeof path, "%s/%s", http_root, name);
        size_t got;
        uint8_t *disk = read_file(path, &got);
        CHECK(disk && got == size - (size_t)i && memcmp(disk, d, got) == 0);
        free(disk);
    }
    lumio_remote_stats st;
    lumio_remote_get_stats(rm, &st);
    CHECK(st.retries > 0);
    lumio_remote_close(rm);
    proxy_stop(&p);
    free(d);
}

/* text with its first `from` replaced by `to`, into out. */
static void replace_once(const char *text, const char *from, const char *to, char *out,
                         size_t len) {
    const char *at = strstr(text, from);
    if (!at) {
        snprintf(out, len, "%s", text);
        return;
    }
    snprintf(out, len, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

/* Errors that retrying cannot fix, and retries running out. The error text
 * comes back with the proxy's address as PROXY, to be compared whole. */
static int64_t read_through(const char *name, const char *const *args, unsigned retries, char *err,
                            size_t errlen, int *requests) {
    proxy p;
    CHECK_RC(proxy_start(&p, args));
    lumio_remote_options o;
    o = (lumio_remote_options){0};
    o.retries = retries ? (int)retries : -1;
    o.backoff_ms = 5;
    o.backoff_max_ms = 20;
    lumio_remote *rm;
    CHECK_RC(lumio_remote_create(&rm, &o));
    uint8_t buf[1000];
    int64_t n = lumio_remote_read(rm, url_of(p.url, name), 100, sizeof buf, buf);
    replace_once(lumio_remote_last_error(rm, ERRBUF), p.url, "PROXY", err, errlen);
    lumio_remote_close(rm);
    proxy_stop(&p);
    *requests = proxy_requests(&p);
    return n;
}

TEST(fault_final_errors) {
    free(serve("final.bin", 100000, 30));
    char err[1024];
    int reqs;
    /* 503 forever: gives up after the retries, naming the URL, range, status. */
    CHECK_EQ(read_through("final.bin", (const char *const[]){"--fault", "503:1", NULL}, 3, err,
                          sizeof err, &reqs),
             LUMIO_E_HTTP);
    /* As docs/REMOTE.md shows it. */
    CHECK_STREQ(err, "GET PROXY/final.bin bytes=100-1099: HTTP 503 Service Unavailable (gave up "
                     "after 4 attempts)");
    CHECK_EQ(reqs, 4);
    /* 404, 403 and 412 are final: one request each. */
    CHECK_EQ(read_through("final.bin", (const char *const[]){"--fault", "status:1:404", NULL}, 5,
                          err, sizeof err, &reqs),
             -ENOENT);
    CHECK_EQ(reqs, 1);
    CHECK_STREQ(err, "GET PROXY/final.bin bytes=100-1099: HTTP 404 Not Found");
    CHECK_EQ(read_through("final.bin", (const char *const[]){"--fault", "status:1:403", NULL}, 5,
                          err, sizeof err, &reqs),
             -EACCES);
    CHECK_EQ(reqs, 1);
    CHECK_STREQ(err, "GET PROXY/final.bin bytes=100-1099: HTTP 403 Forbidden");
    CHECK_EQ(read_through("final.bin", (const char *const[]){"--fault", "status:1:412", NULL}, 5,
                          err, sizeof err, &reqs),
             LUMIO_E_CHANGED);
    CHECK_EQ(reqs, 1);
    CHECK_STREQ(
        err,
        "GET PROXY/final.bin bytes=100-1099: HTTP 412 Precondition Failed (the object changed)");
    /* A 500 that passes is retried. */
    CHECK_EQ(read_through("final.bin", (const char *const[]){"--fault", "status:2:500", NULL}, 5,
                          err, sizeof err, &reqs),
             1000);
    /* Resets on every response run out of retries: a clear error, no data. */
    CHECK(read_through("final.bin", (const char *const[]){"--fault", "reset:1:10", NULL}, 2, err,
                       sizeof err, &reqs) < 0);
    CHECK_STR_AROUND(err, "GET PROXY/final.bin bytes=100-1099: ", " (gave up after 3 attempts)");
}

/* Destroying a ring cancels its remote requests instead of waiting for
 * them: here a response stalls for 20 s after half its body. */
TEST(ring_destroy_cancels_remote) {
    size_t size = 4 << 20;
    uint8_t *d = serve("cancel.bin", size, 32);
    proxy p;
    CHECK_RC(proxy_start(&p, (const char *const[]){"--fault", "stall:1:20000", NULL}));
    lumio_remote *rm = client(2, 2, 4 << 20);
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.remote = rm;
    lumio_ring *r;
    CHECK_RC(lumio_ring_create(&r, &o));
    lumio_range rg = {.offset = 0, .length = size};
    lumio_op op = {
        .kind = LUMIO_OP_GET, .path = url_of(p.url, "cancel.bin"), .ranges = &rg, .nranges = 1};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
    lumio_completion c[4];
    CHECK_EQ(lumio_ring_wait(r, g, c, 4, 0), 0); /* starts the I/O, collects nothing */
    usleep(300 * 1000);                          /* the stall has begun */
    lumio_ring_close(r);
    lumio_remote_stats st;
    lumio_remote_get_stats(rm, &st);
    CHECK(st.bytes_fetched > 0);    /* it had started */
    CHECK(st.bytes_fetched < size); /* and did not wait for the rest */
    lumio_remote_close(rm);
    proxy_stop(&p);
    free(d);
}

/* The ETag changes between two responses: LUMIO_E_CHANGED, no mixed bytes. */
TEST(fault_etag_changes) {
    size_t size = 2 << 20;
    uint8_t *d = serve("etag.bin", size, 31);
    proxy p;
    CHECK_RC(proxy_start(&p, (const char *const[]){"--fault", "etag:3", NULL}));
    lumio_remote *rm = client(1, 1, 256 << 10);
    uint8_t *buf = malloc(size);
    CHECK_EQ(lumio_remote_read(rm, url_of(p.url, "etag.bin"), 0, size, buf), LUMIO_E_CHANGED);
    char want[1200];
    /* The server's new ETag (the proxy's), then the one it had (nginx's). */
    snprintf(want, sizeof want,
             "GET %s/etag.bin bytes=524288-786431: the object changed while it was read: ETag "
             "\"changed-3\" (size 2097152), was \"",
             p.url);
    CHECK_STR_AROUND(lumio_remote_last_error(rm, ERRBUF), want, "\" (size 2097152)");
    lumio_remote_close(rm);
    proxy_stop(&p);
    free(buf);
    free(d);
}

int main(void) {
    http_url = getenv("LUMIO_HTTP_URL");
    http_root = getenv("LUMIO_HTTP_ROOT");
    proxy_bin = getenv("LUMIO_FAULTPROXY");
    if (!http_url || !http_root || !proxy_bin) {
        printf("SKIP: run under tests/http_env.sh with LUMIO_FAULTPROXY set\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    return run_tests("remote");
}
