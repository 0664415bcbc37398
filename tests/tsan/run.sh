#!/usr/bin/env bash
# ThreadSanitizer suite: the build configured with -DCO_SANITIZE=thread (CO_TSAN_BUILD_DIR,
# default build-tsan/) runs
#   - the unit tests of the threaded parts: the database executor (test_coord_db), the event
#     hub (test_coord_events), the agent's job threads and output queue (test_agent_job,
#     test_agent_outq, test_agent_live);
#   - the api integration part on SQLite (--quick), whose last case scans every coordinator log
#     for sanitizer reports;
#   - a short agent run (the README job through a real coordinator and agent on SQLite), whose
#     logs are scanned afterwards.
# A report fails the suite.  Closing line "tsan: N passed, M failed".
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${CO_SRC_DIR:-$(cd "$here/../.." && pwd)}
tsan=${CO_TSAN_BUILD_DIR:-$src/build-tsan}
passed=0
failed=0
coord=$tsan/coordinator/cacheout-coordinator
agent=$tsan/agent/cacheout-agent
if [ ! -x "$coord" ] || [ ! -x "$agent" ]; then
    echo "FAIL tsan: no ThreadSanitizer build in $tsan (scripts/build.sh build-tsan -DCO_SANITIZE=thread)"
    echo "tsan: 0 passed, 1 failed"
    exit 1
fi
# Reports do not stop the process (so that one run shows them all); the process exits 66.
# suppressions.txt says why each suppression is not a race.
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0 exitcode=66 second_deadlock_stack=1 suppressions=$here/suppressions.txt}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
units='^(test_coord_db|test_coord_events|test_agent_job|test_agent_outq|test_agent_live)$'
(cd "$tsan" && ctest -R "$units" --output-on-failure) >"$log" 2>&1
rc=$?
cat "$log"
n=$(grep -c 'Test *#[0-9]*: ' "$log")
reports=$(grep -c 'WARNING: ThreadSanitizer' "$log")
if [ "$rc" -eq 0 ] && [ "$reports" -eq 0 ] && [ "$n" -gt 0 ]; then
    echo "ok   tsan: $n unit tests of the threaded parts, no report"
    passed=$((passed + 1))
else
    echo "FAIL tsan: unit tests (ctest exit $rc, $n run, $reports ThreadSanitizer reports above)"
    failed=$((failed + 1))
fi

# shellcheck source=../lib/suite.sh
. "$src/tests/lib/suite.sh"
suite_pass api-sqlite-tsan python3 "$src/tests/integration/api/api_test.py" --bin "$coord" \
    --sql-dir "$src/sql" --label api-sqlite-tsan --quick

keep_tmp=$(mktemp -d) # this pass's scenario folders only, never another run's
chmod 1777 "$keep_tmp"
skip_file=$(mktemp)
TMPDIR=$keep_tmp AGENT_SUITE_KEEP=1 suite_pass agent-sqlite-tsan python3 "$src/tests/integration/agent/agent_test.py" \
    --coordinator "$coord" --agent "$agent" --sql-dir "$src/sql" --label agent-sqlite-tsan \
    --only t_hello --skip-file "$skip_file" \
    --rootless-skip "not run under ThreadSanitizer"
# The scenarios' folders are kept (AGENT_SUITE_KEEP) for this scan, and removed when clean.
dirs=$(find "$keep_tmp" -maxdepth 1 -type d -name 'cacheout-agent-*')
found=$(grep -lE 'WARNING: ThreadSanitizer' $(find $dirs -maxdepth 1 -name '*.log' 2>/dev/null) \
    /dev/null 2>/dev/null)
rm -f "$skip_file"
if [ -n "$found" ]; then
    echo "FAIL tsan: ThreadSanitizer reports in: $found"
    failed=$((failed + 1))
elif [ -n "$dirs" ]; then
    echo "ok   tsan: no ThreadSanitizer report in the agent run's logs"
    passed=$((passed + 1))
    rm -rf $dirs
else
    echo "FAIL tsan: the agent run left no logs to scan"
    failed=$((failed + 1))
fi
echo "tsan: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
