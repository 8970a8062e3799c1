#!/usr/bin/env bash
# The public contract, checked on the built objects (docs/API.md):
#   - liblumio.a defines no global symbol outside the lumio_ prefix, and its
#     lumio_ symbols are either public (LUMIO_API in a header) or internal
#     (lumio__);
#   - liblumio.so exports exactly the public functions;
#   - the layers of src/ depend one way, by includes and by symbols;
#   - the CLI includes only <lumio/...> and its own files, and needs nothing
#     from liblumio but public functions.
set -uo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
T=$tmp
trap 'rm -rf "$tmp"' EXIT
. "$src/tests/check.sh"
# same WANT GOT: the whole text, not a substring.
same() {
    [ "$1" = "$2" ] && return 0
    printf 'want: %s\ngot:  %s\n' "$1" "$2"
    return 1
}

# The public functions, from the headers.
grep -ho "^LUMIO_API[^;(]*(" "$src"/include/lumio/*.h | sed -E 's/.*[^a-z0-9_](lumio_[a-z0-9_]+) *\($/\1/' |
    sort -u >"$tmp/public"
check "headers declare public functions" test -s "$tmp/public"

# Static library: every global defined symbol is lumio_ (public) or lumio__.
nm -g --defined-only "$build/liblumio.a" 2>/dev/null | awk 'NF==3{print $3}' | sort -u >"$tmp/static"
grep -v '^lumio__' "$tmp/static" | comm -23 - "$tmp/public" >"$tmp/stray"
check "liblumio.a: global symbols outside lumio_ (public) and lumio__ (internal)" same "" "$(tr '\n' ' ' <"$tmp/stray" | sed 's/ $//')"

# Shared library: exports the public functions, nothing else.
nm -D --defined-only "$build/liblumio.so" | awk '$2 ~ /[TDBRVW]/{print $3}' | grep -v '^_' | sort -u >"$tmp/dyn"
check "liblumio.so exports only the public API" same "" "$(comm -23 "$tmp/dyn" "$tmp/public" | tr '\n' ' ' | sed 's/ $//')"
check "liblumio.so exports every public function" same "" "$(comm -13 "$tmp/dyn" "$tmp/public" | tr '\n' ' ' | sed 's/ $//')"

# Layers, by includes: which folder may include which.
declare -A allowed=([core]="core" [remote]="core remote" [ring]="core ring remote"
                    [stream]="core stream" [zarr]="core zarr ring remote" [cli]="cli")
declare -A pillar_of=([lumio]=core [ring]=ring [remote]=remote [stream]=stream [zarr]=zarr)
bad=""
for dir in core remote ring stream zarr cli; do
    for f in "$src"/src/$dir/*.[ch]; do
        while read -r inc; do
            case $inc in
                '"'*/*) to=${inc#\"}; to=${to%%/*} ;;
                '<lumio/'*) to=${inc#<lumio/}; to=${pillar_of[${to%.h>}]:-?} ;;
                *) continue ;;
            esac
            [ "$dir" = cli ] && [ "${inc:0:7}" = "<lumio/" ] && continue # the CLI: any public header
            case " ${allowed[$dir]} " in *" $to "*) ;; *) bad+="$(basename "$f") includes $inc; " ;; esac
        done < <(grep -ho '^#include [<"][^>"]*[>"]' "$f" | cut -d' ' -f2)
    done
done
check "src/ folders include one way" same "" "$bad"

# Layers, by symbols: what each folder's objects take from another's.
objdir="$build/CMakeFiles/lumio_obj.dir/src"
# The objects of the sources there now (a build tree may keep stale ones).
objects() { for f in "$src"/src/$1/*.c; do echo "$objdir/$1/$(basename "$f").o"; done; }
for dir in core remote ring stream zarr; do
    # shellcheck disable=SC2046
    nm -g --defined-only $(objects $dir) 2>/dev/null | awk 'NF==3{print $3}' | sort -u >"$tmp/def.$dir"
done
bad=""
for dir in core remote ring stream zarr; do
    # shellcheck disable=SC2046
    nm -u $(objects $dir) 2>/dev/null | awk '{print $2}' | sort -u >"$tmp/und.$dir"
    for other in core remote ring stream zarr; do
        [ "$other" = "$dir" ] && continue
        case " ${allowed[$dir]} " in *" $other "*) continue ;; esac
        hits=$(comm -12 "$tmp/und.$dir" "$tmp/def.$other" | head -3 | tr '\n' ' ')
        [ -n "$hits" ] && bad+="$dir uses $other's $hits; "
    done
done
check "src/ folders depend one way by symbols" same "" "$bad"

# The CLI: built like an application, on the public API alone.
nm -D --undefined-only "$build/lumio" | awk '{print $2}' | grep '^lumio' | sort -u >"$tmp/cli"
check "the CLI links liblumio dynamically" test -s "$tmp/cli"
check "the CLI uses only public functions" same "" "$(comm -23 "$tmp/cli" "$tmp/public" | tr '\n' ' ' | sed 's/ $//')"
check_done contract
