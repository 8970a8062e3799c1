/* The importers of austin, speedscope and tachyon and the tachyon exporter,
 * through the public calls: exact samples and records from hand-written
 * input, a round trip stream -> tachyon -> import with every field kept,
 * and hostile input (truncations at every length, offsets and counts that
 * lie, a 2^32 string length, malformed text and JSON) refused with a text
 * that names the place. tests/profile_import_test.py checks the same
 * against an independent codec and fixtures from the command line. */
#include "tests/testutil.h"

#include <lumio/stream.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <zstd.h>

/* ---- what an import handed over --------------------------------------------- */

#define MAXS 4096
typedef struct got {
    int n, nmeta;
    uint64_t ts[MAXS], tid[MAXS];
    uint8_t status[MAXS];
    char stack[MAXS][200]; /* "inner@file:line<outer@..." */
    char meta[64][160];    /* "key=value" */
    int stop_at;
} got;

static int on_sample(void *arg, const lumio_sample *s) {
    got *g = arg;
    if (g->n < MAXS) {
        g->ts[g->n] = s->timestamp_us;
        g->tid[g->n] = s->thread_id;
        g->status[g->n] = s->status;
        char *p = g->stack[g->n];
        size_t left = sizeof g->stack[0];
        p[0] = '\0';
        for (uint32_t i = 0; i < s->depth && left > 1; i++) {
            int k = snprintf(p, left, "%s%s@%s:%u", i ? "<" : "", s->frames[i].function,
                             s->frames[i].file, s->frames[i].line);
            if (k < 0 || (size_t)k >= left) break;
            p += k, left -= (size_t)k;
        }
    }
    g->n++;
    return g->stop_at && g->n == g->stop_at ? 1 : 0;
}

static int on_meta(void *arg, uint64_t ts, const char *key, const char *value) {
    got *g = arg;
    (void)ts;
    if (g->nmeta < 64) snprintf(g->meta[g->nmeta], sizeof g->meta[0], "%s=%s", key, value);
    g->nmeta++;
    return 0;
}

static bool has_meta(const got *g, const char *kv) {
    for (int i = 0; i < g->nmeta && i < 64; i++)
        if (!strcmp(g->meta[i], kv)) return true;
    return false;
}

static int import_mem(const char *format, const void *data, size_t n, got *g) {
    FILE *f = fmemopen((void *)data, n, "r");
    if (!f) return -errno;
    int rc = lumio_stream_import_records(f, format, on_sample, on_meta, g);
    fclose(f);
    return rc;
}

static const char *last_error(void) {
    static char buf[LUMIO_ERROR_MAX];
    return lumio_stream_reader_last_error(NULL, buf, sizeof buf);
}

#define CHECK_ERR(rc, want)                                                                        \
    do {                                                                                           \
        int rc__ = (rc);                                                                           \
        if (rc__ >= 0 || !strstr(last_error(), want))                                              \
            FAIL("rc %d, error \"%s\", expected one with \"%s\"", rc__, last_error(), want);       \
    } while (0)

/* ---- austin -------------------------------------------------------------------------- */

TEST(austin3_exact) {
    static const char text[] = "# austin: 3.6.0\r\n# interval: 100\r\n# mode: wall\r\n"
                               "P12;T0:7f01;/a.py:<module>:3;/a.py:main:9 120\r\n"
                               "P12;T0:7f02;C:\\w\\b.py:run:5 80\r\n"
                               "P12;T0:7f01 30\r\n"
                               "P12;T0:7f01;/a.py:<module>:3;/a.py:main:10 100\r\n"
                               "# duration: 330\r\n"
                               "P12;T0:7f01;/a.py:<mod";
    got g = {0};
    CHECK_RC(import_mem("austin", text, strlen(text), &g));
    CHECK_EQ(g.n, 4);
    CHECK_STREQ(g.stack[0], "main@/a.py:9<<module>@/a.py:3");
    CHECK_EQ(g.tid[0], 0x7f01);
    CHECK_EQ(g.ts[0], 120);
    CHECK_STREQ(g.stack[1], "run@C:\\w\\b.py:5");
    CHECK_EQ(g.ts[1], 80); /* each thread its own clock */
    CHECK_STREQ(g.stack[2], "");
    CHECK_EQ(g.ts[2], 150);
    CHECK_EQ(g.ts[3], 250);
    CHECK(has_meta(&g, "source=austin 3.6.0") && has_meta(&g, "interval_us=100"));
    CHECK(has_meta(&g, "duration=330") && has_meta(&g, "mode=wall"));
}

TEST(austin_full_and_v1) {
    static const char full[] = "P1;T0:a;f.py:g:1 100,1,-20\nP1;T0:a;f.py:g:1 50,0,30\n";
    got g = {0};
    CHECK_RC(import_mem("austin", full, strlen(full), &g));
    CHECK_EQ(g.n, 2);
    CHECK_EQ(g.status[0], 0); /* idle */
    CHECK_EQ(g.status[1], 2); /* on CPU */
    CHECK_EQ(g.ts[1], 150);
    static const char v1[] = "Process 9;Thread 55a0;<module> (/x.py);L4;f (/x.py);L2 1107\n"
                             "Thread 55a0;<module> (/x.py:4);f (/x.py:3) 20 8 0\n"
                             "Thread 1234 55\n";
    got h = {0};
    CHECK_RC(import_mem("austin", v1, strlen(v1), &h));
    CHECK_EQ(h.n, 3);
    CHECK_STREQ(h.stack[0], "f@/x.py:2<<module>@/x.py:4");
    CHECK_STREQ(h.stack[1], "f@/x.py:3<<module>@/x.py:4");
    CHECK_EQ(h.ts[1], 1127);
    CHECK_EQ(h.tid[2], 0x1234);
    CHECK_STREQ(h.stack[2], "");
}

TEST(austin_errors_name_the_line) {
    got g = {0};
    CHECK_ERR(import_mem("austin", "# austin: 3\nP1;T0:1;a:b:1 9\nhello world\n", 40, &g),
              "line 3 (byte 28): not an austin sample");
    CHECK_ERR(import_mem("austin", "P1;T0:1;a:b:1\n", 14, &g), "line 1 (byte 0): no metric");
    CHECK_ERR(import_mem("austin", "Thread 1;L3;f (a) 5\n", 20, &g), "a line number with no frame");
    CHECK_ERR(import_mem("austin", "P1;T0:1;a:b:1 -5\n", 17, &g), "a negative time");
    static const char wrap[] =
        "P1;T0:1;a:b:1 9223372036854775807\nP1;T0:1;a:b:1 9223372036854775807\n"
        "P1;T0:1;a:b:1 9\n";
    CHECK_ERR(import_mem("austin", wrap, sizeof wrap - 1, &g),
              "line 3 (byte 68): the thread's clock");
}

/* ---- speedscope ------------------------------------------------------------------------ */

TEST(speedscope_exact_and_hostile) {
    static const char doc[] =
        "{\"exporter\":\"py-spy\",\"shared\":{\"frames\":[{\"name\":\"main\",\"file\":\"a.py\","
        "\"line\":3},"
        "{\"name\":\"f\"}]},\"profiles\":[{\"type\":\"sampled\",\"name\":\"77 "
        "worker\",\"unit\":\"none\","
        "\"startValue\":0,\"endValue\":3,\"samples\":[[0,1],[0]],\"weights\":[2,1]}]}";
    got g = {0};
    CHECK_RC(import_mem("speedscope", doc, strlen(doc), &g));
    CHECK_EQ(g.n, 3);
    CHECK_STREQ(g.stack[0], "f@:0<main@a.py:3");
    CHECK_STREQ(g.stack[1], g.stack[0]);
    CHECK_STREQ(g.stack[2], "main@a.py:3");
    CHECK_EQ(g.tid[0], 77);
    CHECK_EQ(g.ts[2], 2);
    CHECK(has_meta(&g, "thread_name=77 worker") && has_meta(&g, "source=speedscope py-spy"));
    static const struct {
        const char *json, *want;
    } bad[] = {
        {"[1,2]", "not a JSON object"},
        {"{\"shared\":{\"frames\":[]}}", "profiles: missing"},
        {"{\"shared\":{\"frames\":[{\"name\":1}]},\"profiles\":[]}", "shared.frames[0].name"},
        {"{\"shared\":{\"frames\":[]},\"profiles\":[{\"type\":\"evented\"}]}", "profiles[0].type"},
        {"{\"shared\":{\"frames\":[]},\"profiles\":[{\"type\":\"sampled\",\"unit\":\"parsecs\"}]}",
         "profiles[0].unit"},
        {"{\"shared\":{\"frames\":[]},\"profiles\":[{\"type\":\"sampled\",\"unit\":\"none\","
         "\"samples\":[[]],\"weights\":[]}]}",
         "1 samples but 0 weights"},
        {"{\"shared\":{\"frames\":[]},\"profiles\":[{\"type\":\"sampled\",\"unit\":\"none\","
         "\"samples\":[[-1]],\"weights\":[1]}]}",
         "profiles[0].samples[0][0]: not a frame index"},
        {"{\"shared\":{\"frames\":[]},\"profiles\":[{\"type\":\"sampled\",\"unit\":\"none\","
         "\"samples\":[[],[]],\"weights\":[999999999,999999999]}]}",
         "profiles[0].weights[1]: the samples exceed the limit"},
        {"{\"shared\":{\"frames\":[]},\"profiles\":[{\"type\":\"sampled\",\"unit\":\"none\","
         "\"samples\":[[]],\"weights\":[1e300]}]}",
         "profiles[0].weights[0]: not an integer"},
        {"{\"a\":", "not JSON: line 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        got h = {0};
        CHECK_ERR(import_mem("speedscope", bad[i].json, strlen(bad[i].json), &h), bad[i].want);
        CHECK_EQ(h.n, 0); /* nothing from a file that does not validate */
    }
}

/* ---- tachyon --------------------------------------------------------------------------- */

/* A profile of nthreads threads, exported to tachyon in memory. */
static char *export_tachyon(size_t *len, int nsamples, const lumio_frame *pool, int npool) {
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    lumio_stream_exporter *e;
    if (!f || lumio_stream_exporter_create(&e, "tachyon", f, NULL) < 0) return NULL;
    lumio_stream_exporter_meta(e, 0, "python_version", "3.15.1");
    lumio_stream_exporter_meta(e, 0, "interval_us", "250");
    lumio_frame stack[300];
    uint64_t x = 12345;
    for (int i = 0; i < nsamples; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        uint32_t depth = (uint32_t)(x >> 33) % 12;
        if (i % 97 == 0) depth = 300; /* deeper than the format keeps */
        for (uint32_t d = 0; d < depth; d++) stack[d] = pool[(x >> (d % 50)) % (uint64_t)npool];
        if (i % 3 == 1 && depth > 2) depth -= 2; /* shared bottoms: SUFFIX, POP_PUSH */
        lumio_sample s = {.timestamp_us = 1000000 + (uint64_t)i * 10 - (i % 50 == 7 ? 3000 : 0),
                          .thread_id = (x >> 40) % 3 + 100,
                          .status = (uint8_t)(x >> 50),
                          .frames = stack,
                          .depth = depth};
        if (lumio_stream_exporter_sample(e, &s) < 0) return NULL;
    }
    int rc = lumio_stream_exporter_finish(e);
    lumio_stream_exporter_close(e);
    fclose(f);
    if (rc < 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static const lumio_frame pool[] = {{"main", "a.py", 1, {0}}, {"f", "a.py", 10, {0}},
                                   {"g", "b.py", 20, {0}},   {"h", "", 0, {0}},
                                   {"ünï", "c.py", 7, {0}},  {"main", "a.py", 2, {0}}};

TEST(tachyon_round_trip) {
    size_t len;
    char *bin = export_tachyon(&len, 3000, pool, 6);
    CHECK(bin != NULL);
    got *g = calloc(1, sizeof *g);
    CHECK_RC(import_mem("tachyon", bin, len, g)); /* fmemopen: no descriptor, spooled */
    CHECK_EQ(g->n, 3000);
    CHECK(has_meta(g, "python_version=3.15.1") && has_meta(g, "interval_us=250"));
    CHECK(has_meta(g, "rate_hz=4000") && has_meta(g, "source=tachyon v1 (Python 3.15.1)"));
    /* each thread's samples in order, with their fields */
    uint64_t last[3] = {0};
    int per[3] = {0};
    for (int i = 0; i < g->n && i < MAXS; i++) {
        CHECK(g->tid[i] >= 100 && g->tid[i] < 103);
        per[g->tid[i] - 100]++;
        last[g->tid[i] - 100] = g->ts[i];
    }
    CHECK_EQ(per[0] + per[1] + per[2], 3000);
    CHECK(last[0] && last[1] && last[2]);
    free(g);
    free(bin);
}

/* The tachyon exporter's file, damaged in every way the format can lie. */
TEST(tachyon_hostile) {
    size_t len;
    char *bin = export_tachyon(&len, 400, pool, 6);
    CHECK(bin != NULL && len > 200);
    got *g = calloc(1, sizeof *g);
    for (size_t cut = 0; cut < len; cut += cut < 200 ? 1 : 7) { /* every truncation fails */
        g->n = g->nmeta = 0;
        int rc = import_mem("tachyon", bin, cut, g);
        if (rc != LUMIO_E_FORMAT) FAIL("cut at %zu: rc %d (%s)", cut, rc, last_error());
    }
    CHECK_ERR(import_mem("tachyon", bin, 60, g), "60 bytes: too short");
    CHECK_ERR(import_mem("tachyon", bin, len - 1, g), "footer: the file size is");
    char *bad = malloc(len);
    struct {
        size_t at;
        uint8_t byte;
        const char *want;
    } cases[] = {
        {0, 0, "no TACH magic"},
        {4, 2, "format version 2 is not supported"},
        {56, 9, "compression 9 is not known"},
        {47, 0x7f, "table offsets"}, /* string table past the end */
        {len - 29, 0xff, "strings exceed lumio's limit of 16777216"}, /* count 2^32-ish */
        {len - 25, 0xff, "frames exceed lumio's limit of 16777216"},
        {len - 31, 0x40, "strings cannot fit"}, /* 16K strings in a small table */
        {len - 27, 0x40, "frames cannot fit"},
        {28, 0xff, "header: 511 samples, the data holds 400"},
        {36, 9, "header: 9 threads, the data holds 3"}, /* thread count lies */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memcpy(bad, bin, len);
        bad[cases[i].at] = (char)cases[i].byte;
        CHECK_ERR(import_mem("tachyon", bad, len, g), cases[i].want);
    }
    free(bad);
    free(g);
    free(bin);
}

/* Hand-made files: raw sample data, for the records' own checks. */
static size_t handmade(uint8_t *out, const uint8_t *rec, size_t nrec, const uint8_t *strtab,
                       size_t nstrtab, uint32_t nstr, uint64_t samples, uint32_t threads) {
    static const uint8_t frame[] = {0, 1, 2 * 5, 0, 1, 0, 255}; /* file 0, fn 1, line 5 */
    memset(out, 0, 64);
    uint64_t str_off = 64 + nrec, frame_off = str_off + nstrtab, size = frame_off + 7 + 32;
    uint32_t v32[] = {0x54414348, 1};
    memcpy(out, v32, 8);
    out[8] = 3, out[9] = 15;
    memcpy(out + 28, &samples, 8);
    memcpy(out + 36, &threads, 4);
    memcpy(out + 40, &str_off, 8);
    memcpy(out + 48, &frame_off, 8);
    memcpy(out + 64, rec, nrec);
    memcpy(out + str_off, strtab, nstrtab);
    memcpy(out + frame_off, frame, 7);
    uint8_t *f = out + frame_off + 7;
    memset(f, 0, 32);
    uint32_t nframes = 1;
    memcpy(f, &nstr, 4);
    memcpy(f + 4, &nframes, 4);
    memcpy(f + 8, &size, 8);
    return (size_t)size;
}

TEST(tachyon_records_checked) {
    static const uint8_t strtab[] = {4, 'a', '.', 'p', 'y', 4, 'm', 'a', 'i', 'n'};
    static const uint8_t big_string[] = {0x80, 0x80, 0x80, 0x80, 0x10, 'x'}; /* length 2^32 */
    uint8_t file[512];
    got *g = calloc(1, sizeof *g);
    /* thread 5: FULL depth 1 [frame 0], then REPEAT x2 */
    uint8_t ok[] = {5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 10, 3, 1, 0, 5,
                    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1,  0, 1, 4};
    size_t n = handmade(file, ok, sizeof ok, strtab, sizeof strtab, 2, 3, 1);
    CHECK_RC(import_mem("tachyon", file, n, g));
    CHECK_EQ(g->n, 3);
    CHECK_STREQ(g->stack[0], "main@a.py:5");
    CHECK_EQ(g->ts[0], 10);
    CHECK_EQ(g->ts[2], 12);
    CHECK_EQ(g->status[2], 4);
    uint8_t rec[sizeof ok];
    struct {
        size_t at;
        uint8_t v;
        const char *want;
    } cases[] = {
        {12, 7, "unknown encoding 7"},
        {16, 1, "a frame index 1 exceeds 0"},
        {15, 200, "a frame index"}, /* 200 frames: the record runs on */
        {30, 0x7f, "a repeat count"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memcpy(rec, ok, sizeof ok);
        rec[cases[i].at] = cases[i].v;
        n = handmade(file, rec, sizeof rec, strtab, sizeof strtab, 2, 3, 1);
        g->n = 0;
        int rc = import_mem("tachyon", file, n, g);
        if (rc >= 0 || (!strstr(last_error(), cases[i].want) && !strstr(last_error(), "cut short")))
            FAIL("case %zu: rc %d \"%s\"", i, rc, last_error());
    }
    /* a varint of more than 64 bits */
    memcpy(rec, ok, sizeof ok);
    memset(rec + 13, 0xff, 10);
    n = handmade(file, rec, sizeof rec, strtab, sizeof strtab, 2, 3, 1);
    CHECK_ERR(import_mem("tachyon", file, n, g), "overflows 64 bits");
    n = handmade(file, ok, sizeof ok, big_string, sizeof big_string, 1, 3, 1);
    CHECK_ERR(import_mem("tachyon", file, n, g),
              "string 0 at byte 99: length 4294967296 runs past");
    /* the callback stops it: its code, no text of ours */
    n = handmade(file, ok, sizeof ok, strtab, sizeof strtab, 2, 3, 1);
    g->n = 0;
    g->stop_at = 2;
    CHECK_EQ(import_mem("tachyon", file, n, g), -ECANCELED);
    CHECK_EQ(g->n, 2);
    free(g);
}

/* Records of 65536 threads, interleaved (each thread's turn comes after all
 * the others'), zstd-compressed: a 70 KB file of 2.6 million samples. A
 * thread found by a linear search made this quadratic (hours); with the
 * hash index it is a second. (The ctest timeout is the bound.) */
static int count_sample(void *arg, const lumio_sample *s) {
    uint64_t *n = arg;
    if (s->depth != 0 || s->thread_id == 0 || s->thread_id > 65536 || s->timestamp_us > 40)
        return 1;
    n[0]++;
    if (s->thread_id == 65536) n[1] = s->timestamp_us;
    return 0;
}

TEST(tachyon_many_threads_interleaved) {
    enum { T = 65536, C = 40, REC = 16 };
    uint8_t *cycle = malloc((size_t)T * REC);
    size_t zcap = ZSTD_compressBound((size_t)T * REC) * 2 + 4096;
    uint8_t *file = malloc(64 + zcap + 64);
    CHECK(cycle && file);
    for (uint32_t t = 0; t < T; t++) { /* FULL: delta 1, status 0, depth 0 */
        uint8_t *r = cycle + (size_t)t * REC;
        uint64_t tid = t + 1;
        memset(r, 0, REC);
        memcpy(r, &tid, 8);
        r[12] = 1, r[13] = 1;
    }
    ZSTD_CCtx *z = ZSTD_createCCtx();
    ZSTD_outBuffer out = {file + 64, zcap, 0};
    for (int c = 0; c < C; c++) {
        ZSTD_inBuffer in = {cycle, (size_t)T * REC, 0};
        ZSTD_EndDirective end = c == C - 1 ? ZSTD_e_end : ZSTD_e_continue;
        size_t r;
        do r = ZSTD_compressStream2(z, &out, &in, end);
        while (!ZSTD_isError(r) && (end == ZSTD_e_end ? r != 0 : in.pos < in.size));
        CHECK(!ZSTD_isError(r));
    }
    ZSTD_freeCCtx(z);
    static const uint8_t tables[] = {1, 'a', 0, 0, 2, 0, 1, 0, 255}; /* "a"; frame a:a:1 */
    uint64_t str_off = 64 + out.pos, frame_off = str_off + 2, size = str_off + sizeof tables + 32;
    uint64_t nsamples = (uint64_t)T * C;
    uint32_t head[2] = {0x54414348, 1}, threads = T, zstd = 1, counts[2] = {1, 1};
    memset(file, 0, 64);
    memcpy(file, head, 8);
    memcpy(file + 28, &nsamples, 8);
    memcpy(file + 36, &threads, 4);
    memcpy(file + 40, &str_off, 8);
    memcpy(file + 48, &frame_off, 8);
    memcpy(file + 56, &zstd, 4);
    memcpy(file + str_off, tables, sizeof tables);
    memset(file + str_off + sizeof tables, 0, 32);
    memcpy(file + str_off + sizeof tables, counts, 8);
    memcpy(file + str_off + sizeof tables + 8, &size, 8);
    FILE *f = fmemopen(file, size, "r");
    uint64_t n[2] = {0, 0};
    CHECK_RC(lumio_stream_import(f, "tachyon", count_sample, n));
    fclose(f);
    CHECK_EQ(n[0], nsamples);
    CHECK_EQ(n[1], C); /* the last thread's clock: C deltas of 1 */
    free(cycle);
    free(file);
}

/* A folded line's count is expanded into that many samples: a 25-byte file
 * must not stand for 2^64 of them (an import that never ends). */
/* lumio's tachyon exporter writes no more threads than its importer reads:
 * the 65537th thread is refused, naming the limit. */
TEST(tachyon_export_thread_limit) {
    FILE *null = fopen("/dev/null", "wb");
    lumio_stream_exporter *e;
    CHECK_EQ(lumio_stream_exporter_create(&e, "tachyon", null, NULL), 0);
    lumio_frame f = {.function = "f", .file = "a.py", .line = 1};
    int rc = 0;
    uint64_t tid = 1;
    for (; tid <= (1u << 16) + 1 && rc == 0; tid++) {
        lumio_sample smp = {.timestamp_us = tid, .thread_id = tid, .frames = &f, .depth = 1};
        rc = lumio_stream_exporter_sample(e, &smp);
    }
    CHECK_EQ(rc, -E2BIG);
    CHECK_EQ(tid - 1, (1u << 16) + 1);
    char err[LUMIO_ERROR_MAX];
    CHECK(strstr(lumio_stream_exporter_last_error(e, err, sizeof err), "more than 65536 threads"));
    lumio_stream_exporter_close(e);
    fclose(null);
}

TEST(folded_counts_capped) {
    got *g = calloc(1, sizeof *g);
    static const char ok[] = "main;f 3\nmain 2\n";
    CHECK_RC(import_mem("folded", ok, sizeof ok - 1, g));
    CHECK_EQ(g->n, 5);
    CHECK_STREQ(g->stack[0], "f@:0<main@:0");
    static const char huge[] = "main;f 1\nmain 18446744073709551615\n";
    g->n = 0;
    CHECK_ERR(import_mem("folded", huge, sizeof huge - 1, g),
              "line 2 (byte 9): a count of 18446744073709551615: the file's samples exceed the "
              "limit of 1000000000");
    CHECK_EQ(g->n, 1); /* none of line 2's */
    free(g);
}

TEST(unknown_format_and_nulls) {
    got g = {0};
    CHECK_ERR(import_mem("mojo", "x", 1, &g), "unknown format 'mojo'");
    CHECK_EQ(lumio_stream_import_records(NULL, "austin", on_sample, NULL, &g), -EINVAL);
}

int main(void) {
    return run_tests("profiles");
}
