#!/usr/bin/env bash
# lumio stream serve's page in Debian's headless chromium, driven by
# playwright-core (tests/node/serve_page.mjs): loads with no console errors,
# shows the top frames, grows as chunks are appended to the followed file,
# keeps a zoom, search, thread filter, time brush. The screenshot goes to
# BUILD/stream_serve_page.png.
# usage: stream_serve_page.sh LUMIO SERVE_WRITER BUILD_DIR
set -euo pipefail
lumio=$(realpath "$1") writer=$(realpath "$2") build=$(realpath "$3")
here=$(cd "$(dirname "$0")" && pwd)
if [[ ! -x /usr/bin/chromium || ! -d $here/node/node_modules/playwright-core ]]; then
    echo "SKIP: needs /usr/bin/chromium and tests/node/node_modules (scripts/setup.sh, setup-node.sh)"
    exit 77
fi
tmp=$(mktemp -d)
pid=
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

"$lumio" stream gen --seed 5 --samples 20000 --threads 3 --depth 12 --flush samples:5000 \
    -o "$tmp/p.lumio" 2>/dev/null
top=$("$lumio" stream export --to collapsed "$tmp/p.lumio" | cut -d';' -f1 | sort | uniq -c |
    sort -rn | awk 'NR == 1 {print $2}')
last=$("$lumio" stream export --to jsonl "$tmp/p.lumio" | sed -n 's/.*"ts_us":\([0-9]*\).*/\1/p' |
    sort -n | tail -1)

"$lumio" stream serve "$tmp/p.lumio" 2>"$tmp/err" &
pid=$!
url=
for _ in $(seq 100); do
    url=$(sed -n 's/^serving //p' "$tmp/err")
    [[ -n $url ]] && break
    sleep 0.1
done
[[ -n $url ]] || { cat "$tmp/err"; echo "FAIL: no 'serving URL' line"; exit 1; }
echo "server: $url"

# Appended while the page watches: 3000 samples of thread 77 "worker-77",
# just after the generated ones, in chunks of 1000.
shot=$build/stream_serve_page.png
(cd "$here/node" && timeout 180 node serve_page.mjs "$url" "$shot" "$top" appended_frame_xyz \
    "$writer" "$tmp/p.lumio" $((last + 1000)) 100 3000 1000 77 worker-77 main appended_frame_xyz leaf)

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
grep -q '^served chunks=7 samples=23000 ' "$tmp/err" || { cat "$tmp/err"; echo "FAIL: the summary line"; exit 1; }
[[ $status -eq 0 ]] || { cat "$tmp/err"; echo "FAIL: serve exited $status"; exit 1; }
echo "page: ok (screenshot: $shot)"
