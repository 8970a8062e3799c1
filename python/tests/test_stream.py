"""lumio.stream: the proposal's sanity check, round trips, a writer killed
with SIGKILL, the CLI reading what Python wrote and the other way round,
errors, TCP, threads and fork."""

import collections
import json
import os
import pathlib
import random
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

import lumio
import lumio.stream
from lumio.stream import Reader, Writer

PYTHONPATH = str(pathlib.Path(lumio.__file__).resolve().parents[1])


def cli():
    """The lumio CLI: $LUMIO_CLI (ctest sets it), else the build's."""
    path = os.environ.get("LUMIO_CLI") or str(pathlib.Path(PYTHONPATH).parent / "lumio")
    if not os.access(path, os.X_OK):
        pytest.skip(f"the lumio CLI is not at {path} (set LUMIO_CLI)")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collector:
    """The shape of the profiler's collectors: collect(sample) per sample."""

    def __init__(self):
        self.samples = 0
        self.by_file = collections.Counter()  # frames per file
        self.leaf_by_file = collections.Counter()  # samples per innermost file

    def collect(self, sample):
        self.samples += 1
        self.leaf_by_file[sample.frames[0][1]] += 1
        for _, filename, _ in sample.frames:
            self.by_file[filename] += 1


def test_sanity_check_three_batches(tmp_path):
    """The proposal's check: batches of 3, 2 and 4 samples, a flush after
    each, come back as 3 chunks, replayed with the right counts per file."""
    path = tmp_path / "p.lumio"
    a = [("work", "a.py", 10), ("main", "main.py", 1)]
    b = [("parse", "b.py", 20), ("work", "a.py", 11), ("main", "main.py", 1)]
    batches = [[a, a, b], [b, a], [b, b, b, a]]
    with Writer(path) as w:
        for batch in batches:
            for stack in batch:
                w.write_sample(stack, thread_id=1)
            w.flush()
        assert w.stats["chunks"] == 3 and w.stats["samples"] == 9
    r = Reader(path)
    info = r.info()
    assert (info["chunks"], info["samples"], info["threads"]) == (3, 9, 1)
    assert info["version"] == lumio.stream.FORMAT_VERSION == 1
    assert info["damaged"] == [] and info["torn_tail_bytes"] == 0
    c = Collector()
    assert r.replay(c) == 9 and c.samples == 9
    assert c.leaf_by_file == {"a.py": 4, "b.py": 5}
    assert c.by_file == {"main.py": 9, "a.py": 9, "b.py": 5}


def test_round_trip(tmp_path):
    path = tmp_path / "r.lumio"
    rng = random.Random(4)
    frames = [(f"fn{i}·λ", f"pkg/mod{i % 7}.py", rng.randrange(0, 2**32)) for i in range(300)]
    frames.append(("<module>", "", 0))
    written = []
    before = time.monotonic_ns() // 1000
    with Writer(str(path), flush="samples:100", level=7) as w:
        w.write_metadata("command", "python app.py --x 1")
        for i in range(1000):
            stack = [rng.choice(frames) for _ in range(rng.randrange(0, 40))]
            tid = rng.choice([0, 1, 12345, 2**64 - 1])
            status = rng.randrange(256)
            if i % 10 == 0:  # the default timestamp: now, on the monotonic clock
                w.write_sample(stack, thread_id=tid, status=status)
                written.append((tid, None, status, tuple(stack)))
            else:
                w.write_sample(list(stack), thread_id=tid, timestamp_us=i * 1000, status=status)
                written.append((tid, i * 1000, status, tuple(stack)))
        w.write_metadata("marker", "end", timestamp_us=7)
    after = time.monotonic_ns() // 1000
    r = Reader(path)
    got = list(r)
    assert len(got) == len(written)
    for s, (tid, ts, status, stack) in zip(got, written):
        assert isinstance(s, lumio.stream.Sample)
        assert (s.thread_id, s.status, s.frames) == (tid, status, stack)
        assert s.timestamp_us == ts if ts is not None else before <= s.timestamp_us <= after
    assert [m[1:] for m in r.metadata] == [("command", "python app.py --x 1"), ("marker", "end")]
    assert r.metadata[1][0] == 7
    # Each pass starts at the beginning: replay sees the same samples.
    seen = []
    collector = type("C", (), {"collect": lambda self, s: seen.append(s)})()
    assert r.replay(collector) == 1000
    assert seen == got
    info = r.info()
    # 10 chunks of 100 samples, and the last record alone in the 11th
    assert info["samples"] == 1000 and info["chunks"] == 11 and info["records"] == 2
    assert info["thread_ids"] == [0, 1, 12345, 2**64 - 1] and info["threads"] == 4


def test_flush_policies_and_compression(tmp_path):
    def chunks(flush, n=100, **kw):
        p = tmp_path / "f.lumio"
        with Writer(p, flush=flush, **kw) as w:
            for i in range(n):
                w.write_sample([("f", "a.py", i)] * 10, timestamp_us=i)
        stats = w.stats  # final
        info = Reader(p).info()
        assert info["samples"] == n
        assert stats["chunks"] == info["chunks"]
        return info

    assert chunks("samples:30")["chunks"] == 4
    assert chunks("samples=30,seconds=60")["chunks"] == 4  # the CLI's older syntax
    assert chunks("samples:1000,bytes:1K")["chunks"] > 1
    assert chunks("bytes:1M")["chunks"] == 1
    plain = chunks("samples:50", compression="none")
    assert plain["stored_bytes"] == plain["raw_bytes"]
    assert chunks("samples:50", level=0)["stored_bytes"] == plain["stored_bytes"]
    assert chunks("samples:50", level=19)["stored_bytes"] < plain["stored_bytes"]
    # interval: a chunk that old is sealed with no further write (the C writer's timer).
    with Writer(tmp_path / "t.lumio", flush="interval:100ms") as w:
        w.write_sample([("f", "a.py", 1)])
        deadline = time.monotonic() + 5
        while w.stats["chunks"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert w.stats["chunks"] == 1
    for bad in ["samples:0", "bytes:lots", "interval:0s", "interval:3d", "often:1", "", "samples"]:
        with pytest.raises(ValueError, match="flush"):
            Writer(tmp_path / "x.lumio", flush=bad)
    with pytest.raises(ValueError):
        Writer(tmp_path / "x.lumio", level=23)
    with pytest.raises(ValueError):
        Writer(tmp_path / "x.lumio", compression="lz4")


def test_append(tmp_path):
    p = tmp_path / "a.lumio"
    with Writer(p) as w:
        w.write_sample([("first", "a.py", 1)])
    with open(p, "ab") as f:  # a torn tail, as a killed writer leaves
        f.write(b"LCHK\x01\x01\x00\x00garbage")
    with Writer(p, append=True) as w:
        w.write_sample([("second", "a.py", 2)])
    r = Reader(p)
    assert [s.frames[0][0] for s in r] == ["first", "second"]
    assert r.info()["chunks"] == 2 and r.info()["torn_tail_bytes"] == 0
    (tmp_path / "text").write_text("not a stream at all\n" * 10)
    with pytest.raises(lumio.Error) as e:
        Writer(tmp_path / "text", append=True)
    assert str(tmp_path / "text") in str(e.value)


def test_arguments(tmp_path):
    w = Writer(tmp_path / "x.lumio")
    for frames, kw, exc in [
        ([("f", "a.py", -1)], {}, ValueError),
        ([("f", "a.py", 2**32)], {}, ValueError),
        ([("f", "a.py", "1")], {}, TypeError),
        ([("f", "a.py")], {}, TypeError),
        ([("f\0", "a.py", 1)], {}, ValueError),
        ([("f", None, 1)], {}, TypeError),
        ([("f", "a.py", 1)], {"status": 256}, ValueError),
        ([("f", "a.py", 1)], {"thread_id": -1}, ValueError),
        ([("f", "a.py", 1)], {"timestamp_us": 2**64}, ValueError),
        (5, {}, TypeError),
        ([("f", "a.py", 1)] * 4097, {}, ValueError),
    ]:
        with pytest.raises(exc):
            w.write_sample(frames, **kw)
    w.write_sample([("ok", "a.py", 1)])
    w.close()
    w.close()  # again: nothing
    with pytest.raises(ValueError, match="closed"):
        w.write_sample([])
    assert w.stats["samples"] == 1  # final
    assert [s.frames for s in Reader(tmp_path / "x.lumio")] == [(("ok", "a.py", 1),)]
    with pytest.raises(ValueError):
        Reader(tmp_path / "x.lumio", idle=1)


def test_damage_is_skipped_and_reported(tmp_path):
    p = tmp_path / "d.lumio"
    with Writer(p, flush="samples:10", compression="none") as w:
        for i in range(50):
            w.write_sample([("f", "a.py", i)], timestamp_us=i)
    data = bytearray(p.read_bytes())
    starts = [i for i in range(len(data)) if data[i:i + 4] == b"LCHK"]
    assert len(starts) == 5
    third, last = starts[2], starts[4]
    data[third + 60] ^= 0xFF  # in the third chunk's payload: its checksum fails
    torn = data[last:-10]
    data += torn  # and a chunk cut short at the end: a torn tail
    p.write_bytes(bytes(data))
    r = Reader(p)
    lines = [s.frames[0][2] for s in r]
    assert lines == list(range(20)) + list(range(30, 50))
    info = r.info()
    assert info["samples"] == 40 and info["chunks"] == 4
    assert len(info["damaged"]) == 1 and info["damaged"][0][0] == third
    assert info["damaged_bytes"] == info["damaged"][0][1] > 0
    assert info["torn_tail_bytes"] == len(torn)


KILLED_WRITER = textwrap.dedent("""
    import sys
    import lumio.stream
    path, flush = sys.argv[1], int(sys.argv[2])
    w = lumio.stream.Writer(path, flush=f"samples:{flush}")
    chunks, i = 0, 0
    while True:
        w.write_sample([(f"f{i % 97}", "k.py", i), ("main", "k.py", 1)],
                       thread_id=i % 3, timestamp_us=i)
        i += 1
        if w.stats["chunks"] != chunks:  # sealed: committed in the file
            chunks = w.stats["chunks"]
            print("sealed", w.stats["samples"], flush=True)
""")


def test_sigkill_loses_no_sealed_sample(tmp_path):
    rng = random.Random(11)
    rounds, after_seal = 8, 0
    for k in range(rounds):
        path = tmp_path / f"k{k}.lumio"
        flush = rng.randrange(200, 3000)
        want_seals = rng.randrange(1, 20)
        p = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path), str(flush)],
                             stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=PYTHONPATH))
        sealed = 0
        try:
            for _ in range(want_seals):
                line = p.stdout.readline()
                if not line:
                    break
                sealed = int(line.split()[1])
            time.sleep(rng.random() * 0.02)  # somewhere inside the next chunk
            p.send_signal(signal.SIGKILL)
        finally:
            p.kill()
            p.wait()
        rest = p.stdout.read().split()  # seals announced before the kill landed
        p.stdout.close()
        if len(rest) >= 2:
            sealed = int(rest[-1])
        got = list(Reader(path))
        assert len(got) >= sealed, f"round {k}: {sealed} sealed, {len(got)} read back"
        for i, s in enumerate(got):  # every sample read is the one written, in order
            assert s.timestamp_us == i and s.frames[0] == (f"f{i % 97}", "k.py", i)
        if p.returncode == -signal.SIGKILL and sealed > 0:
            after_seal += 1
    assert after_seal * 2 >= rounds, f"only {after_seal} of {rounds} kills came after a seal"


def test_cli_reads_what_python_wrote(tmp_path):
    lumio_cli = cli()
    p = tmp_path / "py.lumio"
    rng = random.Random(2)
    written = []
    with Writer(p, flush="samples:64") as w:
        w.write_metadata("command", 'say "hi"\n', timestamp_us=1)
        for i in range(500):
            stack = [(f"f{rng.randrange(30)}", f"m{rng.randrange(5)}.py", rng.randrange(900))
                     for _ in range(rng.randrange(1, 12))]
            w.write_sample(stack, thread_id=i % 5, timestamp_us=10 + i, status=i % 4)
            written.append(stack)
    subprocess.run([lumio_cli, "stream", "verify", str(p)], check=True, capture_output=True)
    out = subprocess.run([lumio_cli, "stream", "export", "--to", "jsonl", str(p)], check=True,
                         capture_output=True, text=True).stdout
    records = [json.loads(line) for line in out.splitlines()]
    assert records[0] == {"type": "meta", "ts_us": 1, "key": "command", "value": 'say "hi"\n'}
    samples = records[1:]
    assert len(samples) == 500
    for i, (rec, stack) in enumerate(zip(samples, written)):
        assert (rec["ts_us"], rec["tid"], rec["status"]) == (10 + i, i % 5, i % 4)
        assert [(f["function"], f["file"], f["line"]) for f in rec["frames"]] == stack


def folded(sample):
    """A sample as `lumio stream export --to collapsed` prints it."""
    names = [f[0].replace(";", ":").replace("\n", " ") for f in reversed(sample.frames)]
    return (";".join(names) if names else "[empty]") + " 1"


def test_python_reads_what_the_cli_wrote(tmp_path):
    lumio_cli = cli()
    p = tmp_path / "gen.lumio"
    gen = [lumio_cli, "stream", "gen", "--seed", "9", "--samples", "20000", "--threads", "4"]
    subprocess.run(gen + ["--flush", "samples=1000", "-o", str(p)], check=True,
                   capture_output=True)
    want = subprocess.run(gen + ["--to", "collapsed"], check=True, capture_output=True,
                          text=True).stdout.splitlines()
    r = Reader(p)
    assert [folded(s) for s in r] == want
    info = r.info()
    assert (info["samples"], info["chunks"], info["threads"]) == (20000, 20, 4)


def test_bad_sinks_and_sources_name_the_path(tmp_path):
    missing = tmp_path / "no" / "such" / "dir" / "p.lumio"
    with pytest.raises(FileNotFoundError) as e:
        Writer(missing)
    assert str(missing) in str(e.value)
    with pytest.raises(FileNotFoundError) as e:
        Reader(tmp_path / "none.lumio")
    assert str(tmp_path / "none.lumio") in str(e.value)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(lumio.Error) as e:
        Reader(tmp_path / "empty").info()
    assert e.value.code == lumio._lumio.E_FORMAT and str(tmp_path / "empty") in str(e.value)
    with pytest.raises(ConnectionRefusedError) as e:
        Writer(f"tcp:127.0.0.1:{free_port()}")
    assert "127.0.0.1" in str(e.value)
    with pytest.raises(ValueError):
        Writer("tcp-listen:70000")


def test_permission_errors_name_the_path():
    # As root, permissions are checked in a child that runs as nobody.
    base = tempfile.mkdtemp(prefix="lumio-perm-")
    try:
        os.chmod(base, 0o755)
        locked = os.path.join(base, "locked")
        os.mkdir(locked)
        secret = os.path.join(locked, "s.lumio")
        Writer(secret).close()
        os.chmod(secret, 0)
        os.chmod(locked, 0o555)
        check = textwrap.dedent(f"""
            import lumio.stream
            for call, path in [(lumio.stream.Writer, {os.path.join(locked, 'new.lumio')!r}),
                               (lumio.stream.Reader, {secret!r})]:
                try:
                    call(path)
                except PermissionError as e:
                    assert path in str(e), str(e)
                else:
                    raise SystemExit(f"{{call.__name__}}({{path}}) did not raise")
        """)
        root = os.geteuid() == 0
        subprocess.run([sys.executable, "-c", check], check=True,
                       env=dict(os.environ, PYTHONPATH=PYTHONPATH),
                       preexec_fn=(lambda: os.setuid(65534)) if root else None)
    finally:
        os.chmod(os.path.join(base, "locked"), 0o755)
        subprocess.run(["rm", "-rf", base], check=True)


def test_tcp_writer_and_reader_in_two_threads():
    port = free_port()
    w = Writer(f"tcp-listen:127.0.0.1:{port}", flush="samples:100")
    got, errors = [], []

    def consume():
        try:
            r = Reader(f"tcp:127.0.0.1:{port}")
            got.extend(r)
            with pytest.raises(ValueError, match="read once"):
                list(r)
            got.append(r.info())  # what the pass saw
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=consume)
    t.start()
    for i in range(1000):
        w.write_sample([("f", "net.py", i)], thread_id=i % 3, timestamp_us=i)
        if i == 500:
            time.sleep(0.05)
    w.close()
    t.join(30)
    assert not t.is_alive() and not errors, errors
    info = got.pop()
    assert [s.timestamp_us for s in got] == list(range(1000))
    assert info["samples"] == 1000 and info["threads"] == 3
    assert w.stats["dropped_chunks"] == 0 and w.stats["connections"] == 1


def test_threads_share_a_writer(tmp_path):
    p = tmp_path / "t.lumio"
    w = Writer(p, flush="samples:500")

    def run(tid):
        for i in range(3000):
            w.write_sample([(f"t{tid}", "th.py", i)], thread_id=tid, timestamp_us=i)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    per = collections.defaultdict(list)
    for s in Reader(p):
        assert s.frames == ((f"t{s.thread_id}", "th.py", s.timestamp_us),)
        per[s.thread_id].append(s.timestamp_us)
    assert {t: v for t, v in per.items()} == {t: list(range(3000)) for t in range(4)}


def test_fork_child_may_not_write_the_parents_sink(tmp_path):
    p = tmp_path / "f.lumio"
    w = Writer(p)
    w.write_sample([("parent", "p.py", 1)])  # unsealed at the fork
    r, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            try:
                w.write_sample([("child", "c.py", 1)])
            except RuntimeError as e:
                code = 0 if str(p) in str(e) and "fork" in str(e) else 2
            w.close()  # leaves the parent's writer alone
        finally:
            os.write(wr, bytes([code]))
            os._exit(0)
    os.close(wr)
    assert os.read(r, 1) == b"\0"
    os.close(r)
    os.waitpid(pid, 0)
    w.write_sample([("parent", "p.py", 2)])
    w.close()
    assert [s.frames[0] for s in Reader(p)] == [("parent", "p.py", 1), ("parent", "p.py", 2)]


def test_fork_child_writes_its_own_stdout_stream(tmp_path):
    script = textwrap.dedent("""
        import os, sys
        import lumio.stream
        w = lumio.stream.Writer("-")
        w.write_sample([("parent", "p.py", 1)])
        pid = os.fork()
        if pid == 0:
            fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)  # the child's own standard output
            w.write_sample([("child", "c.py", 1)])
            w.close()
            os._exit(0)
        os.waitpid(pid, 0)
        w.write_sample([("parent", "p.py", 2)])
        w.close()
    """)
    child = tmp_path / "child.lumio"
    out = subprocess.run([sys.executable, "-c", script, str(child)], check=True,
                         capture_output=True, env=dict(os.environ, PYTHONPATH=PYTHONPATH)).stdout
    (tmp_path / "parent.lumio").write_bytes(out)
    assert [s.frames[0][0] for s in Reader(tmp_path / "parent.lumio")] == ["parent", "parent"]
    assert [s.frames[0][0] for s in Reader(child)] == ["child"]


def test_reader_from_stdin_reads_once(tmp_path):
    p = tmp_path / "s.lumio"
    with Writer(p) as w:
        for i in range(10):
            w.write_sample([("f", "a.py", i)], thread_id=i % 2)
    script = textwrap.dedent("""
        import lumio.stream
        r = lumio.stream.Reader("-")
        n = len(list(r))
        try:
            list(r)
        except ValueError as e:
            assert "read once" in str(e)
        info = r.info()
        print(n, info["samples"], info["threads"])
    """)
    with open(p, "rb") as f:
        out = subprocess.run([sys.executable, "-c", script], stdin=f, check=True,
                             capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=PYTHONPATH)).stdout
    assert out.split() == ["10", "10", "2"]


def test_collector_errors_stop_the_pass(tmp_path):
    p = tmp_path / "c.lumio"
    with Writer(p) as w:
        for i in range(1000):
            w.write_sample([("f", "a.py", i)])
    r = Reader(p)

    class Boom:
        n = 0

        def collect(self, s):
            self.n += 1
            if self.n == 300:
                raise KeyError("stop here")

    b = Boom()
    with pytest.raises(KeyError, match="stop here"):
        r.replay(b)
    assert b.n == 300

    class Nested:  # another pass over a file from a collector: a handle of its own
        inner = None

        def collect(self, s):
            if self.inner is None:
                self.inner = r.replay(Collector())

    nested = Nested()
    assert r.replay(nested) == 1000 and nested.inner == 1000
    h = lumio._lumio.StreamReader(str(p))  # the binding's guard: one handle, one pass
    with pytest.raises(RuntimeError, match="being read by this thread"):
        h.read(lambda s: h.read(None, None, None, 1, False), None, None, 1, False)
    it = iter(r)
    assert next(it).frames[0][2] == 0
    assert r.replay(Collector()) == 1000  # while an iteration is open: passes do not wait
    del it  # abandoned early: its reading thread stops
    assert not [t for t in threading.enumerate() if str(p) in t.name]
    r.close()
    with pytest.raises(ValueError, match="closed"):
        r.replay(Collector())


def test_follow_a_growing_file(tmp_path):
    p = tmp_path / "g.lumio"
    w = Writer(p, flush="samples:7")

    def write():
        for i in range(60):
            w.write_sample([("f", "g.py", i)], timestamp_us=i)
            time.sleep(0.002)
        w.close()

    t = threading.Thread(target=write)
    t.start()
    got = [s.timestamp_us for s in Reader(p, follow=True, idle=1.0)]
    t.join()
    assert got == list(range(60))


def test_descriptors(tmp_path):
    r, w = os.pipe()
    try:
        writer = Writer(w, flush="samples:2")  # the caller's descriptor: close leaves it open
        for i in range(5):
            writer.write_sample([("f", "fd.py", i)], timestamp_us=i)
        writer.close()
        os.write(w, b"")  # still open
        os.close(w)
        w = -1
        reader = Reader(r)
        assert [s.timestamp_us for s in reader] == list(range(5))
        with pytest.raises(ValueError, match="read once"):
            reader.replay(Collector())
        assert reader.info()["chunks"] == 3
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    with pytest.raises(OSError, match="fd 987654"):
        Writer(987654)  # not open
    with pytest.raises(ValueError):
        Writer(-1)


def test_reader_pickles_to_its_source(tmp_path):
    import pickle

    p = tmp_path / "p.lumio"
    with Writer(p) as w:
        w.write_sample([("f", "a.py", 1)])
    r = pickle.loads(pickle.dumps(Reader(p)))
    assert r.source == str(p) and len(list(r)) == 1
    with pytest.raises(TypeError):
        pickle.dumps(Writer(tmp_path / "w.lumio"))


def test_reentrant_use_raises_not_hangs(tmp_path):
    w = lumio.stream.Writer(str(tmp_path / "re.lumio"))

    def frames():
        w.flush()  # the Writer, from inside its own call
        yield ("f", "a.py", 1)

    with pytest.raises(RuntimeError):
        w.write_sample(frames())
    w.write_sample([("f", "a.py", 1)])
    w.close()
    assert sum(1 for _ in lumio.stream.Reader(str(tmp_path / "re.lumio"))) == 1


# ---- export ------------------------------------------------------------------


def _profile(path, n=3000):
    """A small profile of three named threads; its folded stacks counted."""
    want = collections.Counter()
    rng = random.Random(7)
    names = ["main", "parse", "eval", "io", "hash"]
    with Writer(str(path), flush="samples:500") as w:
        for tid in (1, 2, 3):
            w.write_metadata("thread_name", f"{tid} worker-{tid}")
        for i in range(n):
            depth = rng.randint(1, 6)
            frames = [(rng.choice(names), "app.py", rng.randint(1, 50)) for _ in range(depth)]
            w.write_sample(frames, thread_id=rng.randint(1, 3), timestamp_us=1000 + i * 10)
            want[";".join(f[0] for f in reversed(frames))] += 1
    return want


def test_export_every_format(tmp_path):
    src = tmp_path / "p.lumio"
    want = _profile(src)
    assert set(lumio.stream.EXPORT_FORMATS) >= {"collapsed", "jsonl", "speedscope", "gecko",
                                                "pprof", "tachyon"}
    for fmt in lumio.stream.EXPORT_FORMATS:
        out = tmp_path / f"p.{fmt}"
        counts = lumio.stream.export(src, out, to=fmt, name="demo")
        assert counts["samples"] == 3000 and counts["chunks"] == 6 and counts["damaged_ranges"] == 0
        assert out.stat().st_size > 0
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    got = collections.Counter()
    for line in (tmp_path / "p.collapsed").read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        got[stack] += int(count)
    assert got == want
    doc = json.loads((tmp_path / "p.speedscope").read_text())
    assert sum(len(p["samples"]) for p in doc["profiles"]) == 3000
    assert {p["name"] for p in doc["profiles"]} == {f"worker-{t} (tid {t})" for t in (1, 2, 3)}
    import gzip
    assert gzip.decompress((tmp_path / "p.pprof").read_bytes())  # a gzip member, whole
    # tachyon goes back into a stream with the same samples.
    back = tmp_path / "back.lumio"
    subprocess.run([cli(), "stream", "import", "--from", "tachyon", str(tmp_path / "p.tachyon"),
                    "-o", str(back)], check=True)
    again = collections.Counter(";".join(f[0] for f in reversed(s.frames)) for s in Reader(back))
    assert again == want


def test_export_to_a_descriptor_and_errors(tmp_path):
    src = tmp_path / "p.lumio"
    _profile(src, 100)
    r, w = os.pipe()
    try:
        counts = lumio.stream.export(str(src), w, to="jsonl")
        os.close(w)
        w = -1
        lines = os.read(r, 1 << 20).decode().splitlines()
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    assert counts["samples"] == 100
    assert sum(json.loads(x)["type"] == "sample" for x in lines) == 100
    with pytest.raises(ValueError, match="unknown export format 'svg'"):
        lumio.stream.export(src, tmp_path / "x", to="svg")
    with pytest.raises(FileNotFoundError):
        lumio.stream.export(tmp_path / "missing.lumio", tmp_path / "out.json", to="speedscope")
    (tmp_path / "keep.json").write_text("precious")
    (tmp_path / "text.lumio").write_text("not a stream")
    with pytest.raises(lumio.Error, match="not a lumio stream"):
        lumio.stream.export(tmp_path / "text.lumio", tmp_path / "keep.json", to="speedscope")
    assert (tmp_path / "keep.json").read_text() == "precious"  # a failure replaces nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.json", "p.lumio", "text.lumio"]
    with pytest.raises(ValueError, match="idle needs follow"):
        lumio.stream.export(src, tmp_path / "y", to="pprof", idle=1)


def test_leaving_a_follow_stops_its_thread(tmp_path):
    """Breaking out of an iteration that waits for data (a followed file
    that does not grow; a pipe nobody writes to) cancels the C reader: no
    thread is left waiting."""
    src = tmp_path / "p.lumio"
    _profile(src, 200)
    before = threading.active_count()
    it = iter(Reader(src, follow=True))  # idle None: it would wait for ever
    got = [next(it) for _ in range(200)]
    assert len(got) == 200
    it.close()  # as a `break` does
    assert threading.active_count() == before
    r, w = os.pipe()
    try:
        with Writer(w) as wr:
            wr.write_sample([("f", "a.py", 1)], thread_id=1)
            wr.flush()
            it = iter(Reader(r, follow=True))  # a sample at a time, as it comes
            assert next(it).frames[0][0] == "f"  # then nothing more: it waits on the pipe
            it.close()
            assert threading.active_count() == before
    finally:
        os.close(r)
        os.close(w)


def test_replay_of_a_follow_is_interruptible(tmp_path):
    """A replay that waits for data (a followed file that does not grow)
    sees what a signal handler raises at once, and leaves no thread."""
    src = tmp_path / "p.lumio"
    _profile(src, 300)

    class Alarm(Exception):
        pass

    def on_alarm(signum, frame):
        raise Alarm()

    class Count:
        n = 0

        def collect(self, sample):
            self.n += 1

    before = threading.active_count()
    old = signal.signal(signal.SIGALRM, on_alarm)
    c = Count()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(Alarm):
            Reader(src, follow=True).replay(c)  # idle None: it would wait for ever
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert c.n == 300
    assert threading.active_count() == before


def test_writer_to_wss_with_a_private_ca(tmp_path):
    """Writer("wss://...") against python3-websockets with a self-signed
    certificate: refused without ca_file, delivered with it."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    peer = pathlib.Path(PYTHONPATH).parents[1] / "tests" / "ws_peer.py"
    if not peer.exists():  # the build's package: the source tree beside it
        peer = pathlib.Path(__file__).resolve().parents[2] / "tests" / "ws_peer.py"
    port, out, log = free_port(), tmp_path / "got.lumio", open(tmp_path / "peer.log", "w+")
    server = subprocess.Popen([sys.executable, str(peer), "server", "--port", str(port), "--out",
                               str(out), "--cert", str(cert), "--key", str(key), "--lifetime", "30"],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            log.seek(0)
            if "ready" in log.read():
                break
            time.sleep(0.05)
        with pytest.raises(OSError, match="TLS handshake failed"):
            Writer(f"wss://127.0.0.1:{port}/p")
        with Writer(f"wss://127.0.0.1:{port}/p", ca_file=cert, flush="samples:100") as w:
            for i in range(250):
                w.write_sample([("f", "a.py", i % 7)], thread_id=1, timestamp_us=i)
        for _ in range(100):  # the server appends what it received
            if out.exists() and sum(1 for _ in Reader(out)) == 250:
                break
            time.sleep(0.05)
        assert [s.frames[0][2] for s in Reader(out)] == [i % 7 for i in range(250)]
    finally:
        server.kill()
        server.wait()
        log.close()
