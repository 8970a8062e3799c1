/* The HTTP side of lumio stream serve, on libmicrohttpd: the page's files,
 * /api/flamegraph, /api/timeline and /api/summary. Loopback unless told
 * otherwise; the Host header must name this server (a page elsewhere that
 * rebinds its DNS name to 127.0.0.1 is refused); no CORS; a strict
 * Content-Security-Policy; bounded connections, time and answers. */
#include "cli/common.h"
#include "cli/stream_serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define MAX_CONNECTIONS 64
#define TIMEOUT_S       15
#define POOL_THREADS    2
#define MAX_ANSWER      ((size_t)256 << 20)
/* What the answers queued on every connection may hold together: a slow
 * client holding a large answer costs its share of this, not a new one. */
#define MAX_IN_FLIGHT     ((size_t)512 << 20)
#define MAX_BINS          4096
#define CONNECTION_MEMORY ((size_t)256 << 10)

static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                          "img-src 'self'; connect-src 'self'; base-uri 'none'; "
                          "form-action 'none'; frame-ancestors 'none'";

struct serve_http {
    struct MHD_Daemon *d;
    serve_store *store;
    char host[256]; /* as --listen named it, without brackets */
    char port[8];
    bool wildcard; /* bound to every address: any IP literal is a fine Host */
};

/* ---- answers --------------------------------------------------------------- */

static _Atomic size_t in_flight;             /* bytes of JSON answers queued, not yet sent */
static size_t max_in_flight = MAX_IN_FLIGHT; /* LUMIO_SERVE_IN_FLIGHT (bytes), for tests */

typedef struct answer {
    void *p;
    size_t n;
} answer;

static void answer_free(void *cls) {
    answer *a = cls;
    atomic_fetch_sub(&in_flight, a->n);
    free(a->p);
    free(a);
}

/* A JSON answer of ours (malloc'd), counted in flight until MHD frees it;
 * NULL when out of memory or over MAX_IN_FLIGHT (data freed then). */
static struct MHD_Response *counted(void *data, size_t len, bool *busy) {
    answer *a = malloc(sizeof *a);
    *busy = atomic_fetch_add(&in_flight, len) + len > max_in_flight;
    struct MHD_Response *r = NULL;
    if (a && !*busy) {
        *a = (answer){data, len};
        r = MHD_create_response_from_buffer_with_free_callback_cls(len, data, answer_free, a);
    }
    if (!r) {
        atomic_fetch_sub(&in_flight, len);
        free(data);
        free(a);
    }
    return r;
}

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *type,
                               void *data, size_t len, enum MHD_ResponseMemoryMode mode) {
    bool busy = false;
    struct MHD_Response *r = mode == MHD_RESPMEM_MUST_FREE
                                 ? counted(data, len, &busy)
                                 : MHD_create_response_from_buffer(len, data, mode);
    if (busy) { /* small, and not counted: it must get through */
        static const char msg[] = "{\"error\":\"busy: the answers being sent take all the room "
                                  "for them; retry\"}";
        r = MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_SERVICE_UNAVAILABLE;
        type = "application/json";
    }
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Content-Security-Policy", csp);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
    MHD_add_response_header(r, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result respond_json(struct MHD_Connection *c, unsigned status, sbuf *b) {
    if (b->err) {
        const char *why = b->err == -E2BIG ? "the answer is too large (ask for less: min=, "
                                             "a thread, a time range)"
                                           : "out of memory";
        free(b->p);
        *b = (sbuf){0};
        SBUF_LIT(b, "{\"error\":");
        sbuf_json_string(b, why);
        SBUF_LIT(b, "}");
        status = MHD_HTTP_SERVICE_UNAVAILABLE;
        if (b->err) return MHD_NO;
    }
    return respond(c, status, "application/json", b->p, b->n, MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result respond_error(struct MHD_Connection *c, unsigned status, const char *msg) {
    sbuf b = {0};
    SBUF_LIT(&b, "{\"error\":");
    sbuf_json_string(&b, msg);
    SBUF_LIT(&b, "}");
    return respond_json(c, status, &b);
}

/* ---- the Host header ------------------------------------------------------- */

static bool is_ip_literal(const char *h) {
    unsigned char a[16];
    return inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1;
}

/* Whether Host (HOST[:PORT], [V6][:PORT]) names this server. */
static bool host_ok(const serve_http *h, const char *hdr) {
    char host[256];
    const char *port;
    if (hdr[0] == '[') {
        const char *e = strchr(hdr, ']');
        if (!e || (size_t)(e - hdr - 1) >= sizeof host) return false;
        memcpy(host, hdr + 1, (size_t)(e - hdr - 1));
        host[e - hdr - 1] = 0;
        port = e[1] == ':' ? e + 2 : e[1] ? NULL : "";
    } else {
        const char *colon = strrchr(hdr, ':');
        size_t n = colon ? (size_t)(colon - hdr) : strlen(hdr);
        if (n >= sizeof host || (colon && strchr(hdr, ':') != colon)) return false;
        memcpy(host, hdr, n);
        host[n] = 0;
        port = colon ? colon + 1 : "";
    }
    if (!port || (strcmp(port, h->port) && !(port[0] == 0 && !strcmp(h->port, "80")))) return false;
    if (!strcasecmp(host, h->host)) return true;
    bool loopback = !strcmp(h->host, "127.0.0.1") || !strcmp(h->host, "::1") ||
                    !strcasecmp(h->host, "localhost");
    if ((loopback || h->wildcard) &&
        (!strcasecmp(host, "localhost") || !strcmp(host, "127.0.0.1") || !strcmp(host, "::1")))
        return true;
    return h->wildcard && is_ip_literal(host);
}

/* ---- query parameters ------------------------------------------------------ */

typedef struct query {
    serve_filter f;
    const char *const *allowed; /* the names this route takes */
    unsigned seen;              /* a bit per allowed name */
    char err[256];
} query;

/* A decimal number of at most 20 digits that fits in 64 bits. */
static bool parse_u64(const char *v, uint64_t *out) {
    uint64_t x = 0;
    if (!*v) return false;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9' || __builtin_mul_overflow(x, 10, &x) ||
            __builtin_add_overflow(x, (uint64_t)(*p - '0'), &x))
            return false;
    }
    *out = x;
    return true;
}

static bool take_param(query *q, const char *key, const char *v) {
    uint64_t x = 0;
    if (!v || !*v) return true; /* thread=&from=: not given */
    if (!parse_u64(v, &x)) {
        const char *want = !strcmp(key, "thread") ? "a thread id (a decimal number)"
                           : !strcmp(key, "from") || !strcmp(key, "to")
                               ? "a time in microseconds (a decimal number, as the samples' "
                                 "timestamps)"
                               : "a decimal number";
        snprintf(q->err, sizeof q->err, "%s: '%.40s%s' is not %s", key, v,
                 strlen(v) > 40 ? "..." : "", want);
        return false;
    }
    if (!strcmp(key, "thread")) {
        q->f.has_thread = true;
        q->f.thread = x;
    } else if (!strcmp(key, "from")) {
        q->f.from_us = x;
    } else if (!strcmp(key, "to")) {
        q->f.to_us = x;
    } else if (!strcmp(key, "min")) {
        q->f.min_value = x;
    } else if (x < 1 || x > MAX_BINS) {
        snprintf(q->err, sizeof q->err, "bins: '%s' is not a number from 1 to %d", v, MAX_BINS);
        return false;
    } else {
        q->f.bins = (uint32_t)x;
    }
    return true;
}

static enum MHD_Result on_param(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *v) {
    query *q = cls;
    (void)kind;
    unsigned i = 0;
    while (q->allowed[i] && strcmp(q->allowed[i], key)) i++;
    if (!q->allowed[i]) {
        snprintf(q->err, sizeof q->err, "unknown parameter '%.40s'", key);
        return MHD_NO;
    }
    if (q->seen & 1u << i) {
        snprintf(q->err, sizeof q->err, "%s: given twice", key);
        return MHD_NO;
    }
    q->seen |= 1u << i;
    return take_param(q, key, v) ? MHD_YES : MHD_NO;
}

/* The route's parameters into q: false with q->err set when one is wrong. */
static bool parse_query(struct MHD_Connection *c, query *q, const char *const *allowed) {
    q->f = (serve_filter){.to_us = UINT64_MAX, .min_value = 1, .bins = 200};
    q->allowed = allowed;
    q->seen = 0;
    q->err[0] = 0;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, on_param, q);
    if (!q->err[0] && q->f.from_us > q->f.to_us)
        snprintf(q->err, sizeof q->err, "from (%" PRIu64 ") is after to (%" PRIu64 ")",
                 q->f.from_us, q->f.to_us);
    return !q->err[0];
}

/* ---- routes ---------------------------------------------------------------- */

static enum MHD_Result api(serve_http *h, struct MHD_Connection *c, const char *url) {
    static const char *const fg[] = {"thread", "from", "to", "min", NULL};
    static const char *const tl[] = {"thread", "from", "to", "bins", NULL};
    static const char *const none[] = {NULL};
    query q;
    sbuf b = {.limit = MAX_ANSWER};
    if (!strcmp(url, "/api/flamegraph")) {
        if (!parse_query(c, &q, fg)) return respond_error(c, MHD_HTTP_BAD_REQUEST, q.err);
        store_flamegraph(h->store, &q.f, &b);
    } else if (!strcmp(url, "/api/timeline")) {
        if (!parse_query(c, &q, tl)) return respond_error(c, MHD_HTTP_BAD_REQUEST, q.err);
        store_timeline(h->store, &q.f, &b);
    } else if (!strcmp(url, "/api/summary")) {
        if (!parse_query(c, &q, none)) return respond_error(c, MHD_HTTP_BAD_REQUEST, q.err);
        store_summary(h->store, &b);
    } else {
        return respond_error(c, MHD_HTTP_NOT_FOUND,
                             "no such API: /api/flamegraph, "
                             "/api/timeline and /api/summary are");
    }
    return respond_json(c, MHD_HTTP_OK, &b);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls) {
    serve_http *h = cls;
    (void)version, (void)upload_data, (void)con_cls;
    if (*upload_size) return respond_error(c, MHD_HTTP_BAD_REQUEST, "a request body");
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return respond_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD");
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    if (!host) return respond_error(c, MHD_HTTP_BAD_REQUEST, "no Host header");
    if (!host_ok(h, host))
        return respond_error(c, MHD_HTTP_FORBIDDEN,
                             "the Host header does not name this server (see --listen)");
    if (!strncmp(url, "/api/", 5)) return api(h, c, url);
    if (!strcmp(url, "/index.html")) url = "/";
    for (size_t i = 0; i < serve_asset_count; i++)
        if (!strcmp(url, serve_assets[i].path))
            return respond(c, MHD_HTTP_OK, serve_assets[i].type, (void *)serve_assets[i].data,
                           serve_assets[i].len, MHD_RESPMEM_PERSISTENT);
    return respond_error(c, MHD_HTTP_NOT_FOUND, "not found");
}

/* ---- start and stop -------------------------------------------------------- */

/* "[HOST:]PORT" into h->host and h->port: 0, or -1 after a message. */
static int parse_listen(serve_http *h, const char *spec) {
    const char *port = spec, *colon = strrchr(spec, ':');
    size_t n = 0;
    const char *host = "127.0.0.1";
    if (spec[0] == '[') {
        const char *e = strchr(spec, ']');
        if (!e || e[1] != ':') return cli_bad_value("--listen", spec, "[HOST:]PORT"), -1;
        host = spec + 1;
        n = (size_t)(e - spec - 1);
        port = e + 2;
    } else if (colon) {
        host = spec;
        n = (size_t)(colon - spec);
        port = colon + 1;
    } else {
        n = strlen(host);
    }
    uint64_t p;
    if (n == 0 || n >= sizeof h->host || parse_count(port, 0, 65535, &p) < 0) {
        cli_bad_value("--listen", spec, "[HOST:]PORT (PORT from 0 to 65535; 0: any free one)");
        return -1;
    }
    memcpy(h->host, host, n);
    h->host[n] = 0;
    snprintf(h->port, sizeof h->port, "%u", (unsigned)p);
    return 0;
}

int serve_listen_check(const char *spec) {
    serve_http h;
    return parse_listen(&h, spec);
}

static int start_daemon(serve_http *h, const char *spec) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai;
    int rc = getaddrinfo(h->host, h->port, &hints, &ai);
    if (rc != 0) {
        cli_error("--listen %s: %s", spec, gai_strerror(rc));
        return -1;
    }
    h->wildcard = (ai->ai_family == AF_INET &&
                   ((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr == htonl(INADDR_ANY)) ||
                  (ai->ai_family == AF_INET6 &&
                   IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr));
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY |
                     (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    errno = 0;
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)TIMEOUT_S,
                            /* room to parse a long query and answer 400, not drop it */
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)POOL_THREADS, MHD_OPTION_END);
    int err = errno;
    freeaddrinfo(ai);
    if (!h->d) {
        cli_error("--listen %s: cannot listen there%s%s", spec, err ? ": " : "",
                  err ? strerror(err) : "");
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    if (info && info->port) snprintf(h->port, sizeof h->port, "%u", (unsigned)info->port);
    return 0;
}

int serve_http_start(serve_http **out, const char *listen, serve_store *s, char *url, size_t len) {
    serve_http *h = calloc(1, sizeof *h);
    if (!h) {
        cli_error("out of memory");
        return -1;
    }
    h->store = s;
    const char *test_room = getenv("LUMIO_SERVE_IN_FLIGHT");
    if (test_room) max_in_flight = strtoull(test_room, NULL, 10);
    const char *spec = listen ? listen : "127.0.0.1:0";
    if (parse_listen(h, spec) < 0 || start_daemon(h, spec) < 0) {
        free(h);
        return -1;
    }
    bool v6 = strchr(h->host, ':') != NULL;
    snprintf(url, len, "http://%s%s%s:%s/", v6 ? "[" : "", h->host, v6 ? "]" : "", h->port);
    *out = h;
    return 0;
}

void serve_http_stop(serve_http *h) {
    if (!h) return;
    MHD_stop_daemon(h->d);
    free(h);
}
