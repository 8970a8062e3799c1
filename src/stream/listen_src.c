/* Reader sources that wait for a writer: "tcp-listen:[HOST:]PORT" and
 * "ws-listen:[HOST:]PORT". A bridge thread takes one writer at a time and
 * feeds a socket pair that the reader reads as any descriptor: each
 * writer's signature, then its chunks, whole (a chunk cut by a lost
 * connection never reaches the reader, so it is not taken for damage). With
 * follow the next writer is awaited (until idle_ms), its signature telling
 * the reader a new sequence starts. */
#include "stream/listen_src.h"

#include "stream/ws.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct lsrc {
    int pair[2]; /* [0] the reader's, [1] the bridge's */
    int stop[2]; /* a byte here stops the bridge */
    pthread_t thread;
    bool thread_on;
    atomic_bool stopping;
    bool follow;
    uint32_t idle_ms;
    int lfd;      /* tcp-listen */
    wslisten *wl; /* ws-listen */
    /* The writer being read. */
    uint8_t *buf;
    size_t len, cap;
    bool sig, writer_done, have_writer;
    uint64_t left_ms; /* when the last writer went */
    pthread_mutex_t mu;
    char note[256]; /* the last writer dropped, and why */
};

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

__attribute__((format(printf, 2, 3))) static void note(lsrc *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&b->mu);
    vsnprintf(b->note, sizeof b->note, fmt, ap);
    pthread_mutex_unlock(&b->mu);
    va_end(ap);
}

/* To the reader, whole, waiting for it; -1 when stopped or the reader went. */
static int out_write(lsrc *b, const uint8_t *p, size_t n) {
    while (n) {
        ssize_t k = send(b->pair[1], p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
        struct pollfd pf[2] = {{b->pair[1], POLLOUT, 0}, {b->stop[0], POLLIN, 0}};
        poll(pf, 2, -1);
        if (pf[1].revents || atomic_load(&b->stopping)) return -1;
    }
    return 0;
}

/* One message or unit of a writer: its signature first, then whole chunks.
 * 0 forwarded, 1 the writer broke the format (noted), -1 stop. */
static int forward(lsrc *b, const char *peer, const uint8_t *p, size_t n) {
    if (!b->sig) {
        if (n != STREAM_SIG_LEN || lumio_stream_check_signature(p, n) != 0) {
            note(b, "peer %s: not a lumio stream (no signature); connection dropped", peer);
            return 1;
        }
        b->sig = true;
    } else {
        lumio_stream_chunk_info ci;
        if (lumio_stream_chunk_peek(p, n, &ci) != 0 || ci.length != n) {
            note(b, "peer %s: not a whole chunk; connection dropped", peer);
            return 1;
        }
    }
    return out_write(b, p, n) < 0 ? -1 : 0;
}

/* ---- tcp-listen ------------------------------------------------------------ */

/* Forward what is whole in the buffer. 0 goes on, 1 drop the writer, -1 stop. */
static int tcp_take(lsrc *b, const char *peer) {
    size_t off = 0;
    int rc = 0;
    while (rc == 0 && off < b->len) {
        size_t n = STREAM_SIG_LEN;
        if (b->sig) {
            lumio_stream_chunk_info ci;
            int k = lumio_stream_chunk_peek(b->buf + off, b->len - off, &ci);
            if (k == -EAGAIN) break;
            n = k == 0 ? (size_t)ci.length : b->len - off; /* not a chunk: forward says so */
        } else if (b->len - off < n) {
            break;
        }
        rc = forward(b, peer, b->buf + off, n);
        off += n;
    }
    memmove(b->buf, b->buf + off, b->len - off);
    b->len -= off;
    return rc;
}

static int tcp_read(lsrc *b, int fd, const char *peer) {
    if (b->len == b->cap) {
        size_t cap = b->cap ? LUMIO_MIN(b->cap * 2, (size_t)LUMIO_STREAM_CHUNK_MAX) : 1u << 16;
        uint8_t *p = cap > b->cap ? realloc(b->buf, cap) : NULL;
        if (!p) {
            note(b, "peer %s: a chunk too large to hold; connection dropped", peer);
            return 1;
        }
        b->buf = p;
        b->cap = cap;
    }
    ssize_t k = recv(fd, b->buf + b->len, b->cap - b->len, MSG_DONTWAIT);
    if (k < 0) return errno == EAGAIN || errno == EINTR ? 0 : 2;
    if (k == 0) return 2;
    b->len += (size_t)k;
    return tcp_take(b, peer);
}

/* One writer, to its end. -1: stop. */
static int tcp_serve(lsrc *b, int fd, const char *peer) {
    b->sig = false;
    b->len = 0;
    for (;;) {
        struct pollfd pf[2] = {{fd, POLLIN, 0}, {b->stop[0], POLLIN, 0}};
        if (poll(pf, 2, -1) < 0 && errno != EINTR) return -1;
        if (pf[1].revents) return -1;
        if (!pf[0].revents) continue;
        int rc = tcp_read(b, fd, peer);
        if (rc < 0) return -1;
        if (rc == 1) return 0;
        if (rc == 2) {
            if (b->len)
                note(b, "peer %s: closed inside a chunk (%zu bytes of it discarded)", peer, b->len);
            return 0;
        }
    }
}

/* Wait for the next writer: the first one for ever, later ones idle_ms
 * (0: for ever) under follow. */
static int tcp_accept(lsrc *b, bool first) {
    uint64_t start = mono_ms();
    for (;;) {
        int wait = -1;
        if (!first && b->idle_ms) {
            uint64_t gone = mono_ms() - start;
            if (gone >= b->idle_ms) return -1;
            wait = (int)(b->idle_ms - gone);
        }
        struct pollfd pf[2] = {{b->lfd, POLLIN, 0}, {b->stop[0], POLLIN, 0}};
        if (poll(pf, 2, wait) < 0 && errno != EINTR) return -1;
        if (pf[1].revents) return -1;
        int fd = accept4(b->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) return fd;
    }
}

static void *tcp_main(void *arg) {
    lsrc *b = arg;
    for (bool had_writer = false;;) {
        int fd = tcp_accept(b, !had_writer);
        if (fd < 0) break;
        struct sockaddr_storage a;
        socklen_t al = sizeof a;
        char peer[64] = "?";
        if (getpeername(fd, (struct sockaddr *)&a, &al) == 0)
            lumio__net_name(&a, peer, sizeof peer);
        int rc = tcp_serve(b, fd, peer);
        close(fd);
        if (rc < 0) break;
        if (!b->sig) continue; /* not a writer (a probe, a stranger): wait for one */
        had_writer = true;
        if (!b->follow) break;
    }
    shutdown(b->pair[1], SHUT_WR); /* the reader's end of the data */
    return NULL;
}

/* ---- ws-listen ------------------------------------------------------------- */

static int on_ws(void *arg, const lumio_stream_ws_event *ev) {
    lsrc *b = arg;
    switch (ev->type) {
    case LUMIO_WS_CONNECTED:
        b->sig = false;
        return 0;
    case LUMIO_WS_MESSAGE: {
        int rc = forward(b, ev->peer_name, ev->data, ev->len);
        b->have_writer = b->sig; /* a writer once its signature came */
        if (rc < 0) atomic_store(&b->stopping, true);
        if (rc != 0) b->writer_done = true;
        return rc ? -1 : 0;
    }
    case LUMIO_WS_CLOSED:
        if (ev->len)
            note(b, "peer %s: closed inside a message (%zu bytes of it discarded)", ev->peer_name,
                 ev->len);
        b->writer_done = b->have_writer;
        return 0;
    default:
        note(b, "peer %s: %s; connection dropped", ev->peer_name, ev->why);
        if (b->have_writer) b->writer_done = true;
        return 0;
    }
}

static void *ws_main(void *arg) {
    lsrc *b = arg;
    while (!atomic_load(&b->stopping)) {
        if (lumio__wsl_service(b->wl, 100, on_ws, b) < 0) break;
        if (b->writer_done) { /* the writer went: the end, or wait for the next */
            b->writer_done = b->have_writer = false;
            if (!b->follow) break;
            b->left_ms = mono_ms();
        }
        if (b->follow && b->idle_ms && b->left_ms && !b->have_writer &&
            mono_ms() - b->left_ms >= b->idle_ms)
            break;
    }
    shutdown(b->pair[1], SHUT_WR);
    return NULL;
}

/* ---- the bridge ------------------------------------------------------------ */

static int listen_on(lsrc *b, const char *source) {
    bool ws = !strncmp(source, "ws-listen:", 10);
    const char *spec = source + (ws ? 10 : 11);
    if (ws) {
        lumio_stream_ws_listen_options o = {
            .max_peers = 1, .handshake_ms = 10000, .stall_ms = 60000, .memory = 512u << 20};
        return lumio__wsl_open(&b->wl, spec, &o);
    }
    char host[256], port[8];
    int rc = lumio__net_parse(spec, "127.0.0.1", host, sizeof host, port, sizeof port);
    if (rc == 0) rc = lumio__net_listen(host, port);
    if (rc >= 0) b->lfd = rc;
    return rc < 0 ? rc : 0;
}

int lumio__lsrc_open(lsrc **out, const char *source, bool follow, uint32_t idle_ms, int *fd) {
    *out = NULL;
    if (strncmp(source, "ws-listen:", 10) && strncmp(source, "tcp-listen:", 11)) return 0;
    lsrc *b = calloc(1, sizeof *b);
    if (!b) return -ENOMEM;
    b->pair[0] = b->pair[1] = b->stop[0] = b->stop[1] = b->lfd = -1;
    b->follow = follow;
    b->idle_ms = idle_ms;
    pthread_mutex_init(&b->mu, NULL);
    int rc = listen_on(b, source);
    if (rc == 0 && (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b->pair) < 0 ||
                    pipe2(b->stop, O_CLOEXEC | O_NONBLOCK) < 0))
        rc = -errno;
    if (rc == 0) rc = -lumio__thread_create(&b->thread, b->wl ? ws_main : tcp_main, b);
    if (rc < 0) {
        lumio__lsrc_close(b);
        return rc;
    }
    b->thread_on = true;
    *fd = b->pair[0];
    b->pair[0] = -1; /* the reader's now */
    *out = b;
    return 1;
}

void lumio__lsrc_note(lsrc *b, char *buf, size_t cap) {
    pthread_mutex_lock(&b->mu);
    snprintf(buf, cap, "%s", b->note);
    pthread_mutex_unlock(&b->mu);
}

void lumio__lsrc_close(lsrc *b) {
    if (!b) return;
    if (b->thread_on) {
        atomic_store(&b->stopping, true);
        ssize_t k = write(b->stop[1], "", 1);
        (void)k;
        if (b->wl) lumio__wsl_wake(b->wl);
        pthread_join(b->thread, NULL);
    }
    lumio__wsl_close(b->wl);
    for (int i = 0; i < 2; i++) {
        if (b->pair[i] >= 0) close(b->pair[i]);
        if (b->stop[i] >= 0) close(b->stop[i]);
    }
    if (b->lfd >= 0) close(b->lfd);
    pthread_mutex_destroy(&b->mu);
    free(b->buf);
    free(b);
}
