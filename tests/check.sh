# shellcheck shell=bash
# Sourced by the shell tests: check NAME FUNCTION [ARGS...] runs one check,
# counting it. A failing check prints its name and its output (indented) on
# stderr and stops the test: the processes the test started (servers, writers,
# commands in the background, and theirs) get SIGTERM, then SIGKILL, and the
# test exits 1 through its EXIT trap. A check that cannot run here (a tool
# missing, not root) ends with `cannot_run WHY`: it counts as skipped.
#
# LUMIO_CHECK_ONLY=FUNCTION,... runs only those checks, LUMIO_CHECK_EXCLUDE
# leaves them out, so that the checks that may be skipped can be a ctest test
# of their own. The caller sets T (its temporary directory) and ends with
# `check_done NAME`: the summary, and status 0, 1, or 77 if a check was
# skipped (ctest: skipped, never passed).
passed=0
failed=0
skipped=0
check_seen=,

cannot_run() { # WHY
    echo "cannot run here: $*"
    return 77
}

check_listed() { # LIST FUNCTION
    [[ ,$1, == *,$2,* ]]
}

check() {
    local name=$1 rc=0
    shift
    check_seen+=$1,
    if [[ -n ${LUMIO_CHECK_ONLY:-} ]] && ! check_listed "$LUMIO_CHECK_ONLY" "$1"; then return 0; fi
    check_listed "${LUMIO_CHECK_EXCLUDE:-}" "$1" && return 0
    "$@" >"$T/check.log" 2>&1 || rc=$?
    if [[ $rc -eq 0 ]]; then
        passed=$((passed + 1))
    elif [[ $rc -eq 77 ]]; then
        skipped=$((skipped + 1))
        echo "SKIP: $name: $(tail -n 1 "$T/check.log")"
    else
        failed=$((failed + 1))
        echo "FAIL: $name" >&2
        sed 's/^/    /' "$T/check.log" >&2
        echo "stopped at the first failed check ($passed passed before it)" >&2
        check_stop_children
        exit 1
    fi
}

check_done() { # NAME
    echo "$1: $passed passed, $failed failed, $skipped skipped"
    local f list=${LUMIO_CHECK_ONLY:-},${LUMIO_CHECK_EXCLUDE:-}
    for f in ${list//,/ }; do
        check_listed "$check_seen" "$f" || { echo "$1: no check runs $f" >&2 && return 1; }
    done
    [[ $failed -eq 0 ]] || return 1
    [[ $((passed + skipped)) -gt 0 ]] || { echo "$1: no check ran" >&2 && return 1; }
    [[ $skipped -eq 0 ]] || return 77
}

# The processes descending from this shell, read from /proc (no command is
# started to find them, so none of them is in the list).
check_descendants() {
    local -A parent=()
    local f stat pid
    for f in /proc/[0-9]*/stat; do
        { read -r stat <"$f"; } 2>/dev/null || continue
        pid=${f#/proc/}
        stat=${stat##*) } # "STATE PPID ..." after the command name
        stat=${stat#* }
        parent[${pid%/stat}]=${stat%% *}
    done
    check_pids=()
    local -a todo=("$$")
    while ((${#todo[@]})); do
        local p=${todo[0]}
        todo=("${todo[@]:1}")
        for pid in "${!parent[@]}"; do
            [[ ${parent[$pid]} == "$p" ]] && check_pids+=("$pid") && todo+=("$pid")
        done
    done
    return 0
}

check_stop_children() {
    check_descendants
    ((${#check_pids[@]})) || return 0
    kill -TERM "${check_pids[@]}" 2>/dev/null || true
    local i pid stat alive
    for ((i = 0; i < 20; i++)); do # 2 s to end
        alive=()
        for pid in "${check_pids[@]}"; do
            { read -r stat <"/proc/$pid/stat"; } 2>/dev/null || continue
            stat=${stat##*) }
            [[ ${stat:0:1} == Z ]] || alive+=("$pid")
        done
        ((${#alive[@]})) || return 0
        sleep 0.1
    done
    kill -KILL "${alive[@]}" 2>/dev/null || true
    return 0
}
