#!/usr/bin/env bash
# Store contract suite: the same C test cases against a fresh SQLite file and a fresh PostgreSQL
# database (a throw-away server from tests/lib/pg.sh); both must pass and give the same results.
set -u
here=$(cd "$(dirname "$0")" && pwd)
CO_SRC_DIR=${CO_SRC_DIR:-$(cd "$here/../../.." && pwd)}
CO_BUILD_DIR=${CO_BUILD_DIR:-$CO_SRC_DIR/build}
CO_ASAN_BUILD_DIR=${CO_ASAN_BUILD_DIR:-}
# shellcheck source=../../lib/pg.sh
. "$CO_SRC_DIR/tests/lib/pg.sh"

passed=0
failed=0
skipped=0
work=$(mktemp -d /tmp/cacheout-store-test.XXXXXX)
chmod 0755 "$work"
cleanup() {
    pg_stop
    rm -rf "$work"
}
trap cleanup EXIT

pass() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1${2:+: $2}"; failed=$((failed + 1)); }
skip() { echo "skip $1: $2"; skipped=$((skipped + 1)); }

# run_contract LABEL BINARY URL FRESH_URL [RESTART_HOOK]: one line per case, prefixed with LABEL.
run_contract() {
    local label=$1 bin=$2 url=$3 fresh=$4 hook=${5:-} out="$work/$1.out" rc status case rest
    CO_STORE_URL=$url CO_STORE_FRESH_URL=$fresh CO_SQL_DIR="$CO_SRC_DIR/sql" \
        CO_STORE_RESTART=$hook \
        timeout 600 "$bin" >"$out" 2>"$work/$label.err"
    rc=$?
    while read -r status case rest; do
        case=${case%:}
        case $status in
        ok) pass "$label/$case" ;;
        FAIL) fail "$label/$case" "$rest" ;;
        skip) skip "$label/$case" "$rest" ;;
        "#") echo "    # $label: $case $rest" ;; # figures of the case that follows
        esac
    done <"$out"
    if [ $rc -ne 0 ] && ! grep -q '^FAIL' "$out"; then
        fail "$label" "the test program exited with $rc"
        sed 's/^/    /' "$work/$label.err" | tail -20
    elif [ -s "$work/$label.err" ]; then
        sed 's/^/    /' "$work/$label.err" | tail -20
    fi
    # The result of each case, for the comparison between databases (the fault cases that only
    # one database can run are left out).
    grep -E '^(ok|FAIL) ' "$out" | awk '{sub(/:$/, "", $2); print $1, $2}' |
        grep -vE ' (reconnect_|fault_connection_dropped|fault_allocation|fault_enospc)' \
            >"$work/$label.cases"
}

# compare A B: both databases gave the same result in every case.
compare() {
    diff -u "$work/$1.cases" "$work/$2.cases" >"$work/diff" 2>&1
    local same=$?
    if [ -s "$work/$1.cases" ] && [ $same -eq 0 ]; then
        pass "same_results/$1=$2"
    else
        fail "same_results/$1=$2" "the databases disagree:"
        sed 's/^/    /' "$work/diff"
    fi
}

builds=("main:$CO_BUILD_DIR")
if [ -n "$CO_ASAN_BUILD_DIR" ]; then
    builds+=("asan:$CO_ASAN_BUILD_DIR")
fi

pg_ok=0
if [ ! -x "$PG_BIN/initdb" ]; then
    echo "store: SKIPPING PostgreSQL: no server binaries in $PG_BIN (install the postgresql package)"
elif pg_start; then
    pg_ok=1
    cat >"$work/pgctl" <<HOOK
#!/usr/bin/env bash
. "$CO_SRC_DIR/tests/lib/pg.sh"
PG_DIR=$PG_DIR PG_PORT=$PG_PORT PG_BIN=$PG_BIN
case \$1 in
stop) pg_halt ;;
start) pg_resume ;;
restart) pg_restart ;;
*) exit 2 ;;
esac
HOOK
    chmod 0755 "$work/pgctl"
else
    fail "postgres_server" "tests/lib/pg.sh could not start PostgreSQL"
fi

for b in "${builds[@]}"; do
    name=${b%%:*}
    dir=${b#*:}
    bin="$dir/tests/integration/store/test_store_contract"
    if [ ! -x "$bin" ]; then
        if [ "$name" = main ]; then
            fail "$name/build" "no test program at $bin (build the tree first)"
        else
            skip "$name" "no test program at $bin"
        fi
        continue
    fi
    run_contract "$name-sqlite" "$bin" "sqlite:///$work/$name.db" "sqlite:///$work/$name-fresh.db"
    if [ $pg_ok -eq 1 ]; then
        url=$(pg_new_db "cacheout_$name") && fresh=$(pg_new_db "cacheout_${name}_fresh") ||
            { fail "$name-postgres" "createdb failed"; continue; }
        run_contract "$name-postgres" "$bin" "$url" "$fresh" "$work/pgctl"
        compare "$name-sqlite" "$name-postgres"
    else
        skip "$name-postgres" "no PostgreSQL server"
    fi
done

echo "store: $passed passed, $failed failed${skipped:+, $skipped skipped}"
[ $failed -eq 0 ]
