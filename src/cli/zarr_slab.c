/* Slabs of a Zarr region and exact sizes past 2^64: see zarr_slab.h. */
#include "cli/zarr_slab.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <errno.h>
#include <string.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))

void zarr_slabs_init(zarr_slabs *s, unsigned nd, unsigned itemsize, const uint64_t *chunks,
                     const uint64_t *start, const uint64_t *shape, uint64_t cap) {
    memset(s, 0, sizeof *s);
    s->nd = nd;
    s->itemsize = itemsize;
    memcpy(s->start, start, nd * sizeof *start);
    memcpy(s->shape, shape, nd * sizeof *shape);
    for (unsigned d = 0; d < nd; d++) s->done |= shape[d] == 0;
    if (nd == 0 || s->done) { /* one element, or nothing */
        s->unit = itemsize;
        return;
    }
    /* unit[d]: bytes of one index along d, the dimensions after it whole
     * (UINT64_MAX: more than 64 bits can say). */
    uint64_t unit[LUMIO_ZARR_MAX_DIMS];
    unit[nd - 1] = itemsize;
    for (unsigned d = nd - 1; d-- > 0;)
        if (__builtin_mul_overflow(unit[d + 1], shape[d + 1], &unit[d])) unit[d] = UINT64_MAX;
    s->k = nd - 1;
    for (unsigned d = 0; d < nd; d++) {
        uint64_t row;
        if (!__builtin_mul_overflow(unit[d], MIN(chunks[d], shape[d]), &row) && row <= cap) {
            s->k = d;
            s->aligned = true;
            break;
        }
    }
    s->unit = unit[s->k];
    s->chunk = chunks[s->k];
    s->maxstep = cap / s->unit ? cap / s->unit : 1;
    if (s->aligned && s->maxstep >= s->chunk) s->maxstep -= s->maxstep % s->chunk;
    /* The first dimension: one chunk row at a time (as before); deeper:
     * from one chunk, doubling. */
    s->step = s->aligned ? s->chunk : s->maxstep;
    if (s->k == 0) s->maxstep = s->step;
}

uint64_t zarr_slabs_max_bytes(const zarr_slabs *s) {
    if (s->done) return 0;
    if (s->nd == 0) return s->unit;
    return MIN(s->maxstep, s->shape[s->k]) * s->unit;
}

bool zarr_slabs_next(zarr_slabs *s, uint64_t *start, uint64_t *shape, uint64_t *bytes) {
    if (s->done) return false;
    if (s->nd == 0) {
        s->done = true;
        *bytes = s->unit;
        return true;
    }
    unsigned k = s->k;
    for (unsigned d = 0; d < s->nd; d++) {
        start[d] = s->start[d] + (d <= k ? s->pos[d] : 0);
        shape[d] = d < k ? 1 : s->shape[d];
    }
    uint64_t first = start[k], left = s->shape[k] - s->pos[k];
    uint64_t take = s->step;
    if (s->aligned) take -= first % s->chunk; /* to the chunk boundary */
    take = MIN(take, left);
    shape[k] = take;
    *bytes = take * s->unit;
    if (s->step < s->maxstep) s->step = MIN(2 * s->step, s->maxstep);
    s->pos[k] += take;
    if (s->pos[k] == s->shape[k]) { /* the odometer over the dimensions before k */
        s->pos[k] = 0;
        unsigned d = k;
        while (d-- > 0) {
            if (++s->pos[d] < s->shape[d]) break;
            s->pos[d] = 0;
        }
        if (d == (unsigned)-1) s->done = true;
    }
    return true;
}

int zarr_slabs_each(zarr_slabs *s, zarr_slab_fn fn, void *arg) {
    uint64_t cap = zarr_slabs_max_bytes(s), bytes;
    void *buf = cap ? zarr_buf_alloc(cap) : NULL;
    if (cap && !buf) return -ENOMEM;
    uint64_t start[LUMIO_ZARR_MAX_DIMS], shape[LUMIO_ZARR_MAX_DIMS];
    int rc = 0;
    while (rc == 0 && zarr_slabs_next(s, start, shape, &bytes))
        rc = fn(arg, start, shape, buf, bytes);
    zarr_buf_free(buf, cap);
    return rc;
}

/* Slabs as numpy makes its arrays on Linux: from 4 MiB up a mapping of
 * their own with transparent huge pages asked for, so that copying chunk
 * rows into many pages misses the TLB less (4-7% on a whole-array read).
 * Under AddressSanitizer always malloc'd, so that their bounds are checked. */
#if defined(__SANITIZE_ADDRESS__)
#define SLAB_MAPPED UINT64_MAX
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_MAPPED UINT64_MAX
#endif
#endif
#ifndef SLAB_MAPPED
#define SLAB_MAPPED (4ull << 20)
#endif

void *zarr_buf_alloc(uint64_t n) {
    if (n > SIZE_MAX) return NULL;
    if (n < SLAB_MAPPED) return malloc(n ? (size_t)n : 1);
    void *p = mmap(NULL, (size_t)n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    (void)madvise(p, (size_t)n, MADV_HUGEPAGE); /* a hint: refused where THP is off */
    return p;
}

void zarr_buf_free(void *p, uint64_t n) {
    if (!p) return;
    if (n < SLAB_MAPPED)
        free(p);
    else
        munmap(p, (size_t)n);
}

/* Little-endian 32-bit limbs: 32 dimensions of 64 bits and a multiplier. */
enum { LIMBS = 2 * LUMIO_ZARR_MAX_DIMS + 4 };

char *zarr_big_product(const uint64_t *v, unsigned n, uint64_t mul, char *out, size_t cap) {
    uint32_t x[LIMBS] = {0};
    x[0] = 1;
    for (unsigned i = 0; i <= n; i++) {
        uint64_t f = i < n ? v[i] : mul;
        uint32_t lo = (uint32_t)f, hi = (uint32_t)(f >> 32);
        uint32_t y[LIMBS] = {0};
        for (unsigned a = 0; a < LIMBS; a++) {
            unsigned __int128 carry = 0;
            for (unsigned b = 0; b < 2 && a + b < LIMBS; b++) {
                unsigned __int128 t = (unsigned __int128)x[a] * (b ? hi : lo) + y[a + b] + carry;
                y[a + b] = (uint32_t)t;
                carry = t >> 32;
            }
            for (unsigned c = a + 2; carry && c < LIMBS; c++) {
                unsigned __int128 t = (unsigned __int128)y[c] + carry;
                y[c] = (uint32_t)t;
                carry = t >> 32;
            }
        }
        memcpy(x, y, sizeof x);
    }
    /* Decimal digits by repeated division by 10^9. */
    char digits[LIMBS * 10 + 1];
    size_t nd = 0;
    bool zero;
    do {
        uint64_t rem = 0;
        zero = true;
        for (unsigned a = LIMBS; a-- > 0;) {
            uint64_t cur = rem << 32 | x[a];
            x[a] = (uint32_t)(cur / 1000000000u);
            rem = cur % 1000000000u;
            zero &= x[a] == 0;
        }
        for (int j = 0; j < 9; j++) {
            digits[nd++] = (char)('0' + rem % 10);
            rem /= 10;
        }
    } while (!zero);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    size_t o = 0;
    while (nd > 0 && o + 1 < cap) out[o++] = digits[--nd];
    out[o] = 0;
    return out;
}

double zarr_product_double(const uint64_t *v, unsigned n, uint64_t mul) {
    double p = (double)mul;
    for (unsigned i = 0; i < n; i++) p *= (double)v[i];
    return p;
}
