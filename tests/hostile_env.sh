#!/usr/bin/env bash
# Runs a command next to tests/hostile_http.py (a server that misbehaves on purpose) on a
# loopback port it picks.
#
#   tests/hostile_env.sh COMMAND [ARGS...]
#
# The command sees:
#   LUMIO_HOSTILE_URL    http://127.0.0.1:PORT (the modes are in tests/hostile_http.py)
#   LUMIO_HOSTILE_ROOT   the served directory (empty; the command puts its files there)
#   LUMIO_HOSTILE_LOG    one JSON line per request received (method, path, headers)
# The server lives at most LUMIO_HOSTILE_LIFETIME seconds (default 240) and is stopped and the
# directory removed however the command ends; the script exits with the command's status.
set -uo pipefail
py=/usr/bin/python3
here=$(cd "$(dirname "$0")" && pwd)
if [[ ! -x $py ]]; then
    echo "hostile_env: $py is not installed" >&2
    exit 77
fi
dir=$(mktemp -d /var/tmp/lumio-hostile.XXXXXX) || exit 1
mkdir "$dir/root" || exit 1
srv_pid=""
cleanup() {
    if [[ -n $srv_pid ]]; then
        kill -TERM "$srv_pid" 2>/dev/null
        wait "$srv_pid" 2>/dev/null
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

: >"$dir/log"
"$py" "$here/hostile_http.py" --root "$dir/root" --port-file "$dir/port" --log "$dir/log" \
    --lifetime "${LUMIO_HOSTILE_LIFETIME:-240}" </dev/null >"$dir/out" 2>&1 &
srv_pid=$!
for ((i = 0; i < 100; i++)); do
    [[ -s $dir/port ]] && break
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.05
done
if [[ ! -s $dir/port ]]; then
    echo "hostile_env: the server did not start" >&2
    cat "$dir/out" >&2
    exit 1
fi
export LUMIO_HOSTILE_URL=http://127.0.0.1:$(cat "$dir/port")
export LUMIO_HOSTILE_ROOT=$dir/root LUMIO_HOSTILE_LOG=$dir/log
"$@"
