/* Exporters (stream.h, "exporting to other tools' formats"): one file per
 * format, export_FORMAT.c, each a table of operations listed in export.c.
 * Internal: not installed.
 *
 * The common part (lumio_stream_exporter) holds the output, the options and
 * the last error's text; a format keeps its own state behind `state`, made
 * by begin and freed by release. Strings a sample points to live only for
 * the call: a format that keeps them copies (interns) them. */
#ifndef LUMIO_STREAM_EXPORT_H
#define LUMIO_STREAM_EXPORT_H

#include "core/core.h"

#include <lumio/stream.h>

typedef struct lumio__export_ops {
    const char *name;
    int (*begin)(lumio_stream_exporter *e);                         /* may be NULL */
    int (*sample)(lumio_stream_exporter *e, const lumio_sample *s); /* required */
    int (*meta)(lumio_stream_exporter *e, uint64_t ts, const char *key,
                const char *value);            /* NULL: records are not exported */
    int (*finish)(lumio_stream_exporter *e);   /* may be NULL: nothing held */
    void (*release)(lumio_stream_exporter *e); /* may be NULL */
} lumio__export_ops;

struct lumio_stream_exporter {
    const lumio__export_ops *ops;
    FILE *out;
    char name[256]; /* options.name, or "lumio" */
    void *state;    /* the format's own */
    bool finished;
    lumio__err err;
};

/* Each format's table (export_FORMAT.c). */
extern const lumio__export_ops lumio__export_collapsed, lumio__export_jsonl;
extern const lumio__export_ops lumio__export_speedscope, lumio__export_gecko, lumio__export_pprof;
extern const lumio__export_ops lumio__export_tachyon;

/* Set the exporter's error text and return rc. */
int lumio__export_fail(lumio_stream_exporter *e, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Flush out: 0, or -EIO with the text "writing the output: WHY". */
int lumio__export_flush(lumio_stream_exporter *e);
/* s as a JSON string (quotes, escapes; invalid UTF-8 bytes as U+FFFD). */
void lumio__json_put_string(FILE *out, const char *s);

#endif
