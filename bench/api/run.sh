#!/usr/bin/env bash
# API benchmark: wrk against GET /api/v1/health, POST /api/v1/submit and GET /api/v1/jobs?limit=50
# on SQLite and on PostgreSQL (a throw-away server from tests/lib/pg.sh).  Prints requests/s and
# p50/p99 latency per endpoint and store, and the targets (health >= 20,000 req/s, submit >= 3,000
# req/s on SQLite).  Figures only: it does not fail on a missed target.
#
# Environment: CO_SRC_DIR, CO_BUILD_DIR (default build/), BENCH_SECONDS (10), BENCH_CONNECTIONS
# (64), BENCH_THREADS (2), BENCH_STORES ("sqlite postgres"), BENCH_LOG_LEVEL (INFO: the access
# log is on, written to a file, as in production).
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${CO_SRC_DIR:-$(cd "$here/../.." && pwd)}
build=${CO_BUILD_DIR:-$src/build}
bin=$build/coordinator/cacheout-coordinator
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNECTIONS:-64}
threads=${BENCH_THREADS:-2}
stores=${BENCH_STORES:-sqlite postgres}
token=bench-admin-token-0123456789abcdef
export BENCH_DIR=$here BENCH_ADMIN_TOKEN=$token

command -v wrk >/dev/null || { echo "bench/api: wrk is not installed (apt-get install wrk)"; exit 1; }
[ -x "$bin" ] || { echo "bench/api: no coordinator binary at $bin (build first)"; exit 1; }

work=$(mktemp -d /tmp/cacheout-bench-api.XXXXXX)
coord_pid=
cleanup() {
    if [ -n "$coord_pid" ] && kill -0 "$coord_pid" 2>/dev/null; then
        kill "$coord_pid"
        wait "$coord_pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_coord() { # database_url; sets coord_pid and port (not in a subshell)
    port=$(free_port)
    mkdir -p "$work/run"
    (cd "$work/run" && exec env HOST=127.0.0.1 PORT="$port" ADMIN_TOKEN=$token \
        DATABASE_URL="$1" SQL_DIR="$src/sql" DEFAULT_STARTING_CREDITS=1000000000 \
        LOG_LEVEL="${BENCH_LOG_LEVEL:-INFO}" LOG_FILE="$work/run/coordinator.log" \
        "$bin" >"$work/run/stderr.log" 2>&1) &
    coord_pid=$!
    for _ in $(seq 1 100); do
        if curl -fs "http://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    echo "bench/api: the coordinator did not start:" >&2
    tail -20 "$work/run/stderr.log" >&2
    return 1
}

stop_coord() {
    kill "$coord_pid" 2>/dev/null
    wait "$coord_pid" 2>/dev/null
    coord_pid=
    # The longest single database work item (it ran on a database thread, never on the loop).
    grep -o 'max_db_work_us=[0-9]* max_loop_callback_us=[0-9]* max_loop_callback_reason=[0-9]*' "$work/run/coordinator.log" 2>/dev/null | tail -1
    rm -rf "$work/run"
}

bench_store() { # label database_url
    local label=$1 url=$2
    start_coord "$url" || return 1
    echo "== $label ($threads threads, $conns connections, ${secs}s each)"
    for script in health submit jobs; do
        local line
        line=$(wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s "$here/$script.lua" \
            "http://127.0.0.1:$port" 2>&1 | grep '^RESULT ' | sed 's/^RESULT //')
        echo "$label $line"
        results+=("$label $line")
    done
    local committed
    committed=$(curl -fs "http://127.0.0.1:$port/api/v1/health" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["jobs"]["pending"])')
    echo "$label: $committed jobs committed and visible after the submit run"
    stop_coord
}

port=
results=()
for store in $stores; do
    case $store in
    sqlite) bench_store sqlite "sqlite:///$work/bench.db" ;;
    postgres)
        # shellcheck disable=SC1091
        . "$src/tests/lib/pg.sh"
        if pg_start; then
            bench_store postgres "$DATABASE_URL"
            pg_stop
        else
            echo "postgres: skipped (no PostgreSQL server could be started)"
        fi
        ;;
    esac
done

echo
echo "== summary (targets on SQLite: health >= 20000 req/s, submit >= 3000 req/s)"
for r in "${results[@]}"; do echo "$r"; done
