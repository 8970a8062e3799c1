/* The exporter API (stream.h, "exporting"): misuse, write failures, and the
 * whole-file formats on extreme input, each file decoded back with a reader
 * of its own kind (jansson for speedscope and gecko; zlib and protobuf-c's
 * unpacking of the same profile.proto for pprof) into one line per sample,
 * "TID|root;...;leaf", compared with what was fed in. */
#include "tests/testutil.h"

#include "stream/pprof.pb-c.h"

#include <lumio/stream.h>

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <zlib.h>

static const char *const whole[] = {"speedscope", "gecko", "pprof"};

/* ---- lines: the samples as sorted text ---------------------------------- */

typedef struct lines {
    char **v;
    size_t n, cap;
} lines;

static void add(lines *l, const char *s) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        CHECK(l->v);
    }
    l->v[l->n++] = strdup(s);
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void check_same(lines *want, lines *got, const char *fmt) {
    if (want->n) qsort(want->v, want->n, sizeof *want->v, cmp);
    if (got->n) qsort(got->v, got->n, sizeof *got->v, cmp);
    if (want->n != got->n) FAIL("%s: %zu samples back, %zu in", fmt, got->n, want->n);
    for (size_t i = 0; i < want->n; i++)
        if (strcmp(want->v[i], got->v[i]))
            FAIL("%s: sample %zu: '%.200s' back, '%.200s' in", fmt, i, got->v[i], want->v[i]);
}

static void free_lines(lines *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* A growing string. */
typedef struct str {
    char *s;
    size_t n, cap;
} str;

static void put(str *b, const char *s) {
    size_t k = strlen(s);
    if (b->n + k + 1 > b->cap) {
        b->cap = (b->n + k + 1) * 2;
        b->s = realloc(b->s, b->cap);
        CHECK(b->s);
    }
    memcpy(b->s + b->n, s, k + 1);
    b->n += k;
}

/* s's line: "TID|" and the function names root first ("" for none). */
static void sample_line(str *b, uint64_t tid, const char *const *names, size_t n, bool leaf_first) {
    char head[32];
    b->n = 0;
    snprintf(head, sizeof head, "%" PRIu64 "|", tid);
    put(b, head);
    for (size_t i = 0; i < n; i++) {
        if (i) put(b, ";");
        put(b, names[leaf_first ? n - 1 - i : i]);
    }
}

/* ---- decoders ------------------------------------------------------------- */

static uint64_t tid_of_name(const char *name) {
    const char *t = strstr(name, "tid ");
    while (t && strstr(t + 1, "tid ")) t = strstr(t + 1, "tid ");
    CHECK(t);
    return strtoull(t + 4, NULL, 10);
}

static void speedscope_lines(const char *text, size_t len, lines *out) {
    json_error_t je;
    json_t *doc = json_loadb(text, len, 0, &je);
    if (!doc) FAIL("speedscope: not JSON: %s (line %d)", je.text, je.line);
    json_t *frames = json_object_get(json_object_get(doc, "shared"), "frames");
    size_t i, k;
    json_t *p, *s;
    str b = {0};
    const char **names = malloc(LUMIO_STREAM_MAX_DEPTH * sizeof *names);
    json_array_foreach(json_object_get(doc, "profiles"), i, p) {
        json_t *samples = json_object_get(p, "samples");
        CHECK_EQ(json_array_size(samples), json_array_size(json_object_get(p, "weights")));
        const char *pname = json_string_value(json_object_get(p, "name"));
        CHECK(pname);
        uint64_t tid = json_array_size(samples) ? tid_of_name(pname) : 0;
        json_array_foreach(samples, k, s) {
            size_t j;
            json_t *f;
            json_array_foreach(s, j, f) {
                json_t *fr = json_array_get(frames, (size_t)json_integer_value(f));
                CHECK(fr);
                names[j] = json_string_value(json_object_get(fr, "name"));
            }
            sample_line(&b, tid, names, json_array_size(s), false);
            add(out, b.s);
        }
    }
    free(names);
    free(b.s);
    json_decref(doc);
}

static void gecko_lines(const char *text, size_t len, lines *out) {
    json_error_t je;
    json_t *doc = json_loadb(text, len, 0, &je);
    if (!doc) FAIL("gecko: not JSON: %s (line %d)", je.text, je.line);
    json_t *strings = json_object_get(json_object_get(doc, "shared"), "stringArray"), *t;
    const char **names = malloc(LUMIO_STREAM_MAX_DEPTH * sizeof *names);
    str b = {0};
    size_t i;
    json_array_foreach(json_object_get(doc, "threads"), i, t) {
        json_t *st = json_object_get(t, "stackTable"), *ft = json_object_get(t, "frameTable");
        json_t *fn = json_object_get(t, "funcTable"), *sm = json_object_get(t, "samples");
        json_t *stacks = json_object_get(sm, "stack"), *times = json_object_get(sm, "time");
        CHECK_EQ(json_array_size(stacks), json_integer_value(json_object_get(sm, "length")));
        json_t *jt = json_object_get(t, "tid"); /* a number, or a string past 2^53 */
        uint64_t tid = json_is_string(jt) ? strtoull(json_string_value(jt), NULL, 10)
                                          : (uint64_t)json_integer_value(jt);
        if (json_is_string(jt)) CHECK(tid > (1ull << 53) - 1);
        if (!json_is_string(jt)) CHECK(json_is_integer(jt) && json_integer_value(jt) >= 0);
        for (size_t k = 0; k < json_array_size(stacks); k++) {
            if (k)
                CHECK(json_number_value(json_array_get(times, k - 1)) <=
                      json_number_value(json_array_get(times, k)));
            size_t n = 0;
            for (json_t *s = json_array_get(stacks, k); json_is_integer(s);) {
                json_int_t si = json_integer_value(s);
                json_t *fr = json_array_get(json_object_get(st, "frame"), (size_t)si);
                json_t *fu =
                    json_array_get(json_object_get(ft, "func"), (size_t)json_integer_value(fr));
                json_t *nm =
                    json_array_get(json_object_get(fn, "name"), (size_t)json_integer_value(fu));
                CHECK(fr && fu && nm && n < LUMIO_STREAM_MAX_DEPTH);
                names[n++] =
                    json_string_value(json_array_get(strings, (size_t)json_integer_value(nm)));
                json_t *prefix = json_array_get(json_object_get(st, "prefix"), (size_t)si);
                CHECK(json_is_null(prefix) || json_integer_value(prefix) < si);
                s = prefix;
            }
            sample_line(&b, tid, names, n, true);
            add(out, b.s);
        }
    }
    free(names);
    free(b.s);
    json_decref(doc);
}

static void pprof_lines(const char *data, size_t len, lines *out) {
    size_t cap = len * 8 + (1 << 20), n = 0;
    unsigned char *raw = malloc(cap);
    z_stream z = {.next_in = (unsigned char *)data, .avail_in = (uInt)len};
    CHECK(raw && inflateInit2(&z, 15 + 16) == Z_OK);
    int zr;
    do {
        if (n == cap) raw = realloc(raw, cap *= 2);
        z.next_out = raw + n;
        z.avail_out = (uInt)(cap - n);
        zr = inflate(&z, Z_NO_FLUSH);
        n = cap - z.avail_out;
    } while (zr == Z_OK);
    CHECK_EQ(zr, Z_STREAM_END);
    inflateEnd(&z);
    Lumio__Pprof__Profile *p = lumio__pprof__profile__unpack(NULL, n, raw);
    CHECK(p);
    CHECK(p->n_string_table > 0 && !strcmp(p->string_table[0], ""));
    CHECK_EQ(p->n_sample_type, 1);
    CHECK(!strcmp(p->string_table[p->sample_type[0]->type], "samples"));
    const char **names = malloc(LUMIO_STREAM_MAX_DEPTH * sizeof *names);
    str b = {0};
    for (size_t i = 0; i < p->n_sample; i++) {
        const Lumio__Pprof__Sample *s = p->sample[i];
        uint64_t tid = 0;
        for (size_t k = 0; k < s->n_label; k++)
            if (!strcmp(p->string_table[s->label[k]->key], "tid")) {
                const Lumio__Pprof__Label *l = s->label[k];
                CHECK(l->num >= 0); /* never a wrapped tid */
                tid = l->str ? strtoull(p->string_table[l->str], NULL, 10) : (uint64_t)l->num;
                if (l->str) CHECK(tid > INT64_MAX);
            }
        for (size_t k = 0; k < s->n_location_id; k++) {
            const Lumio__Pprof__Location *l = p->location[s->location_id[k] - 1];
            CHECK_EQ(l->id, s->location_id[k]);
            const Lumio__Pprof__Function *f = p->function[l->line[0]->function_id - 1];
            names[k] = p->string_table[f->name];
        }
        sample_line(&b, tid, names, s->n_location_id, true);
        for (int64_t c = 0; c < s->value[0]; c++) add(out, b.s);
    }
    free(names);
    free(b.s);
    lumio__pprof__profile__free_unpacked(p, NULL);
    free(raw);
}

/* ---- feeding ---------------------------------------------------------------- */

typedef struct feed {
    const lumio_sample *s;
    size_t n;
    const char *const *meta; /* key, value pairs, NULL-ended */
} feed;

/* Export f in format, decode it back, and compare. */
static void round_trip(const char *format, const feed *f) {
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    lumio_stream_exporter *e;
    CHECK_EQ(lumio_stream_exporter_create(&e, format, out, NULL), 0);
    for (size_t i = 0; f->meta && f->meta[i]; i += 2)
        CHECK_EQ(lumio_stream_exporter_meta(e, 0, f->meta[i], f->meta[i + 1]), 0);
    lines want = {0}, got = {0};
    str b = {0};
    const char **names = malloc(LUMIO_STREAM_MAX_DEPTH * sizeof *names);
    for (size_t i = 0; i < f->n; i++) {
        if (lumio_stream_exporter_sample(e, &f->s[i]) != 0)
            FAIL("%s: sample %zu: %s", format, i, lumio_stream_exporter_last_error(e, ERRBUF));
        for (uint32_t k = 0; k < f->s[i].depth; k++) names[k] = f->s[i].frames[k].function;
        sample_line(&b, f->s[i].thread_id, names, f->s[i].depth, true);
        add(&want, b.s);
    }
    if (lumio_stream_exporter_finish(e) != 0)
        FAIL("%s: finish: %s", format, lumio_stream_exporter_last_error(e, ERRBUF));
    lumio_stream_exporter_close(e);
    fclose(out);
    if (!strcmp(format, "speedscope")) speedscope_lines(buf, len, &got);
    if (!strcmp(format, "gecko")) gecko_lines(buf, len, &got);
    if (!strcmp(format, "pprof")) pprof_lines(buf, len, &got);
    check_same(&want, &got, format);
    free_lines(&want);
    free_lines(&got);
    free(names);
    free(b.s);
    free(buf);
}

static void every_format(const feed *f) {
    for (size_t i = 0; i < sizeof whole / sizeof *whole; i++) round_trip(whole[i], f);
}

/* ---- the cases -------------------------------------------------------------- */

TEST(empty_profile) {
    feed f = {0};
    every_format(&f);
}

/* Thread ids at the edges of the formats' integers: 2^53 (JavaScript's
 * exact range, gecko), 2^63 and 2^64-1 (pprof's int64 labels). Each comes
 * back exactly: no wrap to a negative number, no lost digits. */
TEST(huge_thread_ids) {
    lumio_frame fr = {.function = "work", .file = "w.c", .line = 3};
    lumio_sample s[4] = {
        {.timestamp_us = 10, .thread_id = 1ull << 53, .frames = &fr, .depth = 1},
        {.timestamp_us = 11, .thread_id = (1ull << 53) - 1, .frames = &fr, .depth = 1},
        {.timestamp_us = 12, .thread_id = 1ull << 63, .frames = &fr, .depth = 1},
        {.timestamp_us = 13, .thread_id = UINT64_MAX, .frames = &fr, .depth = 1}};
    feed f = {.s = s, .n = 4};
    every_format(&f);
}

TEST(frameless_samples) {
    lumio_frame fr = {.function = "work", .file = "w.c", .line = 3};
    lumio_sample s[4] = {{.timestamp_us = 10, .thread_id = 1},
                         {.timestamp_us = 20, .thread_id = 1, .frames = &fr, .depth = 1},
                         {.timestamp_us = 30, .thread_id = 2},
                         {.timestamp_us = 40, .thread_id = 1}};
    feed f = {s, 4, NULL};
    every_format(&f);
}

TEST(thousands_of_threads) {
    enum { T = 3000 };
    static lumio_sample s[2 * T];
    lumio_frame fr[2] = {{.function = "leaf", .file = "a.py", .line = 2},
                         {.function = "main", .file = "a.py", .line = 1}};
    for (size_t i = 0; i < 2 * T; i++)
        s[i] = (lumio_sample){.timestamp_us = 1000 + i,
                              .thread_id = 100000 + i % T,
                              .frames = fr + (i / T),
                              .depth = 2 - (uint32_t)(i / T)};
    static const char *const meta[] = {"thread_name", "100007 worker seven", "interval_us", "100",
                                       NULL};
    feed f = {s, 2 * T, meta};
    every_format(&f);
}

TEST(deepest_stacks) {
    static lumio_frame fr[LUMIO_STREAM_MAX_DEPTH];
    static char names[LUMIO_STREAM_MAX_DEPTH][16];
    for (int i = 0; i < LUMIO_STREAM_MAX_DEPTH; i++) {
        snprintf(names[i], sizeof names[i], "f%d", i % 97);
        fr[i] = (lumio_frame){.function = names[i], .file = "deep.c", .line = (uint32_t)i};
    }
    lumio_sample s[3] = {
        {.timestamp_us = 5, .thread_id = 9, .frames = fr, .depth = LUMIO_STREAM_MAX_DEPTH},
        {.timestamp_us = 6, .thread_id = 9, .frames = fr + 1, .depth = LUMIO_STREAM_MAX_DEPTH - 1},
        {.timestamp_us = 7, .thread_id = 9, .frames = fr, .depth = LUMIO_STREAM_MAX_DEPTH}};
    feed f = {s, 3, NULL};
    every_format(&f);
    /* One frame more is refused, naming the limit. */
    lumio_frame more[LUMIO_STREAM_MAX_DEPTH + 1];
    memcpy(more, fr, sizeof fr);
    more[LUMIO_STREAM_MAX_DEPTH] = fr[0];
    lumio_sample big = {.thread_id = 1, .frames = more, .depth = LUMIO_STREAM_MAX_DEPTH + 1};
    for (size_t i = 0; i < 3; i++) {
        lumio_stream_exporter *e;
        FILE *null = fopen("/dev/null", "w");
        CHECK_EQ(lumio_stream_exporter_create(&e, whole[i], null, NULL), 0);
        CHECK_EQ(lumio_stream_exporter_sample(e, &big), -EINVAL);
        CHECK(strstr(lumio_stream_exporter_last_error(e, ERRBUF), "4096"));
        lumio_stream_exporter_close(e);
        fclose(null);
    }
}

TEST(names_of_any_bytes) {
    /* Valid UTF-8 of every kind comes back as it went in. */
    lumio_frame fr[5] = {
        {.function = "quote\" back\\slash", .file = "tab\there.py", .line = 1},
        {.function = "ctl\x01\x1f del\x7f", .file = "", .line = 0},
        {.function = "semi;colon", .file = "a;b.c", .line = 7},
        {.function = "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\xa5", .file = "x"},
        {.function = "", .file = "noname.c", .line = 9}};
    lumio_sample s[3] = {
        {.timestamp_us = 3, .thread_id = 4, .frames = fr, .depth = 5},
        {.timestamp_us = 1, .thread_id = 4, .frames = fr + 2, .depth = 3},
        {.timestamp_us = 2, .thread_id = UINT64_MAX >> 12, .frames = fr + 1, .depth = 1}};
    static const char *const meta[] = {
        "thread_name", "4 na\"me\\ \xe2\x82\xac", "source", "perf \"script\"", "command", "a\nb",
        NULL};
    feed f = {s, 3, meta}; /* (out of time order too) */
    every_format(&f);
    /* Invalid UTF-8 still makes valid JSON (U+FFFD), and pprof keeps it. */
    lumio_frame bad = {.function = "\xff\xc3(\xed\xa0\x80 \xf4\x90\x80\x80", .file = "\x80"};
    lumio_sample b = {.thread_id = 1, .frames = &bad, .depth = 1};
    for (size_t i = 0; i < 3; i++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&buf, &len);
        lumio_stream_exporter *e;
        CHECK_EQ(lumio_stream_exporter_create(&e, whole[i], out, NULL), 0);
        CHECK_EQ(lumio_stream_exporter_meta(e, 0, "thread_name", "1 \xfe\xfe"), 0);
        CHECK_EQ(lumio_stream_exporter_sample(e, &b), 0);
        CHECK_EQ(lumio_stream_exporter_finish(e), 0);
        lumio_stream_exporter_close(e);
        fclose(out);
        lines got = {0};
        if (i == 0) speedscope_lines(buf, len, &got);
        if (i == 1) gecko_lines(buf, len, &got);
        if (i == 2) pprof_lines(buf, len, &got);
        CHECK_EQ(got.n, 1);
        CHECK(i == 2 ? strstr(got.v[0], bad.function) != NULL
                     : strstr(got.v[0], "\xef\xbf\xbd") != NULL);
        free_lines(&got);
        free(buf);
    }
}

TEST(misuse) {
    lumio_stream_exporter *e = (void *)1;
    FILE *null = fopen("/dev/null", "w");
    CHECK_EQ(lumio_stream_exporter_create(NULL, "gecko", null, NULL), -EINVAL);
    CHECK_EQ(lumio_stream_exporter_create(&e, NULL, null, NULL), -EINVAL);
    CHECK_EQ(lumio_stream_exporter_create(&e, "gecko", NULL, NULL), -EINVAL);
    CHECK_EQ(lumio_stream_exporter_create(&e, "flamegraph.svg", null, NULL), -EINVAL);
    CHECK(e == NULL);
    const char *msg = lumio_stream_exporter_last_error(NULL, ERRBUF);
    CHECK(strstr(msg, "flamegraph.svg") && strstr(msg, "speedscope") && strstr(msg, "pprof"));
    lumio_stream_export_options o = {.reserved[5] = 1};
    CHECK_EQ(lumio_stream_exporter_create(&e, "pprof", null, &o), -EINVAL);
    CHECK(strstr(lumio_stream_exporter_last_error(NULL, ERRBUF), "reserved"));
    size_t k = 0;
    while (lumio_stream_export_format(k)) k++;
    CHECK(k >= 5);
    CHECK(lumio_stream_export_format(SIZE_MAX) == NULL);
    lumio_frame fr = {.function = "f", .file = "f.c"};
    for (size_t i = 0; i < 3; i++) {
        CHECK_EQ(lumio_stream_exporter_create(&e, whole[i], null, NULL), 0);
        lumio_sample s = {.thread_id = 1, .frames = &fr, .depth = 1};
        CHECK_EQ(lumio_stream_exporter_sample(e, NULL), -EINVAL);
        CHECK_EQ(lumio_stream_exporter_meta(e, 0, NULL, "x"), -EINVAL);
        lumio_sample nof = {.thread_id = 1, .depth = 2};
        CHECK_EQ(lumio_stream_exporter_sample(e, &nof), -EINVAL);
        s.reserved[1] = 7;
        CHECK_EQ(lumio_stream_exporter_sample(e, &s), -EINVAL);
        CHECK(strstr(lumio_stream_exporter_last_error(e, ERRBUF), "reserved"));
        s.reserved[1] = 0;
        CHECK_EQ(lumio_stream_exporter_sample(e, &s), 0);
        CHECK_EQ(lumio_stream_exporter_finish(e), 0);
        CHECK_EQ(lumio_stream_exporter_sample(e, &s), -EINVAL);
        CHECK(strstr(lumio_stream_exporter_last_error(e, ERRBUF), "after finish"));
        CHECK_EQ(lumio_stream_exporter_meta(e, 0, "k", "v"), -EINVAL);
        CHECK_EQ(lumio_stream_exporter_finish(e), 0); /* once is enough; again is nothing */
        lumio_stream_exporter_close(e);
    }
    lumio_stream_exporter_close(NULL);
    CHECK_EQ(lumio_stream_exporter_finish(NULL), -EINVAL);
    fclose(null);
}

TEST(write_failure_is_eio_with_a_text) {
    FILE *full = fopen("/dev/full", "w");
    if (!full) SKIP("no /dev/full");
    lumio_frame fr = {.function = "f", .file = "f.c", .line = 1};
    for (size_t k = 0; lumio_stream_export_format(k); k++) {
        const char *format = lumio_stream_export_format(k);
        lumio_stream_exporter *e;
        CHECK_EQ(lumio_stream_exporter_create(&e, format, full, NULL), 0);
        int rc = 0;
        for (int i = 0; i < 20000 && rc == 0; i++) {
            lumio_sample s = {
                .timestamp_us = (uint64_t)i, .thread_id = 1, .frames = &fr, .depth = 1};
            rc = lumio_stream_exporter_sample(e, &s);
        }
        if (rc == 0) rc = lumio_stream_exporter_finish(e);
        if (rc != -EIO) FAIL("%s: %d, not -EIO, on /dev/full", format, rc);
        const char *msg = lumio_stream_exporter_last_error(e, ERRBUF);
        if (!strstr(msg, format) || !strstr(msg, "writing"))
            FAIL("%s: the text '%s' says neither the format nor the write", format, msg);
        lumio_stream_exporter_close(e);
        clearerr(full);
    }
    fclose(full);
}

int main(void) {
    return run_tests("export");
}
