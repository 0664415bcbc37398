#!/usr/bin/env bash
# Sandbox escape and resource-limit suite: runs tests/sandbox/suite.py against cacheout-run.
# Environment: CO_SRC_DIR (repository root), CO_BUILD_DIR (build whose cacheout-run is tested),
# CO_ASAN_BUILD_DIR (optional: its cacheout-run gets a second pass; SBX_SUITE_NO_ASAN=1 skips it).
# A pass runs every case with the mount template of long-lived callers (template/NAME), another
# with the template and the sandbox launcher, as the agent runs them (launcher/NAME).
# Another pass runs every case rootless, as the unprivileged user of tests/lib/rootless.sh
# (SBX_SUITE_NO_ROOTLESS=1 skips it, loudly).
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

# Each case bounds its own jobs; this bounds the whole suite.  The summary lines of the passes
# are added up into the last line.
passed=0
failed=0
skipped=0
add_counts() { # log file of one suite.py run, its exit code
    local line
    line=$(grep -E '^sandbox: [0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
    if [ -z "$line" ]; then
        echo "FAIL sandbox: a pass ended without its summary (exit code $2)"
        failed=$((failed + 1))
        return
    fi
    passed=$((passed + $(sed -E 's/^sandbox: ([0-9]+) passed.*/\1/' <<<"$line")))
    failed=$((failed + $(sed -E 's/^sandbox: [0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")))
    if grep -q 'skipped' <<<"$line"; then
        skipped=$((skipped + $(sed -E 's/.* ([0-9]+) skipped.*/\1/' <<<"$line")))
    fi
}
log=$(mktemp)
timeout -k 10 280 "$py" "$here/suite.py" --run "$run_bin" "${asan_args[@]}" \
    --attack "$attack_bin" --src "$src" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    echo "FAIL sandbox: suite did not finish within 280 s"
fi
add_counts "$log" "$rc"

# The mount-template pass: the same cases with every cacheout-run entering a copy of the image's
# mount template, as long-lived callers (the agent) do, instead of building the root per run
# (and again against the sanitizer build's cacheout-run: asan/template/NAME).
timeout -k 10 280 "$py" "$here/suite.py" --run "$run_bin" "${asan_args[@]}" --attack "$attack_bin" \
    --src "$src" --mount-template "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    echo "FAIL sandbox: mount-template pass did not finish within 280 s"
fi
add_counts "$log" "$rc"

# The launcher pass: as the agent runs sandboxes, every cacheout-run clones init from the small
# launcher process (CACHEOUT_LAUNCHER=1) and enters a copy of the mount template
# (launcher/NAME, and asan/launcher/NAME against the sanitizer build).
timeout -k 10 280 "$py" "$here/suite.py" --run "$run_bin" "${asan_args[@]}" --attack "$attack_bin" \
    --src "$src" --mount-template --launcher "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    echo "FAIL sandbox: launcher pass did not finish within 280 s"
fi
add_counts "$log" "$rc"

# The rootless pass: the same cases (and the rootless-only ones) with cacheout-run started by an
# unprivileged user, so that every sandbox gets a user namespace of its own.
if [ "${SBX_SUITE_NO_ROOTLESS:-0}" = 1 ]; then
    echo "NOTE sandbox: SBX_SUITE_NO_ROOTLESS=1: the rootless pass is NOT run"
else
    # shellcheck source=../lib/rootless.sh
    . "$src/tests/lib/rootless.sh"
    inproc_test=$build/tests/unit/sandbox/test_sbx_run
    extra=()
    [ -x "$inproc_test" ] && extra=("$inproc_test")
    if rootless_setup "$build" "$attack_bin" "${extra[@]}"; then
        timeout -k 10 200 "$py" "$here/suite.py" --run "$ROOTLESS_BIN_DIR/cacheout-run" \
            --attack "$ROOTLESS_BIN_DIR/sbx-attack" --src "$src" \
            --rootless-user "$ROOTLESS_USER" "$@" 2>&1 | tee "$log"
        rc=${PIPESTATUS[0]}
        if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
            echo "FAIL sandbox: rootless pass did not finish within 200 s"
        fi
        add_counts "$log" "$rc"
        # sbx_run() in-process as the agent uses it (threads, prewarm, cancellation), rootless:
        # the unit tests of test_sbx_run, run as the unprivileged user, from the normal build and
        # from the sanitizer build (whose rootless clone differs, see sbx_run.c).  A case each.
        asan_test=${CO_ASAN_BUILD_DIR:+$CO_ASAN_BUILD_DIR/tests/unit/sandbox/test_sbx_run}
        inproc=()
        if [ ${#extra[@]} -eq 0 ]; then
            echo "FAIL rootless/in-process: $inproc_test not built"
            failed=$((failed + 1))
        else
            inproc=(test_sbx_run)
        fi
        if [ -n "$asan_test" ] && [ -x "$asan_test" ] && [ "${SBX_SUITE_NO_ASAN:-0}" != 1 ]; then
            cp "$asan_test" "$ROOTLESS_BIN_DIR/test_sbx_run-asan"
            chmod 755 "$ROOTLESS_BIN_DIR/test_sbx_run-asan"
            inproc+=(test_sbx_run-asan)
        fi
        for t in "${inproc[@]}"; do
            name=rootless/in-process${t#test_sbx_run}
            if (cd "$ROOTLESS_BIN_DIR" && timeout -k 5 120 runuser -u "$ROOTLESS_USER" -- \
                env SBX_TEST_ROOTLESS=1 "./$t") >"$log" 2>&1 && ! grep -q SKIPPED "$log"; then
                echo "ok $name ($(grep -c '^\[       OK \]' "$log") test_sbx_run cases)"
                passed=$((passed + 1))
            else
                sed 's/^/  /' "$log"
                echo "FAIL $name: test_sbx_run as $ROOTLESS_USER failed (above)"
                failed=$((failed + 1))
            fi
        done
        rootless_cleanup
    else
        echo "FAIL sandbox: rootless pass cannot be set up: $ROOTLESS_WHY"
        failed=$((failed + 1))
    fi
fi
rm -f "$log"

summary="sandbox: $passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ]
