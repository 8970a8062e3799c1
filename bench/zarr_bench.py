#!/usr/bin/python3
"""Zarr benchmark: lumio against zarr-python 2.13 on the same arrays, in one run.

Arrays (made once, kept in bench/work/zarr/): a uint16 array of SIZE bytes
(default 1 GiB, shape N x 512 x 1024) with 64x64x64 zstd chunks, written by
zarr-python, and the same data in a v3 array of 256^3 shards of 64^3 zstd
chunks, written by lumio. The data is a smooth field plus noise (it compresses
about 2-3x, as measured fields do).

Workloads (medians of --runs, page cache warm):
  all     the whole array: lumio zarr bench --pattern all, and zarr-python z[:];
          the limit: reading the stored chunks with the engine (lumio bench read)
          plus decompressing them on every core (numcodecs, in threads)
  crops   --count random 64^3 crops: lumio zarr bench --pattern crops (16 per
          lumio_zarr_read_batch, as a training loader asks), and a
          zarr-python loop of z[a:a+64, b:b+64, c:c+64]
  rechunk to 16x256x256: lumio zarr rechunk (with --memory, peak RSS measured
          by GNU time) and zarr.copy-like slab loop in zarr-python

usage: bench/zarr_bench.py [--runs R] [--size BYTES] [--count N] [--only all,crops,rechunk]
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numcodecs
import numpy as np
import zarr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUMIO = os.path.join(ROOT, "build", "lumio")
WORK = os.path.join(ROOT, "bench", "work", "zarr")


def log(*a):
    print(f"[zarr {time.strftime('%H:%M:%S')}]", *a, file=sys.stderr, flush=True)


def lumio_json(*args):
    r = subprocess.run([LUMIO, *args], check=True, capture_output=True, text=True)
    return json.loads(r.stdout)


def make_arrays(size):
    rows = size // (512 * 1024 * 2)
    shape = (rows, 512, 1024)
    v2 = os.path.join(WORK, f"v2-{rows}.zarr")
    v3 = os.path.join(WORK, f"v3-sharded-{rows}.zarr")
    if not os.path.exists(os.path.join(v2, ".zarray")):
        log(f"writing {v2} with zarr-python ({size >> 20} MiB)")
        shutil.rmtree(v2, ignore_errors=True)
        z = zarr.open_array(v2, mode="w", shape=shape, chunks=(64, 64, 64), dtype="<u2",
                            compressor=numcodecs.Zstd(level=3))
        rng = np.random.default_rng(1)
        y = np.arange(512, dtype=np.float32)[:, None]
        x = np.arange(1024, dtype=np.float32)[None, :]
        for t in range(0, rows, 64):
            n = min(64, rows - t)
            tt = np.arange(t, t + n, dtype=np.float32)[:, None, None]
            field = 20000 + 8000 * np.sin(tt / 50 + y / 40) * np.cos(x / 60)
            z[t:t + n] = (field + rng.normal(0, 30, size=(n, 512, 1024))).astype("<u2")
    if not os.path.exists(os.path.join(v3, "zarr.json")):
        log(f"writing {v3} with lumio (shards of 256^3)")
        shutil.rmtree(v3, ignore_errors=True)
        subprocess.run([LUMIO, "zarr", "rechunk", v2, v3, "--format", "3", "--chunks", "64,64,64",
                        "--shard", "256,256,256", "--codec", "zstd:3", "--memory", "2G"],
                       check=True)
    return v2, v3, shape


def warm(path):
    subprocess.run(["sh", "-c", f"find '{path}' -type f -print0 | xargs -0 cat > /dev/null"],
                   check=True)


def median(xs):
    return statistics.median(xs)


def _decode_files(files):
    """In a worker process: read the files, then time decoding them alone."""
    codec = numcodecs.Zstd()
    blobs = [open(f, "rb").read() for f in files]
    t = time.perf_counter()
    for b in blobs:
        codec.decode(b)
    return time.perf_counter() - t


def limit_seconds(path):
    """Engine read of the stored bytes, plus decompression on every core (one
    process per core, each timing only its own decoding; the slowest counts)."""
    read = lumio_json("bench", "read", "--paths", "--block", "4M", path)["seconds"]
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs
                   if not f.startswith("."))
    n = os.cpu_count()
    with concurrent.futures.ProcessPoolExecutor(n) as ex:
        dec = max(ex.map(_decode_files, [files[i::n] for i in range(n)]))
    return read, dec


def bench_all(v2, v3, shape, runs, rows):
    nbytes = shape[0] * shape[1] * shape[2] * 2
    lum, lum3, zp = [], [], []
    z = zarr.open_array(v2, mode="r")
    for r in range(runs):
        lum.append(lumio_json("zarr", "bench", v2, "--pattern", "all")["seconds"])
        lum3.append(lumio_json("zarr", "bench", v3, "--pattern", "all")["seconds"])
        t = time.perf_counter()
        a = z[...]
        zp.append(time.perf_counter() - t)
        del a
        log(f"all run {r + 1}/{runs}: lumio {lum[-1]:.2f} s, sharded {lum3[-1]:.2f} s, "
            f"zarr-python {zp[-1]:.2f} s")
    reads, decs = zip(*[limit_seconds(v2) for _ in range(runs)])
    lim = median(reads) + median(decs)
    mib = nbytes / 2**20
    rows.append(("read all (v2 64^3 zstd)", f"{mib / median(lum):.0f} MiB/s",
                 f"{mib / median(zp):.0f} MiB/s", median(zp) / median(lum), ">= 5x zarr-python"))
    rows.append(("read all vs the engine + decompression limit",
                 f"{median(lum):.2f} s", f"{lim:.2f} s (read {median(reads):.2f} + decode "
                 f"{median(decs):.2f})", lim / median(lum), ">= 0.7x"))
    rows.append(("read all, sharded (v3 256^3 shards)", f"{mib / median(lum3):.0f} MiB/s",
                 f"{mib / median(zp):.0f} MiB/s", median(zp) / median(lum3), ">= 5x zarr-python"))


def bench_crops(v2, v3, shape, runs, count, rows):
    """Random 64^3 crops, 16 per lumio_zarr_read_batch; lumio also with a
    decoded-chunk cache of half the array (--cache), which zarr-python 2.13
    has no counterpart of (its LRUStoreCache keeps encoded bytes)."""
    z = zarr.open_array(v2, mode="r")
    cache = f"{shape[0] * shape[1] * shape[2] * 2 // 2 >> 20}M"
    lum, lum3, lumc, lum3c, zp = [], [], [], [], []
    crop = ["--pattern", "crops", "--crop", "64,64,64", "--count", str(count)]
    for r in range(runs):
        lum.append(lumio_json("zarr", "bench", v2, *crop)["crops_per_s"])
        lum3.append(lumio_json("zarr", "bench", v3, *crop)["crops_per_s"])
        lumc.append(lumio_json("zarr", "bench", v2, *crop, "--cache", cache)["crops_per_s"])
        lum3c.append(lumio_json("zarr", "bench", v3, *crop, "--cache", cache)["crops_per_s"])
        rng = np.random.default_rng(42)
        t = time.perf_counter()
        for _ in range(count):
            a, b, c = (int(rng.integers(0, n - 64 + 1)) for n in shape)
            z[a:a + 64, b:b + 64, c:c + 64]
        zp.append(count / (time.perf_counter() - t))
        log(f"crops run {r + 1}/{runs}: lumio {lum[-1]:.0f}/s, sharded {lum3[-1]:.0f}/s, "
            f"with --cache {cache} {lumc[-1]:.0f}/s and {lum3c[-1]:.0f}/s, "
            f"zarr-python {zp[-1]:.0f}/s")
    for label, xs in ((f"{count} random 64^3 crops", lum),
                      (f"{count} random 64^3 crops, sharded", lum3),
                      (f"{count} random 64^3 crops, --cache {cache}", lumc),
                      (f"{count} random 64^3 crops, sharded, --cache {cache}", lum3c)):
        rows.append((label, f"{median(xs):.0f} crops/s", f"{median(zp):.0f} crops/s",
                     median(xs) / median(zp), ">= 6x zarr-python"))


def settle():
    """Write back what earlier runs left dirty, and give the disk time for the
    discards of what they deleted (the root filesystem is mounted with
    `discard`: blocks freed just before a run are not reused until
    discarded, which slowed a run by up to 1.5 s)."""
    os.sync()
    time.sleep(3)


def bench_rechunk(v2, shape, runs, rows, memory="512M"):
    lum, zp, rss = [], [], []
    dst = os.path.join(WORK, "rechunk-lumio.zarr")
    dst2 = os.path.join(WORK, "rechunk-zarr.zarr")
    rss_file = os.path.join(WORK, "rss")
    for r in range(runs):
        shutil.rmtree(dst, ignore_errors=True)
        shutil.rmtree(dst2, ignore_errors=True)
        settle()
        t = time.perf_counter()
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file, LUMIO, "zarr", "rechunk", v2,
                        dst, "--chunks", "16,256,256", "--codec", "zstd:3", "--memory", memory],
                       check=True)
        lum.append(time.perf_counter() - t)
        rss.append(int(open(rss_file).read().split()[-1]) / 1024)
        settle()
        src = zarr.open_array(v2, mode="r")
        t = time.perf_counter()
        out = zarr.open_array(dst2, mode="w", shape=src.shape, chunks=(16, 256, 256), dtype="<u2",
                              compressor=numcodecs.Zstd(level=3))
        for a in range(0, shape[0], 64):  # slabs of 64 rows: 256 MiB at 1 GiB
            out[a:a + 64] = src[a:a + 64]
        zp.append(time.perf_counter() - t)
        log(f"rechunk run {r + 1}/{runs}: lumio {lum[-1]:.2f} s (peak {rss[-1]:.0f} MiB), "
            f"zarr-python {zp[-1]:.2f} s")
    rows.append((f"rechunk to 16x256x256 (--memory {memory})",
                 f"{median(lum):.2f} s, peak {max(rss):.0f} MiB", f"{median(zp):.2f} s",
                 median(zp) / median(lum), ">= 5x zarr-python, memory under the cap"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", type=int, default=1 << 30)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--only", default="all,crops,rechunk")
    a = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    v2, v3, shape = make_arrays(a.size)
    warm(v2)
    warm(v3)
    only = a.only.split(",")
    rows = []
    if "all" in only:
        bench_all(v2, v3, shape, a.runs, rows)
    if "crops" in only:
        bench_crops(v2, v3, shape, a.runs, a.count, rows)
    if "rechunk" in only:
        bench_rechunk(v2, shape, a.runs, rows)
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    print(f"\nlumio zarr bench, {time.strftime('%Y-%m-%d %H:%M')}, commit {head}, "
          f"{os.cpu_count()} cores, median of {a.runs}; array {shape} uint16 "
          f"({a.size >> 20} MiB), chunks 64^3 zstd:3; load {os.getloadavg()[0]:.2f}\n")
    print("| workload | lumio | peer | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    for name, l, p, ratio, target in rows:
        print(f"| {name} | {l} | {p} | {ratio:.2f}x | {target} |")


if __name__ == "__main__":
    main()
