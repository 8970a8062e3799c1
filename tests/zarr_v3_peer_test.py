#!/usr/bin/python3
"""lumio against zarrita (npm), a JavaScript Zarr v3 implementation run with Node.

Both directions, on every data type:
- lumio writes v3 arrays (zstd, gzip, blosc, none; crc32c; C and F; both byte
  orders) and zarrita reads them: the values must be numpy's;
- zarrita writes v3 arrays (bytes in either order, transpose, zstd or blosc;
  the codecs zarrita can encode) and lumio reads random regions of them.

usage: zarr_v3_peer_test.py LUMIO_CLI NODE_DIR
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import numpy as np

LUMIO, NODE_DIR = sys.argv[1], sys.argv[2]
PEER = os.path.join(NODE_DIR, "zarrita_peer.mjs")
failures = 0

TYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
         "float32", "float64"]
SHAPES = [((1000,), (64,)), ((37, 53), (8, 16)), ((20, 13, 9), (7, 5, 4))]


def check(name, ok, detail=""):
    global failures
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else "  " + str(detail)[:400]))
    if not ok:
        failures += 1


def run(*args):
    return subprocess.run(list(args), capture_output=True)


def values(t, shape, rng):
    if t == "bool":
        return rng.random(shape) < 0.5
    dt = np.dtype(t)
    if dt.kind == "f":
        return (rng.standard_normal(shape) * 100).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=shape, dtype=dt)


def main(root):
    if not os.path.exists(os.path.join(NODE_DIR, "node_modules", "zarrita")):
        print("SKIP: zarrita is not installed (scripts/setup-node.sh)")
        return 77
    rng = np.random.default_rng(7)
    pick = random.Random(3)
    codecs = ["zstd:3", "gzip:5", "blosc:lz4:5:shuffle", "none", "blosc:zstd:1:bitshuffle"]
    # lumio writes, zarrita reads.
    for i, t in enumerate(TYPES):
        shape, chunks = SHAPES[i % len(SHAPES)]
        order = "CF"[i % 2]
        big = i % 3 == 1 and t not in ("bool", "int8", "uint8")
        codec = codecs[i % len(codecs)]
        checksum = i % 2 == 0
        data = values(t, shape, rng)
        dt = np.dtype(t).newbyteorder(">" if big else "<") if t != "bool" else np.dtype("|b1")
        raw = os.path.join(root, f"l{i}.raw")
        data.astype(dt).tofile(raw)
        path = os.path.join(root, f"l{i}.zarr")
        args = [LUMIO, "zarr", "create", path, "--format", "3", "--shape", ",".join(map(str, shape)),
                "--chunks", ",".join(map(str, chunks)), "--dtype", dt.str, "--codec", codec,
                "--order", order, "--from", raw]
        if checksum:
            args.append("--checksum")
        r = run(*args)
        ok, detail = r.returncode == 0, r.stderr.decode()
        if ok:
            out = os.path.join(root, f"l{i}.out")
            r = run("node", PEER, "read", path, out)
            ok, detail = r.returncode == 0, r.stderr.decode()
            if ok:
                got = np.fromfile(out, dtype=np.dtype(t).newbyteorder("<") if t != "bool" else "u1")
                ok = got.tobytes() == data.astype(got.dtype).ravel().tobytes()
                detail = "values differ"
        desc = f"{t} {'>' if big else '<'} {order} {codec}{' crc32c' if checksum else ''}"
        check("zarrita reads lumio's " + desc, ok, detail)

    # zarrita writes, lumio reads.
    for i, t in enumerate(TYPES):
        if t == "bool":
            continue  # zarrita's writer takes typed arrays
        shape, chunks = SHAPES[(i + 1) % len(SHAPES)]
        big = i % 2 == 0 and np.dtype(t).itemsize > 1
        f_order = i % 3 == 0 and len(shape) > 1
        data = values(t, shape, rng)
        codec_list = []
        if f_order:
            codec_list.append({"name": "transpose",
                               "configuration": {"order": list(range(len(shape)))[::-1]}})
        codec_list.append({"name": "bytes", "configuration": {"endian": "big" if big else "little"}})
        if i % 2:
            codec_list.append({"name": "zstd", "configuration": {"level": 3, "checksum": False}})
        else:
            codec_list.append({"name": "blosc", "configuration": {
                "cname": "lz4", "clevel": 5, "shuffle": "shuffle",
                "typesize": np.dtype(t).itemsize, "blocksize": 0}})
        fill = 5 if np.dtype(t).kind in "iu" else 1.5
        spec = {"shape": list(shape), "chunk_shape": list(chunks), "data_type": t,
                "codecs": codec_list, "fill_value": fill}
        spec_path = os.path.join(root, f"j{i}.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        raw = os.path.join(root, f"j{i}.raw")
        data.astype(np.dtype(t).newbyteorder("<")).tofile(raw)
        path = os.path.join(root, f"j{i}.zarr")
        r = run("node", PEER, "write", path, spec_path, raw)
        ok, detail = r.returncode == 0, r.stderr.decode()
        stored = data.astype(np.dtype(t).newbyteorder(">" if big else "<"))
        for _ in range(4 if ok else 0):
            reg = []
            for s in shape:
                a = pick.randrange(0, s)
                reg.append((a, pick.randrange(a + 1, s + 1)))
            r = run(LUMIO, "zarr", "cat", path, "--region", ",".join(f"{a}:{b}" for a, b in reg))
            want = stored[tuple(slice(a, b) for a, b in reg)].tobytes()
            if r.returncode != 0 or r.stdout != want:
                ok, detail = False, f"region {reg}: {r.stderr.decode()}"
                break
        desc = f"{t} {'>' if big else '<'} {'F' if f_order else 'C'} {codec_list[-1]['name']}"
        check("lumio reads zarrita's " + desc, ok, detail)
    # Sharded: lumio writes (index with crc32c), zarrita reads; lumio reads regions.
    for i, (t, codec) in enumerate([("uint16", "zstd:3"), ("float32", "blosc:lz4:5:shuffle"),
                                    ("int64", "gzip:1"), ("uint8", "none")]):
        shape, chunks, shard = (40, 36, 20), (4, 6, 5), (8, 12, 20)
        if i % 2:
            shape, chunks, shard = (50, 70), (5, 7), (10, 35)
        data = values(t, shape, rng)
        raw = os.path.join(root, f"s{i}.raw")
        data.astype(np.dtype(t).newbyteorder("<")).tofile(raw)
        path = os.path.join(root, f"s{i}.zarr")
        order = "CF"[i % 2]  # F: the inner chunks transposed, the shard in C order
        r = run(LUMIO, "zarr", "create", path, "--format", "3", "--shape", ",".join(map(str, shape)),
                "--chunks", ",".join(map(str, chunks)), "--shard", ",".join(map(str, shard)),
                "--dtype", t, "--codec", codec, "--order", order, "--from", raw)
        ok, detail = r.returncode == 0, r.stderr.decode()
        if ok:
            out = os.path.join(root, f"s{i}.out")
            r = run("node", PEER, "read", path, out)
            ok = r.returncode == 0 and open(out, "rb").read() == open(raw, "rb").read()
            detail = r.stderr.decode() or "values differ"
        check(f"zarrita reads lumio's sharded {t} {order} {codec}", ok, detail)
        stored = data.astype(np.dtype(t).newbyteorder("<"))
        for _ in range(4 if ok else 0):
            reg = []
            for sz in shape:
                a = pick.randrange(0, sz)
                reg.append((a, pick.randrange(a + 1, sz + 1)))
            r = run(LUMIO, "zarr", "cat", path, "--region", ",".join(f"{a}:{b}" for a, b in reg))
            if r.returncode != 0 or r.stdout != stored[tuple(slice(a, b) for a, b in reg)].tobytes():
                ok, detail = False, f"region {reg}: {r.stderr.decode()}"
                break
        check(f"lumio reads regions of its sharded {t} {codec}", ok, detail)
        if i == 0:
            r = run(LUMIO, "zarr", "info", path)
            dims = lambda v: " x ".join(map(str, v))
            out = r.stdout.decode()
            check("info shows the shard and the chunk shapes",
                  r.returncode == 0 and f"shards      {dims(shard)}\n" in out and
                  f"chunks      {dims(chunks)}\n" in out, out)

    # A shard built here by hand from the spec: index at the start, inner
    # chunks raw and out of order, some missing; lumio must read it right.
    path = os.path.join(root, "hand.zarr")
    os.makedirs(os.path.join(path, "c", "0"))
    meta = {"zarr_format": 3, "node_type": "array", "shape": [6, 8], "data_type": "int32",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [6, 4]}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": -1, "attributes": {},
            "codecs": [{"name": "sharding_indexed", "configuration": {
                "chunk_shape": [3, 2],
                "codecs": [{"name": "bytes", "configuration": {"endian": "big"}}],
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
                "index_location": "start"}}]}
    with open(os.path.join(path, "zarr.json"), "w") as f:
        json.dump(meta, f)
    full = np.arange(48, dtype=">i4").reshape(6, 8)
    want = full.copy()
    for c0 in range(2):  # shard (0, 0): columns 0..3; inner grid 2 x 2
        for c1 in range(2):
            if (c0, c1) == (1, 0):
                want[3:6, 0:2] = -1
    want[:, 4:8] = -1  # shard (0, 1) never written
    index, body = [], b""
    order = [(1, 1), (0, 0), (0, 1)]  # stored out of order; (1, 0) missing
    offsets = {}
    for c0, c1 in order:
        blk = full[c0 * 3:(c0 + 1) * 3, c1 * 2:(c1 + 1) * 2].astype(">i4").tobytes()
        offsets[(c0, c1)] = (4 * 16 + len(body), len(blk))
        body += blk
    for c0 in range(2):
        for c1 in range(2):
            index += list(offsets.get((c0, c1), (2**64 - 1, 2**64 - 1)))
    with open(os.path.join(path, "c", "0", "0"), "wb") as f:
        f.write(np.array(index, dtype="<u8").tobytes() + body)
    r = run(LUMIO, "zarr", "cat", path)
    check("lumio reads a hand-built shard (index at start, missing inner chunks)",
          r.returncode == 0 and r.stdout == want.tobytes(), r.stderr.decode())

    # A v3 group where an array was expected: said, with its arrays named,
    # by walking its subgroups or from inline consolidated metadata.
    path = os.path.join(root, "grp.zarr")
    r = run("node", PEER, "group", path)
    check("zarrita makes a group", r.returncode == 0, r.stderr.decode())
    r = run(LUMIO, "zarr", "info", path)
    check("a v3 group named with its arrays",
          r.returncode == 1 and b"a Zarr v3 group, not an array; its arrays: a, sub/b\n" in r.stderr,
          r.stderr.decode())
    r = run(LUMIO, "zarr", "info", os.path.join(path, "e"))
    check("an empty v3 group", r.returncode == 1 and b"(it holds no arrays)" in r.stderr,
          r.stderr.decode())
    path = os.path.join(root, "cons.zarr")
    os.makedirs(path)
    arr = {"zarr_format": 3, "node_type": "array", "shape": [2], "data_type": "uint8"}
    with open(os.path.join(path, "zarr.json"), "w") as f:
        json.dump({"zarr_format": 3, "node_type": "group", "attributes": {},
                   "consolidated_metadata": {"kind": "inline", "must_understand": False,
                                             "metadata": {"x": arr, "g": {"zarr_format": 3,
                                                          "node_type": "group"}, "g/y": arr}}},
                  f)
    r = run(LUMIO, "zarr", "info", path)
    check("a v3 group's consolidated metadata lists its arrays",
          r.returncode == 1 and b"its arrays: g/y, x\n" in r.stderr, r.stderr.decode())

    print(f"zarr_v3_peer: {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        sys.exit(main(d))
