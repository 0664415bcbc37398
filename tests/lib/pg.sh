# shellcheck shell=bash
# A throw-away PostgreSQL server for tests.  Source this file, then:
#
#   pg_start            # initdb in a temp dir, start on a free 127.0.0.1 port, create a database
#   ... use $DATABASE_URL (postgresql://postgres@127.0.0.1:PORT/cacheout) ...
#   pg_restart          # stop and start the same server (reconnect tests)
#   pg_halt, pg_resume  # stop the server keeping its data, start it again (outage tests)
#   pg_stop             # stop it and delete the temp dir (also run on shell exit)
#   pg_run_with NAME CMD...  # CMD with --pg-port/--pg-bin on a server of its own (benches)
#
# Uses Debian's PostgreSQL 15 server binaries (package `postgresql`); PG_BIN overrides the
# directory; PG_EXTRA_OPTS adds server options (e.g. "-c shared_preload_libraries=pg_stat_statements"
# to profile a bench).  initdb refuses to run as root, so as root every server command runs as the
# `postgres` user in a directory owned by it.  Exports DATABASE_URL, PG_PORT, PG_DIR, PG_BIN.
# pg_start returns non-zero (with a message on stderr) when the binaries are missing or the
# server does not start; callers decide whether that is a skip or a failure.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_DIR=
PG_PORT=
PG_DB=${PG_DB:-cacheout}

_pg_run() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

_pg_free_port() {
    # A port nobody listens on now; the server start retries if it was taken meanwhile.
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

pg_start() {
    if [ ! -x "$PG_BIN/initdb" ] || [ ! -x "$PG_BIN/pg_ctl" ]; then
        echo "pg.sh: PostgreSQL server binaries not found in $PG_BIN (install package postgresql)" >&2
        return 1
    fi
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        echo "pg.sh: running as root but there is no 'postgres' user to run the server" >&2
        return 1
    fi
    PG_DIR=$(mktemp -d /tmp/cacheout-pg.XXXXXX) || return 1
    chmod 0755 "$PG_DIR"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$PG_DIR"
    fi
    if ! _pg_run "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C \
        --no-sync >"$PG_DIR/initdb.log" 2>&1; then
        echo "pg.sh: initdb failed:" >&2
        cat "$PG_DIR/initdb.log" >&2
        pg_stop
        return 1
    fi
    local tries=0
    while :; do
        tries=$((tries + 1))
        PG_PORT=$(_pg_free_port) || { echo "pg.sh: no free port" >&2; pg_stop; return 1; }
        if _pg_run "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
            -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off \
                -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 ${PG_EXTRA_OPTS:-}" \
            start >/dev/null 2>&1; then
            break
        fi
        if [ $tries -ge 5 ]; then
            echo "pg.sh: the server did not start; its log:" >&2
            tail -20 "$PG_DIR/server.log" >&2
            pg_stop
            return 1
        fi
    done
    if ! _pg_run "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$PG_DB" \
        2>"$PG_DIR/createdb.log"; then
        echo "pg.sh: createdb failed:" >&2
        cat "$PG_DIR/createdb.log" >&2
        pg_stop
        return 1
    fi
    DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PORT/$PG_DB"
    export DATABASE_URL PG_PORT PG_DIR PG_BIN
    # Stop the server when the shell exits, after whatever EXIT trap the caller had.
    local prev
    prev=$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT\$//")
    case "$prev" in
    *pg_stop*) ;;
    *) trap "${prev:+$prev; }pg_stop" EXIT ;;
    esac
    return 0
}

# A fresh empty database on the running server; prints its URL.
pg_new_db() {
    local name=$1
    _pg_run "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$name" || return 1
    echo "postgresql://postgres@127.0.0.1:$PG_PORT/$name"
}

pg_restart() {
    [ -n "$PG_DIR" ] || return 1
    _pg_run "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 -m fast \
        restart >/dev/null 2>&1
}

# Stop the server but keep its data (a database outage); pg_resume starts it again.
pg_halt() {
    [ -n "$PG_DIR" ] || return 1
    _pg_run "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -w -t 30 -m fast stop >/dev/null 2>&1
}

pg_resume() {
    [ -n "$PG_DIR" ] && [ -n "$PG_PORT" ] || return 1
    _pg_run "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
        -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off \
            -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 ${PG_EXTRA_OPTS:-}" \
        start >/dev/null 2>&1
}

pg_stop() {
    if [ -n "$PG_DIR" ] && [ -d "$PG_DIR" ]; then
        if [ -f "$PG_DIR/data/postmaster.pid" ]; then
            _pg_run "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -w -t 30 -m fast stop >/dev/null 2>&1 ||
                _pg_run "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1
        fi
        rm -rf "$PG_DIR"
    fi
    PG_DIR=
    return 0
}

# pg_run_with NAME COMMAND...: run COMMAND with "--pg-port PORT --pg-bin DIR" on a throw-away
# server started for it and stopped after (the benches' PostgreSQL figures); without a server,
# says so under NAME and returns 1.
pg_run_with() {
    local name=$1
    shift
    if ! pg_start; then
        echo "$name: no PostgreSQL server; the PostgreSQL figures were NOT measured"
        return 1
    fi
    "$@" --pg-port "$PG_PORT" --pg-bin "$PG_BIN"
    local rc=$?
    pg_stop
    return $rc
}
