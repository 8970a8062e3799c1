"""lumio.zarr over HTTP (nginx): what zarr-python wrote, read through URLs,
equals numpy's indexing of it; what lumio writes through WebDAV PUTs reads
back in zarr-python."""

import os
import random
import uuid

import numpy as np
import numcodecs
import pytest
import zarr

import lumio
import lumio.zarr


def sel_of(rng, shape):
    sel = []
    for n in shape:
        k = rng.randrange(3)
        if k == 0:
            sel.append(rng.randrange(-n, n))
        else:
            step = rng.choice([1, 1, 2, -1, 3])
            sel.append(slice(rng.choice([None, rng.randrange(n)]), rng.choice([None, rng.randrange(n)]), step))
    return tuple(sel)


@pytest.mark.parametrize("dtype", ["<u2", ">f8", "|b1", "<i8"])
def test_read_over_http(http, dtype):
    url, root = http
    name = f"h-{uuid.uuid4().hex[:8]}.zarr"
    rng = np.random.default_rng(4)
    data = (rng.integers(0, 2, size=(30, 20, 9)) if dtype == "|b1" else
            rng.integers(-1000, 1000, size=(30, 20, 9))).astype(dtype)
    z = zarr.open(os.path.join(root, name), mode="w", shape=data.shape, chunks=(7, 6, 5),
                  dtype=dtype, compressor=numcodecs.Blosc("zstd", 3, numcodecs.Blosc.SHUFFLE))
    z[...] = data
    z.attrs["source"] = "zarr-python"
    a = lumio.zarr.open(f"{url}/{name}")
    assert a.shape == data.shape and a.dtype == data.dtype
    assert a.attrs == {"source": "zarr-python"}
    r = random.Random(7)
    for _ in range(40):
        s = sel_of(r, data.shape)
        np.testing.assert_array_equal(a[s], data[s], err_msg=str(s))
    crops = a.read_batch([[0, 0, 0], [20, 10, 3]], (10, 10, 6))
    np.testing.assert_array_equal(crops[1], data[20:30, 10:20, 3:9])


def test_write_over_webdav(http):
    url, root = http
    name = f"w-{uuid.uuid4().hex[:8]}.zarr"
    a = lumio.zarr.create(f"{url}/dav/{name}", (25, 14), (8, 8), "<i4", codec="zlib:1")
    data = np.arange(25 * 14, dtype="<i4").reshape(25, 14)
    a[...] = data
    a[3:20:4, ::3] = -1
    data[3:20:4, ::3] = -1
    np.testing.assert_array_equal(zarr.open(os.path.join(root, name), mode="r")[...], data)


def test_missing_url_names_it(http):
    url, _ = http
    with pytest.raises(FileNotFoundError) as e:
        lumio.zarr.open(f"{url}/nothing-here.zarr")
    assert "nothing-here.zarr" in str(e.value)
    with pytest.raises(FileNotFoundError):
        lumio.zarr.open_group(f"{url}/nothing-here.zarr")
