/* lumio stream serve: a live flame graph of a stream over HTTP.
 *
 *   stream_serve.c        the command line, the reader thread, signals, the summary
 *   stream_serve_store.c  the samples kept (a prefix tree of stacks) and the
 *                         JSON of the queries
 *   stream_serve_http.c   the HTTP server (libmicrohttpd): routes, checks, headers
 *   web/                  the page, embedded at build time (web/embed.cmake) */
#ifndef LUMIO_CLI_STREAM_SERVE_H
#define LUMIO_CLI_STREAM_SERVE_H

#include <lumio/stream.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the store: written by the reader thread, read by the HTTP threads;
 * every call takes the store's lock. */

typedef struct serve_store serve_store;

/* 0 or -ENOMEM. max_samples: the samples kept (the oldest are dropped). */
int store_create(serve_store **s, const char *source, uint64_t max_samples);
void store_free(serve_store *s);

/* The reader's callbacks (arg: the store). store_sample returns 0 (a stack
 * the tree cannot hold is cut where it is full, and counted). */
int store_sample(void *arg, const lumio_sample *smp);
int store_meta(void *arg, uint64_t ts, const char *key, const char *value);
void store_damage(void *arg, uint64_t offset, uint64_t length, int torn_tail);
/* The source was truncated or replaced: the samples start again. */
void store_restart(void *arg, uint64_t old_offset);
/* The reader's counters (chunks; damage totals) as they are now. */
void store_reader_stats(serve_store *s, const lumio_stream_reader_stats *st);
/* The source ended (error: the text of a failure, or NULL). */
void store_ended(serve_store *s, const char *error);

/* What a query selects: samples of one thread, in [from_us, to_us]. */
typedef struct serve_filter {
    bool has_thread;
    uint64_t thread;
    uint64_t from_us, to_us; /* inclusive; 0 and UINT64_MAX: everything */
    uint64_t min_value;      /* flame graph: nodes with fewer samples are left out */
    uint32_t bins;           /* timeline: how many */
} serve_filter;

/* A growing text buffer; a failed allocation or going past cap sets err. */
typedef struct sbuf {
    char *p;
    size_t n, cap, limit;
    int err; /* 0, -ENOMEM or -E2BIG */
} sbuf;
void sbuf_add(sbuf *b, const char *s, size_t n);
#define SBUF_LIT(b, lit) sbuf_add(b, lit, sizeof(lit) - 1)
void sbuf_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_json_string(sbuf *b, const char *s);

/* The JSON answers (into out; 0, or out->err). */
int store_flamegraph(serve_store *s, const serve_filter *f, sbuf *out);
int store_summary(serve_store *s, sbuf *out);
int store_timeline(serve_store *s, const serve_filter *f, sbuf *out);

/* The numbers of the summary line printed at the end. */
typedef struct serve_totals {
    uint64_t chunks, samples, seen, dropped, truncated, threads, damaged_ranges, damaged_bytes;
} serve_totals;
void store_totals(serve_store *s, serve_totals *t);

/* ---- the page's files (web_assets.c, generated at build time) ---- */

typedef struct serve_asset {
    const char *path; /* "/" for index.html, else "/" and the file's name */
    const char *type;
    const unsigned char *data;
    size_t len;
} serve_asset;
extern const serve_asset serve_assets[];
extern const size_t serve_asset_count;

/* ---- the HTTP server ---- */

typedef struct serve_http serve_http;
/* Listen on listen ("[HOST:]PORT", NULL: 127.0.0.1 and a free port) and
 * answer from s. 0, or -1 after a message. *url: "http://HOST:PORT/". */
int serve_http_start(serve_http **h, const char *listen, serve_store *s, char *url, size_t len);
void serve_http_stop(serve_http *h);
/* Whether spec is a --listen value: 0, or -1 after a message. */
int serve_listen_check(const char *spec);

#endif
