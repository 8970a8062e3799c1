/* The extension's shared parts: errors, the lock and fork guard each object
 * holds, helpers for sequences and buffers. Only lumio's public headers. */
#ifndef LUMIO_PY_EXT_H
#define LUMIO_PY_EXT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <lumio/lumio.h>
#include <lumio/remote.h>
#include <lumio/ring.h>
#include <lumio/stream.h>
#include <lumio/zarr.h>

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

/* Raise the exception for code (docs/PYTHON.md) with text as its message
 * (lumio's own text when given, else lumio_strerror). Returns NULL. */
PyObject *lpy_raise(int code, const char *text);

/* The lumio.Error type (an OSError with .code), made at module init. */
extern PyObject *lpy_error;

/* Each object's guard: a lock taken around every call on its C handle (the
 * handles are single-threaded), and the process that made the handle, so
 * that a forked child makes its own (docs/PYTHON.md, "Fork"). */
typedef struct lpy_guard {
    PyThread_type_lock lock;
    pid_t pid;
    unsigned long owner; /* the thread holding the lock (0: none) */
} lpy_guard;

/* Before lpy_guard_enter: -1 with ValueError for an object whose __init__
 * never ran, or RuntimeError for a call made while this thread already
 * holds the object (from Python code the call itself ran: a callback, a
 * __hash__), which would otherwise wait for itself forever. */
int lpy_guard_check(lpy_guard *g);

int lpy_guard_init(lpy_guard *g);
void lpy_guard_fini(lpy_guard *g);
/* Take the lock, the GIL released while waiting; returns true when the
 * caller is in a child of the process that made the handle (then the
 * handle must be made anew: the lock is a new one already). */
bool lpy_guard_enter(lpy_guard *g);
void lpy_guard_leave(lpy_guard *g);

/* A sequence of n non-negative integers into out (uint64), or -1 with
 * TypeError/ValueError/OverflowError set. */
int lpy_u64s(PyObject *seq, const char *what, uint64_t *out, size_t n);

/* Module parts. */
int lpy_zarr_init(PyObject *m);
int lpy_stream_init(PyObject *m); /* the writer (stream.c), then the reader: */
int lpy_stream_reader_init(PyObject *m);
/* A stream's sink or source: a str into *name, or an int into *fd (then
 * *name is NULL). -1 with an exception set. */
int lpy_stream_target(PyObject *o, const char **name, int *fd);
int lpy_remote_init(PyObject *m);
int lpy_stream_export_init(PyObject *m); /* stream_export.c */
int lpy_record_init(PyObject *m);        /* the recorder (record.c, record_sampler.c) */

#endif
