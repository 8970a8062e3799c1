"""Chunks as other Zarr implementations write them, which zarr-python's
numcodecs reads (or refuses) in its own way; lumio must agree.

Run once with /usr/bin/python3 (numpy, numcodecs) and the zstd command;
the output is committed as regression data:
  blosc_z5     blosc chunks followed by spare bytes: z5 writes the blosc
               output buffer (nbytes + BLOSC_MAX_OVERHEAD) whole.
  zstd_nosize  zstd frames without their content size (streaming encoders:
               the zstd command from a pipe, tensorstore's riegeli writer).
  zstd_tail    a zstd frame followed by zero bytes.
  gzip_z5      "gzip" in .zarray, but zlib streams in the chunks (z5);
               zarr-python refuses them.
Each array is 40x30 <u2 in 16x16 chunks; expected.raw holds its bytes.
"""
import json
import os
import subprocess
import zlib

import numcodecs
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
data = (np.arange(40 * 30, dtype="<u2") * 7 % 1000).reshape(40, 30)
data.tofile(os.path.join(HERE, "expected.raw"))


def chunks():
    for i in range(3):
        for j in range(2):
            c = np.zeros((16, 16), "<u2")  # edge chunks padded with the fill value
            part = data[i * 16:(i + 1) * 16, j * 16:(j + 1) * 16]
            c[:part.shape[0], :part.shape[1]] = part
            yield f"{i}.{j}", c.tobytes()


def array(name, compressor, encode):
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    meta = {"zarr_format": 2, "shape": [40, 30], "chunks": [16, 16], "dtype": "<u2",
            "order": "C", "fill_value": 0, "filters": None, "compressor": compressor}
    with open(os.path.join(d, ".zarray"), "w") as f:
        json.dump(meta, f, indent=4)
    for key, raw in chunks():
        with open(os.path.join(d, key), "wb") as f:
            f.write(encode(raw))


def blosc_z5(raw):
    b = numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE).encode(raw)
    return bytes(b) + b"\0" * (len(raw) + 16 - len(b))


def zstd_nosize(raw):
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=raw, capture_output=True,
                          check=True).stdout


array("blosc_z5", {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
      blosc_z5)
array("zstd_nosize", {"id": "zstd", "level": 3}, zstd_nosize)
array("zstd_tail", {"id": "zstd", "level": 3}, lambda raw: bytes(numcodecs.Zstd(3).encode(raw))
      + b"\0" * 11)
array("gzip_z5", {"id": "gzip", "level": 5}, lambda raw: zlib.compress(raw, 5))
