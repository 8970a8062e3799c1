/* The stream writer: global string and frame tables, flush policies, and
 * sinks. A file sink commits each chunk by writing its magic last; a
 * descriptor sink (pipe, socket) writes each chunk whole. */
#include "stream/chunk.h"
#include "stream/net.h"
#include "stream/ws.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

/* Interned strings: open addressing on XXH3, ids in insertion order. */
typedef struct strtab {
    char **s;
    uint32_t *len;
    size_t n, cap;
    uint32_t *slots; /* id + 1, 0 = empty */
    uint64_t *hashes;
    size_t nslots;
} strtab;

typedef struct frametab {
    uint32_t *fn, *file, *line;
    size_t n, cap;
    uint32_t *slots;
    size_t nslots;
} frametab;

struct lumio_stream_writer {
    lumio_stream_writer_options o;
    int fd;
    bool own_fd;
    bool seekable;
    bool tcp;
    netsink net;
    wssink *ws; /* ws://, wss:// (then tcp is set too: the same accounting) */
    /* flush_ms: a thread seals a chunk that has waited too long even when no
     * sample comes; then every public call takes the lock. */
    bool timer_on, timer_stop;
    pthread_t timer;
    int wake[2];           /* the timer's pipe: a dump or a stop wakes it */
    atomic_int dump_asked; /* lumio_stream_writer_dump (signal-safe) */
    pthread_mutex_t mu;
    int timer_err;
    bool finished; /* lumio_stream_writer_finish ran, and returned finish_rc */
    int finish_rc;
    uint64_t undelivered; /* TCP: chunks not delivered, once finished */
    uint64_t offset;      /* where the next chunk goes (seekable sinks) */
    strtab strs;
    frametab frames;
    chunk_enc enc;
    bbuf out;
    uint32_t *ids; /* scratch for write_sample */
    size_t ids_cap;
    uint64_t chunk_started_ms;
    lumio_stream_writer_stats stats;
    char sink[256];
    lumio__err err;  /* the last error's text (docs/API.md) */
    chunk_dec check; /* verifies chunks appended whole (write_chunk) */
};

/* Zero is the default (docs/API.md). Inside, after this, 0 means off:
 * flush_samples 0 never seals by count, zstd_level 0 stores uncompressed. */
static int writer_defaults(lumio_stream_writer_options *o) {
    const char *bad = NULL;
    if (!lumio__zero(o->reserved, sizeof o->reserved))
        bad = "reserved fields are not zero";
    else if (o->flush_samples < -1 || o->flush_bytes < -1)
        bad =
            o->flush_samples < -1 ? "flush_samples is out of range" : "flush_bytes is out of range";
    else if (o->zstd_level < -1 || o->zstd_level > 22)
        bad = "zstd_level must be -1 (none), 0 (default) or 1 to 22";
    if (bad) {
        lumio__err_set(NULL, "lumio_stream_writer_options: %s", bad);
        return -EINVAL;
    }
    if (o->flush_samples == 0) o->flush_samples = 65536;
    if (o->flush_samples < 0) o->flush_samples = 0;
    if (o->zstd_level == 0) o->zstd_level = 3;
    if (o->zstd_level < 0) o->zstd_level = 0;
    if (o->flush_bytes == 0) o->flush_bytes = 4u << 20;
    if (o->flush_bytes < 0) o->flush_bytes = 0;
    if (o->tcp_buffer == 0) o->tcp_buffer = 64u << 20;
    if (o->close_timeout_ms == 0) o->close_timeout_ms = 5000;
    return 0;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int fail(lumio_stream_writer *w, int rc, const char *what) {
    lumio__err_set(&w->err, "%s: %s: %s", w->sink, what, lumio_strerror(rc));
    return rc;
}

/* ---- interning -------------------------------------------------------------- */

static int str_intern(strtab *t, const char *s, uint32_t *id) {
    size_t len = strlen(s);
    if (len > CHUNK_MAX_STRING) return -E2BIG;
    uint64_t h = XXH3_64bits(s, len);
    if (t->n * 2 >= t->nslots) { /* grow and rehash */
        size_t ns = t->nslots ? t->nslots * 2 : 1024;
        uint32_t *slots = calloc(ns, sizeof(uint32_t));
        if (!slots) return -ENOMEM;
        for (size_t i = 0; i < t->n; i++) {
            size_t k = t->hashes[i] & (ns - 1);
            while (slots[k]) k = (k + 1) & (ns - 1);
            slots[k] = (uint32_t)i + 1;
        }
        free(t->slots);
        t->slots = slots;
        t->nslots = ns;
    }
    size_t k = h & (t->nslots - 1);
    for (; t->slots[k]; k = (k + 1) & (t->nslots - 1)) {
        uint32_t i = t->slots[k] - 1;
        if (t->hashes[i] == h && t->len[i] == len && memcmp(t->s[i], s, len) == 0) {
            *id = i;
            return 0;
        }
    }
    if (t->n == t->cap) {
        size_t c = t->cap ? t->cap * 2 : 256;
        char **ss = realloc(t->s, c * sizeof(char *));
        if (!ss) return -ENOMEM;
        t->s = ss;
        uint32_t *ll = realloc(t->len, c * sizeof(uint32_t));
        if (!ll) return -ENOMEM;
        t->len = ll;
        uint64_t *hh = realloc(t->hashes, c * sizeof(uint64_t));
        if (!hh) return -ENOMEM;
        t->hashes = hh;
        t->cap = c;
    }
    char *copy = malloc(len + 1);
    if (!copy) return -ENOMEM;
    memcpy(copy, s, len + 1);
    t->s[t->n] = copy;
    t->len[t->n] = (uint32_t)len;
    t->hashes[t->n] = h;
    t->slots[k] = (uint32_t)t->n + 1;
    *id = (uint32_t)t->n++;
    return 0;
}

static uint64_t frame_hash(uint32_t fn, uint32_t file, uint32_t line) {
    uint64_t x = ((uint64_t)fn << 32 | file) * 0x9E3779B97F4A7C15ull ^ line;
    x ^= x >> 31;
    return x * 0xBF58476D1CE4E5B9ull;
}

static int frame_intern(frametab *t, uint32_t fn, uint32_t file, uint32_t line, uint32_t *id) {
    if (t->n * 2 >= t->nslots) {
        size_t ns = t->nslots ? t->nslots * 2 : 1024;
        uint32_t *slots = calloc(ns, sizeof(uint32_t));
        if (!slots) return -ENOMEM;
        for (size_t i = 0; i < t->n; i++) {
            size_t k = frame_hash(t->fn[i], t->file[i], t->line[i]) & (ns - 1);
            while (slots[k]) k = (k + 1) & (ns - 1);
            slots[k] = (uint32_t)i + 1;
        }
        free(t->slots);
        t->slots = slots;
        t->nslots = ns;
    }
    size_t k = frame_hash(fn, file, line) & (t->nslots - 1);
    for (; t->slots[k]; k = (k + 1) & (t->nslots - 1)) {
        uint32_t i = t->slots[k] - 1;
        if (t->fn[i] == fn && t->file[i] == file && t->line[i] == line) {
            *id = i;
            return 0;
        }
    }
    if (t->n == t->cap) {
        size_t c = t->cap ? t->cap * 2 : 256;
        uint32_t *a = realloc(t->fn, c * sizeof(uint32_t));
        if (!a) return -ENOMEM;
        t->fn = a;
        if (!(a = realloc(t->file, c * sizeof(uint32_t)))) return -ENOMEM;
        t->file = a;
        if (!(a = realloc(t->line, c * sizeof(uint32_t)))) return -ENOMEM;
        t->line = a;
        t->cap = c;
    }
    t->fn[t->n] = fn;
    t->file[t->n] = file;
    t->line[t->n] = line;
    t->slots[k] = (uint32_t)t->n + 1;
    *id = (uint32_t)t->n++;
    return 0;
}

static gtables tables_of(const lumio_stream_writer *w) {
    return (gtables){(const char *const *)w->strs.s,
                     w->strs.len,
                     w->frames.fn,
                     w->frames.file,
                     w->frames.line,
                     w->strs.n,
                     w->frames.n};
}

/* ---- sinks ---------------------------------------------------------------------- */

static int write_all_at(int fd, const uint8_t *p, size_t n, bool at, uint64_t off) {
    while (n) {
        ssize_t k = at ? pwrite(fd, p, n, (off_t)off) : write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

/* A failed write, naming where in the output the chunk was going. */
static int fail_at(lumio_stream_writer *w, int rc, const char *what, uint64_t off) {
    lumio__err_set(&w->err, "%s: %s at byte %" PRIu64 ": %s", w->sink, what, off,
                   lumio_strerror(rc));
    return rc;
}

/* Write the sealed chunk in w->out. On a file: everything but the magic,
 * (fsync), then the magic, so a torn chunk is never taken for a whole one. */
static int emit(lumio_stream_writer *w) {
    const uint8_t *p = w->out.p;
    size_t n = w->out.len;
    int rc;
    if (w->ws) {
        if ((rc = lumio__ws_push(w->ws, p, n)) < 0) return fail(w, rc, "queueing a chunk");
    } else if (w->tcp) {
        if ((rc = lumio__net_push(&w->net, p, n)) < 0) return fail(w, rc, "queueing a chunk");
    } else if (w->seekable) {
        static const uint8_t zero[4] = {0};
        if ((rc = write_all_at(w->fd, zero, 4, true, w->offset)) < 0 ||
            (rc = write_all_at(w->fd, p + 4, n - 4, true, w->offset + 4)) < 0)
            return fail_at(w, rc, "writing a chunk", w->offset);
        if (w->o.fsync && fdatasync(w->fd) < 0) return fail(w, -errno, "fsync");
        if ((rc = write_all_at(w->fd, p, 4, true, w->offset)) < 0)
            return fail_at(w, rc, "committing a chunk", w->offset);
        if (w->o.fsync && fdatasync(w->fd) < 0) return fail(w, -errno, "fsync");
        w->offset += n;
    } else if ((rc = write_all_at(w->fd, p, n, false, 0)) < 0) {
        return fail_at(w, rc, "writing a chunk", w->stats.bytes);
    }
    w->stats.bytes += n;
    return 0;
}

static int flush_locked(lumio_stream_writer *w) {
    if (lumio__chunk_enc_empty(&w->enc)) return 0;
    uint32_t samples = w->enc.samples, records = w->enc.records;
    gtables g = tables_of(w);
    int rc = lumio__chunk_enc_seal(&w->enc, &g, w->o.zstd_level, &w->out);
    if (rc < 0) return fail(w, rc, "sealing a chunk");
    if ((rc = emit(w)) < 0) return rc;
    w->stats.chunks++;
    w->stats.samples += samples;
    w->stats.records += records;
    return 0;
}

/* The chunk as the file's next one: its seq is the file's, so that chunks
 * from several senders (each counting from 0) make one stream whose seq
 * rises, and its checksum is computed again over the new header. */
static int write_chunk_locked(lumio_stream_writer *w, const void *data, size_t len) {
    if (!data) return -EINVAL;
    const uint8_t *chunk = data;
    chunk_view v;
    int rc = lumio__chunk_verify(&w->check, chunk, len, &v);
    if (rc == 0 && v.total_len != len) rc = LUMIO_E_FORMAT; /* bytes after it */
    if (rc == -EAGAIN) rc = LUMIO_E_FORMAT;                 /* cut short */
    if (rc == 0) rc = lumio__chunk_replay(&w->check, &v, NULL, NULL, NULL);
    lumio__chunk_dec_trim(&w->check, 1u << 20); /* a big chunk's room goes back */
    if (rc < 0) {
        lumio__err_set(&w->err, "%s: a chunk to append %s", w->sink,
                       rc == LUMIO_E_CHECKSUM ? "fails its checksum"
                       : rc == -ENOMEM        ? "could not be verified: out of memory"
                                              : "is not a valid chunk");
        return rc;
    }
    w->out.len = 0;
    bbuf_put(&w->out, chunk, len);
    if (w->out.oom) return -ENOMEM;
    uint8_t *h = w->out.p;
    put_le64(h + 16, w->enc.seq);
    XXH3_state_t *st = XXH3_createState();
    if (!st) return -ENOMEM;
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, h + 4, 36);
    XXH3_64bits_update(st, h + CHUNK_HDR, len - CHUNK_HDR);
    put_le64(h + 40, XXH3_64bits_digest(st));
    XXH3_freeState(st);
    rc = emit(w);
    if (rc < 0) return rc;
    w->enc.seq++;
    w->stats.chunks++;
    w->stats.samples += get_le32(chunk + 24);
    w->stats.records += get_le32(chunk + 28);
    return 0;
}

static int maybe_flush(lumio_stream_writer *w) {
    bool due = atomic_load_explicit(&w->dump_asked, memory_order_relaxed) ||
               (w->o.flush_samples && w->enc.samples >= w->o.flush_samples) ||
               (w->o.flush_bytes && w->enc.rec.len >= (uint64_t)w->o.flush_bytes);
    if (!due && w->o.flush_ms && !w->timer_on && !lumio__chunk_enc_empty(&w->enc))
        due = now_ms() - w->chunk_started_ms >= w->o.flush_ms;
    if (!due) return 0;
    atomic_store(&w->dump_asked, 0);
    int rc = flush_locked(w);
    w->chunk_started_ms = now_ms();
    return rc;
}

static int open_common(lumio_stream_writer **out, int fd, bool own, const char *name,
                       const lumio_stream_writer_options *o) {
    lumio_stream_writer *w = calloc(1, sizeof(*w));
    if (!w) {
        lumio__err_set(NULL, "%s: out of memory", name);
        if (own) close(fd);
        return -ENOMEM;
    }
    w->o = *o;
    lumio__err_init(&w->err);
    w->fd = fd;
    w->own_fd = own;
    snprintf(w->sink, sizeof w->sink, "%s", name);
    struct stat st;
    w->seekable = own && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    lumio__chunk_enc_init(&w->enc);
    lumio__chunk_dec_init(&w->check);
    w->chunk_started_ms = now_ms();
    int rc = write_all_at(fd, lumio__stream_signature, STREAM_SIG_LEN, w->seekable, 0);
    if (rc < 0) {
        lumio__err_set(NULL, "%s: writing the signature: %s", w->sink, lumio_strerror(rc));
        if (own) close(fd);
        lumio__chunk_enc_free(&w->enc);
        lumio__err_fini(&w->err);
        free(w);
        return rc;
    }
    w->offset = STREAM_SIG_LEN;
    w->stats.bytes = STREAM_SIG_LEN;
    *out = w;
    return 0;
}

/* Connect a WebSocket sink: 1 and w->ws set, or a negative code with the
 * text in lumio__net_error(). */
static int open_ws(lumio_stream_writer *w, const char *sink, const lumio_stream_writer_options *o) {
    wssink_tls tls = {.insecure = o->insecure_tls, .ca_file = o->ca_file};
    w->net.fd = w->net.lfd = -1; /* unused: the sink keeps its own */
    int rc = lumio__ws_open(&w->ws, sink, o->tcp_buffer, &tls);
    return rc < 0 ? rc : 1;
}

static int open_tcp(lumio_stream_writer **out, const char *sink,
                    const lumio_stream_writer_options *o) {
    lumio_stream_writer *w = calloc(1, sizeof(*w));
    if (!w) return -ENOMEM;
    w->o = *o;
    lumio__net_error_clear();
    int rc = lumio__ws_is_sink(sink) ? open_ws(w, sink, o)
                                     : lumio__net_open(&w->net, sink, o->tcp_buffer);
    if (rc <= 0) {
        lumio__err_set(NULL, "%s: %s", sink,
                       lumio__net_error()[0] ? lumio__net_error() : lumio_strerror(rc));
        lumio__net_close(&w->net);
        free(w);
        return rc < 0 ? rc : -EINVAL;
    }
    lumio__err_init(&w->err);
    w->tcp = true;
    w->fd = -1;
    snprintf(w->sink, sizeof w->sink, "%s", sink);
    lumio__chunk_enc_init(&w->enc);
    lumio__chunk_dec_init(&w->check);
    w->chunk_started_ms = now_ms();
    if (!w->ws) lumio__net_pump(&w->net, 0); /* connect now if the consumer is there */
    *out = w;
    return 0;
}

/* Append: find the end of the last valid chunk, cut what follows (a torn
 * tail), and go on with the next chunk number. */
static int open_append(lumio_stream_writer **out, const char *sink,
                       const lumio_stream_writer_options *o) {
    lumio_stream_reader *r;
    int rc = lumio_stream_reader_open(&r, sink, NULL);
    if (rc == -ENOENT) return -ENOENT;
    if (rc < 0) return rc;
    rc = lumio_stream_reader_read(r, NULL, NULL, NULL);
    lumio_stream_reader_stats st;
    lumio_stream_reader_get_stats(r, &st);
    lumio_stream_reader_close(r);
    if (rc < 0) return rc; /* not a stream: never cut into someone else's file */
    int fd = open(sink, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    if (ftruncate(fd, (off_t)st.valid_end) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    lumio_stream_writer *w = calloc(1, sizeof(*w));
    if (!w) {
        close(fd);
        return -ENOMEM;
    }
    w->o = *o;
    lumio__err_init(&w->err);
    w->fd = fd;
    w->own_fd = true;
    w->seekable = true;
    snprintf(w->sink, sizeof w->sink, "%s", sink);
    lumio__chunk_enc_init(&w->enc);
    lumio__chunk_dec_init(&w->check);
    w->enc.seq = st.chunks ? st.last_seq + 1 : 0;
    w->chunk_started_ms = now_ms();
    w->offset = st.valid_end;
    *out = w;
    return 0;
}

static int start_timer(lumio_stream_writer *w);

static int open_sink(lumio_stream_writer **out, const char *sink,
                     const lumio_stream_writer_options *o) {
    if (!strcmp(sink, "-")) return open_common(out, STDOUT_FILENO, false, "standard output", o);
    if (lumio__net_connect_prefix(sink) || !strncmp(sink, "tcp-listen:", 11) ||
        lumio__ws_is_sink(sink))
        return open_tcp(out, sink, o);
    if (o->append) {
        int rc = open_append(out, sink, o);
        if (rc != -ENOENT) {
            if (rc < 0) lumio__err_set(NULL, "%s: appending: %s", sink, lumio_strerror(rc));
            return rc;
        }
    }
    int fd = open(sink, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int rc = -errno;
        lumio__err_set(NULL, "%s: %s", sink, lumio_strerror(rc));
        return rc;
    }
    return open_common(out, fd, true, sink, o);
}

/* The timer, when flush_ms asks for it, starts once the writer is whole. */
static int with_timer(int rc, lumio_stream_writer **out) {
    if (rc < 0) return rc;
    if ((rc = start_timer(*out)) < 0) {
        lumio__err_set(NULL, "starting the flush timer: %s", lumio_strerror(rc));
        lumio_stream_writer_close(*out);
        *out = NULL;
    }
    return rc;
}

static int stream_writer_open_impl(lumio_stream_writer **out, const char *sink,
                                   const lumio_stream_writer_options *opts) {
    if (!out) return -EINVAL;
    *out = NULL;
    if (!sink) return -EINVAL;
    lumio_stream_writer_options o = {0};
    if (opts) o = *opts;
    int rc = writer_defaults(&o);
    if (rc < 0) return rc;
    return with_timer(open_sink(out, sink, &o), out);
}

static int stream_writer_open_fd_impl(lumio_stream_writer **out, int fd,
                                      const lumio_stream_writer_options *opts) {
    if (!out) return -EINVAL;
    *out = NULL;
    if (fd < 0) return -EBADF;
    lumio_stream_writer_options o = {0};
    if (opts) o = *opts;
    int rc = writer_defaults(&o);
    if (rc < 0) return rc;
    char name[32];
    snprintf(name, sizeof name, "fd %d", fd);
    return with_timer(open_common(out, fd, false, name, &o), out);
}

/* ---- writing ------------------------------------------------------------------------ */

static int intern_locked(lumio_stream_writer *w, const lumio_frame *f, uint32_t *id) {
    if (!f || !f->function || !id) return -EINVAL;
    if (!lumio__zero(f->reserved, sizeof f->reserved))
        return fail(w, -EINVAL, "a frame's reserved fields are not zero");
    uint32_t fn, file;
    int rc = str_intern(&w->strs, f->function, &fn);
    if (rc == 0) rc = str_intern(&w->strs, f->file ? f->file : "", &file);
    if (rc == 0) rc = frame_intern(&w->frames, fn, file, f->line, id);
    return rc < 0 ? fail(w, rc, "interning a frame") : 0;
}

static int write_ids_locked(lumio_stream_writer *w, uint64_t ts, uint64_t tid, uint8_t status,
                            const uint32_t *ids, uint32_t depth) {
    if ((depth && !ids) || depth > LUMIO_STREAM_MAX_DEPTH) return -EINVAL;
    gtables g = tables_of(w); /* the encoder checks the ids it has not seen */
    int rc = lumio__chunk_enc_sample(&w->enc, &g, ts, tid, status, ids, depth);
    if (rc < 0) return fail(w, rc, "encoding a sample");
    return maybe_flush(w);
}

static int write_sample_locked(lumio_stream_writer *w, const lumio_sample *s) {
    if (!s || (s->depth && !s->frames) || s->depth > LUMIO_STREAM_MAX_DEPTH) return -EINVAL;
    if (!lumio__zero(s->reserved, sizeof s->reserved))
        return fail(w, -EINVAL, "a sample's reserved fields are not zero");
    if (s->depth > w->ids_cap) {
        uint32_t *ids = realloc(w->ids, s->depth * sizeof(uint32_t));
        if (!ids) return -ENOMEM;
        w->ids = ids;
        w->ids_cap = s->depth;
    }
    for (uint32_t i = 0; i < s->depth; i++) {
        int rc = intern_locked(w, &s->frames[i], &w->ids[i]);
        if (rc < 0) return rc;
    }
    return write_ids_locked(w, s->timestamp_us, s->thread_id, s->status, w->ids, s->depth);
}

static int write_meta_locked(lumio_stream_writer *w, uint64_t ts, const char *key,
                             const char *value) {
    if (!key || !value) return -EINVAL;
    uint32_t k, v;
    int rc = str_intern(&w->strs, key, &k);
    if (rc == 0) rc = str_intern(&w->strs, value, &v);
    if (rc == 0) rc = lumio__chunk_enc_meta(&w->enc, ts, k, v);
    if (rc < 0) return fail(w, rc, "writing a record");
    return maybe_flush(w);
}

/* ---- the public calls, and the timer that seals idle chunks ------------------------ */

static int lock(lumio_stream_writer *w) {
    if (!w->timer_on) return 0;
    pthread_mutex_lock(&w->mu);
    int e = w->timer_err; /* a failure of the timer's seal is reported once */
    w->timer_err = 0;
    return e;
}

static void unlock(lumio_stream_writer *w) {
    if (w->timer_on) pthread_mutex_unlock(&w->mu);
}

#define LOCKED(w, call)                                                                            \
    do {                                                                                           \
        if (!(w)) return -EINVAL;                                                                  \
        int e_ = lock(w);                                                                          \
        int rc_ = e_ ? e_ : (call);                                                                \
        unlock(w);                                                                                 \
        return rc_;                                                                                \
    } while (0)

int lumio_stream_writer_flush(lumio_stream_writer *w) {
    LOCKED(w, flush_locked(w));
}

int lumio_stream_writer_write_chunk(lumio_stream_writer *w, const void *chunk, size_t len) {
    LOCKED(w, write_chunk_locked(w, chunk, len));
}

int lumio_stream_writer_intern_frame(lumio_stream_writer *w, const lumio_frame *f, uint32_t *id) {
    LOCKED(w, intern_locked(w, f, id));
}

int lumio_stream_writer_write_ids(lumio_stream_writer *w, uint64_t ts, uint64_t tid, uint8_t status,
                                  const uint32_t *ids, uint32_t depth) {
    LOCKED(w, write_ids_locked(w, ts, tid, status, ids, depth));
}

int lumio_stream_writer_write_sample(lumio_stream_writer *w, const lumio_sample *s) {
    LOCKED(w, write_sample_locked(w, s));
}

int lumio_stream_writer_write_meta(lumio_stream_writer *w, uint64_t ts, const char *key,
                                   const char *value) {
    LOCKED(w, write_meta_locked(w, ts, key, value));
}

/* The writer's own thread: seals a chunk older than flush_ms, and at once
 * when a dump is asked (its byte on the pipe wakes the poll). */
static void *timer_main(void *arg) {
    lumio_stream_writer *w = arg;
    int step = w->o.flush_ms ? (int)LUMIO_MIN(w->o.flush_ms, 50u) : -1;
    for (;;) {
        struct pollfd p = {.fd = w->wake[0], .events = POLLIN};
        char drain[64];
        if (poll(&p, 1, step) > 0)
            while (read(w->wake[0], drain, sizeof drain) > 0) continue;
        pthread_mutex_lock(&w->mu);
        if (w->timer_stop) break;
        bool dump = atomic_exchange(&w->dump_asked, 0);
        bool old = w->o.flush_ms && now_ms() - w->chunk_started_ms >= w->o.flush_ms;
        if (!lumio__chunk_enc_empty(&w->enc) && (dump || old)) {
            int rc = flush_locked(w);
            w->chunk_started_ms = now_ms();
            if (rc < 0 && !w->timer_err) w->timer_err = rc;
        }
        pthread_mutex_unlock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static int start_timer(lumio_stream_writer *w) {
    if (!w->o.flush_ms && !w->o.dump_thread) return 0;
    if (pipe2(w->wake, O_NONBLOCK | O_CLOEXEC) < 0) return -errno;
    pthread_mutex_init(&w->mu, NULL);
    w->timer_on = true;
    int rc = lumio__thread_create(&w->timer, timer_main, w);
    if (rc) {
        w->timer_on = false;
        pthread_mutex_destroy(&w->mu);
        close(w->wake[0]);
        close(w->wake[1]);
        return -rc;
    }
    return 0;
}

static void stop_timer(lumio_stream_writer *w) {
    if (!w->timer_on) return;
    pthread_mutex_lock(&w->mu);
    w->timer_stop = true;
    pthread_mutex_unlock(&w->mu);
    ssize_t k = write(w->wake[1], "", 1); /* the pipe is non-blocking: full is awake too */
    (void)k;
    pthread_join(w->timer, NULL);
    w->timer_on = false; /* a late dump only sets the flag */
    pthread_mutex_destroy(&w->mu);
    close(w->wake[0]);
    close(w->wake[1]);
}

/* Only a flag and a write(2): async-signal-safe. errno is the interrupted
 * code's, kept. */
int lumio_stream_writer_dump(lumio_stream_writer *w) {
    if (!w) return -EINVAL;
    atomic_store(&w->dump_asked, 1);
    if (w->timer_on) {
        int saved = errno;
        ssize_t k = write(w->wake[1], "", 1);
        (void)k;
        errno = saved;
    }
    return 0;
}

void lumio_stream_writer_get_stats(const lumio_stream_writer *cw, lumio_stream_writer_stats *s) {
    lumio_stream_writer *w = (lumio_stream_writer *)cw; /* the lock, when a timer runs */
    if (w->timer_on) pthread_mutex_lock(&w->mu);
    *s = w->stats;
    if (w->tcp) {
        netsink ws;
        const netsink *ns = &w->net;
        if (w->ws) {
            lumio__ws_counters(w->ws, &ws);
            ns = &ws;
        }
        s->dropped_chunks = w->finished ? w->undelivered : ns->dropped_chunks + ns->lost_chunks;
        s->dropped_bytes = ns->dropped_bytes;
        s->connections = ns->connections;
    }
    if (w->timer_on) pthread_mutex_unlock(&w->mu);
}

char *lumio_stream_writer_last_error(const lumio_stream_writer *w, char *buf, size_t len) {
    return lumio__err_get(w ? &w->err : NULL, buf, len);
}

/* Append ", N what" to the message when N is not 0. */
static void part(char *buf, size_t cap, uint64_t n, const char *what) {
    size_t len = strlen(buf);
    if (n && len < cap)
        snprintf(buf + len, cap - len, "%s%" PRIu64 " %s", len ? ", " : "", n, what);
}

/* TCP: send the rest and wait for the consumer's TCP to acknowledge it;
 * what it never acknowledged counts as not delivered. */
static int finish_tcp(lumio_stream_writer *w) {
    netsink ws;
    const netsink *ns = &w->net;
    if (w->ws) {
        w->undelivered = lumio__ws_finish(w->ws, w->o.close_timeout_ms, &ws);
        ns = &ws;
    } else {
        w->undelivered = lumio__net_finish(&w->net, w->o.close_timeout_ms);
    }
    if (!w->undelivered) return 0;
    char why[400] = "", end[160];
    if (ns->connections == 0)
        snprintf(end, sizeof end, "never sent: no consumer connected");
    else if (ns->fd < 0)
        snprintf(end, sizeof end, "never sent: not connected at the end (%s)",
                 lumio_strerror(ns->last_err ? ns->last_err : -ETIMEDOUT));
    else
        snprintf(end, sizeof end, "never sent within the close timeout");
    part(why, sizeof why, ns->dropped_chunks, "dropped from a full buffer");
    part(why, sizeof why, ns->lost_chunks, "sent but not acknowledged when a connection broke");
    part(why, sizeof why, ns->ninflight, "sent but not acknowledged within the close timeout");
    part(why, sizeof why, ns->nqueued, end);
    lumio__err_set(&w->err, "%s: %" PRIu64 " of %" PRIu64 " chunks not delivered: %s", w->sink,
                   w->undelivered, w->stats.chunks, why);
    return ns->last_err ? ns->last_err : -ETIMEDOUT;
}

int lumio_stream_writer_finish(lumio_stream_writer *w) {
    if (!w) return -EINVAL;
    if (w->finished && lumio__chunk_enc_empty(&w->enc)) return w->finish_rc; /* nothing new since */
    stop_timer(w); /* then the timer's failure, if any, can be read */
    int rc = w->timer_err;
    w->timer_err = 0;
    int frc = flush_locked(w);
    if (rc == 0) rc = frc;
    if (w->tcp) {
        int trc = finish_tcp(w);
        if (rc == 0) rc = trc;
    }
    w->finished = true;
    return w->finish_rc = rc;
}

void lumio_stream_writer_close(lumio_stream_writer *w) {
    if (!w) return;
    lumio_stream_writer_finish(w);
    if (w->tcp) lumio__net_close(&w->net);
    lumio__ws_close(w->ws);
    if (w->own_fd) close(w->fd);
    for (size_t i = 0; i < w->strs.n; i++) free(w->strs.s[i]);
    free(w->strs.s);
    free(w->strs.len);
    free(w->strs.slots);
    free(w->strs.hashes);
    free(w->frames.fn);
    free(w->frames.file);
    free(w->frames.line);
    free(w->frames.slots);
    lumio__chunk_enc_free(&w->enc);
    lumio__chunk_dec_free(&w->check);
    bbuf_free(&w->out);
    free(w->ids);
    lumio__err_fini(&w->err);
    free(w);
}

/* A failure always leaves a text for last_error(NULL) (docs/API.md). */
int lumio_stream_writer_open(lumio_stream_writer **out, const char *sink,
                             const lumio_stream_writer_options *opts) {
    uint64_t mark = lumio__err_mark();
    return lumio__err_ensure(mark, stream_writer_open_impl(out, sink, opts),
                             (sink ? sink : "(null)"));
}

/* A failure always leaves a text for last_error(NULL) (docs/API.md). */
int lumio_stream_writer_open_fd(lumio_stream_writer **out, int fd,
                                const lumio_stream_writer_options *opts) {
    uint64_t mark = lumio__err_mark();
    return lumio__err_ensure(mark, stream_writer_open_fd_impl(out, fd, opts),
                             "lumio_stream_writer_open_fd");
}
