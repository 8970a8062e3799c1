/* libFuzzer target: crafted Zarr metadata opened and read through the real
 * open and read paths (lumio_zarr_open, lumio_zarr_read, read_batch, and the
 * slabs zarr cat cuts a whole array into), with its chunks served from a
 * directory on tmpfs made for this process (/dev/shm, else $TMPDIR).
 *
 * Input:
 *   byte 0      flags: bit 0 v3 (zarr.json, else .zarray); bit 1 a group
 *               (v2: .zgroup, and the metadata as .zmetadata; v3: as is);
 *               bit 2 a decoded-chunk cache; bit 3 a batch of two regions
 *   bytes 1-8   the region's seed
 *   then        the metadata text, up to a NUL
 *   then        chunks: a 2-byte little-endian length and that many bytes,
 *               stored as the keys of the region's chunks in turn (shards
 *               for a sharded array).
 * Chunks are stored only where a decoded one is small (1 MiB): a larger
 * chunk shape is tried with its chunks missing (the fill value). */
#include "cli/zarr_slab.h"
#include "zarr/zarr.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { REGION_BYTES = 1 << 20, MAX_BLOBS = 64 };

static lumio_ring *ring;
static char root[256];
static unsigned long iteration;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st, (void)flag, (void)f;
    remove(p);
    return 0;
}

static void rm_tree(const char *p) {
    nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void cleanup(void) {
    if (root[0]) rm_tree(root);
    lumio_ring_close(ring);
}

static int setup(void) {
    const char *bases[] = {"/dev/shm", getenv("TMPDIR"), "/tmp"};
    for (size_t i = 0; i < 3 && !root[0]; i++) {
        if (!bases[i]) continue;
        snprintf(root, sizeof root, "%s/lumio-fuzz-zarr-XXXXXX", bases[i]);
        if (!mkdtemp(root)) root[0] = 0;
    }
    lumio_ring_options ro;
    ro = (lumio_ring_options){0};
    ro.workers = 2;
    if (!root[0] || lumio_ring_create(&ring, &ro) < 0) abort(); /* the harness, not the input */
    atexit(cleanup);
    return 0;
}

/* Write data to dir/key, making the directories a key like c/0/1 needs. */
static void put(const char *dir, const char *key, const uint8_t *data, size_t len) {
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir, key);
    for (char *s = path + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
        *s = 0;
        mkdir(path, 0700);
        *s = '/';
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return;
    if (len && write(fd, data, len) < 0) { /* a short tree is still a test */
    }
    close(fd);
}

static uint64_t next_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A small region: near the start, the end or anywhere in each dimension. */
static void pick_region(const lumio_zarr_info *in, uint64_t *seed, uint64_t *start,
                        uint64_t *shape) {
    uint64_t bytes = in->itemsize;
    for (unsigned d = 0; d < in->ndim; d++) {
        uint64_t n = in->shape[d], r = next_rand(seed);
        uint64_t len = n ? 1 + (r >> 8) % (n < 8 ? n : 8) : 0;
        switch (r & 3) {
        case 0:
            start[d] = 0;
            break;
        case 1:
            start[d] = n - len;
            break;
        default:
            start[d] = n - len ? (r >> 16) % (n - len + 1) : 0;
        }
        if (len && bytes * len > REGION_BYTES) len = 1;
        shape[d] = len;
        bytes *= len ? len : 1;
    }
}

/* The keys of the region's chunks (outer grid: shards when sharded) get
 * the blobs in turn. */
static void store_blobs(lumio_zarr *z, const char *dir, const uint64_t *start,
                        const uint64_t *shape, const uint8_t *p, size_t n) {
    const lumio_zarr_info *in = &z->m.info;
    uint64_t lo[LUMIO_ZARR_MAX_DIMS], cnt[LUMIO_ZARR_MAX_DIMS], cc[LUMIO_ZARR_MAX_DIMS];
    for (unsigned d = 0; d < in->ndim; d++) {
        if (!shape[d]) return;
        lo[d] = start[d] / in->chunks[d];
        cnt[d] = (start[d] + shape[d] - 1) / in->chunks[d] - lo[d] + 1;
    }
    for (unsigned i = 0; i < MAX_BLOBS && n >= 2; i++) {
        size_t len = (size_t)p[0] | (size_t)p[1] << 8;
        p += 2, n -= 2;
        if (len > n) len = n;
        uint64_t k = i;
        for (unsigned d = in->ndim; d-- > 0;) {
            cc[d] = lo[d] + k % cnt[d];
            k /= cnt[d];
        }
        char key[256];
        lumio__zarr_chunk_key(z, cc, key, sizeof key);
        put(dir, key, p, len);
        p += len, n -= len;
    }
}

/* The first slabs of a whole-array `zarr cat`, in a buffer sized as the
 * CLI sizes it. */
static void cat_slabs(lumio_zarr *z, const lumio_zarr_info *in) {
    uint64_t start[LUMIO_ZARR_MAX_DIMS] = {0}, s0[LUMIO_ZARR_MAX_DIMS], n0[LUMIO_ZARR_MAX_DIMS];
    zarr_slabs sl;
    zarr_slabs_init(&sl, in->ndim, in->itemsize, in->chunks, start, in->shape, 64 << 10);
    uint64_t cap = zarr_slabs_max_bytes(&sl), bytes;
    if (!cap || cap > REGION_BYTES) return;
    uint8_t *buf = malloc(cap);
    for (int i = 0; buf && i < 3 && zarr_slabs_next(&sl, s0, n0, &bytes); i++)
        if (lumio_zarr_read(z, s0, n0, buf) < 0) break;
    free(buf);
}

static void read_array(lumio_zarr *z, const char *dir, uint64_t seed, bool batch,
                       const uint8_t *blobs, size_t nblobs) {
    lumio_zarr_info in;
    lumio_zarr_get_info(z, &in);
    uint64_t start[2][LUMIO_ZARR_MAX_DIMS], shape[LUMIO_ZARR_MAX_DIMS];
    pick_region(&in, &seed, start[0], shape);
    for (unsigned d = 0; d < in.ndim; d++) /* a second region of the same shape */
        start[1][d] = in.shape[d] - shape[d] ? next_rand(&seed) % (in.shape[d] - shape[d] + 1) : 0;
    if (zarr_grid(z)->chunk_bytes <= REGION_BYTES)
        store_blobs(z, dir, start[0], shape, blobs, nblobs);
    uint64_t bytes = in.itemsize;
    for (unsigned d = 0; d < in.ndim; d++) bytes *= shape[d];
    uint8_t *buf = malloc(2 * (bytes ? bytes : 1));
    if (!buf) return;
    if (batch) {
        uint64_t starts[2 * LUMIO_ZARR_MAX_DIMS];
        memcpy(starts, start[0], in.ndim * sizeof(uint64_t));
        memcpy(starts + in.ndim, start[1], in.ndim * sizeof(uint64_t));
        void *bufs[2] = {buf, buf + bytes};
        lumio_zarr_read_batch(z, 2, starts, shape, bufs);
    } else {
        lumio_zarr_read(z, start[0], shape, buf);
    }
    free(buf);
    cat_slabs(z, &in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int once = -1;
    if (once < 0) once = setup();
    if (size < 10) return 0;
    uint8_t flags = data[0];
    uint64_t seed = 0;
    memcpy(&seed, data + 1, 8);
    const char *text = (const char *)data + 9;
    size_t rest = size - 9;
    const char *nul = memchr(text, 0, rest);
    size_t tlen = nul ? (size_t)(nul - text) : rest;
    const uint8_t *blobs = nul ? (const uint8_t *)nul + 1 : NULL;
    size_t nblobs = nul ? size - (size_t)(blobs - data) : 0;

    char dir[300];
    snprintf(dir, sizeof dir, "%s/%lu", root, iteration++);
    if (mkdir(dir, 0700) < 0) return 0;
    bool v3 = flags & 1, group = flags & 2;
    if (group && !v3) {
        static const char zgroup[] = "{\"zarr_format\": 2}";
        put(dir, ".zgroup", (const uint8_t *)zgroup, sizeof zgroup - 1);
        put(dir, ".zmetadata", (const uint8_t *)text, tlen);
    } else {
        put(dir, v3 ? "zarr.json" : ".zarray", (const uint8_t *)text, tlen);
    }
    lumio_zarr_options o;
    o = (lumio_zarr_options){0};
    o.ring = ring;
    o.max_chunks_in_flight = 8;
    if (flags & 4) o.cache_bytes = 1 << 20;
    lumio_zarr *z;
    if (lumio_zarr_open(&z, dir, &o) == 0) {
        read_array(z, dir, seed, flags & 8, blobs, nblobs);
        lumio_zarr_close(z);
    }
    rm_tree(dir);
    return 0;
}
