"""lumio.record: real scripts in temporary directories, run under
`python3 -m lumio.record` (or calling lumio.record.start), their streams read
back with lumio.stream.Reader and the CLI. Every wait is bounded; no timing
is asserted beyond generous bounds."""

import collections
import os
import pathlib
import platform
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import lumio
import lumio.record
from lumio.stream import Reader

PYTHONPATH = str(pathlib.Path(lumio.__file__).resolve().parents[1])
ENV = dict(os.environ, PYTHONPATH=PYTHONPATH, PYTHONDONTWRITEBYTECODE="1")

SPIN = textwrap.dedent("""
    import time
    def spin(seconds):
        end = time.monotonic() + seconds
        x = 0
        while time.monotonic() < end:
            x += 1
        return x
""")


def cli():
    path = os.environ.get("LUMIO_CLI") or str(pathlib.Path(PYTHONPATH).parent / "lumio")
    if not os.access(path, os.X_OK):
        pytest.skip(f"the lumio CLI is not at {path} (set LUMIO_CLI)")
    return path


def write_script(tmp_path, body, name="prog.py"):
    p = tmp_path / name
    p.write_text(SPIN + textwrap.dedent(body))
    return p


def record(tmp_path, body, *args, opts=(), timeout=120, out="rec.lumio"):
    """Run a script under the recorder; (the process, the stream's path)."""
    script = write_script(tmp_path, body)
    stream = tmp_path / out
    p = subprocess.run([sys.executable, "-m", "lumio.record", "-o", str(stream), *opts, "--",
                        str(script), *args], cwd=tmp_path, env=ENV, capture_output=True,
                       text=True, timeout=timeout)
    return p, stream


def names_of(reader):
    """tid -> thread name, from the thread_name records."""
    names = {}
    for _, key, value in reader.metadata:
        if key == "thread_name":
            tid, _, name = value.partition(" ")
            names[int(tid)] = name
    return names


def complete(path):
    """The stream verifies end to end (no damage, no torn tail); its info."""
    info = Reader(path).info()
    assert info["damaged"] == [] and info["torn_tail_bytes"] == 0, info
    v = subprocess.run([cli(), "stream", "verify", str(path)], capture_output=True, text=True,
                       timeout=60)
    assert v.returncode == 0, v.stdout + v.stderr
    return info


def test_threads_names_functions_and_records(tmp_path):
    p, stream = record(tmp_path, """
        import sys, threading
        def alpha_work():
            spin(0.6)
        def beta_work():
            spin(0.6)
        ts = [threading.Thread(target=alpha_work, name="alpha"),
              threading.Thread(target=beta_work, name="beta")]
        for t in ts:
            t.start()
        spin(0.3)
        for t in ts:
            t.join()
        print("args", sys.argv[1:])
    """, "x", "--y")
    assert p.returncode == 0, p.stderr
    assert "args ['x', '--y']" in p.stdout
    r = Reader(stream)
    by_tid = collections.defaultdict(collections.Counter)
    for s in r:
        assert 1 <= len(s.frames) <= 4096
        for fn, _, _ in s.frames:
            by_tid[s.thread_id][fn] += 1
    names = names_of(r)
    tids = {name: tid for tid, name in names.items()}
    assert {"alpha", "beta", "MainThread"} <= set(tids), names
    assert by_tid[tids["alpha"]]["alpha_work"] > 5 and by_tid[tids["alpha"]]["beta_work"] == 0
    assert by_tid[tids["beta"]]["beta_work"] > 5
    main = by_tid[tids["MainThread"]]
    assert main["<module>"] > 0 and main["spin"] > 0
    assert not {"_run", "run_path", "_run_code", "main"} & set(main), main  # the runner is hidden
    meta = {k: v for _, k, v in r.metadata}
    assert meta["rate_hz"] == "100" and meta["interval_us"] == "10000"
    assert meta["python_version"] == platform.python_version()
    assert meta["source"].startswith("lumio.record ")
    assert meta["command"].endswith("prog.py x --y")
    assert abs(int(meta["start_unix_us"]) / 1e6 - time.time()) < 600
    info = complete(stream)
    assert info["samples"] > 20


def test_deep_recursion_is_capped_innermost_first(tmp_path):
    p, stream = record(tmp_path, """
        import sys
        sys.setrecursionlimit(20000)
        def deep(n):
            if n == 0:
                return spin(0.4)
            return deep(n - 1)
        deep(1500)
        deep(6000)
    """)
    assert p.returncode == 0, p.stderr
    depths = collections.Counter()
    for s in Reader(stream):
        if s.frames[0][0] != "spin":
            continue
        depths[len(s.frames)] += 1
        assert all(f[0] == "deep" for f in s.frames[1:1500])
        if len(s.frames) < 4096:  # the whole stack: the script's <module> outermost
            assert s.frames[-1][0] == "<module>" and len(s.frames) == 1503
    assert depths[1503] > 3 and depths[4096] > 3, depths
    complete(stream)


def test_script_that_raises(tmp_path):
    p, stream = record(tmp_path, """
        def fails():
            spin(0.3)
            raise ValueError("boom from the script")
        fails()
    """)
    assert p.returncode == 1
    assert "Traceback (most recent call last):" in p.stderr
    assert "ValueError: boom from the script" in p.stderr
    assert 'prog.py", line' in p.stderr and "in fails" in p.stderr
    assert "runpy" not in p.stderr and "lumio/record.py" not in p.stderr, p.stderr
    info = complete(stream)
    assert info["samples"] > 5
    assert any(s.frames[0][0] == "spin" and s.frames[1][0] == "fails" for s in Reader(stream))


def test_sys_exit_status_kept(tmp_path):
    p, stream = record(tmp_path, """
        import sys
        spin(0.2)
        sys.exit(3)
    """)
    assert p.returncode == 3, p.stderr
    assert complete(stream)["samples"] > 3


def test_keyboard_interrupt_exits_as_python_does(tmp_path):
    p, stream = record(tmp_path, """
        spin(0.2)
        raise KeyboardInterrupt
    """)
    assert p.returncode == -signal.SIGINT, p.stderr
    assert "KeyboardInterrupt" in p.stderr
    assert complete(stream)["samples"] > 3


def test_missing_script_and_bad_options(tmp_path):
    p = subprocess.run([sys.executable, "-m", "lumio.record", "-o", str(tmp_path / "x.lumio"),
                        "--", str(tmp_path / "nope.py")], env=ENV, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "can't open file" in p.stderr
    (tmp_path / "x.py").write_text("")
    p = subprocess.run([sys.executable, "-m", "lumio.record", "--flush", "often", "--", "x.py"],
                       env=ENV, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 2 and "often" in p.stderr
    p = subprocess.run([sys.executable, "-m", "lumio.record", "--rate", "0", "x.py"],
                       env=ENV, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 2 and "rate" in p.stderr
    p = subprocess.run([sys.executable, "-m", "lumio.record", "--bogus", "x.py"],
                       env=ENV, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 2 and "--bogus" in p.stderr


def wait_for(cond, what, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def chunks_in(path):
    try:
        return Reader(path).info()["chunks"]
    except (OSError, lumio.Error):
        return 0  # not created or no signature yet


def test_sigkill_leaves_sealed_chunks_readable(tmp_path):
    script = write_script(tmp_path, """
        print("ready", flush=True)
        while True:
            spin(1)
    """)
    stream = tmp_path / "k.lumio"
    p = subprocess.Popen([sys.executable, "-m", "lumio.record", "-o", str(stream), "--flush",
                          "interval:1s", "--", str(script)], env=ENV, stdout=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        wait_for(lambda: chunks_in(stream) >= 2, "two sealed chunks")
        time.sleep(0.5)
        killed_at = time.monotonic()
        p.send_signal(signal.SIGKILL)
    finally:
        p.kill()
        p.wait(timeout=60)
        p.stdout.close()
    assert p.returncode == -signal.SIGKILL
    r = Reader(stream)
    samples = list(r)
    info = r.info()
    assert info["damaged"] == [] and info["chunks"] >= 2 and len(samples) > 50
    # The same clock (CLOCK_MONOTONIC): with a seal each second, what is lost
    # is about a second; 5 s is a bound that a loaded machine still meets.
    last = samples[-1].timestamp_us / 1e6
    assert 0 < killed_at - last < 5, killed_at - last
    v = subprocess.run([cli(), "stream", "export", "--to", "collapsed", str(stream)],
                       capture_output=True, text=True, timeout=60)
    assert v.returncode == 0 and "<module>;spin" in v.stdout


def test_sigusr1_seals_a_chunk_at_once(tmp_path):
    stop = tmp_path / "stop"
    script = write_script(tmp_path, f"""
        import os, signal
        got = []
        signal.signal(signal.SIGUSR1, lambda *a: got.append(1))  # set before start: chained
        import lumio.record
        rec = lumio.record.start({str(tmp_path / "u.lumio")!r}, flush="interval:1h")
        print("ready", flush=True)
        while not os.path.exists({str(stop)!r}):
            spin(0.05)
        stats = rec.stop()
        assert not lumio.record.running()
        print("handler", len(got), "chunks", stats["chunks"], flush=True)
    """)
    stream = tmp_path / "u.lumio"
    p = subprocess.Popen([sys.executable, str(script)], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        time.sleep(0.3)
        assert chunks_in(stream) == 0  # an hour's interval: nothing sealed yet
        p.send_signal(signal.SIGUSR1)
        wait_for(lambda: chunks_in(stream) >= 1, "the chunk SIGUSR1 seals")
        assert p.poll() is None  # the program goes on
        n = Reader(stream).info()["samples"]
        assert n > 5
        stop.write_text("")
        out = p.stdout.read()
        assert p.wait(timeout=60) == 0
    finally:
        p.kill()
        p.stdout.close()
    assert "handler 1 chunks 2" in out, out
    assert complete(stream)["samples"] > n


def test_sigusr1_under_the_command_line(tmp_path):
    script = write_script(tmp_path, """
        print("ready", flush=True)
        import sys
        for line in sys.stdin:
            break
        spin(0.1)
    """)
    stream = tmp_path / "c.lumio"
    p = subprocess.Popen([sys.executable, "-m", "lumio.record", "-o", str(stream), "--flush",
                          "interval:1h", "--", str(script)], env=ENV, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        time.sleep(0.3)
        p.send_signal(signal.SIGUSR1)
        wait_for(lambda: chunks_in(stream) >= 1, "the chunk SIGUSR1 seals")
        assert p.poll() is None
        p.stdin.write("go\n")
        p.stdin.close()
        assert p.wait(timeout=60) == 0
    finally:
        p.kill()
        p.stdout.close()
    assert complete(stream)["chunks"] == 2


def test_cli_reads_what_the_recorder_wrote(tmp_path):
    p, stream = record(tmp_path, """
        def parse_input():
            spin(0.3)
        def render_output():
            spin(0.3)
        parse_input()
        render_output()
    """, opts=("--rate", "200"))
    assert p.returncode == 0, p.stderr
    v = subprocess.run([cli(), "stream", "export", "--to", "collapsed", str(stream)],
                       capture_output=True, text=True, timeout=60)
    assert v.returncode == 0, v.stderr
    counts = collections.Counter()
    for line in v.stdout.splitlines():
        stack, _, n = line.rpartition(" ")
        counts[stack] += int(n)
    assert counts["<module>;parse_input;spin"] > 10, counts
    assert counts["<module>;render_output;spin"] > 10, counts
    meta = {k: v for _, k, v in Reader(stream).info()["metadata"]}
    assert meta["rate_hz"] == "200" and meta["interval_us"] == "5000"


def test_module_and_stdout_sink(tmp_path):
    (tmp_path / "mymod.py").write_text(SPIN + textwrap.dedent("""
        import sys
        def modwork():
            spin(0.3)
        if __name__ == "__main__":
            modwork()
            print("from the module", sys.argv[1:])
    """))
    p = subprocess.run([sys.executable, "-m", "lumio.record", "-q", "-o", "-", "-m", "mymod", "a"],
                       cwd=tmp_path, env=ENV, capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert b"from the module ['a']" in p.stderr  # the program's output goes to stderr
    stream = tmp_path / "out.lumio"
    stream.write_bytes(p.stdout)
    samples = list(Reader(stream))
    assert any(s.frames[0][0] == "spin" and s.frames[1][0] == "modwork" for s in samples)
    assert not any(f[0] == "_run_module_as_main" for s in samples for f in s.frames)
    complete(stream)


def test_fork_child_does_not_record(tmp_path):
    script = write_script(tmp_path, f"""
        import os, sys, lumio.record
        rec = lumio.record.start({str(tmp_path / "f.lumio")!r}, rate=200)
        spin(0.2)
        pid = os.fork()
        if pid == 0:
            ok = not lumio.record.running()
            spin(0.3)
            own = lumio.record.start({str(tmp_path / "child.lumio")!r})  # a recorder of its own
            spin(0.2)
            own.stop()
            sys.exit(0 if ok else 5)  # atexit runs in the child too
        spin(0.2)
        _, status = os.waitpid(pid, 0)
        rec.stop()
        print("child", pid, os.waitstatus_to_exitcode(status))
    """)
    p = subprocess.run([sys.executable, str(script)], env=ENV, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    child = int(p.stdout.split()[1])
    assert p.stdout.split()[2] == "0", p.stdout
    info = complete(tmp_path / "f.lumio")
    assert child not in info["thread_ids"] and info["samples"] > 20
    assert child in complete(tmp_path / "child.lumio")["thread_ids"]


def test_api_in_process(tmp_path):
    path = tmp_path / "api.lumio"
    with pytest.raises(ValueError):
        lumio.record.start(path, rate=0)
    with pytest.raises(ValueError, match="often"):
        lumio.record.start(path, flush="often")
    with pytest.raises(FileNotFoundError):
        lumio.record.start(tmp_path / "no" / "such" / "dir.lumio")
    assert not lumio.record.running() and lumio.record.stop() is None
    def busy(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass

    with lumio.record.start(path, rate=500, flush="interval:1h", signal=None) as rec:
        assert lumio.record.running()
        with pytest.raises(RuntimeError, match="already running"):
            lumio.record.start(tmp_path / "second.lumio")
        busy(0.2)
        assert chunks_in(path) == 0
        lumio.record.dump()  # sealed by the writer's thread, at once
        end = time.monotonic() + 30
        while chunks_in(path) == 0 and time.monotonic() < end:
            busy(0.02)
        assert chunks_in(path) == 1
        busy(0.1)
    assert not rec.running and rec.stats["samples"] > 10 and rec.stats["chunks"] == 2
    assert rec.stats["ticks"] >= rec.stats["samples"] / 2 and rec.stats["held_us"] > 0
    with pytest.raises(RuntimeError):
        lumio.record.dump()
    info = Reader(path).info()
    assert info["samples"] == rec.stats["samples"] and info["damaged"] == []
    assert any(f[0] == "test_api_in_process" for s in Reader(path) for f in s.frames)


def test_tcp_listen_sink(tmp_path):
    import socket

    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        port = so.getsockname()[1]
    script = write_script(tmp_path, """
        def served():
            spin(0.5)
        served()
    """)
    p = subprocess.Popen([sys.executable, "-m", "lumio.record", "-q", "-o",
                          f"tcp-listen:127.0.0.1:{port}", "--", str(script)], env=ENV,
                         stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 30
        while True:  # until the recorder listens
            try:
                r = Reader(f"tcp:127.0.0.1:{port}")
                break
            except ConnectionRefusedError:
                assert time.monotonic() < end and p.poll() is None, "the recorder never listened"
                time.sleep(0.02)
        samples = list(r)
        assert p.wait(timeout=60) == 0, p.stderr.read()
    finally:
        p.kill()
        p.stderr.close()
    assert any(s.frames[0][0] == "spin" and s.frames[1][0] == "served" for s in samples)
    assert any(k == "command" for _, k, _ in r.metadata)


def test_fork_while_another_thread_stops(tmp_path):
    """A fork while a thread is inside stop() (holding lumio.record's lock,
    its sink slow to finish): the child's exit, which runs the atexit stop,
    must not wait forever on a lock that no thread of the child will free."""
    script = write_script(tmp_path, """
        import os, socket, sys, threading, time, lumio.record
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        def peer():  # takes the connection and goes: stop waits (bounded) for a consumer
            c, _ = srv.accept()
            c.close()
            srv.close()
        threading.Thread(target=peer, daemon=True).start()
        rec = lumio.record.start(f"tcp:127.0.0.1:{srv.getsockname()[1]}", rate=100, signal=None)
        spin(0.3)
        def stop():
            try:
                rec.stop()
            except OSError:
                pass
        stopper = threading.Thread(target=stop)
        stopper.start()
        spin(0.5)  # the stopper is inside stop(), waiting on the sink
        assert stopper.is_alive()
        pid = os.fork()
        if pid == 0:
            ok = not lumio.record.running() and lumio.record.stop() is None
            sys.exit(0 if ok else 5)  # atexit's stop runs too
        end = time.monotonic() + 30
        while time.monotonic() < end:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            print("child hung")
            sys.exit(1)
        stopper.join()
        print("child", os.waitstatus_to_exitcode(status))
    """)
    p = subprocess.run([sys.executable, str(script)], env=ENV, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and p.stdout.split() == ["child", "0"], p.stdout + p.stderr
