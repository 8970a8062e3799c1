#!/usr/bin/env bash
# lumio stream over WebSocket on loopback, against Debian's python3-websockets
# as the real peer (tests/ws_peer.py): ws:// and wss:// writer sinks, a server
# that drops the connection and comes back or never does, recv ws-listen with
# several and hostile writers, and the reader's tcp-listen: and ws-listen:
# sources. Every wait is bounded (timeout, the peer's --lifetime).
set -uo pipefail
lumio=$1
here=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
peer="$here/ws_peer.py"
$PY -c 'import websockets' 2>/dev/null || { echo "python3-websockets is not installed"; exit 77; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# The peer prints "ready" once it listens.
wait_ready() { for _ in $(seq 1 100); do grep -q ready "$1" 2>/dev/null && return 0; sleep 0.05; done; return 1; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
want() { "$lumio" stream gen --seed "$1" --samples "$2" --threads 3 --to collapsed; }
server() { # PORT OUT [options]: a python websockets server appending messages to OUT
    local port=$1 out=$2
    shift 2
    timeout 60 $PY "$peer" server --port "$port" --out "$out" "$@" >"$out.log" 2>&1 &
    pids+=($!)
    wait_ready "$out.log" || bad "the websockets server did not start"
}

# 1. gen into a websockets server: the messages make a stream equal to the
#    generator's own.
port=$(free_port)
server "$port" "$tmp/s1.lumio" --lifetime 20
timeout 30 "$lumio" stream gen --seed 21 --samples 30000 --threads 3 --flush samples:2500 \
    -o ws://127.0.0.1:"$port"/profile 2>"$tmp/g1.err" && ok || bad "gen to ws: $(tail -1 "$tmp/g1.err")"
grep -q "ws: connections=1 dropped_chunks=0" "$tmp/g1.err" && ok || bad "gen's ws summary: $(tail -1 "$tmp/g1.err")"
"$lumio" stream verify "$tmp/s1.lumio" >/dev/null && ok || bad "the server's stream does not verify"
"$lumio" stream export --to collapsed "$tmp/s1.lumio" | cmp -s - <(want 21 30000) && ok || bad "ws stream differs"

# 2. The server drops the connection mid-stream and comes back: the writer
#    reconnects; what was delivered verifies, in order.
port=$(free_port)
server "$port" "$tmp/s2.lumio" --drop-after 6 --pause 0.5 --lifetime 20
timeout 30 "$lumio" stream gen --seed 22 --samples 120000 --threads 3 --flush samples:2000 --rate 60000 \
    -o ws://127.0.0.1:"$port"/x 2>"$tmp/g2.err"
grep -q "^down" "$tmp/s2.lumio.log" && ok || bad "the server did not drop the connection"
if grep -q "ws: connections=" "$tmp/g2.err"; then
    grep -Eq "ws: connections=([2-9]|[1-9][0-9])" "$tmp/g2.err" && ok || bad "no reconnection: $(tail -1 "$tmp/g2.err")"
else # chunks lost with the dropped connection: one line says how many
    grep -Eq ': [1-9][0-9]* of [0-9]+ chunks not delivered' "$tmp/g2.err" && ok || bad "gen after a drop: $(tail -1 "$tmp/g2.err")"
fi
"$lumio" stream verify "$tmp/s2.lumio" >/dev/null && ok || bad "the stream across a reconnection does not verify"
"$lumio" stream export --to collapsed "$tmp/s2.lumio" >"$tmp/got2"
$PY - "$tmp/got2" <(want 22 120000) <<'PY' && ok || bad "delivered samples are not an ordered subset ending with the last"
import sys
got = open(sys.argv[1]).read().splitlines()
want = open(sys.argv[2]).read().splitlines()
j = 0
for line in got:
    while j < len(want) and want[j] != line:
        j += 1
    assert j < len(want), "a sample that was not written"
    j += 1
assert got and got[-1] == want[-1], "the stream did not go on after the reconnection"
assert len(got) >= len(want) // 2, f"too much lost: {len(got)} of {len(want)}"
PY

# 3. The server goes for good mid-stream: the writer never blocks, finish
#    waits its close timeout and says what was not delivered, exit 1.
port=$(free_port)
server "$port" "$tmp/s3.lumio" --drop-after 3 --pause 100 --lifetime 30
start=$(date +%s)
timeout 60 "$lumio" stream gen --seed 23 --samples 60000 --threads 3 --flush samples:1000 --rate 60000 \
    -o ws://127.0.0.1:"$port"/x 2>"$tmp/g3.err"
rc=$?
[ "$rc" -eq 1 ] && ok || bad "gen with no server at the end exited $rc"
grep -Eq 'ws://127.0.0.1:[0-9]+/x: [1-9][0-9]* of 60 chunks not delivered: .*never sent: not connected at the end' "$tmp/g3.err" \
    && ok || bad "undelivered chunks not reported: $(grep -v sealed "$tmp/g3.err")"
[ $(($(date +%s) - start)) -lt 40 ] && ok || bad "gen took too long with no server"

# 4. Nobody there, an unknown host, a refused upgrade: the open fails and
#    says why; secrets in the URL are not repeated.
port=$(free_port)
"$lumio" stream gen --seed 1 --samples 10 -o ws://127.0.0.1:"$port"/x 2>"$tmp/e1" && bad "no server: gen succeeded" || ok
grep -q "connection refused" "$tmp/e1" && ok || bad "refused: $(cat "$tmp/e1")"
"$lumio" stream gen --seed 1 --samples 10 -o ws://nosuchhost.invalid:"$port"/x 2>"$tmp/e2" && bad "unknown host: gen succeeded" || ok
grep -q "unknown host 'nosuchhost.invalid'" "$tmp/e2" && ok || bad "unknown host: $(cat "$tmp/e2")"
server "$port" "$tmp/s4.lumio" --refuse 403 --lifetime 10
"$lumio" stream gen --seed 1 --samples 10 -o "ws://user:hunter2@127.0.0.1:$port/x?token=sekrit" 2>"$tmp/e3" \
    && bad "refused upgrade: gen succeeded" || ok
grep -q "refused the WebSocket upgrade: HTTP 403" "$tmp/e3" && ok || bad "refused upgrade: $(cat "$tmp/e3")"
grep -Eq "hunter2|sekrit" "$tmp/e3" && bad "a secret in the message: $(cat "$tmp/e3")" || ok
# A redirect to another server is not followed: the stream (and the URL's
# query) must not go to a host the user never named.
port2=$(free_port) port3=$(free_port)
server "$port3" "$tmp/s4-elsewhere.lumio" --lifetime 10
server "$port2" "$tmp/s4-redirect.lumio" --redirect "ws://127.0.0.1:$port3/stolen" --lifetime 10
timeout 30 "$lumio" stream gen --seed 1 --samples 10 -o "ws://127.0.0.1:$port2/x?token=sekrit" 2>"$tmp/e4" \
    && bad "a redirect was followed: gen succeeded" || ok
grep -q "refused the WebSocket upgrade: HTTP 302" "$tmp/e4" && ok || bad "redirect: $(cat "$tmp/e4")"
[ -s "$tmp/s4-elsewhere.lumio" ] && bad "the stream went to the server redirected to" || ok

# 5. wss:// with a self-signed certificate: verified with --ca-file,
#    refused without it.
if openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -days 2 \
    -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" >/dev/null 2>&1; then
    port=$(free_port)
    server "$port" "$tmp/s5.lumio" --cert "$tmp/cert.pem" --key "$tmp/key.pem" --lifetime 20
    "$lumio" stream gen --seed 25 --samples 5000 --threads 3 -o wss://127.0.0.1:"$port"/x 2>"$tmp/e5" \
        && bad "wss without the CA: gen succeeded" || ok
    grep -q "TLS handshake failed" "$tmp/e5" && ok || bad "wss without the CA: $(cat "$tmp/e5")"
    timeout 30 "$lumio" stream gen --seed 25 --samples 5000 --threads 3 --ca-file "$tmp/cert.pem" \
        -o wss://127.0.0.1:"$port"/x 2>/dev/null && ok || bad "wss with --ca-file"
    "$lumio" stream export --to collapsed "$tmp/s5.lumio" | cmp -s - <(want 25 5000) && ok || bad "wss stream differs"
    # import takes the same TLS options (here: not verifying, said so).
    port=$(free_port)
    server "$port" "$tmp/s5i.lumio" --cert "$tmp/cert.pem" --key "$tmp/key.pem" --lifetime 20
    want 26 3000 >"$tmp/i5.txt"
    timeout 30 "$lumio" stream import --from collapsed --insecure-tls "$tmp/i5.txt" \
        -o wss://127.0.0.1:"$port"/x 2>/dev/null && ok || bad "import to wss with --insecure-tls"
    for _ in $(seq 1 100); do [ "$("$lumio" stream export --to collapsed "$tmp/s5i.lumio" 2>/dev/null | wc -l)" -eq 3000 ] && break; sleep 0.05; done
    "$lumio" stream export --to collapsed "$tmp/s5i.lumio" | sort | cmp -s - <(sort "$tmp/i5.txt") && ok || bad "import over wss differs"
else
    bad "openssl could not make a certificate"
fi

# 6. recv ws-listen: two writers at once, hostile ones between them, a
#    connection that never upgrades, an HTTP request: the good chunks are all
#    there, each bad peer is named.
port=$(free_port)
"$lumio" stream gen --seed 26 --samples 20000 --threads 3 --flush samples:2000 -o "$tmp/a.lumio" 2>/dev/null
"$lumio" stream gen --seed 27 --samples 10000 --threads 3 --flush samples:2000 -o "$tmp/b.lumio" 2>/dev/null
LUMIO_RECV_HELLO_MS=1000 timeout 60 "$lumio" stream recv ws-listen:"$port" -o "$tmp/r6.lumio" 2>"$tmp/r6.err" &
rpid=$!
pids+=($rpid)
wait_port "$port" || bad "recv did not listen"
timeout 30 $PY "$peer" client --url ws://127.0.0.1:"$port"/ --file "$tmp/a.lumio" --pause 0.05 &
c1=$!
timeout 30 $PY "$peer" client --url ws://127.0.0.1:"$port"/ --file "$tmp/b.lumio" --pause 0.05 --hostile fragmented &
c2=$!
for h in text garbage badchunk; do
    timeout 30 $PY "$peer" client --url ws://127.0.0.1:"$port"/ --file "$tmp/b.lumio" --hostile $h 2>/dev/null
done
wait "$c1" && wait "$c2" && ok || bad "a websockets client failed"
(exec 3<>/dev/tcp/127.0.0.1/"$port" && sleep 1.6) 2>/dev/null
timeout 5 curl -s http://127.0.0.1:"$port"/ >/dev/null 2>&1
timeout 30 "$lumio" stream gen --seed 28 --samples 3000 --threads 3 -o ws://127.0.0.1:"$port"/w 2>/dev/null && ok || bad "gen to recv ws-listen"
sleep 0.3
kill -TERM "$rpid"
wait "$rpid" && ok || bad "recv ws-listen stop"
for why in "a text message" "not a lumio stream (the first message is not the signature)" \
    "a message that is not one whole chunk" "no WebSocket handshake within 1000 ms" \
    "an HTTP request that is not a WebSocket upgrade"; do
    grep -Eq "peer 127\.0\.0\.1:[0-9]+: .*$(printf %s "$why" | sed 's/[()]/\\&/g')" "$tmp/r6.err" && ok || bad "recv did not say: $why"
done
"$lumio" stream verify "$tmp/r6.lumio" >"$tmp/v6" && ok || bad "recv's file does not verify"
grep -q "ok, 16 chunks, 33000 samples" "$tmp/v6" && ok || bad "recv's file: $(cat "$tmp/v6")"
"$lumio" stream export --to collapsed "$tmp/r6.lumio" | sort >"$tmp/got6"
(want 26 20000; want 27 10000; want 28 3000) | sort | cmp -s - "$tmp/got6" && ok || bad "recv's samples differ"

# 7. The reader's listening sources: a writer connects to
#    `stream export ws-listen:` / `tcp-listen:`; with --follow, the next
#    writer's stream goes on (no damage).
for kind in ws tcp; do
    port=$(free_port)
    if [ $kind = ws ]; then src=ws-listen:$port sink=ws://127.0.0.1:$port/; else src=tcp-listen:$port sink=tcp:127.0.0.1:$port; fi
    timeout 30 "$lumio" stream export --to collapsed "$src" >"$tmp/x7" 2>"$tmp/x7.err" &
    epid=$!
    wait_port "$port" || bad "export $src did not listen"
    timeout 30 "$lumio" stream gen --seed 29 --samples 20000 --threads 3 --flush samples:3000 -o "$sink" 2>/dev/null \
        && ok || bad "gen to export $src"
    wait "$epid" && ok || bad "export $src: $(cat "$tmp/x7.err")"
    cmp -s "$tmp/x7" <(want 29 20000) && ok || bad "export $src differs"
    timeout 30 "$lumio" stream export --to collapsed --follow --idle 2 "$src" >"$tmp/f7" 2>"$tmp/f7.err" &
    epid=$!
    if [ $kind = ws ]; then sleep 0.5; else wait_port "$port"; fi
    timeout 30 "$lumio" stream gen --seed 30 --samples 4000 --threads 3 -o "$sink" 2>/dev/null
    timeout 30 "$lumio" stream gen --seed 31 --samples 4000 --threads 3 -o "$sink" 2>/dev/null
    wait "$epid" && ok || bad "export --follow $src: $(cat "$tmp/f7.err")"
    cmp -s "$tmp/f7" <(want 30 4000; want 31 4000) && ok || bad "export --follow $src: two writers' samples differ"
done

echo "stream ws: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
