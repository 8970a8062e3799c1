#!/usr/bin/env bash
# Runs a command next to a private nginx serving a fresh directory over HTTP on loopback.
#
#   tests/http_env.sh COMMAND [ARGS...]
#
# The command sees:
#   LUMIO_HTTP_ROOT   the served directory (empty; the command puts its files there)
#   LUMIO_HTTP_URL    http://127.0.0.1:PORT (/NAME serves ROOT/NAME, /slow/NAME the same file
#                     at LUMIO_HTTP_RATE bytes/s, default 50m; a PUT to /dav/NAME writes
#                     ROOT/NAME, making its directories)
#   LUMIO_HTTP_STATE  nginx's own files (nginx.conf, error.log, nginx.pid, temp paths)
#   LUMIO_HTTPS_URL   https://127.0.0.1:PORT2, the same files over TLS and HTTP/2 (when openssl
#                     is installed), with LUMIO_HTTPS_CA the self-signed certificate to trust
# nginx is stopped and the directory removed however the command ends; the script exits with
# the command's status. Without nginx it prints SKIP and exits 77 (ctest: skipped).
# shellcheck disable=SC2317 # cleanup and on_signal run from traps
set -uo pipefail

nginx=${LUMIO_NGINX:-/usr/sbin/nginx}
if [[ ! -x $nginx ]]; then
    echo "SKIP: nginx is not installed (scripts/setup.sh installs nginx-light)"
    exit 77
fi
if [[ $# -eq 0 ]]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

dir=$(mktemp -d /var/tmp/lumio-http.XXXXXX) || exit 1
chmod 755 "$dir" # nginx's workers run as nobody when we are root
root=$dir/root
state=$dir/state
mkdir -p "$root" "$state" && chmod 777 "$root" || exit 1 # /dav/ writes as nobody

nginx_pid=""
watch_pid=""
worker_pids=()

stop_nginx() {
    [[ -n $nginx_pid ]] || return 0
    local pid=$nginx_pid
    nginx_pid=""
    mapfile -t worker_pids < <(pgrep -P "$pid" 2>/dev/null)
    kill -TERM "$pid" 2>/dev/null
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "http_env: nginx did not stop on SIGTERM, killing it" >&2
        kill -KILL "$pid" "${worker_pids[@]}" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    # Workers exit with their master; make sure none outlives it.
    for ((i = 0; i < 40; i++)); do
        local alive=0 w
        for w in "${worker_pids[@]}"; do kill -0 "$w" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.05
    done
    ((${#worker_pids[@]})) && kill -KILL "${worker_pids[@]}" 2>/dev/null
    return 0
}

cleanup() {
    if [[ -n $watch_pid ]]; then
        kill "$watch_pid" 2>/dev/null
        wait "$watch_pid" 2>/dev/null
    fi
    stop_nginx
    rm -rf "$dir"
}
# The command runs in the background so that a signal is acted on at once: it is passed on to
# the command, which gets 5 s to end, and then nginx is stopped.
cmd_pid=""
on_signal() { # SIGNAL STATUS
    if [[ -n $cmd_pid ]]; then
        kill -"$1" "$cmd_pid" 2>/dev/null
        local i
        for ((i = 0; i < 100; i++)); do
            kill -0 "$cmd_pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$cmd_pid" 2>/dev/null
        wait "$cmd_pid" 2>/dev/null
    fi
    exit "$2"
}
trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A self-signed certificate for the HTTPS (HTTP/2) server, when openssl is here.
tls=""
if command -v openssl >/dev/null 2>&1 &&
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
        -addext "subjectAltName=IP:127.0.0.1" -keyout "$state/key.pem" -out "$state/cert.pem" \
        >/dev/null 2>&1; then
    tls=1
fi

write_conf() { # PORT TLS_PORT
    local user="" tls_server=""
    [[ -n $tls ]] && tls_server="server {
        listen 127.0.0.1:$2 ssl http2;
        ssl_certificate $state/cert.pem;
        ssl_certificate_key $state/key.pem;
        root $root;
        location / {}
    }"
    [[ $(id -u) -eq 0 ]] && user="user nobody nogroup;"
    cat >"$state/nginx.conf" <<EOF
$user
daemon off;
master_process on;
worker_processes 2;
error_log $state/error.log warn;
pid $state/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 100000;
    default_type application/octet-stream;
    etag on;
    client_body_temp_path $state/client_body;
    proxy_temp_path $state/proxy;
    fastcgi_temp_path $state/fastcgi;
    uwsgi_temp_path $state/uwsgi;
    scgi_temp_path $state/scgi;
    server {
        listen 127.0.0.1:$1;
        root $root;
        location / {}
        location /slow/ { alias $root/; limit_rate ${LUMIO_HTTP_RATE:-50m}; }
        location /dav/ {
            alias $root/;
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
            client_max_body_size 0;
        }
    }
    $tls_server
}
EOF
}

# nginx answers (any status: / is a directory without an index, so 403 or 404).
answers() { # PORT
    local code
    code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$1/" 2>/dev/null)
    [[ -n $code && $code != 000 ]]
}

# A port found free may be taken before nginx binds it: try a few.
port=""
for attempt in 1 2 3 4 5; do
    p=$(free_port) || { echo "http_env: cannot pick a port (python3?)" >&2; exit 1; }
    tp=$(free_port) || exit 1
    write_conf "$p" "$tp"
    : >"$state/error.log"
    "$nginx" -p "$state/" -c "$state/nginx.conf" -e "$state/error.log" \
        </dev/null >"$state/nginx.out" 2>&1 &
    nginx_pid=$!
    for ((i = 0; i < 100; i++)); do # 5 s
        if answers "$p"; then
            port=$p
            break
        fi
        kill -0 "$nginx_pid" 2>/dev/null || break
        sleep 0.05
    done
    [[ -n $port ]] && break
    if grep -q 'Address already in use' "$state/error.log" "$state/nginx.out" 2>/dev/null; then
        stop_nginx
        continue
    fi
    echo "http_env: nginx did not answer on 127.0.0.1:$p within 5 s (attempt $attempt)" >&2
    echo "--- $state/error.log:" >&2
    cat "$state/error.log" "$state/nginx.out" >&2 2>/dev/null
    exit 1
done
if [[ -z $port ]]; then
    echo "http_env: no free port for nginx after 5 attempts" >&2
    cat "$state/error.log" >&2 2>/dev/null
    exit 1
fi

# If this script is killed outright (SIGKILL, a harness's timeout), nginx goes too.
(
    exec </dev/null >/dev/null 2>&1
    while kill -0 $$ 2>/dev/null; do sleep 1; done
    kill -TERM "$nginx_pid"
    sleep 2
    kill -KILL "$nginx_pid"
    rm -rf "$dir"
) &
watch_pid=$!

export LUMIO_HTTP_ROOT=$root
export LUMIO_HTTP_URL=http://127.0.0.1:$port
if [[ -n $tls ]]; then # HTTPS and HTTP/2, same files, the certificate to trust
    export LUMIO_HTTPS_URL=https://127.0.0.1:$tp LUMIO_HTTPS_CA=$state/cert.pem
fi
export LUMIO_HTTP_STATE=$state

"$@" <&0 &
cmd_pid=$!
wait "$cmd_pid"
status=$?
cmd_pid=""
exit "$status"
