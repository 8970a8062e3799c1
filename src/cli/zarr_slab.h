/* Slabs of a Zarr region, for moving it in C order with bounded memory
 * (zarr cat, zarr create --from, zarr bench --pattern all), and exact sizes
 * of arrays too large for 64 bits (zarr info). */
#ifndef LUMIO_CLI_ZARR_SLAB_H
#define LUMIO_CLI_ZARR_SLAB_H

#include <lumio/zarr.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* The largest slab, where the chunk layout allows: a whole row of chunks
 * along the first dimension when it fits, as before. */
#define ZARR_SLAB_CAP ((uint64_t)256 << 20)

/* Each slab is one contiguous run of the region's C-order bytes: the
 * dimensions before k at one index, dimension k a range, the ones after it
 * whole. k is the first dimension whose chunk row fits the cap; when it is
 * not the first, slabs start at one chunk along k and double, so bytes come
 * out at once even from an array of 2^124 missing chunks. */
typedef struct zarr_slabs {
    unsigned nd, k;
    bool aligned; /* ranges along k end at chunk boundaries */
    bool done;
    uint64_t start[LUMIO_ZARR_MAX_DIMS], shape[LUMIO_ZARR_MAX_DIMS];
    uint64_t chunk;   /* the chunk extent along k */
    uint64_t unit;    /* bytes of one index along k */
    uint64_t step;    /* indices along k in the next slab (before alignment) */
    uint64_t maxstep; /* and at most */
    uint64_t pos[LUMIO_ZARR_MAX_DIMS];
    unsigned itemsize;
} zarr_slabs;

/* Over the region start/shape of an array of itemsize-byte elements read
 * over a grid of `chunks` (a sharded array's inner chunks). */
void zarr_slabs_init(zarr_slabs *s, unsigned nd, unsigned itemsize, const uint64_t *chunks,
                     const uint64_t *start, const uint64_t *shape, uint64_t cap);
/* The bytes a buffer needs for the largest slab (0: the region is empty). */
uint64_t zarr_slabs_max_bytes(const zarr_slabs *s);
/* The next slab's start and shape and its bytes; false when none is left. */
bool zarr_slabs_next(zarr_slabs *s, uint64_t *start, uint64_t *shape, uint64_t *bytes);

/* Each slab in turn, in one buffer of the largest slab's bytes:
 * fn(arg, start, shape, buf, bytes) until it returns non-zero (an exit
 * status, say), which is returned; -ENOMEM, without a call, when the buffer
 * cannot be had. */
typedef int (*zarr_slab_fn)(void *arg, const uint64_t *start, const uint64_t *shape, void *buf,
                            uint64_t bytes);
int zarr_slabs_each(zarr_slabs *s, zarr_slab_fn fn, void *arg);

/* Buffers of slabs and batches: mapped, and given back whole when freed. */
void *zarr_buf_alloc(uint64_t n);
void zarr_buf_free(void *p, uint64_t n);

/* The exact product of n factors and a multiplier, in decimal (for sizes
 * past 2^64); returns out. */
char *zarr_big_product(const uint64_t *v, unsigned n, uint64_t mul, char *out, size_t cap);
/* The same product as a double (for ratios). */
double zarr_product_double(const uint64_t *v, unsigned n, uint64_t mul);

#endif
