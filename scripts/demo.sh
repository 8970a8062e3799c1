#!/usr/bin/env bash
# The demo: generate sample data, read it through the engine on both backends,
# read random 4 KiB ranges, hash it (against xxhsum), copy the tree and check
# the copy, write a profile as a lumio stream and verify it, download a file
# from a local nginx with lumio get (against one curl), rechunk it as a Zarr
# array under a memory cap, then print a short
# table of what was done and how fast.
set -euo pipefail
cd "$(dirname "$0")/.."
lumio=build/lumio
work=$(mktemp -d /var/tmp/lumio-demo-XXXXXX)
trap 'rm -rf "$work"' EXIT

nfiles=${DEMO_FILES:-1000}
echo "demo: generating $nfiles files of 256 KiB and one 256 MiB file in $work" >&2
python3 - "$work" "$nfiles" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
block = os.urandom(256 << 10)
for i in range(n):
    sub = os.path.join(d, "data", f"part{i % 8}")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"chunk{i:05d}.bin"), "wb") as f:
        f.write(block[i % 251:] + block[: i % 251])
with open(os.path.join(d, "big.bin"), "wb") as f:
    for _ in range(256):
        f.write(os.urandom(1 << 20))
PY
find "$work/data" -type f -print0 | xargs -0 cat >/dev/null # warm the page cache
cat "$work/big.bin" >/dev/null

rows=()
row() { rows+=("$(printf '| %-50s | %10s | %8s | %14s |' "$1" "$2" "$3" "$4")"); }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(' '.join(str(d[k]) for k in sys.argv[1:]))" "$@"; }
mib() { python3 -c "print(f'{$1/1048576:.0f} MiB')"; }

for be in uring threads; do
    read -r bytes secs gibs backend < <(LUMIO_BACKEND=$be $lumio bench read --block 256K --depth 32 "$work/data" | json bytes seconds gib_per_s backend)
    row "read $nfiles files in 256 KiB blocks ($backend)" "$(mib "$bytes")" "$(printf '%.3f' "$secs")" "$(printf '%.2f GiB/s' "$gibs")"
done
read -r bytes secs ops < <($lumio bench read --random 200000 --size 4K --depth 64 "$work/big.bin" | json bytes seconds ops_per_s)
row "200000 random 4 KiB reads of 256 MiB" "$(mib "$bytes")" "$(printf '%.3f' "$secs")" "$(printf '%.0f IOPS' "$ops")"

t0=$(date +%s.%N); $lumio hash "$work/data" >"$work/lumio.sums"; t1=$(date +%s.%N)
(cd "$work" && find data -type f | sort | xargs xxhsum -H1 >"$work/xxhsum.sums" 2>/dev/null); t2=$(date +%s.%N)
sed "s|$work/||" "$work/lumio.sums" | sort >"$work/a"; sort "$work/xxhsum.sums" >"$work/b"
same=$(cmp -s "$work/a" "$work/b" && echo "same as xxhsum" || echo "DIFFERS from xxhsum")
total=$((nfiles * 256 * 1024))
row "hash $nfiles files, xxh64 ($same)" "$(mib $total)" "$(python3 -c "print(f'{$t1-$t0:.3f}')")" "$(python3 -c "print(f'{($t2-$t1)/($t1-$t0):.2f}x xxhsum')")"

t0=$(date +%s.%N); $lumio cp "$work/data" "$work/copy"; t1=$(date +%s.%N)
ok=$(diff -r "$work/data" "$work/copy" >/dev/null && echo "identical" || echo "DIFFERENT")
row "copy the tree ($ok)" "$(mib $total)" "$(python3 -c "print(f'{$t1-$t0:.3f}')")" "$(python3 -c "print(f'{$total/($t1-$t0)/2**30:.2f} GiB/s')")"

t0=$(date +%s.%N); $lumio stream gen --seed 1 --samples 1000000 --threads 16 -o "$work/profile.lumio" 2>/dev/null; t1=$(date +%s.%N)
sverify=$($lumio stream verify "$work/profile.lumio" >/dev/null 2>&1 && echo "verified" || echo "DAMAGED")
pbytes=$(stat -c %s "$work/profile.lumio")
row "stream: 1M profile samples, 16 threads ($sverify)" "$(mib "$pbytes")" "$(python3 -c "print(f'{$t1-$t0:.3f}')")" "$(python3 -c "print(f'{1e6/($t1-$t0)/1e6:.1f} M samples/s')")"

# The remote reader: the 256 MiB file from a local nginx that caps each
# connection at 50 MB/s (as object stores do), by lumio get and by one curl.
read -r rsecs csecs rsame < <(tests/http_env.sh bash -c '
    ln "$1/big.bin" "$LUMIO_HTTP_ROOT/big.bin" && chmod 644 "$LUMIO_HTTP_ROOT/big.bin"
    t0=$(date +%s.%N); "$2" get "$LUMIO_HTTP_URL/slow/big.bin" -o "$1/got.bin"; t1=$(date +%s.%N)
    curl -sf -o /dev/null "$LUMIO_HTTP_URL/slow/big.bin"; t2=$(date +%s.%N)
    same=$(cmp -s "$1/big.bin" "$1/got.bin" && echo identical || echo DIFFERENT)
    python3 -c "print(f\"{$t1-$t0:.3f} {$t2-$t1:.3f} $same\")"' _ "$work" "$PWD/$lumio")
row "HTTP get, 50 MB/s per connection ($rsame)" "256 MiB" "$rsecs" "$(python3 -c "print(f'{$csecs/$rsecs:.1f}x one curl')")"

# Zarr: the 256 MiB file as a uint16 array of 64^3 zstd chunks, rechunked
# to 16x256x256 under a 64M memory cap, and read back whole.
$lumio zarr create "$work/a.zarr" --shape 256,512,1024 --chunks 64,64,64 --dtype uint16 \
    --codec zstd:1 --from "$work/big.bin"
t0=$(date +%s.%N)
$lumio zarr rechunk "$work/a.zarr" "$work/b.zarr" --chunks 16,256,256 --memory 64M
t1=$(date +%s.%N)
zsame=$($lumio zarr cat "$work/b.zarr" | cmp -s - "$work/big.bin" && echo identical || echo DIFFERENT)
row "Zarr rechunk 64^3 -> 16x256x256 ($zsame)" "256 MiB" "$(python3 -c "print(f'{$t1-$t0:.3f}')")" "$(python3 -c "print(f'{256/($t1-$t0):.0f} MiB/s')")"

echo
printf '| %-50s | %10s | %8s | %14s |\n' "what" "bytes" "seconds" "speed"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..52})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..16})"
printf '%s\n' "${rows[@]}"
[ "$same" = "same as xxhsum" ] && [ "$ok" = "identical" ] && [ "$sverify" = "verified" ] && [ "$rsame" = "identical" ] && [ "$zsame" = "identical" ]
