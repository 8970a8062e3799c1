"""The lumio stream: a crash-proof, streamable, chunked format for sampled
stacks and records (docs/FORMAT.md), written and read by lumio's C library.

    with lumio.stream.Writer("profile.lumio", flush="interval:1s") as w:
        w.write_metadata("command", "python app.py")
        w.write_sample([("inner", "app.py", 10), ("main", "app.py", 3)], thread_id=1)

    for s in lumio.stream.Reader("profile.lumio"):
        print(s.thread_id, s.timestamp_us, s.frames[0])

Samples are written into chunks; a chunk is sealed (compressed, checksummed
and committed) by the flush policy or by ``flush()``. Every sample of a
sealed chunk survives the writer being killed at any instant; a reader skips
what does not verify and says where.
"""

import os
import queue
import threading
from typing import Iterator

from . import _lumio

__all__ = ["EXPORT_FORMATS", "FORMAT_VERSION", "Reader", "Sample", "Writer", "export"]

FORMAT_VERSION = 1
"""The stream format's version (docs/FORMAT.md), the one lumio writes and
reads: a stream of another version is refused as not a stream."""

Sample = _lumio.Sample

EXPORT_FORMATS = tuple(_lumio.stream_export_formats())
"""What ``export(to=...)`` writes (docs/PROFILES.md): "collapsed", "jsonl",
"speedscope", "gecko", "pprof", "tachyon"."""

_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_TIME_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def _sink_name(sink):
    if isinstance(sink, int) and not isinstance(sink, bool):
        return sink  # a descriptor
    s = os.fspath(sink)
    s = os.fsdecode(s) if isinstance(s, bytes) else s
    if not s:
        raise ValueError("the sink or source is empty")
    return s


def _is_file(source):
    """Whether a pass can read the source again from its start."""
    return isinstance(source, str) and source != "-" and not source.startswith(("tcp:", "tcp-connect:"))


def _count(name, value, policy):
    try:
        n = int(value)
    except ValueError:
        n = 0
    if not 1 <= n < 1 << 63:
        raise ValueError(f"flush: {name} needs a positive integer, not {value!r} (in {policy!r})")
    return n


def _size(value, policy):
    s = value.strip().lower()
    for suffix in ("ib", "b"):
        if s.endswith(suffix) and s[: -len(suffix)][-1:] in "kmgt":
            s = s[: -len(suffix)]
            break
    unit = s[-1:] if s[-1:] in "kmgt" else ""
    try:
        n = int(float(s[: len(s) - len(unit)]) * _SIZE_UNITS[unit])
    except (ValueError, OverflowError):
        n = 0
    if not 1 <= n < 1 << 63:
        raise ValueError(
            f"flush: bytes needs a size like 4M or 65536, not {value!r} (in {policy!r})")
    return n


def _duration_ms(value, policy, unit="s"):
    s = value.strip().lower()
    for u in ("ms", "s", "m", "h"):
        if s.endswith(u):
            s, unit = s[: -len(u)], u
            break
    try:
        ms = float(s) * _TIME_UNITS[unit]
    except ValueError:
        ms = 0
    if not 1 <= ms <= 0xFFFFFFFF:
        raise ValueError(
            f"flush: interval needs a duration like 180s, 500ms or 3m (1 ms to 49 days), "
            f"not {value!r} (in {policy!r})")
    return int(ms)


def _flush_policy(policy):
    """(flush_samples, flush_bytes, flush_ms) for the C writer: only the
    triggers named seal, the others are off (-1, or 0 for time)."""
    if not isinstance(policy, str):
        raise TypeError(f"flush must be a str such as 'samples:5000', not {type(policy).__name__}")
    got = {}
    for tok in policy.split(","):
        name, sep, value = tok.replace("=", ":", 1).partition(":")
        name = name.strip().lower()
        if not sep or not value.strip():
            raise ValueError(
                f"flush: {tok.strip()!r} is not a trigger: use samples:N, bytes:SIZE, "
                f"interval:DURATION, combined with commas (in {policy!r})")
        if name == "samples":
            key, v = "samples", _count(name, value, policy)
        elif name == "bytes":
            key, v = "bytes", _size(value, policy)
        elif name in ("interval", "seconds", "ms"):  # seconds=S and ms=N: the CLI's older names
            key, v = "ms", _duration_ms(value, policy, "ms" if name == "ms" else "s")
        else:
            raise ValueError(
                f"flush: unknown trigger {name!r}: use samples, bytes or interval (in {policy!r})")
        if key in got:
            raise ValueError(f"flush: {name} given twice (in {policy!r})")
        got[key] = v
    return got.get("samples", -1), got.get("bytes", -1), got.get("ms", 0)


def _zstd_level(compression, level):
    c = str(compression).lower()
    if c not in ("zstd", "none"):
        raise ValueError(f"compression must be 'zstd' or 'none', not {compression!r}")
    if isinstance(level, bool) or not isinstance(level, int):
        raise TypeError(f"level must be an int, not {type(level).__name__}")
    if c == "none" or level == 0:
        return -1
    if not 1 <= level <= 22:
        raise ValueError(f"level must be 0 (no compression) or 1 to 22, not {level}")
    return level


class Writer(_lumio.StreamWriter):
    """A lumio stream writer.

    ``sink``: a file path (created or truncated; with ``append=True`` the
    valid chunks already there are kept and a torn tail cut), ``"-"``
    (standard output), ``"tcp:HOST:PORT"`` (connect now: a refused
    connection raises; a connection lost later is made again) or
    ``"tcp-listen:[HOST:]PORT"`` (serve one consumer at a time on HOST,
    127.0.0.1 by default), ``"ws://HOST:PORT/PATH"`` or ``"wss://..."`` (a
    WebSocket client: a chunk a binary message; ``wss`` verifies the
    server's certificate against the system's CAs, or ``ca_file`` (PEM);
    ``insecure_tls=True`` does not), or a descriptor (an int: a pipe, a
    socket, a file) that the caller keeps open and closes. A slow or absent TCP consumer never blocks the
    writer: sealed chunks wait in a 64 MiB buffer and the oldest are dropped
    (counted in ``stats``) when it is full.

    ``flush``: when a chunk is sealed, as the CLI's ``--flush`` takes it:
    ``"samples:5000"``, ``"bytes:4M"``, ``"interval:180s"`` (units ms, s, m,
    h), several joined by commas (the first one due seals), or the older
    ``"samples=N,seconds=S"``. Only the triggers named seal; ``flush()``
    always does. ``interval`` seals a chunk that old even when nothing is
    written (a thread of the C writer does it).

    ``compression``: ``"zstd"`` at ``level`` 1 to 22, or ``"none"`` (as is
    level 0). ``fsync=True``: each sealed chunk is on disk when the call that
    sealed it returns.

    A Writer is a context manager; ``close()`` seals the rest and raises the
    sink's error (an OSError naming the sink). Errors: FileNotFoundError,
    PermissionError, ... naming the path; ConnectionRefusedError naming the
    host and port; lumio.Error for a file to append to that is not a stream;
    ValueError and TypeError for arguments.

    Threads: a Writer may be shared by threads; their calls take turns (a
    lock), with the GIL released while a chunk is sealed and written.

    Fork: after ``os.fork()`` the child must not write to the parent's sink
    (the two would interleave chunks, and the parent's unsealed samples would
    be sealed twice): a Writer used in a forked child raises RuntimeError, and
    is left to the parent. The exception is ``"-"``: there the child's first
    use opens a stream of its own on its standard output (mean it: give the
    child its own standard output, or the two streams mix).
    """

    __slots__ = ()

    def __init__(self, sink: "str | os.PathLike | int", *, flush: str = "samples:65536",
                 compression: str = "zstd", level: int = 3, fsync: bool = False,
                 append: bool = False, ca_file: "str | os.PathLike | None" = None,
                 insecure_tls: bool = False) -> None:
        samples, nbytes, ms = _flush_policy(flush)
        super().__init__(_sink_name(sink), samples, nbytes, ms,
                         _zstd_level(compression, level), bool(fsync), bool(append),
                         ca_file, bool(insecure_tls))

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self):
        state = "closed" if self.closed else "open"
        return f"<lumio.stream.Writer {self.sink!r} {state}>"


class _Stopped(Exception):
    """The consumer of an iteration went away."""


_END = object()


class Reader:
    """A lumio stream, read from its start: every sample of every valid
    chunk, in order; damaged bytes are skipped and reported (``info()``).

    ``source``: a file path, ``"-"`` (standard input), ``"tcp:HOST:PORT"``
    (a writer serving ``tcp-listen``) or a descriptor (an int) that the
    caller keeps open. ``follow=True`` reads a file as it
    grows, like ``tail -f``: at the end it waits for more, until nothing new
    has come for ``idle`` seconds (None: forever); a file truncated or
    replaced is read again from its beginning.

    Iterating yields :class:`Sample` objects (``thread_id``,
    ``timestamp_us``, ``status``, ``frames``: the ``(function, filename,
    line)`` tuples as written, innermost first); a thread reads and decodes
    ahead meanwhile. ``replay(collector)`` calls ``collector.collect(sample)``
    on the calling thread. ``metadata`` holds the ``(timestamp_us, key,
    value)`` records the last pass met. Each pass (an iteration, a replay)
    reads from the start, a file through a descriptor of its own; standard
    input, TCP and a descriptor can be read once.

    Errors: FileNotFoundError, PermissionError, ConnectionRefusedError, ...
    naming the source (when the Reader is made); lumio.Error (code E_FORMAT)
    for what is not a stream.

    Threads: a Reader may be shared; passes over a file run side by side.
    Fork: in a child a Reader opens its source again at its first use.
    Ctrl-C stops a pass between batches of samples. A pass that waits for
    data (following a file that does not grow, TCP, standard input) sees it
    only at the next sample or when ``idle`` passes, as does an iteration of
    one that was abandoned: the C reader cannot be interrupted while it
    waits.
    """

    def __init__(self, source: "str | os.PathLike | int", *, follow: bool = False,
                 idle: "float | None" = None) -> None:
        self._source = _sink_name(source)
        self._follow = bool(follow)
        self._idle = idle
        self._idle_ms = _idle_ms(idle, follow)
        self._h = _lumio.StreamReader(self._source, self._follow, self._idle_ms)
        self._lock = threading.Lock()
        self._taken = self._closed = False
        self._metadata = []
        self._damaged = []

    @property
    def source(self) -> "str | int":
        """The source, as given."""
        return self._source

    @property
    def metadata(self) -> "list[tuple[int, str, str]]":
        """The ``(timestamp_us, key, value)`` records of the last pass, in order."""
        return self._metadata

    def _take(self, follow=None):
        """A C handle for one pass: for a file the one opened by the
        constructor, then new ones (released by _pass); else the only one."""
        with self._lock:
            if self._closed:
                raise ValueError(f"{self._source}: the Reader is closed")
            if not _is_file(self._source):
                if self._taken:
                    raise ValueError(f"{self._source}: standard input, a TCP stream or a "
                                     "descriptor can be read once, and this Reader has read it")
                self._taken = True
                return self._h
            if follow is None and self._h is not None:
                h, self._h = self._h, None
                return h
        follow = self._follow if follow is None else follow
        return _lumio.StreamReader(self._source, follow, self._idle_ms if follow else 0)

    def _release(self, h):
        """After a pass: a file's handle is closed (the next pass opens its
        own); the only handle of standard input or TCP keeps its stats."""
        if _is_file(self._source):
            h.close()

    def _pass(self, h, on_sample, batch, lists, got=None):
        meta, damaged = [], []
        self._metadata, self._damaged = meta, damaged
        if got is not None:  # this pass's own lists, whatever other passes do meanwhile
            got["metadata"], got["damaged"] = meta, damaged

        def on_meta(ts, key, value):
            meta.append((ts, key, value))

        def on_damage(offset, length, torn):
            if not torn:  # the torn tail is counted in stats
                damaged.append((offset, length))

        return h.read(on_sample, on_meta, on_damage, batch, lists)

    def replay(self, collector) -> int:
        """Call ``collector.collect(sample)`` for every sample, in order, on
        this thread; return how many. What it raises stops the pass and is
        raised here."""
        if self._follow or not _is_file(self._source):
            # A pass that may wait for data runs on a thread of its own, so
            # that Ctrl-C (or what a signal handler raises) reaches this one
            # at once and cancels it, as leaving an iteration does.
            n = 0
            for sample in self:
                collector.collect(sample)
                n += 1
            return n
        h = self._take()
        try:
            return self._pass(h, collector.collect, 256, False)
        finally:
            self._release(h)

    def __iter__(self) -> "Iterator[Sample]":
        """The samples of a pass from the start, read and decoded ahead on a
        thread of the pass's own."""
        return self._iterate()

    def _iterate(self):
        h = self._take()
        q = queue.Queue(maxsize=4)
        stop = threading.Event()

        def put(item):
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return
                except queue.Full:
                    pass
            raise _Stopped

        def produce():
            try:
                self._pass(h, put, 1 if self._follow else 512, True)
                put(_END)
            except _Stopped:
                pass
            except BaseException as e:  # noqa: BLE001 (handed to the consumer)
                try:
                    put(e)
                except _Stopped:
                    pass
            finally:
                self._release(h)

        t = threading.Thread(target=produce, name=f"lumio.stream.Reader({self._source})",
                             daemon=True)
        t.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield from item
        finally:
            stop.set()
            # It stops at its next batch, or at once where it waits for data
            # (following, TCP, standard input): the C reader is canceled.
            h.cancel()
            t.join()

    def info(self) -> dict:
        """A pass that counts, as a dict: ``version``, ``chunks``,
        ``samples``, ``records``, ``threads`` (how many distinct thread ids)
        and ``thread_ids``, ``t_first`` and ``t_last`` (µs), ``damaged`` (the
        ``(offset, length)`` ranges skipped in the middle), ``damaged_bytes``,
        ``torn_tail_bytes`` (what a killed writer left at the end),
        ``valid_end``, ``stored_bytes`` and ``raw_bytes`` (payloads as stored
        and decoded), ``metadata``. A file is read again, without following;
        standard input or TCP already read: what the last pass saw."""
        got = {}
        if _is_file(self._source):
            h = self._take(follow=False)
            try:
                self._pass(h, None, 0, False, got)
                st = h.stats()
            finally:
                self._release(h)
        else:
            with self._lock:
                first = not self._taken
            if first:
                self._pass(self._take(), None, 0, False, got)
            st = self._h.stats()
        return {
            "version": FORMAT_VERSION,
            "chunks": st["chunks"],
            "samples": st["samples"],
            "records": st["records"],
            "threads": len(st["thread_ids"]),
            "thread_ids": st["thread_ids"],
            "t_first": st["t_first"],
            "t_last": st["t_last"],
            "damaged": list(got.get("damaged", self._damaged)),
            "damaged_bytes": st["damaged_bytes"],
            "torn_tail_bytes": st["torn_tail_bytes"],
            "valid_end": st["valid_end"],
            "stored_bytes": st["stored_bytes"],
            "raw_bytes": st["raw_bytes"],
            "metadata": list(got.get("metadata", self._metadata)),
        }

    def close(self) -> None:
        """Close the source. Passes running go on to their end; new ones
        raise ValueError."""
        with self._lock:
            self._closed = True
            h, self._h = self._h, (None if _is_file(self._source) else self._h)
        if h is not None:
            h.close()

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self):
        return f"<lumio.stream.Reader {self._source!r}{' follow' if self._follow else ''}>"

    def __reduce__(self):
        return (_reopen, (self._source, self._follow, self._idle))


def _idle_ms(idle, follow):
    """``idle`` seconds as the reader's follow_idle_ms (0: for ever)."""
    if idle is not None and not follow:
        raise ValueError("idle needs follow=True (it is how long following waits for more)")
    ms = 0 if idle is None else int(float(idle) * 1000)
    if idle is not None and not 1 <= ms <= 0xFFFFFFFF:
        raise ValueError(f"idle must be from 0.001 to 4294967 seconds, not {idle!r}")
    return ms


def _reopen(source, follow, idle):
    return Reader(source, follow=follow, idle=idle)


def export(source: "str | os.PathLike | int", dest: "str | os.PathLike | int", *, to: str,
           follow: bool = False, idle: "float | None" = None, name: "str | None" = None) -> dict:
    """Write the stream at ``source`` in another tool's format (docs/PROFILES.md):

        lumio.stream.export("profile.lumio", "profile.speedscope.json", to="speedscope")

    ``to``: one of ``EXPORT_FORMATS``. ``source``: anything ``Reader`` takes
    (a path, ``"-"``, ``"tcp:HOST:PORT"``, ``"tcp-listen:PORT"``,
    ``"ws-listen:PORT"``, a descriptor); ``follow`` and ``idle`` as for
    ``Reader``. ``dest``: a path, written under a temporary name beside it
    and renamed at the end, so a failed export leaves no file and replaces
    none; or a descriptor (an int), written and left open. ``name``: the
    profile's name where the format has one.

    Returns the reader's counts: ``chunks``, ``samples``, and the damage
    skipped (``damaged_ranges``, ``damaged_bytes``, ``torn_tail_bytes``):
    the samples of every valid chunk are exported even when some chunk was
    damaged. Raises ValueError for an unknown format, OSError (lumio.Error
    for lumio's own codes) when the source or the output fails; the GIL is
    released while it runs, and Ctrl-C stops it.
    """
    if to not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {to!r} (one of {', '.join(EXPORT_FORMATS)})")
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    idle_ms = _idle_ms(idle, follow)
    keys = ("chunks", "samples", "damaged_ranges", "damaged_bytes", "torn_tail_bytes")
    if isinstance(dest, int):
        return dict(zip(keys, _lumio.stream_export(source, dest, to, bool(follow), idle_ms, name)))
    dest = os.fspath(dest)
    directory, base = os.path.split(os.path.abspath(dest))
    import tempfile
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory)
    try:
        counts = _lumio.stream_export(source, fd, to, bool(follow), idle_ms, name)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, dest)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        os.unlink(tmp)
        raise
    return dict(zip(keys, counts))
