#!/usr/bin/env bash
# `make install` into a temporary prefix, then build programs against the
# installed headers, pkg-config file and libraries, as any application would:
#   - a program using all four pillars, as C with gcc and clang
#     (-std=c11 -Wall -Wextra -Werror -pedantic) and as C++ with g++;
#   - every example of examples/, with gcc and clang;
# each linked against the shared and the static library, and run.
set -uo pipefail
build=$1 src=$2
T=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$T"' EXIT
. "$src/tests/check.sh"

cmake --install "$build" --prefix "$T/prefix" >/dev/null || { echo "install: cmake --install failed"; exit 1; }
pc=$(dirname "$(find "$T/prefix" -name lumio.pc | head -1)")
libdir=$(dirname "$(find "$T/prefix" -name 'liblumio.so' | head -1)")
export PKG_CONFIG_PATH=$pc

headers_installed() {
    for h in "$src"/include/lumio/*.h; do
        cmp "$h" "$T/prefix/include/lumio/$(basename "$h")" || return 1
    done
}
check "every public header is installed" headers_installed
check "the installed CLI runs" "$T/prefix/bin/lumio" --version
python_installed() { # make install puts the package where the system's python3 looks under PREFIX
    [ -d "$src/python" ] || return 0
    local site
    site=$(find "$T/prefix" -path '*dist-packages/lumio/__init__.py' | head -1)
    [ -n "$site" ] || { echo "no lumio package under $T/prefix"; return 1; }
    (cd "$T" && PYTHONPATH=$(dirname "$(dirname "$site")") /usr/bin/python3 -c \
        'import lumio, lumio.zarr, sys; assert lumio.__version__ == sys.argv[1], lumio.__version__' \
        "$("$T/prefix/bin/lumio" --version | awk '{print $NF}')")
}
check "make install installs the Python package" python_installed

# The four pillars in one program, valid C and C++.
cat >"$T/all.c" <<'EOF_C'
#include <lumio/lumio.h>
#include <lumio/remote.h>
#include <lumio/ring.h>
#include <lumio/stream.h>
#include <lumio/zarr.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    char err[LUMIO_ERROR_MAX], err2[LUMIO_ERROR_MAX], shown[64];
    lumio_ring_options ro;
    memset(&ro, 0, sizeof ro);
    lumio_ring *r;
    if (lumio_ring_create(&r, &ro) < 0) return 1;
    lumio_ring_close(r);
    lumio_remote *rm;
    if (lumio_remote_create(&rm, NULL) < 0) return 1;
    lumio_remote_close(rm);
    lumio_stream_writer *w;
    if (lumio_stream_writer_open(&w, "/nonexistent/dir/x.lumio", NULL) == 0) return 1;
    lumio_stream_writer_last_error(NULL, err, sizeof err);
    lumio_zarr *z;
    if (lumio_zarr_open(&z, "/nonexistent/a.zarr", NULL) == 0) return 1;
    printf("%s\n%s\n", err, lumio_zarr_last_error(NULL, err2, sizeof err2));
    puts(lumio_redact("http://u:secret@h/x", shown, sizeof shown));
    return 0;
}
EOF_C
cp "$T/all.c" "$T/all.cpp"
want_all='/nonexistent/dir/x.lumio: No such file or directory
/nonexistent/a.zarr: not a Zarr array (no .zarray or zarr.json)
http://u:***@h/x'

# link KIND: the flags that link the shared or the static library.
link() {
    if [ "$1" = shared ]; then pkg-config --libs lumio
    else echo "$(pkg-config --libs-only-L lumio) -Wl,-Bstatic -llumio -Wl,-Bdynamic $(pkg-config --static --libs-only-l lumio | sed 's/-llumio//')"
    fi
}
# build COMPILER STD SOURCE OUT KIND
build_one() {
    # shellcheck disable=SC2046
    $1 -std=$2 -Wall -Wextra -Werror -pedantic -o "$4" "$3" $(pkg-config --cflags lumio) $(link "$5")
}
run() { LD_LIBRARY_PATH=$libdir "$@"; }

have() { command -v "$1" >/dev/null; }
for kind in shared static; do
    for cc in gcc clang g++; do
        have $cc || { echo "install: no $cc here"; exit 77; }
        std=c11 source=$T/all.c
        [ $cc = g++ ] && std=c++17 source=$T/all.cpp
        check "four pillars: $cc $std, $kind" build_one $cc $std "$source" "$T/all-$cc-$kind" $kind
        check_run() { [ "$(run "$T/all-$cc-$kind")" = "$want_all" ]; }
        check "four pillars: $cc $kind runs" check_run
    done
    for cc in gcc clang; do
        for ex in "$src"/examples/*.c; do
            name=$(basename "$ex" .c)
            check "example $name: $cc, $kind" build_one $cc c11 "$ex" "$T/$name-$cc-$kind" $kind
        done
    done
done

# What the examples print, against an independent computation.
printf '0123456789abcdefXYZ-this-is-the-tail-0123456789abcdef' >"$T/data"
ring_expected() {
    /usr/bin/python3 - "$T/data" <<'PY'
import sys, functools
d = open(sys.argv[1], 'rb').read()
x = lambda b: functools.reduce(lambda a, c: a ^ c, b, 0)
print(f"range 0: offset 0 length 16 xor {x(d[:16]):02x}")
print(f"range 1: offset {len(d)-16} length 16 xor {x(d[-16:]):02x}")
print(f"range 2: offset 0 length {len(d)} xor {x(d):02x}")
PY
}
want_ring=$(ring_expected)
for kind in shared static; do
    ring_ok() { [ "$(run "$T/ring_read_ranges-gcc-$kind" "$T/data" | grep '^range' | sort)" = "$want_ring" ]; }
    check "ring_read_ranges ($kind) reads the ranges" ring_ok
    missing_fails() {
        ! run "$T/ring_read_ranges-gcc-$kind" "$T/missing" 2>"$T/err" &&
            [ "$(cat "$T/err")" = "$T/missing: No such file or directory" ]
    }
    check "ring_read_ranges ($kind): a missing file is one line naming it" missing_fails
    stream_ok() {
        [ "$(run "$T/stream_profile-gcc-$kind" "$T/p-$kind.lumio")" = "chunks 10
thread 1: 500 samples, 333 in work
thread 2: 500 samples, 333 in work" ]
    }
    check "stream_profile ($kind) writes and reads back its profile" stream_ok
    zarr_ok() {
        run "$T/zarr_region-gcc-$kind" "$T/z-$kind.zarr" >"$T/zout" &&
            /usr/bin/python3 - "$T/zout" <<'PY'
import sys
a = [[0] * 48 for _ in range(64)]
for i in range(20):
    for j in range(30):
        a[10 + i][5 + j] = i * 100 + j
want = [f"region sum {sum(a[i][j] for i in range(12, 20) for j in range(12, 20))}"]
want += [f"slab {s} sum {sum(sum(r) for r in a[16 * s:16 * s + 16])}" for s in range(4)]
got = open(sys.argv[1]).read().split("\n")[:-1]
sys.exit(0 if got == want else f"got {got}, want {want}")
PY
    }
    check "zarr_region ($kind) writes, reads and streams its array" zarr_ok
done

# The remote example against a local HTTP server (Python's, loopback).
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$T" && exec /usr/bin/python3 -m http.server --bind 127.0.0.1 "$port" >/dev/null 2>&1) &
server=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
remote_ok() {
    local out x
    out=$(run "$T/remote_read-gcc-shared" "http://127.0.0.1:$port/data") || return 1
    x=$(/usr/bin/python3 -c 'import functools,sys; d=open(sys.argv[1],"rb").read(); print("%02x" % functools.reduce(lambda a,c:a^c,d,0))' "$T/data")
    local n
    n=$(stat -c %s "$T/data")
    [ "$(sed -n 2p <<<"$out")" = "read $n bytes xor $x" ] && grep -q "^size $n etag" <<<"$out"
}
check "remote_read fetches an object over HTTP" remote_ok
check_done install
