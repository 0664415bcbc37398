#!/usr/bin/env bash
# Integration tests of the coordinator's REST API: the real binary on free loopback ports,
# driven over HTTP by api_test.py (Python standard library only), against SQLite and against a
# throw-away PostgreSQL (tests/lib/pg.sh), then once more from the sanitizer build (SQLite).
#
# Environment: CO_SRC_DIR (repo root), CO_BUILD_DIR (binaries to test, default build/),
# CO_ASAN_BUILD_DIR (optional sanitizer build), API_TEST_PG=0 to skip PostgreSQL.
# Last line: "api: N passed, M failed[, K skipped]".
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${CO_SRC_DIR:-$(cd "$here/../../.." && pwd)}
build=${CO_BUILD_DIR:-$src/build}
bin=$build/coordinator/cacheout-coordinator
passed=0
failed=0
skipped=0

if [ ! -x "$bin" ]; then
    echo "FAIL api: coordinator binary not found at $bin (build first)"
    echo "api: 0 passed, 1 failed"
    exit 1
fi
if ! command -v python3 >/dev/null || ! command -v curl >/dev/null; then
    echo "FAIL api: python3 and curl are needed"
    echo "api: 0 passed, 1 failed"
    exit 1
fi

# shellcheck source=../../lib/suite.sh
. "$src/tests/lib/suite.sh"
run_pass() { # label binary [extra args...]
    local label=$1 binary=$2
    shift 2
    suite_pass "$label" python3 "$here/api_test.py" --bin "$binary" --sql-dir "$src/sql" \
        --label "$label" "$@"
}

run_pass sqlite "$bin"

if [ "${API_TEST_PG:-1}" = 0 ]; then
    echo "SKIP postgres: API_TEST_PG=0"
    skipped=$((skipped + 1))
else
    # shellcheck disable=SC1091
    . "$src/tests/lib/pg.sh"
    if pg_start; then
        run_pass postgres "$bin" --database-url "$DATABASE_URL" --pg-dir "$PG_DIR" \
            --pg-port "$PG_PORT" --pg-bin "$PG_BIN" --quick
        pg_stop
    else
        echo "FAIL postgres: could not start a PostgreSQL server (see above); install package postgresql"
        failed=$((failed + 1))
    fi
fi

asan_bin=${CO_ASAN_BUILD_DIR:+$CO_ASAN_BUILD_DIR/coordinator/cacheout-coordinator}
if [ -n "$asan_bin" ] && [ -x "$asan_bin" ]; then
    run_pass sqlite-asan "$asan_bin" --quick
else
    echo "SKIP sqlite-asan: no sanitizer build (CO_ASAN_BUILD_DIR unset or not built)"
    skipped=$((skipped + 1))
fi

echo "api: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
