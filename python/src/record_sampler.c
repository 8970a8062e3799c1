/* The recorder's sampler: a native thread that sleeps to the next tick,
 * takes the GIL only to walk the frames of every thread (copying what it
 * has not seen into C buffers), releases it, and then interns frames and
 * writes the samples with the writer's fast path. */
#include "record.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CACHE_MIN_SLOTS 1024u
#define CACHE_MAX_SLOTS (1u << 16) /* at most half used: 32768 frames, then cleared */

uint64_t lpy_monotonic_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* Room for need elements of size elem in *p (malloc: freed without the GIL). */
static int grow(void *pp, size_t *cap, size_t need, size_t elem) {
    void **p = pp;
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 64, bytes;
    while (n < need) n *= 2;
    if (__builtin_mul_overflow(n, elem, &bytes)) return -ENOMEM;
    void *q = realloc(*p, bytes);
    if (!q) return -ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

static size_t slot_of(const PyObject *code, uint32_t line, size_t mask) {
    uint64_t h = ((uint64_t)(uintptr_t)code >> 4) * 0x9E3779B97F4A7C15ull;
    h ^= (uint64_t)line * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(h ^ (h >> 31)) & mask;
}

/* The slot holding (code, line), or the empty one where it would go. */
static size_t cache_find(const rec_sampler *s, const PyObject *code, uint32_t line) {
    size_t mask = s->nslots - 1, i = slot_of(code, line, mask);
    while (s->slots[i].code && (s->slots[i].code != code || s->slots[i].line != line))
        i = (i + 1) & mask;
    return i;
}

/* With the GIL, before a walk (no id is pending then): make room for the
 * frames it may add, growing the table or, at its cap, emptying it (the
 * writer keeps every id: a frame met again is interned to the same one). */
static int cache_prepare(rec_sampler *s) {
    if (s->nslots && s->used * 2 < s->nslots) return 0;
    if (s->nslots >= CACHE_MAX_SLOTS) {
        for (size_t i = 0; i < s->nslots; i++) Py_CLEAR(s->slots[i].code);
        s->used = 0;
        return 0;
    }
    size_t n = s->nslots ? s->nslots * 2 : CACHE_MIN_SLOTS;
    rec_slot *old = s->slots;
    size_t nold = s->nslots;
    if (!(s->slots = calloc(n, sizeof *s->slots))) {
        s->slots = old;
        return -ENOMEM;
    }
    s->nslots = n;
    for (size_t i = 0; i < nold; i++)
        if (old[i].code) s->slots[cache_find(s, old[i].code, old[i].line)] = old[i];
    free(old);
    return 0;
}

/* A str as a malloc'd UTF-8 copy; a lone surrogate (a file name that was
 * not UTF-8) as its byte again, as lumio.stream.Writer does. */
static char *utf8_copy(PyObject *o) {
    if (!o || !PyUnicode_Check(o)) return strdup("?");
    const char *u = PyUnicode_AsUTF8(o);
    PyObject *keep = NULL;
    if (!u) {
        PyErr_Clear();
        if (!(keep = PyUnicode_AsEncodedString(o, "utf-8", "surrogateescape"))) {
            PyErr_Clear();
            return strdup("?");
        }
        u = PyBytes_AS_STRING(keep);
    }
    char *c = strdup(u); /* a NUL inside ends the name there */
    Py_XDECREF(keep);
    return c;
}

/* The id of (code, line) into *id, or REC_PENDING | its index among the
 * frames to intern after the walk. Takes over the reference to code. */
static int frame_id(rec_sampler *s, PyCodeObject *code, uint32_t line, uint32_t *id) {
    size_t i = cache_find(s, (PyObject *)code, line);
    if (s->slots[i].code) {
        *id = s->slots[i].id;
        Py_DECREF(code);
        return 0;
    }
    if (grow(&s->pend, &s->pend_cap, s->npend + 1, sizeof *s->pend) < 0) {
        Py_DECREF(code);
        return -ENOMEM;
    }
    rec_pending *p = &s->pend[s->npend];
    p->function = utf8_copy(code->co_qualname);
    p->file = utf8_copy(code->co_filename);
    p->line = line;
    p->slot = -1;
    if (!p->function || !p->file) {
        free(p->function);
        free(p->file);
        Py_DECREF(code);
        return -ENOMEM;
    }
    *id = REC_PENDING | (uint32_t)s->npend++;
    if ((s->used + 1) * 2 <= s->nslots) { /* else left uncached until the next tick's room */
        s->slots[i] = (rec_slot){.code = (PyObject *)code, .line = line, .id = *id};
        s->used++;
        p->slot = (int64_t)i;
    } else {
        Py_DECREF(code);
    }
    return 0;
}

static int hidden(const rec_sampler *s, const PyCodeObject *code) {
    for (int i = 0; i < s->nhide; i++)
        if (s->hide[i] == (const PyObject *)code) return i == 0 ? 2 : 1;
    return 0;
}

/* One thread's stack, innermost first, capped at LUMIO_STREAM_MAX_DEPTH. */
static int walk_thread(rec_sampler *s, PyThreadState *t) {
    PyFrameObject *f = PyThreadState_GetFrame(t);
    if (!f) return 0;
    int rc = grow(&s->stacks, &s->stacks_cap, s->nstacks + 1, sizeof *s->stacks);
    if (rc < 0) {
        Py_DECREF(f);
        return rc;
    }
    rec_stack *st = &s->stacks[s->nstacks];
    *st = (rec_stack){.tid = t->native_thread_id ? t->native_thread_id : t->thread_id,
                      .ident = t->thread_id,
                      .start = s->nids};
    uint32_t trail = 0; /* the last frames, all hide[1..] ones */
    while (rc == 0 && f && st->depth < LUMIO_STREAM_MAX_DEPTH) {
        PyCodeObject *code = PyFrame_GetCode(f);
        int h = hidden(s, code);
        if (h == 2) { /* the runner: it and its callers are not the program's */
            Py_DECREF(code);
            s->nids -= trail;
            st->depth -= trail;
            break;
        }
        trail = h ? trail + 1 : 0;
        int line = PyFrame_GetLineNumber(f);
        if ((rc = grow(&s->ids, &s->ids_cap, s->nids + 1, sizeof *s->ids)) < 0) {
            Py_DECREF(code);
            break;
        }
        if ((rc = frame_id(s, code, line > 0 ? (uint32_t)line : 0, &s->ids[s->nids])) < 0) break;
        s->nids++;
        st->depth++;
        PyFrameObject *back = PyFrame_GetBack(f);
        Py_DECREF(f);
        f = back;
    }
    Py_XDECREF(f);
    if (rc == 0 && st->depth) s->nstacks++;
    return rc;
}

/* Every thread but the sampler's. The garbage collector is held off so
 * that no finalizer runs (and lets another thread end) mid-walk. */
static int walk(rec_sampler *s, PyThreadState *self) {
    s->nids = s->nstacks = s->npend = s->names_len = 0;
    int rc = cache_prepare(s);
    if (rc < 0) return rc;
    int gc = PyGC_Disable();
    for (PyThreadState *t = PyInterpreterState_ThreadHead(s->interp); t && rc == 0;
         t = PyThreadState_Next(t))
        if (t != self) rc = walk_thread(s, t);
    if (gc) PyGC_Enable();
    return rc;
}

static int name_record(rec_sampler *s, uint64_t tid, PyObject *name) {
    const char *u = PyUnicode_AsUTF8(name);
    if (!u) {
        PyErr_Clear();
        return 0;
    }
    size_t n = strlen(u) + 24;
    if (grow(&s->names, &s->names_cap, s->names_len + n, 1) < 0) return -ENOMEM;
    s->names_len +=
        (size_t)snprintf(s->names + s->names_len, n, "%llu %s", (unsigned long long)tid, u) + 1;
    return 0;
}

/* The name threading gave a thread (its Thread object's _name), or NULL. */
static PyObject *thread_name(PyObject *active, unsigned long ident) {
    PyObject *key = PyLong_FromUnsignedLong(ident);
    PyObject *th = key ? PyDict_GetItemWithError(active, key) : NULL;
    Py_XDECREF(key);
    PyObject *name = th ? PyObject_GetAttrString(th, "_name") : NULL;
    if (name && !PyUnicode_Check(name)) Py_CLEAR(name);
    PyErr_Clear();
    return name;
}

/* With the GIL, after a walk that met a thread not seen in the last tick
 * (or a second after the last look): a "thread_name" record for each
 * thread whose name is new or changed. Only the threads of this tick are
 * remembered. */
static int names_refresh(rec_sampler *s) {
    PyObject *threading = PyDict_GetItemString(PyImport_GetModuleDict(), "threading");
    PyObject *active = threading ? PyObject_GetAttrString(threading, "_active") : NULL;
    PyObject *now = PyDict_New();
    int rc = 0;
    for (size_t i = 0; active && PyDict_Check(active) && now && rc == 0 && i < s->nstacks; i++) {
        PyObject *name = thread_name(active, s->stacks[i].ident);
        PyObject *key = name ? PyLong_FromUnsignedLongLong(s->stacks[i].tid) : NULL;
        if (key) {
            PyObject *old = PyDict_GetItemWithError(s->known, key);
            if (!old || PyUnicode_Compare(old, name) != 0)
                rc = name_record(s, s->stacks[i].tid, name);
            if (PyDict_SetItem(now, key, name) < 0) rc = -ENOMEM;
        }
        Py_XDECREF(key);
        Py_XDECREF(name);
        PyErr_Clear();
    }
    Py_XDECREF(active);
    PyErr_Clear();
    if (!now) return -ENOMEM;
    Py_SETREF(s->known, now);
    return rc;
}

/* Whether this tick's threads differ from the last tick's. */
static bool threads_changed(rec_sampler *s) {
    uint64_t sig[3] = {s->nstacks, 0, 0};
    for (size_t i = 0; i < s->nstacks; i++) {
        sig[1] += s->stacks[i].tid * 0x9E3779B97F4A7C15ull;
        sig[2] ^= s->stacks[i].tid;
    }
    bool changed = memcmp(sig, s->thread_sig, sizeof sig) != 0;
    memcpy(s->thread_sig, sig, sizeof sig);
    return changed;
}

static int fail(rec_sampler *s, int rc, const char *what) {
    char err[LUMIO_ERROR_MAX];
    lumio_stream_writer_last_error(s->w, err, sizeof err);
    snprintf(s->errtext, sizeof s->errtext, "lumio.record: %s: %s", what,
             *err ? err : lumio_strerror(rc));
    s->err = rc;
    return rc;
}

/* Without the GIL: intern what the walk met first, then the tick's records
 * and samples, all at one timestamp. */
static int tick_write(rec_sampler *s, uint64_t ts) {
    int rc = 0;
    for (size_t i = 0; i < s->npend; i++) {
        rec_pending *p = &s->pend[i];
        lumio_frame f = {.function = p->function, .file = p->file, .line = p->line};
        if (rc == 0 && (rc = lumio_stream_writer_intern_frame(s->w, &f, &p->id)) < 0)
            fail(s, rc, "interning a frame");
        if (rc == 0 && p->slot >= 0) s->slots[p->slot].id = p->id;
        free(p->function);
        free(p->file);
    }
    for (size_t off = 0; rc == 0 && off < s->names_len; off += strlen(s->names + off) + 1)
        if ((rc = lumio_stream_writer_write_meta(s->w, ts, "thread_name", s->names + off)) < 0)
            fail(s, rc, "writing a thread's name");
    for (size_t i = 0; rc == 0 && i < s->nstacks; i++) {
        rec_stack *st = &s->stacks[i];
        uint32_t *ids = s->ids + st->start;
        for (uint32_t d = 0; d < st->depth; d++)
            if (ids[d] & REC_PENDING) ids[d] = s->pend[ids[d] & ~REC_PENDING].id;
        rc = lumio_stream_writer_write_ids(s->w, ts, st->tid, 0, ids, st->depth);
        if (rc < 0)
            fail(s, rc, "writing a sample");
        else
            s->samples++;
    }
    s->npend = 0;
    return rc;
}

/* With the GIL: the walk, the names, the tick's timestamp. (A walk asked
 * of the main thread with Py_AddPendingCall, which would spare a switch of
 * the GIL, is no use on 3.11: a call added from another thread waits for
 * the main thread's next switch anyway.) */
static int gil_part(rec_sampler *s) {
    uint64_t t0 = lpy_monotonic_us();
    s->ts = t0;
    int rc = walk(s, s->self);
    if (rc == 0 && (threads_changed(s) || s->ticks >= s->next_refresh)) {
        s->next_refresh = s->ticks + 1000000000u / s->period_ns + 1;
        rc = names_refresh(s);
    }
    PyErr_Clear();
    s->held_us += lpy_monotonic_us() - t0;
    return rc;
}

static int tick(rec_sampler *s) {
    PyEval_RestoreThread(s->self);
    int rc = gil_part(s);
    PyEval_SaveThread();
    s->ticks++;
    if (rc < 0) {
        for (size_t i = 0; i < s->npend; i++) free(s->pend[i].function), free(s->pend[i].file);
        s->npend = 0;
        return fail(s, rc, "sampling");
    }
    return tick_write(s, s->ts);
}

static void add_ns(struct timespec *t, uint64_t ns) {
    uint64_t v = (uint64_t)t->tv_nsec + ns;
    t->tv_sec += (time_t)(v / 1000000000u);
    t->tv_nsec = (long)(v % 1000000000u);
}

/* Tick at the rate; a tick missed (the GIL was slow to come) is skipped,
 * not made up. A failure to write stops the sampling (stop reports it). */
static void *sampler_main(void *arg) {
    rec_sampler *s = arg;
    PyGILState_STATE g = PyGILState_Ensure();
    s->self = PyEval_SaveThread();
    struct timespec next, now;
    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        add_ns(&next, s->period_ns);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec))
            next = now;
        while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &next) != ETIMEDOUT) continue;
        if (s->stop) break;
        pthread_mutex_unlock(&s->mu);
        int rc = tick(s);
        pthread_mutex_lock(&s->mu);
        if (rc < 0) break;
    }
    pthread_mutex_unlock(&s->mu);
    PyEval_RestoreThread(s->self);
    PyGILState_Release(g);
    return NULL;
}

int lpy_sampler_start(rec_sampler *s) {
    if (!(s->known = PyDict_New())) return -ENOMEM;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->mu, NULL);
    /* Signals go to Python's threads, as Python expects, never to this one. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&s->thread, NULL, sampler_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        Py_CLEAR(s->known);
        return -rc;
    }
    return 0;
}

void lpy_sampler_join(rec_sampler *s) {
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->ids);
    free(s->stacks);
    free(s->pend);
    free(s->names);
    s->ids = NULL, s->stacks = NULL, s->pend = NULL, s->names = NULL;
}

void lpy_sampler_free(rec_sampler *s) {
    for (size_t i = 0; i < s->nslots; i++) Py_CLEAR(s->slots[i].code);
    free(s->slots);
    s->slots = NULL;
    s->nslots = s->used = 0;
    Py_CLEAR(s->known);
    for (int i = 0; i < s->nhide; i++) Py_CLEAR(s->hide[i]);
    s->nhide = 0;
}
