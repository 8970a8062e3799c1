/* Rechunking: copy an array into a new one with other chunks (and codec,
 * format, order), in blocks that fit a memory budget. A block is a whole
 * number of destination chunks, so every destination chunk is written once,
 * whole; where the budget allows it is also a whole number of source chunks
 * (their least common multiple), so no source chunk is decoded twice. */
#include "zarr/zarr.h"

#include <pthread.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t gcd(uint64_t a, uint64_t b) {
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static uint64_t round_up(uint64_t v, uint64_t m) {
    return (v + m - 1) / m * m;
}

/* The block shape: dst-chunk aligned, as large as the budget allows. */
static void block_shape(const lumio_zarr_info *s, const lumio_zarr_info *d, uint64_t budget,
                        uint64_t *b) {
    unsigned nd = s->ndim;
    uint64_t isz = s->itemsize;
    /* Start from one destination chunk (clipped to the array). */
    for (unsigned i = 0; i < nd; i++) b[i] = LUMIO_MAX(1, LUMIO_MIN(d->chunks[i], s->shape[i]));
    uint64_t bytes = isz;
    for (unsigned i = 0; i < nd; i++) bytes *= b[i];
    /* Grow to the lcm with the source chunks, last dimensions first (they are
     * contiguous in memory), while it fits. */
    for (unsigned k = nd; k-- > 0;) {
        uint64_t l = d->chunks[k] / gcd(d->chunks[k], s->chunks[k]) * s->chunks[k];
        uint64_t want = LUMIO_MIN(round_up(l, d->chunks[k]), round_up(s->shape[k], d->chunks[k]));
        if (want > b[k] && bytes / b[k] * want <= budget) {
            bytes = bytes / b[k] * want;
            b[k] = want;
        }
    }
    /* Then along the first dimension, in destination chunks, while it fits. */
    if (nd) {
        uint64_t step = LUMIO_MAX(b[0], d->chunks[0]);
        while (b[0] + step <= round_up(s->shape[0], d->chunks[0]) &&
               bytes / b[0] * (b[0] + step) <= budget) {
            bytes = bytes / b[0] * (b[0] + step);
            b[0] += step;
        }
    }
}

static uint64_t sat_mul(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t sat_add(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* The decoded bytes of a source chunk (an inner chunk when sharded): what
 * each worker decodes into. */
static uint64_t chunk_size(const lumio_zarr_info *s) {
    uint64_t n = s->itemsize;
    for (unsigned i = 0; i < s->ndim; i++)
        n = sat_mul(n, s->inner_chunks[0] ? s->inner_chunks[i] : s->chunks[i]);
    return n;
}

/* The least memory a rechunk takes: two blocks of one destination chunk (or
 * shard), the read pool, a decoded source chunk on each worker, and on each
 * encoder a destination chunk and its encoded bytes, besides the program
 * (~16 MiB). */
static uint64_t rechunk_need(const lumio_zarr_info *s, const lumio_zarr_create_options *o,
                             uint64_t pool, unsigned in_flight, bool remote) {
    uint64_t dchunk = s->itemsize, block = s->itemsize;
    for (unsigned i = 0; i < s->ndim; i++) {
        uint64_t c = o->shard[0] ? o->shard[i] : o->chunks[i];
        dchunk = sat_mul(dchunk, c);
        block = sat_mul(block, LUMIO_MAX(1, LUMIO_MIN(c, s->shape[i])));
    }
    unsigned encoders =
        LUMIO_MIN(in_flight, remote ? LUMIO_MAX(lumio__ncores(), 8u) : lumio__ncores());
    uint64_t need = sat_add(sat_mul(2, block), pool);
    need = sat_add(need, sat_mul(lumio__ncores(), chunk_size(s)));
    need = sat_add(need, sat_mul(2 * (uint64_t)encoders, dchunk));
    return sat_add(need, 16u << 20);
}

typedef struct pipe_block {
    uint64_t start[LUMIO_ZARR_MAX_DIMS], shape[LUMIO_ZARR_MAX_DIMS];
    uint8_t *buf;
    uint64_t index;
    bool full; /* read, not yet written */
} pipe_block;

typedef struct pipe_state {
    lumio_zarr *d;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pipe_block slot[2];
    uint64_t nblocks;
    bool reading_done, stop;
    int error;
    char err[1024];
} pipe_state;

/* The writer thread: blocks in order, as the reader fills them. */
static void *write_blocks(void *arg) {
    pipe_state *p = arg;
    for (uint64_t k = 0; k < p->nblocks; k++) {
        pipe_block *pb = &p->slot[k % 2];
        pthread_mutex_lock(&p->mu);
        while (!(pb->full && pb->index == k) && !p->stop && !p->reading_done)
            pthread_cond_wait(&p->cv, &p->mu);
        bool go = pb->full && pb->index == k && !p->stop;
        pthread_mutex_unlock(&p->mu);
        if (!go) break;
        int rc = lumio_zarr_write(p->d, pb->start, pb->shape, pb->buf);
        pthread_mutex_lock(&p->mu);
        if (rc < 0) {
            p->error = rc;
            lumio_zarr_last_error(p->d, p->err, sizeof p->err);
        }
        pb->full = false;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        if (rc < 0) break;
    }
    return NULL;
}

/* Block k of the plan: its region in pb, and its element count. */
static uint64_t block_region(const lumio_zarr_info *si, const uint64_t *b, const uint64_t *count,
                             uint64_t k, pipe_block *pb) {
    uint64_t rem = k, n = 1;
    for (unsigned i = si->ndim; i-- > 0;) {
        pb->start[i] = rem % count[i] * b[i];
        rem /= count[i];
        pb->shape[i] = LUMIO_MIN(b[i], si->shape[i] - pb->start[i]);
        n *= pb->shape[i];
    }
    return n;
}

/* What the reader (the caller's thread) works from: the source, the block
 * shape and the grid of blocks, the two block buffers. */
typedef struct reader {
    lumio_zarr *s;
    lumio_zarr_info si;
    uint64_t b[LUMIO_ZARR_MAX_DIMS], count[LUMIO_ZARR_MAX_DIMS];
    uint64_t bytes; /* of a block buffer */
    uint8_t *block; /* two of them */
    uint64_t total; /* bytes, for progress */
    lumio_progress_fn progress;
    void *arg;
} reader;

/* The reader: blocks in order, each into the buffer the writer is done with. */
static int read_blocks(pipe_state *p, const reader *r) {
    uint64_t done = 0;
    for (uint64_t k = 0; k < p->nblocks; k++) {
        pipe_block *pb = &p->slot[k % 2];
        /* Wait until the writer is done with this buffer. */
        pthread_mutex_lock(&p->mu);
        while (pb->full && !p->error) pthread_cond_wait(&p->cv, &p->mu);
        int werr = p->error;
        pthread_mutex_unlock(&p->mu);
        if (werr) break; /* (its error is the rechunk's) */
        uint64_t n = block_region(&r->si, r->b, r->count, k, pb);
        pb->buf = r->block + (k % 2) * r->bytes;
        int rc = lumio_zarr_read(r->s, pb->start, pb->shape, pb->buf);
        if (rc < 0) {
            lumio_zarr_last_error(r->s, lumio__zarr_open_error(), 1024);
            return rc;
        }
        pthread_mutex_lock(&p->mu);
        pb->full = true;
        pb->index = k;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        done += n * r->si.itemsize;
        if (r->progress) r->progress(r->arg, done, r->total);
    }
    return 0;
}

/* Two blocks: one is read while the writer thread encodes and writes the
 * other. */
static int copy_blocks(pipe_state *p, reader *r) {
    int rc = 0;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_t writer;
    bool started = lumio__thread_create(&writer, write_blocks, p) == 0;
    if (started) rc = read_blocks(p, r);
    /* Stop the writer once it has written what was handed to it. */
    pthread_mutex_lock(&p->mu);
    p->reading_done = true;
    if (rc < 0) p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (started)
        pthread_join(writer, NULL);
    else
        rc = -EAGAIN;
    if (rc == 0 && p->error) {
        rc = p->error;
        snprintf(lumio__zarr_open_error(), 1024, "%s", p->err);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    return rc;
}

/* Copy s into d (both open, s of shape si, not empty) in blocks of
 * destination chunks that fit 3/8 of memory. */
static int copy_array(lumio_zarr *s, lumio_zarr *d, const lumio_zarr_info *si, uint64_t memory,
                      uint64_t total, lumio_progress_fn progress, void *arg) {
    reader r = {.s = s, .si = *si, .total = total, .progress = progress, .arg = arg};
    lumio_zarr_info di;
    lumio_zarr_get_info(d, &di);
    block_shape(si, &di, memory / 16 * 3, r.b);
    uint64_t bytes = si->itemsize;
    pipe_state p = {.d = d, .nblocks = 1};
    for (unsigned i = 0; i < si->ndim; i++) {
        bytes *= r.b[i];
        r.count[i] = si->shape[i] / r.b[i] + (si->shape[i] % r.b[i] != 0);
        p.nblocks *= r.count[i];
    }
    r.bytes = LUMIO_MAX(bytes, 1);
    if (!(r.block = lumio__large_alloc(2 * r.bytes))) return -ENOMEM;
    int rc = copy_blocks(&p, &r);
    lumio__large_free(r.block, 2 * r.bytes);
    return rc;
}

/* The source opened through a ring of its own whose pool holds a whole
 * stored source chunk (incompressible data stores a little larger than it
 * is), and at least a sixteenth of memory. */
static int open_source(const char *src, uint64_t memory, lumio_ring_options *ro,
                       lumio_zarr_options *zo, lumio_ring **ring, lumio_zarr **s) {
    int rc = lumio_ring_create(ring, ro);
    if (rc < 0) {
        snprintf(lumio__zarr_open_error(), 1024, "rechunk: cannot start the I/O engine");
        return rc;
    }
    zo->ring = *ring;
    if ((rc = lumio_zarr_open(s, src, zo)) < 0) return rc;
    lumio_zarr_info si;
    lumio_zarr_get_info(*s, &si);
    uint64_t cb = si.itemsize;
    for (unsigned i = 0; i < si.ndim; i++) cb *= si.chunks[i];
    lumio_zarr_close(*s);
    *s = NULL;
    lumio_ring_close(*ring);
    ro->max_bytes = LUMIO_MAX(memory / 16, cb + cb / 128 + (64u << 10));
    if ((rc = lumio_ring_create(ring, ro)) < 0) return rc;
    zo->ring = *ring;
    return lumio_zarr_open(s, src, zo);
}

/* The destination made (metadata deferred: written last, a failed rechunk
 * leaves nothing that opens) with the source's shape, dtype and, unless
 * opts has one, fill value; refused before anything is made when even the
 * least of the rechunk does not fit memory. *total: the source's bytes. */
static int create_dest(const char *src, const char *dst, const lumio_zarr_info *si,
                       const lumio_zarr_create_options *opts, const lumio_zarr_options *zo,
                       uint64_t memory, uint64_t pool, lumio_zarr **d, uint64_t *total) {
    lumio_zarr_create_options o = *opts;
    o.ndim = si->ndim;
    memcpy(o.shape, si->shape, sizeof o.shape);
    o.dtype = si->dtype;
    o.defer_metadata = 1;
    char fill[64];
    if (!opts->fill_value) { /* the source's fill value, as text */
        lumio__zarr_fill_to_text(si, fill, sizeof fill);
        o.fill_value = fill;
    }
    /* Chunks encoded at once by the writer: within a sixteenth of the budget. */
    uint64_t dchunk = si->itemsize;
    bool wraps = false;
    *total = si->itemsize;
    for (unsigned i = 0; i < si->ndim; i++) {
        wraps |= __builtin_mul_overflow(dchunk, o.shard[0] ? o.shard[i] : o.chunks[i], &dchunk);
        wraps |= __builtin_mul_overflow(*total, si->shape[i], total);
    }
    /* A virtual array past 2^64 bytes (its chunks mostly missing) opens, but
     * copying it whole cannot be counted, let alone done. */
    if (wraps) {
        snprintf(lumio__zarr_open_error(), 1024,
                 "%s: rechunk: the array or a destination chunk holds more than 2^64 bytes", src);
        return -EFBIG;
    }
    lumio_zarr_options dzo = *zo;
    dzo.ring = NULL; /* its own: the writer runs on a thread of its own */
    dzo.max_chunks_in_flight =
        (unsigned)LUMIO_MAX(1, LUMIO_MIN(64, memory / 16 / LUMIO_MAX(dchunk, 1)));
    uint64_t need = rechunk_need(si, &o, pool, dzo.max_chunks_in_flight, lumio_remote_is_url(dst));
    if (need > memory) {
        snprintf(lumio__zarr_open_error(), 1024,
                 "rechunk: destination chunks of %" PRIu64 " bytes (source chunks of %" PRIu64
                 ") need a memory budget of at least %" PRIu64 " MiB, not %" PRIu64 " MiB",
                 dchunk, chunk_size(si), (need >> 20) + 1, memory >> 20);
        return -EINVAL;
    }
    return lumio_zarr_create(d, dst, &o, &dzo);
}

static int zarr_rechunk(const char *src, const char *dst, const lumio_zarr_create_options *opts,
                        const lumio_zarr_options *zopts, uint64_t memory,
                        lumio_progress_fn progress, void *arg) {
    /* The caller's client (its timeout) for the source and the destination. */
    lumio_remote *remote = zopts ? zopts->remote : NULL;
    /* The budget: 3/8 for the block, 1/16 for the reads in flight, 1/16 for
     * the chunks being encoded (and as much for their encoded bytes), and the
     * rest for the program itself and the decoding on the workers. */
    if (memory < (32u << 20)) memory = 32u << 20; /* the program itself takes ~10 MiB */
    lumio_ring_options ro = {0};
    ro.max_bytes = memory / 16;
    ro.max_buffers = 64;
    ro.remote = remote;
    lumio_zarr_options zo;
    zo = (lumio_zarr_options){0};
    zo.remote = remote; /* the destination's own ring reads and writes through it too */
    lumio_ring *ring = NULL;
    lumio_zarr *s = NULL, *d = NULL;
    lumio_zarr_info si = {0};
    uint64_t total = 0;
    int rc = open_source(src, memory, &ro, &zo, &ring, &s);
    lumio_zarr_create_options with = *opts;
    if (rc == 0) { /* the source's attributes go with its data */
        lumio_zarr_get_info(s, &si);
        rc = lumio_zarr_get_attrs(s, &with.attrs);
        if (rc < 0) lumio_zarr_last_error(s, lumio__zarr_open_error(), 1024);
        if (rc == 0 && !strcmp(with.attrs, "{}")) with.attrs = NULL;
    }
    if (rc == 0) rc = create_dest(src, dst, &si, &with, &zo, memory, ro.max_bytes, &d, &total);
    bool empty = false; /* then the metadata is all */
    for (unsigned i = 0; rc == 0 && i < si.ndim; i++) empty |= si.shape[i] == 0;
    if (rc == 0 && !empty) rc = copy_array(s, d, &si, memory, total, progress, arg);
    if (rc == 0 && (rc = lumio_zarr_commit(d)) < 0)
        lumio_zarr_last_error(d, lumio__zarr_open_error(), 1024);
    lumio_zarr_close(s);
    lumio_zarr_close(d);
    lumio_ring_close(ring);
    return rc;
}

int lumio_zarr_rechunk(const char *src, const char *dst, const lumio_zarr_create_options *opts,
                       const lumio_zarr_options *zo, uint64_t memory, lumio_progress_fn progress,
                       void *arg) {
    if (!src || !dst || !opts) {
        snprintf(lumio__zarr_open_error(), 1024, "rechunk: no %s",
                 !src   ? "source"
                 : !dst ? "destination"
                        : "options");
        return lumio__zarr_published(NULL, -EINVAL);
    }
    lumio_zarr_create_options o = *opts;
    if (lumio__zarr_check_reserved(&o, zo) < 0) return lumio__zarr_published(NULL, -EINVAL);
    if (o.format == 0) o.format = 2; /* (dtype and shape are the source's) */
    return lumio__zarr_published(
        NULL, lumio__zarr_begin(NULL) ? 0 : zarr_rechunk(src, dst, &o, zo, memory, progress, arg));
}
