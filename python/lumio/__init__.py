"""lumio: chunked data at the speed of the hardware, from Python.

Zarr arrays as numpy (``lumio.zarr``), objects in S3 or on HTTP servers
(``lumio.remote``) and the crash-proof profile stream (``lumio.stream``), on
lumio's C library: the GIL released while it works, safe after ``os.fork()``.

    import lumio.zarr
    a = lumio.zarr.open("data/temperature.zarr")
    crop = a[0, 100:164, 100:164]          # a numpy array, filled in place
"""

import operator
import os

from . import _lumio
from ._lumio import Error

__version__ = _lumio.version()
"""The C library's version (the package is built with it)."""

__all__ = ["Error", "__version__", "read_ranges", "redact"]


def redact(text: str) -> str:
    """``text`` with the password and signing parameters of every URL in it
    replaced by ``***`` (what lumio does to every message it makes)."""
    return _lumio.redact(text)


def read_ranges(items, *, in_order: bool = True):
    """Read many byte ranges of many files at once through lumio's ring:
    ``items`` are ``(path_or_url, offset, length)`` tuples, local files and
    ``http(s)://`` or ``s3://`` objects mixed. An offset may be negative
    (from the end of the file); a length of None reads to the end.

    All items go to the engine as one group: one operation per distinct
    path, its ranges merged where they are close, read with io_uring (local)
    or over pooled connections (remote). Results are read-only memoryviews
    of the engine's buffers, without a copy (ranges under 4 KiB are copied:
    a view would pin a larger buffer); a view keeps its buffer alive, and a
    view of merged ranges keeps the whole merged read.

    ``in_order=True`` returns a list, result i for item i. ``in_order=False``
    returns an iterator of ``(i, view)`` pairs as the ranges land, so that
    work can start on the first while the rest load; its memory is bounded
    (256 buffers, 256 MiB), so drop views as you go (holding them all stalls
    it with lumio.Error, E_STALLED), and ``close()`` it to cancel the rest.

    The first failure raises, naming the path and range: FileNotFoundError,
    PermissionError, lumio.Error (E_RANGE for a range past the end), ...
    Ctrl-C cancels what is in flight. The GIL is released while waiting.
    """
    norm = []
    remote = False
    for item in items:
        try:
            path, offset, length = item
        except (TypeError, ValueError):
            raise TypeError(f"an item is (path_or_url, offset, length), got {item!r}") from None
        path = os.fspath(path)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if length is None:
            length = -1
        elif (length := operator.index(length)) < 0:
            raise ValueError(f"{path}: a negative length ({length})")
        norm.append((path, operator.index(offset), length))
        remote = remote or _lumio.is_url(path)
    client = None
    if remote:
        from . import remote as _remote

        client = _remote._client()
        norm = _remote._sized(client, norm)
    return _lumio.read_ranges(client, norm, bool(in_order))
