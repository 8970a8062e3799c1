#!/usr/bin/env bash
# -o PATH as every command writes it (src/cli/output.c): a descriptor named
# /dev/stdout or /dev/fd/N is written in place (a shell's `>> log` keeps
# what the log held), a replaced file keeps its mode, a failure leaves the
# old file and no temporary one (issue 11). Under tests/hostile_env.sh.
#
#     tests/hostile_env.sh tests/output_test.sh build/lumio
set -uo pipefail
LUMIO=$(realpath "$1")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/check.sh"
cd "$T" || exit 1

head -c 300000 /dev/urandom >"$LUMIO_HOSTILE_ROOT/obj.bin"
URL=$LUMIO_HOSTILE_URL/plain/obj.bin
printf '\001\002\003\004\005\006\007\010' >raw
"$LUMIO" zarr create arr --shape 8 --chunks 4 --dtype u1 --from raw 2>/dev/null

appended() { # COMMAND...: run with -o /dev/stdout appended to a log
    printf 'previous line\n' >log
    "$@" -o /dev/stdout >>log || return 1
    { printf 'previous line\n'; cat want; } | cmp - log
}
cp "$LUMIO_HOSTILE_ROOT/obj.bin" want
check "get -o /dev/stdout >> log appends" appended "$LUMIO" get "$URL"
cp raw want
check "zarr cat -o /dev/stdout >> log appends" appended "$LUMIO" zarr cat arr
stream_appended() {
    printf 'a;b 3\n' >folded && printf 'OLD\n' >slog
    "$LUMIO" stream import --from collapsed folded -o /dev/stdout >>slog || return 1
    [ "$(head -c 4 slog)" = OLD ] && [ "$("$LUMIO" stream export --to collapsed <(tail -c +5 slog) | wc -l)" = 3 ]
}
check "stream import -o /dev/stdout >> log appends" stream_appended
fd_n() { # -o /dev/fd/3 and a link to it
    "$LUMIO" zarr cat arr -o /dev/fd/3 3>>log3 && ln -sf /dev/fd/3 l3 &&
        "$LUMIO" zarr cat arr -o l3 3>>log3 && { cat raw raw | cmp - log3; } && [ -L l3 ]
}
check "zarr cat -o /dev/fd/3 (and a link to it) writes the descriptor" fd_n

mode_kept() { # COMMAND...: a private file replaced stays private
    printf 'secret\n' >priv && chmod 600 priv
    "$@" -o priv || return 1
    [ "$(stat -c %a priv)" = 600 ] && cmp want priv
}
cp "$LUMIO_HOSTILE_ROOT/obj.bin" want
check "get -o FILE keeps the mode of the file it replaces" mode_kept "$LUMIO" get "$URL"
cp raw want
check "zarr cat -o FILE keeps the mode of the file it replaces" mode_kept "$LUMIO" zarr cat arr

failure_keeps() {
    printf 'old\n' >keep
    if "$LUMIO" get "$LUMIO_HOSTILE_URL/plain/missing.bin" -o keep 2>err; then return 1; fi
    [ "$(cat keep)" = old ] && [ -z "$(ls -A | grep -v -e '^keep$' -e '^err$' -e '^want$' -e '^raw$' \
        -e '^arr$' -e '^log' -e '^l3$' -e '^priv$' -e '^check.log$' -e '^folded$' -e '^slog$')" ]
}
check "a failed get leaves the old file and no temporary one" failure_keeps

check_done "output"
