#!/usr/bin/env bash
# lumio zarr on arrays whose metadata someone else wrote (issue 11): sizes
# past 2^64 printed exactly, huge virtual arrays streamed as their fill
# value, one-line errors naming the field. With --http (under
# tests/http_env.sh) the same arrays are read from nginx by URL.
#
#     tests/zarr_hostile_test.sh build/lumio
#     tests/http_env.sh tests/zarr_hostile_test.sh build/lumio --http
set -euo pipefail

if [ $# -lt 1 ] || [ ! -x "$1" ]; then
    echo "usage: $0 PATH/TO/lumio [--http]" >&2
    exit 2
fi
LUMIO=$(realpath "$1")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
HTTP=0
A=. # where the arrays are read from
if [ "${2:-}" = --http ]; then
    HTTP=1
    cd "$LUMIO_HTTP_ROOT"
    A=$LUMIO_HTTP_URL
else
    cd "$T"
fi

. "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/check.sh"

# array DIR SHAPE CHUNKS DTYPE FILL: a v2 array with no chunks stored.
array() {
    mkdir -p "$1"
    printf '{"zarr_format":2,"shape":[%s],"chunks":[%s],"dtype":"%s","order":"C","compressor":null,"fill_value":%s}' \
        "$2" "$3" "$4" "$5" >"$1/.zarray"
}
# Issue 11's shape (its chunks were [1,1,2^32]; 64 KiB ones keep the test
# off any memory cap on decoding, and the row of 2^64 bytes wraps the same).
array issue11 1,4294967296,4294967296 1,1,65536 '|u1' 5
array huge 4611686018427387904,4611686018427387904,16 1,1,16 '<u2' 7
array long 9223372036854775807 1000 '<f8' 0

# Exact sizes: today's 64-bit arithmetic printed "0 raw" and a wrapped grid.
# (The stored size is counted for a directory only.)
raw() { [ $HTTP = 1 ] || grep -q " $1 raw" out; }
info_exact() {
    "$LUMIO" zarr info $A/issue11 >out &&
        grep -q '^grid        281474976710656$' out &&
        raw 18446744073709551616 &&
        "$LUMIO" zarr info $A/long >out &&
        raw 73786976294838206456 &&
        grep -q '^grid        9223372036854776$' out &&
        "$LUMIO" zarr info $A/huge >out &&
        grep -q '^grid        21267647932558653966460912964485513216$' out &&
        raw 680564733841876926926749214863536422912
}
check "zarr info prints sizes past 2^64 exactly" info_exact

# n bytes of value v, as od prints them.
fill_bytes() { head -c "$1" /dev/zero | tr '\0' "\\$(printf '%03o' "$2")"; }

# A small region, and the whole array into a pipe that closes: bytes at once
# (the row buffer wrapped to 0 and the copy overflowed the heap before).
cat_region() {
    "$LUMIO" zarr cat $A/issue11 --region 0:1,4294967295:4294967296,4294967286: >out &&
        cmp out <(fill_bytes 10 5)
}
check "zarr cat: a region at the end of a 2^64-byte array" cat_region
cat_whole_issue11() {
    set +o pipefail
    timeout 120 "$LUMIO" zarr cat $A/issue11 2>err | head -c 1048576 >out
    local st=${PIPESTATUS[0]}
    echo "status $st"
    [ "$st" -lt 124 ] && # exited (EPIPE), neither killed nor crashed
        cmp out <(fill_bytes 1048576 5) &&
        [ ! -s err ]
}
check "zarr cat of a 2^64-byte array streams its fill value" cat_whole_issue11
cat_whole_huge() {
    set +o pipefail
    timeout 120 "$LUMIO" zarr cat $A/huge 2>err | head -c 1048576 >out
    local st=${PIPESTATUS[0]}
    echo "status $st"
    [ "$st" -lt 124 ] && cmp out <(printf '\007\000%.0s' $(seq 524288))
}
# Over HTTP each missing 32-byte chunk is a request: the region above is enough.
[ $HTTP = 1 ] || check "zarr cat of a 2^129-byte array of missing chunks streams at once" cat_whole_huge
bench_all() {
    local st=0
    timeout 120 "$LUMIO" zarr bench $A/issue11 --pattern all 2>err || st=$?
    echo "status $st: $(cat err)"
    [ "$st" -eq 2 ] && grep -q 'more than 2^64 bytes' err && [ "$(wc -l <err)" -eq 1 ]
}
check "zarr bench --pattern all refuses an array past 2^64 bytes" bench_all
rechunk_huge() {
    local st=0
    timeout 120 "$LUMIO" zarr rechunk $A/issue11 "$T/re" --chunks 1,1,65536 2>err || st=$?
    echo "status $st: $(cat err)"
    [ "$st" -eq 1 ] && grep -q 'more than 2^64 bytes' err && [ "$(wc -l <err)" -eq 1 ] && [ ! -e "$T/re" ]
}
check "zarr rechunk refuses an array past 2^64 bytes (it would wrap its count)" rechunk_huge
bench_crops() {
    local st=0
    timeout 120 "$LUMIO" zarr bench $A/issue11 --pattern crops --crop 1,4294967296,4294967296 \
        2>err || st=$?
    echo "status $st: $(cat err)"
    [ "$st" -eq 2 ] && grep -q 'crops' err && [ "$(wc -l <err)" -eq 1 ]
}
check "zarr bench --pattern crops refuses crops whose bytes wrap" bench_crops

# An empty region (a dimension of 0): no bytes, exit 0.
array empty 4611686018427387904,0,16 1,1,16 '|u1' 3
cat_empty() {
    "$LUMIO" zarr cat $A/empty >out && [ ! -s out ] &&
        "$LUMIO" zarr cat $A/huge --region 5:5 >out && [ ! -s out ]
}
check "zarr cat of an empty region writes nothing" cat_empty

# One line naming the field, exit 1.
refused() { # TEXT FILE WANT
    rm -rf bad && mkdir bad && printf '%s' "$1" >"bad/$2"
    local st=0
    "$LUMIO" zarr info $A/bad >out 2>err || st=$?
    [ "$st" -eq 1 ] && [ "$(wc -l <err)" -eq 1 ] && grep -qF -- "$3" err && [ ! -s out ] ||
        { echo "status $st: $(cat err), expected $3"; return 1; }
}
errors() {
    local bad=0
    refused '[1,2,3]' .zarray '.zarray: not a JSON object' || bad=1
    refused '{"zarr_format":"2"}' .zarray 'zarr_format: must be the number 2' || bad=1
    refused '{"zarr_format":2,"shape":[4],"chunks":[2],"dtype":"|u1","order":"C","dimension_separator":1}' .zarray \
        'dimension_separator: must be a string' || bad=1
    refused '{"zarr_format":2,"shape":[4],"chunks":[2],"dtype":"|u1","order":"C","dimension_separator":"/.."}' .zarray \
        "dimension_separator: '/..' is not" || bad=1
    refused '{"zarr_format":2,"shape":[4],"chunks":[2],"dtype":"|u1","order":"C","compressor":{"id":"zstd","level":"x"}}' .zarray \
        'compressor.level: must be an integer' || bad=1
    refused '' .zarray '.zarray: empty' || bad=1
    local g='"chunk_grid":{"name":"regular","configuration":{"chunk_shape":[2]}}'
    refused '{"zarr_format":3,"node_type":"array","shape":[4],"data_type":"uint8",'"$g"',"codecs":[]}' zarr.json \
        'zarr.json: codecs: empty' || bad=1
    refused '{"zarr_format":3,"node_type":"array","shape":[4],"data_type":7,'"$g"',"codecs":[{"name":"bytes"}]}' zarr.json \
        'data_type: must be a string' || bad=1
    refused '{"zarr_format":3,"node_type":"array","shape":[4],"data_type":"uint8",'"$g"',"chunk_key_encoding":{"name":"default","configuration":{"separator":"/../"}},"codecs":[{"name":"bytes"}]}' zarr.json \
        "chunk_key_encoding: separator '/../' is not" || bad=1
    return $bad
}
check "zarr info: hostile metadata refused in one line naming the field" errors

check_done "zarr_hostile_cli$([ $HTTP = 1 ] && echo ' (http)')"
