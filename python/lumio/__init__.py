"""lumio: chunked data at the speed of the hardware, from Python.

Zarr arrays as numpy (``lumio.zarr``), objects in S3 or on HTTP servers
(``lumio.remote``) and the crash-proof profile stream (``lumio.stream``), on
lumio's C library: the GIL released while it works, safe after ``os.fork()``.

    import lumio.zarr
    a = lumio.zarr.open("data/temperature.zarr")
    crop = a[0, 100:164, 100:164]          # a numpy array, filled in place
"""

from . import _lumio
from ._lumio import Error

__version__ = _lumio.version()
"""The C library's version (the package is built with it)."""

__all__ = ["Error", "__version__", "redact"]


def redact(text: str) -> str:
    """``text`` with the password and signing parameters of every URL in it
    replaced by ``***`` (what lumio does to every message it makes)."""
    return _lumio.redact(text)
