#!/usr/bin/env bash
# lumio zarr on failure and at its limits: what a failed or killed create or
# rechunk leaves (nothing that opens), cat's output never clobbering its
# input, memory caps (peak RSS by GNU time), and one-line errors.
#
#     tests/zarr_cli_test.sh build/lumio
# Under ASan (LUMIO_SANITIZED=1) the peak RSS figures are not checked: the
# shadow memory and quarantine count too.
set -uo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
    echo "usage: $0 PATH/TO/lumio" >&2
    exit 2
fi
LUMIO=$(realpath "$1")
T=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T" || exit 1
SANITIZED=${LUMIO_SANITIZED:-0}

. "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/check.sh"

# The command fails with status $1 and one line on stderr matching $2.
fails_with() {
    local want=$1 pattern=$2
    shift 2
    "$@" >out.txt 2>err.txt
    local rc=$?
    echo "status $rc (want $want); stderr: $(cat err.txt)"
    [ "$rc" -eq "$want" ] && [ "$(wc -l <err.txt)" -eq 1 ] && grep -q -- "$pattern" err.txt
}

# The command fails with status $1 and exactly the line $2 on stderr (checked whole).
fails_saying() {
    local want=$1 line=$2
    shift 2
    "$@" >out.txt 2>err.txt
    local rc=$?
    echo "status $rc (want $want); stderr: $(cat err.txt); wanted: $line"
    [ "$rc" -eq "$want" ] && [ "$(cat err.txt)" = "$line" ]
}

# Nothing at $1 opens as an array.
no_array() {
    ! "$LUMIO" zarr info "$1" >/dev/null 2>&1 && ! "$LUMIO" zarr cat "$1" >/dev/null 2>&1 &&
        [ ! -e "$1/.zarray" ] && [ ! -e "$1/zarr.json" ]
}

peak_kib() { # the peak RSS of a command, in KiB (its status in $T/rc)
    /usr/bin/time -f %M -o "$T/rss" "$@" >/dev/null 2>"$T/stderr"
    echo $? >"$T/rc"
    tail -n 1 "$T/rss"
}

/usr/bin/python3 -c "import numpy as np; (np.arange(100 * 60, dtype='<u2') * 3).tofile('raw')"

# ---- 1. a failed or killed create or rechunk leaves nothing that opens ------------
short_file() {
    head -c 5000 raw >short
    fails_with 1 "short: 5000 bytes, the array needs 12000" \
        "$LUMIO" zarr create s1 --shape 100,60 --chunks 30,25 --dtype '<u2' --from short &&
        no_array s1 && [ ! -e s1 ]
}
check "create --from a short file: the sizes named, nothing left" short_file

# From a pipe the size shows only as it runs out: a chunk row is written first.
short_pipe() {
    head -c 5000 raw | fails_with 1 "5000 bytes, the array needs 12000" \
        "$LUMIO" zarr create s2 --shape 100,60 --chunks 30,25 --dtype '<u2' --from - &&
        no_array s2 && [ ! -e s2 ]
}
check "create --from a short pipe: nothing that opens" short_pipe

long_pipe() {
    (cat raw raw) | fails_with 1 "more than the 12000 bytes the array needs" \
        "$LUMIO" zarr create s3 --shape 100,60 --chunks 30,25 --dtype '<u2' --from - &&
        no_array s3 && [ ! -e s3 ]
}
check "create --from a long pipe: nothing that opens" long_pipe

long_file() {
    cat raw raw >long
    fails_with 1 "long: 24000 bytes, the array needs 12000" \
        "$LUMIO" zarr create s4 --shape 100,60 --chunks 30,25 --dtype '<u2' --from long &&
        no_array s4
}
check "create --from a long file: the sizes named" long_file

# Into an existing directory: the chunks written are left, but nothing opens.
into_dir() {
    mkdir s5 && head -c 5000 raw | "$LUMIO" zarr create s5 --shape 100,60 --chunks 30,25 \
        --dtype '<u2' --from - 2>/dev/null
    [ $? -eq 1 ] && no_array s5
}
check "create --from into an existing directory, failed: nothing that opens" into_dir
# What a failed or killed create left (chunks, no metadata) is never taken
# over by the next create there: its chunks would read as the new array's.
leftover_chunks() {
    mkdir s6 && printf 'old' >s6/0.0 && printf '{}' >s6/.zattrs
    fails_with 1 "s6: the directory is not empty ('0.0'" \
        "$LUMIO" zarr create s6 --shape 100,60 --chunks 30,25 --dtype '<u2' || return 1
    no_array s6 && rm s6/0.0 && "$LUMIO" zarr create s6 --shape 4 --chunks 2 --dtype u1 &&
        "$LUMIO" zarr info s6 >/dev/null
}
check "create refuses a directory holding chunks of an earlier array" leftover_chunks

killed_create() {
    mkfifo fifo
    "$LUMIO" zarr create k1 --shape 100,60 --chunks 30,25 --dtype '<u2' --codec none \
        --from fifo 2>/dev/null &
    local pid=$!
    PIDS+=("$pid")
    exec 3>fifo
    head -c 7200 raw >&3 # two chunk rows
    for _ in $(seq 500); do
        [ -e k1/1.0 ] && break
        sleep 0.01
    done
    ls -a k1
    [ -e k1/1.0 ] || return 1
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    exec 3>&-
    no_array k1
}
check "create killed midway: chunks written, nothing that opens" killed_create

# A rechunk killed once its first chunks are written.
head -c $((24 << 20)) /dev/urandom >big.raw
"$LUMIO" zarr create big --shape 1536,16384 --chunks 256,16384 --dtype u1 --codec none \
    --from big.raw
killed_rechunk() {
    "$LUMIO" zarr rechunk big k2 --chunks 16,16 --codec gzip:9 --memory 32M 2>/dev/null &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 2000); do
        [ -e k2/0.0 ] && break
        sleep 0.005
    done
    [ -e k2/0.0 ] || return 1
    kill -9 "$pid" || return 1 # (already done: the check cannot tell)
    wait "$pid" 2>/dev/null
    no_array k2
}
check "rechunk killed midway: chunks written, nothing that opens" killed_rechunk

"$LUMIO" zarr create a --shape 100,60 --chunks 30,25 --dtype '<u2' --from raw
failed_rechunk() { # a source chunk that does not decode, met after others are written
    cp -r a bad && head -c 100 /dev/urandom >bad/3.1
    fails_with 1 "bad/3.1" "$LUMIO" zarr rechunk bad r1 --chunks 10,10 --memory 32M &&
        no_array r1
}
check "rechunk failing midway: nothing that opens" failed_rechunk

# ---- 2. cat's output never truncates what it reads ---------------------------------
inside_array() {
    cp a/0.0 chunk.before
    fails_with 2 "a/0.0: inside the array a" "$LUMIO" zarr cat a -o a/0.0 &&
        cmp a/0.0 chunk.before &&
        (cd a && fails_with 2 "inside the array" "$LUMIO" zarr cat . -o ./x) &&
        ln -s a alias && fails_with 2 "inside the array" "$LUMIO" zarr cat a -o alias/new &&
        [ ! -e a/new ] && "$LUMIO" zarr cat a | cmp - raw
}
check "cat -o a file inside the array: refused, the array intact" inside_array

hard_link() { # a hard link to a chunk outside the array: replaced, not written through
    ln a/0.1 link && cp a/0.1 chunk1.before && "$LUMIO" zarr cat a -o link &&
        cmp link raw && cmp a/0.1 chunk1.before
}
check "cat -o a hard link to a chunk: the chunk intact" hard_link

outputs() {
    "$LUMIO" zarr cat a -o /dev/null && [ -c /dev/null ] &&
        ln -s target.bin sym && "$LUMIO" zarr cat a -o sym && [ -L sym ] && cmp target.bin raw &&
        mkfifo ofifo && { cat ofifo >fromfifo & } && "$LUMIO" zarr cat a -o ofifo && wait &&
        cmp fromfifo raw && [ -z "$(ls -A | grep -e lumio-tmp -e "\.part$")" ] &&
        "$LUMIO" zarr cat a --region 0:1 -o same && "$LUMIO" zarr cat a -o same && cmp same raw
}
check "cat -o /dev/null, a symlink, a FIFO, a file replaced" outputs

failed_cat() { # a failing read: the old output stays, no temporary left
    echo old >keep && cp -r a bad2 && head -c 50 /dev/urandom >bad2/2.0 &&
        fails_with 1 "bad2/2.0" "$LUMIO" zarr cat bad2 -o keep && [ "$(cat keep)" = old ] &&
        [ -z "$(ls -A | grep -e lumio-tmp -e "\.part$")" ]
}
check "cat failing: the old output kept, no temporary left" failed_cat

# ---- 4. memory caps ------------------------------------------------------------------
region_cap() { # a 100 KB region of [1e6,1e6] with chunks [1e6,1]: sized by the region
    "$LUMIO" zarr create huge --shape 1000000,1000000 --chunks 1000000,1 --dtype u1 &&
        local kib
    kib=$(peak_kib "$LUMIO" zarr cat huge --region 0:100,0:1000 -o region.bin)
    echo "peak $kib KiB, status $(cat rc): $(cat stderr)"
    [ "$(cat rc)" -eq 0 ] && [ "$(stat -c %s region.bin)" -eq 100000 ] &&
        [ -z "$(tr -d '\0' <region.bin)" ] && { [ "$SANITIZED" = 1 ] || [ "$kib" -lt 150000 ]; }
}
check "cat --region of chunk rows larger than memory" region_cap

cat_cap() { # 24 MiB in chunks of [256,16384]: under --memory 40M, slabs smaller than a chunk row
    local kib
    kib=$(peak_kib "$LUMIO" zarr cat big --memory 40M -o big.out)
    echo "peak $kib KiB, status $(cat rc): $(cat stderr)"
    [ "$(cat rc)" -eq 0 ] && cmp big.out big.raw &&
        { [ "$SANITIZED" = 1 ] || [ "$kib" -lt $((40 << 10)) ]; }
}
check "cat within --memory 40M" cat_cap

big_chunks() { # chunks too large for the cap: refused, saying what it needs
    "$LUMIO" zarr create c512 --shape 8192,8192 --chunks 8192,8192 --dtype f8 &&
        fails_with 2 "decoding chunks of 536870912 bytes need --memory of at least" \
            "$LUMIO" zarr cat c512 --memory 64M &&
        fails_with 2 "need --memory of at least" "$LUMIO" zarr bench c512 --memory 64M
}
check "cat and bench: chunks larger than --memory refused" big_chunks

rechunk_cap() {
    "$LUMIO" zarr create r16 --shape 16384,16384 --chunks 1024,1024 --dtype u1 &&
        fails_with 2 "need a memory budget of at least" \
            "$LUMIO" zarr rechunk r16 r16b --chunks 16384,16384 --memory 32M && [ ! -e r16b ]
}
check "rechunk to chunks larger than --memory: refused, nothing made" rechunk_cap

create_cap() {
    head -c 1000 /dev/zero | fails_with 2 "a row of chunks of .* need --memory" \
        "$LUMIO" zarr create c2 --shape 100000,100000 --chunks 10000,10 --dtype u1 --from - \
        --memory 64M && [ ! -e c2 ]
}
check "create --from: a chunk row larger than --memory refused" create_cap

crops_cap() { # was an empty message when the allocation failed
    fails_with 2 "a batch of crops of .* need --memory" \
        "$LUMIO" zarr bench huge --pattern crops --crop 1000000,1000 --batch 1024
}
check "bench --pattern crops beyond the cap: said" crops_cap

# ---- 5. one-line errors ---------------------------------------------------------------
"$LUMIO" zarr create ten --shape 10,10 --chunks 5,5 --dtype u1 >/dev/null
region_errors() {
    local r="lumio zarr cat: --region:" form="START:STOP[,START:STOP...]"
    fails_saying 2 "$r stop 3 is before start 5 in dimension 0" \
        "$LUMIO" zarr cat ten --region 5:3 &&
        fails_saying 2 "$r start 11 is outside dimension 0 (size 10)" \
            "$LUMIO" zarr cat ten --region 11: &&
        fails_saying 2 "$r stop 12 is outside dimension 1 (size 10)" \
            "$LUMIO" zarr cat ten --region 0:1,2:12 &&
        fails_saying 2 "$r ':,' is not $form" "$LUMIO" zarr cat ten --region :, &&
        fails_saying 2 "$r ' 1:2' is not $form" "$LUMIO" zarr cat ten --region " 1:2" &&
        fails_saying 2 "$r '+1:2' is not $form" "$LUMIO" zarr cat ten --region "+1:2" &&
        fails_saying 2 "$r '1:2,' is not $form" "$LUMIO" zarr cat ten --region "1:2," &&
        fails_saying 2 "$r '0:1,:,:' has more dimensions than the array's 2" \
            "$LUMIO" zarr cat ten --region 0:1,:,: &&
        [ "$("$LUMIO" zarr cat ten --region 10: | wc -c)" -eq 0 ] &&
        [ "$("$LUMIO" zarr cat ten --region 2:4,:3 | wc -c)" -eq 6 ]
}
check "--region errors say what is wrong" region_errors

shape_errors() {
    local s="lumio zarr create: --shape:"
    # A long value is quoted cut short.
    fails_saying 2 "$s '$(seq -s, 23),...' has too many dimensions (at most 32)" \
        "$LUMIO" zarr create d33 --shape "$(seq -s, 33)" --chunks "$(seq -s, 33)" --dtype u1 &&
        fails_saying 2 "$s ' 5' is not a list of sizes like 100,200" \
            "$LUMIO" zarr create d1 --shape " 5" --chunks 5 --dtype u1 &&
        fails_saying 2 "$s '5,' is not a list of sizes like 100,200" \
            "$LUMIO" zarr create d1 --shape 5, --chunks 5 --dtype u1 && [ ! -e d33 ] && [ ! -e d1 ]
}
check "--shape errors say what is wrong" shape_errors

checksum_v2() {
    local c="checksum: crc32c is a Zarr v3 codec (format 3, not 2)"
    fails_saying 2 "lumio zarr create: $c" \
        "$LUMIO" zarr create cs --shape 4 --chunks 2 --dtype u1 --checksum --format 2 &&
        fails_saying 2 "lumio zarr rechunk: $c" \
            "$LUMIO" zarr rechunk ten cs2 --chunks 2,2 --checksum && [ ! -e cs ] && [ ! -e cs2 ] &&
        "$LUMIO" zarr create cs3 --shape 4 --chunks 2 --dtype u1 --checksum --format 3
}
check "--checksum with --format 2 refused" checksum_v2

short_dtypes() {
    local spec want
    for spec in u1:'|u1' i1:'|i1' b1:'|b1' u2:'<u2' i4:'<i4' i8:'<i8' f4:'<f4' f8:'<f8' \
        '=u2':'<u2' '|u4':'<u4' '>u1':'|u1' '<i1':'|i1' '>f8':'>f8' uint8:'|u1'; do
        want=${spec#*:}
        rm -rf dt && "$LUMIO" zarr create dt --shape 4 --chunks 2 --dtype "${spec%%:*}" || return 1
        grep -q "\"dtype\": *\"$want\"" dt/.zarray || {
            echo "${spec%%:*}: $(cat dt/.zarray)"
            return 1
        }
    done
    fails_saying 2 "lumio zarr create: dtype: unsupported data type '<u3'" "$LUMIO" zarr create dt2 --shape 4 --chunks 2 --dtype u3
}
check "--dtype in numpy's short forms" short_dtypes

check_done "zarr cli"
