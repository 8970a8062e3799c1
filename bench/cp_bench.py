#!/usr/bin/python3
"""lumio cp against coreutils cp -r, in the same run, alternating.

    /usr/bin/python3 bench/cp_bench.py [--runs 7] [--lumio build/lumio]

Workloads (made once under bench/work/cp/):
  small   2000 files of 1 B - 32 KiB in 20 directories (about 32 MiB)
  large   one 512 MiB file
  sparse  a 6 GiB file with 3 data blocks (only the disk use is compared)

Before every timed copy the output is removed and `sync` run; in the "cold"
rows the page cache is dropped too (echo 3 > /proc/sys/vm/drop_caches, when
allowed), in the "sync" rows only synced (the sources stay cached). Each run
alternates which tool goes first. The figure is the median wall time; the
ratio is cp -r's median over lumio's (above 1: lumio is faster). The machine
is shared, so medians of several runs and the ratio are what count.
"""
import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_small(d):
    if os.path.isdir(d):
        return
    tmp = d + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    rnd = random.Random(11)
    for i in range(20):
        sub = os.path.join(tmp, "d%02d" % i)
        os.makedirs(sub)
        for j in range(100):
            with open(os.path.join(sub, "f%03d" % j), "wb") as f:
                f.write(os.urandom(rnd.randint(1, 32768)))
    os.rename(tmp, d)


def make_large(path, size):
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    with open(path + ".tmp", "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(size >> 20):
            f.write(block)
    os.rename(path + ".tmp", path)


def make_sparse(path):
    if os.path.exists(path):
        return
    with open(path + ".tmp", "wb") as f:
        f.truncate(6 << 30)
        for off in (0, 3 << 30, (6 << 30) - 4096):
            f.seek(off)
            f.write(os.urandom(4096))
    os.rename(path + ".tmp", path)


def can_drop():
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def prepare(out, cold):
    if os.path.lexists(out):
        if os.path.isdir(out) and not os.path.islink(out):
            shutil.rmtree(out)
        else:
            os.unlink(out)
    subprocess.run(["sync"], check=True)
    if cold:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


def disk_kib(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    if os.path.isfile(path):
        total = os.lstat(path).st_blocks * 512
    return total // 1024


def bench(args, name, src, cold, fresh):
    """fresh: each run copies to a new name, all removed at the end. ext4
    skips inodes deleted in the last seconds when it allocates new ones,
    at a cost that grows with their number: removing 2000 files before
    each run would time that scan, the same for both tools, not the copy."""
    tools = {"lumio": [args.lumio, "cp", src], "cp -r": ["cp", "-r", src]}
    times = {k: [] for k in tools}
    outs = []
    for run in range(args.runs):
        order = list(tools) if run % 2 == 0 else list(tools)[::-1]
        for k in order:
            out = os.path.join(args.dir, "out-%s-%d" % (k[:2], run if fresh else 0))
            outs.append(out)
            prepare(out, cold)
            times[k].append(timed(tools[k] + [out]))
            if k == "lumio": # the copy is right: same bytes
                subprocess.run(["diff", "-r", src, out], check=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["cp -r"] / med["lumio"]
    spread = " ".join("%.3f" % t for t in times["lumio"]) + " | " + " ".join(
        "%.3f" % t for t in times["cp -r"])
    row = "| %s | %s | %.3f s | %.3f s | %.2fx |" % (name, "cold" if cold else "sync",
                                                    med["lumio"], med["cp -r"], ratio)
    print(row + "   runs (lumio | cp -r): " + spread, flush=True)
    for out in outs:
        prepare(out, False)
    return row


def sparse_row(args, src):
    out = {"lumio": os.path.join(args.dir, "sp-lumio"), "cp -r": os.path.join(args.dir, "sp-cp")}
    prepare(out["lumio"], False)
    t_l = timed([args.lumio, "cp", src, out["lumio"]])
    prepare(out["cp -r"], False)
    t_c = timed(["cp", "-r", src, out["cp -r"]])
    subprocess.run(["cmp", src, out["lumio"]], check=True)
    row = "| 6 GiB sparse, 12 KiB of data | disk use | %d KiB (%.2f s) | %d KiB (%.2f s) | |" % (
        disk_kib(out["lumio"]), t_l, disk_kib(out["cp -r"]), t_c)
    print(row, flush=True)
    for p in out.values():
        prepare(p, False)
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--lumio", default=os.path.join(ROOT, "build", "lumio"))
    ap.add_argument("--dir", default=os.path.join(ROOT, "bench", "work", "cp"))
    ap.add_argument("--only", choices=["small", "large", "sparse"])
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    small = os.path.join(args.dir, "small")
    large = os.path.join(args.dir, "large.bin")
    sparse = os.path.join(args.dir, "sparse.bin")
    cold = can_drop()
    if not cold:
        print("note: cannot drop the page cache here; the cold rows are left out", file=sys.stderr)
    print("| workload | cache | lumio cp | cp -r | ratio |")
    print("| --- | --- | --- | --- | --- |")
    if args.only in (None, "small"):
        make_small(small)
        if cold:
            bench(args, "2000 files, 1 B - 32 KiB", small, True, True)
        bench(args, "2000 files, 1 B - 32 KiB", small, False, True)
    if args.only in (None, "large"):
        make_large(large, 512 << 20)
        if cold:
            bench(args, "one 512 MiB file", large, True, False)
        bench(args, "one 512 MiB file", large, False, False)
    if args.only in (None, "sparse"):
        make_sparse(sparse)
        sparse_row(args, sparse)


if __name__ == "__main__":
    main()
