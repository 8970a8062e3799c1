/* The Zarr layer's internals. Calls run one way, down this list:
 *
 *   array.c series.c             the public API: open, read, read_batch,
 *   create.c write.c rechunk.c   series; create, commit, write, rechunk
 *   shard.c group.c              sharded region reads; a group opened
 *                                where an array was expected
 *   fetch.c                      chunks of a region through the ring,
 *                                decoded on the workers
 *   store.c                      an array's keys: read, written, checked
 *                                for (local directory, URL, S3)
 *
 * and from any of them into the helpers, which call none of the above:
 * metadata parsed (meta.c, with meta_json.c's field readers), emitted
 * (meta_dump.c) and its codecs described (meta_describe.c); fill values
 * converted (fill.c); codecs (codec.c); regions and chunk keys (box.c); the
 * chunk cache (cache.c) and the shard index caches (index_cache.c).
 * Within the public API, create.c opens what it makes through array.c, and
 * rechunk.c is built on the public functions. One loop is by design: a
 * shard is a codec of codecs, so codec.c hands a whole shard to shard.c,
 * which hands each inner chunk back to codec.c. */
#ifndef LUMIO_ZARR_INTERNAL_H
#define LUMIO_ZARR_INTERNAL_H

#include "core/core.h"

#include <lumio/remote.h>
#include <lumio/zarr.h>
#include <pthread.h>

enum { MAX_CODECS = 8 };

/* Limits on what metadata may ask for, refused at open (meta.c): a chunk
 * is decoded whole into memory, and a shard's index is read whole. */
#define ZARR_CHUNK_LIMIT (1ull << 40) /* bytes of a decoded chunk */
#define ZARR_INNER_LIMIT (1ull << 22) /* inner chunks in a shard: an index of 64 MiB */

typedef struct zarr_cache zarr_cache; /* cache.c */

typedef enum codec_id {
    CODEC_NONE,
    CODEC_ZSTD,
    CODEC_BLOSC,
    CODEC_ZLIB,
    CODEC_GZIP,
    CODEC_DELTA,     /* v2 filter */
    CODEC_BYTES,     /* v3: endian */
    CODEC_TRANSPOSE, /* v3: order */
    CODEC_CRC32C     /* v3 */
} codec_id;

typedef struct codec {
    codec_id id;
    int level;
    char cname[16]; /* blosc inner codec */
    int shuffle;    /* blosc: 0 none, 1 byte, 2 bit */
    unsigned typesize;
    int big_endian;                      /* bytes */
    unsigned order[LUMIO_ZARR_MAX_DIMS]; /* transpose */
    lumio_zarr_type delta_type;          /* delta: dtype (astype must be the same) */
    int delta_big;
} codec;

typedef struct zarr_meta {
    lumio_zarr_info info;
    char sep;                  /* chunk key separator: '.' or '/' */
    bool v3_c;                 /* v3 default encoding: keys start with "c" */
    codec filters[MAX_CODECS]; /* v2 filters, applied in order on write */
    unsigned nfilters;
    codec compressor; /* v2; CODEC_NONE for null */
    /* v3: array->array, array->bytes, bytes->bytes, in order. */
    codec chain[MAX_CODECS];
    unsigned nchain;
    uint64_t chunk_bytes; /* decoded chunk size, at most ZARR_CHUNK_LIMIT */
    bool grid_big;        /* more than 2^64 chunks (info.nchunks is UINT64_MAX) */
    /* v3 sharding_indexed: chunks are shards of inner chunks. */
    bool sharded;
    uint64_t inner[LUMIO_ZARR_MAX_DIMS]; /* inner chunk shape */
    codec ichain[MAX_CODECS];            /* inner codecs */
    unsigned nichain;
    bool index_crc;      /* the index ends with a crc32c */
    bool index_at_start; /* index_location "start" */
    uint64_t ninner;     /* inner chunks per shard */
} zarr_meta;

/* meta.c: parse .zarray (format 2) or zarr.json (format 3). */
int lumio__zarr_parse_v2(const char *text, size_t len, zarr_meta *m, char *err, size_t errlen);
int lumio__zarr_parse_v3(const char *text, size_t len, zarr_meta *m, char *err, size_t errlen);
/* meta_describe.c: m->info.codecs from m's codecs. */
void lumio__zarr_describe_codecs(zarr_meta *m);

/* codec.c: decode one stored chunk into out (m->chunk_bytes, in the stored
 * byte order and the chunk's stored element order). */
int lumio__zarr_decode(const zarr_meta *m, const uint8_t *src, size_t len, uint8_t *out, char *err,
                       size_t errlen);

/* codec.c: the same, where only the first `need` bytes of out must be
 * right (a region that ends inside the chunk): zstd stops after the block
 * holding them. A corrupt tail past them may go unnoticed; a full decode
 * (need >= chunk_bytes) checks the whole chunk. */
int lumio__zarr_decode_prefix(const zarr_meta *m, const uint8_t *src, size_t len, uint8_t *out,
                              size_t need, char *err, size_t errlen);

/* codec.c: CRC-32C (Castagnoli) of n bytes, as Zarr v3's crc32c codec and
 * shard indexes store it (ISA-L). */
uint32_t lumio__zarr_crc32c(const uint8_t *p, size_t n);

/* codec.c: encode one chunk (chunk_bytes, stored order) into a malloc'd
 * buffer. v2 filters (delta) are applied to chunk in place. */
int lumio__zarr_encode(const zarr_meta *m, uint8_t *chunk, uint8_t **out, size_t *outlen, char *err,
                       size_t errlen);

/* codec.c: the same into *out, a buffer of *cap bytes grown (realloc) as
 * needed, so one buffer serves chunk after chunk. */
int lumio__zarr_encode_into(const zarr_meta *m, uint8_t *chunk, uint8_t **out, size_t *cap,
                            size_t *outlen, char *err, size_t errlen);

/* codec.c: room for a decoded chunk, lent by this thread's scratch (kept
 * between chunks, up to 16 MiB); give it back with lumio__zarr_scratch_put. NULL
 * when out of memory. */
uint8_t *lumio__zarr_scratch_get(size_t bytes);
void lumio__zarr_scratch_put(uint8_t *mem, size_t bytes);

/* codec.c: swap this thread's zstd compression context with *slot (so a
 * context can outlive the thread that used it), and free one. */
void lumio__zarr_thread_cctx_swap(void **slot);
void lumio__zarr_cctx_free(void *cctx);

/* write.c: what one encoder keeps from batch to batch and write to write
 * (its thread comes and goes with each batch): a zstd context, the chunk it
 * assembles, the bytes it encodes into. */
typedef struct zarr_enc_kit {
    void *cctx;
    uint8_t *own;
    uint8_t *enc;
    size_t cap;
} zarr_enc_kit;

/* meta_dump.c: the metadata document of m (malloc'd JSON text). */
char *lumio__zarr_dump_meta(const zarr_meta *m);
/* meta.c: the v3 data_type of t ("uint16"). */
const char *lumio__zarr_v3_type_name(lumio_zarr_type t);
/* meta_describe.c: blosc's shuffle by name ("noshuffle", "shuffle",
 * "bitshuffle"). */
const char *lumio__zarr_shuffle_name(int s);

/* fill.c: the fill value (info->fill: itemsize bytes in the array's byte
 * order, info->type, ->itemsize, ->big_endian and ->dtype set) from the
 * metadata's JSON (absent or null: zero) or from text ("0", "-1.5", "nan",
 * "inf", "true"), errors in err naming the dtype; and back, as JSON ("NaN",
 * "Infinity" for floats), or as text that converts back to the same bytes
 * (NaN payloads aside). */
struct json_t;
int lumio__zarr_fill_from_json(const struct json_t *j, lumio_zarr_info *in, char *err,
                               size_t errlen);
int lumio__zarr_fill_from_text(const char *s, lumio_zarr_info *in, char *err, size_t errlen);
struct json_t *lumio__zarr_fill_to_json(const lumio_zarr_info *in);
void lumio__zarr_fill_to_text(const lumio_zarr_info *in, char *buf, size_t cap);

/* A region of the array being read or written, and the chunk grid span it
 * touches (box.c). */
typedef struct region {
    const lumio_zarr *z;
    const zarr_meta *m; /* the grid: the array's chunks, or a sharded array's inner chunks */
    const uint64_t *start, *shape;
    uint8_t *buf; /* C order */
    bool stream;  /* buf is larger than the caches: copy into it with streaming stores */
    uint64_t lo[LUMIO_ZARR_MAX_DIMS], count[LUMIO_ZARR_MAX_DIMS]; /* chunk grid span */
    uint64_t rstride[LUMIO_ZARR_MAX_DIMS];                        /* region, elements */
    uint64_t cstride[LUMIO_ZARR_MAX_DIMS];                        /* chunk, elements */
    uint64_t nchunks;
    uint64_t cache_gen; /* the chunk cache's generation when the read began */
    /* A sharded read: per shard of its span, the key and a hash of the
     * index its inner reads were planned with (malloc'd; lumio__region_fini). */
    uint64_t *shard_check;
    pthread_mutex_t mu; /* the first error */
    int error;
    char err[1024];
} region;

/* Check the region against the shape (LUMIO_E_RANGE, in z->err) and set up
 * the strides and grid span; 1 when the region is empty. */
int lumio__region_init(region *x, lumio_zarr *z, const zarr_meta *m, const uint64_t *start,
                       const uint64_t *shape, void *buf);
/* The index of the chunk at cc among the region's chunks (inverse of lumio__region_chunk). */
uint64_t lumio__region_index(const region *x, const uint64_t *cc);
void lumio__region_fini(region *x);
void lumio__region_error(region *x, int code, const char *text);
/* Grid coordinates of the region's i-th chunk (C order over the span). */
void lumio__region_chunk(const region *x, uint64_t i, uint64_t *cc);
/* Copy between the chunk at cc (decoded, stored element order) and the
 * region: into the region (chunk NULL: the fill value), or out of it. */
void lumio__region_to_buf(const region *x, const uint64_t *cc, const uint8_t *chunk);
void lumio__region_to_chunk(const region *x, const uint64_t *cc, uint8_t *chunk);
/* Bytes of the chunk at cc (stored element order) up to the last element the
 * region uses. */
uint64_t lumio__region_chunk_need(const region *x, const uint64_t *cc);
/* Whether the region covers all of the chunk at cc that lies in the array. */
bool lumio__region_covers(const region *x, const uint64_t *cc);
/* Fill a whole chunk buffer with the fill value. */
void lumio__zarr_fill_chunk(const zarr_meta *m, uint8_t *chunk);
/* The key of the chunk at cc ("1.0.3", "1/0/3", "c/1/0/3"). */
void lumio__zarr_chunk_key(const lumio_zarr *z, const uint64_t *cc, char *buf, size_t cap);

/* store.c: a whole key of the store, NUL-terminated (malloc'd). -ENOENT
 * when it does not exist. */
int lumio__zarr_fetch_key(lumio_zarr *z, const char *key, char **data, size_t *len);
/* store.c: write a key whole (a temporary name renamed over it, or a PUT);
 * on failure the text, naming the key, in err. */
int lumio__zarr_put_key(const lumio_zarr *z, const char *key, const void *data, size_t len,
                        char *err, size_t errlen);
/* store.c: a new array's metadata document of format at path (text NULL:
 * only check that it may go there): -EEXIST where an array of either format
 * is, or a local directory holding anything else. A local directory is made
 * if missing (*made says whether here). ring: the array's, or NULL (then
 * one of its own, reading through remote). */
int lumio__zarr_put_meta(const char *path, int format, const char *text, lumio_ring *ring,
                         lumio_remote *remote, bool *made, char *err, size_t errlen);
/* store.c: remove a local directory and all in it, unless it holds an
 * array's metadata (another creator committed one meanwhile). */
void lumio__zarr_remove_unless_array(const char *dir);
/* store.c: give up on group g: nothing more of it is read or decoded
 * (lumio_ring_cancel), and what is in flight is collected and dropped. */
void lumio__zarr_abandon(lumio_zarr *z, uint64_t g);

/* fetch.c: the compute stage of region reads: decode a chunk that landed
 * into `into` (its stored order), or, with NULL, into place in the region;
 * a failure is recorded in x with the key and the range. Releases the
 * buffer. lumio__zarr_on_chunk also reads a missing chunk as the fill value. */
int lumio__zarr_decode_landed(region *x, lumio_completion *c, uint8_t *into);
int lumio__zarr_on_chunk(void *arg, lumio_completion *c);
/* fetch.c: the region's chunk i placed from the cache (on the caller's
 * thread) instead of being read: true if it was there. */
bool lumio__zarr_cached(const region *x, uint64_t i);
/* fetch.c: read chunks of the region (indices first..first+n, or the n in
 * `which`) through the ring, running fn on each on the workers. */
int lumio__zarr_fetch_chunks(lumio_zarr *z, region *x, uint64_t first, uint64_t n,
                             lumio_compute_fn fn, const uint64_t *which);
/* fetch.c: submit every chunk of the region as one group of the ring, each
 * decoded into place on the workers; its id in *g (errors also in x). */
int lumio__zarr_submit_region(lumio_zarr *z, region *x, uint64_t *g);
/* fetch.c: n completions of a region's group taken: their buffers
 * released, the first failure kept in x (the ring's text for the last).
 * True when the group ended. */
bool lumio__zarr_take_completions(lumio_zarr *z, region *x, lumio_completion *c, int n);

/* shard.c: sharding_indexed. */
void lumio__zarr_inner_meta(const zarr_meta *m, zarr_meta *im);
int lumio__zarr_decode_shard(const zarr_meta *m, const uint8_t *src, size_t len, uint8_t *out,
                             char *err, size_t errlen);
int lumio__zarr_encode_shard(const zarr_meta *m, uint8_t *shard, uint8_t **out, size_t *outlen,
                             char *err, size_t errlen);
int lumio__zarr_read_sharded(lumio_zarr *z, const uint64_t *start, const uint64_t *shape,
                             void *buf);
/* shard.c: submit the region (over z->im) as one group of inner-chunk reads
 * decoded into place on the workers, its id in *g, after fetching the
 * indexes of its shards that ic (may be NULL) does not hold (and keeping
 * them there). Errors are also in x. */
int lumio__zarr_submit_sharded(lumio_zarr *z, region *x, zarr_cache *ic, uint64_t *g);
/* group.c: if the location is a group (v2 `.zgroup`; v3 the zarr.json text
 * given), say so in z->err, naming its arrays, and return true. */
bool lumio__zarr_group_error(lumio_zarr *z, const char *v3json, size_t len);

/* cache.c: the decoded-chunk cache (lumio_zarr_options.cache_bytes). Keys
 * are chunk indices in C order over a grid's chunks (lumio__zarr_chunk_linear;
 * a sharded array's inner chunks). */
zarr_cache *lumio__zarr_cache_new(uint64_t budget, uint64_t chunk_bytes, bool slots);
void lumio__zarr_cache_free(zarr_cache *c);
uint64_t lumio__zarr_chunk_linear(const zarr_meta *grid, const uint64_t *cc);
/* The data kept under key (and its size), pinned (eviction waits for the
 * unpin), or NULL when absent (a miss). */
typedef struct centry centry;
const uint8_t *lumio__zarr_cache_pin(zarr_cache *c, uint64_t key, uint64_t *bytes, centry **pin);
void lumio__zarr_cache_unpin(zarr_cache *c, centry *pin);
/* A chunk_bytes buffer to decode into and then add (or give back with
 * lumio__zarr_cache_release): a slot of a cache made with slots, evicting the least
 * recently used entry if every slot is held; NULL when none can be had (the
 * chunk is then not kept). Without slots, malloc'd. */
uint8_t *lumio__zarr_cache_buffer(zarr_cache *c);
void lumio__zarr_cache_release(zarr_cache *c, uint8_t *data);
/* Keep `bytes` of data from lumio__zarr_cache_buffer, or malloc'd (the cache owns it
 * from here, and lets it go at once if it does not fit; NULL data with 0
 * bytes is a valid entry),
 * read while the cache's generation was gen: dropped if a forget came
 * since. */
void lumio__zarr_cache_add(zarr_cache *c, uint64_t key, uint8_t *data, uint64_t bytes,
                           uint64_t gen);
uint64_t lumio__zarr_cache_gen(zarr_cache *c);
/* Forget the chunks of the grid that the region touches (they were written). */
void lumio__zarr_cache_forget(zarr_cache *c, const zarr_meta *grid, const uint64_t *start,
                              const uint64_t *shape);
void lumio__zarr_cache_stats(zarr_cache *c, uint64_t *hits, uint64_t *misses, uint64_t *bytes);
/* Forget one key. */
void lumio__zarr_cache_drop(zarr_cache *c, uint64_t key);

/* index_cache.c: the share of cache_bytes an array keeps for shard
 * indexes (0 for unsharded arrays), and a shard index cache of budget. */
uint64_t lumio__zarr_index_budget(const zarr_meta *m, uint64_t cache_bytes);
zarr_cache *lumio__zarr_index_cache_new(const zarr_meta *m, uint64_t budget);
/* index_cache.c: the shard index cache for a batch of reads: the array's
 * own, or (*own) a new one to free after it; NULL for unsharded arrays (or
 * out of memory). */
zarr_cache *lumio__zarr_index_cache(lumio_zarr *z, bool *own);

/* array.c: this thread's text of the last failed open or create. */
char *lumio__zarr_open_error(void);
/* At a public call's return: a failure's text (z->err, or with NULL the
 * thread's open_error) is published for lumio_zarr_last_error. Returns rc. */
int lumio__zarr_published(lumio_zarr *z, int rc);
/* At a public call's start: no text from an earlier failure is taken for
 * this one's. */
int lumio__zarr_begin(lumio_zarr *z);
/* -EINVAL (with the text) when either struct's reserved space is not zero. */
int lumio__zarr_check_reserved(const lumio_zarr_create_options *o, const lumio_zarr_options *zo);

struct lumio_zarr {
    char *base; /* the store's location, without a trailing '/' */
    bool remote;
    lumio_remote *rm;   /* remote: the ring's client, for writes (made on the first) */
    zarr_enc_kit *kits; /* writes: one per encoder (made on the first write) */
    unsigned nkits;
    zarr_meta m;
    zarr_meta im; /* sharded: the grid of inner chunks (lumio__zarr_inner_meta) */
    lumio_ring *ring;
    bool own_ring;
    unsigned max_inflight;
    zarr_cache *cache;       /* decoded chunks; NULL: no cache */
    zarr_cache *index_cache; /* sharded: shard indexes, beside the chunk cache */
    char err[1024]; /* the text of a failure being made (published by lumio__zarr_published) */
    lumio__err e;   /* the published text (docs/API.md) */
    /* A create whose metadata waits for lumio_zarr_commit: its document,
     * and whether create made the directory (removed if never committed). */
    char *pending_meta;
    int pending_format;
    bool made_dir;
    char *attrs; /* the user attributes as JSON, fetched on first ask (attrs.c) */
};

/* array.c: a handle on a store only (its location and ring, no metadata
 * read), for what is not an array: a group's documents. */
int lumio__zarr_open_store(lumio_zarr **out, const char *location, const lumio_zarr_options *o);
/* attrs.c: the user attributes of the node at z's store (format 2 or 3) as
 * compact JSON, malloc'd into *json ("{}" when none). */
int lumio__zarr_user_attrs(lumio_zarr *z, int format, char **json);

/* array.c: open the array at location; with meta (a document of that
 * format), the array it describes, which the store need not hold yet (a
 * create whose metadata is written last: pending_meta, closed without
 * commit, removes what create made). */
int lumio__zarr_open_meta(lumio_zarr **out, const char *location, const lumio_zarr_options *opts,
                          const char *meta, int format);

/* The grid regions are read over: the chunks, or a sharded array's inner
 * chunks. */
static inline const zarr_meta *zarr_grid(const lumio_zarr *z) {
    return z->m.sharded ? &z->im : &z->m;
}

/* The region (over zarr_grid(z)) as one group, sharded or not: here, not in
 * a file, so that neither fetch.c nor shard.c calls the other's way. */
static inline int zarr_submit_any(lumio_zarr *z, region *x, zarr_cache *ic, uint64_t *g) {
    return z->m.sharded ? lumio__zarr_submit_sharded(z, x, ic, g)
                        : lumio__zarr_submit_region(z, x, g);
}

#endif
