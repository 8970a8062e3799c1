/* TCP sinks of the stream writer: "tcp:HOST:PORT" connects out (and
 * reconnects with backoff), "tcp-listen:PORT" waits for one consumer at a
 * time. Sealed chunks wait in a queue bounded in bytes; when it is full the
 * oldest whole chunks are dropped and counted, so a slow or dead consumer
 * costs neither unbounded memory nor a blocked producer. */
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
    char host[256], port[16];
    int lfd; /* listening socket (listen mode) */
    int fd;  /* the consumer's connection, or -1 */
    qchunk *head, *tail;
    size_t queued, max_queued;
    size_t sig_sent;  /* bytes of the signature sent on this connection */
    size_t head_sent; /* bytes of the head chunk sent on this connection */
    uint64_t next_try_ms;
    uint32_t backoff_ms;
    uint64_t dropped_chunks, dropped_bytes, connections;
} netsink;

/* Parse a sink string; 1 if it names a TCP sink (then *ns is set up and,
 * in listen mode, listening), 0 if not, < 0 on error. */
int net_open(netsink *ns, const char *sink, size_t max_queued);
/* Queue a sealed chunk, then send what can be sent without blocking. */
int net_push(netsink *ns, const uint8_t *p, size_t len);
/* Send without blocking for more than wait_ms (0: not at all). Returns 0 or
 * a negative code for a failure that is not the consumer's going away. */
int net_pump(netsink *ns, uint32_t wait_ms);
void net_close(netsink *ns);
/* HOST:PORT (or [V6]:PORT) into its parts. */
int net_split(const char *hp, char *host, size_t hcap, char *port, size_t pcap);
/* A connected, non-blocking socket, waiting at most timeout_ms, or < 0. */
int net_connect(const char *host, const char *port, int timeout_ms);
/* A non-blocking listening socket on PORT (all addresses), or < 0. */
int net_listen(const char *port);

/* For receivers: write a chunk that arrived whole and verified, as it is,
 * to a file writer (committed like any chunk). Chunks whose seq is not above
 * the last one written are duplicates and are skipped (returns 1). */
int lumio_stream_writer_put_chunk(lumio_stream_writer *w, const uint8_t *chunk, size_t len,
                                  uint64_t seq);

#endif
