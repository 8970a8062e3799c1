/* The WebSocket pieces through the public API alone: a writer to a
 * consumer that stops reading keeps a bounded buffer and reports what it
 * dropped, without hanging; the listener API hands over whole messages; the
 * reader's ws-listen: source reads what a ws:// writer sends. */
#include "tests/testutil.h"

#include <lumio/stream.h>

#include <dirent.h>
#include <libwebsockets.h>
#include <sys/wait.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
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

/* The descriptors open now. */
static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

/* Whether every thread but this one blocks SIGUSR1 and SIGPIPE (SigBlk in
 * /proc/self/task/TID/status), so a program's handler never runs on a thread
 * of the library's, and a write to a closed socket there is an EPIPE. */
static bool other_threads_block_signals(int *threads) {
    DIR *d = opendir("/proc/self/task");
    bool all = d != NULL;
    uint64_t want = 1ull << (SIGUSR1 - 1) | 1ull << (SIGPIPE - 1);
    *threads = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == getpid()) continue;
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue; /* gone meanwhile */
        (*threads)++;
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "SigBlk:", 7) && (strtoull(line + 7, NULL, 16) & want) != want)
                all = false;
        fclose(f);
    }
    if (d) closedir(d);
    return all;
}

static void *serve_quiet(void *arg) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* the test's own thread is not in question */
    return serve(arg);
}

/* A WebSocket writer and listener leave the process as they found it: the
 * SIGPIPE disposition (libwebsockets ignores SIGPIPE when a context is
 * made), no descriptor left open; and the threads they start block
 * signals. */
TEST(ws_process_state) {
    struct sigaction dfl = {.sa_handler = SIG_DFL}, now;
    CHECK_EQ(sigaction(SIGPIPE, &dfl, NULL), 0);
    int fds = count_fds();
    int port = free_port();
    char spec[48], url[64];
    snprintf(spec, sizeof spec, "ws-listen:%d", port);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/p", port);
    served s = {.reading = true};
    CHECK_EQ(lumio_stream_ws_listener_open(&s.l, spec, NULL), 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, serve_quiet, &s), 0);
    lumio_stream_writer_options o = {.flush_samples = 100};
    lumio_stream_writer *w;
    CHECK_EQ(lumio_stream_writer_open(&w, url, &o), 0);
    int threads = 0;
    CHECK(other_threads_block_signals(&threads));
    CHECK(threads >= 2); /* the test's server and the sink's */
    write_samples(w, 1000);
    CHECK_EQ(lumio_stream_writer_finish(w), 0);
    lumio_stream_writer_close(w);
    s.stop = true;
    pthread_join(t, NULL);
    lumio_stream_ws_listener_close(s.l);
    CHECK_EQ(sigaction(SIGPIPE, NULL, &now), 0);
    CHECK(now.sa_handler == SIG_DFL);
    CHECK_EQ(count_fds(), fds);
}

/* The reader's ws-listen: source (a bridge thread of the library's) blocks
 * signals and leaves SIGPIPE alone too. */
TEST(ws_listen_source_process_state) {
    struct sigaction dfl = {.sa_handler = SIG_DFL}, now;
    CHECK_EQ(sigaction(SIGPIPE, &dfl, NULL), 0);
    int fds = count_fds();
    char src[48];
    snprintf(src, sizeof src, "ws-listen:%d", free_port());
    lumio_stream_reader *r;
    CHECK_EQ(lumio_stream_reader_open(&r, src, NULL), 0);
    int threads = 0;
    CHECK(other_threads_block_signals(&threads));
    CHECK(threads >= 1);
    CHECK_EQ(sigaction(SIGPIPE, NULL, &now), 0);
    CHECK(now.sa_handler == SIG_DFL);
    lumio_stream_reader_close(r);
    CHECK_EQ(count_fds(), fds);
}

/* In a child (a process where lumio never made a context yet): 0 when a
 * listener leaves the lws log level the program chose alone. */
static int child_log_level(void) {
    lws_set_log_level(LLL_ERR | LLL_USER, NULL);
    char spec[48];
    snprintf(spec, sizeof spec, "ws-listen:%d", free_port());
    lumio_stream_ws_listener *l;
    if (lumio_stream_ws_listener_open(&l, spec, NULL) < 0) return 2;
    lumio_stream_ws_listener_close(l);
    if (!lwsl_visible(LLL_USER) || !lwsl_visible(LLL_ERR)) return 3;
    lws_set_log_level(LLL_ERR | LLL_WARN | LLL_NOTICE, NULL); /* lws's default */
    if (lumio_stream_ws_listener_open(&l, spec, NULL) < 0) return 4;
    lumio_stream_ws_listener_close(l);
    return lwsl_visible(LLL_ERR) ? 5 : 0; /* the library never prints */
}

/* lws's log level is process-wide: lumio silences lws's default, never a
 * level the program set for its own use of lws. */
TEST(ws_log_level) {
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) _exit(child_log_level());
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
}

int main(void) {
    return run_tests("stream_ws_c");
}
