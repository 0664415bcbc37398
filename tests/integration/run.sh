#!/usr/bin/env bash
# Integration suite: runs every tests/integration/<part>/run.sh in turn and sums their results.
set -u
here=$(cd "$(dirname "$0")" && pwd)
status=0
parts=0
for part in store api agent; do
    script="$here/$part/run.sh"
    [ -x "$script" ] || continue
    parts=$((parts + 1))
    echo "== integration/$part"
    if ! "$script"; then
        status=1
    fi
done
if [ "$parts" -eq 0 ]; then
    echo "integration: no parts found (expected tests/integration/<part>/run.sh)"
    exit 1
fi
exit $status
