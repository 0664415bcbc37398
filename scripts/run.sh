#!/usr/bin/env bash
# `make run`: start a coordinator on SQLite (var/cacheout.db) and one local agent, print the admin
# token and a curl line for a first job. Ctrl-C stops both.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bin=$top/build
mkdir -p var
chmod 700 var

# .env (if any) may set PORT, ADMIN_TOKEN, ...; the environment wins over it.
if [ -f .env ]; then
    set -a
    # shellcheck disable=SC1091
    . ./.env
    set +a
fi
port=${PORT:-8000}

secret() { # file: a random token kept across runs
    if [ ! -s "$1" ]; then
        (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1")
    fi
    cat "$1"
}
export ADMIN_TOKEN=${ADMIN_TOKEN:-$(secret var/admin-token)}
export AGENT_TOKEN=${AGENT_TOKEN:-$(secret var/agent-token)}
export DATABASE_URL=${DATABASE_URL:-sqlite:///var/cacheout.db}
export FRONTEND_DIR=${FRONTEND_DIR:-$top/frontend/dist}
export SQL_DIR=${SQL_DIR:-$top/sql}

if "$bin/coordinator/cacheout-coordinator" --help 2>&1 | grep -q "not implemented yet"; then
    echo "make run: the coordinator is not implemented yet at this stage; the build works."
    exit 0
fi

pids=()
cleanup() {
    trap - INT TERM EXIT
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

"$bin/coordinator/cacheout-coordinator" &
pids+=($!)

for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1 && break
    sleep 0.1
done

# The local agent sells as its own user (local-seller) with a sell key kept in var/agent-key
# across runs (a new one when it no longer works); if the key cannot be made, it falls back to
# the shared AGENT_TOKEN (its workers then belong to AGENT_TOKEN_OWNER, default platform).
api() { # method path [json]: the answer's body, with the admin token
    curl -sS -X "$1" "http://127.0.0.1:$port/api/v1$2" -H "X-Admin-Token: $ADMIN_TOKEN" \
        -H "Content-Type: application/json" ${3:+-d "$3"}
}
seller=${LOCAL_SELLER:-local-seller}
local_key() {
    if [ -s var/agent-key ] && curl -fsS -o /dev/null "http://127.0.0.1:$port/api/v1/me" \
        -H "Authorization: Bearer $(cat var/agent-key)" 2>/dev/null; then
        return 0
    fi
    api POST /users "{\"user_id\": \"$seller\"}" >/dev/null 2>&1 || true
    local key
    key=$(api POST "/users/$seller/keys" '{"name": "make run agent", "scopes": ["sell"]}' |
        sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
    [ -n "$key" ] || return 1
    (umask 077 && printf '%s' "$key" >var/agent-key)
}
agent_owner="$seller (sell key in var/agent-key)"
agent_env=(AGENT_KEY="")
if local_key; then
    agent_env=(AGENT_KEY="$(cat var/agent-key)" AGENT_TOKEN="")
else
    agent_owner="${AGENT_TOKEN_OWNER:-platform} (the shared AGENT_TOKEN: no key could be made)"
fi

if "$bin/agent/cacheout-agent" --help 2>&1 | grep -q "not implemented yet"; then
    echo "make run: the agent is not implemented yet: the coordinator runs without one."
else
    env "${agent_env[@]}" COORDINATOR_URL="${COORDINATOR_URL:-ws://127.0.0.1:$port/ws/agent}" \
        WORKER_ID="${WORKER_ID:-local-agent}" "$bin/agent/cacheout-agent" &
    pids+=($!)
fi

cat <<MSG

CacheOut is running.
  Dashboard:    http://localhost:$port/
  Admin token:  $ADMIN_TOKEN
  Agent token:  $AGENT_TOKEN
  Local agent:  ${WORKER_ID:-local-agent}, owned by $agent_owner
  Database:     $DATABASE_URL

Submit a first job:
  curl -X POST "http://localhost:$port/api/v1/submit" \\
    -H "Content-Type: application/json" \\
    -H "X-Admin-Token: $ADMIN_TOKEN" \\
    -d '{"title": "Hello", "code": "print(\"Hello World\")", "required_cores": 1,
         "required_ram_mb": 256, "command": "python script.py", "buyer_id": "default-buyer"}'

Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}"
