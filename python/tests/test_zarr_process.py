"""lumio.zarr in the processes users run it in: PyTorch DataLoader fork
workers over an array the parent has read, and long loops that must not
grow the process."""

import os
import resource

import numpy as np
import pytest
import zarr
import numcodecs

import lumio.zarr


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@pytest.fixture
def array(tmp_path):
    rng = np.random.default_rng(2)
    data = rng.integers(0, 60000, size=(64, 96, 96), dtype="<u2")
    z = zarr.open(str(tmp_path / "a.zarr"), mode="w", shape=data.shape, chunks=(16, 32, 32),
                  dtype="<u2", compressor=numcodecs.Zstd(level=1))
    z[...] = data
    return tmp_path / "a.zarr", data


def test_dataloader_fork_workers(array):
    torch = pytest.importorskip("torch")  # Debian's python3-torch (scripts/setup.sh)
    path, data = array
    a = lumio.zarr.open(path, cache="32M")
    np.testing.assert_array_equal(a[0:16, 0:32, 0:32], data[0:16, 0:32, 0:32])  # parent read

    rng = np.random.default_rng(9)
    starts = [tuple(int(rng.integers(0, n - 24)) for n in data.shape) for _ in range(40)]

    class Crops(torch.utils.data.Dataset):
        def __len__(self):
            return len(starts)

        def __getitem__(self, i):
            z, y, x = starts[i]
            return torch.from_numpy(a[z:z + 24, y:y + 24, x:x + 24].astype(np.int32)), i

    loader = torch.utils.data.DataLoader(Crops(), batch_size=4, num_workers=2,
                                         multiprocessing_context="fork")
    seen = 0
    for batch, idx in loader:
        for crop, i in zip(batch.numpy(), idx.tolist()):
            z, y, x = starts[i]
            np.testing.assert_array_equal(crop, data[z:z + 24, y:y + 24, x:x + 24])
            seen += 1
    assert seen == len(starts)
    np.testing.assert_array_equal(a[5], data[5])  # and the parent still reads


def test_rss_stays_flat(array):
    path, data = array
    a = lumio.zarr.open(path)
    out = np.empty((8, 40, 40), dtype="<u2")
    for _ in range(500):  # warm up: allocators, caches, the ring's pool
        a.read(np.s_[3:11, 10:50, 20:60], out=out)
    before = rss_kib()
    for _ in range(10000):
        a.read(np.s_[3:11, 10:50, 20:60], out=out)
    grown = rss_kib() - before
    np.testing.assert_array_equal(out, data[3:11, 10:50, 20:60])
    assert grown < 4096, f"reading one region 10,000 times grew RSS by {grown} KiB"
    for _ in range(50):
        lumio.zarr.open(path).close()
    before = rss_kib()
    for _ in range(1000):
        b = lumio.zarr.open(path)
        b[0, 0, 0]
        b.close()
    grown = rss_kib() - before
    assert grown < 8192, f"opening and closing 1,000 arrays grew RSS by {grown} KiB"
