/* The synthetic profile: see stream_synth.h. */
#include "cli/stream_synth.h"

#include "cli/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int synth_init(synth *s, uint64_t seed, unsigned threads, unsigned depth) {
    *s = (synth){.rng = seed, .threads = threads, .depth = depth};
    s->stack = calloc(threads, sizeof(uint32_t *));
    s->d = calloc(threads, sizeof(uint32_t));
    s->ts = calloc(threads, sizeof(uint64_t));
    s->ids = calloc(NFUNC, sizeof(uint32_t));
    unsigned cap = depth * 2 + 8;
    s->out = malloc(cap * sizeof(uint32_t));
    if (!s->stack || !s->d || !s->ts || !s->ids || !s->out) return -ENOMEM;
    for (unsigned t = 0; t < threads; t++) {
        if (!(s->stack[t] = malloc(cap * sizeof(uint32_t)))) return -ENOMEM;
        s->d[t] = depth;
        for (unsigned i = 0; i < depth; i++) /* outermost frames shared by all threads */
            s->stack[t][depth - 1 - i] = (uint32_t)((i * 7 + (i > 3 ? t : 0)) % NFUNC);
        s->ts[t] = 1700000000000000ull + t * 13;
    }
    return 0;
}

void synth_free(synth *s) {
    for (unsigned t = 0; s->stack && t < s->threads; t++) free(s->stack[t]);
    free(s->stack);
    free(s->d);
    free(s->ts);
    free(s->ids);
    free(s->out);
}

/* The next sample: which thread, its time and stack (function numbers). */
static unsigned synth_next(synth *s) {
    unsigned t = (unsigned)(cli_splitmix(&s->rng) % s->threads);
    uint64_t r = cli_splitmix(&s->rng);
    uint32_t *st = s->stack[t], d = s->d[t];
    unsigned k = 1 + (unsigned)((r >> 8) % 3);
    unsigned lo = s->depth / 2, hi = s->depth * 3 / 2;
    if (r % 10 < 2 && d + k <= hi) { /* call k deeper */
        memmove(st + k, st, d * sizeof(uint32_t));
        for (unsigned i = 0; i < k; i++) st[i] = (uint32_t)((r >> (16 + 8 * i)) % NFUNC);
        d += k;
    } else if (r % 10 < 4 && d >= lo + k) { /* return k */
        memmove(st, st + k, (d - k) * sizeof(uint32_t));
        d -= k;
    } else if (r % 10 < 5 && d > 0) { /* a different leaf */
        st[0] = (uint32_t)((r >> 20) % NFUNC);
    }
    s->d[t] = d;
    s->ts[t] += 100 + (r >> 40) % 3; /* 10 kHz, with a little jitter */
    return t;
}

unsigned synth_step(synth *s) {
    unsigned t = synth_next(s);
    for (uint32_t k = 0; k < s->d[t]; k++) s->out[k] = s->ids[s->stack[t][k]];
    return t;
}

int synth_intern(synth *s, lumio_stream_writer *w) {
    for (uint32_t f = 0; f < NFUNC; f++) {
        char fn[32], file[32];
        snprintf(fn, sizeof fn, "func_%u", f);
        snprintf(file, sizeof file, "module_%u.c", f / 50);
        lumio_frame fr = {fn, file, 10 + f % 400};
        int rc = lumio_stream_writer_intern_frame(w, &fr, &s->ids[f]);
        if (rc < 0) return rc;
    }
    return 0;
}

/* The writer's fast path: frame ids, not names. */
int synth_write(synth *s, lumio_stream_writer *w) {
    unsigned t = synth_step(s);
    return lumio_stream_writer_write_ids(w, s->ts[t], 1000 + t, 0, s->out, s->d[t]);
}

void synth_folded(synth *s, FILE *f) {
    unsigned t = synth_next(s);
    for (uint32_t k = s->d[t]; k-- > 0;) fprintf(f, "func_%u%s", s->stack[t][k], k ? ";" : " 1\n");
    if (!s->d[t]) fputs("[empty] 1\n", f);
}

int synth_option(int c, const char *arg, synth_opts *p) {
    switch (c) {
    case 's':
        return cli_opt_count("--seed", arg, 0, UINT64_MAX, &p->seed) < 0 ? -1 : 1;
    case 'n':
        return cli_opt_count("--samples", arg, 0, UINT64_MAX, &p->samples) < 0 ? -1 : 1;
    case 't':
        return cli_opt_count("--threads", arg, 1, 4096, &p->threads) < 0 ? -1 : 1;
    case 'd':
        return cli_opt_count("--depth", arg, 2, LUMIO_STREAM_MAX_DEPTH / 2, &p->depth) < 0 ? -1 : 1;
    case 'l':
        return cli_opt_count("--level", arg, 0, 22, &p->level) < 0 ? -1 : 1;
    default:
        return 0;
    }
}
