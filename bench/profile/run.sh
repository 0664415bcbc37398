#!/usr/bin/env bash
# Where the agent's and the coordinator's CPU goes per job, under bench/e2e's sandboxed load (run
# by hand as root, not by make test). bench/e2e's `sandboxed` phase runs with BENCH_PERF_OUT set:
# `perf record -g` (cpu-clock, BENCH_PERF_FREQ per second, default 1999) attached to the
# coordinator and to the agent (and so to the sandboxes it clones, until each job's exec) while the
# jobs run; then summarize.py sorts the samples into the steps of a job (clone, mounts, cgroups,
# network namespace, seccomp, exec, reaping, work files, pipes, JSON, WebSocket, SQLite, ...) and
# prints the share of each with its CPU microseconds per job. Samples are taken per process, so
# other users of the machine do not count; kernel workers that finish a sandbox's clean-up
# asynchronously (network namespaces, cgroups) are not attached to any process and are not counted.
#
# Environment: CO_SRC_DIR, CO_BUILD_DIR (binaries), PROFILE_JOBS (default 1500), PROFILE_OUT
# (folder for the perf data, default a temporary folder that is removed), BENCH_PERF_FREQ.
# Needs perf (Debian package linux-perf, scripts/packages/bench.txt).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${CO_SRC_DIR:-$(cd "$here/../.." && pwd)}
build=${CO_BUILD_DIR:-$src/build}
jobs=${PROFILE_JOBS:-1500}
freq=${BENCH_PERF_FREQ:-1999}
if [ "$(id -u)" -ne 0 ]; then
    echo "bench/profile: must run as root (the sandboxes and perf on other processes)" >&2
    exit 1
fi
command -v perf >/dev/null || { echo "bench/profile: perf not installed (linux-perf)" >&2; exit 1; }
out=${PROFILE_OUT:-}
if [ -z "$out" ]; then
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
BENCH_PERF_OUT=$out BENCH_PERF_FREQ=$freq python3 "$src/bench/e2e/bench_e2e.py" \
    --coordinator "$build/coordinator/cacheout-coordinator" --agent "$build/agent/cacheout-agent" \
    --sql-dir "$src/sql" --jobs "$jobs" --threads 4 --cores 8 --phases sandboxed --loop-jobs 0
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
period=$(python3 -c "print(1.0 / $freq)")
for who in agent coordinator; do
    echo
    echo "== $who: CPU by step ($jobs jobs; perf samples at $freq/s)"
    perf script -i "$out/sandboxed-$who.data" -F comm,tid,ip,sym 2>/dev/null |
        python3 "$here/summarize.py" "$jobs" "$period"
done
