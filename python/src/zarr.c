/* lumio._lumio.ZarrArray and ZarrSeries: lumio_zarr handles behind a lock,
 * made again in a forked child. The Python side (lumio/zarr.py) turns
 * selections into regions and makes the numpy arrays this fills. */
#include "ext.h"

#include <errno.h>
#include <string.h>

typedef struct {
    PyObject_HEAD lpy_guard g;
    lumio_zarr *z;
    PyObject *location; /* str */
    uint64_t cache_bytes;
    lumio_zarr_info info;
    bool closed;      /* close() was called */
    unsigned nseries; /* series open on it: it is theirs until they close */
} ZarrArray;

static PyObject *zarr_fail(ZarrArray *a, int rc) {
    char err[LUMIO_ERROR_MAX];
    return lpy_raise(rc, lumio_zarr_last_error(a ? a->z : NULL, err, sizeof err));
}

/* Open (again) the array at a->location: the GIL released. */
static int zarr_reopen(ZarrArray *a) {
    const char *loc = PyUnicode_AsUTF8(a->location);
    if (!loc) return -1;
    lumio_zarr_options o = {0};
    o.cache_bytes = a->cache_bytes;
    lumio_zarr *z = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = lumio_zarr_open(&z, loc, &o);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        zarr_fail(NULL, rc);
        return -1;
    }
    a->z = z;
    lumio_zarr_get_info(z, &a->info);
    return 0;
}

/* Take the array for one call: its lock, and in a forked child a handle of
 * its own (the parent's, whose threads are not here, is left as it is; a
 * reopen that fails is tried again at the next call). A series holds the
 * array while it is open (zarr.h): other calls then raise, unless `series`.
 * -1 with an exception set. */
static int zarr_enter_as(ZarrArray *a, bool series) {
    if (lpy_guard_check(&a->g) < 0) return -1;
    if (lpy_guard_enter(&a->g)) {
        a->z = NULL;    /* the parent's: never closed here */
        a->nseries = 0; /* (their handles are the parent's too) */
    }
    const char *why = a->closed ? "the array is closed"
                      : !series && a->nseries
                          ? "a series of this array is open: close it (or read it to its end) first"
                          : NULL;
    if (why) {
        lpy_guard_leave(&a->g);
        PyErr_SetString(a->closed ? PyExc_ValueError : PyExc_RuntimeError, why);
        return -1;
    }
    if (!a->z && zarr_reopen(a) < 0) {
        lpy_guard_leave(&a->g);
        return -1;
    }
    return 0;
}

static int zarr_enter(ZarrArray *a) {
    return zarr_enter_as(a, false);
}

static int zarr_init(ZarrArray *a, PyObject *args, PyObject *kw) {
    static char *names[] = {"location", "cache", NULL};
    PyObject *loc;
    unsigned long long cache = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "U|K", names, &loc, &cache)) return -1;
    if (a->g.lock) { /* __init__ again: not supported, the handle stays */
        PyErr_SetString(PyExc_TypeError, "ZarrArray is already open");
        return -1;
    }
    if (lpy_guard_init(&a->g) < 0) return -1;
    Py_INCREF(loc);
    a->location = loc;
    a->cache_bytes = cache;
    return zarr_reopen(a);
}

static void zarr_dealloc(ZarrArray *a) {
    /* A child closes only its own handle (made after the fork). */
    if (a->z && a->g.pid == getpid()) {
        Py_BEGIN_ALLOW_THREADS
        lumio_zarr_close(a->z);
        Py_END_ALLOW_THREADS
    }
    lpy_guard_fini(&a->g);
    Py_XDECREF(a->location);
    Py_TYPE(a)->tp_free((PyObject *)a);
}

static PyObject *dims(const uint64_t *v, unsigned n) {
    PyObject *t = PyTuple_New(n);
    for (unsigned i = 0; t && i < n; i++) PyTuple_SET_ITEM(t, i, PyLong_FromUnsignedLongLong(v[i]));
    return t;
}

static PyObject *zarr_info(ZarrArray *a, PyObject *unused) {
    (void)unused;
    if (lpy_guard_check(&a->g) < 0) return NULL;
    const lumio_zarr_info *in = &a->info;
    bool sharded = in->inner_chunks[0] != 0;
    PyObject *inner = sharded ? dims(in->inner_chunks, in->ndim) : Py_NewRef(Py_None);
    return Py_BuildValue(
        "{s:i,s:N,s:N,s:N,s:s,s:s,s:s,s:I,s:O,s:O,s:K}", "format", in->format, "shape",
        dims(in->shape, in->ndim), "chunks", dims(in->chunks, in->ndim), "inner_chunks", inner,
        "dtype", in->dtype, "codecs", in->codecs, "fill_value", in->fill_value, "itemsize",
        in->itemsize, "big_endian", in->big_endian ? Py_True : Py_False, "fortran_order",
        in->fortran_order ? Py_True : Py_False, "nchunks", (unsigned long long)in->nchunks);
}

/* The region's bytes, or -1 (with ValueError) when they overflow. */
static int region_bytes(const lumio_zarr_info *in, const uint64_t *shape, uint64_t *bytes) {
    uint64_t n = in->itemsize;
    for (unsigned i = 0; i < in->ndim; i++)
        if (__builtin_mul_overflow(n, shape[i], &n)) {
            PyErr_SetString(PyExc_ValueError, "the region is larger than memory can hold");
            return -1;
        }
    *bytes = n;
    return 0;
}

/* A writable C-contiguous buffer of exactly `want` bytes. */
static int out_buffer(PyObject *out, Py_buffer *view, uint64_t want, bool writable) {
    int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(out, view, flags) < 0) return -1;
    if ((uint64_t)view->len != want) {
        PyErr_Format(PyExc_ValueError, "the buffer holds %zd bytes, the region %llu", view->len,
                     (unsigned long long)want);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* One region between the array and a buffer: read(start, shape, out) or
 * write(start, shape, data). */
static PyObject *zarr_region(ZarrArray *a, PyObject *args, bool write) {
    PyObject *start_o, *shape_o, *buf;
    if (!PyArg_ParseTuple(args, "OOO", &start_o, &shape_o, &buf)) return NULL;
    uint64_t start[LUMIO_ZARR_MAX_DIMS], shape[LUMIO_ZARR_MAX_DIMS], bytes;
    unsigned nd = a->info.ndim;
    if (lpy_u64s(start_o, "start", start, nd) < 0 || lpy_u64s(shape_o, "shape", shape, nd) < 0 ||
        region_bytes(&a->info, shape, &bytes) < 0)
        return NULL;
    Py_buffer view;
    if (out_buffer(buf, &view, bytes, !write) < 0) return NULL;
    if (zarr_enter(a) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = write ? lumio_zarr_write(a->z, start, shape, view.buf)
               : lumio_zarr_read(a->z, start, shape, view.buf);
    Py_END_ALLOW_THREADS
    PyObject *r = rc < 0 ? zarr_fail(a, rc) : Py_NewRef(Py_None);
    lpy_guard_leave(&a->g);
    PyBuffer_Release(&view);
    return r;
}

static PyObject *zarr_read(ZarrArray *a, PyObject *args) {
    return zarr_region(a, args, false);
}

static PyObject *zarr_write(ZarrArray *a, PyObject *args) {
    return zarr_region(a, args, true);
}

/* n regions of one shape: starts a C-contiguous buffer of n x ndim uint64,
 * out one of n x the region's bytes. */
static PyObject *zarr_read_batch(ZarrArray *a, PyObject *args) {
    PyObject *starts_o, *shape_o, *out;
    if (!PyArg_ParseTuple(args, "OOO", &starts_o, &shape_o, &out)) return NULL;
    uint64_t shape[LUMIO_ZARR_MAX_DIMS], bytes, total;
    unsigned nd = a->info.ndim;
    if (nd == 0) {
        PyErr_SetString(PyExc_ValueError, "read_batch: a 0-d array has no regions to batch");
        return NULL;
    }
    if (lpy_u64s(shape_o, "shape", shape, nd) < 0 || region_bytes(&a->info, shape, &bytes) < 0)
        return NULL;
    Py_buffer sv, ov;
    if (PyObject_GetBuffer(starts_o, &sv, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    size_t n = (size_t)sv.len / (nd * sizeof(uint64_t));
    if (sv.itemsize != 8 || (size_t)sv.len != n * nd * sizeof(uint64_t) ||
        __builtin_mul_overflow(bytes, (uint64_t)n, &total)) {
        PyBuffer_Release(&sv);
        PyErr_SetString(PyExc_ValueError, "starts: expected n x ndim 64-bit integers");
        return NULL;
    }
    if (out_buffer(out, &ov, total, true) < 0) {
        PyBuffer_Release(&sv);
        return NULL;
    }
    void **bufs = PyMem_Malloc((n ? n : 1) * sizeof *bufs);
    if (!bufs) {
        PyBuffer_Release(&sv);
        PyBuffer_Release(&ov);
        return PyErr_NoMemory();
    }
    for (size_t i = 0; i < n; i++) bufs[i] = (uint8_t *)ov.buf + i * bytes;
    PyObject *r = NULL;
    if (zarr_enter(a) == 0) {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = lumio_zarr_read_batch(a->z, n, sv.buf, shape, bufs);
        Py_END_ALLOW_THREADS
        r = rc < 0 ? zarr_fail(a, rc) : Py_NewRef(Py_None);
        lpy_guard_leave(&a->g);
    }
    PyMem_Free(bufs);
    PyBuffer_Release(&sv);
    PyBuffer_Release(&ov);
    return r;
}

static PyObject *zarr_attrs(ZarrArray *a, PyObject *unused) {
    (void)unused;
    if (zarr_enter(a) < 0) return NULL;
    const char *json = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = lumio_zarr_get_attrs(a->z, &json);
    Py_END_ALLOW_THREADS
    PyObject *r = rc < 0 ? zarr_fail(a, rc) : PyUnicode_FromString(json);
    lpy_guard_leave(&a->g);
    return r;
}

static PyObject *zarr_close_m(ZarrArray *a, PyObject *unused) {
    (void)unused;
    if (lpy_guard_check(&a->g) < 0) return NULL;
    bool child = lpy_guard_enter(&a->g);
    if (!child && a->nseries) {
        lpy_guard_leave(&a->g);
        PyErr_SetString(PyExc_RuntimeError,
                        "a series of this array is open: close it before the array");
        return NULL;
    }
    lumio_zarr *z = child ? NULL : a->z;
    a->z = NULL;
    a->closed = true;
    Py_BEGIN_ALLOW_THREADS
    lumio_zarr_close(z);
    Py_END_ALLOW_THREADS
    lpy_guard_leave(&a->g);
    Py_RETURN_NONE;
}

/* ---- series ---------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD ZarrArray *a; /* holds the array's lock while open */
    lumio_zarr_series *s;
    pid_t pid;
} ZarrSeries;

static PyObject *zarr_series(ZarrArray *a, PyObject *args) {
    unsigned axis, ahead;
    unsigned long long step;
    PyObject *start_o, *shape_o;
    if (!PyArg_ParseTuple(args, "IKOOI", &axis, &step, &start_o, &shape_o, &ahead)) return NULL;
    uint64_t start[LUMIO_ZARR_MAX_DIMS], shape[LUMIO_ZARR_MAX_DIMS];
    unsigned nd = a->info.ndim;
    if (lpy_u64s(start_o, "start", start, nd) < 0 || lpy_u64s(shape_o, "shape", shape, nd) < 0)
        return NULL;
    extern PyTypeObject lpy_series_type;
    ZarrSeries *s = PyObject_New(ZarrSeries, &lpy_series_type);
    if (!s) return NULL;
    s->a = NULL;
    s->s = NULL;
    s->pid = getpid();
    if (zarr_enter(a) < 0) {
        Py_DECREF(s);
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = lumio_zarr_series_open(&s->s, a->z, axis, step, start, shape, ahead);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        zarr_fail(a, rc);
        lpy_guard_leave(&a->g);
        Py_DECREF(s);
        return NULL;
    }
    a->nseries++;
    lpy_guard_leave(&a->g);
    s->a = (ZarrArray *)Py_NewRef(a);
    return (PyObject *)s;
}

/* The next slab copied into out (a writable buffer at least as large):
 * (index, bytes), or None at the end. */
static PyObject *series_next(ZarrSeries *s, PyObject *out) {
    if (!s->s || s->pid != getpid()) {
        PyErr_SetString(PyExc_ValueError, "the series is closed (or was made before a fork)");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(out, &view, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) return NULL;
    ZarrArray *a = s->a;
    if (zarr_enter_as(a, true) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const void *data = NULL;
    uint64_t index = 0;
    int64_t n;
    Py_BEGIN_ALLOW_THREADS
    n = lumio_zarr_series_next(s->s, &data, &index);
    if (n > 0 && (uint64_t)n <= (uint64_t)view.len) memcpy(view.buf, data, (size_t)n);
    Py_END_ALLOW_THREADS
    PyObject *r;
    if (n < 0)
        r = zarr_fail(a, (int)n);
    else if (n == 0)
        r = Py_NewRef(Py_None);
    else if ((uint64_t)n > (uint64_t)view.len)
        r = PyErr_Format(PyExc_ValueError, "a slab of %lld bytes does not fit the buffer",
                         (long long)n);
    else
        r = Py_BuildValue("(KL)", (unsigned long long)index, (long long)n);
    lpy_guard_leave(&a->g);
    PyBuffer_Release(&view);
    return r;
}

static void series_close_handle(ZarrSeries *s) {
    if (s->s && s->pid == getpid() && s->a && s->a->g.owner != PyThread_get_thread_ident()) {
        bool child = lpy_guard_enter(&s->a->g);
        if (!child) {
            Py_BEGIN_ALLOW_THREADS
            lumio_zarr_series_close(s->s);
            Py_END_ALLOW_THREADS
            if (s->a->nseries) s->a->nseries--;
        }
        lpy_guard_leave(&s->a->g);
    }
    s->s = NULL;
}

static PyObject *series_close(ZarrSeries *s, PyObject *unused) {
    (void)unused;
    series_close_handle(s);
    Py_RETURN_NONE;
}

static void series_dealloc(ZarrSeries *s) {
    series_close_handle(s);
    Py_XDECREF(s->a);
    PyObject_Free(s);
}

static PyMethodDef series_methods[] = {
    {"next", (PyCFunction)series_next, METH_O,
     "next(out) -> (index, nbytes) or None: the next slab copied into out."},
    {"close", (PyCFunction)series_close, METH_NOARGS, "Stop reading ahead."},
    {NULL, NULL, 0, NULL}};

PyTypeObject lpy_series_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lumio._lumio.ZarrSeries",
    .tp_basicsize = sizeof(ZarrSeries),
    .tp_dealloc = (destructor)series_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Slabs of a Zarr array in order (use lumio.zarr.Array.series).",
    .tp_methods = series_methods,
};

static PyMethodDef zarr_methods[] = {
    {"info", (PyCFunction)zarr_info, METH_NOARGS, "The array's metadata as a dict."},
    {"read", (PyCFunction)zarr_read, METH_VARARGS,
     "read(start, shape, out): the region into out's buffer (C order, stored byte order)."},
    {"write", (PyCFunction)zarr_write, METH_VARARGS,
     "write(start, shape, data): the region from data's buffer."},
    {"read_batch", (PyCFunction)zarr_read_batch, METH_VARARGS,
     "read_batch(starts, shape, out): n regions of one shape into out, read together."},
    {"series", (PyCFunction)zarr_series, METH_VARARGS,
     "series(axis, step, start, shape, ahead) -> ZarrSeries."},
    {"attrs", (PyCFunction)zarr_attrs, METH_NOARGS, "The user attributes as JSON text."},
    {"close", (PyCFunction)zarr_close_m, METH_NOARGS, "Free the handle; the array stays."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject zarr_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lumio._lumio.ZarrArray",
    .tp_basicsize = sizeof(ZarrArray),
    .tp_dealloc = (destructor)zarr_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A Zarr array's C handle (use lumio.zarr.open).",
    .tp_methods = zarr_methods,
    .tp_init = (initproc)zarr_init,
    .tp_new = PyType_GenericNew,
};

/* ---- create and rechunk ---------------------------------------------------- */

/* The create options from Python's arguments (already checked there). */
static int create_options(lumio_zarr_create_options *o, PyObject *shape, PyObject *chunks,
                          const char *dtype, const char *codec, int format, int fortran,
                          const char *fill, PyObject *shards, int checksum) {
    Py_ssize_t nd = shape ? PySequence_Size(shape) : PySequence_Size(chunks);
    if (nd < 0) return -1;
    if (nd < 1 || nd > LUMIO_ZARR_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "an array has 1 to %d dimensions", LUMIO_ZARR_MAX_DIMS);
        return -1;
    }
    o->ndim = (unsigned)nd;
    if ((shape && lpy_u64s(shape, "shape", o->shape, o->ndim) < 0) ||
        lpy_u64s(chunks, "chunks", o->chunks, o->ndim) < 0)
        return -1;
    if (shards != Py_None && lpy_u64s(shards, "shards", o->shard, o->ndim) < 0) return -1;
    o->dtype = dtype;
    o->codec = codec;
    o->format = format;
    o->fortran_order = fortran;
    o->fill_value = fill;
    o->checksum = checksum;
    return 0;
}

static PyObject *zarr_create_f(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *names[] = {"location", "shape",      "chunks", "dtype",    "codec", "format",
                            "fortran",  "fill_value", "shards", "checksum", "attrs", NULL};
    const char *loc, *dtype, *codec = NULL, *fill = NULL, *attrs = NULL;
    PyObject *shape, *chunks, *shards = Py_None;
    int format = 0, fortran = 0, checksum = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sOOs|zipzOpz", names, &loc, &shape, &chunks, &dtype,
                                     &codec, &format, &fortran, &fill, &shards, &checksum, &attrs))
        return NULL;
    lumio_zarr_create_options o = {0};
    if (create_options(&o, shape, chunks, dtype, codec, format, fortran, fill, shards, checksum) <
        0)
        return NULL;
    o.attrs = attrs;
    lumio_zarr *z = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = lumio_zarr_create(&z, loc, &o, NULL);
    lumio_zarr_close(z);
    Py_END_ALLOW_THREADS
    if (rc < 0) return zarr_fail(NULL, rc);
    Py_RETURN_NONE;
}

static PyObject *zarr_rechunk_f(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *names[] = {"src",     "dst",    "chunks",   "codec",  "format",
                            "fortran", "shards", "checksum", "memory", NULL};
    const char *src, *dst, *codec = NULL;
    PyObject *chunks, *shards = Py_None;
    int format = 0, fortran = 0, checksum = 0;
    unsigned long long memory = 512ull << 20;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ssO|zipOpK", names, &src, &dst, &chunks, &codec,
                                     &format, &fortran, &shards, &checksum, &memory))
        return NULL;
    lumio_zarr_create_options o = {0};
    if (create_options(&o, NULL, chunks, NULL, codec, format, fortran, NULL, shards, checksum) < 0)
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = lumio_zarr_rechunk(src, dst, &o, NULL, memory, NULL, NULL);
    Py_END_ALLOW_THREADS
    if (rc < 0) return zarr_fail(NULL, rc);
    Py_RETURN_NONE;
}

/* A group read whole: {format, listed, attrs (JSON text), members: [(name, kind)]}. */
static PyObject *zarr_group_f(PyObject *self, PyObject *args) {
    (void)self;
    const char *loc;
    if (!PyArg_ParseTuple(args, "s", &loc)) return NULL;
    lumio_zarr_group *g = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = lumio_zarr_group_open(&g, loc, NULL);
    Py_END_ALLOW_THREADS
    if (rc < 0) return zarr_fail(NULL, rc);
    size_t n = lumio_zarr_group_count(g);
    PyObject *members = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; members && i < n; i++) {
        lumio_zarr_node kind;
        const char *name = lumio_zarr_group_member(g, i, &kind);
        PyObject *m = Py_BuildValue("(ss)", name, kind == LUMIO_ZARR_ARRAY ? "array" : "group");
        if (!m) {
            Py_CLEAR(members);
            break;
        }
        PyList_SET_ITEM(members, (Py_ssize_t)i, m);
    }
    PyObject *r = members ? Py_BuildValue("{s:i,s:O,s:s,s:N}", "format", lumio_zarr_group_format(g),
                                          "listed", lumio_zarr_group_listed(g) ? Py_True : Py_False,
                                          "attrs", lumio_zarr_group_attrs(g), "members", members)
                          : NULL;
    lumio_zarr_group_close(g);
    return r;
}

static PyMethodDef zarr_functions[] = {
    {"zarr_group", (PyCFunction)zarr_group_f, METH_VARARGS,
     "zarr_group(location) -> dict (use lumio.zarr.open_group)."},
    {"zarr_create", (PyCFunction)(void (*)(void))zarr_create_f, METH_VARARGS | METH_KEYWORDS,
     "zarr_create(location, shape, chunks, dtype, codec, format, fortran, fill_value, shards, "
     "checksum): a new array (use lumio.zarr.create)."},
    {"zarr_rechunk", (PyCFunction)(void (*)(void))zarr_rechunk_f, METH_VARARGS | METH_KEYWORDS,
     "zarr_rechunk(src, dst, chunks, codec, format, fortran, shards, checksum, memory) "
     "(use lumio.zarr.rechunk)."},
    {NULL, NULL, 0, NULL}};

int lpy_zarr_init(PyObject *m) {
    if (PyModule_AddFunctions(m, zarr_functions) < 0) return -1;
    if (PyType_Ready(&zarr_type) < 0 || PyType_Ready(&lpy_series_type) < 0) return -1;
    if (PyModule_AddObjectRef(m, "ZarrArray", (PyObject *)&zarr_type) < 0) return -1;
    return 0;
}
