/* The samples lumio stream serve keeps, and the JSON of its queries.
 *
 * A sample is 16 bytes: its time, its thread (an index) and its stack, a
 * node of a prefix tree of frames (function and file; lines are merged, so
 * that a function is one box whatever line it was on). Every size is
 * capped: the samples kept (the oldest are dropped and counted), the tree's
 * nodes and frames, their strings, the threads. A stack that finds the tree
 * full is cut at the deepest node there is, and counted. */
#include "cli/stream_serve.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define MAX_NODES       (1u << 22)
#define MAX_FRAMES      (1u << 22)
#define MAX_STRINGS     ((size_t)64 << 20)
#define MAX_THREADS     4096u
#define MAX_NAME        256u
#define MAX_DAMAGE_LIST 64u
#define MAX_META_KEYS   16u
#define MAX_META_VALUE  1024u
#define NONE            UINT32_MAX
#define OTHER_THREADS   UINT64_MAX /* the tid of the threads past MAX_THREADS */

typedef struct sample_rec {
    uint64_t ts;
    uint32_t thread, node;
} sample_rec;
_Static_assert(sizeof(sample_rec) == 16, "a sample is 16 bytes");

typedef struct node_rec {
    uint32_t parent, frame, child, sibling;
} node_rec;

typedef struct thread_rec {
    uint64_t tid, samples;
    char *name;
} thread_rec;

typedef struct damage_rec {
    uint64_t offset, length;
    int torn;
} damage_rec;

/* An open-addressing table of ids (id + 1; 0 is empty), a power of two. */
typedef struct idtab {
    uint32_t *slot;
    uint32_t cap;
} idtab;

struct serve_store {
    pthread_mutex_t lock;
    char *source;
    char *str; /* "function\0file\0" of every frame */
    size_t str_n, str_cap;
    uint32_t *frame_off;
    uint32_t nframes, frame_cap;
    idtab frames;
    node_rec *node;
    uint32_t nnodes, node_cap;
    idtab nodes;
    sample_rec *ring;
    uint64_t ring_cap, max, head, count;
    uint64_t seen, dropped, truncated, records, restarts;
    thread_rec *thread;
    uint32_t nthreads, thread_cap, last_thread;
    damage_rec damage[MAX_DAMAGE_LIST];
    uint32_t ndamage;
    uint64_t damaged_ranges, damaged_bytes, torn_bytes;
    char *mkey[MAX_META_KEYS], *mval[MAX_META_KEYS];
    uint32_t nmeta;
    uint64_t chunks, chunk_base;
    bool ended;
    char *error;
};

/* ---- text ---------------------------------------------------------------- */

void sbuf_add(sbuf *b, const char *s, size_t n) {
    if (b->err) return;
    size_t limit = b->limit ? b->limit : (size_t)256 << 20;
    if (n > limit - b->n || b->n + n + 1 > limit) {
        b->err = -E2BIG;
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->n + n + 1) c *= 2;
        char *p = realloc(b->p, c);
        if (!p) {
            b->err = -ENOMEM;
            return;
        }
        b->p = p;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void sbuf_printf(sbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n >= 0) sbuf_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* The length of the valid UTF-8 sequence at p, or 0. */
static size_t utf8_len(const unsigned char *p) {
    if (p[0] < 0x80) return 1;
    /* F5..FF start nothing (past U+10FFFF), C0 and C1 only overlong forms. */
    size_t n = p[0] >= 0xf5 ? 0 : p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
    if (n == 0) return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    uint32_t c = n == 2   ? (p[0] & 0x1fu) << 6 | (p[1] & 0x3fu)
                 : n == 3 ? (p[0] & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3fu)
                          : (p[0] & 0x07u) << 18 | (p[1] & 0x3fu) << 12 | (p[2] & 0x3fu) << 6 |
                                (p[3] & 0x3fu);
    if ((n == 3 && (c < 0x800 || (c >= 0xd800 && c < 0xe000))) ||
        (n == 4 && (c < 0x10000 || c > 0x10ffff)))
        return 0;
    return n;
}

/* A JSON string: what is not valid UTF-8 becomes U+FFFD, so the answer
 * always parses. */
void sbuf_json_string(sbuf *b, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    SBUF_LIT(b, "\"");
    while (*p) {
        size_t run = 0;
        while (p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\') run++;
        sbuf_add(b, (const char *)p, run);
        p += run;
        if (!*p) break;
        size_t n = utf8_len(p);
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            sbuf_add(b, e, 2);
        } else if (*p < 0x20) {
            sbuf_printf(b, "\\u%04x", *p);
        } else if (n) {
            sbuf_add(b, (const char *)p, n);
        } else {
            SBUF_LIT(b, "\\ufffd");
            n = 1;
        }
        p += n ? n : 1;
    }
    SBUF_LIT(b, "\"");
}

/* ---- tables -------------------------------------------------------------- */

/* Grow *p (elements of size elem, *cap of them) to hold need, at most max. */
static int grow(void **p, uint32_t *cap, size_t elem, uint32_t need, uint32_t max) {
    if (need <= *cap) return 0;
    if (need > max) return -E2BIG;
    uint32_t c = *cap ? *cap : 256;
    while (c < need) c = c > max / 2 ? max : c * 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

static uint64_t frame_hash(const char *function, const char *file) {
    return XXH3_64bits(function, strlen(function)) * 31 + XXH3_64bits(file, strlen(file));
}

static uint64_t node_hash(uint32_t parent, uint32_t frame) {
    return XXH3_64bits(&(uint64_t){(uint64_t)parent << 32 | frame}, 8);
}

/* Rebuild t at twice its size (or 1024) with hash(id) for each of n ids. */
static int idtab_grow(idtab *t, uint32_t n, uint64_t (*hash)(const serve_store *, uint32_t),
                      const serve_store *s) {
    uint32_t cap = t->cap ? t->cap * 2 : 1024;
    uint32_t *slot = calloc(cap, sizeof *slot);
    if (!slot) return -ENOMEM;
    for (uint32_t id = 0; id < n; id++) {
        uint32_t i = (uint32_t)hash(s, id) & (cap - 1);
        while (slot[i]) i = (i + 1) & (cap - 1);
        slot[i] = id + 1;
    }
    free(t->slot);
    t->slot = slot;
    t->cap = cap;
    return 0;
}

static const char *frame_function(const serve_store *s, uint32_t f) {
    return s->str + s->frame_off[f];
}
static const char *frame_file(const serve_store *s, uint32_t f) {
    const char *fn = frame_function(s, f);
    return fn + strlen(fn) + 1;
}

static uint64_t frame_hash_of(const serve_store *s, uint32_t f) {
    return frame_hash(frame_function(s, f), frame_file(s, f));
}
static uint64_t node_hash_of(const serve_store *s, uint32_t n) {
    return node_hash(s->node[n].parent, s->node[n].frame);
}

/* The id of (function, file), added if new: NONE when the tables are full. */
static uint32_t intern_frame(serve_store *s, const char *function, const char *file) {
    uint64_t h = frame_hash(function, file);
    if (s->frames.cap) {
        for (uint32_t i = (uint32_t)h & (s->frames.cap - 1); s->frames.slot[i];
             i = (i + 1) & (s->frames.cap - 1)) {
            uint32_t f = s->frames.slot[i] - 1;
            if (!strcmp(frame_function(s, f), function) && !strcmp(frame_file(s, f), file))
                return f;
        }
    }
    size_t a = strlen(function) + 1, b = strlen(file) + 1;
    if (a + b > MAX_STRINGS - s->str_n) return NONE;
    if (s->str_n + a + b > s->str_cap) {
        size_t c = s->str_cap ? s->str_cap : 65536;
        while (c < s->str_n + a + b) c *= 2;
        char *p = realloc(s->str, c);
        if (!p) return NONE;
        s->str = p;
        s->str_cap = c;
    }
    if (grow((void **)&s->frame_off, &s->frame_cap, sizeof *s->frame_off, s->nframes + 1,
             MAX_FRAMES) < 0)
        return NONE;
    if ((uint64_t)(s->nframes + 1) * 2 > s->frames.cap &&
        idtab_grow(&s->frames, s->nframes, frame_hash_of, s) < 0)
        return NONE;
    uint32_t f = s->nframes++;
    s->frame_off[f] = (uint32_t)s->str_n;
    memcpy(s->str + s->str_n, function, a);
    memcpy(s->str + s->str_n + a, file, b);
    s->str_n += a + b;
    uint32_t i = (uint32_t)h & (s->frames.cap - 1);
    while (s->frames.slot[i]) i = (i + 1) & (s->frames.cap - 1);
    s->frames.slot[i] = f + 1;
    return f;
}

/* The child of parent for frame, added if new: NONE when the tree is full. */
static uint32_t child_node(serve_store *s, uint32_t parent, uint32_t frame) {
    uint64_t h = node_hash(parent, frame);
    for (uint32_t i = (uint32_t)h & (s->nodes.cap - 1); s->nodes.slot[i];
         i = (i + 1) & (s->nodes.cap - 1)) {
        uint32_t n = s->nodes.slot[i] - 1;
        if (s->node[n].parent == parent && s->node[n].frame == frame) return n;
    }
    if (grow((void **)&s->node, &s->node_cap, sizeof *s->node, s->nnodes + 1, MAX_NODES) < 0)
        return NONE;
    if ((uint64_t)(s->nnodes + 1) * 2 > s->nodes.cap &&
        idtab_grow(&s->nodes, s->nnodes, node_hash_of, s) < 0)
        return NONE;
    uint32_t n = s->nnodes++; /* after its parent: parent < child, always */
    s->node[n] = (node_rec){parent, frame, NONE, s->node[parent].child};
    s->node[parent].child = n;
    uint32_t i = (uint32_t)h & (s->nodes.cap - 1);
    while (s->nodes.slot[i]) i = (i + 1) & (s->nodes.cap - 1);
    s->nodes.slot[i] = n + 1;
    return n;
}

/* The index of thread tid, added if new (past MAX_THREADS, all share one). */
static uint32_t thread_index(serve_store *s, uint64_t tid) {
    if (s->last_thread < s->nthreads && s->thread[s->last_thread].tid == tid) return s->last_thread;
    for (uint32_t i = 0; i < s->nthreads; i++)
        if (s->thread[i].tid == tid) return s->last_thread = i;
    if (s->nthreads >= MAX_THREADS - 1 && tid != OTHER_THREADS)
        return thread_index(s, OTHER_THREADS);
    if (grow((void **)&s->thread, &s->thread_cap, sizeof *s->thread, s->nthreads + 1, MAX_THREADS) <
        0)
        return NONE;
    s->thread[s->nthreads] = (thread_rec){.tid = tid};
    return s->last_thread = s->nthreads++;
}

/* ---- the reader's side --------------------------------------------------- */

int store_create(serve_store **out, const char *source, uint64_t max_samples) {
    serve_store *s = calloc(1, sizeof *s);
    if (!s || !(s->source = strdup(source)) || idtab_grow(&s->nodes, 0, node_hash_of, s) < 0 ||
        grow((void **)&s->node, &s->node_cap, sizeof *s->node, 1, MAX_NODES) < 0) {
        store_free(s);
        return -ENOMEM;
    }
    pthread_mutex_init(&s->lock, NULL);
    s->max = max_samples;
    s->nnodes = 1; /* the root */
    s->node[0] = (node_rec){NONE, NONE, NONE, NONE};
    *out = s;
    return 0;
}

void store_free(serve_store *s) {
    if (!s) return;
    if (s->node_cap) pthread_mutex_destroy(&s->lock);
    for (uint32_t i = 0; i < s->nthreads; i++) free(s->thread[i].name);
    for (uint32_t i = 0; i < s->nmeta; i++) {
        free(s->mkey[i]);
        free(s->mval[i]);
    }
    free(s->thread);
    free(s->ring);
    free(s->node);
    free(s->nodes.slot);
    free(s->frame_off);
    free(s->frames.slot);
    free(s->str);
    free(s->source);
    free(s->error);
    free(s);
}

/* Room for one more sample: the ring grows (only while nothing was dropped
 * yet, so the oldest is at 0) up to max, then the oldest goes. */
static bool ring_room(serve_store *s) {
    if (s->count == s->max) {
        sample_rec *old = &s->ring[s->head];
        s->thread[old->thread].samples--;
        s->head = (s->head + 1) % s->max;
        s->count--;
        s->dropped++;
        return true;
    }
    if (s->count < s->ring_cap) return true;
    uint64_t c = s->ring_cap ? s->ring_cap * 2 : 65536;
    if (c > s->max) c = s->max;
    sample_rec *p = realloc(s->ring, c * sizeof *p);
    if (!p) return false;
    s->ring = p;
    s->ring_cap = c;
    return true;
}

static void add_sample(serve_store *s, const lumio_sample *smp) {
    s->seen++;
    uint32_t t = thread_index(s, smp->thread_id), node = 0;
    if (t == NONE || !ring_room(s)) {
        s->dropped++;
        return;
    }
    for (uint32_t k = smp->depth; k-- > 0;) {
        const lumio_frame *fr = &smp->frames[k];
        uint32_t f = intern_frame(s, fr->function, fr->file ? fr->file : "");
        uint32_t n = f == NONE ? NONE : child_node(s, node, f);
        if (n == NONE) {
            s->truncated++;
            break;
        }
        node = n;
    }
    s->ring[(s->head + s->count) % s->max] = (sample_rec){smp->timestamp_us, t, node};
    s->count++;
    s->thread[t].samples++;
}

int store_sample(void *arg, const lumio_sample *smp) {
    serve_store *s = arg;
    pthread_mutex_lock(&s->lock);
    add_sample(s, smp);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* A copy of v cut to at most max bytes. */
static char *copy_cut(const char *v, size_t max) {
    size_t n = strnlen(v, max);
    char *c = malloc(n + 1);
    if (c) {
        memcpy(c, v, n);
        c[n] = 0;
    }
    return c;
}

/* "TID NAME" (docs/PROFILES.md): the thread's name. */
static void thread_name(serve_store *s, const char *v) {
    char *end;
    if (*v < '0' || *v > '9') return;
    errno = 0;
    unsigned long long tid = strtoull(v, &end, 10);
    if (errno || *end != ' ') return;
    uint32_t t = thread_index(s, tid);
    if (t == NONE || s->thread[t].tid != tid) return;
    char *name = copy_cut(end + 1, MAX_NAME);
    if (!name) return;
    free(s->thread[t].name);
    s->thread[t].name = name;
}

static void keep_meta(serve_store *s, const char *key, const char *v) {
    uint32_t i = 0;
    while (i < s->nmeta && strcmp(s->mkey[i], key)) i++;
    if (i == MAX_META_KEYS) return;
    char *val = copy_cut(v, MAX_META_VALUE);
    if (!val) return;
    if (i == s->nmeta) {
        if (!(s->mkey[i] = copy_cut(key, 64))) {
            free(val);
            return;
        }
        s->nmeta++;
    }
    free(s->mval[i]);
    s->mval[i] = val;
}

int store_meta(void *arg, uint64_t ts, const char *key, const char *value) {
    serve_store *s = arg;
    (void)ts;
    pthread_mutex_lock(&s->lock);
    s->records++;
    if (!strcmp(key, "thread_name"))
        thread_name(s, value);
    else
        keep_meta(s, key, value);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void store_damage(void *arg, uint64_t offset, uint64_t length, int torn_tail) {
    serve_store *s = arg;
    pthread_mutex_lock(&s->lock);
    if (s->ndamage < MAX_DAMAGE_LIST)
        s->damage[s->ndamage++] = (damage_rec){offset, length, torn_tail};
    if (torn_tail) {
        s->torn_bytes += length;
    } else {
        s->damaged_ranges++;
        s->damaged_bytes += length;
    }
    pthread_mutex_unlock(&s->lock);
}

void store_restart(void *arg, uint64_t old_offset) {
    serve_store *s = arg;
    (void)old_offset;
    pthread_mutex_lock(&s->lock);
    s->restarts++;
    s->head = s->count = 0;
    for (uint32_t i = 0; i < s->nthreads; i++) s->thread[i].samples = 0;
    s->chunk_base = s->chunks;
    pthread_mutex_unlock(&s->lock);
}

void store_reader_stats(serve_store *s, const lumio_stream_reader_stats *st) {
    pthread_mutex_lock(&s->lock);
    s->chunks = st->chunks;
    pthread_mutex_unlock(&s->lock);
}

void store_ended(serve_store *s, const char *error) {
    pthread_mutex_lock(&s->lock);
    s->ended = true;
    free(s->error);
    s->error = error ? strdup(error) : NULL;
    pthread_mutex_unlock(&s->lock);
}

/* ---- queries -------------------------------------------------------------- */

/* The thread index a filter selects: NONE for all, NONE - 1 for none. */
static uint32_t filter_thread(const serve_store *s, const serve_filter *f) {
    if (!f->has_thread) return NONE;
    for (uint32_t i = 0; i < s->nthreads; i++)
        if (s->thread[i].tid == f->thread) return i;
    return NONE - 1;
}

static bool selected(const sample_rec *r, uint32_t t, const serve_filter *f) {
    return (t == NONE || r->thread == t) && r->ts >= f->from_us && r->ts <= f->to_us;
}

static const sample_rec *ring_at(const serve_store *s, uint64_t i) {
    return &s->ring[(s->head + i) % s->max];
}

static void node_open(sbuf *b, const serve_store *s, uint32_t n, uint64_t value) {
    if (n == 0) {
        SBUF_LIT(b, "{\"name\":\"all\"");
    } else {
        SBUF_LIT(b, "{\"name\":");
        sbuf_json_string(b, frame_function(s, s->node[n].frame));
        SBUF_LIT(b, ",\"file\":");
        sbuf_json_string(b, frame_file(s, s->node[n].frame));
    }
    sbuf_printf(b, ",\"value\":%" PRIu64 ",\"children\":[", value);
}

/* The next child of n, from c on, with at least min samples; NONE if none. */
static uint32_t next_child(const serve_store *s, const uint64_t *v, uint32_t c, uint64_t min) {
    while (c != NONE && (v[c] == 0 || v[c] < min)) c = s->node[c].sibling;
    return c;
}

/* The tree of the values in v (each node's own samples, summed here into
 * its ancestors: a parent's id is below its children's), depth first. */
static void emit_tree(const serve_store *s, uint64_t *v, uint64_t min, sbuf *b) {
    for (uint32_t n = s->nnodes; n-- > 1;) v[s->node[n].parent] += v[n];
    /* Per level: the next child to write, and whether one was written. */
    uint32_t iter[LUMIO_STREAM_MAX_DEPTH + 2];
    bool wrote[LUMIO_STREAM_MAX_DEPTH + 2];
    uint32_t sp = 0;
    node_open(b, s, 0, v[0]);
    wrote[sp] = false;
    iter[sp++] = next_child(s, v, s->node[0].child, min);
    while (sp && !b->err) {
        uint32_t c = iter[sp - 1];
        if (c == NONE) {
            SBUF_LIT(b, "]}");
            sp--;
            continue;
        }
        if (wrote[sp - 1]) SBUF_LIT(b, ",");
        wrote[sp - 1] = true;
        iter[sp - 1] = next_child(s, v, s->node[c].sibling, min);
        node_open(b, s, c, v[c]);
        wrote[sp] = false;
        iter[sp++] = next_child(s, v, s->node[c].child, min);
    }
}

int store_flamegraph(serve_store *s, const serve_filter *f, sbuf *out) {
    pthread_mutex_lock(&s->lock);
    uint64_t *v = calloc(s->nnodes, sizeof *v);
    if (!v) {
        pthread_mutex_unlock(&s->lock);
        return out->err = -ENOMEM;
    }
    uint32_t t = filter_thread(s, f);
    for (uint64_t i = 0; i < s->count && t != NONE - 1; i++) {
        const sample_rec *r = ring_at(s, i);
        if (selected(r, t, f)) v[r->node]++;
    }
    emit_tree(s, v, f->min_value, out);
    pthread_mutex_unlock(&s->lock);
    free(v);
    return out->err;
}

int store_timeline(serve_store *s, const serve_filter *f, sbuf *out) {
    pthread_mutex_lock(&s->lock);
    uint32_t t = filter_thread(s, f), nb = f->bins;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (uint64_t i = 0; i < s->count && t != NONE - 1; i++) {
        const sample_rec *r = ring_at(s, i);
        if (!selected(r, t, f)) continue;
        if (r->ts < lo) lo = r->ts;
        if (r->ts > hi) hi = r->ts;
    }
    uint64_t *bin = calloc(nb, sizeof *bin);
    if (!bin) {
        pthread_mutex_unlock(&s->lock);
        return out->err = -ENOMEM;
    }
    for (uint64_t i = 0; i < s->count && lo <= hi; i++) {
        const sample_rec *r = ring_at(s, i);
        if (selected(r, t, f))
            bin[(unsigned __int128)(r->ts - lo) * nb / ((unsigned __int128)(hi - lo) + 1)]++;
    }
    pthread_mutex_unlock(&s->lock);
    if (lo <= hi)
        sbuf_printf(out, "{\"first_us\":%" PRIu64 ",\"last_us\":%" PRIu64 ",\"bins\":[", lo, hi);
    else
        sbuf_printf(out, "{\"first_us\":null,\"last_us\":null,\"bins\":[");
    for (uint32_t i = 0; i < nb; i++) sbuf_printf(out, i ? ",%" PRIu64 : "%" PRIu64, bin[i]);
    SBUF_LIT(out, "]}");
    free(bin);
    return out->err;
}

static void summary_threads(const serve_store *s, sbuf *b) {
    SBUF_LIT(b, ",\"threads\":[");
    for (uint32_t i = 0; i < s->nthreads; i++) {
        const thread_rec *t = &s->thread[i];
        sbuf_printf(b, "%s{\"id\":%" PRIu64 ",\"name\":", i ? "," : "", t->tid);
        if (t->tid == OTHER_THREADS)
            sbuf_json_string(b, "[other threads]");
        else if (t->name)
            sbuf_json_string(b, t->name);
        else
            SBUF_LIT(b, "null");
        sbuf_printf(b, ",\"samples\":%" PRIu64 "}", t->samples);
    }
    SBUF_LIT(b, "]");
}

static void summary_damage(const serve_store *s, sbuf *b) {
    sbuf_printf(b,
                ",\"damage\":{\"ranges\":%" PRIu64 ",\"bytes\":%" PRIu64
                ",\"torn_tail_bytes\":%" PRIu64 ",\"list\":[",
                s->damaged_ranges, s->damaged_bytes, s->torn_bytes);
    for (uint32_t i = 0; i < s->ndamage; i++)
        sbuf_printf(b, "%s{\"offset\":%" PRIu64 ",\"length\":%" PRIu64 ",\"torn_tail\":%s}",
                    i ? "," : "", s->damage[i].offset, s->damage[i].length,
                    s->damage[i].torn ? "true" : "false");
    SBUF_LIT(b, "]}");
}

static void summary_meta(const serve_store *s, sbuf *b) {
    SBUF_LIT(b, ",\"meta\":{");
    for (uint32_t i = 0; i < s->nmeta; i++) {
        if (i) SBUF_LIT(b, ",");
        sbuf_json_string(b, s->mkey[i]);
        SBUF_LIT(b, ":");
        sbuf_json_string(b, s->mval[i]);
    }
    SBUF_LIT(b, "}");
}

int store_summary(serve_store *s, sbuf *b) {
    pthread_mutex_lock(&s->lock);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (uint64_t i = 0; i < s->count; i++) {
        uint64_t ts = ring_at(s, i)->ts;
        if (ts < lo) lo = ts;
        if (ts > hi) hi = ts;
    }
    SBUF_LIT(b, "{\"source\":");
    sbuf_json_string(b, s->source);
    sbuf_printf(b, ",\"chunks\":%" PRIu64 ",\"samples\":%" PRIu64 ",\"samples_seen\":%" PRIu64,
                s->chunks - s->chunk_base, s->count, s->seen);
    sbuf_printf(b, ",\"dropped_samples\":%" PRIu64 ",\"max_samples\":%" PRIu64, s->dropped, s->max);
    sbuf_printf(b, ",\"truncated_stacks\":%" PRIu64 ",\"records\":%" PRIu64, s->truncated,
                s->records);
    sbuf_printf(b, ",\"restarts\":%" PRIu64 ",\"nodes\":%" PRIu32, s->restarts, s->nnodes);
    if (s->count)
        sbuf_printf(b, ",\"first_us\":%" PRIu64 ",\"last_us\":%" PRIu64, lo, hi);
    else
        SBUF_LIT(b, ",\"first_us\":null,\"last_us\":null");
    summary_threads(s, b);
    summary_damage(s, b);
    summary_meta(s, b);
    sbuf_printf(b, ",\"ended\":%s,\"error\":", s->ended ? "true" : "false");
    if (s->error)
        sbuf_json_string(b, s->error);
    else
        SBUF_LIT(b, "null");
    SBUF_LIT(b, "}");
    pthread_mutex_unlock(&s->lock);
    return b->err;
}

void store_totals(serve_store *s, serve_totals *t) {
    pthread_mutex_lock(&s->lock);
    *t = (serve_totals){
        s->chunks - s->chunk_base, s->count,        s->seen, s->dropped, s->truncated, s->nthreads,
        s->damaged_ranges,         s->damaged_bytes};
    pthread_mutex_unlock(&s->lock);
}
