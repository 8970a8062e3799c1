#!/usr/bin/env bash
# `make install` into a temporary prefix, then build examples/read_ranges.c
# against the installed headers, pkg-config file and libraries (shared and
# static) and check what it prints.
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pc=$(dirname "$(find "$tmp/prefix" -name lumio.pc | head -1)")
export PKG_CONFIG_PATH=$pc
test -x "$tmp/prefix/bin/lumio"
for h in "$src"/include/lumio/*.h; do # every public header
    cmp -s "$h" "$tmp/prefix/include/lumio/$(basename "$h")" ||
        { echo "install: $(basename "$h") not installed"; echo "install: 0 passed, 1 failed"; exit 1; }
done
cc=${CC:-cc}
# A program of all four pillars builds and links against the installed copy.
cat >"$tmp/all.c" <<'EOF_C'
#include <lumio/lumio.h>
#include <lumio/remote.h>
#include <lumio/ring.h>
#include <lumio/stream.h>
#include <lumio/zarr.h>
#include <stdio.h>
int main(void) {
    lumio_ring_options ro;
    lumio_ring_options_default(&ro);
    lumio_remote_options mo;
    lumio_remote_options_default(&mo);
    lumio_stream_writer_options so;
    lumio_stream_writer_options_default(&so);
    lumio_zarr_options zo;
    lumio_zarr_options_default(&zo);
    char shown[64];
    puts(lumio_redact("http://u:secret@h/x", shown, sizeof shown));
    return 0;
}
EOF_C
$cc -std=c11 -Wall -Wextra -Werror -o "$tmp/all" "$tmp/all.c" $(pkg-config --cflags --libs lumio)
[ "$(LD_LIBRARY_PATH=$(dirname "$(find "$tmp/prefix" -name 'liblumio.so' | head -1)") "$tmp/all")" = "http://u:***@h/x" ] ||
    { echo "install: the four-pillar program failed"; echo "install: 0 passed, 1 failed"; exit 1; }
$cc -std=c11 -Wall -Wextra -Werror -o "$tmp/shared" "$src/examples/read_ranges.c" $(pkg-config --cflags --libs lumio)
$cc -std=c11 -Wall -Wextra -Werror -o "$tmp/static" "$src/examples/read_ranges.c" \
    $(pkg-config --cflags lumio) -Wl,-Bstatic $(pkg-config --libs-only-L lumio) -llumio -Wl,-Bdynamic \
    $(pkg-config --static --libs-only-l lumio | sed 's/-llumio//')
printf '0123456789abcdefXYZ-this-is-the-tail-0123456789abcdef' > "$tmp/data"
want=$(python3 - "$tmp/data" <<'PY'
import sys, functools
d = open(sys.argv[1], 'rb').read()
x = lambda b: functools.reduce(lambda a, c: a ^ c, b, 0)
print(f"range 0: offset 0 length 16 xor {x(d[:16]):02x}")
print(f"range 1: offset {len(d)-16} length 16 xor {x(d[-16:]):02x}")
print(f"range 2: offset 0 length {len(d)} xor {x(d):02x}")
PY
)
for kind in shared static; do
    got=$(LD_LIBRARY_PATH=$(dirname "$(find "$tmp/prefix" -name 'liblumio.so' | head -1)") "$tmp/$kind" "$tmp/data" | sort)
    if [ "$(printf '%s\n' "$got" | grep '^range' )" != "$want" ]; then
        echo "install: $kind build printed:"; printf '%s\n' "$got"; echo "expected:"; printf '%s\n' "$want"
        echo "install: 0 passed, 1 failed"; exit 1
    fi
    # A here-string, not a pipe: under pipefail, `grep -q` exiting early can
    # kill the writer with SIGPIPE and fail a check that matched.
    grep -q '^lumio 0\.' <<<"$got" || { echo "install: no version line"; exit 1; }
done
# A missing file is one error line naming it, and a non-zero exit.
if LD_LIBRARY_PATH=$(dirname "$(find "$tmp/prefix" -name 'liblumio.so' | head -1)") "$tmp/shared" "$tmp/missing" 2>"$tmp/err"; then
    echo "install: missing file did not fail"; exit 1
fi
grep -q "missing: No such file" "$tmp/err"
echo "install: 4 passed, 0 failed"
