/* A tiny test harness: TEST(name) registers a test, CHECK records a failure
 * with its line and goes on, run_tests() runs them all in a fresh temporary
 * directory and prints "NAME: N passed, N failed". */
#ifndef LUMIO_TESTUTIL_H
#define LUMIO_TESTUTIL_H

#include <lumio/ring.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A scratch buffer for a lumio_*_last_error call inside one expression:
 * lumio_ring_last_error(r, ERRBUF). */
#define ERRBUF (char[LUMIO_ERROR_MAX]){0}, LUMIO_ERROR_MAX

typedef void (*test_fn)(void);
void register_test(const char *name, test_fn fn);
int run_tests(const char *suite);
extern int test_failed;

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void reg_##name(void) {                                    \
        register_test(#name, test_##name);                                                         \
    }                                                                                              \
    static void test_##name(void)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);             \
            test_failed = 1;                                                                       \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        if (va_ != vb_) {                                                                          \
            fprintf(stderr, "  %s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, #a,  \
                    va_, #b, vb_);                                                                 \
            test_failed = 1;                                                                       \
        }                                                                                          \
    } while (0)

#define CHECK_RC(expr)                                                                             \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ < 0) {                                                                             \
            fprintf(stderr, "  %s:%d: %s returned %d (%s)\n", __FILE__, __LINE__, #expr, rc_,      \
                    lumio_strerror(rc_));                                                          \
            test_failed = 1;                                                                       \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* The test's temporary directory joined with name (one of 8 rotating buffers). */
const char *tmp_path(const char *name);
/* Write a file of `size` pseudo-random bytes from `seed`; returns a copy. */
uint8_t *make_file(const char *path, size_t size, uint64_t seed);
uint8_t *read_file(const char *path, size_t *size);
uint64_t rnd(uint64_t *state);
/* Wait on group g until `want` completions are in `held`, their buffers kept
 * (to fill the pool); how many came (fewer if the group ended or failed). */
int hold_completions(lumio_ring *r, uint64_t g, lumio_completion *held, int want);

#endif
