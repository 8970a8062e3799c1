/* Ordered streaming along one axis: successive slabs delivered in order
 * while the slabs after them are already being read and decoded. Each slab
 * in flight is one ring group whose chunks decode on the workers into the
 * slab's own buffer; next() waits for the oldest group only. */
#include "zarr/zarr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct slab {
    region x;
    uint64_t start[LUMIO_ZARR_MAX_DIMS], shape[LUMIO_ZARR_MAX_DIMS];
    uint8_t *buf;
    uint64_t group;
    bool submitted;
} slab;

struct lumio_zarr_series {
    lumio_zarr *z;
    unsigned axis;
    uint64_t step;
    uint64_t start[LUMIO_ZARR_MAX_DIMS], shape[LUMIO_ZARR_MAX_DIMS]; /* the whole region */
    uint64_t nslabs, next_submit, next_deliver;
    unsigned ahead;
    slab *ring; /* ahead + 1 slots, by slab number modulo */
    uint64_t bytes_per_step;
    int error; /* sticky: a failed slab fails every later call */
};

static int submit_slab(lumio_zarr_series *s, uint64_t k) {
    lumio_zarr *z = s->z;
    slab *b = &s->ring[k % (s->ahead + 1)];
    memcpy(b->start, s->start, sizeof b->start);
    memcpy(b->shape, s->shape, sizeof b->shape);
    b->start[s->axis] = s->start[s->axis] + k * s->step;
    b->shape[s->axis] =
        LUMIO_MIN(s->step, s->start[s->axis] + s->shape[s->axis] - b->start[s->axis]);
    int rc = lumio__region_init(&b->x, z, zarr_grid(z), b->start, b->shape, b->buf);
    if (rc) return rc < 0 ? rc : 0;
    /* Each slab reads its shards' indexes afresh (as a read does), unless
     * the array keeps them (cache_bytes), where writes update them. */
    rc = zarr_submit_any(z, &b->x, z->index_cache, &b->group);
    if (rc == 0) {
        b->submitted = true;
    } else {
        snprintf(z->err, sizeof z->err, "%s", b->x.err);
        lumio__region_fini(&b->x);
    }
    return rc;
}

static int series_open(lumio_zarr_series **out, lumio_zarr *z, unsigned axis, uint64_t step,
                       const uint64_t *start, const uint64_t *shape, unsigned ahead) {
    const lumio_zarr_info *in = &z->m.info;
    if (axis >= in->ndim) {
        snprintf(z->err, sizeof z->err, "%s: axis %u of a %u-d array", z->base, axis, in->ndim);
        return -EINVAL;
    }
    lumio_zarr_series *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->z = z;
    s->axis = axis;
    s->step = step ? step : zarr_grid(z)->info.chunks[axis]; /* a sharded array: inner chunks */
    s->ahead = ahead ? LUMIO_MIN(ahead, 64u) : 4;
    for (unsigned d = 0; d < in->ndim; d++) {
        s->start[d] = start ? start[d] : 0;
        s->shape[d] = shape ? shape[d] : in->shape[d];
        if (s->start[d] > in->shape[d] || s->shape[d] > in->shape[d] - s->start[d]) {
            snprintf(z->err, sizeof z->err, "%s: the region is outside the array in dimension %u",
                     z->base, d);
            free(s);
            return LUMIO_E_RANGE;
        }
    }
    if (s->step > s->shape[axis]) s->step = LUMIO_MAX(s->shape[axis], 1);
    s->nslabs = s->shape[axis] / s->step + (s->shape[axis] % s->step != 0);
    bool big = __builtin_mul_overflow((uint64_t)in->itemsize, s->step, &s->bytes_per_step) ||
               s->bytes_per_step > (UINT64_MAX >> 1);
    for (unsigned d = 0; d < in->ndim; d++)
        if (d != axis) {
            if (big || (s->shape[d] && s->bytes_per_step > (UINT64_MAX >> 1) / s->shape[d])) {
                snprintf(z->err, sizeof z->err, "%s: a slab of more than 2^63 bytes", z->base);
                free(s);
                return -EOVERFLOW;
            }
            s->bytes_per_step *= s->shape[d];
        }
    s->ring = calloc(s->ahead + 1, sizeof *s->ring);
    int rc = s->ring ? 0 : -ENOMEM;
    for (unsigned i = 0; rc == 0 && i <= s->ahead; i++)
        if (!(s->ring[i].buf = lumio__large_alloc(s->bytes_per_step))) rc = -ENOMEM;
    if (rc < 0) {
        lumio_zarr_series_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

static int64_t series_next(lumio_zarr_series *s, const void **data, uint64_t *index) {
    lumio_zarr *z = s->z;
    if (s->error) return s->error;
    if (s->next_deliver == s->nslabs) return 0;
    /* Keep `ahead` slabs in flight beyond the one being delivered. */
    while (s->next_submit < s->nslabs && s->next_submit <= s->next_deliver + s->ahead) {
        int rc = submit_slab(s, s->next_submit);
        if (rc < 0) return s->error = rc;
        s->next_submit++;
    }
    slab *b = &s->ring[s->next_deliver % (s->ahead + 1)];
    int rc = 0;
    if (b->submitted) {
        lumio_completion c[64];
        int n;
        while ((n = lumio_ring_wait(z->ring, b->group, c, 64, 1)) > 0)
            for (int i = 0; i < n; i++) {
                if (c[i].result < 0)
                    lumio__region_error(&b->x, c[i].result,
                                        lumio_ring_last_error(z->ring, LUMIO__ERRBUF));
                lumio_buffer_release(c[i].buffer);
            }
        if (n < 0) {
            lumio__region_error(&b->x, n, lumio_ring_last_error(z->ring, LUMIO__ERRBUF));
            lumio__zarr_abandon(z, b->group);
        }
        rc = b->x.error;
        if (rc < 0) snprintf(z->err, sizeof z->err, "%s", b->x.err);
        lumio__region_fini(&b->x);
        b->submitted = false;
    }
    if (rc < 0) return s->error = rc;
    uint64_t rows = b->shape[s->axis];
    *data = b->buf;
    if (index) *index = s->next_deliver;
    s->next_deliver++;
    return (int64_t)(s->bytes_per_step / s->step * rows);
}

void lumio_zarr_series_close(lumio_zarr_series *s) {
    if (!s) return;
    /* Slabs still in flight: given up on (what is being read or decoded
     * finishes; nothing more starts). */
    for (unsigned i = 0; s->ring && i <= s->ahead; i++) {
        slab *b = &s->ring[i];
        if (b->submitted) {
            lumio__zarr_abandon(s->z, b->group);
            lumio__region_fini(&b->x);
        }
        lumio__large_free(b->buf, s->bytes_per_step);
    }
    free(s->ring);
    free(s);
}

int lumio_zarr_series_open(lumio_zarr_series **out, lumio_zarr *z, unsigned axis, uint64_t step,
                           const uint64_t *start, const uint64_t *shape, unsigned ahead) {
    if (!out) return -EINVAL;
    *out = NULL;
    if (!z) return -EINVAL;
    return lumio__zarr_published(
        z, lumio__zarr_begin(z) ? 0 : series_open(out, z, axis, step, start, shape, ahead));
}

int64_t lumio_zarr_series_next(lumio_zarr_series *s, const void **data, uint64_t *index) {
    if (!s) return -EINVAL;
    int64_t n = series_next(s, data, index);
    if (n < 0) lumio__zarr_published(s->z, (int)n);
    return n;
}
