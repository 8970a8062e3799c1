/* lumio._lumio.read_ranges: many ranges of many files (local or remote) as
 * one group on a lumio_ring, one op per distinct path, its ranges coalesced
 * by the engine.
 *
 * Results expose the ring's pool buffers without a copy (a PoolBuffer
 * releases its buffer when the last view of it goes); ranges below a page
 * are copied instead, as a view would pin a buffer of at least a page (and
 * for a coalesced range, the whole merged read). Each call has a ring of its
 * own (about 40 us to make): buffers a caller keeps from one call never
 * starve the pool of the next, a call never waits on another thread's, and
 * Ctrl-C closes that ring, which cancels what it has in flight. */
#include "remote.h"

#include <errno.h>
#include <string.h>

enum { COPY_BELOW = 4096, BATCH = 64 };

/* ---- a pool buffer as a Python buffer --------------------------------------- */

typedef struct {
    PyObject_HEAD lumio_buffer *b;
    const uint8_t *data;
    Py_ssize_t len;
    pid_t pid;
} PoolBuffer;

static int pool_getbuffer(PoolBuffer *p, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)p, (void *)p->data, p->len, 1, flags);
}

static void pool_dealloc(PoolBuffer *p) {
    /* A forked child has a copy of the memory but not the pool's threads,
     * whose locks it must not take: the child leaves the buffer be. */
    if (p->pid == getpid()) lumio_buffer_release(p->b);
    PyObject_Free(p);
}

static PyBufferProcs pool_as_buffer = {(getbufferproc)pool_getbuffer, NULL};

static PyTypeObject pool_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lumio._lumio.PoolBuffer",
    .tp_basicsize = sizeof(PoolBuffer),
    .tp_dealloc = (destructor)pool_dealloc,
    .tp_as_buffer = &pool_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A range read by the ring, in its pool's memory (read-only); given back when freed.",
};

/* A completion's data as a read-only memoryview; the pool buffer is the
 * view's (or released here, for a copy). */
static PyObject *result_of(lumio_completion *c) {
    PyObject *owner;
    if (!c->buffer || c->length < COPY_BELOW) {
        owner = PyBytes_FromStringAndSize((const char *)c->data, (Py_ssize_t)c->length);
        lumio_buffer_release(c->buffer);
    } else {
        PoolBuffer *p = PyObject_New(PoolBuffer, &pool_type);
        if (!p) {
            lumio_buffer_release(c->buffer);
            return NULL;
        }
        p->b = c->buffer;
        p->data = c->data;
        p->len = (Py_ssize_t)c->length;
        p->pid = getpid();
        owner = (PyObject *)p;
    }
    c->buffer = NULL;
    if (!owner) return NULL;
    PyObject *view = PyMemoryView_FromObject(owner);
    Py_DECREF(owner);
    return view;
}

/* ---- the submission ------------------------------------------------------------ */

/* A range longer than a piece (the client's part size) is read into memory
 * of its own, a bytes object, as pieces that complete one by one: the ring
 * delivers whole ranges only, so a piece is what bounds the wait for
 * Ctrl-C, and the result needs no pool buffer (nor a copy). */
typedef struct {
    lumio_ring *r;
    uint64_t group;
    Py_ssize_t n;
    PyObject **own; /* per item: the bytes a long range lands in, until delivered */
    uint64_t *left; /* per item: its pieces not yet completed */
} job;

/* The items grouped per path: ranges[] holds each op's ranges in a row,
 * their user_data the item's index. */
typedef struct {
    lumio_range *ranges;
    lumio_op *ops;
    size_t *first; /* per op: where its ranges start */
    size_t *count;
    size_t *opi;     /* per item: its op */
    PyObject *paths; /* dict: path -> op index */
    size_t nops;
    long long *off, *len; /* per item */
    uint64_t piece;
} plan;

static void plan_free(plan *p) {
    PyMem_Free(p->ranges);
    PyMem_Free(p->ops);
    PyMem_Free(p->first);
    PyMem_Free(p->count);
    PyMem_Free(p->opi);
    PyMem_Free(p->off);
    PyMem_Free(p->len);
    Py_XDECREF(p->paths);
}

static uint64_t pieces_of(const plan *p, long long len) {
    if (len < 0 || (uint64_t)len <= p->piece) return 1;
    return ((uint64_t)len + p->piece - 1) / p->piece;
}

/* Item i, (path, offset, length) with length -1 to the end of the file:
 * its op (one per path) and its count of ranges; a long one gets its
 * memory. */
static int plan_item(plan *p, job *j, PyObject *item, size_t i) {
    PyObject *path;
    long long off, len;
    if (!PyTuple_Check(item) ||
        !PyArg_ParseTuple(item, "ULL;an item is (path, offset, length)", &path, &off, &len)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "an item is (path, offset, length)");
        return -1;
    }
    if (len < -1) {
        PyErr_Format(PyExc_ValueError, "item %zu: a negative length (%lld)", i, len);
        return -1;
    }
    PyObject *k = PyDict_GetItemWithError(p->paths, path);
    if (!k && PyErr_Occurred()) return -1;
    size_t op = k ? PyLong_AsSize_t(k) : p->nops;
    if (!k) {
        PyObject *v = PyLong_FromSize_t(op);
        if (!v || PyDict_SetItem(p->paths, path, v) < 0) {
            Py_XDECREF(v);
            return -1;
        }
        Py_DECREF(v);
        const char *s = PyUnicode_AsUTF8(path); /* kept by the dict until submitted */
        if (!s) return -1;
        p->ops[op] = (lumio_op){.kind = LUMIO_OP_GET, .path = s, .user_data = i};
        p->nops++;
    }
    uint64_t np = pieces_of(p, len);
    if (np > 1 && !(j->own[i] = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)len))) return -1;
    j->left[i] = np;
    p->opi[i] = op;
    p->count[op] += np;
    p->off[i] = off;
    p->len[i] = len;
    return 0;
}

/* Item i's ranges at dst: one, or its pieces into its own memory. */
static void plan_ranges(const plan *p, const job *j, size_t i, lumio_range *dst) {
    long long off = p->off[i], len = p->len[i];
    if (!j->own[i]) {
        *dst = (lumio_range){
            .offset = off, .length = len < 0 ? LUMIO_WHOLE : (uint64_t)len, .user_data = i};
        return;
    }
    uint8_t *mem = (uint8_t *)PyBytes_AS_STRING(j->own[i]);
    for (uint64_t k = 0, at = 0; at < (uint64_t)len; k++, at += p->piece)
        dst[k] =
            (lumio_range){.offset = off + (long long)at,
                          .length = (uint64_t)len - at < p->piece ? (uint64_t)len - at : p->piece,
                          .user_data = i,
                          .buf = mem + at};
}

static int plan_make(plan *p, job *j, PyObject *fast, size_t n) {
    p->ops = PyMem_Calloc(n, sizeof *p->ops);
    p->first = PyMem_Calloc(n, sizeof *p->first);
    p->count = PyMem_Calloc(n, sizeof *p->count);
    p->opi = PyMem_Calloc(n, sizeof *p->opi);
    p->off = PyMem_Calloc(n, sizeof *p->off);
    p->len = PyMem_Calloc(n, sizeof *p->len);
    j->own = PyMem_Calloc(n, sizeof *j->own);
    j->left = PyMem_Calloc(n, sizeof *j->left);
    if (!(p->paths = PyDict_New())) return -1;
    if (!p->ops || !p->first || !p->count || !p->opi || !p->off || !p->len || !j->own || !j->left) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (plan_item(p, j, PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i), i) < 0) return -1;
    size_t total = 0;
    for (size_t k = 0; k < p->nops; k++) {
        p->first[k] = total;
        total += p->count[k];
    }
    if (!(p->ranges = PyMem_Calloc(total, sizeof *p->ranges))) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t k = 0; k < p->nops; k++) {
        p->ops[k].ranges = &p->ranges[p->first[k]];
        p->ops[k].nranges = p->count[k];
        p->count[k] = 0; /* refilled below as the place of the next range */
    }
    for (size_t i = 0; i < n; i++) {
        size_t op = p->opi[i];
        plan_ranges(p, j, i, &p->ranges[p->first[op] + p->count[op]]);
        p->count[op] += j->left[i];
    }
    return 0;
}

/* Close the ring: what it has in flight is canceled (remote requests too);
 * buffers already handed out stay valid. */
static void job_close(job *j) {
    lumio_ring *r = j->r;
    j->r = NULL;
    if (!r) return;
    Py_BEGIN_ALLOW_THREADS
    lumio_ring_close(r);
    Py_END_ALLOW_THREADS
}

/* Close the ring, then free what the items own (the ring writes no more). */
static void job_free(job *j) {
    job_close(j);
    for (Py_ssize_t i = 0; j->own && i < j->n; i++) Py_XDECREF(j->own[i]);
    PyMem_Free(j->own);
    PyMem_Free(j->left);
    j->own = NULL;
    j->left = NULL;
}

static PyObject *ring_fail(lumio_ring *r, int rc) {
    char err[LUMIO_ERROR_MAX];
    return lpy_raise(rc, lumio_ring_last_error(r, err, sizeof err));
}

/* A ring through the client (None: made by the ring if a URL needs one),
 * and the items submitted on it as one group delivered as they land.
 * Unbounded: the pool takes as much as the ranges need (a list keeps every
 * result anyway); bounded: the ring's default caps. */
static int job_start(job *j, PyObject *client, PyObject *items, bool bounded) {
    memset(j, 0, sizeof *j);
    PyObject *fast = PySequence_Fast(items, "items must be a sequence of (path, offset, length)");
    if (!fast) return -1;
    size_t n = (size_t)PySequence_Fast_GET_SIZE(fast);
    j->n = (Py_ssize_t)n;
    if (n == 0) {
        Py_DECREF(fast);
        return 0;
    }
    plan p = {.piece = client == Py_None ? 8u << 20 : lpy_client_part_size((lpy_client *)client)};
    int rc = plan_make(&p, j, fast, n);
    lumio_ring_options o = {0};
    if (rc == 0 && client != Py_None && !(o.remote = lpy_client_handle((lpy_client *)client)))
        rc = -1;
    if (rc == 0) {
        if (!bounded) {
            o.max_buffers = n < UINT32_MAX - 64 ? (unsigned)n + 64 : UINT32_MAX;
            o.max_bytes = 1ull << 62;
        }
        lumio_group_options go = {.in_order = -1};
        Py_BEGIN_ALLOW_THREADS
        rc = lumio_ring_create(&j->r, &o);
        if (rc == 0) rc = lumio_ring_submit(j->r, p.ops, p.nops, &go, &j->group);
        Py_END_ALLOW_THREADS
        if (rc < 0) ring_fail(j->r, rc);
    }
    if (rc < 0) job_free(j);
    plan_free(&p);
    Py_DECREF(fast);
    return rc < 0 ? -1 : 0;
}

/* Up to BATCH completions (at least one), the GIL released while waiting;
 * 0 once the group has ended; -1 with an exception (the ring closed). */
static int job_wait(job *j, lumio_completion *cs) {
    int got;
    Py_BEGIN_ALLOW_THREADS
    got = lumio_ring_wait(j->r, j->group, cs, BATCH, 1);
    Py_END_ALLOW_THREADS
    if (got < 0) {
        ring_fail(j->r, got);
        job_close(j);
        return -1;
    }
    return got;
}

/* The first failure of a batch raised (its text names the path and range),
 * after every buffer of the batch is given back and the ring closed. */
static int batch_error(job *j, lumio_completion *cs, int got) {
    int code = 0;
    char text[LUMIO_ERROR_MAX];
    for (int i = 0; i < got; i++) {
        if (cs[i].result < 0 && !code) {
            code = cs[i].result;
            lumio_completion_describe(&cs[i], text, sizeof text);
        }
        lumio_buffer_release(cs[i].buffer);
        cs[i].buffer = NULL;
    }
    job_close(j);
    lpy_raise(code, text);
    return -1;
}

static bool batch_failed(const lumio_completion *cs, int got) {
    for (int i = 0; i < got; i++)
        if (cs[i].result < 0) return true;
    return false;
}

/* Every completion of the batch into out: a list (at the item's index) or,
 * with out a list of pairs, appended as (index, view). 1 when the group has
 * ended, 0 when more is to come, -1 with an exception. */
static int batch_take(job *j, lumio_completion *cs, int got, PyObject *out, bool pairs) {
    if (batch_failed(cs, got)) return batch_error(j, cs, got);
    int ended = 0;
    for (int i = 0; i < got; i++) {
        lumio_completion *c = &cs[i];
        ended |= (c->flags & LUMIO_CQE_GROUP_END) != 0;
        if (c->range_index == LUMIO_NO_RANGE) continue; /* an op's, not a range's */
        PyObject **own = &j->own[c->user_data], *v;
        if (*own) { /* a piece of a long range: the range is done with its last */
            if (--j->left[c->user_data]) continue;
            v = PyMemoryView_FromObject(*own);
            Py_CLEAR(*own);
        } else {
            v = result_of(c);
        }
        int rc = -1;
        if (v && pairs) {
            PyObject *t = Py_BuildValue("(KN)", (unsigned long long)c->user_data, v);
            rc = t ? PyList_Append(out, t) : -1;
            Py_XDECREF(t);
        } else if (v) {
            rc = PyList_SetItem(out, (Py_ssize_t)c->user_data, v);
        }
        if (rc < 0) {
            for (int k = i + 1; k < got; k++) lumio_buffer_release(cs[k].buffer);
            job_close(j);
            return -1;
        }
    }
    return ended;
}

/* Wait for the whole group into a list in the items' order. */
static PyObject *collect_all(job *j) {
    PyObject *list = PyList_New(j->n);
    if (!list) goto fail;
    for (Py_ssize_t i = 0; i < j->n; i++) PyList_SET_ITEM(list, i, Py_NewRef(Py_None));
    lumio_completion cs[BATCH];
    for (;;) {
        int got = job_wait(j, cs);
        if (got < 0) goto fail;
        int ended = got ? batch_take(j, cs, got, list, false) : 1;
        if (ended < 0) goto fail;
        if (ended) break;
        if (PyErr_CheckSignals() < 0) goto fail; /* Ctrl-C: the ring is closed below */
    }
    for (Py_ssize_t i = 0; i < j->n; i++)
        if (PyList_GET_ITEM(list, i) == Py_None) {
            PyErr_Format(PyExc_RuntimeError, "read_ranges: item %zd was never completed", i);
            goto fail;
        }
    job_free(j);
    return list;
fail:
    job_free(j); /* cancels what is in flight */
    Py_XDECREF(list);
    return NULL;
}

/* ---- results as they land ------------------------------------------------------ */

typedef struct {
    PyObject_HEAD lpy_guard g;
    job j;
    PyObject *ready; /* list of (index, view) not yet handed out */
    Py_ssize_t next;
    bool ended;
    PyObject *client;
} RangeIter;

static void iter_dealloc(RangeIter *it) {
    if (it->g.pid != getpid()) it->j.r = NULL; /* the parent's ring */
    job_free(&it->j);
    lpy_guard_fini(&it->g);
    Py_XDECREF(it->ready);
    Py_XDECREF(it->client);
    PyObject_Free(it);
}

/* Refill ready from the ring. -1 with an exception (the ring closed). */
static int iter_fill(RangeIter *it) {
    lumio_completion cs[BATCH];
    Py_CLEAR(it->ready);
    it->next = 0;
    if (!(it->ready = PyList_New(0))) return -1;
    while (!it->ended && PyList_GET_SIZE(it->ready) == 0) {
        int got = job_wait(&it->j, cs);
        if (got < 0) return -1;
        int ended = got ? batch_take(&it->j, cs, got, it->ready, true) : 1;
        if (ended < 0) return -1;
        if (ended) {
            it->ended = true;
            job_close(&it->j);
        } else if (PyErr_CheckSignals() < 0) {
            job_close(&it->j);
            return -1;
        }
    }
    return 0;
}

static PyObject *iter_next(RangeIter *it) {
    if (lpy_guard_check(&it->g) < 0) return NULL;
    if (lpy_guard_enter(&it->g)) {
        it->j.r = NULL; /* the parent's ring: not ours to drive or close */
        lpy_guard_leave(&it->g);
        PyErr_SetString(PyExc_ValueError, "read_ranges: results made before a fork");
        return NULL;
    }
    bool empty = !it->ready || it->next >= PyList_GET_SIZE(it->ready);
    if (empty && !it->ended && (!it->j.r || iter_fill(it) < 0)) it->ended = true;
    PyObject *r = NULL;
    if (it->ready && it->next < PyList_GET_SIZE(it->ready)) {
        /* Handed out, not kept: a view the caller drops gives its buffer back. */
        r = Py_NewRef(PyList_GET_ITEM(it->ready, it->next));
        PyList_SetItem(it->ready, it->next++, Py_NewRef(Py_None));
    }
    lpy_guard_leave(&it->g);
    return r; /* NULL without an exception: StopIteration */
}

static PyObject *iter_close(RangeIter *it, PyObject *unused) {
    (void)unused;
    if (lpy_guard_check(&it->g) < 0) return NULL;
    if (lpy_guard_enter(&it->g)) it->j.r = NULL;
    job_free(&it->j);
    it->ended = true;
    Py_CLEAR(it->ready);
    lpy_guard_leave(&it->g);
    Py_RETURN_NONE;
}

static PyMethodDef iter_methods[] = {
    {"close", (PyCFunction)iter_close, METH_NOARGS,
     "Cancel the ranges not yet delivered (those delivered stay valid)."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject iter_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lumio._lumio.RangeIter",
    .tp_basicsize = sizeof(RangeIter),
    .tp_dealloc = (destructor)iter_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "(index, memoryview) pairs of read_ranges as the ranges land.",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)iter_next,
    .tp_methods = iter_methods,
};

/* read_ranges(client, items, in_order) -> list, or a RangeIter. */
static PyObject *read_ranges(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *client, *items;
    int in_order;
    if (!PyArg_ParseTuple(args, "OOp", &client, &items, &in_order)) return NULL;
    if (client != Py_None && !PyObject_TypeCheck(client, &lpy_client_type))
        return PyErr_Format(PyExc_TypeError, "client must be a RemoteClient or None");
    if (in_order) {
        job j;
        if (job_start(&j, client, items, false) < 0) return NULL;
        return j.n ? collect_all(&j) : PyList_New(0);
    }
    RangeIter *it = PyObject_New(RangeIter, &iter_type);
    if (!it) return NULL;
    memset(&it->g, 0, sizeof *it - offsetof(RangeIter, g));
    it->client = Py_NewRef(client);
    if (lpy_guard_init(&it->g) < 0 || job_start(&it->j, client, items, true) < 0) {
        Py_DECREF(it);
        return NULL;
    }
    it->ended = it->j.n == 0;
    return (PyObject *)it;
}

static PyMethodDef functions[] = {
    {"read_ranges", read_ranges, METH_VARARGS,
     "read_ranges(client, items, in_order): items (path, offset, length) read as one group."},
    {NULL, NULL, 0, NULL}};

int lpy_ring_init(PyObject *m) {
    if (PyType_Ready(&pool_type) < 0 || PyType_Ready(&iter_type) < 0) return -1;
    return PyModule_AddFunctions(m, functions);
}
