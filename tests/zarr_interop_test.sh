#!/usr/bin/env bash
# Chunks as other Zarr implementations write them (tests/data/zarr_interop,
# made by its make.py): lumio reads what numcodecs reads unambiguously, and
# refuses, saying what it found, what zarr-python refuses.
#
#     tests/zarr_interop_test.sh build/lumio tests/data/zarr_interop
set -uo pipefail
LUMIO=$(realpath "$1")
D=$(realpath "$2")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
failed=0
fail() {
    echo "FAIL: $*" >&2
    failed=1
}

# The expected bytes of a region, cut by numpy.
region() {
    /usr/bin/python3 -c "
import sys, numpy as np
a = np.fromfile('$D/expected.raw', '<u2').reshape(40, 30)
sys.stdout.buffer.write(a[$1].tobytes())"
}

for a in blosc_z5 zstd_nosize zstd_tail; do
    "$LUMIO" zarr cat "$D/$a" >"$T/all" 2>"$T/err" && cmp -s "$T/all" "$D/expected.raw" ||
        fail "$a: whole array: $(cat "$T/err")"
    "$LUMIO" zarr cat "$D/$a" --region 3:20,5:17 >"$T/part" 2>"$T/err" &&
        region "3:20,5:17" | cmp -s - "$T/part" || fail "$a: a region: $(cat "$T/err")"
done

# zarr-python reads the blosc chunks with spare bytes too (numcodecs ignores them).
/usr/bin/python3 -c "
import sys, zarr, numpy as np
a = zarr.open_array('$D/blosc_z5', 'r')[...]
sys.exit(a.tobytes() != open('$D/expected.raw', 'rb').read())" ||
    fail "zarr-python does not read blosc_z5 as lumio does"

# z5's gzip: zlib streams. zarr-python refuses; so does lumio, saying so (the line whole, as
# docs/ZARR.md quotes it; the chunk is whichever failed first).
"$LUMIO" zarr cat "$D/gzip_z5" >/dev/null 2>"$T/err"
rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] &&
    grep -Eqx "lumio zarr cat: $D/gzip_z5/[0-9]\.[0-9]: range 0 \(offset 0, length [0-9]+\): gzip: the chunk is a zlib stream \(header 78 5e\), not gzip \(1f 8b\), as z5 writes it; zarr-python refuses it too" \
        "$T/err" || fail "gzip_z5: status $rc, $(cat "$T/err")"
/usr/bin/python3 -c "
import zarr
try:
    zarr.open_array('$D/gzip_z5', 'r')[...]
except Exception:
    raise SystemExit(0)
raise SystemExit(1)" || fail "zarr-python reads gzip_z5 now: lumio should too"

# A blosc header claiming more bytes than the chunk holds is still an error.
cp -r "$D/blosc_z5" "$T/cut" && head -c 100 "$D/blosc_z5/0.0" >"$T/cut/0.0"
"$LUMIO" zarr cat "$T/cut" >/dev/null 2>"$T/err"
[ "$(wc -l <"$T/err")" -eq 1 ] &&
    grep -Eqx "lumio zarr cat: $T/cut/0\.0: range 0 \(offset 0, length 100\): blosc: the header gives [0-9]+ compressed bytes, the chunk has 100" "$T/err" ||
    fail "a cut blosc chunk: $(cat "$T/err")"

[ $failed -eq 0 ] && echo "zarr interop: all passed"
exit $failed
