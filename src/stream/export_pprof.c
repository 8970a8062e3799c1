/* pprof's profile.proto (src/stream/pprof.proto), gzip-compressed: one
 * sample type (samples, count), period type wall/microseconds, a function
 * per (name, file), a location per (function, line), and a sample per
 * distinct stack of each thread (locations leaf first, its count, labels
 * "tid" and, when the thread is named, "thread").
 *
 * protobuf-c encodes; the profile goes out a message at a time: protobuf
 * parsers merge concatenated messages (repeated fields append), so a
 * Profile holding one sample, then one holding one location, ... is the
 * whole Profile without ever holding it all encoded in memory. zlib
 * compresses as it goes. */
#include "stream/export.h"
#include "stream/export_profile.h"
#include "stream/pprof.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct gz_out {
    ProtobufCBuffer base; /* first: protobuf-c calls append with it */
    FILE *out;
    z_stream z;
    int rc;
    unsigned char buf[1 << 16];
} gz_out;

static void gz_write(gz_out *g, const uint8_t *data, size_t len, int flush) {
    while (g->rc == 0) {
        size_t in = LUMIO_MIN(len, (size_t)UINT32_MAX);
        g->z.next_in = (unsigned char *)data;
        g->z.avail_in = (uInt)in;
        g->z.next_out = g->buf;
        g->z.avail_out = sizeof g->buf;
        int zr = deflate(&g->z, in == len ? flush : Z_NO_FLUSH);
        size_t have = sizeof g->buf - g->z.avail_out;
        if (zr == Z_STREAM_ERROR) g->rc = -EINVAL;
        if (have && fwrite(g->buf, 1, have, g->out) != have) g->rc = -EIO;
        size_t used = in - g->z.avail_in;
        if (used) { /* (data is NULL at the finish) */
            data += used;
            len -= used;
        }
        if (len == 0 && g->z.avail_out != 0) break; /* all in, nothing more pending */
    }
}

static void gz_append(ProtobufCBuffer *b, size_t len, const uint8_t *data) {
    gz_write((gz_out *)b, data, len, Z_NO_FLUSH);
}

/* A Profile with the fields set in *m packed onto the output. */
static void emit(gz_out *g, Lumio__Pprof__Profile *m) {
    protobuf_c_message_pack_to_buffer(&m->base, &g->base);
}

static void emit_tables(gz_out *g, const lumio__profile *p) {
    for (uint32_t i = 0; i < p->nfuncs && g->rc == 0; i++) {
        Lumio__Pprof__Function f = LUMIO__PPROF__FUNCTION__INIT, *fp = &f;
        f.id = i + 1;
        f.name = f.system_name = p->funcs[i].name;
        f.filename = p->funcs[i].file;
        Lumio__Pprof__Profile m = LUMIO__PPROF__PROFILE__INIT;
        m.n_function = 1;
        m.function = &fp;
        emit(g, &m);
    }
    for (uint32_t i = 0; i < p->nframes && g->rc == 0; i++) {
        Lumio__Pprof__Line line = LUMIO__PPROF__LINE__INIT, *lp = &line;
        line.function_id = p->frames[i].func + 1;
        line.line = p->frames[i].line;
        Lumio__Pprof__Location l = LUMIO__PPROF__LOCATION__INIT, *locp = &l;
        l.id = i + 1;
        l.n_line = 1;
        l.line = &lp;
        Lumio__Pprof__Profile m = LUMIO__PPROF__PROFILE__INIT;
        m.n_location = 1;
        m.location = &locp;
        emit(g, &m);
    }
    for (uint32_t i = 0; i < p->nstr && g->rc == 0; i++) {
        char *s = (char *)lumio__prof_str(p, i);
        Lumio__Pprof__Profile m = LUMIO__PPROF__PROFILE__INIT;
        m.n_string_table = 1;
        m.string_table = &s;
        emit(g, &m);
    }
}

typedef struct keys {
    uint32_t tid, thread; /* label keys (strings) */
} keys;

/* One sample of count for node (NONE: no frames) of thread t; tid_str: the
 * tid as a string, for a tid past int64's range (else 0: a number label). */
static void emit_sample(gz_out *g, const lumio__profile *p, const lumio__prof_thread *t,
                        uint32_t tid_str, uint32_t node, uint64_t count, const keys *k,
                        uint64_t *loc) {
    uint32_t *stack = (uint32_t *)(loc + LUMIO_STREAM_MAX_DEPTH);
    uint32_t n = lumio__prof_stack(p, node, stack);
    for (uint32_t i = 0; i < n; i++) loc[i] = (uint64_t)stack[i] + 1; /* ids from 1 */
    int64_t value = (int64_t)LUMIO_MIN(count, (uint64_t)INT64_MAX);
    Lumio__Pprof__Label tid = LUMIO__PPROF__LABEL__INIT, name = LUMIO__PPROF__LABEL__INIT;
    Lumio__Pprof__Label *labels[2] = {&tid, &name};
    tid.key = k->tid;
    if (tid_str) /* a label's number is an int64: never a wrapped, negative tid */
        tid.str = tid_str;
    else
        tid.num = (int64_t)t->tid;
    name.key = k->thread;
    name.str = t->name;
    Lumio__Pprof__Sample s = LUMIO__PPROF__SAMPLE__INIT, *sp = &s;
    s.n_location_id = n;
    s.location_id = loc;
    s.n_value = 1;
    s.value = &value;
    s.n_label = t->name ? 2 : 1;
    s.label = labels;
    Lumio__Pprof__Profile m = LUMIO__PPROF__PROFILE__INIT;
    m.n_sample = 1;
    m.sample = &sp;
    emit(g, &m);
}

/* Each thread's samples counted per stack (counts: a zeroed slot per node). */
static void emit_samples(gz_out *g, lumio__profile *p, const keys *k, uint64_t *counts,
                         uint64_t *loc) {
    for (uint32_t i = 0; i < p->nthreads && g->rc == 0; i++) {
        const lumio__prof_thread *t = &p->threads[i];
        uint32_t tid_str = 0;
        if (t->tid > INT64_MAX) {
            char num[24];
            snprintf(num, sizeof num, "%llu", (unsigned long long)t->tid);
            if ((tid_str = lumio__prof_string(p, num)) == LUMIO__PROF_NONE) {
                g->rc = -ENOMEM;
                return;
            }
            t = &p->threads[i];
        }
        uint64_t empty = 0;
        for (size_t j = 0; j < t->nsamples; j++) {
            uint32_t node = t->samples[j].node;
            if (node == LUMIO__PROF_NONE)
                empty++;
            else
                counts[node]++;
        }
        for (size_t j = 0; j < t->nnodes && g->rc == 0; j++) {
            uint32_t node = t->nodes[j];
            if (counts[node]) emit_sample(g, p, t, tid_str, node, counts[node], k, loc);
            counts[node] = 0;
        }
        if (empty) emit_sample(g, p, t, tid_str, LUMIO__PROF_NONE, empty, k, loc);
    }
}

static void emit_head(gz_out *g, lumio__profile *p, const uint32_t *s) {
    /* s: samples, count, wall, microseconds, command, source (comments) */
    Lumio__Pprof__ValueType st = LUMIO__PPROF__VALUE_TYPE__INIT, *stp = &st;
    Lumio__Pprof__ValueType pt = LUMIO__PPROF__VALUE_TYPE__INIT;
    st.type = s[0];
    st.unit = s[1];
    pt.type = s[2];
    pt.unit = s[3];
    uint64_t zero, wall, w = lumio__prof_interval(p);
    lumio__prof_epoch(p, &zero, &wall);
    int64_t comments[2];
    size_t nc = 0;
    if (s[4]) comments[nc++] = s[4];
    if (s[5]) comments[nc++] = s[5];
    Lumio__Pprof__Profile m = LUMIO__PPROF__PROFILE__INIT;
    m.n_sample_type = 1;
    m.sample_type = &stp;
    m.period_type = &pt;
    m.period = (int64_t)LUMIO_MIN(w, (uint64_t)INT64_MAX);
    uint64_t ns;
    m.time_nanos = __builtin_mul_overflow(wall, 1000, &ns) || ns > INT64_MAX ? 0 : (int64_t)ns;
    uint64_t span = p->nsamples ? p->t_max - p->t_min : 0;
    m.duration_nanos = __builtin_mul_overflow(span, 1000, &ns) || ns > INT64_MAX ? 0 : (int64_t)ns;
    m.n_comment = nc;
    m.comment = comments;
    emit(g, &m);
}

/* A comment "KEY: VALUE" of a record, interned: its string, 0 if none. */
static uint32_t comment(lumio__profile *p, const char *key, uint32_t value) {
    if (!value) return 0;
    const char *v = lumio__prof_str(p, value);
    size_t n = strlen(key) + strlen(v) + 3;
    char *buf = malloc(n);
    if (!buf) return LUMIO__PROF_NONE;
    snprintf(buf, n, "%s: %s", key, v);
    uint32_t id = lumio__prof_string(p, buf);
    free(buf);
    return id;
}

static int pprof_finish(lumio_stream_exporter *e) {
    lumio__profile *p = e->state;
    static const char *const words[] = {"samples",      "count", "wall",
                                        "microseconds", "tid",   "thread"};
    uint32_t s[8];
    for (size_t i = 0; i < 6; i++)
        if ((s[i] = lumio__prof_string(p, words[i])) == LUMIO__PROF_NONE)
            return lumio__export_fail(e, -ENOMEM, "out of memory");
    keys k = {s[4], s[5]};
    s[4] = comment(p, "command", p->command);
    s[5] = comment(p, "source", p->source);
    uint64_t *counts = calloc(p->nnodes ? p->nnodes : 1, sizeof *counts);
    /* location ids, then the frames they are made from */
    uint64_t *loc = malloc(LUMIO_STREAM_MAX_DEPTH * (sizeof *loc + sizeof(uint32_t)));
    gz_out *g = calloc(1, sizeof *g);
    int rc = 0;
    if (!counts || !loc || !g || s[4] == LUMIO__PROF_NONE || s[5] == LUMIO__PROF_NONE ||
        deflateInit2(&g->z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        rc = lumio__export_fail(e, -ENOMEM, "out of memory");
        goto out;
    }
    g->base.append = gz_append;
    g->out = e->out;
    emit_head(g, p, s);
    emit_samples(g, p, &k, counts, loc);
    emit_tables(g, p);
    gz_write(g, NULL, 0, Z_FINISH);
    deflateEnd(&g->z);
    rc = g->rc;
out:
    free(g);
    free(counts);
    free(loc);
    return rc;
}

const lumio__export_ops lumio__export_pprof = {.name = "pprof",
                                               .begin = lumio__prof_op_begin,
                                               .sample = lumio__prof_op_sample,
                                               .meta = lumio__prof_op_meta,
                                               .finish = pprof_finish,
                                               .release = lumio__prof_op_release};
