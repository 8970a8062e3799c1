#!/usr/bin/env python3
"""lumio stream serve's API, checked against lumio's own exports.

The flame graph's root value is the number of samples and every stack's own
samples equal the folded export's; the thread and time filters select what
the JSON-lines export says they should; the timeline and the summary count
right (chunks as `stream info` says, threads with their names, time span,
damage, dropped samples); bad parameters are 400 with a JSON error; a Host
that is not the server's is refused; a followed file grows; tcp: works; a
real perf profile (tests/data/profiles) serves the same stacks as its folded
export.

usage: stream_serve_test.py LUMIO SERVE_WRITER PROFILES_DIR"""
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

LUMIO, WRITER, PROFILES = sys.argv[1:4]
TMP = tempfile.mkdtemp(prefix="serve_test_")
checks = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    checks["passed" if ok else "failed"] += 1
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + str(detail)[:600]))


def run(*args, **kw):
    return subprocess.run([LUMIO, *args], check=True, capture_output=True, timeout=120, **kw)


class Server:
    """lumio stream serve SOURCE, stopped (SIGTERM) at the end."""

    def __init__(self, source, *opts, env=None):
        self.err = open(os.path.join(TMP, "serve.%d.err" % time.monotonic_ns()), "w+")
        self.p = subprocess.Popen([LUMIO, "stream", "serve", source, *opts],
                                  stdout=subprocess.DEVNULL, stderr=self.err,
                                  env=dict(os.environ, **(env or {})))
        self.url = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.url is None and self.p.poll() is None:
            time.sleep(0.05)
            self.err.seek(0)
            for line in self.err.read().splitlines():
                if line.startswith("serving "):
                    self.url = line.split()[1]
        if self.url is None:
            self.stop()
            raise RuntimeError("no 'serving URL' line: " + self.stderr())
        self.port = int(self.url.rsplit(":", 1)[1].strip("/"))

    def get(self, path, host=None, method="GET"):
        req = urllib.request.Request(self.url.rstrip("/") + path, method=method)
        if host is not None:
            req.add_header("Host", host)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def json(self, path):
        status, _, body = self.get(path)
        if status != 200:
            raise RuntimeError("%s: %d %s" % (path, status, body[:200]))
        return json.loads(body)

    def wait(self, pred, what, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.json("/api/summary")
            if pred(s):
                return s
            time.sleep(0.1)
        raise RuntimeError("timed out waiting for " + what + ": " + json.dumps(s)[:400])

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = self.p.wait()
        return rc


def samples_of(path):
    """(ts, tid, stack outer->inner) of every sample, from the JSON-lines export."""
    out = []
    for line in run("stream", "export", "--to", "jsonl", path).stdout.splitlines():
        o = json.loads(line)
        if o["type"] == "sample":
            out.append((o["ts_us"], o["tid"], tuple(f["function"] for f in reversed(o["frames"]))))
    return out


def folded_of(path):
    c = collections.Counter()
    for line in run("stream", "export", "--to", "collapsed", path).stdout.decode().splitlines():
        stack, n = line.rsplit(" ", 1)
        c[stack] += int(n)
    return c


def fold(samples):
    c = collections.Counter()
    for _, _, st in samples:
        c[";".join(f.replace(";", ":").replace("\n", " ") for f in st) or "[empty]"] += 1
    return c


def tree_folded(tree):
    """Each node's own samples (value less its children's), by path of names."""
    c = collections.Counter()
    stack = [(tree, ())]
    while stack:
        n, path = stack.pop()
        kids = n.get("children", [])
        own = n["value"] - sum(k["value"] for k in kids)
        if own:
            c[";".join(path) if path else "[empty]"] += own
        for k in kids:
            stack.append((k, path + (k["name"].replace(";", ":").replace("\n", " "),)))
    return c


def same(a, b):
    a, b = +a, +b
    if a == b:
        return True
    diff = [(k, a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)]
    return "differ in %d stacks, e.g. %s" % (len(diff), diff[:3])


def test_api():
    path = os.path.join(TMP, "gen.lumio")
    run("stream", "gen", "--seed", "7", "--samples", "30000", "--threads", "4", "--depth", "16",
        "--flush", "samples:4000", "-o", path)
    # Two named threads appended by another writer, in their own chunks.
    subprocess.run([WRITER, path, "1700000000500000", "10", "500", "250", "42", "worker 42",
                    "main", "serve_me", "leaf"], check=True, timeout=60)
    samples = samples_of(path)
    chunks = int(run("stream", "info", path).stdout.decode().split()[1])
    srv = Server(path)
    try:
        s = srv.wait(lambda s: s["samples"] == len(samples), "all samples")
        check("summary: samples", s["samples"] == len(samples) == 30500, s["samples"])
        check("summary: chunks as stream info says", s["chunks"] == chunks, (s["chunks"], chunks))
        by_tid = collections.Counter(t for _, t, _ in samples)
        got = {t["id"]: t["samples"] for t in s["threads"]}
        check("summary: threads and their samples", got == dict(by_tid), (got, by_tid))
        names = {t["id"]: t["name"] for t in s["threads"]}
        check("summary: thread_name records name threads", names[42] == "worker 42" and
              names[1000] is None, names)
        ts = [t for t, _, _ in samples]
        check("summary: time span", (s["first_us"], s["last_us"]) == (min(ts), max(ts)),
              (s["first_us"], s["last_us"]))
        check("summary: no damage, nothing dropped", s["damage"]["ranges"] == 0 and
              s["damage"]["bytes"] == 0 and s["dropped_samples"] == 0, s)
        check("summary: records and metadata", s["records"] == 2 and "generator" in s["meta"], s)

        tree = srv.json("/api/flamegraph")
        check("flamegraph: root value = samples", tree["value"] == len(samples), tree["value"])
        check("flamegraph: stacks = folded export", same(tree_folded(tree), folded_of(path)) is True,
              same(tree_folded(tree), folded_of(path)))
        check("flamegraph: d3-flame-graph's fields", set(tree) == {"name", "value", "children"} and
              {"name", "file", "value", "children"} == set(tree["children"][0]), tree.keys())

        srt = sorted(ts)
        lo, hi = srt[len(srt) // 4], srt[len(srt) * 3 // 5]
        for q, sel in [("thread=1001", lambda t, tid: tid == 1001),
                       ("thread=42", lambda t, tid: tid == 42),
                       ("thread=7", lambda t, tid: False),
                       ("from=%d&to=%d" % (lo, hi), lambda t, tid: lo <= t <= hi),
                       ("from=%d" % hi, lambda t, tid: t >= hi),
                       ("to=%d" % lo, lambda t, tid: t <= lo),
                       ("thread=1002&from=%d&to=%d" % (lo, hi),
                        lambda t, tid: tid == 1002 and lo <= t <= hi),
                       ("thread=&from=&to=", lambda t, tid: True)]:
            want = [x for x in samples if sel(x[0], x[1])]
            tree = srv.json("/api/flamegraph?" + q)
            check("flamegraph?%s: %d samples" % (q, len(want)), tree["value"] == len(want) and
                  same(tree_folded(tree), fold(want)) is True,
                  (tree["value"], same(tree_folded(tree), fold(want))))
            tl = srv.json("/api/timeline?bins=37&" + q)
            check("timeline?%s: bins add up" % q, len(tl["bins"]) == 37 and
                  sum(tl["bins"]) == len(want), (sum(tl["bins"]), len(want)))

        tree = srv.json("/api/flamegraph?min=500")
        small = []
        todo = list(tree["children"])
        while todo:
            n = todo.pop()
            small += [n] if n["value"] < 500 else []
            todo += n["children"]
        check("flamegraph?min=500 leaves out smaller nodes", not small and
              tree["value"] == len(samples), len(small))

        bad = ["thread=abc", "thread=-1", "thread=1&thread=2", "from=1.5", "to=1e9",
               "from=99999999999999999999", "from=10&to=5", "nope=1", "bins=0", "min=x"]
        for q in bad:
            status, headers, body = srv.get("/api/flamegraph?" + q if "bins" not in q
                                            else "/api/timeline?" + q)
            try:
                err = json.loads(body)["error"]
            except (ValueError, KeyError):
                err = None
            key = q.split("=")[0]
            check("400 for %s" % q, status == 400 and err and key in err and
                  headers.get("Content-Type") == "application/json", (status, body))
        status, _, body = srv.get("/api/summary?x=1")
        check("400 for a parameter summary does not take", status == 400, status)
        many = "&".join("x%d=1" % i for i in range(1000))
        status, _, body = srv.get("/api/summary?" + many)
        check("400 for a query of 1000 parameters (not a dropped connection)", status == 400, status)
        status, _, body = srv.get("/api/nothing")
        check("404 JSON for an unknown API", status == 404 and "error" in json.loads(body), body)
        status, _, _ = srv.get("/api/summary", method="POST")
        check("405 for POST", status == 405, status)

        for host, want in [("evil.example:%d" % srv.port, 403), ("127.0.0.1:%d" % (srv.port + 1), 403),
                           ("evil.example", 403), ("localhost:%d" % srv.port, 200),
                           ("127.0.0.1:%d" % srv.port, 200), ("LOCALHOST:%d" % srv.port, 200)]:
            status, _, _ = srv.get("/api/summary", host=host)
            check("Host %s: %d" % (host, want), status == want, status)
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
            c.sendall(b"GET /api/summary HTTP/1.0\r\n\r\n")
            reply = c.recv(65536).decode(errors="replace")
        check("no Host: 400", reply.startswith("HTTP/1.") and " 400 " in reply.split("\r\n")[0],
              reply[:100])

        status, headers, body = srv.get("/")
        csp = headers.get("Content-Security-Policy", "")
        check("the page, with a strict CSP and no CORS", status == 200 and b"app.js" in body and
              "default-src 'none'" in csp and "script-src 'self'" in csp and
              not any(h.lower().startswith("access-control") for h in headers), headers)
        for asset in ["/app.js", "/app.css", "/d3.min.js", "/d3-flamegraph.min.js",
                      "/d3-flamegraph.css", "/favicon.svg"]:
            status, headers, body = srv.get(asset)
            check("asset %s" % asset, status == 200 and len(body) > 100, (status, len(body)))

        # Live: more chunks appended to the followed file.
        subprocess.run([WRITER, path, "1700000001000000", "100", "1200", "400", "43", "late",
                        "main", "grown", "leaf"], check=True, timeout=60)
        s = srv.wait(lambda s: s["samples"] == len(samples) + 1200, "the appended samples")
        tree = srv.json("/api/flamegraph")
        check("live: the graph grew", tree["value"] == len(samples) + 1200 and
              s["chunks"] == chunks + 3 and {t["id"]: t["name"] for t in s["threads"]}[43] == "late",
              (tree["value"], s["chunks"]))
        check("live: the new stack", tree_folded(tree)["main;grown;leaf"] == 1200,
              tree_folded(tree)["main;grown;leaf"])
    finally:
        rc = srv.stop()
    check("SIGTERM: exit 0 and the summary line", rc == 0 and
          ("served chunks=%d samples=%d " % (chunks + 3, len(samples) + 1200)) in srv.stderr(),
          (rc, srv.stderr()))
    return path, samples


def test_max_samples(path, samples):
    srv = Server(path, "--max-samples", "1000")
    try:
        s = srv.wait(lambda s: s["samples_seen"] >= len(samples) + 1200, "every sample")
        total = len(samples) + 1200
        check("--max-samples: the newest kept, the rest dropped", s["samples"] == 1000 and
              s["dropped_samples"] == total - 1000, s)
        newest = samples_of(path)[-1000:]
        tree = srv.json("/api/flamegraph")
        check("--max-samples: the graph of the newest", tree["value"] == 1000 and
              same(tree_folded(tree), fold(newest)) is True, same(tree_folded(tree), fold(newest)))
    finally:
        srv.stop()


def test_answers_in_flight(path):
    """The answers queued on all connections share one budget (512 MiB; here,
    through LUMIO_SERVE_IN_FLIGHT, 2000 bytes): an answer that does not fit
    is refused with 503 and a short JSON error, which still gets through;
    the page's own files are not counted."""
    srv = Server(path, env={"LUMIO_SERVE_IN_FLIGHT": "2000"})
    try:
        status, _, body = srv.get("/api/flamegraph")
        check("in flight: a large answer over the budget is 503", status == 503 and
              b"busy" in json.loads(body)["error"].encode(), (status, body[:200]))
        status, _, _ = srv.get("/api/summary")
        check("in flight: a small one fits", status == 200, status)
        status, _, body = srv.get("/")
        check("in flight: the page is not counted", status == 200 and b"<html" in body.lower(), status)
        status, _, _ = srv.get("/api/summary")
        check("in flight: answers sent give their room back", status == 200, status)
    finally:
        srv.stop()


def test_damage(path):
    data = bytearray(open(path, "rb").read())
    bad = os.path.join(TMP, "damaged.lumio")
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(64)
    open(bad, "wb").write(data)
    srv = Server(bad)
    try:
        s = srv.wait(lambda s: s["damage"]["ranges"] > 0, "damage")
        check("damage: ranges and bytes", s["damage"]["bytes"] > 0 and s["damage"]["list"] and
              s["samples"] > 0, s["damage"])
    finally:
        rc = srv.stop()
    check("damage: exit 1", rc == 1, rc)


def test_tcp():
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        port = so.getsockname()[1]
    gen = subprocess.Popen([LUMIO, "stream", "gen", "--seed", "2", "--samples", "6000",
                            "--threads", "2", "--rate", "20000", "--flush", "samples:1000",
                            "-o", "tcp-listen:127.0.0.1:%d" % port],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    srv = None
    try:
        for _ in range(100):
            try:
                srv = Server("tcp:127.0.0.1:%d" % port)
                break
            except RuntimeError:
                time.sleep(0.1)
        s = srv.wait(lambda s: s["ended"], "the writer's end")
        tree = srv.json("/api/flamegraph")
        check("tcp: every sample, then ended", s["samples"] == 6000 and tree["value"] == 6000 and
              s["error"] is None, s)
    finally:
        if srv:
            srv.stop()
        gen.wait(timeout=30)


def test_profile():
    src = os.path.join(PROFILES, "python-json.perf.txt.zst")
    if not os.path.exists(src):
        check("a real profile (tests/data/profiles)", False, src + " is missing")
        return
    text = subprocess.run(["zstd", "-dc", src], check=True, capture_output=True).stdout
    path = os.path.join(TMP, "real.lumio")
    run("stream", "import", "--from", "perf-script", "-", "-o", path, input=text)
    folded = folded_of(path)
    srv = Server(path)
    try:
        n = sum(folded.values())
        srv.wait(lambda s: s["samples"] == n, "the profile")
        tree = srv.json("/api/flamegraph")
        check("real profile: root = samples (%d)" % n, tree["value"] == n, tree["value"])
        check("real profile: stacks = folded export", same(tree_folded(tree), folded) is True,
              same(tree_folded(tree), folded))
    finally:
        srv.stop()


def test_hostile_names():
    path = os.path.join(TMP, "names.lumio")
    odd = [b'we"ird\\name', b"tab\there", b"bad\xffbyte", "caf\u00e9 \u2603".encode(),
           b"lead\xf5\x80\x80f5", b"</script><img src=x onerror=alert(1)>"]
    subprocess.run([WRITER.encode(), path.encode(), b"1", b"1", b"10", b"5", b"5", b"n\x01\xfe",
                    *odd], check=True, timeout=60)
    srv = Server(path)
    try:
        s = srv.wait(lambda s: s["samples"] == 10, "the samples")
        tree = srv.json("/api/flamegraph")
        names, n = [], tree
        while n["children"]:
            n = n["children"][0]
            names.append(n["name"])
        want = ['we"ird\\name', "tab\there", "bad\ufffdbyte", "caf\u00e9 \u2603",
                "lead\ufffd\ufffd\ufffdf5", "</script><img src=x onerror=alert(1)>"]
        check("names: escaped, invalid UTF-8 as U+FFFD", names == want and
              s["threads"][0]["name"] == "n\u0001\ufffd", (names, s["threads"]))
    finally:
        srv.stop()


def test_command_line():
    for args, want in [(["serve"], 2), (["serve", "a", "b"], 2),
                       (["serve", "--listen", "nope:99999", "x"], 2),
                       (["serve", "--max-samples", "0", "x"], 2),
                       (["serve", os.path.join(TMP, "missing.lumio")], 1)]:
        rc = subprocess.run([LUMIO, "stream", *args], capture_output=True, timeout=30).returncode
        check("lumio stream %s: exit %d" % (" ".join(args[1:]) or "serve", want), rc == want, rc)
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        port = so.getsockname()[1]
    path = os.path.join(TMP, "gen.lumio")
    srv = Server(path, "--listen", "127.0.0.1:%d" % port)
    try:
        check("--listen HOST:PORT", srv.url == "http://127.0.0.1:%d/" % port, srv.url)
        rc = subprocess.run([LUMIO, "stream", "serve", "--listen", str(port), path],
                            capture_output=True, timeout=30).returncode
        check("--listen on a port in use: exit 1", rc == 1, rc)
    finally:
        srv.stop()


def main():
    path, samples = test_api()
    test_max_samples(path, samples)
    test_answers_in_flight(path)
    test_damage(path)
    test_tcp()
    test_profile()
    test_hostile_names()
    test_command_line()
    print("%d passed, %d failed" % (checks["passed"], checks["failed"]))
    return 1 if checks["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
