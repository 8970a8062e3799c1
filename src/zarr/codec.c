/* Chunk codecs: decompression with zstd, blosc, zlib and gzip, the v2 delta
 * filter, and the v3 crc32c checksum (ISA-L). A chunk decodes into exactly
 * chunk_bytes or is an error that says why. */
#include "zarr/zarr.h"

#include <blosc.h>
#include <pthread.h>
#include <errno.h>
#include <isa-l/crc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY /* the block-at-a-time API, for prefixes */
#include <zstd.h>

/* What each thread keeps from chunk to chunk: its zstd contexts (made on
 * first use: ZSTD_decompress() and ZSTD_compress() would make and clear
 * fresh ones every time, about a megabyte to compress), and a decoded
 * chunk's room (the ring's workers decode one chunk after another) up to
 * SCRATCH_KEEP; larger chunks come and go. */
enum { SCRATCH_KEEP = 16u << 20 };
typedef struct thread_kit {
    ZSTD_DCtx *dctx;
    ZSTD_CCtx *cctx;
    uint8_t *mem; /* NULL while lent out */
    size_t cap;
} thread_kit;
static pthread_key_t kit_key;
static pthread_once_t kit_once = PTHREAD_ONCE_INIT;
static void kit_free(void *p) {
    thread_kit *k = p;
    ZSTD_freeDCtx(k->dctx);
    ZSTD_freeCCtx(k->cctx);
    free(k->mem);
    free(k);
}
static void kit_init(void) {
    pthread_key_create(&kit_key, kit_free);
}
static thread_kit *thread_kit_get(void) {
    pthread_once(&kit_once, kit_init);
    thread_kit *k = pthread_getspecific(kit_key);
    if (!k && (k = calloc(1, sizeof *k))) pthread_setspecific(kit_key, k);
    return k;
}
static ZSTD_DCtx *thread_dctx(void) {
    thread_kit *k = thread_kit_get();
    if (k && !k->dctx) k->dctx = ZSTD_createDCtx();
    return k ? k->dctx : NULL;
}
static ZSTD_CCtx *thread_cctx(void) {
    thread_kit *k = thread_kit_get();
    if (k && !k->cctx) k->cctx = ZSTD_createCCtx();
    return k ? k->cctx : NULL;
}

void lumio__zarr_thread_cctx_swap(void **slot) {
    thread_kit *k = thread_kit_get();
    if (!k) return; /* out of memory: the slot keeps its own */
    void *mine = k->cctx;
    k->cctx = *slot;
    *slot = mine;
}

void lumio__zarr_cctx_free(void *cctx) {
    ZSTD_freeCCtx(cctx);
}

uint8_t *lumio__zarr_scratch_get(size_t bytes) {
    thread_kit *k = bytes <= SCRATCH_KEEP ? thread_kit_get() : NULL;
    if (!k) return malloc(LUMIO_MAX(bytes, 1));
    if (k->cap < bytes) {
        free(k->mem);
        k->cap = 0;
        if (!(k->mem = malloc(LUMIO_MAX(bytes, 1)))) return NULL;
        k->cap = bytes;
    }
    uint8_t *m = k->mem;
    k->mem = NULL; /* lent out until lumio__zarr_scratch_put */
    k->cap = 0;
    return m;
}

void lumio__zarr_scratch_put(uint8_t *mem, size_t bytes) {
    thread_kit *k = bytes <= SCRATCH_KEEP ? thread_kit_get() : NULL;
    if (!k || k->mem) {
        free(mem);
        return;
    }
    k->mem = mem;
    k->cap = bytes;
}

/* Decode zstd block by block until at least `need` bytes are out: 1 when
 * they are, 0 when the frame ended first or the input is not a plain single
 * frame (the caller then decodes the whole chunk, which says what is wrong). */
static int zstd_prefix(ZSTD_DCtx *d, const uint8_t *src, size_t len, uint8_t *out, size_t cap,
                       size_t need) {
    if (ZSTD_isError(ZSTD_decompressBegin(d))) return 0;
    size_t pos = 0, opos = 0;
    while (opos < need) {
        size_t n = ZSTD_nextSrcSizeToDecompress(d);
        if (n == 0 || n > len - pos) return 0;
        size_t got = ZSTD_decompressContinue(d, out + opos, cap - opos, src + pos, n);
        if (ZSTD_isError(got)) return 0;
        pos += n;
        opos += got;
    }
    return 1;
}

/* A blosc frame. Bytes after the length its header gives are ignored, as
 * numcodecs (and so zarr-python) does: z5 leaves them. */
static int blosc_decode(const uint8_t *src, size_t len, uint8_t *out, size_t cap, char *err,
                        size_t errlen) {
    size_t nbytes = 0, cbytes = 0, bsize = 0;
    if (len < BLOSC_MIN_HEADER_LENGTH) {
        snprintf(err, errlen, "blosc: %zu bytes, shorter than a blosc header (%d)", len,
                 BLOSC_MIN_HEADER_LENGTH);
        return LUMIO_E_CODEC;
    }
    blosc_cbuffer_sizes(src, &nbytes, &cbytes, &bsize);
    if (cbytes > len) {
        snprintf(err, errlen, "blosc: the header gives %zu compressed bytes, the chunk has %zu",
                 cbytes, len);
        return LUMIO_E_CODEC;
    }
    if (blosc_cbuffer_validate(src, cbytes, &nbytes) < 0) {
        snprintf(err, errlen, "blosc: not a valid blosc buffer");
        return LUMIO_E_CODEC;
    }
    if (nbytes != cap) {
        snprintf(err, errlen, "the chunk decodes to the wrong size (%zu bytes, expected %zu)",
                 nbytes, cap);
        return LUMIO_E_CODEC;
    }
    int n = blosc_decompress_ctx(src, out, cap, 1);
    if (n < 0 || (size_t)n != cap) {
        snprintf(err, errlen, "blosc: decompression failed (%d)", n);
        return LUMIO_E_CODEC;
    }
    return 0;
}

/* The zstd frames of src into out. A first frame that fills the chunk
 * exactly, followed by bytes that are not zstd, reads as that frame: the
 * trailing bytes cannot be part of the chunk. A frame without its content
 * size decodes the same as one with it. */
static size_t zstd_decode(ZSTD_DCtx *d, const uint8_t *src, size_t len, uint8_t *out, size_t cap) {
    size_t n = d ? ZSTD_decompressDCtx(d, out, cap, src, len) : ZSTD_decompress(out, cap, src, len);
    if (!ZSTD_isError(n)) return n;
    size_t first = ZSTD_findFrameCompressedSize(src, len);
    if (ZSTD_isError(first) || first >= len) return n;
    size_t m =
        d ? ZSTD_decompressDCtx(d, out, cap, src, first) : ZSTD_decompress(out, cap, src, first);
    return !ZSTD_isError(m) && m == cap ? m : n;
}

/* A zlib stream where gzip is declared (z5 writes these; zarr-python
 * refuses them), or the other way round: said as what was found. */
static bool deflate_wrapper_error(int id, const uint8_t *src, size_t len, char *err,
                                  size_t errlen) {
    bool gzip = len >= 2 && src[0] == 0x1f && src[1] == 0x8b;
    bool zlib = len >= 2 && (src[0] & 0x0f) == 8 && (src[0] >> 4) <= 7 &&
                ((unsigned)src[0] << 8 | src[1]) % 31 == 0;
    if (id == CODEC_GZIP && zlib)
        snprintf(err, errlen,
                 "gzip: the chunk is a zlib stream (header %02x %02x), not gzip (1f 8b), as z5 "
                 "writes it; zarr-python refuses it too",
                 src[0], src[1]);
    else if (id == CODEC_ZLIB && gzip)
        snprintf(err, errlen, "zlib: the chunk is a gzip stream (header 1f 8b), not zlib");
    else
        return false;
    return true;
}

/* Decompress into out (cap bytes); with need < cap, only the first `need`
 * bytes have to be right (the region uses no more of the chunk), which
 * zstd and uncompressed chunks take as leave to stop early. */
static int decompress(const codec *k, const uint8_t *src, size_t len, uint8_t *out, size_t cap,
                      size_t need, char *err, size_t errlen) {
    switch (k->id) {
    case CODEC_NONE:
        if (len != cap) break;
        memcpy(out, src, need);
        return 0;
    case CODEC_ZSTD: {
        ZSTD_DCtx *d = thread_dctx();
        if (d && need < cap && zstd_prefix(d, src, len, out, cap, need)) return 0;
        size_t n = zstd_decode(d, src, len, out, cap);
        if (ZSTD_isError(n)) {
            snprintf(err, errlen, "zstd: %s", ZSTD_getErrorName(n));
            return LUMIO_E_CODEC;
        }
        if (n != cap) break;
        return 0;
    }
    case CODEC_BLOSC:
        return blosc_decode(src, len, out, cap, err, errlen);
    case CODEC_ZLIB:
    case CODEC_GZIP: {
        if (deflate_wrapper_error(k->id, src, len, err, errlen)) return LUMIO_E_CODEC;
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        if (inflateInit2(&zs, k->id == CODEC_GZIP ? 16 + MAX_WBITS : MAX_WBITS) != Z_OK)
            return -ENOMEM;
        zs.next_in = (Bytef *)src;
        zs.next_out = out;
        int rc = Z_OK;
        /* In pieces: the z_stream counts are 32-bit. */
        while (rc == Z_OK) {
            size_t in_left = len - (size_t)((const uint8_t *)zs.next_in - src);
            size_t out_left = cap - (size_t)(zs.next_out - out);
            zs.avail_in = (uInt)LUMIO_MIN(in_left, 1u << 30);
            zs.avail_out = (uInt)LUMIO_MIN(out_left, 1u << 30);
            if (zs.avail_out == 0) {
                uint8_t extra;
                zs.next_out = &extra;
                zs.avail_out = 1;
                rc = inflate(&zs, Z_FINISH);
                if (zs.avail_out == 0) rc = Z_BUF_ERROR; /* more data than the chunk holds */
                break;
            }
            rc = inflate(&zs, Z_NO_FLUSH);
            if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;
        }
        size_t got = zs.total_out;
        inflateEnd(&zs);
        if (rc != Z_STREAM_END) {
            snprintf(err, errlen, "%s: %s", k->id == CODEC_GZIP ? "gzip" : "zlib",
                     rc == Z_BUF_ERROR ? "truncated or too long" : "corrupt data");
            return LUMIO_E_CODEC;
        }
        if (got != cap) break;
        return 0;
    }
    default:
        snprintf(err, errlen, "internal: not a compressor");
        return LUMIO_E_CODEC;
    }
    snprintf(err, errlen, "the chunk decodes to the wrong size (expected %zu bytes)", cap);
    return LUMIO_E_CODEC;
}

uint32_t lumio__zarr_crc32c(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    while (n) { /* ISA-L takes an int length: pieces of 1 GiB */
        size_t k = LUMIO_MIN(n, (size_t)1 << 30);
        c = crc32_iscsi((unsigned char *)p, (int)k, c);
        p += k;
        n -= k;
    }
    return c ^ 0xffffffffu;
}

static uint64_t load(const uint8_t *p, unsigned size, int big) {
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++) v |= (uint64_t)p[big ? size - 1 - i : i] << (8 * i);
    return v;
}

static void save(uint8_t *p, uint64_t v, unsigned size, int big) {
    for (unsigned i = 0; i < size; i++) p[big ? size - 1 - i : i] = (uint8_t)(v >> (8 * i));
}

/* numcodecs' Delta, in place: d[i] = x[i] - x[i-1] (d[0] = x[0]), in the
 * dtype's arithmetic. */
static void delta(const codec *k, uint8_t *p, size_t bytes, unsigned size) {
    size_t n = bytes / size;
    int big = k->delta_big;
    for (size_t i = n; i-- > 1;) {
        uint64_t a = load(p + i * size, size, big), b = load(p + (i - 1) * size, size, big);
        if (k->delta_type == LUMIO_ZARR_FLOAT32) {
            uint32_t ua = (uint32_t)a, ub = (uint32_t)b;
            float fa, fb;
            memcpy(&fa, &ua, 4);
            memcpy(&fb, &ub, 4);
            float d = fa - fb;
            memcpy(&ua, &d, 4);
            a = ua;
        } else if (k->delta_type == LUMIO_ZARR_FLOAT64) {
            double fa, fb;
            memcpy(&fa, &a, 8);
            memcpy(&fb, &b, 8);
            double d = fa - fb;
            memcpy(&a, &d, 8);
        } else {
            a -= b; /* wraps as the dtype does */
        }
        save(p + i * size, a, size, big);
    }
}

/* Undo numcodecs' Delta: out[i] = out[i-1] + d[i], in the dtype's arithmetic. */
static void undelta(const codec *k, uint8_t *p, size_t bytes, unsigned size) {
    size_t n = bytes / size;
    int big = k->delta_big;
    if (k->delta_type == LUMIO_ZARR_FLOAT32 || k->delta_type == LUMIO_ZARR_FLOAT64) {
        double acc = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t bits = load(p + i * size, size, big);
            double d;
            if (size == 4) {
                uint32_t b = (uint32_t)bits;
                float f;
                memcpy(&f, &b, 4);
                d = f;
                float a = (float)((i ? acc : 0) + d);
                acc = a;
                memcpy(&b, &a, 4);
                bits = b;
            } else {
                memcpy(&d, &bits, 8);
                acc = (i ? acc : 0) + d;
                memcpy(&bits, &acc, 8);
            }
            save(p + i * size, bits, size, big);
        }
        return;
    }
    uint64_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc += load(p + i * size, size, big); /* wraps as the dtype does */
        save(p + i * size, acc, size, big);
    }
}

int lumio__zarr_decode(const zarr_meta *m, const uint8_t *src, size_t len, uint8_t *out, char *err,
                       size_t errlen) {
    return lumio__zarr_decode_prefix(m, src, len, out, m->chunk_bytes, err, errlen);
}

int lumio__zarr_decode_prefix(const zarr_meta *m, const uint8_t *src, size_t len, uint8_t *out,
                              size_t need, char *err, size_t errlen) {
    size_t cap = m->chunk_bytes;
    need = LUMIO_MIN(need, cap);
    if (m->sharded) return lumio__zarr_decode_shard(m, src, len, out, err, errlen);
    if (m->info.format == 2) {
        int rc = decompress(&m->compressor, src, len, out, cap, need, err, errlen);
        if (rc) return rc;
        for (unsigned i = m->nfilters; i-- > 0;) /* a running sum: its prefix is its own */
            if (m->filters[i].id == CODEC_DELTA)
                undelta(&m->filters[i], out, need, m->info.itemsize);
        return 0;
    }
    /* v3: bytes->bytes codecs in reverse; at most one compressor (checked at
     * open), checksums peeled off around it. */
    const codec *comp = NULL;
    for (unsigned i = m->nchain; i-- > 0;) {
        const codec *k = &m->chain[i];
        if (k->id == CODEC_CRC32C) {
            if (len < 4) {
                snprintf(err, errlen, "crc32c: a chunk shorter than its checksum");
                return LUMIO_E_CHECKSUM;
            }
            uint32_t want = (uint32_t)load(src + len - 4, 4, 0);
            uint32_t got = lumio__zarr_crc32c(src, len - 4);
            if (want != got) {
                snprintf(err, errlen, "crc32c: checksum %08x, stored %08x", got, want);
                return LUMIO_E_CHECKSUM;
            }
            len -= 4;
        } else if (k->id == CODEC_ZSTD || k->id == CODEC_GZIP || k->id == CODEC_BLOSC ||
                   k->id == CODEC_ZLIB) {
            comp = k;
        }
    }
    codec none = {.id = CODEC_NONE};
    return decompress(comp ? comp : &none, src, len, out, cap, need, err, errlen);
}

/* ---- encoding ---------------------------------------------------------------- */

/* Make *buf (of *cap bytes, grown as needed) hold at least `need`. */
static int room(uint8_t **buf, size_t *cap, size_t need) {
    if (*cap >= need && *buf) return 0;
    uint8_t *p = realloc(*buf, LUMIO_MAX(need, 1));
    if (!p) return -ENOMEM;
    *buf = p;
    *cap = need;
    return 0;
}

/* Compress src into *out (*cap bytes, grown as needed). */
static int compress_chunk(const codec *k, const uint8_t *src, size_t len, uint8_t **out,
                          size_t *cap, size_t *outlen, char *err, size_t errlen) {
    switch (k->id) {
    case CODEC_NONE:
        if (room(out, cap, len)) return -ENOMEM;
        memcpy(*out, src, len);
        *outlen = len;
        return 0;
    case CODEC_ZSTD: {
        if (room(out, cap, ZSTD_compressBound(len))) return -ENOMEM;
        ZSTD_CCtx *c = thread_cctx();
        size_t n = c ? ZSTD_compressCCtx(c, *out, *cap, src, len, k->level)
                     : ZSTD_compress(*out, *cap, src, len, k->level);
        if (ZSTD_isError(n)) {
            snprintf(err, errlen, "zstd: %s", ZSTD_getErrorName(n));
            return LUMIO_E_CODEC;
        }
        *outlen = n;
        return 0;
    }
    case CODEC_BLOSC: {
        if (len > BLOSC_MAX_BUFFERSIZE) {
            snprintf(err, errlen, "blosc: a chunk of %zu bytes is too large", len);
            return LUMIO_E_CODEC;
        }
        if (room(out, cap, len + BLOSC_MAX_OVERHEAD)) return -ENOMEM;
        int n = blosc_compress_ctx(k->level, k->shuffle, k->typesize, len, src, *out, *cap,
                                   k->cname, 0, 1);
        if (n <= 0) {
            snprintf(err, errlen, "blosc: compression failed (%d)", n);
            return LUMIO_E_CODEC;
        }
        *outlen = (size_t)n;
        return 0;
    }
    case CODEC_ZLIB:
    case CODEC_GZIP: {
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        if (deflateInit2(&zs, k->level, Z_DEFLATED,
                         k->id == CODEC_GZIP ? 16 + MAX_WBITS : MAX_WBITS, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            return -ENOMEM;
        if (room(out, cap, deflateBound(&zs, (uLong)len) + 32)) {
            deflateEnd(&zs);
            return -ENOMEM;
        }
        zs.next_in = (Bytef *)src;
        zs.avail_in = (uInt)len;
        zs.next_out = *out;
        zs.avail_out = (uInt)*cap;
        int rc = deflate(&zs, Z_FINISH);
        *outlen = zs.total_out;
        deflateEnd(&zs);
        if (rc != Z_STREAM_END) {
            snprintf(err, errlen, "%s: compression failed", k->id == CODEC_GZIP ? "gzip" : "zlib");
            return LUMIO_E_CODEC;
        }
        return 0;
    }
    default:
        snprintf(err, errlen, "internal: not a compressor");
        return LUMIO_E_CODEC;
    }
}

int lumio__zarr_encode(const zarr_meta *m, uint8_t *chunk, uint8_t **out, size_t *outlen, char *err,
                       size_t errlen) {
    size_t cap = 0;
    *out = NULL;
    int rc = lumio__zarr_encode_into(m, chunk, out, &cap, outlen, err, errlen);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

int lumio__zarr_encode_into(const zarr_meta *m, uint8_t *chunk, uint8_t **out, size_t *cap,
                            size_t *outlen, char *err, size_t errlen) {
    size_t len = m->chunk_bytes;
    if (m->sharded) {
        uint8_t *shard;
        int rc = lumio__zarr_encode_shard(m, chunk, &shard, outlen, err, errlen);
        if (rc) return rc;
        free(*out);
        *out = shard;
        *cap = *outlen;
        return 0;
    }
    if (m->info.format == 2) {
        for (unsigned i = 0; i < m->nfilters; i++) /* in place: the chunk is the caller's scratch */
            if (m->filters[i].id == CODEC_DELTA)
                delta(&m->filters[i], chunk, len, m->info.itemsize);
        return compress_chunk(&m->compressor, chunk, len, out, cap, outlen, err, errlen);
    }
    const codec *comp = NULL;
    bool crc = false;
    for (unsigned i = 0; i < m->nchain; i++) {
        if (m->chain[i].id == CODEC_CRC32C) crc = true;
        if (m->chain[i].id == CODEC_ZSTD || m->chain[i].id == CODEC_GZIP ||
            m->chain[i].id == CODEC_BLOSC)
            comp = &m->chain[i];
    }
    codec none = {.id = CODEC_NONE};
    int rc = compress_chunk(comp ? comp : &none, chunk, len, out, cap, outlen, err, errlen);
    if (rc || !crc) return rc;
    if (room(out, cap, *outlen + 4)) return -ENOMEM;
    uint32_t c = lumio__zarr_crc32c(*out, *outlen);
    save(*out + *outlen, c, 4, 0);
    *outlen += 4;
    return 0;
}
