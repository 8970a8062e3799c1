/* The synthetic profile of lumio stream gen and bench: a program of NFUNC
 * functions whose threads' stacks move by small steps (mostly repeats,
 * calls and returns of a few frames) within [depth/2, depth*3/2]. A pure
 * function of the seed, the thread count and the depth. */
#ifndef LUMIO_CLI_STREAM_SYNTH_H
#define LUMIO_CLI_STREAM_SYNTH_H

#include <lumio/stream.h>

#include <stdint.h>
#include <stdio.h>

#define NFUNC 2000

typedef struct synth {
    uint64_t rng;
    unsigned threads, depth;
    uint32_t **stack; /* per thread, function numbers, innermost first */
    uint32_t *d;      /* per thread, its depth */
    uint64_t *ts;     /* per thread, the time of its last sample */
    uint32_t *ids;    /* function number -> the writer's frame id */
    uint32_t *out;    /* the last sample's stack as frame ids */
} synth;

/* 0, or -ENOMEM (then synth_free). */
int synth_init(synth *s, uint64_t seed, unsigned threads, unsigned depth);
void synth_free(synth *s);
/* The next sample (which thread; its time and stack are in s), its stack
 * also as frame ids in s->out. */
unsigned synth_step(synth *s);
/* The frames "func_N" of "module_M.c" into w's table (s->ids). */
int synth_intern(synth *s, lumio_stream_writer *w);
/* The next sample into w (after synth_intern). */
int synth_write(synth *s, lumio_stream_writer *w);
/* The next sample as a line of folded stacks ("func_1;func_7 1"). */
void synth_folded(synth *s, FILE *f);

/* The options that shape a synthetic profile, shared by gen and bench:
 * --seed ('s'), --samples ('n'), --threads ('t'), --depth ('d'), --level
 * ('l'). */
typedef struct synth_opts {
    uint64_t seed, samples, threads, depth, level;
} synth_opts;

/* 1: c was one of them, 0: not one of these, -1: a bad value (said). */
int synth_option(int c, const char *arg, synth_opts *p);

#endif
