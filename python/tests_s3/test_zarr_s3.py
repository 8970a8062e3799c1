"""lumio.zarr against S3 (s3rver): arrays zarr-python wrote, uploaded key by
key, read through s3:// equal numpy's indexing; what lumio writes to S3,
downloaded key by key, reads back in zarr-python."""

import os
import random
import subprocess
import uuid

import numpy as np
import numcodecs
import pytest
import zarr

import lumio.zarr

LUMIO = os.environ.get("LUMIO_CLI")


def upload(endpoint, local, prefix):
    for d, _, files in os.walk(local):
        for f in files:
            path = os.path.join(d, f)
            key = prefix + "/" + os.path.relpath(path, local)
            subprocess.run(["curl", "-sf", "--aws-sigv4", "aws:amz:us-east-1:s3", "-u", "S3RVER:S3RVER",
                            "-T", path, "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                            f"{endpoint}/bkt/{key}"], check=True)


def test_read_what_zarr_python_wrote(s3, tmp_path):
    rng = np.random.default_rng(8)
    data = rng.standard_normal((33, 17)).astype(">f4")
    z = zarr.open(str(tmp_path / "z.zarr"), mode="w", shape=data.shape, chunks=(10, 6),
                  dtype=">f4", compressor=numcodecs.Zstd(5))
    z[...] = data
    prefix = f"r-{uuid.uuid4().hex[:8]}.zarr"
    upload(s3, tmp_path / "z.zarr", prefix)
    a = lumio.zarr.open(f"s3://bkt/{prefix}")
    r = random.Random(3)
    for _ in range(30):
        s = tuple(slice(r.choice([None, r.randrange(n)]), r.choice([None, r.randrange(n)]),
                        r.choice([1, 2, -1])) for n in data.shape)
        np.testing.assert_array_equal(a[s], data[s], err_msg=str(s))


def test_zarr_python_reads_what_lumio_wrote(s3, tmp_path):
    if not LUMIO:
        pytest.skip("LUMIO_CLI is not set")
    prefix = f"w-{uuid.uuid4().hex[:8]}.zarr"
    a = lumio.zarr.create(f"s3://bkt/{prefix}", (20, 30), (8, 8), "<u2", codec="zstd:1")
    data = np.arange(600, dtype="<u2").reshape(20, 30)
    a[...] = data
    a[::5, 7] = 9
    data[::5, 7] = 9
    out = tmp_path / "back.zarr"
    out.mkdir()
    keys = [".zarray"] + [f"{i}.{j}" for i in range(3) for j in range(4)]
    for k in keys:
        subprocess.run([LUMIO, "get", f"s3://bkt/{prefix}/{k}", "-o", str(out / k)], check=True)
    np.testing.assert_array_equal(zarr.open(str(out), mode="r")[...], data)
