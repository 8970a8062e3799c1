# Sourced by the shell tests: check NAME FUNCTION [ARGS...] runs one check,
# counting it; a failing check prints its name and its output (indented) on
# stderr and the test goes on. The caller sets T (its temporary directory)
# and ends with: echo "NAME: $passed passed, $failed failed"; [ "$failed" -eq 0 ].
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
    fi
}
