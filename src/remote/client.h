/* The remote client's internals, shared by its parts: the request loop on a
 * libcurl multi handle (client.c) and its retry and status policy
 * (policy.c), locations and signing (location.c), the blocking calls
 * (blocking.c), the prefetching file reader (rfile.c), and for the ring
 * engine's remote backend (src/ring/remote.c). */
#ifndef LUMIO_REMOTE_CLIENT_H
#define LUMIO_REMOTE_CLIENT_H

#include "core/core.h"
#include "remote/http.h"
#include "remote/policy.h"

#include <lumio/remote.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct robj robj;
typedef struct rreq rreq;

/* An object: where it is and what it is. Shared by every request for it and
 * cached by the client while referenced, so that all readers of one object
 * pin the same ETag. */
struct robj {
    char *location; /* as given: the cache key */
    char *url;      /* the HTTP(S) URL */
    char *shown;    /* the URL as messages show it: no password, no signature */
    /* S3: signed requests. */
    bool s3;
    char *host; /* Host header value */
    char *path; /* the request path, URI-encoded, as signed */
    /* Identity, pinned by the first response (under the client's lock). */
    bool have_size;
    uint64_t size;
    char etag[128];
    char last_modified[64];
    bool no_ranges; /* the server answered a ranged GET with the whole body */
    unsigned refs;
    robj *next;
};

typedef void (*rreq_done_fn)(rreq *q);

/* One logical request: a byte range of an object, into memory or into a file
 * at its offsets. Retries and resumed transfers are the same rreq. */
struct rreq {
    enum rreq_kind kind;
    robj *obj;
    uint64_t off, len;  /* the range; len may run past the end (a short result) */
    uint8_t *dst;       /* memory for the range, or NULL with fd */
    const uint8_t *src; /* PUT: the body, len bytes (the whole object) */
    uint64_t sent;      /* PUT: body bytes handed to libcurl this attempt */
    char sha256[65];    /* PUT to S3: the body's hash, for the signature (by the caller) */
    int fd;             /* with dst NULL and no sink: pwrite at the object's offsets */
    /* With dst NULL: takes all of the bytes at the object's offset `at`
     * (returns len) or none (returns 0: the transfer pauses until
     * lumio__rc_unpause()). On the client's thread. */
    size_t (*sink)(rreq *q, const uint8_t *p, size_t len);
    bool whole_ok;     /* a 200 with the whole body is read, skipping to off + got */
    rreq_done_fn done; /* on the client's thread; quick, never blocking */
    void *arg;
    /* Results. */
    int res;       /* 0 or a negative code */
    uint64_t got;  /* bytes landed, from off */
    char err[512]; /* with res < 0: URL, range, what happened */
    bool norange;  /* failed because the server ignored Range (and !whole_ok) */
    /* The client's. */
    void *easy;
    unsigned attempt;
    uint64_t got_mark; /* got when this attempt started */
    int64_t retry_at_ms;
    int status;  /* HTTP status of the current response */
    bool hdr_ok; /* the response head was checked and accepted */
    bool eof;    /* the object ends before off + len */
    bool canceled;
    bool stalled;
    bool timed_out;       /* no progress for timeout_ms: final */
    bool paused;          /* the sink is full (atomic) */
    bool unpause;         /* lumio__rc_unpause() asked (atomic) */
    bool hdr_done;        /* the final response's head ended (its blank line) */
    unsigned hdr_lines;   /* lines of the current response's head */
    uint64_t hdr_bytes;   /* bytes of this attempt's heads, 1xx ones included */
    unsigned hdr_interim; /* interim (1xx) heads of this attempt */
    uint64_t body_at;     /* object offset of the next body byte */
    lumio__clocks clk;    /* for timeout_ms and the stall timeout */
    http_head h;          /* the current response's head */
    void *hdrs;           /* struct curl_slist */
    rreq *next;
};

struct lumio_remote {
    lumio_remote_options o;
    char *endpoint, *region, *access_key, *secret_key, *session_token, *ca_file;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    void *multi; /* CURLM */
    void *share; /* CURLSH: DNS cache */
    bool stop;
    rreq *pending_head, *pending_tail; /* waiting to start (or to retry) */
    rreq *active;                      /* in the multi handle */
    unsigned nactive;
    void **free_easy;
    unsigned nfree_easy;
    robj *objects;
    uint64_t rng;
    lumio_remote_stats stats; /* under mu */
    lumio__err err;           /* the last error's text (docs/API.md) */
};

/* client.c */
int lumio__rc_submit(lumio_remote *rm, rreq *q);   /* any thread; done() is always called */
void lumio__rc_cancel(lumio_remote *rm, rreq *q);  /* any thread; done() with -ECANCELED */
void lumio__rc_unpause(lumio_remote *rm, rreq *q); /* any thread: the sink has room again */
void lumio__rc_set_error(const lumio_remote *rm, const char *text);
void lumio__rc_stats_add(lumio_remote *rm, uint64_t bytes_read);

/* location.c */
/* Find or make the cached object for a location (a reference). */
int lumio__robj_get(lumio_remote *rm, const char *location, robj **out, char *err, size_t errlen);
void lumio__robj_put(lumio_remote *rm, robj *o);
/* Whether requests for o carry a signature (and maybe a session token). */
bool lumio__robj_signed(const lumio_remote *rm, const robj *o);
/* The headers of one request (Range, If-Match, signing): a curl_slist. A
 * PUT passes its body's SHA-256 (hex) and sends no If-Match. */
void *lumio__robj_headers(lumio_remote *rm, robj *o, const char *method, const char *range,
                          const char *put_sha256);

/* blocking.c */
/* Run a request to the end on the calling thread. */
int lumio__rc_run(lumio_remote *rm, rreq *q);
/* Learn an object's size and ETag: a HEAD, or where HEAD is refused or gives
 * no size, a GET of byte 0 (o->have_size stays false if the server gives no
 * size). 0 or a negative code, with the text set. */
int lumio__rc_identify(lumio_remote *rm, robj *o);
void lumio__rc_note_whole_get(lumio_remote *rm);

#endif
