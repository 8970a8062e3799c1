#!/usr/bin/env bash
# Kill the writer with SIGKILL at random moments: every sample of every chunk
# announced as sealed must come back, in order, and nothing else may. The
# samples of `lumio stream gen` are a function of the seed, so the expected
# sequence is the same generator's folded output.
set -euo pipefail
lumio=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
seed=7 threads=3 total=400000 rounds=${KILL_ROUNDS:-20}
"$lumio" stream gen --seed $seed --samples $total --threads $threads --to collapsed >"$tmp/want"
passed=0 failed=0 killed=0
for i in $(seq 1 "$rounds"); do
    out=$tmp/k$i.lumio
    "$lumio" stream gen --seed $seed --samples $total --threads $threads \
        --flush samples=$((500 + RANDOM % 5000)) -o "$out" 2>"$tmp/err" &
    pid=$!
    sleep "0.$(printf %03d $((RANDOM % 150 + 2)))"
    kill -9 $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    sealed=$( (grep -o 'samples=[0-9]*' "$tmp/err" || true) | tail -1 | cut -d= -f2)
    sealed=${sealed:-0}
    "$lumio" stream export --to collapsed "$out" >"$tmp/got" 2>/dev/null || true
    got=$(wc -l <"$tmp/got")
    if [ "$got" -lt "$sealed" ]; then
        echo "round $i: $sealed samples announced sealed, only $got recovered"; failed=$((failed + 1)); continue
    fi
    if ! cmp -s "$tmp/got" <(head -n "$got" "$tmp/want"); then
        echo "round $i: recovered samples differ from what was written"; failed=$((failed + 1)); continue
    fi
    passed=$((passed + 1))
    [ "$got" -lt "$total" ] && killed=$((killed + 1))
done
echo "stream kill: $killed of $rounds writers were killed mid-stream"
echo "stream kill: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
