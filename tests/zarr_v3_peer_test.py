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
        return 0
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
    print(f"zarr_v3_peer: {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        sys.exit(main(d))
