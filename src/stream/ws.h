/* WebSocket sinks and listeners of the stream, on libwebsockets (RFC 6455
 * framing, TLS): "ws://HOST:PORT/PATH" and "wss://..." writer sinks, and
 * "ws-listen:[HOST:]PORT" listeners taking whole binary messages from many
 * writers. Each message of a writer is the signature or one sealed chunk. */
#ifndef LUMIO_STREAM_WS_H
#define LUMIO_STREAM_WS_H

#include "stream/net.h"

/* ---- libwebsockets contexts (ws_context.c) ----------------------------------- */

struct lws_context;
struct lws_context_creation_info;
/* lws_create_context, leaving the program's SIGPIPE disposition and its own
 * lws log level as they were (lws's default level is silenced). */
struct lws_context *lumio__ws_context_create(const struct lws_context_creation_info *info);
/* lws_context_destroy with SIGPIPE held back on this thread. Accepts NULL. */
void lumio__ws_context_destroy(struct lws_context *ctx);

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

typedef struct lumio_stream_ws_listener wslisten;

/* Listen on spec ("[HOST:]PORT"); o's zeros already made defaults. The text
 * of a failure in lumio__net_error(). */
int lumio__wsl_open(wslisten **out, const char *spec, const lumio_stream_ws_listen_options *o);
/* lumio_stream_ws_listener_service; also returns early after lumio__wsl_wake. */
int lumio__wsl_service(wslisten *l, int timeout_ms, lumio_stream_ws_fn fn, void *arg);
/* Wake a service call from another thread. */
void lumio__wsl_wake(wslisten *l);
void lumio__wsl_close(wslisten *l);

#endif
