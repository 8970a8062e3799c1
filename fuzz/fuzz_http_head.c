/* libFuzzer target: HTTP response heads, line by line, as libcurl hands them
 * to the remote reader. Checks that what the parser keeps is consistent. */
#include "remote/http.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    http_head h;
    lumio__http_head_reset(&h);
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl + 1 : end;
        lumio__http_head_line(&h, p, (size_t)(e - p));
        if (h.range_start != HTTP_NONE &&
            (h.range_start > h.range_end || (h.total != HTTP_NONE && h.range_end >= h.total)))
            abort();
        if (h.status < 0 || h.status > 999 || strlen(h.etag) >= sizeof h.etag ||
            h.retry_after_ms < -1 || h.retry_after_ms >= 3600 * 1000)
            abort();
        p = e;
    }
    return 0;
}
