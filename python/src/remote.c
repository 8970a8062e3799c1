/* lumio._lumio.RemoteClient: a lumio_remote, and the calls made straight on
 * it (stat, read, download, put). Long transfers go in steps, the GIL
 * released during each, and Ctrl-C is checked between steps: the C calls
 * cannot be interrupted, so a step is what bounds the wait for
 * KeyboardInterrupt (a part in flight on each connection). */
#include "remote.h"

#include <errno.h>
#include <string.h>

PyObject *lpy_client_fail(lumio_remote *rm, int64_t rc) {
    char err[LUMIO_ERROR_MAX];
    return lpy_raise((int)rc, lumio_remote_last_error(rm, err, sizeof err));
}

lumio_remote *lpy_client_handle(lpy_client *c) {
    if (c->rm && c->pid == getpid()) return c->rm;
    c->rm = NULL; /* a fork: the parent's client is left as it is */
    lumio_remote *rm = NULL;
    /* No I/O here (connections are made on demand): the GIL can stay, which
     * also keeps two threads of a child from both making one. */
    int rc = lumio_remote_create(&rm, &c->o);
    if (rc < 0) return (lumio_remote *)lpy_client_fail(NULL, rc);
    c->rm = rm;
    c->pid = getpid();
    return rm;
}

uint64_t lpy_client_part_size(const lpy_client *c) {
    return c->o.part_size ? c->o.part_size : 8u << 20;
}

static int client_init(lpy_client *c, PyObject *args, PyObject *kw) {
    static char *names[] = {"concurrency",   "pool",       "part_size", "coalesce_gap",
                            "readahead_max", "timeout_ms", NULL};
    lumio_remote_options o = {0};
    unsigned long long part = 0, ahead = 0;
    long long gap = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|IIKLKI", names, &o.concurrency, &o.pool_size,
                                     &part, &gap, &ahead, &o.timeout_ms))
        return -1;
    if (c->rm) {
        PyErr_SetString(PyExc_TypeError, "RemoteClient is already made");
        return -1;
    }
    o.part_size = part;
    o.coalesce_gap = gap;
    o.readahead_max = ahead;
    c->o = o;
    c->pid = getpid();
    return lpy_client_handle(c) ? 0 : -1;
}

static void client_dealloc(lpy_client *c) {
    /* Nothing uses the client any more: every rfile and ring holds a
     * reference to this object. */
    if (c->rm && c->pid == getpid()) {
        Py_BEGIN_ALLOW_THREADS
        lumio_remote_close(c->rm);
        Py_END_ALLOW_THREADS
    }
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static PyObject *client_stat(lpy_client *c, PyObject *args) {
    const char *url;
    if (!PyArg_ParseTuple(args, "s", &url)) return NULL;
    lumio_remote *rm = lpy_client_handle(c);
    if (!rm) return NULL;
    lumio_remote_info info;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = lumio_remote_stat(rm, url, &info);
    Py_END_ALLOW_THREADS
    if (rc < 0) return lpy_client_fail(rm, rc);
    return Py_BuildValue("(Ks)", (unsigned long long)info.size, info.etag);
}

/* [start, start + n) into a new bytes object, in steps of one part per
 * connection (each lands straight in place). */
static PyObject *read_steps(lpy_client *c, lumio_remote *rm, const char *url, uint64_t start,
                            uint64_t n) {
    if (n > (uint64_t)PY_SSIZE_T_MAX) return PyErr_NoMemory();
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (!out) return NULL;
    uint8_t *p = (uint8_t *)PyBytes_AS_STRING(out);
    unsigned conc = c->o.concurrency ? c->o.concurrency : 16;
    uint64_t step = lpy_client_part_size(c) * conc, done = 0;
    while (done < n) {
        uint64_t want = n - done < step ? n - done : step;
        int64_t got;
        Py_BEGIN_ALLOW_THREADS
        got = lumio_remote_read(rm, url, start + done, want, p + done);
        Py_END_ALLOW_THREADS
        if (got < 0) {
            Py_DECREF(out);
            return lpy_client_fail(rm, got);
        }
        done += (uint64_t)got;
        if ((uint64_t)got < want) break; /* the object ends here */
        if (done < n && PyErr_CheckSignals() < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    if (done < n && _PyBytes_Resize(&out, (Py_ssize_t)done) < 0) return NULL;
    return out;
}

/* read(url, start, size) -> bytes; size < 0: to the end of the object. */
static PyObject *client_read(lpy_client *c, PyObject *args) {
    const char *url;
    unsigned long long start;
    long long size;
    if (!PyArg_ParseTuple(args, "sKL", &url, &start, &size)) return NULL;
    lumio_remote *rm = lpy_client_handle(c);
    if (!rm) return NULL;
    uint64_t n = (uint64_t)size;
    if (size < 0) {
        lumio_remote_info info;
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = lumio_remote_stat(rm, url, &info);
        Py_END_ALLOW_THREADS
        if (rc < 0) return lpy_client_fail(rm, rc);
        n = info.size > start ? info.size - start : 0;
    }
    return read_steps(c, rm, url, start, n);
}

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The object read in parts through an rfile (its read-ahead keeps every
 * connection busy while this thread writes), then written to fd. Returns
 * the bytes written, or -1 with an exception (KeyboardInterrupt included). */
static int64_t download_steps(lpy_client *c, lumio_rfile *f, int fd) {
    size_t step = (size_t)lpy_client_part_size(c);
    uint8_t *buf = PyMem_RawMalloc(step);
    if (!buf) {
        PyErr_NoMemory();
        return -1;
    }
    uint64_t done = 0;
    for (;;) {
        int64_t got;
        int werr = 0;
        Py_BEGIN_ALLOW_THREADS
        got = lumio_rfile_pread(f, buf, step, done);
        if (got > 0) werr = write_all(fd, buf, (size_t)got);
        Py_END_ALLOW_THREADS
        if (got < 0) {
            char err[LUMIO_ERROR_MAX];
            lpy_raise((int)got, lumio_rfile_last_error(f, err, sizeof err));
            break;
        }
        if (werr) {
            errno = -werr;
            PyErr_SetFromErrno(PyExc_OSError);
            break;
        }
        if (got == 0) {
            PyMem_RawFree(buf);
            return (int64_t)done;
        }
        done += (uint64_t)got;
        if (PyErr_CheckSignals() < 0) break;
    }
    PyMem_RawFree(buf);
    return -1;
}

/* download(url, fd) -> size: the whole object written to fd from its
 * position on. The caller removes the file if this raises. */
static PyObject *client_download(lpy_client *c, PyObject *args) {
    const char *url;
    int fd;
    if (!PyArg_ParseTuple(args, "si", &url, &fd)) return NULL;
    lumio_remote *rm = lpy_client_handle(c);
    if (!rm) return NULL;
    lumio_rfile *f = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = lumio_rfile_open(&f, rm, url);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        char err[LUMIO_ERROR_MAX];
        return lpy_raise(rc, lumio_rfile_last_error(NULL, err, sizeof err));
    }
    int64_t n = download_steps(c, f, fd);
    /* On an interrupt or an error this cancels the read-ahead in flight. */
    Py_BEGIN_ALLOW_THREADS
    lumio_rfile_close(f);
    Py_END_ALLOW_THREADS
    return n < 0 ? NULL : PyLong_FromLongLong(n);
}

static PyObject *client_put(lpy_client *c, PyObject *args) {
    const char *url;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "sy*", &url, &data)) return NULL;
    lumio_remote *rm = lpy_client_handle(c);
    if (!rm) {
        PyBuffer_Release(&data);
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = lumio_remote_put(rm, url, data.buf, (uint64_t)data.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    if (rc < 0) return lpy_client_fail(rm, rc);
    Py_RETURN_NONE;
}

static PyObject *client_stats(lpy_client *c, PyObject *unused) {
    (void)unused;
    lumio_remote *rm = lpy_client_handle(c);
    if (!rm) return NULL;
    lumio_remote_stats s;
    lumio_remote_get_stats(rm, &s);
    return Py_BuildValue(
        "{s:K,s:K,s:K,s:K,s:K,s:K}", "requests", (unsigned long long)s.requests, "bytes_fetched",
        (unsigned long long)s.bytes_fetched, "retries", (unsigned long long)s.retries,
        "connections", (unsigned long long)s.connections, "bytes_read",
        (unsigned long long)s.bytes_read, "whole_gets", (unsigned long long)s.whole_gets);
}

static PyMethodDef client_methods[] = {
    {"stat", (PyCFunction)client_stat, METH_VARARGS, "stat(url) -> (size, etag)."},
    {"read", (PyCFunction)client_read, METH_VARARGS,
     "read(url, start, size) -> bytes (size < 0: to the end), in steps (Ctrl-C between)."},
    {"download", (PyCFunction)client_download, METH_VARARGS,
     "download(url, fd) -> size: the whole object written to fd."},
    {"put", (PyCFunction)client_put, METH_VARARGS, "put(url, data): the object replaced."},
    {"stats", (PyCFunction)client_stats, METH_NOARGS, "The client's counters as a dict."},
    {NULL, NULL, 0, NULL}};

PyTypeObject lpy_client_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lumio._lumio.RemoteClient",
    .tp_basicsize = sizeof(lpy_client),
    .tp_dealloc = (destructor)client_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A remote client's C handle, shared by threads (use lumio.remote).",
    .tp_methods = client_methods,
    .tp_init = (initproc)client_init,
    .tp_new = PyType_GenericNew,
};

static PyObject *is_url(PyObject *self, PyObject *arg) {
    (void)self;
    const char *s = PyUnicode_AsUTF8(arg);
    if (!s) return NULL;
    return PyBool_FromLong(lumio_remote_is_url(s));
}

static PyMethodDef functions[] = {
    {"is_url", is_url, METH_O, "Whether a path is an http://, https:// or s3:// location."},
    {NULL, NULL, 0, NULL}};

int lpy_remote_init(PyObject *m) {
    if (PyType_Ready(&lpy_client_type) < 0) return -1;
    if (PyModule_AddObjectRef(m, "RemoteClient", (PyObject *)&lpy_client_type) < 0) return -1;
    if (PyModule_AddFunctions(m, functions) < 0) return -1;
    return lpy_rfile_init(m) < 0 ? -1 : lpy_ring_init(m);
}
