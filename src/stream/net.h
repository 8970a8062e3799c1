/* TCP sinks of the stream writer: "tcp:HOST:PORT" connects out (and
 * reconnects with backoff), "tcp-listen:[HOST:]PORT" waits for one consumer
 * at a time (on loopback unless HOST says otherwise). Sealed chunks wait in a
 * queue bounded in bytes; when it is full the oldest whole chunks are dropped
 * and counted, so a slow or dead consumer costs neither unbounded memory nor
 * a blocked producer. */
#ifndef LUMIO_STREAM_NET_H
#define LUMIO_STREAM_NET_H

#include "stream/chunk.h"

typedef struct qchunk {
    struct qchunk *next;
    size_t len;
    uint8_t data[];
} qchunk;

typedef struct netsink {
    bool listen_mode;
    char host[256], port[8];
    int lfd; /* listening socket (listen mode) */
    int fd;  /* the consumer's connection, or -1 */
    qchunk *head, *tail;
    size_t nqueued; /* chunks in the queue */
    size_t queued, max_queued;
    size_t sig_sent;  /* bytes of the signature sent on this connection */
    size_t head_sent; /* bytes of the head chunk sent on this connection */
    /* Delivery: bytes handed to this connection, and where each chunk sent
     * whole on it ends, until the peer's TCP has acknowledged it. */
    uint64_t conn_sent;
    uint64_t *inflight;
    size_t ninflight, inflight_cap;
    uint64_t next_try_ms;
    uint32_t backoff_ms;
    /* A new connection carries the signature only until it has stood for
     * NET_SETTLE_MS: a receiver that refuses it (full) closes it at once,
     * and chunks sent before that would be acknowledged by its kernel and
     * counted delivered, then thrown away unread. */
    uint64_t conn_ms;
    bool settled;
    int last_err; /* why the last connection attempt or connection failed */
    uint64_t dropped_chunks, dropped_bytes; /* the queue was full */
    uint64_t lost_chunks; /* sent, never acknowledged, then the connection broke */
    uint64_t connections;
} netsink;

/* The length of the "tcp:" or "tcp-connect:" (its synonym, as the
 * proposal writes it) that s starts with, else 0. */
size_t lumio__net_connect_prefix(const char *s);
/* Parse a sink string; 1 if it names a TCP sink (then *ns is set up: in
 * listen mode listening, in connect mode connected), 0 if not, < 0 on error
 * (lumio__net_error() says what). */
int lumio__net_open(netsink *ns, const char *sink, size_t max_queued);
/* Queue a sealed chunk (copied), dropping the oldest whole chunks (never
 * one half sent) beyond max_queued, counted; sends nothing. The WebSocket
 * sink shares this queue and its accounting. */
int lumio__net_enqueue(netsink *ns, const uint8_t *p, size_t len);
/* Queue a sealed chunk, then send what can be sent without blocking. */
int lumio__net_push(netsink *ns, const uint8_t *p, size_t len);
/* Send without blocking for more than wait_ms (0: not at all). Returns 0 or
 * a negative code for a failure that is not the consumer's going away. */
int lumio__net_pump(netsink *ns, uint32_t wait_ms);
/* Send the rest and wait (at most wait_ms in all) until the consumer's TCP
 * has acknowledged every byte. Returns the chunks not delivered: still
 * queued, or sent and never acknowledged (this connection's or lost ones). */
uint64_t lumio__net_finish(netsink *ns, uint32_t wait_ms);
void lumio__net_close(netsink *ns);

/* "[HOST:]PORT", "[V6]:PORT": HOST (default_host when absent; NULL: it must
 * be there) and a decimal PORT from 1 to 65535. -EINVAL, with lumio__net_error(). */
int lumio__net_parse(const char *spec, const char *default_host, char *host, size_t hcap,
                     char *port, size_t pcap);
/* A connected, non-blocking socket, waiting at most timeout_ms, or < 0
 * (-EHOSTUNREACH for a name that does not resolve) with lumio__net_error(). */
int lumio__net_connect(const char *host, const char *port, int timeout_ms);
/* A non-blocking listening socket on HOST:PORT, or < 0 with lumio__net_error(). */
int lumio__net_listen(const char *host, const char *port);
/* "HOST:PORT" (IPv6 in brackets) of a socket address, for messages. */
void lumio__net_name(const void *sockaddr, char *buf, size_t cap);
/* What the last failure of a net_ call in this thread was, naming the
 * address: "unknown host 'x' (Name or service not known)". */
const char *lumio__net_error(void);
void lumio__net_error_clear(void);
void lumio__net_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* For receivers: write a chunk that arrived whole and verified to a file
 * writer as the file's next chunk (its seq rewritten and its checksum with
 * it, so chunks from several senders make one valid stream). */

#endif
