#!/usr/bin/env bash
# Integration suite: runs every tests/integration/<part>/run.sh in turn, each ending with its own
# "<part>: N passed, M failed" line, and closes with the sum over the parts.  The coordinators of
# every part record their answers (RECORD_ANSWERS; the three scale-out nodes append to the same
# file, a line per write); the last part, openapi, validates them.
set -u
here=$(cd "$(dirname "$0")" && pwd)
status=0
parts=0
pass=0
fail=0
skip=0
log=$(mktemp)
answers=$(mktemp)
trap 'rm -f "$log" "$answers"' EXIT
export RECORD_ANSWERS="$answers" OPENAPI_ANSWERS="$answers"
for part in store api agent dashboard cli webhook scaleout openapi; do
    script="$here/$part/run.sh"
    [ -x "$script" ] || continue
    parts=$((parts + 1))
    echo "== integration/$part"
    "$script" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    line=$(grep -E '^[A-Za-z0-9_./-]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        echo "integration/$part: no closing line (exit $rc): counted as one failure"
        fail=$((fail + 1))
        status=1
        continue
    fi
    p=$(sed -E 's/^[^:]+: ([0-9]+) passed.*/\1/' <<<"$line")
    f=$(sed -E 's/^[^:]+: [0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")
    s=$(sed -nE 's/.*, ([0-9]+) skipped.*/\1/p' <<<"$line")
    pass=$((pass + p))
    fail=$((fail + f))
    skip=$((skip + ${s:-0}))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "integration/$part: exit $rc with no failed case: counted as one failure"
        fail=$((fail + 1))
    fi
    [ "$rc" -ne 0 ] && status=1
done
if [ "$parts" -eq 0 ]; then
    echo "integration: no parts found (expected tests/integration/<part>/run.sh)"
    exit 1
fi
echo "integration: $pass passed, $fail failed, $skip skipped"
[ "$status" -eq 0 ] && [ "$fail" -eq 0 ]
