#!/usr/bin/env bash
# lumio stream on hostile and unusual input (issue 11): the receiver on
# loopback surviving bad peers, strict ports, TCP errors that say what
# happened and count what was lost, exit statuses that tell damage, --follow
# across a truncation, outputs that are whole or absent, messages that name
# the path and never echo raw input, and a killed bench that leaves nothing.
set -uo pipefail
lumio=$1
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
one_line() { [ "$(grep -vc -e '^sealed' -e '^received' -e '^listening' "$1")" -eq 1 ]; }
# Send bytes (a Python expression) to 127.0.0.1:PORT and hang up.
send_bytes() {
    python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(eval(sys.argv[2]))
s.close()
PY
}
samples() { "$lumio" stream export --to collapsed "$1" 2>/dev/null | wc -l; }

# ---- 1. recv: loopback by default, bad peers dropped by name, others served.
port=$(free_port)
"$lumio" stream recv tcp-listen:"$port" -o "$tmp/r.lumio" 2>"$tmp/r.err" &
rpid=$!
pids+=($rpid)
wait_port "$port" || bad "receiver did not listen"
python3 - "$port" <<'PY' && ok || bad "recv listens on every interface"
import sys
port = int(sys.argv[1])
rows = [l.split() for f in ("/proc/net/tcp", "/proc/net/tcp6") for l in open(f).read().splitlines()[1:]]
mine = [r[1] for r in rows if r[3] == "0A" and int(r[1].split(":")[1], 16) == port]
assert mine and all(a.split(":")[0] in ("0100007F", "00000000000000000000000001000000") for a in mine), mine
PY
# An idle peer holds a connection open the whole time: others still get in.
python3 -c 'import socket,sys,time; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); time.sleep(30)' "$port" &
pids+=($!)
send_bytes "$port" 'b"GET / HTTP/1.0\r\n\r\n" + bytes(range(256))'
send_bytes "$port" 'b"\x89LUMIO\r\n\x01" + b"\0" * 7 + b"LCHK" + b"\x01" * 200'
"$lumio" stream gen --seed 7 --samples 6000 --threads 2 --flush samples=1000 -o tcp:127.0.0.1:"$port" 2>"$tmp/g1.err" \
    && ok || bad "gen to a receiver after bad peers: $(cat "$tmp/g1.err")"
"$lumio" stream gen --seed 8 --samples 3000 --threads 2 --flush samples=1000 -o tcp:127.0.0.1:"$port" 2>"$tmp/g2.err" \
    && ok || bad "a second sender: $(cat "$tmp/g2.err")"
kill -0 "$rpid" 2>/dev/null && ok || bad "the receiver exited on a bad peer"
kill -TERM "$rpid"
wait "$rpid" && ok || bad "receiver stop: $(cat "$tmp/r.err")"
grep -Eq '^lumio stream: peer 127\.0\.0\.1:[0-9]+: byte 0: not a lumio stream \(no signature\); connection dropped$' "$tmp/r.err" \
    && ok || bad "garbage peer not named: $(cat "$tmp/r.err")"
grep -Eq '^lumio stream: peer 127\.0\.0\.1:[0-9]+: byte 16: not a valid chunk \(header out of limits, or a payload that does not decode\); connection dropped$' "$tmp/r.err" \
    && ok || bad "bad chunk peer not named: $(cat "$tmp/r.err")"
"$lumio" stream verify "$tmp/r.lumio" >/dev/null 2>&1 && ok || bad "the received file is not a valid stream"
# Both senders count their chunks from 0: the file keeps both, in order.
{ "$lumio" stream gen --seed 7 --samples 6000 --threads 2 --to collapsed
  "$lumio" stream gen --seed 8 --samples 3000 --threads 2 --to collapsed; } >"$tmp/want_r"
"$lumio" stream export --to collapsed "$tmp/r.lumio" | cmp -s - "$tmp/want_r" && ok || bad "received samples differ"

# A sender whose chunk claims 100 MiB: the senders' unfinished chunks stay
# within recv's --memory, the sender is named and dropped, others go on.
"$lumio" stream gen --seed 3 --samples 10 -o "$tmp/sig.lumio" 2>/dev/null
sig=$(head -c 16 "$tmp/sig.lumio" | od -An -tx1 | tr -d ' \n')
port=$(free_port)
"$lumio" stream recv tcp-listen:"$port" -o "$tmp/m.lumio" --memory 4M 2>"$tmp/m.err" &
rpid=$!
pids+=($rpid)
wait_port "$port" || bad "receiver with --memory did not listen"
python3 - "$port" "$sig" <<'PY' || true
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
n = 100 << 20
hdr = b"LCHK" + bytes([1, 0, 0, 0]) + struct.pack("<II", n, n) + b"\0" * 32
try:
    s.sendall(bytes.fromhex(sys.argv[2]) + hdr)
    for _ in range(64):
        s.sendall(b"\0" * (256 << 10))
except OSError:
    pass
s.close()
PY
"$lumio" stream gen --seed 9 --samples 2000 --threads 2 --flush samples=500 -o tcp:127.0.0.1:"$port" 2>"$tmp/g3.err" \
    && ok || bad "a sender after one over the memory cap: $(cat "$tmp/g3.err")"
kill -TERM "$rpid"
wait "$rpid" && ok || bad "receiver with --memory stop: $(cat "$tmp/m.err")"
grep -Eq '^lumio stream: peer 127\.0\.0\.1:[0-9]+: byte 16: .*past --memory 4M; connection dropped$' "$tmp/m.err" \
    && ok || bad "sender over the memory cap not named: $(cat "$tmp/m.err")"
[ "$(samples "$tmp/m.lumio")" -gt 0 ] && ok || bad "nothing received after a sender over the cap"

# ---- 2. Ports and hosts: strict, and errors that say what happened.
for spec in tcp-listen:99999 tcp-listen:0 tcp-listen:abc tcp:127.0.0.1:0 tcp:127.0.0.1:99999 tcp:127.0.0.1:abc tcp:127.0.0.1; do
    if timeout 20 "$lumio" stream gen --samples 10 -o "$spec" 2>"$tmp/p.err"; then bad "gen -o $spec accepted"; else ok; fi
    one_line "$tmp/p.err" && grep -q "invalid port" "$tmp/p.err" && ok || bad "gen -o $spec: $(cat "$tmp/p.err")"
done
for spec in tcp-listen:99999 tcp-listen:127.0.0.1:0; do
    if timeout 10 "$lumio" stream recv "$spec" -o "$tmp/x.lumio" 2>"$tmp/p.err"; then bad "recv $spec accepted"; else ok; fi
    grep -q "invalid port" "$tmp/p.err" && ok || bad "recv $spec: $(cat "$tmp/p.err")"
done
if "$lumio" stream export --to collapsed tcp:127.0.0.1:99999 2>"$tmp/p.err"; then bad "export tcp port 99999"; else ok; fi
grep -q "invalid port" "$tmp/p.err" && ok || bad "export invalid port: $(cat "$tmp/p.err")"
closed=$(free_port)
if "$lumio" stream export --to collapsed tcp:127.0.0.1:"$closed" 2>"$tmp/c.err"; then bad "export from a closed port"; else ok; fi
one_line "$tmp/c.err" && grep -q "tcp:127.0.0.1:$closed: connection refused" "$tmp/c.err" && ok || bad "export closed port: $(cat "$tmp/c.err")"
if "$lumio" stream export --to collapsed tcp:nonexistent.invalid:9 2>"$tmp/h.err"; then bad "export from an unknown host"; else ok; fi
grep -q "unknown host 'nonexistent.invalid'" "$tmp/h.err" && ok || bad "export unknown host: $(cat "$tmp/h.err")"
if "$lumio" stream gen --samples 10 -o tcp:127.0.0.1:"$closed" 2>"$tmp/c.err"; then bad "gen to a closed port"; else ok; fi
one_line "$tmp/c.err" && grep -q "connection refused" "$tmp/c.err" && ok || bad "closed port: $(cat "$tmp/c.err")"
if "$lumio" stream gen --samples 10 -o tcp:nonexistent.invalid:9 2>"$tmp/h.err"; then bad "gen to an unknown host"; else ok; fi
one_line "$tmp/h.err" && grep -q "unknown host 'nonexistent.invalid'" "$tmp/h.err" && ok || bad "unknown host: $(cat "$tmp/h.err")"
# A listening writer nobody reads: every chunk counted as not delivered, once.
lport=$(free_port)
if "$lumio" stream gen --samples 3000 --flush samples=1000 -o tcp-listen:"$lport" 2>"$tmp/l.err"; then bad "undelivered stream exits 0"; else ok; fi
one_line "$tmp/l.err" && grep -q ": 3 of 3 chunks not delivered: 3 never sent: no consumer connected" "$tmp/l.err" \
    && ok || bad "undelivered count: $(cat "$tmp/l.err")"
grep -q "dropped_chunks=0" "$tmp/l.err" && bad "dropped_chunks=0 printed for an undelivered stream" || ok

# ---- 3. Exit statuses that tell damage; --follow across a truncation.
"$lumio" stream gen --seed 3 --samples 20000 --threads 4 --flush samples=1000 -o "$tmp/a.lumio" 2>/dev/null
size=$(stat -c %s "$tmp/a.lumio")
cp "$tmp/a.lumio" "$tmp/b.lumio"
printf '\xff\xff\xff\xff' | dd of="$tmp/b.lumio" bs=1 seek=$((size / 2)) conv=notrunc status=none
"$lumio" stream export --to collapsed "$tmp/b.lumio" >"$tmp/b.txt" 2>"$tmp/b.err"
[ $? -eq 1 ] && ok || bad "export of a damaged stream exits 0"
[ "$(wc -l <"$tmp/b.txt")" -eq 19000 ] && ok || bad "export wrote $(wc -l <"$tmp/b.txt") samples, want 19000"
one_line "$tmp/b.err" && grep -Eq "^lumio stream: $tmp/b.lumio: damaged: skipped [0-9]+ bytes in 1 ranges, the first at byte [0-9]+$" "$tmp/b.err" \
    && ok || bad "export damage line: $(cat "$tmp/b.err")"
"$lumio" stream info "$tmp/b.lumio" >/dev/null 2>&1
[ $? -eq 1 ] && ok || bad "info of a damaged stream exits 0"
head -c $((size - 77)) "$tmp/a.lumio" >"$tmp/t.lumio"
"$lumio" stream export --to collapsed "$tmp/t.lumio" >/dev/null 2>"$tmp/t.err" && ok || bad "a torn tail alone fails export"
grep -Eq "^lumio stream: $tmp/t.lumio: skipped a torn tail of [0-9]+ bytes at byte [0-9]+ \(a writer killed mid-chunk; the chunks before it are whole\)$" "$tmp/t.err" && ok || bad "torn tail note: $(cat "$tmp/t.err")"
"$lumio" stream info "$tmp/t.lumio" >/dev/null 2>&1 && ok || bad "a torn tail alone fails info"
if "$lumio" stream export --idle 2 --to collapsed "$tmp/a.lumio" >/dev/null 2>"$tmp/i.err"; then bad "--idle without --follow"; else [ $? -eq 2 ] && ok || bad "--idle exit"; fi
grep -q -- "--idle needs --follow" "$tmp/i.err" && ok || bad "--idle message: $(cat "$tmp/i.err")"

# The file is rewritten (O_TRUNC) by another writer, then replaced by rename.
"$lumio" stream gen --seed 11 --samples 4000 --threads 2 --flush samples=1000 -o "$tmp/f.lumio" 2>/dev/null
"$lumio" stream export --follow --idle 4 --to collapsed "$tmp/f.lumio" >"$tmp/f.txt" 2>"$tmp/f.err" &
epid=$!
pids+=($epid)
for _ in $(seq 1 200); do [ "$(wc -l <"$tmp/f.txt")" -ge 4000 ] && break; sleep 0.05; done
"$lumio" stream gen --seed 12 --samples 3000 --threads 2 --flush samples=1000 -o "$tmp/f.lumio" 2>/dev/null
for _ in $(seq 1 200); do [ "$(wc -l <"$tmp/f.txt")" -ge 7000 ] && break; sleep 0.05; done
"$lumio" stream gen --seed 13 --samples 2000 --threads 2 --flush samples=1000 -o "$tmp/f2.lumio" 2>/dev/null
mv "$tmp/f2.lumio" "$tmp/f.lumio"
wait "$epid" && ok || bad "export --follow across a rewrite exits $?: $(cat "$tmp/f.err")"
{ for s in 11:4000 12:3000 13:2000; do "$lumio" stream gen --seed "${s%%:*}" --samples "${s##*:}" --threads 2 --to collapsed; done; } >"$tmp/f.want"
cmp -s "$tmp/f.txt" "$tmp/f.want" && ok || bad "follow lost samples across a rewrite ($(wc -l <"$tmp/f.txt") of 9000)"
[ "$(grep -c 'truncated or replaced' "$tmp/f.err")" -eq 2 ] && ok || bad "follow restart not said: $(cat "$tmp/f.err")"

# ---- 4. Outputs whole or absent; messages name the path, never echo raw bytes.
: >"$tmp/empty"
if "$lumio" stream recover "$tmp/empty" -o "$tmp/out.lumio" 2>"$tmp/e.err"; then bad "recover of an empty file"; else ok; fi
one_line "$tmp/e.err" && grep -q "$tmp/empty: not a lumio stream (empty file" "$tmp/e.err" && ok || bad "recover empty: $(cat "$tmp/e.err")"
[ ! -e "$tmp/out.lumio" ] && ok || bad "recover left $(stat -c %s "$tmp/out.lumio") bytes of output"
echo keep >"$tmp/old.lumio"
"$lumio" stream recover "$tmp/g1.err" -o "$tmp/old.lumio" 2>/dev/null
[ "$(cat "$tmp/old.lumio")" = keep ] && ok || bad "a failed recover replaced its output"
ls -a "$tmp" | grep -q '^\..*XXXXXX\|^\.out\.lumio\.\|^\.old\.lumio\.' && bad "temporary files left: $(ls -a "$tmp")" || ok
"$lumio" stream recover "$tmp/b.lumio" -o "$tmp/old.lumio" 2>/dev/null && ok || bad "recover into an existing file"
[ "$(samples "$tmp/old.lumio")" -eq 19000 ] && ok || bad "recovered output"
ln -s old.lumio "$tmp/link.lumio"
"$lumio" stream recover "$tmp/a.lumio" -o "$tmp/link.lumio" 2>/dev/null && [ -L "$tmp/link.lumio" ] \
    && [ "$(samples "$tmp/old.lumio")" -eq 20000 ] && ok || bad "recover through a symlink replaced the link"
ln -s sub/new.lumio "$tmp/dangling.lumio"
mkdir "$tmp/sub"
"$lumio" stream recover "$tmp/a.lumio" -o "$tmp/dangling.lumio" 2>/dev/null && [ -L "$tmp/dangling.lumio" ] \
    && [ "$(samples "$tmp/sub/new.lumio")" -eq 20000 ] && ok || bad "recover through a dangling symlink"
"$lumio" stream recover "$tmp/a.lumio" -o /dev/null 2>/dev/null && [ -c /dev/null ] && ok || bad "recover -o /dev/null"

python3 -c 'import sys; sys.stdout.write("a;b 1\nmain;" + "x" * (2 << 20) + " 1\n")' >"$tmp/big.txt"
if "$lumio" stream import --from collapsed "$tmp/big.txt" -o "$tmp/big.lumio" 2>"$tmp/big.err"; then bad "a 2 MiB frame imported"; else ok; fi
one_line "$tmp/big.err" && grep -q "^lumio stream: $tmp/big.txt: collapsed: line 2 (byte 6): a function name of 2097152 bytes exceeds the limit of 1048576" "$tmp/big.err" \
    && ok || bad "big frame: $(head -c 300 "$tmp/big.err")"
[ "$(grep -o "$tmp/big" "$tmp/big.err" | wc -l)" -eq 1 ] && ok || bad "big frame names a path twice"
[ ! -e "$tmp/big.lumio" ] && ok || bad "a failed import left its output"
head -c 4000 "$lumio" >"$tmp/bin.dat"
if "$lumio" stream import --from perf-script "$tmp/bin.dat" -o "$tmp/bin.lumio" 2>"$tmp/bin.err"; then bad "binary imported"; else ok; fi
one_line "$tmp/bin.err" && ! LC_ALL=C grep -q '[^[:print:]]' "$tmp/bin.err" && grep -q '\\x7fELF' "$tmp/bin.err" \
    && ok || bad "binary input echoed raw: $(od -c "$tmp/bin.err" | head -3)"
python3 -c 'print(";".join(["f"] * 5000) + " 1")' >"$tmp/deep.txt"
if "$lumio" stream import --from collapsed "$tmp/deep.txt" -o "$tmp/deep.lumio" 2>"$tmp/deep.err"; then bad "a 5000-frame stack imported"; else ok; fi
grep -q "line 1 (byte 0): a stack of 5000 frames exceeds the limit of 4096" "$tmp/deep.err" && ok || bad "deep stack: $(head -c 200 "$tmp/deep.err")"

# ---- 5. A killed bench leaves nothing in TMPDIR (nor in /tmp, where it used
# to write whatever TMPDIR said: files that appear there during the run and
# are still there two seconds later were ours).
mkdir "$tmp/bt"
for sig in KILL TERM HUP; do
    before=$(ls /tmp | grep '^lumio-stream-bench-' | sort)
    TMPDIR="$tmp/bt" "$lumio" stream bench --samples 50000000 >/dev/null 2>&1 &
    bpid=$!
    pids+=($bpid)
    sleep 0.5
    kill -"$sig" "$bpid"
    wait "$bpid" 2>/dev/null
    new=$(comm -13 <(echo "$before") <(ls /tmp | grep '^lumio-stream-bench-' | sort))
    sleep 2
    left=$(for f in $new; do [ -e "/tmp/$f" ] && echo "$f"; done)
    [ -z "$(ls -A "$tmp/bt")" ] && [ -z "$left" ] && ok || bad "bench killed by SIG$sig left $(ls -A "$tmp/bt") $left"
    for f in $left; do rm -f "/tmp/$f"; done
done
TMPDIR="$tmp/bt" "$lumio" stream bench --samples 20000 >/dev/null && [ -z "$(ls -A "$tmp/bt")" ] && ok || bad "bench in TMPDIR"

# ---- 6. recv: slots and memory that senders cannot take for nothing.
# 16 idle connections fill the receiver: the next sender is refused at once
# and named, and it says its data was not delivered (it used to exit 0 with
# its data acknowledged by the kernel and lost).
"$lumio" stream gen --seed 21 --samples 4000 --threads 2 --flush samples=1000 -o "$tmp/two.lumio" 2>/dev/null
port=$(free_port)
LUMIO_RECV_HELLO_MS=600000 "$lumio" stream recv tcp-listen:"$port" -o "$tmp/full.lumio" 2>"$tmp/full.err" &
rpid=$!
pids+=($rpid)
wait_port "$port" || bad "receiver (full) did not listen"
python3 -c '
import socket, sys, time
s = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(16)]
time.sleep(120)' "$port" &
idle=$!
pids+=($idle)
for _ in $(seq 1 200); do [ "$(grep -c ESTAB <(ss -tn "dport = :$port" 2>/dev/null))" -ge 16 ] && break; sleep 0.05; done
if "$lumio" stream gen --seed 22 --samples 1000 -o tcp:127.0.0.1:"$port" 2>"$tmp/gfull.err"; then
    bad "a sender refused by a full receiver exits 0: $(cat "$tmp/gfull.err")"
else ok; fi
grep -q "1 of 1 chunks not delivered" "$tmp/gfull.err" && ok || bad "refused sender's message: $(cat "$tmp/gfull.err")"
grep -Eq '^lumio stream: peer 127\.0\.0\.1:[0-9]+: refused: 16 senders connected$' "$tmp/full.err" \
    && ok || bad "refusal not named: $(cat "$tmp/full.err")"
kill "$idle"; wait "$idle" 2>/dev/null
"$lumio" stream gen --seed 23 --samples 1000 -o tcp:127.0.0.1:"$port" 2>"$tmp/g23.err" \
    && ok || bad "a sender once the idle peers left: $(cat "$tmp/g23.err")"
kill -TERM "$rpid"
wait "$rpid" && ok || bad "full receiver stop: $(cat "$tmp/full.err")"
[ "$(samples "$tmp/full.lumio")" -eq 1000 ] && ok || bad "full receiver kept $(samples "$tmp/full.lumio") samples, want 1000"

# A connection that never sends the signature and a sender stalled inside a
# chunk are dropped by name; a sender idle between whole chunks is kept.
port=$(free_port)
LUMIO_RECV_HELLO_MS=300 LUMIO_RECV_STALL_MS=300 "$lumio" stream recv tcp-listen:"$port" -o "$tmp/idle.lumio" 2>"$tmp/idle.err" &
rpid=$!
pids+=($rpid)
wait_port "$port" || bad "receiver (idle) did not listen"
python3 - "$port" "$tmp/two.lumio" "$tmp/idle.err" <<'PY' || bad "idle peers script"
import socket, struct, sys, time
port, data, err = int(sys.argv[1]), open(sys.argv[2], "rb").read(), sys.argv[3]
sig, chunks, o = data[:16], [], 16
while o < len(data):
    n = 48 + struct.unpack_from("<I", data, o + 8)[0]
    chunks.append(data[o:o + n]); o += n
def conn(): return socket.create_connection(("127.0.0.1", port))
def said(what):
    for _ in range(400):
        if what in open(err).read(): return True
        time.sleep(0.05)
    return False
a = conn(); a.sendall(sig + chunks[0])      # then idle, between chunks
b = conn(); b.sendall(sig + chunks[1][:100])  # stalled inside a chunk
c = conn()                                   # never says anything
assert said("no stream signature"), "silent peer not dropped"
assert said("stalled"), "stalled peer not dropped"
time.sleep(0.5)
a.sendall(chunks[1] + chunks[2] + chunks[3]); a.close()
assert said("received chunks=4"), "the idle-between-chunks sender was not kept"
PY
kill -TERM "$rpid"
wait "$rpid" && ok || bad "idle receiver stop: $(cat "$tmp/idle.err")"
[ "$(samples "$tmp/idle.lumio")" -eq 4000 ] && ok || bad "idle sender's chunks: $(samples "$tmp/idle.lumio") samples, want 4000"
grep -Eq '^lumio stream: peer 127\.0\.0\.1:[0-9]+: no stream signature within 300 ms; connection dropped$' "$tmp/idle.err" \
    && ok || bad "silent peer message: $(cat "$tmp/idle.err")"
grep -Eq '^lumio stream: peer 127\.0\.0\.1:[0-9]+: byte 16: stalled for 300 ms inside a chunk \(100 bytes of it received\); connection dropped$' "$tmp/idle.err" \
    && ok || bad "stalled peer message: $(cat "$tmp/idle.err")"
[ "$(grep -c 'connection dropped' "$tmp/idle.err")" -eq 2 ] && ok || bad "a peer idle between chunks was dropped: $(cat "$tmp/idle.err")"

# A small zstd chunk declaring 64 MiB decompressed: charged against --memory
# before it is decoded, so the receiver never allocates it.
port=$(free_port)
"$lumio" stream recv tcp-listen:"$port" -o "$tmp/bomb.lumio" --memory 4M 2>"$tmp/bomb.err" &
rpid=$!
pids+=($rpid)
wait_port "$port" || bad "receiver (bomb) did not listen"
python3 - "$port" "$tmp/two.lumio" "$rpid" <<'PY' || bad "bomb script"
import ctypes, socket, struct, sys, time
xx = ctypes.CDLL("libxxhash.so.0"); xx.XXH3_64bits.restype = ctypes.c_uint64
xx.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
zs = ctypes.CDLL("libzstd.so.1"); zs.ZSTD_compress.restype = ctypes.c_size_t
zs.ZSTD_compress.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
raw = 64 << 20
src = ctypes.create_string_buffer(raw); dst = ctypes.create_string_buffer(1 << 20)
n = zs.ZSTD_compress(dst, 1 << 20, src, raw, 1)
payload = dst.raw[:n]
hdr = b"LCHK" + bytes([1, 1, 0, 0]) + struct.pack("<IIQIIq", n, raw, 0, 1, 1, 0)
chunk = hdr + struct.pack("<Q", xx.XXH3_64bits(hdr[4:40] + payload, 36 + n)) + payload
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
try:
    s.sendall(open(sys.argv[2], "rb").read()[:16] + chunk)
    s.recv(1)  # until the receiver drops it
except OSError:
    pass
hwm = [int(l.split()[1]) for l in open("/proc/%s/status" % sys.argv[3]) if l.startswith("VmHWM")][0]
assert hwm < 48 * 1024, "receiver peak memory %d kB" % hwm
PY
kill -TERM "$rpid"
wait "$rpid" && ok || bad "bomb receiver stop: $(cat "$tmp/bomb.err")"
grep -Eq '^lumio stream: peer 127\.0\.0\.1:[0-9]+: byte 16: a chunk declaring 67108864 bytes decompressed would take .* past --memory 4M; connection dropped$' "$tmp/bomb.err" \
    && ok || bad "bomb sender not named: $(cat "$tmp/bomb.err")"

# ---- 7. A whole last chunk that fails its checksum is damage (exit 1), not
# a torn tail; recover copies the rest (exit 0) and says it was damage.
"$lumio" stream gen --seed 3 --samples 4000 --threads 2 --flush samples=1000 -o "$tmp/l.lumio" 2>/dev/null
size=$(stat -c %s "$tmp/l.lumio")
cp "$tmp/l.lumio" "$tmp/lc.lumio"
printf '\x5a' | dd of="$tmp/lc.lumio" bs=1 seek=$((size - 1)) conv=notrunc status=none
"$lumio" stream export --to collapsed "$tmp/lc.lumio" >"$tmp/lc.txt" 2>"$tmp/lc.err"
[ $? -eq 1 ] && ok || bad "export of a corrupt last chunk exits 0: $(cat "$tmp/lc.err")"
[ "$(wc -l <"$tmp/lc.txt")" -eq 3000 ] && ok || bad "export of a corrupt last chunk wrote $(wc -l <"$tmp/lc.txt") samples"
one_line "$tmp/lc.err" && grep -Eq "^lumio stream: $tmp/lc.lumio: damaged: skipped [0-9]+ bytes in 1 ranges, the first at byte [0-9]+$" "$tmp/lc.err" \
    && ok || bad "corrupt last chunk message: $(cat "$tmp/lc.err")"
"$lumio" stream info "$tmp/lc.lumio" >/dev/null 2>&1
[ $? -eq 1 ] && ok || bad "info of a corrupt last chunk exits 0"
"$lumio" stream recover "$tmp/lc.lumio" -o "$tmp/lc.out" 2>"$tmp/lcr.err" && ok || bad "recover of a corrupt last chunk: $(cat "$tmp/lcr.err")"
grep -Eq "^recovered 3000 samples from 3 chunks; skipped damage: [0-9]+ corrupt bytes in 1 ranges, the first at byte [0-9]+, and a torn tail of 0 bytes$" "$tmp/lcr.err" \
    && ok || bad "recover does not tell damage: $(cat "$tmp/lcr.err")"
"$lumio" stream recover "$tmp/t.lumio" -o "$tmp/t.out" 2>"$tmp/tr.err" && grep -Eq "^recovered 19000 samples from 19 chunks; skipped no damage, and a torn tail of [0-9]+ bytes$" "$tmp/tr.err" \
    && ok || bad "recover of a torn tail: $(cat "$tmp/tr.err")"

# ---- 8. import and recover interrupted: the temporary output is removed and
# the exit status says the signal.
mkdir "$tmp/sig"
mkfifo "$tmp/fifo"
for sig in INT TERM HUP; do
    for cmd in import recover; do
        rm -f "$tmp/sig/"* "$tmp/sig/".??* # what a failed round left
        if [ $cmd = import ]; then
            "$lumio" stream import --from collapsed "$tmp/fifo" -o "$tmp/sig/out.lumio" 2>/dev/null &
        else
            "$lumio" stream recover "$tmp/fifo" -o "$tmp/sig/out.lumio" 2>/dev/null &
        fi
        lpid=$!
        pids+=($lpid)
        exec 4>"$tmp/fifo" # held open: the command waits for more input
        if [ $cmd = import ]; then printf 'main;a 1\n' >&4; else cat "$tmp/l.lumio" >&4; fi
        for _ in $(seq 1 200); do [ -n "$(ls -A "$tmp/sig")" ] && break; sleep 0.05; done
        [ -n "$(ls -A "$tmp/sig")" ] || bad "$cmd made no temporary file"
        kill -"$sig" "$lpid"
        for _ in $(seq 1 200); do kill -0 "$lpid" 2>/dev/null || break; sleep 0.05; done
        kill -0 "$lpid" 2>/dev/null && { bad "$cmd ignored SIG$sig"; kill -KILL "$lpid"; }
        wait "$lpid" 2>/dev/null
        st=$?
        want=$((128 + $(kill -l "$sig")))
        [ "$st" -eq "$want" ] && ok || bad "$cmd on SIG$sig exits $st, want $want"
        exec 4>&-
        [ -z "$(ls -A "$tmp/sig")" ] && ok || bad "$cmd on SIG$sig left $(ls -A "$tmp/sig")"
    done
done

echo "stream trust: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
