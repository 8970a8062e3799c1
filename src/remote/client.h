/* The remote client's internals, shared by its parts: the request loop on a
 * libcurl multi handle (client.c), locations and signing (location.c), the
 * blocking calls (blocking.c), the prefetching file reader (rfile.c) and the
 * ring engine's remote backend (backend.c). */
#ifndef LUMIO_REMOTE_CLIENT_H
#define LUMIO_REMOTE_CLIENT_H

#include "core/core.h"
#include "remote/http.h"

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
    /* S3: signed requests. */
    bool s3;
    char *host; /* Host header value */
    char *path; /* the request path, URI-encoded, as signed */
    /* Identity, pinned by the first response (under the client's lock). */
    bool have_size;
    uint64_t size;
    char etag[128];
    char last_modified[64];
    unsigned refs;
    robj *next;
};

enum rreq_kind { RREQ_GET, RREQ_HEAD, RREQ_PUT };

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
    int fd;             /* with dst NULL: pwrite at the object's offsets */
    rreq_done_fn done;  /* on the client's thread; quick, never blocking */
    void *arg;
    /* Results. */
    int res;       /* 0 or a negative code */
    uint64_t got;  /* bytes landed, from off */
    char err[512]; /* with res < 0: URL, range, what happened */
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
    int64_t last_byte_ms; /* for the stall timeout */
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
    pthread_key_t err_key;    /* per-thread last error text */
};

/* client.c */
int rc_submit(lumio_remote *rm, rreq *q);  /* any thread; done() is always called */
void rc_cancel(lumio_remote *rm, rreq *q); /* any thread; done() with LUMIO_E_CANCELED */
void rc_set_error(const lumio_remote *rm, const char *text);
void rc_stats_add(lumio_remote *rm, uint64_t bytes_read);

/* location.c */
/* Find or make the cached object for a location (a reference). */
int robj_get(lumio_remote *rm, const char *location, robj **out, char *err, size_t errlen);
void robj_put(lumio_remote *rm, robj *o);
/* The headers of one request (Range, If-Match, signing): a curl_slist. A
 * PUT passes its body's SHA-256 (hex) and sends no If-Match. */
void *robj_headers(lumio_remote *rm, robj *o, const char *method, const char *range,
                   const char *put_sha256);

/* blocking.c */
/* Run a request to the end on the calling thread. */
int rc_run(lumio_remote *rm, rreq *q);

#endif
