/* Writing regions. A write reads the chunks it only partly covers (through
 * the ring, decoded on the workers), then encodes every chunk it touches on
 * a set of threads, each chunk written whole to the store (store.c: a
 * temporary name renamed over the old one, so a killed writer leaves every
 * chunk whole). */
#include "zarr/zarr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing a region ---------------------------------------------------------- */

typedef struct write_job {
    region x;          /* first: the compute stage gets &job.x */
    uint64_t first, n; /* this batch: chunks first .. first + n of the region */
    uint8_t **bufs;    /* the old contents of chunks only partly written (stored order) */
    uint64_t next;     /* the next chunk to encode (atomic) */
} write_job;

/* On a worker: the old contents of a chunk the write only partly covers. */
static int on_old(void *arg, lumio_completion *c) {
    write_job *j = arg;
    uint8_t *buf = j->bufs[c->user_data - j->first];
    if (c->result == -ENOENT) {
        lumio__zarr_fill_chunk(j->x.m, buf);
        lumio_buffer_release(c->buffer);
        c->buffer = NULL;
        return 0;
    }
    if (c->result < 0) return c->result;
    return lumio__zarr_decode_landed(&j->x, c, buf);
}

typedef struct encoder_arg {
    write_job *j;
    zarr_enc_kit *kit;
} encoder_arg;

/* A thread: merge the new data into chunks, encode and write them. A chunk
 * the region covers is assembled in the kit's own buffer, and every chunk is
 * encoded into another, both kept in the array with the zstd context from
 * chunk to chunk and from write to write. */
static void *encoder(void *arg) {
    write_job *j = ((encoder_arg *)arg)->j;
    zarr_enc_kit *kit = ((encoder_arg *)arg)->kit;
    region *x = &j->x;
    const lumio_zarr *z = x->z;
    const zarr_meta *m = &z->m;
    uint8_t *own = kit->own, *enc = kit->enc;
    size_t cap = kit->cap;
    lumio__zarr_thread_cctx_swap(&kit->cctx);
    for (;;) {
        uint64_t i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
        if (i >= j->n || x->error) break;
        uint64_t cc[LUMIO_ZARR_MAX_DIMS];
        lumio__region_chunk(x, j->first + i, cc);
        char why[256], text[1200], key[256];
        lumio__zarr_chunk_key(z, cc, key, sizeof key);
        uint8_t *chunk = j->bufs[i];
        int rc = 0;
        if (!chunk && !own && !(own = malloc(LUMIO_MAX(m->chunk_bytes, 1)))) {
            rc = -ENOMEM;
            snprintf(why, sizeof why, "out of memory");
        }
        if (rc == 0 && !chunk) {
            chunk = own;
            /* Covered: only the padding of an edge chunk needs the fill value. */
            bool edge = false;
            for (unsigned d = 0; d < m->info.ndim; d++)
                edge |= (cc[d] + 1) * m->info.chunks[d] > m->info.shape[d];
            if (edge) lumio__zarr_fill_chunk(m, chunk);
        }
        size_t len = 0;
        if (rc == 0) {
            lumio__region_to_chunk(x, cc, chunk);
            rc = lumio__zarr_encode_into(m, chunk, &enc, &cap, &len, why, sizeof why);
        }
        if (rc == 0) { /* the store's text names the key itself */
            if ((rc = lumio__zarr_put_key(z, key, enc, len, text, sizeof text)) < 0)
                lumio__region_error(x, rc, text);
        } else {
            snprintf(text, sizeof text, "%s/%s: %s", z->base, key, why);
            lumio__region_error(x, rc, text);
        }
    }
    lumio__zarr_thread_cctx_swap(&kit->cctx);
    kit->own = own;
    kit->enc = enc;
    kit->cap = cap;
    return NULL;
}

/* One kit per encoder, kept in the array from write to write. */
static int grow_kits(lumio_zarr *z, unsigned n) {
    if (z->nkits >= n) return 0;
    zarr_enc_kit *k = realloc(z->kits, n * sizeof *k);
    if (!k) return -ENOMEM;
    memset(k + z->nkits, 0, (n - z->nkits) * sizeof *k);
    z->kits = k;
    z->nkits = n;
    return 0;
}

/* The chunks of the batch that the region only partly covers, read (into
 * buffers kept from batch to batch) to be merged; those it covers are left
 * to the encoders. old: room for the batch's chunk indices. */
static int read_partial(lumio_zarr *z, write_job *j, uint64_t *old) {
    uint64_t nold = 0;
    for (uint64_t i = 0; i < j->n; i++) {
        uint64_t cc[LUMIO_ZARR_MAX_DIMS];
        lumio__region_chunk(&j->x, j->first + i, cc);
        if (lumio__region_covers(&j->x, cc)) { /* assembled by the encoder itself */
            free(j->bufs[i]);
            j->bufs[i] = NULL;
            continue;
        }
        if (!j->bufs[i] && !(j->bufs[i] = malloc(LUMIO_MAX(z->m.chunk_bytes, 1)))) return -ENOMEM;
        old[nold++] = j->first + i;
    }
    return nold ? lumio__zarr_fetch_chunks(z, &j->x, 0, nold, on_old, old) : 0;
}

/* The batch encoded and written by up to nthreads encoders (on this thread
 * if none starts). */
static void encode_batch(lumio_zarr *z, write_job *j, pthread_t *threads, encoder_arg *args,
                         unsigned nthreads) {
    unsigned started = 0;
    for (unsigned t = 0; t < nthreads && t < j->n; t++) {
        args[t] = (encoder_arg){.j = j, .kit = &z->kits[started]};
        if (lumio__thread_create(&threads[started], encoder, &args[t]) == 0) started++;
    }
    if (started == 0) encoder(&(encoder_arg){.j = j, .kit = &z->kits[0]});
    for (unsigned t = 0; t < started; t++) pthread_join(threads[t], NULL);
}

static int zarr_write(lumio_zarr *z, const uint64_t *start, const uint64_t *shape,
                      const void *buf) {
    if (z->remote && !z->rm && !(z->rm = lumio_ring_remote(z->ring))) {
        snprintf(z->err, sizeof z->err, "%s: cannot start the remote client", z->base);
        return -ENOMEM;
    }
    write_job j;
    memset(&j, 0, sizeof j);
    int rc = lumio__region_init(&j.x, z, &z->m, start, shape, (void *)buf);
    if (rc) return rc < 0 ? rc : 0;
    /* What the region touches is read again from the store. */
    if (z->cache) lumio__zarr_cache_forget(z->cache, zarr_grid(z), start, shape);
    if (z->index_cache) lumio__zarr_cache_forget(z->index_cache, &z->m, start, shape);
    uint64_t batch = LUMIO_MAX(z->max_inflight, 1);
    /* Encoders: one per core; over the network more, each mostly waiting
     * for its PUT. */
    unsigned nthreads = z->remote ? LUMIO_MAX(lumio__ncores(), 8u) : lumio__ncores();
    j.bufs = calloc(batch, sizeof *j.bufs);
    uint64_t *old = calloc(batch, sizeof *old);
    pthread_t *threads = calloc(nthreads, sizeof *threads);
    encoder_arg *args = calloc(nthreads, sizeof *args);
    if (grow_kits(z, nthreads) < 0 || !j.bufs || !old || !threads || !args) rc = -ENOMEM;
    for (uint64_t first = 0; rc == 0 && first < j.x.nchunks; first += batch) {
        j.first = first;
        j.n = LUMIO_MIN(batch, j.x.nchunks - first);
        j.next = 0;
        rc = read_partial(z, &j, old);
        if (rc == 0) encode_batch(z, &j, threads, args, nthreads);
        if (rc == 0 && j.x.error) rc = j.x.error;
    }
    for (uint64_t i = 0; j.bufs && i < batch; i++) free(j.bufs[i]);
    if (rc < 0 && j.x.error) snprintf(z->err, sizeof z->err, "%s", j.x.err);
    lumio__region_fini(&j.x);
    free(j.bufs);
    free(old);
    free(threads);
    free(args);
    return rc;
}

int lumio_zarr_write(lumio_zarr *z, const uint64_t *start, const uint64_t *shape, const void *buf) {
    if (!z) return -EINVAL;
    return lumio__zarr_published(z, lumio__zarr_begin(z) ? 0 : zarr_write(z, start, shape, buf));
}
