/* The progress line: see progress.h. */
#include "cli/progress.h"

#include "cli/common.h"

#include <stdio.h>
#include <unistd.h>

#define FIRST_DRAW 0.5 /* seconds of work before the line appears */
#define REDRAW     0.1 /* and between two drawings */

static progress *active;

void progress_start(progress *p, const char *verb, unsigned flags) {
    *p = (progress){.verb = verb, .files = (flags & PROGRESS_FILES) != 0};
    p->stdout_tty = isatty(STDOUT_FILENO) == 1;
    p->on = isatty(STDERR_FILENO) == 1 && !(p->stdout_tty && (flags & PROGRESS_TO_STDOUT));
    p->start = p->last = now_seconds();
    /* The rate counts from the start until there are samples of its own. */
    p->t[0] = p->start;
    p->b[0] = 0;
    p->next = p->nsamples = 1;
    if (p->on) active = p;
}

void progress_total(progress *p, uint64_t total) {
    p->total = total;
}

/* "593.4 MiB", in powers of 1024 as the sizes the options take. */
static const char *human(uint64_t v, char *buf, size_t len) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (v < 1024) {
        snprintf(buf, len, "%llu B", (unsigned long long)v);
        return buf;
    }
    double x = (double)v / 1024;
    unsigned u = 0;
    while (x >= 1024 && u + 1 < sizeof units / sizeof *units) x /= 1024, u++;
    snprintf(buf, len, "%.1f %s", x, units[u]);
    return buf;
}

/* "45s", "3m07s", "2h05m". */
static const char *duration(double s, char *buf, size_t len) {
    unsigned long long n = s < 0 ? 0 : s > 1e9 ? 1000000000ull : (unsigned long long)(s + 0.5);
    if (n < 60)
        snprintf(buf, len, "%llus", n);
    else if (n < 3600)
        snprintf(buf, len, "%llum%02llus", n / 60, n % 60);
    else
        snprintf(buf, len, "%lluh%02llum", n / 3600, n / 60 % 60);
    return buf;
}

/* Bytes a second over the samples kept (the last few seconds), this one
 * among them. */
static double recent_rate(progress *p, double t) {
    p->t[p->next] = t;
    p->b[p->next] = p->bytes;
    p->next = (p->next + 1) % PROGRESS_SAMPLES;
    if (p->nsamples < PROGRESS_SAMPLES) p->nsamples++;
    unsigned oldest = p->nsamples < PROGRESS_SAMPLES ? 0 : p->next;
    double dt = t - p->t[oldest];
    return dt > 0 && p->bytes >= p->b[oldest] ? (double)(p->bytes - p->b[oldest]) / dt : 0;
}

/* "12 files, " when files are counted. */
static void files_text(const progress *p, char *buf, size_t len) {
    buf[0] = 0;
    if (p->files)
        snprintf(buf, len, "%llu file%s, ", (unsigned long long)p->nfiles,
                 p->nfiles == 1 ? "" : "s");
}

static void draw(progress *p, double t) {
    char files[48], done[32], total[32], rate[32], left[32];
    double r = recent_rate(p, t);
    files_text(p, files, sizeof files);
    human(p->bytes, done, sizeof done);
    human((uint64_t)r, rate, sizeof rate);
    /* A total that the work went past (a file that grew) is no longer one. */
    if (p->total && p->bytes <= p->total) {
        unsigned pct = (unsigned)((double)p->bytes * 100 / (double)p->total);
        if (pct == 100 && p->bytes < p->total) pct = 99;
        fprintf(stderr, "\r%s %s%s of %s (%u%%), %s/s", p->verb, files, done,
                human(p->total, total, sizeof total), pct, rate);
        if (r > 0)
            fprintf(stderr, ", %s left",
                    duration((double)(p->total - p->bytes) / r, left, sizeof left));
    } else {
        fprintf(stderr, "\r%s %s%s, %s/s", p->verb, files, done, rate);
    }
    fputs("\033[K", stderr);
    fflush(stderr);
    p->drawn = true;
}

void progress_update(progress *p, uint64_t files, uint64_t bytes) {
    p->nfiles = files;
    p->bytes = bytes;
    if (!p->on) return;
    double t = now_seconds();
    /* Drawing costs more than it tells when it is more often. */
    if (t - p->start < FIRST_DRAW || t - p->last < REDRAW) return;
    p->last = t;
    draw(p, t);
}

static void clear(progress *p) {
    if (!p->drawn) return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->drawn = false;
}

void progress_before_output(progress *p) {
    if (p->stdout_tty) clear(p);
}

void progress_hide_active(void) {
    if (active) clear(active);
}

void progress_end(progress *p, bool ok) {
    if (active == p) active = NULL;
    /* Shown while the work ran, so its outcome is worth a line. */
    bool shown = p->drawn || (p->on && p->last > p->start);
    if (!ok || !shown) {
        clear(p);
        return;
    }
    char files[48], done[32], rate[32];
    double secs = now_seconds() - p->start;
    files_text(p, files, sizeof files);
    fprintf(stderr, "\r%s %s%s in %.1f s (%s/s)\033[K\n", p->verb, files,
            human(p->bytes, done, sizeof done), secs,
            human(secs > 0 ? (uint64_t)((double)p->bytes / secs) : 0, rate, sizeof rate));
    fflush(stderr);
    p->drawn = false;
}
