#!/usr/bin/env python3
"""lumio.remote.open against fsspec's HTTPFileSystem from Python, on the same
object in one run: sequential reads of 64 KiB until the end, as
bench/remote.py measures the CLI (whose `lumio bench remote` runs here too,
for the cost of the Python layer).

Usage: PYTHONPATH=build/python /usr/bin/python3 bench/python_remote.py
           [--runs R] [--size SIZE] [--read-size N] [--latency-ms N]
           [--fsspec-max-seconds S]

Setup, as bench/remote.py: a private nginx (tests/http_env.sh, which this
script runs itself under when LUMIO_HTTP_URL is not set) serving SIZE random
bytes (default 1G) through /slow/, where every connection is capped at
LUMIO_HTTP_RATE (default 50m: 50 MB/s, as object stores cap a connection),
with build/tests/faultproxy in front adding --latency-ms (default 20) to
every request. Each reader runs in a process of its own, in turns within a
run: lumio.remote.open(url) with its defaults, fsspec's
filesystem("http").open(url) with its defaults (stopped after
--fsspec-max-seconds, then the prefix read counts), and the CLI's
`lumio bench remote --pattern seq`. Figures are medians of R runs (min-max).
Target: lumio.remote >= 5x fsspec (issue 13). Progress goes to stderr.
"""
import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYPATH = os.path.join(ROOT, "build", "python")

# The CLI benchmark's helpers: the object, the proxy, fsspec's reader, figures.
_spec = importlib.util.spec_from_file_location("cli_remote_bench",
                                               os.path.join(ROOT, "bench", "remote.py"))
cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli)

LUMIO_CHILD = r"""
import json, sys, time
import lumio.remote
url, n = sys.argv[1], int(sys.argv[2])
t = time.perf_counter()  # from open to the last read, as fsspec's (import excluded)
got = 0
with lumio.remote.open(url) as f:
    while True:
        b = f.read(n)
        if not b:
            break
        got += len(b)
    st = f.stats()
dt = time.perf_counter() - t
print(json.dumps({"bytes": got, "seconds": dt, "mib_per_s": got / dt / 2**20,
                  "requests": st["requests"], "bytes_fetched": st["bytes_fetched"]}))
"""


def log(msg):
    print(f"[python_remote {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def child(code, *args, what):
    env = dict(os.environ, PYTHONPATH=PYPATH)
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                       text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"bench: {what} failed (exit {r.returncode})\n{r.stdout}{r.stderr}")
    return json.loads(r.stdout)


def bench(url, size, runs, read_size, fs_deadline):
    lum, fs, cli_seq = cli.Stat(), cli.Stat(), cli.Stat()
    reqs, fs_bytes, fs_info = [], [], None
    for r in range(runs):
        j = child(LUMIO_CHILD, url, read_size, what="lumio.remote")
        if j["bytes"] != size:
            sys.exit(f"bench: lumio.remote read {j['bytes']} bytes, not {size}")
        lum.add(j["mib_per_s"])
        reqs.append(j["requests"])
        log(f"run {r + 1}/{runs}: lumio.remote {j['seconds']:6.2f} s {j['mib_per_s']:7.1f} MiB/s, "
            f"{j['requests']} requests, {j['bytes_fetched']} bytes fetched")
        k = child(cli.FSSPEC_CHILD, url, fs_deadline, what="fsspec")
        fs.add(k["mib_per_s"])
        fs_bytes.append(k["bytes"])
        fs_info = k
        log(f"run {r + 1}/{runs}: fsspec       {k['seconds']:6.2f} s {k['mib_per_s']:7.1f} MiB/s, "
            f"{cli.human(k['bytes']) if k['prefix'] else 'whole object'} ({k['file_class']}, "
            f"block_size {k['block_size']}, cache {k['cache_type']})")
        if os.access(cli.LUMIO, os.X_OK):
            _, out = cli.run([cli.LUMIO, "bench", "remote", url, "--pattern", "seq", "--read-size",
                              str(read_size)], "lumio bench remote")
            c = json.loads(out)
            cli_seq.add(c["mib_per_s"])
            log(f"run {r + 1}/{runs}: lumio CLI    {c['seconds']:6.2f} s {c['mib_per_s']:7.1f} MiB/s")
    return lum, fs, cli_seq, reqs, fs_bytes, fs_info


def report(a, rate, res, elapsed, load0, load1):
    lum, fs, cli_seq, reqs, fs_bytes, fs_info = res
    size_s = cli.human(a.size)
    whole = all(b == a.size for b in fs_bytes)
    fs_what = "whole object" if whole else "prefix of " + ", ".join(cli.human(b) for b in fs_bytes)
    ratio = lum.med / fs.med
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip() or "?"
    print(f"\nlumio.remote vs fsspec, {time.strftime('%Y-%m-%d %H:%M')}, commit {head}, "
          f"{os.cpu_count()} cores, median of {a.runs} runs (min-max)")
    print(f"object {size_s} random bytes; nginx limit_rate {rate} per connection; faultproxy "
          f"{a.latency_ms} ms per request; {cli.human(a.read_size)} reads; {elapsed:.0f} s; load "
          f"{load0[0]:.2f} at start, {load1[0]:.2f} at end\n")
    print("| workload | lumio.remote | peer | ratio | target | met? |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| sequential reads of {size_s}, vs fsspec ({fs_what}) | {lum.fmt(unit=' MiB/s')} | "
          f"{fs.fmt(',.1f', ' MiB/s')} | {ratio:.1f}x | >= 5x | {'met' if ratio >= 5 else 'not met'} |")
    if cli_seq.v:
        print(f"| the same, vs the CLI (`lumio bench remote`) | {lum.fmt(unit=' MiB/s')} | "
              f"{cli_seq.fmt(unit=' MiB/s')} | {lum.med / cli_seq.med:.2f}x | | |")
    print(f"\n- lumio.remote requests per run: {', '.join(map(str, reqs))}")
    print(f"- fsspec {fs_info['fsspec']} defaults: {fs_info['file_class']}, block_size "
          f"{fs_info['block_size']}, cache '{fs_info['cache_name']}' ({fs_info['cache_type']})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", type=cli.parse_size, default=1 << 30)
    ap.add_argument("--read-size", type=cli.parse_size, default=64 << 10)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--fsspec-max-seconds", type=float, default=60.0)
    a = ap.parse_args()
    if not os.environ.get("LUMIO_HTTP_URL"):  # a private nginx around this very script
        os.environ.setdefault("LUMIO_HTTP_RATE", "50m")
        env_sh = os.path.join(ROOT, "tests", "http_env.sh")
        os.execv(env_sh, [env_sh, sys.executable, os.path.abspath(__file__), *sys.argv[1:]])
    for p in (os.path.join(PYPATH, "lumio"), cli.FAULTPROXY):
        if not os.path.exists(p):
            sys.exit(f"bench: {p} is missing (cmake --build build)")
    try:
        import aiohttp  # noqa: F401
        import fsspec  # noqa: F401
    except ImportError as e:
        sys.exit(f"bench: {e} (python3-fsspec and python3-aiohttp)")

    def on_signal(sig, _frame):  # unwind through the finally below
        raise SystemExit(128 + sig)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    root, base = os.environ["LUMIO_HTTP_ROOT"], os.environ["LUMIO_HTTP_URL"]
    rate = os.environ.get("LUMIO_HTTP_RATE", "50m")
    load0 = os.getloadavg()
    cli.make_object(os.path.join(root, "object.bin"), a.size)
    proxy = cli.FaultProxy(base.removeprefix("http://"), a.latency_ms,
                           os.path.join(root, "..", "faultproxy.log"))
    url = f"http://127.0.0.1:{proxy.port}/slow/object.bin"
    log(f"faultproxy on port {proxy.port} ({a.latency_ms} ms per request), nginx limit_rate "
        f"{rate}; URL {url}")
    t = time.perf_counter()
    try:
        res = bench(url, a.size, a.runs, a.read_size, a.fsspec_max_seconds)
    finally:
        proxy.stop()
        cli.rm(proxy.log_path)
    report(a, rate, res, time.perf_counter() - t, load0, os.getloadavg())


if __name__ == "__main__":
    main()
