"""Zarr v2 and v3 arrays as numpy arrays, read and written by lumio's C library.

    a = lumio.zarr.open("data/t.zarr")     # a directory, http(s)://..., s3://...
    a.shape, a.dtype, a.chunks
    x = a[10, :, ::2]                      # numpy basic indexing, a new array
    a.read((slice(0, 64), ...), out=buf)   # into a caller's C-contiguous array
    crops = a.read_batch(starts, (64, 64)) # n crops read together
    for slab in a.series(axis=0): ...      # in order, read ahead underneath

Reads release the GIL. An ``Array`` may be shared by threads (calls on it
take turns) and keeps working in a forked child (it opens the array again
there, on first use). It pickles to its location and options.
"""

from __future__ import annotations

import json
import operator
import os
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np

from . import _lumio

__all__ = ["Array", "Group", "create", "open", "open_group", "rechunk"]

# A read larger than this is made in slabs along the first dimension, so
# that Ctrl-C is seen between them (the C call itself cannot be interrupted).
_SLAB_BYTES = 64 << 20


def _empty(shape, dtype):
    """A new C-contiguous array for the C library to fill. From 4 MiB up it
    starts on a 2 MiB boundary, so that numpy's transparent huge pages cover
    it whole and the library's streaming stores write whole cache lines: a
    whole 256 MiB array read in 0.188 s instead of 0.212 (the CLI: 0.189)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if n < (4 << 20):
        return np.empty(shape, dtype=dtype)
    align = 2 << 20
    raw = np.empty(n + align, dtype=np.uint8)
    off = (-raw.ctypes.data) % align
    return raw[off:off + n].view(dtype).reshape(shape)


def _size_bytes(v, what="size"):
    if v is None:
        return 0
    if isinstance(v, int):
        if v < 0:
            raise ValueError(f"{what}: {v} is negative")
        return v
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    s = str(v).strip().lower().rstrip("ib").rstrip("b")
    if s and s[-1] in units:
        return int(float(s[:-1]) * units[s[-1]])
    return int(s)


class _Dim:
    """One dimension of a selection: the indices it takes, as a range."""

    __slots__ = ("first", "step", "count", "drop")

    def __init__(self, first, step, count, drop):
        self.first, self.step, self.count, self.drop = first, step, count, drop

    def bounds(self):
        """The smallest region holding every index: (start, extent)."""
        if self.count == 0:
            return 0, 0
        last = self.first + (self.count - 1) * self.step
        lo = min(self.first, last)
        return lo, abs(last - self.first) + 1


def _normalize(sel, shape):
    """A basic-indexing selection into one _Dim per dimension."""
    if not isinstance(sel, tuple):
        sel = (sel,)
    ell = [i for i, s in enumerate(sel) if s is Ellipsis]
    if len(ell) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if ell:
        i = ell[0]
        fill = len(shape) - (len(sel) - 1)
        sel = sel[:i] + (slice(None),) * max(fill, 0) + sel[i + 1 :]
    if len(sel) > len(shape):
        raise IndexError(
            f"too many indices for array: array is {len(shape)}-dimensional, "
            f"but {len(sel)} were indexed"
        )
    sel = sel + (slice(None),) * (len(shape) - len(sel))
    dims = []
    for axis, (s, n) in enumerate(zip(sel, shape)):
        if isinstance(s, slice):
            start, stop, step = s.indices(n)
            dims.append(_Dim(start, step, len(range(start, stop, step)), False))
            continue
        if isinstance(s, (bool, np.bool_)):
            raise IndexError("boolean indices are not supported (numpy would add an axis)")
        try:
            i = operator.index(s)
        except TypeError:
            raise IndexError(
                "only integers, slices (`:`), ellipsis (`...`) are valid indices "
                f"(got {type(s).__name__}; use .oindex for integer arrays)"
            ) from None
        if i < -n or i >= n:
            raise IndexError(f"index {i} is out of bounds for axis {axis} with size {n}")
        dims.append(_Dim(i + n if i < 0 else i, 1, 1, True))
    return dims


class Array:
    """A Zarr array (v2 or v3) read and written through lumio.

    Open one with :func:`lumio.zarr.open`. Attributes mirror numpy and
    zarr-python: ``shape``, ``dtype`` (in the stored byte order), ``chunks``,
    ``shards`` (None when unsharded), ``fill_value``, ``format``,
    ``codecs``, ``nbytes``, ``ndim``, ``size``; ``len(a)`` is ``shape[0]``.
    """

    def __init__(self, location: Union[str, os.PathLike], *, cache: Union[int, str, None] = None):
        self._location = os.fspath(location)
        self._cache = _size_bytes(cache, "cache")
        self._h = _lumio.ZarrArray(self._location, self._cache)
        self._load_info()

    def _load_info(self):
        info = self._h.info()
        self._info = info
        self.shape = tuple(info["shape"])
        self.dtype = np.dtype(info["dtype"])
        self.format = info["format"]
        self.codecs = info["codecs"]
        if info["inner_chunks"] is None:
            self.chunks, self.shards = tuple(info["chunks"]), None
        else:  # zarr-python's names: chunks inside shards
            self.chunks, self.shards = tuple(info["inner_chunks"]), tuple(info["chunks"])
        self.fill_value = self.dtype.type(_fill_value(info["fill_value"], self.dtype))

    # -- what it is --------------------------------------------------------

    @property
    def attrs(self):
        """The array's user attributes (v2 .zattrs, v3 "attributes") as a
        dict, read from the store on first use."""
        if not hasattr(self, "_attrs"):
            self._attrs = json.loads(self._h.attrs())
        return self._attrs

    @property
    def location(self):
        """Where the array is (as given to open)."""
        return self._location

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=object))

    @property
    def nbytes(self):
        """Bytes of the whole array decoded (shape x itemsize)."""
        return self.size * self.dtype.itemsize

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __repr__(self):
        return f"<lumio.zarr.Array {self._location!r} shape={self.shape} dtype={self.dtype}>"

    # -- reading -----------------------------------------------------------

    def __getitem__(self, sel):
        r = self.read(sel)
        # Every dimension an int: a scalar, as numpy (but x[1, 2, ...] is 0-d).
        ell = isinstance(sel, tuple) and any(s is Ellipsis for s in sel)
        return r[()] if r.ndim == 0 and not ell and sel is not Ellipsis else r

    def read(self, sel: Any = Ellipsis, *, out: Optional[np.ndarray] = None) -> np.ndarray:
        """The selection (numpy basic indexing) as a new numpy array, or into
        ``out``, a C-contiguous array of the selection's shape and dtype."""
        dims = _normalize(sel, self.shape)
        want = tuple(d.count for d in dims if not d.drop)
        if out is not None:
            _check_out(out, want, self.dtype)
            result = out
        else:
            result = _empty(want, self.dtype)
        if result.size == 0:
            return result
        if all(d.step == 1 for d in dims):  # straight into the result
            self._read_region(
                [d.first for d in dims], [d.count for d in dims], result.reshape(-1)
            )
            return result
        # Steps: the bounding region, then every step-th element of it.
        bounds = [d.bounds() for d in dims]
        box = _empty(tuple(b[1] for b in bounds), self.dtype)
        self._read_region([b[0] for b in bounds], [b[1] for b in bounds], box.reshape(-1))
        pick = []
        for d, (lo, _) in zip(dims, bounds):
            if d.drop:
                pick.append(d.first - lo)
            else:
                stop = d.first - lo + d.count * d.step
                pick.append(slice(d.first - lo, stop if stop >= 0 else None, d.step))
        result[...] = box[tuple(pick)]
        return result

    def _in_slabs(self, call, start, shape, flat):
        """call(start, shape, flat) over [start, start + shape), in slabs
        along the first dimension longer than 1 when large, so that Ctrl-C
        is seen between them (a write's chunks are whole after each)."""
        total = int(np.prod(shape, dtype=object)) * self.dtype.itemsize
        axis = next((d for d, n in enumerate(shape) if n > 1), None)
        if axis is None or total <= _SLAB_BYTES:
            call(start, shape, flat)
            return
        row = total // shape[axis]  # bytes of one index along axis (leading extents are 1)
        rows = max(1, _SLAB_BYTES // max(row, 1))
        per = row // self.dtype.itemsize
        for r0 in range(0, shape[axis], rows):
            r = min(rows, shape[axis] - r0)
            s, sh = list(start), list(shape)
            s[axis] += r0
            sh[axis] = r
            self._in_slabs(call, s, sh, flat[r0 * per : (r0 + r) * per])

    def _read_region(self, start, shape, flat):
        """Read [start, start + shape) into a flat C-contiguous array."""
        self._in_slabs(self._h.read, start, shape, flat)

    def _write_region(self, start, shape, flat):
        """Write [start, start + shape) from a flat C-contiguous array."""
        self._in_slabs(self._h.write, start, shape, flat)

    @property
    def oindex(self):
        """Orthogonal indexing, as zarr-python's ``oindex``: per dimension an
        int, a slice, or a 1-d integer array (any order, repeats allowed);
        ``a.oindex[[3, 1, 3], :, 2:5]``."""
        return _OIndex(self)

    def read_batch(self, starts: Any, shape: Sequence[int]) -> np.ndarray:
        """n regions of one shape, read together: an array of shape
        ``(n, *shape)``. ``starts`` is an ``(n, ndim)`` integer array."""
        shape = tuple(operator.index(s) for s in shape)
        raw = np.asarray(starts)
        if raw.size and raw.dtype.kind not in "iu":
            raise IndexError(f"starts must be integers (got {raw.dtype})")
        starts = np.ascontiguousarray(raw, dtype=np.int64).reshape(-1, self.ndim) if raw.size else \
            np.zeros((0, self.ndim), np.int64)
        if raw.size and (raw.ndim != 2 or raw.shape[1] != self.ndim) or len(shape) != self.ndim:
            raise ValueError(f"starts must be (n, {self.ndim}) and shape {self.ndim} long")
        if self.ndim == 0:
            raise ValueError("read_batch: a 0-d array has no regions to batch")
        if any(n < 0 for n in shape):
            raise ValueError(f"shape {shape} has a negative extent")
        room = [n - s for n, s in zip(self.shape, shape)]  # Python ints: no overflow
        if any(r < 0 for r in room) or (starts < 0).any() or \
                any(int(starts[:, d].max()) > room[d] for d in range(self.ndim) if len(starts)):
            raise IndexError("a region lies outside the array")
        out = _empty((len(starts),) + shape, self.dtype)
        if out.size:  # in groups of at most 64 MiB: Ctrl-C is seen between them
            per = out[0].nbytes
            group = max(16, _SLAB_BYTES // max(per, 1))
            u = starts.astype(np.uint64)
            for i in range(0, len(u), group):
                self._h.read_batch(u[i:i + group], shape, out[i:i + group].reshape(-1))
        return out

    def series(self, axis: int = 0, step: Optional[int] = None,
               ahead: Optional[int] = None) -> Iterator[np.ndarray]:
        """Slabs of ``step`` indices along ``axis`` (default: the chunk
        size), in order, as numpy arrays; the next ones are read and decoded
        meanwhile (``ahead``, default 4)."""
        return _Series(self, axis, step, ahead)

    # -- writing -----------------------------------------------------------

    def __setitem__(self, sel, value):
        dims = _normalize(sel, self.shape)
        want = tuple(d.count for d in dims if not d.drop)
        value = np.asarray(value, dtype=self.dtype)
        data = np.ascontiguousarray(np.broadcast_to(value, want))
        if data.size == 0:
            return
        if all(d.step == 1 for d in dims):
            self._write_region([d.first for d in dims], [d.count for d in dims], data.reshape(-1))
            return
        bounds = [d.bounds() for d in dims]
        start, extent = [b[0] for b in bounds], [b[1] for b in bounds]
        box = np.empty(tuple(extent), dtype=self.dtype)
        self._h.read(start, extent, box.reshape(-1))
        pick = tuple(
            (d.first - lo)
            if d.drop
            else slice(
                d.first - lo,
                (d.first - lo + d.count * d.step) if d.first - lo + d.count * d.step >= 0 else None,
                d.step,
            )
            for d, (lo, _) in zip(dims, bounds)
        )
        box[pick] = data
        self._h.write(start, extent, box.reshape(-1))

    # -- lifetime ----------------------------------------------------------

    def close(self) -> None:
        """Free the C handle (the stored array stays). Further use raises."""
        self._h.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __reduce__(self):
        return (_reopen, (self._location, self._cache))


class _OIndex:
    def __init__(self, array):
        self._a = array

    def _plan(self, sel):
        """Per dimension: the indices (an int array), and whether it drops."""
        a = self._a
        if not isinstance(sel, tuple):
            sel = (sel,)
        ell = [i for i, s in enumerate(sel) if s is Ellipsis]  # (`in` compares arrays)
        if len(ell) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        if ell:
            i = ell[0]
            sel = sel[:i] + (slice(None),) * (a.ndim - len(sel) + 1) + sel[i + 1 :]
        if len(sel) > a.ndim:
            raise IndexError(f"too many indices for a {a.ndim}-d array")
        sel = sel + (slice(None),) * (a.ndim - len(sel))
        plan = []
        for axis, (s, n) in enumerate(zip(sel, a.shape)):
            if isinstance(s, slice):
                plan.append((np.arange(*s.indices(n)), False))
                continue
            idx = np.asarray(s)
            if idx.dtype == bool or idx.dtype.kind not in "iu" or idx.ndim > 1:
                raise IndexError(f"oindex: axis {axis}: ints, slices or 1-d integer arrays only")
            idx = np.where(idx < 0, idx + n, idx).astype(np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise IndexError(f"index out of bounds for axis {axis} with size {n}")
            plan.append((idx.reshape(-1), idx.ndim == 0))
        return plan

    def _box(self, plan):
        lo = [int(i.min()) if i.size else 0 for i, _ in plan]
        hi = [int(i.max()) + 1 if i.size else 0 for i, _ in plan]
        return lo, [h - l for l, h in zip(lo, hi)]

    def __getitem__(self, sel):
        a = self._a
        plan = self._plan(sel)
        want = tuple(len(i) for i, drop in plan if not drop)
        if any(len(i) == 0 for i, _ in plan):
            return np.empty(want, dtype=a.dtype)
        lo, ext = self._box(plan)
        box = np.empty(tuple(ext), dtype=a.dtype)
        a._read_region(lo, ext, box.reshape(-1))
        got = box[np.ix_(*[i - l for (i, _), l in zip(plan, lo)])]
        got = got.reshape(want)
        return got[()] if got.ndim == 0 else got

    def __setitem__(self, sel, value):
        a = self._a
        plan = self._plan(sel)
        if any(len(i) == 0 for i, _ in plan):
            return
        lo, ext = self._box(plan)
        box = np.empty(tuple(ext), dtype=a.dtype)
        a._h.read(lo, ext, box.reshape(-1))
        full = tuple(len(i) for i, _ in plan)
        want = tuple(len(i) for i, drop in plan if not drop)
        value = np.broadcast_to(np.asarray(value, dtype=a.dtype), want).reshape(full)
        box[np.ix_(*[i - l for (i, _), l in zip(plan, lo)])] = value
        a._h.write(lo, ext, box.reshape(-1))


def _compressor_of(codecs):
    """The compressor (and v2 delta filter) of a codec description, as
    create takes it: "bytes:little,zstd:3,crc32c" -> "zstd:3"; a sharded
    array's inner chunks' compressor."""
    import re

    keep = [t for t in re.split(r"[,\[\]()]", codecs)
            if t.split(":")[0] in ("zstd", "gzip", "zlib", "blosc", "delta")]
    return ",".join(keep) or "none"


def _fill_text(value, dtype):
    """A fill value as lumio's create option takes it ("0", "-1.5", "nan")."""
    if dtype.kind == "b":
        return "true" if bool(value) else "false"
    if dtype.kind == "f":
        v = float(value)
        return "nan" if v != v else ("inf" if v == float("inf") else "-inf" if v == -float("inf") else repr(v))
    return str(int(value))


def create(location: Union[str, os.PathLike], shape: Sequence[int], chunks: Sequence[int],
           dtype: Any, *, codec: str = "zstd:3", format: int = 2, order: str = "C",
           fill_value: Any = 0, shards: Optional[Sequence[int]] = None,
           checksum: bool = False, attrs: Optional[dict] = None) -> Array:
    """Create a Zarr array (v2 or v3) at ``location`` (a directory, an
    http(s):// URL that takes PUT, s3://BUCKET/PREFIX) and open it.

    ``codec``: "zstd[:LEVEL]", "gzip[:L]", "zlib[:L]" (v2),
    "blosc[:CNAME[:LEVEL[:SHUFFLE]]]", "none". ``order``: "C" or "F".
    ``shards`` (v3): the shard shape, a multiple of ``chunks``. ``checksum``
    (v3): a crc32c after the compressor. ``attrs``: the user attributes (a
    dict, stored as JSON). An array already there raises FileExistsError."""
    dt = np.dtype(dtype)
    shape = tuple(operator.index(n) for n in shape)
    chunks = tuple(operator.index(n) for n in chunks)
    if order not in ("C", "F"):
        raise ValueError(f"order must be 'C' or 'F', not {order!r}")
    _lumio.zarr_create(
        os.fspath(location), shape, chunks, dt.str, codec, int(format), order == "F",
        _fill_text(fill_value, dt), None if shards is None else tuple(shards), bool(checksum),
        None if attrs is None else json.dumps(attrs),
    )
    return Array(location)


def rechunk(src: Union[str, os.PathLike], dst: Union[str, os.PathLike], chunks: Sequence[int], *,
            codec: Optional[str] = None, format: Optional[int] = None, order: Optional[str] = None,
            shards: Optional[Sequence[int]] = None, checksum: bool = False,
            memory: Union[int, str] = "512M") -> Array:
    """Copy the array at ``src`` into a new array at ``dst`` with other
    chunks, within ``memory`` bytes; each chunk is read once and written
    once. ``codec``, ``format`` and ``order`` are the source's unless given;
    ``shards`` and ``checksum`` are what is given (none by default); the
    attributes and fill value are the source's. Returns the new Array."""
    source = Array(src)
    info = source._info
    source.close()
    if format is None:
        format = info["format"]
    if order is None:
        order = "F" if info["fortran_order"] else "C"
    if codec is None and format == info["format"]:
        codec = _compressor_of(info["codecs"])
    _lumio.zarr_rechunk(
        os.fspath(src), os.fspath(dst), tuple(operator.index(n) for n in chunks), codec,
        int(format), order == "F", None if shards is None else tuple(shards),
        bool(checksum), _size_bytes(memory, "memory"),
    )
    return Array(dst)


class Group:
    """A Zarr group: ``attrs`` (a dict), ``format``, the names of its
    ``arrays()`` and ``groups()``, and ``group[name]`` -> Array or Group
    (``name`` may be a path, "a/b"). Read once when opened (from its
    consolidated metadata, or a local directory's subdirectories); a remote
    group without consolidated metadata lists nothing (``listed`` is False)
    but opens its members by name."""

    def __init__(self, location):
        self._location = os.fspath(location)
        g = _lumio.zarr_group(self._location)
        self.format = g["format"]
        self.listed = g["listed"]
        self.attrs = json.loads(g["attrs"])
        self._members = dict(g["members"])

    @property
    def location(self):
        return self._location

    def arrays(self):
        """The names of the arrays directly in the group, sorted."""
        return [n for n, k in self._members.items() if k == "array"]

    def groups(self):
        """The names of the groups directly in the group, sorted."""
        return [n for n, k in self._members.items() if k == "group"]

    def __contains__(self, name):
        return name in self._members

    def __iter__(self):
        return iter(self._members)

    def __len__(self):
        return len(self._members)

    def __getitem__(self, name):
        if not isinstance(name, str) or not name or name.startswith("/") or ".." in name.split("/"):
            raise KeyError(name)
        path = self._location.rstrip("/") + "/" + name
        kind = self._members.get(name)
        if kind == "group":
            return Group(path)
        try:
            return Array(path)
        except (FileNotFoundError, NotADirectoryError):
            if kind == "array":
                raise
        try:
            return Group(path)
        except FileNotFoundError:
            raise KeyError(name) from None

    def __repr__(self):
        return f"<lumio.zarr.Group {self._location!r} arrays={self.arrays()} groups={self.groups()}>"

    def __reduce__(self):
        return (Group, (self._location,))


def open_group(location: Union[str, os.PathLike]) -> Group:
    """Open the Zarr group at ``location`` (a directory, http(s)://,
    s3://): its attributes and members. An array there raises
    NotADirectoryError, nothing there FileNotFoundError."""
    return Group(location)


def _reopen(location, cache):
    return Array(location, cache=cache or None)


def _fill_value(text, dtype):
    if dtype.kind == "b":
        return text == "true"
    if dtype.kind == "f":
        return float(text)
    return int(text)


def _check_out(out, want, dtype):
    if not isinstance(out, np.ndarray):
        raise TypeError("out must be a numpy array")
    if out.shape != want or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(
            f"out must be C-contiguous, of shape {want} and dtype {dtype} "
            f"(got {out.shape}, {out.dtype}{'' if out.flags.c_contiguous else ', not contiguous'})"
        )


class _Series:
    """Iterator of slabs along one axis (see Array.series)."""

    def __init__(self, array, axis, step, ahead):
        if not 0 <= axis < array.ndim:
            raise ValueError(f"axis {axis} of a {array.ndim}-d array")
        self._a, self._axis = array, axis
        self._step = operator.index(step) if step else (array.chunks[axis])
        self._ahead = operator.index(ahead) if ahead else 0
        if self._step <= 0 or self._ahead < 0 or self._ahead > 64:
            raise ValueError(f"series: step must be positive and ahead 0 to 64 "
                             f"(got step={self._step}, ahead={self._ahead})")
        self._s = array._h.series(
            axis, self._step, [0] * array.ndim, list(array.shape), self._ahead
        )
        self._done = False

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        a = self._a
        shape = list(a.shape)
        shape[self._axis] = min(self._step, shape[self._axis])
        buf = _empty(tuple(shape), a.dtype)
        got = self._s.next(buf.reshape(-1))
        if got is None:
            self._done = True
            self._s.close()
            raise StopIteration
        index, nbytes = got
        shape[self._axis] = nbytes // (buf.nbytes // max(shape[self._axis], 1) or 1)
        if tuple(shape) != buf.shape:  # the last slab is shorter
            buf = buf.reshape(-1)[: nbytes // a.dtype.itemsize].reshape(shape)
        return buf


def open(location: Union[str, os.PathLike], *, cache: Union[int, str, None] = None) -> Array:
    """Open the Zarr array at ``location``: a directory, an ``http(s)://``
    URL or ``s3://BUCKET/PREFIX`` (endpoint and credentials from the AWS_*
    environment variables). ``cache`` (bytes, or "512M") keeps decoded chunks
    so that reads that touch them again (random crops) do not decode again.

    Raises FileNotFoundError when nothing is there (naming a group's arrays
    when it is a group), lumio.Error for what lumio does not support."""
    return Array(location, cache=cache)
