/* speedscope's file format (jlfwong/speedscope, src/lib/file-format-spec.ts):
 * the frames once in shared.frames, then one "sampled" profile per thread,
 * each sample its stack root first as frame indices. Every sample is written
 * on its own with the weight of one sampling interval in microseconds, so
 * the count of a stack is the count of its entries (consecutive equal stacks
 * are not merged: speedscope's time order view shows each sample). */
#include "stream/export.h"
#include "stream/export_profile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void put_frames(FILE *o, const lumio__profile *p) {
    fputs("\"shared\":{\"frames\":[", o);
    for (uint32_t i = 0; i < p->nframes; i++) {
        const lumio__prof_func *fn = &p->funcs[p->frames[i].func];
        fputs(i ? ",\n{\"name\":" : "\n{\"name\":", o);
        lumio__json_put_string(o, lumio__prof_str(p, fn->name));
        if (fn->file) {
            fputs(",\"file\":", o);
            lumio__json_put_string(o, lumio__prof_str(p, fn->file));
        }
        if (p->frames[i].line) fprintf(o, ",\"line\":%u", p->frames[i].line);
        putc('}', o);
    }
    fputs("]},\n", o);
}

/* The samples of t, each "[root,...,leaf]". */
static void put_samples(FILE *o, const lumio__profile *p, const lumio__prof_thread *t,
                        uint32_t *stack, char *line) {
    for (size_t k = 0; k < t->nsamples; k++) {
        uint32_t n = lumio__prof_stack(p, t->samples[k].node, stack);
        size_t len = 0;
        line[len++] = k ? ',' : '[';
        line[len++] = '[';
        for (uint32_t i = n; i-- > 0;) {
            len += lumio__put_u64(line + len, stack[i]);
            if (i) line[len++] = ',';
        }
        line[len++] = ']';
        fwrite(line, 1, len, o);
    }
    if (!t->nsamples) putc('[', o);
    putc(']', o);
}

static void put_weights(FILE *o, size_t n, uint64_t w) {
    char num[24];
    size_t len = lumio__put_u64(num + 1, w) + 1;
    fputs("\"weights\":[", o);
    for (size_t k = 0; k < n; k++) {
        num[0] = ',';
        fwrite(num + !k, 1, len - !k, o);
    }
    putc(']', o);
}

static int put_profile(lumio_stream_exporter *e, const lumio__prof_thread *t, uint64_t w,
                       uint64_t zero, uint32_t *stack, char *line) {
    const lumio__profile *p = e->state;
    uint64_t start = t->nsamples ? t->samples[0].time_us - zero : 0, span;
    if (__builtin_mul_overflow((uint64_t)t->nsamples, w, &span) ||
        __builtin_add_overflow(start, span, &span))
        return lumio__export_fail(e, -EOVERFLOW, "thread %llu: %zu samples of %llu us overflow",
                                  (unsigned long long)t->tid, t->nsamples, (unsigned long long)w);
    FILE *o = e->out;
    fputs("{\"type\":\"sampled\",\"name\":", o);
    if (t->tid || t->nsamples || t->name)
        lumio__prof_put_thread_name(o, p, t);
    else /* the one empty profile of a profile without samples */
        lumio__json_put_string(o, e->name);
    fprintf(o, ",\"unit\":\"microseconds\",\"startValue\":%llu,\"endValue\":%llu,\n\"samples\":",
            (unsigned long long)start, (unsigned long long)span);
    put_samples(o, p, t, stack, line);
    fputs(",\n", o);
    put_weights(o, t->nsamples, w);
    putc('}', o);
    return ferror(o) ? -EIO : 0;
}

static int speedscope_finish(lumio_stream_exporter *e) {
    lumio__profile *p = e->state;
    lumio__prof_sort(p);
    uint64_t w = lumio__prof_interval(p), zero, wall;
    lumio__prof_epoch(p, &zero, &wall);
    /* A stack of MAX_DEPTH frames: each index up to 10 digits and a comma. */
    uint32_t *stack = malloc(LUMIO_STREAM_MAX_DEPTH * sizeof *stack);
    char *line = malloc((size_t)LUMIO_STREAM_MAX_DEPTH * 11 + 8);
    if (!stack || !line) {
        free(stack);
        free(line);
        return lumio__export_fail(e, -ENOMEM, "out of memory");
    }
    FILE *o = e->out;
    fputs("{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\",\n"
          "\"exporter\":\"lumio " LUMIO_VERSION_STRING "\",\"name\":",
          o);
    lumio__json_put_string(o, e->name);
    fputs(",\"activeProfileIndex\":0,\n", o);
    put_frames(o, p);
    fputs("\"profiles\":[", o);
    int rc = 0, written = 0;
    for (uint32_t i = 0; i < p->nthreads && rc == 0; i++) {
        if (!p->threads[i].nsamples) continue; /* a name alone */
        if (written++) fputs(",\n", o);
        rc = put_profile(e, &p->threads[i], w, zero, stack, line);
    }
    if (!written && rc == 0) { /* speedscope shows an empty profile, not an error */
        lumio__prof_thread none = {0};
        rc = put_profile(e, &none, w, zero, stack, line);
    }
    fputs("]}\n", o);
    free(stack);
    free(line);
    return rc < 0 ? rc : ferror(o) ? -EIO : 0;
}

const lumio__export_ops lumio__export_speedscope = {.name = "speedscope",
                                                    .begin = lumio__prof_op_begin,
                                                    .sample = lumio__prof_op_sample,
                                                    .meta = lumio__prof_op_meta,
                                                    .finish = speedscope_finish,
                                                    .release = lumio__prof_op_release};
