#!/usr/bin/env bash
# Agent protocol suite: real cacheout-coordinator and cacheout-agent processes on loopback,
# on SQLite and on a throw-away PostgreSQL server (tests/lib/pg.sh).  The scenarios live in
# agent_test.py (one line per case); this script runs them per database and prints the summary
# line "agent: N passed, M failed[, K skipped]".
#
# Environment: CO_SRC_DIR (repository root), CO_BUILD_DIR (build whose binaries are tested),
# CO_ASAN_BUILD_DIR (if it holds both binaries, the SQLite pass runs again with them, so that
# ASan/UBSan see every scenario).
# The rootless scenarios (an agent started as an unprivileged user, see tests/lib/rootless.sh)
# need root to set that user up; elsewhere they are counted as skipped and say why.
# AGENT_SUITE_ONLY=<substring> runs only the matching scenarios, AGENT_SUITE_KEEP=1 keeps the work
# directories of passing scenarios too (failing ones are always kept and named), for debugging.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${CO_SRC_DIR:-$(cd "$here/../../.." && pwd)}
build=${CO_BUILD_DIR:-$src/build}
coord="$build/coordinator/cacheout-coordinator"
agent="$build/agent/cacheout-agent"
driver="$here/agent_test.py"
n_cases=$(grep -c '^@case(' "$driver") # on PostgreSQL (some are PostgreSQL-only)

passed=0
failed=0
skipped=0

# shellcheck source=../../lib/suite.sh
. "$src/tests/lib/suite.sh"
suite_need agent "$coord" "$agent"
if [ "$(id -u)" -ne 0 ]; then
    echo "NOTE - agent suite: not running as root; an agent whose sandbox fails its start-up" \
        "self-test exits, so the scenarios that run jobs fail"
fi

# The rootless scenarios start cacheout-agent as an unprivileged user (tests/lib/rootless.sh
# makes it and copies the agent where that user can read it); without that set-up they are
# reported as skipped, with the reason.
# shellcheck source=../../lib/rootless.sh
. "$src/tests/lib/rootless.sh"
rootless_args=()
if rootless_setup "$build" "$agent"; then
    rootless_args=(--rootless-user "$ROOTLESS_USER"
        --rootless-agent "$ROOTLESS_BIN_DIR/cacheout-agent")
    echo "NOTE - agent suite: rootless scenarios run as $ROOTLESS_USER (uid $ROOTLESS_UID)"
else
    echo "SKIP - agent suite: the rootless scenarios will NOT run: $ROOTLESS_WHY"
    rootless_args=(--rootless-skip "rootless set-up impossible here: $ROOTLESS_WHY")
fi
skip_file=$(mktemp)
cleanup() {
    rootless_cleanup
    rm -f "$skip_file"
}
trap cleanup EXIT

# run_driver LABEL [driver args...]: run the scenarios and add their counts (skipped ones too).
run_driver() {
    local label=$1
    shift
    : >"$skip_file"
    suite_pass "$label" python3 "$driver" --coordinator "${run_coord:-$coord}" \
        --agent "${run_agent:-$agent}" --sql-dir "$src/sql" --label "$label" \
        --only "${AGENT_SUITE_ONLY:-}" --skip-file "$skip_file" "$@"
    skipped=$((skipped + $(cat "$skip_file" 2>/dev/null || echo 0) + 0))
}

run_driver sqlite "${rootless_args[@]}"

# shellcheck source=../../lib/pg.sh
. "$src/tests/lib/pg.sh"
if pg_start; then
    run_driver postgres --pg-port "$PG_PORT" --pg-bin "$PG_BIN" --pg-dir "$PG_DIR" \
        --pg-sh "$src/tests/lib/pg.sh" "${rootless_args[@]}"
    pg_stop
else
    echo "SKIP - postgres: cannot start a PostgreSQL server (see the message above);" \
        "the $n_cases scenarios were NOT run on PostgreSQL"
    skipped=$((skipped + n_cases))
fi

asan=${CO_ASAN_BUILD_DIR:-}
if [ -n "$asan" ] && [ -x "$asan/coordinator/cacheout-coordinator" ] &&
    [ -x "$asan/agent/cacheout-agent" ]; then
    # Errors abort the process (-fno-sanitize-recover) and fail their scenario; leaks are only
    # reported at exit, so every log of this pass is scanned for sanitizer reports afterwards.
    # The pass's scenario folders go to a folder of its own, so that the scan below sees only
    # them (never another run's on the same machine).
    keep_tmp=$(mktemp -d)
    chmod 1777 "$keep_tmp"
    # The rootless scenarios too, with a copy of the sanitizer build's agent that user can run.
    asan_rootless=("${rootless_args[@]}")
    if [ -n "${ROOTLESS_BIN_DIR:-}" ]; then
        mkdir -p "$ROOTLESS_BIN_DIR/asan"
        cp "$asan/agent/cacheout-agent" "$ROOTLESS_BIN_DIR/asan/"
        chmod -R a+rX "$ROOTLESS_BIN_DIR/asan"
        asan_rootless=(--rootless-user "$ROOTLESS_USER"
            --rootless-agent "$ROOTLESS_BIN_DIR/asan/cacheout-agent")
    fi
    TMPDIR=$keep_tmp ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} AGENT_SUITE_KEEP=1 \
        run_coord="$asan/coordinator/cacheout-coordinator" run_agent="$asan/agent/cacheout-agent" \
        run_driver sqlite-asan "${asan_rootless[@]}"
    dirs=$(find "$keep_tmp" -maxdepth 1 -type d -name 'cacheout-agent-*')
    reports=$(grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' \
        $(find $dirs -maxdepth 1 -name '*.log' 2>/dev/null) /dev/null 2>/dev/null)
    if [ -n "$reports" ]; then
        echo "FAIL - sqlite-asan: sanitizer reports in: $reports"
        failed=$((failed + 1))
    else
        echo "ok   - sqlite-asan: no sanitizer report in the logs of the pass"
        passed=$((passed + 1))
        # Passing scenarios' folders were kept only for this scan.
        rm -rf $dirs
        echo "    # the folders kept for the scan are removed again"
    fi
    rmdir "$keep_tmp" 2>/dev/null || true
else
    echo "NOTE - agent suite: no sanitizer build (CO_ASAN_BUILD_DIR); the ASan pass is not run"
fi

suite_summary agent
[ "$failed" -eq 0 ]
