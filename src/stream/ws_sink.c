/* The WebSocket sink: a client of libwebsockets on a thread of its own, so
 * the writer's thread only queues (netsink's bounded queue and accounting)
 * and wakes it. Every connection sends the signature as one binary message,
 * then each sealed chunk as one. A chunk counts as delivered once the
 * consumer's TCP has acknowledged the bytes that carried it (TCP_INFO's
 * bytes_acked against the bytes written when it left lws's buffer), so TLS
 * framing changes nothing. */
#include "stream/ws.h"

#include <errno.h>
#include <libwebsockets.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WS_PROTOCOL "lumio-stream"
#define WS_OPEN_MS  15000 /* lws's own connect and handshake timeouts come first */

struct wssink {
    netsink q; /* the queue and the delivery counters; fd, lfd unused */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool thread_on, finishing, closing;
    atomic_bool stop;
    struct lws_context *ctx;
    /* The service thread's, under mu where the writer reads them. */
    struct lws *wsi;
    bool open;        /* handshake done, not closed */
    int phase;        /* first connection: 0 pending, 1 made, <0 failed */
    bool sig_pending; /* this connection has not sent the signature yet */
    size_t nunmarked; /* chunks handed to lws, not known to be in the kernel yet */
    uint64_t written; /* bytes in the kernel's hands on this connection, when last marked */
    lws_sorted_usec_list_t sul_retry, sul_tick;
    char host[256], hosthdr[300], path[1024];
    int port, ssl_flags;
    bool insecure;
    char err[300];
    uint8_t *scratch; /* LWS_PRE bytes, then the message */
    size_t scratch_cap;
};

bool lumio__ws_is_sink(const char *sink) {
    return !strncmp(sink, "ws://", 5) || !strncmp(sink, "wss://", 6);
}

/* ws[s]://[userinfo@]HOST[:PORT][/PATH]: the userinfo is not sent (lws has
 * no use for it) and never named in messages. */
static int parse_url(wssink *s, const char *url) {
    bool tls = !strncmp(url, "wss://", 6);
    const char *p = url + (tls ? 6 : 5);
    const char *end = p + strcspn(p, "/?#");
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at) p = at + 1;
    const char *colon = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (!close) return -EINVAL;
        if (close[1] == ':') colon = close + 1;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
    }
    const char *hend = colon ? colon : end;
    if (*p == '[') p++, hend--;
    size_t hn = (size_t)(hend - p);
    if (hn == 0 || hn >= sizeof s->host) return -EINVAL;
    memcpy(s->host, p, hn);
    s->host[hn] = 0;
    s->port = tls ? 443 : 80;
    if (colon) {
        char port[8] = "";
        size_t pn = (size_t)(end - colon - 1);
        if (pn == 0 || pn >= sizeof port) return -EINVAL;
        memcpy(port, colon + 1, pn);
        char *e;
        long v = strtol(port, &e, 10);
        if (*e || v < 1 || v > 65535) return -EINVAL;
        s->port = (int)v;
    }
    snprintf(s->path, sizeof s->path, "%s%s", *end == '/' ? "" : "/", *end == '#' ? "" : end);
    snprintf(s->hosthdr, sizeof s->hosthdr, strchr(s->host, ':') ? "[%s]:%d" : "%s:%d", s->host,
             s->port);
    /* A redirect is not followed: the stream (and the path's query) would go
     * to a host the caller never named. */
    s->ssl_flags = (tls ? LCCSCF_USE_SSL : 0) | LCCSCF_HTTP_NO_FOLLOW_REDIRECT;
    return 0;
}

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The bytes of this connection the kernel took (written) and the peer's TCP
 * acknowledged (acked). */
static bool tcp_counts(struct lws *wsi, uint64_t *acked, uint64_t *written) {
    int fd = wsi ? lws_get_socket_fd(wsi) : -1;
    struct tcp_info ti;
    socklen_t l = sizeof ti;
    int outq = 0;
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) < 0 ||
        l < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof ti.tcpi_bytes_acked ||
        ioctl(fd, SIOCOUTQ, &outq) < 0 || outq < 0)
        return false;
    *acked = ti.tcpi_bytes_acked;
    *written = *acked + (uint64_t)outq;
    return true;
}

/* Chunks handed to lws before a WRITEABLE callback are in the kernel by
 * then (lws calls it only once its own buffer is empty): they end at or
 * before what the kernel holds now. */
static void mark_handed(wssink *s) {
    uint64_t acked, written;
    if (!s->nunmarked || !tcp_counts(s->wsi, &acked, &written)) return;
    netsink *q = &s->q;
    size_t need = q->ninflight + s->nunmarked;
    if (need > q->inflight_cap) {
        size_t cap = LUMIO_MAX(need, q->inflight_cap * 2);
        uint64_t *p = realloc(q->inflight, cap * sizeof(uint64_t));
        if (!p) return; /* marked on a later call */
        q->inflight = p;
        q->inflight_cap = cap;
    }
    for (; s->nunmarked; s->nunmarked--) q->inflight[q->ninflight++] = written;
}

/* Forget the chunks the peer's TCP has acknowledged. */
static void prune(wssink *s) {
    uint64_t acked, written;
    netsink *q = &s->q;
    if (!q->ninflight || !tcp_counts(s->wsi, &acked, &written)) return;
    size_t k = 0;
    while (k < q->ninflight && q->inflight[k] <= acked) k++;
    memmove(q->inflight, q->inflight + k, (q->ninflight - k) * sizeof(uint64_t));
    q->ninflight -= k;
}

static void connect_now(lws_sorted_usec_list_t *sul);

/* The connection is gone (or the attempt failed): what was not known to be
 * acknowledged is lost; try again after a backoff (100 ms doubling to 5 s). */
static void lost(wssink *s, int err) {
    pthread_mutex_lock(&s->mu);
    if (s->open) {
        prune(s); /* the socket is still there while lws closes it */
        s->q.lost_chunks += s->q.ninflight + s->nunmarked;
        s->q.ninflight = s->nunmarked = 0;
    }
    s->open = false;
    s->wsi = NULL;
    s->q.last_err = err;
    s->q.backoff_ms = s->q.backoff_ms ? LUMIO_MIN(s->q.backoff_ms * 2, 5000u) : 100;
    uint32_t wait = s->q.backoff_ms;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (!s->stop && !s->closing && s->phase > 0)
        lws_sul_schedule(s->ctx, 0, &s->sul_retry, connect_now, (lws_usec_t)wait * 1000);
}

/* Take the next message (the signature, else the head chunk) into the
 * scratch buffer, behind LWS_PRE bytes lws writes its header into. Returns
 * its length, 0 for none, -ENOMEM (the chunk stays queued). */
static ssize_t take_next(wssink *s) {
    const uint8_t *p = s->sig_pending ? lumio__stream_signature : NULL;
    size_t n = s->sig_pending ? STREAM_SIG_LEN : 0;
    qchunk *c = s->sig_pending ? NULL : s->q.head;
    if (c) {
        p = c->data;
        n = c->len;
    }
    if (!p) return 0;
    if (n + LWS_PRE > s->scratch_cap) {
        uint8_t *b = realloc(s->scratch, n + LWS_PRE);
        if (!b) return -ENOMEM;
        s->scratch = b;
        s->scratch_cap = n + LWS_PRE;
    }
    memcpy(s->scratch + LWS_PRE, p, n);
    if (c) {
        s->q.head = c->next;
        if (!s->q.head) s->q.tail = NULL;
        s->q.queued -= c->len;
        s->q.nqueued--;
        free(c);
    }
    return (ssize_t)n;
}

/* Hand the next message to lws, which keeps what the socket does not take
 * and calls WRITEABLE again only when it is all gone. */
static int send_next(wssink *s, struct lws *wsi) {
    pthread_mutex_lock(&s->mu);
    mark_handed(s);
    bool sig = s->sig_pending;
    ssize_t n = take_next(s);
    pthread_mutex_unlock(&s->mu);
    if (n == -ENOMEM) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (n == 0) return 0;
    if (lws_write(wsi, s->scratch + LWS_PRE, (size_t)n, LWS_WRITE_BINARY) < n) return -1;
    pthread_mutex_lock(&s->mu);
    if (sig) {
        s->sig_pending = false;
    } else {
        s->nunmarked++;
        s->q.backoff_ms = 0; /* this connection works */
    }
    if (!lws_send_pipe_choked(wsi)) mark_handed(s); /* lws kept nothing back */
    prune(s);
    bool again = s->q.head || (s->nunmarked && s->finishing);
    pthread_mutex_unlock(&s->mu);
    if (again) lws_callback_on_writable(wsi);
    return 0;
}

/* While finishing: mark and prune every 10 ms, and wake the finisher. */
static void tick(lws_sorted_usec_list_t *sul) {
    wssink *s = lws_container_of(sul, wssink, sul_tick);
    pthread_mutex_lock(&s->mu);
    if (s->open) {
        prune(s);
        if (s->nunmarked || s->q.head) lws_callback_on_writable(s->wsi);
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (!s->stop) lws_sul_schedule(s->ctx, 0, &s->sul_tick, tick, 10 * 1000);
}

/* Why the first connection failed, in words (the HTTP status of a refused
 * upgrade when there was one). */
static void open_failed(wssink *s, struct lws *wsi, const char *in) {
    unsigned status = wsi ? lws_http_client_http_response(wsi) : 0;
    char code[16] = "";
    if (!status && wsi && lws_hdr_copy(wsi, code, sizeof code, WSI_TOKEN_HTTP) > 0)
        status = (unsigned)atoi(code);
    if (status && status != 101)
        snprintf(s->err, sizeof s->err, "the server refused the WebSocket upgrade: HTTP %u",
                 status);
    else if (in && (strstr(in, "refused") || strstr(in, "nable to connect")))
        snprintf(s->err, sizeof s->err, "connection refused");
    else if (in && (strstr(in, "SSL") || strstr(in, "TLS")))
        snprintf(s->err, sizeof s->err,
                 "TLS handshake failed: the server's certificate did not verify%s (%s)",
                 s->insecure ? "" : " (a private CA: ca_file; or insecure_tls)", in);
    else
        snprintf(s->err, sizeof s->err, "%s", in && *in ? in : "cannot connect");
}

static int on_event(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    (void)user;
    (void)len;
    wssink *s = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        pthread_mutex_lock(&s->mu);
        s->wsi = wsi;
        s->open = true;
        s->sig_pending = true;
        s->nunmarked = s->q.ninflight = 0;
        s->q.connections++;
        s->phase = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (s->closing) { /* a close frame, then lws closes */
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
            return -1;
        }
        return send_next(s, wsi);
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (s->phase == 0) {
            pthread_mutex_lock(&s->mu);
            open_failed(s, wsi, in);
            s->phase = -1;
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
            return 0;
        }
        lost(s, -ECONNREFUSED);
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        lost(s, -ECONNRESET);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE: /* a consumer has nothing to say: ignored */
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        pthread_mutex_lock(&s->mu);
        if (s->open && (s->q.head || s->sig_pending || s->closing))
            lws_callback_on_writable(s->wsi);
        bool fin = s->finishing;
        pthread_mutex_unlock(&s->mu);
        if (fin && !lws_dll2_is_detached(&s->sul_tick.list)) return 0;
        if (fin) lws_sul_schedule(s->ctx, 0, &s->sul_tick, tick, 1000);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {{WS_PROTOCOL, on_event, 0, 0, 0, NULL, 0},
                                                 {NULL, NULL, 0, 0, 0, NULL, 0}};

static void connect_now(lws_sorted_usec_list_t *sul) {
    wssink *s = lws_container_of(sul, wssink, sul_retry);
    if (s->stop) return;
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof i);
    i.context = s->ctx;
    i.address = s->host;
    i.port = s->port;
    i.path = s->path;
    i.host = s->hosthdr;
    i.origin = s->hosthdr;
    i.ssl_connection = s->ssl_flags;
    i.local_protocol_name = WS_PROTOCOL;
    if (lws_client_connect_via_info(&i)) return;
    if (s->phase == 0) { /* failed before any callback */
        pthread_mutex_lock(&s->mu);
        if (s->phase == 0) {
            snprintf(s->err, sizeof s->err, "cannot connect");
            s->phase = -1;
            pthread_cond_broadcast(&s->cv);
        }
        pthread_mutex_unlock(&s->mu);
        return;
    }
    lost(s, -ECONNREFUSED);
}

static void *service_main(void *arg) {
    wssink *s = arg;
    lws_sul_schedule(s->ctx, 0, &s->sul_retry, connect_now, 1);
    while (!s->stop)
        if (lws_service(s->ctx, 0) < 0) break;
    return NULL;
}

/* The name resolves (else "unknown host", as the TCP sink says). */
static int check_host(const char *host) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int g = getaddrinfo(host, NULL, &hints, &res);
    if (g) return -EHOSTUNREACH;
    freeaddrinfo(res);
    return 0;
}

static int start(wssink *s, const wssink_tls *tls) {
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.user = s;
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.connect_timeout_secs = 5;
    info.timeout_secs = 10; /* the handshake */
    if (tls && tls->ca_file) info.client_ssl_ca_filepath = tls->ca_file;
    s->insecure = tls && tls->insecure;
    if (s->insecure)
        s->ssl_flags |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
                        LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
    if (!(s->ctx = lumio__ws_context_create(&info))) {
        snprintf(s->err, sizeof s->err, "cannot set up libwebsockets%s",
                 tls && tls->ca_file ? " (is ca_file a readable PEM file?)" : "");
        return -EINVAL;
    }
    int rc = lumio__thread_create(&s->thread, service_main, s);
    if (rc) return -rc;
    s->thread_on = true;
    return 0;
}

static int wait_open(wssink *s) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += WS_OPEN_MS / 1000;
    pthread_mutex_lock(&s->mu);
    while (s->phase == 0)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT) break;
    int phase = s->phase;
    if (phase == 0)
        snprintf(s->err, sizeof s->err, "no WebSocket handshake within %d ms", WS_OPEN_MS);
    pthread_mutex_unlock(&s->mu);
    return phase > 0 ? 0 : phase == 0 ? -ETIMEDOUT : -ECONNREFUSED;
}

int lumio__ws_open(wssink **out, const char *url, size_t max_queued, const wssink_tls *tls) {
    *out = NULL;
    lumio__net_error_clear();
    wssink *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->q.fd = s->q.lfd = -1;
    s->q.max_queued = max_queued;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int rc = parse_url(s, url);
    if (rc < 0)
        snprintf(s->err, sizeof s->err,
                 "not a WebSocket URL (ws://HOST[:PORT]/PATH, port 1 to "
                 "65535)");
    else if ((rc = check_host(s->host)) < 0)
        snprintf(s->err, sizeof s->err, "unknown host '%s'", s->host);
    if (rc == 0 && tls && tls->ca_file && access(tls->ca_file, R_OK) < 0) {
        rc = -errno;
        snprintf(s->err, sizeof s->err, "ca_file '%s': %s", tls->ca_file, strerror(-rc));
    }
    if (rc == 0) rc = start(s, tls);
    if (rc == 0) rc = wait_open(s);
    if (rc < 0) {
        lumio__net_set_error("%s", s->err);
        lumio__ws_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int lumio__ws_push(wssink *s, const uint8_t *p, size_t len) {
    pthread_mutex_lock(&s->mu);
    int rc = lumio__net_enqueue(&s->q, p, len);
    pthread_mutex_unlock(&s->mu);
    lws_cancel_service(s->ctx);
    return rc;
}

static void snapshot(wssink *s, netsink *snap) {
    *snap = s->q;
    snap->ninflight += s->nunmarked;
    snap->fd = s->open ? 0 : -1; /* "connected at the end" for messages */
    snap->head = snap->tail = NULL;
    snap->inflight = NULL;
}

void lumio__ws_counters(wssink *s, netsink *snap) {
    pthread_mutex_lock(&s->mu);
    snapshot(s, snap);
    pthread_mutex_unlock(&s->mu);
}

uint64_t lumio__ws_finish(wssink *s, uint32_t wait_ms, netsink *snap) {
    uint64_t deadline = mono_ms() + wait_ms;
    pthread_mutex_lock(&s->mu);
    s->finishing = true;
    pthread_mutex_unlock(&s->mu);
    lws_cancel_service(s->ctx);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        bool done = s->open && !s->q.head && !s->sig_pending && !s->nunmarked && !s->q.ninflight;
        uint64_t now = mono_ms();
        if (done || now >= deadline) break;
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        uint64_t ns = (uint64_t)dl.tv_nsec + LUMIO_MIN(deadline - now, 20u) * 1000000;
        dl.tv_sec += (time_t)(ns / 1000000000);
        dl.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&s->cv, &s->mu, &dl);
    }
    snapshot(s, snap);
    pthread_mutex_unlock(&s->mu);
    return snap->dropped_chunks + snap->lost_chunks + snap->nqueued + snap->ninflight;
}

/* Say goodbye with a close frame (a second at most), so the consumer sees
 * a clean end rather than a lost connection. */
static void close_cleanly(wssink *s) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 1;
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_mutex_unlock(&s->mu);
    lws_cancel_service(s->ctx);
    pthread_mutex_lock(&s->mu);
    while (s->open)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT) break;
    pthread_mutex_unlock(&s->mu);
}

void lumio__ws_close(wssink *s) {
    if (!s) return;
    if (s->thread_on) {
        close_cleanly(s);
        s->stop = true;
        lws_cancel_service(s->ctx);
        pthread_join(s->thread, NULL);
    }
    if (s->ctx) lumio__ws_context_destroy(s->ctx);
    lumio__net_close(&s->q);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->scratch);
    free(s);
}
