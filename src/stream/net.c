/* TCP sinks: a bounded queue of sealed chunks, sent without blocking. Every
 * connection starts with the signature and a whole chunk: a chunk cut by a
 * lost connection is sent again from its first byte on the next one, and the
 * reader drops the torn copy (and any duplicate, by its sequence number). */
#include "stream/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static __thread char net_err[512];

void lumio__net_error_clear(void) {
    net_err[0] = 0;
}

const char *lumio__net_error(void) {
    return net_err;
}

__attribute__((format(printf, 2, 3))) static int net_fail(int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(net_err, sizeof net_err, fmt, ap);
    va_end(ap);
    return rc;
}

void lumio__net_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(net_err, sizeof net_err, fmt, ap);
    va_end(ap);
}

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

/* getaddrinfo would take "99999" or "http" and bind a port nobody asked
 * for: only 1..65535 in decimal. */
static bool valid_port(const char *p) {
    unsigned long v = 0;
    if (!*p || strlen(p) > 5) return false;
    for (const char *c = p; *c; c++) {
        if (*c < '0' || *c > '9') return false;
        v = v * 10 + (unsigned long)(*c - '0');
    }
    return v >= 1 && v <= 65535;
}

int lumio__net_parse(const char *spec, const char *default_host, char *host, size_t hcap,
                     char *port, size_t pcap) {
    const char *colon = strrchr(spec, ':');
    const char *p = colon ? colon + 1 : spec;
    if (colon && spec[0] == '[' && colon > spec && colon[-1] != ']') /* [::1] without a port */
        p = "";
    if (!valid_port(p) || strlen(p) >= pcap)
        return net_fail(-EINVAL, "invalid port '%s' (1 to 65535)", p);
    snprintf(port, pcap, "%s", p);
    if (!colon) {
        if (!default_host) return net_fail(-EINVAL, "missing host in '%s' (HOST:PORT)", spec);
        snprintf(host, hcap, "%s", default_host);
        return 0;
    }
    size_t n = (size_t)(colon - spec);
    if (n >= 2 && spec[0] == '[' && spec[n - 1] == ']') { /* [::1]:PORT */
        spec++;
        n -= 2;
    }
    if (n == 0 || n >= hcap) return net_fail(-EINVAL, "invalid host in '%s'", spec);
    memcpy(host, spec, n);
    host[n] = 0;
    return 0;
}

static int resolve(const char *host, const char *port, int flags, struct addrinfo **res) {
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = flags | AI_NUMERICSERV};
    int g = getaddrinfo(host, port, &hints, res);
    if (g == 0) return 0;
    if (g == EAI_SYSTEM) return net_fail(-errno, "resolving '%s': %s", host, strerror(errno));
    return net_fail(-EHOSTUNREACH, "unknown host '%s' (%s)", host, gai_strerror(g));
}

void lumio__net_name(const void *sa, char *buf, size_t cap) {
    const struct sockaddr *a = sa;
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *in = sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        port = ntohs(in->sin_port);
        snprintf(buf, cap, "%s:%u", ip, port);
    } else if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        port = ntohs(in6->sin6_port);
        snprintf(buf, cap, "[%s]:%u", ip, port);
    } else {
        snprintf(buf, cap, "?");
    }
}

int lumio__net_listen(const char *host, const char *port) {
    struct addrinfo *res;
    int rc = resolve(host, port, AI_PASSIVE, &res);
    if (rc < 0) return rc;
    rc = -EADDRNOTAVAIL;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 16) == 0 &&
            set_nonblock(fd) == 0) {
            rc = fd;
            break;
        }
        rc = -errno;
        close(fd);
    }
    freeaddrinfo(res);
    if (rc < 0) net_fail(rc, "cannot listen on %s: %s", host, strerror(-rc));
    return rc;
}

int lumio__net_connect(const char *host, const char *port, int timeout_ms) {
    struct addrinfo *res;
    int rc = resolve(host, port, 0, &res);
    if (rc < 0) return rc;
    rc = -ECONNREFUSED;
    for (struct addrinfo *a = res; a && rc < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
            rc = -errno;
            close(fd);
            continue;
        }
        struct pollfd p = {fd, POLLOUT, 0};
        int err = 0;
        socklen_t el = sizeof err;
        if (poll(&p, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 ||
            err) {
            rc = err ? -err : -ETIMEDOUT;
            close(fd);
            continue;
        }
        rc = fd;
    }
    freeaddrinfo(res);
    (void)port;
    if (rc == -ECONNREFUSED) return net_fail(rc, "connection refused");
    if (rc == -ETIMEDOUT) return net_fail(rc, "no answer from %s within %d ms", host, timeout_ms);
    if (rc < 0) net_fail(rc, "%s", strerror(-rc));
    return rc;
}

#define NET_SETTLE_MS 100

static void connected(netsink *ns, int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ns->fd = fd;
    ns->sig_sent = ns->head_sent = 0;
    ns->conn_sent = 0;
    ns->ninflight = 0;
    ns->conn_ms = mono_ms();
    ns->settled = false;
    ns->connections++;
}

size_t lumio__net_connect_prefix(const char *s) {
    return !strncmp(s, "tcp:", 4) ? 4 : !strncmp(s, "tcp-connect:", 12) ? 12 : 0;
}

int lumio__net_open(netsink *ns, const char *sink, size_t max_queued) {
    memset(ns, 0, sizeof(*ns));
    net_err[0] = 0;
    ns->fd = ns->lfd = -1;
    ns->max_queued = max_queued;
    bool listen_mode = !strncmp(sink, "tcp-listen:", 11);
    size_t skip = listen_mode ? 11 : lumio__net_connect_prefix(sink);
    if (!skip) return 0;
    const char *spec = sink + skip;
    int rc = lumio__net_parse(spec, listen_mode ? "127.0.0.1" : NULL, ns->host, sizeof ns->host,
                              ns->port, sizeof ns->port);
    if (rc < 0) return rc;
    ns->listen_mode = listen_mode;
    if (listen_mode) {
        if ((rc = lumio__net_listen(ns->host, ns->port)) < 0) return rc;
        ns->lfd = rc;
        return 1;
    }
    /* The first connection now: a wrong host or port, or nobody listening,
     * is the caller's mistake and is said at once. Later losses reconnect. */
    if ((rc = lumio__net_connect(ns->host, ns->port, 5000)) < 0) return rc;
    connected(ns, rc);
    return 1;
}

/* Try once to get a consumer: connect (bounded by a short timeout) or accept. */
static void try_connect(netsink *ns) {
    uint64_t now = mono_ms();
    if (now < ns->next_try_ms) return;
    int fd = -1;
    if (ns->listen_mode) {
        fd = accept4(ns->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) return; /* nobody yet */
    } else {
        fd = lumio__net_connect(ns->host, ns->port, 200);
        if (fd < 0) { /* back off: 100 ms, doubling up to 5 s */
            ns->last_err = fd;
            ns->backoff_ms = ns->backoff_ms ? LUMIO_MIN(ns->backoff_ms * 2, 5000u) : 100;
            ns->next_try_ms = now + ns->backoff_ms;
            return;
        }
    }
    connected(ns, fd);
}

/* Bytes of this connection the peer's TCP has acknowledged. */
static uint64_t acked(const netsink *ns) {
    int outq = 0;
    if (ioctl(ns->fd, SIOCOUTQ, &outq) < 0 || outq < 0) return 0;
    return ns->conn_sent - LUMIO_MIN((uint64_t)outq, ns->conn_sent);
}

/* Forget the chunks the peer has acknowledged; the rest may be lost. */
static void prune_inflight(netsink *ns) {
    uint64_t a = acked(ns);
    size_t k = 0;
    while (k < ns->ninflight && ns->inflight[k] <= a) k++;
    if (k == 0) return; /* also: no chunk sent yet, inflight may be NULL */
    memmove(ns->inflight, ns->inflight + k, (ns->ninflight - k) * sizeof(uint64_t));
    ns->ninflight -= k;
}

static void lost(netsink *ns, int err) {
    prune_inflight(ns); /* the send queue's counters outlive a reset */
    ns->lost_chunks += ns->ninflight;
    ns->ninflight = 0;
    ns->last_err = err;
    close(ns->fd);
    ns->fd = -1;
    ns->head_sent = 0; /* resent whole on the next connection */
    /* A receiver that refuses connections (full) is retried as one that is
     * down: 100 ms, doubling up to 5 s, until a chunk gets through. */
    ns->backoff_ms = ns->backoff_ms ? LUMIO_MIN(ns->backoff_ms * 2, 5000u) : 100;
    ns->next_try_ms = mono_ms() + ns->backoff_ms;
}

/* Whether chunks may go on this connection yet (see conn_ms). The receiver
 * never sends: readable or hung up means it closed the connection. */
static bool settled(netsink *ns) {
    if (ns->settled) return true;
    struct pollfd p = {ns->fd, POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, 0) == 1 && p.revents) {
        lost(ns, -ECONNRESET);
        return false;
    }
    if (mono_ms() - ns->conn_ms < NET_SETTLE_MS) return false;
    return ns->settled = true;
}

static void chunk_sent(netsink *ns) {
    qchunk *c = ns->head;
    ns->head = c->next;
    if (!ns->head) ns->tail = NULL;
    ns->queued -= c->len;
    ns->nqueued--;
    free(c);
    ns->head_sent = 0;
    ns->backoff_ms = 0; /* this connection works */
    if (ns->ninflight == ns->inflight_cap) {
        size_t cap = ns->inflight_cap ? ns->inflight_cap * 2 : 64;
        uint64_t *p = realloc(ns->inflight, cap * sizeof(uint64_t));
        if (!p) { /* cannot track it: count it as delivered, as before */
            prune_inflight(ns);
            return;
        }
        ns->inflight = p;
        ns->inflight_cap = cap;
    }
    ns->inflight[ns->ninflight++] = ns->conn_sent;
    if (ns->ninflight >= 64) prune_inflight(ns);
}

/* Send what the socket takes now. Returns false when it would block. */
static bool send_some(netsink *ns) {
    const uint8_t *p;
    size_t n;
    if (ns->sig_sent < STREAM_SIG_LEN) {
        p = lumio__stream_signature + ns->sig_sent;
        n = STREAM_SIG_LEN - ns->sig_sent;
    } else if (ns->head) {
        if (!settled(ns)) return false;
        p = ns->head->data + ns->head_sent;
        n = ns->head->len - ns->head_sent;
    } else {
        return false;
    }
    ssize_t k = send(ns->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) lost(ns, -errno);
        return errno == EINTR;
    }
    ns->conn_sent += (uint64_t)k;
    if (ns->sig_sent < STREAM_SIG_LEN) {
        ns->sig_sent += (size_t)k;
        return true;
    }
    ns->head_sent += (size_t)k;
    if (ns->head_sent == ns->head->len) chunk_sent(ns);
    return true;
}

int lumio__net_pump(netsink *ns, uint32_t wait_ms) {
    uint64_t deadline = mono_ms() + wait_ms;
    for (;;) {
        if (ns->fd < 0) try_connect(ns);
        while (ns->fd >= 0 && send_some(ns)) {
        }
        bool done = ns->fd >= 0 && !ns->head && ns->sig_sent == STREAM_SIG_LEN;
        if (done || !wait_ms || mono_ms() >= deadline) return 0;
        if (ns->fd >= 0) {
            struct pollfd p = {ns->fd, POLLOUT, 0};
            poll(&p, 1, 20);
        } else {
            struct timespec nap = {0, 20 * 1000 * 1000};
            nanosleep(&nap, NULL);
        }
    }
}

/* A connection reset or closed both ways: the peer will never read the
 * rest. (A peer that only shut its sending side may still read.) */
static bool peer_gone(int fd) {
    struct pollfd p = {fd, 0, 0};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP));
}

uint64_t lumio__net_finish(netsink *ns, uint32_t wait_ms) {
    uint64_t deadline = mono_ms() + wait_ms;
    lumio__net_pump(ns, wait_ms);
    while (ns->fd >= 0 && !ns->head) {
        prune_inflight(ns);
        if (!ns->ninflight || mono_ms() >= deadline) break;
        if (peer_gone(ns->fd)) {
            lost(ns, -ECONNRESET);
            break;
        }
        struct timespec nap = {0, 10 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    return ns->dropped_chunks + ns->lost_chunks + ns->nqueued + ns->ninflight;
}

int lumio__net_enqueue(netsink *ns, const uint8_t *p, size_t len) {
    qchunk *c = malloc(sizeof(*c) + len);
    if (!c) return -ENOMEM;
    c->next = NULL;
    c->len = len;
    memcpy(c->data, p, len);
    if (ns->tail)
        ns->tail->next = c;
    else
        ns->head = c;
    ns->tail = c;
    ns->queued += len;
    ns->nqueued++;
    /* Over the cap: drop the oldest whole chunks, but never one half sent. */
    qchunk **pp = ns->head_sent ? &ns->head->next : &ns->head;
    while (ns->queued > ns->max_queued && *pp && *pp != c) {
        qchunk *d = *pp;
        *pp = d->next;
        if (ns->tail == d) ns->tail = NULL;
        ns->queued -= d->len;
        ns->nqueued--;
        ns->dropped_chunks++;
        ns->dropped_bytes += d->len;
        free(d);
    }
    if (!ns->tail) { /* find it again after drops */
        for (qchunk *q = ns->head; q; q = q->next) ns->tail = q;
    }
    return 0;
}

int lumio__net_push(netsink *ns, const uint8_t *p, size_t len) {
    int rc = lumio__net_enqueue(ns, p, len);
    return rc < 0 ? rc : lumio__net_pump(ns, 0);
}

void lumio__net_close(netsink *ns) {
    if (ns->fd >= 0) close(ns->fd);
    if (ns->lfd >= 0) close(ns->lfd);
    while (ns->head) {
        qchunk *c = ns->head;
        ns->head = c->next;
        free(c);
    }
    free(ns->inflight);
    ns->inflight = NULL;
    ns->fd = ns->lfd = -1;
}

int lumio_stream_listen(const char *spec) {
    char host[256], port[8];
    lumio__net_error_clear();
    int rc = spec && !strncmp(spec, "tcp-listen:", 11)
                 ? lumio__net_parse(spec + 11, "127.0.0.1", host, sizeof host, port, sizeof port)
                 : net_fail(-EINVAL, "expected tcp-listen:[HOST:]PORT");
    if (rc == 0) rc = lumio__net_listen(host, port);
    if (rc < 0) lumio__err_set(NULL, "%s: %s", spec ? spec : "(null)", lumio__net_error());
    return rc;
}
