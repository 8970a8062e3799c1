#!/usr/bin/env bash
# Remote reader benchmark (see bench/remote.py for the workloads): lumio get and
# lumio bench remote against aria2c, curl and fsspec, through a private nginx
# (tests/http_env.sh; per-connection rate LUMIO_HTTP_RATE, default 50m) and the
# fault proxy (20 ms per request). Needs a built tree (cmake --build build).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x build/lumio ]]; then
    echo "bench: build/lumio is missing (cmake --build build)" >&2
    exit 1
fi
export LUMIO_HTTP_RATE=${LUMIO_HTTP_RATE:-50m}
exec tests/http_env.sh /usr/bin/python3 bench/remote.py "$@"
