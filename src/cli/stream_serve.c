/* lumio stream serve: a live flame graph of a stream, over HTTP. A thread
 * reads the source (a file followed as it grows, standard input, a TCP
 * writer) into the store; libmicrohttpd's threads answer from it; the main
 * thread waits for SIGINT or SIGTERM, then says what was served. */
#include "cli/common.h"
#include "cli/stream_cli.h"
#include "cli/stream_serve.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#define DEFAULT_MAX_SAMPLES (4u << 20)

typedef struct serve_opts {
    const char *source, *listen;
    uint64_t max_samples;
} serve_opts;

static int serve_parse(int argc, char **argv, serve_opts *o) {
    static const struct option lo[] = {
        {"listen", 1, NULL, 'L'}, {"max-samples", 1, NULL, 'm'}, CLI_OPT_END};
    int c;
    while ((c = cli_getopt(argc, argv, ":h", lo)) != -1) {
        if (c == 'L') {
            if (serve_listen_check(optarg) < 0) return EXIT_USAGE;
            o->listen = optarg;
        } else if (c == 'm') {
            if (cli_opt_count("--max-samples", optarg, 1, (uint64_t)1 << 32, &o->max_samples) < 0)
                return EXIT_USAGE;
        } else {
            return cli_option_default(c, argv, stream_usage);
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("lumio stream", "serve needs one SOURCE (FILE, - or tcp:HOST:PORT)");
    o->source = argv[optind];
    return STREAM_RUN;
}

/* The reader's thread: what it reads goes to the store, with the reader's
 * chunk count (a chunk is counted once its samples are given). */
typedef struct feed {
    serve_store *store;
    lumio_stream_reader *r;
    const char *source;
    int rc;
} feed;

static void feed_stats(feed *f, uint64_t extra) {
    lumio_stream_reader_stats st;
    lumio_stream_reader_get_stats(f->r, &st);
    st.chunks += extra;
    store_reader_stats(f->store, &st);
}

static int feed_sample(void *arg, const lumio_sample *s) {
    feed *f = arg;
    feed_stats(f, 1);
    return store_sample(f->store, s);
}

static int feed_meta(void *arg, uint64_t ts, const char *key, const char *value) {
    feed *f = arg;
    feed_stats(f, 1);
    return store_meta(f->store, ts, key, value);
}

/* Stopped at shutdown by lumio_stream_reader_cancel (-ECANCELED). */
static void *feed_run(void *arg) {
    feed *f = arg;
    f->rc = lumio_stream_reader_read(f->r, feed_sample, feed_meta, f);
    feed_stats(f, 0);
    if (f->rc == -ECANCELED) return NULL; /* shutting down */
    char err[LUMIO_ERROR_MAX] = "";
    if (f->rc < 0) lumio_stream_reader_last_error(f->r, err, sizeof err);
    store_ended(f->store, f->rc < 0 ? (err[0] ? err : lumio_strerror(f->rc)) : NULL);
    serve_totals t;
    store_totals(f->store, &t);
    if (f->rc < 0)
        cli_error("%s: %s (still serving what was read)", f->source,
                  err[0] ? err : lumio_strerror(f->rc));
    else
        cli_error("%s: ended: chunks=%" PRIu64 " samples=%" PRIu64 " (still serving)", f->source,
                  t.chunks, t.seen);
    return NULL;
}

/* Wait for SIGINT or SIGTERM (blocked in every thread since before they
 * started). */
static void wait_for_stop(const sigset_t *set) {
    int sig;
    while (sigwait(set, &sig) != 0) {
    }
}

static void say_totals(serve_store *s) {
    serve_totals t;
    store_totals(s, &t);
    fprintf(stderr,
            "served chunks=%" PRIu64 " samples=%" PRIu64 " seen=%" PRIu64 " dropped=%" PRIu64
            " truncated=%" PRIu64 " threads=%" PRIu64 " damaged_ranges=%" PRIu64
            " damaged_bytes=%" PRIu64 "\n",
            t.chunks, t.samples, t.seen, t.dropped, t.truncated, t.threads, t.damaged_ranges,
            t.damaged_bytes);
}

/* Serve until a signal; the source is read on its own thread meanwhile. */
static int serve_run(const serve_opts *o, serve_store *store, lumio_stream_reader *r) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    serve_http *h;
    char url[300];
    if (serve_http_start(&h, o->listen, store, url, sizeof url) < 0) return EXIT_FILES;
    fprintf(stderr, "serving %s\n", url);
    fflush(stderr);
    feed f = {store, r, o->source, 0};
    pthread_t th;
    int rc = pthread_create(&th, NULL, feed_run, &f);
    if (rc != 0) {
        serve_http_stop(h);
        cli_error("cannot start the reader: %s", strerror(rc));
        return EXIT_FILES;
    }
    wait_for_stop(&set);
    serve_http_stop(h);
    lumio_stream_reader_cancel(r); /* a reader following a file waits for ever */
    pthread_join(th, NULL);
    say_totals(store);
    serve_totals t;
    store_totals(store, &t);
    return f.rc < 0 && f.rc != -ECANCELED ? EXIT_FILES : t.damaged_ranges ? EXIT_FILES : 0;
}

int stream_serve(int argc, char **argv) {
    serve_opts o = {.max_samples = DEFAULT_MAX_SAMPLES};
    int status = serve_parse(argc, argv, &o);
    if (status != STREAM_RUN) return status;
    serve_store *store;
    if (store_create(&store, o.source, o.max_samples) < 0) {
        cli_error("out of memory");
        return EXIT_FILES;
    }
    /* A file is followed as it grows; a pipe or a connection ends. */
    bool file = strcmp(o.source, "-") && !stream_is_tcp(o.source) &&
                strncmp(o.source, "ws-listen:", 10) && strncmp(o.source, "tcp-connect:", 12);
    lumio_stream_reader_options ro = {
        .follow = file, .on_damage = store_damage, .on_restart = store_restart, .arg = store};
    lumio_stream_reader *r;
    if (stream_open_reader(o.source, &r, &ro) < 0) {
        store_free(store);
        return EXIT_FILES;
    }
    status = serve_run(&o, store, r);
    lumio_stream_reader_close(r);
    store_free(store);
    return status;
}
