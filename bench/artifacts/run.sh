#!/usr/bin/env bash
# Artifact throughput benchmark (see bench_artifacts.py): MB/s from a job's end to the download
# of its 64 MiB artifact complete, on SQLite and (BENCH_PG=1) PostgreSQL.  Needs root (a
# sandboxed agent).  Figures only.  Environment: CO_SRC_DIR, CO_BUILD_DIR, BENCH_ARTIFACT_MB (64),
# BENCH_RUNS (3), BENCH_PG.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${CO_SRC_DIR:-$(cd "$here/../.." && pwd)}
build=${CO_BUILD_DIR:-$src/build}
args=(--coordinator "$build/coordinator/cacheout-coordinator" --agent "$build/agent/cacheout-agent"
    --sql-dir "$src/sql" --mb "${BENCH_ARTIFACT_MB:-64}" --runs "${BENCH_RUNS:-3}")
python3 "$here/bench_artifacts.py" "${args[@]}" || exit 1
if [ "${BENCH_PG:-0}" = 1 ]; then
    # shellcheck source=../../tests/lib/pg.sh
    . "$src/tests/lib/pg.sh"
    pg_run_with bench/artifacts python3 "$here/bench_artifacts.py" "${args[@]}"
fi
