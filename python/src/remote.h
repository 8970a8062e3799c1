/* What the remote parts of the extension share: the client object that
 * rfile.c and ring.c read through. */
#ifndef LUMIO_PY_REMOTE_H
#define LUMIO_PY_REMOTE_H

#include "ext.h"

/* lumio._lumio.RemoteClient: a lumio_remote, shared by threads without a
 * lock (the C client is thread-safe). In a forked child the first use makes
 * a client of the child's own from the same options; the parent's, whose
 * thread is not in the child, is never touched there. */
typedef struct {
    PyObject_HEAD lumio_remote *rm;
    pid_t pid;
    lumio_remote_options o;
} lpy_client;

extern PyTypeObject lpy_client_type;

/* The client's handle for this process (made anew after a fork), or NULL
 * with an exception set. Call with the GIL held. */
lumio_remote *lpy_client_handle(lpy_client *c);

/* The part size reads are split into (the option, or the C default). */
uint64_t lpy_client_part_size(const lpy_client *c);

/* Raise for a failed call on the client (its text names the URL). */
PyObject *lpy_client_fail(lumio_remote *rm, int64_t rc);

int lpy_rfile_init(PyObject *m);
int lpy_ring_init(PyObject *m);

#endif
