#!/usr/bin/env bash
# OpenAPI suite: keeps coordinator/openapi.json true.  The coordinators of the api, agent, cli
# and webhook suites run with RECORD_ANSWERS=<file> (coord_openapi.h), which appends every REST
# answer they give as a JSON line; validate.py then checks the document itself, the server's route table
# against it (both ways), and every recorded answer (route, status, content type, body schema).
# serve_test.py checks GET /api/v1/openapi.json itself.
#
# Under tests/integration/run.sh the other parts have already run with RECORD_ANSWERS set and
# OPENAPI_ANSWERS names their file: they are not run again.  Alone, this script runs the api,
# agent, cli and webhook drivers on SQLite (their PostgreSQL passes give the same answers from the same
# code).  Environment: CO_SRC_DIR, CO_BUILD_DIR, OPENAPI_ANSWERS.
# Last line: "openapi: N passed, M failed".
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${CO_SRC_DIR:-$(cd "$here/../../.." && pwd)}
build=${CO_BUILD_DIR:-$src/build}
coord="$build/coordinator/cacheout-coordinator"
agent="$build/agent/cacheout-agent"
cli="$build/cli/cacheout"
passed=0
failed=0
# shellcheck source=../../lib/suite.sh
. "$src/tests/lib/suite.sh"
suite_need openapi "$coord"

# validate.py needs jsonschema (python3-jsonschema): the python3 on PATH, or Debian's own.
py=""
for cand in python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import jsonschema' 2>/dev/null; then
        py=$cand
        break
    fi
done
if [ -z "$py" ]; then
    echo "FAIL - openapi suite: no python3 with the jsonschema module (Debian package" \
        "python3-jsonschema, named in scripts/packages/api.txt; run scripts/bootstrap.sh)"
    failed=1
    suite_summary openapi
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
answers=${OPENAPI_ANSWERS:-}
if [ -z "$answers" ]; then
    answers="$tmp/answers.jsonl"
    export RECORD_ANSWERS="$answers"
    echo "== the api, agent, cli and webhook drivers on SQLite, recording their answers"
    # Their counts are not this suite's (their failures are their own suites' business; the
    # answers they got are checked all the same): a summary of them is shown.
    (
        passed=0
        failed=0
        suite_pass api python3 "$src/tests/integration/api/api_test.py" --bin "$coord" \
            --sql-dir "$src/sql" --label sqlite
        if [ -x "$agent" ]; then
            suite_pass agent python3 "$src/tests/integration/agent/agent_test.py" \
                --coordinator "$coord" --agent "$agent" --sql-dir "$src/sql" --label sqlite \
                --rootless-skip "not needed for the OpenAPI answers"
            [ -x "$cli" ] && suite_pass cli python3 "$src/tests/integration/cli/cli_test.py" \
                --cli "$cli" --coordinator "$coord" --agent "$agent" --sql-dir "$src/sql" \
                --label sqlite
            webhook="$src/tests/integration/webhook/webhook_test.py"
            [ -f "$webhook" ] && suite_pass webhook python3 "$webhook" --bin "$coord" \
                --agent "$agent" --sql-dir "$src/sql" --label sqlite
        fi
        echo "drivers: $passed passed, $failed failed (counted by their own suites)"
    ) >"$tmp/drivers.log" 2>&1
    grep -E '^(FAIL|SKIP|drivers:)' "$tmp/drivers.log" | sed 's/^/  /'
fi
echo "== GET /api/v1/openapi.json"
RECORD_ANSWERS="$answers" suite_pass serve "$py" "$here/serve_test.py" --coordinator "$coord" --sql-dir "$src/sql" \
    --doc "$src/coordinator/openapi.json" --out "$tmp/served.json"
served=()
[ -s "$tmp/served.json" ] && served=(--served "$tmp/served.json")

echo "== the document, the route table and $(wc -l <"$answers" 2>/dev/null || echo 0) answers"
suite_pass validate "$py" "$here/validate.py" --doc "$src/coordinator/openapi.json" \
    --api-c "$src/coordinator/coord_api.c" --openapi-c "$src/coordinator/coord_openapi.c" \
    "${served[@]}" "$answers"

suite_summary openapi
[ "$failed" -eq 0 ]
