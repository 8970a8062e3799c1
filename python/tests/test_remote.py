"""lumio.remote and lumio.read_ranges against a real nginx on loopback
(httpserver.py): exact bytes, errors naming the URL, fork, threads and
Ctrl-C."""

import io
import os
import pickle
import random
import signal
import socket
import threading
import time

import pytest

import lumio
import lumio.remote

import httpserver

MIB = 1 << 20
# A rate that makes a transfer long on purpose: /crawl/ at 256 KB/s per
# connection, with parts of 128 KiB, each takes about half a second (and
# 8 MiB over 4 connections, 8 s).
CRAWL = dict(concurrency=4, part_size="128K")


@pytest.fixture(scope="module")
def web():
    if not httpserver.available():
        pytest.skip(f"nginx is not installed ({httpserver.NGINX}; scripts/setup.sh installs it)")
    with httpserver.Nginx(rates={"crawl": "256k"}) as w:
        rng = random.Random(7)
        w.data = rng.randbytes(12 * MIB + 12345)  # more than a part: split reads
        w.small = b"lumio remote test\n" * 100
        (w.root / "data.bin").write_bytes(w.data)
        (w.root / "small.txt").write_bytes(w.small)
        (w.root / "empty").write_bytes(b"")
        yield w


def test_stat(web):
    st = lumio.remote.stat(web.url("data.bin"))
    assert st.size == len(web.data) and st == (len(web.data), st.etag)
    assert st.etag.startswith('"') and st.etag.endswith('"')
    assert lumio.remote.stat(web.url("empty")).size == 0


def test_read(web):
    u = web.url("data.bin")
    got = lumio.remote.read(u)
    assert got == web.data
    assert lumio.remote.read(u, 5, 1000) == web.data[5:1005]
    assert lumio.remote.read(u, 9 * MIB + 1) == web.data[9 * MIB + 1 :]
    assert lumio.remote.read(u, len(web.data) - 10, 100) == web.data[-10:]  # the object ends
    assert lumio.remote.read(u, 0, 0) == b""
    # Parts smaller than the read: many requests, each straight into place.
    assert lumio.remote.read(u, 3, 3 * MIB, part_size="256K", concurrency=3) == web.data[3 : 3 + 3 * MIB]
    assert lumio.remote.read(web.url("empty")) == b""
    with pytest.raises(ValueError):
        lumio.remote.read(u, -1)


def test_open_sequential(web):
    with lumio.remote.open(web.url("data.bin")) as f:
        assert isinstance(f, io.RawIOBase) and f.readable() and f.seekable()
        assert not f.writable() and f.name == web.url("data.bin") and f.size == len(web.data)
        parts = []
        while b := f.read(65536):
            parts.append(b)
        assert b"".join(parts) == web.data and f.tell() == len(web.data)
        st = f.stats()
        assert st["bytes_fetched"] == len(web.data)  # every byte fetched once
        assert st["requests"] < len(web.data) // 65536 // 2  # the read-ahead: larger parts
        f.seek(0)
        buf = bytearray(100000)
        assert f.readinto(buf) == 100000 and buf == web.data[:100000]
        assert f.read() == web.data[100000:]
    assert f.closed
    with pytest.raises(ValueError):
        f.read(1)


def test_seek_and_random_reads(web):
    rng = random.Random(3)
    n = len(web.data)
    with lumio.remote.open(web.url("data.bin"), readahead_max="4M") as f:
        for _ in range(200):
            how = rng.randrange(3)
            if how == 0:
                pos = f.seek(rng.randrange(n))
            elif how == 1:
                pos = f.seek(rng.randrange(-1000, 1000), io.SEEK_CUR) if f.tell() > 1000 else f.tell()
            else:
                pos = f.seek(-rng.randrange(1, n), io.SEEK_END)
            size = rng.choice([1, 100, 4096, 65536, 300000])
            assert f.read(size) == web.data[pos : pos + size], (pos, size)
            assert f.tell() == min(pos + size, n)
        st = f.stats()
        assert st["bytes_fetched"] < 3 * st["bytes_read"] + 8 * MIB  # no whole-object reads
        assert f.seek(n + 10) == n + 10 and f.read(5) == b""
        with pytest.raises(ValueError):
            f.seek(-1)
    # A BufferedReader over it, for lines.
    with io.BufferedReader(lumio.remote.open(web.url("small.txt"))) as b:
        assert b.readline() == b"lumio remote test\n"
        assert b.read() == web.small[18:]


def test_get_ranges(web):
    u = web.url("data.bin")
    rng = random.Random(5)
    starts = [rng.randrange(len(web.data) - 70000) for _ in range(300)]
    ends = [s + rng.choice([0, 1, 10, 5000, 70000]) for s in starts]
    for coalesce in ("1M", False):
        views = lumio.remote.get_ranges(u, starts, ends, coalesce=coalesce)
        assert len(views) == len(starts)
        for v, s, e in zip(views, starts, ends):
            assert isinstance(v, memoryview) and v.readonly
            assert v == web.data[s:e]
    v = lumio.remote.get_ranges(u, [-100, 10, 0], [None, None, 10 * MIB])
    assert v[0] == web.data[-100:] and v[1] == web.data[10:] and v[2] == web.data[: 10 * MIB]
    assert lumio.remote.get_ranges(u, [], []) == []
    with pytest.raises(ValueError):
        lumio.remote.get_ranges(u, [10], [5])
    with pytest.raises(lumio.Error) as e:  # past the end
        lumio.remote.get_ranges(u, [len(web.data) - 5], [len(web.data) + 5])
    assert e.value.code == lumio._lumio.E_RANGE and u in str(e.value)


def test_read_ranges_local_and_remote(web, tmp_path):
    local = tmp_path / "local.bin"
    ldata = os.urandom(20 * MIB)  # over a piece: read into memory of its own, in pieces
    local.write_bytes(ldata)
    u, s = web.url("data.bin"), web.url("small.txt")
    items = [(u, 0, 100), (local, 5, 1000), (s, 0, None), (str(local), 1, 20 * MIB - 1),
             (u, -50, 50), (local, 0, None), (u, 100, 9 * MIB), (s, 3, 0)]
    want = [web.data[:100], ldata[5:1005], web.small, ldata[1:], web.data[-50:], ldata,
            web.data[100 : 100 + 9 * MIB], b""]
    got = lumio.read_ranges(items)
    assert [bytes(g) for g in got] == want
    assert all(isinstance(g, memoryview) and g.readonly for g in got)
    pairs = list(lumio.read_ranges(items, in_order=False))
    assert sorted(i for i, _ in pairs) == list(range(len(items)))
    for i, v in pairs:
        assert v == want[i]
    assert lumio.read_ranges([]) == []
    with pytest.raises(FileNotFoundError) as e:
        lumio.read_ranges([(local, 0, 10), (web.url("missing.bin"), 0, 10)])
    assert web.url("missing.bin") in str(e.value)
    with pytest.raises(FileNotFoundError) as e:
        lumio.read_ranges([(tmp_path / "nope", 0, 10)])
    assert str(tmp_path / "nope") in str(e.value)
    with pytest.raises(ValueError):
        lumio.read_ranges([(local, 0, -5)])
    with pytest.raises(TypeError):
        lumio.read_ranges([(local, 0)])


def test_read_ranges_results_outlive_many_calls(tmp_path):
    """Views keep their buffers after the call's ring is gone, and buffers
    come back when the views go: RSS stays flat over many calls."""
    p = tmp_path / "f.bin"
    data = os.urandom(4 * MIB)
    p.write_bytes(data)
    items = [(p, i * 65536, 65536) for i in range(0, 64, 3)] + [(p, 7, 100)]
    kept = lumio.read_ranges(items)

    def rss_kib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

    for _ in range(200):
        lumio.read_ranges(items)
    before = rss_kib()
    for _ in range(2000):
        r = lumio.read_ranges(items)
        assert r[-1] == data[7:107]
    assert rss_kib() - before < 16 * 1024
    for (_, off, n), v in zip(items, kept):
        assert v == data[off : off + n]


def test_errors_name_the_url(web, tmp_path):
    missing, forbidden = web.url("missing.bin"), web.url("x.bin", "forbidden")
    calls = [lumio.remote.stat, lumio.remote.read, lumio.remote.open,
             lambda u: lumio.remote.get(u, tmp_path / "out"),
             lambda u: lumio.remote.get_ranges(u, [0], [1])]
    for call in calls:
        with pytest.raises(FileNotFoundError) as e:
            call(missing)
        assert missing in str(e.value)
        with pytest.raises(PermissionError) as e:
            call(forbidden)
        assert forbidden in str(e.value)
    assert os.listdir(tmp_path) == []  # a failed get leaves nothing
    with pytest.raises(lumio.Error) as e:  # 405: this location takes no PUT
        lumio.remote.put(b"x", web.url("small.txt"))
    assert e.value.code == lumio._lumio.E_HTTP and web.url("small.txt") in str(e.value)
    assert isinstance(e.value, OSError)


def test_changed_object(web):
    p = web.root / "changing.bin"
    p.write_bytes(b"a" * 100000)
    u = web.url("changing.bin")
    with lumio.remote.open(u) as f:
        assert f.read(10) == b"a" * 10
        p.write_bytes(b"b" * 100001)  # a new size: a new ETag
        f.seek(50000)
        with pytest.raises(lumio.Error) as e:
            f.read(10)
        assert e.value.code == lumio._lumio.E_CHANGED and u in str(e.value)


def test_timeout():
    with socket.socket() as s:  # accepts connections, never answers
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        u = f"http://127.0.0.1:{s.getsockname()[1]}/x"
        t = time.monotonic()
        with pytest.raises(TimeoutError) as e:
            lumio.remote.stat(u, timeout=1)
        assert u in str(e.value) and time.monotonic() - t < 10


def test_get_and_put(web, tmp_path):
    out = tmp_path / "out.bin"
    assert lumio.remote.get(web.url("data.bin"), out) == len(web.data)
    assert out.read_bytes() == web.data and os.listdir(tmp_path) == ["out.bin"]
    assert lumio.remote.get(web.url("empty"), tmp_path / "e") == 0
    assert (tmp_path / "e").read_bytes() == b""
    lumio.remote.put(b"some bytes", web.url("up/a.txt", "dav"))
    assert (web.root / "up" / "a.txt").read_bytes() == b"some bytes"
    lumio.remote.put(out, web.url("up/b.bin", "dav"))
    assert lumio.remote.read(web.url("up/b.bin")) == web.data
    (tmp_path / "zero").write_bytes(b"")
    lumio.remote.put(str(tmp_path / "zero"), web.url("up/zero", "dav"))
    assert (web.root / "up" / "zero").read_bytes() == b""
    lumio.remote.put(memoryview(web.small)[:5], web.url("up/c.txt", "dav"))
    assert (web.root / "up" / "c.txt").read_bytes() == web.small[:5]


def test_pickle(web):
    with lumio.remote.open(web.url("data.bin"), part_size="1M", timeout=30) as f:
        f.seek(123)
        g = pickle.loads(pickle.dumps(f))
        assert g.name == f.name and g.tell() == 123
        assert g.read(1000) == web.data[123:1123]
        assert g._opts == f._opts
        g.close()
    with pytest.raises(ValueError):
        pickle.dumps(f)


def test_fork(web, tmp_path):
    u = web.url("data.bin")
    f = lumio.remote.open(u)
    assert f.read(3 * MIB) == web.data[: 3 * MIB]  # the read-ahead is running
    held = lumio.read_ranges([(u, 0, 100000)])
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's objects, made again on first use
        ok = False
        try:
            ok = (f.read(3 * MIB) == web.data[3 * MIB : 6 * MIB]
                  and lumio.remote.read(u, 7, 100) == web.data[7:107]
                  and bytes(lumio.read_ranges([(u, 9, 10)])[0]) == web.data[9:19]
                  and held[0] == web.data[:100000])
            del held[:]  # the parent's pool: left alone here
            f.close()
        finally:
            os.write(w, b"ok" if ok else b"no")
            os._exit(0)
    os.close(w)
    got = os.read(r, 2)
    os.close(r)
    os.waitpid(pid, 0)
    assert got == b"ok"
    # The parent goes on where it was.
    assert f.read(MIB) == web.data[3 * MIB : 4 * MIB]
    assert held[0] == web.data[:100000]
    f.close()


def _interrupted(call, after=1.2):
    """Run call, SIGINT after `after` s: the seconds from the signal to
    KeyboardInterrupt (None if call returned)."""
    fired = []

    def fire():
        fired.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    t = threading.Timer(after, fire)
    t.start()
    try:
        call()
    except KeyboardInterrupt:
        return time.monotonic() - fired[0]
    finally:
        t.cancel()
    return None


def _quiet(client_opts):
    """Whether the client made no request and fetched no byte over 1 s."""
    c = lumio.remote._client(**client_opts)
    a = c.stats()
    time.sleep(1)
    b = c.stats()
    return a["requests"] == b["requests"] and a["bytes_fetched"] == b["bytes_fetched"]


@pytest.fixture
def slow(web):
    """An 8 MiB object that takes about 8 s through /crawl/ with CRAWL."""
    p = web.root / "slow.bin"
    if not p.exists():
        p.write_bytes(os.urandom(8 * MIB))
    return web.url("slow.bin", "crawl")


def test_sigint_during_get(slow, tmp_path):
    out = tmp_path / "out.bin"
    took = _interrupted(lambda: lumio.remote.get(slow, out, **CRAWL))
    assert took is not None and took < 1.0
    assert os.listdir(tmp_path) == []  # no partial output
    assert _quiet(CRAWL)  # no request left behind


def test_sigint_during_reads(slow):
    took = _interrupted(lambda: lumio.remote.read(slow, **CRAWL))
    assert took is not None and took < 1.0
    assert _quiet(CRAWL)
    with lumio.remote.open(slow, **CRAWL) as f:
        f.read(100)
        took = _interrupted(f.read)
        assert took is not None and took < 1.0
        assert f.tell() == 100  # an interrupted read moves nothing
        assert _quiet(CRAWL)  # the read-ahead was canceled
        assert len(f.read(1000)) == 1000  # and the file still works
    took = _interrupted(lambda: lumio.remote.get_ranges(slow, [0], [None], **CRAWL))
    assert took is not None and took < 1.0
    assert _quiet(CRAWL)


def test_threads_run_during_a_long_read(slow):
    count, stop = [0], threading.Event()

    def spin():
        while not stop.is_set():
            count[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        start = time.monotonic()
        lumio.remote.read(slow, 0, MIB, **CRAWL)
        took = time.monotonic() - start
    finally:
        stop.set()
        t.join()
    assert took > 0.5 and count[0] > 100000 * took  # the GIL was free while it waited
