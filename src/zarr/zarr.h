/* The Zarr layer's internals: metadata (meta.c), codecs (codec.c), the store
 * and region reads (array.c). */
#ifndef LUMIO_ZARR_INTERNAL_H
#define LUMIO_ZARR_INTERNAL_H

#include "core/core.h"

#include <lumio/remote.h>
#include <lumio/zarr.h>

enum { MAX_CODECS = 8 };

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
    uint64_t chunk_bytes; /* decoded chunk size */
} zarr_meta;

/* meta.c: parse .zarray (format 2) or zarr.json (format 3). */
int zarr_parse_v2(const char *text, size_t len, zarr_meta *m, char *err, size_t errlen);
int zarr_parse_v3(const char *text, size_t len, zarr_meta *m, char *err, size_t errlen);
void zarr_describe_codecs(zarr_meta *m);

/* codec.c: decode one stored chunk into out (m->chunk_bytes, in the stored
 * byte order and the chunk's stored element order). */
int zarr_decode(const zarr_meta *m, const uint8_t *src, size_t len, uint8_t *out, char *err,
                size_t errlen);

struct lumio_zarr {
    char *base; /* the store's location, without a trailing '/' */
    bool remote;
    zarr_meta m;
    lumio_ring *ring;
    bool own_ring;
    unsigned max_inflight;
    char err[1024];
};

#endif
