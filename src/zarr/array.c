/* Arrays: opening (the metadata, from any store), chunk keys, and region
 * reads. A read submits the chunks it touches to the ring in batches; each
 * chunk is decoded on the worker pool as it lands and copied into its place
 * in the caller's buffer there, so no chunk waits for another and memory is
 * bounded by the batch, whatever the region's size. */
#include "zarr/zarr.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static __thread char open_error[1024];

void lumio_zarr_options_default(lumio_zarr_options *o) {
    memset(o, 0, sizeof *o);
    o->max_chunks_in_flight = 64;
}

const char *lumio_zarr_last_error(const lumio_zarr *z) {
    return z ? z->err : open_error;
}

void lumio_zarr_get_info(const lumio_zarr *z, lumio_zarr_info *info) {
    *info = z->m.info;
}

/* ---- the store ---------------------------------------------------------------- */

static char *join(const char *base, const char *key) {
    size_t n = strlen(base) + strlen(key) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", base, key);
    return p;
}

/* A whole key of the store, NUL-terminated. -ENOENT when it does not exist. */
static int fetch_key(lumio_zarr *z, const char *key, char **data, size_t *len) {
    char *path = join(z->base, key);
    if (!path) return -ENOMEM;
    lumio_range rg = {.offset = 0, .length = LUMIO_WHOLE};
    lumio_op op = {.kind = LUMIO_OP_GET, .path = path, .ranges = &rg, .nranges = 1};
    uint64_t g;
    int rc = lumio_ring_submit(z->ring, &op, 1, NULL, &g);
    *data = NULL;
    lumio_completion c[4];
    int n = 0;
    while (rc == 0 && (n = lumio_ring_wait(z->ring, g, c, 4, 1)) > 0)
        for (int i = 0; i < n; i++) {
            if (c[i].result < 0) {
                rc = c[i].result;
                snprintf(z->err, sizeof z->err, "%s", lumio_ring_last_error(z->ring));
            } else if (!*data) {
                *data = malloc(c[i].length + 1);
                if (!*data)
                    rc = -ENOMEM;
                else {
                    memcpy(*data, c[i].data, c[i].length);
                    (*data)[c[i].length] = 0;
                    *len = c[i].length;
                }
            }
            lumio_buffer_release(c[i].buffer);
        }
    if (rc < 0 && n < 0) snprintf(z->err, sizeof z->err, "%s", lumio_ring_last_error(z->ring));
    if (rc < 0) {
        free(*data);
        *data = NULL;
    }
    free(path);
    return rc;
}

/* The key of the chunk at grid coordinates `cc`: "1.0.3", "1/0/3" (v2 and
 * v3's v2 encoding), "c/1/0/3" (v3's default). */
static void chunk_key(const lumio_zarr *z, const uint64_t *cc, char *buf, size_t cap) {
    const zarr_meta *m = &z->m;
    size_t n = 0;
    if (m->v3_c) {
        buf[n++] = 'c';
    } else if (m->info.ndim == 0) {
        buf[n++] = '0';
    }
    for (unsigned d = 0; d < m->info.ndim && n + 24 < cap; d++) {
        if (d > 0 || m->v3_c) buf[n++] = m->sep;
        n += (size_t)snprintf(buf + n, cap - n, "%llu", (unsigned long long)cc[d]);
    }
    buf[n] = 0;
}

int lumio_zarr_open(lumio_zarr **out, const char *location, const lumio_zarr_options *opts) {
    *out = NULL;
    open_error[0] = 0;
    lumio_zarr_options o;
    if (opts)
        o = *opts;
    else
        lumio_zarr_options_default(&o);
    lumio_zarr *z = calloc(1, sizeof *z);
    if (!z || !(z->base = strdup(location))) {
        free(z);
        return -ENOMEM;
    }
    size_t bl = strlen(z->base);
    while (bl > 1 && z->base[bl - 1] == '/') z->base[--bl] = 0;
    z->remote = lumio_is_remote(location);
    z->max_inflight = o.max_chunks_in_flight ? o.max_chunks_in_flight : 64;
    int rc = 0;
    if (o.ring) {
        z->ring = o.ring;
    } else {
        lumio_ring_options ro;
        lumio_ring_options_default(&ro);
        rc = lumio_ring_create(&z->ring, &ro);
        z->own_ring = rc == 0;
        if (rc < 0) snprintf(z->err, sizeof z->err, "%s: cannot start the I/O engine", location);
    }
    char *text = NULL;
    size_t len = 0;
    char why[512] = "";
    if (rc == 0) {
        rc = fetch_key(z, ".zarray", &text, &len);
        if (rc == 0) {
            rc = zarr_parse_v2(text, len, &z->m, why, sizeof why);
            if (rc < 0) snprintf(z->err, sizeof z->err, "%s/.zarray: %s", z->base, why);
        } else if (rc == -ENOENT) {
            rc = fetch_key(z, "zarr.json", &text, &len);
            if (rc == 0) {
                rc = zarr_parse_v3(text, len, &z->m, why, sizeof why);
                if (rc < 0) snprintf(z->err, sizeof z->err, "%s/zarr.json: %s", z->base, why);
            } else if (rc == -ENOENT) {
                snprintf(z->err, sizeof z->err, "%s: not a Zarr array (no .zarray or zarr.json)",
                         z->base);
            }
        }
    }
    free(text);
    if (rc < 0) {
        snprintf(open_error, sizeof open_error, "%s", z->err);
        lumio_zarr_close(z);
        return rc;
    }
    *out = z;
    return 0;
}

void lumio_zarr_close(lumio_zarr *z) {
    if (!z) return;
    if (z->own_ring) lumio_ring_destroy(z->ring);
    free(z->base);
    free(z);
}

/* ---- copying a chunk into the region ----------------------------------------- */

typedef struct read_ctx {
    lumio_zarr *z;
    const uint64_t *start, *shape;
    uint8_t *buf;
    uint64_t lo[LUMIO_ZARR_MAX_DIMS], count[LUMIO_ZARR_MAX_DIMS]; /* chunk grid span */
    uint64_t rstride[LUMIO_ZARR_MAX_DIMS];                        /* region, elements */
    uint64_t cstride[LUMIO_ZARR_MAX_DIMS];                        /* chunk, elements */
    pthread_mutex_t mu;
    int error;
    char err[1024];
} read_ctx;

static void grid_coords(const read_ctx *x, uint64_t i, uint64_t *cc) {
    unsigned nd = x->z->m.info.ndim;
    for (unsigned d = nd; d-- > 0;) {
        cc[d] = x->lo[d] + i % x->count[d];
        i /= x->count[d];
    }
}

/* Copy the chunk at `cc` (decoded; NULL: the fill value) into the region. */
static void place(const read_ctx *x, const uint64_t *cc, const uint8_t *chunk) {
    const lumio_zarr_info *info = &x->z->m.info;
    unsigned nd = info->ndim, isz = info->itemsize;
    if (nd == 0) {
        memcpy(x->buf, chunk ? chunk : info->fill, isz);
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
    uint64_t idx[LUMIO_ZARR_MAX_DIMS] = {0};
    for (;;) {
        uint64_t roff = 0, coff = 0;
        for (unsigned d = 0; d < nd; d++) {
            roff += (rlo[d] + idx[d]) * x->rstride[d];
            coff += (clo[d] + idx[d]) * x->cstride[d];
        }
        uint8_t *dst = x->buf + roff * isz;
        if (!chunk) {
            if (zero_fill)
                memset(dst, 0, run * isz);
            else
                for (uint64_t k = 0; k < run; k++) memcpy(dst + k * isz, info->fill, isz);
        } else if (contiguous) {
            memcpy(dst, chunk + coff * isz, run * isz);
        } else {
            uint64_t step = x->cstride[last] * isz;
            const uint8_t *src = chunk + coff * isz;
            for (uint64_t k = 0; k < run; k++) memcpy(dst + k * isz, src + k * step, isz);
        }
        /* The next run: an odometer over every dimension but the last. */
        unsigned d = last;
        while (d-- > 0) {
            if (++idx[d] < ext[d]) break;
            idx[d] = 0;
        }
        if (d == (unsigned)-1) break;
    }
}

static void set_error(read_ctx *x, int code, const char *text) {
    pthread_mutex_lock(&x->mu);
    if (!x->error) {
        x->error = code;
        snprintf(x->err, sizeof x->err, "%s", text);
    }
    pthread_mutex_unlock(&x->mu);
}

/* On a worker: decode the chunk that landed and place it. */
static int on_chunk(void *arg, lumio_completion *c) {
    read_ctx *x = arg;
    uint64_t cc[LUMIO_ZARR_MAX_DIMS];
    grid_coords(x, c->user_data, cc);
    if (c->result == -ENOENT) { /* a chunk never written: the fill value */
        place(x, cc, NULL);
        return 0;
    }
    if (c->result < 0) return c->result; /* the ring names the key and why */
    const zarr_meta *m = &x->z->m;
    uint8_t *chunk = malloc(m->chunk_bytes ? m->chunk_bytes : 1);
    char why[256];
    int rc = chunk ? zarr_decode(m, c->data, c->length, chunk, why, sizeof why) : -ENOMEM;
    if (rc == 0) {
        place(x, cc, chunk);
    } else {
        char text[1024];
        snprintf(text, sizeof text, "%s: %s", c->path, chunk ? why : "out of memory");
        set_error(x, rc, text);
    }
    free(chunk);
    lumio_buffer_release(c->buffer);
    c->buffer = NULL;
    c->data = NULL;
    return rc;
}

int lumio_zarr_read(lumio_zarr *z, const uint64_t *start, const uint64_t *shape, void *buf) {
    const lumio_zarr_info *info = &z->m.info;
    unsigned nd = info->ndim;
    read_ctx x = {.z = z, .start = start, .shape = shape, .buf = buf};
    uint64_t total = 1;
    for (unsigned d = 0; d < nd; d++) {
        if (start[d] > info->shape[d] || shape[d] > info->shape[d] - start[d]) {
            snprintf(z->err, sizeof z->err,
                     "%s: region [%llu, %llu) of dimension %u is outside the shape %llu", z->base,
                     (unsigned long long)start[d], (unsigned long long)(start[d] + shape[d]), d,
                     (unsigned long long)info->shape[d]);
            return LUMIO_E_RANGE;
        }
        if (shape[d] == 0) return 0;
        x.lo[d] = start[d] / info->chunks[d];
        x.count[d] = (start[d] + shape[d] - 1) / info->chunks[d] - x.lo[d] + 1;
        total *= x.count[d];
    }
    for (unsigned d = nd; d-- > 0;)
        x.rstride[d] = d == nd - 1 ? 1 : x.rstride[d + 1] * shape[d + 1];
    if (info->fortran_order) /* the first dimension varies fastest in a chunk */
        for (unsigned d = 0; d < nd; d++)
            x.cstride[d] = d == 0 ? 1 : x.cstride[d - 1] * info->chunks[d - 1];
    else
        for (unsigned d = nd; d-- > 0;)
            x.cstride[d] = d == nd - 1 ? 1 : x.cstride[d + 1] * info->chunks[d + 1];
    pthread_mutex_init(&x.mu, NULL);
    lumio_group_options go;
    lumio_group_options_default(&go);
    go.compute = on_chunk;
    go.compute_arg = &x;
    /* Batches of ops, two groups in flight: the ring reads one while the
     * other is decoded and the caller's thread plans the next. */
    uint64_t batch = LUMIO_MAX(z->max_inflight / 2, 1);
    lumio_op *ops = calloc(batch, sizeof *ops);
    lumio_range *rgs = calloc(batch, sizeof *rgs);
    char(*paths)[1024] = malloc(batch * sizeof *paths);
    int rc = ops && rgs && paths ? 0 : -ENOMEM;
    uint64_t next = 0;
    unsigned groups = 0;
    while (rc == 0 && (next < total || groups > 0)) {
        while (rc == 0 && next < total && groups < 2) {
            uint64_t n = LUMIO_MIN(batch, total - next);
            for (uint64_t i = 0; i < n; i++) {
                uint64_t cc[LUMIO_ZARR_MAX_DIMS];
                grid_coords(&x, next + i, cc);
                char key[256];
                chunk_key(z, cc, key, sizeof key);
                snprintf(paths[i], sizeof paths[i], "%s/%s", z->base, key);
                rgs[i] = (lumio_range){.offset = 0, .length = LUMIO_WHOLE, .user_data = next + i};
                ops[i] = (lumio_op){.kind = LUMIO_OP_GET,
                                    .path = paths[i],
                                    .ranges = &rgs[i],
                                    .nranges = 1,
                                    .user_data = next + i};
            }
            uint64_t g;
            rc = lumio_ring_submit(z->ring, ops, n, &go, &g);
            if (rc < 0) snprintf(z->err, sizeof z->err, "%s", lumio_ring_last_error(z->ring));
            next += n;
            groups++;
        }
        lumio_completion c[64];
        int n = rc == 0 ? lumio_ring_wait(z->ring, LUMIO_ANY_GROUP, c, 64, 1) : 0;
        if (n < 0) {
            rc = n;
            snprintf(z->err, sizeof z->err, "%s", lumio_ring_last_error(z->ring));
        }
        for (int i = 0; i < n; i++) {
            if (c[i].result < 0 && !x.error) {
                x.error = c[i].result;
                snprintf(x.err, sizeof x.err, "%s", lumio_ring_last_error(z->ring));
            }
            lumio_buffer_release(c[i].buffer);
            if (c[i].flags & LUMIO_CQE_GROUP_END) groups--;
        }
        if (n == 0 && rc == 0) break; /* nothing left in the ring */
        if (x.error && rc == 0) rc = x.error;
    }
    /* After an error, what is still in flight is collected and dropped. */
    lumio_completion c[64];
    while (groups > 0) {
        int n = lumio_ring_wait(z->ring, LUMIO_ANY_GROUP, c, 64, 1);
        if (n <= 0) break;
        for (int i = 0; i < n; i++) {
            lumio_buffer_release(c[i].buffer);
            if (c[i].flags & LUMIO_CQE_GROUP_END) groups--;
        }
    }
    if (rc < 0 && x.error) snprintf(z->err, sizeof z->err, "%s", x.err);
    pthread_mutex_destroy(&x.mu);
    free(ops);
    free(rgs);
    free(paths);
    return rc;
}
