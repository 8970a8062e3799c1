/* lumio._lumio.RFile: a lumio_rfile (the prefetching reader) behind a lock,
 * with the position kept here so that the handle can be made again: in a
 * forked child, and after Ctrl-C, which closes it to cancel the read-ahead
 * in flight. lumio/remote.py makes the file object of it. */
#include "remote.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    PyObject_HEAD lpy_guard g;
    lpy_client *client;
    lumio_rfile *f; /* NULL: made again on the next call */
    PyObject *url;  /* str */
    uint64_t pos;
    bool closed;
} RFile;

static PyObject *rfile_fail(lumio_rfile *f, int64_t rc) {
    char err[LUMIO_ERROR_MAX];
    return lpy_raise((int)rc, lumio_rfile_last_error(f, err, sizeof err));
}

static int rfile_reopen(RFile *r) {
    lumio_remote *rm = lpy_client_handle(r->client);
    const char *url = PyUnicode_AsUTF8(r->url);
    if (!rm || !url) return -1;
    lumio_rfile *f = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = lumio_rfile_open(&f, rm, url);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        rfile_fail(NULL, rc);
        return -1;
    }
    r->f = f;
    return 0;
}

/* Close the handle, canceling its read-ahead; the next call makes a new
 * one at the same position. */
static void rfile_drop(RFile *r) {
    lumio_rfile *f = r->f;
    r->f = NULL;
    Py_BEGIN_ALLOW_THREADS
    lumio_rfile_close(f);
    Py_END_ALLOW_THREADS
}

/* Take the file for one call: its lock, and a handle of this process's
 * own. -1 with an exception set (the lock is not held then). */
static int rfile_enter(RFile *r) {
    if (lpy_guard_check(&r->g) < 0) return -1;
    if (lpy_guard_enter(&r->g)) r->f = NULL; /* the parent's: never closed here */
    if (r->closed) {
        lpy_guard_leave(&r->g);
        PyErr_SetString(PyExc_ValueError, "I/O operation on closed file");
        return -1;
    }
    if (!r->f && rfile_reopen(r) < 0) {
        lpy_guard_leave(&r->g);
        return -1;
    }
    return 0;
}

static int rfile_init(RFile *r, PyObject *args, PyObject *kw) {
    static char *names[] = {"client", "url", NULL};
    PyObject *client, *url;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!U", names, &lpy_client_type, &client, &url))
        return -1;
    if (r->g.lock) {
        PyErr_SetString(PyExc_TypeError, "RFile is already open");
        return -1;
    }
    if (lpy_guard_init(&r->g) < 0) return -1;
    r->client = (lpy_client *)Py_NewRef(client);
    r->url = Py_NewRef(url);
    return rfile_reopen(r);
}

static void rfile_dealloc(RFile *r) {
    if (r->f && r->g.pid == getpid()) rfile_drop(r);
    lpy_guard_fini(&r->g);
    Py_XDECREF(r->client);
    Py_XDECREF(r->url);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

/* Fill buf with up to n bytes from the position, in steps of a part (Ctrl-C
 * is seen between them). Returns the bytes read (fewer than n only at the
 * end of the object) and moves the position, or -1 with an exception: then
 * the position stays, and after an interrupt the handle is closed, which
 * cancels the read-ahead in flight. Called entered. */
static int64_t rfile_fill(RFile *r, uint8_t *buf, uint64_t n) {
    uint64_t step = lpy_client_part_size(r->client), done = 0;
    while (done < n) {
        size_t want = (size_t)(n - done < step ? n - done : step);
        int64_t got;
        Py_BEGIN_ALLOW_THREADS
        got = lumio_rfile_pread(r->f, buf + done, want, r->pos + done);
        Py_END_ALLOW_THREADS
        if (got < 0) {
            rfile_fail(r->f, got);
            return -1;
        }
        if (got == 0) break;
        done += (uint64_t)got;
        if (done < n && PyErr_CheckSignals() < 0) {
            rfile_drop(r);
            return -1;
        }
    }
    r->pos += done;
    return (int64_t)done;
}

static PyObject *rfile_readinto(RFile *r, PyObject *arg) {
    Py_buffer v;
    if (PyObject_GetBuffer(arg, &v, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return NULL;
    PyObject *res = NULL;
    if (rfile_enter(r) == 0) {
        int64_t n = rfile_fill(r, v.buf, (uint64_t)v.len);
        lpy_guard_leave(&r->g);
        res = n < 0 ? NULL : PyLong_FromLongLong(n);
    }
    PyBuffer_Release(&v);
    return res;
}

/* read(n) -> bytes: n bytes (fewer at the end), read straight into the
 * result. */
static PyObject *rfile_read(RFile *r, PyObject *arg) {
    Py_ssize_t n = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 0) return PyErr_Format(PyExc_ValueError, "read(%zd): a negative size", n);
    if (rfile_enter(r) < 0) return NULL;
    uint64_t size = lumio_rfile_size(r->f);
    if (size != UINT64_MAX) { /* not more than is left: read(huge) allocates no more */
        uint64_t left = size > r->pos ? size - r->pos : 0;
        if ((uint64_t)n > left) n = (Py_ssize_t)left;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    int64_t got = out ? rfile_fill(r, (uint8_t *)PyBytes_AS_STRING(out), (uint64_t)n) : -1;
    lpy_guard_leave(&r->g);
    if (got < 0) {
        Py_XDECREF(out);
        return NULL;
    }
    if (got < n && _PyBytes_Resize(&out, (Py_ssize_t)got) < 0) return NULL;
    return out;
}

static PyObject *rfile_seek(RFile *r, PyObject *args) {
    long long off;
    int whence = SEEK_SET;
    if (!PyArg_ParseTuple(args, "L|i", &off, &whence)) return NULL;
    if (whence < SEEK_SET || whence > SEEK_END)
        return PyErr_Format(PyExc_ValueError, "invalid whence (%d, should be 0, 1 or 2)", whence);
    if (rfile_enter(r) < 0) return NULL;
    uint64_t size = lumio_rfile_size(r->f);
    PyObject *res = NULL;
    if (whence == SEEK_END && size == UINT64_MAX) {
        errno = ESPIPE; /* as a pipe: the server has not said how long the object is */
        PyErr_SetFromErrno(PyExc_OSError);
    } else {
        long long base = whence == SEEK_SET   ? 0
                         : whence == SEEK_CUR ? (long long)r->pos
                                              : (long long)size;
        long long to;
        if (__builtin_add_overflow(base, off, &to) || to < 0) {
            PyErr_SetString(PyExc_ValueError, "seek to a negative position");
        } else {
            r->pos = (uint64_t)to;
            res = PyLong_FromLongLong(to);
        }
    }
    lpy_guard_leave(&r->g);
    return res;
}

static PyObject *rfile_tell(RFile *r, PyObject *unused) {
    (void)unused;
    return PyLong_FromUnsignedLongLong(r->pos);
}

/* The object's size, or None while the server has not said it. */
static PyObject *rfile_size(RFile *r, PyObject *unused) {
    (void)unused;
    if (rfile_enter(r) < 0) return NULL;
    uint64_t size = lumio_rfile_size(r->f);
    lpy_guard_leave(&r->g);
    return size == UINT64_MAX ? Py_NewRef(Py_None) : PyLong_FromUnsignedLongLong(size);
}

static PyObject *rfile_stats(RFile *r, PyObject *unused) {
    (void)unused;
    if (rfile_enter(r) < 0) return NULL;
    lumio_remote_stats s;
    lumio_rfile_get_stats(r->f, &s);
    lpy_guard_leave(&r->g);
    return Py_BuildValue("{s:K,s:K,s:K,s:K}", "requests", (unsigned long long)s.requests,
                         "bytes_fetched", (unsigned long long)s.bytes_fetched, "retries",
                         (unsigned long long)s.retries, "bytes_read",
                         (unsigned long long)s.bytes_read);
}

static PyObject *rfile_close(RFile *r, PyObject *unused) {
    (void)unused;
    if (lpy_guard_check(&r->g) < 0) return NULL;
    if (lpy_guard_enter(&r->g)) r->f = NULL;
    if (r->f) rfile_drop(r);
    r->closed = true;
    lpy_guard_leave(&r->g);
    Py_RETURN_NONE;
}

static PyMethodDef rfile_methods[] = {
    {"readinto", (PyCFunction)rfile_readinto, METH_O,
     "readinto(buffer) -> n: fill the buffer from the position (fewer bytes only at the end)."},
    {"read", (PyCFunction)rfile_read, METH_O, "read(n) -> bytes (fewer only at the end)."},
    {"seek", (PyCFunction)rfile_seek, METH_VARARGS, "seek(offset, whence=0) -> position."},
    {"tell", (PyCFunction)rfile_tell, METH_NOARGS, "The position."},
    {"size", (PyCFunction)rfile_size, METH_NOARGS, "The object's size, or None if not known."},
    {"stats", (PyCFunction)rfile_stats, METH_NOARGS, "This file's requests and bytes."},
    {"close", (PyCFunction)rfile_close, METH_NOARGS, "Cancel the read-ahead and free."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject rfile_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lumio._lumio.RFile",
    .tp_basicsize = sizeof(RFile),
    .tp_dealloc = (destructor)rfile_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A remote object's prefetching reader (use lumio.remote.open). Calls take turns.",
    .tp_methods = rfile_methods,
    .tp_init = (initproc)rfile_init,
    .tp_new = PyType_GenericNew,
};

int lpy_rfile_init(PyObject *m) {
    if (PyType_Ready(&rfile_type) < 0) return -1;
    return PyModule_AddObjectRef(m, "RFile", (PyObject *)&rfile_type);
}
