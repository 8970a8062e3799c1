#!/usr/bin/python3
"""lumio from Python against the lumio CLI, zarr-python and the decode limit,
on the same arrays in one run (issue 13: Python >= 0.95x the CLI).

The arrays are bench/zarr_bench.py's (uint16, 64^3 zstd chunks, made once in
bench/work/zarr). Workloads, medians of --runs, page cache warm:
  all    the whole array: lumio.zarr a[...] (a new numpy array), `lumio zarr
         bench --pattern all`, zarr-python z[...], and the limit (reading the
         stored chunks with the engine + decoding them on every core)
  crops  --count random 64^3 crops in batches of 16: lumio.zarr read_batch,
         `lumio zarr bench --pattern crops` (16 per batch too), zarr-python

usage: PYTHONPATH=build/python bench/python_zarr.py [--runs R] [--size BYTES] [--count N]
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
import zarr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zarr_bench as zb  # noqa: E402  (the arrays, the CLI runner, the limit)

import lumio  # noqa: E402
import lumio.zarr  # noqa: E402


def median(xs):
    return statistics.median(xs)


def bench_all(v2, shape, runs):
    a, z = lumio.zarr.open(v2), zarr.open_array(v2, mode="r")
    py, cli, zp = [], [], []
    for r in range(runs):
        t = time.perf_counter()
        x = a[...]
        py.append(time.perf_counter() - t)
        del x
        cli.append(zb.lumio_json("zarr", "bench", v2, "--pattern", "all")["seconds"])
        t = time.perf_counter()
        x = z[...]
        zp.append(time.perf_counter() - t)
        del x
        zb.log(f"all {r + 1}/{runs}: python {py[-1]:.3f} s, cli {cli[-1]:.3f} s, "
               f"zarr-python {zp[-1]:.3f} s")
    reads, decs = zip(*[zb.limit_seconds(v2) for _ in range(runs)])
    mib = np.prod(shape) * 2 / 2**20
    lim = median(reads) + median(decs)
    return [("whole array, lumio.zarr a[...]", f"{mib / median(py):.0f} MiB/s"),
            ("whole array, lumio CLI", f"{mib / median(cli):.0f} MiB/s"),
            ("whole array, zarr-python", f"{mib / median(zp):.0f} MiB/s"),
            ("whole array, limit (engine read + decode on every core)", f"{mib / lim:.0f} MiB/s"),
            ("Python / CLI", f"{median(cli) / median(py):.2f}x (target >= 0.95x)"),
            ("Python / zarr-python", f"{median(zp) / median(py):.1f}x"),
            ("Python / limit", f"{lim / median(py):.2f}x")]


def bench_crops(v2, shape, runs, count):
    a, z = lumio.zarr.open(v2), zarr.open_array(v2, mode="r")
    py, cli, zp = [], [], []
    for r in range(runs):
        rng = np.random.default_rng(42 + r)
        starts = np.stack([rng.integers(0, n - 64 + 1, size=count) for n in shape], 1)
        t = time.perf_counter()
        for i in range(0, count, 16):
            a.read_batch(starts[i:i + 16], (64, 64, 64))
        py.append(count / (time.perf_counter() - t))
        cli.append(zb.lumio_json("zarr", "bench", v2, "--pattern", "crops", "--crop", "64,64,64",
                                 "--count", str(count))["crops_per_s"])
        t = time.perf_counter()
        for s in starts:
            z[s[0]:s[0] + 64, s[1]:s[1] + 64, s[2]:s[2] + 64]
        zp.append(count / (time.perf_counter() - t))
        zb.log(f"crops {r + 1}/{runs}: python {py[-1]:.0f}/s, cli {cli[-1]:.0f}/s, "
               f"zarr-python {zp[-1]:.0f}/s")
    return [(f"{count} crops of 64^3 in batches of 16, lumio.zarr read_batch",
             f"{median(py):.0f} crops/s"),
            ("same, lumio CLI", f"{median(cli):.0f} crops/s"),
            ("same, zarr-python (one crop at a time)", f"{median(zp):.0f} crops/s"),
            ("Python / CLI", f"{median(py) / median(cli):.2f}x (target >= 0.95x)"),
            ("Python / zarr-python", f"{median(py) / median(zp):.1f}x")]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--size", type=int, default=256 << 20)
    p.add_argument("--count", type=int, default=320)
    o = p.parse_args()
    os.makedirs(zb.WORK, exist_ok=True)
    v2, _, shape = zb.make_arrays(o.size)
    zb.warm(v2)
    rows = bench_all(v2, shape, o.runs) + bench_crops(v2, shape, o.runs, o.count)
    print(f"| workload ({o.size >> 20} MiB uint16, 64^3 zstd:3; medians of {o.runs}) | result |")
    print("| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
