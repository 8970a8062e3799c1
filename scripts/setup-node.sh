#!/usr/bin/env bash
# Install what comes from the npm registry, at the versions in each
# package-lock.json: tests/node (the test tools: s3rver, zarrita, speedscope,
# pprof-format, playwright-core) and web (d3 and d3-flame-graph, which the
# build embeds into lumio stream serve's page). Idempotent: does nothing
# where node_modules matches the lock file.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
for dir in tests/node web; do
    cd "$root/$dir"
    stamp=node_modules/.lumio-lock
    if [[ -f $stamp ]] && cmp -s package-lock.json "$stamp"; then continue; fi
    echo "setup: npm ci ($dir)" >&2
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
    cp package-lock.json "$stamp"
done
