#!/usr/bin/env bash
# lumio zarr create, rechunk and cat on a full filesystem (a 2 MiB tmpfs in a
# mount namespace of the test's own): each fails with exit 1 naming ENOSPC,
# and leaves nothing that opens as an array, and no partial output.
# Skipped (77) where mounting is not allowed.
#
#     tests/zarr_enospc_test.sh build/lumio
set -uo pipefail
LUMIO=$(realpath "$1")
if [ -z "${LUMIO_IN_MOUNT_NS:-}" ]; then
    if ! unshare -m --propagation private true 2>/dev/null; then
        echo "cannot make a mount namespace here (unshare -m): skipped"
        exit 77
    fi
    LUMIO_IN_MOUNT_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
T=$(mktemp -d)
trap 'umount "$T/full" 2>/dev/null; rm -rf "$T"' EXIT
cd "$T" || exit 1
mkdir full
if ! mount -t tmpfs -o size=2m tmpfs full 2>/dev/null; then
    echo "cannot mount a tmpfs here: skipped"
    exit 77
fi
failed=0
fail() {
    echo "FAIL: $*" >&2
    failed=1
}
no_array() {
    ! "$LUMIO" zarr info "$1" >/dev/null 2>&1 && [ ! -e "$1/.zarray" ] && [ ! -e "$1/zarr.json" ]
}

head -c $((6 << 20)) /dev/urandom >raw
"$LUMIO" zarr create full/a --shape 1536,4096 --chunks 128,4096 --dtype '|u1' --codec none \
    --from raw 2>err
rc=$?
[ $rc -eq 1 ] && grep -q "No space left on device" err && [ "$(wc -l <err)" -eq 1 ] ||
    fail "create on a full disk: status $rc, $(cat err)"
no_array full/a && [ ! -e full/a ] || fail "create on a full disk left $(ls -a full/a)"

"$LUMIO" zarr create src --shape 1536,4096 --chunks 128,4096 --dtype '|u1' --codec none --from raw
for fmt in 2 3; do
    "$LUMIO" zarr rechunk src full/r$fmt --chunks 64,64 --codec none --format $fmt 2>err
    rc=$?
    [ $rc -eq 1 ] && grep -q "No space left on device" err && [ "$(wc -l <err)" -eq 1 ] ||
        fail "rechunk (v$fmt) on a full disk: status $rc, $(cat err)"
    no_array full/r$fmt && [ ! -e full/r$fmt ] || fail "rechunk (v$fmt) on a full disk left chunks"
done

echo old >full/keep
"$LUMIO" zarr cat src -o full/keep 2>err
rc=$?
[ $rc -eq 1 ] && grep -q "No space left on device" err && [ "$(cat full/keep)" = old ] &&
    [ "$(ls full)" = keep ] || fail "cat onto a full disk: status $rc, $(cat err); $(ls full)"

[ $failed -eq 0 ] && echo "zarr on a full disk: all passed"
exit $failed
