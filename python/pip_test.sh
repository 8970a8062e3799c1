#!/usr/bin/env bash
# `pip install ./python` works offline with Debian's setuptools (the package
# built from source, the library compiled into it), and the installed copy
# opens and reads an array zarr-python wrote. Run by ctest (python_pip).
set -uo pipefail
src=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# pip builds in the source tree: work on a copy so nothing is left behind there.
mkdir -p "$T/src" && cp -r "$src/include" "$src/src" "$src/python" "$T/src/"
if ! /usr/bin/python3 -m pip install --no-build-isolation --no-index --no-deps --quiet \
        --target "$T/site" "$T/src/python" >"$T/pip.log" 2>&1; then
    echo "python_pip: pip install failed:"; tail -20 "$T/pip.log"; exit 1
fi
cd "$T" && PYTHONPATH="$T/site" /usr/bin/python3 - <<'PY'
import numpy as np, zarr, lumio, lumio.zarr
assert lumio.__file__.startswith(__import__("os").getcwd()), lumio.__file__
z = zarr.open("a.zarr", mode="w", shape=(30, 40), chunks=(7, 9), dtype=">i4")
data = np.arange(1200, dtype=">i4").reshape(30, 40)
z[...] = data
a = lumio.zarr.open("a.zarr")
np.testing.assert_array_equal(a[3:25:2, ::-3], data[3:25:2, ::-3])
print("python_pip: 1 passed, 0 failed")
PY
