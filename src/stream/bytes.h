/* Byte buffers, varints and little-endian helpers for the stream format. */
#ifndef LUMIO_STREAM_BYTES_H
#define LUMIO_STREAM_BYTES_H

#include "core/core.h"

#include <stdlib.h>
#include <string.h>

typedef struct bbuf {
    uint8_t *p;
    size_t len, cap;
    bool oom; /* an allocation failed: the buffer is unusable */
} bbuf;

static inline bool bbuf_reserve(bbuf *b, size_t more) {
    if (b->len + more <= b->cap) return !b->oom;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static inline void bbuf_put(bbuf *b, const void *d, size_t n) {
    if (n == 0 || !bbuf_reserve(b, n)) return;
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static inline void bbuf_u8(bbuf *b, uint8_t v) {
    if (!bbuf_reserve(b, 1)) return;
    b->p[b->len++] = v;
}

static inline void bbuf_varint(bbuf *b, uint64_t v) {
    if (!bbuf_reserve(b, 10)) return;
    uint8_t *p = b->p + b->len;
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    b->len = (size_t)(p - b->p);
}

static inline uint64_t zigzag(int64_t v) {
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}
static inline int64_t unzigzag(uint64_t v) {
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static inline void bbuf_free(bbuf *b) {
    free(b->p);
    *b = (bbuf){0};
}

static inline void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t get_le32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static inline uint64_t get_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* A cursor over bytes from outside: every read is bounds-checked and a
 * failure sticks, so a parser checks once at the end of a section. */
typedef struct rcur {
    const uint8_t *p, *end;
    bool bad;
} rcur;

static inline uint64_t rc_varint(rcur *c) {
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (c->p >= c->end) break;
        uint8_t b = *c->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    c->bad = true;
    return 0;
}

static inline uint8_t rc_u8(rcur *c) {
    if (c->p >= c->end) {
        c->bad = true;
        return 0;
    }
    return *c->p++;
}

#endif
