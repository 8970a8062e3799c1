"""Objects on HTTP(S) servers and in S3, read and written by lumio's C library.

    with lumio.remote.open("https://host/data.bin") as f:   # a binary file object
        head = f.read(65536)                                 # read ahead underneath
    size, etag = lumio.remote.stat("s3://bucket/key")
    data = lumio.remote.read(url, start=1 << 20, size=4096)  # parts fetched at once
    views = lumio.remote.get_ranges(url, [0, 4096], [100, 8192])
    lumio.remote.get(url, "local.bin")                       # whole, written atomically
    lumio.remote.put(b"bytes or a path", "s3://bucket/key")

Locations are ``http://``, ``https://`` and ``s3://BUCKET/KEY`` (endpoint,
region and credentials from the AWS_* environment variables). Every call
releases the GIL while it waits. A long read or download is done in steps
(a part per connection): Ctrl-C raises KeyboardInterrupt at the end of the
step in flight, which cancels what is left (no request, thread or partial
file is left behind). Clients are shared by the calls that use the same
options, by threads too, and made anew in a forked child on first use.

Errors: FileNotFoundError (404), PermissionError (401/403), TimeoutError,
and lumio.Error (``.code``: lumio.E_HTTP for other statuses, lumio.E_CHANGED
for an object overwritten while read), each naming the URL.
"""

import builtins
import collections
import concurrent.futures
import io
import operator
import os
import tempfile
import threading

from collections.abc import Sequence
from typing import Any

from . import _lumio

Buffer = Any  # a bytes-like object (the buffer protocol)

__all__ = ["RemoteFile", "Stat", "get", "get_ranges", "open", "put", "read", "stat"]

Stat = collections.namedtuple("Stat", ["size", "etag"])
Stat.__doc__ = """An object's size in bytes and its ETag (None when the server sends none)."""


def _size_bytes(v, what):
    """A size in bytes from an int or a text such as "8M", "256MiB", "1.5G"."""
    if isinstance(v, int):
        n = v
    else:
        units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
        s = str(v).strip().lower().removesuffix("ib").removesuffix("b")
        try:
            n = int(float(s[:-1]) * units[s[-1]]) if s and s[-1] in units else int(s)
        except ValueError:
            raise ValueError(f"{what}: {v!r} is not a size (such as 8M or 262144)") from None
    if n < 0:
        raise ValueError(f"{what} must not be negative (got {v!r})")
    return n


# One client per set of options, shared by every call and file that uses
# them (a client is a thread and a pool of connections). Bounded, so that
# many option sets do not keep many threads; an evicted client lives on in
# the files still using it.
_clients = collections.OrderedDict()
_clients_lock = threading.Lock()
_MAX_CLIENTS = 8


def _after_fork():
    # The parent's threads are not in the child: one of them may have held
    # the lock at the fork. (The clients themselves are made anew on use.)
    global _clients_lock
    _clients_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def _client(concurrency=16, pool=16, part_size="8M", readahead_max="256M", timeout=None,
            coalesce=None):
    conc = operator.index(concurrency)
    pool = operator.index(pool)
    if conc < 1 or pool < 1:
        raise ValueError("concurrency and pool must be at least 1")
    part = _size_bytes(part_size, "part_size")
    ahead = _size_bytes(readahead_max, "readahead_max")
    if part == 0:
        raise ValueError("part_size must be at least 1 byte")
    if timeout is None:
        timeout_ms = 0
    elif timeout > 0:
        timeout_ms = max(1, min(int(timeout * 1000), 0xFFFFFFFF))
    else:
        raise ValueError(f"timeout must be positive seconds or None (got {timeout!r})")
    if coalesce is None or coalesce is True:
        gap = 0  # the client's default (1 MiB)
    elif coalesce is False:
        gap = -1
    else:
        gap = _size_bytes(coalesce, "coalesce") or -1
        if gap == 1 << 20:
            gap = 0  # the C default: the same client as calls that do not say
    key = (conc, pool, part, ahead, timeout_ms, gap)
    with _clients_lock:
        c = _clients.get(key)
        if c is None:
            c = _lumio.RemoteClient(conc, pool, part, gap, ahead, timeout_ms)
            _clients[key] = c
            while len(_clients) > _MAX_CLIENTS:
                _clients.popitem(last=False)
        else:
            _clients.move_to_end(key)
        return c


def _sized(client, items):
    """items with the length of every remote range that runs to the end
    (length -1) made explicit, from the objects' sizes (HEAD requests, at
    once): the engine then reads them in parts that each complete on their
    own (so that Ctrl-C is seen between them), into memory of their own."""
    urls = list(dict.fromkeys(p for p, off, n in items if n == -1 and _lumio.is_url(p)))
    if not urls:
        return items
    if len(urls) == 1:
        sizes = {urls[0]: client.stat(urls[0])[0]}
    else:
        with concurrent.futures.ThreadPoolExecutor(min(16, len(urls))) as ex:
            sizes = dict(zip(urls, ex.map(lambda u: client.stat(u)[0], urls)))
    out = []
    for p, off, n in items:
        size = sizes.get(p) if n == -1 else None
        if size is not None and -size <= off <= size:  # else the engine names the error
            n = size - off if off >= 0 else -off
        out.append((p, off, n))
    return out


def _location(url):
    url = os.fspath(url)
    if not isinstance(url, str):
        raise TypeError(f"a URL is a str (got {type(url).__name__})")
    return url


class RemoteFile(io.RawIOBase):
    """A remote object as a read-only binary file, on lumio's prefetching
    reader: sequential reads open a read-ahead window that grows up to
    ``readahead_max`` and is kept filled over ``concurrency`` connections;
    a seek elsewhere cancels it, and random reads fetch only what they ask.

    Made by :func:`open`. It is an :class:`io.RawIOBase` (read, readinto,
    readall, seek, tell, close, a with-statement); wrap it in
    :class:`io.BufferedReader` for many tiny reads (``readline``). One file
    may be used from several threads (calls take turns), keeps working in a
    forked child (which opens the object again), and pickles to its URL,
    options and position.
    """

    def __init__(self, url, *, concurrency=16, pool=16, part_size="8M", readahead_max="256M",
                 timeout=None):
        self._url = _location(url)
        self._opts = dict(concurrency=concurrency, pool=pool, part_size=part_size,
                          readahead_max=readahead_max, timeout=timeout)
        self._h = _lumio.RFile(_client(**self._opts), self._url)

    @property
    def name(self):
        """The URL, as given to open."""
        return self._url

    @property
    def mode(self):
        return "rb"

    @property
    def size(self):
        """The object's size in bytes (None while the server has not said)."""
        return self._h.size()

    def readable(self):
        return True

    def seekable(self):
        return True

    def writable(self):
        return False

    def readinto(self, b):
        """Fill b (a writable buffer) from the position; returns the bytes
        read, fewer than len(b) only at the end of the object."""
        self._checkClosed()
        with memoryview(b) as m:
            return self._h.readinto(m.cast("B") if m.format != "B" or m.ndim != 1 else m)

    def read(self, size=-1):
        """Up to ``size`` bytes from the position (all that is left when
        size is -1 or None), as bytes; b"" at the end."""
        self._checkClosed()
        if size is None or size < 0:
            return self.readall()
        return self._h.read(size)

    def readall(self):
        """Everything from the position to the end, as bytes."""
        self._checkClosed()
        size = self._h.size()
        if size is not None:
            return self._h.read(max(size - self._h.tell(), 0))
        parts = []  # no size (a server that sends none): until the end
        while part := self._h.read(8 << 20):
            parts.append(part)
        return b"".join(parts)

    def seek(self, offset, whence=io.SEEK_SET):
        """Move the position (whence: SEEK_SET, SEEK_CUR or SEEK_END); a
        position past the end reads b""."""
        self._checkClosed()
        return self._h.seek(operator.index(offset), whence)

    def tell(self):
        self._checkClosed()
        return self._h.tell()

    def stats(self):
        """This file's counters: requests, bytes_fetched, retries, bytes_read."""
        self._checkClosed()
        return self._h.stats()

    def close(self):
        """Cancel the read-ahead and free the reader; further use raises."""
        h = getattr(self, "_h", None)  # None: __init__ failed (the finalizer calls close)
        if h is not None and not self.closed:
            h.close()
        super().close()

    def __reduce__(self):
        if self.closed:
            raise ValueError("cannot pickle a closed file")
        return (_reopen, (self._url, self._opts, self.tell()))

    def __repr__(self):
        state = "closed " if self.closed else ""
        return f"<lumio.remote.RemoteFile {state}{self._url!r}>"


def _reopen(url, opts, pos):
    f = RemoteFile(url, **opts)
    f.seek(pos)
    return f


def open(url: str, *, concurrency: int = 16, pool: int = 16, part_size: int | str = "8M",
         readahead_max: int | str = "256M", timeout: float | None = None) -> "RemoteFile":
    """Open a remote object for reading: a :class:`RemoteFile` (an
    ``io.RawIOBase``). One request (HEAD) is made now, which pins the
    object's size and ETag: if the object is overwritten while it is read,
    reads raise lumio.Error (E_CHANGED) instead of mixing two versions.

    concurrency: requests in flight; pool: connections kept per host;
    part_size: the size of each request of the read-ahead (and of each step
    between two checks for Ctrl-C); readahead_max: the cap of the read-ahead
    window; timeout: seconds without progress before TimeoutError (None:
    60 s). Sizes are bytes or texts such as "8M".
    """
    return RemoteFile(url, concurrency=concurrency, pool=pool, part_size=part_size,
                      readahead_max=readahead_max, timeout=timeout)


def stat(url: str, **options) -> Stat:
    """The object's size and ETag, as a :class:`Stat` (one HEAD request, or
    a GET of one byte where HEAD is refused). ``options``: as for
    :func:`open` (concurrency, pool, part_size, readahead_max, timeout)."""
    size, etag = _client(**options).stat(_location(url))
    return Stat(size, etag or None)


def read(url: str, start: int = 0, size: int | None = None, **options) -> bytes:
    """``size`` bytes of the object from ``start`` (None: to the end), as
    bytes, fewer only where the object ends. Large reads are split into
    parts of ``part_size`` fetched at once (``concurrency`` of them), each
    written straight into the result; Ctrl-C is seen between rounds.
    ``options``: as for :func:`open`."""
    start = operator.index(start)
    if start < 0:
        raise ValueError(f"start must not be negative (got {start})")
    n = -1 if size is None else operator.index(size)
    if size is not None and n < 0:
        raise ValueError(f"size must not be negative (got {size})")
    return _client(**options).read(_location(url), start, n)


def get_ranges(url: str, starts: Sequence[int], ends: Sequence[int | None], *,
               coalesce: int | str | bool = "1M", **options) -> list[memoryview]:
    """The byte ranges [starts[i], ends[i]) of one object, read together
    through lumio's ring: ranges closer than ``coalesce`` bytes are fetched
    by one request (False: never), and each result is a read-only
    memoryview sliced from those reads, without a copy. A start may be
    negative (from the end, with a negative end or None); an end of None
    reads to the end of the object. A range past the end raises lumio.Error
    (E_RANGE). ``options``: as for :func:`open`."""
    url = _location(url)
    starts, ends = list(starts), list(ends)
    if len(starts) != len(ends):
        raise ValueError(f"{len(starts)} starts but {len(ends)} ends")
    items = []
    for s, e in zip(starts, ends):
        s = operator.index(s)
        if e is None:
            items.append((url, s, -1))
            continue
        e = operator.index(e)
        if (s < 0) != (e < 0):
            raise ValueError(f"range [{s}, {e}): a start and an end from different ends "
                             "(use None for the end of the object)")
        if e < s:
            raise ValueError(f"range [{s}, {e}): the end is before the start")
        items.append((url, s, e - s))
    client = _client(coalesce=coalesce, **options)
    return _lumio.read_ranges(client, _sized(client, items), True)


def get(url: str, path: str | os.PathLike, **options) -> int:
    """Download the whole object into the file at ``path``: written under a
    temporary name next to it and renamed into place when complete, so that
    ``path`` is never seen half written (and nothing is left if it fails or
    is interrupted). The object is read through the prefetching reader, all
    connections busy while this thread writes. Returns the object's size.
    ``options``: as for :func:`open`."""
    url, path = _location(url), os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{os.path.basename(path)}.", suffix=".part")
    try:
        n = _client(**options).download(url, fd)
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
        return n
    except BaseException:
        if fd >= 0:
            os.close(fd)
        os.unlink(tmp)
        raise


def put(data: Buffer | str | os.PathLike, url: str, **options) -> None:
    """Write a whole object: ``data`` is a bytes-like object or the path of
    a local file (up to 5 GiB; S3 requests signed with the body's SHA-256).
    The object is replaced at once, never seen half written. One request,
    retried from the start on failure. ``options``: as for :func:`open`."""
    url = _location(url)
    if isinstance(data, (str, os.PathLike)):
        import mmap

        with builtins.open(data, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return _client(**options).put(url, b"")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                return _client(**options).put(url, m)
    return _client(**options).put(url, data)
