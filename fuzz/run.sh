#!/usr/bin/env bash
# Run a libFuzzer target for a bounded time on the corpus in the repo. New
# inputs go to a temporary directory, so the repo's corpus stays as it is.
# usage: fuzz/run.sh BINARY CORPUS_DIR SECONDS
set -euo pipefail
bin=$1 corpus=$2 seconds=${3:-60}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 "$tmp" "$corpus" 2>"$tmp.log" || { tail -40 "$tmp.log"; rm -f "$tmp.log"; exit 1; }
grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$tmp.log" | sed 's/^/fuzz: /'
rm -f "$tmp.log"
echo "fuzz: 1 passed, 0 failed"
