#!/usr/bin/env bash
# lumio stream export --to FORMAT SOURCE [-o OUT]: the formats listed from
# the library, a wrong one named, -o written whole or not at all, standard
# input as SOURCE, a full disk said, damage said and exported all the same.
#
#   tests/export_cli_test.sh LUMIO_CLI
set -uo pipefail
lumio=$1
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }

"$lumio" stream gen --seed 5 --samples 3000 --threads 4 --flush samples:300 -o "$tmp/g.lumio" 2>/dev/null || bad "gen"

# The formats, one a line, from the library's registry.
list=$("$lumio" stream export --to help)
for f in collapsed jsonl speedscope gecko pprof; do
    grep -qx "$f" <<<"$list" && ok || bad "--to help does not list $f"
done

# A format nobody knows: a usage error naming the known ones.
err=$("$lumio" stream export --to svg "$tmp/g.lumio" 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] && grep -q "'svg'" <<<"$err" && grep -q speedscope <<<"$err" && ok || bad "--to svg: $rc $err"

# -o OUT, and the same on standard output from standard input.
for f in speedscope gecko; do
    "$lumio" stream export --to $f "$tmp/g.lumio" -o "$tmp/out.$f" && ok || bad "-o $f"
    "$lumio" stream export --to $f - <"$tmp/g.lumio" >"$tmp/stdout.$f" && ok || bad "stdin $f"
    cmp -s "$tmp/out.$f" "$tmp/stdout.$f" && ok || bad "$f: -o and stdout differ"
    $py -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/out.$f" && ok || bad "$f: not JSON"
done
"$lumio" stream export --to pprof "$tmp/g.lumio" -o "$tmp/out.pprof" && gzip -t "$tmp/out.pprof" && ok || bad "pprof: not gzip"
"$lumio" stream export --to pprof "$tmp/g.lumio" -o - | cmp -s - "$tmp/out.pprof" && ok || bad "pprof: -o - differs"

# A source that fails: the output is not made, and one already there stays.
echo old >"$tmp/keep.json"
printf 'not a stream at all, just text\n' >"$tmp/text"
"$lumio" stream export --to gecko "$tmp/text" -o "$tmp/keep.json" 2>"$tmp/err"; rc=$?
[ $rc -eq 1 ] && [ "$(cat "$tmp/keep.json")" = old ] && ok || bad "a failed export replaced its output ($rc)"
"$lumio" stream export --to gecko "$tmp/text" -o "$tmp/new.json" 2>/dev/null
[ ! -e "$tmp/new.json" ] && [ -z "$(ls "$tmp" | grep '^\.new\|tmp')" ] && ok || bad "a failed export left a file"

# A full disk: exit 1, saying so, for a whole-file and a streaming format.
for f in speedscope collapsed; do
    err=$("$lumio" stream export --to $f "$tmp/g.lumio" -o /dev/full 2>&1); rc=$?
    [ $rc -eq 1 ] && grep -qi "no space" <<<"$err" && ok || bad "$f to /dev/full: $rc $err"
done

# Damage in the middle: said, exit 1, and every valid sample exported.
cp "$tmp/g.lumio" "$tmp/d.lumio"
size=$(stat -c %s "$tmp/d.lumio")
printf '\xff\xff\xff\xff\xff\xff\xff\xff' | dd of="$tmp/d.lumio" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
"$lumio" stream export --to speedscope "$tmp/d.lumio" -o "$tmp/d.json" 2>"$tmp/err"; rc=$?
n=$($py -c 'import json,sys; print(sum(len(p["samples"]) for p in json.load(open(sys.argv[1]))["profiles"]))' "$tmp/d.json" 2>/dev/null)
c=$("$lumio" stream export --to collapsed "$tmp/d.lumio" 2>/dev/null | awk '{s += $NF} END {print s}')
[ $rc -eq 1 ] && grep -q damaged "$tmp/err" && [ -n "$n" ] && [ "$n" = "$c" ] && [ "$n" -lt 3000 ] && ok ||
    bad "damage: exit $rc, $n samples (collapsed $c): $(cat "$tmp/err")"

echo "export cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
