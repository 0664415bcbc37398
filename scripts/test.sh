#!/usr/bin/env bash
# `make test`: build normally and with sanitizers, then run every suite. Each suite prints its own
# cases and a closing line "<suite>: N passed, M failed"; this script sums them, prints one
# closing line per suite and a total, and exits non-zero if anything failed.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export CO_SRC_DIR=$top
export CO_BUILD_DIR=$top/build
export CO_ASAN_BUILD_DIR=$top/build-asan
export CO_TSAN_BUILD_DIR=$top/build-tsan
logdir=$top/build/test-logs
jobs=${JOBS:-2}
suite_timeout=${SUITE_TIMEOUT:-1800}

declare -a summary=()
total_pass=0
total_fail=0
failed_suites=0

record() { # name passed failed rc
    local name=$1 p=$2 f=$3 rc=$4
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
        failed_suites=$((failed_suites + 1))
        summary+=("FAIL $name: $p passed, $f failed (exit $rc)")
    else
        summary+=("ok   $name: $p passed, $f failed")
    fi
}

# Runs a suite command with output to the terminal and a log; picks up its closing line.
run_suite() { # name command...
    local name=$1
    shift
    local log=$logdir/$name.log
    echo
    echo "=== $name"
    if [ "$(type -t "$1")" = function ]; then
        "$@" 2>&1 | tee "$log"
    else
        timeout --kill-after=30 "$suite_timeout" "$@" 2>&1 | tee "$log"
    fi
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 124 ] && echo "$name: timed out after ${suite_timeout}s"
    local line p=0 f=0
    line=$(grep -E '^[A-Za-z0-9_./-]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 || true)
    if [ -n "$line" ]; then
        p=$(sed -E 's/^[^:]+: ([0-9]+) passed.*/\1/' <<<"$line")
        f=$(sed -E 's/^[^:]+: [0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")
    elif [ "$rc" -ne 0 ]; then
        f=1
    fi
    if [ "$rc" -eq 0 ] && [ -z "$line" ]; then
        echo "$name: no closing line: treating as a failure"
        rc=1
    fi
    record "$name" "$p" "$f" "$rc"
}

run_ctest() { # name builddir
    local name=$1 dir=$2 log=$logdir/$1.log
    echo
    echo "=== $name"
    (cd "$dir" && timeout "$suite_timeout" ctest --output-on-failure -j"$jobs") 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local total failed
    total=$(sed -nE 's/.*tests passed, ([0-9]+) tests failed out of ([0-9]+).*/\2/p' "$log" | tail -n 1)
    failed=$(sed -nE 's/.*tests passed, ([0-9]+) tests failed out of ([0-9]+).*/\1/p' "$log" | tail -n 1)
    total=${total:-0}
    failed=${failed:-1}
    [ "$total" -eq 0 ] && rc=1
    echo "$name: $((total - failed)) passed, $failed failed"
    record "$name" "$((total - failed))" "$failed" "$rc"
}

format_check() {
    local n=0 bad=0 f
    while IFS= read -r f; do
        n=$((n + 1))
        if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
            echo "not formatted: $f (run clang-format -i $f)"
            bad=$((bad + 1))
        fi
    done < <(git ls-files '*.c' '*.h')
    echo "format: $((n - bad)) passed, $bad failed"
    [ "$bad" -eq 0 ]
}

scripts/bootstrap.sh || { echo "bootstrap failed"; exit 1; }
mkdir -p build
rm -rf "$logdir"
mkdir -p "$logdir"

build_rc=0
scripts/build.sh "$CO_BUILD_DIR" || build_rc=1
scripts/build.sh "$CO_ASAN_BUILD_DIR" -DCO_SANITIZE=ON || build_rc=1
scripts/build.sh "$CO_TSAN_BUILD_DIR" -DCO_SANITIZE=thread || build_rc=1
if [ -x scripts/build-frontend.sh ]; then
    scripts/build-frontend.sh || build_rc=1
fi
record build "$((build_rc == 0 ? 1 : 0))" "$build_rc" "$build_rc"
if [ "$build_rc" -ne 0 ]; then
    echo "build failed: not running the suites"
    echo "total: $total_pass passed, $((total_fail)) failed"
    exit 1
fi

run_suite format format_check
# Every program and CNI plugin the scripts use comes from a package scripts/packages/*.txt names.
run_suite packages scripts/check-packages.py
run_ctest unit "$CO_BUILD_DIR"
run_ctest unit-asan "$CO_ASAN_BUILD_DIR"
[ -x frontend/run-unit.sh ] && run_suite frontend-unit frontend/run-unit.sh
for suite in fuzz sandbox integration chaos tsan e2e compose packaging; do
    if [ -x "tests/$suite/run.sh" ]; then
        run_suite "$suite" "tests/$suite/run.sh"
    else
        echo
        echo "=== $suite: NOT PRESENT (tests/$suite/run.sh does not exist yet)"
    fi
done

echo
echo "=== summary"
for s in "${summary[@]}"; do echo "$s"; done
echo "total: $total_pass passed, $total_fail failed"
[ "$failed_suites" -eq 0 ] && [ "$total_fail" -eq 0 ]
