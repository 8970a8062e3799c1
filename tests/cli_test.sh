#!/usr/bin/env bash
# Tests of the lumio command-line tool: cat, hash, cp and bench read against
# the standard tools (cat, xxhsum, diff, stat).
#
#     tests/cli_test.sh build/lumio
#     LUMIO_BACKEND=threads tests/cli_test.sh build/lumio
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
    echo "usage: $0 PATH/TO/lumio" >&2
    exit 2
fi
LUMIO=$(realpath "$1")
T=$(mktemp -d)
trap 'chmod -R u+rwx "$T" 2>/dev/null; rm -rf "$T"' EXIT
cd "$T"

. "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/check.sh"

# ---- data ----------------------------------------------------------------------
# Names use only letters and digits, so sorting by full path (as `sort` does)
# and sorting each directory by name (as lumio walks) agree.

mkfile() { head -c "$2" /dev/urandom >"$1"; }

mkdir -p tree/a/deep/er tree/b tree/c
mkfile tree/zero 0
mkfile tree/a/one 1
mkfile tree/a/deep/p4095 4095
mkfile tree/a/deep/er/p4096 4096
mkfile tree/b/k300 300000
mkfile tree/b/m5 $((5 << 20))
mkfile tree/c/x 12345
chmod 640 tree/a/one
chmod 700 tree/a/deep
chmod 555 tree/c
chmod 751 tree/b/k300
ln -s ../b/k300 tree/a/link

files=(tree/zero tree/a/one tree/a/deep/p4095 tree/a/deep/er/p4096 tree/b/k300 tree/b/m5)

# ---- cat -------------------------------------------------------------------------

cat_matches() {
    "$LUMIO" cat "${files[@]}" tree/zero >out.cat &&
        cat "${files[@]}" tree/zero | cmp - out.cat
}

cat_missing() {
    local rc=0
    "$LUMIO" cat tree/a/one nothere tree/b/k300 >out.cat 2>err.cat || rc=$?
    [ "$rc" -ne 0 ] &&
        cat tree/a/one tree/b/k300 | cmp - out.cat &&
        [ "$(cat err.cat)" = "lumio cat: nothere: No such file or directory" ]
}

cat_empty() {
    "$LUMIO" cat tree/zero >out.cat && [ ! -s out.cat ]
}

check "cat of several files equals cat" cat_matches
check "cat of a missing file: message, others printed, exit 1" cat_missing
check "cat of an empty file" cat_empty

# ---- hash ------------------------------------------------------------------------

sorted_files() { find tree -type f | LC_ALL=C sort; }

hash_tree() { # ALGO XXHSUM_FLAG
    "$LUMIO" hash --algo "$1" tree >out.hash &&
        sorted_files | xargs xxhsum "$2" >want.hash &&
        cmp want.hash out.hash
}

hash_files_default() {
    "$LUMIO" hash "${files[@]}" >out.hash &&
        xxhsum -H1 "${files[@]}" >want.hash &&
        cmp want.hash out.hash
}

hash_missing() {
    local rc=0
    "$LUMIO" hash tree/a/one nothere tree/b/m5 >out.hash 2>err.hash || rc=$?
    xxhsum -H1 tree/a/one tree/b/m5 >want.hash
    [ "$rc" -ne 0 ] && cmp want.hash out.hash &&
        [ "$(cat err.hash)" = "lumio hash: nothere: No such file or directory" ]
}

check "hash xxh64 of a tree equals xxhsum -H1" hash_tree xxh64 -H1
check "hash xxh128 of a tree equals xxhsum -H2" hash_tree xxh128 -H2
check "hash xxh3 of a tree equals xxhsum -H3" hash_tree xxh3 -H3
check "hash of files (default xxh64) equals xxhsum -H1" hash_files_default
check "hash with a missing file: named on stderr, others printed, exit 1" hash_missing

# ---- cp --------------------------------------------------------------------------

same_modes() { # A B: every path below A has the same mode below B
    local p
    while IFS= read -r p; do
        [ "$(stat -c %a "$1/$p")" = "$(stat -c %a "$2/$p")" ] || {
            echo "mode of $p differs"
            return 1
        }
    done < <(cd "$1" && find . -mindepth 1 ! -type l)
}

cp_single() {
    "$LUMIO" cp tree/b/k300 copy1 && cmp tree/b/k300 copy1 &&
        [ "$(stat -c %a copy1)" = 751 ]
}

cp_into_dir() {
    mkdir -p into &&
        "$LUMIO" cp tree/a/one tree/b/m5 tree/zero into &&
        cmp tree/a/one into/one && cmp tree/b/m5 into/m5 && cmp tree/zero into/zero &&
        [ "$(stat -c %a into/one)" = 640 ]
}

cp_tree() {
    "$LUMIO" cp tree copytree && diff -r tree copytree && same_modes tree copytree &&
        [ -L copytree/a/link ] && [ "$(readlink copytree/a/link)" = ../b/k300 ]
}

cp_tree_into_dir() {
    mkdir -p dest && "$LUMIO" cp tree dest && diff -r tree dest/tree && same_modes tree dest/tree
}

cp_missing() {
    local rc=0
    "$LUMIO" cp nothere tree/a/one out.dir 2>err.cp || rc=$?
    # several sources need a directory
    [ "$rc" -ne 0 ] && [ "$(cat err.cp)" = "lumio cp: target 'out.dir' is not a directory" ] ||
        return 1
    rc=0
    mkdir -p out.dir && "$LUMIO" cp nothere tree/a/one out.dir 2>err.cp || rc=$?
    [ "$rc" -ne 0 ] && [ "$(cat err.cp)" = "lumio cp: nothere: No such file or directory" ] &&
        cmp tree/a/one out.dir/one
}

check "cp of one file" cp_single
check "cp of several files into a directory" cp_into_dir
check "cp of a tree to a new name" cp_tree
check "cp of a tree into a directory" cp_tree_into_dir
check "cp with a missing source" cp_missing

# ---- bench -----------------------------------------------------------------------

json_field() { # FILE FIELD
    python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).read())[sys.argv[2]])' "$1" "$2"
}

total_bytes() { find tree -type f -printf '%s\n' | awk '{s += $1} END {print s}'; }

bench_sequential() {
    "$LUMIO" bench read "$@" tree >out.json &&
        [ "$(json_field out.json bytes)" = "$(total_bytes)" ] &&
        for k in seconds gib_per_s ops_per_s backend files ops depth threads block direct; do
            json_field out.json "$k" >/dev/null || return 1
        done
}

bench_random() {
    "$LUMIO" bench read --random 500 --size 4K --threads 2 tree >out.json &&
        [ "$(json_field out.json ops)" = 500 ]
}

check "bench read: JSON with bytes = total size" bench_sequential
check "bench read --threads 3 --block 64K --depth 8" bench_sequential --threads 3 --block 64K --depth 8
check "bench read --direct" bench_sequential --direct
check "bench read --random" bench_random

# ---- command line ----------------------------------------------------------------

help_ok() { # ARGS...: --help exits 0 with the usage on stdout
    "$LUMIO" "$@" --help >out.help 2>err.help && grep -q '^usage: lumio' out.help && [ ! -s err.help ]
}

bad_option() { # ARGS...: an unknown option exits 2 with this one line on stderr
    local rc=0
    "$LUMIO" "$@" --no-such-option tree >out.bad 2>err.bad || rc=$?
    [ "$rc" -eq 2 ] && [ "$(cat err.bad)" = "lumio $*: unknown option '--no-such-option' (see --help)" ]
}

for sub in "" cat hash cp bench "bench read"; do
    # shellcheck disable=SC2086 # word splitting of "bench read" is meant
    check "lumio $sub --help" help_ok $sub
done
for sub in cat hash cp "bench read"; do
    # shellcheck disable=SC2086
    check "lumio $sub with an unknown option" bad_option $sub
done

check_done "cli"
