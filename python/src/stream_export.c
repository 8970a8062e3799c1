/* lumio._lumio.stream_export: a stream (any source the reader takes) into
 * another tool's format through the library's exporters, the GIL released
 * for the whole read. lumio/stream.py's export() names the output and makes
 * it whole or absent. */
#include "ext.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    lumio_stream_exporter *e;
    uint64_t n;
    int signal_rc; /* a signal's handler raised (KeyboardInterrupt): stop */
} pass;

/* Every 64k samples the GIL is taken for a moment to run signal handlers,
 * so that Ctrl-C stops a long export. */
static int check_signals(pass *p) {
    if (++p->n % 65536) return 0;
    PyGILState_STATE st = PyGILState_Ensure();
    int rc = PyErr_CheckSignals();
    PyGILState_Release(st);
    return rc < 0 ? (p->signal_rc = -EINTR) : 0;
}

static int on_sample(void *arg, const lumio_sample *s) {
    pass *p = arg;
    int rc = lumio_stream_exporter_sample(p->e, s);
    return rc < 0 ? rc : check_signals(p);
}

static int on_meta(void *arg, uint64_t ts, const char *key, const char *value) {
    pass *p = arg;
    return lumio_stream_exporter_meta(p->e, ts, key, value);
}

/* The reader on source (a str, or a descriptor the caller keeps). */
static int open_source(PyObject *source, int follow, unsigned idle_ms, lumio_stream_reader **r) {
    const char *path;
    int fd;
    if (lpy_stream_target(source, &path, &fd) < 0) return -1;
    lumio_stream_reader_options o = {.follow = follow, .follow_idle_ms = idle_ms};
    int rc;
    Py_BEGIN_ALLOW_THREADS;
    rc = fd >= 0 ? lumio_stream_reader_open_fd(r, fd, &o) : lumio_stream_reader_open(r, path, &o);
    Py_END_ALLOW_THREADS;
    if (rc == 0) return 0;
    char err[LUMIO_ERROR_MAX];
    lpy_raise(rc, lumio_stream_reader_last_error(NULL, err, sizeof err));
    return -1;
}

/* Read r into an exporter on out; the GIL released. Returns the first
 * failure, its text in err. */
static int run(lumio_stream_reader *r, FILE *out, const char *format, const char *name, pass *p,
               char *err, size_t cap) {
    lumio_stream_export_options eo = {.name = name};
    int rc = lumio_stream_exporter_create(&p->e, format, out, &eo);
    if (rc < 0) {
        lumio_stream_exporter_last_error(NULL, err, cap);
        return rc;
    }
    rc = lumio_stream_reader_read(r, on_sample, on_meta, p);
    if (rc < 0 && !p->signal_rc) {
        lumio_stream_exporter_last_error(p->e, err, cap);
        if (!err[0]) lumio_stream_reader_last_error(r, err, cap);
    }
    if (rc == 0 && (rc = lumio_stream_exporter_finish(p->e)) < 0)
        lumio_stream_exporter_last_error(p->e, err, cap);
    lumio_stream_exporter_close(p->e);
    return rc;
}

/* stream_export(source, out_fd, format, follow, idle_ms, name) -> (chunks,
 * samples, damaged_ranges, damaged_bytes, torn_tail_bytes): out_fd is
 * written, not closed. */
static PyObject *stream_export(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *source;
    int out_fd, follow;
    unsigned int idle_ms;
    const char *format, *name;
    if (!PyArg_ParseTuple(args, "OisiIz", &source, &out_fd, &format, &follow, &idle_ms, &name))
        return NULL;
    int dup_fd = dup(out_fd);
    FILE *out = dup_fd >= 0 ? fdopen(dup_fd, "wb") : NULL;
    if (!out) {
        if (dup_fd >= 0) close(dup_fd);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    lumio_stream_reader *r;
    if (open_source(source, follow, idle_ms, &r) < 0) {
        fclose(out);
        return NULL;
    }
    pass p = {0};
    char err[LUMIO_ERROR_MAX] = "";
    int rc;
    lumio_stream_reader_stats st;
    Py_BEGIN_ALLOW_THREADS;
    rc = run(r, out, format, name, &p, err, sizeof err);
    if (fclose(out) != 0 && rc == 0) {
        rc = -errno;
        snprintf(err, sizeof err, "writing the export: %s", strerror(errno));
    }
    lumio_stream_reader_get_stats(r, &st);
    lumio_stream_reader_close(r);
    Py_END_ALLOW_THREADS;
    if (p.signal_rc) return NULL; /* the handler's exception is set */
    if (rc < 0) return lpy_raise(rc, err);
    return Py_BuildValue("(KKKKK)", (unsigned long long)st.chunks, (unsigned long long)st.samples,
                         (unsigned long long)st.damaged_ranges,
                         (unsigned long long)st.damaged_bytes,
                         (unsigned long long)st.torn_tail_bytes);
}

/* The formats this build knows, in the library's order. */
static PyObject *export_formats(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    PyObject *l = PyList_New(0);
    for (size_t i = 0; l && lumio_stream_export_format(i); i++) {
        PyObject *s = PyUnicode_FromString(lumio_stream_export_format(i));
        if (!s || PyList_Append(l, s) < 0) {
            Py_XDECREF(s);
            Py_CLEAR(l);
            break;
        }
        Py_DECREF(s);
    }
    return l;
}

static PyMethodDef methods[] = {
    {"stream_export", stream_export, METH_VARARGS,
     "stream_export(source, out_fd, format, follow, idle_ms, name): a stream into a format."},
    {"stream_export_formats", export_formats, METH_NOARGS, "The export formats, in order."},
    {NULL, NULL, 0, NULL}};

int lpy_stream_export_init(PyObject *m) {
    return PyModule_AddFunctions(m, methods);
}
