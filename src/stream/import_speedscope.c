/* Importer of speedscope's file format (jlfwong/speedscope,
 * src/lib/file-format-spec.ts): the sampled profiles, each a thread.
 *
 * The whole file is parsed (jansson) before the first sample is handed
 * over, so the input is capped (SPEEDSCOPE_MAX_BYTES) and every index,
 * length and weight is checked first: nothing is delivered from a file that
 * does not validate. Mapping (docs/PROFILES.md): a profile named as lumio's
 * thread_name ("TID NAME") or as lumio's speedscope export names threads
 * ("NAME (tid TID)", "tid TID") gets that thread id, any other the
 * profile's index; unit "none": weight w (an
 * integer) is w samples, timestamps 0, 1, 2, ...; "bytes": one sample each
 * (the weight is lost), timestamps likewise; a time unit: one sample each,
 * at startValue plus the weights before it, in microseconds. */
#include "stream/import.h"

#include "core/core.h"
#include "stream/chunk.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define SPEEDSCOPE_MAX_BYTES   (64u << 20)
#define SPEEDSCOPE_MAX_SAMPLES LUMIO_IMPORT_MAX_SAMPLES /* after weights are expanded */

typedef struct ss {
    char *err;
    size_t errlen;
    json_t *root;
    lumio_frame *frames; /* shared.frames */
    size_t nframes;
    lumio_frame *stack; /* one sample's, innermost first */
    uint64_t total;     /* samples so far, weights expanded */
} ss;

static int fail(ss *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(ss *p, const char *fmt, ...) {
    if (p->err && p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, p->errlen, fmt, ap);
        va_end(ap);
    }
    return LUMIO_E_FORMAT;
}

/* The input whole, at most the cap: a buffer (to free) or NULL with *rc. */
static char *slurp(FILE *in, size_t *n, ss *p, int *rc) {
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len, in);
        if (len < cap) break;
        if (cap >= SPEEDSCOPE_MAX_BYTES + 1) {
            free(buf);
            *rc = fail(p, "the file is larger than the limit of %u bytes", SPEEDSCOPE_MAX_BYTES);
            return NULL;
        }
        char *b = realloc(buf, LUMIO_MIN(cap * 2, (size_t)SPEEDSCOPE_MAX_BYTES + 1));
        if (!b) break;
        buf = b;
        cap = LUMIO_MIN(cap * 2, (size_t)SPEEDSCOPE_MAX_BYTES + 1);
    }
    if (!buf) {
        *rc = -ENOMEM;
        if (p->err) snprintf(p->err, p->errlen, "out of memory");
        return NULL;
    }
    if (ferror(in)) {
        free(buf);
        *rc = -EIO;
        if (p->err) snprintf(p->err, p->errlen, "read failed");
        return NULL;
    }
    *n = len;
    return buf;
}

/* shared.frames: [{"name", "file"?, "line"?, "col"?}] */
static int load_frames(ss *p) {
    json_t *fr = json_object_get(json_object_get(p->root, "shared"), "frames");
    if (!json_is_array(fr)) return fail(p, "shared.frames: missing or not an array");
    p->nframes = json_array_size(fr);
    p->frames = calloc(p->nframes + 1, sizeof *p->frames);
    if (!p->frames) return -ENOMEM;
    for (size_t i = 0; i < p->nframes; i++) {
        json_t *f = json_array_get(fr, i), *name = json_object_get(f, "name");
        json_t *file = json_object_get(f, "file"), *line = json_object_get(f, "line");
        if (!json_is_string(name))
            return fail(p, "shared.frames[%zu].name: missing or not a string", i);
        if (file && !json_is_string(file))
            return fail(p, "shared.frames[%zu].file: not a string", i);
        if (line && (!json_is_integer(line) || json_integer_value(line) < 0 ||
                     json_integer_value(line) > UINT32_MAX))
            return fail(p, "shared.frames[%zu].line: not an integer from 0 to 2^32-1", i);
        if (json_string_length(name) > CHUNK_MAX_STRING ||
            (file && json_string_length(file) > CHUNK_MAX_STRING))
            return fail(p, "shared.frames[%zu]: a name over the limit of %u bytes", i,
                        CHUNK_MAX_STRING);
        p->frames[i] = (lumio_frame){.function = json_string_value(name),
                                     .file = file ? json_string_value(file) : "",
                                     .line = line ? (uint32_t)json_integer_value(line) : 0};
    }
    return 0;
}

/* The unit's microseconds per weight; 0 for "none" (weights count
 * samples), UNIT_BYTES for "bytes" (one sample each, the weight lost), -1
 * for a unit that is not speedscope's. */
#define UNIT_BYTES (-2.0)
static double unit_us(const char *u) {
    static const struct {
        const char *name;
        double us;
    } units[] = {{"none", 0},         {"bytes", UNIT_BYTES}, {"nanoseconds", 1e-3},
                 {"microseconds", 1}, {"milliseconds", 1e3}, {"seconds", 1e6}};
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (u && !strcmp(u, units[i].name)) return units[i].us;
    return -1;
}

/* Check one sampled profile wholly (before anything of it is delivered). */
static int check_profile(ss *p, size_t k, json_t *prof, double *us) {
    json_t *type = json_object_get(prof, "type");
    if (!json_is_string(type)) return fail(p, "profiles[%zu].type: missing or not a string", k);
    if (strcmp(json_string_value(type), "sampled"))
        return fail(p, "profiles[%zu].type: \"%.40s\" profiles are not supported (sampled only)", k,
                    json_string_value(type));
    *us = unit_us(json_string_value(json_object_get(prof, "unit")));
    if (*us == -1) return fail(p, "profiles[%zu].unit: missing or not a speedscope unit", k);
    json_t *samples = json_object_get(prof, "samples"), *weights = json_object_get(prof, "weights");
    if (!json_is_array(samples)) return fail(p, "profiles[%zu].samples: not an array", k);
    if (!json_is_array(weights)) return fail(p, "profiles[%zu].weights: not an array", k);
    if (json_array_size(samples) != json_array_size(weights))
        return fail(p, "profiles[%zu]: %zu samples but %zu weights", k, json_array_size(samples),
                    json_array_size(weights));
    for (size_t i = 0; i < json_array_size(samples); i++) {
        json_t *st = json_array_get(samples, i), *w = json_array_get(weights, i);
        if (!json_is_array(st)) return fail(p, "profiles[%zu].samples[%zu]: not an array", k, i);
        if (json_array_size(st) > LUMIO_STREAM_MAX_DEPTH)
            return fail(p, "profiles[%zu].samples[%zu]: %zu frames exceed the limit of %u", k, i,
                        json_array_size(st), LUMIO_STREAM_MAX_DEPTH);
        for (size_t d = 0; d < json_array_size(st); d++) {
            json_t *ix = json_array_get(st, d);
            if (!json_is_integer(ix) || json_integer_value(ix) < 0 ||
                (uint64_t)json_integer_value(ix) >= p->nframes)
                return fail(p, "profiles[%zu].samples[%zu][%zu]: not a frame index (%zu frames)", k,
                            i, d, p->nframes);
        }
        double v = json_number_value(w);
        if (!json_is_number(w) || !isfinite(v) || v < 0)
            return fail(p, "profiles[%zu].weights[%zu]: not a number >= 0", k, i);
        if (*us == 0 && (!json_is_integer(w)))
            return fail(p, "profiles[%zu].weights[%zu]: not an integer (unit counts samples)", k,
                        i);
        uint64_t n = *us == 0 ? (uint64_t)json_integer_value(w) : 1;
        if (n > SPEEDSCOPE_MAX_SAMPLES - p->total)
            return fail(p, "profiles[%zu].weights[%zu]: the samples exceed the limit of %llu", k, i,
                        SPEEDSCOPE_MAX_SAMPLES);
        p->total += n;
    }
    return 0;
}

/* Exactly the n decimal digits at p, within 64 bits. */
static bool parse_dec(const char *p, size_t n, uint64_t *out) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return n > 0;
}

/* The thread of a profile's name: lumio's thread_name "TID NAME" (or
 * "TID"), or what lumio's speedscope export writes, "NAME (tid TID)" or
 * "tid TID". *name_len: how much of the name is the thread's name. */
static bool name_tid(const char *name, uint64_t *tid, size_t *name_len) {
    size_t n = strlen(name), d = strspn(name, "0123456789");
    if (d && (name[d] == ' ' || name[d] == '\0') && parse_dec(name, d, tid)) {
        *name_len = name[d] ? n : 0; /* "TID" alone names no thread */
        return true;
    }
    if (n > 5 && name[n - 1] == ')') { /* "... (tid N)" or "tid N" */
        size_t k = n - 1;
        while (k > 0 && name[k - 1] >= '0' && name[k - 1] <= '9') k--;
        if (k >= 6 && !memcmp(name + k - 6, " (tid ", 6) && parse_dec(name + k, n - 1 - k, tid)) {
            *name_len = k - 6;
            return true;
        }
    }
    if (n > 4 && !memcmp(name, "tid ", 4) && parse_dec(name + 4, n - 4, tid)) {
        *name_len = 0;
        return true;
    }
    return false;
}

static int deliver_profile(ss *p, size_t k, json_t *prof, double us, lumio_import_fn fn,
                           lumio_import_meta_fn meta, void *arg) {
    const char *name = json_string_value(json_object_get(prof, "name"));
    uint64_t thread = k;
    size_t len = name ? strlen(name) : 0;
    bool has_tid = name && name_tid(name, &thread, &len);
    if (name && meta && len) {
        char rec[512];
        if (has_tid && len == strlen(name) && name[strspn(name, "0123456789")] == ' ')
            snprintf(rec, sizeof rec, "%s", name); /* already "TID NAME" */
        else
            snprintf(rec, sizeof rec, "%" PRIu64 " %.*s", thread, (int)LUMIO_MIN(len, 480u), name);
        int rc = meta(arg, 0, "thread_name", rec);
        if (rc) return rc;
    }
    double start = json_number_value(json_object_get(prof, "startValue")), at = 0;
    if (!isfinite(start) || start < 0) start = 0;
    json_t *samples = json_object_get(prof, "samples"), *weights = json_object_get(prof, "weights");
    uint64_t count = 0;
    for (size_t i = 0; i < json_array_size(samples); i++) {
        json_t *st = json_array_get(samples, i);
        uint32_t depth = (uint32_t)json_array_size(st);
        for (uint32_t d = 0; d < depth; d++) /* root first in the file */
            p->stack[depth - 1 - d] = p->frames[json_integer_value(json_array_get(st, d))];
        lumio_sample s = {.thread_id = thread, .frames = p->stack, .depth = depth};
        json_t *w = json_array_get(weights, i);
        uint64_t n = us == 0 ? (uint64_t)json_integer_value(w) : 1;
        for (uint64_t r = 0; r < n; r++) {
            double t = us <= 0 ? (double)count++ : (start + at) * us;
            s.timestamp_us = t < 1.8e19 ? (uint64_t)llround(t) : UINT64_MAX;
            int rc = fn(arg, &s);
            if (rc) return rc;
        }
        if (us > 0) at += json_number_value(w);
    }
    return 0;
}

static int speedscope(ss *p, lumio_import_fn fn, lumio_import_meta_fn meta, void *arg) {
    if (!json_is_object(p->root)) return fail(p, "the document is not a JSON object");
    int rc = load_frames(p);
    json_t *profiles = json_object_get(p->root, "profiles");
    if (rc == 0 && !json_is_array(profiles)) rc = fail(p, "profiles: missing or not an array");
    size_t n = json_array_size(profiles);
    double *us = rc == 0 ? calloc(n + 1, sizeof *us) : NULL;
    if (rc == 0 && !us) rc = -ENOMEM;
    for (size_t k = 0; rc == 0 && k < n; k++)
        rc = check_profile(p, k, json_array_get(profiles, k), &us[k]);
    p->stack = rc == 0 ? calloc(LUMIO_STREAM_MAX_DEPTH, sizeof *p->stack) : NULL;
    if (rc == 0 && !p->stack) rc = -ENOMEM;
    const char *exporter = json_string_value(json_object_get(p->root, "exporter"));
    if (rc == 0 && meta) {
        char src[200];
        snprintf(src, sizeof src, "speedscope%s%.180s", exporter ? " " : "",
                 exporter ? exporter : "");
        rc = meta(arg, 0, "source", src);
    }
    for (size_t k = 0; rc == 0 && k < n; k++)
        rc = deliver_profile(p, k, json_array_get(profiles, k), us[k], fn, meta, arg);
    free(us);
    return rc;
}

int lumio__import_speedscope(FILE *in, lumio_import_fn fn, lumio_import_meta_fn meta, void *arg,
                             char *err, size_t errlen) {
    ss p = {.err = err, .errlen = errlen};
    size_t n;
    int rc = 0;
    char *buf = slurp(in, &n, &p, &rc);
    if (!buf) return rc;
    json_error_t je;
    p.root = json_loadb(buf, n, 0, &je);
    free(buf);
    if (!p.root) {
        rc = fail(&p, "not JSON: line %d, column %d: %.120s", je.line, je.column, je.text);
    } else {
        rc = speedscope(&p, fn, meta, arg);
        json_decref(p.root);
    }
    free(p.frames);
    free(p.stack);
    return rc;
}
