/* lumio._lumio's recorder functions (lumio/record.py is their front): the
 * one recorder of the process, its writer, the dump signal and fork. The
 * sampling itself is record_sampler.c. */
#include "record.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

enum { IDLE, RUNNING, STOPPING };

static struct {
    int state;
    lumio_stream_writer *w;
    rec_sampler s;
    int signum; /* 0: no dump signal */
    struct sigaction old;
    uint64_t start_us;
} R;

/* What the signal handler sees: the writer, and how many handlers are
 * inside it (stop waits for none before closing the writer). */
static _Atomic(lumio_stream_writer *) sig_writer;
static atomic_int sig_busy;

/* A dump (seal the current chunk at once, on the writer's thread), then
 * the handler that was there before, if it was a function. */
static void on_dump_signal(int sig, siginfo_t *si, void *uc) {
    int saved = errno;
    atomic_fetch_add(&sig_busy, 1);
    lumio_stream_writer *w = atomic_load(&sig_writer);
    if (w) lumio_stream_writer_dump(w);
    if (R.old.sa_flags & SA_SIGINFO) {
        if (R.old.sa_sigaction) R.old.sa_sigaction(sig, si, uc);
    } else if (R.old.sa_handler != SIG_DFL && R.old.sa_handler != SIG_IGN) {
        R.old.sa_handler(sig);
    }
    atomic_fetch_sub(&sig_busy, 1);
    errno = saved;
}

static int signal_install(int signum) {
    struct sigaction sa = {.sa_sigaction = on_dump_signal, .sa_flags = SA_SIGINFO | SA_RESTART};
    sigemptyset(&sa.sa_mask);
    atomic_store(&sig_writer, R.w);
    if (sigaction(signum, &sa, &R.old) < 0) {
        atomic_store(&sig_writer, NULL);
        return -errno;
    }
    R.signum = signum;
    return 0;
}

/* The previous handler back, unless the program has set another since
 * (then it stays); then wait for a handler still running on another thread. */
static void signal_restore(void) {
    if (!R.signum) return;
    struct sigaction now;
    if (sigaction(R.signum, NULL, &now) == 0 && (now.sa_flags & SA_SIGINFO) &&
        now.sa_sigaction == on_dump_signal)
        sigaction(R.signum, &R.old, NULL);
    atomic_store(&sig_writer, NULL);
    while (atomic_load(&sig_busy)) {
        struct timespec t = {0, 100000};
        nanosleep(&t, NULL);
    }
    R.signum = 0;
}

/* The records every recording starts with: (key, value) str pairs. */
static int write_records(PyObject *records, uint64_t ts) {
    PyObject *fast = PySequence_Fast(records, "records must be a sequence of (key, value)");
    if (!fast) return -1;
    int rc = 0;
    for (Py_ssize_t i = 0; rc == 0 && i < PySequence_Fast_GET_SIZE(fast); i++) {
        const char *k, *v;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "ss", &k, &v)) {
            rc = -1;
        } else if ((rc = lumio_stream_writer_write_meta(R.w, ts, k, v)) < 0) {
            char err[LUMIO_ERROR_MAX];
            lpy_raise(rc, lumio_stream_writer_last_error(R.w, err, sizeof err));
            rc = -1;
        }
    }
    Py_DECREF(fast);
    return rc;
}

static int open_writer(PyObject *sink_o, const char *flush) {
    const char *sink;
    int fd;
    if (lpy_stream_target(sink_o, &sink, &fd) < 0) return -1;
    lumio_stream_writer_options o = {0};
    char err[LUMIO_ERROR_MAX];
    if (lumio_stream_flush_policy(flush, &o) < 0) {
        PyErr_SetString(PyExc_ValueError, lumio_stream_writer_last_error(NULL, err, sizeof err));
        return -1;
    }
    o.dump_thread = 1; /* a dump seals at once, whatever the sampler is doing */
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc =
        sink ? lumio_stream_writer_open(&R.w, sink, &o) : lumio_stream_writer_open_fd(&R.w, fd, &o);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        lpy_raise(rc, lumio_stream_writer_last_error(NULL, err, sizeof err));
        return -1;
    }
    return 0;
}

static void close_writer(void) {
    lumio_stream_writer *w = R.w;
    R.w = NULL;
    Py_BEGIN_ALLOW_THREADS
    lumio_stream_writer_close(w);
    Py_END_ALLOW_THREADS
}

static PyObject *record_start(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *names[] = {"sink", "rate", "flush", "records", "signum", "hide", NULL};
    PyObject *sink, *records, *hide = NULL;
    double rate;
    const char *flush;
    int signum;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OdsOi|O!", names, &sink, &rate, &flush, &records,
                                     &signum, &PyTuple_Type, &hide))
        return NULL;
    if (hide && PyTuple_GET_SIZE(hide) > REC_MAX_HIDE)
        return PyErr_Format(PyExc_ValueError, "hide: at most %d code objects", REC_MAX_HIDE);
    if (R.state != IDLE)
        return PyErr_Format(PyExc_RuntimeError, "lumio.record: a recorder is already running in "
                                                "this process (stop it first)");
    if (!(rate > 0 && rate <= 10000))
        return PyErr_Format(PyExc_ValueError, "rate must be above 0 and at most 10000 Hz");
    if (signum < 0 || signum >= NSIG || signum == SIGKILL || signum == SIGSTOP)
        return PyErr_Format(PyExc_ValueError, "signal %d cannot be the dump signal", signum);
    if (open_writer(sink, flush) < 0) return NULL;
    R.start_us = lpy_monotonic_us();
    if (write_records(records, R.start_us) < 0) {
        close_writer();
        return NULL;
    }
    R.s = (rec_sampler){.w = R.w,
                        .interp = PyThreadState_GetInterpreter(PyThreadState_Get()),
                        .period_ns = (uint64_t)llround(1e9 / rate)};
    for (Py_ssize_t i = 0; hide && i < PyTuple_GET_SIZE(hide); i++)
        R.s.hide[R.s.nhide++] = Py_NewRef(PyTuple_GET_ITEM(hide, i));
    int rc = lpy_sampler_start(&R.s);
    if (rc == 0 && signum && (rc = signal_install(signum)) < 0) {
        Py_BEGIN_ALLOW_THREADS
        lpy_sampler_join(&R.s);
        Py_END_ALLOW_THREADS
    }
    if (rc < 0) {
        lpy_sampler_free(&R.s);
        close_writer();
        return lpy_raise(rc, "lumio.record: cannot start the sampler");
    }
    R.state = RUNNING;
    Py_RETURN_NONE;
}

static PyObject *stats_of(const lumio_stream_writer_stats *st) {
    return Py_BuildValue(
        "{s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "ticks", (unsigned long long)R.s.ticks, "held_us",
        (unsigned long long)R.s.held_us, "samples", (unsigned long long)st->samples, "records",
        (unsigned long long)st->records, "chunks", (unsigned long long)st->chunks, "bytes",
        (unsigned long long)st->bytes, "dropped_chunks", (unsigned long long)st->dropped_chunks);
}

/* Stop sampling, seal the rest and close: the stats, or the sampler's
 * failure (it stopped there), else the finish's. None when not running. */
static PyObject *record_stop(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    if (R.state != RUNNING) Py_RETURN_NONE;
    R.state = STOPPING;
    signal_restore();
    lumio_stream_writer_stats st;
    int rc;
    char err[LUMIO_ERROR_MAX] = "";
    Py_BEGIN_ALLOW_THREADS
    lpy_sampler_join(&R.s);
    rc = lumio_stream_writer_finish(R.w);
    if (rc < 0) lumio_stream_writer_last_error(R.w, err, sizeof err);
    lumio_stream_writer_get_stats(R.w, &st);
    lumio_stream_writer_close(R.w);
    Py_END_ALLOW_THREADS
    R.w = NULL;
    lpy_sampler_free(&R.s);
    R.state = IDLE;
    if (R.s.err) return lpy_raise(R.s.err, R.s.errtext);
    if (rc < 0) return lpy_raise(rc, err);
    return stats_of(&st);
}

static PyObject *record_dump(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    if (R.state != RUNNING)
        return PyErr_Format(PyExc_RuntimeError, "lumio.record: no recorder is running");
    lumio_stream_writer_dump(R.w);
    Py_RETURN_NONE;
}

static PyObject *record_running(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyBool_FromLong(R.state == RUNNING);
}

/* In a forked child (os.register_at_fork): the sampler and the writer's
 * thread are not there, and the sink is the parent's. Everything is left as
 * it is (a thread of the parent may have been inside it) and forgotten. */
static PyObject *record_forget(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    if (R.state == IDLE) Py_RETURN_NONE;
    if (R.signum) {
        struct sigaction now;
        if (sigaction(R.signum, NULL, &now) == 0 && (now.sa_flags & SA_SIGINFO) &&
            now.sa_sigaction == on_dump_signal)
            sigaction(R.signum, &R.old, NULL);
        R.signum = 0;
    }
    atomic_store(&sig_writer, NULL);
    atomic_store(&sig_busy, 0);
    memset(&R.s, 0, sizeof R.s);
    R.w = NULL;
    R.state = IDLE;
    Py_RETURN_NONE;
}

/* Python's exit after an unhandled KeyboardInterrupt, for a script run by
 * `python3 -m lumio.record`: once the interpreter is finalized, die of
 * SIGINT (so the parent sees what it would without the recorder). */
static void die_of_sigint(void) {
    signal(SIGINT, SIG_DFL);
    raise(SIGINT);
}

static PyObject *record_exit_by_sigint(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    if (Py_AtExit(die_of_sigint) < 0)
        return PyErr_Format(PyExc_RuntimeError, "Py_AtExit: no room left");
    Py_RETURN_NONE;
}

static PyMethodDef record_methods[] = {
    {"record_start", (PyCFunction)(void (*)(void))record_start, METH_VARARGS | METH_KEYWORDS,
     "record_start(sink, rate, flush, records, signum)\n--\n\n"
     "Open the writer, write the records, start sampling (lumio.record.start)."},
    {"record_stop", record_stop, METH_NOARGS,
     "record_stop()\n--\n\nStop sampling, seal and close: the stats, or None if not running."},
    {"record_dump", record_dump, METH_NOARGS, "record_dump()\n--\n\nSeal the current chunk now."},
    {"record_running", record_running, METH_NOARGS, "Whether a recorder runs."},
    {"record_forget", record_forget, METH_NOARGS, "In a forked child: no recorder."},
    {"record_exit_by_sigint", record_exit_by_sigint, METH_NOARGS,
     "Die of SIGINT once the interpreter is finalized."},
    {NULL, NULL, 0, NULL}};

int lpy_record_init(PyObject *m) {
    return PyModule_AddFunctions(m, record_methods);
}
