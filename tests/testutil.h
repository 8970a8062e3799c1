/* A tiny test harness. TEST(name) registers a case; run_tests() runs each
 * case in a child process of its own (and its own process group) in a fresh
 * temporary directory, and prints "NAME: N passed, N failed, N skipped".
 *
 * A failed CHECK prints file:line and the expression and ends its case at
 * once (so CHECK(x != NULL) guards a later x->...). Whatever the case
 * started dies with it: its threads with its process, and the processes it
 * spawned (fault proxies, servers) by a SIGKILL to its process group. A
 * crash or a leak report (under ASan) fails the case alone; the other cases
 * still run.
 *
 * A case that cannot run here calls SKIP(why). run_tests() returns 1 if a
 * case failed, else 77 if one was skipped (ctest's SKIP_RETURN_CODE: a case
 * that did not run is never counted as a pass), else 0. LUMIO_TEST_ONLY=NAME
 * runs one case; LUMIO_TEST_EXCLUDE=NAME,NAME leaves cases out (so that a
 * case that may be skipped can be a ctest test of its own). */
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

/* End the running case as failed, after printing "  FILE:LINE: " and the
 * message; callable from any thread of the case. */
__attribute__((noreturn, format(printf, 3, 4))) void test_fail(const char *file, int line,
                                                               const char *fmt, ...);
/* End the running case as skipped (it cannot run here), saying why. */
__attribute__((noreturn)) void test_skip(const char *why);

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void reg_##name(void) {                                    \
        register_test(#name, test_##name);                                                         \
    }                                                                                              \
    static void test_##name(void)

#define FAIL(...) test_fail(__FILE__, __LINE__, __VA_ARGS__)
#define SKIP(why) test_skip(why)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) FAIL("CHECK(%s) failed", #cond);                                              \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        if (va_ != vb_) FAIL("%s == %lld, expected %s == %lld", #a, va_, #b, vb_);                 \
    } while (0)

#define CHECK_RC(expr)                                                                             \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ < 0) FAIL("%s returned %d (%s)", #expr, rc_, lumio_strerror(rc_));                 \
    } while (0)

/* Strings equal as a whole (an error text that is part of the contract);
 * both are printed when they differ. */
#define CHECK_STREQ(got, want)                                                                     \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        if (!g_ || strcmp(g_, w_) != 0)                                                            \
            FAIL("%s is \"%s\", expected \"%s\"", #got, g_ ? g_ : "(null)", w_);                   \
    } while (0)

/* A whole string made of lumio's prefix, a part that is not lumio's (a
 * system's or libcurl's text: any one line) and lumio's suffix. */
#define CHECK_STR_AROUND(got, prefix, suffix)                                                      \
    do {                                                                                           \
        const char *g_ = (got), *p_ = (prefix), *s_ = (suffix);                                    \
        size_t gl_ = g_ ? strlen(g_) : 0, pl_ = strlen(p_), sl_ = strlen(s_);                      \
        if (!g_ || gl_ < pl_ + sl_ || strncmp(g_, p_, pl_) != 0 ||                                 \
            strcmp(g_ + gl_ - sl_, s_) != 0 || strchr(g_, '\n'))                                   \
            FAIL("%s is \"%s\", expected \"%s...%s\"", #got, g_ ? g_ : "(null)", p_, s_);          \
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
