#!/usr/bin/env bash
# CLI suite: the `cacheout` client against real cacheout-coordinator and cacheout-agent
# processes on loopback, on SQLite and on a throw-away PostgreSQL server (tests/lib/pg.sh).  The
# cases live in cli_test.py; this script runs them per database and prints the summary line
# "cli: N passed, M failed[, K skipped]".  A case that cannot run here (the TLS case without a
# test CA) prints SKIP with the reason and counts as skipped.
#
# Environment: CO_SRC_DIR, CO_BUILD_DIR, CO_ASAN_BUILD_DIR (as scripts/test.sh sets them; with a
# sanitizer build, a third pass on SQLite runs its cacheout); CLI_SUITE_ONLY=<substring> runs only
# the matching cases.
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

# shellcheck source=../../lib/suite.sh
. "$src/tests/lib/suite.sh"
suite_need cli "$cli" "$coord" "$agent"
if [ "$(id -u)" -ne 0 ]; then
    echo "NOTE - cli suite: not running as root; the agent's sandbox may refuse to start and" \
        "the cases that run jobs then fail"
fi

skip_file=$(mktemp)
tls_dir=$(mktemp -d)
trap 'rm -rf "$skip_file" "$tls_dir"' EXIT
# shellcheck source=../../lib/tls.sh
. "$src/tests/lib/tls.sh"
tls_args=(--tls-dir "$tls_dir")
if ! tls_make "$tls_dir" >/dev/null; then
    echo "NOTE - cli suite: no test CA (tls_make failed): the TLS case is skipped"
    tls_args=()
fi

run_driver() { # label [driver args...]
    local label=$1
    shift
    echo 0 >"$skip_file"
    suite_pass "$label" python3 "$driver" --cli "$cli" --coordinator "$coord" --agent "$agent" \
        --sql-dir "$src/sql" --label "$label" --only "${CLI_SUITE_ONLY:-}" \
        --skip-file "$skip_file" "${tls_args[@]}" "$@"
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

# The sanitizer build's cacheout on SQLite: an ASan/UBSan report aborts it, and a leak report at
# exit changes its exit status, so either fails the case that ran it.
asan=${CO_ASAN_BUILD_DIR:-}
if [ -n "$asan" ] && [ -x "$asan/cli/cacheout" ]; then
    cli="$asan/cli/cacheout" ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} run_driver sqlite-asan
else
    echo "NOTE - cli suite: no sanitizer build of cacheout (CO_ASAN_BUILD_DIR); the ASan pass" \
        "is not run"
fi

suite_summary cli
[ "$failed" -eq 0 ]
