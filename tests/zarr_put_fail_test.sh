#!/usr/bin/env bash
# A failed create or rechunk into an HTTP store (nginx's WebDAV location, by
# tests/http_env.sh) leaves no metadata: the chunks PUT before the failure
# are there, and nothing opens.
#
#     tests/http_env.sh bash tests/zarr_put_fail_test.sh build/lumio
set -uo pipefail
LUMIO=$(realpath "$1")
URL=$LUMIO_HTTP_URL
ROOT=$LUMIO_HTTP_ROOT
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
failed=0
fail() {
    echo "FAIL: $*" >&2
    failed=1
}
/usr/bin/python3 -c "import numpy as np; (np.arange(100 * 60, dtype='<u2') * 3).tofile('raw')"

head -c 5000 raw | "$LUMIO" zarr create "$URL/dav/h1" --shape 100,60 --chunks 30,25 \
    --dtype '<u2' --from - 2>err
rc=$?
[ $rc -eq 1 ] && grep -q "5000 bytes, the array needs 12000" err || fail "short: $rc $(cat err)"
[ -e "$ROOT/h1/0.0" ] || fail "no chunk was PUT before the input ran out: $(ls -a "$ROOT/h1")"
[ ! -e "$ROOT/h1/.zarray" ] && ! "$LUMIO" zarr info "$URL/h1" >/dev/null 2>&1 ||
    fail "a short create left metadata"

"$LUMIO" zarr create src --shape 100,60 --chunks 30,25 --dtype '<u2' --from raw
head -c 100 /dev/urandom >src/3.1
for fmt in 2 3; do
    "$LUMIO" zarr rechunk src "$URL/dav/h2v$fmt" --chunks 10,10 --format $fmt 2>err
    rc=$?
    [ $rc -eq 1 ] && grep -q "src/3.1" err || fail "rechunk v$fmt: $rc $(cat err)"
    [ ! -e "$ROOT/h2v$fmt/.zarray" ] && [ ! -e "$ROOT/h2v$fmt/zarr.json" ] &&
        ! "$LUMIO" zarr info "$URL/h2v$fmt" >/dev/null 2>&1 || fail "a failed rechunk left metadata"
done

"$LUMIO" zarr create "$URL/dav/h3" --shape 100,60 --chunks 30,25 --dtype '<u2' --from raw &&
    "$LUMIO" zarr cat "$URL/h3" | cmp - raw || fail "a whole create over PUT does not read back"

[ $failed -eq 0 ] && echo "zarr failures over PUT: all passed"
exit $failed
