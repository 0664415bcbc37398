#!/usr/bin/env bash
# End-to-end benchmark (see bench_e2e.py): N trivial jobs through HTTP with one local agent.
# Prints jobs/s end to end, p50/p99 submit->finished, p50 submit->agent-receives, and the
# dispatch-only figures with the agent in its benchmark mode (--bench-no-sandbox, never the
# default).  Figures only; nothing is asserted.
#
# Environment: CO_SRC_DIR, CO_BUILD_DIR (binaries), BENCH_JOBS (default 2000), BENCH_THREADS (4),
# BENCH_CORES (cores the agent offers, default 8; 64 in dispatch-only mode: BENCH_DISPATCH_CORES,
# so that 64 jobs can be in flight), BENCH_PHASES
# (latency,sandboxed,dispatch,drain,drain-spread; BENCH_SPREAD agents and buyers, 8),
# BENCH_PG=1 to run the throughput phases on PostgreSQL too (the drains' PostgreSQL / SQLite ratio),
# with the drain by two coordinators on the one database (phase drain2) next to one's, and the
# sandboxed phase by two coordinators, a sandboxing agent on each (phase sandboxed2),
# BENCH_SCHED=0 to leave out the scheduling figures (bench_sched.py; BENCH_UNPLACEABLE, 10000),
# BENCH_ROOTLESS=1 (as root) to run the sandboxed phases again with a rootless agent,
# BENCH_LOOP_JOBS (500): jobs of the `xargs -P<cores> cacheout-run` loop run before and after the
# sandboxed phase (its ratio is printed with the sandboxed figures), BENCH_REPLICAS=1 to add the
# replicas figures (jobs/s with replicas 1 against 2, BENCH_REPLICA_JOBS jobs, default 1000).
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${CO_SRC_DIR:-$(cd "$here/../.." && pwd)}
build=${CO_BUILD_DIR:-$src/build}
args=(--coordinator "$build/coordinator/cacheout-coordinator" --agent "$build/agent/cacheout-agent"
    --run "$build/sandbox/cacheout-run" --loop-jobs "${BENCH_LOOP_JOBS:-500}"
    --sql-dir "$src/sql" --jobs "${BENCH_JOBS:-2000}" --threads "${BENCH_THREADS:-4}"
    --cores "${BENCH_CORES:-8}" --dispatch-cores "${BENCH_DISPATCH_CORES:-64}")
for bin in "$build/coordinator/cacheout-coordinator" "$build/agent/cacheout-agent"; do
    [ -x "$bin" ] || { echo "bench/e2e: missing $bin (build first)"; exit 1; }
done
# The SQLite run records its drain rates, the PostgreSQL run prints its own against them.
BENCH_RATES_FILE=$(mktemp /tmp/cacheout-bench-rates.XXXXXX)
export BENCH_RATES_FILE
trap 'rm -f "$BENCH_RATES_FILE"' EXIT
args+=(--spread "${BENCH_SPREAD:-8}")
python3 "$here/bench_e2e.py" "${args[@]}" --phases "${BENCH_PHASES:-latency,sandboxed,dispatch,drain,drain-spread}" || exit 1
if [ "${BENCH_REPLICAS:-0}" = 1 ]; then
    # The cost of verification: jobs/s with replicas 1 against 2 (two agents of two sellers).
    python3 "$here/bench_e2e.py" "${args[@]}" --replica-jobs "${BENCH_REPLICA_JOBS:-1000}" \
        --phases replicas,replicas-dispatch || exit 1
fi
if [ "${BENCH_ROOTLESS:-0}" = 1 ]; then
    # The sandboxed phases again with a rootless agent (tests/lib/rootless.sh prepares the user).
    # shellcheck source=../../tests/lib/rootless.sh
    . "$src/tests/lib/rootless.sh"
    if rootless_setup "$build" "$build/agent/cacheout-agent"; then
        python3 "$here/bench_e2e.py" "${args[@]}" --rootless-user "$ROOTLESS_USER" \
            --rootless-agent "$ROOTLESS_BIN_DIR/cacheout-agent" --phases latency,sandboxed
        rootless_cleanup
    else
        echo "bench/e2e: rootless figures skipped: $ROOTLESS_WHY"
    fi
fi
if [ "${BENCH_PG:-0}" = 1 ]; then
    # shellcheck source=../../tests/lib/pg.sh
    . "$src/tests/lib/pg.sh"
    pg_run_with bench/e2e python3 "$here/bench_e2e.py" "${args[@]}" \
        --phases "${BENCH_PHASES:-sandboxed,dispatch,drain,drain-spread,drain2,sandboxed2}"
fi
if [ "${BENCH_SCHED:-1}" = 1 ]; then
    # Scheduling figures (bench_sched.py): submit -> assignment behind BENCH_UNPLACEABLE
    # unplaceable jobs, and fair-share start positions of a second buyer.
    python3 "$here/bench_sched.py" --coordinator "$build/coordinator/cacheout-coordinator" \
        --agent "$build/agent/cacheout-agent" --sql-dir "$src/sql" \
        --unplaceable "${BENCH_UNPLACEABLE:-10000}" || exit 1
fi
