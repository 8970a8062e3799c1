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
#include <stdint.h>
#include <stdio.h>

/* Called once per sample; a non-zero return stops the import and is returned. */
typedef int (*lumio_import_fn)(void *arg, const lumio_sample *s);

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
 * space; the stack is everything before it. Blank lines are skipped. */
int lumio__import_collapsed(FILE *in, lumio_import_fn fn, void *arg, char *err, size_t errlen);

/* Write s as one folded line with the given count, outermost frame first.
 * The format has no escapes, so ';' inside a function name is written as ':'
 * and '\n' or '\r' as ' ' (otherwise the line would split into frames or
 * lines on import). Returns 0, -EINVAL for a sample without frames (the
 * format cannot express one) or -EIO when writing fails. */
int lumio__export_collapsed_line(FILE *out, const lumio_sample *s, uint64_t count);

#endif
