#!/usr/bin/env bash
# Dashboard benchmark: job throughput with 0 vs 1,000 connected dashboards (bench/e2e's method,
# see bench_dash.py), printing both figures and their ratio (target: >= 0.90).  Figures only.
#
# Environment: CO_SRC_DIR, CO_BUILD_DIR (binaries, including bench/dashboard/dash_load),
# BENCH_JOBS (default 5000), BENCH_THREADS (4), BENCH_DASHBOARDS (1000), BENCH_REPS (3),
# BENCH_MODES (dispatch: the agent in --bench-no-sandbox mode, the coordinator alone is
# measured; add "sandboxed" for jobs really run in the sandbox).
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${CO_SRC_DIR:-$(cd "$here/../.." && pwd)}
build=${CO_BUILD_DIR:-$src/build}
build=$(cd "$build" && pwd)
for bin in "$build/coordinator/cacheout-coordinator" "$build/agent/cacheout-agent" \
    "$build/bench/dashboard/dash_load"; do
    [ -x "$bin" ] || { echo "bench/dashboard: missing $bin (build first)"; exit 1; }
done
n=${BENCH_DASHBOARDS:-1000}
# Every dashboard is one descriptor in the coordinator and one in dash_load.
need=$((n + 512))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
    ulimit -n "$need" 2>/dev/null || {
        echo "bench/dashboard: ulimit -n is $(ulimit -n), below $need, and cannot be raised"
        exit 1
    }
fi
exec python3 "$here/bench_dash.py" --coordinator "$build/coordinator/cacheout-coordinator" \
    --agent "$build/agent/cacheout-agent" --load "$build/bench/dashboard/dash_load" \
    --sql-dir "$src/sql" --jobs "${BENCH_JOBS:-5000}" --threads "${BENCH_THREADS:-4}" \
    --dashboards "$n" --reps "${BENCH_REPS:-3}" --modes "${BENCH_MODES:-dispatch}"
