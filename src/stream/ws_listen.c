/* WebSocket listeners: libwebsockets serves the handshake and the framing,
 * served from the caller's thread; each writer's binary messages are put
 * together (fragments included) under caps, and handed over whole. Every
 * connection is tracked from its accept, so one that never finishes its
 * handshake, or stalls inside a message, is dropped and named. */
#include "stream/ws.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

#define SWEEP_US 100000 /* how often handshakes and stalls are checked */

typedef struct wsconn {
    struct wsconn *next;
    struct lws *wsi;
    uint64_t id;
    char name[64];
    bool upgraded, dropped, http;
    uint8_t *buf;
    size_t len, cap;
    uint64_t since_ms, last_ms;
    const char *why; /* set when the listener drops it */
    char whybuf[160];
} wsconn;

struct lumio_stream_ws_listener {
    struct lws_context *ctx;
    lumio_stream_ws_listen_options o;
    wsconn *conns;
    unsigned npeers; /* upgraded */
    uint64_t next_id, held;
    lumio_stream_ws_fn fn;
    void *arg;
    bool timed_out;
    unsigned events;
    atomic_bool wake;
    lws_sorted_usec_list_t sul_timeout, sul_sweep;
    char name[300]; /* ws-listen:HOST:PORT, for messages */
    lumio__err err; /* the last error's text (docs/API.md) */
};

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int emit(wslisten *l, wsconn *c, int type, const void *data, size_t len, const char *why) {
    lumio_stream_ws_event ev = {
        .type = type, .peer = c->id, .peer_name = c->name, .data = data, .len = len, .why = why};
    l->events++;
    return l->fn ? l->fn(l->arg, &ev) : 0;
}

__attribute__((format(printf, 3, 4))) static int drop(wslisten *l, wsconn *c, const char *fmt,
                                                      ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->whybuf, sizeof c->whybuf, fmt, ap);
    va_end(ap);
    c->why = c->whybuf;
    c->dropped = true;
    emit(l, c, LUMIO_WS_DROPPED, NULL, 0, c->why);
    lws_close_reason(c->wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)c->whybuf,
                     LUMIO_MIN(strlen(c->whybuf), 120));
    return -1;
}

static void release_buf(wslisten *l, wsconn *c) {
    l->held -= c->cap;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

/* Room for n more bytes of c's message, within the caps. */
static int room(wslisten *l, wsconn *c, size_t n) {
    uint64_t want;
    if (__builtin_add_overflow((uint64_t)c->len, (uint64_t)n, &want) ||
        want > LUMIO_STREAM_CHUNK_MAX)
        return drop(l, c, "a message of more than %u bytes, larger than the largest chunk",
                    (unsigned)LUMIO_STREAM_CHUNK_MAX);
    if (want <= c->cap) return 0;
    uint64_t cap = LUMIO_MAX(want, LUMIO_MIN((uint64_t)c->cap * 2, LUMIO_STREAM_CHUNK_MAX));
    if (l->held - c->cap + cap > l->o.memory)
        return drop(l, c,
                    "a message of %" PRIu64 " bytes would take the writers' messages past "
                    "the memory cap (%" PRIu64 " bytes)",
                    want, l->o.memory);
    uint8_t *b = realloc(c->buf, cap);
    if (!b) return drop(l, c, "out of memory for a message of %" PRIu64 " bytes", want);
    l->held += cap - c->cap;
    c->buf = b;
    c->cap = cap;
    return 0;
}

static int on_receive(wslisten *l, wsconn *c, struct lws *wsi, const void *in, size_t len) {
    if (c->dropped) return -1;
    c->last_ms = mono_ms();
    if (lws_is_first_fragment(wsi) && c->len == 0) {
        if (!lws_frame_is_binary(wsi))
            return drop(l, c, "a text message (a writer sends binary messages only)");
        /* The frame says how long it is: an oversized one goes before it is read. */
        if (room(l, c, len + lws_remaining_packet_payload(wsi)) < 0) return -1;
    }
    if (room(l, c, len) < 0) return -1;
    memcpy(c->buf + c->len, in, len);
    c->len += len;
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi)) return 0;
    int rc = emit(l, c, LUMIO_WS_MESSAGE, c->buf, c->len, NULL);
    if (c->cap > (64u << 10)) /* a big message's room goes back */
        release_buf(l, c);
    else
        c->len = 0;
    if (rc < 0) {
        c->dropped = true; /* the callback said why */
        lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, NULL, 0);
        return -1;
    }
    return 0;
}

static wsconn *conn_new(wslisten *l, struct lws *wsi) {
    wsconn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->wsi = wsi;
    c->id = ++l->next_id;
    c->since_ms = c->last_ms = mono_ms();
    struct sockaddr_storage a;
    socklen_t al = sizeof a;
    int fd = lws_get_socket_fd(wsi);
    if (fd >= 0 && getpeername(fd, (struct sockaddr *)&a, &al) == 0)
        lumio__net_name(&a, c->name, sizeof c->name);
    else
        snprintf(c->name, sizeof c->name, "?");
    c->next = l->conns;
    l->conns = c;
    lws_set_opaque_user_data(wsi, c);
    return c;
}

static void conn_free(wslisten *l, wsconn *c) {
    for (wsconn **p = &l->conns; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    release_buf(l, c);
    free(c);
}

/* The connection is going: say how, unless it was said. */
static void conn_gone(wslisten *l, wsconn *c) {
    if (c->upgraded) {
        l->npeers--;
        if (!c->dropped) emit(l, c, LUMIO_WS_CLOSED, NULL, c->len, NULL);
    } else if (!c->dropped) {
        emit(l, c, LUMIO_WS_DROPPED, NULL, 0,
             c->why                            ? c->why
             : c->http                         ? "an HTTP request that is not a WebSocket upgrade"
             : mono_ms() - c->since_ms >= 1000 ? "closed without a WebSocket handshake (timeout)"
                                               : "closed without a WebSocket handshake");
    }
    conn_free(l, c);
}

static int on_event(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    (void)user;
    wslisten *l = lws_context_user(lws_get_context(wsi));
    wsconn *c = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED: /* accepted: its socket is there */
        if (!c && !conn_new(l, wsi)) return -1;
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (c) conn_gone(l, c);
        lws_set_opaque_user_data(wsi, NULL);
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        if (c && l->npeers >= l->o.max_peers) {
            snprintf(c->whybuf, sizeof c->whybuf, "refused: %u writers connected", l->o.max_peers);
            c->why = c->whybuf;
            return 1; /* lws answers the upgrade with an error status */
        }
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        if (!c) return -1;
        c->upgraded = true;
        l->npeers++;
        return emit(l, c, LUMIO_WS_CONNECTED, NULL, 0, NULL) < 0 ? (c->dropped = true, -1) : 0;
    case LWS_CALLBACK_RECEIVE:
        return c ? on_receive(l, c, wsi, in, len) : -1;
    case LWS_CALLBACK_HTTP:
        if (c) c->http = true;
        lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST,
                               "a lumio stream listener takes "
                               "WebSocket writers only");
        return -1;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {{"lumio-stream", on_event, 0, 0, 0, NULL, 0},
                                                 {NULL, NULL, 0, 0, 0, NULL, 0}};

/* Connections not upgraded in time, writers silent inside a message. */
static void sweep(lws_sorted_usec_list_t *sul) {
    wslisten *l = lws_container_of(sul, wslisten, sul_sweep);
    uint64_t now = mono_ms();
    for (wsconn *c = l->conns; c; c = c->next) {
        if (c->dropped) continue;
        if (!c->upgraded && now - c->since_ms >= l->o.handshake_ms) {
            snprintf(c->whybuf, sizeof c->whybuf, "no WebSocket handshake within %u ms",
                     l->o.handshake_ms);
            c->why = c->whybuf;
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_AWAITING_CLIENT_HS_SEND, LWS_TO_KILL_ASYNC);
        } else if (c->upgraded && c->len && now - c->last_ms >= l->o.stall_ms) {
            c->dropped = true;
            snprintf(c->whybuf, sizeof c->whybuf,
                     "stalled for %u ms inside a message (%zu bytes of it received)", l->o.stall_ms,
                     c->len);
            c->why = c->whybuf;
            emit(l, c, LUMIO_WS_DROPPED, NULL, 0, c->why);
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_AWAITING_CLIENT_HS_SEND, LWS_TO_KILL_ASYNC);
        }
    }
    lws_sul_schedule(l->ctx, 0, &l->sul_sweep, sweep, SWEEP_US);
}

int lumio__wsl_open(wslisten **out, const char *spec, const lumio_stream_ws_listen_options *o) {
    *out = NULL;
    char host[256], port[8];
    int rc = lumio__net_parse(spec, "127.0.0.1", host, sizeof host, port, sizeof port);
    if (rc < 0) return rc;
    /* lws says nothing useful when it cannot bind: try it first. */
    if ((rc = lumio__net_listen(host, port)) < 0) return rc;
    close(rc);
    wslisten *l = calloc(1, sizeof *l);
    if (!l) return -ENOMEM;
    l->o = *o;
    lumio__err_init(&l->err);
    snprintf(l->name, sizeof l->name, "ws-listen:%s", spec);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = atoi(port);
    info.iface = host;
    info.protocols = protocols;
    info.user = l;
    info.timeout_secs = (o->handshake_ms + 999) / 1000 + 5; /* the sweep says it first */
    info.timeout_secs_ah_idle = info.timeout_secs;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6 * !strchr(host, ':');
    if (!(l->ctx = lumio__ws_context_create(&info))) {
        lumio__err_fini(&l->err);
        free(l);
        lumio__net_set_error("cannot listen on %s:%s (libwebsockets)", host, port);
        return -EADDRNOTAVAIL;
    }
    lws_sul_schedule(l->ctx, 0, &l->sul_sweep, sweep, SWEEP_US);
    *out = l;
    return 0;
}

static void on_timeout(lws_sorted_usec_list_t *sul) {
    wslisten *l = lws_container_of(sul, wslisten, sul_timeout);
    l->timed_out = true;
}

int lumio__wsl_service(wslisten *l, int timeout_ms, lumio_stream_ws_fn fn, void *arg) {
    l->fn = fn;
    l->arg = arg;
    l->timed_out = false;
    l->events = 0;
    lws_sul_schedule(l->ctx, 0, &l->sul_timeout, on_timeout,
                     (lws_usec_t)LUMIO_MAX(timeout_ms, 0) * 1000);
    int rc = 0;
    while (!l->timed_out && !l->events && !atomic_exchange(&l->wake, false))
        if (lws_service(l->ctx, 0) < 0) {
            rc = -EIO;
            lumio__err_set(&l->err, "%s: serving failed (libwebsockets' service loop)", l->name);
            break;
        }
    lws_sul_cancel(&l->sul_timeout);
    l->fn = NULL;
    return rc;
}

void lumio__wsl_wake(wslisten *l) {
    atomic_store(&l->wake, true);
    lws_cancel_service(l->ctx);
}

void lumio__wsl_close(wslisten *l) {
    if (!l) return;
    l->fn = NULL; /* the closing connections' events go nowhere */
    lumio__ws_context_destroy(l->ctx);
    while (l->conns) conn_free(l, l->conns);
    lumio__err_fini(&l->err);
    free(l);
}

/* ---- the public listener ------------------------------------------------------ */

static int ws_listen_impl(lumio_stream_ws_listener **out, const char *spec,
                          const lumio_stream_ws_listen_options *opts) {
    if (!out) return -EINVAL;
    *out = NULL;
    lumio_stream_ws_listen_options o = {0};
    if (opts) o = *opts;
    if (!lumio__zero(o.reserved, sizeof o.reserved)) {
        lumio__err_set(NULL, "lumio_stream_ws_listen_options: reserved fields are not zero");
        return -EINVAL;
    }
    if (!o.max_peers) o.max_peers = 16;
    if (!o.handshake_ms) o.handshake_ms = 10000;
    if (!o.stall_ms) o.stall_ms = 60000;
    if (!o.memory) o.memory = (uint64_t)512 << 20;
    lumio__net_error_clear();
    int rc = spec && !strncmp(spec, "ws-listen:", 10)
                 ? lumio__wsl_open(out, spec + 10, &o)
                 : (lumio__net_set_error("expected ws-listen:[HOST:]PORT"), -EINVAL);
    if (rc < 0) lumio__err_set(NULL, "%s: %s", spec ? spec : "(null)", lumio__net_error());
    return rc;
}

int lumio_stream_ws_listener_open(lumio_stream_ws_listener **out, const char *spec,
                                  const lumio_stream_ws_listen_options *o) {
    uint64_t mark = lumio__err_mark();
    return lumio__err_ensure(mark, ws_listen_impl(out, spec, o), spec ? spec : "(null)");
}

int lumio_stream_ws_listener_service(lumio_stream_ws_listener *l, int timeout_ms,
                                     lumio_stream_ws_fn fn, void *arg) {
    if (!l) return -EINVAL;
    return lumio__wsl_service(l, timeout_ms, fn, arg);
}

char *lumio_stream_ws_listener_last_error(const lumio_stream_ws_listener *l, char *buf,
                                          size_t len) {
    return lumio__err_get(l ? &l->err : NULL, buf, len);
}

void lumio_stream_ws_listener_close(lumio_stream_ws_listener *l) {
    lumio__wsl_close(l);
}
