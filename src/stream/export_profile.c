/* The compact profile of the whole-file exporters: see export_profile.h. */
#include "stream/export_profile.h"

#include "core/core.h"
#include "stream/export.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* ---- the hash index --------------------------------------------------------
 * Open addressing over (a, b) keys; ids are stored + 1 so that 0 is empty. */
typedef struct lumio__prof_slot {
    uint64_t a;
    uint32_t b;
    uint32_t id1;
} lumio__prof_slot;

static size_t slot_of(const lumio__prof_map *m, uint64_t a, uint32_t b) {
    uint64_t h = (a ^ (uint64_t)b << 32 ^ b) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h ^ h >> 29) & (m->cap - 1);
}

/* The id for (a, b), or LUMIO__PROF_NONE with *slot where it would go. */
static uint32_t map_find(const lumio__prof_map *m, uint64_t a, uint32_t b, size_t *slot) {
    size_t i = slot_of(m, a, b);
    for (;; i = (i + 1) & (m->cap - 1)) {
        const lumio__prof_slot *s = &m->slots[i];
        if (!s->id1) break;
        if (s->a == a && s->b == b) return s->id1 - 1;
    }
    *slot = i;
    return LUMIO__PROF_NONE;
}

/* Room for one more key at most half full: 0 or -ENOMEM. */
static int map_reserve(lumio__prof_map *m) {
    if (m->cap && (m->n + 1) * 2 <= m->cap) return 0;
    size_t cap = m->cap ? m->cap * 2 : 64;
    if (cap > SIZE_MAX / sizeof *m->slots) return -ENOMEM;
    lumio__prof_map nm = {.slots = calloc(cap, sizeof *m->slots), .cap = cap, .n = m->n};
    if (!nm.slots) return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        const lumio__prof_slot *s = &m->slots[i];
        size_t at;
        if (s->id1 && map_find(&nm, s->a, s->b, &at) == LUMIO__PROF_NONE) nm.slots[at] = *s;
    }
    free(m->slots);
    *m = nm;
    return 0;
}

/* Grow an array of n elements of size sz to hold one more: 0 or -ENOMEM. */
static int grow(void *arrp, size_t sz, size_t n, size_t *cap) {
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    if (nc < *cap || nc > SIZE_MAX / sz) return -ENOMEM;
    void *a = realloc(*(void **)arrp, nc * sz);
    if (!a) return -ENOMEM;
    *(void **)arrp = a;
    *cap = nc;
    return 0;
}

/* grow for the uint32 counts of the tables, which stop short of NONE. */
static int grow32(void *arrp, size_t sz, uint32_t n, uint32_t *cap) {
    size_t c = *cap;
    if (n >= LUMIO__PROF_NONE - 1) return -E2BIG;
    int rc = grow(arrp, sz, n, &c);
    *cap = (uint32_t)LUMIO_MIN(c, (size_t)LUMIO__PROF_NONE - 1);
    return rc;
}

/* ---- interning ---------------------------------------------------------- */

uint32_t lumio__prof_string(lumio__profile *p, const char *s) {
    size_t len = strlen(s), at;
    uint64_t h = XXH3_64bits(s, len);
    if (map_reserve(&p->str_map) < 0) return LUMIO__PROF_NONE;
    /* The key is the hash and length; equal keys are told apart by the text. */
    lumio__prof_map *m = &p->str_map;
    size_t i = slot_of(m, h, (uint32_t)len);
    for (;; i = (i + 1) & (m->cap - 1)) {
        lumio__prof_slot *sl = &m->slots[i];
        if (!sl->id1) break;
        if (sl->a == h && sl->b == (uint32_t)len && !strcmp(lumio__prof_str(p, sl->id1 - 1), s))
            return sl->id1 - 1;
    }
    at = i;
    if (len >= SIZE_MAX - p->text_len - 1) return LUMIO__PROF_NONE;
    while (p->text_len + len + 1 > p->text_cap) {
        size_t nc = p->text_cap ? p->text_cap * 2 : 4096;
        char *t = nc > p->text_cap ? realloc(p->text, nc) : NULL;
        if (!t) return LUMIO__PROF_NONE;
        p->text = t;
        p->text_cap = nc;
    }
    if (grow32(&p->str, sizeof *p->str, p->nstr, &p->str_cap) < 0) return LUMIO__PROF_NONE;
    memcpy(p->text + p->text_len, s, len + 1);
    p->str[p->nstr] = p->text_len;
    p->text_len += len + 1;
    m->slots[at] = (lumio__prof_slot){.a = h, .b = (uint32_t)len, .id1 = p->nstr + 1};
    m->n++;
    return p->nstr++;
}

/* The id of (a, b) in m, made by appending elem (sz bytes) to the table at
 * arrp when new: the id, or LUMIO__PROF_NONE (errno-style code in *rc). */
static uint32_t intern(lumio__prof_map *m, uint64_t a, uint32_t b, void *arrp, size_t sz,
                       uint32_t *n, uint32_t *cap, const void *elem, int *rc) {
    size_t at = 0;
    uint32_t id = m->cap ? map_find(m, a, b, &at) : LUMIO__PROF_NONE;
    if (id != LUMIO__PROF_NONE) return id;
    if ((*rc = map_reserve(m)) < 0 || (*rc = grow32(arrp, sz, *n, cap)) < 0)
        return LUMIO__PROF_NONE;
    map_find(m, a, b, &at);
    memcpy((char *)*(void **)arrp + (size_t)*n * sz, elem, sz);
    m->slots[at] = (lumio__prof_slot){.a = a, .b = b, .id1 = *n + 1};
    m->n++;
    return (*n)++;
}

static uint32_t thread_of(lumio__profile *p, uint64_t tid, int *rc) {
    lumio__prof_thread t = {.tid = tid, .sorted = true};
    return intern(&p->thread_map, tid, 0, &p->threads, sizeof t, &p->nthreads, &p->threads_cap, &t,
                  rc);
}

int lumio__prof_init(lumio__profile *p) {
    memset(p, 0, sizeof *p);
    p->t_min = UINT64_MAX;
    return lumio__prof_string(p, "") == 0 ? 0 : -ENOMEM;
}

void lumio__prof_free(lumio__profile *p) {
    for (uint32_t i = 0; i < p->nthreads; i++) {
        free(p->threads[i].samples);
        free(p->threads[i].nodes);
    }
    free(p->threads);
    free(p->text);
    free(p->str);
    free(p->funcs);
    free(p->frames);
    free(p->nodes);
    lumio__prof_map *maps[] = {&p->str_map, &p->func_map, &p->frame_map, &p->node_map,
                               &p->thread_map};
    for (size_t i = 0; i < sizeof maps / sizeof *maps; i++) free(maps[i]->slots);
    memset(p, 0, sizeof *p);
}

/* ---- samples ------------------------------------------------------------ */

static uint32_t frame_of(lumio__profile *p, const lumio_frame *f, int *rc) {
    uint32_t name = lumio__prof_string(p, f->function ? f->function : "");
    uint32_t file = name == LUMIO__PROF_NONE ? name : lumio__prof_string(p, f->file ? f->file : "");
    if (file == LUMIO__PROF_NONE) {
        *rc = -ENOMEM;
        return file;
    }
    lumio__prof_func fn = {name, file};
    uint32_t func = intern(&p->func_map, (uint64_t)name << 32 | file, 0, &p->funcs, sizeof fn,
                           &p->nfuncs, &p->funcs_cap, &fn, rc);
    if (func == LUMIO__PROF_NONE) return func;
    lumio__prof_frame fr = {func, f->line};
    return intern(&p->frame_map, func, f->line, &p->frames, sizeof fr, &p->nframes, &p->frames_cap,
                  &fr, rc);
}

/* The node of s's stack in thread t (made as needed), root first. */
static uint32_t node_of(lumio__profile *p, uint32_t t, const lumio_sample *s, int *rc) {
    uint32_t node = LUMIO__PROF_NONE;
    for (uint32_t k = s->depth; k-- > 0;) {
        uint32_t frame = frame_of(p, &s->frames[k], rc);
        if (frame == LUMIO__PROF_NONE) return frame;
        /* A root's key names its thread, so that threads share no node. */
        uint64_t key = node == LUMIO__PROF_NONE ? (uint64_t)t << 32 | 0xFFFFFFFFull : node;
        uint32_t before = p->nnodes;
        lumio__prof_node nd = {node, frame};
        node = intern(&p->node_map, key, frame, &p->nodes, sizeof nd, &p->nnodes, &p->nodes_cap,
                      &nd, rc);
        if (node == LUMIO__PROF_NONE) return node;
        if (p->nnodes != before) {
            lumio__prof_thread *th = &p->threads[t];
            if ((*rc = grow(&th->nodes, sizeof *th->nodes, th->nnodes, &th->nodes_cap)) < 0)
                return LUMIO__PROF_NONE; /* (the node stays, unused: harmless) */
            th->nodes[th->nnodes++] = node;
        }
    }
    return node;
}

int lumio__prof_add(lumio__profile *p, const lumio_sample *s) {
    int rc = 0;
    uint32_t t = thread_of(p, s->thread_id, &rc);
    if (t == LUMIO__PROF_NONE) goto fail;
    uint32_t node = s->depth ? node_of(p, t, s, &rc) : LUMIO__PROF_NONE;
    if (s->depth && node == LUMIO__PROF_NONE) goto fail;
    lumio__prof_thread *th = &p->threads[t];
    if ((rc = grow(&th->samples, sizeof *th->samples, th->nsamples, &th->samples_cap)) < 0)
        goto fail;
    if (th->nsamples && th->samples[th->nsamples - 1].time_us > s->timestamp_us) th->sorted = false;
    th->samples[th->nsamples++] = (lumio__prof_sample){s->timestamp_us, node};
    p->nsamples++;
    p->t_min = LUMIO_MIN(p->t_min, s->timestamp_us);
    p->t_max = LUMIO_MAX(p->t_max, s->timestamp_us);
    return 0;
fail:
    if (rc == 0) rc = -ENOMEM;
    snprintf(p->err, sizeof p->err, "%s",
             rc == -E2BIG ? "more than 4294967293 distinct strings, frames, threads or stacks"
                          : "out of memory holding the profile");
    return rc;
}

/* A decimal number that is the whole of s: 0, or -1. */
static int parse_u64(const char *s, uint64_t *v) {
    char *end;
    if (*s < '0' || *s > '9') return -1;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *v = x;
    return 0;
}

static int thread_name(lumio__profile *p, const char *value) {
    char *end;
    if (*value < '0' || *value > '9') return 0; /* not "TID NAME": ignored */
    errno = 0;
    unsigned long long tid = strtoull(value, &end, 10);
    if (errno || *end != ' ') return 0;
    int rc = 0;
    uint32_t name = lumio__prof_string(p, end + 1);
    uint32_t t = name == LUMIO__PROF_NONE ? name : thread_of(p, tid, &rc);
    if (t == LUMIO__PROF_NONE) return -ENOMEM;
    p->threads[t].name = name;
    return 0;
}

int lumio__prof_meta(lumio__profile *p, const char *key, const char *value) {
    uint64_t v;
    if (!strcmp(key, "thread_name")) return thread_name(p, value);
    if (!strcmp(key, "interval_us") && parse_u64(value, &v) == 0 && v) p->interval_us = v;
    if (!strcmp(key, "rate_hz") && !p->interval_us && parse_u64(value, &v) == 0 && v)
        p->interval_us = LUMIO_MAX(1000000 / v, 1);
    if (!strcmp(key, "start_unix_us") && parse_u64(value, &v) == 0) p->start_unix_us = v;
    uint32_t *str = !strcmp(key, "command")  ? &p->command
                    : !strcmp(key, "source") ? &p->source
                                             : NULL;
    if (str && (*str = lumio__prof_string(p, value)) == LUMIO__PROF_NONE) {
        *str = 0;
        return -ENOMEM;
    }
    return 0;
}

static int by_time(const void *a, const void *b) {
    const lumio__prof_sample *x = a, *y = b;
    return x->time_us < y->time_us ? -1 : x->time_us > y->time_us;
}

int lumio__prof_sort(lumio__profile *p) {
    for (uint32_t i = 0; i < p->nthreads; i++) {
        lumio__prof_thread *t = &p->threads[i];
        if (!t->sorted) qsort(t->samples, t->nsamples, sizeof *t->samples, by_time);
        t->sorted = true;
    }
    return 0;
}

uint64_t lumio__prof_interval(const lumio__profile *p) {
    if (p->interval_us) return p->interval_us;
    const lumio__prof_thread *best = NULL;
    for (uint32_t i = 0; i < p->nthreads; i++)
        if (!best || p->threads[i].nsamples > best->nsamples) best = &p->threads[i];
    if (!best || best->nsamples < 2) return 1;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t k = 0; k < best->nsamples; k++) {
        lo = LUMIO_MIN(lo, best->samples[k].time_us);
        hi = LUMIO_MAX(hi, best->samples[k].time_us);
    }
    return LUMIO_MAX((hi - lo) / (best->nsamples - 1), 1);
}

uint32_t lumio__prof_stack(const lumio__profile *p, uint32_t node, uint32_t *out) {
    uint32_t n = 0;
    for (; node != LUMIO__PROF_NONE && n < LUMIO_STREAM_MAX_DEPTH; node = p->nodes[node].parent)
        out[n++] = p->nodes[node].frame;
    return n;
}

/* ---- what the formats share -------------------------------------------- */

int lumio__prof_op_begin(lumio_stream_exporter *e) {
    lumio__profile *p = malloc(sizeof *p);
    if (!p || lumio__prof_init(p) < 0) {
        if (p) lumio__prof_free(p);
        free(p);
        return lumio__export_fail(e, -ENOMEM, "out of memory");
    }
    e->state = p;
    return 0;
}

int lumio__prof_op_sample(lumio_stream_exporter *e, const lumio_sample *s) {
    if (s->depth > LUMIO_STREAM_MAX_DEPTH)
        return lumio__export_fail(e, -EINVAL, "a sample of %u frames (at most %u)", s->depth,
                                  LUMIO_STREAM_MAX_DEPTH);
    int rc = lumio__prof_add(e->state, s);
    return rc < 0 ? lumio__export_fail(e, rc, "%s", ((lumio__profile *)e->state)->err) : 0;
}

int lumio__prof_op_meta(lumio_stream_exporter *e, uint64_t ts, const char *key, const char *value) {
    (void)ts;
    int rc = lumio__prof_meta(e->state, key, value);
    return rc < 0 ? lumio__export_fail(e, rc, "out of memory holding the record %s", key) : 0;
}

void lumio__prof_op_release(lumio_stream_exporter *e) {
    if (!e->state) return;
    lumio__prof_free(e->state);
    free(e->state);
    e->state = NULL;
}

void lumio__prof_epoch(const lumio__profile *p, uint64_t *zero_us, uint64_t *wall_us) {
    uint64_t t0 = p->nsamples ? p->t_min : 0;
    /* Timestamps on the wall clock start at or after the recorded start. */
    *zero_us = p->start_unix_us && p->start_unix_us <= t0 ? p->start_unix_us : t0;
    *wall_us = p->start_unix_us ? p->start_unix_us : *zero_us;
}

void lumio__prof_put_thread_name(FILE *out, const lumio__profile *p, const lumio__prof_thread *t) {
    const char *name = lumio__prof_str(p, t->name);
    size_t n = strlen(name) + 48;
    char *buf = malloc(n);
    if (!buf) { /* the name without the tid still says which */
        lumio__json_put_string(out, name);
        return;
    }
    if (name[0])
        snprintf(buf, n, "%s (tid %llu)", name, (unsigned long long)t->tid);
    else
        snprintf(buf, n, "tid %llu", (unsigned long long)t->tid);
    lumio__json_put_string(out, buf);
    free(buf);
}

size_t lumio__put_u64(char *out, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10));
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}
