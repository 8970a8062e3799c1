#!/usr/bin/env bash
# lumio against a local S3-compatible server (s3rver, from the npm registry):
# signed GETs and HEADs in path style and virtual-host style, ranges through
# the prefetching reader, a missing key, wrong credentials. Objects are
# uploaded with curl's own SigV4 signer, so two signers meet here.
#   tests/s3_test.sh LUMIO_CLI NODE_DIR
set -uo pipefail
lumio=$1
s3rver=$2/node_modules/.bin/s3rver
if [[ ! -x $s3rver ]]; then
    echo "SKIP: s3rver is not installed (scripts/setup-node.sh installs it)"
    exit 77
fi
dir=$(mktemp -d /var/tmp/lumio-s3.XXXXXX) || exit 1
pid=
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

mkdir "$dir/data"
"$s3rver" -d "$dir/data" -a 127.0.0.1 -p 0 --service-endpoint localhost \
    --configure-bucket bkt >"$dir/log" 2>&1 &
pid=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$dir/log")
    [[ -n $port ]] && break
    sleep 0.1
done
if [[ -z $port ]]; then
    echo "FAIL: s3rver did not start"; cat "$dir/log"; exit 1
fi

fails=0
check() { # NAME COMMAND...
    local name=$1; shift
    if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}

export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
head -c 3000000 /dev/urandom >"$dir/obj"
head -c 100 /dev/urandom >"$dir/small"
up() { # FILE KEY
    curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" -u S3RVER:S3RVER -T "$1" \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
        "$AWS_ENDPOINT_URL/bkt/$2" >/dev/null
}
check upload up "$dir/obj" "dir/my%20obj%2B1.bin"
check upload_small up "$dir/small" small

get_path_style() {
    "$lumio" get "s3://bkt/dir/my obj+1.bin" -o "$dir/out" --part-size 256K && cmp "$dir/out" "$dir/obj"
}
check get_path_style get_path_style

cat_small() { "$lumio" cat s3://bkt/small | cmp - "$dir/small"; }
check cat_small cat_small

stream_out() { "$lumio" get "s3://bkt/dir/my obj+1.bin" -o - | cmp - "$dir/obj"; }
check get_to_stdout stream_out

virtual_host() {
    AWS_ENDPOINT_URL=http://s3.localhost:$port LUMIO_S3_ADDRESSING=virtual \
        "$lumio" get "s3://bkt/dir/my obj+1.bin" -o "$dir/out2" && cmp "$dir/out2" "$dir/obj"
}
check virtual_host virtual_host

bench_random() {
    local j
    j=$("$lumio" bench remote "s3://bkt/dir/my obj+1.bin" --pattern random --read-size 4K --count 50) &&
        grep -q '"reads": 50' <<<"$j"
}
check bench_random bench_random

missing() {
    local err
    err=$("$lumio" get s3://bkt/nope -o "$dir/nope" 2>&1 >/dev/null)
    [[ $? -eq 1 && $err == *"/bkt/nope"*"404"* && ! -e $dir/nope ]]
}
check missing_key missing

# s3rver checks the access key but (3.7) not the V4 signature itself: the
# signer's correctness is tested against the AWS vectors (test_sigv4).
bad_key_id() {
    local err
    err=$(AWS_ACCESS_KEY_ID=NOSUCHKEY "$lumio" get s3://bkt/small -o - 2>&1 >/dev/null)
    local rc=$?
    [[ $rc -eq 1 && $err == *"/bkt/small"*"403"* ]]
}
check bad_key_id bad_key_id

anonymous() { # no credentials: unsigned requests (s3rver serves them)
    env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$lumio" cat s3://bkt/small | cmp - "$dir/small"
}
check anonymous anonymous

with_token() { # a session token is sent, and shown in no message
    local err
    AWS_SESSION_TOKEN=TOKENSECRET "$lumio" cat s3://bkt/small | cmp - "$dir/small" || return 1
    err=$(AWS_SESSION_TOKEN=TOKENSECRET AWS_SECRET_ACCESS_KEY=KEYSECRET \
        "$lumio" get s3://bkt/nope -o "$dir/nope" 2>&1 >/dev/null)
    [[ $? -eq 1 && $err == *"/bkt/nope"* && $err != *SECRET* ]]
}
check session_token with_token

bad_location() {
    local err
    err=$("$lumio" get s3://nokey -o - 2>&1 >/dev/null)
    [[ $? -eq 1 && $err == *"s3://BUCKET/KEY"* ]]
}
check bad_location bad_location

# A Zarr array in S3: every key uploaded, one chunk left out (it reads as
# the fill value), read back whole and by region.
zarr_in_s3() {
    local src=$dir/arr.zarr key
    head -c 48000 /dev/urandom >"$dir/arr.raw"
    "$lumio" zarr create "$src" --shape 40,600 --chunks 16,256 --dtype '<u2' --codec zstd:1 \
        --fill 7 --from "$dir/arr.raw" || return 1
    for key in $(cd "$src" && find . -type f | sed 's|^\./||'); do
        [[ $key == "1.1" ]] && continue
        up "$src/$key" "arr.zarr/$key" || return 1
    done
    rm "$src/1.1"
    "$lumio" zarr cat s3://bkt/arr.zarr >"$dir/s3.out" && "$lumio" zarr cat "$src" | cmp - "$dir/s3.out" &&
        "$lumio" zarr cat s3://bkt/arr.zarr --region 10:30,200:500 >"$dir/s3r.out" &&
        "$lumio" zarr cat "$src" --region 10:30,200:500 | cmp - "$dir/s3r.out"
}
check zarr_array_in_s3 zarr_in_s3

# lumio writes Zarr arrays into S3 (signed PUTs): created from raw bytes,
# rechunked from S3 into S3 (sharded v3), read back equal; creating over an
# existing array is refused; writes without credentials are refused by name.
zarr_writes_to_s3() {
    head -c 300000 /dev/urandom >"$dir/zraw"
    "$lumio" zarr create s3://bkt/w.zarr --shape 50,3000 --chunks 16,700 --dtype '<u2' \
        --codec zstd:1 --from "$dir/zraw" || return 1
    "$lumio" zarr cat s3://bkt/w.zarr | cmp - "$dir/zraw" || return 1
    "$lumio" zarr rechunk s3://bkt/w.zarr s3://bkt/w3.zarr --format 3 --chunks 10,500 \
        --shard 20,1000 --checksum || return 1
    "$lumio" zarr cat s3://bkt/w3.zarr | cmp - "$dir/zraw" || return 1
    "$lumio" zarr cat s3://bkt/w3.zarr --region 7:33,999:2222 >"$dir/w3r.out" &&
        "$lumio" zarr cat "s3://bkt/w.zarr" --region 7:33,999:2222 | cmp - "$dir/w3r.out" || return 1
    local err
    err=$("$lumio" zarr create s3://bkt/w.zarr --shape 5 --chunks 5 --dtype '<u2' 2>&1)
    [[ $? -eq 1 && $err == *"w.zarr/.zarray: already an array"* ]] || return 1
}
check zarr_writes_to_s3 zarr_writes_to_s3

echo "s3: $fails failed"
[[ $fails -eq 0 ]]
