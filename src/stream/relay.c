/* Chunks as they travel: a receiver or relay takes whole chunks from another
 * writer's bytes and appends them to its own stream, verified and
 * renumbered, without decoding them into samples and encoding them again. */
#include "stream/chunk.h"

#include <errno.h>
#include <string.h>

int lumio_stream_check_signature(const void *data, size_t n) {
    size_t k = n < STREAM_SIG_LEN ? n : STREAM_SIG_LEN;
    if (memcmp(data, lumio__stream_signature, k)) return LUMIO_E_FORMAT;
    return n < STREAM_SIG_LEN ? -EAGAIN : 0;
}

int lumio_stream_chunk_peek(const void *data, size_t n, lumio_stream_chunk_info *info) {
    const uint8_t *p = data;
    memset(info, 0, sizeof *info);
    size_t k = n < 4 ? n : 4;
    if (memcmp(p, lumio__chunk_magic, k)) return LUMIO_E_FORMAT;
    if (n < CHUNK_HDR) return -EAGAIN;
    uint32_t stored = get_le32(p + 8), raw = get_le32(p + 12);
    if (p[4] != 1 || p[5] > 1 || p[6] || p[7] || stored > CHUNK_MAX_LEN || raw > CHUNK_MAX_LEN ||
        (p[5] == 0 && stored != raw))
        return LUMIO_E_FORMAT;
    info->length = CHUNK_HDR + (uint64_t)stored;
    info->raw_bytes = raw;
    info->compressed = p[5];
    info->seq = get_le64(p + 16);
    info->samples = get_le32(p + 24);
    info->records = get_le32(p + 28);
    return n < info->length ? -EAGAIN : 0;
}

_Static_assert(LUMIO_STREAM_SIGNATURE_LEN == STREAM_SIG_LEN, "the public signature length");
_Static_assert(LUMIO_STREAM_CHUNK_MAX == CHUNK_MAX_LEN + CHUNK_HDR, "the public chunk limit");
