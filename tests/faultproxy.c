/* faultproxy: an HTTP/1.1 reverse proxy for lumio's HTTP tests that injects faults on a
 * deterministic schedule. A test tool, not part of the library.
 *
 *   faultproxy --upstream HOST:PORT [--port N] [--latency-ms N]
 *              [--fault KIND:EVERY[:ARG]]... [--seed N] [--log FILE]
 *
 * It listens on 127.0.0.1:N (0, the default, picks a free port), prints "port N" on stdout and
 * serves until SIGTERM or SIGINT (exit 0). Every client connection gets a thread and its own
 * upstream connection, both kept alive; bodies go through a pipe with splice(2) (read/write with
 * a 1 MiB buffer where splice is refused, or always with FAULTPROXY_COPY=1).
 *
 * Responses are numbered k = 1, 2, 3, ... across all connections; a fault with EVERY applies to
 * response k when k % EVERY == 0:
 *   reset:EVERY:BYTES   status line, headers and BYTES bytes of the body, then an RST
 *   short:EVERY:BYTES   headers (the real Content-Length) and BYTES bytes of the body, then a FIN
 *   stall:EVERY:MS      headers and half the body, MS ms of silence, then the rest
 *   503:EVERY[:BURST]   a 503 instead of forwarding, to BURST responses in a row from each
 *                       EVERY-th one; the connection stays open
 *   status:EVERY:CODE   the same with any status code
 *   etag:EVERY          forwarded with the ETag value replaced by "changed-K"
 * reset, short and stall apply only to 2xx responses with a Content-Length body of at least one
 * byte (not HEAD, 304 or 412, which are forwarded untouched but still counted); BYTES is capped
 * at the body's length less one, so the body is always cut. When several faults match, a 503 or
 * status one wins, then the first of reset/short/stall given; etag combines with those.
 *
 * --latency-ms N delays every request N ms before it is forwarded (or answered with a fault).
 * --log FILE appends "K METHOD TARGET RANGE STATUS FAULT" per request ("-" for none), written
 * before the response reaches the client. --seed is accepted and ignored: the schedule is
 * deterministic. If the upstream cannot be reached the client gets a 502. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS  128
#define MAX_FAULTS 32
#define HEAD_MAX   (64 * 1024) /* a request or response head larger than this is refused */
#define COPY_BUF   (1 << 20)
#define PIPE_SIZE  (1 << 20)

enum kind { F_RESET, F_SHORT, F_STALL, F_503, F_STATUS, F_ETAG };
static const char *const kind_names[] = {"reset", "short", "stall", "503", "status", "etag"};

struct fault {
    enum kind kind;
    unsigned long every, arg;
};

static struct {
    struct sockaddr_storage up_addr;
    socklen_t up_len;
    unsigned long latency_ms;
    struct fault faults[MAX_FAULTS];
    int nfaults;
    int log_fd;
    bool copy; /* read/write instead of splice (FAULTPROXY_COPY=1) */
} cfg = {.log_fd = -1};

static atomic_ulong g_resp; /* responses numbered so far */

/* Guards the connection table, the active count and the stop flag; g_cv (on CLOCK_MONOTONIC)
 * wakes sleepers when stopping and the main thread when a connection ends. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv;
static bool g_stopping;
static int g_active;

struct buf {
    char *p;
    size_t start, end, cap;
};

struct conn {
    int cfd, ufd; /* changed under g_mu, so that stopping never shuts down a reused number */
    int slot;
    struct buf cb, ub; /* what was read from the client and from upstream but not yet used */
    int pipefd[2];
    size_t pipe_size;
    char *copybuf;
    unsigned long up_served; /* responses read on the current upstream connection */
};

static struct conn *g_conns[MAX_CONNS];

struct req {
    char method[32];
    char target[1024]; /* for the log only: truncated */
    char range[256];
    size_t head_len;
    unsigned long long body_len;
    bool close, head;
};

enum body_mode { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_TO_EOF };

struct resp {
    int status;
    size_t head_len;
    enum body_mode mode;
    unsigned long long body_len;
    bool close;
};

static int wait_ms(unsigned long ms);

/* ---- I/O helpers ---- */

static void set_fd(int *which, int fd) {
    pthread_mutex_lock(&g_mu);
    *which = fd;
    pthread_mutex_unlock(&g_mu);
}

static void close_fd(int *which) {
    pthread_mutex_lock(&g_mu);
    if (*which >= 0) close(*which);
    *which = -1;
    pthread_mutex_unlock(&g_mu);
}

static int write_all(int fd, const void *p, size_t n) {
    const char *s = p;
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads more into b; 1 on data, 0 on EOF, -1 on error or a full buffer. */
static int buf_fill(int fd, struct buf *b) {
    if (b->start > 0 && b->start == b->end) b->start = b->end = 0;
    if (b->end == b->cap && b->start > 0) {
        memmove(b->p, b->p + b->start, b->end - b->start);
        b->end -= b->start;
        b->start = 0;
    }
    if (b->end == b->cap) return -1;
    for (;;) {
        ssize_t r = recv(fd, b->p + b->end, b->cap - b->end, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) return 0;
        b->end += (size_t)r;
        return 1;
    }
}

/* Waits for a whole head (up to CRLFCRLF) at b->start, skipping empty lines before it.
 * Returns its length, 0 on EOF before any byte, -1 on error or EOF inside it, -2 if too large. */
static long read_head(int fd, struct buf *b) {
    size_t scanned = 0;
    for (;;) {
        while (b->end - b->start >= 2 && b->p[b->start] == '\r' && b->p[b->start + 1] == '\n')
            b->start += 2;
        size_t have = b->end - b->start;
        if (have >= 4) {
            size_t from = scanned > 3 ? scanned - 3 : 0;
            char *e = memmem(b->p + b->start + from, have - from, "\r\n\r\n", 4);
            if (e) return (long)(e + 4 - (b->p + b->start));
            scanned = have;
        }
        if (have >= HEAD_MAX) return -2;
        if (b->end == b->cap && b->start == 0) return -2;
        int r = buf_fill(fd, b);
        if (r == 0) return have == 0 ? 0 : -1;
        if (r < 0) return -1;
    }
}

/* Discards n bytes of the client's request body. */
static int skip_client(struct conn *c, unsigned long long n) {
    while (n > 0) {
        size_t have = c->cb.end - c->cb.start;
        if (have == 0) {
            if (buf_fill(c->cfd, &c->cb) <= 0) return -1;
            continue;
        }
        size_t m = have < n ? have : (size_t)n;
        c->cb.start += m;
        n -= m;
    }
    return 0;
}

/* Copies n bytes of the client's request body to upstream. */
static int pass_client_body(struct conn *c, unsigned long long n) {
    while (n > 0) {
        size_t have = c->cb.end - c->cb.start;
        if (have == 0) {
            if (buf_fill(c->cfd, &c->cb) <= 0) return -1;
            continue;
        }
        size_t m = have < n ? have : (size_t)n;
        if (write_all(c->ufd, c->cb.p + c->cb.start, m) < 0) return -2;
        c->cb.start += m;
        n -= m;
    }
    return 0;
}

/* Moves n bytes (or all until EOF when to_eof) from upstream to the client: what is buffered
 * first, then straight from the socket. 0 on success, -1 when upstream failed or ended early,
 * -2 when the client failed. */
static int relay(struct conn *c, unsigned long long n, bool to_eof) {
    size_t have = c->ub.end - c->ub.start;
    if (have > 0 && (n > 0 || to_eof)) {
        size_t m = to_eof || have < n ? have : (size_t)n;
        if (write_all(c->cfd, c->ub.p + c->ub.start, m) < 0) return -2;
        c->ub.start += m;
        if (!to_eof) n -= m;
    }
    while (to_eof || n > 0) {
        if (c->pipefd[0] >= 0) {
            size_t want = c->pipe_size;
            if (!to_eof && n < want) want = (size_t)n;
            ssize_t got =
                splice(c->ufd, NULL, c->pipefd[1], NULL, want, SPLICE_F_MOVE | SPLICE_F_MORE);
            if (got < 0 && errno == EINTR) continue;
            if (got < 0 && errno == EINVAL) { /* splice refused: copy on this connection */
                close(c->pipefd[0]);
                close(c->pipefd[1]);
                c->pipefd[0] = c->pipefd[1] = -1;
                continue;
            }
            if (got < 0) return -1;
            if (got == 0) return to_eof ? 0 : -1;
            if (!to_eof) n -= (unsigned long long)got;
            size_t left = (size_t)got;
            while (left > 0) {
                unsigned flags = SPLICE_F_MOVE | (n > 0 || to_eof ? SPLICE_F_MORE : 0);
                ssize_t put = splice(c->pipefd[0], NULL, c->cfd, NULL, left, flags);
                if (put < 0 && errno == EINTR) continue;
                if (put <= 0) return -2;
                left -= (size_t)put;
            }
        } else {
            size_t want = COPY_BUF;
            if (!to_eof && n < want) want = (size_t)n;
            ssize_t got = recv(c->ufd, c->copybuf, want, 0);
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) return -1;
            if (got == 0) return to_eof ? 0 : -1;
            if (!to_eof) n -= (unsigned long long)got;
            if (write_all(c->cfd, c->copybuf, (size_t)got) < 0) return -2;
        }
    }
    return 0;
}

/* One line (ending in LF) of upstream's chunked framing, forwarded to the client; returns its
 * length, with the line at ub.p + ub.start (not yet consumed), or -1. */
static long chunk_line(struct conn *c) {
    for (;;) {
        size_t have = c->ub.end - c->ub.start;
        char *nl = memchr(c->ub.p + c->ub.start, '\n', have);
        if (nl) {
            long len = (long)(nl + 1 - (c->ub.p + c->ub.start));
            if (write_all(c->cfd, c->ub.p + c->ub.start, (size_t)len) < 0) return -1;
            return len;
        }
        if (have >= 4096) return -1;
        if (buf_fill(c->ufd, &c->ub) <= 0) return -1;
    }
}

static int relay_chunked(struct conn *c) {
    for (;;) {
        long len = chunk_line(c);
        if (len < 0) return -1;
        const char *s = c->ub.p + c->ub.start;
        unsigned long long size = 0;
        int digits = 0;
        for (; digits < len; digits++) {
            char ch = s[digits];
            int v = ch >= '0' && ch <= '9'   ? ch - '0'
                    : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                             : -1;
            if (v < 0) break;
            if (digits >= 15) return -1;
            size = size * 16 + (unsigned)v;
        }
        c->ub.start += (size_t)len;
        if (digits == 0) return -1;
        if (size == 0) { /* trailers, up to an empty line */
            for (;;) {
                len = chunk_line(c);
                if (len < 0) return -1;
                bool empty = len <= 2;
                c->ub.start += (size_t)len;
                if (empty) return 0;
            }
        }
        if (relay(c, size, false) < 0) return -1;
        len = chunk_line(c); /* the CRLF after the data */
        if (len < 0 || len > 2) return -1;
        c->ub.start += (size_t)len;
    }
}

/* Closes the client's connection with a FIN; reads what it still sends for up to a second
 * first, so that unread input does not turn the close into a reset. */
static void close_client_gently(struct conn *c) {
    if (c->cfd < 0) return;
    shutdown(c->cfd, SHUT_WR);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 256; i++) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left =
            1000 - (long)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        struct pollfd pfd = {.fd = c->cfd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) break;
        ssize_t r = recv(c->cfd, c->copybuf, COPY_BUF, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) break;
    }
    close_fd(&c->cfd);
}

/* Resets the client's connection, once what was sent has left the send queue (up to 2 s). */
static void reset_client(struct conn *c) {
    for (int i = 0; i < 200; i++) {
        int queued = 0;
        if (ioctl(c->cfd, SIOCOUTQ, &queued) < 0 || queued == 0) break;
        if (wait_ms(10) < 0) break;
    }
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close_fd(&c->cfd);
}

/* ---- parsing ---- */

static bool name_is(const char *line, size_t len, const char *name, const char **value,
                    size_t *vlen) {
    size_t n = strlen(name);
    if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0) return false;
    const char *v = line + n + 1, *e = line + len;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
    *value = v;
    *vlen = (size_t)(e - v);
    return true;
}

static bool has_token(const char *v, size_t len, const char *tok) {
    size_t n = strlen(tok);
    for (size_t i = 0; i + n <= len; i++) {
        if (strncasecmp(v + i, tok, n) != 0) continue;
        bool left = i == 0 || v[i - 1] == ',' || v[i - 1] == ' ' || v[i - 1] == '\t';
        bool right = i + n == len || v[i + n] == ',' || v[i + n] == ' ' || v[i + n] == '\t';
        if (left && right) return true;
    }
    return false;
}

/* A decimal Content-Length; a second one must agree with the first. */
static int parse_length(const char *v, size_t len, bool *seen, unsigned long long *out) {
    if (len == 0 || len > 18) return -1;
    unsigned long long x = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        x = x * 10 + (unsigned)(v[i] - '0');
    }
    if (*seen && *out != x) return -1;
    *seen = true;
    *out = x;
    return 0;
}

/* Walks the header lines of a head (after its first line) up to the empty line. */
struct hdr_iter {
    const char *p, *end;
};

static struct hdr_iter headers(const char *h, size_t hlen) {
    const char *nl = memchr(h, '\n', hlen);
    struct hdr_iter it = {nl ? nl + 1 : h + hlen, h + hlen};
    return it;
}

static bool next_header(struct hdr_iter *it, const char **line, size_t *len) {
    if (it->p >= it->end) return false;
    const char *nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
    if (!nl) return false;
    size_t n = (size_t)(nl - it->p);
    if (n > 0 && nl[-1] == '\r') n--;
    *line = it->p;
    *len = n;
    it->p = nl + 1;
    return n > 0;
}

static void copy_field(char *dst, size_t cap, const char *s, size_t n) {
    if (n >= cap) n = cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[i] = ch <= ' ' || ch >= 0x7f ? '_' : (char)ch;
    }
    dst[n] = 0;
}

static int parse_request(const char *h, size_t hlen, struct req *rq) {
    memset(rq, 0, sizeof *rq);
    rq->head_len = hlen;
    const char *eol = memchr(h, '\n', hlen);
    const char *sp1 = memchr(h, ' ', (size_t)(eol - h));
    if (!sp1 || sp1 == h || sp1 - h >= (long)sizeof rq->method) return -1;
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
    if (!sp2 || sp2 == sp1 + 1) return -1;
    const char *ver = sp2 + 1;
    size_t vlen = (size_t)(eol - ver) - (eol > ver && eol[-1] == '\r');
    if (vlen != 8 || strncmp(ver, "HTTP/1.", 7) != 0 || (ver[7] != '0' && ver[7] != '1')) return -1;
    copy_field(rq->method, sizeof rq->method, h, (size_t)(sp1 - h));
    copy_field(rq->target, sizeof rq->target, sp1 + 1, (size_t)(sp2 - sp1 - 1));
    strcpy(rq->range, "-");
    rq->head = strcmp(rq->method, "HEAD") == 0;
    bool http10 = ver[7] == '0', keep_alive = false, seen_len = false;
    struct hdr_iter it = headers(h, hlen);
    const char *line;
    size_t llen;
    while (next_header(&it, &line, &llen)) {
        const char *v;
        size_t n;
        if (name_is(line, llen, "content-length", &v, &n)) {
            if (parse_length(v, n, &seen_len, &rq->body_len) < 0) return -1;
        } else if (name_is(line, llen, "transfer-encoding", &v, &n)) {
            return -1; /* chunked request bodies are not supported */
        } else if (name_is(line, llen, "connection", &v, &n)) {
            if (has_token(v, n, "close")) rq->close = true;
            if (has_token(v, n, "keep-alive")) keep_alive = true;
        } else if (name_is(line, llen, "range", &v, &n)) {
            copy_field(rq->range, sizeof rq->range, v, n);
        }
    }
    if (http10 && !keep_alive) rq->close = true;
    return 0;
}

static int parse_response(const char *h, size_t hlen, bool head_req, struct resp *rs) {
    memset(rs, 0, sizeof *rs);
    rs->head_len = hlen;
    if (hlen < 12 || strncmp(h, "HTTP/1.", 7) != 0 || h[8] != ' ') return -1;
    for (int i = 9; i < 12; i++)
        if (h[i] < '0' || h[i] > '9') return -1;
    if (hlen > 12 && h[12] != ' ' && h[12] != '\r') return -1;
    rs->status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
    bool seen_len = false, chunked = false, keep_alive = false;
    struct hdr_iter it = headers(h, hlen);
    const char *line;
    size_t llen;
    while (next_header(&it, &line, &llen)) {
        const char *v;
        size_t n;
        if (name_is(line, llen, "content-length", &v, &n)) {
            if (parse_length(v, n, &seen_len, &rs->body_len) < 0) return -1;
        } else if (name_is(line, llen, "transfer-encoding", &v, &n)) {
            if (has_token(v, n, "chunked")) chunked = true;
        } else if (name_is(line, llen, "connection", &v, &n)) {
            if (has_token(v, n, "close")) rs->close = true;
            if (has_token(v, n, "keep-alive")) keep_alive = true;
        }
    }
    if (h[7] == '0' && !keep_alive) rs->close = true;
    if (head_req || rs->status / 100 == 1 || rs->status == 204 || rs->status == 304) {
        rs->mode = BODY_NONE;
        rs->body_len = 0;
    } else if (chunked) {
        rs->mode = BODY_CHUNKED;
    } else if (seen_len) {
        rs->mode = rs->body_len > 0 ? BODY_LENGTH : BODY_NONE;
    } else {
        rs->mode = BODY_TO_EOF;
        rs->close = true;
    }
    return 0;
}

/* ---- responses of our own ---- */

static const char *reason(int code) {
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 412:
        return "Precondition Failed";
    case 416:
        return "Range Not Satisfiable";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Injected";
    }
}

static int send_status(struct conn *c, int code, bool head_req, bool close_after) {
    char body[64], head[256];
    int blen = snprintf(body, sizeof body, "faultproxy: %d %s\n", code, reason(code));
    int hlen = snprintf(head, sizeof head,
                        "HTTP/1.1 %d %s\r\nServer: faultproxy\r\nContent-Type: text/plain\r\n"
                        "Content-Length: %d\r\n%s\r\n",
                        code, reason(code), blen, close_after ? "Connection: close\r\n" : "");
    if (write_all(c->cfd, head, (size_t)hlen) < 0) return -1;
    if (!head_req && write_all(c->cfd, body, (size_t)blen) < 0) return -1;
    return 0;
}

static void log_line(unsigned long k, const struct req *rq, int status, const char *fault) {
    if (cfg.log_fd < 0) return;
    char line[2048];
    int n = snprintf(line, sizeof line, "%lu %s %s %s %d %s\n", k, rq->method, rq->target,
                     rq->range, status, fault);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) {
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    ssize_t w = write(cfg.log_fd, line, (size_t)n);
    (void)w;
}

/* ---- upstream ---- */

static int connect_upstream(struct conn *c) {
    close_fd(&c->ufd);
    c->up_served = 0;
    int fd = socket(cfg.up_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&cfg.up_addr, cfg.up_len) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = 120};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    set_fd(&c->ufd, fd);
    return 0;
}

/* Sends the request upstream, consuming it from c->cb, and reads the response head into c->ub.
 * A kept-alive upstream connection may have been closed meanwhile: then, for a request without
 * a body, it reconnects and tries once more. Returns the head length or -1 (upstream failed),
 * -2 (the client failed while its body was copied), -3 (the response head was too large). */
static long exchange(struct conn *c, const struct req *rq) {
    long ret = -1;
    bool consumed = false;
    for (int attempt = 0;; attempt++) {
        if (c->ufd < 0 && connect_upstream(c) < 0) break;
        c->ub.start = c->ub.end = 0;
        bool retry_ok = c->up_served > 0 && attempt == 0 && rq->body_len == 0;
        if (write_all(c->ufd, c->cb.p + c->cb.start, rq->head_len) < 0) {
            close_fd(&c->ufd);
            if (retry_ok) continue;
            break;
        }
        if (rq->body_len > 0) {
            c->cb.start += rq->head_len;
            consumed = true;
            int r = pass_client_body(c, rq->body_len);
            if (r < 0) {
                close_fd(&c->ufd);
                ret = r == -1 ? -2 : -1;
                break;
            }
        }
        long hl = read_head(c->ufd, &c->ub);
        if (hl > 0) {
            c->up_served++;
            ret = hl;
            break;
        }
        bool nothing = c->ub.end == c->ub.start;
        close_fd(&c->ufd);
        if (retry_ok && (hl == 0 || (hl == -1 && nothing))) continue;
        ret = hl == -2 ? -3 : -1;
        break;
    }
    if (!consumed) c->cb.start += rq->head_len;
    return ret;
}

/* ---- the schedule ---- */

struct plan {
    int replace; /* a status to answer with instead of forwarding, or 0 */
    int body;    /* F_RESET, F_SHORT, F_STALL or -1 */
    unsigned long arg;
    bool etag;
};

static struct plan plan_for(unsigned long k) {
    struct plan p = {.body = -1};
    for (int i = 0; i < cfg.nfaults; i++) {
        const struct fault *f = &cfg.faults[i];
        bool hit = f->kind == F_503 ? k >= f->every && k % f->every < f->arg : k % f->every == 0;
        if (!hit) continue;
        switch (f->kind) {
        case F_503:
            if (!p.replace) p.replace = 503;
            break;
        case F_STATUS:
            if (!p.replace) p.replace = (int)f->arg;
            break;
        case F_ETAG:
            p.etag = true;
            break;
        default:
            if (p.body < 0) {
                p.body = (int)f->kind;
                p.arg = f->arg;
            }
        }
    }
    return p;
}

/* The response head with its ETag value replaced; returns the new length (0: none found). */
static size_t rewrite_etag(const char *h, size_t hlen, unsigned long k, char *out, size_t cap) {
    struct hdr_iter it = headers(h, hlen);
    const char *line;
    size_t llen;
    while (next_header(&it, &line, &llen)) {
        const char *v;
        size_t n;
        if (!name_is(line, llen, "etag", &v, &n)) continue;
        char val[64];
        int vl = snprintf(val, sizeof val, "\"changed-%lu\"", k);
        size_t pre = (size_t)(v - h), post = hlen - (size_t)(v + n - h);
        if (pre + (size_t)vl + post > cap) return 0;
        memcpy(out, h, pre);
        memcpy(out + pre, val, (size_t)vl);
        memcpy(out + pre + (size_t)vl, v + n, post);
        return pre + (size_t)vl + post;
    }
    return 0;
}

/* ---- a connection ---- */

/* Serves requests on one client connection until either side closes. */
static void serve(struct conn *c) {
    for (;;) {
        long hl = read_head(c->cfd, &c->cb);
        if (hl == 0 || hl == -1) return;
        struct req rq;
        if (hl == -2) {
            send_status(c, 431, false, true);
            return;
        }
        if (parse_request(c->cb.p + c->cb.start, (size_t)hl, &rq) < 0) {
            send_status(c, 400, false, true);
            return;
        }
        unsigned long k = atomic_fetch_add(&g_resp, 1) + 1;
        struct plan p = plan_for(k);
        if (cfg.latency_ms && wait_ms(cfg.latency_ms) < 0) return;

        if (p.replace) {
            c->cb.start += (size_t)hl;
            if (skip_client(c, rq.body_len) < 0) return;
            log_line(k, &rq, p.replace, p.replace == 503 ? "503" : "status");
            if (send_status(c, p.replace, rq.head, rq.close) < 0 || rq.close) return;
            continue;
        }

        long rl = exchange(c, &rq);
        if (rl == -2) return;
        if (rl < 0 && rq.body_len > 0) {
            /* the request body may be partly read: the connection cannot be kept */
            log_line(k, &rq, 502, "upstream");
            send_status(c, 502, rq.head, true);
            return;
        }
        if (rl < 0) {
            log_line(k, &rq, 502, "upstream");
            if (send_status(c, 502, rq.head, rq.close) < 0 || rq.close) return;
            continue;
        }

        struct resp rs;
        for (;;) {
            if (parse_response(c->ub.p + c->ub.start, (size_t)rl, rq.head, &rs) < 0) {
                close_fd(&c->ufd);
                log_line(k, &rq, 502, "upstream");
                send_status(c, 502, rq.head, true);
                return;
            }
            if (rs.status / 100 != 1 || rs.status == 101) break;
            /* an interim response: pass it on and read the real one */
            if (write_all(c->cfd, c->ub.p + c->ub.start, (size_t)rl) < 0) return;
            c->ub.start += (size_t)rl;
            rl = read_head(c->ufd, &c->ub);
            if (rl <= 0) {
                close_fd(&c->ufd);
                log_line(k, &rq, 502, "upstream");
                send_status(c, 502, rq.head, true);
                return;
            }
        }
        if (rs.status == 101) rs.close = true, rs.mode = BODY_TO_EOF;

        bool eligible = rs.status / 100 == 2 && rs.mode == BODY_LENGTH && rs.body_len > 0;
        int body_fault = eligible ? p.body : -1;
        char label[32] = "-";
        if (body_fault >= 0 && p.etag)
            snprintf(label, sizeof label, "%s+etag", kind_names[body_fault]);
        else if (body_fault >= 0)
            snprintf(label, sizeof label, "%s", kind_names[body_fault]);
        else if (p.etag)
            snprintf(label, sizeof label, "etag");
        log_line(k, &rq, rs.status, label);

        const char *head = c->ub.p + c->ub.start;
        size_t head_len = (size_t)rl;
        char *rewritten = NULL;
        if (p.etag && (rewritten = malloc(HEAD_MAX + 64)) != NULL) {
            size_t n = rewrite_etag(head, head_len, k, rewritten, HEAD_MAX + 64);
            if (n > 0) head = rewritten, head_len = n;
        }
        int w = write_all(c->cfd, head, head_len);
        free(rewritten);
        c->ub.start += (size_t)rl;
        if (w < 0) return;

        unsigned long long n = rs.body_len;
        int r = 0;
        if (body_fault == F_RESET || body_fault == F_SHORT) {
            unsigned long long cut = p.arg < n ? p.arg : n - 1;
            r = relay(c, cut, false);
            close_fd(&c->ufd); /* the rest of the body is not wanted */
            if (r == -2) return;
            if (body_fault == F_RESET)
                reset_client(c);
            else
                close_client_gently(c);
            return;
        } else if (body_fault == F_STALL) {
            r = relay(c, n / 2, false);
            if (r == 0 && wait_ms(p.arg) < 0) return;
            if (r == 0) r = relay(c, n - n / 2, false);
        } else if (rs.mode == BODY_LENGTH) {
            r = relay(c, n, false);
        } else if (rs.mode == BODY_CHUNKED) {
            r = relay_chunked(c);
        } else if (rs.mode == BODY_TO_EOF) {
            r = relay(c, 0, true);
        }
        if (r < 0) return; /* the body cannot be finished: close both sides */
        if (rs.close) {
            close_fd(&c->ufd);
            close_client_gently(c);
            return;
        }
        if (rq.close) {
            close_client_gently(c);
            return;
        }
    }
}

static void *conn_main(void *arg) {
    struct conn *c = arg;
    serve(c);
    close_fd(&c->ufd);
    close_client_gently(c);
    if (c->pipefd[0] >= 0) close(c->pipefd[0]);
    if (c->pipefd[1] >= 0) close(c->pipefd[1]);
    pthread_mutex_lock(&g_mu);
    g_conns[c->slot] = NULL;
    g_active--;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    free(c->cb.p);
    free(c->ub.p);
    free(c->copybuf);
    free(c);
    return NULL;
}

static struct conn *conn_new(int cfd) {
    struct conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->cfd = cfd;
    c->ufd = -1;
    c->pipefd[0] = c->pipefd[1] = -1;
    c->cb.cap = c->ub.cap = HEAD_MAX;
    c->cb.p = malloc(HEAD_MAX);
    c->ub.p = malloc(HEAD_MAX);
    c->copybuf = malloc(COPY_BUF);
    if (!c->cb.p || !c->ub.p || !c->copybuf) {
        free(c->cb.p);
        free(c->ub.p);
        free(c->copybuf);
        free(c);
        return NULL;
    }
    if (!cfg.copy && pipe2(c->pipefd, O_CLOEXEC) == 0) {
        fcntl(c->pipefd[1], F_SETPIPE_SZ, PIPE_SIZE);
        int sz = fcntl(c->pipefd[1], F_GETPIPE_SZ);
        c->pipe_size = sz > 0 ? (size_t)sz : 65536;
    }
    return c;
}

/* Sleeps ms milliseconds; -1 (at once) when the proxy is stopping. */
static int wait_ms(unsigned long ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&g_mu);
    while (!g_stopping)
        if (pthread_cond_timedwait(&g_cv, &g_mu, &ts) == ETIMEDOUT) break;
    bool stopping = g_stopping;
    pthread_mutex_unlock(&g_mu);
    return stopping ? -1 : 0;
}

/* ---- the command line ---- */

static void usage(void) {
    fprintf(stderr, "usage: faultproxy --upstream HOST:PORT [--port N] [--latency-ms N]\n"
                    "                  [--fault KIND:EVERY[:ARG]]... [--seed N] [--log FILE]\n"
                    "kinds: reset:EVERY:BYTES short:EVERY:BYTES stall:EVERY:MS 503:EVERY[:BURST]\n"
                    "       status:EVERY:CODE etag:EVERY\n");
    exit(2);
}

static bool parse_ulong(const char *s, unsigned long max, unsigned long *out) {
    if (!s || !*s || *s == '-' || *s == '+') return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > max) return false;
    *out = v;
    return true;
}

static void parse_fault(const char *spec) {
    if (cfg.nfaults == MAX_FAULTS) {
        fprintf(stderr, "faultproxy: at most %d --fault options\n", MAX_FAULTS);
        exit(2);
    }
    char buf[128];
    if (strlen(spec) >= sizeof buf) goto bad;
    strcpy(buf, spec);
    char *save = NULL;
    char *kind = strtok_r(buf, ":", &save), *every = strtok_r(NULL, ":", &save);
    char *arg = strtok_r(NULL, ":", &save);
    if (!kind || !every || strtok_r(NULL, ":", &save)) goto bad;
    struct fault f = {0};
    int k = -1;
    for (int i = 0; i < 6; i++)
        if (strcmp(kind, kind_names[i]) == 0) k = i;
    if (k < 0) goto bad;
    f.kind = (enum kind)k;
    if (!parse_ulong(every, ULONG_MAX, &f.every) || f.every == 0) goto bad;
    switch (f.kind) {
    case F_RESET:
    case F_SHORT:
    case F_STALL:
        if (!parse_ulong(arg, ULONG_MAX / 2, &f.arg)) goto bad;
        break;
    case F_503:
        f.arg = 1;
        if (arg && (!parse_ulong(arg, ULONG_MAX, &f.arg) || f.arg == 0)) goto bad;
        break;
    case F_STATUS:
        if (!parse_ulong(arg, 599, &f.arg) || f.arg < 100) goto bad;
        break;
    case F_ETAG:
        if (arg) goto bad;
        break;
    }
    cfg.faults[cfg.nfaults++] = f;
    return;
bad:
    fprintf(stderr, "faultproxy: bad --fault '%s'\n", spec);
    usage();
}

static void parse_upstream(const char *spec) {
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof host) {
        fprintf(stderr, "faultproxy: --upstream wants HOST:PORT\n");
        exit(2);
    }
    size_t hl = (size_t)(colon - spec);
    memcpy(host, spec, hl);
    host[hl] = 0;
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int e = getaddrinfo(host, colon + 1, &hints, &ai);
    if (e != 0 || !ai) {
        fprintf(stderr, "faultproxy: cannot resolve %s: %s\n", spec, gai_strerror(e));
        exit(2);
    }
    memcpy(&cfg.up_addr, ai->ai_addr, ai->ai_addrlen);
    cfg.up_len = ai->ai_addrlen;
    freeaddrinfo(ai);
}

int main(int argc, char **argv) {
    unsigned long port = 0, seed = 0;
    const char *log_path = NULL;
    bool have_upstream = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) usage();
        if (!v) usage();
        i++;
        if (strcmp(a, "--upstream") == 0) {
            parse_upstream(v);
            have_upstream = true;
        } else if (strcmp(a, "--port") == 0) {
            if (!parse_ulong(v, 65535, &port)) usage();
        } else if (strcmp(a, "--latency-ms") == 0) {
            if (!parse_ulong(v, 3600000, &cfg.latency_ms)) usage();
        } else if (strcmp(a, "--fault") == 0) {
            parse_fault(v);
        } else if (strcmp(a, "--seed") == 0) {
            if (!parse_ulong(v, ULONG_MAX, &seed)) usage();
        } else if (strcmp(a, "--log") == 0) {
            log_path = v;
        } else {
            usage();
        }
    }
    if (!have_upstream) usage();
    const char *copy = getenv("FAULTPROXY_COPY");
    cfg.copy = copy && *copy && strcmp(copy, "0") != 0;
    if (log_path) {
        cfg.log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (cfg.log_fd < 0) {
            perror(log_path);
            return 2;
        }
    }

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g_cv, &ca);
    pthread_condattr_destroy(&ca);

    signal(SIGPIPE, SIG_IGN);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL); /* threads inherit it; only the signalfd sees them */
    int sfd = signalfd(-1, &stop, SFD_CLOEXEC);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (sfd < 0 || lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        listen(lfd, 256) < 0 || getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
        perror("faultproxy: listen");
        return 1;
    }
    printf("port %u\n", ntohs(sa.sin_port));
    fflush(stdout);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        pthread_mutex_lock(&g_mu);
        bool full = g_active >= MAX_CONNS;
        pthread_mutex_unlock(&g_mu);
        struct pollfd pf[2] = {{.fd = sfd, .events = POLLIN}, {.fd = lfd, .events = POLLIN}};
        int r = poll(pf, full ? 1 : 2, full ? 50 : -1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            perror("faultproxy: poll");
            return 1;
        }
        if (pf[0].revents) break;
        if (full || !(pf[1].revents & POLLIN)) continue;
        int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                usleep(10000);
            continue;
        }
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = conn_new(cfd);
        if (!c) {
            close(cfd);
            continue;
        }
        pthread_mutex_lock(&g_mu);
        int slot = 0;
        while (g_conns[slot]) slot++; /* g_active < MAX_CONNS: there is one */
        c->slot = slot;
        g_conns[slot] = c;
        g_active++;
        pthread_mutex_unlock(&g_mu);
        pthread_t t;
        if (pthread_create(&t, &attr, conn_main, c) != 0) {
            c->cfd = -1;
            close(cfd);
            conn_main(c);
        }
    }
    pthread_attr_destroy(&attr);

    /* Stop: wake the sleepers, unblock every socket, wait (up to 5 s) for the threads. */
    close(lfd);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&g_mu);
    g_stopping = true;
    pthread_cond_broadcast(&g_cv);
    for (int i = 0; i < MAX_CONNS; i++) {
        if (!g_conns[i]) continue;
        if (g_conns[i]->cfd >= 0) shutdown(g_conns[i]->cfd, SHUT_RDWR);
        if (g_conns[i]->ufd >= 0) shutdown(g_conns[i]->ufd, SHUT_RDWR);
    }
    while (g_active > 0)
        if (pthread_cond_timedwait(&g_cv, &g_mu, &until) == ETIMEDOUT) break;
    pthread_mutex_unlock(&g_mu);
    if (cfg.log_fd >= 0) close(cfg.log_fd);
    close(sfd);
    (void)seed;
    return 0;
}
