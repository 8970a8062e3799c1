#!/usr/bin/env bash
# Kill the writer with SIGKILL at random moments: every sample of every chunk
# announced as sealed must come back, in order, and nothing else may. The
# samples of `lumio stream gen` are a function of the seed, so the expected
# sequence is the same generator's folded output.
#
# A kill before the first seal proves nothing, so each round waits for a
# random number of seals (0 to 24) and then a random part of one chunk's time
# before it kills; the writer is paced (--rate) so that it is still running
# then on any build. The test fails unless at least half the rounds killed a
# running writer after it had announced a seal.
set -euo pipefail
lumio=$1
tmp=$(mktemp -d)
pid=""
trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
seed=7 threads=3 total=400000 rate=400000 rounds=${KILL_ROUNDS:-20}
"$lumio" stream gen --seed $seed --samples $total --threads $threads --to collapsed >"$tmp/want"

seals() { grep -c '^sealed' "$tmp/err" || true; }

passed=0 failed=0 after_seal=0
for i in $(seq 1 "$rounds"); do
    out=$tmp/k$i.lumio
    flush=$((500 + RANDOM % 5000)) wait_seals=$((RANDOM % 25))
    chunk_ms=$((flush * 1000 / rate))
    "$lumio" stream gen --seed $seed --samples $total --threads $threads --rate $rate \
        --flush samples=$flush -o "$out" 2>"$tmp/err" &
    pid=$!
    for ((t = 0; t < 1000; t++)); do # at most 10 s
        [ "$(seals)" -ge "$wait_seals" ] && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.01
    done
    sleep "$(printf '0.%03d' $((RANDOM % (chunk_ms + 1))))"
    kill -9 $pid 2>/dev/null || true
    status=0
    wait $pid 2>/dev/null || status=$?
    pid=""
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
    # 137: the writer died of the SIGKILL (it had not finished); it had sealed
    # chunks, and they all came back (got >= sealed above).
    [ "$status" -eq 137 ] && [ "$sealed" -gt 0 ] && after_seal=$((after_seal + 1))
done
echo "stream kill: $after_seal of $rounds writers were killed after a seal"
if [ $((after_seal * 2)) -lt "$rounds" ] || [ "$after_seal" -eq 0 ]; then
    echo "stream kill: too few kills after a seal to test recovery"
    failed=$((failed + 1))
fi
echo "stream kill: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
