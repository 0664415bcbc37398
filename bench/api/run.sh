#!/usr/bin/env bash
# API benchmark: wrk against GET /api/v1/health, POST /api/v1/submit and GET /api/v1/jobs?limit=50
# on SQLite and on PostgreSQL (a throw-away server from tests/lib/pg.sh); health and submit also
# with the admin token against a bearer key each (the cost of authentication).  Prints requests/s and
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

# One buy key per bench buyer (limits off, so that only authentication differs from the admin
# token): BENCH_KEYS="bench-buyer-0=co_...,...".
make_keys() {
    local keys="" i tok
    for i in $(seq 0 63); do
        curl -fs -X POST "http://127.0.0.1:$port/api/v1/users" -H "X-Admin-Token: $token" \
            -H "Content-Type: application/json" -d "{\"user_id\": \"bench-buyer-$i\"}" >/dev/null
        curl -fs -X PATCH "http://127.0.0.1:$port/api/v1/users/bench-buyer-$i" \
            -H "X-Admin-Token: $token" -H "Content-Type: application/json" \
            -d '{"limits": {"submit_per_second": 0, "max_pending_jobs": 0}}' >/dev/null
        tok=$(curl -fs -X POST "http://127.0.0.1:$port/api/v1/users/bench-buyer-$i/keys" \
            -H "X-Admin-Token: $token" -H "Content-Type: application/json" \
            -d '{"name": "bench", "scopes": ["buy"]}' |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])') || return 1
        keys="$keys${keys:+,}bench-buyer-$i=$tok"
    done
    export BENCH_KEYS=$keys
}

# CPU time (user + system, in clock ticks) the coordinator has used so far.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$coord_pid/stat"
}

# One wrk run; the line gets the coordinator's CPU time per request, a figure that other load
# on the machine disturbs much less than the request rate.
run_wrk() { # label script [BENCH_AUTH]
    local line c0 c1 n hz
    hz=$(getconf CLK_TCK)
    c0=$(cpu_ticks)
    line=$(BENCH_AUTH=${3:-} wrk -t"$threads" -c"$conns" -d"${secs}s" --latency \
        -s "$here/$2.lua" "http://127.0.0.1:$port" 2>&1 | grep '^RESULT ' | sed 's/^RESULT //')
    c1=$(cpu_ticks)
    n=$(echo "$line" | sed -nE 's/.*\(([0-9]+) requests.*/\1/p')
    if [ -n "$n" ] && [ "$n" -gt 0 ]; then
        line="$line, coordinator CPU $(awk -v d="$((c1 - c0))" -v n="$n" -v hz="$hz" \
            'BEGIN {printf "%.1f", d * 1e6 / hz / n}') us/request"
    fi
    echo "$1 $line"
    results+=("$1 $line")
}

# The mean CPU us/request of the results named @2 for store @1.
cpu_of() {
    local r
    for r in "${results[@]}"; do
        case $r in "$1 $2:"*) echo "$r" | sed -nE 's/.*coordinator CPU ([0-9.]+) us.*/\1/p' ;; esac
    done | awk '{s += $1; n++} END {if (n) printf "%.1f", s / n}'
}

# The request rate of the last result named @2 ("health+key") for store @1.
rate_of() {
    local r
    for r in "${results[@]}"; do
        case $r in "$1 $2:"*) echo "$r" | sed -E 's/^[^:]+: ([0-9]+) req\/s.*/\1/' ;; esac
    done | awk '{s += $1; n++} END {if (n) printf "%.0f", s / n}'
}

bench_store() { # label database_url
    local label=$1 url=$2
    start_coord "$url" || return 1
    make_keys || { echo "bench/api: could not create the bench keys" >&2; stop_coord; return 1; }
    echo "== $label ($threads threads, $conns connections, ${secs}s each)"
    run_wrk "$label" health
    # Authentication: the same requests with the admin token and with keys, interleaved
    # (A K K A) so that neither side gets the warmer or the emptier database.
    run_wrk "$label" health admin
    run_wrk "$label" health key
    run_wrk "$label" health key
    run_wrk "$label" health admin
    run_wrk "$label" submit admin
    run_wrk "$label" submit key
    run_wrk "$label" submit key
    run_wrk "$label" submit admin
    run_wrk "$label" jobs
    local what a k ca ck
    for what in health submit; do
        a=$(rate_of "$label" "$what+admin")
        k=$(rate_of "$label" "$what+key")
        ca=$(cpu_of "$label" "$what+admin")
        ck=$(cpu_of "$label" "$what+key")
        if [ -n "$a" ] && [ -n "$k" ] && [ "$a" -gt 0 ]; then
            auth_lines+=("$label $what: admin token $a req/s, bearer key $k req/s ($(awk \
                -v a="$a" -v k="$k" 'BEGIN {printf "%+.1f%%", (k - a) * 100 / a}')); CPU \
$ca vs $ck us/request ($(awk -v a="$ca" -v k="$ck" \
                'BEGIN {if (a > 0) printf "%+.1f%%", (k - a) * 100 / a}'))")
        fi
    done
    local committed
    committed=$(curl -fs "http://127.0.0.1:$port/api/v1/health" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["jobs"]["pending"])')
    echo "$label: $committed jobs committed and visible after the submit run"
    stop_coord
}

port=
results=()
auth_lines=()
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
echo
echo "== authentication: bearer key against the admin token (mean of 2 runs each; target: < 5% slower)"
for r in "${auth_lines[@]}"; do echo "$r"; done
# The same cost without the noise of the machine: the lws thread's work per request.
if [ -x "$build/bench/api/auth_cost" ]; then
    cost=$("$build/bench/api/auth_cost")
    echo "$cost"
    h=$(cpu_of sqlite "health+admin")
    if [ -n "$h" ]; then
        echo "$cost" | awk -v h="$h" '{a = $4; k = $12;
            printf "auth_cost: the key costs %.0f ns more than the token: %.1f%% of the %s us of CPU a health request takes\n",
                k - a, (k - a) / 10 / h, h}'
    fi
fi
