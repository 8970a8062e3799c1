/* The profile the whole-file exporters (speedscope, gecko, pprof) hold until
 * finish, kept compact: every string once, every function (name, file) and
 * frame (function, line) once, each thread's stacks as a prefix tree (a node
 * is a frame under its caller's node), and a sample as (time, node) in its
 * thread's list. Memory grows with distinct strings, frames and stacks plus
 * 12 bytes a sample, never with frames times samples.
 *
 * Ids are dense uint32 from 0 in order of first appearance, so a child node
 * always has a larger id than its parent, and string 0 is "". Internal: not
 * installed. */
#ifndef LUMIO_STREAM_EXPORT_PROFILE_H
#define LUMIO_STREAM_EXPORT_PROFILE_H

#include <lumio/stream.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LUMIO__PROF_NONE UINT32_MAX /* no parent: a root node's */

/* A hash index from a key of two integers to a dense id (internal). */
typedef struct lumio__prof_map {
    struct lumio__prof_slot *slots;
    size_t cap, n; /* cap a power of two (or 0) */
} lumio__prof_map;

typedef struct lumio__prof_func {
    uint32_t name, file; /* strings */
} lumio__prof_func;

typedef struct lumio__prof_frame {
    uint32_t func, line;
} lumio__prof_frame;

typedef struct lumio__prof_node {
    uint32_t parent; /* a node of the same thread, or LUMIO__PROF_NONE */
    uint32_t frame;
} lumio__prof_node;

typedef struct lumio__prof_sample {
    uint64_t time_us;
    uint32_t node; /* LUMIO__PROF_NONE: a sample without frames */
} __attribute__((packed)) lumio__prof_sample;

typedef struct lumio__prof_thread {
    uint64_t tid;
    uint32_t name; /* a string: the "thread_name" record's NAME, or 0 ("") */
    bool sorted;   /* samples in time order (made so by lumio__prof_sort) */
    lumio__prof_sample *samples;
    size_t nsamples, samples_cap;
    uint32_t *nodes; /* this thread's nodes in creation order */
    size_t nnodes, nodes_cap;
} lumio__prof_thread;

typedef struct lumio__profile {
    char *text; /* the strings, each NUL-terminated, at offsets str[i] */
    size_t text_len, text_cap;
    size_t *str;
    uint32_t nstr, str_cap;
    lumio__prof_func *funcs;
    uint32_t nfuncs, funcs_cap;
    lumio__prof_frame *frames;
    uint32_t nframes, frames_cap;
    lumio__prof_node *nodes;
    uint32_t nnodes, nodes_cap;
    lumio__prof_thread *threads; /* in order of first appearance */
    uint32_t nthreads, threads_cap;
    lumio__prof_map str_map, func_map, frame_map, node_map, thread_map;
    uint64_t nsamples;
    uint64_t t_min, t_max; /* over every sample (t_min > t_max: none) */
    /* Records every format uses (docs/PROFILES.md): 0 when absent. */
    uint64_t interval_us, start_unix_us;
    uint32_t command, source; /* strings */
    char err[256];            /* why the last call failed */
} lumio__profile;

int lumio__prof_init(lumio__profile *p);
void lumio__prof_free(lumio__profile *p);
/* Add a sample (a copy of everything it points to): 0, -ENOMEM, -E2BIG
 * (past 2^32-2 distinct strings, frames or stacks; p->err says which). */
int lumio__prof_add(lumio__profile *p, const lumio_sample *s);
/* A record: thread_name, interval_us, rate_hz, start_unix_us, command and
 * source are kept; others ignored. 0 or -ENOMEM. */
int lumio__prof_meta(lumio__profile *p, const char *key, const char *value);
/* Intern s: its id, or LUMIO__PROF_NONE when out of memory. */
uint32_t lumio__prof_string(lumio__profile *p, const char *s);
static inline const char *lumio__prof_str(const lumio__profile *p, uint32_t id) {
    return p->text + p->str[id];
}
/* Put every thread's samples in time order (stable for equal times). */
int lumio__prof_sort(lumio__profile *p);
/* The sampling interval: the interval_us or rate_hz record, else the mean
 * gap between samples of the thread with most samples, else 1. */
uint64_t lumio__prof_interval(const lumio__profile *p);
/* The frames of node, leaf first, into out (LUMIO_STREAM_MAX_DEPTH room):
 * their count. */
uint32_t lumio__prof_stack(const lumio__profile *p, uint32_t node, uint32_t *out);

/* The operations the whole-file formats share (export.h's table): begin
 * makes the profile (e->state), sample and meta add to it, release frees. */
int lumio__prof_op_begin(lumio_stream_exporter *e);
int lumio__prof_op_sample(lumio_stream_exporter *e, const lumio_sample *s);
int lumio__prof_op_meta(lumio_stream_exporter *e, uint64_t ts, const char *key, const char *value);
void lumio__prof_op_release(lumio_stream_exporter *e);
/* Where time 0 of the samples is (microseconds, as their timestamps), and
 * the wall-clock time it stands for (microseconds since the epoch: the
 * start_unix_us record, else time 0 itself). */
void lumio__prof_epoch(const lumio__profile *p, uint64_t *zero_us, uint64_t *wall_us);
/* A JSON string of a thread's name: "NAME (tid TID)", or "tid TID". */
void lumio__prof_put_thread_name(FILE *out, const lumio__profile *p, const lumio__prof_thread *t);
/* Decimal digits of v into out, unterminated: their count (at most 20). */
size_t lumio__put_u64(char *out, uint64_t v);

#endif
