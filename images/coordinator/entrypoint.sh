#!/bin/bash
# Waits (up to DB_WAIT_SECONDS, default 60) until the PostgreSQL server named in DATABASE_URL
# accepts TCP connections, so that the coordinator does not start before its database in a
# compose stack; then runs the command. SQLite URLs start at once.
set -euo pipefail
url=${DATABASE_URL:-}
if [[ $url =~ ^postgres(ql)?://([^@/]*@)?([^:/?]+)(:([0-9]+))? ]]; then
    host=${BASH_REMATCH[3]}
    port=${BASH_REMATCH[5]:-5432}
    deadline=$((SECONDS + ${DB_WAIT_SECONDS:-60}))
    until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
        if [ $SECONDS -ge $deadline ]; then
            echo "entrypoint: database $host:$port not reachable; starting anyway" >&2
            break
        fi
        sleep 0.5
    done
fi
exec "$@"
