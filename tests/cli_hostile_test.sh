#!/usr/bin/env bash
# lumio cat, hash and bench read on what a new user may point them at: files
# that do not know their size (/proc, /sys, pipes, FIFOs, devices, standard
# input), huge blocks under a memory cap, few file descriptors, and paths that
# are wrong in every way (symlink loops, dangling links, no permission, a
# directory). Outputs are compared with coreutils cat and xxhsum.
#
#     tests/cli_hostile_test.sh build/lumio
#     LUMIO_BACKEND=threads tests/cli_hostile_test.sh build/lumio
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
    echo "usage: $0 PATH/TO/lumio" >&2
    exit 2
fi
LUMIO=$(realpath "$1")
T=$(mktemp -d)
trap 'chmod -R u+rwx "$T" 2>/dev/null; rm -rf "$T"' EXIT
chmod 755 "$T"
cd "$T"

. "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/check.sh"

# ---- files without a size ---------------------------------------------------------
# /proc files say 0 bytes, /sys files 4096; pipes, FIFOs and devices say 0.

pseudo=(/proc/version /proc/filesystems /proc/self/mountinfo)
for f in /sys/kernel/mm/transparent_hugepage/enabled /sys/devices/system/cpu/online \
    /sys/kernel/osrelease /sys/kernel/kexec_loaded; do
    [ -r "$f" ] && pseudo+=("$f")
done

cat_pseudo() {
    local f
    for f in "${pseudo[@]}"; do
        "$LUMIO" cat "$f" >out.cat || return 1
        cat "$f" | cmp - out.cat || { echo "cat $f differs"; return 1; }
        [ -s out.cat ] || { echo "cat $f is empty"; return 1; }
    done
    # several at once, in order, with regular files between them
    head -c 300000 /dev/urandom >reg
    "$LUMIO" cat reg "${pseudo[@]}" reg >out.cat && cat reg "${pseudo[@]}" reg | cmp - out.cat
}

hash_pseudo() {
    "$LUMIO" hash "${pseudo[@]}" >out.hash && xxhsum -H1 "${pseudo[@]}" >want.hash &&
        cmp want.hash out.hash &&
        "$LUMIO" hash --algo xxh128 "${pseudo[@]}" >out.hash &&
        xxhsum -H2 "${pseudo[@]}" >want.hash && cmp want.hash out.hash
}

cat_pipes() {
    seq 1 200000 >seq.txt
    # standard input as a pipe, by name and as -
    seq 1 200000 | "$LUMIO" cat /dev/stdin >out.cat && cmp seq.txt out.cat &&
        seq 1 200000 | "$LUMIO" cat - >out.cat && cmp seq.txt out.cat &&
        # standard input as a regular file, between other files
        "$LUMIO" cat reg - reg <seq.txt >out.cat && cat reg seq.txt reg | cmp - out.cat &&
        # process substitution
        "$LUMIO" cat <(seq 1 200000) >out.cat && cmp seq.txt out.cat &&
        # a FIFO, written slowly in pieces
        rm -f fifo && mkfifo fifo &&
        { (for i in 1 2 3; do head -c 70000 seq.txt; sleep 0.1; done) >fifo & } &&
        "$LUMIO" cat fifo >out.cat && wait &&
        for i in 1 2 3; do head -c 70000 seq.txt; done | cmp - out.cat &&
        # character devices: empty, and endless (read until the reader stops)
        "$LUMIO" cat /dev/null >out.cat && [ ! -s out.cat ] &&
        { "$LUMIO" cat /dev/zero || true; } | head -c 5000000 | cmp - <(head -c 5000000 /dev/zero)
}

hash_pipes() {
    xxhsum -H1 <seq.txt | sed 's/  .*//' >want.digest
    seq 1 200000 | "$LUMIO" hash - >out.hash &&
        [ "$(cat out.hash)" = "$(cat want.digest)  stdin" ] &&
        seq 1 200000 | "$LUMIO" hash /dev/stdin >out.hash &&
        [ "$(cat out.hash)" = "$(cat want.digest)  /dev/stdin" ] &&
        "$LUMIO" hash <(seq 1 200000) >out.hash &&
        [ "$(sed 's/  .*//' out.hash)" = "$(cat want.digest)" ] &&
        "$LUMIO" hash /dev/null >out.hash && xxhsum -H1 /dev/null | cmp - out.hash
}

empty_files() {
    : >empty && "$LUMIO" cat empty >out.cat && [ ! -s out.cat ] &&
        "$LUMIO" hash empty >out.hash && xxhsum -H1 empty | cmp - out.hash
}

check "cat of /proc and /sys files equals cat" cat_pseudo
check "hash of /proc and /sys files equals xxhsum" hash_pseudo
check "cat of pipes, standard input, a FIFO and devices" cat_pipes
check "hash of pipes and standard input equals xxhsum" hash_pipes
check "cat and hash of an empty file" empty_files
# A file as standard input is read from its current offset, as cat and
# xxhsum read it, and cat leaves it at its end.
stdin_offset() {
    head -c 70000 /dev/urandom >f70k
    (dd bs=1000 count=3 of=/dev/null 2>/dev/null; "$LUMIO" cat - >got) <f70k &&
        tail -c 67000 f70k | cmp - got || return 1
    [ "$( (dd bs=1000 count=3 of=/dev/null 2>/dev/null; "$LUMIO" hash -) <f70k)" = \
        "$( (dd bs=1000 count=3 of=/dev/null 2>/dev/null; xxhsum -H1 -) <f70k)" ] || return 1
    [ "$({ "$LUMIO" cat - >/dev/null; wc -c; } <f70k)" = 0 ]
}
check "cat - and hash - of a file read from its offset" stdin_offset
# A file that shrinks after its size was read says so, by name.
shrinks() {
    head -c 64M /dev/zero >big && head -c 4M /dev/urandom >shrinking && mkfifo sp
    "$LUMIO" cat --block 1M --memory 2M big shrinking >sp 2>err &
    local pid=$! st=0
    exec 3<sp
    head -c 1M <&3 >/dev/null
    truncate -s 1000 shrinking
    cat <&3 >/dev/null
    exec 3<&-
    wait $pid || st=$?
    echo "status $st: $(cat err)"
    rm -f big sp
    [ $st -eq 1 ] && grep -q '^lumio cat: shrinking: the file shrank while it was read' err &&
        [ "$(wc -l <err)" -eq 1 ]
}
check "cat of a file that shrinks while read names it" shrinks

# ---- memory caps -------------------------------------------------------------------
# Peak resident memory of the command, in KiB.

peak_rss() {
    /usr/bin/python3 -c '
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(r.returncode)' "$@"
}

# Sanitizers keep freed memory in quarantine and add their own: more room.
slack=$((96 << 10))
[ -n "${LUMIO_SANITIZED:-}" ] && slack=$((640 << 10))

truncate -s 1536M big # sparse: no disk, but every byte is still read

memory_cat() {
    local kb
    kb=$(peak_rss "$LUMIO" cat --block 256M --memory 512M big) || return 1
    echo "cat --block 256M --memory 512M: peak $kb KiB"
    [ "$kb" -lt $(((512 << 10) + slack)) ] &&
        # a block that cannot fit twice is refused, naming both sizes
        ! "$LUMIO" cat --block 1G big >/dev/null 2>err.cat &&
        grep -q -- "--block 1G does not fit twice in --memory 64M" err.cat
}

memory_bench() {
    local kb
    kb=$(peak_rss "$LUMIO" bench read --block 256M --memory 512M big) || return 1
    echo "bench read --block 256M --memory 512M: peak $kb KiB"
    [ "$kb" -lt $(((512 << 10) + slack)) ] &&
        ! "$LUMIO" bench read --block 1G big >/dev/null 2>err.bench &&
        grep -q -- "--memory 2G or more" err.bench
}

memory_hash() {
    local kb i
    mkdir -p mtree
    for i in $(seq 1 64); do truncate -s 4M "mtree/f$i"; done
    kb=$(peak_rss "$LUMIO" hash --memory 32M mtree big) || return 1
    echo "hash --memory 32M: peak $kb KiB"
    [ "$kb" -lt $(((32 << 10) + slack)) ]
}

check "cat --block 256M stays under --memory" memory_cat
check "bench read --block 256M stays under --memory" memory_bench
check "hash stays under --memory" memory_hash
rm -f big

# ---- file descriptors ----------------------------------------------------------------
# A few hundred files with a limit of 16 or 32 descriptors (soft and hard).

mkdir -p many
for i in $(seq 1 300); do head -c $((100000 + i * 37)) /dev/urandom >"many/f$i"; done

few_fds() {
    (
        ulimit -n 16
        "$LUMIO" hash many >out.hash &&
            "$LUMIO" cat many/* >out.cat
    ) && find many -type f | LC_ALL=C sort | xargs xxhsum -H1 | cmp - out.hash &&
        cat many/* | cmp - out.cat &&
        (
            ulimit -n 32
            "$LUMIO" bench read many >out.json &&
                "$LUMIO" bench read --paths --threads 2 many >out2.json
        ) && grep -q "\"files\": 300" out.json && grep -q "\"files\": 300" out2.json
}

check "hash, cat and bench read of 300 files with 16-32 descriptors" few_fds

# ---- messages that name what is wrong ------------------------------------------------

one_line() { # FILE LINE: exactly this one line (a CLI error message, checked whole)
    [ "$(wc -l <"$1")" -eq 1 ] && [ "$(cat "$1")" = "$2" ] || {
        echo "wanted: $2"
        cat "$1"
        return 1
    }
}

# Root reads anything: the permission check runs as nobody then.
as_user() {
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
    else
        "$@"
    fi
}

bad_paths() {
    ln -sf loop1 loop2 && ln -sf loop2 loop1 && ln -sf nowhere dangling &&
        mkdir -p adir && head -c 100 /dev/urandom >secret && chmod 000 secret &&
        head -c 100 /dev/urandom >ok
    local cmd
    for cmd in "cat" "hash" "bench read"; do
        # shellcheck disable=SC2086 # word splitting of "bench read" is meant
        ! "$LUMIO" $cmd loop1 >/dev/null 2>err &&
            one_line err "lumio $cmd: loop1: Too many levels of symbolic links" || return 1
        # shellcheck disable=SC2086
        ! "$LUMIO" $cmd dangling >/dev/null 2>err &&
            one_line err "lumio $cmd: dangling: No such file or directory" || return 1
        # shellcheck disable=SC2086
        ! as_user "$LUMIO" $cmd secret >/dev/null 2>err &&
            one_line err "lumio $cmd: secret: Permission denied" || return 1
    done
    ! "$LUMIO" cat adir >/dev/null 2>err && one_line err "lumio cat: adir: Is a directory" &&
        # the others are still read
        ! "$LUMIO" cat ok loop1 ok >out.cat 2>err && cat ok ok | cmp - out.cat
}

check "symlink loops, dangling links, no permission, a directory: named" bad_paths

check_done "cli_hostile"
