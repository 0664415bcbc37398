#!/usr/bin/env bash
# Fake agents on one coordinator: RSS per connection, CPU per heartbeat, max_loop_callback_us
# and time to assign at 1,000 and 10,000 agents (bench_agents.py, agent_load.c).  Figures only.
#
# Environment: CO_SRC_DIR, CO_BUILD_DIR (binaries, including bench/agents/agent_load),
# BENCH_AGENTS (default "1000,10000"), BENCH_WINDOW (seconds of heartbeats measured, 20),
# BENCH_PG=1 (PostgreSQL, tests/lib/pg.sh, instead of SQLite).
#
# Loopback: every agent is one connection from 127.0.0.1 to the coordinator's port, so N agents
# need N ephemeral ports (net.ipv4.ip_local_port_range, 28,232 by default: enough for 10,000)
# and N descriptors on each side (ulimit -n is raised to N + 512 here when the hard limit
# allows; agent_load raises its own to the hard limit).
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${CO_SRC_DIR:-$(cd "$here/../.." && pwd)}
build=${CO_BUILD_DIR:-$src/build}
build=$(cd "$build" && pwd)
for bin in "$build/coordinator/cacheout-coordinator" "$build/bench/agents/agent_load"; do
    [ -x "$bin" ] || { echo "bench/agents: missing $bin (build first)"; exit 1; }
done
counts=${BENCH_AGENTS:-1000,10000}
max=$(echo "$counts" | tr ',' '\n' | sort -n | tail -1)
need=$((max + 512))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
    ulimit -n "$need" 2>/dev/null || {
        echo "bench/agents: ulimit -n is $(ulimit -n), below $need, and cannot be raised"
        exit 1
    }
fi
read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
if [ $((hi - lo)) -lt "$max" ]; then
    echo "bench/agents: only $((hi - lo)) ephemeral ports (ip_local_port_range $lo $hi) for" \
        "$max agents"
    exit 1
fi
db_args=()
if [ "${BENCH_PG:-0}" = 1 ]; then
    # shellcheck source=../../tests/lib/pg.sh
    . "$src/tests/lib/pg.sh"
    pg_start || { echo "bench/agents: cannot start PostgreSQL"; exit 1; }
    trap pg_stop EXIT
    db_args=(--pg-port "$PG_PORT" --pg-bin "$PG_BIN")
fi
python3 "$here/bench_agents.py" --coordinator "$build/coordinator/cacheout-coordinator" \
    --load "$build/bench/agents/agent_load" --sql-dir "$src/sql" --counts "$counts" \
    --window "${BENCH_WINDOW:-20}" "${db_args[@]}"
