#!/usr/bin/env bash
# Callback latency benchmark (see bench_webhook.py): from a job's end (its completed_at) to the
# first POST of its callback received by a local receiver; p50/p90/max over BENCH_JOBS jobs run
# by a real agent (needs root for its sandbox), on SQLite and (BENCH_PG=1) PostgreSQL.  Figures
# only.  Environment: CO_SRC_DIR, CO_BUILD_DIR, BENCH_JOBS (30), BENCH_PG.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${CO_SRC_DIR:-$(cd "$here/../.." && pwd)}
build=${CO_BUILD_DIR:-$src/build}
args=(--coordinator "$build/coordinator/cacheout-coordinator" --agent "$build/agent/cacheout-agent"
    --sql-dir "$src/sql" --jobs "${BENCH_JOBS:-30}")
python3 "$here/bench_webhook.py" "${args[@]}" || exit 1
if [ "${BENCH_PG:-0}" = 1 ]; then
    # shellcheck source=../../tests/lib/pg.sh
    . "$src/tests/lib/pg.sh"
    pg_run_with bench/webhook python3 "$here/bench_webhook.py" "${args[@]}"
fi
