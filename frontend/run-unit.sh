#!/usr/bin/env bash
# Runs the dashboard's static checks and unit tests: ESLint (TypeScript, react-hooks, TanStack
# Query rules) and Prettier each count as one case, then Vitest (live cache, sessions and roles,
# form validation, credit arithmetic). Ends with "frontend-unit: N passed, M failed"; exits non-zero
# on any failure.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

if ! "$root/scripts/build-frontend.sh" --deps; then
    echo "frontend-unit: cannot install the dashboard's dependencies"
    echo "frontend-unit: 0 passed, 1 failed"
    exit 1
fi
report=$(mktemp)
trap 'rm -f "$report"' EXIT
cd "$here"
static_pass=0
static_fail=0
for check in "eslint:npx --no-install eslint --max-warnings 0 ." "prettier:npx --no-install prettier --check --log-level warn ."; do
    name=${check%%:*}
    if ${check#*:}; then
        echo "ok   $name"
        static_pass=$((static_pass + 1))
    else
        echo "FAIL $name (npm run lint / npm run format)"
        static_fail=$((static_fail + 1))
    fi
done
npx --no-install vitest run --reporter=verbose --reporter=json --outputFile.json="$report"
rc=$?
summary=$(node -e '
const fs = require("fs");
let r = {};
try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch {}
const p = r.numPassedTests ?? 0, f = (r.numFailedTests ?? 0) + (r.numRuntimeErrorTestSuites ?? 0)
  + (r.numFailedTestSuites ?? 0) * (r.numTotalTests ? 0 : 1);
console.log(`${p} ${f}`);
' "$report")
read -r passed failed <<<"$summary"
passed=$((passed + static_pass))
failed=$((failed + static_fail))
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1
fi
if [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ]; then
    echo "frontend-unit: no tests ran"
    failed=1
fi
echo "frontend-unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$rc" -eq 0 ]
