#!/usr/bin/env bash
# Completion callbacks suite: the real coordinator (and a real agent for the end-to-end case) on
# loopback with local HTTP receivers, driven by webhook_test.py (Python standard library only),
# on SQLite and on a throw-away PostgreSQL server (tests/lib/pg.sh), then once more on SQLite
# with the sanitizer build and once with the ThreadSanitizer build (reports fail the pass).
#
# Environment: CO_SRC_DIR, CO_BUILD_DIR, CO_ASAN_BUILD_DIR, CO_TSAN_BUILD_DIR (as
# scripts/test.sh sets them);
# WEBHOOK_SUITE_ONLY=<substring> runs only the matching cases.
# Last line: "webhook: N passed, M failed[, K skipped]".
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${CO_SRC_DIR:-$(cd "$here/../../.." && pwd)}
build=${CO_BUILD_DIR:-$src/build}
coord=$build/coordinator/cacheout-coordinator
agent=$build/agent/cacheout-agent
passed=0
failed=0
skipped=0

# shellcheck source=../../lib/suite.sh
. "$src/tests/lib/suite.sh"
suite_need webhook "$coord" "$agent"

run_pass() { # label coordinator agent [driver args...]
    local label=$1 c=$2 a=$3
    shift 3
    suite_pass "$label" python3 "$here/webhook_test.py" --bin "$c" --agent "$a" \
        --sql-dir "$src/sql" --label "$label" --only "${WEBHOOK_SUITE_ONLY:-}" "$@"
}

run_pass sqlite "$coord" "$agent"

# shellcheck source=../../lib/pg.sh
. "$src/tests/lib/pg.sh"
if pg_start; then
    run_pass postgres "$coord" "$agent" --pg-port "$PG_PORT" --pg-bin "$PG_BIN"
    pg_stop
else
    echo "SKIP postgres: cannot start a PostgreSQL server (see above); the webhook cases were" \
        "NOT run on PostgreSQL"
    skipped=$((skipped + 1))
fi

asan=${CO_ASAN_BUILD_DIR:-}
if [ -n "$asan" ] && [ -x "$asan/coordinator/cacheout-coordinator" ] &&
    [ -x "$asan/agent/cacheout-agent" ]; then
    # The driver scans every process log for sanitizer reports at its end.
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} run_pass sqlite-asan \
        "$asan/coordinator/cacheout-coordinator" "$asan/agent/cacheout-agent"
else
    echo "SKIP sqlite-asan: no sanitizer build (CO_ASAN_BUILD_DIR unset or not built)"
    skipped=$((skipped + 1))
fi

# ThreadSanitizer: the delivery thread, the resolver threads and the database threads together.
tsan=${CO_TSAN_BUILD_DIR:-}
if [ -n "$tsan" ] && [ -x "$tsan/coordinator/cacheout-coordinator" ] &&
    [ -x "$tsan/agent/cacheout-agent" ]; then
    TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0 exitcode=66 suppressions=$src/tests/tsan/suppressions.txt} \
        run_pass sqlite-tsan "$tsan/coordinator/cacheout-coordinator" "$tsan/agent/cacheout-agent"
else
    echo "SKIP sqlite-tsan: no ThreadSanitizer build (CO_TSAN_BUILD_DIR unset or not built)"
    skipped=$((skipped + 1))
fi

suite_summary webhook
[ "$failed" -eq 0 ]
