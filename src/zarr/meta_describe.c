/* An array's codecs described on one line, for people and for comparing
 * two arrays' layouts: lumio_zarr_info.codecs ("zstd:3", "delta,zlib:1",
 * "bytes:little,blosc:lz4:5:shuffle,crc32c",
 * "sharding(8x8:bytes:little,zstd:3),index:crc32c"). */
#include "zarr/zarr.h"

#include <stdio.h>
#include <string.h>

const char *lumio__zarr_shuffle_name(int s) {
    return s == 0 ? "noshuffle" : s == 2 ? "bitshuffle" : "shuffle";
}

static void append(char *buf, size_t cap, const char *s) {
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, "%s%s", n ? "," : "", s);
}

static void describe(const codec *k, char *s, size_t cap) {
    switch (k->id) {
    case CODEC_ZSTD:
        snprintf(s, cap, "zstd:%d", k->level);
        break;
    case CODEC_ZLIB:
        snprintf(s, cap, "zlib:%d", k->level);
        break;
    case CODEC_GZIP:
        snprintf(s, cap, "gzip:%d", k->level);
        break;
    case CODEC_BLOSC:
        snprintf(s, cap, "blosc:%s:%d:%s", k->cname, k->level,
                 lumio__zarr_shuffle_name(k->shuffle));
        break;
    case CODEC_DELTA:
        snprintf(s, cap, "delta");
        break;
    case CODEC_BYTES:
        snprintf(s, cap, "bytes:%s", k->big_endian ? "big" : "little");
        break;
    case CODEC_TRANSPOSE:
        snprintf(s, cap, "transpose");
        break;
    case CODEC_CRC32C:
        snprintf(s, cap, "crc32c");
        break;
    case CODEC_NONE:
        snprintf(s, cap, "none");
        break;
    }
}

void lumio__zarr_describe_codecs(zarr_meta *m) {
    char *buf = m->info.codecs;
    size_t cap = sizeof m->info.codecs;
    buf[0] = 0;
    char s[64];
    if (m->info.format == 2) {
        for (unsigned i = 0; i < m->nfilters; i++)
            describe(&m->filters[i], s, sizeof s), append(buf, cap, s);
        if (m->compressor.id == CODEC_NONE)
            append(buf, cap, "none");
        else
            describe(&m->compressor, s, sizeof s), append(buf, cap, s);
        return;
    }
    if (m->sharded) { /* "sharding(8x8x8:bytes:little,zstd:3)" */
        size_t n = (size_t)snprintf(buf, cap, "sharding(");
        for (unsigned d = 0; d < m->info.ndim && n < cap; d++)
            n += (size_t)snprintf(buf + n, cap - n, "%s%llu", d ? "x" : "",
                                  (unsigned long long)m->inner[d]);
        for (unsigned i = 0; i < m->nichain && n < cap; i++) {
            describe(&m->ichain[i], s, sizeof s);
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? "," : ":", s);
        }
        if (n < cap) snprintf(buf + n, cap - n, ")%s", m->index_crc ? ",index:crc32c" : "");
        return;
    }
    for (unsigned i = 0; i < m->nchain; i++)
        describe(&m->chain[i], s, sizeof s), append(buf, cap, s);
}
