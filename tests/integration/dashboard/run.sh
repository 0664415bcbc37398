#!/usr/bin/env bash
# Integration tests of the dashboard WebSocket (proto/DASHBOARD.md): the real coordinator on a
# free loopback port, driven by dash_test.py (a standard-library RFC 6455 client and a scripted
# fake agent), against SQLite, against a throw-away PostgreSQL (tests/lib/pg.sh) and once more
# from the sanitizer build.
#
# Environment: CO_SRC_DIR (repo root), CO_BUILD_DIR (binaries to test, default build/),
# CO_ASAN_BUILD_DIR (optional sanitizer build), DASH_TEST_PG=0 to skip PostgreSQL.
# Last line: "dashboard: N passed, M failed[, K skipped]".
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${CO_SRC_DIR:-$(cd "$here/../../.." && pwd)}
build=${CO_BUILD_DIR:-$src/build}
build=$(cd "$build" 2>/dev/null && pwd || echo "$build")
bin=$build/coordinator/cacheout-coordinator
passed=0
failed=0
skipped=0

if [ ! -x "$bin" ]; then
    echo "FAIL dashboard: coordinator binary not found at $bin (build first)"
    echo "dashboard: 0 passed, 1 failed"
    exit 1
fi
if ! command -v python3 >/dev/null; then
    echo "FAIL dashboard: python3 is needed"
    echo "dashboard: 0 passed, 1 failed"
    exit 1
fi

# shellcheck source=../../lib/suite.sh
. "$src/tests/lib/suite.sh"
run_pass() { # label binary [extra args...]
    local label=$1 binary=$2
    shift 2
    suite_pass "$label" timeout 600 python3 "$here/dash_test.py" --bin "$binary" \
        --sql-dir "$src/sql" --label "$label" "$@"
}

run_pass sqlite "$bin"

if [ "${DASH_TEST_PG:-1}" = 0 ]; then
    echo "SKIP postgres: DASH_TEST_PG=0"
    skipped=$((skipped + 1))
else
    # shellcheck source=../../lib/pg.sh
    . "$src/tests/lib/pg.sh"
    if pg_start; then
        run_pass postgres "$bin" --database-url "$DATABASE_URL" --quick
        pg_stop
    else
        echo "SKIP postgres: could not start a PostgreSQL server (see above; package postgresql)"
        skipped=$((skipped + 1))
    fi
fi

asan_bin=${CO_ASAN_BUILD_DIR:+$CO_ASAN_BUILD_DIR/coordinator/cacheout-coordinator}
if [ -n "$asan_bin" ] && [ -x "$asan_bin" ]; then
    run_pass sqlite-asan "$(cd "$(dirname "$asan_bin")" && pwd)/cacheout-coordinator" --quick
else
    echo "SKIP sqlite-asan: no sanitizer build (CO_ASAN_BUILD_DIR unset or not built)"
    skipped=$((skipped + 1))
fi

echo "dashboard: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
