/* Large buffers, made the way numpy makes its arrays on Linux: from 4 MiB
 * up, a mapping of their own with transparent huge pages asked for. Region
 * reads copy each chunk's rows into many pages of such a buffer (a 64^3
 * uint16 chunk into a 64 MiB slab touches 2048 pages); with 2 MiB pages
 * those copies miss the TLB far less: a whole-array read ran 4-7% faster. */
#include "core/core.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

/* Under AddressSanitizer every buffer is malloc'd, so that it checks the
 * bounds of these too. */
#if defined(__SANITIZE_ADDRESS__)
#define LUMIO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LUMIO_ASAN 1
#endif
#endif
#ifdef LUMIO_ASAN
static const size_t LARGE = SIZE_MAX;
#else
static const size_t LARGE = 4u << 20;
#endif

void *lumio__large_alloc(size_t n) {
    if (n < LARGE) return malloc(n ? n : 1);
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    (void)madvise(p, n, MADV_HUGEPAGE); /* a hint: refused where THP is off */
    return p;
}

void lumio__large_free(void *p, size_t n) {
    if (!p) return;
    if (n < LARGE)
        free(p);
    else
        munmap(p, n);
}
