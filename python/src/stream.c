/* lumio._lumio.StreamWriter: a lumio_stream_writer behind a lock. Frames go
 * through the C fast path: each distinct (function, file, line) is interned
 * once and its id kept in a dict, so a sample costs a dict lookup per frame
 * and one lumio_stream_writer_write_ids. lumio/stream.py subclasses it
 * (Writer) to parse the flush policy; lpy_stream_init registers both stream
 * types. */
#include "ext.h"

#include <errno.h>
#include <string.h>
#include <time.h>

typedef struct {
    PyObject_HEAD lpy_guard g;
    lumio_stream_writer *w;
    PyObject *sink;    /* a str, or an int (a descriptor), as given */
    PyObject *ca_file; /* bytes (o.ca_file points into it), or NULL */
    lumio_stream_writer_options o;
    PyObject *ids;   /* dict: frame tuple -> its id in w */
    uint32_t *stack; /* a sample's ids, reused */
    size_t cap;
    bool closed;
    bool foreign;                    /* this process is a fork of the one that opened the sink */
    lumio_stream_writer_stats final; /* once closed */
} StreamWriter;

static uint64_t lpy_now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t); /* time.monotonic()'s clock */
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static PyObject *writer_fail(StreamWriter *s, int rc) {
    char err[LUMIO_ERROR_MAX];
    return lpy_raise(rc, lumio_stream_writer_last_error(s ? s->w : NULL, err, sizeof err));
}

static bool is_stdout(StreamWriter *s) {
    return PyUnicode_Check(s->sink) && PyUnicode_CompareWithASCIIString(s->sink, "-") == 0;
}

/* A sink or source: a str, or a descriptor the caller keeps open (an int).
 * fd is -1 for a str. */
int lpy_stream_target(PyObject *o, const char **name, int *fd) {
    *fd = -1;
    *name = NULL;
    if (PyLong_Check(o)) {
        long v = PyLong_AsLong(o);
        if (v < 0 || v > INT32_MAX) {
            if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_OverflowError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "descriptor %R is out of range", o);
            }
            return -1;
        }
        *fd = (int)v;
        return 0;
    }
    *name = PyUnicode_AsUTF8(o);
    return *name ? 0 : -1;
}

/* Open the sink (again: in a forked child, for "-"). -1 with an exception. */
static int writer_open(StreamWriter *s) {
    const char *sink;
    int fd;
    if (lpy_stream_target(s->sink, &sink, &fd) < 0) return -1;
    lumio_stream_writer *w = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = sink ? lumio_stream_writer_open(&w, sink, &s->o)
              : lumio_stream_writer_open_fd(&w, fd, &s->o);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        writer_fail(NULL, rc);
        return -1;
    }
    s->w = w;
    PyDict_Clear(s->ids); /* ids of another handle */
    return 0;
}

/* Take the writer for one call. In a forked child the parent's handle, with
 * the parent's unsealed samples in it, is never used or closed: a child may
 * not write to the parent's sink (two writers would interleave chunks and
 * seal the parent's samples twice), except standard output, where the child
 * gets a stream of its own. -1 with an exception set. */
static int writer_enter(StreamWriter *s) {
    if (lpy_guard_check(&s->g) < 0) return -1;
    if (lpy_guard_enter(&s->g)) {
        s->w = NULL;
        if (!s->closed && is_stdout(s)) {
            if (writer_open(s) < 0) {
                lpy_guard_leave(&s->g);
                return -1;
            }
        } else {
            s->foreign = true;
        }
    }
    if (s->closed || !s->w) {
        lpy_guard_leave(&s->g);
        if (s->foreign && !s->closed)
            PyErr_Format(PyExc_RuntimeError,
                         "%s%S: this Writer was opened by the parent of this forked process, "
                         "which writes to it; two processes must not write one sink "
                         "(open a Writer of the child's own)",
                         PyLong_Check(s->sink) ? "fd " : "", s->sink);
        else
            PyErr_Format(PyExc_ValueError, "%s%S: the Writer is closed",
                         PyLong_Check(s->sink) ? "fd " : "", s->sink);
        return -1;
    }
    return 0;
}

static int writer_init(StreamWriter *s, PyObject *args, PyObject *kw) {
    static char *names[] = {"sink",  "flush_samples", "flush_bytes", "flush_ms",     "zstd_level",
                            "fsync", "append",        "ca_file",     "insecure_tls", NULL};
    PyObject *sink, *ca_file = Py_None;
    long long samples = 0, bytes = 0;
    unsigned int ms = 0;
    int level = 0, fsync = 0, append = 0, insecure = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|LLIippOp", names, &sink, &samples, &bytes, &ms,
                                     &level, &fsync, &append, &ca_file, &insecure))
        return -1;
    if (s->g.lock) {
        PyErr_SetString(PyExc_TypeError, "the Writer is already open");
        return -1;
    }
    if (!PyUnicode_Check(sink) && !PyLong_Check(sink)) {
        PyErr_SetString(PyExc_TypeError, "the sink is a str or a descriptor (int)");
        return -1;
    }
    if (ca_file != Py_None && !PyUnicode_FSConverter(ca_file, &s->ca_file)) return -1;
    if (lpy_guard_init(&s->g) < 0 || !(s->ids = PyDict_New())) return -1;
    s->sink = Py_NewRef(sink);
    s->o =
        (lumio_stream_writer_options){.flush_samples = samples,
                                      .flush_bytes = bytes,
                                      .flush_ms = ms,
                                      .zstd_level = level,
                                      .fsync = fsync,
                                      .append = append,
                                      .insecure_tls = insecure,
                                      .ca_file = s->ca_file ? PyBytes_AS_STRING(s->ca_file) : NULL};
    return writer_open(s);
}

static void writer_dealloc(StreamWriter *s) {
    /* Unclosed: sealed here, errors unseen (as a file's close in __del__). */
    if (s->w && s->g.pid == getpid()) {
        Py_BEGIN_ALLOW_THREADS
        lumio_stream_writer_close(s->w);
        Py_END_ALLOW_THREADS
    }
    lpy_guard_fini(&s->g);
    Py_XDECREF(s->sink);
    Py_XDECREF(s->ca_file);
    Py_XDECREF(s->ids);
    PyMem_Free(s->stack);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

/* A str as UTF-8 into *out; a lone surrogate (a byte a reader could not
 * decode, as Reader gives it back) is encoded as that byte again, in *keep,
 * which the caller releases. */
static int text_of(PyObject *o, const char *what, const char **out, PyObject **keep) {
    *keep = NULL;
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str, not %.100s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    Py_ssize_t n;
    *out = PyUnicode_AsUTF8AndSize(o, &n);
    if (!*out && PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
        PyErr_Clear();
        if (!(*keep = PyUnicode_AsEncodedString(o, "utf-8", "surrogateescape"))) return -1;
        *out = PyBytes_AS_STRING(*keep);
        n = PyBytes_GET_SIZE(*keep);
    }
    if (!*out) return -1;
    if (strlen(*out) != (size_t)n) {
        Py_CLEAR(*keep);
        PyErr_Format(PyExc_ValueError, "%s contains a NUL character", what);
        return -1;
    }
    return 0;
}

static int line_of(PyObject *o, uint32_t *line) {
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "a frame's line must be an int, not %.100s",
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return -1;
        PyErr_Clear();
    } else if (v <= UINT32_MAX) {
        *line = (uint32_t)v;
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "line %R is out of range (0 to 4294967295)", o);
    return -1;
}

/* A frame seen for the first time: checked, interned, its id kept. */
static int frame_intern(StreamWriter *s, PyObject *key, uint32_t *id) {
    if (PyTuple_GET_SIZE(key) != 3) {
        PyErr_SetString(PyExc_TypeError, "a frame is a (function, filename, line) tuple");
        return -1;
    }
    lumio_frame f = {0};
    PyObject *k1 = NULL, *k2 = NULL;
    int rc = -1;
    if (line_of(PyTuple_GET_ITEM(key, 2), &f.line) == 0 &&
        text_of(PyTuple_GET_ITEM(key, 0), "a frame's function", &f.function, &k1) == 0 &&
        text_of(PyTuple_GET_ITEM(key, 1), "a frame's filename", &f.file, &k2) == 0) {
        /* Memory only: the GIL is kept. */
        if ((rc = lumio_stream_writer_intern_frame(s->w, &f, id)) < 0) writer_fail(s, rc);
    }
    Py_XDECREF(k1);
    Py_XDECREF(k2);
    if (rc < 0) return -1;
    PyObject *v = PyLong_FromUnsignedLong(*id);
    int r = v ? PyDict_SetItem(s->ids, key, v) : -1;
    Py_XDECREF(v);
    return r;
}

static int frame_id(StreamWriter *s, PyObject *frame, uint32_t *id) {
    PyObject *key = PyTuple_Check(frame) ? Py_NewRef(frame) : PySequence_Tuple(frame);
    if (!key) {
        PyErr_SetString(PyExc_TypeError, "a frame is a (function, filename, line) tuple");
        return -1;
    }
    PyObject *v = PyDict_GetItemWithError(s->ids, key);
    int r;
    if (v)
        r = (*id = (uint32_t)PyLong_AsUnsignedLong(v), 0);
    else
        r = PyErr_Occurred() ? -1 : frame_intern(s, key, id);
    Py_DECREF(key);
    return r;
}

/* The ids of frames (a sequence) into s->stack. */
static int stack_ids(StreamWriter *s, PyObject *frames, uint32_t *depth) {
    PyObject *fast = PySequence_Fast(frames, "frames must be a sequence of (function, "
                                             "filename, line) tuples");
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    int r = 0;
    if (n > LUMIO_STREAM_MAX_DEPTH) {
        PyErr_Format(PyExc_ValueError, "a stack of %zd frames: at most %d", n,
                     LUMIO_STREAM_MAX_DEPTH);
        r = -1;
    } else if ((size_t)n > s->cap) {
        uint32_t *p = PyMem_Realloc(s->stack, (size_t)n * sizeof *p);
        if (!p)
            r = (PyErr_NoMemory(), -1);
        else
            s->stack = p, s->cap = (size_t)n;
    }
    for (Py_ssize_t i = 0; r == 0 && i < n; i++)
        r = frame_id(s, PySequence_Fast_GET_ITEM(fast, i), &s->stack[i]);
    Py_DECREF(fast);
    *depth = (uint32_t)n;
    return r;
}

/* An int argument in [0, max], or the default when o is NULL or None. */
static int u64_arg(PyObject *o, const char *what, uint64_t max, uint64_t dflt, uint64_t *out) {
    if (!o || o == Py_None) return (*out = dflt, 0);
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return -1;
        PyErr_Clear(); /* negative or too large: said below */
    } else if (v <= max) {
        *out = v;
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "%s must be from 0 to %llu, not %R", what,
                 (unsigned long long)max, o);
    return -1;
}

static PyObject *writer_write_sample(StreamWriter *s, PyObject *args, PyObject *kw) {
    static char *names[] = {"frames", "thread_id", "timestamp_us", "status", NULL};
    PyObject *frames, *tid_o = NULL, *ts_o = NULL, *status_o = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$OOO", names, &frames, &tid_o, &ts_o, &status_o))
        return NULL;
    uint64_t tid, ts, status;
    if (u64_arg(tid_o, "thread_id", UINT64_MAX, 0, &tid) < 0 ||
        u64_arg(status_o, "status", 255, 0, &status) < 0 ||
        u64_arg(ts_o, "timestamp_us", UINT64_MAX, lpy_now_us(), &ts) < 0)
        return NULL;
    if (writer_enter(s) < 0) return NULL;
    uint32_t depth;
    if (stack_ids(s, frames, &depth) < 0) {
        lpy_guard_leave(&s->g);
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS /* a sample may seal a chunk: compress, write, fsync */
    rc = lumio_stream_writer_write_ids(s->w, ts, tid, (uint8_t)status, s->stack, depth);
    Py_END_ALLOW_THREADS
    PyObject *r = rc < 0 ? writer_fail(s, rc) : Py_NewRef(Py_None);
    lpy_guard_leave(&s->g);
    return r;
}

static PyObject *writer_write_metadata(StreamWriter *s, PyObject *args, PyObject *kw) {
    static char *names[] = {"key", "value", "timestamp_us", NULL};
    PyObject *key_o, *value_o, *ts_o = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$O", names, &key_o, &value_o, &ts_o))
        return NULL;
    const char *key, *value;
    PyObject *k1 = NULL, *k2 = NULL, *r = NULL;
    uint64_t ts;
    if (text_of(key_o, "key", &key, &k1) == 0 && text_of(value_o, "value", &value, &k2) == 0 &&
        u64_arg(ts_o, "timestamp_us", UINT64_MAX, lpy_now_us(), &ts) == 0 && writer_enter(s) == 0) {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = lumio_stream_writer_write_meta(s->w, ts, key, value);
        Py_END_ALLOW_THREADS
        r = rc < 0 ? writer_fail(s, rc) : Py_NewRef(Py_None);
        lpy_guard_leave(&s->g);
    }
    Py_XDECREF(k1);
    Py_XDECREF(k2);
    return r;
}

static PyObject *writer_flush(StreamWriter *s, PyObject *unused) {
    (void)unused;
    if (writer_enter(s) < 0) return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = lumio_stream_writer_flush(s->w);
    Py_END_ALLOW_THREADS
    PyObject *r = rc < 0 ? writer_fail(s, rc) : Py_NewRef(Py_None);
    lpy_guard_leave(&s->g);
    return r;
}

/* Finish (seal the rest; on TCP, wait for the consumer), close, and raise
 * the finish's error. Again: nothing. In a forked child that did not open
 * the sink: only marked closed, the parent's handle left alone. */
static PyObject *writer_close(StreamWriter *s, PyObject *unused) {
    (void)unused;
    if (lpy_guard_check(&s->g) < 0) return NULL;
    if (lpy_guard_enter(&s->g)) s->w = NULL;
    lumio_stream_writer *w = s->w;
    s->w = NULL;
    s->closed = true;
    int rc = 0;
    char err[LUMIO_ERROR_MAX] = "";
    if (w) {
        Py_BEGIN_ALLOW_THREADS
        rc = lumio_stream_writer_finish(w);
        if (rc < 0) lumio_stream_writer_last_error(w, err, sizeof err);
        lumio_stream_writer_get_stats(w, &s->final);
        lumio_stream_writer_close(w);
        Py_END_ALLOW_THREADS
    }
    lpy_guard_leave(&s->g);
    if (rc < 0) return lpy_raise(rc, err);
    Py_RETURN_NONE;
}

static PyObject *stats_dict(const lumio_stream_writer_stats *st) {
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "chunks", (unsigned long long)st->chunks,
                         "samples", (unsigned long long)st->samples, "records",
                         (unsigned long long)st->records, "bytes", (unsigned long long)st->bytes,
                         "dropped_chunks", (unsigned long long)st->dropped_chunks, "dropped_bytes",
                         (unsigned long long)st->dropped_bytes, "connections",
                         (unsigned long long)st->connections);
}

static PyObject *writer_stats(StreamWriter *s, void *unused) {
    (void)unused;
    if (s->closed && s->g.pid == getpid()) return stats_dict(&s->final);
    if (writer_enter(s) < 0) return NULL;
    lumio_stream_writer_stats st;
    lumio_stream_writer_get_stats(s->w, &st);
    lpy_guard_leave(&s->g);
    return stats_dict(&st);
}

static PyObject *writer_closed(StreamWriter *s, void *unused) {
    (void)unused;
    return PyBool_FromLong(s->closed);
}

static PyObject *writer_sink(StreamWriter *s, void *unused) {
    (void)unused;
    return Py_NewRef(s->sink ? s->sink : Py_None);
}

static PyObject *writer_reduce(StreamWriter *s, PyObject *unused) {
    (void)unused;
    return PyErr_Format(PyExc_TypeError, "%s%S: a Writer cannot be pickled (it owns its sink)",
                        PyLong_Check(s->sink) ? "fd " : "", s->sink);
}

static PyMethodDef writer_methods[] = {
    {"write_sample", (PyCFunction)(void (*)(void))writer_write_sample, METH_VARARGS | METH_KEYWORDS,
     "write_sample(frames, *, thread_id=0, timestamp_us=None, status=0)\n--\n\n"
     "Write one stack sample. frames is a sequence of (function, filename, line)\n"
     "tuples, innermost first (as CPython's profiler lists them); each distinct\n"
     "frame is interned once. timestamp_us defaults to now on the monotonic clock\n"
     "(time.monotonic() in microseconds); status is 0 to 255, the caller's to\n"
     "define. A sample that completes a chunk under the flush policy seals it:\n"
     "then the sink's error (OSError naming it) is raised here."},
    {"write_metadata", (PyCFunction)(void (*)(void))writer_write_metadata,
     METH_VARARGS | METH_KEYWORDS,
     "write_metadata(key, value, *, timestamp_us=None)\n--\n\n"
     "Write a key and a value (str) for readers: the command, a marker, ..."},
    {"flush", (PyCFunction)writer_flush, METH_NOARGS,
     "flush()\n--\n\n"
     "Seal the current chunk now: when this returns, every sample written so far\n"
     "survives the writer being killed (on a file, durably with fsync=True). An\n"
     "empty chunk is not written."},
    {"close", (PyCFunction)writer_close, METH_NOARGS,
     "close()\n--\n\n"
     "Seal what is left and close the sink (on TCP, after waiting up to 5 s for\n"
     "the consumer to take the rest). Raises the first error of the seal or, on\n"
     "TCP, when chunks were not delivered. Closing again does nothing."},
    {"__reduce__", (PyCFunction)writer_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef writer_getset[] = {
    {"stats", (getter)writer_stats, NULL,
     "A dict of counters: chunks, samples, records and bytes sealed and written;\n"
     "for TCP sinks dropped_chunks, dropped_bytes and connections. Final once\n"
     "closed.",
     NULL},
    {"closed", (getter)writer_closed, NULL, "True once close() was called.", NULL},
    {"sink", (getter)writer_sink, NULL, "The sink, as given.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject writer_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lumio._lumio.StreamWriter",
    .tp_basicsize = sizeof(StreamWriter),
    .tp_dealloc = (destructor)writer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A lumio stream writer's C handle (use lumio.stream.Writer).",
    .tp_methods = writer_methods,
    .tp_getset = writer_getset,
    .tp_init = (initproc)writer_init,
    .tp_new = PyType_GenericNew,
};

int lpy_stream_init(PyObject *m) {
    if (PyType_Ready(&writer_type) < 0) return -1;
    if (PyModule_AddObjectRef(m, "StreamWriter", (PyObject *)&writer_type) < 0) return -1;
    return lpy_stream_reader_init(m);
}
