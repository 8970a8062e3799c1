/* lumio._lumio: the module, its errors and the guard every object holds. */
#include "ext.h"

#include <errno.h>

PyObject *lpy_error;

PyObject *lpy_raise(int code, const char *text) {
    const char *msg = text && *text ? text : lumio_strerror(code);
    if (code == -ENOMEM) return PyErr_NoMemory();
    if (code == -EINVAL || code == -EOVERFLOW || code == -E2BIG) {
        PyErr_SetString(PyExc_ValueError, msg);
        return NULL;
    }
    PyObject *args;
    if (code < 0 && code > -4096) /* OSError(errno, text) is FileNotFoundError, ... */
        args = Py_BuildValue("(is)", -code, msg);
    else /* lumio's own: no errno, the code in .code */
        args = Py_BuildValue("(s)", msg);
    if (!args) return NULL;
    PyObject *type = code < 0 && code > -4096 ? PyExc_OSError : lpy_error;
    PyObject *e = PyObject_Call(type, args, NULL);
    Py_DECREF(args);
    if (!e) return NULL;
    if (type == lpy_error) {
        PyObject *c = PyLong_FromLong(code);
        if (c) PyObject_SetAttrString(e, "code", c);
        Py_XDECREF(c);
    }
    PyErr_SetObject((PyObject *)Py_TYPE(e), e);
    Py_DECREF(e);
    return NULL;
}

int lpy_guard_init(lpy_guard *g) {
    g->lock = PyThread_allocate_lock();
    g->pid = getpid();
    if (!g->lock) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

void lpy_guard_fini(lpy_guard *g) {
    /* In a child the lock may have been taken by a thread that is not
     * there: a new one was made at the first use, so freeing is safe. */
    if (g->lock) PyThread_free_lock(g->lock);
    g->lock = NULL;
}

int lpy_guard_check(lpy_guard *g) {
    if (!g->lock) {
        PyErr_SetString(PyExc_ValueError,
                        "the object was not initialized (its __init__ never ran)");
        return -1;
    }
    if (g->pid == getpid() && g->owner == PyThread_get_thread_ident()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the object is already in use by this thread (a call from inside one of "
                        "its own calls)");
        return -1;
    }
    return 0;
}

bool lpy_guard_enter(lpy_guard *g) {
    if (g->pid != getpid()) {
        /* A fork: the parent's lock may be held by one of its threads,
         * which the child does not have. Only this thread runs here now. */
        g->lock = PyThread_allocate_lock();
        g->pid = getpid();
        if (g->lock) PyThread_acquire_lock(g->lock, WAIT_LOCK);
        g->owner = PyThread_get_thread_ident();
        return true;
    }
    if (!PyThread_acquire_lock(g->lock, NOWAIT_LOCK)) {
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock(g->lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
    g->owner = PyThread_get_thread_ident();
    return false;
}

void lpy_guard_leave(lpy_guard *g) {
    g->owner = 0;
    if (g->lock) PyThread_release_lock(g->lock);
}

int lpy_u64s(PyObject *seq, const char *what, uint64_t *out, size_t n) {
    PyObject *fast = PySequence_Fast(seq, what);
    if (!fast) return -1;
    if ((size_t)PySequence_Fast_GET_SIZE(fast) != n) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zu values, got %zd", what, n,
                     PySequence_Fast_GET_SIZE(fast));
        Py_DECREF(fast);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        PyObject *v = PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i);
        unsigned long long x = PyLong_AsUnsignedLongLong(v);
        if (x == (unsigned long long)-1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
        out[i] = x;
    }
    Py_DECREF(fast);
    return 0;
}

static PyObject *version(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyUnicode_FromString(lumio_version());
}

static PyObject *redact(PyObject *self, PyObject *arg) {
    (void)self;
    const char *text = PyUnicode_AsUTF8(arg);
    if (!text) return NULL;
    size_t cap = 3 * strlen(text) + 16; /* each secret becomes ***, at most 3 times its size */
    char *out = PyMem_Malloc(cap);
    if (!out) return PyErr_NoMemory();
    lumio_redact(text, out, cap);
    PyObject *r = PyUnicode_FromString(out);
    PyMem_Free(out);
    return r;
}

static PyMethodDef methods[] = {
    {"version", version, METH_NOARGS, "The C library's version, \"MAJOR.MINOR.PATCH\"."},
    {"redact", redact, METH_O, "The text with the secrets of every URL in it replaced by ***."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "lumio._lumio",
                                    "lumio's C extension (use the lumio package).", -1, methods};

PyMODINIT_FUNC PyInit__lumio(void) {
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    lpy_error = PyErr_NewExceptionWithDoc(
        "lumio.Error",
        "An error of lumio's own (a bad format, an unsupported codec, an object that "
        "changed, a stalled engine): an OSError whose .code is lumio's code.",
        PyExc_OSError, NULL);
    if (!lpy_error || PyModule_AddObjectRef(m, "Error", lpy_error) < 0) goto fail;
    if (PyModule_AddIntConstant(m, "E_RANGE", LUMIO_E_RANGE) < 0 ||
        PyModule_AddIntConstant(m, "E_FORMAT", LUMIO_E_FORMAT) < 0 ||
        PyModule_AddIntConstant(m, "E_CHECKSUM", LUMIO_E_CHECKSUM) < 0 ||
        PyModule_AddIntConstant(m, "E_CODEC", LUMIO_E_CODEC) < 0 ||
        PyModule_AddIntConstant(m, "E_HTTP", LUMIO_E_HTTP) < 0 ||
        PyModule_AddIntConstant(m, "E_UNSUPPORTED", LUMIO_E_UNSUPPORTED) < 0 ||
        PyModule_AddIntConstant(m, "E_CHANGED", LUMIO_E_CHANGED) < 0 ||
        PyModule_AddIntConstant(m, "E_STALLED", LUMIO_E_STALLED) < 0)
        goto fail;
    if (lpy_zarr_init(m) < 0) goto fail;
    if (lpy_stream_init(m) < 0) goto fail;
    if (lpy_remote_init(m) < 0) goto fail;
    if (lpy_record_init(m) < 0) goto fail;
    if (lpy_stream_export_init(m) < 0) goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
