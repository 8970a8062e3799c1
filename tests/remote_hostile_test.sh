#!/usr/bin/env bash
# lumio get, cat URL, bench remote and zarr info URL against a server that misbehaves on purpose
# (run under tests/hostile_env.sh):
#   tests/hostile_env.sh tests/remote_hostile_test.sh LUMIO_CLI
set -uo pipefail
lumio=$1
if [[ -z ${LUMIO_HOSTILE_URL:-} ]]; then
    echo "run under tests/hostile_env.sh"
    exit 77
fi
work=$(mktemp -d /var/tmp/lumio-rhostile.XXXXXX) || exit 1
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC2034 # check.sh keeps its log in $T
T=$work
. "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/check.sh"
u=$LUMIO_HOSTILE_URL root=$LUMIO_HOSTILE_ROOT log=$LUMIO_HOSTILE_LOG
port=${u##*:}
head -c 20000007 /dev/urandom >"$root/big.bin"
head -c 1000 /dev/urandom >"$root/small.bin"
chmod 644 "$root"/*.bin
big=$root/big.bin

# One line on stderr, naming the URL's path, saying what is expected; exit status 1.
one_line() { # ERRFILE STATUS PATH SAYS
    local n
    n=$(wc -l <"$1")
    if [[ $2 -ne 1 || $n -ne 1 ]] || ! grep -qF -- "$3" "$1" || ! grep -qF -- "$4" "$1"; then
        echo "  status $2, $n lines, wanted '$3' and '$4':" >&2
        cat "$1" >&2
        return 1
    fi
}

# Exit status 1 and exactly this one line on stderr (a message of the contract, checked whole).
whole_line() { # ERRFILE STATUS LINE
    if [[ $2 -ne 1 || $(wc -l <"$1") -ne 1 || $(cat "$1") != "$3" ]]; then
        echo "  status $2, wanted 1 and the line '$3':" >&2
        cat "$1" >&2
        return 1
    fi
}

# ---- servers that work for curl, wget and aria2c -----------------------------------------------

# Each through get (in parts of 1M, so the object is many parts) and cat, byte for byte.
serves() { # PATH [NOTE]
    local rc
    rm -f "$work/o"
    "$lumio" get "$u/$1" -o "$work/o" --part-size 1M 2>"$work/err"
    rc=$?
    [[ $rc -eq 0 ]] && cmp -s "$work/o" "$big" || { cat "$work/err" >&2; return 1; }
    if [[ -n ${2:-} ]]; then # said once, on one line
        [[ $(grep -c "note: .*$1.* one stream" "$work/err") -eq 1 ]] || { cat "$work/err" >&2; return 1; }
    else
        [[ ! -s $work/err ]] || { cat "$work/err" >&2; return 1; }
    fi
    "$lumio" cat "$u/$1" 2>"$work/err" | cmp -s - "$big" || { cat "$work/err" >&2; return 1; }
    "$lumio" get "$u/$1" -o - 2>/dev/null | cmp -s - "$big"
}
check plain_server serves plain/big.bin
check ignores_range serves norange/big.bin note
check chunked_no_length serves chunked/big.bin note
check close_delimited_no_length serves close/big.bin note
check head_forbidden serves "nohead/big.bin?X-Amz-Signature=good"

no_note_small() { # a small object read in one stream is nothing to say
    "$lumio" get "$u/norange/small.bin" -o "$work/s" 2>"$work/err" && cmp -s "$work/s" "$root/small.bin" &&
        [[ ! -s $work/err ]]
}
check no_note_for_small no_note_small

bench_no_length() {
    "$lumio" bench remote "$u/chunked/big.bin" --read-size 64K >"$work/j" || return 1
    grep -q '"bytes": *20000007' "$work/j" || { cat "$work/j" >&2; return 1; }
}
check bench_remote_no_length bench_no_length

# ---- time --------------------------------------------------------------------------------------

never_answers() {
    local rc
    "$lumio" get "$u/hang/x" -o "$work/h" --timeout 1 2>"$work/err"
    whole_line "$work/err" $? "lumio get: HEAD $u/hang/x: no progress for 1 s" || return 1
    [[ -z $(find "$work" -name '*h*part' -o -name h) ]] || return 1
    "$lumio" cat --timeout 0.5 "$u/hang/y" 2>"$work/err" >/dev/null
    whole_line "$work/err" $? "lumio cat: HEAD $u/hang/y: no progress for 0.5 s" || return 1
    "$lumio" get "$u/hang/z" -o - --timeout 0.5 2>"$work/err" >/dev/null
    whole_line "$work/err" $? "lumio get: HEAD $u/hang/z: no progress for 0.5 s" || return 1
    "$lumio" bench remote "$u/hang/w" --timeout 0.5 2>"$work/err" >/dev/null
    whole_line "$work/err" $? "lumio bench remote: HEAD $u/hang/w: no progress for 0.5 s"
}
check timeout_never_answers never_answers

# Heads that never end in a response are not progress: --timeout ends them (the server would
# send "100 Continue" for 30 s), and a response after too many of them is refused.
interim_heads() {
    "$lumio" get "$u/spam100/x" -o "$work/i" --timeout 1 2>"$work/err"
    whole_line "$work/err" $? "lumio get: HEAD $u/spam100/x: no progress for 1 s" || return 1
    [[ ! -e $work/i ]] || return 1
    "$lumio" cat --timeout 1 "$u/spam100/y" 2>"$work/err" >/dev/null
    whole_line "$work/err" $? "lumio cat: HEAD $u/spam100/y: no progress for 1 s" || return 1
    "$lumio" get "$u/many100/x" -o - 2>"$work/err" >/dev/null
    whole_line "$work/err" $? "lumio get: HEAD $u/many100/x: more than 16 interim (1xx) responses" ||
        return 1
    "$lumio" cat "$u/big100/x" 2>"$work/err" >/dev/null
    whole_line "$work/err" $? "lumio cat: HEAD $u/big100/x: a response header larger than 256 KiB" ||
        return 1
    "$lumio" cat "$u/early/small.bin" | cmp -s - "$root/small.bin"
}
check interim_heads_are_not_progress interim_heads

# HEAD gives the size, GET a body that ends early: cat and get -o - fail (after what came),
# as get -o FILE does, naming where the object ended and its size (after the note on reading
# one stream, which is not an error).
short_body() {
    local says="GET $u/shortbody/big.bin: the object ended at byte 1000, its size was 20000007" rc c
    for c in "cat" "get -o -" "get -o $work/o"; do
        rm -f "$work/o"
        # shellcheck disable=SC2086 # the words of each command
        "$lumio" $c "$u/shortbody/big.bin" 2>"$work/all" >"$work/out"
        rc=$?
        grep -v ': note: ' "$work/all" >"$work/err"
        whole_line "$work/err" $rc "lumio ${c%% *}: $says" || return 1
    done
    [[ ! -e $work/o ]]
}
check short_body_is_an_error short_body

bad_timeouts() {
    local t
    for t in 0 -1 x 1e9 ""; do
        "$lumio" get "$u/plain/big.bin" -o "$work/x" --timeout "$t" 2>/dev/null
        [[ $? -eq 2 ]] || return 1
        "$lumio" cat --timeout "$t" "$u/plain/big.bin" >/dev/null 2>&1
        [[ $? -eq 2 ]] || return 1
    done
    [[ ! -e $work/x ]]
}
check timeout_usage bad_timeouts

# ---- clear errors ------------------------------------------------------------------------------

errors() {
    local p says
    while IFS='|' read -r p says; do
        rm -f "$work/e"
        "$lumio" get "$u/$p" -o "$work/e" 2>"$work/err"
        one_line "$work/err" $? "$p" "$says" || return 1
        [[ ! -e $work/e ]] || return 1
        "$lumio" cat "$u/$p" 2>"$work/err" >/dev/null
        one_line "$work/err" $? "$p" "$says" || return 1
    done <<'LIST'
garbage/x|not an HTTP response
http09/x|not an HTTP response
redirect-file/x|redirect to a file:// URL refused
redirect-gopher/x|redirect to a gopher:// URL refused
bighdr/x|response header line longer than
hugelen/x|Content-Length is out of range
statusonly/x?delay=0.3|connection closed after the status line
LIST
}
check clear_http_errors errors

# ---- a signed request never carries its signature or token to another host ---------------------

signed_redirect() {
    local rc
    : >"$log"
    AWS_ACCESS_KEY_ID=AKIDHOSTILE AWS_SECRET_ACCESS_KEY=SECRETKEYHOSTILE \
        AWS_SESSION_TOKEN=SESSIONTOKENHOSTILE AWS_ENDPOINT_URL=$u LUMIO_S3_ADDRESSING=path \
        "$lumio" get s3://redirect-other/big.bin -o "$work/r" 2>"$work/err"
    one_line "$work/err" $? "redirect-other/big.bin" "refused" || return 1
    AWS_ACCESS_KEY_ID=AKIDHOSTILE AWS_SECRET_ACCESS_KEY=SECRETKEYHOSTILE \
        AWS_SESSION_TOKEN=SESSIONTOKENHOSTILE AWS_ENDPOINT_URL=$u LUMIO_S3_ADDRESSING=path \
        "$lumio" cat s3://redirect-other/big.bin 2>"$work/err" >/dev/null
    one_line "$work/err" $? "redirect-other/big.bin" "refused" || return 1
    ! grep -q HOSTILE "$work/err" || return 1
    /usr/bin/python3 - "$log" <<'PY'
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
signed = [r for r in reqs if r["path"].startswith("/redirect-other/")]
assert signed and all("x-amz-security-token" in r["headers"] for r in signed), reqs
for r in reqs:
    if not r["headers"].get("host", "").startswith("127.0.0.1"):
        h = r["headers"]
        assert "authorization" not in h and not any(k.startswith("x-amz") for k in h), r
        assert "SESSIONTOKENHOSTILE" not in json.dumps(r), r
PY
}
check s3_token_not_redirected signed_redirect

unsigned_redirect() { # an anonymous request is still redirected, to any host
    "$lumio" get "$u/redirect-other/big.bin" -o "$work/r" && cmp -s "$work/r" "$big"
}
check unsigned_redirect_followed unsigned_redirect

# ---- no message shows a password, a signature or a token ---------------------------------------

secrets() {
    local s="http://someone:PWSECRET@127.0.0.1:$port"
    local q="X-Amz-Signature=SIGSECRET&X-Amz-Credential=CREDSECRET&X-Amz-Security-Token=TOKSECRET"
    local -a cmds=(
        "get $s/plain/nope?$q -o $work/n"
        "get $s/plain/nope?$q -o -"
        "get $s/garbage/x?$q -o $work/n"
        "get $s/hang/x?$q -o $work/n --timeout 0.3"
        "get ftp://someone:PWSECRET@127.0.0.1/x?$q"
        "cat $s/plain/nope?$q"
        "cat --timeout 0.3 $s/hang/x?$q"
        "bench remote $s/plain/nope?$q"
        "zarr info $s/plain/nope?$q"
        "zarr cat $s/plain/nope?$q"
        "get http://someone:PW/SECRET@127.0.0.1:$port/plain/nope -o $work/n"
        "cat http://someone:PW?SECRET#x@127.0.0.1:$port/plain/nope"
        "cat $u/plain/nope?api_key=KEYSECRET&password=PWSECRET&client_secret=CSECRET"
        "get $s/shortbody/big.bin?key=KEYSECRET -o $work/n"
        "cat $s/shortbody/big.bin?key=KEYSECRET"
    )
    local c
    for c in "${cmds[@]}"; do
        # shellcheck disable=SC2086 # the words of each command
        "$lumio" $c >/dev/null 2>"$work/err"
        if grep -q 'SECRET' "$work/err" ||
            ! grep -qE '127.0.0.1|ftp://' "$work/err"; then
            echo "  lumio $c:" >&2
            cat "$work/err" >&2
            return 1
        fi
    done
    # Nor in what the commands print on success.
    "$lumio" zarr create "$root/arr" --shape 20,20 --chunks 10,10 --dtype '<u2' >/dev/null || return 1
    chmod -R a+rX "$root/arr"
    "$lumio" zarr bench "$s/plain/arr" --pattern all >"$work/j" 2>"$work/err" || {
        cat "$work/err" >&2
        return 1
    }
    "$lumio" zarr info "$s/plain/arr" >>"$work/j" 2>>"$work/err" || return 1
    if grep -qE 'PWSECRET|SIGSECRET|CREDSECRET|TOKSECRET' "$work/j" "$work/err"; then
        cat "$work/j" "$work/err" >&2
        return 1
    fi
    # A presigned URL's signature is not in bench remote's JSON either.
    "$lumio" bench remote "$u/nohead/big.bin?X-Amz-Signature=good" >"$work/j" || return 1
    ! grep -q 'Signature=good' "$work/j" && grep -q 'Signature=\*\*\*' "$work/j"
}
check no_secrets_in_messages secrets

# ---- get -o: what it writes, and what it must not replace --------------------------------------

# As root, a device node of our own (a copy of /dev/null's): code that replaced the node would
# replace that one, not the machine's /dev/null. As nobody, the real /dev/null (which nobody
# could not replace anyway).
dev_null() {
    if [[ $(id -u) -eq 0 ]]; then
        mknod "$work/null" c 1 3 && chmod 666 "$work/null" || return 1
        "$lumio" get "$u/plain/big.bin" -o "$work/null" || return 1
        [[ -c $work/null && -z $(find "$work" -name '*null*part') ]] || return 1
        rm -f "$work/null"
        if command -v setpriv >/dev/null; then
            setpriv --reuid=nobody --regid=nogroup --clear-groups \
                "$lumio" get "$u/plain/big.bin" -o /dev/null || return 1
        fi
    else
        "$lumio" get "$u/plain/big.bin" -o /dev/null || return 1
    fi
    [[ -c /dev/null ]]
}
check get_dev_null dev_null

out_symlink() { # the link stays; its target gets the object, as curl would write it
    rm -rf "$work/d" && mkdir "$work/d" || return 1
    echo old >"$work/d/target"
    ln -s target "$work/d/link"
    ln -s "$work/d/link" "$work/d/link2"
    "$lumio" get "$u/plain/big.bin" -o "$work/d/link2" || return 1
    [[ -L $work/d/link && -L $work/d/link2 ]] && cmp -s "$work/d/target" "$big" || return 1
    ln -s newtarget "$work/d/dangling"
    "$lumio" get "$u/plain/small.bin" -o "$work/d/dangling" || return 1
    [[ -L $work/d/dangling ]] && cmp -s "$work/d/newtarget" "$root/small.bin" || return 1
    [[ $(find "$work/d" -name '*.part' | wc -l) -eq 0 ]]
}
check get_output_symlink out_symlink

planted() { # a link planted at the old temporary name is never followed
    rm -rf "$work/d" && mkdir "$work/d" || return 1
    echo victim >"$work/d/victim"
    ln -s victim "$work/d/out.part"
    "$lumio" get "$u/plain/big.bin" -o "$work/d/out" || return 1
    cmp -s "$work/d/out" "$big" && [[ $(cat "$work/d/victim") == victim && -L $work/d/out.part ]]
}
check get_planted_part_link planted

fifo() {
    rm -f "$work/fifo" && mkfifo "$work/fifo" || return 1
    cmp -s "$work/fifo" "$big" &
    local reader=$!
    # A FIFO replaced by a file would leave the reader waiting: it is not waited for then.
    if ! "$lumio" get "$u/plain/big.bin" -o "$work/fifo" || [[ ! -p $work/fifo ]]; then
        kill $reader
        wait $reader
        return 1
    fi
    wait $reader
}
check get_fifo fifo

dev_stdout() { # /dev/stdout's kind of link, made here (code that replaced links would not
    # replace the machine's /dev/stdout)
    ln -sf /proc/self/fd/1 "$work/stdout" || return 1
    "$lumio" get "$u/plain/big.bin" -o "$work/stdout" | cmp -s - "$big" && [[ -L $work/stdout ]]
}
check get_dev_stdout dev_stdout

names_path() { # the path given, not a temporary one
    "$lumio" get "$u/plain/small.bin" -o "$work/nodir/x" 2>"$work/err"
    one_line "$work/err" $? "$work/nodir/x:" "No such file or directory" && ! grep -q part "$work/err"
}
check get_names_given_path names_path

nothing_left() { # a failure leaves nothing under the final name nor a temporary one
    rm -rf "$work/d" && mkdir "$work/d" || return 1
    "$lumio" get "$u/plain/nope" -o "$work/d/gone" 2>/dev/null
    [[ $? -eq 1 && -z $(ls -A "$work/d") ]] || return 1
    echo keep >"$work/d/kept"
    "$lumio" get "$u/garbage/x" -o "$work/d/kept" 2>/dev/null
    [[ $? -eq 1 && $(cat "$work/d/kept") == keep && $(ls -A "$work/d") == kept ]] || return 1
    # Killed midway: the temporary file goes too.
    "$lumio" get "$u/hang/x" -o "$work/d/killed" --timeout 60 2>/dev/null &
    local pid=$! i
    for ((i = 0; i < 200; i++)); do
        [[ -n $(find "$work/d" -name '*killed*') ]] && break
        sleep 0.05
    done
    kill -TERM $pid
    wait $pid
    [[ $(ls -A "$work/d") == kept ]] || { ls -A "$work/d" >&2; return 1; }
}
check get_failure_leaves_nothing nothing_left

mode_kept() { # a replaced file keeps its mode; a new one follows the umask
    rm -rf "$work/d" && mkdir "$work/d" || return 1
    echo old >"$work/d/m" && chmod 640 "$work/d/m"
    "$lumio" get "$u/plain/small.bin" -o "$work/d/m" || return 1
    [[ $(stat -c %a "$work/d/m") == 640 ]] || return 1
    (umask 022 && "$lumio" get "$u/plain/small.bin" -o "$work/d/n") || return 1
    [[ $(stat -c %a "$work/d/n") == 644 ]]
}
check get_mode mode_kept

check_done remote_hostile_cli
