/* Tests of the importers of `perf script` text and folded stacks, and of the
 * folded exporter: exact samples from hand-written text (every header and
 * frame variant, CRLF, missing blank lines, errors with their line), a
 * folded round trip, and the real profiles in tests/data/profiles (perf script output)
 * (skipped when absent), whose samples and frames are counted independently. */
#include "tests/testutil.h"

#include "src/stream/import.h"

#include <lumio/lumio.h>

#include <errno.h>
#include <zstd.h>
#include <unistd.h>

/* ---- a deep copy of every sample the importer hands over ---------------- */

#define MAX_GOT 16

typedef struct got_sample {
    uint64_t ts, tid;
    uint8_t status;
    uint32_t depth;
    lumio_frame *frames; /* strings strdup'ed */
} got_sample;

typedef struct collector {
    got_sample s[MAX_GOT];
    int n;       /* samples seen */
    int stop_at; /* return 7 from the n-th sample, when non-zero */
} collector;

static int collect(void *arg, const lumio_sample *s) {
    collector *c = arg;
    if (c->n < MAX_GOT) {
        got_sample *g = &c->s[c->n];
        *g = (got_sample){s->timestamp_us, s->thread_id, s->status, s->depth, NULL};
        g->frames = calloc(s->depth + 1, sizeof *g->frames);
        for (uint32_t i = 0; i < s->depth; i++)
            g->frames[i] = (lumio_frame){strdup(s->frames[i].function), strdup(s->frames[i].file),
                                         s->frames[i].line};
    }
    c->n++;
    return c->stop_at && c->n == c->stop_at ? 7 : 0;
}

static void collector_free(collector *c) {
    for (int i = 0; i < c->n && i < MAX_GOT; i++) {
        for (uint32_t k = 0; k < c->s[i].depth; k++) {
            free((char *)c->s[i].frames[k].function);
            free((char *)c->s[i].frames[k].file);
        }
        free(c->s[i].frames);
    }
    c->n = 0;
}

typedef int (*importer)(FILE *, lumio_import_fn, void *, char *, size_t);

static int import_text(importer imp, const char *text, collector *c, char *err, size_t errlen) {
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    if (!f) return -errno;
    err[0] = '\0';
    int rc = imp(f, collect, c, err, errlen);
    fclose(f);
    return rc;
}

static int check_frame(const got_sample *g, uint32_t i, const char *function, const char *file) {
    if (i < g->depth && strcmp(g->frames[i].function, function) == 0 &&
        strcmp(g->frames[i].file, file) == 0 && g->frames[i].line == 0)
        return 1;
    fprintf(stderr, "  frame %u: got \"%s\" \"%s\", expected \"%s\" \"%s\"\n", i,
            i < g->depth ? g->frames[i].function : "-", i < g->depth ? g->frames[i].file : "-",
            function, file);
    return 0;
}

/* ---- perf script ----------------------------------------------------------- */

/* Three samples: no TID, then PID/TID with a CPU and a COMM with a space,
 * then one without frames. */
static const char perf_text[] = "python3 12421   698.842810:     200040 cpu-clock:ppp: \n"
                                "\t           1487a get_common_indices+0x7a (inlined)\n"
                                "\t           15c12 init_cpu_features+0x582 (inlined)\n"
                                "\t           1a303 _dl_sysdep_start+0x33 (/usr/lib/ld.so)\n"
                                "\t           1ab77 _start+0x7 (/usr/lib/ld.so)\n"
                                "\n"
                                "Web Content 100/101 [003] 1.0000005: 1 cycles:u: \n"
                                "\tffffffff81000c82 asm_exc_page_fault+0x22 ([kernel.kallsyms])\n"
                                "\t           1be51 [unknown] (/usr/bin/gcc-12)\n"
                                "\t            5860 operator()(int) const+0x10 (/tmp/a (deleted))\n"
                                "\n"
                                "xz 7   2.9999995:     1 cpu-clock:ppp: \n"
                                "\n";

static void check_perf_text(const collector *c) {
    CHECK_EQ(c->n, 3);
    if (c->n != 3) return;
    const got_sample *g = &c->s[0];
    CHECK_EQ(g->ts, 698842810);
    CHECK_EQ(g->tid, 12421);
    CHECK_EQ(g->status, 0);
    CHECK_EQ(g->depth, 4);
    CHECK(check_frame(g, 0, "get_common_indices", "/usr/lib/ld.so"));
    CHECK(check_frame(g, 1, "init_cpu_features", "/usr/lib/ld.so"));
    CHECK(check_frame(g, 2, "_dl_sysdep_start", "/usr/lib/ld.so"));
    CHECK(check_frame(g, 3, "_start", "/usr/lib/ld.so"));
    g = &c->s[1];
    CHECK_EQ(g->ts, 1000001); /* 1.0000005 s rounds half up */
    CHECK_EQ(g->tid, 101);
    CHECK_EQ(g->depth, 3);
    CHECK(check_frame(g, 0, "asm_exc_page_fault", "[kernel.kallsyms]"));
    CHECK(check_frame(g, 1, "[unknown]", "/usr/bin/gcc-12"));
    CHECK(check_frame(g, 2, "operator()(int) const", "/tmp/a (deleted)"));
    g = &c->s[2];
    CHECK_EQ(g->ts, 3000000); /* 2.9999995 s carries into the seconds */
    CHECK_EQ(g->tid, 7);
    CHECK_EQ(g->depth, 0);
}

TEST(perf_samples_exact) {
    collector c = {0};
    char err[256];
    CHECK_EQ(import_text(lumio__import_perf_script, perf_text, &c, err, sizeof err), 0);
    CHECK_EQ(err[0], '\0');
    check_perf_text(&c);
    collector_free(&c);
}

/* The same text with CRLF line ends and without the blank lines. */
TEST(perf_crlf_and_no_blank_lines) {
    char text[sizeof perf_text * 2], *o = text;
    const char *prev = "\n";
    for (const char *p = perf_text; *p; p++) {
        if (*p == '\n' && *prev == '\n') continue; /* drop the blank lines */
        if (*p == '\n') *o++ = '\r';
        *o++ = *p;
        prev = p;
    }
    *o = '\0';
    collector c = {0};
    char err[256];
    CHECK_EQ(import_text(lumio__import_perf_script, text, &c, err, sizeof err), 0);
    check_perf_text(&c);
    collector_free(&c);
    /* and the last line without its line end */
    text[strlen(text) - 2] = '\0';
    CHECK_EQ(import_text(lumio__import_perf_script, text, &c, err, sizeof err), 0);
    check_perf_text(&c);
    collector_free(&c);
}

TEST(perf_time_and_frame_variants) {
    const char *text = "a 1 5.123456499: 1 e:\n"          /* --ns: rounds down */
                       "\t1 no_offset (/bin/a)\n"         /* symbol without +0x */
                       "\t2 no_dso+0x1\n"                 /* no dso at all */
                       "\t3\n"                            /* address only */
                       "\t4 only_inlined+0x2 (inlined)\n" /* nothing outside it */
                       "b 2/3 5.1: \n"
                       "c 4 18446744073709.551615: x\n"   /* the largest time that fits */
                       "d 5 18446744073709.5516154: x\n"; /* rounds down to it */
    collector c = {0};
    char err[256];
    CHECK_EQ(import_text(lumio__import_perf_script, text, &c, err, sizeof err), 0);
    CHECK_EQ(c.n, 4);
    if (c.n != 4) return;
    CHECK_EQ(c.s[0].ts, 5123456);
    CHECK_EQ(c.s[0].depth, 4);
    CHECK(check_frame(&c.s[0], 0, "no_offset", "/bin/a"));
    CHECK(check_frame(&c.s[0], 1, "no_dso", ""));
    CHECK(check_frame(&c.s[0], 2, "[unknown]", ""));
    CHECK(check_frame(&c.s[0], 3, "only_inlined", "[inlined]"));
    CHECK_EQ(c.s[1].ts, 5100000);
    CHECK_EQ(c.s[1].tid, 3);
    CHECK(c.s[2].ts == UINT64_MAX);
    CHECK(c.s[3].ts == UINT64_MAX);
    collector_free(&c);
}

/* Each text fails with LUMIO_E_FORMAT at the given line. */
TEST(perf_errors_name_the_line) {
    static const struct {
        const char *text;
        const char *line;
    } cases[] = {
        {"a 1 1.0: x\n\tff f (d)\n\ngarbage here\n", "line 4 ("},
        {"\tff f (d)\n", "line 1 ("},                          /* frame before any header */
        {"a 1 1.0: x\n\tzz f (d)\n", "line 2 ("},              /* not an address */
        {"a 1 1.0: x\n\na 1 1.0x: y\n", "line 3 ("},           /* bad time */
        {"a 1 1: x\n", "line 1 ("},                            /* time without fraction */
        {"a b 1.0: x\n", "line 1 ("},                          /* no TID */
        {"1 1.0: x\n", "line 1 ("},                            /* no COMM */
        {"a 1 99999999999999.0: x\n", "line 1 ("},             /* time overflows */
        {"a 1 18446744073709.5516155: x\n", "line 1 ("},       /* rounds past the top */
        {"a 1 1.0: x\r\n\r\n\r\nb 1/ 1.0: x\r\n", "line 4 ("}, /* bad PID/TID */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        collector c = {0};
        char err[256];
        int rc = import_text(lumio__import_perf_script, cases[i].text, &c, err, sizeof err);
        CHECK_EQ(rc, LUMIO_E_FORMAT);
        if (strncmp(err, cases[i].line, strlen(cases[i].line)) != 0)
            FAIL("case %zu: err \"%s\", expected %s", i, err, cases[i].line);
        collector_free(&c);
    }
    /* The samples before the error were delivered; a NULL err is fine. */
    collector c = {0};
    FILE *f = fmemopen((void *)cases[0].text, strlen(cases[0].text), "r");
    CHECK_EQ(lumio__import_perf_script(f, collect, &c, NULL, 0), LUMIO_E_FORMAT);
    CHECK_EQ(c.n, 1);
    fclose(f);
    collector_free(&c);
}

TEST(perf_callback_stops_import) {
    collector c = {.stop_at = 2};
    char err[256];
    CHECK_EQ(import_text(lumio__import_perf_script, perf_text, &c, err, sizeof err), 7);
    CHECK_EQ(c.n, 2);
    CHECK_EQ(err[0], '\0');
    collector_free(&c);
}

/* A stack at the limit and a 1 MB symbol are read whole; one frame more
 * than the limit is refused, naming the line and the limit (it used to be
 * cut silently). */
TEST(perf_deep_stack_and_long_line) {
    size_t cap = 64 * 5000 + (1 << 20) + 256, n = 0;
    char *text = malloc(cap);
    n += (size_t)snprintf(text + n, cap - n, "deep 1 1.0: x\n");
    for (int i = 0; i < LUMIO_STREAM_MAX_DEPTH; i++)
        n += (size_t)snprintf(text + n, cap - n, "\t%x f%d+0x1 (/lib/%d.so)\n", i, i, i);
    size_t deep_end = n;
    n += (size_t)snprintf(text + n, cap - n, "\nlong 2 2.0: x\n\t1 ");
    memset(text + n, 'y', 1 << 20);
    n += 1 << 20;
    snprintf(text + n, cap - n, " (/bin/long)\n");
    collector c = {0};
    char err[256];
    CHECK_EQ(import_text(lumio__import_perf_script, text, &c, err, sizeof err), 0);
    CHECK_EQ(c.n, 2);
    if (c.n == 2) {
        CHECK_EQ(c.s[0].depth, LUMIO_STREAM_MAX_DEPTH);
        CHECK(check_frame(&c.s[0], 0, "f0", "/lib/0.so"));
        CHECK(check_frame(&c.s[0], 4095, "f4095", "/lib/4095.so"));
        CHECK_EQ(c.s[1].depth, 1);
        CHECK_EQ(strlen(c.s[1].frames[0].function), 1 << 20);
        CHECK_EQ(strcmp(c.s[1].frames[0].file, "/bin/long"), 0);
    }
    collector_free(&c);
    snprintf(text + deep_end, cap - deep_end, "\tabc one_more (/lib/x.so)\n\n");
    collector d = {0};
    CHECK_EQ(import_text(lumio__import_perf_script, text, &d, err, sizeof err), LUMIO_E_FORMAT);
    CHECK(strstr(err, "line 4098 (") == err);
    CHECK(strstr(err, "deeper than the limit of 4096 frames") != NULL);
    CHECK_EQ(d.n, 0);
    collector_free(&d);
    free(text);
}

/* Over the format's limits in folded stacks: said, with the line, the size
 * and the limit; a symbol over 1 MiB in perf script likewise. */
TEST(limits_are_refused_by_name) {
    size_t cap = (2u << 20) + 64;
    char *text = malloc(cap);
    collector c = {0};
    char err[256];
    int n = snprintf(text, cap, "a;b 1\nmain;");
    memset(text + n, 'x', (1 << 20) + 1);
    snprintf(text + n + (1 << 20) + 1, cap - (size_t)n - (1 << 20) - 1, " 1\n");
    CHECK_EQ(import_text(lumio__import_collapsed, text, &c, err, sizeof err), LUMIO_E_FORMAT);
    CHECK(strstr(err, "line 2 (byte 6): a function name of 1048577 bytes exceeds the limit of "
                      "1048576") == err);
    CHECK(strlen(err) < 200); /* the line is not quoted whole */
    collector_free(&c);
    size_t k = 0;
    for (int i = 0; i < 4097; i++) k += (size_t)snprintf(text + k, cap - k, "f;");
    snprintf(text + k - 1, cap - k + 1, " 2\n");
    collector d = {0};
    CHECK_EQ(import_text(lumio__import_collapsed, text, &d, err, sizeof err), LUMIO_E_FORMAT);
    CHECK(strstr(err, "a stack of 4097 frames exceeds the limit of 4096") != NULL);
    collector_free(&d);
    n = snprintf(text, cap, "a 1 1.0: x\n\t1 ");
    memset(text + n, 'y', (1 << 20) + 1);
    snprintf(text + n + (1 << 20) + 1, cap - (size_t)n - (1 << 20) - 1, " (/bin/x)\n");
    collector e = {0};
    CHECK_EQ(import_text(lumio__import_perf_script, text, &e, err, sizeof err), LUMIO_E_FORMAT);
    CHECK(strstr(err, "a symbol of 1048577 bytes exceeds the limit of 1048576") != NULL);
    collector_free(&e);
    free(text);
}

/* Binary input: the message quotes it escaped and short, never raw. */
TEST(binary_input_is_quoted_escaped) {
    static const char bin[] = "\x7f"
                              "ELF\x02\x01\x1b[31m\xff\xfe and more text that goes on and on\n";
    collector c = {0};
    char err[256];
    CHECK_EQ(import_text(lumio__import_perf_script, bin, &c, err, sizeof err), LUMIO_E_FORMAT);
    for (const char *p = err; *p; p++) CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
    CHECK(strstr(err, "\\x7fELF\\x02\\x01\\x1b[31m\\xff\\xfe") != NULL);
    CHECK(strstr(err, "...") != NULL);
    collector_free(&c);
}

/* ---- folded stacks --------------------------------------------------------- */

/* Export runs of equal consecutive stacks as one line each. */
typedef struct folder {
    FILE *out;
    collector prev; /* the run's stack, in s[0] */
    uint64_t run;
    int rc;
} folder;

static int same_stack(const got_sample *g, const lumio_sample *s) {
    if (g->depth != s->depth) return 0;
    for (uint32_t i = 0; i < s->depth; i++)
        if (strcmp(g->frames[i].function, s->frames[i].function) != 0) return 0;
    return 1;
}

static void fold_flush(folder *f) {
    if (f->run == 0) return;
    const got_sample *g = &f->prev.s[0];
    lumio_sample s = {.frames = g->frames, .depth = g->depth};
    if (f->rc == 0) f->rc = lumio__export_collapsed_line(f->out, &s, f->run);
    collector_free(&f->prev);
    f->run = 0;
}

static int fold(void *arg, const lumio_sample *s) {
    folder *f = arg;
    CHECK_EQ(s->thread_id, 0);
    CHECK_EQ(s->status, 0);
    for (uint32_t i = 0; i < s->depth; i++) CHECK_EQ(s->frames[i].file[0], '\0');
    if (f->run && same_stack(&f->prev.s[0], s)) {
        f->run++;
        return 0;
    }
    fold_flush(f);
    f->run = 1;
    return collect(&f->prev, s);
}

TEST(collapsed_round_trip) {
    const char *text = "main;parse;read 2\n"
                       "main;parse 1\n"
                       "main;parse;read 3\n"
                       "solo 1\n"
                       "with space;f(a, b) 12\n"
                       "a;;b 1\n";
    char *got = NULL;
    size_t len = 0;
    folder f = {.out = open_memstream(&got, &len)};
    FILE *in = fmemopen((void *)text, strlen(text), "r");
    char err[256];
    CHECK_EQ(lumio__import_collapsed(in, fold, &f, err, sizeof err), 0);
    fold_flush(&f);
    fclose(in);
    CHECK_EQ(f.rc, 0);
    fclose(f.out);
    if (strcmp(got, text) != 0) FAIL("round trip:\n%s  expected:\n%s", got, text);
    free(got);
}

TEST(collapsed_samples_exact) {
    const char *text = "main;parse;read 2\r\n\r\n  \nmain 1"; /* CRLF, blanks, no last \n */
    collector c = {0};
    char err[256];
    CHECK_EQ(import_text(lumio__import_collapsed, text, &c, err, sizeof err), 0);
    CHECK_EQ(c.n, 3);
    if (c.n != 3) return;
    for (int i = 0; i < 3; i++) CHECK_EQ(c.s[i].ts, i); /* one running clock */
    CHECK_EQ(c.s[0].depth, 3);
    CHECK(check_frame(&c.s[0], 0, "read", ""));
    CHECK(check_frame(&c.s[0], 1, "parse", ""));
    CHECK(check_frame(&c.s[0], 2, "main", ""));
    CHECK_EQ(c.s[1].depth, 3);
    CHECK_EQ(c.s[2].depth, 1);
    CHECK(check_frame(&c.s[2], 0, "main", ""));
    collector_free(&c);
}

TEST(collapsed_errors_name_the_line) {
    static const struct {
        const char *text;
        const char *line;
    } cases[] = {
        {"a;b 1\nmain;foo\n", "line 2 ("},        /* no count */
        {"a;b x\n", "line 1 ("},                  /* not a number */
        {"a;b 1\n\n 5\n", "line 3 ("},            /* empty stack */
        {"a 99999999999999999999\n", "line 1 ("}, /* count overflows */
        {"a 5 \n", "line 1 ("},                   /* nothing after the last space */
        {"a -1\n", "line 1 ("},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        collector c = {0};
        char err[256];
        int rc = import_text(lumio__import_collapsed, cases[i].text, &c, err, sizeof err);
        CHECK_EQ(rc, LUMIO_E_FORMAT);
        if (strncmp(err, cases[i].line, strlen(cases[i].line)) != 0)
            FAIL("case %zu: err \"%s\", expected %s", i, err, cases[i].line);
        collector_free(&c);
    }
}

TEST(collapsed_export_escapes) {
    lumio_frame fr[3] = {{"in;ner", "x.c", 3}, {"mid\ndle\r", "", 0}, {"out", "", 0}};
    lumio_sample s = {.frames = fr, .depth = 3};
    char *got = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&got, &len);
    CHECK_EQ(lumio__export_collapsed_line(out, &s, 42), 0);
    s.depth = 0;
    CHECK_EQ(lumio__export_collapsed_line(out, &s, 1), -EINVAL);
    fclose(out);
    CHECK_EQ(strcmp(got, "out;mid dle ;in:ner 42\n"), 0);
    free(got);
}

/* ---- the real profiles ------------------------------------------------------ */

/* A FILE that reads a .zst file decompressed (fopencookie). */
typedef struct zfile {
    FILE *f;
    ZSTD_DCtx *d;
    ZSTD_inBuffer in;
    int eof;
    char buf[1 << 17];
} zfile;

static ssize_t zfile_read(void *cookie, char *buf, size_t size) {
    zfile *z = cookie;
    ZSTD_outBuffer out = {buf, size, 0};
    while (out.pos == 0 && !(z->eof && z->in.pos == z->in.size)) {
        if (z->in.pos == z->in.size) {
            z->in = (ZSTD_inBuffer){z->buf, fread(z->buf, 1, sizeof z->buf, z->f), 0};
            z->eof = z->in.size == 0;
        }
        if (ZSTD_isError(ZSTD_decompressStream(z->d, &out, &z->in))) return -1;
        if (z->eof) break;
    }
    return (ssize_t)out.pos;
}

static int zfile_close(void *cookie) {
    zfile *z = cookie;
    fclose(z->f);
    ZSTD_freeDCtx(z->d);
    free(z);
    return 0;
}

static FILE *zopen(const char *path) {
    zfile *z = calloc(1, sizeof *z);
    z->f = fopen(path, "rb");
    if (!z->f) {
        free(z);
        return NULL;
    }
    z->d = ZSTD_createDCtx();
    z->in = (ZSTD_inBuffer){z->buf, 0, 0};
    cookie_io_functions_t io = {.read = zfile_read, .close = zfile_close};
    return fopencookie(z, "r", io);
}

/* Independently of the importer: lines that start with a tab are frames,
 * other non-empty lines are headers. */
static void count_lines(const char *path, uint64_t *headers, uint64_t *frames) {
    FILE *f = zopen(path);
    char buf[1 << 16];
    size_t n;
    int at_start = 1;
    *headers = *frames = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < n; i++) {
            if (at_start && buf[i] == '\t') ++*frames;
            if (at_start && buf[i] != '\t' && buf[i] != '\n' && buf[i] != '\r') ++*headers;
            at_start = buf[i] == '\n';
        }
    }
    fclose(f);
}

typedef struct totals {
    uint64_t samples, frames, bad_frames;
} totals;

static int total(void *arg, const lumio_sample *s) {
    totals *t = arg;
    t->samples++;
    t->frames += s->depth;
    for (uint32_t i = 0; i < s->depth; i++) {
        const lumio_frame *f = &s->frames[i];
        size_t n = strlen(f->function);
        /* no offset left on a symbol, no "(inlined)" or parenthesis left on a dso */
        if (n == 0 || strstr(f->function, "+0x") || f->file[0] == '\0' || strchr(f->file, '(') ||
            strcmp(f->file, "inlined") == 0)
            t->bad_frames++;
    }
    return 0;
}

TEST(real_profiles) {
    static const char *names[] = {"python-json", "gcc-O2", "xz-2threads"};
    char path[3][256];
    for (size_t i = 0; i < 3; i++) {
        snprintf(path[i], sizeof path[i], "%s/%s.perf.txt.zst", LUMIO_PROFILES_DIR, names[i]);
        if (access(path[i], R_OK) != 0) {
            char why[1024];
            snprintf(why, sizeof why, "%s absent", path[i]);
            SKIP(why);
        }
    }
    for (size_t i = 0; i < 3; i++) {
        FILE *f = zopen(path[i]);
        CHECK(f != NULL);
        totals t = {0};
        char err[256] = "";
        int rc = lumio__import_perf_script(f, total, &t, err, sizeof err);
        fclose(f);
        if (rc) fprintf(stderr, "  %s: %s (%s)\n", names[i], lumio_strerror(rc), err);
        CHECK_EQ(rc, 0);
        uint64_t headers, frames;
        count_lines(path[i], &headers, &frames);
        printf("  %s: %" PRIu64 " samples, %" PRIu64 " frames\n", names[i], t.samples, t.frames);
        CHECK(headers > 0);
        CHECK_EQ(t.samples, headers);
        CHECK_EQ(t.frames, frames); /* no stack in them is deeper than the cap */
        CHECK_EQ(t.bad_frames, 0);
    }
}

int main(void) {
    return run_tests("import");
}
