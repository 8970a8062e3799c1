/* Importers of `perf script` text and folded stacks, and the folded exporter.
 * See import.h for the formats and the mapping to lumio samples. */
#include "stream/import.h"

#include "core/core.h"
#include "stream/chunk.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* ---- shared: lines, numbers, errors ------------------------------------- */

/* Read the next line into r->buf without its "\n" or "\r\n". Returns 1 for a
 * line, 0 at the end of the input, or a negative code. */
int lumio__line_next(line_reader *r) {
    errno = 0;
    ssize_t n = getline(&r->buf, &r->cap, r->in);
    if (n < 0) {
        if (errno != ENOMEM && !ferror(r->in)) return 0;
        r->lineno++; /* the line that could not be read */
        r->why = errno == ENOMEM ? "out of memory" : "read failed";
        return errno == ENOMEM ? -ENOMEM : -EIO;
    }
    r->lineno++;
    r->line_off = r->next_off;
    r->next_off += (uint64_t)n;
    r->newline = n > 0 && r->buf[n - 1] == '\n';
    if (r->newline) r->buf[--n] = '\0';
    if (n > 0 && r->buf[n - 1] == '\r') r->buf[--n] = '\0';
    return 1;
}

int lumio__line_bad(line_reader *r, const char *why) {
    r->why = why;
    return LUMIO_E_FORMAT;
}

/* A limit broken by the input: the numbers go into the message. */
int lumio__line_over(line_reader *r, const char *what, uint64_t n, uint64_t limit,
                     const char *unit) {
    if (n > limit)
        snprintf(r->detail, sizeof r->detail, "%s of %" PRIu64 " %s exceeds the limit of %" PRIu64,
                 what, n, unit, limit);
    else /* the count is not known yet: only that it is over */
        snprintf(r->detail, sizeof r->detail, "%s deeper than the limit of %" PRIu64 " %s", what,
                 limit, unit);
    r->why = r->detail;
    return LUMIO_E_FORMAT;
}

/* The start of a line as printable text: bytes outside printable ASCII as
 * \xHH, at most 40 bytes of input, so that binary input never reaches a
 * terminal raw. */
static void excerpt(const char *s, char *out, size_t cap) {
    size_t o = 0, i = 0;
    for (; s[i] && i < 40 && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    if (s[i] && o + 4 < cap) o += (size_t)snprintf(out + o, cap - o, "...");
    out[o] = '\0';
}

/* Describe a failure of ours in err (fn's own codes get no text), quoting
 * the start of the line, escaped, for a format error. */
void lumio__line_report(const line_reader *r, int rc, char *err, size_t errlen) {
    if (rc == 0 || !r->why || !err || errlen == 0) return;
    char quote[200];
    excerpt(r->buf ? r->buf : "", quote, sizeof quote);
    if (rc == LUMIO_E_FORMAT)
        lumio__fmt(err, errlen, "line %" PRIu64 " (byte %" PRIu64 "): %s: \"%s\"", r->lineno,
                   r->line_off, r->why, quote);
    else
        lumio__fmt(err, errlen, "line %" PRIu64 " (byte %" PRIu64 "): %s", r->lineno, r->line_off,
                   r->why);
}

static bool is_blank(const char *s) {
    while (*s == ' ' || *s == '\t') s++;
    return *s == '\0';
}

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

static bool is_hex(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A decimal number made of exactly the n characters at p. */
static bool parse_u64(const char *p, size_t n, uint64_t *out) {
    uint64_t v = 0;
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(p[i])) return false;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* ---- perf script: the header --------------------------------------------- */

typedef struct token {
    const char *p;
    size_t n;
} token;

/* "PID/TID" or "TID": the thread is the last number. */
static bool parse_ids(token t, uint64_t *tid) {
    const char *slash = memchr(t.p, '/', t.n);
    if (!slash) return parse_u64(t.p, t.n, tid);
    uint64_t pid;
    size_t npid = (size_t)(slash - t.p);
    return parse_u64(t.p, npid, &pid) && parse_u64(slash + 1, t.n - npid - 1, tid);
}

static bool is_cpu(token t) {
    uint64_t cpu;
    return t.n >= 3 && t.p[0] == '[' && t.p[t.n - 1] == ']' && parse_u64(t.p + 1, t.n - 2, &cpu);
}

/* "SECONDS.FRACTION:" to microseconds, rounded half up from the seventh
 * fractional digit: integers only, so no value is off by a double's error. */
static bool parse_time(token t, uint64_t *us) {
    if (t.n < 4 || t.p[t.n - 1] != ':') return false;
    const char *dot = memchr(t.p, '.', t.n - 1);
    uint64_t sec, frac = 0, up = 0;
    if (!dot || !parse_u64(t.p, (size_t)(dot - t.p), &sec)) return false;
    size_t nfrac = (size_t)(t.p + t.n - 1 - (dot + 1));
    if (nfrac == 0) return false;
    for (size_t i = 0; i < nfrac; i++) {
        char c = dot[1 + i];
        if (!is_digit(c)) return false;
        if (i < 6) frac = frac * 10 + (uint64_t)(c - '0');
        if (i == 6) up = c >= '5';
    }
    for (size_t i = nfrac; i < 6; i++) frac *= 10;
    if (sec > UINT64_MAX / 1000000 || sec * 1000000 > UINT64_MAX - frac - up) return false;
    *us = sec * 1000000 + frac + up;
    return true;
}

/* COMM [PID/]TID [[CPU]] TIME: ... where COMM may hold spaces: the first
 * time-shaped token preceded by the ids (and maybe a CPU) and at least one
 * word of COMM decides. */
static bool parse_header(const char *line, uint64_t *ts, uint64_t *tid) {
    token prev[2] = {{NULL, 0}, {NULL, 0}};
    size_t ntok = 0;
    for (const char *p = line;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\0') return false;
        token t = {p, 0};
        while (p[t.n] != '\0' && p[t.n] != ' ' && p[t.n] != '\t') t.n++;
        p += t.n;
        if (ntok >= 2 && parse_time(t, ts)) {
            if (ntok >= 3 && is_cpu(prev[1]) && parse_ids(prev[0], tid)) return true;
            if (parse_ids(prev[1], tid)) return true;
        }
        prev[0] = prev[1];
        prev[1] = t;
        ntok++;
    }
}

/* ---- perf script: frames and samples -------------------------------------- */

#define FILE_INLINED SIZE_MAX

/* A frame's strings as offsets into the arena, which may move as it grows. */
typedef struct frame_ref {
    size_t function;
    size_t file; /* or FILE_INLINED */
} frame_ref;

typedef struct perf_parser {
    line_reader rd;
    char *arena; /* this sample's strings, reused from sample to sample */
    size_t used, arena_cap;
    frame_ref *refs;
    lumio_frame *frames;
    uint32_t depth, frames_cap;
    lumio_sample s;
    bool open; /* a header was read and its sample is not emitted yet */
} perf_parser;

static int arena_add(perf_parser *p, const char *s, size_t n, size_t *off) {
    if (p->arena_cap - p->used < n + 1) {
        size_t cap = LUMIO_MAX(p->arena_cap * 2, p->used + n + 1);
        cap = LUMIO_MAX(cap, (size_t)4096);
        char *a = realloc(p->arena, cap);
        if (!a) return -ENOMEM;
        p->arena = a;
        p->arena_cap = cap;
    }
    memcpy(p->arena + p->used, s, n);
    p->arena[p->used + n] = '\0';
    *off = p->used;
    p->used += n + 1;
    return 0;
}

static int frames_reserve(perf_parser *p) {
    if (p->depth < p->frames_cap) return 0;
    uint32_t cap = LUMIO_MIN(LUMIO_MAX(p->frames_cap * 2, 64u), LUMIO_STREAM_MAX_DEPTH);
    frame_ref *r = realloc(p->refs, cap * sizeof *r);
    if (r) p->refs = r;
    lumio_frame *f = r ? realloc(p->frames, cap * sizeof *f) : NULL;
    if (!f) return -ENOMEM;
    p->frames = f;
    p->frames_cap = cap;
    return 0;
}

/* Where "(dso)" begins at the end of [s, end): the '(' matching the final
 * ')' (dsos like "/x (deleted)" nest), after a blank or at s; else NULL. */
static const char *find_dso(const char *s, const char *end) {
    size_t n = (size_t)(end - s), nest = 0;
    if (n == 0 || s[n - 1] != ')') return NULL;
    for (size_t i = n; i-- > 0;) {
        if (s[i] == ')') nest++;
        if (s[i] == '(' && --nest == 0)
            return i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t' ? s + i : NULL;
    }
    return NULL;
}

/* The end of the symbol in [s, end) once a trailing "+0x<hex>" is cut. */
static const char *cut_offset(const char *s, const char *end) {
    const char *h = end;
    while (h > s && is_hex(h[-1])) h--;
    if (h == end || h - s < 3 || memcmp(h - 3, "+0x", 3) != 0) return end;
    return h - 3;
}

static const char *trim_end(const char *s, const char *end) {
    while (end > s && (end[-1] == ' ' || end[-1] == '\t')) end--;
    return end;
}

/* Append a frame: the symbol, and the dso or NULL for an inlined frame. */
static int perf_store(perf_parser *p, const char *sym, size_t nsym, const char *dso, size_t ndso) {
    if (nsym > CHUNK_MAX_STRING)
        return lumio__line_over(&p->rd, "a symbol", nsym, CHUNK_MAX_STRING, "bytes");
    if (dso && ndso > CHUNK_MAX_STRING)
        return lumio__line_over(&p->rd, "a dso name", ndso, CHUNK_MAX_STRING, "bytes");
    int rc = frames_reserve(p);
    frame_ref *r = rc == 0 ? &p->refs[p->depth] : NULL;
    if (r)
        rc = nsym ? arena_add(p, sym, nsym, &r->function)
                  : arena_add(p, "[unknown]", 9, &r->function);
    if (rc == 0 && !dso) r->file = FILE_INLINED;
    if (rc == 0 && dso) rc = arena_add(p, dso, ndso, &r->file);
    if (rc < 0) {
        p->rd.why = "out of memory";
        return rc;
    }
    p->depth++;
    return 0;
}

/* "<hex address> <symbol>[+0x<offset>] (<dso>)", after the leading tab. */
static int perf_frame(perf_parser *p, const char *s) {
    while (*s == ' ' || *s == '\t') s++;
    const char *addr = s;
    while (is_hex(*s)) s++;
    if (s == addr || (*s != '\0' && *s != ' ' && *s != '\t'))
        return lumio__line_bad(&p->rd, "malformed frame line");
    if (p->depth == LUMIO_STREAM_MAX_DEPTH)
        return lumio__line_over(&p->rd, "a stack", 0, LUMIO_STREAM_MAX_DEPTH, "frames");
    while (*s == ' ' || *s == '\t') s++;
    const char *end = trim_end(s, s + strlen(s));
    const char *paren = find_dso(s, end);
    const char *sym_end = cut_offset(s, trim_end(s, paren ? paren : end));
    const char *dso = paren ? paren + 1 : "";
    size_t ndso = paren ? (size_t)(end - paren - 2) : 0;
    if (ndso == 7 && memcmp(dso, "inlined", 7) == 0) dso = NULL;
    return perf_store(p, s, (size_t)(sym_end - s), dso, ndso);
}

/* Resolve the offsets to pointers (an inlined frame takes the dso of the
 * nearest real frame outside it) and hand the sample over. */
static int perf_emit(perf_parser *p, lumio_import_fn fn, void *arg) {
    const char *outer = NULL;
    for (uint32_t i = p->depth; i-- > 0;) {
        lumio_frame *f = &p->frames[i];
        *f = (lumio_frame){.function = p->arena + p->refs[i].function};
        if (p->refs[i].file == FILE_INLINED)
            f->file = outer ? outer : "[inlined]";
        else
            f->file = outer = p->arena + p->refs[i].file;
    }
    p->s.frames = p->frames;
    p->s.depth = p->depth;
    p->open = false;
    return fn(arg, &p->s);
}

static int perf_line(perf_parser *p, lumio_import_fn fn, void *arg) {
    const char *line = p->rd.buf;
    if (is_blank(line)) return p->open ? perf_emit(p, fn, arg) : 0;
    if (line[0] == '\t') {
        if (!p->open) return lumio__line_bad(&p->rd, "frame line outside a sample");
        return perf_frame(p, line + 1);
    }
    if (p->open) { /* no blank line before this header: the sample ended anyway */
        int rc = perf_emit(p, fn, arg);
        if (rc) return rc;
    }
    if (!parse_header(line, &p->s.timestamp_us, &p->s.thread_id))
        return lumio__line_bad(&p->rd, "malformed perf script header");
    p->s.status = 0;
    p->open = true;
    p->used = 0;
    p->depth = 0;
    return 0;
}

int lumio__import_perf_script(FILE *in, lumio_import_fn fn, void *arg, char *err, size_t errlen) {
    perf_parser p = {.rd = {.in = in}};
    int rc;
    while ((rc = lumio__line_next(&p.rd)) > 0)
        if ((rc = perf_line(&p, fn, arg)) != 0) break;
    if (rc == 0 && p.open) rc = perf_emit(&p, fn, arg);
    lumio__line_report(&p.rd, rc, err, errlen); /* quotes the line: before the free */
    free(p.rd.buf);
    free(p.arena);
    free(p.refs);
    free(p.frames);
    return rc;
}

/* ---- folded stacks ----------------------------------------------------------- */

typedef struct folded_parser {
    line_reader rd;
    lumio_frame *frames;
    uint32_t frames_cap;
    uint64_t next_ts;
} folded_parser;

/* Split "outer;...;inner" in place into frames, innermost first; returns the
 * depth, or LUMIO_E_FORMAT for a stack or a name over the format's limits,
 * or -ENOMEM. */
static int64_t folded_split(folded_parser *p, char *stack) {
    size_t n = 1;
    const char *prev = stack;
    for (const char *c = stack; (c = strchr(c, ';')) != NULL; prev = ++c) {
        if ((size_t)(c - prev) > CHUNK_MAX_STRING)
            return lumio__line_over(&p->rd, "a function name", (uint64_t)(c - prev),
                                    CHUNK_MAX_STRING, "bytes");
        n++;
    }
    if (strlen(prev) > CHUNK_MAX_STRING)
        return lumio__line_over(&p->rd, "a function name", strlen(prev), CHUNK_MAX_STRING, "bytes");
    if (n > LUMIO_STREAM_MAX_DEPTH)
        return lumio__line_over(&p->rd, "a stack", n, LUMIO_STREAM_MAX_DEPTH, "frames");
    size_t keep = n;
    if (keep > p->frames_cap) {
        lumio_frame *f = realloc(p->frames, keep * sizeof *f);
        if (!f) {
            p->rd.why = "out of memory";
            return -ENOMEM;
        }
        p->frames = f;
        p->frames_cap = (uint32_t)keep;
    }
    char *c = stack;
    for (size_t k = 0; k < n; k++) {
        char *semi = k + 1 < n ? strchr(c, ';') : NULL;
        if (semi) *semi = '\0';
        if (k >= n - keep) p->frames[n - 1 - k] = (lumio_frame){c, "", 0};
        if (semi) c = semi + 1;
    }
    return (int64_t)keep;
}

static int folded_line(folded_parser *p, lumio_import_fn fn, void *arg) {
    char *line = p->rd.buf;
    if (is_blank(line)) return 0;
    char *sp = strrchr(line, ' ');
    uint64_t count;
    if (!sp || !parse_u64(sp + 1, strlen(sp + 1), &count))
        return lumio__line_bad(&p->rd, "bad or missing sample count");
    if (sp == line) return lumio__line_bad(&p->rd, "empty stack");
    if (count > LUMIO_IMPORT_MAX_SAMPLES - p->next_ts) {
        snprintf(p->rd.detail, sizeof p->rd.detail,
                 "a count of %" PRIu64 ": the file's samples exceed the limit of %llu", count,
                 LUMIO_IMPORT_MAX_SAMPLES);
        return lumio__line_bad(&p->rd, p->rd.detail);
    }
    *sp = '\0';
    int64_t depth = folded_split(p, line);
    if (depth < 0) return (int)depth;
    lumio_sample s = {.frames = p->frames, .depth = (uint32_t)depth};
    for (uint64_t i = 0; i < count; i++) {
        s.timestamp_us = p->next_ts++;
        int rc = fn(arg, &s);
        if (rc) return rc;
    }
    return 0;
}

int lumio__import_collapsed(FILE *in, lumio_import_fn fn, void *arg, char *err, size_t errlen) {
    folded_parser p = {.rd = {.in = in}};
    int rc;
    while ((rc = lumio__line_next(&p.rd)) > 0)
        if ((rc = folded_line(&p, fn, arg)) != 0) break;
    lumio__line_report(&p.rd, rc, err, errlen); /* quotes the line: before the free */
    free(p.rd.buf);
    free(p.frames);
    return rc;
}

/* A function name with the folded format's separators replaced: ';' by ':'
 * and line breaks by ' ' (the format has no escapes). */
static void put_function(FILE *out, const char *name) {
    if (!name) name = "[unknown]";
    for (;;) {
        size_t n = strcspn(name, ";\n\r");
        fwrite(name, 1, n, out);
        if (name[n] == '\0') return;
        putc(name[n] == ';' ? ':' : ' ', out);
        name += n + 1;
    }
}

int lumio__export_collapsed_line(FILE *out, const lumio_sample *s, uint64_t count) {
    if (!s || s->depth == 0 || !s->frames) return -EINVAL;
    for (uint32_t i = s->depth; i-- > 0;) {
        put_function(out, s->frames[i].function);
        if (i > 0) putc(';', out);
    }
    fprintf(out, " %" PRIu64 "\n", count);
    return ferror(out) ? -EIO : 0;
}

/* ---- the public entry points (stream.h) ---------------------------------- */

static int stream_import_impl(FILE *in, const char *format, lumio_sample_fn on_sample,
                              lumio_meta_fn on_meta, void *arg) {
    if (!in || !format || !on_sample) {
        lumio__err_set(NULL, "import: %s is NULL",
                       !in       ? "the input"
                       : !format ? "the format"
                                 : "on_sample");
        return -EINVAL;
    }
    char err[512] = "";
    int rc;
    if (!strcmp(format, "perf") || !strcmp(format, "perf-script"))
        rc = lumio__import_perf_script(in, on_sample, arg, err, sizeof err);
    else if (!strcmp(format, "folded") || !strcmp(format, "collapsed"))
        rc = lumio__import_collapsed(in, on_sample, arg, err, sizeof err);
    else if (!strcmp(format, "austin"))
        rc = lumio__import_austin(in, on_sample, on_meta, arg, err, sizeof err);
    else if (!strcmp(format, "speedscope"))
        rc = lumio__import_speedscope(in, on_sample, on_meta, arg, err, sizeof err);
    else if (!strcmp(format, "tachyon"))
        rc = lumio__import_tachyon(in, on_sample, on_meta, arg, err, sizeof err);
    else {
        lumio__err_set(NULL,
                       "import: unknown format '%s' (perf, folded, austin, speedscope, tachyon)",
                       format);
        return -EINVAL;
    }
    if (rc > 0) rc = -ECANCELED; /* a callback asked to stop (docs/API.md) */
    if (rc < 0 && err[0]) lumio__err_set(NULL, "%s: %s", format, err);
    return rc;
}

int lumio_stream_print_folded(FILE *out, const lumio_sample *s, uint64_t count) {
    if (!out || !s) return -EINVAL;
    return lumio__export_collapsed_line(out, s, count);
}

/* A failure always leaves a text for last_error(NULL) (docs/API.md). */
int lumio_stream_import(FILE *in, const char *format, lumio_sample_fn on_sample, void *arg) {
    uint64_t mark = lumio__err_mark();
    return lumio__err_ensure(mark, stream_import_impl(in, format, on_sample, NULL, arg), "import");
}

int lumio_stream_import_records(FILE *in, const char *format, lumio_sample_fn on_sample,
                                lumio_meta_fn on_meta, void *arg) {
    uint64_t mark = lumio__err_mark();
    return lumio__err_ensure(mark, stream_import_impl(in, format, on_sample, on_meta, arg),
                             "import");
}
