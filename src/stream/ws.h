/* WebSocket sinks and listeners of the stream, on libwebsockets (RFC 6455
 * framing, TLS): "ws://HOST:PORT/PATH" and "wss://..." writer sinks, and
 * "ws-listen:[HOST:]PORT" listeners taking whole binary messages from many
 * writers. Each message of a writer is the signature or one sealed chunk. */
#ifndef LUMIO_STREAM_WS_H
#define LUMIO_STREAM_WS_H

#include "stream/net.h"

/* ---- the writer's sink ------------------------------------------------------ */

typedef struct wssink wssink;

typedef struct wssink_tls {
    int insecure;        /* do not verify the server's certificate */
    const char *ca_file; /* PEM CA certificates; NULL: the system's */
} wssink_tls;

/* Whether sink names a WebSocket sink (ws:// or wss://). */
bool lumio__ws_is_sink(const char *sink);
/* Connect and finish the handshake now (a refused connection, an unknown
 * host or a refused upgrade fail here, said in lumio__net_error()); then a
 * thread of the sink's own keeps the connection, reconnecting with backoff.
 * max_queued: bytes of sealed chunks kept, the oldest dropped beyond. */
int lumio__ws_open(wssink **out, const char *url, size_t max_queued, const wssink_tls *tls);
/* Queue a sealed chunk (copied); never blocks on the network. */
int lumio__ws_push(wssink *s, const uint8_t *p, size_t len);
/* Send what is queued and wait (wait_ms at most) for the consumer's TCP to
 * acknowledge it. Returns the chunks not delivered; *snap gets the counters
 * (queue, drops, losses, connections, last error) for the caller's message. */
uint64_t lumio__ws_finish(wssink *s, uint32_t wait_ms, netsink *snap);
/* The counters now (a copy, taken under the sink's lock). */
void lumio__ws_counters(wssink *s, netsink *snap);
void lumio__ws_close(wssink *s);

/* ---- listeners ---------------------------------------------------------------- */

typedef struct wslisten wslisten;

enum { WS_EV_CONNECTED = 1, WS_EV_MESSAGE, WS_EV_CLOSED, WS_EV_DROPPED };

typedef struct ws_event {
    int type;
    uint64_t peer;         /* the connection's id, from 1 */
    const char *peer_name; /* "HOST:PORT" */
    const uint8_t *data;   /* WS_EV_MESSAGE: one whole binary message */
    size_t len;            /* its length; WS_EV_CLOSED: bytes of an unfinished message */
    const char *why;       /* WS_EV_DROPPED: what the peer did */
} ws_event;

/* 0 goes on; negative drops the peer (its connection is closed). */
typedef int (*ws_event_fn)(void *arg, const ws_event *ev);

typedef struct wslisten_options {
    unsigned max_peers;    /* writers at once; more are refused (HTTP 503) */
    uint64_t memory;       /* all peers' unfinished messages together */
    uint32_t handshake_ms; /* a connection not upgraded by then is dropped */
} wslisten_options;

/* Listen on spec ("[HOST:]PORT", HOST 127.0.0.1 unless given). The text of
 * a failure in lumio__net_error(). */
int lumio__wsl_open(wslisten **out, const char *spec, const wslisten_options *o);
/* Serve for timeout_ms at most (returning early after an event), calling fn
 * for each event, on the calling thread. 0, or a negative code. */
int lumio__wsl_service(wslisten *l, int timeout_ms, ws_event_fn fn, void *arg);
/* Wake a service call from another thread (it then returns). */
void lumio__wsl_wake(wslisten *l);
void lumio__wsl_close(wslisten *l);

#endif
