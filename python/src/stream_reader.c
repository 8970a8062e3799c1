/* lumio._lumio.StreamReader: a lumio_stream_reader behind a lock, and the
 * Sample type. A pass (read) runs the C reader with the GIL released. Its
 * callbacks, on the same thread, copy each sample into a batch without the
 * GIL (its frames as ids into a table of the distinct frames met so far),
 * and take the GIL once a batch to make the Python objects and hand them
 * to Python: the decoding runs beside other Python threads, the GIL changes
 * hands once per batch rather than per sample, and a frame's tuple is made
 * once and shared by every sample that has it. */
#include "ext.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct frame_ent {
    uint64_t hash;
    char *function, *file; /* copies: the reader's strings live for one callback */
    uint32_t line;
    PyObject *tuple; /* made at the first delivery */
} frame_ent;

typedef struct frame_tab {
    frame_ent *e;
    size_t n, cap;
    uint32_t *slots; /* index + 1; 0 is free */
    size_t nslots;
} frame_tab;

typedef struct held {
    uint64_t ts, tid;
    uint8_t status;
    uint32_t depth;
    size_t first; /* its frame ids in pass.ids */
} held;

typedef struct tid_set {
    uint64_t *k; /* 0 is free; thread 0 is `zero` */
    size_t n, nslots;
    bool zero;
} tid_set;

struct StreamReader;

typedef struct pass {
    struct StreamReader *rd;
    PyThreadState *ts; /* this thread's, while the C reader runs */
    unsigned long thread;
    PyObject *on_sample, *on_meta, *on_damage; /* on_sample NULL: only count */
    bool lists;                                /* on_sample takes a list per batch */
    size_t batch;
    frame_tab frames;
    held *h;
    size_t nh, caph;
    uint32_t *ids;
    size_t nids, capids;
    uint64_t delivered, counted;
    bool stop; /* a Python exception is set: stop at the next callback */
} pass;

typedef struct StreamReader {
    PyObject_HEAD lpy_guard g;
    lumio_stream_reader *r;
    PyObject *source; /* str */
    int follow;
    uint32_t idle_ms;
    bool passed; /* a pass has begun on this handle */
    pass *cur;   /* the pass running */
    /* What the last pass saw, beside the C reader's stats. */
    tid_set tids;
    uint64_t t_first, t_last, seen;
} StreamReader;

static PyTypeObject *sample_type;

static PyStructSequence_Field sample_fields[] = {
    {"thread_id", "The thread the stack was sampled on."},
    {"timestamp_us", "When, in microseconds (the writer's clock)."},
    {"status", "The writer's status byte (0 to 255): running, waiting, ..."},
    {"frames", "(function, filename, line) tuples, innermost first."},
    {NULL, NULL}};

static PyStructSequence_Desc sample_desc = {
    "lumio.stream.Sample",
    "A stack sample read from a lumio stream: thread_id, timestamp_us, status and\n"
    "frames, as written. A named tuple.",
    sample_fields, 4};

/* ---- what a pass keeps without the GIL ---------------------------------- */

static uint64_t fnv(uint64_t h, const char *s) {
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return (h ^ 0xff) * 0x100000001b3ull; /* the end of a string, so "ab","c" != "a","bc" */
}

static int frames_grow(frame_tab *t) {
    size_t ns = t->nslots ? t->nslots * 2 : 1024;
    uint32_t *slots = calloc(ns, sizeof *slots);
    if (!slots) return -ENOMEM;
    for (size_t i = 0; i < t->n; i++) {
        size_t k = t->e[i].hash & (ns - 1);
        while (slots[k]) k = (k + 1) & (ns - 1);
        slots[k] = (uint32_t)i + 1;
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = ns;
    return 0;
}

static int frame_add(frame_tab *t, const lumio_frame *f, uint64_t h, size_t slot, uint32_t *id) {
    if (t->n == t->cap) {
        size_t c = t->cap ? t->cap * 2 : 256;
        frame_ent *e = realloc(t->e, c * sizeof *e);
        if (!e) return -ENOMEM;
        t->e = e;
        t->cap = c;
    }
    const char *file = f->file ? f->file : "";
    frame_ent *e = &t->e[t->n];
    *e = (frame_ent){
        .hash = h, .function = strdup(f->function), .file = strdup(file), .line = f->line};
    if (!e->function || !e->file) {
        free(e->function);
        free(e->file);
        return -ENOMEM;
    }
    t->slots[slot] = (uint32_t)t->n + 1;
    *id = (uint32_t)t->n++;
    return 0;
}

static int frame_find(frame_tab *t, const lumio_frame *f, uint32_t *id) {
    if (t->n * 2 >= t->nslots && frames_grow(t) < 0) return -ENOMEM;
    const char *file = f->file ? f->file : "";
    uint64_t h = fnv(fnv(0xcbf29ce484222325ull, f->function), file) ^ f->line;
    h *= 0x9E3779B97F4A7C15ull;
    size_t k = h & (t->nslots - 1);
    for (; t->slots[k]; k = (k + 1) & (t->nslots - 1)) {
        frame_ent *e = &t->e[t->slots[k] - 1];
        if (e->hash == h && e->line == f->line && !strcmp(e->function, f->function) &&
            !strcmp(e->file, file)) {
            *id = t->slots[k] - 1;
            return 0;
        }
    }
    return frame_add(t, f, h, k, id);
}

static int tids_add(tid_set *t, uint64_t tid) {
    if (tid == 0) return (t->zero = true, 0);
    if (t->n * 2 >= t->nslots) {
        size_t ns = t->nslots ? t->nslots * 2 : 64;
        uint64_t *k = calloc(ns, sizeof *k);
        if (!k) return -ENOMEM;
        for (size_t i = 0; i < t->nslots; i++) {
            if (!t->k[i]) continue;
            size_t j = (t->k[i] * 0x9E3779B97F4A7C15ull) >> 7 & (ns - 1);
            while (k[j]) j = (j + 1) & (ns - 1);
            k[j] = t->k[i];
        }
        free(t->k);
        t->k = k;
        t->nslots = ns;
    }
    size_t j = (tid * 0x9E3779B97F4A7C15ull) >> 7 & (t->nslots - 1);
    for (; t->k[j]; j = (j + 1) & (t->nslots - 1))
        if (t->k[j] == tid) return 0;
    t->k[j] = tid;
    t->n++;
    return 0;
}

/* The last pass's summary: every sample counts, delivered or not. */
static int note(StreamReader *rd, const lumio_sample *s) {
    if (!rd->seen || s->timestamp_us < rd->t_first) rd->t_first = s->timestamp_us;
    if (!rd->seen || s->timestamp_us > rd->t_last) rd->t_last = s->timestamp_us;
    rd->seen++;
    return tids_add(&rd->tids, s->thread_id);
}

static int hold(pass *p, const lumio_sample *s) {
    if (p->nh == p->caph) {
        size_t c = p->caph ? p->caph * 2 : 64;
        held *h = realloc(p->h, c * sizeof *h);
        if (!h) return -ENOMEM;
        p->h = h;
        p->caph = c;
    }
    if (p->nids + s->depth > p->capids) {
        size_t c = p->capids ? p->capids : 1024;
        while (c < p->nids + s->depth) c *= 2;
        uint32_t *ids = realloc(p->ids, c * sizeof *ids);
        if (!ids) return -ENOMEM;
        p->ids = ids;
        p->capids = c;
    }
    for (uint32_t i = 0; i < s->depth; i++)
        if (frame_find(&p->frames, &s->frames[i], &p->ids[p->nids + i]) < 0) return -ENOMEM;
    p->h[p->nh++] = (held){.ts = s->timestamp_us,
                           .tid = s->thread_id,
                           .status = s->status,
                           .depth = s->depth,
                           .first = p->nids};
    p->nids += s->depth;
    return 0;
}

static void pass_free(pass *p) { /* the GIL held */
    for (size_t i = 0; i < p->frames.n; i++) {
        free(p->frames.e[i].function);
        free(p->frames.e[i].file);
        Py_XDECREF(p->frames.e[i].tuple);
    }
    free(p->frames.e);
    free(p->frames.slots);
    free(p->h);
    free(p->ids);
}

/* ---- handing samples to Python (the GIL held) ----------------------------- */

static PyObject *text(const char *s) {
    /* A byte that is not UTF-8 comes back as a lone surrogate, which a
     * Writer writes as that byte again: names round-trip exactly. */
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "surrogateescape");
}

static PyObject *frame_tuple(frame_ent *e) {
    if (!e->tuple)
        e->tuple = Py_BuildValue("(NNk)", text(e->function), text(e->file), (unsigned long)e->line);
    return e->tuple;
}

static PyObject *make_sample(pass *p, const held *h) {
    PyObject *frames = PyTuple_New(h->depth);
    for (uint32_t i = 0; frames && i < h->depth; i++) {
        PyObject *f = frame_tuple(&p->frames.e[p->ids[h->first + i]]);
        if (!f)
            Py_CLEAR(frames);
        else
            PyTuple_SET_ITEM(frames, i, Py_NewRef(f));
    }
    PyObject *o = frames ? PyStructSequence_New(sample_type) : NULL;
    if (!o) {
        Py_XDECREF(frames);
        return NULL;
    }
    PyStructSequence_SET_ITEM(o, 0, PyLong_FromUnsignedLongLong(h->tid));
    PyStructSequence_SET_ITEM(o, 1, PyLong_FromUnsignedLongLong(h->ts));
    PyStructSequence_SET_ITEM(o, 2, PyLong_FromLong(h->status));
    PyStructSequence_SET_ITEM(o, 3, frames);
    for (int i = 0; i < 3; i++)
        if (!PyStructSequence_GET_ITEM(o, i)) Py_CLEAR(o);
    return o;
}

static int call_each(pass *p) {
    for (size_t i = 0; i < p->nh; i++) {
        PyObject *s = make_sample(p, &p->h[i]);
        PyObject *r = s ? PyObject_CallOneArg(p->on_sample, s) : NULL;
        Py_XDECREF(s);
        if (!r) return -1;
        Py_DECREF(r);
        p->delivered++;
    }
    return 0;
}

static int call_list(pass *p) {
    PyObject *list = PyList_New((Py_ssize_t)p->nh);
    for (size_t i = 0; list && i < p->nh; i++) {
        PyObject *s = make_sample(p, &p->h[i]);
        if (!s)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, s);
    }
    PyObject *r = list ? PyObject_CallOneArg(p->on_sample, list) : NULL;
    Py_XDECREF(list);
    if (!r) return -1;
    Py_DECREF(r);
    p->delivered += p->nh;
    return 0;
}

/* Hand the held samples over; then Ctrl-C. 0, or 1 (stop) with an
 * exception set. */
static int deliver(pass *p) {
    int rc = 0;
    if (p->nh && p->on_sample) rc = p->lists ? call_list(p) : call_each(p);
    p->nh = p->nids = 0;
    if (rc == 0) rc = PyErr_CheckSignals();
    if (rc < 0) p->stop = true;
    return rc < 0 ? 1 : 0;
}

static int deliver_gil(pass *p) {
    PyEval_RestoreThread(p->ts);
    int rc = deliver(p);
    p->ts = PyEval_SaveThread();
    return rc;
}

/* ---- the C reader's callbacks (the GIL released) -------------------------- */

static int on_sample_c(void *arg, const lumio_sample *s) {
    pass *p = arg;
    if (p->stop) return 1;
    if (note(p->rd, s) < 0) return -ENOMEM;
    if (!p->on_sample) return ++p->counted % 65536 ? 0 : deliver_gil(p);
    int rc = hold(p, s);
    if (rc < 0) return rc;
    return p->nh >= p->batch ? deliver_gil(p) : 0;
}

static int on_meta_c(void *arg, uint64_t ts, const char *key, const char *value) {
    pass *p = arg;
    if (p->stop) return 1;
    PyEval_RestoreThread(p->ts);
    int rc = deliver(p); /* in the order they were written */
    if (rc == 0 && p->on_meta != Py_None) {
        PyObject *r = PyObject_CallFunction(p->on_meta, "KNN", (unsigned long long)ts, text(key),
                                            text(value));
        if (!r) rc = 1, p->stop = true;
        Py_XDECREF(r);
    }
    p->ts = PyEval_SaveThread();
    return rc;
}

static void on_damage_c(void *arg, uint64_t offset, uint64_t length, int torn) {
    StreamReader *rd = arg;
    pass *p = rd->cur;
    if (!p || p->stop) return;
    PyEval_RestoreThread(p->ts);
    if (deliver(p) == 0 && p->on_damage != Py_None) {
        PyObject *r = PyObject_CallFunction(p->on_damage, "KKO", (unsigned long long)offset,
                                            (unsigned long long)length, torn ? Py_True : Py_False);
        if (!r) p->stop = true; /* seen at the next sample */
        Py_XDECREF(r);
    }
    p->ts = PyEval_SaveThread();
}

/* ---- the handle ---------------------------------------------------------- */

static PyObject *reader_fail(StreamReader *rd, int rc) {
    char err[LUMIO_ERROR_MAX];
    return lpy_raise(rc, lumio_stream_reader_last_error(rd ? rd->r : NULL, err, sizeof err));
}

static int reader_open(StreamReader *rd) {
    const char *src;
    int fd;
    if (lpy_stream_target(rd->source, &src, &fd) < 0) return -1;
    lumio_stream_reader_options o = {
        .follow = rd->follow, .follow_idle_ms = rd->idle_ms, .on_damage = on_damage_c, .arg = rd};
    lumio_stream_reader *r = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = src ? lumio_stream_reader_open(&r, src, &o) : lumio_stream_reader_open_fd(&r, fd, &o);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        reader_fail(NULL, rc);
        return -1;
    }
    rd->r = r;
    rd->passed = false;
    return 0;
}

static void reader_drop(StreamReader *rd) {
    lumio_stream_reader *r = rd->r;
    rd->r = NULL;
    Py_BEGIN_ALLOW_THREADS
    lumio_stream_reader_close(r);
    Py_END_ALLOW_THREADS
}

/* Standard input, a TCP writer's stream and a descriptor can be read once;
 * a file again. */
static bool rereadable(StreamReader *rd) {
    const char *src = PyUnicode_Check(rd->source) ? PyUnicode_AsUTF8(rd->source) : NULL;
    return src && strcmp(src, "-") && strncmp(src, "tcp:", 4);
}

/* Take the reader for one call: its lock; in a forked child a handle of its
 * own (the parent's, maybe half way through the stream, is left alone). */
static int reader_enter(StreamReader *rd) {
    if (rd->cur && rd->cur->thread == PyThread_get_thread_ident()) {
        PyErr_Format(PyExc_RuntimeError,
                     "%s%S: the Reader is being read by this thread (a "
                     "collector or callback cannot use it)",
                     PyLong_Check(rd->source) ? "fd " : "", rd->source);
        return -1;
    }
    if (lpy_guard_check(&rd->g) < 0) return -1;
    if (lpy_guard_enter(&rd->g) && rd->r) {
        rd->r = NULL;
        if (reader_open(rd) < 0) {
            lpy_guard_leave(&rd->g);
            return -1;
        }
    }
    if (!rd->r) {
        lpy_guard_leave(&rd->g);
        PyErr_Format(PyExc_ValueError, "%s%S: the Reader is closed",
                     PyLong_Check(rd->source) ? "fd " : "", rd->source);
        return -1;
    }
    return 0;
}

/* Each pass reads from the start: a file is opened again. */
static int pass_begin(StreamReader *rd) {
    if (rd->passed) {
        if (!rereadable(rd)) {
            PyErr_Format(
                PyExc_ValueError,
                "%s%S: standard input, a TCP stream or a descriptor can be read once, and this "
                "Reader has read it",
                PyLong_Check(rd->source) ? "fd " : "", rd->source);
            return -1;
        }
        reader_drop(rd);
        if (reader_open(rd) < 0) return -1;
    }
    rd->passed = true;
    free(rd->tids.k);
    rd->tids = (tid_set){0};
    rd->seen = rd->t_first = rd->t_last = 0;
    return 0;
}

static PyObject *pass_end(StreamReader *rd, pass *p, int rc) {
    PyObject *res = NULL;
    if (!p->stop && rc != -ECANCELED) deliver(p); /* what came before an error too */
    if (!p->stop && rc == -ENOMEM && !PyErr_Occurred())
        PyErr_NoMemory();
    else if (!p->stop && rc < 0)
        reader_fail(rd, rc);
    else if (!p->stop)
        res = PyLong_FromUnsignedLongLong(p->delivered);
    pass_free(p);
    return res;
}

static int reader_init(StreamReader *rd, PyObject *args, PyObject *kw) {
    static char *names[] = {"source", "follow", "idle_ms", NULL};
    PyObject *src;
    int follow = 0;
    unsigned int idle = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|pI", names, &src, &follow, &idle)) return -1;
    if (rd->g.lock) {
        PyErr_SetString(PyExc_TypeError, "the Reader is already open");
        return -1;
    }
    if (!PyUnicode_Check(src) && !PyLong_Check(src)) {
        PyErr_SetString(PyExc_TypeError, "the source is a str or a descriptor (int)");
        return -1;
    }
    if (lpy_guard_init(&rd->g) < 0) return -1;
    rd->source = Py_NewRef(src);
    rd->follow = follow;
    rd->idle_ms = idle;
    return reader_open(rd);
}

static void reader_dealloc(StreamReader *rd) {
    if (rd->r && rd->g.pid == getpid()) reader_drop(rd);
    lpy_guard_fini(&rd->g);
    free(rd->tids.k);
    Py_XDECREF(rd->source);
    Py_TYPE(rd)->tp_free((PyObject *)rd);
}

static PyObject *reader_read(StreamReader *rd, PyObject *args) {
    pass p = {.rd = rd, .thread = PyThread_get_thread_ident()};
    Py_ssize_t batch;
    int lists;
    if (!PyArg_ParseTuple(args, "OOOnp", &p.on_sample, &p.on_meta, &p.on_damage, &batch, &lists))
        return NULL;
    if (p.on_sample == Py_None) p.on_sample = NULL;
    p.batch = batch > 0 ? (size_t)batch : 1;
    p.lists = lists;
    if (reader_enter(rd) < 0) return NULL;
    if (pass_begin(rd) < 0) {
        lpy_guard_leave(&rd->g);
        return NULL;
    }
    rd->cur = &p;
    p.ts = PyEval_SaveThread();
    int rc = lumio_stream_reader_read(rd->r, on_sample_c, on_meta_c, &p);
    PyEval_RestoreThread(p.ts);
    rd->cur = NULL;
    PyObject *res = pass_end(rd, &p, rc);
    lpy_guard_leave(&rd->g);
    return res;
}

static PyObject *reader_stats(StreamReader *rd, PyObject *unused) {
    (void)unused;
    if (reader_enter(rd) < 0) return NULL;
    lumio_stream_reader_stats s;
    lumio_stream_reader_get_stats(rd->r, &s);
    PyObject *tids = PyList_New(0);
    for (size_t i = 0; tids && i < rd->tids.nslots; i++) {
        PyObject *t = rd->tids.k[i] ? PyLong_FromUnsignedLongLong(rd->tids.k[i]) : NULL;
        if (rd->tids.k[i] && (!t || PyList_Append(tids, t) < 0)) Py_CLEAR(tids);
        Py_XDECREF(t);
    }
    if (tids && rd->tids.zero) {
        PyObject *z = PyLong_FromLong(0);
        if (!z || PyList_Append(tids, z) < 0) Py_CLEAR(tids);
        Py_XDECREF(z);
    }
    lpy_guard_leave(&rd->g);
    if (!tids || PyList_Sort(tids) < 0) {
        Py_XDECREF(tids);
        return NULL;
    }
#define U(x) (unsigned long long)(x)
    return Py_BuildValue(
        "{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:N,s:K,s:K}", "chunks", U(s.chunks), "samples",
        U(s.samples), "records", U(s.records), "damaged_ranges", U(s.damaged_ranges),
        "damaged_bytes", U(s.damaged_bytes), "torn_tail_bytes", U(s.torn_tail_bytes), "valid_end",
        U(s.valid_end), "last_seq", U(s.last_seq), "stored_bytes", U(s.stored_bytes), "raw_bytes",
        U(s.raw_bytes), "thread_ids", tids, "t_first", U(rd->t_first), "t_last", U(rd->t_last));
#undef U
}

static PyObject *reader_close(StreamReader *rd, PyObject *unused) {
    (void)unused;
    if (rd->cur && rd->cur->thread == PyThread_get_thread_ident()) {
        PyErr_SetString(PyExc_RuntimeError, "the Reader cannot be closed from its own callback");
        return NULL;
    }
    if (lpy_guard_check(&rd->g) < 0) return NULL;
    if (lpy_guard_enter(&rd->g)) rd->r = NULL; /* the parent's: left alone */
    if (rd->r) reader_drop(rd);
    lpy_guard_leave(&rd->g);
    Py_RETURN_NONE;
}

/* Stop a pass that runs on another thread (it ends with -ECANCELED), even
 * one waiting for data. Under the GIL: while a pass is in progress its
 * reader is not dropped (close waits for the pass, and clears `cur` only
 * with the GIL held). */
static PyObject *reader_cancel(StreamReader *rd, PyObject *unused) {
    (void)unused;
    if (rd->cur && rd->r) lumio_stream_reader_cancel(rd->r);
    Py_RETURN_NONE;
}

static PyMethodDef reader_methods[] = {
    {"read", (PyCFunction)reader_read, METH_VARARGS,
     "read(on_sample, on_meta, on_damage, batch, lists) -> samples delivered.\n"
     "One pass over the stream from its start. on_sample(sample), or with lists\n"
     "on_sample([samples]) per batch; None: only counted (stats()). on_meta(ts,\n"
     "key, value) and on_damage(offset, length, torn) or None."},
    {"stats", (PyCFunction)reader_stats, METH_NOARGS,
     "The last pass's counters as a dict (the C reader's, thread_ids, t_first, t_last)."},
    {"close", (PyCFunction)reader_close, METH_NOARGS, "Close the source."},
    {"cancel", (PyCFunction)reader_cancel, METH_NOARGS,
     "Stop the pass in progress on another thread, even one waiting for data."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject reader_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lumio._lumio.StreamReader",
    .tp_basicsize = sizeof(StreamReader),
    .tp_dealloc = (destructor)reader_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A lumio stream reader's C handle (use lumio.stream.Reader).",
    .tp_methods = reader_methods,
    .tp_init = (initproc)reader_init,
    .tp_new = PyType_GenericNew,
};

int lpy_stream_reader_init(PyObject *m) {
    if (PyType_Ready(&reader_type) < 0) return -1;
    if (!sample_type && !(sample_type = PyStructSequence_NewType(&sample_desc))) return -1;
    if (PyModule_AddObjectRef(m, "StreamReader", (PyObject *)&reader_type) < 0 ||
        PyModule_AddObjectRef(m, "Sample", (PyObject *)sample_type) < 0)
        return -1;
    return 0;
}
