#!/usr/bin/env python3
"""Ring engine benchmark: lumio against fio (io_uring and psync, 1 and 2 jobs)
and `lumio hash` against xxhsum, on the same files in one run.

Usage: bench/run.py [--files N] [--runs R] [--dir DIR] [--only NAME,...]

Workloads (names for --only):
  files         N files of 256 KiB, page cache warm, read in 256 KiB blocks
  files-direct  the same files with O_DIRECT
  random        random 4 KiB reads over a 1 GiB file, page cache warm
  hash          lumio hash vs xxhsum -H1 over the N files, warm

Each figure is the median of R runs. Prints a Markdown table with the ratio
lumio / best peer; the targets are in the last column.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUMIO = os.path.join(ROOT, "build", "lumio")


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def make_files(d, n, size):
    os.makedirs(d, exist_ok=True)
    for half in ("a", "b"):
        os.makedirs(os.path.join(d, half), exist_ok=True)
    existing = sum(len(os.listdir(os.path.join(d, h))) for h in ("a", "b"))
    if existing == n:
        return
    block = os.urandom(size)
    for i in range(n):
        half = "a" if i % 2 == 0 else "b"
        with open(os.path.join(d, half, f"f{i:06d}.bin"), "wb") as f:
            f.write(block[i % 97:] + block[: i % 97])


def make_big(path, size):
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    with open(path, "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(size >> 20):
            f.write(chunk)


def warm(paths):
    for p in paths:
        subprocess.run(["cat"] + ([p] if os.path.isfile(p) else []), stdout=subprocess.DEVNULL)
        if os.path.isdir(p):
            subprocess.run(f"find '{p}' -type f -print0 | xargs -0 cat > /dev/null", shell=True)


def lumio_bench(args):
    out = sh([LUMIO, "bench", "read"] + args)
    return json.loads(out)


def fio(target, rw, bs, engine, jobs, depth, direct, extra=()):
    """One fio run; returns (bytes/s, IOPS) summed over its jobs. `target` is
    a list of directories (one job each: the files are split between jobs as
    lumio's threads split them) or a file (read by `jobs` jobs)."""
    cmd = ["fio", "--output-format=json", "--thread", "--group_reporting",
           f"--rw={rw}", f"--bs={bs}", f"--ioengine={engine}", f"--direct={int(direct)}",
           "--invalidate=0"] + list(extra)
    if engine == "io_uring":
        cmd.append(f"--iodepth={depth}")
    if isinstance(target, list):
        dirs = target if jobs > 1 else [os.path.dirname(target[0])]
        for i, d in enumerate(dirs):
            cmd += [f"--name=j{i}", f"--opendir={d}"]
    else:
        cmd += [f"--filename={target}", "--name=j", f"--numjobs={jobs}"]
    out = sh(cmd)
    read = json.loads(out[out.index("{"):])["jobs"][0]["read"]  # fio may print a note first
    return read["bw_bytes"], read["iops"]


def median_of(runs, fn):
    vals = [fn() for _ in range(runs)]
    return statistics.median(vals)


def bench_files(d, n, runs, direct):
    dirs = [os.path.join(d, "a"), os.path.join(d, "b")]
    if not direct:
        warm([d])
    results = {}
    for jobs in (1, 2):
        for engine in ("io_uring", "psync"):
            for depth in ((16, 64) if engine == "io_uring" else (1,)):
                key = f"fio {engine} jobs={jobs}" + (f" depth={depth}" if engine == "io_uring" else "")
                results[key] = median_of(runs, lambda: fio(dirs, "read", "256k", engine, jobs, depth,
                                                           direct)[0])
    lum = {}
    for threads in (1, 2):
        for depth in (16, 64):
            args = ["--block", "256K", "--depth", str(depth), "--threads", str(threads), d]
            if direct:
                args.insert(0, "--direct")
            lum[f"lumio threads={threads} depth={depth}"] = median_of(
                runs, lambda: lumio_bench(args)["gib_per_s"] * (1 << 30))
    return lum, results


def bench_random(path, runs, count):
    warm([path])
    results = {}
    for jobs in (1, 2):
        for engine in ("io_uring", "psync"):
            for depth in ((16, 64) if engine == "io_uring" else (1,)):
                key = f"fio {engine} jobs={jobs}" + (f" depth={depth}" if engine == "io_uring" else "")
                results[key] = median_of(runs, lambda: fio(
                    path, "randread", "4k", engine, jobs, depth, False,
                    ["--time_based", "--runtime=4", "--norandommap", "--randrepeat=0"])[1])
    lum = {}
    for threads in (1, 2):
        for depth in (16, 64):
            args = ["--random", str(count), "--size", "4K", "--depth", str(depth),
                    "--threads", str(threads), path]
            lum[f"lumio threads={threads} depth={depth}"] = median_of(
                runs, lambda: lumio_bench(args)["ops_per_s"])
    return lum, results


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def bench_hash(d, runs):
    warm([d])
    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs)
    # xxhsum takes the list on its command line, as `lumio hash` does.
    t_x = median_of(runs, lambda: timed(["xxhsum", "-H1"] + files))
    t_l = median_of(runs, lambda: timed([LUMIO, "hash", "--algo", "xxh64"] + files))
    # The machine's own ceiling: one xxhsum per core, each on its share.
    n = os.cpu_count()
    shares = [files[i::n] for i in range(n)]

    def parallel():
        t = time.perf_counter()
        ps = [subprocess.Popen(["xxhsum", "-H1"] + sh_, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) for sh_ in shares]
        for p in ps:
            p.wait()
        return time.perf_counter() - t

    t_p = median_of(runs, parallel)
    return t_l, t_x, t_p


def best(d):
    k = max(d, key=d.get)
    return k, d[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=4000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default=os.path.join(ROOT, "bench", "work"))
    ap.add_argument("--only", default="files,files-direct,random,hash")
    ap.add_argument("--random-count", type=int, default=400000)
    a = ap.parse_args()
    for tool in ("fio", "xxhsum"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is not installed (run scripts/setup.sh)")
    if not os.path.exists(LUMIO):
        sys.exit(f"bench: {LUMIO} is missing (run make build)")
    only = set(a.only.split(","))
    files_dir = os.path.join(a.dir, "files")
    make_files(files_dir, a.files, 256 << 10)
    big = os.path.join(a.dir, "big.bin")
    if "random" in only:
        make_big(big, 1 << 30)

    rows = []
    detail = []

    def record(name, lum, peers, unit, target):
        lk, lv = best(lum)
        pk, pv = best(peers)
        rows.append((name, f"{lv:,.0f} {unit} ({lk})", f"{pv:,.0f} {unit} ({pk})", lv / pv, target))
        detail.append((name, lum, peers, unit))

    if "files" in only:
        lum, peers = bench_files(files_dir, a.files, a.runs, False)
        record(f"{a.files} x 256 KiB files, warm", {k: v / 2**20 for k, v in lum.items()},
               {k: v / 2**20 for k, v in peers.items()}, "MiB/s", ">= 1.0")
    if "files-direct" in only:
        lum, peers = bench_files(files_dir, a.files, a.runs, True)
        record(f"{a.files} x 256 KiB files, O_DIRECT", {k: v / 2**20 for k, v in lum.items()},
               {k: v / 2**20 for k, v in peers.items()}, "MiB/s", ">= 0.95")
    if "random" in only:
        lum, peers = bench_random(big, a.runs, a.random_count)
        record("random 4 KiB over 1 GiB, warm", lum, peers, "IOPS", ">= 0.9")
    if "hash" in only:
        t_l, t_x, t_p = bench_hash(files_dir, a.runs)
        mib = a.files * 256 / 1024
        rows.append((f"hash {a.files} x 256 KiB files, warm", f"{mib / t_l:,.0f} MiB/s ({t_l:.3f} s)",
                     f"{mib / t_x:,.0f} MiB/s ({t_x:.3f} s, xxhsum -H1)", t_x / t_l,
                     f">= {0.8 * os.cpu_count():.1f} (cores x 0.8)"))
        rows.append((f"(ceiling) {os.cpu_count()} xxhsum processes, one per core", f"{mib / t_p:,.0f} MiB/s ({t_p:.3f} s)",
                     f"{mib / t_x:,.0f} MiB/s ({t_x:.3f} s, xxhsum -H1)", t_x / t_p, "what the machine allows"))

    print(f"\nlumio bench, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, median of {a.runs} runs\n")
    print("| workload | lumio (best config) | best peer | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    for name, l, p, ratio, target in rows:
        print(f"| {name} | {l} | {p} | {ratio:.2f}x | {target} |")
    print("\nAll configurations:\n")
    for name, lum, peers, unit in detail:
        print(f"- {name}: " + "; ".join(f"{k} {v:,.0f}" for k, v in {**lum, **peers}.items()) + f" ({unit})")


if __name__ == "__main__":
    main()
