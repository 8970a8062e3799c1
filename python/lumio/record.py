"""A crash-proof recorder of Python stacks: every thread's stack, sampled at
a fixed rate, into a lumio stream (docs/PROFILES.md, "Recording Python").

    python3 -m lumio.record [--rate HZ] [--flush POLICY] [-o SINK] -- script.py [args]
    python3 -m lumio.record [options] -m module [args]

    import lumio.record
    with lumio.record.start("profile.lumio", rate=100):
        work()

A native thread wakes at each tick, takes the GIL only to walk the frames of
every thread (copying what it has not met before into C), releases it, and
writes one sample per thread, each frame as (function, file, line),
innermost first. Chunks are sealed by the flush policy (by default each
second, so a program killed with SIGKILL loses at most about a second) and
at once on SIGUSR1 (or ``dump()``). The recording is finished at exit,
however the program ends (a normal end, ``sys.exit``, an exception, Ctrl-C),
and a forked child does not record.
"""

if __name__ == "__main__":
    # python3 -m lumio.record: run as the package's module (one copy of its
    # state, whatever the recorded program imports), not as this __main__.
    import sys

    from lumio.record import main

    sys.exit(main())

import atexit
import os
import platform
import runpy
import shlex
import signal as _signal
import sys
import threading
import time

from . import _lumio
from .stream import _sink_name

__all__ = ["DEFAULT_FLUSH", "DEFAULT_RATE", "Recording", "dump", "main", "running", "start", "stop"]

DEFAULT_RATE = 100
"""Samples per second (per thread) unless told."""

DEFAULT_FLUSH = "interval:1s"
"""A chunk sealed each second: what a kill can lose."""

_lock = threading.Lock()
_current = None


class Recording:
    """A recording that :func:`start` began: a context manager that stops it
    on leaving. ``stats`` holds the final counters once stopped."""

    __slots__ = ("sink", "rate", "flush", "stats", "_on")

    def __init__(self, sink, rate, flush):
        self.sink, self.rate, self.flush = sink, rate, flush
        self.stats = None
        self._on = True

    @property
    def running(self) -> bool:
        return self._on

    def stop(self) -> "dict | None":
        """As :func:`stop`, if this recording still runs; its stats."""
        with _lock:
            if self._on:
                _stop_locked()
        return self.stats

    def dump(self) -> None:
        """As :func:`dump`."""
        dump()

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self):
        return f"<lumio.record.Recording {self.sink!r} {'running' if self._on else 'stopped'}>"


def _rate_text(rate):
    return str(int(rate)) if rate == int(rate) else repr(rate)


def start(sink="profile.lumio", *, rate: float = DEFAULT_RATE, flush: str = DEFAULT_FLUSH,
          signal: "int | None" = _signal.SIGUSR1, command: "str | None" = None,
          _hide: tuple = ()) -> Recording:
    """Start recording this process into ``sink``: a file (created or
    truncated), ``"-"`` (standard output: it must be the stream's alone), a
    descriptor (an int the caller keeps open), ``"tcp:HOST:PORT"``,
    ``"tcp-listen:[HOST:]PORT"``, or any sink lumio.stream.Writer takes.

    ``rate``: samples per second (up to 10000). ``flush``: when chunks are
    sealed, as the CLI's ``--flush`` (``"interval:1s"``, ``"samples:5000"``,
    ``"bytes:4M"``, joined by commas). ``signal``: the signal that seals the
    current chunk at once (a C handler; the handler that was there before
    is still called, and put back by stop); None for none. ``command``: the
    command line recorded (default: this process's, ``sys.orig_argv``).

    One recording at a time per process (RuntimeError otherwise). It is
    stopped at exit if :func:`stop` was not called. Errors: as
    lumio.stream.Writer's for the sink (OSError naming it), ValueError for
    the arguments.
    """
    global _current
    sink = _sink_name(sink)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise TypeError(f"rate must be a number, not {type(rate).__name__}")
    if not 0 < rate <= 10000:
        raise ValueError(f"rate must be above 0 and at most 10000 Hz, not {rate!r}")
    if not isinstance(flush, str):
        raise TypeError(f"flush must be a str such as 'interval:1s', not {type(flush).__name__}")
    signum = 0 if signal is None else int(signal)
    if command is None:
        command = shlex.join(getattr(sys, "orig_argv", sys.argv))
    records = [
        ("source", f"lumio.record {_lumio.version()}"),
        ("command", command),
        ("python_version", platform.python_version()),
        ("rate_hz", _rate_text(rate)),
        ("interval_us", str(round(1e6 / rate))),
        ("start_unix_us", str(time.time_ns() // 1000)),
    ]
    with _lock:
        _lumio.record_start(sink, float(rate), flush, records, signum, tuple(_hide))
        _current = Recording(sink, rate, flush)
        return _current


def _stop_locked():
    global _current
    rec, _current = _current, None
    try:
        stats = _lumio.record_stop()
    finally:
        if rec is not None:
            rec._on = False
    if rec is not None:
        rec.stats = stats
    return stats


def stop() -> "dict | None":
    """Stop the recording: seal what is left and close the sink. Returns its
    counters (``ticks``, ``samples``, ``records``, ``chunks``, ``bytes``,
    ``dropped_chunks``; ``held_us``: how long the sampler held the GIL in
    all, which the program waited), or None when nothing was recording. Raises the
    sink's error (an OSError naming it) when writing failed: the sampler
    stopped at the first failure, and what was sealed before is readable."""
    with _lock:
        return _stop_locked()


def dump() -> None:
    """Seal the current chunk now (as the dump signal does); RuntimeError
    when nothing is recording."""
    _lumio.record_dump()


def running() -> bool:
    """Whether this process is being recorded."""
    return _lumio.record_running()


def _at_exit():
    try:
        stop()
    except Exception as e:  # the program's exit status stays its own
        print(f"lumio.record: {e}", file=sys.stderr)


def _after_fork_in_child():
    """A forked child records nothing, and gets a lock of its own: the
    parent's may have been held by a thread (inside start or stop) that the
    child does not have, and the child's exit (atexit's stop) would wait on
    it forever."""
    global _lock, _current
    _lock = threading.Lock()
    if _current is not None:
        _current._on = False
    _current = None
    _lumio.record_forget()


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)


USAGE = """\
usage: python3 -m lumio.record [options] [--] script.py [args...]
       python3 -m lumio.record [options] -m module [args...]

Run a Python program and record every thread's stack into a lumio stream.

options:
  -o, --output SINK   where the stream goes: a file (default profile.lumio), -
                      (standard output; the program's own output then goes to
                      standard error), tcp:HOST:PORT, tcp-listen:[HOST:]PORT
  -r, --rate HZ       samples per second (default 100)
  --flush POLICY      when chunks are sealed (default interval:1s): interval:1s,
                      samples:5000, bytes:4M, joined by commas
  --no-signal         SIGUSR1 does not seal the current chunk
  -q, --quiet         no summary on standard error at the end
  -h, --help          this help

SIGUSR1 seals the current chunk at once. The program's exit status is kept.
"""


class _Usage(Exception):
    pass


def _parse(argv):
    opts = {"output": "profile.lumio", "rate": float(DEFAULT_RATE), "flush": DEFAULT_FLUSH,
            "signal": True, "quiet": False, "module": None}
    takes = {"-o": "output", "--output": "output", "-r": "rate", "--rate": "rate",
             "--flush": "flush", "-m": "module"}
    i = 0
    while i < len(argv):
        a = argv[i]
        name, eq, value = a.partition("=") if a.startswith("--") else (a, "", "")
        if a == "--":
            i += 1
            break
        if a in ("-h", "--help"):
            raise _Usage("")
        if a == "--no-signal":
            opts["signal"] = False
        elif a in ("-q", "--quiet"):
            opts["quiet"] = True
        elif name in takes:
            if not eq:
                if i + 1 >= len(argv):
                    raise _Usage(f"{a} needs a value")
                i += 1
                value = argv[i]
            opts[takes[name]] = value
            if name == "-m":
                i += 1
                break
        elif a.startswith("-") and a != "-":
            raise _Usage(f"unknown option {a}")
        else:
            break
        i += 1
    rest = argv[i:]
    try:
        opts["rate"] = float(opts["rate"])
    except ValueError:
        raise _Usage(f"--rate needs a number of samples per second, not {opts['rate']!r}")
    if opts["module"] is None and not rest:
        raise _Usage("no program to run")
    return opts, rest


def _trimmed(e):
    """e with the frames of this module and runpy taken off its traceback
    (Python's own shows the program's frames only)."""
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_globals.get("__name__") in ("runpy", __name__):
        tb = tb.tb_next
    return e.with_traceback(tb)


def _sink_for(output):
    """"-": the stream gets standard output's descriptor, and the program's
    standard output goes to standard error, so that the two never mix."""
    if output != "-":
        return output
    sys.stdout.flush()
    fd = os.dup(1)
    os.set_inheritable(fd, False)
    os.dup2(2, 1)
    return fd


def _runner_codes():
    """The frames between the recorder's command line and the program: the
    stacks are cut at _run, and runpy's frames inside it go too."""
    return (_run.__code__, runpy.run_path.__code__, runpy.run_module.__code__,
            runpy._run_module_code.__code__, runpy._run_code.__code__)


def _run(module, rest):
    if module is not None:
        sys.argv = [module, *rest]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(rest)
        sys.path[0] = os.path.dirname(os.path.realpath(rest[0]))
        runpy.run_path(os.path.abspath(rest[0]), run_name="__main__")  # as Python's __file__


def main(argv=None) -> int:
    """The command line: run the program under the recorder; its exit status."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        opts, rest = _parse(argv)
    except _Usage as u:
        print(USAGE if not str(u) else f"lumio.record: {u}\n\n{USAGE}", end="",
              file=sys.stdout if not str(u) else sys.stderr)
        return 2 if str(u) else 0
    module = opts["module"]
    if module is None and not os.path.exists(rest[0]):
        print(f"{sys.executable}: can't open file {os.path.abspath(rest[0])!r}: "
              f"[Errno 2] No such file or directory", file=sys.stderr)
        return 2
    if module is not None:
        import importlib.util

        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            print(f"{sys.executable}: No module named {module}", file=sys.stderr)
            return 1
    command = shlex.join([sys.executable, *(["-m", module] if module else []), *rest])
    try:
        rec = start(_sink_for(opts["output"]), rate=opts["rate"], flush=opts["flush"],
                    signal=_signal.SIGUSR1 if opts["signal"] else None, command=command,
                    _hide=_runner_codes())
    except (OSError, ValueError, TypeError) as e:
        print(f"lumio.record: {e}", file=sys.stderr)
        return 2
    if not opts["quiet"]:
        atexit.register(_summary, rec, opts["output"])  # runs before _at_exit (LIFO): stops
    try:
        _run(module, rest)
    except SystemExit:
        raise
    except BaseException as e:
        e = _trimmed(e)
        sys.excepthook(type(e), e, e.__traceback__)
        if isinstance(e, KeyboardInterrupt):
            _lumio.record_exit_by_sigint()  # after finalizing, as Python does
            return 130
        return 1
    return 0


def _summary(rec, output):
    try:
        st = rec.stop()
    except Exception as e:
        print(f"lumio.record: {e}", file=sys.stderr)
        return
    if st:
        print(f"lumio.record: {st['samples']} samples in {st['chunks']} chunks to {output}",
              file=sys.stderr)
