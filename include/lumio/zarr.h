/*
 * lumio Zarr: v2 and v3 arrays in a local directory, over HTTP(S) or in S3,
 * read through the ring engine (see docs/ZARR.md).
 *
 * Example: read a region of a 3-d array.
 *
 *     lumio_zarr *z;
 *     char err[LUMIO_ERROR_MAX];
 *     if (lumio_zarr_open(&z, "data/temperature.zarr", NULL) < 0)
 *         fprintf(stderr, "%s\n", lumio_zarr_last_error(NULL, err, sizeof err));
 *     lumio_zarr_info info;
 *     lumio_zarr_get_info(z, &info);
 *     uint64_t start[3] = {0, 100, 100}, shape[3] = {10, 64, 64};
 *     void *buf = malloc(10 * 64 * 64 * info.itemsize);
 *     if (lumio_zarr_read(z, start, shape, buf) < 0)
 *         fprintf(stderr, "%s\n", lumio_zarr_last_error(z, err, sizeof err));
 *     lumio_zarr_close(z);
 *
 * The whole program: examples/zarr_region.c (built with lumio).
 *
 * Threads: an array (and its series) is used by one thread at a time; its
 * reads decode on the ring's worker pool. lumio_zarr_last_error may be
 * called from any thread. Conventions shared by every pillar (names,
 * errors, options): docs/API.md.
 */
#ifndef LUMIO_ZARR_H
#define LUMIO_ZARR_H

#include "lumio.h"
#include "remote.h"
#include "ring.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LUMIO_ZARR_MAX_DIMS 32

typedef struct lumio_zarr lumio_zarr;

typedef enum lumio_zarr_type {
    LUMIO_ZARR_BOOL,
    LUMIO_ZARR_INT8,
    LUMIO_ZARR_INT16,
    LUMIO_ZARR_INT32,
    LUMIO_ZARR_INT64,
    LUMIO_ZARR_UINT8,
    LUMIO_ZARR_UINT16,
    LUMIO_ZARR_UINT32,
    LUMIO_ZARR_UINT64,
    LUMIO_ZARR_FLOAT32,
    LUMIO_ZARR_FLOAT64
} lumio_zarr_type;

typedef struct lumio_zarr_info {
    int format; /* 2 or 3 */
    unsigned ndim;
    uint64_t shape[LUMIO_ZARR_MAX_DIMS];
    uint64_t chunks[LUMIO_ZARR_MAX_DIMS];
    lumio_zarr_type type;
    unsigned itemsize;
    int big_endian;      /* the stored (and returned) byte order */
    int fortran_order;   /* chunks stored in F order */
    char dtype[16];      /* as numpy writes it: "<u2", "|b1", ">f8" */
    char codecs[256];    /* "blosc:lz4:5:shuffle", "zstd:3", "delta,zlib:1", ... */
    uint8_t fill[8];     /* the fill value, itemsize bytes in the array's byte order */
    char fill_value[40]; /* and as text: "0", "-1.5", "nan", "true" (as a create option takes it) */
    uint64_t nchunks;    /* chunks in the grid; UINT64_MAX: that many or more */
    /* A sharded array (v3 sharding_indexed): chunks is the shard shape and
     * this the shape of the chunks inside a shard; all 0 otherwise. */
    uint64_t inner_chunks[LUMIO_ZARR_MAX_DIMS];
    uint64_t reserved[8]; /* zero */
} lumio_zarr_info;

/* Options: zero is the default in every field (docs/API.md). */
typedef struct lumio_zarr_options {
    /* Reads go through this ring (NULL: the array makes one, with a remote
     * client of its own for URLs). */
    lumio_ring *ring;
    /* URLs go through this remote client (remote.h: its timeout, retries,
     * concurrency) when the array makes its own ring (NULL: the ring's own
     * client, with the defaults); the caller keeps it alive until the array
     * is closed. */
    lumio_remote *remote;
    /* Raw chunks in flight at once during a read (default 64). */
    unsigned max_chunks_in_flight;
    /* Keep up to this many bytes of decoded chunks, least recently used
     * evicted first, so reads that touch a chunk again (random crops) do
     * not read and decode it again (default 0: no cache). Writes through
     * this handle update it; changes made by others are not seen while a
     * chunk stays cached. */
    uint64_t cache_bytes;
    uint64_t reserved[8]; /* must be 0 */
} lumio_zarr_options;

/* Open an array: a directory, an http(s):// URL or s3://BUCKET/PREFIX. Reads
 * the metadata and checks that every data type, codec and layout in it is
 * supported (else LUMIO_E_UNSUPPORTED, naming it; malformed metadata is
 * LUMIO_E_FORMAT). A location holding no array is -ENOENT; if it is a
 * group, the text says so and names the group's arrays. Options NULL: the
 * defaults; the location is copied. The error text is in
 * lumio_zarr_last_error(NULL, ...) when opening fails. Any thread; the
 * array is then used by one thread at a time (the "array's thread" below;
 * it may change). */
LUMIO_API int lumio_zarr_open(lumio_zarr **out, const char *location, const lumio_zarr_options *o);

/* What the array is (shape, type, codecs). Any thread. */
LUMIO_API void lumio_zarr_get_info(const lumio_zarr *z, lumio_zarr_info *info);

/* Read the region [start, start + shape) into buf, in C order and the
 * array's byte order (itemsize x the region's element count). Missing
 * chunks read as the fill value. 0 or a negative code. The array's
 * thread. */
LUMIO_API int lumio_zarr_read(lumio_zarr *z, const uint64_t *start, const uint64_t *shape,
                              void *buf);

/* Read n regions of the same shape at once (random crops for training, for
 * example): starts holds n x ndim start indices, bufs n buffers. Up to 16
 * regions are in the ring together, so their chunks are read and decoded
 * side by side. 0 or the first error. The array's thread. */
LUMIO_API int lumio_zarr_read_batch(lumio_zarr *z, size_t n, const uint64_t *starts,
                                    const uint64_t *shape, void *const *bufs);

/* What reads through this handle have done so far. */
typedef struct lumio_zarr_stats {
    uint64_t cache_hits;   /* chunks placed from the cache */
    uint64_t cache_misses; /* chunks looked up and read from the store */
    uint64_t cache_bytes;  /* decoded bytes held now */
    uint64_t reserved[4];  /* zero */
} lumio_zarr_stats;

/* The counters so far. The array's thread. */
LUMIO_API void lumio_zarr_get_stats(const lumio_zarr *z, lumio_zarr_stats *s);

/* Creating arrays: in a directory, or at an http(s):// URL that takes PUT
 * (WebDAV) or in s3://BUCKET/PREFIX. Zero is the default in every field
 * but ndim, shape and chunks, which are required. */
typedef struct lumio_zarr_create_options {
    int format; /* 2 (default) or 3 */
    unsigned ndim;
    uint64_t shape[LUMIO_ZARR_MAX_DIMS];
    uint64_t chunks[LUMIO_ZARR_MAX_DIMS];
    const char *dtype;      /* as numpy writes it ("<u2", ">i8", "|b1") or by name ("uint16");
                               NULL: "<f8", numpy's default */
    const char *codec;      /* "zstd[:LEVEL]" (default zstd:3), "gzip[:L]", "zlib[:L]" (v2),
                               "blosc[:CNAME[:LEVEL[:noshuffle|shuffle|bitshuffle]]]", "none" */
    int fortran_order;      /* chunks stored in F order (v3: a transpose codec) */
    const char *fill_value; /* "7", "-1.5", "nan", "inf", "-inf", "true"; NULL: "0" (rechunk:
                               the source's) */
    char separator;         /* chunk key separator: 0 for the default ('.' in v2, '/' in v3) */
    int checksum;           /* v3: a crc32c codec after the compressor */
    /* v3: store the chunks in shards of this shape (a multiple of chunks in
     * every dimension; 0s: no sharding). The shard index gets a crc32c. */
    uint64_t shard[LUMIO_ZARR_MAX_DIMS];
    /* 0 (default): create writes the metadata, and the new array opens at
     * once, reading as the fill value until written. 1: the metadata is
     * written by lumio_zarr_commit, after the data: until then nothing
     * opens the array (a failed or killed fill leaves nothing that looks
     * complete), though this handle reads and writes it as usual. */
    int defer_metadata;
    /* The array's user attributes, a JSON object's text (NULL: none): v2's
     * .zattrs (written before the metadata), v3's "attributes". Not taken
     * by rechunk, which copies the source's. (The first field taken from the
     * reserved space, docs/API.md.) */
    const char *attrs;
    uint64_t reserved[7]; /* must be 0 */
} lumio_zarr_create_options;

/* Create an array (a directory is made if missing; an existing array there
 * is an error, -EEXIST: checked atomically in a directory, checked then
 * written in a store) and open it. The create options are required (their
 * ndim, shape and chunks); zo NULL: the defaults. Strings are copied. A
 * failure's text is in lumio_zarr_last_error(NULL, ...). Any thread. */
LUMIO_API int lumio_zarr_create(lumio_zarr **out, const char *path,
                                const lumio_zarr_create_options *o, const lumio_zarr_options *zo);

/* Write the metadata of an array created with defer_metadata, which makes
 * it open for everyone: do it once every region is written. Created in a
 * directory, the document is linked into place, -EEXIST if another array
 * was created there meanwhile; in a store both documents are checked absent,
 * then it is PUT. 0 at once for an array whose metadata is written. An array
 * closed without a commit stays unopenable, and the directory create made
 * for it (a local one) is removed with everything written into it. The
 * array's thread. */
LUMIO_API int lumio_zarr_commit(lumio_zarr *z);

/* Write the region [start, start + shape) from buf (C order, the array's
 * byte order). Chunks only partly covered are read, merged and rewritten.
 * Each chunk is written to a temporary name and renamed over the old one
 * (in a store: one PUT, which replaces the object whole): a writer killed
 * midway leaves every chunk whole, old or new. The array's thread. */
LUMIO_API int lumio_zarr_write(lumio_zarr *z, const uint64_t *start, const uint64_t *shape,
                               const void *buf);

/* Copy the array at src (any location) into a new array at dst (any
 * location that takes writes) with the chunks, codec, format, order and
 * sharding of opts (its shape and dtype are the source's, and its fill value
 * too when opts->fill_value is NULL). It works
 * in blocks of whole destination chunks that fit in `memory` bytes (at least
 * 32 MiB: the whole process, the program included), each read once and
 * written once. opts is required. zo (NULL: the defaults): its remote
 * client, if any, reads a URL source and writes a URL destination; its
 * other fields are not used (rechunk makes rings and buffers sized to the
 * budget, and caches nothing). progress (NULL: none) is told the bytes
 * written of the total. The error text is in lumio_zarr_last_error(NULL,
 * ...). Any thread; progress is called on it. */
LUMIO_API int lumio_zarr_rechunk(const char *src, const char *dst,
                                 const lumio_zarr_create_options *opts,
                                 const lumio_zarr_options *zo, uint64_t memory,
                                 lumio_progress_fn progress, void *arg);

/* Ordered streaming along one axis (a time series): slabs of `step` indices
 * of `axis` (0: the chunk size along it; for a sharded array, the inner
 * chunks') over the region start/shape (NULL: the whole array), delivered in
 * order, while the next `ahead` slabs (0: 4) are already being read and
 * decoded, out of order, on the workers (ahead is capped at 64). The array
 * must outlive the series, and is not used otherwise while the series is
 * open. The array's thread, for every series call. */
typedef struct lumio_zarr_series lumio_zarr_series;

LUMIO_API int lumio_zarr_series_open(lumio_zarr_series **out, lumio_zarr *z, unsigned axis,
                                     uint64_t step, const uint64_t *start, const uint64_t *shape,
                                     unsigned ahead);

/* The next slab: its bytes (C order over the slab's region, the array's byte
 * order; valid until the next call on the series or its close) and its
 * number. Returns its size, 0 at the end, or a negative code (the text in
 * lumio_zarr_last_error of the array). */
LUMIO_API int64_t lumio_zarr_series_next(lumio_zarr_series *s, const void **data, uint64_t *index);

/* Stop reading ahead and free the series (its last slab's data with it).
 * Accepts NULL. */
LUMIO_API void lumio_zarr_series_close(lumio_zarr_series *s);

/* The array's user attributes (v2 .zattrs, v3 "attributes") as compact
 * JSON text with sorted keys ("{}" when none), read on the first call;
 * *json lives until the array is closed. The array's thread. */
LUMIO_API int lumio_zarr_get_attrs(lumio_zarr *z, const char **json);

/* ---- groups ----------------------------------------------------------------
 * A group's format, user attributes and direct members (arrays and
 * subgroups), read once at open from its consolidated metadata (v2
 * `.zmetadata`, v3 inline in zarr.json) or, for a local directory without
 * it, from its subdirectories. Open a member as location + "/" + name. */
typedef struct lumio_zarr_group lumio_zarr_group;

typedef enum lumio_zarr_node { LUMIO_ZARR_ARRAY = 1, LUMIO_ZARR_GROUP = 2 } lumio_zarr_node;

/* Open the group at location (as lumio_zarr_open takes it; o NULL: the
 * defaults). An array there is -ENOTDIR, nothing -ENOENT; the text in
 * lumio_zarr_last_error(NULL, ...). Nothing of the store is kept open: the
 * group is what was read. Any thread; a group may be read from any thread. */
LUMIO_API int lumio_zarr_group_open(lumio_zarr_group **out, const char *location,
                                    const lumio_zarr_options *o);
/* 2 or 3. */
LUMIO_API int lumio_zarr_group_format(const lumio_zarr_group *g);
/* 1 when the members are known; 0 for a remote group without consolidated
 * metadata (its members can still be opened by name). */
LUMIO_API int lumio_zarr_group_listed(const lumio_zarr_group *g);
/* How many direct members, and the i-th (by name, sorted): its name, living
 * as long as the group, and its kind; NULL past the end. */
LUMIO_API size_t lumio_zarr_group_count(const lumio_zarr_group *g);
LUMIO_API const char *lumio_zarr_group_member(const lumio_zarr_group *g, size_t i,
                                              lumio_zarr_node *kind);
/* The group's user attributes as compact JSON text ("{}" when none), living
 * as long as the group. */
LUMIO_API const char *lumio_zarr_group_attrs(const lumio_zarr_group *g);
/* Free the group. Accepts NULL. */
LUMIO_API void lumio_zarr_group_close(lumio_zarr_group *g);

/* The text of the array's last failure (the chunk key, the store's
 * message), URL secrets redacted, copied into buf (LUMIO_ERROR_MAX bytes
 * suffice), which is returned; "" if none. With NULL: this thread's last
 * failed open, create or rechunk. Any thread. */
LUMIO_API char *lumio_zarr_last_error(const lumio_zarr *z, char *buf, size_t len);

/* Free the handle (and the ring it made); the stored array stays. An array
 * created with defer_metadata and never committed is removed (see
 * lumio_zarr_commit). Accepts NULL. The array's thread. */
LUMIO_API void lumio_zarr_close(lumio_zarr *z);

#ifdef __cplusplus
}
#endif

#endif
