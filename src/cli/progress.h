/* One progress line on standard error for long work (get, cat of URLs, cp,
 * hash, zarr create and rechunk, the benchmarks), as curl and aria2c draw
 * theirs:
 *
 *   fetched 212.0 MiB of 593.4 MiB (35%), 196.0 MiB/s, 2s left
 *   hashed 1200 files, 3.1 GiB, 1.9 GiB/s            (no total known)
 *
 * It is drawn only when standard error is a terminal, first after half a
 * second (quick work shows nothing) and then at most ten times a second,
 * and ends as one summary line:
 *
 *   fetched 593.4 MiB in 3.0 s (196.0 MiB/s)
 *
 * or, when the work failed, is cleared so the error stands alone. A message
 * from cli_error() clears the line first; it is drawn again after it.
 * A progress is used from one thread; one is active at a time. */
#ifndef LUMIO_CLI_PROGRESS_H
#define LUMIO_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

enum {
    PROGRESS_FILES = 1,    /* count files too ("hashed 12 files, ...") */
    PROGRESS_TO_STDOUT = 2 /* the data goes to standard output: no line when that
                              is a terminal too, as curl (it would garble both) */
};

#define PROGRESS_SAMPLES 32 /* the rate is that of the last ~3 s */

typedef struct progress {
    bool on, drawn, files, stdout_tty;
    const char *verb; /* "fetched", "hashed" */
    double start, last;
    uint64_t total; /* bytes expected; 0: not known */
    uint64_t nfiles, bytes;
    double t[PROGRESS_SAMPLES];
    uint64_t b[PROGRESS_SAMPLES];
    unsigned next, nsamples;
} progress;

void progress_start(progress *p, const char *verb, unsigned flags);
/* The bytes expected in all, once known (0: not known). */
void progress_total(progress *p, uint64_t total);
/* Where the work is: files done (with PROGRESS_FILES) and bytes. Cheap to
 * call often: it draws only when it is time to. */
void progress_update(progress *p, uint64_t files, uint64_t bytes);
/* Before lines go to a standard output on the same terminal: the line is
 * cleared (and drawn again at the next update). */
void progress_before_output(progress *p);
/* The end: the summary line when the line was drawn and ok, else cleared. */
void progress_end(progress *p, bool ok);

/* Clear the active line, if drawn (cli_error, before its message). */
void progress_hide_active(void);

#endif
