/* The file-like reader and its adaptive read-ahead.
 *
 * Each read is classified against the previous one: continuing where it
 * ended extends the streak; a forward jump that lands inside data already
 * fetched or in flight (a soft seek) keeps it; anything else (a hard seek)
 * cancels the read-ahead and starts over. From the third read of a streak a
 * window opens ahead of the position: it doubles with each read of the streak
 * (as Linux's readahead ramps up) up to readahead_max, and is kept filled
 * with parts fetched at once, sized so that the window spreads over the
 * client's concurrency. Outside a streak a read fetches exactly what it asks
 * for, straight into the caller's memory. */
#include "remote/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { HISTORY = 10 };

typedef struct seg {
    rreq q;
    uint8_t *buf;
    size_t cap;
    bool done; /* under f->mu */
    struct lumio_rfile *f;
    struct seg *next;
} seg;

struct lumio_rfile {
    lumio_remote *rm;
    robj *obj;
    uint64_t size;
    uint64_t pos;
    /* Access pattern. */
    uint64_t last_end; /* where the previous read ended (UINT64_MAX: none yet) */
    unsigned streak;
    uint64_t sizes[HISTORY];
    unsigned nsizes, hpos;
    /* The window: segments cover [head->q.off, fetched_end), in order. */
    seg *head, *tail;
    uint64_t fetched_end;
    seg *spare; /* finished segments' memory, for reuse */
    unsigned nspare;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned inflight; /* segments and direct reads not yet done (under mu) */
    lumio_remote_stats stats;
    char err[512]; /* scratch for a text being made */
    lumio__err e;  /* the last error's text (docs/API.md) */
    /* Stream mode, for a server that ignores Range or gives no size: one GET
     * lands in a ring the reads take from; when the ring is full the
     * transfer pauses. */
    bool streaming;
    struct {
        rreq q;
        bool live;    /* submitted and not yet waited for */
        bool done;    /* under mu, as everything below */
        bool full;    /* the sink refused bytes: resume the transfer once room is made */
        uint8_t *buf; /* the ring */
        size_t cap, start, len;
        uint64_t pos; /* the object offset of buf[start] */
    } st;
};

/* ---- completion ------------------------------------------------------------ */

static void count(lumio_rfile *f, const rreq *q) {
    f->stats.requests += q->attempt + 1;
    f->stats.retries += q->attempt;
    f->stats.bytes_fetched += q->got;
}

static void seg_done(rreq *q) {
    seg *s = q->arg;
    lumio_rfile *f = s->f;
    pthread_mutex_lock(&f->mu);
    s->done = true;
    f->inflight--;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void wait_seg(lumio_rfile *f, seg *s) {
    pthread_mutex_lock(&f->mu);
    while (!s->done) pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
}

/* ---- segments -------------------------------------------------------------- */

static void seg_free(lumio_rfile *f, seg *s) {
    if (f->nspare < 32 && s->cap >= f->rm->o.part_size / 2) { /* a window's worth */
        s->next = f->spare;
        f->spare = s;
        f->nspare++;
        return;
    }
    free(s->buf);
    free(s);
}

static seg *seg_new(lumio_rfile *f, uint64_t len) {
    seg *s = NULL;
    for (seg **pp = &f->spare; *pp; pp = &(*pp)->next)
        if ((*pp)->cap >= len) {
            s = *pp;
            *pp = s->next;
            f->nspare--;
            break;
        }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return NULL;
        s->buf = malloc(len);
        s->cap = len;
        if (!s->buf) {
            free(s);
            return NULL;
        }
    }
    uint8_t *buf = s->buf;
    size_t cap = s->cap;
    memset(s, 0, sizeof *s);
    s->buf = buf;
    s->cap = cap;
    s->f = f;
    return s;
}

/* Drop the segments wholly before `off`: those still in flight are canceled
 * first (a soft seek skips them), then waited for (their memory is being
 * written until their callback). */
static void drop_before(lumio_rfile *f, uint64_t off) {
    for (seg *s = f->head; s && s->q.off + s->q.len <= off; s = s->next) {
        pthread_mutex_lock(&f->mu);
        bool done = s->done;
        pthread_mutex_unlock(&f->mu);
        if (!done) lumio__rc_cancel(f->rm, &s->q);
    }
    while (f->head && f->head->q.off + f->head->q.len <= off) {
        seg *s = f->head;
        wait_seg(f, s);
        count(f, &s->q);
        f->head = s->next;
        if (!f->head) f->tail = NULL;
        seg_free(f, s);
    }
}

/* A hard seek or an error: cancel everything in flight, wait, forget. */
static void drop_all(lumio_rfile *f) {
    for (seg *s = f->head; s; s = s->next) {
        pthread_mutex_lock(&f->mu);
        bool done = s->done;
        pthread_mutex_unlock(&f->mu);
        if (!done) lumio__rc_cancel(f->rm, &s->q);
    }
    while (f->head) {
        seg *s = f->head;
        wait_seg(f, s);
        count(f, &s->q);
        f->head = s->next;
        seg_free(f, s);
    }
    f->tail = NULL;
    f->fetched_end = 0;
}

/* Issue segments: everything up to `need` (the read being served) at once,
 * and up to `want` (the window) in whole parts only, so that a window kept
 * full by reads of 64 KiB is topped up a part at a time, not a read at a
 * time (each request costs a round trip). */
static int fill(lumio_rfile *f, uint64_t from, uint64_t need, uint64_t want, uint64_t part) {
    if (!f->head) f->fetched_end = from;
    need = LUMIO_MIN(need, f->size);
    want = LUMIO_MIN(LUMIO_MAX(want, need), f->size);
    while (f->fetched_end < want) {
        uint64_t left = want - f->fetched_end;
        if (f->fetched_end >= need && left < part && want < f->size) break;
        uint64_t len = LUMIO_MIN(part, left);
        /* Not a sliver at the end of the object: the last part takes it. */
        if (want == f->size && left < part + part / 4) len = left;
        seg *s = seg_new(f, len);
        if (!s) return -ENOMEM;
        s->q.kind = RREQ_GET;
        s->q.obj = f->obj;
        s->q.off = f->fetched_end;
        s->q.len = len;
        s->q.dst = s->buf;
        s->q.fd = -1;
        s->q.done = seg_done;
        s->q.arg = s;
        if (f->tail)
            f->tail->next = s;
        else
            f->head = s;
        f->tail = s;
        f->fetched_end += len;
        pthread_mutex_lock(&f->mu);
        f->inflight++;
        pthread_mutex_unlock(&f->mu);
        lumio__rc_submit(f->rm, &s->q);
    }
    return 0;
}

/* ---- stream mode ------------------------------------------------------------ */

enum { STREAM_RING = 8u << 20 };

/* On the client's thread: all of p into the ring, or nothing (paused). */
static size_t stream_sink(rreq *q, const uint8_t *p, size_t n) {
    lumio_rfile *f = q->arg;
    pthread_mutex_lock(&f->mu);
    if (f->st.len == 0 && n > f->st.cap) { /* never refuse into an empty ring */
        uint8_t *b = realloc(f->st.buf, n);
        if (b) f->st.buf = b, f->st.cap = n, f->st.start = 0;
    }
    if (f->st.cap - f->st.len < n) {
        f->st.full = true;
        pthread_mutex_unlock(&f->mu);
        return 0;
    }
    size_t end = (f->st.start + f->st.len) % f->st.cap;
    size_t first = LUMIO_MIN(n, f->st.cap - end);
    memcpy(f->st.buf + end, p, first);
    memcpy(f->st.buf, p + first, n - first);
    f->st.len += n;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return n;
}

static void lumio__stream_done(rreq *q) {
    lumio_rfile *f = q->arg;
    pthread_mutex_lock(&f->mu);
    f->st.done = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void stream_stop(lumio_rfile *f) {
    if (!f->st.live) return;
    lumio__rc_cancel(f->rm, &f->st.q);
    pthread_mutex_lock(&f->mu);
    while (!f->st.done) pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
    count(f, &f->st.q);
    f->st.live = false;
}

static int stream_start(lumio_rfile *f, uint64_t off) {
    if (!f->st.buf) {
        f->st.buf = malloc(STREAM_RING);
        if (!f->st.buf) return -ENOMEM;
        f->st.cap = STREAM_RING;
    }
    rreq *q = &f->st.q;
    memset(q, 0, sizeof *q);
    q->kind = RREQ_GET;
    q->obj = f->obj;
    q->off = off;
    q->len = f->size == UINT64_MAX ? UINT64_MAX : f->size - off;
    q->fd = -1;
    q->sink = stream_sink;
    q->whole_ok = true;
    q->done = lumio__stream_done;
    q->arg = f;
    f->st.start = f->st.len = 0;
    f->st.pos = off;
    f->st.done = f->st.full = false;
    f->st.live = true;
    lumio__rc_note_whole_get(f->rm);
    lumio__rc_submit(f->rm, q);
    return 0;
}

/* Under mu: drop n bytes from the front of the ring. */
static void stream_consume(lumio_rfile *f, size_t n) {
    f->st.start = (f->st.start + n) % f->st.cap;
    f->st.len -= n;
    f->st.pos += n;
    if (f->st.full) {
        f->st.full = false;
        lumio__rc_unpause(f->rm, &f->st.q);
    }
}

/* A read in stream mode: forward skips read through, backward ones start
 * the stream again. */
static int64_t stream_pread(lumio_rfile *f, uint8_t *buf, uint64_t off, uint64_t n) {
    if (!f->st.live || off < f->st.pos) {
        stream_stop(f);
        int rc = stream_start(f, off);
        if (rc < 0) return rc;
    }
    pthread_mutex_lock(&f->mu);
    for (;;) {
        if (off > f->st.pos && f->st.len) {
            stream_consume(f, (size_t)LUMIO_MIN((uint64_t)f->st.len, off - f->st.pos));
            continue;
        }
        if (off == f->st.pos && f->st.len) {
            size_t take = (size_t)LUMIO_MIN(n, (uint64_t)f->st.len);
            size_t first = LUMIO_MIN(take, f->st.cap - f->st.start);
            memcpy(buf, f->st.buf + f->st.start, first);
            memcpy(buf + first, f->st.buf, take - first);
            stream_consume(f, take);
            pthread_mutex_unlock(&f->mu);
            return (int64_t)take;
        }
        if (f->st.done) break;
        pthread_cond_wait(&f->cv, &f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    rreq *q = &f->st.q;
    if (q->res < 0) {
        snprintf(f->err, sizeof f->err, "%s", q->err);
        stream_stop(f);
        return q->res;
    }
    uint64_t end = q->off + q->got;
    if (f->size == UINT64_MAX) {
        f->size = end; /* now it is known */
        return 0;
    }
    if (end < f->size) { /* a body cut short is not the end of the object */
        snprintf(f->err, sizeof f->err, "GET %s: the object ended at byte %llu, its size was %llu",
                 f->obj->shown, (unsigned long long)end, (unsigned long long)f->size);
        stream_stop(f);
        return LUMIO_E_CHANGED;
    }
    return 0;
}

/* ---- access pattern -------------------------------------------------------- */

static uint64_t io_size(const lumio_rfile *f) {
    if (!f->nsizes) return 1u << 20;
    uint64_t sum = 0;
    for (unsigned i = 0; i < f->nsizes; i++) sum += f->sizes[i];
    return sum / f->nsizes;
}

static void note_size(lumio_rfile *f, uint64_t n) {
    f->sizes[f->hpos] = n;
    f->hpos = (f->hpos + 1) % HISTORY;
    if (f->nsizes < HISTORY) f->nsizes++;
}

/* The read-ahead wanted past the end of this read (0: none). */
static uint64_t window(const lumio_rfile *f) {
    if (f->streak < 3) return 0;
    uint64_t io = io_size(f), cap = f->rm->o.readahead_max;
    if (io >= cap) return 0; /* reads larger than the window: split them instead */
    unsigned shift = f->streak - 2;
    if (shift > 40 || io > (cap >> shift)) return cap;
    return io << shift;
}

static void classify(lumio_rfile *f, uint64_t off, uint64_t n) {
    if (f->last_end == off) {
        f->streak++;
    } else if (off > f->last_end && f->head && off < f->fetched_end) {
        f->streak++; /* a soft seek: the skipped bytes are dropped below */
    } else {
        drop_all(f);
        f->streak = 1;
        f->nsizes = f->hpos = 0;
    }
    note_size(f, n);
}

/* ---- reading ---------------------------------------------------------------- */

static int set_err(lumio_rfile *f, int rc, const char *text) {
    if (text != f->err) snprintf(f->err, sizeof f->err, "%s", text);
    lumio__err_set(&f->e, "%s", f->err);
    return rc;
}

/* Read [off, off + n) straight into buf, split into parts, outside the
 * window. */
static int64_t direct(lumio_rfile *f, uint8_t *buf, uint64_t off, uint64_t n) {
    uint64_t part = f->rm->o.part_size;
    uint64_t count_parts = n / part + (n % part != 0);
    seg *segs = calloc(count_parts, sizeof *segs);
    if (!segs) return -ENOMEM;
    for (uint64_t i = 0; i < count_parts; i++) {
        seg *s = &segs[i];
        s->f = f;
        s->q.kind = RREQ_GET;
        s->q.obj = f->obj;
        s->q.off = off + i * part;
        s->q.len = LUMIO_MIN(part, n - i * part);
        s->q.dst = buf + i * part;
        s->q.fd = -1;
        s->q.done = seg_done;
        s->q.arg = s;
        pthread_mutex_lock(&f->mu);
        f->inflight++;
        pthread_mutex_unlock(&f->mu);
        lumio__rc_submit(f->rm, &s->q);
    }
    int64_t rc = 0;
    uint64_t total = 0;
    for (uint64_t i = 0; i < count_parts; i++) {
        wait_seg(f, &segs[i]);
        count(f, &segs[i].q);
        if (segs[i].q.res < 0 && rc == 0) {
            rc = set_err(f, segs[i].q.res, segs[i].q.err);
            for (uint64_t j = i + 1; j < count_parts; j++) lumio__rc_cancel(f->rm, &segs[j].q);
        }
        total += segs[i].q.got;
    }
    free(segs);
    if (rc == 0 && total < n) {
        snprintf(f->err, sizeof f->err, "GET %s: the object ended at byte %llu, its size was %llu",
                 f->obj->shown, (unsigned long long)(off + total), (unsigned long long)f->size);
        rc = set_err(f, LUMIO_E_CHANGED, f->err);
    }
    return rc < 0 ? rc : (int64_t)total;
}

/* Copy [off, off + n) out of the window's segments. */
static int64_t from_window(lumio_rfile *f, uint8_t *buf, uint64_t off, uint64_t n) {
    uint64_t done = 0;
    for (seg *s = f->head; s && done < n; s = s->next) {
        uint64_t at = off + done;
        if (at >= s->q.off + s->q.len) continue;
        wait_seg(f, s);
        if (s->q.res < 0) return set_err(f, s->q.res, s->q.err);
        if (s->q.got < s->q.len) {
            char t[512];
            snprintf(t, sizeof t, "GET %s: the object ended at byte %llu, its size was %llu",
                     f->obj->shown, (unsigned long long)(s->q.off + s->q.got),
                     (unsigned long long)f->size);
            return set_err(f, LUMIO_E_CHANGED, t);
        }
        uint64_t take = LUMIO_MIN(n - done, s->q.off + s->q.len - at);
        memcpy(buf + done, s->buf + (at - s->q.off), take);
        done += take;
    }
    return (int64_t)done;
}

static bool obj_no_ranges(lumio_rfile *f) {
    pthread_mutex_lock(&f->rm->mu);
    bool r = f->obj->no_ranges;
    pthread_mutex_unlock(&f->rm->mu);
    return r;
}

static int64_t done_read(lumio_rfile *f, int64_t rc) {
    if (rc < 0) {
        set_err(f, (int)rc, f->err);
        return rc;
    }
    f->stats.bytes_read += (uint64_t)rc;
    lumio__rc_stats_add(f->rm, (uint64_t)rc);
    return rc;
}

int64_t lumio_rfile_pread(lumio_rfile *f, void *buf, size_t n, uint64_t off) {
    if (off >= f->size || n == 0) return 0;
    n = (size_t)LUMIO_MIN((uint64_t)n, f->size - off);
    if (!f->streaming && obj_no_ranges(f)) { /* found out by an earlier read */
        drop_all(f);
        f->streaming = true;
    }
    if (f->streaming) return done_read(f, stream_pread(f, buf, off, n));
    classify(f, off, n);
    f->last_end = off + n;
    uint64_t w = window(f);
    int64_t rc;
    if (w == 0) {
        if (f->head) drop_all(f);
        rc = direct(f, buf, off, n);
    } else {
        drop_before(f, off);
        if (!f->head) f->fetched_end = off;
        /* Parts spread the window over the concurrency, between one read and
         * part_size. */
        uint64_t part = w / f->rm->o.concurrency;
        part = LUMIO_MAX(part, io_size(f));
        part = LUMIO_MIN(part, f->rm->o.part_size);
        rc = fill(f, f->fetched_end, off + n, off + n + w, part);
        if (rc == 0) rc = from_window(f, buf, off, n);
    }
    if (rc < 0) { /* start afresh on the next read */
        drop_all(f);
        f->streak = 0;
        f->last_end = UINT64_MAX;
        if (obj_no_ranges(f)) { /* the server ignores Range: one stream from here on */
            f->streaming = true;
            return done_read(f, stream_pread(f, buf, off, n));
        }
        return rc;
    }
    f->stats.bytes_read += (uint64_t)rc;
    lumio__rc_stats_add(f->rm, (uint64_t)rc);
    return rc;
}

int64_t lumio_rfile_read(lumio_rfile *f, void *buf, size_t n) {
    int64_t rc = lumio_rfile_pread(f, buf, n, f->pos);
    if (rc > 0) f->pos += (uint64_t)rc;
    return rc;
}

int64_t lumio_rfile_seek(lumio_rfile *f, int64_t off, int whence) {
    int64_t base = whence == SEEK_SET   ? 0
                   : whence == SEEK_CUR ? (int64_t)f->pos
                   : whence == SEEK_END ? (int64_t)f->size
                                        : -1;
    if (base < 0 || base + off < 0) return -EINVAL;
    f->pos = (uint64_t)(base + off);
    return (int64_t)f->pos;
}

uint64_t lumio_rfile_size(const lumio_rfile *f) {
    return f->size;
}

void lumio_rfile_get_stats(const lumio_rfile *f, lumio_remote_stats *s) {
    *s = f->stats;
    /* Segments not yet retired count as far as they got. */
    for (const seg *x = f->head; x; x = x->next) {
        s->requests += 1;
        s->bytes_fetched += __atomic_load_n(&x->q.got, __ATOMIC_RELAXED);
    }
    if (f->st.live) {
        s->requests += 1;
        s->bytes_fetched += __atomic_load_n(&f->st.q.got, __ATOMIC_RELAXED);
    }
}

char *lumio_rfile_last_error(const lumio_rfile *f, char *buf, size_t len) {
    return lumio__err_get(f ? &f->e : NULL, buf, len);
}

static int rfile_open_impl(lumio_rfile **out, lumio_remote *rm, const char *location) {
    if (!out) return -EINVAL;
    *out = NULL;
    if (!rm || !location) return -EINVAL;
    lumio_rfile *f = calloc(1, sizeof *f);
    if (!f) return -ENOMEM;
    int rc = lumio__robj_get(rm, location, &f->obj, f->err, sizeof f->err);
    if (rc < 0) { /* the client keeps the text too: the call was made on it */
        lumio__rc_set_error(rm, f->err);
        lumio__err_set(NULL, "%s", f->err);
        free(f);
        return rc;
    }
    f->rm = rm;
    lumio__err_init(&f->e);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->last_end = UINT64_MAX;
    rc = lumio__rc_identify(rm, f->obj);
    f->stats.requests += 1;
    if (rc < 0) { /* (the client has the text already) */
        lumio__err_set(NULL, "%s", lumio_remote_last_error(rm, f->err, sizeof f->err));
        lumio_rfile_close(f);
        return rc;
    }
    pthread_mutex_lock(&rm->mu);
    f->size = f->obj->have_size ? f->obj->size : UINT64_MAX;
    f->streaming = !f->obj->have_size || f->obj->no_ranges;
    pthread_mutex_unlock(&rm->mu);
    *out = f;
    return 0;
}

void lumio_rfile_close(lumio_rfile *f) {
    if (!f) return;
    drop_all(f);
    stream_stop(f);
    free(f->st.buf);
    while (f->spare) {
        seg *s = f->spare;
        f->spare = s->next;
        free(s->buf);
        free(s);
    }
    lumio__robj_put(f->rm, f->obj);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    lumio__err_fini(&f->e);
    free(f);
}

/* A failure always leaves a text for last_error(NULL) (docs/API.md). */
int lumio_rfile_open(lumio_rfile **out, lumio_remote *rm, const char *location) {
    uint64_t mark = lumio__err_mark();
    return lumio__err_ensure(mark, rfile_open_impl(out, rm, location),
                             (location ? location : "(null)"));
}
