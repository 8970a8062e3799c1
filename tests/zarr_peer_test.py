#!/usr/bin/python3
"""lumio against zarr-python 2.13 and numpy (Debian's python3-zarr).

zarr-python writes v2 arrays of every supported dtype, byte order, order,
compressor, filter, fill value, dimension separator and edge-chunk shape,
some chunks left unwritten; `lumio zarr cat` reads random regions of them and
must give numpy's bytes exactly. With --http the arrays are served by the
nginx of tests/http_env.sh and read by URL.

usage: zarr_peer_test.py LUMIO_CLI [--http]
"""
import json
import os
import random
import subprocess
import sys
import tempfile

import warnings

import numcodecs
import numpy as np
import zarr

LUMIO = sys.argv[1]
HTTP = "--http" in sys.argv
failures = 0


def check(name, ok, detail=""):
    global failures
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else "  " + detail))
    if not ok:
        failures += 1


def lumio(*args):
    return subprocess.run([LUMIO, *args], capture_output=True)


DTYPES = ["|b1", "|i1", "<i2", ">i2", "<i4", ">i4", "<i8", ">i8", "|u1", "<u2", ">u2",
          "<u4", ">u8", "<f4", ">f4", "<f8", ">f8"]
COMPRESSORS = [
    None,
    numcodecs.Zstd(level=1),
    numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE),
    numcodecs.Blosc("zstd", 3, numcodecs.Blosc.BITSHUFFLE),
    numcodecs.Blosc("blosclz", 9, numcodecs.Blosc.NOSHUFFLE),
    numcodecs.Blosc("zlib", 1, numcodecs.Blosc.SHUFFLE),
    numcodecs.Blosc("lz4hc", 4, numcodecs.Blosc.AUTOSHUFFLE),
    numcodecs.Zlib(level=5),
    numcodecs.GZip(level=6),
]
SHAPES = [((1000,), (64,)), ((37, 53), (8, 16)), ((20, 13, 9), (7, 5, 4)), ((5, 6, 7, 3), (2, 4, 3, 3)),
          ((100, 1), (33, 1))]


def data_for(dtype, shape, rng):
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    if dt.kind == "f":
        return (rng.standard_normal(shape) * 1000).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=shape, dtype=dt.newbyteorder("=")).astype(dt)


def fill_for(dtype, i):
    kind = np.dtype(dtype).kind
    if kind == "f":
        return [0.0, float("nan"), -float("inf"), 1.5, None][i % 5]
    if kind == "b":
        return [False, True][i % 2]
    return [0, 7, None][i % 3]


def main():
    warnings.simplefilter("ignore")  # numpy on NaN deltas
    rng = np.random.default_rng(1234)
    pick = random.Random(99)
    root = os.environ["LUMIO_HTTP_ROOT" if HTTP else "LUMIO_ZARR_TEST_ROOT"]
    base = os.environ["LUMIO_HTTP_URL"] if HTTP else root
    cases = []
    n = 0
    for di, dtype in enumerate(DTYPES):
        for variant in range(3):
            n += 1
            shape, chunks = SHAPES[(di + variant) % len(SHAPES)]
            comp = COMPRESSORS[(di * 3 + variant) % len(COMPRESSORS)]
            order = "CF"[(di + variant) % 2]
            sep = "./"[(di // 2 + variant) % 2]
            fill = fill_for(dtype, di + variant)
            filters = None
            if variant == 2 and np.dtype(dtype).kind in "iuf":
                filters = [numcodecs.Delta(dtype=dtype)]
            name = f"a{n:03d}.zarr"
            z = zarr.open_array(os.path.join(root, name), mode="w", shape=shape, chunks=chunks,
                                dtype=dtype, compressor=comp, order=order, fill_value=fill,
                                filters=filters, dimension_separator=sep)
            data = data_for(dtype, shape, rng)
            # Leave some chunks unwritten: write a sub-box only.
            # (With fill_value null missing chunks are undefined: write them all.)
            partial = variant == 1 and fill is not None
            box = tuple(slice(0, max(1, s - s // 3)) for s in shape) if partial else ...
            z[box] = data[box] if box is not ... else data
            desc = f"{name} {dtype} {order} {comp and comp.codec_id}{'+delta' if filters else ''} sep={sep} fill={fill}"
            cases.append((name, z, desc))
    for name, z, desc in cases:
        loc = f"{base}/{name}"
        ok = True
        detail = ""
        # Whole array, then random regions.
        regions = [None]
        for _ in range(4):
            reg = []
            for s in z.shape:
                a = pick.randrange(0, s)
                b = pick.randrange(a + 1, s + 1)
                reg.append((a, b))
            regions.append(reg)
        for reg in regions:
            args = ["zarr", "cat", loc]
            if reg:
                args += ["--region", ",".join(f"{a}:{b}" for a, b in reg)]
                want = z[tuple(slice(a, b) for a, b in reg)].tobytes()
            else:
                want = z[...].tobytes()
            r = lumio(*args)
            if r.returncode != 0 or r.stdout != want:
                ok = False
                detail = f"region {reg}: rc={r.returncode} {r.stderr.decode().strip()} " \
                         f"({len(r.stdout)} bytes, want {len(want)})"
                break
        check("read " + desc, ok, detail)

    # lumio writes, zarr-python reads: every dtype, the codecs, both orders
    # (over HTTP: PUTs to nginx's WebDAV location, read from its directory).
    if True:
        codecs = ["zstd:5", "blosc:lz4:5:shuffle", "blosc:zstd:1:bitshuffle", "blosc:blosclz:9:noshuffle",
                  "gzip:6", "zlib:1", "none"]
        for i, dtype in enumerate(DTYPES):
            shape, chunks = SHAPES[i % len(SHAPES)]
            codec = codecs[i % len(codecs)]
            order = "CF"[i % 2]
            data = data_for(dtype, shape, rng)
            raw = os.path.join(root, f"w{i}.raw")
            data.tofile(raw)
            path = os.path.join(root, f"w{i}.zarr")
            fill = {"b": "true", "f": "nan", "i": "-3", "u": "9"}[np.dtype(dtype).kind]
            r = lumio("zarr", "create", f"{base}/dav/w{i}.zarr" if HTTP else path,
                      "--shape", ",".join(map(str, shape)),
                      "--chunks", ",".join(map(str, chunks)), "--dtype", dtype, "--codec", codec,
                      "--order", order, "--fill", fill, "--from", raw)
            ok = r.returncode == 0
            detail = r.stderr.decode()
            if ok:
                z = zarr.open_array(path, mode="r")
                got = z[...]
                ok = (got.dtype == np.dtype(dtype) and got.tobytes() == data.tobytes()
                      and z.order == order)
                want_fill = {"b": True, "f": None, "i": -3, "u": 9}[np.dtype(dtype).kind]
                if want_fill is None:
                    ok = ok and np.isnan(z.fill_value)
                else:
                    ok = ok and z.fill_value == want_fill
                detail = f"dtype {got.dtype} order {z.order} fill {z.fill_value}"
            check(f"zarr-python reads lumio's {dtype} {order} {codec}", ok, detail)

    # The delta filter on write: each stored chunk, decompressed, is exactly
    # what numcodecs' Delta makes of that chunk (floats too, where the sum
    # of differences need not give the values back), and zarr-python reads
    # integer arrays back exactly.
    if not HTTP:
        for i, dtype in enumerate(["<i2", "|u1", ">i8", "<u4", "<f4", ">f8"]):
            data = data_for(dtype, (37, 21), rng)
            raw = os.path.join(root, f"d{i}.raw")
            data.tofile(raw)
            path = os.path.join(root, f"d{i}.zarr")
            codec = ["delta,zstd:3", "delta,zlib:1", "delta,blosc:lz4:5:shuffle"][i % 3]
            r = lumio("zarr", "create", path, "--shape", "37,21", "--chunks", "16,21",
                      "--dtype", dtype, "--codec", codec, "--from", raw)
            ok, detail = r.returncode == 0, r.stderr.decode()
            if ok:
                z = zarr.open_array(path, mode="r")
                delta = numcodecs.Delta(dtype=dtype)
                for c in range(3):
                    block = np.zeros((16, 21), dtype=dtype)  # the edge chunk: fill 0
                    rows = data[c * 16:(c + 1) * 16]
                    block[:len(rows)] = rows
                    stored = z.compressor.decode(open(os.path.join(path, f"{c}.0"), "rb").read())
                    if bytes(stored) != delta.encode(block).tobytes():
                        ok, detail = False, f"chunk {c}.0 differs from numcodecs' Delta"
                if ok and np.dtype(dtype).kind != "f" and z[...].tobytes() != data.tobytes():
                    ok, detail = False, "zarr-python reads other values"
                if ok and z.filters != [delta]:
                    ok, detail = False, f"filters {z.filters}"
            check(f"lumio writes delta filters as numcodecs does ({dtype} {codec})", ok, detail)

    # Rechunking: zarr-python's array into new chunks, codecs and formats by
    # lumio, read back by zarr-python (v2) and compared; the peak resident
    # memory of the process stays under --memory.
    if not HTTP:
        src = os.path.join(root, "rsrc.zarr")
        data = rng.integers(0, 4000, size=(96, 200, 160), dtype="<u2")  # 6 MiB
        z = zarr.open_array(src, mode="w", shape=data.shape, chunks=(32, 32, 32), dtype="<u2",
                            compressor=numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE))
        z[:] = data
        big = os.path.join(root, "rbig.zarr")  # 96 MiB, to measure memory against a 32M cap
        bigdata = np.broadcast_to(np.arange(256 * 256, dtype="<u4").reshape(256, 256), (384, 256, 256))
        zb = zarr.open_array(big, mode="w", shape=bigdata.shape, chunks=(64, 64, 64), dtype="<u4",
                             compressor=numcodecs.Zstd(1))
        zb[:] = bigdata
        for args, fmt in [(["--chunks", "16,200,160", "--codec", "zstd:3"], 2),
                          (["--chunks", "96,8,8", "--codec", "gzip:1", "--order", "F"], 2),
                          (["--chunks", "8,50,40", "--shard", "32,200,160", "--format", "3"], 3),
                          (["--chunks", "7,13,160", "--format", "3", "--checksum"], 3)]:
            dst = os.path.join(root, f"r{len(args)}{fmt}{args[1].replace(',', '_')}.zarr")
            r = lumio("zarr", "rechunk", src, dst, *args)
            ok, detail = r.returncode == 0, r.stderr.decode()
            if ok and fmt == 2:
                got = zarr.open_array(dst, mode="r")
                ok = got[...].tobytes() == data.tobytes() and list(got.chunks) == [
                    int(v) for v in args[1].split(",")]
                detail = "zarr-python reads other values"
            elif ok:
                r = lumio("zarr", "cat", dst)
                ok, detail = r.stdout == data.tobytes(), "lumio reads other values"
            check("rechunk " + " ".join(args), ok, detail)
        dst = os.path.join(root, "rbig2.zarr")
        # GNU time measures it: a child of this (large) Python process would
        # count Python's pages until its exec.
        rss_file = os.path.join(root, "rss")
        r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file, LUMIO, "zarr", "rechunk",
                            big, dst, "--chunks", "8,256,256", "--memory", "32M"],
                           capture_output=True)
        peak = int(open(rss_file).read().split()[-1])
        # (Under AddressSanitizer the shadow memory and quarantine count too:
        # there only the result is checked.)
        sanitized = os.environ.get("LUMIO_SANITIZED") == "1"
        ok = r.returncode == 0 and (sanitized or peak < 32 * 1024)
        check(f"rechunk 96 MiB under --memory 32M (peak {peak} KiB"
              f"{', not checked under ASan' if sanitized else ''})", ok, r.stderr.decode())
        if ok:
            got = zarr.open_array(dst, mode="r")
            check("rechunked under the cap reads back", got[...].tobytes() == bigdata.tobytes())

    # lumio zarr bench: one JSON object per pattern, counting the right bytes.
    if not HTTP:
        src = os.path.join(root, "rsrc.zarr")
        nbytes = 96 * 200 * 160 * 2
        for pattern, extra, want in [("all", [], nbytes), ("series", [], nbytes),
                                     ("crops", ["--crop", "10,20,30", "--count", "7"],
                                      7 * 10 * 20 * 30 * 2)]:
            r = lumio("zarr", "bench", src, "--pattern", pattern, *extra)
            try:
                d = json.loads(r.stdout)
                ok = d["bytes"] == want and d["seconds"] > 0 and d["mib_per_s"] > 0
                ok = ok and (pattern != "crops" or (d["crops"] == 7 and d["crops_per_s"] > 0))
            except ValueError:
                ok, d = False, r.stderr.decode()
            check(f"bench --pattern {pattern}", ok, d)
        r = lumio("zarr", "bench", src, "--crop", "1,2", "--pattern", "crops")
        check("bench: a crop of the wrong rank", r.returncode == 2 and b"--crop" in r.stderr,
              r.stderr)

    # A uint64 fill value beyond int64 (JSON integers past jansson's range).
    path = os.path.join(root, "u64fill.zarr")
    zarr.open_array(path, mode="w", shape=(10,), chunks=(4,), dtype="<u8",
                    fill_value=2**64 - 1)[0:4] = 5
    r = lumio("zarr", "cat", f"{base}/u64fill.zarr")
    want = zarr.open_array(path, mode="r")[...].tobytes()
    check("uint64 fill value 2^64-1", r.returncode == 0 and r.stdout == want, r.stderr)

    # info names what it read.
    name, z, _ = cases[0]
    r = lumio("zarr", "info", f"{base}/{name}")
    out = r.stdout.decode()
    check("info", r.returncode == 0 and z.dtype.str in out and
          " x ".join(map(str, z.shape)) in out, out)

    # Errors: a clear line naming what is wrong, exit 1.
    bad = os.path.join(root, "bad.zarr")
    zarr.open_array(bad, mode="w", shape=(4,), chunks=(2,), dtype="<u2",
                    compressor=numcodecs.LZMA())[:] = 1
    r = lumio("zarr", "cat", f"{base}/bad.zarr")
    check("unsupported codec named", r.returncode == 1 and b"lzma" in r.stderr, r.stderr)
    zarr.open_array(os.path.join(root, "dt.zarr"), mode="w", shape=(4,), chunks=(2,),
                    dtype="<c8")
    r = lumio("zarr", "info", f"{base}/dt.zarr")
    check("unsupported dtype named", r.returncode == 1 and b"<c8" in r.stderr, r.stderr)
    r = lumio("zarr", "info", f"{base}/nothing.zarr")
    check("not an array", r.returncode == 1 and b"not a Zarr array" in r.stderr, r.stderr)
    # A group where an array was expected: said, with its arrays named (from
    # .zmetadata, or locally by walking its subgroups; over HTTP without
    # consolidated metadata they cannot be listed).
    g = zarr.open_group(os.path.join(root, "grp.zarr"), mode="w")
    g.create_dataset("b", data=np.arange(6, dtype="<u2"), chunks=(4,))
    g.create_dataset("sub/a", data=np.arange(6, dtype="<f4"), chunks=(4,))
    g.create_group("empty")
    for consolidated in (False, True):
        if consolidated:
            zarr.consolidate_metadata(os.path.join(root, "grp.zarr"))
        r = lumio("zarr", "info", f"{base}/grp.zarr")
        if HTTP and not consolidated:
            want = b"a Zarr v2 group, not an array (it has no consolidated metadata"
        else:
            want = b"a Zarr v2 group, not an array; its arrays: b, sub/a\n"
        check(f"a group named with its arrays ({'consolidated' if consolidated else 'plain'})",
              r.returncode == 1 and want in r.stderr, r.stderr)
    r = lumio("zarr", "info", f"{base}/grp.zarr/empty")
    check("an empty group", r.returncode == 1 and (b"(it holds no arrays)" in r.stderr or
                                                   (HTTP and b"no consolidated" in r.stderr)),
          r.stderr)
    if not HTTP:  # groups nested past the walk's depth: it says where it stopped
        deep = zarr.open_group(os.path.join(root, "deep.zarr"), mode="w")
        deep.create_dataset("top", data=np.arange(3, dtype="<u1"))
        deep.create_dataset("/".join("g" * 20) + "/a", data=np.arange(3, dtype="<u1"))
        r = lumio("zarr", "info", f"{base}/deep.zarr")
        check("a deep group: the walk says where it stopped",
              r.returncode == 1 and b"its arrays: top (the walk stopped after 16 levels" in r.stderr,
              r.stderr)
    r = lumio("zarr", "cat", f"{base}/grp.zarr/sub/a")
    check("an array in a group", r.returncode == 0 and
          r.stdout == np.arange(6, dtype="<f4").tobytes(), r.stderr)
    z = zarr.open_array(os.path.join(root, "corrupt.zarr"), mode="w", shape=(8,), chunks=(4,),
                        dtype="<u4", compressor=numcodecs.Zstd())
    z[:] = np.arange(8)
    with open(os.path.join(root, "corrupt.zarr", "1"), "r+b") as f:
        f.seek(5)
        f.write(b"\xff\xff\xff")
    r = lumio("zarr", "cat", f"{base}/corrupt.zarr")
    check("corrupt chunk named", r.returncode == 1 and b"corrupt.zarr/1" in r.stderr, r.stderr)
    r = lumio("zarr", "cat", f"{base}/{cases[0][0]}", "--region", "0:99999")
    check("region outside", r.returncode == 2 and b"outside" in r.stderr, r.stderr)

    print(f"zarr_peer{' (http)' if HTTP else ''}: {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    if HTTP:
        sys.exit(main())
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        os.environ["LUMIO_ZARR_TEST_ROOT"] = d
        sys.exit(main())
