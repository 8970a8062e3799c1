/* The conventions of docs/API.md, checked across the four pillars: zeroed
 * options are the defaults, reserved space must be zero, a failed open
 * leaves *out NULL and its text on the thread, last-error texts are per
 * handle and per thread, closes accept NULL, callbacks stop with
 * -ECANCELED. Only the public headers are used, as by any program. */
#include "tests/testutil.h"

#include <lumio/remote.h>
#include <lumio/ring.h>
#include <lumio/stream.h>
#include <lumio/zarr.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <pthread.h>
#include <string.h>

TEST(zeroed_options_are_the_defaults) {
    lumio_ring_options ro = {0};
    lumio_ring *r = (lumio_ring *)1;
    CHECK_RC(lumio_ring_create(&r, &ro));
    lumio_ring_close(r);
    CHECK_RC(lumio_ring_create(&r, NULL));
    lumio_ring_close(r);

    lumio_remote_options mo = {0};
    lumio_remote *rm;
    CHECK_RC(lumio_remote_create(&rm, &mo));
    lumio_remote_close(rm);

    lumio_stream_writer_options wo = {0};
    lumio_stream_writer *w;
    CHECK_RC(lumio_stream_writer_open(&w, tmp_path("zero.lumio"), &wo));
    lumio_frame f = {"main", "a.c", 1};
    lumio_sample s = {.timestamp_us = 1, .thread_id = 1, .frames = &f, .depth = 1};
    CHECK_RC(lumio_stream_writer_write_sample(w, &s));
    CHECK_EQ(lumio_stream_writer_finish(w), 0);
    lumio_stream_writer_close(w);

    lumio_zarr_create_options co = {0}; /* v2, <f8, zstd:3, fill 0 */
    co.ndim = 1;
    co.shape[0] = 10;
    co.chunks[0] = 4;
    lumio_zarr *z;
    CHECK_RC(lumio_zarr_create(&z, tmp_path("zero.zarr"), &co, NULL));
    lumio_zarr_info info;
    lumio_zarr_get_info(z, &info);
    CHECK_EQ(info.format, 2);
    CHECK(strcmp(info.dtype, "<f8") == 0);
    CHECK(strcmp(info.codecs, "zstd:3") == 0);
    lumio_zarr_close(z);
}

TEST(reserved_space_must_be_zero) {
    char err[LUMIO_ERROR_MAX];
    lumio_ring_options ro = {0};
    ro.reserved[7] = 1;
    lumio_ring *r = (lumio_ring *)1;
    CHECK_EQ(lumio_ring_create(&r, &ro), -EINVAL);
    CHECK(r == NULL);
    CHECK(strcmp(lumio_ring_last_error(NULL, err, sizeof err),
                 "lumio_ring_options: reserved fields are not zero") == 0);

    lumio_remote_options mo = {0};
    mo.reserved[0] = 1;
    lumio_remote *rm = (lumio_remote *)1;
    CHECK_EQ(lumio_remote_create(&rm, &mo), -EINVAL);
    CHECK(rm == NULL);
    CHECK(strcmp(lumio_remote_last_error(NULL, err, sizeof err),
                 "lumio_remote_options: reserved fields are not zero") == 0);

    lumio_stream_writer_options wo = {0};
    wo.reserved[3] = 9;
    lumio_stream_writer *w = (lumio_stream_writer *)1;
    CHECK_EQ(lumio_stream_writer_open(&w, tmp_path("r.lumio"), &wo), -EINVAL);
    CHECK(w == NULL);
    lumio_stream_reader_options rdo = {0};
    rdo.reserved[0] = 1;
    lumio_stream_reader *rd = (lumio_stream_reader *)1;
    CHECK_EQ(lumio_stream_reader_open(&rd, tmp_path("r.lumio"), &rdo), -EINVAL);
    CHECK(rd == NULL);

    lumio_zarr_options zo = {0};
    zo.reserved[1] = 1;
    lumio_zarr *z = (lumio_zarr *)1;
    CHECK_EQ(lumio_zarr_open(&z, tmp_path("none.zarr"), &zo), -EINVAL);
    CHECK(z == NULL);
    CHECK(strcmp(lumio_zarr_last_error(NULL, err, sizeof err),
                 "lumio_zarr_options: reserved fields are not zero") == 0);

    /* In a submit: the op, the range, the group options, each named. */
    CHECK_RC(lumio_ring_create(&r, NULL));
    uint64_t g;
    lumio_range rg = {.offset = 0, .length = 1, .reserved = {1}};
    lumio_op op = {.kind = LUMIO_OP_GET, .path = "/dev/null", .ranges = &rg, .nranges = 1};
    CHECK_EQ(lumio_ring_submit(r, &op, 1, NULL, &g), -EINVAL);
    CHECK(strcmp(lumio_ring_last_error(r, err, sizeof err),
                 "submit: op 0 range 0: reserved fields are not zero") == 0);
    rg.reserved[0] = 0;
    op.reserved[2] = 5;
    CHECK_EQ(lumio_ring_submit(r, &op, 1, NULL, &g), -EINVAL);
    CHECK(strcmp(lumio_ring_last_error(r, err, sizeof err),
                 "submit: op 0: reserved fields are not zero") == 0);
    op.reserved[2] = 0;
    lumio_group_options go = {0};
    go.reserved[0] = 1;
    CHECK_EQ(lumio_ring_submit(r, &op, 1, &go, &g), -EINVAL);
    CHECK(strcmp(lumio_ring_last_error(r, err, sizeof err),
                 "submit: lumio_group_options: reserved fields are not zero") == 0);
    lumio_ring_close(r);
}

TEST(failed_opens_leave_null_and_a_text) {
    char err[LUMIO_ERROR_MAX];
    const char *missing = tmp_path("no-such-dir/x");
    char want[5000];

    lumio_stream_reader *rd = (lumio_stream_reader *)1;
    CHECK_EQ(lumio_stream_reader_open(&rd, missing, NULL), -ENOENT);
    CHECK(rd == NULL);
    snprintf(want, sizeof want, "%s: No such file or directory", missing);
    CHECK(strcmp(lumio_stream_reader_last_error(NULL, err, sizeof err), want) == 0);

    lumio_stream_writer *w = (lumio_stream_writer *)1;
    CHECK_EQ(lumio_stream_writer_open(&w, missing, NULL), -ENOENT);
    CHECK(w == NULL);
    CHECK(strcmp(lumio_stream_writer_last_error(NULL, err, sizeof err), want) == 0);

    lumio_zarr *z = (lumio_zarr *)1;
    CHECK_EQ(lumio_zarr_open(&z, missing, NULL), -ENOENT);
    CHECK(z == NULL);
    snprintf(want, sizeof want, "%s: not a Zarr array (no .zarray or zarr.json)", missing);
    CHECK(strcmp(lumio_zarr_last_error(NULL, err, sizeof err), want) == 0);

    lumio_stream_exporter *e = (lumio_stream_exporter *)1;
    CHECK_EQ(lumio_stream_exporter_create(&e, "svg", stdout, NULL), -EINVAL);
    CHECK(e == NULL);
    CHECK(strstr(lumio_stream_exporter_last_error(NULL, err, sizeof err),
                 "export: unknown format 'svg' (collapsed, jsonl, speedscope") == err);

    lumio_stream_ws_listener *l = (lumio_stream_ws_listener *)1;
    CHECK_EQ(lumio_stream_ws_listener_open(&l, "ws-listen:99999", NULL), -EINVAL);
    CHECK(l == NULL);
    CHECK(strstr(lumio_stream_ws_listener_last_error(NULL, err, sizeof err), "ws-listen:99999: ") ==
          err);
    int probe_fd = socket(AF_INET, SOCK_STREAM, 0); /* a free port, for a moment */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    CHECK(bind(probe_fd, (struct sockaddr *)&a, sizeof a) == 0 &&
          getsockname(probe_fd, (struct sockaddr *)&a, &alen) == 0);
    close(probe_fd);
    char spec[64];
    snprintf(spec, sizeof spec, "ws-listen:127.0.0.1:%u", ntohs(a.sin_port));
    CHECK_EQ(lumio_stream_ws_listener_open(&l, spec, NULL), 0);
    CHECK_STREQ(lumio_stream_ws_listener_last_error(l, err, sizeof err), "");
    lumio_stream_ws_listener_close(l);

    /* Every close takes NULL. */
    lumio_stream_exporter_close(NULL);
    lumio_stream_ws_listener_close(NULL);
    lumio_ring_close(NULL);
    lumio_remote_close(NULL);
    lumio_rfile_close(NULL);
    lumio_stream_writer_close(NULL);
    lumio_stream_reader_close(NULL);
    lumio_zarr_close(NULL);
    lumio_zarr_series_close(NULL);
}

/* A thread's failures are its own: another thread sees the handle's latest,
 * and nothing of the first thread's failed opens. */
typedef struct probe {
    lumio_ring *r;
    char handle_text[LUMIO_ERROR_MAX], null_text[LUMIO_ERROR_MAX];
} probe;

static void *read_texts(void *arg) {
    probe *p = arg;
    lumio_ring_last_error(p->r, p->handle_text, sizeof p->handle_text);
    lumio_ring_last_error(NULL, p->null_text, sizeof p->null_text);
    return NULL;
}

TEST(texts_per_handle_and_thread) {
    char err[LUMIO_ERROR_MAX];
    lumio_ring *r;
    CHECK_RC(lumio_ring_create(&r, NULL));
    CHECK(strcmp(lumio_ring_last_error(r, err, sizeof err), "") == 0);
    CHECK_EQ(lumio_ring_cancel(r, 12345), -ENOENT);
    lumio_zarr *z;
    CHECK(lumio_zarr_open(&z, tmp_path("missing.zarr"), NULL) < 0); /* this thread's */
    probe p = {.r = r};
    pthread_t t;
    pthread_create(&t, NULL, read_texts, &p);
    pthread_join(t, NULL);
    CHECK(strcmp(p.handle_text, "cancel: no group 12345 in flight") == 0);
    CHECK(strcmp(p.null_text, "") == 0);
    CHECK(strcmp(lumio_ring_last_error(r, err, sizeof err), "cancel: no group 12345 in flight") ==
          0);
    /* Short buffers truncate, NUL-terminated. */
    char tiny[7];
    CHECK(strcmp(lumio_ring_last_error(r, tiny, sizeof tiny), "cancel") == 0);
    lumio_ring_close(r);
}

/* Two threads failing on one remote client at once each read their own
 * failure's text. */
typedef struct racer {
    lumio_remote *rm;
    char url[64];
    int rc;
    char text[LUMIO_ERROR_MAX];
} racer;

static void *fail_and_read(void *arg) {
    racer *x = arg;
    lumio_remote_info info;
    for (int i = 0; i < 20; i++) {
        x->rc = lumio_remote_stat(x->rm, x->url, &info);
        lumio_remote_last_error(x->rm, x->text, sizeof x->text);
        if (!strstr(x->text, x->url)) break;
    }
    return NULL;
}

TEST(remote_texts_per_thread) {
    lumio_remote_options o = {0};
    o.retries = -1; /* fail at once */
    lumio_remote *rm;
    CHECK_RC(lumio_remote_create(&rm, &o));
    racer a = {.rm = rm}, b = {.rm = rm};
    /* Port 1 on loopback: refused at once. */
    snprintf(a.url, sizeof a.url, "http://127.0.0.1:1/first-object");
    snprintf(b.url, sizeof b.url, "http://127.0.0.1:1/second-object");
    pthread_t ta, tb;
    pthread_create(&ta, NULL, fail_and_read, &a);
    pthread_create(&tb, NULL, fail_and_read, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(a.rc < 0 && b.rc < 0);
    CHECK(strstr(a.text, "first-object") != NULL);
    CHECK(strstr(b.text, "second-object") != NULL);
    lumio_remote_close(rm);
}

static int stop_at_two(void *arg, const lumio_sample *s) {
    (void)s;
    return ++*(int *)arg == 2 ? 1 : 0;
}

TEST(positive_callback_return_is_canceled) {
    const char *path = tmp_path("cb.lumio");
    lumio_stream_writer *w;
    CHECK_RC(lumio_stream_writer_open(&w, path, NULL));
    lumio_frame f = {"main", "a.c", 1};
    for (int i = 0; i < 5; i++) {
        lumio_sample s = {.timestamp_us = (uint64_t)i, .thread_id = 1, .frames = &f, .depth = 1};
        CHECK_RC(lumio_stream_writer_write_sample(w, &s));
    }
    CHECK_EQ(lumio_stream_writer_finish(w), 0);
    lumio_stream_writer_close(w);
    lumio_stream_reader *r;
    CHECK_RC(lumio_stream_reader_open(&r, path, NULL));
    int n = 0;
    CHECK_EQ(lumio_stream_reader_read(r, stop_at_two, NULL, &n), -ECANCELED);
    CHECK_EQ(n, 2);
    char err[LUMIO_ERROR_MAX];
    CHECK(strstr(lumio_stream_reader_last_error(r, err, sizeof err), "stopped by a callback") !=
          NULL);
    lumio_stream_reader_close(r);
}

static int fail_format(void *arg, const lumio_sample *s) {
    (void)arg;
    (void)s;
    return LUMIO_E_FORMAT; /* a callback's own code, not damage in the stream */
}

TEST(callback_codes_pass_through) {
    const char *path = tmp_path("cb2.lumio");
    lumio_stream_writer *w;
    CHECK_RC(lumio_stream_writer_open(&w, path, NULL));
    lumio_frame f = {"main", "a.c", 1};
    lumio_sample s = {.timestamp_us = 1, .thread_id = 1, .frames = &f, .depth = 1};
    CHECK_RC(lumio_stream_writer_write_sample(w, &s));
    CHECK_EQ(lumio_stream_writer_finish(w), 0);
    lumio_stream_writer_close(w);
    lumio_stream_reader *r;
    CHECK_RC(lumio_stream_reader_open(&r, path, NULL));
    CHECK_EQ(lumio_stream_reader_read(r, fail_format, NULL, NULL), LUMIO_E_FORMAT);
    lumio_stream_reader_stats st;
    lumio_stream_reader_get_stats(r, &st);
    CHECK_EQ(st.damaged_ranges, 0);
    lumio_stream_reader_close(r);
}

/* Whole chunks relayed into a writer whose timer seals its own chunks at the
 * same time: every sample of both arrives, nothing is damaged. */
TEST(relay_beside_the_timer) {
    const char *src = tmp_path("relay-src.lumio");
    lumio_stream_writer_options so = {0};
    so.flush_samples = 5;
    lumio_stream_writer *w;
    CHECK_RC(lumio_stream_writer_open(&w, src, &so));
    lumio_frame f[2] = {{"leaf", "a.c", 2}, {"main", "a.c", 1}};
    for (int i = 0; i < 2000; i++) {
        lumio_sample s = {.timestamp_us = (uint64_t)i, .thread_id = 7, .frames = f, .depth = 2};
        CHECK_RC(lumio_stream_writer_write_sample(w, &s));
    }
    CHECK_EQ(lumio_stream_writer_finish(w), 0);
    lumio_stream_writer_close(w);
    FILE *in = fopen(src, "rb");
    CHECK(in != NULL);
    static uint8_t bytes[1 << 20];
    size_t n = fread(bytes, 1, sizeof bytes, in);
    fclose(in);
    CHECK_EQ(lumio_stream_check_signature(bytes, n), 0);

    const char *dst = tmp_path("relay-dst.lumio");
    lumio_stream_writer_options o = {0};
    o.flush_ms = 1; /* a timer thread seals alongside */
    CHECK_RC(lumio_stream_writer_open(&w, dst, &o));
    size_t off = LUMIO_STREAM_SIGNATURE_LEN;
    uint64_t relayed = 0, own = 0;
    while (off < n) {
        lumio_stream_chunk_info ci;
        CHECK_EQ(lumio_stream_chunk_peek(bytes + off, n - off, &ci), 0);
        /* (own samples not flushed: the timer may seal them meanwhile) */
        CHECK_RC(lumio_stream_writer_write_chunk(w, bytes + off, ci.length));
        relayed += ci.samples;
        off += ci.length;
        for (int i = 0; i < 20; i++, own++) {
            lumio_sample s = {.timestamp_us = own, .thread_id = 8, .frames = f, .depth = 1};
            CHECK_RC(lumio_stream_writer_write_sample(w, &s));
        }
    }
    CHECK_EQ(lumio_stream_writer_finish(w), 0);
    lumio_stream_writer_close(w);
    CHECK_EQ(relayed, 2000);
    lumio_stream_reader *r;
    CHECK_RC(lumio_stream_reader_open(&r, dst, NULL));
    CHECK_EQ(lumio_stream_reader_read(r, NULL, NULL, NULL), 0);
    lumio_stream_reader_stats st;
    lumio_stream_reader_get_stats(r, &st);
    lumio_stream_reader_close(r);
    CHECK_EQ(st.damaged_ranges, 0);
    CHECK_EQ(st.torn_tail_bytes, 0);
    CHECK_EQ(st.samples, relayed + own);
}

/* The proposal's flush policies, and the older spelling; only the triggers
 * named seal. */
TEST(flush_policies) {
    lumio_stream_writer_options o = {0};
    CHECK_RC(lumio_stream_flush_policy("interval:180s,samples:5000,bytes:4M", &o));
    CHECK_EQ(o.flush_ms, 180000);
    CHECK_EQ(o.flush_samples, 5000);
    CHECK_EQ(o.flush_bytes, 4 << 20);
    CHECK_RC(lumio_stream_flush_policy("interval:3m", &o));
    CHECK(o.flush_ms == 180000 && o.flush_samples == -1 && o.flush_bytes == -1);
    CHECK_RC(lumio_stream_flush_policy("interval:500ms", &o));
    CHECK_EQ(o.flush_ms, 500);
    CHECK_RC(lumio_stream_flush_policy("samples=30,seconds=5", &o));
    CHECK(o.flush_samples == 30 && o.flush_ms == 5000 && o.flush_bytes == -1);
    char err[LUMIO_ERROR_MAX];
    static const char *const bad[] = {"",
                                      "samples",
                                      "samples:",
                                      "samples:0",
                                      "interval:1x",
                                      "bytes:4Q",
                                      "samples:5,,bytes:1M",
                                      "interval:99999999h",
                                      "samples:99999999999999999999",
                                      "colour:red"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_EQ(lumio_stream_flush_policy(bad[i], &o), -EINVAL);
        CHECK(strstr(lumio_stream_writer_last_error(NULL, err, sizeof err), "flush policy") !=
              NULL);
    }
    CHECK_STREQ(lumio_stream_writer_last_error(NULL, err, sizeof err),
                "flush policy 'colour:red': 'colour:red' is not samples:N, bytes:SIZE or "
                "interval:DURATION (ms, s, m, h), joined by commas");
}

int main(void) {
    return run_tests("api");
}
