"""lumio.zarr against zarr-python 2.13 and numpy: every selection of basic
indexing gives what numpy gives on zarr-python's data."""

import os
import pickle
import random
import threading
import time
import zlib

import numpy as np
import pytest
import zarr
import numcodecs

import lumio
import lumio.zarr

DTYPES = ["|b1", "|i1", "<i2", ">i4", "<i8", "|u1", ">u2", "<u4", "<u8", "<f4", ">f8"]


def make(path, dtype="<u2", shape=(37, 29, 11), chunks=(8, 7, 5), order="C",
         compressor=numcodecs.Zstd(level=3), fill_value=0, seed=1):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        data = rng.integers(0, 2, size=shape).astype(dt)
    elif dt.kind == "f":
        data = rng.standard_normal(shape).astype(dt)
    else:
        info = np.iinfo(dt)
        data = rng.integers(info.min, info.max, size=shape, dtype=dt.newbyteorder("="), endpoint=True).astype(dt)
    z = zarr.open(str(path), mode="w", shape=shape, chunks=chunks, dtype=dt, order=order,
                  compressor=compressor, fill_value=fill_value)
    z[...] = data
    return data


def random_sel(rng, shape):
    sel = []
    for n in shape:
        kind = rng.randrange(4)
        if kind == 0:
            sel.append(rng.randrange(-n, n))
        elif kind == 1:
            a, b = sorted(rng.randrange(-n - 2, n + 2) for _ in range(2))
            sel.append(slice(a, b))
        else:
            step = rng.choice([1, 2, 3, -1, -2, 5])
            a = rng.choice([None, rng.randrange(-n, n)])
            b = rng.choice([None, rng.randrange(-n, n)])
            sel.append(slice(a, b, step))
    k = rng.randrange(len(shape) + 1)
    sel = tuple(sel[:k])
    if rng.random() < 0.2:
        sel = sel + (Ellipsis,)
    return sel


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ["C", "F"])
def test_selections_equal_numpy(tmp_path, dtype, order):
    data = make(tmp_path / "a.zarr", dtype=dtype, order=order)
    a = lumio.zarr.open(tmp_path / "a.zarr")
    assert a.shape == data.shape and a.dtype == data.dtype and a.chunks == (8, 7, 5)
    assert a.format == 2 and a.shards is None and len(a) == 37
    assert a.nbytes == data.nbytes
    np.testing.assert_array_equal(a[...], data)
    rng = random.Random(zlib.crc32(f"{dtype}{order}".encode()))  # the same selections every run
    for _ in range(60):
        sel = random_sel(rng, data.shape)
        got, want = a[sel], data[sel]
        assert got.shape == want.shape, sel
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want, err_msg=str(sel))


def test_codecs_and_fill(tmp_path):
    for i, comp in enumerate([None, numcodecs.Zlib(1), numcodecs.GZip(5),
                              numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE)]):
        p = tmp_path / f"c{i}.zarr"
        data = make(p, dtype="<f4", compressor=comp, fill_value=-1.5, seed=i)
        a = lumio.zarr.open(p)
        assert a.fill_value == np.float32(-1.5)
        np.testing.assert_array_equal(a[3:30, ::2, -1], data[3:30, ::2, -1])


def test_missing_chunks_read_as_fill(tmp_path):
    z = zarr.open(str(tmp_path / "m.zarr"), mode="w", shape=(20, 20), chunks=(5, 5),
                  dtype="<i4", fill_value=7)
    z[0:5, 0:5] = 1
    a = lumio.zarr.open(tmp_path / "m.zarr")
    want = np.full((20, 20), 7, dtype="<i4")
    want[0:5, 0:5] = 1
    np.testing.assert_array_equal(a[:], want)


def test_read_into_out(tmp_path):
    data = make(tmp_path / "a.zarr")
    a = lumio.zarr.open(tmp_path / "a.zarr")
    out = np.empty((10, 29, 11), dtype=a.dtype)
    assert a.read(np.s_[5:15], out=out) is out
    np.testing.assert_array_equal(out, data[5:15])
    with pytest.raises(ValueError):
        a.read(np.s_[5:15], out=np.empty((10, 29, 10), dtype=a.dtype))
    with pytest.raises(ValueError):
        a.read(np.s_[5:15], out=np.empty((10, 29, 11), dtype="<u4"))
    with pytest.raises(ValueError):
        a.read(np.s_[5:15], out=np.empty((29, 11, 10), dtype=a.dtype).transpose(2, 0, 1))


def test_index_errors(tmp_path):
    make(tmp_path / "a.zarr")
    a = lumio.zarr.open(tmp_path / "a.zarr")
    for sel in [37, -38, (0, 29), (0, 0, 11), (0, 0, 0, 0), (..., ...)]:
        with pytest.raises(IndexError):
            a[sel]
    with pytest.raises(IndexError):
        a[[1, 2]]


def test_writes_read_back_in_zarr_python(tmp_path):
    data = make(tmp_path / "w.zarr", dtype=">i4")
    a = lumio.zarr.open(tmp_path / "w.zarr")
    rng = np.random.default_rng(5)
    a[3:20, 2:9, :] = 42
    data[3:20, 2:9, :] = 42
    block = rng.integers(-1000, 1000, size=(5, 29, 11)).astype(">i4")
    a[30:35] = block
    data[30:35] = block
    a[::3, 1, ::-2] = -7
    data[::3, 1, ::-2] = -7
    a[36, 28, 10] = 5
    data[36, 28, 10] = 5
    np.testing.assert_array_equal(zarr.open(str(tmp_path / "w.zarr"), mode="r")[...], data)
    np.testing.assert_array_equal(a[...], data)


def test_read_batch(tmp_path):
    data = make(tmp_path / "a.zarr")
    a = lumio.zarr.open(tmp_path / "a.zarr", cache="16M")
    rng = np.random.default_rng(3)
    starts = np.stack([rng.integers(0, n - s + 1, size=50) for n, s in zip(a.shape, (8, 8, 4))], 1)
    crops = a.read_batch(starts, (8, 8, 4))
    assert crops.shape == (50, 8, 8, 4)
    for i, (x, y, z) in enumerate(starts):
        np.testing.assert_array_equal(crops[i], data[x:x + 8, y:y + 8, z:z + 4])
    with pytest.raises(IndexError):
        a.read_batch([[30, 0, 0]], (8, 8, 4))


def test_series(tmp_path):
    data = make(tmp_path / "a.zarr")
    a = lumio.zarr.open(tmp_path / "a.zarr")
    slabs = list(a.series(axis=0))
    assert [s.shape[0] for s in slabs] == [8, 8, 8, 8, 5]
    np.testing.assert_array_equal(np.concatenate(slabs, axis=0), data)
    slabs = list(a.series(axis=2, step=3, ahead=2))
    np.testing.assert_array_equal(np.concatenate(slabs, axis=2), data)


def test_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        lumio.zarr.open(tmp_path / "none.zarr")
    assert str(tmp_path / "none.zarr") in str(e.value)
    bad = tmp_path / "bad.zarr"
    bad.mkdir()
    (bad / ".zarray").write_text("{not json")
    with pytest.raises(lumio.Error) as e:
        lumio.zarr.open(bad)
    assert isinstance(e.value, OSError) and e.value.code == lumio._lumio.E_FORMAT
    assert str(bad) in str(e.value)


def test_pickle_and_fork(tmp_path):
    data = make(tmp_path / "a.zarr")
    a = lumio.zarr.open(tmp_path / "a.zarr", cache="8M")
    np.testing.assert_array_equal(a[1:9], data[1:9])  # the parent has read
    b = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(b[2], data[2])
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reads and writes through the parent's object
        ok = False
        try:
            ok = np.array_equal(a[3:30, 5], data[3:30, 5])
            a[0, 0, 0] = 99
            ok = ok and a[0, 0, 0] == 99
        finally:
            os.write(w, b"1" if ok else b"0")
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.waitpid(pid, 0)
    assert lumio.zarr.open(tmp_path / "a.zarr")[0, 0, 0] == 99  # the child's write
    # The parent still works (its cache keeps the chunk it had: lumio.zarr.open's cache).
    np.testing.assert_array_equal(a[5:7, 1:3], data[5:7, 1:3])


def test_gil_released(tmp_path):
    z = zarr.open(str(tmp_path / "big.zarr"), mode="w", shape=(256, 512, 512), chunks=(32, 128, 128),
                  dtype="<u2", compressor=numcodecs.Zstd(level=1))
    z[...] = 3
    a = lumio.zarr.open(tmp_path / "big.zarr")
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    before = len(ticks)
    for _ in range(3):
        x = a[...]
    stop.set()
    t.join()
    assert x[0, 0, 0] == 3
    assert len(ticks) - before > 10  # the other thread ran during the reads


def test_version():
    assert lumio.__version__.count(".") == 2
    assert lumio.redact("http://u:pw@h/x") == "http://u:***@h/x"


def test_oindex(tmp_path):
    data = make(tmp_path / "a.zarr")
    a = lumio.zarr.open(tmp_path / "a.zarr")
    z = zarr.open(str(tmp_path / "a.zarr"), mode="r")
    rng = np.random.default_rng(7)
    for _ in range(30):
        sel = (rng.integers(-37, 37, size=rng.integers(1, 6)), slice(2, 20, 3),
               rng.integers(0, 11, size=4))
        np.testing.assert_array_equal(a.oindex[sel], z.oindex[sel])
    np.testing.assert_array_equal(a.oindex[[5, 1, 5], 3], z.oindex[[5, 1, 5], 3])
    a.oindex[[1, 4], :, [0, 10]] = 9
    data[np.ix_([1, 4], np.arange(29), [0, 10])] = 9
    np.testing.assert_array_equal(z[...], data)
    with pytest.raises(IndexError):
        a.oindex[[40]]


@pytest.mark.parametrize("fmt", [2, 3])
def test_create_and_rechunk_read_in_zarr_python(tmp_path, fmt):
    rng = np.random.default_rng(11)
    data = rng.standard_normal((40, 30)).astype("<f8")
    p = tmp_path / "new.zarr"
    a = lumio.zarr.create(p, data.shape, (16, 16), "float64", format=fmt, fill_value=float("nan"))
    assert a.format == fmt and np.isnan(a.fill_value)
    a[...] = data
    if fmt == 2:
        np.testing.assert_array_equal(zarr.open(str(p), mode="r")[...], data)
    with pytest.raises(FileExistsError):
        lumio.zarr.create(p, data.shape, (16, 16), "float64", format=fmt)
    b = lumio.zarr.rechunk(p, tmp_path / "re.zarr", (7, 30), codec="gzip:4")
    assert b.chunks == (7, 30) and "gzip:4" in b.codecs and b.format == fmt  # the source's format
    np.testing.assert_array_equal(b[...], data)
    if fmt == 3:
        s = lumio.zarr.rechunk(p, tmp_path / "sh.zarr", (5, 5), format=3, shards=(10, 15))
        assert s.shards == (10, 15) and s.chunks == (5, 5)
        np.testing.assert_array_equal(s[3:33, ::-1], data[3:33, ::-1])


@pytest.mark.parametrize("consolidate", [False, True])
def test_groups_and_attrs(tmp_path, consolidate):
    root = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    root.attrs["title"] = "weather"
    t = root.create_dataset("temp", shape=(10, 10), chunks=(5, 5), dtype="<f4")
    t[...] = 1.5
    t.attrs["units"] = "K"
    sub = root.create_group("sub")
    sub.attrs["n"] = 3
    sub.create_dataset("x", shape=(4,), chunks=(2,), dtype="<i2")[...] = [1, 2, 3, 4]
    if consolidate:
        zarr.consolidate_metadata(str(tmp_path / "g.zarr"))
    g = lumio.zarr.open_group(tmp_path / "g.zarr")
    assert g.format == 2 and g.listed
    assert g.attrs == {"title": "weather"}
    assert g.arrays() == ["temp"] and g.groups() == ["sub"]
    a = g["temp"]
    assert a.attrs == {"units": "K"}
    np.testing.assert_array_equal(a[...], np.full((10, 10), 1.5, dtype="<f4"))
    assert g["sub"].attrs == {"n": 3}
    np.testing.assert_array_equal(g["sub"]["x"][...], [1, 2, 3, 4])
    np.testing.assert_array_equal(g["sub/x"][1:3], [2, 3])
    with pytest.raises(KeyError):
        g["nothere"]
    with pytest.raises(NotADirectoryError):
        lumio.zarr.open_group(tmp_path / "g.zarr" / "temp")
    with pytest.raises(FileNotFoundError):
        lumio.zarr.open_group(tmp_path / "nothing")
    assert lumio.zarr.open(tmp_path / "g.zarr" / "sub" / "x").attrs == {}


def test_ctrl_c_during_a_long_read(tmp_path):
    import signal
    z = zarr.open(str(tmp_path / "big.zarr"), mode="w", shape=(512, 512, 512), chunks=(32, 128, 128),
                  dtype="<u2", compressor=numcodecs.Zstd(level=1))
    for i in range(0, 512, 64):
        z[i:i + 64] = i
    a = lumio.zarr.open(tmp_path / "big.zarr")
    sent = []

    def interrupt():
        time.sleep(0.15)
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    t = threading.Thread(target=interrupt)
    t.start()
    with pytest.raises(KeyboardInterrupt):
        for _ in range(20):  # 256 MiB a read: long enough to be interrupted
            a[...]
    late = time.monotonic() - sent[0]
    t.join()
    assert late < 1.0, f"KeyboardInterrupt came {late:.2f} s after SIGINT"
    assert a[100, 0, 0] == 64  # the array still works


@pytest.mark.parametrize("fmt", [2, 3])
def test_create_with_attrs(tmp_path, fmt):
    attrs = {"units": "K", "scale": [1, 2.5], "nested": {"ok": True}}
    a = lumio.zarr.create(tmp_path / "at.zarr", (6, 4), (3, 4), "<i2", format=fmt, attrs=attrs)
    a[...] = 5
    assert lumio.zarr.open(tmp_path / "at.zarr").attrs == attrs
    if fmt == 2:
        assert dict(zarr.open(str(tmp_path / "at.zarr"), mode="r").attrs) == attrs
    b = lumio.zarr.rechunk(tmp_path / "at.zarr", tmp_path / "re.zarr", (2, 2))
    assert b.attrs == attrs  # rechunk keeps them
    np.testing.assert_array_equal(b[...], np.full((6, 4), 5, dtype="<i2"))
    with pytest.raises(ValueError):
        lumio.zarr.create(tmp_path / "bad.zarr", (2,), (2,), "<i2", attrs=[1, 2])
    assert not os.path.exists(tmp_path / "bad.zarr" / ".zarray")


def test_hostile_use(tmp_path):
    data = make(tmp_path / "a.zarr")
    a = lumio.zarr.open(tmp_path / "a.zarr")
    # A series holds the array: other calls and close() raise, nothing is freed under it.
    s = a.series(axis=0, step=5)
    next(s)
    with pytest.raises(RuntimeError):
        a.close()
    with pytest.raises(RuntimeError):
        a[0] = 1
    del s
    np.testing.assert_array_equal(a[1], data[1])
    # Objects made without __init__ raise instead of crashing.
    raw = lumio._lumio.ZarrArray.__new__(lumio._lumio.ZarrArray)
    with pytest.raises(ValueError):
        raw.info()
    with pytest.raises(ValueError):
        raw.close()
    # Booleans, floats and negative sizes are refused.
    with pytest.raises(IndexError):
        a[True]
    with pytest.raises(IndexError):
        a.read_batch([[1.5, 0, 0]], (2, 2, 2))
    with pytest.raises(IndexError):
        a.read_batch([[2**62, 0, 0]], (2, 2, 2))
    with pytest.raises(ValueError):
        lumio.zarr.open(tmp_path / "a.zarr", cache=-1)
    with pytest.raises(ValueError):
        a.series(step=-1)
    # lumio's own errors carry .code, not an errno.
    bad = tmp_path / "bad.zarr"
    bad.mkdir()
    (bad / ".zarray").write_text("[]")
    with pytest.raises(lumio.Error) as e:
        lumio.zarr.open(bad)
    assert e.value.errno is None and e.value.code == lumio._lumio.E_FORMAT
    assert str(e.value).startswith(str(bad))


def test_zero_d(tmp_path):
    z = zarr.open(str(tmp_path / "s.zarr"), mode="w", shape=(), dtype="<f8")
    z[...] = 2.5
    a = lumio.zarr.open(tmp_path / "s.zarr")
    assert a[()] == 2.5 and a[...].shape == ()
    with pytest.raises(ValueError):
        a.read_batch(np.zeros((2, 0), int), ())
