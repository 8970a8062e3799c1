#!/usr/bin/env bash
# lumio stream commands on a full filesystem (a 64 KiB tmpfs): import and
# recover fail in one line naming the output and the byte, and leave
# nothing in the directory; gen leaves a stream whose sealed chunks read back.
# Skipped (77) where mounting a tmpfs is not allowed.
set -uo pipefail
lumio=$1
tmp=$(mktemp -d)
mkdir "$tmp/full"
if ! mount -t tmpfs -o size=64k tmpfs "$tmp/full" 2>/dev/null; then
    echo "cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)"
    rm -rf "$tmp"
    exit 77
fi
trap 'umount "$tmp/full"; rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }

"$lumio" stream gen --seed 3 --samples 100000 --to collapsed >"$tmp/in.txt"
"$lumio" stream gen --seed 3 --samples 100000 -o "$tmp/in.lumio" 2>/dev/null
echo keep >"$tmp/full/kept.lumio"
for cmd in "import --from collapsed $tmp/in.txt" "recover $tmp/in.lumio"; do
    for out in new.lumio kept.lumio; do
        if "$lumio" stream $cmd -o "$tmp/full/$out" 2>"$tmp/err"; then bad "$cmd -o $out on a full disk"; else ok; fi
        [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -Eq "^lumio stream: $tmp/full/$out: writing a chunk at byte [0-9]+: No space left on device$" "$tmp/err" \
            && ok || bad "$cmd -o $out: $(cat "$tmp/err")"
        [ "$(ls -A "$tmp/full")" = kept.lumio ] && [ "$(cat "$tmp/full/kept.lumio")" = keep ] \
            && ok || bad "$cmd -o $out left: $(ls -la "$tmp/full")"
    done
done
rm -f "$tmp/full/kept.lumio"
# gen writes a live stream in place: the chunks sealed before the disk filled
# stay readable, the rest is a torn tail.
if "$lumio" stream gen --seed 3 --samples 100000 --flush samples=1000 -o "$tmp/full/g.lumio" 2>"$tmp/err"; then bad "gen on a full disk"; else ok; fi
grep -q "^lumio stream: $tmp/full/g.lumio: writing a chunk at byte [0-9]*: No space left on device$" "$tmp/err" && ok || bad "gen: $(grep -v sealed "$tmp/err")"
n=$("$lumio" stream export --to collapsed "$tmp/full/g.lumio" 2>/dev/null | wc -l)
sealed=$(grep -c '^sealed' "$tmp/err")
[ "$n" -eq $((sealed * 1000)) ] && [ "$n" -gt 0 ] && ok || bad "gen on a full disk: $n samples read back, $sealed chunks sealed"

echo "stream enospc: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
