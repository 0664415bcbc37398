#!/usr/bin/env bash
# Dashboard end-to-end suite: real Chromium (Debian's chromium, driven by playwright-core) against
# a real cacheout-coordinator and cacheout-agent started on a free loopback port. One pass per
# role: anonymous, then buyer, seller and admin with user keys (API.md "Accounts, API keys, roles";
# skipped with the reason against a coordinator without that API); screenshots of each role's
# pages, desktop and 390 px wide, go to $E2E_SCREENSHOT_DIR (<role>-<page>[-390].png).
#
# Environment: CO_SRC_DIR (repo root), CO_BUILD_DIR (binaries: coordinator/cacheout-coordinator,
# agent/cacheout-agent). Optional: E2E_SCREENSHOT_DIR (default $CO_BUILD_DIR/screenshots),
# E2E_CHROMIUM (default /usr/bin/chromium), E2E_WORKER=http (replace the agent with a poll-API
# stand-in, to check the dashboard while the agent is unavailable; says so in its summary),
# E2E_ALLOW_POLLING=1 (report a coordinator whose /ws/dashboard sends no snapshot as a loud skip
# instead of a failure; everything else then runs over the REST fallback).
# Prints one line per case and ends with "e2e: N passed, M failed".
set -u
here=$(cd "$(dirname "$0")" && pwd)
export CO_SRC_DIR=${CO_SRC_DIR:-$(cd "$here/../.." && pwd)}
export CO_BUILD_DIR=${CO_BUILD_DIR:-$CO_SRC_DIR/build}
export E2E_SCREENSHOT_DIR=${E2E_SCREENSHOT_DIR:-$CO_BUILD_DIR/screenshots}
chromium=${E2E_CHROMIUM:-/usr/bin/chromium}

fail() {
    echo "FAIL e2e prerequisites: $*"
    echo "e2e: 0 passed, 1 failed"
    exit 1
}

coord=$CO_BUILD_DIR/coordinator/cacheout-coordinator
agent=$CO_BUILD_DIR/agent/cacheout-agent
[ -x "$coord" ] || fail "no coordinator binary at $coord (build first)"
if "$coord" --help 2>&1 | grep -q "not implemented yet"; then
    fail "cacheout-coordinator at $coord is still the placeholder: there is nothing to test the dashboard against"
fi
if [ "${E2E_WORKER:-agent}" != http ]; then
    [ -x "$agent" ] || fail "no agent binary at $agent (build first)"
    if "$agent" --help 2>&1 | grep -q "not implemented yet"; then
        fail "cacheout-agent at $agent is still the placeholder: jobs cannot run (E2E_WORKER=http runs the dashboard checks with a poll-API stand-in instead)"
    fi
fi
[ -x "$chromium" ] || fail "no Chromium at $chromium (apt-get install chromium; listed in scripts/packages/frontend.txt)"
command -v node >/dev/null || fail "node is not installed"

"$CO_SRC_DIR/scripts/build-frontend.sh" >/dev/null || fail "the dashboard does not build (scripts/build-frontend.sh)"
[ -f "$CO_SRC_DIR/frontend/dist/index.html" ] || fail "frontend/dist/index.html missing after the build"
[ -d "$CO_SRC_DIR/frontend/node_modules/playwright-core" ] || fail "playwright-core is not installed in frontend/node_modules"

mkdir -p "$E2E_SCREENSHOT_DIR"
# The driver starts and stops every process itself and kills them on exit; the timeout bounds
# the whole run.
exec timeout --kill-after=20 600 node "$here/e2e.mjs"
