#!/usr/bin/env bash
# lumio zarr info, cat, bench, create and rechunk --timeout against a server that accepts and never
# answers (tests/hostile_http.py's /hang/ and /hangdata/ modes; run under tests/hostile_env.sh):
#   tests/hostile_env.sh tests/zarr_timeout_test.sh LUMIO_CLI
# Each command must end by itself, with exit status 1 and one line naming the URL; the outer
# `timeout 30` is only a bound (the default time limit, 60 s, would outlast it).
set -uo pipefail
lumio=$1
if [[ -z ${LUMIO_HOSTILE_URL:-} ]]; then
    echo "run under tests/hostile_env.sh"
    exit 77
fi
work=$(mktemp -d /var/tmp/lumio-ztimeout.XXXXXX) || exit 1
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC2034 # check.sh keeps its log in $T
T=$work
. "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/check.sh"
u=$LUMIO_HOSTILE_URL root=$LUMIO_HOSTILE_ROOT

# Arrays whose metadata /hangdata/ serves and whose chunks never come; the same locally.
head -c 800 /dev/urandom >"$work/raw"
for f in 2 3; do
    "$lumio" zarr create "$root/v$f" --format $f --shape 20,20 --chunks 10,10 --dtype '<u2' \
        --from "$work/raw" || exit 1
done
chmod -R a+rX "$root"
"$lumio" zarr create "$work/src" --shape 20,20 --chunks 10,10 --dtype '<u2' --from "$work/raw" ||
    exit 1

# lumio ARGS... under a bound: exit status 1 (not the bound's 124), and one line on stderr,
# whole: "lumio zarr SUB: METHOD URL: no progress for 2 s" (a glob: the chunk a failure names
# may be any of those in flight, a PUT names its size).
gives_up() { # REQUEST-GLOB ARGS...
    local want="lumio $2 $3: $1: no progress for 2 s" rc n
    shift
    timeout 30 "$lumio" "$@" >/dev/null 2>"$work/err"
    rc=$?
    n=$(wc -l <"$work/err")
    # shellcheck disable=SC2053 # $want is a glob
    if [[ $rc -ne 1 || $n -ne 1 || $(cat "$work/err") != $want ]]; then
        echo "  lumio $*: status $rc (124: still running after 30 s), $n lines, wanted '$want':" >&2
        cat "$work/err" >&2
        return 1
    fi
}

# A chunk's key (a glob) in a v2 or v3 array of two dimensions.
key() { if [[ $1 == 2 ]]; then echo '[0-9].[0-9]'; else echo 'c/[0-9]/[0-9]'; fi; }

# The metadata never comes (the array's own ring, and the CLI's first open).
metadata() {
    gives_up "HEAD $u/hang/a/.zarray" zarr info "$u/hang/a" --timeout 2 || return 1
    gives_up "HEAD $u/hang/a/.zarray" zarr cat "$u/hang/a" --timeout 2 || return 1
    gives_up "HEAD $u/hang/a/.zarray" zarr bench "$u/hang/a" --pattern all --timeout 2 || return 1
    gives_up "HEAD $u/hang/a/.zarray" zarr rechunk "$u/hang/a" "$work/r1" --chunks 5,5 --timeout 2 || return 1
    [[ ! -e $work/r1 ]]
}
check timeout_metadata metadata

# The metadata comes, the chunks never do (the ring the CLI makes for its memory cap, and the
# one rechunk makes): nothing is left under the output's name.
chunks() {
    local f
    for f in 2 3; do
        gives_up "HEAD $u/hangdata/v$f/$(key $f)" zarr cat "$u/hangdata/v$f" -o "$work/out" --timeout 2 || return 1
        [[ -z $(find "$work" -name 'out*') ]] || return 1
    done
    gives_up "HEAD $u/hangdata/v2/$(key 2)" zarr bench "$u/hangdata/v2" --pattern crops --count 4 --timeout 2 ||
        return 1
    gives_up "HEAD $u/hangdata/v3/$(key 3)" zarr rechunk "$u/hangdata/v3" "$work/r2" --chunks 5,5 --timeout 2 ||
        return 1
    ! "$lumio" zarr info "$work/r2" >/dev/null 2>&1 # nothing that opens
}
check timeout_chunks chunks

# A destination that never answers: its metadata check (create, rechunk), its chunk PUTs
# (create --from, rechunk).
destination() {
    gives_up "HEAD $u/hang/c/.zarray" zarr create "$u/hang/c" --shape 4 --chunks 2 --dtype u1 --timeout 2 ||
        return 1
    gives_up "HEAD $u/hang/d/.zarray" zarr rechunk "$work/src" "$u/hang/d" --chunks 5,5 --timeout 2 || return 1
    gives_up "PUT $u/hangdata/new1/$(key 2) (* bytes)" zarr create "$u/hangdata/new1" --shape 20,20 --chunks 10,10 \
        --dtype '<u2' --from "$work/raw" --timeout 2 || return 1
    gives_up "PUT $u/hangdata/new2/$(key 2) (* bytes)" zarr rechunk "$work/src" "$u/hangdata/new2" --chunks 5,5 --timeout 2
}
check timeout_destination destination

# A bad --timeout is a usage error (2) for every subcommand, before anything is read or made.
usage() {
    local t cmd
    for t in 0 -1 x 1e9 ""; do
        for cmd in "info $work/src" "cat $work/src" "bench $work/src" \
            "create $work/u --shape 4 --chunks 2 --dtype u1" "rechunk $work/src $work/u --chunks 5,5"; do
            # shellcheck disable=SC2086 # the words of each command
            "$lumio" zarr $cmd --timeout "$t" >/dev/null 2>"$work/err"
            if [[ $? -ne 2 || $(wc -l <"$work/err") -ne 1 ]] || ! grep -q -- --timeout "$work/err"; then
                echo "  lumio zarr $cmd --timeout '$t':" >&2
                cat "$work/err" >&2
                return 1
            fi
        done
    done
    [[ ! -e $work/u ]]
}
check timeout_usage usage

# With a time limit that is not reached, and on directories, nothing changes.
works() {
    "$lumio" zarr info "$u/plain/v2" --timeout 5 >"$work/i" && grep -q '^shape.*20 x 20' "$work/i" ||
        return 1
    "$lumio" zarr cat "$u/plain/v3" --timeout 5 | cmp -s - "$work/raw" || return 1
    "$lumio" zarr cat "$work/src" --timeout 0.5 | cmp -s - "$work/raw" || return 1
    "$lumio" zarr rechunk "$u/plain/v2" "$work/r3" --chunks 4,4 --timeout 5 || return 1
    "$lumio" zarr cat "$work/r3" | cmp -s - "$work/raw" || return 1
    "$lumio" zarr bench "$u/plain/v2" --pattern series --timeout 5 | grep -q '"bytes": *800'
}
check timeout_not_reached works

check_done zarr_timeout
