#!/usr/bin/env bash
# Sandbox escape and resource-limit suite: runs tests/sandbox/suite.py against cacheout-run.
# Environment: CO_SRC_DIR (repository root), CO_BUILD_DIR (build whose cacheout-run is tested),
# CO_ASAN_BUILD_DIR (optional: its cacheout-run gets a second pass; SBX_SUITE_NO_ASAN=1 skips it).
# Must run as root (namespaces, cgroups, uid switching are real).
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${CO_SRC_DIR:-$(cd "$here/../.." && pwd)}
build=${CO_BUILD_DIR:-$src/build}
run_bin=$build/sandbox/cacheout-run
attack_bin=$build/tests/sandbox/sbx-attack

if [ "$(id -u)" -ne 0 ]; then
    echo "FAIL sandbox: this suite must run as root (it uses namespaces, cgroups and job uids);"
    echo "FAIL sandbox: re-run as root: sudo make test"
    echo "sandbox: 0 passed, 1 failed"
    exit 1
fi
if [ ! -x "$run_bin" ]; then
    echo "FAIL sandbox: $run_bin not built"
    echo "sandbox: 0 passed, 1 failed"
    exit 1
fi
if [ ! -x "$attack_bin" ]; then
    cmake --build "$build" --target sbx-attack >/dev/null 2>&1
fi
if [ ! -x "$attack_bin" ]; then
    echo "FAIL sandbox: $attack_bin not built (cmake --build $build --target sbx-attack)"
    echo "sandbox: 0 passed, 1 failed"
    exit 1
fi
py=$(command -v python3 || true)
if [ -z "$py" ]; then
    echo "FAIL sandbox: python3 is needed on the host to drive the suite"
    echo "sandbox: 0 passed, 1 failed"
    exit 1
fi

# With a sanitizer build next to it, every case runs a second time against its cacheout-run
# (cases named asan/NAME): memory errors and leaks of the runner show up as failures.
asan_args=()
asan_run=${CO_ASAN_BUILD_DIR:+$CO_ASAN_BUILD_DIR/sandbox/cacheout-run}
if [ -n "$asan_run" ] && [ -x "$asan_run" ] && [ "${SBX_SUITE_NO_ASAN:-0}" != 1 ]; then
    asan_args=(--asan-run "$asan_run")
elif [ -n "${CO_ASAN_BUILD_DIR:-}" ]; then
    echo "note: no $CO_ASAN_BUILD_DIR/sandbox/cacheout-run: the sanitizer pass is skipped"
fi

# Each case bounds its own jobs; this bounds the whole suite.
timeout -k 10 280 "$py" "$here/suite.py" --run "$run_bin" "${asan_args[@]}" \
    --attack "$attack_bin" --src "$src" "$@"
rc=$?
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    echo "FAIL sandbox: suite did not finish within 280 s"
    echo "sandbox: 0 passed, 1 failed"
fi
exit $rc
