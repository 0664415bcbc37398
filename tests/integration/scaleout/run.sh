#!/usr/bin/env bash
# Scale-out suite: scaleout_test.py runs three coordinators on one throw-away PostgreSQL
# (tests/lib/pg.sh) with real agents spread over them, about a minute; then once more with the
# sanitizer build's coordinators when there is one.  Closing line "scaleout: N passed, M failed".
#
# Environment: CO_SRC_DIR, CO_BUILD_DIR, CO_ASAN_BUILD_DIR (as scripts/test.sh sets them).
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${CO_SRC_DIR:-$(cd "$here/../../.." && pwd)}
build=${CO_BUILD_DIR:-$src/build}
coord="$build/coordinator/cacheout-coordinator"
agent="$build/agent/cacheout-agent"
passed=0
failed=0
# shellcheck source=../../lib/suite.sh
. "$src/tests/lib/suite.sh"
suite_need scaleout "$coord" "$agent"

# shellcheck source=../../lib/pg.sh
. "$src/tests/lib/pg.sh"
asan_coord=${CO_ASAN_BUILD_DIR:+$CO_ASAN_BUILD_DIR/coordinator/cacheout-coordinator}
if pg_start; then
    suite_pass scaleout timeout --kill-after=30 900 python3 "$here/scaleout_test.py" \
        --coordinator "$coord" --agent "$agent" --sql-dir "$src/sql" \
        --pg-port "$PG_PORT" --pg-bin "$PG_BIN"
    if [ -n "$asan_coord" ] && [ -x "$asan_coord" ]; then
        echo "== scaleout with the sanitizer build's coordinators"
        suite_pass scaleout-asan timeout --kill-after=30 900 python3 "$here/scaleout_test.py" \
            --coordinator "$asan_coord" --agent "$agent" --sql-dir "$src/sql" \
            --pg-port "$PG_PORT" --pg-bin "$PG_BIN"
    else
        echo "NOTE - scaleout: no sanitizer build (CO_ASAN_BUILD_DIR): the ASan pass is not run"
    fi
    pg_stop
else
    echo "FAIL - scaleout: cannot start a PostgreSQL server (see above): the suite did NOT run"
    failed=$((failed + 1))
fi
suite_summary scaleout
[ "$failed" -eq 0 ]
