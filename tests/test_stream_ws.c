/* The WebSocket pieces through the public API alone: a writer to a
 * consumer that stops reading keeps a bounded buffer and reports what it
 * dropped, without hanging; the listener API hands over whole messages; the
 * reader's ws-listen: source reads what a ws:// writer sends. */
#include "tests/testutil.h"

#include <lumio/stream.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

/* A port free now (the listener binds it next). */
static int free_port(void) {
    for (int p = 20000 + (int)(getpid() % 20000);; p++) {
        char spec[32];
        snprintf(spec, sizeof spec, "tcp-listen:%d", p);
        int fd = lumio_stream_listen(spec);
        if (fd >= 0) {
            close(fd);
            return p;
        }
    }
}

typedef struct served {
    lumio_stream_ws_listener *l;
    atomic_bool stop, reading;
    atomic_int messages, connected;
} served;

static int count(void *arg, const lumio_stream_ws_event *ev) {
    served *s = arg;
    if (ev->type == LUMIO_WS_CONNECTED) s->connected++;
    if (ev->type == LUMIO_WS_MESSAGE) s->messages++;
    return 0;
}

/* Serve until the handshake is done; then, unless reading, stop reading
 * (the writer's data piles up in the sockets) until told to stop. */
static void *serve(void *arg) {
    served *s = arg;
    while (!s->stop) {
        if (s->reading || !s->connected)
            lumio_stream_ws_listener_service(s->l, 50, count, s);
        else
            usleep(20000);
    }
    return NULL;
}

static void write_samples(lumio_stream_writer *w, int n) {
    lumio_frame f[3] = {{.function = "inner", .file = "a.c", .line = 1},
                        {.function = "middle", .file = "a.c", .line = 2},
                        {.function = "main", .file = "a.c", .line = 3}};
    for (int i = 0; i < n; i++) {
        f[0].line = (uint32_t)i; /* a frame of its own: chunks that do not shrink to repeats */
        lumio_sample smp = {.timestamp_us = (uint64_t)i, .thread_id = 1, .frames = f, .depth = 3};
        CHECK_EQ(lumio_stream_writer_write_sample(w, &smp), 0);
    }
}

TEST(ws_bounded_buffer) {
    int port = free_port();
    char spec[48], url[64];
    snprintf(spec, sizeof spec, "ws-listen:%d", port);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/p", port);
    served s = {0};
    CHECK_EQ(lumio_stream_ws_listener_open(&s.l, spec, NULL), 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, serve, &s), 0);
    lumio_stream_writer_options o = {
        .flush_samples = 200, .zstd_level = -1, .tcp_buffer = 256 << 10, .close_timeout_ms = 300};
    lumio_stream_writer *w;
    CHECK_EQ(lumio_stream_writer_open(&w, url, &o), 0);
    write_samples(w, 1000000); /* 5000 chunks of some KiB: far more than sockets hold */
    int rc = lumio_stream_writer_finish(w);
    lumio_stream_writer_stats st;
    lumio_stream_writer_get_stats(w, &st);
    CHECK(rc < 0);
    CHECK(st.dropped_chunks > 0 && st.dropped_bytes > 0);
    CHECK_EQ(st.connections, 1);
    CHECK(strstr(lumio_stream_writer_last_error(w, ERRBUF), "dropped from a full buffer"));
    lumio_stream_writer_close(w);
    s.stop = true;
    pthread_join(t, NULL);
    lumio_stream_ws_listener_close(s.l);
}

typedef struct feed {
    char url[64];
    int rc;
} feed;

static void *send_stream(void *arg) {
    feed *f = arg;
    lumio_stream_writer *w;
    lumio_stream_writer_options o = {.flush_samples = 1000};
    for (int i = 0; i < 100; i++) { /* the reader listens once it is open */
        if ((f->rc = lumio_stream_writer_open(&w, f->url, &o)) == 0) break;
        usleep(20000);
    }
    if (f->rc < 0) return NULL;
    write_samples(w, 10000);
    f->rc = lumio_stream_writer_finish(w);
    lumio_stream_writer_close(w);
    return NULL;
}

static int on_sample(void *arg, const lumio_sample *smp) {
    (*(uint64_t *)arg)++;
    return smp->depth == 3 ? 0 : -EINVAL;
}

TEST(ws_listen_reader) {
    int port = free_port();
    char src[48];
    snprintf(src, sizeof src, "ws-listen:%d", port);
    feed f = {.rc = -1};
    snprintf(f.url, sizeof f.url, "ws://127.0.0.1:%d/", port);
    lumio_stream_reader *r;
    CHECK_EQ(lumio_stream_reader_open(&r, src, NULL), 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, send_stream, &f), 0);
    uint64_t n = 0;
    CHECK_EQ(lumio_stream_reader_read(r, on_sample, NULL, &n), 0);
    pthread_join(t, NULL);
    CHECK_EQ(f.rc, 0);
    CHECK_EQ(n, 10000);
    lumio_stream_reader_stats st;
    lumio_stream_reader_get_stats(r, &st);
    CHECK_EQ(st.chunks, 10);
    CHECK_EQ(st.damaged_ranges, 0);
    lumio_stream_reader_close(r);
}

TEST(ws_listen_refuses) {
    lumio_stream_ws_listener *l;
    CHECK_EQ(lumio_stream_ws_listener_open(&l, "tcp-listen:1", NULL), -EINVAL);
    CHECK(strstr(lumio_stream_reader_last_error(NULL, ERRBUF), "ws-listen"));
    CHECK_EQ(lumio_stream_ws_listener_open(&l, "ws-listen:99999", NULL), -EINVAL);
    lumio_stream_ws_listen_options o = {.reserved = {1}};
    CHECK_EQ(lumio_stream_ws_listener_open(&l, "ws-listen:1", &o), -EINVAL);
    lumio_stream_writer *w;
    lumio_stream_writer_options wo = {0};
    CHECK(lumio_stream_writer_open(&w, "ws://127.0.0.1:0/", &wo) < 0);
    CHECK(lumio_stream_writer_open(&w, "ws:///nohost", &wo) < 0);
}

int main(void) {
    return run_tests("stream_ws_c");
}
