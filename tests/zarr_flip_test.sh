#!/usr/bin/env bash
# lumio zarr against a server whose array metadata changes between two
# fetches (tests/hostile_http.py's /flip/ mode, under tests/hostile_env.sh):
# the CLI sizes its buffers from one open and reads through another, so a
# change in between must be refused, never written past a buffer (issue 11).
#
#     tests/hostile_env.sh tests/zarr_flip_test.sh build/lumio
set -uo pipefail
LUMIO=$(realpath "$1")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/check.sh"

R=$LUMIO_HOSTILE_ROOT
meta() { printf '{"zarr_format":2,"shape":[100000],"chunks":[100000],"dtype":"%s","compressor":null,"fill_value":7,"order":"C","filters":null}' "$1"; }
for a in cat bench; do
    mkdir -p "$R/$a"
    meta '|u1' >"$R/$a/.zarray"
    meta '<f8' >"$R/$a/.zarray.flip"
done

flip_cat() {
    local st=0
    timeout 60 "$LUMIO" zarr cat "$LUMIO_HOSTILE_URL/flip/cat" -o "$T/out" 2>"$T/err" || st=$?
    echo "status $st: $(cat "$T/err")"
    [ "$st" -eq 1 ] && grep -q 'metadata changed while it was being opened' "$T/err" &&
        [ "$(wc -l <"$T/err")" -eq 1 ] && [ ! -e "$T/out" ]
}
check "zarr cat: metadata changed between two opens is refused" flip_cat

flip_bench() {
    local st=0
    timeout 60 "$LUMIO" zarr bench "$LUMIO_HOSTILE_URL/flip/bench" --pattern all >"$T/json" 2>"$T/err" || st=$?
    echo "status $st: $(cat "$T/err")"
    [ "$st" -eq 1 ] && grep -q 'metadata changed while it was being opened' "$T/err"
}
check "zarr bench: metadata changed between two opens is refused" flip_bench

check_done "zarr_flip"
