/* Exporters: the registry of formats, the calls of stream.h, and the two
 * that stream (collapsed, jsonl). The formats that hold the profile until
 * finish are in export_FORMAT.c. */
#include "stream/export.h"
#include "stream/import.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* One a line, in the order `--to help` lists them. */
// clang-format off
static const lumio__export_ops *const formats[] = {
    &lumio__export_collapsed,
    &lumio__export_jsonl,
    &lumio__export_speedscope,
    &lumio__export_gecko,
    &lumio__export_pprof,
    &lumio__export_tachyon,
};
// clang-format on

int lumio__export_fail(lumio_stream_exporter *e, int rc, const char *fmt, ...) {
    char msg[LUMIO_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lumio__err_set(&e->err, "export to %s: %s", e->ops->name, msg);
    return rc;
}

int lumio__export_flush(lumio_stream_exporter *e) {
    errno = 0;
    if (fflush(e->out) == 0 && !ferror(e->out)) return 0;
    return lumio__export_fail(e, -EIO, "writing the output: %s", strerror(errno ? errno : EIO));
}

/* ---- collapsed ------------------------------------------------------------ */

static int collapsed_sample(lumio_stream_exporter *e, const lumio_sample *s) {
    if (s->depth == 0) { /* the format cannot say "no frames": as flamegraph tools do */
        fputs("[empty] 1\n", e->out);
        return ferror(e->out) ? -EIO : 0;
    }
    return lumio__export_collapsed_line(e->out, s, 1);
}

const lumio__export_ops lumio__export_collapsed = {.name = "collapsed", .sample = collapsed_sample};

/* ---- jsonl ---------------------------------------------------------------- */

void lumio__json_put_string(FILE *out, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    putc('"', out);
    while (*p) {
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            putc('\\', out);
            putc((int)c, out);
            p++;
        } else if (c < 0x20) {
            fprintf(out, "\\u%04x", c);
            p++;
        } else if (c < 0x80) {
            putc((int)c, out);
            p++;
        } else { /* copy a whole valid UTF-8 sequence, else U+FFFD for the byte */
            size_t n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
            size_t k = 1;
            while (n && k < n && (p[k] & 0xC0) == 0x80) k++;
            bool ok = n && k == n;
            if (ok && n == 3) { /* overlong or a surrogate */
                unsigned cp = (c & 0x0F) << 12 | (p[1] & 0x3Fu) << 6 | (p[2] & 0x3Fu);
                ok = cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF);
            } else if (ok && n == 4) {
                unsigned cp = (c & 0x07) << 18 | (p[1] & 0x3Fu) << 12;
                ok = cp >= 0x10000 && cp <= 0x10FFFF;
            }
            if (ok) {
                fwrite(p, 1, n, out);
                p += n;
            } else {
                fputs("\\ufffd", out);
                p++;
            }
        }
    }
    putc('"', out);
}

static int jsonl_sample(lumio_stream_exporter *e, const lumio_sample *s) {
    FILE *o = e->out;
    fprintf(o,
            "{\"type\":\"sample\",\"ts_us\":%" PRIu64 ",\"tid\":%" PRIu64
            ",\"status\":%u,\"frames\":[",
            s->timestamp_us, s->thread_id, s->status);
    for (uint32_t k = 0; k < s->depth; k++) {
        fputs(k ? ",{\"function\":" : "{\"function\":", o);
        lumio__json_put_string(o, s->frames[k].function ? s->frames[k].function : "");
        fputs(",\"file\":", o);
        lumio__json_put_string(o, s->frames[k].file ? s->frames[k].file : "");
        fprintf(o, ",\"line\":%u}", s->frames[k].line);
    }
    fputs("]}\n", o);
    return ferror(o) ? -EIO : 0;
}

static int jsonl_meta(lumio_stream_exporter *e, uint64_t ts, const char *key, const char *value) {
    FILE *o = e->out;
    fprintf(o, "{\"type\":\"meta\",\"ts_us\":%" PRIu64 ",\"key\":", ts);
    lumio__json_put_string(o, key);
    fputs(",\"value\":", o);
    lumio__json_put_string(o, value);
    fputs("}\n", o);
    return ferror(o) ? -EIO : 0;
}

const lumio__export_ops lumio__export_jsonl = {
    .name = "jsonl", .sample = jsonl_sample, .meta = jsonl_meta};

/* ---- the public calls (stream.h) -------------------------------------------- */

static int create_impl(lumio_stream_exporter **out, const char *format, FILE *f,
                       const lumio_stream_export_options *o) {
    static const lumio_stream_export_options none = {0};
    if (!out || !format || !f) {
        lumio__err_set(NULL, "lumio_stream_exporter_create: %s is NULL",
                       !out      ? "the handle"
                       : !format ? "the format"
                                 : "the output");
        return -EINVAL;
    }
    *out = NULL;
    if (!o) o = &none;
    if (!lumio__zero(o->reserved, sizeof o->reserved)) {
        lumio__err_set(NULL, "lumio_stream_export_options: reserved fields are not zero");
        return -EINVAL;
    }
    const lumio__export_ops *ops = NULL;
    char known[256] = "";
    for (size_t i = 0; i < sizeof formats / sizeof *formats; i++) {
        if (!strcmp(formats[i]->name, format)) ops = formats[i];
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                 formats[i]->name);
    }
    if (!ops) {
        lumio__err_set(NULL, "export: unknown format '%s' (%s)", format, known);
        return -EINVAL;
    }
    lumio_stream_exporter *e = calloc(1, sizeof *e);
    if (!e) return -ENOMEM;
    e->ops = ops;
    e->out = f;
    snprintf(e->name, sizeof e->name, "%s", o->name && o->name[0] ? o->name : "lumio");
    lumio__err_init(&e->err);
    int rc = ops->begin ? ops->begin(e) : 0;
    if (rc < 0) {
        char msg[LUMIO_ERROR_MAX];
        lumio__err_set(NULL, "%s", lumio__err_get(&e->err, msg, sizeof msg));
        lumio_stream_exporter_close(e);
        return rc;
    }
    *out = e;
    return 0;
}

int lumio_stream_exporter_create(lumio_stream_exporter **out, const char *format, FILE *f,
                                 const lumio_stream_export_options *o) {
    uint64_t mark = lumio__err_mark();
    return lumio__err_ensure(mark, create_impl(out, format, f, o), "lumio_stream_exporter_create");
}

/* A failure of the format's own that left no text gets the plain one. */
static int checked(lumio_stream_exporter *e, int rc, const char *what) {
    int why = errno; /* a failed write's, for -EIO */
    if (rc >= 0) return 0;
    char probe[8];
    if (lumio__err_get(&e->err, probe, sizeof probe)[0]) return rc;
    if (rc == -EIO && why && why != EIO)
        lumio__export_fail(e, rc, "%s: writing the output: %s", what, strerror(why));
    else
        lumio__export_fail(e, rc, "%s: %s", what, lumio_strerror(rc));
    return rc;
}

int lumio_stream_exporter_sample(lumio_stream_exporter *e, const lumio_sample *s) {
    if (!e || !s || (s->depth && !s->frames)) return -EINVAL;
    if (!lumio__zero(s->reserved, sizeof s->reserved))
        return lumio__export_fail(e, -EINVAL, "lumio_sample: reserved fields are not zero");
    if (e->finished) return lumio__export_fail(e, -EINVAL, "a sample after finish");
    errno = 0;
    int rc = e->ops->sample(e, s);
    return checked(e, rc, "writing a sample");
}

int lumio_stream_exporter_meta(lumio_stream_exporter *e, uint64_t ts, const char *key,
                               const char *value) {
    if (!e || !key || !value) return -EINVAL;
    if (e->finished) return lumio__export_fail(e, -EINVAL, "a record after finish");
    if (!e->ops->meta) return 0;
    errno = 0;
    int rc = e->ops->meta(e, ts, key, value);
    return checked(e, rc, "writing a record");
}

int lumio_stream_exporter_finish(lumio_stream_exporter *e) {
    if (!e) return -EINVAL;
    if (e->finished) return 0;
    e->finished = true;
    int rc = e->ops->finish ? e->ops->finish(e) : 0;
    if (rc == -EIO || rc == 0) rc = lumio__export_flush(e) < 0 ? -EIO : rc;
    return checked(e, rc, "writing the profile");
}

char *lumio_stream_exporter_last_error(const lumio_stream_exporter *e, char *buf, size_t len) {
    return lumio__err_get(e ? &e->err : NULL, buf, len);
}

const char *lumio_stream_export_format(size_t index) {
    return index < sizeof formats / sizeof *formats ? formats[index]->name : NULL;
}

void lumio_stream_exporter_close(lumio_stream_exporter *e) {
    if (!e) return;
    if (e->ops->release) e->ops->release(e);
    lumio__err_fini(&e->err);
    free(e);
}
