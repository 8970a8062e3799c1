/* libFuzzer target: Zarr metadata (.zarray, zarr.json) and, when it parses,
 * the rest of the input decoded as one stored chunk of that array (codecs,
 * crc32c, shard indexes). The first byte picks the format. */
#include "zarr/zarr.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    /* The metadata runs to the first NUL; the chunk is what follows it. */
    const char *text = (const char *)data + 1;
    size_t rest = size - 1;
    const char *nul = memchr(text, 0, rest);
    size_t tlen = nul ? (size_t)(nul - text) : rest;
    zarr_meta m;
    char err[512];
    int rc = (data[0] & 1) ? lumio__zarr_parse_v3(text, tlen, &m, err, sizeof err)
                           : lumio__zarr_parse_v2(text, tlen, &m, err, sizeof err);
    if (rc != 0 || !nul || m.chunk_bytes == 0 || m.chunk_bytes > (1u << 20)) return 0;
    uint8_t *out = malloc(m.chunk_bytes);
    if (!out) return 0;
    const uint8_t *chunk = (const uint8_t *)nul + 1;
    size_t clen = size - (size_t)(chunk - data);
    lumio__zarr_decode(&m, chunk, clen, out, err, sizeof err);
    free(out);
    return 0;
}
