#!/usr/bin/env python3
"""Remote reader benchmark: lumio against aria2c, curl and fsspec on the same
HTTP object in one run. Run it through bench/remote.sh, which starts a
private nginx (tests/http_env.sh) and sets LUMIO_HTTP_ROOT / LUMIO_HTTP_URL.

Usage: bench/remote.sh [--runs R] [--size SIZE] [--only NAME,...]
                       [--latency-ms N] [--fsspec-max-seconds S]

Setup: one object of SIZE random bytes (default 1G) written into the served
directory and read through /slow/, where nginx caps every connection at
LUMIO_HTTP_RATE (default 50m, bytes/s), with build/tests/faultproxy in front
of nginx adding --latency-ms (default 20) to every request.

Workloads (names for --only):
  get     lumio get URL -o FILE (defaults) vs aria2c -x 16 -s 16 -k 1M vs
          curl (one connection); every output is compared with the source
          (cmp) after each run, outside the timing, then deleted
  seq     lumio bench remote URL --pattern seq --read-size 64K vs fsspec's
          HTTPFileSystem with default settings, f.read(65536) until EOF (or
          until --fsspec-max-seconds, then the prefix read so far counts)
  random  lumio bench remote URL --pattern random --read-size 4K --count 1000:
          bytes fetched / bytes read

Each figure is the median of R runs (min-max in brackets); the tools take
turns within a run. Prints a Markdown table with the targets; progress goes
to stderr.
"""
import argparse
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUMIO = os.path.join(ROOT, "build", "lumio")
FAULTPROXY = os.path.join(ROOT, "build", "tests", "faultproxy")
OUT_DIR = "/var/tmp"
MIB = 1 << 20


def log(msg):
    print(f"[remote {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_size(s):
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    s = s.strip().upper().removesuffix("IB").removesuffix("B")
    num, unit = (s[:-1], s[-1]) if s and s[-1] in "KMG" else (s, "")
    try:
        n = int(num) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{s}' is not a size (e.g. 1G, 256M)")
    if n <= 0:
        raise argparse.ArgumentTypeError("the size must be positive")
    return n


def human(n):
    for unit, v in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= v and n % v == 0:
            return f"{n // v} {unit}"
    return f"{n} B"


def make_object(path, size):
    """SIZE fresh random bytes (not a repeated block), world-readable."""
    t = time.perf_counter()
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MIB)
            f.write(os.urandom(n))
            left -= n
    os.chmod(path, 0o644)
    log(f"wrote {human(size)} of random bytes to {path} in {time.perf_counter() - t:.1f} s")


class FaultProxy:
    """build/tests/faultproxy in front of nginx; its --log ("K METHOD TARGET RANGE STATUS
    FAULT" per request) shows the ranges each tool asked for."""

    def __init__(self, upstream, latency_ms, log_path):
        self.log_path = log_path
        self.p = subprocess.Popen([FAULTPROXY, "--upstream", upstream, "--latency-ms", str(latency_ms),
                                   "--log", log_path],
                                  stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
        ready, _, _ = select.select([self.p.stdout], [], [], 10)
        line = self.p.stdout.readline() if ready else ""
        if not line.startswith("port "):
            self.stop()
            sys.exit(f"bench: faultproxy did not print its port (got {line!r})")
        self.port = int(line.split()[1])

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()

    def mark(self):
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def ranges_since(self, mark):
        """(GETs, sizes of the ranged ones) logged since mark."""
        with open(self.log_path, "rb") as f:
            f.seek(mark)
            lines = f.read().decode(errors="replace").splitlines()
        sizes = []
        gets = 0
        for ln in lines:
            w = ln.split()
            gets += len(w) >= 2 and w[1] == "GET"
            if len(w) >= 4 and w[1] == "GET" and w[3].startswith("bytes="):
                lo, _, hi = w[3][6:].partition("-")
                if lo.isdigit() and hi.isdigit():
                    sizes.append(int(hi) - int(lo) + 1)
        return gets, sizes


def size_mix(sizes):
    """'12298 x 64 KiB, 24 x 8 MiB, ...': the most common request sizes."""
    c = {}
    for n in sizes:
        c[n] = c.get(n, 0) + 1
    top = sorted(c.items(), key=lambda kv: -kv[1])
    s = ", ".join(f"{k} x {human(n) if n % 1024 == 0 else f'{n} B'}" for n, k in top[:3])
    if len(top) > 3:
        s += f", {sum(k for _, k in top[3:])} of {len(top) - 3} other sizes"
    return s


def build_id():
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        head = "?"
    return head, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(LUMIO)))


def run(cmd, what):
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"bench: {what} failed (exit {r.returncode}): {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return dt, r.stdout


def same_bytes(a, b):
    return subprocess.run(["cmp", "-s", a, b]).returncode == 0


def rm(*paths):
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


class Stat:
    """Values of one figure over the runs."""

    def __init__(self):
        self.v = []

    def add(self, x):
        self.v.append(x)

    @property
    def med(self):
        return statistics.median(self.v)

    def fmt(self, spec=",.0f", unit=""):
        s = f"{format(self.med, spec)}{unit}"
        if len(self.v) > 1:
            s += f" ({format(min(self.v), spec)}-{format(max(self.v), spec)})"
        return s


# ---------------------------------------------------------------- get


def bench_get(url, src, size, runs, proxy):
    tools = {"lumio": Stat(), "aria2c": Stat(), "curl": Stat()}
    secs = {k: Stat() for k in tools}
    name = f"lumio-remote-bench.{os.getpid()}.out"
    out = os.path.join(OUT_DIR, name)
    cmds = {
        "lumio": [LUMIO, "get", url, "-o", out],
        "aria2c": ["aria2c", "-q", "--console-log-level=error", "--summary-interval=0",
                   "--show-console-readout=false", "-x", "16", "-s", "16", "-k", "1M",
                   "--file-allocation=none", "--allow-overwrite=true", "--auto-file-renaming=false",
                   "-d", OUT_DIR, "-o", name, url],
        "curl": ["curl", "-s", "-S", "-f", "-o", out, url],
    }
    mixes = {}
    for r in range(runs):
        for tool, cmd in cmds.items():
            rm(out, out + ".aria2")
            m = proxy.mark()
            dt, _ = run(cmd, tool)
            gets, sizes = proxy.ranges_since(m)
            mixes[tool] = (f"{gets} GET{'s' if gets != 1 else ''}, "
                           + (f"ranges {size_mix(sizes)}" if sizes else "no ranges"))
            ok = os.path.getsize(out) == size and same_bytes(out, src)
            rm(out, out + ".aria2")
            if not ok:
                sys.exit(f"bench: {tool}'s download differs from the source object")
            secs[tool].add(dt)
            tools[tool].add(size / MIB / dt)
            log(f"get run {r + 1}/{runs}: {tool:6} {dt:6.2f} s {size / MIB / dt:7.1f} MiB/s "
                f"(output identical; {mixes[tool]})")
    return tools, secs, mixes


# ---------------------------------------------------------------- seq


FSSPEC_CHILD = r"""
import json, sys, time
import fsspec
url, deadline = sys.argv[1], float(sys.argv[2])
t = time.perf_counter()
fs = fsspec.filesystem("http", skip_instance_cache=True)
n = 0
prefix = False
with fs.open(url, "rb") as f:
    info = {"block_size": f.blocksize, "cache_type": type(f.cache).__name__,
            "cache_name": getattr(f.cache, "name", "?"), "file_class": type(f).__name__,
            "size": f.size}
    while True:
        b = f.read(65536)
        if not b:
            break
        n += len(b)
        if time.perf_counter() - t > deadline:
            prefix = n < f.size
            break
dt = time.perf_counter() - t
print(json.dumps({"bytes": n, "seconds": dt, "mib_per_s": n / dt / 2**20, "prefix": prefix,
                  "fsspec": fsspec.__version__, **info}))
"""


def bench_seq(url, size, runs, fs_deadline, proxy):
    lum, lum_wall, fs = Stat(), Stat(), Stat()
    lum_req, lum_fetch = Stat(), Stat()
    fs_info = None
    fs_bytes = []
    mixes = []
    for r in range(runs):
        m = proxy.mark()
        wall, out = run([LUMIO, "bench", "remote", url, "--pattern", "seq", "--read-size", "64K"],
                        "lumio bench remote seq")
        j = json.loads(out)
        if j["bytes"] != size:
            sys.exit(f"bench: lumio seq read {j['bytes']} bytes, not {size}")
        lum.add(j["mib_per_s"])
        lum_wall.add(size / MIB / wall)
        lum_req.add(j["requests"])
        lum_fetch.add(j["fetched_ratio"])
        mixes.append(size_mix(proxy.ranges_since(m)[1]))
        log(f"seq run {r + 1}/{runs}: lumio  {j['seconds']:6.2f} s {j['mib_per_s']:7.1f} MiB/s, "
            f"{j['requests']} requests ({mixes[-1]}), fetched_ratio {j['fetched_ratio']:.3f} "
            f"(process wall {wall:.2f} s)")
        _, out = run([sys.executable, "-c", FSSPEC_CHILD, url, str(fs_deadline)], "fsspec")
        k = json.loads(out)
        fs.add(k["mib_per_s"])
        fs_bytes.append(k["bytes"])
        fs_info = k
        log(f"seq run {r + 1}/{runs}: fsspec {k['seconds']:6.2f} s {k['mib_per_s']:7.1f} MiB/s, "
            f"{human(k['bytes']) if k['prefix'] else 'whole object'} "
            f"({k['file_class']}, block_size {k['block_size']}, cache {k['cache_type']})")
    return lum, lum_wall, lum_req, lum_fetch, fs, fs_info, fs_bytes, mixes


# ---------------------------------------------------------------- random


def bench_random(url, runs, count):
    ratio, mibs, reqs, secs = Stat(), Stat(), Stat(), Stat()
    for r in range(runs):
        _, out = run([LUMIO, "bench", "remote", url, "--pattern", "random", "--read-size", "4K",
                      "--count", str(count)], "lumio bench remote random")
        j = json.loads(out)
        ratio.add(j["fetched_ratio"])
        mibs.add(j["mib_per_s"])
        reqs.add(j["requests"])
        secs.add(j["seconds"])
        log(f"random run {r + 1}/{runs}: {j['seconds']:.2f} s {j['mib_per_s']:.3f} MiB/s, "
            f"{j['requests']} requests, {j['bytes_fetched']} bytes fetched for {j['bytes']} read "
            f"(ratio {j['fetched_ratio']:.3f})")
    return ratio, mibs, reqs, secs


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description="lumio remote reader benchmark (run via bench/remote.sh)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", type=parse_size, default=1 << 30)
    ap.add_argument("--only", default="get,seq,random")
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--fsspec-max-seconds", type=float, default=60.0,
                    help="stop an fsspec run after this long and count the prefix read")
    ap.add_argument("--random-count", type=int, default=1000)
    a = ap.parse_args()
    only = set(a.only.split(","))
    unknown = only - {"get", "seq", "random"}
    if unknown:
        sys.exit(f"bench: --only: unknown workload(s) {','.join(sorted(unknown))} (get, seq, random)")
    if a.runs < 1:
        sys.exit("bench: --runs must be at least 1")
    root, base = os.environ.get("LUMIO_HTTP_ROOT"), os.environ.get("LUMIO_HTTP_URL")
    if not root or not base:
        sys.exit("bench: LUMIO_HTTP_ROOT/LUMIO_HTTP_URL are not set (run bench/remote.sh)")
    for p in (LUMIO, FAULTPROXY):
        if not os.access(p, os.X_OK):
            sys.exit(f"bench: {p} is missing (cmake --build build)")
    for tool in ("aria2c", "curl", "cmp"):
        if "get" in only and not shutil.which(tool):
            sys.exit(f"bench: {tool} is not installed")
    if "seq" in only:
        try:
            import fsspec  # noqa: F401
            import aiohttp  # noqa: F401
        except ImportError as e:
            sys.exit(f"bench: {e} (python3-fsspec and python3-aiohttp)")

    # SIGTERM/SIGINT unwind through the finally below (faultproxy, output files).
    def on_signal(sig, _frame):
        raise SystemExit(128 + sig)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    rate = os.environ.get("LUMIO_HTTP_RATE", "50m")
    load0 = os.getloadavg()
    name = "object.bin"
    src = os.path.join(root, name)
    make_object(src, a.size)
    build0 = build_id()
    log(f"lumio at commit {build0[0]}, build/lumio built {build0[1]}")
    proxy = FaultProxy(base.removeprefix("http://"), a.latency_ms, os.path.join(root, "..", "faultproxy.log"))
    url = f"http://127.0.0.1:{proxy.port}/slow/{name}"
    log(f"faultproxy (pid {proxy.p.pid}) on port {proxy.port}, {a.latency_ms} ms per request; "
        f"nginx limit_rate {rate} per connection; URL {url}")
    res = {}
    t_start = time.perf_counter()
    try:
        if "get" in only:
            res["get"] = bench_get(url, src, a.size, a.runs, proxy)
        if "seq" in only:
            res["seq"] = bench_seq(url, a.size, a.runs, a.fsspec_max_seconds, proxy)
        if "random" in only:
            res["random"] = bench_random(url, a.runs, a.random_count)
    finally:
        proxy.stop()
        rm(proxy.log_path)
        rm(os.path.join(OUT_DIR, f"lumio-remote-bench.{os.getpid()}.out"),
           os.path.join(OUT_DIR, f"lumio-remote-bench.{os.getpid()}.out.aria2"))
    elapsed = time.perf_counter() - t_start
    load1 = os.getloadavg()
    build1 = build_id()

    rows = []
    detail = []

    def row(name, lum, peer, ratio, target, met):
        rows.append((name, lum, peer, ratio, target, "met" if met else "not met"))

    size_s = human(a.size)
    if "get" in res:
        tools, secs, mixes = res["get"]
        lm, am, cm = tools["lumio"].med, tools["aria2c"].med, tools["curl"].med
        row(f"download {size_s} (lumio get vs aria2c -x16 -s16 -k1M)",
            tools["lumio"].fmt(unit=" MiB/s"), tools["aria2c"].fmt(unit=" MiB/s"),
            lm / am, ">= 1.0x", lm / am >= 1.0)
        row(f"download {size_s} (lumio get vs curl, 1 connection)",
            tools["lumio"].fmt(unit=" MiB/s"), tools["curl"].fmt(unit=" MiB/s"),
            lm / cm, ">= 8x", lm / cm >= 8.0)
        for t in tools:
            detail.append(f"get, {t}: " + ", ".join(f"{s:.2f} s / {m:.1f} MiB/s"
                                                     for s, m in zip(secs[t].v, tools[t].v))
                          + f"; {mixes[t]}")
        detail.append("get, per-run ratios lumio/aria2c: " + ", ".join(
            f"{x / y:.2f}x" for x, y in zip(tools["lumio"].v, tools["aria2c"].v))
            + "; lumio/curl: " + ", ".join(f"{x / y:.2f}x" for x, y in zip(tools["lumio"].v, tools["curl"].v)))
    if "seq" in res:
        lum, lum_wall, lum_req, lum_fetch, fs, fs_info, fs_bytes, mixes = res["seq"]
        whole = all(b == a.size for b in fs_bytes)
        fs_what = (f"fsspec, whole object" if whole else
                   f"fsspec, prefix of {', '.join(human(b) if b % MIB == 0 else f'{b / MIB:.0f} MiB' for b in fs_bytes)}")
        row(f"sequential 64 KiB reads of {size_s} (lumio bench remote vs {fs_what})",
            lum.fmt(unit=" MiB/s"), fs.fmt(",.1f", " MiB/s"), lum.med / fs.med, ">= 5x", lum.med / fs.med >= 5.0)
        if "get" in res:
            gm = res["get"][0]["lumio"]
            row(f"sequential 64 KiB reads vs lumio get, {size_s}", lum.fmt(unit=" MiB/s"),
                gm.fmt(unit=" MiB/s") + " (lumio get)", lum.med / gm.med, ">= 0.8x", lum.med / gm.med >= 0.8)
        detail.append("seq, lumio MiB/s (reader's clock, open to last read): "
                      + ", ".join(f"{v:.1f}" for v in lum.v)
                      + "; by process wall time: " + ", ".join(f"{v:.1f}" for v in lum_wall.v)
                      + f"; requests {', '.join(str(int(v)) for v in lum_req.v)}"
                      + f"; fetched_ratio {', '.join(f'{v:.3f}' for v in lum_fetch.v)}")
        detail.append("seq, lumio request sizes per run: " + "; ".join(mixes))
        detail.append("seq, fsspec MiB/s (fsspec.filesystem() to last read, import excluded): "
                      + ", ".join(f"{v:.1f}" for v in fs.v))
        detail.append(f"fsspec {fs_info['fsspec']} defaults: {fs_info['file_class']}, "
                      f"block_size {fs_info['block_size']} ({human(fs_info['block_size'])}), "
                      f"cache_type '{fs_info['cache_name']}' ({fs_info['cache_type']})")
    if "random" in res:
        ratio, mibs, reqs, secs = res["random"]
        row(f"random 4 KiB reads x {a.random_count} over {size_s} (bytes fetched / bytes read)",
            f"{ratio.fmt('.3f', 'x')}; {mibs.fmt('.3f', ' MiB/s')}; {reqs.fmt(',.0f', ' requests')}",
            f"{a.random_count * 4096:,} bytes read", ratio.med, "<= 2x", ratio.med <= 2.0)
        detail.append("random, seconds per run: " + ", ".join(f"{v:.2f}" for v in secs.v)
                      + f" (~{statistics.median(secs.v) / a.random_count * 1000:.1f} ms per read)")

    print(f"\nlumio remote bench, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
          f"median of {a.runs} runs (min-max)")
    print(f"object {size_s} random bytes; nginx limit_rate {rate} per connection (/slow/); "
          f"faultproxy {a.latency_ms} ms per request; benchmark time {elapsed:.0f} s")
    print(f"lumio at commit {build0[0]}, build/lumio built {build0[1]}"
          + ("" if build1[1] == build0[1] else
             f"; WARNING: build/lumio was rebuilt during the run (at {build1[1]})")
          + ("" if build1[0] == build0[0] else f"; HEAD moved to {build1[0]} during the run"))
    print(f"load average at start {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
          f"at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}\n")
    print("| workload | lumio | peer | ratio | target | met? |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, l, p, ratio, target, met in rows:
        print(f"| {name} | {l} | {p} | {ratio:.2f}x | {target} | {met} |")
    print("\nAll runs:\n")
    for d in detail:
        print(f"- {d}")


if __name__ == "__main__":
    main()
