#!/usr/bin/env bash
# Compose suite: builds every image, brings the stack of docker-compose.yml up (PostgreSQL,
# two coordinators, dashboard on nginx with TLS from a throw-away CA (tests/lib/tls.sh), two
# workers), waits for health, checks HTTPS through nginx (and a wrong CA refused), submits the
# original README's example job over HTTPS through nginx, checks that it completes on a worker
# container with "Hello World" and that two workers registered; then kills one coordinator while
# a job runs: nginx goes on answering, the agents of the killed one reconnect through nginx to the
# other, the job finishes on its first attempt and the credit invariant holds.  Then it brings
# everything down and removes what it made. Uses Docker when a Docker engine answers, else Podman
# (+ podman-compose).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

pass=0
fail=0
ok() { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
finish() {
    echo "compose: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit $?
}

if [ "$(id -u)" -ne 0 ]; then
    echo "compose: SKIPPED LOUDLY: needs root to run containers with the agent's privileges"
    bad "running as root"
    finish
fi

project=cacheout-test-$$
work=$(mktemp -d)
export COMPOSE_PROJECT_NAME=$project

# shellcheck source=../lib/containers.sh
. "$top/tests/lib/containers.sh"
containers_engine "$work"
if [ "$engine" = docker ]; then
    if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
else
    compose=(podman-compose)
fi
echo "compose: using $engine (${compose[*]})"

cleanup() {
    "${compose[@]}" -p "$project" down -v >/dev/null 2>&1
    for c in $($engine ps -aq --filter "label=com.docker.compose.project=$project" 2>/dev/null) \
             $($engine ps -aq --filter "label=io.podman.compose.project=$project" 2>/dev/null); do
        $engine rm -f "$c" >/dev/null 2>&1
    done
    $engine volume ls -q 2>/dev/null | grep "^${project}_" | xargs -r $engine volume rm -f >/dev/null 2>&1
    $engine network ls -q 2>/dev/null | grep "^${project}_" | xargs -r $engine network rm -f >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

containers_base_image "$work" || { bad "make the debian:bookworm-slim base image"; finish; }
ok "base image debian:bookworm-slim"

if [ ! -f frontend/dist/index.html ]; then
    bad "frontend/dist is built (run make build first)"
    finish
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
export PORT=$(free_port) FRONTEND_PORT=$(free_port) FRONTEND_TLS_PORT=$(free_port) DB_PORT=$(free_port)
# nginx terminates TLS with a certificate of a throw-away CA made for this run.
# shellcheck source=../lib/tls.sh
. "$top/tests/lib/tls.sh"
if tls_make "$work/tls"; then ok "throw-away CA and server certificate"; else bad "throw-away CA"; finish; fi
export TLS_DIR=$work/tls
export ADMIN_TOKEN=compose-admin-token-0123456789-$$ AGENT_TOKEN=compose-agent-$$ WORKER_REPLICAS=2
export COORDINATOR_REPLICAS=2
export POSTGRES_PASSWORD=compose-pw-$$ WORKER_TIMEOUT_SECONDS=30

# podman-compose 1.0 exits 0 even when an image fails to build (and up then runs stale images):
# its log says "exit code: N" after each build.
if "${compose[@]}" -p "$project" build >"$work/build.log" 2>&1 &&
   ! grep -qE '^exit code: [1-9]' "$work/build.log"; then
    ok "images build"
else
    tail -40 "$work/build.log"
    bad "images build"
    finish
fi

mkdir -p /run/cacheout # shared by the workers: sandbox slots are host-wide (images/README.md)
if "${compose[@]}" -p "$project" up -d >"$work/up.log" 2>&1; then
    ok "stack starts"
else
    tail -40 "$work/up.log"
    bad "stack starts"
    finish
fi

wait_for() { # seconds url
    local deadline=$((SECONDS + $1))
    while [ $SECONDS -lt $deadline ]; do
        curl -fsS "$2" >/dev/null 2>&1 && return 0
        sleep 1
    done
    return 1
}
api=http://127.0.0.1:$FRONTEND_PORT
if wait_for 120 "http://127.0.0.1:$PORT/api/v1/health"; then ok "coordinator healthy"; else bad "coordinator healthy"; fi
if wait_for 60 "$api/api/v1/health"; then ok "dashboard port proxies the API"; else bad "dashboard port proxies the API"; fi
if curl -fsS "$api/" | grep -qi '<div id="root"'; then ok "dashboard served"; else bad "dashboard served"; fi
# TLS on nginx: the certificate checks against the run's CA and is refused against another.
tls_api=https://localhost:$FRONTEND_TLS_PORT
if curl -fsS --cacert "$work/tls/ca.pem" "$tls_api/api/v1/health" | grep -q healthy; then
    ok "nginx serves the API over HTTPS (certificate verified)"
else
    bad "nginx serves the API over HTTPS"
fi
err=$(curl -sS --cacert "$work/tls/other-ca.pem" "$tls_api/api/v1/health" 2>&1 >/dev/null)
if grep -q "unable to get local issuer certificate" <<<"$err"; then
    ok "a client trusting another CA refuses nginx's certificate"
else
    bad "a client trusting another CA refuses nginx's certificate (got: $err)"
fi

workers_online() {
    curl -fsS "$api/api/v1/workers" | python3 -c '
import json, sys
ws = json.load(sys.stdin)
print(sum(1 for w in ws if w.get("status") != "offline"))' 2>/dev/null || echo 0
}
deadline=$((SECONDS + 90))
n=0
while [ $SECONDS -lt $deadline ]; do
    n=$(workers_online)
    [ "$n" -ge 2 ] && break
    sleep 1
done
if [ "$n" -ge 2 ]; then ok "two workers registered ($n online)"; else bad "two workers registered (saw $n)"; fi

# The original README's example, verbatim but for the token, the port and https through nginx.
# shellcheck source=../lib/readme_job.sh
. "$top/tests/lib/readme_job.sh"
job=$(readme_job_submit "$tls_api" "$ADMIN_TOKEN" --cacert "$work/tls/ca.pem")
if [ -n "$job" ]; then ok "submit over HTTPS through nginx"; else bad "submit over HTTPS through nginx"; fi
status=$(readme_job_wait "$api" "$job" 120)
if [ "$status" = completed ]; then ok "job completed"; else bad "job completed (status '$status')"; fi
out=$(readme_job_stdout "$api" "$job" "$ADMIN_TOKEN")
if [ "$out" = "Hello World" ]; then ok "job output is Hello World"; else
    bad "job output is Hello World (got: ${out:0:300})"
fi
worker=$(readme_job_field "$api" "$job" assigned_worker)
# Each agent's worker id defaults to its container's host name.
hostnames=$(for c in $($engine ps -q); do $engine inspect -f '{{.Config.Hostname}} {{.Name}}' "$c"; done | awk '$2 ~ /worker/ {print $1}')
if [ -n "$worker" ] && grep -qx "$worker" <<<"$hostnames"; then
    ok "ran on worker container $worker"
else
    bad "ran on a worker container (assigned_worker '$worker', worker containers: $(echo $hostnames))"
fi

# Two coordinators behind nginx: one is killed while a job runs.
names() { $engine ps --format '{{.Names}}' | grep -E "^${project}[_-]$1[_-]" | sort; }
mapfile -t coords < <(names coordinator)
if [ "${#coords[@]}" -eq 2 ]; then ok "two coordinators running"; else
    bad "two coordinators running (saw: ${coords[*]:-none})"
fi
submit_long() {
    curl -fsS -X POST "$api/api/v1/submit" -H "Content-Type: application/json" \
        -H "X-Admin-Token: $ADMIN_TOKEN" -d '{"title": "failover", "required_cores": 1,
        "required_ram_mb": 64, "buyer_id": "default-buyer",
        "command": "python3 -c \"import time; time.sleep(20); print(42 * 1000 + 7)\""}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])' 2>/dev/null
}
connected_now() { # container: 1 when its agent's last connection event is a connect
    $engine logs "$1" 2>&1 | grep -E "connected to coordinator|disconnected from coordinator" |
        tail -n 1 | grep -qv disconnected && echo 1 || echo 0
}
long=$(submit_long)
deadline=$((SECONDS + 90))
st=
while [ -n "$long" ] && [ $SECONDS -lt $deadline ]; do
    st=$(readme_job_field "$api" "$long" status)
    [ "$st" = running ] && break
    sleep 0.5
done
if [ "$st" = running ] && [ "${#coords[@]}" -eq 2 ]; then
    ok "a long job runs ($long)"
    # Kill the coordinator that holds the session of the job's agent.
    w=$(readme_job_field "$api" "$long" assigned_worker)
    victim=${coords[0]} other=${coords[1]}
    if ! $engine logs "$victim" 2>&1 | grep -q "agent welcomed worker=$w "; then
        victim=${coords[1]} other=${coords[0]}
    fi
    $engine kill "$victim" >/dev/null 2>&1
    t0=$SECONDS
    if wait_for 30 "$api/api/v1/health"; then ok "nginx answers with one coordinator killed"; else
        bad "nginx answers with one coordinator killed"
    fi
    mapfile -t workers < <(names worker)
    deadline=$((SECONDS + 90))
    while [ $SECONDS -lt $deadline ]; do
        all=1
        for c in "${workers[@]}"; do [ "$(connected_now "$c")" = 1 ] || all=0; done
        $engine logs "$other" 2>&1 | grep -q "agent welcomed worker=$w " || all=0
        [ $all = 1 ] && break
        sleep 1
    done
    if [ $all = 1 ]; then
        ok "the job's agent ($w) reconnected to the other coordinator ($((SECONDS - t0)) s)"
    else
        bad "the job's agent ($w) reconnected to the other coordinator"
    fi
    st=$(readme_job_wait "$api" "$long" 120)
    attempts=$(readme_job_field "$api" "$long" attempts -H "X-Admin-Token: $ADMIN_TOKEN")
    out=$(readme_job_stdout "$api" "$long" "$ADMIN_TOKEN")
    if [ "$st" = completed ] && [ "$attempts" = 1 ] && [ "$out" = 42007 ]; then
        ok "the job kept running and finished on its first attempt"
    else
        bad "the job kept running (status '$st', attempts '$attempts', output '${out:0:200}')"
    fi
    inv=$(curl -sS -H "X-Admin-Token: $ADMIN_TOKEN" "$api/api/v1/debug/invariant")
    if [ "$inv" = '{"ok":true}' ]; then ok "credit invariant"; else bad "credit invariant ($inv)"; fi
else
    bad "a long job runs (job '$long', status '$st')"
fi

if [ "$fail" -gt 0 ]; then
    for s in coordinator worker frontend; do
        echo "--- logs: $s"
        "${compose[@]}" -p "$project" logs "$s" 2>&1 | tail -30
    done
fi

if "${compose[@]}" -p "$project" down -v >"$work/down.log" 2>&1; then ok "stack down"; else bad "stack down"; fi
left=$($engine ps -aq --filter "name=$project" | wc -l)
if [ "$left" -eq 0 ]; then ok "no containers left"; else bad "no containers left ($left remain)"; fi
finish
