#!/usr/bin/env bash
# Install the test tools that come from the npm registry (tests/node/package.json:
# s3rver, a local S3-compatible server) at the versions in package-lock.json.
# Idempotent: does nothing when node_modules matches the lock file.
set -euo pipefail
cd "$(dirname "$0")/../tests/node"
stamp=node_modules/.lumio-lock
if [[ -f $stamp ]] && cmp -s package-lock.json "$stamp"; then exit 0; fi
echo "setup: npm ci (tests/node)" >&2
npm ci --no-audit --no-fund --loglevel=error >/dev/null
cp package-lock.json "$stamp"
