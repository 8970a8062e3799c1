#!/usr/bin/python3
"""Seeds for fuzz_zarr_open (see its header for the input layout): arrays
v2 and v3, sharded (index at either end, with crc32c), groups, and the
hostile shapes of issue 11. Run from the repo: fuzz/make_zarr_open_corpus.py"""
import json, os, struct, zlib

import numcodecs

out = os.path.join(os.path.dirname(__file__), "corpus", "zarr_open")
os.makedirs(out, exist_ok=True)


def blob(b):
    return struct.pack("<H", len(b)) + b


def seed(name, flags, meta, blobs=(), s=0):
    text = meta if isinstance(meta, str) else json.dumps(meta)
    data = bytes([flags]) + struct.pack("<Q", s) + text.encode() + b"\0" + b"".join(map(blob, blobs))
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


def v2(shape, chunks, dtype="<u2", comp=None, **kw):
    m = {"zarr_format": 2, "shape": shape, "chunks": chunks, "dtype": dtype, "order": "C",
         "compressor": comp, "fill_value": 7, "filters": None}
    m.update(kw)
    return m


def v3(shape, chunks, codecs, dtype="uint16", **kw):
    m = {"zarr_format": 3, "node_type": "array", "shape": shape, "data_type": dtype,
         "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
         "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
         "fill_value": 7, "codecs": codecs}
    m.update(kw)
    return m


raw = bytes(range(32))
zs = numcodecs.Zstd(level=1).encode(raw)
bl = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=1).encode(raw)
seed("v2_none", 0, v2([8, 8], [4, 4]), [raw] * 4)
seed("v2_zstd", 0, v2([8, 8], [4, 4], comp={"id": "zstd", "level": 1}), [zs] * 4, s=5)
seed("v2_blosc_delta", 8, v2([8, 8], [4, 4], comp={"id": "blosc", "cname": "lz4", "clevel": 5,
     "shuffle": 1, "blocksize": 0}, filters=[{"id": "delta", "dtype": "<u2", "astype": "<u2"}]),
     [bl] * 4, s=9)
seed("v2_zlib_F_slash", 4, v2([6, 5], [4, 4], comp={"id": "zlib", "level": 1}, order="F",
     dimension_separator="/"), [zlib.compress(raw)] * 4, s=3)
# Issue 11: the row buffer and chunk count wrapped in 64 bits.
seed("v2_huge_issue11", 0, v2([1, 4294967296, 4294967296], [1, 1, 4294967296], dtype="|u1"))
seed("v2_huge_2p62", 0, v2([2**62, 2**62, 16], [1, 1, 16], dtype="|u1"), [], s=1)
seed("v2_long_f8", 0, v2([2**63 - 1], [1000], dtype="<f8"), [], s=1)
bytes_le = {"name": "bytes", "configuration": {"endian": "little"}}
seed("v3_bytes", 1, v3([8, 8], [4, 4], [bytes_le]), [raw] * 4)
seed("v3_zstd_crc", 1, v3([8, 8], [4, 4], [bytes_le, {"name": "zstd", "configuration":
     {"level": 1, "checksum": False}}, {"name": "crc32c"}]),
     [zs + struct.pack("<I", 0)] * 4, s=2)


def shard(inner, at_start, crc):
    """A shard of len(inner) inner chunks (None: missing), raw bytes."""
    n = len(inner)
    ib = 16 * n + (4 if crc else 0)
    body, entries, at = b"", [], ib if at_start else 0
    for c in inner:
        if c is None:
            entries += [2**64 - 1, 2**64 - 1]
        else:
            entries += [at, len(c)]
            body += c
            at += len(c)
    index = struct.pack("<%dQ" % (2 * n), *entries)
    if crc:
        index += struct.pack("<I", 0)  # wrong on purpose: the fuzzer finds right ones too
    return index + body if at_start else body + index


for at_start in (False, True):
    conf = {"chunk_shape": [2, 2], "codecs": [bytes_le],
            "index_codecs": [bytes_le], "index_location": "start" if at_start else "end"}
    sh = shard([raw[:8], None, raw[8:16], raw[16:24]], at_start, False)
    seed("v3_shard_" + ("start" if at_start else "end"), 1 | (8 if at_start else 0),
         v3([8, 8], [4, 4], [{"name": "sharding_indexed", "configuration": conf}]), [sh] * 4)
conf = {"chunk_shape": [1, 1, 16], "codecs": [bytes_le], "index_codecs": [bytes_le, {"name": "crc32c"}]}
seed("v3_shard_huge", 1, v3([2**62, 2**62, 16], [64, 64, 16],
     [{"name": "sharding_indexed", "configuration": conf}]), [], s=1)
seed("v3_v2keys_dot", 1, v3([8], [3], [bytes_le], chunk_key_encoding={"name": "v2",
     "configuration": {"separator": "."}}), [raw[:6]] * 3)
# Groups: v2 with consolidated metadata, v3 with it inline.
seed("v2_group", 2, {"zarr_format": 1, "metadata": {".zgroup": {"zarr_format": 2},
     "a/.zarray": v2([4], [2]), "b/c/.zarray": v2([4], [2])}})
seed("v3_group", 3, {"zarr_format": 3, "node_type": "group", "consolidated_metadata": {
     "kind": "inline", "metadata": {"a": v3([4], [2], [bytes_le]), "g": {"zarr_format": 3,
     "node_type": "group"}}}})
