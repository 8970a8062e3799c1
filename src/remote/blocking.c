/* The blocking calls: stat, a read split into parts landing in the caller's
 * memory, and a download whose parts write the file at their offsets. */
#include "remote/client.h"
#include "remote/sigv4.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned left;
} waiter;

static void waiter_init(waiter *w, unsigned n) {
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->left = n;
}

static void waiter_fini(waiter *w) {
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

static void on_done(rreq *q) {
    waiter *w = q->arg;
    pthread_mutex_lock(&w->mu);
    w->left--;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Wait for every request; with progress, report about ten times a second. */
static void wait_all(waiter *w, rreq *qs, size_t n, lumio_remote *rm, lumio_progress_fn progress,
                     void *arg, uint64_t total) {
    bool canceled = false;
    pthread_mutex_lock(&w->mu);
    while (w->left) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        pthread_mutex_unlock(&w->mu);
        uint64_t got = 0;
        bool failed = false;
        for (size_t i = 0; i < n; i++) {
            got += __atomic_load_n(&qs[i].got, __ATOMIC_RELAXED);
            failed |= __atomic_load_n(&qs[i].res, __ATOMIC_RELAXED) < 0;
        }
        /* The first error stops the siblings. */
        if (failed && !canceled) {
            canceled = true;
            for (size_t i = 0; i < n; i++) lumio__rc_cancel(rm, &qs[i]);
        }
        if (progress) progress(arg, got, total);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
}

/* The error to report for a set of parts: the first real one (a canceled
 * sibling is only a consequence). */
static int first_error(lumio_remote *rm, rreq *qs, size_t n) {
    int rc = 0;
    const char *text = NULL;
    for (size_t i = 0; i < n; i++)
        if (qs[i].res < 0 && (rc == 0 || rc == -ECANCELED)) {
            rc = qs[i].res;
            text = qs[i].err;
        }
    if (rc < 0) lumio__rc_set_error(rm, text);
    return rc;
}

int lumio__rc_run(lumio_remote *rm, rreq *q) {
    waiter w;
    waiter_init(&w, 1);
    q->done = on_done;
    q->arg = &w;
    lumio__rc_submit(rm, q);
    wait_all(&w, q, 1, rm, NULL, NULL, 0);
    waiter_fini(&w);
    return first_error(rm, q, 1);
}

int lumio__rc_identify(lumio_remote *rm, robj *o) {
    rreq head = {.kind = RREQ_HEAD, .obj = o, .fd = -1};
    int rc = lumio__rc_run(rm, &head);
    if (rc == 0 && o->have_size) return 0;
    if (rc < 0 && !lumio__head_refused(head.h.status)) return rc;
    /* The first byte, by GET: its Content-Range (or a 200's length) gives
     * the size, and the query string's signature is the one for GET. */
    uint8_t byte;
    rreq get = {.kind = RREQ_GET, .obj = o, .off = 0, .len = 1, .dst = &byte, .fd = -1};
    get.whole_ok = true;
    return lumio__rc_run(rm, &get);
}

static int no_size(lumio_remote *rm, robj *o) {
    char text[1200];
    snprintf(text, sizeof text, "GET %s: the server gives no size (no Content-Length)", o->shown);
    lumio__rc_set_error(rm, text);
    return LUMIO_E_HTTP;
}

static int open_obj(lumio_remote *rm, const char *location, robj **o) {
    char err[512];
    int rc = lumio__robj_get(rm, location, o, err, sizeof err);
    if (rc < 0) lumio__rc_set_error(rm, err);
    return rc;
}

int lumio_remote_stat(lumio_remote *rm, const char *location, lumio_remote_info *info) {
    robj *o;
    int rc = open_obj(rm, location, &o);
    if (rc < 0) return rc;
    rc = lumio__rc_identify(rm, o);
    if (rc == 0 && !o->have_size) rc = no_size(rm, o);
    if (rc == 0 && info) {
        memset(info, 0, sizeof *info);
        pthread_mutex_lock(&rm->mu);
        info->size = o->size;
        memcpy(info->etag, o->etag, sizeof info->etag);
        memcpy(info->last_modified, o->last_modified, sizeof info->last_modified);
        pthread_mutex_unlock(&rm->mu);
        snprintf(info->url, sizeof info->url, "%s", o->shown);
    }
    lumio__robj_put(rm, o);
    return rc;
}

/* [off, off + len) as one GET that the server may answer with the whole
 * body (the bytes before off are skipped): for a server that ignores Range
 * or gives no size. len may be UINT64_MAX (to the end). */
static int64_t fetch_stream(lumio_remote *rm, robj *o, uint64_t off, uint64_t len, uint8_t *dst,
                            int fd, lumio_progress_fn progress, void *arg) {
    lumio__rc_note_whole_get(rm);
    rreq q = {.kind = RREQ_GET, .obj = o, .off = off, .len = len, .dst = dst, .fd = fd};
    q.whole_ok = true;
    waiter w;
    waiter_init(&w, 1);
    q.done = on_done;
    q.arg = &w;
    lumio__rc_submit(rm, &q);
    pthread_mutex_lock(&rm->mu);
    uint64_t total = o->have_size ? o->size - LUMIO_MIN(off, o->size) : 0;
    pthread_mutex_unlock(&rm->mu);
    wait_all(&w, &q, 1, rm, progress, arg, LUMIO_MIN(total, len));
    waiter_fini(&w);
    int64_t rc = first_error(rm, &q, 1);
    return rc < 0 ? rc : (int64_t)q.got;
}

static int64_t fetch_parts(lumio_remote *rm, robj *o, uint64_t off, uint64_t len, uint8_t *dst,
                           int fd, lumio_progress_fn progress, void *arg);

/* Fetch [off, off + len) of an object in parts, into dst or into fd at the
 * object's offsets; as one stream where the server ignores Range. Returns
 * the bytes before the end of the object. */
static int64_t fetch(lumio_remote *rm, robj *o, uint64_t off, uint64_t len, uint8_t *dst, int fd,
                     lumio_progress_fn progress, void *arg) {
    pthread_mutex_lock(&rm->mu);
    bool no_ranges = o->no_ranges;
    pthread_mutex_unlock(&rm->mu);
    if (no_ranges) return fetch_stream(rm, o, off, len, dst, fd, progress, arg);
    int64_t n = fetch_parts(rm, o, off, len, dst, fd, progress, arg);
    if (n == -ENOTSUP) /* a part met a server that ignores Range: once, as a stream */
        n = fetch_stream(rm, o, off, len, dst, fd, progress, arg);
    return n;
}

static int64_t fetch_parts(lumio_remote *rm, robj *o, uint64_t off, uint64_t len, uint8_t *dst,
                           int fd, lumio_progress_fn progress, void *arg) {
    /* Where the size is pinned already, nothing is asked past the end. */
    pthread_mutex_lock(&rm->mu);
    if (o->have_size) len = off >= o->size ? 0 : LUMIO_MIN(len, o->size - off);
    pthread_mutex_unlock(&rm->mu);
    if (len == 0) return 0;
    uint64_t part = rm->o.part_size;
    uint64_t n = len / part + (len % part != 0);
    if (n > UINT32_MAX) {
        lumio__rc_set_error(rm, "read: too many parts (raise part_size)");
        return -EINVAL;
    }
    rreq *qs = calloc(n, sizeof *qs);
    if (!qs) return -ENOMEM;
    waiter w;
    waiter_init(&w, (unsigned)n);
    for (uint64_t i = 0; i < n; i++) {
        rreq *q = &qs[i];
        q->kind = RREQ_GET;
        q->obj = o;
        q->off = off + i * part;
        q->len = LUMIO_MIN(part, len - i * part);
        q->dst = dst ? dst + i * part : NULL;
        q->fd = fd;
        q->done = on_done;
        q->arg = &w;
        lumio__rc_submit(rm, q);
    }
    wait_all(&w, qs, n, rm, progress, arg, len);
    waiter_fini(&w);
    int64_t rc = first_error(rm, qs, n);
    bool norange = false;
    for (uint64_t i = 0; i < n; i++) norange |= qs[i].norange;
    if (norange) rc = -ENOTSUP;
    if (rc == 0) {
        /* Whole parts, then at most one short one at the end of the object. */
        uint64_t total = 0;
        bool ended = false;
        for (uint64_t i = 0; i < n; i++) {
            if (ended && qs[i].got) {
                snprintf(qs[i].err, sizeof qs[i].err,
                         "GET %s: data past the end of the object (the object changed?)", o->shown);
                lumio__rc_set_error(rm, qs[i].err);
                rc = LUMIO_E_CHANGED;
                break;
            }
            total += qs[i].got;
            if (qs[i].got < qs[i].len) ended = true;
        }
        if (rc == 0) rc = (int64_t)total;
    }
    free(qs);
    return rc;
}

int64_t lumio_remote_read(lumio_remote *rm, const char *location, uint64_t offset, uint64_t length,
                          void *buf) {
    robj *o;
    int rc = open_obj(rm, location, &o);
    if (rc < 0) return rc;
    int64_t n = fetch(rm, o, offset, length, buf, -1, NULL, NULL);
    lumio__robj_put(rm, o);
    return n;
}

int64_t lumio_remote_download(lumio_remote *rm, const char *location, int fd,
                              lumio_progress_fn progress, void *arg) {
    robj *o;
    int rc = open_obj(rm, location, &o);
    if (rc < 0) return rc;
    int64_t n = lumio__rc_identify(rm, o);
    struct stat st;
    if (n == 0 && !o->have_size) { /* no size: to the end of the one stream */
        n = fetch_stream(rm, o, 0, UINT64_MAX, NULL, fd, progress, arg);
        lumio__robj_put(rm, o);
        return n;
    }
    if (n == 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ftruncate(fd, (off_t)o->size) < 0) {
        n = -errno;
        lumio__rc_set_error(rm, "download: cannot size the output file");
    }
    if (n == 0) {
        n = fetch(rm, o, 0, o->size, NULL, fd, progress, arg);
        if (n >= 0 && (uint64_t)n != o->size) {
            char text[1200];
            snprintf(text, sizeof text, "GET %s: the object ended at byte %lld, its size was %llu",
                     o->shown, (long long)n, (unsigned long long)o->size);
            lumio__rc_set_error(rm, text);
            n = LUMIO_E_CHANGED;
        }
    }
    lumio__robj_put(rm, o);
    return n;
}

int lumio_remote_put(lumio_remote *rm, const char *location, const void *data, uint64_t len) {
    /* One request: S3 takes up to 5 GiB in a single PUT. */
    if (len > (5ull << 30)) {
        char text[1200];
        char shown[1024];
        snprintf(text, sizeof text, "PUT %s: %llu bytes (more than 5 GiB needs a multipart upload)",
                 lumio_redact(location, shown, sizeof shown), (unsigned long long)len);
        lumio__rc_set_error(rm, text);
        return -EFBIG;
    }
    robj *o;
    int rc = open_obj(rm, location, &o);
    if (rc < 0) return rc;
    rreq q = {.kind = RREQ_PUT, .obj = o, .src = data, .len = len, .fd = -1};
    /* Hashed here, on the caller's thread: not on the client's, where it
     * would hold up every other request. */
    if (o->s3) lumio__sigv4_sha256_hex(data, len, q.sha256);
    rc = lumio__rc_run(rm, &q);
    lumio__robj_put(rm, o);
    return rc;
}
