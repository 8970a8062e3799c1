#!/usr/bin/python3
"""Importers (austin, speedscope, tachyon) and the tachyon exporter, from the
command line, against independent references:

- tachyon: a decoder and an encoder of CPython's binary format v1 written
  here from InternalDocs/profiling_binary_format.md (not from lumio's C), so
  both directions are checked against a second reading of the spec (no
  CPython 3.15 is available here to check against the real one);
- austin and speedscope: each fixture's samples counted here, by this
  script's own parsing, against lumio's folded export of the import (same
  total, same stacks and leaf counts).

usage: profile_import_test.py LUMIO PROFILE_CONVERT DATA_DIR [--austin-real]
--austin-real: record a Python script with the real austin (Debian's 1.0.1
needs a Python <= 3.8 to sample); exit 77 when there is none.
"""
import collections
import glob
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

LUMIO, CONVERT, DATA = sys.argv[1:4]
AUSTIN_REAL = "--austin-real" in sys.argv
TMP = tempfile.mkdtemp(prefix="lumio-profiles-")
failures = []


def run(args, stdin=None, ok=True):
    p = subprocess.run(args, input=stdin, capture_output=True, timeout=240)
    if ok and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}: {p.stderr.decode(errors='replace')}")
    return p


def check(name, cond, detail=""):
    print(f"{'ok  ' if cond else 'FAIL'} {name}" + (f": {detail}" if detail and not cond else ""))
    if not cond:
        failures.append(name)


# ---- tachyon, from the spec --------------------------------------------------

def varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if not c & 0x80:
            return v, i
        shift += 7


def zz(v):
    return (v >> 1) ^ -(v & 1)


def put_varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def put_zz(v):
    return put_varint((v << 1) ^ (v >> 63) if v < 0 else v << 1)


def tachyon_decode(data):
    """(header dict, samples [(tid, ts, status, ((fn, file, line), ...))], encodings)"""
    magic = struct.unpack_from("<I", data, 0)[0]
    e = "<" if magic == 0x54414348 else ">"
    assert struct.unpack_from(e + "I", data, 0)[0] == 0x54414348, "magic"
    (version,) = struct.unpack_from(e + "I", data, 4)
    py = tuple(data[8:11])
    start, interval, nsamples, nthreads, str_off, frame_off, comp = struct.unpack_from(e + "QQQIQQI", data, 12)
    nstr, nframes, fsize = struct.unpack_from(e + "IIQ", data, len(data) - 32)
    assert version == 1 and fsize == len(data), (version, fsize, len(data))
    strings, i = [], str_off
    for _ in range(nstr):
        n, i = varint(data, i)
        strings.append(data[i:i + n].decode("utf-8", "replace"))
        i += n
    assert i == frame_off
    frames, i = [], frame_off
    for _ in range(nframes):
        file, i = varint(data, i)
        fn, i = varint(data, i)
        line, i = varint(data, i)
        for _k in range(3):
            _, i = varint(data, i)
        i += 1  # opcode
        ln = zz(line)
        frames.append((strings[fn], strings[file], ln if ln > 0 else 0))
    body = data[64:str_off]
    if comp == 1:
        body = subprocess.run(["zstd", "-dcq"], input=body, capture_output=True, check=True).stdout
    out, enc, threads, i = [], collections.Counter(), {}, 0
    while i < len(body):
        tid, iid, kind = struct.unpack_from(e + "QIB", body, i)
        i += 13
        th = threads.setdefault((tid, iid), {"prev": start, "stack": []})
        enc[kind] += 1
        count = 1
        if kind == 0:
            count, i = varint(body, i)
        for _ in range(count):
            delta, i = varint(body, i)
            status = body[i]
            i += 1
            st = th["stack"]
            if kind == 1:
                d, i = varint(body, i)
                st = []
                for _k in range(d):
                    f, i = varint(body, i)
                    st.append(f)
            elif kind in (2, 3):
                a, i = varint(body, i)
                n, i = varint(body, i)
                new = []
                for _k in range(n):
                    f, i = varint(body, i)
                    new.append(f)
                keep = st[len(st) - a:] if kind == 2 else st[a:]
                if kind == 2 and a == 0:
                    keep = []
                st = new + keep
            th["stack"] = st
            th["prev"] = (th["prev"] + delta) % (1 << 64)
            out.append((tid, th["prev"], status, tuple(frames[f] for f in st)))
    hdr = dict(py=py, start=start, interval=interval, samples=nsamples, threads=nthreads, compression=comp)
    assert nsamples == len(out) and nthreads == len(threads), (nsamples, len(out), nthreads, len(threads))
    return hdr, out, enc


def tachyon_encode(samples, start, interval, py=(3, 15, 0), compress=False, big=False):
    """Samples in order; its own choice of encodings (not CPython's): REPEAT
    groups of consecutive repeats of a thread, SUFFIX when only pushing,
    POP_PUSH whenever some bottom is shared, else FULL."""
    e = ">" if big else "<"
    strings, sidx, frames, fidx = [], {}, [], {}

    def s_id(s):
        if s not in sidx:
            sidx[s] = len(strings)
            strings.append(s)
        return sidx[s]

    def f_id(f):
        key = (s_id(f[1]), s_id(f[0]), f[2])
        if key not in fidx:
            fidx[key] = len(frames)
            frames.append(key)
        return fidx[key]

    body, prev, stacks, tids = bytearray(), {}, {}, []
    k = 0
    while k < len(samples):
        tid, ts, status, fr = samples[k]
        ids = [f_id(f) for f in fr]
        if tid not in prev:
            prev[tid], stacks[tid] = start, []
            tids.append(tid)
        old = stacks[tid]
        head = struct.pack(e + "QIB", tid, 7, 0)
        if ids == old:
            group = [(ts, status)]
            while k + len(group) < len(samples) and samples[k + len(group)][0] == tid and \
                    [f_id(f) for f in samples[k + len(group)][3]] == ids:
                group.append(samples[k + len(group)][1:3])
            body += head + put_varint(len(group))
            for t2, st2 in group:
                body += put_varint((t2 - prev[tid]) % (1 << 64)) + bytes([st2])
                prev[tid] = t2
            k += len(group)
            continue
        shared = 0
        while shared < min(len(old), len(ids)) and old[len(old) - 1 - shared] == ids[len(ids) - 1 - shared]:
            shared += 1
        delta = put_varint((ts - prev[tid]) % (1 << 64)) + bytes([status])
        if shared and shared == len(old):
            rec = bytes([2]) + delta + put_varint(shared) + put_varint(len(ids) - shared)
            rec += b"".join(put_varint(x) for x in ids[:len(ids) - shared])
        elif shared:
            rec = bytes([3]) + delta + put_varint(len(old) - shared) + put_varint(len(ids) - shared)
            rec += b"".join(put_varint(x) for x in ids[:len(ids) - shared])
        else:
            rec = bytes([1]) + delta + put_varint(len(ids)) + b"".join(put_varint(x) for x in ids)
        body += head[:-1] + rec
        prev[tid], stacks[tid] = ts, ids
        k += 1
    if compress:
        body = subprocess.run(["zstd", "-q", "-5", "-c"], input=bytes(body), capture_output=True, check=True).stdout
    st = b"".join(put_varint(len(s.encode())) + s.encode() for s in strings)
    ft = b"".join(put_varint(a) + put_varint(b) + put_zz(line if line else -1) + put_zz(0) + put_zz(-1) + put_zz(0) + b"\xff"
                  for a, b, line in frames)
    str_off = 64 + len(body)
    frame_off = str_off + len(st)
    stats = b"\0" * 56  # an optional statistics block: readers must step over it
    size = frame_off + len(ft) + len(stats) + 32
    hdr = struct.pack(e + "II", 0x54414348, 1) + bytes(py) + b"\0"
    hdr += struct.pack(e + "QQQIQQII", start, interval, len(samples), len(tids), str_off, frame_off, 1 if compress else 0, 0)
    hdr += b"\0" * (64 - len(hdr))
    return hdr + bytes(body) + st + ft + stats + struct.pack(e + "IIQ", len(strings), len(frames), size) + b"\0" * 16


# ---- lumio's side ---------------------------------------------------------------

def jsonl(stream):
    out, meta = [], []
    for line in run([LUMIO, "stream", "export", "--to", "jsonl", stream]).stdout.decode().splitlines():
        o = json.loads(line)
        if o["type"] == "sample":
            out.append((o["tid"], o["ts_us"], o["status"], tuple((f["function"], f["file"], f["line"]) for f in o["frames"])))
        else:
            meta.append((o["key"], o["value"]))
    return out, meta


def per_thread(samples, depth=None):
    d = collections.defaultdict(list)
    for tid, ts, st, fr in samples:
        d[tid].append((ts, st, fr[:depth] if depth else fr))
    return dict(d)


def folded(stream):
    return collections.Counter(run([LUMIO, "stream", "export", "--to", "collapsed", stream]).stdout.decode().splitlines())


def leaf_counts(counter):
    c = collections.Counter()
    for line, n in counter.items():
        stack, _, k = line.rpartition(" ")
        c[stack.split(";")[-1]] += n * int(k)
    return c


def import_file(fmt, path, name, stdin=None):
    out = os.path.join(TMP, name + ".lumio")
    run([LUMIO, "stream", "import", "--from", fmt, "-" if stdin is not None else path, "-o", out], stdin=stdin)
    return out


# ---- tachyon tests ----------------------------------------------------------------

def tachyon_round_trip(name, stream, depth_cap=256):
    orig, _ = jsonl(stream)
    binf = os.path.join(TMP, name + ".bin")
    run([CONVERT, "tachyon", stream, binf])
    data = open(binf, "rb").read()
    hdr, dec, enc = tachyon_decode(data)
    want = per_thread(orig, depth_cap)
    check(f"{name}: the spec's decoder reads lumio's tachyon export", per_thread(dec) == want and len(dec) == len(orig))
    check(f"{name}: lumio's export uses CPython's encodings", enc[0] > 0 and enc[1] > 0 and (enc[2] + enc[3]) > 0, str(enc))
    back = import_file("tachyon", binf, name + "-back")
    got, meta = jsonl(back)
    check(f"{name}: stream -> tachyon -> stream keeps every sample", per_thread(got) == want and len(got) == len(orig))
    check(f"{name}: same folded samples after the round trip",
          leaf_counts(folded(back)) == leaf_counts(folded(stream)) or depth_cap_hit(orig, depth_cap))
    return hdr, meta


def depth_cap_hit(samples, cap):
    return any(len(s[3]) > cap for s in samples)


def test_tachyon():
    gen = os.path.join(TMP, "gen.lumio")
    run([LUMIO, "stream", "gen", "--seed", "7", "--samples", "30000", "--threads", "5", "--depth", "60", "-o", gen])
    tachyon_round_trip("gen", gen)
    for path in sorted(glob.glob(os.path.join(DATA, "profiles", "*.perf.txt.zst"))):
        text = subprocess.run(["zstd", "-dcq", path], capture_output=True, check=True).stdout
        name = os.path.basename(path).split(".")[0]
        stream = import_file("perf-script", None, name, stdin=text)
        tachyon_round_trip(name, stream)
    # The spec's encoder writes, lumio reads: raw, zstd, big-endian, and a pipe.
    samples, _ = jsonl(gen)
    samples = [(tid, ts, st, fr[:256]) for tid, ts, st, fr in samples[:8000]]
    samples.append((samples[0][0], samples[0][1] - 5, 3, ()))  # an empty stack, time going back
    for compress in (False, True):
        for big in (False, True):
            name = f"spec-{'zstd' if compress else 'raw'}-{'be' if big else 'le'}"
            path = os.path.join(TMP, name + ".bin")
            open(path, "wb").write(tachyon_encode(samples, samples[0][1], 250, compress=compress, big=big))
            got, meta = jsonl(import_file("tachyon", path, name))
            check(f"{name}: lumio imports the spec's encoder's samples", per_thread(got) == per_thread(samples))
            check(f"{name}: header records", ("python_version", "3.15.0") in meta and ("interval_us", "250") in meta, str(meta))
    got, _ = jsonl(import_file("tachyon", None, "spec-pipe", stdin=open(path, "rb").read()))
    check("tachyon from a pipe (spooled)", per_thread(got) == per_thread(samples))
    # Hostile files from the command line: exit 1, the byte named.
    good = tachyon_encode(samples[:50], samples[0][1], 100)
    str_off = struct.unpack_from("<Q", good, 40)[0]

    def resized(d):  # the footer's size made right, so that the damage inside is what is met
        return d[:-24] + struct.pack("<Q", len(d)) + d[-16:]
    for name, data, want in [
        ("truncated", good[:-40], "footer"),
        ("zeroed header", b"\0" * 64 + good[64:], "no TACH magic"),
        ("string length 2^32", resized(good[:str_off] + put_varint(1 << 32) + good[str_off + 1:]), "string 0 at byte"),
        ("frame table offset past the end", good[:48] + struct.pack("<Q", 1 << 40) + good[56:], "table offsets"),
    ]:
        path = os.path.join(TMP, "bad.bin")
        open(path, "wb").write(data)
        p = run([LUMIO, "stream", "import", "--from", "tachyon", path, "-o", os.path.join(TMP, "bad.lumio")], ok=False)
        err = p.stderr.decode()
        check(f"hostile tachyon ({name}) is refused by name", p.returncode != 0 and want in err, err)


# ---- austin and speedscope ---------------------------------------------------------

def austin_expected(path):
    """Folded lines counted from austin's text by this script's own reading."""
    c, meta = collections.Counter(), {}
    lines = open(path, "rb").read().decode().split("\n")
    for k, line in enumerate(lines):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        if line.startswith("#"):
            key, _, value = line[1:].strip().partition(": ")
            meta[key] = value
            continue
        parts = line.split(" ")
        if k == len(lines) - 1 and not parts[-1].replace(",", "").replace("-", "").isdigit():
            continue  # cut short by a kill
        n = 3 if "," not in parts[-1] and all(p.lstrip("-").isdigit() for p in parts[-3:]) else 1
        rest = " ".join(parts[:-n])
        if rest.startswith("Process "):
            rest = rest.split(";", 1)[1]
        if rest.startswith("Thread "):
            stack = rest.split(";", 1)[1] if ";" in rest else ""
        else:  # P<pid>;T<iid>:<tid>[;stack]
            stack = rest.split(";", 2)[2] if rest.count(";") >= 2 else ""
        names = []
        for seg in stack.split(";") if stack else []:
            if seg.startswith("L") and seg[1:].isdigit():
                continue
            if " (" in seg and seg.endswith(")"):
                names.append(seg[:seg.rindex(" (")])
            else:
                names.append(seg.rsplit(":", 2)[1])
        c[(";".join(names) if names else "[empty]") + " 1"] += 1
    return c, meta


def test_austin():
    for path in sorted(glob.glob(os.path.join(DATA, "austin", "*.txt"))):
        name = os.path.basename(path)[:-4]
        want, meta = austin_expected(path)
        stream = import_file("austin", path, name)
        got = folded(stream)
        check(f"austin {name}: the import holds the folded samples ({sum(want.values())})", got == want,
              f"{sum(got.values())} vs {sum(want.values())}: {list((got - want).items())[:2]} {list((want - got).items())[:2]}")
        check(f"austin {name}: same leaf counts", leaf_counts(got) == leaf_counts(want))
        if "austin" in meta:
            _, recs = jsonl(stream)
            check(f"austin {name}: metadata as records", ("source", "austin " + meta["austin"]) in recs and
                  ("interval_us", meta["interval"]) in recs and ("python_version", meta["python"]) in recs, str(recs))


def speedscope_expected(path):
    doc = json.load(open(path))
    frames = doc["shared"]["frames"]
    c = collections.Counter()
    for prof in doc["profiles"]:
        for st, w in zip(prof["samples"], prof["weights"]):
            line = ";".join(frames[i]["name"] for i in st) if st else "[empty]"
            c[line + " 1"] += int(w) if prof["unit"] == "none" else 1
    return c


def test_speedscope():
    # A file speedscope's own writers would make, from a generated stream.
    gen = os.path.join(TMP, "gen.lumio")
    samples, _ = jsonl(gen)
    frames, fidx, profiles = [], {}, collections.OrderedDict()
    for tid, ts, st, fr in samples:
        ids = []
        for f in reversed(fr):
            if f not in fidx:
                fidx[f] = len(frames)
                frames.append({"name": f[0], "file": f[1], "line": f[2]})
            ids.append(fidx[f])
        p = profiles.setdefault(tid, {"type": "sampled", "name": f"{tid} thread", "unit": "microseconds",
                                      "startValue": 0, "endValue": 0, "samples": [], "weights": []})
        p["samples"].append(ids)
        p["weights"].append(1)
    gen_ss = os.path.join(TMP, "gen.speedscope.json")
    json.dump({"$schema": "https://www.speedscope.app/file-format-schema.json", "shared": {"frames": frames},
               "profiles": list(profiles.values())}, open(gen_ss, "w"))
    for path in sorted(glob.glob(os.path.join(DATA, "speedscope", "*.json"))) + [gen_ss]:
        name = os.path.basename(path)[:-5]
        stream = import_file("speedscope", path, name)
        got, want = folded(stream), speedscope_expected(path)
        check(f"speedscope {name}: the import holds the folded samples ({sum(want.values())})", got == want)
        check(f"speedscope {name}: same leaf counts", leaf_counts(got) == leaf_counts(want))
    check("speedscope from a stream: the stream's own folded samples", folded(import_file("speedscope", gen_ss, "g2")) == folded(gen))
    # lumio's own speedscope export read back: the same threads (ids and names), each
    # thread's stacks in order, whatever the ids (2^64-1 too).
    doc = json.load(open(gen_ss))
    doc["profiles"].append({"type": "sampled", "name": f"{(1 << 64) - 1} huge", "unit": "none",
                            "samples": [[0, 1], [0]], "weights": [2, 1]})
    doc["profiles"].append({"type": "sampled", "name": str(1 << 63), "unit": "none", "samples": [[1]], "weights": [1]})
    first = os.path.join(TMP, "named.json")
    json.dump(doc, open(first, "w"))
    named = import_file("speedscope", first, "named")
    ss = os.path.join(TMP, "named.speedscope.json")
    open(ss, "wb").write(run([LUMIO, "stream", "export", "--to", "speedscope", named]).stdout)
    orig, ometa = jsonl(named)
    got, meta = jsonl(import_file("speedscope", ss, "named-back"))
    strip = lambda d: {t: [fr for _, _, fr in v] for t, v in d.items()}
    check("speedscope: lumio's export imports back with its thread ids", strip(per_thread(got)) == strip(per_thread(orig)),
          f"{sorted(per_thread(got))} vs {sorted(per_thread(orig))}")
    names = lambda m: sorted(v for k, v in m if k == "thread_name")
    check("speedscope: and with its thread names", names(meta) == names(ometa), f"{names(meta)} vs {names(ometa)}")
    got, meta = jsonl(import_file("speedscope", os.path.join(DATA, "speedscope", "timed.json"), "timed"))
    check("speedscope time units: timestamps from startValue and weights (us)", [s[1] for s in got] == [1000000, 1002500, 1007500, 1009500], str([s[1] for s in got]))
    got, meta = jsonl(import_file("speedscope", os.path.join(DATA, "speedscope", "py-spy-like.json"), "pyspy"))
    check("speedscope thread names and ids", ("thread_name", "140111 worker-1") in meta and ("thread_name", "0 MainThread (4317)") in meta
          and {s[0] for s in got} == {0, 140111}, str(meta))
    bad = os.path.join(TMP, "bad.json")
    for text, want in [('{"shared": {"frames": [{"name": "a"}]}, "profiles": [{"type": "sampled", "unit": "none", "samples": [[0, 3]], "weights": [1]}]}', "profiles[0].samples[0][1]"),
                       ('{"shared": {"frames": []}, "profiles": [{"type": "sampled", "unit": "none", "samples": [[]], "weights": [1.5]}]}', "profiles[0].weights[0]"),
                       ('{"shared": {"frames": [', "not JSON")]:
        open(bad, "w").write(text)
        p = run([LUMIO, "stream", "import", "--from", "speedscope", bad, "-o", os.path.join(TMP, "bad.lumio")], ok=False)
        check(f"hostile speedscope names {want}", p.returncode != 0 and want in p.stderr.decode(), p.stderr.decode())


def austin_python():
    """A Python that austin 1.0.1 can sample (<= 3.8) and that runs."""
    cands = [shutil.which(c) for c in ("python3.8", "python3.7", "python3.6")]
    cands += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.[678].*/bin/python3.[678]")), reverse=True)
    for c in cands:
        if c and "/shims/" not in c and subprocess.run([c, "-c", "pass"], capture_output=True).returncode == 0:
            return c
    return None


def test_austin_real():
    py = austin_python()
    if not shutil.which("austin") or not py:
        print("skipped: needs austin (Debian's package) and a Python it can sample (<= 3.8)")
        sys.exit(77)
    script = os.path.join(TMP, "threads.py")
    open(script, "w").write(
        "import threading, time\n"
        "def leaf(n):\n    return sum(i * i for i in range(n))\n"
        "def work():\n    t = time.time()\n    while time.time() - t < 0.5:\n        leaf(3000)\n"
        "ts = [threading.Thread(target=work) for _ in range(2)]\n"
        "[t.start() for t in ts]\nwork()\n[t.join() for t in ts]\n")
    out = os.path.join(TMP, "austin.txt")
    for args, name in [([], "wall"), (["-f"], "full"), (["-C"], "children")]:
        p = subprocess.run(["austin", "-i", "1000", *args, "-o", out, py, script], capture_output=True, timeout=60)
        check(f"austin {name} ran", p.returncode == 0, p.stderr.decode(errors="replace"))
        want, _ = austin_expected(out)
        got = folded(import_file("austin", out, "real-" + name))
        check(f"real austin {name}: the import holds its samples ({sum(want.values())})", got == want and sum(got.values()) > 100)
        check(f"real austin {name}: the script's frames", any("leaf" in line for line in got))


try:
    if AUSTIN_REAL:
        test_austin_real()
    else:
        test_tachyon()
        test_austin()
        test_speedscope()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
print(f"profile_import: {'%d failed' % len(failures) if failures else 'all passed'}")
sys.exit(1 if failures else 0)
