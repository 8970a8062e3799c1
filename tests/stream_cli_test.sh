#!/usr/bin/env bash
# lumio stream from the command line: gen, info, verify (on damage too),
# recover, export (collapsed, jsonl), import (collapsed, perf script).
#
#   tests/stream_cli_test.sh LUMIO_CLI
#   tests/stream_cli_test.sh LUMIO_CLI --profiles DIR   (only: import of real
#       perf script profiles from DIR; exits 77 when they are not there)
set -uo pipefail
lumio=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }

# perf script of a real program.
if [ "${2:-}" = --profiles ]; then
    profile=${3:-}/gcc-O2.perf.txt.zst
    if [ ! -f "$profile" ]; then
        echo "SKIP: $profile not found"
        exit 77
    fi
    zstd -dc "$profile" | "$lumio" stream import --from perf-script - -o "$tmp/p.lumio" && ok || bad "import perf script"
    want=$(zstd -dc "$profile" | grep -c -v -e '^[[:space:]]' -e '^$')
    info=$("$lumio" stream info "$tmp/p.lumio") && grep -q "^samples: *$want\$" <<<"$info" && ok || bad "perf script samples ($want)"
    echo "stream cli (profiles): $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
fi

"$lumio" stream gen --seed 3 --samples 20000 --threads 4 --flush samples=1000 -o "$tmp/a.lumio" 2>"$tmp/gen.err" && ok || bad "gen"
[ "$(grep -c '^sealed chunks=' "$tmp/gen.err")" -eq 20 ] && ok || bad "gen announces each sealed chunk"
"$lumio" stream verify "$tmp/a.lumio" >/dev/null && ok || bad "verify of a clean stream"
# Output captured first: under pipefail, `grep -q` quitting early can SIGPIPE
# the writer and fail a check that matched.
info=$("$lumio" stream info "$tmp/a.lumio") && grep -q '^samples: *20000$' <<<"$info" && ok || bad "info counts samples"

# Determinism: the first K samples of a run of N are those of a run of K.
"$lumio" stream gen --seed 3 --samples 500 --threads 4 --to collapsed >"$tmp/k.txt"
"$lumio" stream export --to collapsed "$tmp/a.lumio" >"$tmp/all.txt"
head -n 500 "$tmp/all.txt" | cmp -s - "$tmp/k.txt" && ok || bad "gen prefix"

# Damage in the middle: verify names it, the other chunks stay readable.
size=$(stat -c %s "$tmp/a.lumio")
cp "$tmp/a.lumio" "$tmp/b.lumio"
printf '\xff\xff\xff\xff' | dd of="$tmp/b.lumio" bs=1 seek=$((size / 2)) conv=notrunc status=none
if "$lumio" stream verify "$tmp/b.lumio" 2>"$tmp/v.err"; then bad "verify missed damage"; else ok; fi
grep -q "damaged" "$tmp/v.err" && grep -q "first at byte" "$tmp/v.err" && ok || bad "verify says where: $(cat "$tmp/v.err")"
"$lumio" stream recover "$tmp/b.lumio" -o "$tmp/r.lumio" 2>/dev/null && ok || bad "recover"
"$lumio" stream verify "$tmp/r.lumio" >/dev/null && ok || bad "recovered stream verifies"
n=$("$lumio" stream export --to collapsed "$tmp/r.lumio" | wc -l)
[ "$n" -eq 19000 ] && ok || bad "recover kept every valid chunk (got $n samples, want 19000)"

# A torn tail.
head -c $((size - 77)) "$tmp/a.lumio" >"$tmp/t.lumio"
if "$lumio" stream verify "$tmp/t.lumio" 2>"$tmp/t.err"; then bad "verify missed a torn tail"; else ok; fi
grep -q "torn tail" "$tmp/t.err" && ok || bad "torn tail named: $(cat "$tmp/t.err")"

# JSON lines parse, and hold the metadata record.
"$lumio" stream export --to jsonl "$tmp/a.lumio" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
assert sum(r["type"] == "sample" for r in rows) == 20000
assert any(r["type"] == "meta" and r["key"] == "generator" for r in rows)
' && ok || bad "jsonl export"

# Collapsed round trip through import.
printf 'main;run;parse 3\nmain;run 2\nmain;io;read 1\n' >"$tmp/f.txt"
"$lumio" stream import --from collapsed "$tmp/f.txt" -o "$tmp/f.lumio" && ok || bad "import collapsed"
"$lumio" stream export --to collapsed "$tmp/f.lumio" | sort | uniq -c | awk '{print $2" "$1}' | sort >"$tmp/f2.txt"
sort "$tmp/f.txt" | cmp -s - "$tmp/f2.txt" && ok || bad "collapsed round trip"

# Bad input: one clear line, non-zero exit.
echo "garbage" >"$tmp/g.txt"
if "$lumio" stream import --from perf-script "$tmp/g.txt" -o "$tmp/g.lumio" 2>"$tmp/g.err"; then bad "garbage imported"; else ok; fi
[ "$(wc -l <"$tmp/g.err")" -eq 1 ] && grep -q "line 1" "$tmp/g.err" && ok || bad "garbage error: $(cat "$tmp/g.err")"
if "$lumio" stream verify "$tmp/g.txt" 2>"$tmp/n.err"; then bad "verify of a text file"; else ok; fi
grep -q "not a lumio stream" "$tmp/n.err" && ok || bad "not a stream: $(cat "$tmp/n.err")"
for sub in gen export import info verify recover bench; do
    "$lumio" stream $sub --help >/dev/null && ok || bad "stream $sub --help"
done
"$lumio" stream bench --samples 20000 | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["write_samples_per_s"] > 0 and d["read_samples_per_s"] > 0 and d["bytes_per_sample"] > 0' && ok || bad "bench JSON"

# The dump: SIGUSR1 seals the chunk being written at once, while the writer
# goes on (no flush policy would seal before the end here).
"$lumio" stream gen --seed 5 --samples 1000000 --rate 2000 --flush samples:10000000 \
    -o "$tmp/dump.lumio" 2>"$tmp/dump.err" &
gen_pid=$!
for _ in $(seq 100); do [ -s "$tmp/dump.lumio" ] && break; sleep 0.05; done
sleep 0.5
kill -USR1 "$gen_pid"
for _ in $(seq 100); do grep -q '^sealed chunks=1 ' "$tmp/dump.err" && break; sleep 0.05; done
grep -q '^sealed chunks=1 ' "$tmp/dump.err" && ok || bad "SIGUSR1 seals a chunk: $(cat "$tmp/dump.err")"
info=$("$lumio" stream info "$tmp/dump.lumio") && grep -Eq "^chunks: +1$" <<<"$info" && ok || bad "the dumped chunk reads while gen runs: $info"
kill -USR1 "$gen_pid"
for _ in $(seq 100); do grep -q '^sealed chunks=2 ' "$tmp/dump.err" && break; sleep 0.05; done
grep -q '^sealed chunks=2 ' "$tmp/dump.err" && ok || bad "a second SIGUSR1 seals a second chunk"
{ kill -KILL "$gen_pid" && wait "$gen_pid"; } 2>/dev/null
info=$("$lumio" stream info "$tmp/dump.lumio") && grep -Eq "^chunks: +2$" <<<"$info" && ok || bad "both dumped chunks survive SIGKILL: $info"

echo "stream cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
