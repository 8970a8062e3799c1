# Sourced by the shell tests: check NAME FUNCTION [ARGS...] runs one check,
# counting it. A failing check prints its name and its output (indented) on
# stderr and stops the test: the processes the test started (servers, writers,
# commands in the background, and theirs) get SIGTERM, then SIGKILL, and the
# test exits 1 through its EXIT trap. The caller sets T (its temporary
# directory) and ends with:
#   echo "NAME: $passed passed, $failed failed"; [ "$failed" -eq 0 ]
passed=0
failed=0

check() {
    local name=$1
    shift
    if "$@" >"$T/check.log" 2>&1; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $name" >&2
        sed 's/^/    /' "$T/check.log" >&2
        echo "stopped at the first failed check ($passed passed before it)" >&2
        check_stop_children
        exit 1
    fi
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
