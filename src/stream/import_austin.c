/* Importer of austin's text output (3.x and 1.x): see import.h and
 * docs/PROFILES.md for the mapping. Line by line, one sample in memory. */
#include "stream/import.h"

#include "core/core.h"
#include "stream/chunk.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Full metrics say whether the thread was idle: a busy one gets the
 * ON_CPU bit of CPython's status byte (tachyon.h's readers know it). */
#define STATUS_ON_CPU 2

/* Each thread's clock: open addressing on the TID. */
typedef struct clock_map {
    uint64_t *tid, *clock;
    bool *used;
    size_t n, cap;
} clock_map;

typedef struct austin_parser {
    line_reader rd;
    lumio_frame *frames;
    uint32_t cap;
    clock_map clocks;
    uint64_t interval_us; /* from "# interval:", for memory mode's clock */
    bool memory;          /* "# mode: memory": the metric is not time */
    uint64_t last_ts;     /* records take the latest sample's time */
} austin_parser;

static uint64_t *clock_of(clock_map *m, uint64_t tid) {
    if (m->n * 2 >= m->cap) {
        clock_map g = {.cap = m->cap ? m->cap * 2 : 64};
        g.tid = calloc(g.cap, sizeof *g.tid);
        g.clock = calloc(g.cap, sizeof *g.clock);
        g.used = calloc(g.cap, sizeof *g.used);
        if (!g.tid || !g.clock || !g.used) {
            free(g.tid), free(g.clock), free(g.used);
            return NULL;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->used[i]) continue;
            size_t k = (m->tid[i] * 0x9E3779B97F4A7C15u) >> 7 & (g.cap - 1);
            while (g.used[k]) k = (k + 1) & (g.cap - 1);
            g.used[k] = true, g.tid[k] = m->tid[i], g.clock[k] = m->clock[i];
        }
        g.n = m->n;
        free(m->tid), free(m->clock), free(m->used);
        *m = g;
    }
    size_t k = (tid * 0x9E3779B97F4A7C15u) >> 7 & (m->cap - 1);
    while (m->used[k] && m->tid[k] != tid) k = (k + 1) & (m->cap - 1);
    if (!m->used[k]) m->used[k] = true, m->tid[k] = tid, m->clock[k] = 0, m->n++;
    return &m->clock[k];
}

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* A number in base 10 or 16 made of exactly the n characters at p. */
static bool parse_base(const char *p, size_t n, int base, uint64_t *out) {
    uint64_t v = 0;
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        unsigned d = is_digit(c)                          ? (unsigned)(c - '0')
                     : base == 16 && c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : base == 16 && c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                                          : 99;
        if (d >= (unsigned)base || v > (UINT64_MAX - d) / (unsigned)base) return false;
        v = v * (unsigned)base + d;
    }
    *out = v;
    return true;
}

/* A metric: an integer, maybe negative (memory deltas). */
static bool parse_metric(const char *p, size_t n, int64_t *out) {
    bool neg = n > 0 && p[0] == '-';
    uint64_t v;
    if (!parse_base(p + neg, n - neg, 10, &v) || v > INT64_MAX) return false;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

static int emit_meta(austin_parser *p, lumio_import_meta_fn meta, void *arg, const char *key,
                     const char *value) {
    return meta ? meta(arg, p->last_ts, key, value) : 0;
}

/* "# key: value": a record as it is, and the shared keys it gives. */
static int austin_metadata(austin_parser *p, char *line, lumio_import_meta_fn meta, void *arg) {
    char *key = line + 1;
    while (*key == ' ') key++;
    char *colon = strchr(key, ':');
    if (!colon || colon == key) return 0; /* a comment */
    *colon = '\0';
    char *value = colon + 1;
    while (*value == ' ') value++;
    uint64_t v;
    if (!strcmp(key, "interval") && parse_base(value, strlen(value), 10, &v)) p->interval_us = v;
    if (!strcmp(key, "mode")) p->memory = !strcmp(value, "memory");
    int rc = emit_meta(p, meta, arg, key, value);
    if (rc == 0 && !strcmp(key, "austin")) {
        char src[160];
        snprintf(src, sizeof src, "austin %.140s", value);
        rc = emit_meta(p, meta, arg, "source", src);
    }
    if (rc == 0 && !strcmp(key, "interval")) rc = emit_meta(p, meta, arg, "interval_us", value);
    if (rc == 0 && !strcmp(key, "python")) rc = emit_meta(p, meta, arg, "python_version", value);
    return rc;
}

/* The prefix naming the thread: "P<pid>;T[<iid>:]<tid>" (3.x, 2.x) or
 * "[Process <pid>;]Thread <tid>" (1.x). Returns what follows, or NULL. */
static char *austin_thread(char *s, uint64_t *tid, bool *v1) {
    uint64_t pid;
    *v1 = false;
    if (!strncmp(s, "Process ", 8)) {
        char *semi = strchr(s, ';');
        if (!semi || !parse_base(s + 8, (size_t)(semi - s - 8), 10, &pid)) return NULL;
        s = semi + 1;
    }
    if (!strncmp(s, "Thread ", 7)) {
        *v1 = true;
        s += 7;
    } else {
        if (s[0] != 'P') return NULL;
        char *semi = strchr(s, ';');
        if (!semi || !parse_base(s + 1, (size_t)(semi - s - 1), 10, &pid) || semi[1] != 'T')
            return NULL;
        s = semi + 2;
        char *colon = strpbrk(s, ":; ");
        if (colon && *colon == ':') s = colon + 1; /* the interpreter id */
    }
    size_t n = strcspn(s, "; ");
    if (!parse_base(s, n, 16, tid)) return NULL;
    return s + n;
}

static int frames_reserve(austin_parser *p, uint32_t n) {
    if (n <= p->cap) return 0;
    uint32_t cap = LUMIO_MIN(LUMIO_MAX(p->cap * 2, LUMIO_MAX(n, 64u)), LUMIO_STREAM_MAX_DEPTH);
    lumio_frame *f = realloc(p->frames, cap * sizeof *f);
    if (!f) {
        p->rd.why = "out of memory";
        return -ENOMEM;
    }
    p->frames = f;
    p->cap = cap;
    return 0;
}

/* One frame of 3.x, "file:function:line" (the file may hold ':'), split
 * in place. */
static void frame_v3(char *seg, lumio_frame *f) {
    *f = (lumio_frame){.function = seg, .file = ""};
    char *last = strrchr(seg, ':');
    uint64_t line;
    if (!last || !parse_base(last + 1, strlen(last + 1), 10, &line) || line > UINT32_MAX) return;
    *last = '\0';
    char *fn = strrchr(seg, ':');
    if (!fn) {
        *last = ':';
        return;
    }
    *fn = '\0';
    *f = (lumio_frame){.function = fn + 1, .file = seg, .line = (uint32_t)line};
}

/* One frame of 1.x, "function (file)" or "function (file:line)", in place. */
static void frame_v1(char *seg, lumio_frame *f) {
    *f = (lumio_frame){.function = seg, .file = ""};
    size_t n = strlen(seg);
    char *open = n ? strstr(seg, " (") : NULL;
    for (char *o = open; o; o = strstr(o + 1, " (")) open = o; /* the last " (" */
    if (!open || seg[n - 1] != ')') return;
    *open = '\0';
    seg[n - 1] = '\0';
    f->file = open + 2;
    char *colon = strrchr(open + 2, ':');
    uint64_t line;
    if (colon && parse_base(colon + 1, strlen(colon + 1), 10, &line) && line <= UINT32_MAX) {
        *colon = '\0';
        f->line = (uint32_t)line;
    }
}

/* Split the stack (outermost first, ';'-separated) into p->frames,
 * innermost first. Returns the depth or a negative code. */
static int64_t austin_frames(austin_parser *p, char *stack, bool v1) {
    uint32_t n = 0;
    for (char *seg = stack; seg;) {
        char *semi = strchr(seg, ';');
        if (semi) *semi = '\0';
        uint64_t line;
        if (v1 && seg[0] == 'L' && parse_base(seg + 1, strlen(seg + 1), 10, &line)) {
            if (n == 0 || line > UINT32_MAX)
                return lumio__line_bad(&p->rd, "a line number with no frame");
            p->frames[n - 1].line = (uint32_t)line;
        } else {
            if (strlen(seg) > CHUNK_MAX_STRING)
                return lumio__line_over(&p->rd, "a frame", strlen(seg), CHUNK_MAX_STRING, "bytes");
            if (n == LUMIO_STREAM_MAX_DEPTH)
                return lumio__line_over(&p->rd, "a stack", 0, LUMIO_STREAM_MAX_DEPTH, "frames");
            int rc = frames_reserve(p, n + 1);
            if (rc < 0) return rc;
            if (v1)
                frame_v1(seg, &p->frames[n++]);
            else
                frame_v3(seg, &p->frames[n++]);
        }
        seg = semi ? semi + 1 : NULL;
    }
    for (uint32_t i = 0; i < n / 2; i++) { /* innermost first */
        lumio_frame t = p->frames[i];
        p->frames[i] = p->frames[n - 1 - i];
        p->frames[n - 1 - i] = t;
    }
    return n;
}

/* The metrics at the end of rest, cut off: 3.x one token ("N", or
 * "T,I,M" in full mode), 1.x one or three ("T M+ M-"). The first is the
 * time. False when there are none. */
static bool austin_metrics(char *rest, int64_t *time, int *status) {
    *status = 0;
    char *sp = strrchr(rest, ' ');
    if (!sp) return false;
    char *c1 = strchr(sp + 1, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
    if (c1) { /* full metrics of 3.x */
        int64_t i, mem;
        if (!c2 || !parse_metric(sp + 1, (size_t)(c1 - sp - 1), time) ||
            !parse_metric(c1 + 1, (size_t)(c2 - c1 - 1), &i) ||
            !parse_metric(c2 + 1, strlen(c2 + 1), &mem))
            return false;
        *status = i != 0 ? 0 : STATUS_ON_CPU;
        *sp = '\0';
        return true;
    }
    int64_t m[3]; /* m[0] the last token */
    char *cut[3], *end = rest + strlen(rest);
    int k = 0;
    while (k < 3) {
        char *b = end;
        while (b > rest && b[-1] != ' ') b--;
        if (b == rest || !parse_metric(b, (size_t)(end - b), &m[k])) break;
        cut[k++] = end = b - 1;
    }
    if (k == 0) return false;
    if (k == 2) k = 1; /* austin writes one or three: the other was the stack's */
    *time = m[k - 1];
    *cut[k - 1] = '\0';
    return true;
}

static int austin_sample(austin_parser *p, char *line, lumio_import_fn fn, void *arg) {
    uint64_t tid;
    bool v1;
    int status;
    int64_t metric;
    char *rest = austin_thread(line, &tid, &v1);
    if (!rest)
        return lumio__line_bad(&p->rd, "not an austin sample (P<pid>;T<tid> or Thread <tid>)");
    if (!austin_metrics(rest, &metric, &status))
        return lumio__line_bad(&p->rd, "no metric at the end of the sample");
    if (rest[0] != '\0' && rest[0] != ';') return lumio__line_bad(&p->rd, "malformed thread id");
    int64_t depth = rest[0] ? austin_frames(p, rest + 1, v1) : 0;
    if (depth < 0) return (int)depth;
    if (!p->memory && metric < 0) return lumio__line_bad(&p->rd, "a negative time");
    uint64_t *clock = clock_of(&p->clocks, tid);
    if (!clock) {
        p->rd.why = "out of memory";
        return -ENOMEM;
    }
    uint64_t step = p->memory ? (p->interval_us ? p->interval_us : 1) : (uint64_t)metric;
    if (step > UINT64_MAX - *clock)
        return lumio__line_bad(&p->rd, "the thread's clock (a sum of its times) overflows");
    *clock += step;
    p->last_ts = LUMIO_MAX(p->last_ts, *clock);
    lumio_sample s = {.timestamp_us = *clock,
                      .thread_id = tid,
                      .status = (uint8_t)status,
                      .frames = p->frames,
                      .depth = (uint32_t)depth};
    return fn(arg, &s);
}

static int austin_line(austin_parser *p, lumio_import_fn fn, lumio_import_meta_fn meta, void *arg) {
    char *line = p->rd.buf;
    while (*line == ' ' || *line == '\t') line++;
    if (*line == '\0') return 0;
    if (*line == '#') return austin_metadata(p, line, meta, arg);
    int rc = austin_sample(p, line, fn, arg);
    /* A writer killed mid-line leaves a last line without its newline. */
    if (rc == LUMIO_E_FORMAT && !p->rd.newline) {
        p->rd.why = NULL;
        return 0;
    }
    return rc;
}

int lumio__import_austin(FILE *in, lumio_import_fn fn, lumio_import_meta_fn meta, void *arg,
                         char *err, size_t errlen) {
    austin_parser p = {.rd = {.in = in}};
    int rc;
    while ((rc = lumio__line_next(&p.rd)) > 0)
        if ((rc = austin_line(&p, fn, meta, arg)) != 0) break;
    lumio__line_report(&p.rd, rc, err, errlen);
    free(p.rd.buf);
    free(p.frames);
    free(p.clocks.tid);
    free(p.clocks.clock);
    free(p.clocks.used);
    return rc;
}
