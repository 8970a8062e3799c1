#!/usr/bin/env bash
# Ring engine benchmark (see bench/run.py for the workloads). Needs a built
# tree (make build) and fio + xxhsum (scripts/setup.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/run.py "$@"
