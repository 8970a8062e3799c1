/* The Firefox Profiler's processed profile format, as CPython's sampling
 * profiler writes it (Lib/profiling/sampling/gecko_collector.py): meta with
 * preprocessedProfileVersion 57 and version 32 (the profiler upgrades it to
 * its current version when it loads it), per thread the column tables
 * samples, stackTable, frameTable, funcTable and resourceTable, each with
 * its length, and every string once in shared.stringArray. A thread's
 * tables hold only what its own stacks use, numbered in order of first use,
 * so a stack's prefix always comes before it. */
#include "stream/export.h"
#include "stream/export_profile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { CAT_OTHER, CAT_PYTHON, CAT_NATIVE };

/* Per thread: global id -> local index (NONE: unused), and the ids used in
 * local order. The maps are reset after each thread through the lists. */
typedef struct local {
    uint32_t *of, *ids;
    uint32_t n;
} local;

typedef struct gecko {
    local node, frame, func, res; /* res: by file string */
} gecko;

static uint32_t use(local *l, uint32_t id) {
    if (l->of[id] == LUMIO__PROF_NONE) {
        l->of[id] = l->n;
        l->ids[l->n++] = id;
    }
    return l->of[id];
}

static void reset(local *l) {
    for (uint32_t i = 0; i < l->n; i++) l->of[l->ids[i]] = LUMIO__PROF_NONE;
    l->n = 0;
}

static int local_init(local *l, uint32_t n) {
    l->of = malloc((size_t)(n ? n : 1) * sizeof *l->of);
    l->ids = malloc((size_t)(n ? n : 1) * sizeof *l->ids);
    l->n = 0;
    if (!l->of || !l->ids) return -ENOMEM;
    memset(l->of, 0xFF, (size_t)n * sizeof *l->of);
    return 0;
}

static bool is_python(const char *file) {
    size_t n = strlen(file);
    return n >= 3 && !strcmp(file + n - 3, ".py");
}

/* Number the thread's nodes, frames, functions and resources. */
static void number(gecko *g, const lumio__profile *p, const lumio__prof_thread *t) {
    for (size_t i = 0; i < t->nnodes; i++) {
        uint32_t f = p->nodes[t->nodes[i]].frame, fn = p->frames[f].func;
        use(&g->node, t->nodes[i]);
        use(&g->frame, f);
        use(&g->func, fn);
        use(&g->res, p->funcs[fn].file);
    }
}

/* "KEY":[v(ids[0]),...] for a column of n entries, v printing one. */
#define COLUMN(o, key, n, ...)                                                                     \
    do {                                                                                           \
        fputs("\"" key "\":[", o);                                                                 \
        for (uint32_t i_ = 0; i_ < (n); i_++) {                                                    \
            if (i_) putc(',', o);                                                                  \
            uint32_t i = i_;                                                                       \
            (void)i;                                                                               \
            __VA_ARGS__;                                                                           \
        }                                                                                          \
        fputs("],", o);                                                                            \
    } while (0)

#define CONST_COLUMN(o, key, n, text) COLUMN(o, key, n, fputs(text, o))

/* v, or null where the table has no entry (no parent, no line, no file). */
static void put_or_null(FILE *o, bool present, uint32_t v) {
    if (present)
        fprintf(o, "%u", v);
    else
        fputs("null", o);
}

static void put_samples(FILE *o, const gecko *g, const lumio__prof_thread *t, uint64_t zero) {
    fputs("\"samples\":{", o);
    fputs("\"stack\":[", o);
    for (size_t k = 0; k < t->nsamples; k++) {
        if (k) putc(',', o);
        uint32_t node = t->samples[k].node;
        put_or_null(o, node != LUMIO__PROF_NONE, node != LUMIO__PROF_NONE ? g->node.of[node] : 0);
    }
    fputs("],\"time\":[", o);
    for (size_t k = 0; k < t->nsamples; k++) {
        uint64_t us = t->samples[k].time_us - zero; /* milliseconds, to the microsecond */
        fprintf(o, "%s%llu.%03u", k ? "," : "", (unsigned long long)(us / 1000),
                (unsigned)(us % 1000));
    }
    fprintf(o, "],\"weight\":null,\"weightType\":\"samples\",\"length\":%zu},\n", t->nsamples);
}

static void put_stacks_frames(FILE *o, const gecko *g, const lumio__profile *p) {
    fputs("\"stackTable\":{", o);
    COLUMN(o, "frame", g->node.n, fprintf(o, "%u", g->frame.of[p->nodes[g->node.ids[i]].frame]));
    COLUMN(o, "prefix", g->node.n, {
        uint32_t parent = p->nodes[g->node.ids[i]].parent;
        put_or_null(o, parent != LUMIO__PROF_NONE,
                    parent != LUMIO__PROF_NONE ? g->node.of[parent] : 0);
    });
    fprintf(o, "\"length\":%u},\n\"frameTable\":{", g->node.n);
    uint32_t n = g->frame.n;
    CONST_COLUMN(o, "address", n, "-1");
    CONST_COLUMN(o, "inlineDepth", n, "0");
    COLUMN(o, "category", n, {
        const char *file = lumio__prof_str(p, p->funcs[p->frames[g->frame.ids[i]].func].file);
        fprintf(o, "%d", !file[0] ? CAT_OTHER : is_python(file) ? CAT_PYTHON : CAT_NATIVE);
    });
    CONST_COLUMN(o, "subcategory", n, "0");
    COLUMN(o, "func", n, fprintf(o, "%u", g->func.of[p->frames[g->frame.ids[i]].func]));
    CONST_COLUMN(o, "nativeSymbol", n, "null");
    CONST_COLUMN(o, "innerWindowID", n, "null");
    COLUMN(o, "line", n, {
        uint32_t line = p->frames[g->frame.ids[i]].line;
        put_or_null(o, line != 0, line);
    });
    CONST_COLUMN(o, "column", n, "null");
    fprintf(o, "\"length\":%u},\n", n);
}

static void put_funcs_resources(FILE *o, const gecko *g, const lumio__profile *p) {
    uint32_t n = g->func.n;
    fputs("\"funcTable\":{", o);
    COLUMN(o, "name", n, fprintf(o, "%u", p->funcs[g->func.ids[i]].name));
    COLUMN(
        o, "isJS", n,
        fputs(is_python(lumio__prof_str(p, p->funcs[g->func.ids[i]].file)) ? "true" : "false", o));
    COLUMN(o, "relevantForJS", n, fputs("false", o));
    COLUMN(o, "resource", n, fprintf(o, "%u", g->res.of[p->funcs[g->func.ids[i]].file]));
    COLUMN(o, "fileName", n, {
        uint32_t file = p->funcs[g->func.ids[i]].file;
        put_or_null(o, file != 0, file);
    });
    CONST_COLUMN(o, "lineNumber", n, "null");
    CONST_COLUMN(o, "columnNumber", n, "null");
    fprintf(o, "\"length\":%u},\n\"resourceTable\":{", n);
    n = g->res.n;
    CONST_COLUMN(o, "lib", n, "null");
    COLUMN(o, "name", n, fprintf(o, "%u", g->res.ids[i]));
    CONST_COLUMN(o, "host", n, "null");
    CONST_COLUMN(o, "type", n, "1");
    fprintf(o, "\"length\":%u},\n", n);
}

static void put_thread(lumio_stream_exporter *e, gecko *g, const lumio__prof_thread *t, bool main,
                       uint64_t zero) {
    const lumio__profile *p = e->state;
    FILE *o = e->out;
    number(g, p, t);
    fputs("{\"name\":", o);
    if (t->nsamples)
        lumio__prof_put_thread_name(o, p, t);
    else
        lumio__json_put_string(o, e->name);
    /* A tid past 2^53 would lose digits as a JavaScript number: a string
     * then (the profiler's Tid is a number or a string). */
    bool exact = t->tid <= (1ull << 53) - 1;
    fprintf(o,
            ",\"isMainThread\":%s,\"processStartupTime\":0,\"processShutdownTime\":null,"
            "\"registerTime\":0,\"unregisterTime\":null,\"pausedRanges\":[],\"pid\":\"0\","
            "\"tid\":%s%llu%s,\"processType\":\"default\",\"processName\":",
            main ? "true" : "false", exact ? "" : "\"", (unsigned long long)t->tid,
            exact ? "" : "\"");
    lumio__json_put_string(o, e->name);
    fputs(",\n", o);
    put_samples(o, g, t, zero);
    put_stacks_frames(o, g, p);
    put_funcs_resources(o, g, p);
    fputs("\"nativeSymbols\":{\"libIndex\":[],\"address\":[],\"name\":[],\"functionSize\":[],"
          "\"length\":0},\n\"markers\":{\"data\":[],\"name\":[],\"startTime\":[],\"endTime\":[],"
          "\"phase\":[],\"category\":[],\"length\":0}}",
          o);
    reset(&g->node);
    reset(&g->frame);
    reset(&g->func);
    reset(&g->res);
}

static void put_meta(lumio_stream_exporter *e, uint64_t wall_us) {
    const lumio__profile *p = e->state;
    FILE *o = e->out;
    uint64_t w = lumio__prof_interval(p);
    fprintf(o,
            "{\"meta\":{\"interval\":%llu.%03u,\"startTime\":%llu.%03u,\"abi\":\"\",\"misc\":\"\","
            "\"oscpu\":\"\",\"platform\":\"\",\"processType\":0,\"stackwalk\":0,\"toolkit\":\"\","
            "\"version\":32,\"preprocessedProfileVersion\":57,\"appBuildID\":\"\","
            "\"symbolicated\":true,\"markerSchema\":[],\"product\":",
            (unsigned long long)(w / 1000), (unsigned)(w % 1000),
            (unsigned long long)(wall_us / 1000), (unsigned)(wall_us % 1000));
    lumio__json_put_string(o, e->name);
    fputs(",\"importedFrom\":", o);
    lumio__json_put_string(o, p->source ? lumio__prof_str(p, p->source) : "lumio");
    fputs(",\"categories\":[{\"name\":\"Other\",\"color\":\"grey\",\"subcategories\":[\"Other\"]},"
          "{\"name\":\"Python\",\"color\":\"yellow\",\"subcategories\":[\"Other\"]},"
          "{\"name\":\"Native\",\"color\":\"blue\",\"subcategories\":[\"Other\"]}],"
          "\"extensions\":{\"id\":[],\"name\":[],\"baseURL\":[],\"length\":0}},\n"
          "\"libs\":[],\"pages\":[],\"threads\":[\n",
          o);
}

static void put_strings(FILE *o, const lumio__profile *p) {
    fputs("],\n\"shared\":{\"stringArray\":[", o);
    for (uint32_t i = 0; i < p->nstr; i++) {
        if (i) fputs(i % 64 ? "," : ",\n", o);
        lumio__json_put_string(o, lumio__prof_str(p, i));
    }
    fputs("]}}\n", o);
}

static int gecko_finish(lumio_stream_exporter *e) {
    lumio__profile *p = e->state;
    lumio__prof_sort(p);
    gecko g;
    memset(&g, 0, sizeof g);
    int rc = -ENOMEM;
    if (local_init(&g.node, p->nnodes) < 0 || local_init(&g.frame, p->nframes) < 0 ||
        local_init(&g.func, p->nfuncs) < 0 || local_init(&g.res, p->nstr) < 0) {
        rc = lumio__export_fail(e, -ENOMEM, "out of memory");
        goto out;
    }
    uint64_t zero, wall;
    lumio__prof_epoch(p, &zero, &wall);
    put_meta(e, wall);
    int written = 0;
    for (uint32_t i = 0; i < p->nthreads; i++) {
        if (!p->threads[i].nsamples) continue; /* a name alone */
        if (written) fputs(",\n", e->out);
        put_thread(e, &g, &p->threads[i], !written++, zero);
    }
    if (!written) { /* the profiler shows an empty thread, not an error */
        lumio__prof_thread none = {0};
        put_thread(e, &g, &none, true, zero);
    }
    put_strings(e->out, p);
    rc = ferror(e->out) ? -EIO : 0;
out:;
    local *ls[] = {&g.node, &g.frame, &g.func, &g.res};
    for (size_t i = 0; i < 4; i++) {
        free(ls[i]->of);
        free(ls[i]->ids);
    }
    return rc;
}

const lumio__export_ops lumio__export_gecko = {.name = "gecko",
                                               .begin = lumio__prof_op_begin,
                                               .sample = lumio__prof_op_sample,
                                               .meta = lumio__prof_op_meta,
                                               .finish = gecko_finish,
                                               .release = lumio__prof_op_release};
