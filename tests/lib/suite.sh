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
