/* lumio stream recv: take streams from TCP senders into one file. Senders
 * are served side by side; each chunk is verified (checksum and payload) as
 * it arrives and appended whole, renumbered as the file's next chunk, so the
 * file is one valid stream whatever the senders do. A sender that breaks the
 * format is named and dropped; the others go on. */
#include "cli/common.h"
#include "cli/stream_cli.h"

#include <errno.h>
#include <netdb.h>
#include <inttypes.h>
#include <lumio/stream.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PEERS 16
/* What the senders' unfinished chunks may hold, all together: a chunk may
 * be up to 256 MiB, but sixteen senders each claiming one must not take
 * 4 GiB. */
#define RECV_MEMORY ((uint64_t)512 << 20)
#define PEER_BUF    ((size_t)64 << 10)
/* A connection that has not sent the signature by then is not a sender; a
 * sender stalled inside a chunk (never between chunks: a profiler may flush
 * every few minutes) holds a slot and its buffer for nothing. */
#define HELLO_MS 10000
#define STALL_MS 60000

typedef struct peer {
    int fd;
    char name[64]; /* address:port */
    uint8_t *buf;
    size_t len, cap;
    uint64_t off; /* stream offset of buf[0], for messages */
    bool sig;
    bool have_seq;
    uint64_t last_seq;
    uint64_t chunks;
    uint64_t since_ms, last_ms; /* when it connected, and last sent a byte */
} peer;

typedef struct receiver {
    lumio_stream_writer *w;
    const char *out;
    peer peers[MAX_PEERS];
    size_t npeers;
    uint64_t held, memory; /* bytes of the peers' buffers, and their cap */
    uint64_t hello_ms, stall_ms;
    int err; /* writing the file failed: the end */
    bool once, served;
} receiver;

static volatile sig_atomic_t recv_stop;
static void on_stop(int sig) {
    (void)sig;
    recv_stop = 1;
}

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A timeout from the environment (for tests only: they cannot wait a
 * minute), else the default. */
static uint64_t env_ms(const char *name, uint64_t dflt) {
    const char *v = getenv(name);
    char *end;
    unsigned long long ms = v && *v ? strtoull(v, &end, 10) : 0;
    return v && *v && !*end && ms > 0 ? (uint64_t)ms : dflt;
}

static void peer_close(receiver *rv, size_t i) {
    rv->held -= rv->peers[i].cap;
    close(rv->peers[i].fd);
    free(rv->peers[i].buf);
    rv->peers[i] = rv->peers[--rv->npeers];
}

/* A peer that broke the format: one line naming it and what it sent. */
static int misbehaved(peer *p, uint64_t at, const char *why) {
    cli_error("peer %s: byte %" PRIu64 ": %s; connection dropped", p->name, at, why);
    return -1;
}

static const char *chunk_problem(int rc) {
    if (rc == LUMIO_E_CHECKSUM) return "chunk checksum mismatch";
    if (rc == -ENOMEM) return "out of memory verifying a chunk";
    return "not a valid chunk (header out of limits, or a payload that does not decode)";
}

/* Append one whole chunk (verified on the way in); a duplicate of this
 * peer's is skipped. Returns 0, -1 when the peer is to be dropped, or the
 * file's failure. */
static int take_chunk(receiver *rv, peer *p, const lumio_stream_chunk_info *ci, const uint8_t *at,
                      uint64_t offset) {
    if (p->have_seq && ci->seq <= p->last_seq) return 0; /* sent twice */
    int rc = lumio_stream_writer_write_chunk(rv->w, at, ci->length);
    if (rc == LUMIO_E_CHECKSUM || rc == LUMIO_E_FORMAT)
        return misbehaved(p, offset, chunk_problem(rc));
    if (rc < 0) {
        cli_error("%s: %s", rv->out, lumio_strerror(rc));
        rv->err = rc;
        return rc;
    }
    p->have_seq = true;
    p->last_seq = ci->seq;
    p->chunks++;
    lumio_stream_writer_stats st;
    lumio_stream_writer_get_stats(rv->w, &st);
    fprintf(stderr, "received chunks=%" PRIu64 " samples=%" PRIu64 "\n", st.chunks, st.samples);
    return 0;
}

/* A compressed chunk is decoded into a buffer of the raw size its header
 * declares: that counts against --memory with the buffers held, before the
 * decoder allocates it (8 KiB of zstd may declare 256 MiB). */
static bool decode_fits(receiver *rv, peer *p, const lumio_stream_chunk_info *ci, uint64_t at) {
    uint64_t need;
    if (!ci->compressed) return true;
    if (!__builtin_add_overflow(rv->held, ci->raw_bytes, &need) && need <= rv->memory) return true;
    char m[32], why[192];
    snprintf(why, sizeof why,
             "a chunk declaring %" PRIu64 " bytes decompressed would take the senders' buffers "
             "past --memory %s",
             ci->raw_bytes, cli_size_text(rv->memory, m, sizeof m));
    misbehaved(p, at, why);
    return false;
}

/* Consume what arrived whole: the signature, then chunks. Returns 0, or -1
 * when the peer is to be dropped (or the file failed). */
static int take(receiver *rv, peer *p) {
    size_t off = 0;
    int rc = 0;
    if (!p->sig) {
        rc = lumio_stream_check_signature(p->buf, p->len);
        if (rc == -EAGAIN) return 0;
        if (rc < 0) return misbehaved(p, 0, "not a lumio stream (no signature)");
        p->sig = true;
        off = LUMIO_STREAM_SIGNATURE_LEN;
    }
    while (off < p->len && rc == 0) {
        lumio_stream_chunk_info ci;
        rc = lumio_stream_chunk_peek(p->buf + off, p->len - off, &ci);
        if (rc == LUMIO_E_FORMAT) return misbehaved(p, p->off + off, chunk_problem(rc));
        if (ci.length && !decode_fits(rv, p, &ci, p->off + off)) return -1;
        if (rc == -EAGAIN) {
            rc = 0;
            break;
        }
        if ((rc = take_chunk(rv, p, &ci, p->buf + off, p->off + off)) == 0) off += ci.length;
    }
    memmove(p->buf, p->buf + off, p->len - off);
    p->len -= off;
    p->off += off;
    return rc < 0 ? -1 : 0;
}

/* Read what the peer sent. Returns 1 to keep it, 0 when it hung up, -1 to
 * drop it. */
static int peer_read(receiver *rv, peer *p) {
    if (p->len == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : PEER_BUF;
        if (cap > LUMIO_STREAM_CHUNK_MAX) cap = LUMIO_STREAM_CHUNK_MAX;
        if (cap <= p->cap) /* cannot happen: the header's limits hold chunks smaller */
            return misbehaved(p, p->off, "a chunk larger than the format's limit");
        if (rv->held - p->cap + cap > rv->memory) {
            char m[32], why[160];
            snprintf(why, sizeof why,
                     "a chunk of more than %zu bytes would take the senders' buffers past "
                     "--memory %s",
                     p->cap, cli_size_text(rv->memory, m, sizeof m));
            return misbehaved(p, p->off, why);
        }
        uint8_t *b = realloc(p->buf, cap);
        if (!b) return misbehaved(p, p->off, "out of memory");
        rv->held += cap - p->cap;
        p->buf = b;
        p->cap = cap;
    }
    ssize_t k = recv(p->fd, p->buf + p->len, p->cap - p->len, MSG_DONTWAIT);
    if (k < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return 1;
    if (k < 0) {
        cli_error("peer %s: %s; connection dropped", p->name, strerror(errno));
        return -1;
    }
    if (k == 0) {
        if (p->len) /* the sender was killed mid-chunk: expected, and said */
            cli_error("peer %s: closed with %zu bytes of an unfinished chunk at byte %" PRIu64
                      " (discarded)",
                      p->name, p->len, p->off);
        return 0;
    }
    p->len += (size_t)k;
    p->last_ms = mono_ms();
    if (take(rv, p) < 0) return -1;
    /* A large chunk went through: its room goes back to the others. */
    if (p->cap > PEER_BUF && p->len <= PEER_BUF) {
        uint8_t *b = realloc(p->buf, PEER_BUF);
        if (b) {
            rv->held -= p->cap - PEER_BUF;
            p->buf = b;
            p->cap = PEER_BUF;
        }
    }
    return 1;
}

/* A connection beyond MAX_PEERS is closed at once, not left in the backlog:
 * the kernel would ack what the sender writes and the data would be lost
 * without a word. Closed, the sender sees the failure (and retries). */
static void accept_peer(receiver *rv, int lfd) {
    struct sockaddr_storage a;
    socklen_t al = sizeof a;
    int fd = accept4(lfd, (struct sockaddr *)&a, &al, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?", name[64];
    getnameinfo((struct sockaddr *)&a, al, host, sizeof host, serv, sizeof serv,
                NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(name, sizeof name, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, serv);
    if (rv->npeers == MAX_PEERS) {
        cli_error("peer %s: refused: %d senders connected", name, MAX_PEERS);
        close(fd);
        return;
    }
    peer *p = &rv->peers[rv->npeers++];
    *p = (peer){.fd = fd, .since_ms = mono_ms()};
    p->last_ms = p->since_ms;
    memcpy(p->name, name, sizeof p->name);
}

/* Whether peer p is to be dropped for silence, said by name. */
static bool peer_stalled(const receiver *rv, peer *p, uint64_t now) {
    uint64_t quiet = now > p->last_ms ? now - p->last_ms : 0;
    if (!p->sig && now > p->since_ms && now - p->since_ms >= rv->hello_ms) {
        cli_error("peer %s: no stream signature within %" PRIu64 " ms; connection dropped", p->name,
                  rv->hello_ms);
        return true;
    }
    if (p->sig && p->len && quiet >= rv->stall_ms) {
        cli_error("peer %s: byte %" PRIu64 ": stalled for %" PRIu64
                  " ms inside a chunk (%zu bytes of it received); connection dropped",
                  p->name, p->off, rv->stall_ms, p->len);
        return true;
    }
    return false;
}

static void serve(receiver *rv, int lfd) {
    while (!recv_stop && !rv->err && !(rv->once && rv->served)) {
        struct pollfd pf[MAX_PEERS + 1];
        size_t n = 0;
        pf[n++] = (struct pollfd){lfd, POLLIN, 0};
        for (size_t i = 0; i < rv->npeers; i++)
            pf[n++] = (struct pollfd){rv->peers[i].fd, POLLIN, 0};
        int ready = poll(pf, (nfds_t)n, 200);
        uint64_t now = mono_ms();
        /* Peers from the last one down: closing one moves the last into its slot. */
        for (size_t i = rv->npeers; i-- > 0 && !rv->err;) {
            int k = 1;
            if (ready > 0 && pf[1 + i].revents) k = peer_read(rv, &rv->peers[i]);
            if (k == 0 && rv->peers[i].sig) rv->served = true;
            if (k > 0 && peer_stalled(rv, &rv->peers[i], now)) k = -1;
            if (k <= 0) peer_close(rv, i);
        }
        if (ready > 0 && (pf[0].revents & POLLIN)) accept_peer(rv, lfd);
    }
    while (rv->npeers) peer_close(rv, rv->npeers - 1);
}

/* ---- WebSocket writers: each message is the signature or one chunk ---------- */

static peer *ws_peer(receiver *rv, uint64_t id) {
    for (size_t i = 0; i < rv->npeers; i++)
        if (rv->peers[i].since_ms == id) return &rv->peers[i];
    return NULL;
}

static void ws_forget(receiver *rv, peer *p) {
    if (p) *p = rv->peers[--rv->npeers];
}

/* A message of p's: the signature first, then whole chunks, one each.
 * Returns 0, or -1 when the peer is to be dropped. */
static int ws_message(receiver *rv, peer *p, const uint8_t *m, size_t len) {
    uint64_t at = p->off;
    p->off += len;
    if (!p->sig) {
        if (len != LUMIO_STREAM_SIGNATURE_LEN || lumio_stream_check_signature(m, len) != 0)
            return misbehaved(p, at, "not a lumio stream (the first message is not the signature)");
        p->sig = true;
        return 0;
    }
    lumio_stream_chunk_info ci;
    int rc = lumio_stream_chunk_peek(m, len, &ci);
    if (rc == 0 && ci.length != len) rc = LUMIO_E_FORMAT;
    if (rc < 0) return misbehaved(p, at, "a message that is not one whole chunk");
    if (!decode_fits(rv, p, &ci, at)) return -1;
    return take_chunk(rv, p, &ci, m, at) < 0 ? -1 : 0;
}

/* The listener's events. Peers are kept in rv->peers, since_ms holding the
 * listener's id for them (no descriptor of their own). */
static int on_ws(void *arg, const lumio_stream_ws_event *ev) {
    receiver *rv = arg;
    peer *p = ws_peer(rv, ev->peer);
    switch (ev->type) {
    case LUMIO_WS_CONNECTED:
        if (rv->npeers == MAX_PEERS) return -1; /* the listener's cap is the same */
        p = &rv->peers[rv->npeers++];
        *p = (peer){.fd = -1, .since_ms = ev->peer};
        snprintf(p->name, sizeof p->name, "%s", ev->peer_name);
        return 0;
    case LUMIO_WS_MESSAGE:
        if (!p) return -1;
        if (ws_message(rv, p, ev->data, ev->len) == 0) return 0;
        ws_forget(rv, p);
        return -1;
    case LUMIO_WS_CLOSED:
        if (p && ev->len)
            cli_error("peer %s: closed with %zu bytes of an unfinished message (discarded)",
                      ev->peer_name, ev->len);
        if (p && p->sig) rv->served = true;
        ws_forget(rv, p);
        return 0;
    default: /* LUMIO_WS_DROPPED */
        cli_error("peer %s: %s; connection dropped", ev->peer_name, ev->why);
        ws_forget(rv, p);
        return 0;
    }
}

static int serve_ws(receiver *rv, const char *src) {
    lumio_stream_ws_listen_options lo = {.max_peers = MAX_PEERS,
                                         .handshake_ms = (uint32_t)rv->hello_ms,
                                         .stall_ms = (uint32_t)rv->stall_ms,
                                         .memory = rv->memory};
    lumio_stream_ws_listener *l;
    int rc = lumio_stream_ws_listener_open(&l, src, &lo);
    if (rc < 0) {
        cli_error("%s", lumio_stream_reader_last_error(NULL, ERRBUF));
        return rc;
    }
    fprintf(stderr, "listening on %s\n", src);
    while (!recv_stop && !rv->err && !(rv->once && rv->served) && rc == 0)
        rc = lumio_stream_ws_listener_service(l, 200, on_ws, rv);
    lumio_stream_ws_listener_close(l);
    rv->npeers = 0;
    return 0;
}

typedef struct recv_opts {
    const char *src, *out;
    bool once;
    uint64_t memory;
} recv_opts;

/* The command line into r: STREAM_RUN, or the exit status. */
static int recv_parse(int argc, char **argv, recv_opts *r) {
    static const struct option lo[] = {
        {"memory", 1, NULL, 'm'}, {"once", 0, NULL, '1'}, CLI_OPT_END};
    int c;
    while ((c = cli_getopt(argc, argv, ":ho:", lo)) != -1) {
        if (c == 'm' && cli_parse_memory(optarg, 1u << 20, &r->memory) < 0) return EXIT_USAGE;
        if (c == 'o') r->out = optarg;
        if (c == '1') r->once = true;
        if (!strchr("mo1", c)) return cli_option_default(c, argv, stream_usage);
    }
    r->src = optind == argc - 1 ? argv[optind] : NULL;
    if (!r->src || (strncmp(r->src, "tcp-listen:", 11) && strncmp(r->src, "ws-listen:", 10)) ||
        !r->out)
        return cli_usage_error("lumio stream",
                               "recv needs tcp-listen:[HOST:]PORT or ws-listen:[HOST:]PORT "
                               "and -o FILE");
    return STREAM_RUN;
}

int stream_recv(int argc, char **argv) {
    recv_opts ro = {.memory = RECV_MEMORY};
    int status = recv_parse(argc, argv, &ro);
    if (status != STREAM_RUN) return status;
    const char *src = ro.src, *out = ro.out;
    bool ws = !strncmp(src, "ws-listen:", 10);
    if (ws && strlen(src) <= 10)
        return cli_usage_error("lumio stream", "recv: ws-listen needs a port");
    int lfd = ws ? 0 : lumio_stream_listen(src);
    if (lfd < 0) {
        cli_error("%s", lumio_stream_reader_last_error(NULL, ERRBUF));
        return lfd == -EINVAL ? EXIT_USAGE : EXIT_FILES;
    }
    lumio_stream_writer_options o = {0};
    o.append = 1; /* a restarted receiver keeps what it had */
    receiver rv = {.out = out,
                   .once = ro.once,
                   .memory = ro.memory,
                   .hello_ms = env_ms("LUMIO_RECV_HELLO_MS", HELLO_MS),
                   .stall_ms = env_ms("LUMIO_RECV_STALL_MS", STALL_MS)};
    int rc = lumio_stream_writer_open(&rv.w, out, &o);
    if (rc < 0) {
        if (!ws) close(lfd);
        if (rc == LUMIO_E_FORMAT)
            cli_error("%s: not a lumio stream (recv appends to a stream only)", out);
        else
            cli_path_error(out, rc);
        return EXIT_FILES;
    }
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
    if (ws) {
        if (serve_ws(&rv, src) < 0) {
            lumio_stream_writer_close(rv.w);
            return EXIT_FILES;
        }
    } else {
        fprintf(stderr, "listening on %s\n", src);
        serve(&rv, lfd);
        close(lfd);
    }
    int frc = lumio_stream_writer_finish(rv.w);
    if (frc < 0 && !rv.err) cli_error("%s", lumio_stream_writer_last_error(rv.w, ERRBUF));
    lumio_stream_writer_close(rv.w);
    return rv.err || frc < 0 ? EXIT_FILES : 0;
}
