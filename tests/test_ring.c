/* Unit and integration tests of the ring engine, run once per backend
 * (LUMIO_BACKEND=uring and =threads, set by ctest). Every test checks the
 * bytes, error codes and ordering the engine promises. */
#include "tests/testutil.h"

#include <lumio/ring.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define LUMIO_TEST_MIN(a, b) ((a) < (b) ? (a) : (b))

static lumio_ring *ring_with(const lumio_ring_options *o) {
    lumio_ring *r = NULL;
    int rc = lumio_ring_create(&r, o);
    if (rc < 0) {
        fprintf(stderr, "lumio_ring_create: %s\n", lumio_strerror(rc));
        exit(2);
    }
    return r;
}

static lumio_ring *ring_default(void) {
    return ring_with(NULL);
}

/* Wait for every completion of group g, up to the one flagged as its end
 * (paths stay valid until the next wait after that). */
static int collect(lumio_ring *r, uint64_t g, lumio_completion *out, int max) {
    int n = 0, ended = 0;
    while (!ended) {
        lumio_completion c[16];
        int k = lumio_ring_wait(r, g, c, 16, 1);
        if (k < 0) {
            fprintf(stderr, "wait: %s (%s)\n", lumio_strerror(k), lumio_ring_last_error(r, ERRBUF));
            return k;
        }
        if (k == 0) break;
        for (int i = 0; i < k; i++) {
            CHECK(!ended);
            if (c[i].flags & LUMIO_CQE_GROUP_END) ended = 1;
            if (n < max)
                out[n++] = c[i];
            else
                lumio_buffer_release(c[i].buffer);
        }
    }
    CHECK(ended);
    return n;
}

static void release_all(lumio_completion *c, int n) {
    for (int i = 0; i < n; i++) lumio_buffer_release(c[i].buffer);
}

static const lumio_completion *by_ud(const lumio_completion *c, int n, uint64_t ud) {
    for (int i = 0; i < n; i++)
        if (c[i].user_data == ud && c[i].range_index != LUMIO_NO_RANGE) return &c[i];
    return NULL;
}

TEST(ranges_of_one_file) {
    size_t size = 100000;
    uint8_t *want = make_file(tmp_path("a.bin"), size, 1);
    lumio_ring *r = ring_default();
    lumio_range rg[5] = {
        {.offset = 0, .length = 4096, .user_data = 1},
        {.offset = 5000, .length = 10, .user_data = 2},
        {.offset = -100, .length = 100, .user_data = 3},
        {.offset = 99990, .length = LUMIO_WHOLE, .user_data = 4},
        {.offset = 0, .length = LUMIO_WHOLE, .user_data = 5},
    };
    lumio_op op = {.kind = LUMIO_OP_GET, .path = tmp_path("a.bin"), .ranges = rg, .nranges = 5};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
    lumio_completion c[8];
    int n = collect(r, g, c, 8);
    CHECK_EQ(n, 5);
    const uint64_t off[5] = {0, 5000, size - 100, 99990, 0};
    const uint64_t len[5] = {4096, 10, 100, 10, size};
    for (int i = 0; i < 5; i++) {
        const lumio_completion *x = by_ud(c, n, (uint64_t)i + 1);
        CHECK(x != NULL);
        CHECK_EQ(x->result, 0);
        CHECK_EQ(x->offset, off[i]);
        CHECK_EQ(x->length, len[i]);
        CHECK(memcmp(x->data, want + off[i], len[i]) == 0);
        CHECK(x->buffer != NULL);
        CHECK(strcmp(x->path, tmp_path("a.bin")) == 0);
    }
    if (getenv("LUMIO_EXPECT_SHORT_IO")) {
        lumio_ring_stats st;
        lumio_ring_get_stats(r, &st);
        CHECK(st.short_retries > 0);
    }
    release_all(c, n);
    lumio_ring_close(r);
    free(want);
}

/* Many files, many random ranges, against pread's answer; with and without
 * merging, with splitting forced by a tiny max_io_size. */
static void many_files(unsigned coalesce_gap, uint64_t max_io, int direct) {
    enum { FILES = 12, RANGES = 40 };
    uint8_t *want[FILES];
    size_t sizes[FILES];
    char paths[FILES][64];
    for (int f = 0; f < FILES; f++) {
        sizes[f] = 1000 + (size_t)f * 37731;
        snprintf(paths[f], sizeof paths[f], "m%d.bin", f);
        want[f] = make_file(tmp_path(paths[f]), sizes[f], 100 + f);
    }
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.coalesce_gap = coalesce_gap ? (int64_t)coalesce_gap : -1; /* 0 here: never merge */
    o.max_io_size = max_io;
    o.direct = direct;
    o.queue_depth = 16;
    o.max_buffers = 1024; /* the test holds every completion */
    lumio_ring *r = ring_with(&o);
    lumio_range rg[FILES][RANGES];
    lumio_op ops[FILES];
    char fullpath[FILES][4096];
    uint64_t seed = 42;
    for (int f = 0; f < FILES; f++) {
        for (int i = 0; i < RANGES; i++) {
            uint64_t a = rnd(&seed) % sizes[f], b = rnd(&seed) % 9000;
            if (a + b > sizes[f]) b = sizes[f] - a;
            rg[f][i] = (lumio_range){
                .offset = (int64_t)a, .length = b, .user_data = (uint64_t)f * 1000 + (uint64_t)i};
        }
        snprintf(fullpath[f], sizeof fullpath[f], "%s", tmp_path(paths[f]));
        ops[f] = (lumio_op){
            .kind = LUMIO_OP_GET, .path = fullpath[f], .ranges = rg[f], .nranges = RANGES};
    }
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, ops, FILES, NULL, &g));
    static lumio_completion c[FILES * RANGES + 4];
    int n = collect(r, g, c, FILES * RANGES + 4);
    CHECK_EQ(n, FILES * RANGES);
    for (int i = 0; i < n; i++) {
        int f = (int)(c[i].user_data / 1000), k = (int)(c[i].user_data % 1000);
        CHECK_EQ(c[i].result, 0);
        CHECK_EQ(c[i].offset, (uint64_t)rg[f][k].offset);
        CHECK_EQ(c[i].length, rg[f][k].length);
        CHECK(c[i].length == 0 || memcmp(c[i].data, want[f] + c[i].offset, c[i].length) == 0);
    }
    lumio_ring_stats st;
    lumio_ring_get_stats(r, &st);
    if (coalesce_gap > 1000) CHECK(st.ranges_coalesced > 0);
    if (coalesce_gap == 0) CHECK_EQ(st.ranges_coalesced, 0);
    if (max_io < 9000) CHECK(st.reads > (uint64_t)FILES * RANGES);
    release_all(c, n);
    lumio_ring_close(r);
    for (int f = 0; f < FILES; f++) free(want[f]);
}

TEST(many_files_merged) {
    many_files(8192, 1 << 30, 0);
}
TEST(many_files_unmerged) {
    many_files(0, 1 << 30, 0);
}
TEST(many_files_split) {
    many_files(0, 4096, 0);
}
TEST(many_files_direct) {
    many_files(4096, 1 << 30, 1);
}
TEST(many_files_direct_split) {
    many_files(0, 8192, 1);
}

TEST(caller_buffers) {
    size_t size = 300000;
    uint8_t *want = make_file(tmp_path("dst.bin"), size, 7);
    for (int direct = 0; direct < 2; direct++) {
        lumio_ring_options o;
        o = (lumio_ring_options){0};
        o.direct = direct;
        o.max_io_size = 65536; /* split too */
        lumio_ring *r = ring_with(&o);
        uint8_t *big = malloc(size + 1);
        uint8_t *odd = malloc(1001);
        void *aligned = NULL;
        CHECK(posix_memalign(&aligned, 4096, 8192) == 0);
        lumio_range rg[3] = {
            {.offset = 0, .length = size, .user_data = 1, .buf = big + 1}, /* unaligned memory */
            {.offset = 12345, .length = 1001, .user_data = 2, .buf = odd},
            {.offset = 8192, .length = 8192, .user_data = 3, .buf = aligned},
        };
        lumio_op op = {
            .kind = LUMIO_OP_GET, .path = tmp_path("dst.bin"), .ranges = rg, .nranges = 3};
        uint64_t g;
        CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
        lumio_completion c[4];
        int n = collect(r, g, c, 4);
        CHECK_EQ(n, 3);
        for (int i = 0; i < n; i++) {
            CHECK_EQ(c[i].result, 0);
            CHECK(c[i].buffer == NULL);
            CHECK(c[i].data == rg[c[i].user_data - 1].buf);
        }
        CHECK(memcmp(big + 1, want, size) == 0);
        CHECK(memcmp(odd, want + 12345, 1001) == 0);
        CHECK(memcmp(aligned, want + 8192, 8192) == 0);
        free(big);
        free(odd);
        free(aligned);
        lumio_ring_close(r);
    }
    free(want);
}

TEST(missing_file_is_one_error) {
    uint8_t *want = make_file(tmp_path("ok.bin"), 5000, 3);
    lumio_ring *r = ring_default();
    lumio_range rg[3] = {{.offset = 0, .length = 10, .user_data = 1},
                         {.offset = 10, .length = 10, .user_data = 2},
                         {.offset = 20, .length = 10, .user_data = 3}};
    char missing[4096];
    snprintf(missing, sizeof missing, "%s", tmp_path("nope/missing.bin"));
    lumio_op ops[2] = {
        {.kind = LUMIO_OP_GET, .path = missing, .ranges = rg, .nranges = 3, .user_data = 77},
        {.kind = LUMIO_OP_GET, .path = tmp_path("ok.bin"), .ranges = rg, .nranges = 3},
    };
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, ops, 2, NULL, &g));
    lumio_completion c[8];
    int n = collect(r, g, c, 8);
    CHECK_EQ(n, 4);
    int errors = 0;
    for (int i = 0; i < n; i++) {
        if (c[i].op_index == 0) {
            errors++;
            CHECK_EQ(c[i].result, -ENOENT);
            CHECK_EQ(c[i].range_index, LUMIO_NO_RANGE);
            CHECK_EQ(c[i].user_data, 77);
            CHECK(strcmp(c[i].path, missing) == 0);
            CHECK(c[i].data == NULL && c[i].buffer == NULL);
            char text[4200], want_text[4200];
            {
                int whole = lumio_completion_describe(&c[i], text, sizeof text);
                CHECK_EQ(whole, (int)strlen(text)); /* not truncated: its whole length */
            }
            snprintf(want_text, sizeof want_text, "%s: No such file or directory", missing);
            CHECK_STREQ(text, want_text);
        } else {
            CHECK_EQ(c[i].result, 0);
            CHECK(memcmp(c[i].data, want + c[i].offset, 10) == 0);
        }
    }
    CHECK_EQ(errors, 1);
    char want_error[4200];
    snprintf(want_error, sizeof want_error, "%s: No such file or directory", missing);
    CHECK_STREQ(lumio_ring_last_error(r, ERRBUF), want_error);
    release_all(c, n);
    lumio_ring_close(r);
    free(want);
}

TEST(past_end_of_file) {
    free(make_file(tmp_path("short.bin"), 1000, 4));
    for (int with_size = 0; with_size < 2; with_size++) {
        lumio_ring *r = ring_default();
        lumio_range rg[5] = {
            {.offset = 900, .length = 200, .user_data = 1}, /* crosses the end */
            {.offset = 900, .length = 200, .user_data = 2, .flags = LUMIO_RANGE_ALLOW_SHORT},
            {.offset = 5000, .length = 10, .user_data = 3}, /* wholly past */
            {.offset = 0, .length = 1000, .user_data = 4},  /* fine */
            /* a negative offset asks for the size: the second pass has one */
            {.offset = with_size ? -2000 : 0, .length = 10, .user_data = 5},
        };
        lumio_op op = {
            .kind = LUMIO_OP_GET, .path = tmp_path("short.bin"), .ranges = rg, .nranges = 5};
        uint64_t g;
        CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
        lumio_completion c[8];
        int n = collect(r, g, c, 8);
        CHECK_EQ(n, 5);
        CHECK_EQ(by_ud(c, n, 1)->result, LUMIO_E_RANGE);
        CHECK(by_ud(c, n, 1)->data == NULL);
        /* A failed range is described as it was asked for (ring.h). */
        char text[LUMIO_ERROR_MAX], want[LUMIO_ERROR_MAX];
        lumio_completion_describe(by_ud(c, n, 3), text, sizeof text);
        snprintf(want, sizeof want,
                 "%s: range 2 (offset 5000, length 10): range lies past the end of the file",
                 tmp_path("short.bin"));
        CHECK_STREQ(text, want);
        CHECK_EQ(by_ud(c, n, 2)->result, 0);
        CHECK_EQ(by_ud(c, n, 2)->length, 100);
        CHECK(by_ud(c, n, 2)->flags & LUMIO_CQE_SHORT);
        CHECK_EQ(by_ud(c, n, 3)->result, LUMIO_E_RANGE);
        CHECK_EQ(by_ud(c, n, 4)->result, 0);
        CHECK_EQ(by_ud(c, n, 5)->result, with_size ? LUMIO_E_RANGE : 0);
        release_all(c, n);
        lumio_ring_close(r);
    }
}

TEST(put_then_get) {
    lumio_ring *r = ring_default();
    size_t size = 200000;
    uint8_t *data = malloc(size);
    uint64_t seed = 9;
    for (size_t i = 0; i < size; i++) data[i] = (uint8_t)rnd(&seed);
    lumio_range w[3] = {{.offset = 0, .length = 100000, .buf = data, .user_data = 1},
                        {.offset = 100000, .length = 100000, .buf = data + 100000, .user_data = 2},
                        {.offset = 250000, .length = 0, .buf = data, .user_data = 3}};
    char path[4096];
    snprintf(path, sizeof path, "%s", tmp_path("put.bin"));
    unlink(path);
    lumio_op op = {.kind = LUMIO_OP_PUT,
                   .path = path,
                   .flags = LUMIO_OP_CREATE | LUMIO_OP_FSYNC,
                   .mode = 0600,
                   .ranges = w,
                   .nranges = 3};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
    lumio_completion c[4];
    int n = collect(r, g, c, 4);
    CHECK_EQ(n, 3);
    for (int i = 0; i < n; i++) CHECK_EQ(c[i].result, 0);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK_EQ(st.st_size, (off_t)size);
    CHECK_EQ(st.st_mode & 0777, 0600);
    uint8_t *back = read_file(path, NULL);
    CHECK(memcmp(back, data, size) == 0);
    free(back);

    /* EXCL on an existing file fails as one op-level error. */
    lumio_op ex = {
        .kind = LUMIO_OP_PUT, .path = path, .flags = LUMIO_OP_EXCL, .ranges = w, .nranges = 1};
    CHECK_RC(lumio_ring_submit(r, &ex, 1, NULL, &g));
    n = collect(r, g, c, 4);
    CHECK_EQ(n, 1);
    CHECK_EQ(c[0].result, -EEXIST);
    /* A put into a missing directory names the path. */
    lumio_op bad = {.kind = LUMIO_OP_PUT,
                    .path = tmp_path("no/such/dir/x"),
                    .flags = LUMIO_OP_CREATE,
                    .ranges = w,
                    .nranges = 1};
    CHECK_RC(lumio_ring_submit(r, &bad, 1, NULL, &g));
    n = collect(r, g, c, 4);
    CHECK_EQ(n, 1);
    CHECK_EQ(c[0].result, -ENOENT);
    char want_error[4200];
    snprintf(want_error, sizeof want_error, "%s: No such file or directory", bad.path);
    CHECK_STREQ(lumio_ring_last_error(r, ERRBUF), want_error);
    /* Truncate and create with no ranges: one op completion. */
    lumio_op tr = {.kind = LUMIO_OP_PUT, .path = path, .flags = LUMIO_OP_TRUNCATE, .user_data = 5};
    CHECK_RC(lumio_ring_submit(r, &tr, 1, NULL, &g));
    n = collect(r, g, c, 4);
    CHECK_EQ(n, 1);
    CHECK_EQ(c[0].result, 0);
    CHECK_EQ(c[0].user_data, 5);
    CHECK(stat(path, &st) == 0 && st.st_size == 0);
    lumio_ring_close(r);
    free(data);
}

TEST(blocks_and_empty_files) {
    size_t size = 1000000;
    uint8_t *want = make_file(tmp_path("blk.bin"), size, 11);
    free(make_file(tmp_path("empty.bin"), 0, 0));
    lumio_ring *r = ring_default();
    lumio_op ops[2] = {
        {.kind = LUMIO_OP_GET, .path = tmp_path("blk.bin"), .block_size = 65536, .user_data = 100},
        {.kind = LUMIO_OP_GET, .path = tmp_path("empty.bin"), .block_size = 65536},
    };
    char p0[4096];
    snprintf(p0, sizeof p0, "%s", ops[0].path);
    ops[0].path = p0;
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, ops, 2, NULL, &g));
    lumio_completion c[32];
    int n = collect(r, g, c, 32);
    /* If the empty file resolves after the 16 blocks were delivered, the
     * group's end comes as a completion of its own (no range, no data). */
    if (n == 17 && c[16].range_index == LUMIO_NO_RANGE && (c[16].flags & LUMIO_CQE_GROUP_END) &&
        !c[16].data && c[16].result == 0)
        n = 16;
    CHECK_EQ(n, 16); /* ceil(1000000 / 65536) */
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        CHECK_EQ(c[i].result, 0);
        CHECK_EQ(c[i].offset, (c[i].user_data - 100) * 65536);
        CHECK(memcmp(c[i].data, want + c[i].offset, c[i].length) == 0);
        total += c[i].length;
    }
    CHECK_EQ(total, size);
    release_all(c, n);
    /* A group whose only file is empty still ends. */
    CHECK_RC(lumio_ring_submit(r, &ops[1], 1, NULL, &g));
    n = collect(r, g, c, 32);
    CHECK_EQ(n, 1);
    CHECK(c[0].flags & LUMIO_CQE_GROUP_END);
    CHECK_EQ(c[0].range_index, LUMIO_NO_RANGE);
    CHECK_EQ(c[0].length, 0);
    /* So does an empty group. */
    CHECK_RC(lumio_ring_submit(r, NULL, 0, NULL, &g));
    n = collect(r, g, c, 32);
    CHECK_EQ(n, 1);
    lumio_ring_close(r);
    free(want);
}

TEST(in_order_delivery) {
    enum { FILES = 20 };
    char paths[FILES][4096];
    for (int f = 0; f < FILES; f++) {
        char name[32];
        snprintf(name, sizeof name, "ord%d.bin", f);
        snprintf(paths[f], sizeof paths[f], "%s", tmp_path(name));
        free(make_file(paths[f], (size_t)(f % 5) * 70000 + 1, f));
    }
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.in_order = 1;
    o.max_buffers = 6; /* small pool: ordering must not deadlock it */
    o.queue_depth = 8;
    lumio_ring *r = ring_with(&o);
    lumio_op ops[FILES + 1];
    for (int f = 0; f < FILES; f++)
        ops[f] = (lumio_op){.kind = LUMIO_OP_GET,
                            .path = paths[f],
                            .block_size = 16384,
                            .user_data = (uint64_t)f << 32};
    ops[FILES] = (lumio_op){.kind = LUMIO_OP_GET, .path = "/nonexistent/x", .user_data = 999};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, ops, FILES + 1, NULL, &g));
    uint64_t last = 0;
    int count = 0, errors = 0;
    for (;;) {
        lumio_completion c[4];
        int n = lumio_ring_wait(r, g, c, 4, 1);
        CHECK(n >= 0);
        if (n <= 0) break;
        for (int i = 0; i < n; i++) {
            if (c[i].result < 0) {
                errors++;
                CHECK_EQ(c[i].user_data, 999);
                continue;
            }
            uint64_t key = ((uint64_t)c[i].op_index << 32) | c[i].range_index;
            CHECK(count == 0 || key > last);
            last = key;
            count++;
            lumio_buffer_release(c[i].buffer);
        }
    }
    CHECK_EQ(errors, 1);
    lumio_ring_stats st;
    lumio_ring_get_stats(r, &st);
    CHECK(st.pool_buffers_peak <= 6);
    lumio_ring_close(r);
}

TEST(ordered_groups) {
    enum { GROUPS = 5, FILES = 4 };
    char paths[GROUPS * FILES][4096];
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.ordered_groups = 1;
    lumio_ring *r = ring_with(&o);
    uint64_t gid[GROUPS];
    for (int gi = 0; gi < GROUPS; gi++) {
        lumio_op ops[FILES];
        for (int f = 0; f < FILES; f++) {
            char name[32];
            int k = gi * FILES + f;
            snprintf(name, sizeof name, "grp%d.bin", k);
            snprintf(paths[k], sizeof paths[k], "%s", tmp_path(name));
            free(make_file(paths[k], 50000 + (size_t)k * 1000, k));
            ops[f] = (lumio_op){.kind = LUMIO_OP_GET, .path = paths[k], .block_size = 8192};
        }
        CHECK_RC(lumio_ring_submit(r, ops, FILES, NULL, &gid[gi]));
    }
    /* Without a compute stage, a group's data is all loaded before the next
     * group starts, so completions arrive group by group. */
    uint64_t cur = gid[0];
    int ends = 0;
    for (;;) {
        lumio_completion c[64];
        int n = lumio_ring_wait(r, LUMIO_ANY_GROUP, c, 64, 1);
        CHECK(n >= 0);
        if (n <= 0) break;
        for (int i = 0; i < n; i++) {
            CHECK_EQ(c[i].group, cur);
            CHECK_EQ(c[i].result, 0);
            if (c[i].flags & LUMIO_CQE_GROUP_END) {
                cur++;
                ends++;
            }
            lumio_buffer_release(c[i].buffer);
        }
    }
    CHECK_EQ(ends, GROUPS);
    CHECK_EQ(lumio_ring_pending_groups(r), 0);
    lumio_ring_close(r);
}

TEST(wait_on_one_group) {
    free(make_file(tmp_path("w1.bin"), 400000, 1));
    free(make_file(tmp_path("w2.bin"), 400000, 2));
    lumio_ring *r = ring_default();
    char p1[4096], p2[4096];
    snprintf(p1, sizeof p1, "%s", tmp_path("w1.bin"));
    snprintf(p2, sizeof p2, "%s", tmp_path("w2.bin"));
    lumio_op a = {.kind = LUMIO_OP_GET, .path = p1, .block_size = 4096};
    lumio_op b = {.kind = LUMIO_OP_GET, .path = p2, .block_size = 4096};
    uint64_t ga, gb;
    CHECK_RC(lumio_ring_submit(r, &a, 1, NULL, &ga));
    CHECK_RC(lumio_ring_submit(r, &b, 1, NULL, &gb));
    static lumio_completion c[200];
    int n = collect(r, gb, c, 200);
    CHECK_EQ(n, 98);
    for (int i = 0; i < n; i++) CHECK_EQ(c[i].group, gb);
    release_all(c, n);
    n = collect(r, ga, c, 200);
    CHECK_EQ(n, 98);
    for (int i = 0; i < n; i++) CHECK_EQ(c[i].group, ga);
    release_all(c, n);
    CHECK_EQ(lumio_ring_wait(r, ga, c, 10, 1), 0); /* finished: nothing to wait for */
    lumio_ring_close(r);
}

TEST(pool_cap_and_stall) {
    free(make_file(tmp_path("pool.bin"), 1 << 20, 5));
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.max_buffers = 4;
    o.coalesce_gap = -1;
    lumio_ring *r = ring_with(&o);
    char p[4096];
    snprintf(p, sizeof p, "%s", tmp_path("pool.bin"));
    lumio_op op = {.kind = LUMIO_OP_GET, .path = p, .block_size = 4096};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
    /* Hold every buffer: the engine must stop and say so, not grow. */
    lumio_completion held[4];
    int have = hold_completions(r, g, held, 4);
    CHECK_EQ(have, 4);
    lumio_completion more[4];
    int rc = lumio_ring_wait(r, g, more, 4, 1);
    CHECK_EQ(rc, LUMIO_E_STALLED);
    CHECK_STREQ(lumio_ring_last_error(r, ERRBUF),
                "stalled: all pool buffers (cap 4) are held by the caller; release some");
    release_all(held, have);
    int total = have;
    for (;;) {
        int n = lumio_ring_wait(r, g, more, 4, 1);
        CHECK(n >= 0);
        if (n <= 0) break;
        total += n;
        release_all(more, n);
    }
    CHECK_EQ(total, 256);
    lumio_ring_stats st;
    lumio_ring_get_stats(r, &st);
    CHECK(st.pool_buffers_peak <= 4);
    CHECK(st.pool_waits > 0);
    lumio_ring_close(r);
}

TEST(too_big_for_pool) {
    free(make_file(tmp_path("big.bin"), 300000, 5));
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.max_bytes = 65536;
    lumio_ring *r = ring_with(&o);
    lumio_range rg[2] = {{.offset = 0, .length = LUMIO_WHOLE, .user_data = 1},
                         {.offset = 0, .length = 1000, .user_data = 2}};
    lumio_op op = {.kind = LUMIO_OP_GET, .path = tmp_path("big.bin"), .ranges = rg, .nranges = 2};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
    lumio_completion c[4];
    int n = collect(r, g, c, 4);
    CHECK_EQ(n, 2);
    CHECK_EQ(by_ud(c, n, 1)->result, LUMIO_E_TOOBIG);
    CHECK_EQ(by_ud(c, n, 2)->result, 0);
    release_all(c, n);
    lumio_ring_close(r);
}

static int hash_fn(void *arg, lumio_completion *c) {
    (void)arg;
    if (c->result < 0) return c->result;
    uint64_t *h = malloc(sizeof *h);
    if (!h) return -ENOMEM;
    *h = XXH64(c->data, c->length, 0);
    c->out = h;
    c->out_length = sizeof *h;
    lumio_buffer_release(c->buffer); /* done with the bytes: give them back early */
    c->buffer = NULL;
    c->data = NULL;
    return 0;
}

TEST(compute_stage) {
    size_t size = 3 << 20;
    uint8_t *want = make_file(tmp_path("cmp.bin"), size, 8);
    for (int ordered = 0; ordered < 2; ordered++) {
        lumio_ring_options o;
        o = (lumio_ring_options){0};
        o.compute = hash_fn;
        o.in_order = ordered;
        o.max_buffers = 8;
        lumio_ring *r = ring_with(&o);
        char p[4096];
        snprintf(p, sizeof p, "%s", tmp_path("cmp.bin"));
        lumio_op op = {.kind = LUMIO_OP_GET, .path = p, .block_size = 32768};
        uint64_t g;
        CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
        int count = 0;
        int64_t last = -1;
        for (;;) {
            lumio_completion c[16];
            int n = lumio_ring_wait(r, g, c, 16, 1);
            CHECK(n >= 0);
            if (n <= 0) break;
            for (int i = 0; i < n; i++) {
                CHECK_EQ(c[i].result, 0);
                CHECK(c[i].buffer == NULL);
                CHECK_EQ(c[i].out_length, 8);
                uint64_t h = *(uint64_t *)c[i].out;
                CHECK_EQ(h, XXH64(want + c[i].offset, c[i].length, 0));
                if (ordered) CHECK((int64_t)c[i].range_index > last);
                last = c[i].range_index;
                free(c[i].out);
                count++;
            }
        }
        CHECK_EQ(count, (int)(size / 32768));
        lumio_ring_close(r);
    }
    free(want);
}

static atomic_int computed;

static int count_fn(void *arg, lumio_completion *c) {
    (void)arg;
    atomic_fetch_add(&computed, 1);
    lumio_buffer_release(c->buffer);
    c->buffer = NULL;
    c->data = NULL;
    return 0;
}

static int slow_count_fn(void *arg, lumio_completion *c) {
    usleep(2000);
    return count_fn(arg, c);
}

/* A canceled group ends without the caller's buffers (after a stall) and
 * without more compute; what it had not started ends with -ECANCELED. */
TEST(cancel_a_group) {
    free(make_file(tmp_path("cancel.bin"), 1 << 20, 6));
    char p[4096];
    snprintf(p, sizeof p, "%s", tmp_path("cancel.bin"));
    /* Stalled: every pool buffer held by the caller. */
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.max_buffers = 4;
    o.coalesce_gap = -1;
    lumio_ring *r = ring_with(&o);
    lumio_op op = {.kind = LUMIO_OP_GET, .path = p, .block_size = 4096};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
    lumio_completion held[4], c[64];
    int have = hold_completions(r, g, held, 4);
    CHECK_EQ(have, 4);
    CHECK_EQ(lumio_ring_wait(r, g, c, 4, 1), LUMIO_E_STALLED);
    CHECK_RC(lumio_ring_cancel(r, g));
    int rest = 0, ended = 0, n;
    while ((n = lumio_ring_wait(r, g, c, 64, 1)) > 0)
        for (int i = 0; i < n; i++) {
            CHECK_EQ(c[i].result, -ECANCELED);
            CHECK(c[i].buffer == NULL && c[i].data == NULL);
            ended += (c[i].flags & LUMIO_CQE_GROUP_END) != 0;
            rest++;
        }
    CHECK_EQ(n, 0);
    CHECK_EQ(ended, 1);
    CHECK_EQ(have + rest, 256);
    release_all(held, have);
    CHECK_EQ(lumio_ring_cancel(r, g), -ENOENT);
    char want_error[64];
    snprintf(want_error, sizeof want_error, "cancel: no group %llu in flight",
             (unsigned long long)g);
    CHECK_STREQ(lumio_ring_last_error(r, ERRBUF), want_error);
    /* The ring goes on: a new group reads as before. */
    lumio_range one = {.offset = 4096, .length = 4096};
    lumio_op op2 = {.kind = LUMIO_OP_GET, .path = p, .ranges = &one, .nranges = 1};
    CHECK_RC(lumio_ring_submit(r, &op2, 1, NULL, &g));
    CHECK_EQ(collect(r, g, c, 64), 1);
    CHECK_EQ(c[0].result, 0);
    CHECK_EQ(c[0].length, 4096);
    release_all(c, 1);
    lumio_ring_close(r);

    /* With a compute stage, canceled as soon as submitted: 40 ops of 32
     * ranges. Every range ends either computed or canceled, never both,
     * and the group ends. */
    o = (lumio_ring_options){0};
    o.compute = count_fn;
    o.max_buffers = 8;
    r = ring_with(&o);
    enum { OPS = 40, RANGES = 32 };
    lumio_op ops[OPS];
    lumio_range rgs[OPS][RANGES];
    for (int i = 0; i < OPS; i++) {
        for (int k = 0; k < RANGES; k++)
            rgs[i][k] = (lumio_range){.offset = (uint64_t)k * 32768, .length = 32768};
        ops[i] = (lumio_op){.kind = LUMIO_OP_GET, .path = p, .ranges = rgs[i], .nranges = RANGES};
    }
    atomic_store(&computed, 0);
    CHECK_RC(lumio_ring_submit(r, ops, OPS, NULL, &g));
    n = lumio_ring_wait(r, g, c, 4, 1); /* some may start, or end, first */
    CHECK(n >= 0);
    int ok = 0, canceled = 0;
    for (int i = 0; i < n; i++) ok += c[i].result == 0;
    CHECK_RC(lumio_ring_cancel(r, g));
    while ((n = lumio_ring_wait(r, g, c, 64, 1)) > 0)
        for (int i = 0; i < n; i++) {
            CHECK(c[i].result == 0 || c[i].result == -ECANCELED);
            ok += c[i].result == 0;
            canceled += c[i].result == -ECANCELED;
        }
    CHECK_EQ(n, 0);
    CHECK(canceled > 0);
    /* An op canceled before it opened ends as one completion. */
    CHECK(ok + canceled <= OPS * RANGES);
    CHECK_EQ(atomic_load(&computed), ok);
    lumio_ring_close(r);

    /* Jobs already queued for the workers are not computed after the
     * cancel: one worker, a slow compute, 32 ranges. */
    o = (lumio_ring_options){0};
    o.compute = slow_count_fn;
    o.workers = 1;
    r = ring_with(&o);
    atomic_store(&computed, 0);
    CHECK_RC(lumio_ring_submit(r, ops, 1, NULL, &g));
    CHECK(lumio_ring_wait(r, g, c, 1, 1) == 1);
    CHECK_RC(lumio_ring_cancel(r, g));
    int before = atomic_load(&computed);
    while ((n = lumio_ring_wait(r, g, c, 64, 1)) > 0) {
    }
    CHECK_EQ(n, 0);
    CHECK(atomic_load(&computed) <= before + 1); /* at most the one running */
    lumio_ring_close(r);

    /* Ordered groups: a group not started yet (the one before it is held
     * up by the caller's buffers) ends when canceled, without a stall; so
     * does one whose ops wait for the only open file. */
    for (int files = 0; files < 2; files++) {
        o = (lumio_ring_options){0};
        o.max_buffers = 2;
        o.coalesce_gap = -1;
        o.ordered_groups = !files;
        if (files) o.max_open_files = 1;
        r = ring_with(&o);
        uint64_t ga, gb;
        CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &ga));
        have = hold_completions(r, ga, held, 2);
        CHECK_EQ(have, 2);
        CHECK_RC(lumio_ring_submit(r, ops, 3, NULL, &gb));
        CHECK_EQ(lumio_ring_wait(r, gb, c, 4, 1), LUMIO_E_STALLED);
        CHECK_RC(lumio_ring_cancel(r, gb));
        rest = ended = 0;
        while ((n = lumio_ring_wait(r, gb, c, 64, 1)) > 0)
            for (int i = 0; i < n; i++) {
                CHECK_EQ(c[i].result, -ECANCELED);
                CHECK_EQ(c[i].range_index, LUMIO_NO_RANGE); /* one per op: none opened */
                ended += (c[i].flags & LUMIO_CQE_GROUP_END) != 0;
                rest++;
            }
        CHECK_EQ(n, 0);
        CHECK_EQ(rest, 3);
        CHECK_EQ(ended, 1);
        release_all(held, have);
        while ((n = lumio_ring_wait(r, ga, c, 64, 1)) > 0) release_all(c, n);
        CHECK_EQ(n, 0);
        CHECK_EQ(lumio_ring_pending_groups(r), 0);
        lumio_ring_close(r);
    }
}

TEST(fd_ops) {
    uint8_t *want = make_file(tmp_path("fd.bin"), 20000, 12);
    int fd = open(tmp_path("fd.bin"), O_RDONLY);
    CHECK(fd >= 0);
    lumio_ring *r = ring_default();
    lumio_range rg[2] = {{.offset = 100, .length = 50, .user_data = 1},
                         {.offset = -10, .length = 10, .user_data = 2}};
    lumio_op op = {.kind = LUMIO_OP_GET, .fd = fd, .ranges = rg, .nranges = 2};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
    lumio_completion c[4];
    int n = collect(r, g, c, 4);
    CHECK_EQ(n, 2);
    CHECK(memcmp(by_ud(c, n, 1)->data, want + 100, 50) == 0);
    CHECK(memcmp(by_ud(c, n, 2)->data, want + 19990, 10) == 0);
    release_all(c, n);
    lumio_ring_close(r);
    CHECK(fcntl(fd, F_GETFD) >= 0); /* still the caller's */
    close(fd);
    free(want);
}

/* LUMIO_OP_NOFOLLOW: a link is refused (-ELOOP), for GETs and PUTs; the
 * file itself still reads. */
TEST(nofollow) {
    uint8_t *want = make_file(tmp_path("nf.bin"), 5000, 3);
    unlink(tmp_path("nf.link"));
    CHECK(symlink(tmp_path("nf.bin"), tmp_path("nf.link")) == 0);
    lumio_ring *r = ring_default();
    lumio_range whole = {.offset = 0, .length = LUMIO_WHOLE, .user_data = 1};
    static uint8_t byte = 1;
    lumio_range put = {.offset = 0, .length = 1, .buf = &byte, .user_data = 3};
    lumio_op ops[3] = {{.kind = LUMIO_OP_GET,
                        .path = tmp_path("nf.link"),
                        .flags = LUMIO_OP_NOFOLLOW,
                        .ranges = &whole,
                        .nranges = 1,
                        .user_data = 10},
                       {.kind = LUMIO_OP_GET,
                        .path = tmp_path("nf.bin"),
                        .flags = LUMIO_OP_NOFOLLOW,
                        .ranges = &whole,
                        .nranges = 1,
                        .user_data = 20},
                       {.kind = LUMIO_OP_PUT,
                        .path = tmp_path("nf.link"),
                        .flags = LUMIO_OP_NOFOLLOW,
                        .ranges = &put,
                        .nranges = 1,
                        .user_data = 30}};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, ops, 3, NULL, &g));
    lumio_completion c[8];
    int n = collect(r, g, c, 8);
    int seen = 0;
    for (int i = 0; i < n; i++) {
        if (c[i].user_data == 1 && c[i].op_index == 1) {
            CHECK(c[i].result == 0 && c[i].length == 5000 && !memcmp(c[i].data, want, 5000));
            seen |= 1;
        } else if (c[i].op_index == 0 || c[i].op_index == 2) {
            CHECK_EQ(c[i].result, -ELOOP);
            seen |= c[i].op_index == 0 ? 2 : 4;
        }
    }
    CHECK_EQ(seen, 7);
    release_all(c, n);
    lumio_ring_close(r);
    size_t len = 0;
    uint8_t *got = read_file(tmp_path("nf.bin"), &len);
    CHECK(got && len == 5000 && !memcmp(got, want, 5000)); /* not written through the link */
    free(got);
    free(want);
}

TEST(submit_validation) {
    lumio_ring *r = ring_default();
    uint64_t g;
    lumio_range w = {.offset = 0, .length = 10};
    lumio_op put = {.kind = LUMIO_OP_PUT, .path = "x", .ranges = &w, .nranges = 1};
    CHECK_EQ(lumio_ring_submit(r, &put, 1, NULL, &g), -EINVAL);
    /* The texts are part of the contract: checked whole. */
    CHECK(!strcmp(lumio_ring_last_error(r, ERRBUF), "submit: op 0 range 0: a put needs a buffer"));
    lumio_range neg = {.offset = -5, .length = 1, .buf = &w};
    put.ranges = &neg;
    CHECK_EQ(lumio_ring_submit(r, &put, 1, NULL, &g), -EINVAL);
    CHECK(!strcmp(lumio_ring_last_error(r, ERRBUF),
                  "submit: op 0 range 0: a put needs a non-negative offset and a length"));
    lumio_op nofile = {.kind = LUMIO_OP_GET, .path = NULL, .fd = -1};
    CHECK_EQ(lumio_ring_submit(r, &nofile, 1, NULL, &g), -EBADF);
    CHECK(!strcmp(lumio_ring_last_error(r, ERRBUF),
                  "submit: op 0: neither a path nor a file descriptor"));
    lumio_op badkind = {.kind = (lumio_op_kind)7, .path = "x"};
    CHECK_EQ(lumio_ring_submit(r, &badkind, 1, NULL, &g), -EINVAL);
    CHECK(!strcmp(lumio_ring_last_error(r, ERRBUF), "submit: op 0: unknown kind"));
    lumio_completion c[1];
    CHECK_EQ(lumio_ring_wait(r, LUMIO_ANY_GROUP, c, 0, 0), -EINVAL);
    CHECK_EQ(lumio_ring_wait(r, LUMIO_ANY_GROUP, c, 1, 1), 0); /* nothing submitted */
    lumio_ring_close(r);
    lumio_ring_close(NULL);
    lumio_buffer_release(NULL);
}

TEST(backend_selection) {
    lumio_ring *r = ring_default();
    const char *env = getenv("LUMIO_BACKEND");
    if (env && !strcmp(env, "threads")) CHECK_EQ(lumio_ring_backend(r), LUMIO_BACKEND_THREADS);
    if (env && !strcmp(env, "uring")) CHECK_EQ(lumio_ring_backend(r), LUMIO_BACKEND_URING);
    lumio_ring_close(r);
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.backend = LUMIO_BACKEND_THREADS;
    r = ring_with(&o);
    CHECK_EQ(lumio_ring_backend(r), LUMIO_BACKEND_THREADS);
    lumio_ring_close(r);
}

static int discarded;
static void discard_fn(void *arg, lumio_completion *c) {
    (void)arg;
    free(c->out);
    discarded++;
}

TEST(destroy_with_work_in_flight) {
    free(make_file(tmp_path("inflight.bin"), 2 << 20, 5));
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.compute = hash_fn;
    o.discard = discard_fn;
    lumio_ring *r = ring_with(&o);
    char p[4096];
    snprintf(p, sizeof p, "%s", tmp_path("inflight.bin"));
    lumio_op op = {.kind = LUMIO_OP_GET, .path = p, .block_size = 4096};
    uint64_t g;
    for (int i = 0; i < 4; i++) CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
    lumio_completion c[4];
    int n = lumio_ring_wait(r, LUMIO_ANY_GROUP, c, 4, 1);
    CHECK(n > 0);
    for (int i = 0; i < n; i++) free(c[i].out);
    lumio_ring_close(r); /* leaks or crashes show under ASan */
    CHECK(discarded > 0);
}

/* Many threads each with their own ring, sharing nothing. */
static void *thread_main(void *arg) {
    const char *p = arg;
    lumio_ring *r = ring_default();
    lumio_op op = {.kind = LUMIO_OP_GET, .path = p, .block_size = 8192};
    uint64_t g;
    if (lumio_ring_submit(r, &op, 1, NULL, &g) < 0) return (void *)1;
    uint64_t total = 0;
    for (;;) {
        lumio_completion c[32];
        int n = lumio_ring_wait(r, g, c, 32, 1);
        if (n < 0) return (void *)1;
        if (n == 0) break;
        for (int i = 0; i < n; i++) {
            total += c[i].length;
            lumio_buffer_release(c[i].buffer);
        }
    }
    lumio_ring_close(r);
    return total == 500000 ? NULL : (void *)1;
}

TEST(rings_on_threads) {
    free(make_file(tmp_path("thr.bin"), 500000, 5));
    static char p[4096];
    snprintf(p, sizeof p, "%s", tmp_path("thr.bin"));
    pthread_t t[4];
    for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, thread_main, p) == 0);
    for (int i = 0; i < 4; i++) {
        void *res;
        pthread_join(t[i], &res);
        CHECK(res == NULL);
    }
}

TEST(strerror_covers_codes) {
    for (int c = LUMIO_E_LAST; c < LUMIO_E_BASE; c++)
        if (c != -5004) /* retired: canceling is -ECANCELED everywhere */
            CHECK(strcmp(lumio_strerror(c), "unknown error") != 0);
    CHECK(strcmp(lumio_strerror(-5004), "unknown error") == 0);
    CHECK(strstr(lumio_strerror(-ENOENT), "No such file") != NULL);
    CHECK(strcmp(lumio_version(), LUMIO_VERSION_STRING) == 0);
}

/* Regression: the last op to resolve has nothing to deliver, after every
 * other completion was handed out; the group must still end. */
TEST(end_after_late_empty_op) {
    free(make_file(tmp_path("late_a.bin"), 5, 1));
    free(make_file(tmp_path("late_empty.bin"), 0, 0));
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.max_open_files = 1; /* the empty file opens after a.bin's data is out */
    o.in_order = 1;
    lumio_ring *r = ring_with(&o);
    char pa[4096], pe[4096];
    snprintf(pa, sizeof pa, "%s", tmp_path("late_a.bin"));
    snprintf(pe, sizeof pe, "%s", tmp_path("late_empty.bin"));
    lumio_op ops[2] = {{.kind = LUMIO_OP_GET, .path = pa, .block_size = 4096},
                       {.kind = LUMIO_OP_GET, .path = pe, .block_size = 4096}};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, ops, 2, NULL, &g));
    lumio_completion c[4];
    int n = collect(r, g, c, 4);
    CHECK(n == 1 || n == 2); /* a.bin's block, and an end of its own if needed */
    CHECK_EQ(c[0].result, 0);
    CHECK_EQ(c[0].length, 5);
    CHECK_EQ(lumio_ring_pending_groups(r), 0);
    release_all(c, n);
    lumio_ring_close(r);
}

/* Regression: with the pool full of read data that the caller gives back only
 * once it is written, the writes must still be issued (a copy). */
TEST(writes_pass_reads_blocked_on_pool) {
    size_t size = 4 << 20;
    uint8_t *want = make_file(tmp_path("cp_src.bin"), size, 21);
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.max_buffers = 4;
    o.coalesce_gap = -1; /* one buffer per block */
    lumio_ring *r = ring_with(&o);
    char src[4096], dst[4096];
    snprintf(src, sizeof src, "%s", tmp_path("cp_src.bin"));
    snprintf(dst, sizeof dst, "%s", tmp_path("cp_dst.bin"));
    lumio_op get = {.kind = LUMIO_OP_GET, .path = src, .block_size = 65536};
    uint64_t gr;
    CHECK_RC(lumio_ring_submit(r, &get, 1, NULL, &gr));
    close(open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644));
    int reads = 0, writes = 0, ended = 0;
    while (writes < 64 || !ended) {
        lumio_completion c[8];
        int n = lumio_ring_wait(r, LUMIO_ANY_GROUP, c, 8, 1);
        CHECK(n > 0);
        if (n <= 0) break;
        for (int i = 0; i < n; i++) {
            CHECK_EQ(c[i].result, 0);
            if (c[i].group == gr) {
                ended |= (c[i].flags & LUMIO_CQE_GROUP_END) != 0;
                reads++;
                /* Write the block out; release its buffer once written. */
                lumio_range w = {.offset = (int64_t)c[i].offset,
                                 .length = c[i].length,
                                 .buf = c[i].data,
                                 .user_data = (uint64_t)(uintptr_t)c[i].buffer};
                lumio_op put = {.kind = LUMIO_OP_PUT, .path = dst, .ranges = &w, .nranges = 1};
                uint64_t gw;
                CHECK_RC(lumio_ring_submit(r, &put, 1, NULL, &gw));
            } else {
                writes++;
                lumio_buffer_release((lumio_buffer *)(uintptr_t)c[i].user_data);
            }
        }
    }
    CHECK_EQ(reads, 64);
    CHECK_EQ(writes, 64);
    uint8_t *back = read_file(dst, NULL);
    CHECK(back && memcmp(back, want, size) == 0);
    free(back);
    free(want);
    lumio_ring_close(r);
}

/* The io_uring extras that are off by default still read the right bytes. */
TEST(fixed_files_and_sqpoll) {
    enum { FILES = 6 };
    char paths[FILES][4096];
    uint8_t *want[FILES];
    for (int f = 0; f < FILES; f++) {
        char name[32];
        snprintf(name, sizeof name, "fx%d.bin", f);
        snprintf(paths[f], sizeof paths[f], "%s", tmp_path(name));
        want[f] = make_file(paths[f], 100000 + (size_t)f * 4099, 50 + f);
    }
    for (int mode = 0; mode < 2; mode++) {
        lumio_ring_options o;
        o = (lumio_ring_options){0};
        o.fixed_files = 1;
        o.sqpoll = mode;
        o.max_open_files = 2; /* slots are reused */
        lumio_ring *r = ring_with(&o);
        lumio_op ops[FILES];
        for (int f = 0; f < FILES; f++)
            ops[f] = (lumio_op){.kind = LUMIO_OP_GET,
                                .path = paths[f],
                                .block_size = 16384,
                                .user_data = (uint64_t)f << 32};
        uint64_t g;
        CHECK_RC(lumio_ring_submit(r, ops, FILES, NULL, &g));
        static lumio_completion c[64];
        int n = collect(r, g, c, 64);
        uint64_t total = 0;
        for (int i = 0; i < n; i++) {
            CHECK_EQ(c[i].result, 0);
            CHECK(memcmp(c[i].data, want[c[i].op_index] + c[i].offset, c[i].length) == 0);
            total += c[i].length;
        }
        CHECK_EQ(total, FILES * 100000ull + 4099ull * (FILES * (FILES - 1) / 2));
        release_all(c, n);
        lumio_ring_close(r);
    }
    for (int f = 0; f < FILES; f++) free(want[f]);
}

/* Regression: one part of a split range fails while others are in flight.
 * The range must complete once, with the error, after its last part; the
 * op's next range must read the right bytes. Run under the shim with
 * LUMIO_SHIM_EIO_AT=196608 (ctest ring_threads_part_fails); without it, the
 * first range simply succeeds. */
TEST(split_part_fails) {
    uint8_t *want = make_file(tmp_path("part.bin"), 1 << 20, 31);
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.max_io_size = 65536;
    o.queue_depth = 4;
    lumio_ring *r = ring_with(&o);
    uint8_t *dst = malloc(1 << 19);
    lumio_range rg[2] = {{.offset = 0, .length = 1 << 19, .buf = dst, .user_data = 1},
                         {.offset = 1 << 19, .length = 1 << 19, .user_data = 2}};
    char p[4096];
    snprintf(p, sizeof p, "%s", tmp_path("part.bin"));
    lumio_group_options go;
    go = (lumio_group_options){0};
    go.in_order = 1; /* keep the ranges in submission order */
    lumio_op op = {.kind = LUMIO_OP_GET, .path = p, .ranges = rg, .nranges = 2};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, &op, 1, &go, &g));
    lumio_completion c[4];
    int n = collect(r, g, c, 4);
    CHECK_EQ(n, 2);
    const lumio_completion *a = by_ud(c, n, 1), *b = by_ud(c, n, 2);
    CHECK(a && b);
    if (a && b) {
        if (getenv("LUMIO_SHIM_EIO_AT"))
            CHECK_EQ(a->result, -EIO);
        else
            CHECK(a->result == 0 && memcmp(dst, want, 1 << 19) == 0);
        CHECK_EQ(b->result, 0);
        CHECK(b->length == (1 << 19) && memcmp(b->data, want + (1 << 19), 1 << 19) == 0);
    }
    release_all(c, n);
    lumio_ring_close(r);
    free(dst);
    free(want);
}

/* ---- files without a trustworthy size: read until end of file ------------- */

typedef struct pipe_writer {
    pthread_t tid;
    int fd;
    const uint8_t *data;
    size_t size;
} pipe_writer;

/* Write in odd pieces, so reads see pieces of every size, then close. */
static void *pipe_write_main(void *arg) {
    pipe_writer *w = arg;
    size_t off = 0, piece = 1;
    while (off < w->size) {
        size_t n = LUMIO_TEST_MIN(piece, w->size - off);
        ssize_t k = write(w->fd, w->data + off, n);
        if (k <= 0) break;
        off += (size_t)k;
        piece = piece * 7 % 100003 + 1;
    }
    close(w->fd);
    return NULL;
}

/* A pipe fed by a thread with `size` bytes of seed's data; returns the read end. */
static int pipe_feed(pipe_writer *w, size_t size, uint64_t seed, uint8_t **data) {
    int fds[2];
    *data = NULL;
    signal(SIGPIPE, SIG_IGN); /* a reader that gave up: EPIPE ends the writer */
    if (pipe(fds) < 0) return -1;
    uint8_t *d = malloc(size ? size : 1);
    uint64_t s = seed;
    for (size_t i = 0; i < size; i++) d[i] = (uint8_t)rnd(&s);
    *w = (pipe_writer){.fd = fds[1], .data = d, .size = size};
    pthread_create(&w->tid, NULL, pipe_write_main, w);
    *data = d;
    return fds[0];
}

/* Concatenate a stream's blocks, checking that they come in order with
 * consecutive offsets, range indexes and user_data. */
static uint8_t *join_blocks(const lumio_completion *c, int n, uint64_t ud0, size_t *size) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += c[i].length;
    uint8_t *d = malloc(total ? total : 1);
    size_t off = 0;
    uint32_t idx = 0;
    for (int i = 0; i < n; i++) {
        if (c[i].range_index == LUMIO_NO_RANGE) continue; /* a group's own end */
        CHECK_EQ(c[i].result, 0);
        CHECK_EQ(c[i].offset, off);
        CHECK_EQ(c[i].range_index, idx);
        CHECK_EQ(c[i].user_data, ud0 + idx);
        CHECK(c[i].length > 0);
        memcpy(d + off, c[i].data, c[i].length);
        off += c[i].length;
        idx++;
    }
    *size = off;
    return d;
}

TEST(stream_pipe_in_blocks) {
    pipe_writer w;
    uint8_t *want = NULL;
    size_t size = 3000000;
    int fd = pipe_feed(&w, size, 21, &want);
    CHECK(fd >= 0);
    lumio_ring *r = ring_default();
    lumio_op op = {.kind = LUMIO_OP_GET, .fd = fd, .block_size = 65536, .user_data = 50};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
    static lumio_completion c[20000];
    int n = collect(r, g, c, 20000);
    size_t got;
    uint8_t *d = join_blocks(c, n, 50, &got);
    CHECK_EQ(got, size);
    CHECK(memcmp(d, want, size) == 0);
    for (int i = 0; i < n; i++) CHECK(c[i].length <= 65536);
    release_all(c, n);
    lumio_ring_close(r);
    close(fd);
    pthread_join(w.tid, NULL);
    free(d);
    free(want);
}

TEST(stream_pipe_whole) {
    pipe_writer w;
    uint8_t *want = NULL;
    size_t size = 1234567; /* the buffer grows from 64 KiB */
    int fd = pipe_feed(&w, size, 22, &want);
    lumio_ring *r = ring_default();
    lumio_op op = {.kind = LUMIO_OP_GET, .fd = fd, .user_data = 9};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
    lumio_completion c[4];
    int n = collect(r, g, c, 4);
    CHECK_EQ(n, 1);
    CHECK_EQ(c[0].result, 0);
    CHECK_EQ(c[0].user_data, 9);
    CHECK_EQ(c[0].length, size);
    CHECK(c[0].data && memcmp(c[0].data, want, size) == 0);
    release_all(c, n);
    close(fd);
    pthread_join(w.tid, NULL);
    free(want);
    /* A FIFO by path, and an empty pipe: one completion, no bytes. */
    CHECK(mkfifo(tmp_path("fifo"), 0600) == 0);
    char fifo[4096];
    snprintf(fifo, sizeof fifo, "%s", tmp_path("fifo"));
    fd = open(fifo, O_RDWR); /* keeps the engine's open from blocking */
    CHECK(write(fd, "fifo!", 5) == 5);
    lumio_op fop = {.kind = LUMIO_OP_GET, .path = fifo, .block_size = 4096};
    CHECK_RC(lumio_ring_submit(r, &fop, 1, NULL, &g));
    lumio_completion one;
    CHECK_EQ(lumio_ring_wait(r, g, &one, 1, 1), 1);
    CHECK(one.result == 0 && one.length == 5 && memcmp(one.data, "fifo!", 5) == 0);
    lumio_buffer_release(one.buffer);
    close(fd); /* the last writer: end of file for the engine */
    n = collect(r, g, c, 4);
    CHECK_EQ(n, 1);
    CHECK(c[0].range_index == LUMIO_NO_RANGE && c[0].length == 0);
    int fds[2];
    CHECK(pipe(fds) == 0);
    close(fds[1]);
    op = (lumio_op){.kind = LUMIO_OP_GET, .fd = fds[0]};
    CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
    n = collect(r, g, c, 4);
    CHECK_EQ(n, 1);
    CHECK(c[0].result == 0 && c[0].length == 0 && c[0].range_index == 0);
    release_all(c, n);
    close(fds[0]);
    lumio_ring_close(r);
}

/* What read() returns for the whole file. */
static uint8_t *slurp(const char *path, size_t *size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return NULL;
    size_t cap = 1 << 16, n = 0;
    uint8_t *d = malloc(cap);
    for (;;) {
        if (n == cap) d = realloc(d, cap *= 2);
        ssize_t k = read(fd, d + n, cap - n);
        if (k <= 0) break;
        n += (size_t)k;
    }
    close(fd);
    *size = n;
    return d;
}

/* /proc says 0 bytes, /sys 4096, whatever they hold. */
static void check_pseudo_file(const char *path) {
    size_t size;
    uint8_t *want = slurp(path, &size);
    if (!want) return;
    lumio_ring *r = ring_default();
    lumio_range whole = {.offset = 0, .length = LUMIO_WHOLE, .user_data = 1};
    lumio_op ops[2] = {{.kind = LUMIO_OP_GET, .path = path, .ranges = &whole, .nranges = 1},
                       {.kind = LUMIO_OP_GET, .path = path, .block_size = 7, .user_data = 10}};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, ops, 2, NULL, &g));
    lumio_completion c[4096];
    int n = collect(r, g, c, 4096);
    int whole_seen = 0;
    size_t blocks = 0;
    for (int i = 0; i < n; i++) {
        CHECK_EQ(c[i].result, 0);
        if (c[i].op_index == 0) {
            whole_seen++;
            CHECK_EQ(c[i].length, size);
            CHECK(memcmp(c[i].data, want, size) == 0);
        } else if (c[i].range_index != LUMIO_NO_RANGE) {
            CHECK(c[i].offset == (c[i].user_data - 10) * 7 && c[i].length <= 7);
            CHECK(memcmp(c[i].data, want + c[i].offset, c[i].length) == 0);
            blocks += c[i].length;
        }
    }
    CHECK_EQ(whole_seen, 1);
    CHECK_EQ(blocks, size);
    release_all(c, n);
    /* Ranges that need the size cannot have it; ranges past the end are
     * found by reading. */
    lumio_range rg[3] = {
        {.offset = -10, .length = 10, .user_data = 1},
        {.offset = 1 << 20, .length = 10, .user_data = 2},
        {.offset = 1 << 20, .length = 10, .user_data = 3, .flags = LUMIO_RANGE_ALLOW_SHORT}};
    lumio_op op = {.kind = LUMIO_OP_GET, .path = path, .ranges = rg, .nranges = 3};
    CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
    n = collect(r, g, c, 16);
    CHECK_EQ(n, 3);
    const lumio_completion *a = by_ud(c, n, 1), *b = by_ud(c, n, 2), *s = by_ud(c, n, 3);
    CHECK(a && a->result == -ESPIPE);
    CHECK(b && b->result == LUMIO_E_RANGE);
    CHECK(s && s->result == 0 && s->length == 0 && (s->flags & LUMIO_CQE_SHORT));
    release_all(c, n);
    lumio_ring_close(r);
    free(want);
}

TEST(stream_proc_and_sys) {
    check_pseudo_file("/proc/version");
    check_pseudo_file("/proc/self/mountinfo");
    check_pseudo_file("/sys/kernel/mm/transparent_hugepage/enabled");
    check_pseudo_file("/sys/devices/system/cpu/online");
}

TEST(stream_in_order_with_files) {
    size_t sa = 200000, sb = 5000;
    uint8_t *a = make_file(tmp_path("oa.bin"), sa, 31), *b = make_file(tmp_path("ob.bin"), sb, 32);
    char pa[4096], pb[4096];
    snprintf(pa, sizeof pa, "%s", tmp_path("oa.bin"));
    snprintf(pb, sizeof pb, "%s", tmp_path("ob.bin"));
    pipe_writer w;
    uint8_t *want = NULL;
    size_t sp = 500000;
    int fd = pipe_feed(&w, sp, 33, &want);
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.in_order = 1;
    o.max_buffers = 4; /* in order through a small pool: no deadlock */
    lumio_ring *r = ring_with(&o);
    lumio_op ops[3] = {{.kind = LUMIO_OP_GET, .path = pa, .block_size = 65536, .user_data = 0},
                       {.kind = LUMIO_OP_GET, .fd = fd, .block_size = 65536, .user_data = 1000},
                       {.kind = LUMIO_OP_GET, .path = pb, .user_data = 2000}};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, ops, 3, NULL, &g));
    size_t total = sa + sp + sb, off = 0;
    uint8_t *all = malloc(total);
    memcpy(all, a, sa);
    memcpy(all + sa, want, sp);
    memcpy(all + sa + sp, b, sb);
    uint32_t last_op = 0;
    for (bool ended = false; !ended;) {
        lumio_completion c[8];
        int n = lumio_ring_wait(r, g, c, 8, 1);
        CHECK(n > 0);
        if (n <= 0) break;
        for (int i = 0; i < n; i++) {
            ended |= (c[i].flags & LUMIO_CQE_GROUP_END) != 0;
            CHECK_EQ(c[i].result, 0);
            CHECK(c[i].op_index >= last_op);
            last_op = c[i].op_index;
            if (off + c[i].length <= total) CHECK(memcmp(c[i].data, all + off, c[i].length) == 0);
            off += c[i].length;
            lumio_buffer_release(c[i].buffer);
        }
    }
    CHECK_EQ(off, total);
    lumio_ring_close(r);
    close(fd);
    pthread_join(w.tid, NULL);
    free(all);
    free(a);
    free(b);
    free(want);
}

TEST(stream_larger_than_pool) {
    signal(SIGPIPE, SIG_IGN);
    pipe_writer w;
    uint8_t *want = NULL;
    int fd = pipe_feed(&w, 3 << 20, 41, &want);
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.max_bytes = 1 << 20;
    lumio_ring *r = ring_with(&o);
    lumio_op op = {.kind = LUMIO_OP_GET, .fd = fd};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
    lumio_completion c[4];
    int n = collect(r, g, c, 4);
    CHECK_EQ(n, 1);
    CHECK_EQ(c[0].result, LUMIO_E_TOOBIG);
    CHECK(!c[0].data && !c[0].buffer);
    lumio_ring_close(r);
    close(fd); /* the writer gets EPIPE and ends */
    pthread_join(w.tid, NULL);
    free(want);
}

TEST(stream_canceled) {
    int fds[2];
    CHECK(pipe(fds) == 0);
    CHECK(write(fds[1], "abc", 3) == 3);
    lumio_ring *r = ring_default();
    lumio_op op = {.kind = LUMIO_OP_GET, .fd = fds[0], .block_size = 4096};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
    lumio_completion c[8];
    CHECK_EQ(lumio_ring_wait(r, g, c, 1, 1), 1); /* "abc", the writer still open */
    CHECK(c[0].result == 0 && c[0].length == 3);
    lumio_buffer_release(c[0].buffer);
    CHECK_RC(lumio_ring_cancel(r, g));
    close(fds[1]); /* ends the read in flight */
    int n = collect(r, g, c, 8);
    CHECK(n >= 1);
    CHECK(c[n - 1].flags & LUMIO_CQE_GROUP_END);
    release_all(c, n);
    lumio_ring_close(r);
    close(fds[0]);
}

/* Blocks of a stream through the compute stage, in order and not; and a
 * ring destroyed with a stream half read (ASan checks that nothing leaks). */
TEST(stream_compute_and_destroy) {
    for (int in_order = 0; in_order < 2; in_order++) {
        pipe_writer w;
        uint8_t *want = NULL;
        size_t size = 1 << 20;
        int fd = pipe_feed(&w, size, 60 + (uint64_t)in_order, &want);
        lumio_ring_options o;
        o = (lumio_ring_options){0};
        o.compute = hash_fn;
        o.in_order = in_order;
        lumio_ring *r = ring_with(&o);
        lumio_op op = {.kind = LUMIO_OP_GET, .fd = fd, .block_size = 32768, .user_data = 7};
        uint64_t g;
        CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
        static lumio_completion c[4096];
        int n = collect(r, g, c, 4096);
        uint64_t total = 0, next = 0;
        for (int i = 0; i < n; i++) {
            if (c[i].range_index == LUMIO_NO_RANGE) continue;
            CHECK_EQ(c[i].result, 0);
            CHECK(c[i].out && c[i].offset + c[i].length <= size);
            if (in_order) CHECK_EQ(c[i].offset, next);
            next = c[i].offset + c[i].length;
            if (c[i].out && c[i].offset + c[i].length <= size)
                CHECK(*(uint64_t *)c[i].out == XXH64(want + c[i].offset, c[i].length, 0));
            total += c[i].length;
            free(c[i].out);
        }
        CHECK_EQ(total, size);
        release_all(c, n);
        lumio_ring_close(r);
        close(fd);
        pthread_join(w.tid, NULL);
        free(want);
    }
    int fds[2];
    CHECK(pipe(fds) == 0);
    CHECK(write(fds[1], "some bytes", 10) == 10);
    lumio_ring *r = ring_default();
    lumio_op ops[2] = {{.kind = LUMIO_OP_GET, .fd = fds[0], .block_size = 4},
                       {.kind = LUMIO_OP_GET, .path = "/proc/self/mountinfo"}};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, ops, 2, NULL, &g));
    lumio_completion c[2];
    CHECK(lumio_ring_wait(r, g, c, 1, 1) == 1);
    lumio_buffer_release(c[0].buffer);
    lumio_ring_close(r); /* blocks and a whole file not yet read, buffers held */
    close(fds[1]);
    close(fds[0]);
}

static void *slow_write_main(void *arg) {
    int fd = *(int *)arg;
    for (int i = 0; i < 3; i++) {
        usleep(30000);
        if (write(fd, "0123456789", 10) != 10) break;
    }
    close(fd);
    return NULL;
}

/* A non-blocking pipe that is often empty: the engine waits for data
 * (a poll) instead of spinning on EAGAIN; the count of reads shows it. */
TEST(stream_nonblocking_pipe) {
    int fds[2];
    CHECK(pipe(fds) == 0);
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    pthread_t tid;
    pthread_create(&tid, NULL, slow_write_main, &fds[1]);
    lumio_ring *r = ring_default();
    lumio_op op = {.kind = LUMIO_OP_GET, .fd = fds[0]};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
    lumio_completion c[2];
    int n = collect(r, g, c, 2);
    CHECK_EQ(n, 1);
    CHECK(c[0].result == 0 && c[0].length == 30 &&
          memcmp(c[0].data, "012345678901234567890123456789", 30) == 0);
    lumio_ring_stats st;
    lumio_ring_get_stats(r, &st);
    CHECK(st.reads < 100);
    release_all(c, n);
    lumio_ring_close(r);
    pthread_join(tid, NULL);
    close(fds[0]);
}

/* With few descriptors left, opens that meet EMFILE wait for a slot. */
static void emfile_waits(int in_order, int spare) {
    enum { N = 300 };
    static char paths[N][4096];
    static uint8_t *want[N];
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "fd%03d", i);
        snprintf(paths[i], sizeof paths[i], "%s", tmp_path(name));
        want[i] = make_file(paths[i], 100 + (size_t)i, 50 + (uint64_t)i);
    }
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.max_open_files = 256; /* more than the limit allows */
    o.max_buffers = 1024;   /* the test holds every completion */
    o.in_order = in_order;
    lumio_ring *r = ring_with(&o);
    struct rlimit old, low;
    getrlimit(RLIMIT_NOFILE, &old);
    int probe = open("/dev/null", O_RDONLY);
    low = old;
    low.rlim_cur = (rlim_t)probe + (rlim_t)spare;
    close(probe);
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
    lumio_op ops[N];
    for (int i = 0; i < N; i++)
        ops[i] = (lumio_op){.kind = LUMIO_OP_GET, .path = paths[i], .user_data = (uint64_t)i};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, ops, N, NULL, &g));
    static lumio_completion c[N + 1];
    int n = collect(r, g, c, N + 1);
    setrlimit(RLIMIT_NOFILE, &old);
    CHECK_EQ(n, N);
    for (int i = 0; i < n; i++) {
        CHECK_EQ(c[i].result, 0);
        if (c[i].result == 0) {
            CHECK_EQ(c[i].length, 100 + c[i].user_data);
            CHECK(memcmp(c[i].data, want[c[i].user_data], c[i].length) == 0);
        }
        if (in_order) CHECK_EQ(c[i].user_data, (uint64_t)i);
    }
    release_all(c, n);
    lumio_ring_close(r);
    for (int i = 0; i < N; i++) free(want[i]);
}

TEST(emfile_waits_for_a_slot) {
    emfile_waits(0, 12);
    emfile_waits(1, 12);
    emfile_waits(0, 2);
    emfile_waits(1, 2);
}

int main(void) {
    return run_tests("ring");
}
