/* TCP sinks: a bounded queue of sealed chunks, sent without blocking. Every
 * connection starts with the signature and a whole chunk: a chunk cut by a
 * lost connection is sent again from its first byte on the next one, and the
 * reader drops the torn copy (and any duplicate, by its sequence number). */
#include "stream/net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

int net_listen(const char *port) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE},
                    *res;
    if (getaddrinfo(NULL, port, &hints, &res) != 0) return -EINVAL;
    int rc = -EADDRNOTAVAIL;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 4) == 0 &&
            set_nonblock(fd) == 0) {
            rc = fd;
            break;
        }
        rc = -errno;
        close(fd);
    }
    freeaddrinfo(res);
    return rc;
}

int net_split(const char *hp, char *host, size_t hcap, char *port, size_t pcap) {
    const char *colon = strrchr(hp, ':');
    if (!colon || colon == hp || !colon[1] || (size_t)(colon - hp) >= hcap ||
        strlen(colon + 1) >= pcap)
        return -EINVAL;
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = 0;
    snprintf(port, pcap, "%s", colon + 1);
    size_t n = strlen(host);
    if (host[0] == '[') { /* [::1]:PORT */
        if (n < 2 || host[n - 1] != ']') return -EINVAL;
        memmove(host, host + 1, n - 2);
        host[n - 2] = 0;
    }
    return 0;
}

int net_connect(const char *host, const char *port, int timeout_ms) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, port, &hints, &res) != 0) return -EHOSTUNREACH;
    int rc = -ECONNREFUSED;
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
    return rc;
}

int net_open(netsink *ns, const char *sink, size_t max_queued) {
    memset(ns, 0, sizeof(*ns));
    ns->fd = ns->lfd = -1;
    ns->max_queued = max_queued;
    if (!strncmp(sink, "tcp-listen:", 11)) {
        ns->listen_mode = true;
        snprintf(ns->port, sizeof ns->port, "%s", sink + 11);
        int fd = net_listen(ns->port);
        if (fd < 0) return fd;
        ns->lfd = fd;
        return 1;
    }
    if (strncmp(sink, "tcp:", 4)) return 0;
    if (net_split(sink + 4, ns->host, sizeof ns->host, ns->port, sizeof ns->port) < 0)
        return -EINVAL;
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
        fd = net_connect(ns->host, ns->port, 200);
        if (fd < 0) { /* back off: 100 ms, doubling up to 5 s */
            ns->backoff_ms = ns->backoff_ms ? LUMIO_MIN(ns->backoff_ms * 2, 5000u) : 100;
            ns->next_try_ms = now + ns->backoff_ms;
            return;
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ns->fd = fd;
    ns->sig_sent = ns->head_sent = 0;
    ns->backoff_ms = 0;
    ns->connections++;
}

static void lost(netsink *ns) {
    close(ns->fd);
    ns->fd = -1;
    ns->head_sent = 0; /* resent whole on the next connection */
}

/* Send what the socket takes now. Returns false when it would block. */
static bool send_some(netsink *ns) {
    const uint8_t *p;
    size_t n;
    if (ns->sig_sent < STREAM_SIG_LEN) {
        p = lumio_stream_signature + ns->sig_sent;
        n = STREAM_SIG_LEN - ns->sig_sent;
    } else if (ns->head) {
        p = ns->head->data + ns->head_sent;
        n = ns->head->len - ns->head_sent;
    } else {
        return false;
    }
    ssize_t k = send(ns->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) lost(ns);
        return errno == EINTR;
    }
    if (ns->sig_sent < STREAM_SIG_LEN) {
        ns->sig_sent += (size_t)k;
        return true;
    }
    ns->head_sent += (size_t)k;
    if (ns->head_sent == ns->head->len) { /* sent: drop it from the queue */
        qchunk *c = ns->head;
        ns->head = c->next;
        if (!ns->head) ns->tail = NULL;
        ns->queued -= c->len;
        free(c);
        ns->head_sent = 0;
    }
    return true;
}

int net_pump(netsink *ns, uint32_t wait_ms) {
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

int net_push(netsink *ns, const uint8_t *p, size_t len) {
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
    /* Over the cap: drop the oldest whole chunks, but never one half sent. */
    qchunk **pp = ns->head_sent ? &ns->head->next : &ns->head;
    while (ns->queued > ns->max_queued && *pp && *pp != c) {
        qchunk *d = *pp;
        *pp = d->next;
        if (ns->tail == d) ns->tail = NULL;
        ns->queued -= d->len;
        ns->dropped_chunks++;
        ns->dropped_bytes += d->len;
        free(d);
    }
    if (!ns->tail) { /* find it again after drops */
        for (qchunk *q = ns->head; q; q = q->next) ns->tail = q;
    }
    return net_pump(ns, 0);
}

void net_close(netsink *ns) {
    if (ns->fd >= 0) close(ns->fd);
    if (ns->lfd >= 0) close(ns->lfd);
    while (ns->head) {
        qchunk *c = ns->head;
        ns->head = c->next;
        free(c);
    }
    ns->fd = ns->lfd = -1;
}
