#!/usr/bin/env bash
# Fuzz suite: builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang in build-fuzz/ and
# runs each for FUZZ_SECONDS (default 30) on a temporary copy of its seed corpus
# (tests/fuzz/corpus/<target>/).  Prints one line per target and a summary
#   fuzz: N passed, M failed
# and exits non-zero if any target failed.  Crash inputs are kept in build-fuzz/fuzz-artifacts/.
#
# Environment: CO_SRC_DIR (repository root; default: derived from this script),
# CO_FUZZ_BUILD_DIR (default: $CO_SRC_DIR/build-fuzz), FUZZ_SECONDS (default 30),
# FUZZ_TARGETS (space-separated names to run; default: all).
set -u

src=${CO_SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${CO_FUZZ_BUILD_DIR:-$src/build-fuzz}
secs=${FUZZ_SECONDS:-30}

skip_all() {
    echo "fuzz: SKIPPED: $1" >&2
    echo "SKIP fuzz ($1)"
    echo "fuzz: 0 passed, 0 failed, 1 skipped"
    exit 0
}

if ! command -v clang >/dev/null 2>&1; then
    skip_all "clang is not installed (Debian packages clang and libclang-rt-14-dev)"
fi

# The targets are the fuzz_*.c sources, unless FUZZ_TARGETS names some.
targets=${FUZZ_TARGETS:-}
if [ -z "$targets" ]; then
    for f in "$src"/tests/fuzz/fuzz_*.c; do
        [ -e "$f" ] || continue
        targets="$targets $(basename "$f" .c)"
    done
fi
[ -n "$targets" ] || skip_all "no fuzz_*.c targets in tests/fuzz"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cacheout-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# Configure (the cache is reused when present; re-running picks up new fuzz_*.c files) and
# build only the fuzz targets.
if [ -f "$build/CMakeCache.txt" ]; then
    configure=(cmake -S "$src" -B "$build")
else
    configure=(env CC=clang cmake -S "$src" -B "$build" -DCO_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo)
fi
if ! "${configure[@]}" >"$tmp/configure.log" 2>&1; then
    tail -n 40 "$tmp/configure.log" >&2
    echo "FAIL configure $build (see above)"
    echo "fuzz: 0 passed, 1 failed"
    exit 1
fi

passed=0
failed=0
for t in $targets; do
    if ! cmake --build "$build" -j2 --target "$t" >"$tmp/$t.build.log" 2>&1; then
        tail -n 30 "$tmp/$t.build.log" >&2
        echo "FAIL $t (build failed)"
        failed=$((failed + 1))
        continue
    fi
    bin="$build/tests/fuzz/$t"
    if [ ! -x "$bin" ]; then
        echo "FAIL $t (no binary after build)"
        failed=$((failed + 1))
        continue
    fi
    mkdir -p "$tmp/$t/corpus"
    if [ -d "$src/tests/fuzz/corpus/$t" ]; then
        cp -R "$src/tests/fuzz/corpus/$t/." "$tmp/$t/corpus/"
    fi
    seeds=$(find "$tmp/$t/corpus" -type f | wc -l)
    # -timeout: one input slower than 10 s is a bug; -rss_limit_mb bounds memory on a shared box.
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1 -artifact_prefix="$tmp/$t/" "$tmp/$t/corpus" >"$tmp/$t.log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/$t.log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$tmp/$t.log" | tail -n 1 | sed 's/cov: //')
    if [ "$rc" -eq 0 ]; then
        echo "PASS $t (${secs} s, ${runs:-?} runs, coverage ${cov:-?}, $seeds seeds)"
        passed=$((passed + 1))
    else
        mkdir -p "$build/fuzz-artifacts"
        kept=""
        for a in "$tmp/$t"/crash-* "$tmp/$t"/leak-* "$tmp/$t"/timeout-* "$tmp/$t"/oom-*; do
            [ -e "$a" ] || continue
            cp "$a" "$build/fuzz-artifacts/$t-$(basename "$a")"
            kept="$kept $build/fuzz-artifacts/$t-$(basename "$a")"
        done
        grep -E 'ERROR|SUMMARY|^#0|^ +#[0-9]' "$tmp/$t.log" | head -n 25 >&2
        echo "FAIL $t (exit $rc; reproduce with: $bin${kept:- <no artifact>})"
        failed=$((failed + 1))
    fi
done

echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
