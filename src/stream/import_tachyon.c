/* Importer of CPython's sampling-profiler binary format, version 1
 * (stream/tachyon.h; docs/PROFILES.md says what is kept).
 *
 * The tables are at the end, so the input must be seekable: a pipe (or any
 * FILE without a regular file under it) is first copied to an unlinked
 * temporary file, at most TACH_SPOOL_MAX bytes. The header, footer and
 * tables are read and checked before any sample is delivered; the sample
 * data is then decompressed as a stream, so memory holds the tables and a
 * window of samples, never the whole profile. Every count and offset from
 * the file is checked against the file's size and lumio's limits. */
#include "stream/import.h"

#include "core/core.h"
#include "stream/bytes.h"
#include "stream/chunk.h"
#include "stream/tachyon.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define TACH_SPOOL_MAX  (64ull << 30)
#define TACH_TABLES_MAX (1ull << 30) /* string and frame tables, read whole */
#define TACH_WINDOW     (256u << 10)

typedef struct tthread {
    uint64_t tid, prev;
    uint32_t iid, depth;
    uint32_t stack[TACH_MAX_DEPTH]; /* frame indices, innermost first */
} tthread;

typedef struct tin {
    int fd;
    uint64_t base, size; /* the profile is [base, base + size) of fd */
    bool be;             /* written big-endian */
    char *err;
    size_t errlen;
    uint8_t py[3];
    uint64_t start, interval, nsamples, str_off, frame_off;
    uint32_t nthreads_hdr, compression, nstr, nframes;
    char *arena;         /* the strings, NUL-terminated */
    uint64_t *soff;      /* string i at arena + soff[i] */
    lumio_frame *frames; /* the frame table */
    tthread **threads;
    size_t nthreads;
    uint32_t *tslot; /* open addressing on (tid, iid): thread index + 1, 0 empty */
    size_t tslots;   /* a power of two, at most half used */
    lumio_frame stack[TACH_MAX_DEPTH];
    /* the sample data, as a stream */
    uint64_t zoff, zend; /* stored bytes left: [zoff, zend) */
    ZSTD_DCtx *dctx;
    uint8_t *in, *out;
    size_t in_len, in_pos, out_len, out_pos;
    size_t zret;  /* the decompressor's last hint: 0 when a frame ended */
    uint64_t pos; /* sample data bytes consumed */
    uint64_t seen;
} tin;

static int fail(tin *t, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(tin *t, int rc, const char *fmt, ...) {
    if (t->err && t->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->err, t->errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static uint32_t get32(const tin *t, const uint8_t *p) {
    uint32_t v = get_le32(p);
    return t->be ? __builtin_bswap32(v) : v;
}
static uint64_t get64(const tin *t, const uint8_t *p) {
    uint64_t v = get_le64(p);
    return t->be ? __builtin_bswap64(v) : v;
}

/* n bytes at off of the profile, all of them. */
static int read_at(tin *t, uint64_t off, void *buf, size_t n, const char *what) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(t->fd, (char *)buf + done, n - done, (off_t)(t->base + off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0)
            return fail(t, -errno, "reading the %s at byte %" PRIu64 ": %s", what, off + done,
                        strerror(errno));
        if (r == 0)
            return fail(t, LUMIO_E_FORMAT, "the %s at byte %" PRIu64 " is cut short", what, off);
        done += (size_t)r;
    }
    return 0;
}

/* ---- seekable input ---------------------------------------------------------------- */

/* A copy of the rest of in in an unlinked temporary file: its descriptor. */
static int spool(tin *t, FILE *in) {
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/lumio-tachyon-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return fail(t, -errno, "a temporary file for the input (%s): %s", path, strerror(errno));
    unlink(path);
    char *buf = malloc(1 << 16);
    uint64_t total = 0;
    int rc = buf ? 0 : -ENOMEM;
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, 1 << 16, in)) > 0) {
        if (total + n > TACH_SPOOL_MAX)
            rc =
                fail(t, LUMIO_E_FORMAT,
                     "the input is larger than the limit of %llu bytes for a pipe", TACH_SPOOL_MAX);
        for (size_t done = 0; rc == 0 && done < n;) {
            ssize_t w = write(fd, buf + done, n - done);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0)
                rc = fail(t, -errno, "spooling the input to a temporary file: %s", strerror(errno));
            else
                done += (size_t)w;
        }
        total += n;
    }
    free(buf);
    if (rc == 0 && ferror(in)) rc = fail(t, -EIO, "read failed");
    if (rc < 0) {
        close(fd);
        return rc;
    }
    t->base = 0;
    t->size = total;
    return fd;
}

/* t->fd, base and size: the file under in, or a spooled copy. Returns 1
 * when the descriptor is ours to close. */
static int open_input(tin *t, FILE *in) {
    int fd = fileno(in);
    struct stat st;
    off_t at = fd >= 0 ? ftello(in) : -1;
    if (fd >= 0 && at >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= at) {
        t->fd = fd;
        t->base = (uint64_t)at;
        t->size = (uint64_t)(st.st_size - at);
        return 0;
    }
    int rc = spool(t, in);
    if (rc < 0) return rc;
    t->fd = rc;
    return 1;
}

/* ---- header, footer, tables ---------------------------------------------------------- */

static int read_header(tin *t) {
    uint8_t h[TACH_HEADER], f[TACH_FOOTER];
    if (t->size < TACH_HEADER + TACH_FOOTER)
        return fail(t, LUMIO_E_FORMAT,
                    "%" PRIu64 " bytes: too short for a tachyon profile (96 at least)", t->size);
    int rc = read_at(t, 0, h, sizeof h, "header");
    if (rc == 0) rc = read_at(t, t->size - TACH_FOOTER, f, sizeof f, "footer");
    if (rc < 0) return rc;
    if (get_le32(h) == TACH_MAGIC)
        t->be = false;
    else if (__builtin_bswap32(get_le32(h)) == TACH_MAGIC)
        t->be = true;
    else
        return fail(t, LUMIO_E_FORMAT,
                    "header: no TACH magic at byte 0 (a zeroed header is a profile whose writer "
                    "did not finish)");
    uint32_t version = get32(t, h + TACH_OFF_VERSION);
    if (version != TACH_VERSION)
        return fail(t, LUMIO_E_FORMAT, "header: format version %u is not supported (1)", version);
    memcpy(t->py, h + TACH_OFF_PYVER, 3);
    t->start = get64(t, h + TACH_OFF_START);
    t->interval = get64(t, h + TACH_OFF_INTERVAL);
    t->nsamples = get64(t, h + TACH_OFF_SAMPLES);
    t->nthreads_hdr = get32(t, h + TACH_OFF_THREADS);
    t->str_off = get64(t, h + TACH_OFF_STRTAB);
    t->frame_off = get64(t, h + TACH_OFF_FRAMETAB);
    t->compression = get32(t, h + TACH_OFF_COMPRESSION);
    t->nstr = get32(t, f);
    t->nframes = get32(t, f + 4);
    uint64_t fsize = get64(t, f + 8);
    if (fsize != t->size)
        return fail(t, LUMIO_E_FORMAT,
                    "footer: the file size is %" PRIu64 " bytes, the footer says %" PRIu64
                    " (truncated or appended to?)",
                    t->size, fsize);
    if (t->compression != TACH_RAW && t->compression != TACH_ZSTD)
        return fail(t, LUMIO_E_FORMAT, "header: compression %u is not known (0 none, 1 zstd)",
                    t->compression);
    if (t->str_off < TACH_HEADER || t->str_off > t->frame_off ||
        t->frame_off > t->size - TACH_FOOTER)
        return fail(t, LUMIO_E_FORMAT,
                    "header: table offsets %" PRIu64 " (strings) and %" PRIu64
                    " (frames) are not within bytes 64 to %" PRIu64 " in order",
                    t->str_off, t->frame_off, t->size - TACH_FOOTER);
    return 0;
}

static bool cur_u32(rcur *c, uint32_t *v) {
    uint64_t x = rc_varint(c);
    *v = (uint32_t)x;
    return !c->bad && x <= UINT32_MAX;
}

static int parse_strings(tin *t, const uint8_t *p, size_t n) {
    if (t->nstr > TACH_MAX_TABLE) /* each costs an offset too: bound the memory */
        return fail(t, LUMIO_E_FORMAT, "footer: %u strings exceed lumio's limit of %u", t->nstr,
                    TACH_MAX_TABLE);
    if (t->nstr > n)
        return fail(t, LUMIO_E_FORMAT,
                    "footer: %u strings cannot fit in a string table of %zu bytes", t->nstr, n);
    t->arena = malloc(n + t->nstr + 1);
    t->soff = malloc(((size_t)t->nstr + 1) * sizeof *t->soff);
    if (!t->arena || !t->soff) return fail(t, -ENOMEM, "out of memory for %u strings", t->nstr);
    rcur c = {p, p + n, false};
    size_t used = 0;
    for (uint32_t i = 0; i < t->nstr; i++) {
        uint64_t at = t->str_off + (uint64_t)(c.p - p), len = rc_varint(&c);
        if (c.bad || len > (uint64_t)(c.end - c.p))
            return fail(t, LUMIO_E_FORMAT,
                        "string %u at byte %" PRIu64 ": length %" PRIu64
                        " runs past the string table",
                        i, at, len);
        if (len > CHUNK_MAX_STRING)
            return fail(t, LUMIO_E_FORMAT,
                        "string %u at byte %" PRIu64 ": %" PRIu64 " bytes exceed the limit of %u",
                        i, at, len, CHUNK_MAX_STRING);
        memcpy(t->arena + used, c.p, len);
        t->arena[used + len] = '\0'; /* a NUL inside ends the string for lumio */
        t->soff[i] = used;
        used += len + 1;
        c.p += len;
    }
    return 0;
}

/* Each entry: file, function (string indices), line, end line delta,
 * column, end column delta (zigzag), opcode byte: 7 bytes at least. */
static int parse_frames(tin *t, const uint8_t *p, size_t n) {
    if (t->nframes > TACH_MAX_TABLE)
        return fail(t, LUMIO_E_FORMAT, "footer: %u frames exceed lumio's limit of %u", t->nframes,
                    TACH_MAX_TABLE);
    if (t->nframes > n / 7)
        return fail(t, LUMIO_E_FORMAT, "footer: %u frames cannot fit in a frame table of %zu bytes",
                    t->nframes, n);
    t->frames = calloc((size_t)t->nframes + 1, sizeof *t->frames);
    if (!t->frames) return fail(t, -ENOMEM, "out of memory for %u frames", t->nframes);
    rcur c = {p, p + n, false};
    for (uint32_t i = 0; i < t->nframes; i++) {
        uint64_t at = t->frame_off + (uint64_t)(c.p - p);
        uint32_t file, fn;
        bool ok = cur_u32(&c, &file) && cur_u32(&c, &fn);
        int64_t line = unzigzag(rc_varint(&c));
        for (int k = 0; k < 3; k++) rc_varint(&c); /* end line, column, end column */
        rc_u8(&c);                                 /* opcode */
        if (!ok || c.bad)
            return fail(t, LUMIO_E_FORMAT,
                        "frame %u at byte %" PRIu64 ": cut short or a bad varint", i, at);
        if (file >= t->nstr || fn >= t->nstr)
            return fail(t, LUMIO_E_FORMAT,
                        "frame %u at byte %" PRIu64 ": string index %u out of range (%u strings)",
                        i, at, file >= t->nstr ? file : fn, t->nstr);
        t->frames[i] = (lumio_frame){.function = t->arena + t->soff[fn],
                                     .file = t->arena + t->soff[file],
                                     .line = line > 0 && line <= UINT32_MAX ? (uint32_t)line : 0};
    }
    return 0;
}

static int read_tables(tin *t) {
    uint64_t len = t->size - TACH_FOOTER - t->str_off;
    if (len > TACH_TABLES_MAX)
        return fail(t, LUMIO_E_FORMAT, "the tables (%" PRIu64 " bytes) exceed the limit of %llu",
                    len, TACH_TABLES_MAX);
    uint8_t *buf = malloc(len + 1);
    if (!buf) return fail(t, -ENOMEM, "out of memory for the tables (%" PRIu64 " bytes)", len);
    int rc = read_at(t, t->str_off, buf, len, "tables");
    size_t nstr = (size_t)(t->frame_off - t->str_off);
    if (rc == 0) rc = parse_strings(t, buf, nstr);
    /* what follows the frame table (profile statistics) is not lumio's */
    if (rc == 0) rc = parse_frames(t, buf + nstr, len - nstr);
    free(buf);
    return rc;
}

/* ---- the sample data, as a stream ---------------------------------------------------- */

/* More sample bytes into out: 1, 0 at the end of the data, or an error. */
static int fill(tin *t) {
    t->out_pos = t->out_len = 0;
    if (t->compression == TACH_RAW) {
        size_t n = (size_t)LUMIO_MIN((uint64_t)TACH_WINDOW, t->zend - t->zoff);
        if (n == 0) return 0;
        int rc = read_at(t, t->zoff, t->out, n, "sample data");
        if (rc < 0) return rc;
        t->zoff += n;
        t->out_len = n;
        return 1;
    }
    while (t->out_len == 0) {
        if (t->in_pos == t->in_len && t->zoff < t->zend) {
            size_t n = (size_t)LUMIO_MIN((uint64_t)TACH_WINDOW, t->zend - t->zoff);
            int rc = read_at(t, t->zoff, t->in, n, "sample data");
            if (rc < 0) return rc;
            t->zoff += n;
            t->in_len = n;
            t->in_pos = 0;
        }
        bool no_input = t->in_pos == t->in_len;
        if (no_input && t->zret == 0) return 0; /* every frame ended */
        ZSTD_inBuffer ib = {t->in, t->in_len, t->in_pos};
        ZSTD_outBuffer ob = {t->out, TACH_WINDOW, 0};
        t->zret = ZSTD_decompressStream(t->dctx, &ob, &ib);
        if (ZSTD_isError(t->zret))
            return fail(t, LUMIO_E_FORMAT, "sample data: zstd: %s (near byte %" PRIu64 ")",
                        ZSTD_getErrorName(t->zret), t->zoff - (t->in_len - ib.pos));
        if (no_input && ob.pos == 0)
            return fail(t, LUMIO_E_FORMAT,
                        "sample data: the zstd stream is cut short at byte %" PRIu64, t->zend);
        t->in_pos = ib.pos;
        t->out_len = ob.pos;
    }
    return 1;
}

static int get_u8(tin *t, uint8_t *v) {
    if (t->out_pos == t->out_len) {
        int rc = fill(t);
        if (rc < 0) return rc;
        if (rc == 0)
            return fail(t, LUMIO_E_FORMAT, "sample data: a record is cut short at byte %" PRIu64,
                        t->pos);
    }
    *v = t->out[t->out_pos++];
    t->pos++;
    return 0;
}

static int get_varint(tin *t, uint64_t *v, uint64_t max, const char *what) {
    uint64_t x = 0, at = t->pos;
    for (int shift = 0;; shift += 7) {
        uint8_t b = 0;
        int rc = get_u8(t, &b);
        if (rc < 0) return rc;
        if (shift == 63 && b > 1)
            return fail(t, LUMIO_E_FORMAT, "sample data byte %" PRIu64 ": %s overflows 64 bits", at,
                        what);
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
    }
    if (x > max)
        return fail(t, LUMIO_E_FORMAT,
                    "sample data byte %" PRIu64 ": %s %" PRIu64 " exceeds %" PRIu64, at, what, x,
                    max);
    *v = x;
    return 0;
}

/* ---- records ------------------------------------------------------------------------ */

static size_t thread_slot(const tin *t, uint64_t tid, uint32_t iid) {
    uint64_t h = (tid ^ (uint64_t)iid << 40 ^ iid) * 0x9E3779B97F4A7C15ull;
    size_t k = (size_t)(h ^ h >> 29) & (t->tslots - 1);
    while (t->tslot[k]) {
        const tthread *th = t->threads[t->tslot[k] - 1];
        if (th->tid == tid && th->iid == iid) break;
        k = (k + 1) & (t->tslots - 1);
    }
    return k;
}

/* Room for one more thread in the index (kept at most half full). */
static int thread_index_grow(tin *t) {
    if ((t->nthreads + 1) * 2 <= t->tslots) return 0;
    size_t old_n = t->tslots, n = old_n ? old_n * 2 : 64;
    uint32_t *old = t->tslot;
    if (!(t->tslot = calloc(n, sizeof *t->tslot))) {
        t->tslot = old;
        return -ENOMEM;
    }
    t->tslots = n;
    for (size_t i = 0; i < old_n; i++)
        if (old[i]) {
            const tthread *th = t->threads[old[i] - 1];
            t->tslot[thread_slot(t, th->tid, th->iid)] = old[i];
        }
    free(old);
    return 0;
}

/* The thread (tid, iid), made at its first record: a hash lookup, since a
 * file may interleave the records of tens of thousands of threads. */
static tthread *thread_of(tin *t, uint64_t tid, uint32_t iid, int *rc) {
    size_t k = t->tslots ? thread_slot(t, tid, iid) : 0;
    if (t->tslots && t->tslot[k]) return t->threads[t->tslot[k] - 1];
    if (t->nthreads == TACH_MAX_THREADS) {
        *rc = fail(t, LUMIO_E_FORMAT, "sample data byte %" PRIu64 ": more than %u threads", t->pos,
                   TACH_MAX_THREADS);
        return NULL;
    }
    tthread **a = t->threads;
    if ((t->nthreads & (t->nthreads - 1)) == 0) { /* full at 0, 1, 2, 4, ...: double */
        a = realloc(t->threads, (t->nthreads ? t->nthreads * 2 : 1) * sizeof *a);
        if (a) t->threads = a;
    }
    tthread *th = a && thread_index_grow(t) == 0 ? calloc(1, sizeof *th) : NULL;
    if (!th) {
        *rc = fail(t, -ENOMEM, "out of memory");
        return NULL;
    }
    *th = (tthread){.tid = tid, .iid = iid, .prev = t->start};
    t->threads[t->nthreads++] = th;
    t->tslot[thread_slot(t, tid, iid)] = (uint32_t)t->nthreads;
    return th;
}

static int emit(tin *t, tthread *th, uint64_t delta, uint8_t status, lumio_import_fn fn,
                void *arg) {
    th->prev += delta; /* modulo 2^64, as CPython's reader adds it */
    for (uint32_t i = 0; i < th->depth; i++) t->stack[i] = t->frames[th->stack[i]];
    lumio_sample s = {.timestamp_us = th->prev,
                      .thread_id = th->tid,
                      .status = status,
                      .frames = t->stack,
                      .depth = th->depth};
    t->seen++;
    return fn(arg, &s);
}

/* n frame indices into th->stack from i on. */
static int read_frames(tin *t, tthread *th, uint32_t i, uint32_t n) {
    for (uint32_t k = 0; k < n; k++) {
        uint64_t ix;
        int rc = get_varint(t, &ix, t->nframes ? t->nframes - 1u : 0, "a frame index");
        if (rc == 0 && t->nframes == 0)
            rc = fail(t, LUMIO_E_FORMAT,
                      "sample data byte %" PRIu64 ": a frame with no frame table", t->pos);
        if (rc < 0) return rc;
        th->stack[i + k] = (uint32_t)ix;
    }
    return 0;
}

/* FULL, SUFFIX and POP_PUSH: the new stack of th. */
static int read_stack(tin *t, tthread *th, uint8_t enc) {
    uint64_t a, b = 0;
    int rc = get_varint(t, &a, TACH_MAX_DEPTH, enc == TACH_FULL ? "a depth" : "a frame count");
    if (rc == 0 && enc != TACH_FULL) rc = get_varint(t, &b, TACH_MAX_DEPTH, "a frame count");
    if (rc < 0) return rc;
    if (enc == TACH_FULL) {
        th->depth = (uint32_t)a;
        return read_frames(t, th, 0, th->depth);
    }
    /* SUFFIX keeps `a` frames at the bottom; POP_PUSH drops `a` from the top */
    if (enc == TACH_SUFFIX && a > th->depth)
        return fail(t, LUMIO_E_FORMAT,
                    "sample data byte %" PRIu64 ": %" PRIu64 " shared frames, the stack has %u",
                    t->pos, a, th->depth);
    uint32_t keep = enc == TACH_SUFFIX ? (uint32_t)a : th->depth > a ? th->depth - (uint32_t)a : 0;
    if (keep + b > TACH_MAX_DEPTH)
        return fail(t, LUMIO_E_FORMAT, "sample data byte %" PRIu64 ": a stack deeper than %u",
                    t->pos, TACH_MAX_DEPTH);
    memmove(th->stack + b, th->stack + (th->depth - keep), keep * sizeof *th->stack);
    th->depth = keep + (uint32_t)b;
    return read_frames(t, th, 0, (uint32_t)b);
}

static int read_record(tin *t, lumio_import_fn fn, void *arg) {
    uint8_t h[TACH_RECORD_HEAD];
    uint64_t at = t->pos;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof h; i++) rc = get_u8(t, &h[i]);
    if (rc < 0) return rc;
    tthread *th = thread_of(t, get64(t, h), get32(t, h + 8), &rc);
    if (!th) return rc;
    uint8_t enc = h[12], status = 0;
    uint64_t n = 1, delta = 0;
    if (enc > TACH_POP_PUSH)
        return fail(t, LUMIO_E_FORMAT, "sample data byte %" PRIu64 ": unknown encoding %u", at,
                    enc);
    if (enc == TACH_REPEAT) rc = get_varint(t, &n, UINT32_MAX, "a repeat count");
    for (uint64_t i = 0; rc == 0 && i < n; i++) {
        rc = get_varint(t, &delta, UINT64_MAX, "a time delta");
        if (rc == 0) rc = get_u8(t, &status);
        if (rc == 0 && enc != TACH_REPEAT) rc = read_stack(t, th, enc);
        if (rc == 0) rc = emit(t, th, delta, status, fn, arg);
    }
    return rc;
}

static int read_samples(tin *t, lumio_import_fn fn, void *arg) {
    t->zoff = TACH_HEADER;
    t->zend = t->str_off;
    t->in = malloc(TACH_WINDOW);
    t->out = malloc(TACH_WINDOW);
    if (t->compression == TACH_ZSTD) t->dctx = ZSTD_createDCtx();
    if (!t->in || !t->out || (t->compression == TACH_ZSTD && !t->dctx))
        return fail(t, -ENOMEM, "out of memory");
    t->zret = t->compression == TACH_ZSTD && t->zend > t->zoff ? 1 : 0;
    for (;;) {
        if (t->out_pos == t->out_len) {
            int rc = fill(t);
            if (rc <= 0) {
                if (rc < 0) return rc;
                break;
            }
        }
        int rc = read_record(t, fn, arg);
        if (rc) return rc;
    }
    if (t->seen != t->nsamples)
        return fail(t, LUMIO_E_FORMAT, "header: %" PRIu64 " samples, the data holds %" PRIu64,
                    t->nsamples, t->seen);
    if (t->nthreads != t->nthreads_hdr)
        return fail(t, LUMIO_E_FORMAT, "header: %u threads, the data holds %zu", t->nthreads_hdr,
                    t->nthreads);
    return 0;
}

/* The header's facts as records (docs/PROFILES.md). */
static int header_records(tin *t, lumio_import_meta_fn meta, void *arg) {
    if (!meta) return 0;
    char v[64], src[96];
    snprintf(v, sizeof v, "%u.%u.%u", t->py[0], t->py[1], t->py[2]);
    snprintf(src, sizeof src, "tachyon v1 (Python %s)", v);
    int rc = meta(arg, t->start, "source", src);
    if (rc == 0 && (t->py[0] | t->py[1] | t->py[2])) rc = meta(arg, t->start, "python_version", v);
    snprintf(v, sizeof v, "%" PRIu64, t->interval);
    if (rc == 0 && t->interval) rc = meta(arg, t->start, "interval_us", v);
    snprintf(v, sizeof v, "%" PRIu64, t->interval ? 1000000 / t->interval : 0);
    if (rc == 0 && t->interval && t->interval <= 1000000) rc = meta(arg, t->start, "rate_hz", v);
    snprintf(v, sizeof v, "%" PRIu64, t->start);
    if (rc == 0) rc = meta(arg, t->start, "tachyon_start_us", v);
    return rc;
}

int lumio__import_tachyon(FILE *in, lumio_import_fn fn, lumio_import_meta_fn meta, void *arg,
                          char *err, size_t errlen) {
    tin *t = calloc(1, sizeof *t);
    if (!t) return -ENOMEM;
    t->err = err;
    t->errlen = errlen;
    int own = open_input(t, in);
    int rc = own < 0 ? own : read_header(t);
    if (rc == 0) rc = read_tables(t);
    if (rc == 0) rc = header_records(t, meta, arg);
    if (rc == 0) rc = read_samples(t, fn, arg);
    if (own == 1) close(t->fd);
    for (size_t i = 0; i < t->nthreads; i++) free(t->threads[i]);
    free(t->threads);
    free(t->tslot);
    free(t->arena);
    free(t->soff);
    free(t->frames);
    free(t->in);
    free(t->out);
    ZSTD_freeDCtx(t->dctx);
    free(t);
    return rc;
}
