#!/usr/bin/env bash
# lumio get, cat and bench remote against nginx (run under tests/http_env.sh).
#   tests/http_env.sh tests/remote_cli_test.sh LUMIO_CLI
set -uo pipefail
lumio=$1
if [[ -z ${LUMIO_HTTP_URL:-} ]]; then
    echo "SKIP: run under tests/http_env.sh"
    exit 77
fi
work=$(mktemp -d /var/tmp/lumio-rcli.XXXXXX) || exit 1
trap 'rm -rf "$work"' EXIT
fails=0
check() { # NAME COMMAND...
    local name=$1; shift
    if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}
root=$LUMIO_HTTP_ROOT url=$LUMIO_HTTP_URL
head -c 20000000 /dev/urandom >"$root/obj.bin"
printf 'local bytes\n' >"$work/local.txt"
chmod 644 "$root/obj.bin"

default_name() { (cd "$work" && "$lumio" get "$url/obj.bin?x=1" && cmp obj.bin "$root/obj.bin"); }
check get_default_name default_name

options() {
    "$lumio" get "$url/obj.bin" -o "$work/o2" --concurrency 3 --pool 2 --part-size 1M &&
        cmp "$work/o2" "$root/obj.bin" && [[ ! -e $work/o2.part ]]
}
check get_options options

to_stdout() { "$lumio" get "$url/slow/obj.bin" -o - | cmp - "$root/obj.bin"; }
check get_stdout to_stdout

cat_mixed() {
    "$lumio" cat "$work/local.txt" "$url/obj.bin" "$work/local.txt" >"$work/mixed" &&
        cat "$work/local.txt" "$root/obj.bin" "$work/local.txt" | cmp - "$work/mixed"
}
check cat_mixed cat_mixed

missing() {
    local err rc
    err=$("$lumio" get "$url/nope.bin" -o "$work/nope" 2>&1 >/dev/null)
    rc=$?
    [[ $rc -eq 1 && $(wc -l <<<"$err") -eq 1 && $err == *"$url/nope.bin"*"404"* &&
        ! -e $work/nope && ! -e $work/nope.part ]]
}
check get_missing missing

cat_missing() { # the error is reported, the other arguments still come out
    local out rc
    out=$("$lumio" cat "$url/nope.bin" "$work/local.txt" 2>/dev/null)
    rc=$?
    [[ $rc -eq 1 && $out == "local bytes" ]]
}
check cat_missing_goes_on cat_missing

usage() {
    "$lumio" get 2>/dev/null; [[ $? -eq 2 ]] || return 1
    "$lumio" get ftp://x/y 2>/dev/null; [[ $? -eq 2 ]] || return 1
    "$lumio" get "$url/obj.bin" --concurrency 0 2>/dev/null; [[ $? -eq 2 ]] || return 1
    "$lumio" get "$url/" 2>/dev/null; [[ $? -eq 2 ]] || return 1 # no file name
    "$lumio" bench remote "$url/obj.bin" --pattern zigzag 2>/dev/null; [[ $? -eq 2 ]]
}
check usage_errors usage

closed_pipe() { # a reader that goes away: no crash, no hang
    "$lumio" get "$url/obj.bin" -o - 2>/dev/null | head -c 10 >/dev/null
    local rc=${PIPESTATUS[0]}
    [[ $rc -eq 0 || $rc -eq 1 ]]
}
check closed_pipe closed_pipe

bench_seq() {
    local j
    j=$("$lumio" bench remote "$url/obj.bin" --pattern seq --read-size 64K) || return 1
    python3 - "$j" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
assert d["bytes"] == 20000000 and d["bytes_fetched"] == 20000000, d
assert d["requests"] < d["reads"] / 4, d  # read-ahead: far fewer requests than reads
for k in ("seconds", "mib_per_s"): assert d[k] > 0, d
PY
}
check bench_seq bench_seq

bench_random() {
    local j
    j=$("$lumio" bench remote "$url/obj.bin" --pattern random --read-size 4K --count 200) || return 1
    python3 - "$j" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
assert d["reads"] == 200 and d["bytes"] == 200 * 4096, d
assert d["bytes_fetched"] <= 2 * d["bytes"], d
PY
}
check bench_random bench_random

echo "remote_cli: $fails failed"
[[ $fails -eq 0 ]]
