"""Export speed of every format on the largest real profile (issue 14).

    /usr/bin/python3 bench/export_bench.py LUMIO PROFILE.perf.txt.zst [--runs N]

Imports the `perf script` profile into a lumio stream once, then times
`lumio stream export --to FORMAT STREAM -o FILE` N times per format (the
whole command: reading and decoding the stream, the export, writing the
file), and prints a Markdown table: median time, samples/s, output size,
and each format's speed relative to collapsed (folded stacks), the
baseline."""

import os
import statistics
import subprocess
import sys
import tempfile
import time

lumio, profile = sys.argv[1:3]
runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
formats = ["collapsed", "jsonl", "speedscope", "gecko", "pprof"]

with tempfile.TemporaryDirectory() as work:
    stream = os.path.join(work, "p.lumio")
    text = subprocess.run(["zstd", "-dc", profile], check=True, capture_output=True).stdout
    subprocess.run([lumio, "stream", "import", "--from", "perf-script", "-", "-o", stream],
                   input=text, check=True)
    info = subprocess.run([lumio, "stream", "info", stream], check=True, capture_output=True,
                          text=True).stdout
    samples = int(next(l.split()[1] for l in info.splitlines() if l.startswith("samples:")))
    rows = {}
    for f in formats:
        out = os.path.join(work, "out." + f)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run([lumio, "stream", "export", "--to", f, stream, "-o", out], check=True)
            times.append(time.perf_counter() - t)
        rows[f] = (statistics.median(times), min(times), max(times), os.path.getsize(out))
    base = rows["collapsed"][0]
    print(f"{os.path.basename(profile)}: {samples} samples, stream {os.path.getsize(stream)} bytes; "
          f"medians of {runs} runs")
    print()
    print("| format | time | samples/s | output | speed vs collapsed |")
    print("| --- | --- | --- | --- | --- |")
    for f, (med, lo, hi, size) in rows.items():
        print(f"| {f} | {med * 1000:.0f} ms ({lo * 1000:.0f}-{hi * 1000:.0f}) | "
              f"{samples / med / 1e6:.2f} M | {size / 1e6:.2f} MB | {base / med:.2f}x |")
