#!/usr/bin/env bash
# Chaos suite: tests/chaos/chaos_test.py on SQLite, then on a throw-away PostgreSQL server
# (tests/lib/pg.sh), about 3 minutes in all.  Closing line "chaos: N passed, M failed".
#
# Environment: CO_SRC_DIR, CO_BUILD_DIR (as scripts/test.sh sets them); CHAOS_SEED replays a
# run's faults (each run prints its seed); CHAOS_SECONDS: seconds of faults per store (60);
# CHAOS_STORES: "sqlite postgres" (default) or one of them.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${CO_SRC_DIR:-$(cd "$here/../.." && pwd)}
build=${CO_BUILD_DIR:-$src/build}
coord="$build/coordinator/cacheout-coordinator"
agent="$build/agent/cacheout-agent"
passed=0
failed=0
# shellcheck source=../lib/suite.sh
. "$src/tests/lib/suite.sh"
suite_need chaos "$coord" "$agent"
# CHAOS_XFAIL: checks expected to fail because of an open bug (comma-separated names, printed
# loudly as XFAIL when they fail, XPASS when they pass).  None is listed by default.
# Formerly listed:
# - outputs (fixed: an agent that ran a job on a connection that was already dead, the
#   coordinator killed and the proxy holding the agent's side open, sent its output and result
#   into it; after a reconnect or a restart only the journaled result was sent again, so the job
#   completed without its output.  Now the agent keeps each attempt's output with its result,
#   journaled when the attempt ends, and sends it again before the result on every new
#   connection; the coordinator drops the bytes it already stored, by offset).
# - platform (fixed: platform-side failures are requeued without using up the buyer's attempts,
#   and reconciliation acts only on mismatches seen twice).
xfail=${CHAOS_XFAIL-}

run_driver() {
    local label=$1
    shift
    suite_pass "$label" timeout --kill-after=30 600 python3 "$here/chaos_test.py" \
        --coordinator "$coord" --agent "$agent" --sql-dir "$src/sql" --label "$label" \
        --duration "${CHAOS_SECONDS:-60}" --xfail "$xfail" ${CHAOS_SEED:+--seed "$CHAOS_SEED"} "$@"
}

stores=${CHAOS_STORES:-sqlite postgres}
[[ " $stores " == *" sqlite "* ]] && run_driver sqlite

# shellcheck source=../lib/pg.sh
. "$src/tests/lib/pg.sh"
if [[ " $stores " != *" postgres "* ]]; then
    echo "NOTE - chaos: PostgreSQL run left out (CHAOS_STORES=$stores)"
elif pg_start; then
    run_driver postgres --pg-port "$PG_PORT" --pg-bin "$PG_BIN" --pg-dir "$PG_DIR" \
        --pg-sh "$src/tests/lib/pg.sh"
    pg_stop
else
    echo "FAIL - chaos: cannot start a PostgreSQL server (see above): the PostgreSQL run did NOT run"
    failed=$((failed + 1))
fi
suite_summary chaos
[ "$failed" -eq 0 ]
