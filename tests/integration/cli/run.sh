#!/usr/bin/env bash
# CLI suite: the `cacheout` client against real cacheout-coordinator and cacheout-agent
# processes on loopback, on SQLite and on a throw-away PostgreSQL server (tests/lib/pg.sh).  The
# cases live in cli_test.py; this script runs them per database and prints the summary line
# "cli: N passed, M failed[, K skipped]".  Cases whose coordinator feature is missing (accounts,
# input files, artifacts) print SKIP with the reason and count as skipped.
#
# Environment: CO_SRC_DIR, CO_BUILD_DIR (as scripts/test.sh sets them); CLI_SUITE_ONLY=<substring>
# runs only the matching cases.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${CO_SRC_DIR:-$(cd "$here/../../.." && pwd)}
build=${CO_BUILD_DIR:-$src/build}
cli="$build/cli/cacheout"
coord="$build/coordinator/cacheout-coordinator"
agent="$build/agent/cacheout-agent"
driver="$here/cli_test.py"
passed=0
failed=0
skipped=0

summary() {
    if [ "$skipped" -gt 0 ]; then
        echo "cli: $passed passed, $failed failed, $skipped skipped"
    else
        echo "cli: $passed passed, $failed failed"
    fi
}

for bin in "$cli" "$coord" "$agent"; do
    if [ ! -x "$bin" ]; then
        echo "FAIL - cli suite: binary '$bin' is missing (build first; CO_BUILD_DIR=$build)"
        failed=1
        summary
        exit 1
    fi
done
if [ "$(id -u)" -ne 0 ]; then
    echo "NOTE - cli suite: not running as root; the agent's sandbox may refuse to start and" \
        "the cases that run jobs then fail"
fi

# shellcheck source=../../lib/suite.sh
. "$src/tests/lib/suite.sh"
skip_file=$(mktemp)
trap 'rm -f "$skip_file"' EXIT

run_driver() { # label [driver args...]
    local label=$1
    shift
    echo 0 >"$skip_file"
    suite_pass "$label" python3 "$driver" --cli "$cli" --coordinator "$coord" --agent "$agent" \
        --sql-dir "$src/sql" --label "$label" --only "${CLI_SUITE_ONLY:-}" \
        --skip-file "$skip_file" "$@"
    skipped=$((skipped + $(cat "$skip_file" 2>/dev/null || echo 0) + 0))
}

run_driver sqlite

# shellcheck source=../../lib/pg.sh
. "$src/tests/lib/pg.sh"
if pg_start; then
    run_driver postgres --database-url "$DATABASE_URL"
    pg_stop
else
    echo "SKIP - postgres: cannot start a PostgreSQL server (see the message above);" \
        "the cli cases were NOT run on PostgreSQL"
    skipped=$((skipped + $(grep -c '^        case(' "$driver")))
fi

summary
[ "$failed" -eq 0 ]
