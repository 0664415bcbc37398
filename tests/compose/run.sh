#!/usr/bin/env bash
# Compose suite: builds every image, brings the stack of docker-compose.yml up (PostgreSQL,
# coordinator, dashboard on nginx, two workers), waits for health, submits the original README's
# example job through the dashboard's port, checks that it completes on a worker container with
# "Hello World" and that two workers registered, then brings everything down and removes what it
# made. Uses Docker when a Docker engine answers, else Podman (+ podman-compose).
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

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    engine=docker
    if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
else
    engine=podman
    compose=(podman-compose)
    # Settings for machines without systemd (see images/README.md); kept out of /etc.
    cat >"$work/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
    export CONTAINERS_CONF=$work/containers.conf
    export BUILDAH_FORMAT=docker # keep HEALTHCHECK in the images
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

# Base image: no registry is reachable here, so debian:bookworm-slim is made with debootstrap from
# the machine's own Debian mirror, once, and kept for later runs.
if ! $engine image exists docker.io/library/debian:bookworm-slim 2>/dev/null &&
   ! $engine image inspect debian:bookworm-slim >/dev/null 2>&1; then
    if ! timeout 120 $engine pull -q debian:bookworm-slim >/dev/null 2>&1; then
        echo "compose: making debian:bookworm-slim with debootstrap"
        mirror=$(images/debian-mirror.sh) || { bad "find a Debian mirror"; finish; }
        if debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 &&
           tar -C "$work/rootfs" -c . | $engine import - localhost/debian:bookworm-slim >/dev/null; then
            $engine tag localhost/debian:bookworm-slim docker.io/library/debian:bookworm-slim
            rm -rf "$work/rootfs"
        else
            tail -20 "$work/debootstrap.log"
            bad "make the debian:bookworm-slim base image"
            finish
        fi
    fi
fi
ok "base image debian:bookworm-slim"

if [ ! -f frontend/dist/index.html ]; then
    bad "frontend/dist is built (run make build first)"
    finish
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
export PORT=$(free_port) FRONTEND_PORT=$(free_port) DB_PORT=$(free_port)
export ADMIN_TOKEN=compose-admin-token-0123456789-$$ AGENT_TOKEN=compose-agent-$$ WORKER_REPLICAS=2
export POSTGRES_PASSWORD=compose-pw-$$ WORKER_TIMEOUT_SECONDS=30

if "${compose[@]}" -p "$project" build >"$work/build.log" 2>&1; then
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

# The original README's example, verbatim but for the token and the port.
resp=$(curl -sS -X POST "$api/api/v1/submit" \
  -H "Content-Type: application/json" \
  -H "X-Admin-Token: $ADMIN_TOKEN" \
  -d '{
    "title": "Data Processing Job",
    "description": "Process large dataset",
    "code": "print(\"Hello World\")",
    "required_cores": 2,
    "required_ram_mb": 4096,
    "priority": 1,
    "command": "python script.py",
    "parameters": {"input": "data.csv"},
    "buyer_id": "default-buyer"
  }')
job=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["job_id"])' "$resp" 2>/dev/null)
if [ -n "$job" ]; then ok "submit through the dashboard port"; else bad "submit through the dashboard port: $resp"; fi

status=
deadline=$((SECONDS + 120))
while [ -n "$job" ] && [ $SECONDS -lt $deadline ]; do
    status=$(curl -fsS "$api/api/v1/jobs/$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null)
    case $status in completed | failed | cancelled) break ;; esac
    sleep 1
done
if [ "$status" = completed ]; then ok "job completed"; else bad "job completed (status '$status')"; fi
out=$(curl -fsS -H "X-Admin-Token: $ADMIN_TOKEN" "$api/api/v1/jobs/$job/output" 2>/dev/null)
if python3 -c 'import json,sys; o=json.loads(sys.argv[1]); sys.exit(0 if o["stdout"].strip()=="Hello World" else 1)' "$out" 2>/dev/null; then
    ok "job output is Hello World"
else
    bad "job output is Hello World (got: ${out:0:300})"
fi
worker=$(curl -fsS "$api/api/v1/jobs/$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["assigned_worker"] or "")' 2>/dev/null)
# Each agent's worker id defaults to its container's host name.
hostnames=$(for c in $($engine ps -q); do $engine inspect -f '{{.Config.Hostname}} {{.Name}}' "$c"; done | awk '$2 ~ /worker/ {print $1}')
if [ -n "$worker" ] && grep -qx "$worker" <<<"$hostnames"; then
    ok "ran on worker container $worker"
else
    bad "ran on a worker container (assigned_worker '$worker', worker containers: $(echo $hostnames))"
fi

if [ "$fail" -gt 0 ]; then
    for s in coordinator worker; do
        echo "--- logs: $s"
        "${compose[@]}" -p "$project" logs "$s" 2>&1 | tail -30
    done
fi

if "${compose[@]}" -p "$project" down -v >"$work/down.log" 2>&1; then ok "stack down"; else bad "stack down"; fi
left=$($engine ps -aq --filter "name=$project" | wc -l)
if [ "$left" -eq 0 ]; then ok "no containers left"; else bad "no containers left ($left remain)"; fi
finish
