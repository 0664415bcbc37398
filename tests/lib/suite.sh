# Sourced by the integration suites whose cases run in a Python driver that ends with the line
# "RESULT <passed> <failed>" (api, agent, dashboard).  The caller keeps the totals in $passed
# and $failed.

# suite_pass LABEL COMMAND...: run COMMAND (its output passes through) and add its counts; a
# driver that ends without a RESULT line (crashed, timed out) counts as one failure.
suite_pass() {
    local label=$1 out line
    shift
    out=$(mktemp)
    "$@" 2>&1 | tee "$out"
    line=$(grep '^RESULT ' "$out" | tail -n 1)
    rm -f "$out"
    if [ -z "$line" ]; then
        echo "FAIL $label: the test driver crashed or timed out"
        failed=$((failed + 1))
        return
    fi
    passed=$((passed + $(cut -d' ' -f2 <<<"$line")))
    failed=$((failed + $(cut -d' ' -f3 <<<"$line")))
}

# suite_summary NAME: the closing line "NAME: P passed, F failed[, K skipped]" from $passed,
# $failed and $skipped (when set and above 0).
suite_summary() {
    if [ "${skipped:-0}" -gt 0 ]; then
        echo "$1: $passed passed, $failed failed, $skipped skipped"
    else
        echo "$1: $passed passed, $failed failed"
    fi
}

# suite_need NAME BINARY...: each BINARY must be executable; else one failure, the closing line,
# and the script ends (nothing can run without the build).
suite_need() {
    local name=$1 bin
    shift
    for bin in "$@"; do
        if [ ! -x "$bin" ]; then
            echo "FAIL - $name: binary '$bin' is missing (build first; CO_BUILD_DIR=${build:-unset})"
            failed=$((failed + 1))
            suite_summary "$name"
            exit 1
        fi
    done
}
