/* Importers of profile text into lumio samples, and the folded-stack exporter.
 * Internal: not installed.
 *
 * Both importers read `in` line by line (any line length, LF or CRLF), build
 * one sample at a time and hand it to fn. The sample and every string it
 * points to live only until fn returns: the buffers are reused for the next
 * sample, so the memory held is that of one sample, never of the file.
 *
 * They return 0 at the end of the input, the first non-zero value fn returns
 * (the import stops there), LUMIO_E_FORMAT for malformed text (err then names
 * the line), -ENOMEM, or -EIO when reading fails. err (errlen bytes, may be
 * NULL) receives a message for every failure except fn's own. */
#ifndef LUMIO_STREAM_IMPORT_H
#define LUMIO_STREAM_IMPORT_H

#include <lumio/stream.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Called once per sample; a non-zero return stops the import and is returned. */
typedef int (*lumio_import_fn)(void *arg, const lumio_sample *s);
/* Called once per record (metadata) when not NULL; as lumio_import_fn. */
typedef int (*lumio_import_meta_fn)(void *arg, uint64_t ts, const char *key, const char *value);

/* The most samples one import may expand counts and weights into (folded
 * stacks' counts, speedscope's weights): a 20-byte line must not stand for
 * 2^64 samples and an import that never ends. */
#define LUMIO_IMPORT_MAX_SAMPLES 1000000000ull

/* ---- lines of text, shared by the text importers ---------------------------- */

typedef struct line_reader {
    FILE *in;
    char *buf;
    size_t cap;
    uint64_t lineno;
    uint64_t line_off, next_off; /* byte offsets of this line and the next */
    bool newline;                /* this line ended with "\n" (else it is the input's end) */
    const char *why;             /* set with every failure of ours, NULL for fn's own */
    char detail[96];             /* when why needs numbers: why points here */
} line_reader;

/* The next line into r->buf, without its "\n" or "\r\n": 1, 0 at the end of
 * the input, or a negative code (r->why set). */
int lumio__line_next(line_reader *r);
/* A malformed line: r->why = why; returns LUMIO_E_FORMAT. */
int lumio__line_bad(line_reader *r, const char *why);
/* A limit broken (n over limit, or n 0 when not known yet): LUMIO_E_FORMAT. */
int lumio__line_over(line_reader *r, const char *what, uint64_t n, uint64_t limit,
                     const char *unit);
/* The failure as "line N (byte B): why: \"excerpt\"" into err (fn's own
 * codes, with no why, get no text). */
void lumio__line_report(const line_reader *r, int rc, char *err, size_t errlen);

/* The text of `perf script` (with call chains). Each sample is a header
 *     COMM [PID/]TID [[CPU]] SECONDS.FRACTION: [PERIOD EVENT: ...]
 * (COMM may contain spaces) followed by frame lines, innermost first,
 *     \t<hex address> <symbol>[+0x<offset>] (<dso>)
 * and a blank line. The sample gets timestamp_us = the time rounded to the
 * nearest microsecond (exact, from the digits), thread_id = TID (the only
 * number when there is no '/'), status 0, and per frame function = the
 * symbol without its offset ("[unknown]" kept), file = the dso, line 0. An
 * "(inlined)" frame gets the dso of the nearest non-inlined frame outside it,
 * or "[inlined]" when there is none. Stacks deeper than LUMIO_STREAM_MAX_DEPTH
 * keep their innermost frames. Lines that start with a tab are frames; any
 * other non-blank line is a header. */
int lumio__import_perf_script(FILE *in, lumio_import_fn fn, void *arg, char *err, size_t errlen);

/* Folded stacks (flamegraph.pl's "collapsed" format): each line is
 *     outer;middle;inner COUNT
 * and yields COUNT identical samples (frames[0] = inner) with thread_id 0,
 * status 0, file "" and line 0, and timestamps 0, 1, 2, ... microseconds
 * counted across the whole file. The count is the text after the line's last
 * space; the stack is everything before it. Blank lines are skipped. The
 * counts of a file add up to LUMIO_IMPORT_MAX_SAMPLES at most: the line that
 * would pass it fails (LUMIO_E_FORMAT) before any of its samples is given. */
int lumio__import_collapsed(FILE *in, lumio_import_fn fn, void *arg, char *err, size_t errlen);

/* austin's text output, 3.x (`P<pid>;T<iid>:<tid>;<file>:<function>:<line>;...
 * <metric>`, `# key: value` metadata, full metrics `<time>,<idle>,<memory>`)
 * and 1.x (`[Process <pid>;]Thread <tid>;<function> (<file>);L<line>;...
 * <metric>[ <mem+> <mem->]`). One line is one sample (docs/PROFILES.md):
 * thread_id the TID (hexadecimal in austin's text), frames innermost first,
 * timestamp_us the thread's running sum of its time metric; metadata lines
 * become records (and source, interval_us, python_version). A last line cut
 * short (no newline and not a sample) is dropped. */
int lumio__import_austin(FILE *in, lumio_import_fn fn, lumio_import_meta_fn meta, void *arg,
                         char *err, size_t errlen);

/* speedscope's file format: the sampled profiles, one thread each (docs/PROFILES.md). */
int lumio__import_speedscope(FILE *in, lumio_import_fn fn, lumio_import_meta_fn meta, void *arg,
                             char *err, size_t errlen);

/* CPython's sampling-profiler binary format v1 (stream/tachyon.h). Needs
 * seeking: a pipe is spooled to an unlinked temporary file first. */
int lumio__import_tachyon(FILE *in, lumio_import_fn fn, lumio_import_meta_fn meta, void *arg,
                          char *err, size_t errlen);

/* Write s as one folded line with the given count, outermost frame first.
 * The format has no escapes, so ';' inside a function name is written as ':'
 * and '\n' or '\r' as ' ' (otherwise the line would split into frames or
 * lines on import). Returns 0, -EINVAL for a sample without frames (the
 * format cannot express one) or -EIO when writing fails. */
int lumio__export_collapsed_line(FILE *out, const lumio_sample *s, uint64_t count);

#endif
