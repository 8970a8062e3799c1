/* Regions and chunks: which chunks a region touches, and copying the part
 * they share in either direction, for C- and F-ordered chunks. */
#include "zarr/zarr.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Regions at least this large are written with streaming stores: they do
 * not fit the caches, so reading each line before writing it is waste. */
enum { STREAM_BYTES = 32u << 20 };

int lumio__region_init(region *x, lumio_zarr *z, const zarr_meta *m, const uint64_t *start,
                       const uint64_t *shape, void *buf) {
    memset(x, 0, sizeof *x);
    const lumio_zarr_info *info = &m->info;
    x->m = m;
    unsigned nd = info->ndim;
    x->z = z;
    x->start = start;
    x->shape = shape;
    x->buf = buf;
    x->nchunks = 1;
    bool empty = false;
    for (unsigned d = 0; d < nd; d++) {
        if (start[d] > info->shape[d] || shape[d] > info->shape[d] - start[d]) {
            if (z)
                snprintf(z->err, sizeof z->err,
                         "%s: region [%llu, %llu) of dimension %u is outside the shape %llu",
                         z->base, (unsigned long long)start[d],
                         (unsigned long long)(start[d] + shape[d]), d,
                         (unsigned long long)info->shape[d]);
            return LUMIO_E_RANGE;
        }
        if (shape[d] == 0) {
            empty = true;
            continue;
        }
        x->lo[d] = start[d] / info->chunks[d];
        x->count[d] = (start[d] + shape[d] - 1) / info->chunks[d] - x->lo[d] + 1;
        x->nchunks *= x->count[d];
    }
    if (empty) return 1;
    /* The caller's buffer holds the region: its size, and so every offset
     * and stride into it below, fits in 64 bits, or no buffer can. */
    uint64_t bytes = info->itemsize;
    for (unsigned d = 0; d < nd; d++)
        if (__builtin_mul_overflow(bytes, shape[d], &bytes) || bytes > PTRDIFF_MAX) {
            if (z)
                snprintf(z->err, sizeof z->err,
                         "%s: a region of more than 2^63 bytes (%u dimensions of %u-byte "
                         "elements) cannot be read into memory; read it in parts",
                         z->base, nd, info->itemsize);
            return LUMIO_E_RANGE;
        }
    if (z && z->cache) x->cache_gen = lumio__zarr_cache_gen(z->cache);
    for (unsigned d = nd; d-- > 0;)
        x->rstride[d] = d == nd - 1 ? 1 : x->rstride[d + 1] * shape[d + 1];
    x->stream = nd && x->rstride[0] * shape[0] * info->itemsize >= STREAM_BYTES;
    /* The first dimension varies fastest in an F-ordered chunk; a shard's
     * buffer is always C order (its inner chunks carry the order). */
    if (info->fortran_order && !m->sharded)
        for (unsigned d = 0; d < nd; d++)
            x->cstride[d] = d == 0 ? 1 : x->cstride[d - 1] * info->chunks[d - 1];
    else
        for (unsigned d = nd; d-- > 0;)
            x->cstride[d] = d == nd - 1 ? 1 : x->cstride[d + 1] * info->chunks[d + 1];
    pthread_mutex_init(&x->mu, NULL);
    return 0;
}

void lumio__region_fini(region *x) {
    pthread_mutex_destroy(&x->mu);
    free(x->shard_check);
    x->shard_check = NULL;
}

void lumio__region_error(region *x, int code, const char *text) {
    pthread_mutex_lock(&x->mu);
    if (!x->error) {
        x->error = code;
        snprintf(x->err, sizeof x->err, "%s", text);
    }
    pthread_mutex_unlock(&x->mu);
}

void lumio__region_chunk(const region *x, uint64_t i, uint64_t *cc) {
    for (unsigned d = x->m->info.ndim; d-- > 0;) {
        cc[d] = x->lo[d] + i % x->count[d];
        i /= x->count[d];
    }
}

uint64_t lumio__region_index(const region *x, const uint64_t *cc) {
    uint64_t i = 0;
    for (unsigned d = 0; d < x->m->info.ndim; d++) i = i * x->count[d] + (cc[d] - x->lo[d]);
    return i;
}

bool lumio__region_covers(const region *x, const uint64_t *cc) {
    const lumio_zarr_info *info = &x->m->info;
    for (unsigned d = 0; d < info->ndim; d++) {
        uint64_t co = cc[d] * info->chunks[d];
        uint64_t ce = LUMIO_MIN(co + info->chunks[d], info->shape[d]);
        if (co < x->start[d] || ce > x->start[d] + x->shape[d]) return false;
    }
    return true;
}

void lumio__zarr_fill_chunk(const zarr_meta *m, uint8_t *chunk) {
    unsigned isz = m->info.itemsize;
    bool zero = true;
    for (unsigned i = 0; i < isz; i++) zero &= m->info.fill[i] == 0;
    if (zero) {
        memset(chunk, 0, m->chunk_bytes);
        return;
    }
    for (uint64_t k = 0; k < m->chunk_bytes / isz; k++) memcpy(chunk + k * isz, m->info.fill, isz);
}

/* Copy n bytes to dst; the whole cache lines inside it with streaming
 * (non-temporal) stores, which write them without reading them first. A
 * line only partly streamed costs far more than it saves (into a numpy
 * array, 16-byte aligned, a whole-array read took 0.32 s instead of 0.17),
 * so the partial lines at either end are copied as usual. */
static void put_run(uint8_t *dst, const uint8_t *src, size_t n, bool stream) {
#ifdef __SSE2__
    size_t head = (size_t)(-(uintptr_t)dst & 63);
    if (stream && n >= head + 64) {
        memcpy(dst, src, head);
        size_t body = (n - head) & ~(size_t)63;
        for (size_t i = head; i < head + body; i += 16)
            _mm_stream_si128((__m128i *)(dst + i), _mm_loadu_si128((const __m128i *)(src + i)));
        memcpy(dst + head + body, src + head + body, n - head - body);
        return;
    }
#endif
    (void)stream;
    memcpy(dst, src, n);
}

static void copy(const region *x, const uint64_t *cc, uint8_t *chunk, bool to_buf) {
    const lumio_zarr_info *info = &x->m->info;
    unsigned nd = info->ndim, isz = info->itemsize;
    if (nd == 0) {
        if (to_buf)
            memcpy(x->buf, chunk ? chunk : info->fill, isz);
        else
            memcpy(chunk, x->buf, isz);
        return;
    }
    uint64_t clo[LUMIO_ZARR_MAX_DIMS], rlo[LUMIO_ZARR_MAX_DIMS], ext[LUMIO_ZARR_MAX_DIMS];
    for (unsigned d = 0; d < nd; d++) {
        uint64_t co = cc[d] * info->chunks[d];
        uint64_t a = LUMIO_MAX(co, x->start[d]);
        uint64_t b = LUMIO_MIN(co + info->chunks[d], x->start[d] + x->shape[d]);
        clo[d] = a - co;
        rlo[d] = a - x->start[d];
        ext[d] = b - a;
    }
    unsigned last = nd - 1;
    uint64_t run = ext[last];
    bool contiguous = !info->fortran_order || nd == 1;
    bool zero_fill = true;
    for (unsigned i = 0; i < isz; i++) zero_fill &= info->fill[i] == 0;
    uint64_t step = x->cstride[last] * isz;
    uint64_t idx[LUMIO_ZARR_MAX_DIMS] = {0};
    for (;;) {
        uint64_t roff = 0, coff = 0;
        for (unsigned d = 0; d < nd; d++) {
            roff += (rlo[d] + idx[d]) * x->rstride[d];
            coff += (clo[d] + idx[d]) * x->cstride[d];
        }
        uint8_t *r = x->buf + roff * isz;
        if (to_buf && !chunk) {
            if (zero_fill)
                memset(r, 0, run * isz);
            else
                for (uint64_t k = 0; k < run; k++) memcpy(r + k * isz, info->fill, isz);
        } else if (contiguous) {
            if (to_buf)
                put_run(r, chunk + coff * isz, run * isz, x->stream);
            else
                memcpy(chunk + coff * isz, r, run * isz);
        } else {
            uint8_t *c = chunk + coff * isz;
            if (to_buf)
                for (uint64_t k = 0; k < run; k++) memcpy(r + k * isz, c + k * step, isz);
            else
                for (uint64_t k = 0; k < run; k++) memcpy(c + k * step, r + k * isz, isz);
        }
        /* The next run: an odometer over every dimension but the last. */
        unsigned d = last;
        while (d-- > 0) {
            if (++idx[d] < ext[d]) break;
            idx[d] = 0;
        }
        if (d == (unsigned)-1) break;
    }
#ifdef __SSE2__
    if (to_buf && x->stream) _mm_sfence(); /* the streamed stores, before the handoff */
#endif
}

uint64_t lumio__region_chunk_need(const region *x, const uint64_t *cc) {
    const lumio_zarr_info *info = &x->m->info;
    uint64_t last = 0;
    for (unsigned d = 0; d < info->ndim; d++) {
        uint64_t co = cc[d] * info->chunks[d];
        uint64_t b = LUMIO_MIN(co + info->chunks[d], x->start[d] + x->shape[d]);
        last += (b - 1 - co) * x->cstride[d];
    }
    return (last + 1) * info->itemsize;
}

void lumio__region_to_buf(const region *x, const uint64_t *cc, const uint8_t *chunk) {
    copy(x, cc, (uint8_t *)chunk, true);
}

void lumio__region_to_chunk(const region *x, const uint64_t *cc, uint8_t *chunk) {
    copy(x, cc, chunk, false);
}

void lumio__zarr_chunk_key(const lumio_zarr *z, const uint64_t *cc, char *buf, size_t cap) {
    const zarr_meta *m = &z->m;
    size_t n = 0;
    if (m->v3_c)
        buf[n++] = 'c';
    else if (m->info.ndim == 0)
        buf[n++] = '0';
    for (unsigned d = 0; d < m->info.ndim && n + 24 < cap; d++) {
        if (d > 0 || m->v3_c) buf[n++] = m->sep;
        n += (size_t)snprintf(buf + n, cap - n, "%llu", (unsigned long long)cc[d]);
    }
    buf[n] = 0;
}
