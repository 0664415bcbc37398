#!/usr/bin/env bash
# Sandbox start-up benchmark (run by hand as root, not by make test):
#  1. hyperfine, side by side in one run: plain /bin/true; cacheout-run (namespaces + cgroups +
#     seccomp); bubblewrap with an equivalent strict setup (pid/net/ipc/uts namespaces, read-only
#     binds of /usr /lib /lib64 /bin, tmpfs /tmp, /proc, /dev, --cap-drop ALL,
#     --die-with-parent), which has no cgroups and no seccomp.  Prints the medians and the ratio
#     cacheout-run / bwrap (target <= 0.6).
#  2. sbx-bench-inproc: the per-job overhead of sbx_run() over fork+exec+wait inside one process,
#     as the agent uses it (target: sbx_run <= 1.4x fork+exec+wait, and its CPU per job <= 1.5x),
#     cloning from the caller, then from the sandbox launcher (CACHEOUT_LAUNCHER=1) as the agent.
# The build machines are shared and often loaded, so the comparison is repeated ROUNDS times
# (the order of the commands rotating) and the median of the per-round ratios is printed too.
#  3. With ROOTLESS=1: both again as an unprivileged user (rootless sandboxes), against
#     bubblewrap with --unshare-user.
#  4. The same comparison interleaved (one run of each command in turn), which a drifting load
#     on a shared machine skews less; BASELINE=an older cacheout-run joins it.
# Environment: CO_SRC_DIR, CO_BUILD_DIR (default build/), RUNS per command and round (default
# 200), ROUNDS (default 3), INTERLEAVED (default 400), BASELINE, ROOTLESS, ROOTLESS_USER (default
# cacheout-rl).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${CO_SRC_DIR:-$(cd "$here/../.." && pwd)}
build=${CO_BUILD_DIR:-$src/build}
runs=${RUNS:-200}
rounds=${ROUNDS:-3}
run_bin=$build/sandbox/cacheout-run
inproc=$build/bench/sandbox/sbx-bench-inproc

if [ "$(id -u)" -ne 0 ]; then
    echo "bench/sandbox: must run as root (the sandbox needs namespaces, cgroups, uid switch)" >&2
    exit 1
fi
for t in hyperfine bwrap python3; do
    command -v "$t" >/dev/null || { echo "bench/sandbox: '$t' not installed" >&2; exit 1; }
done
if [ ! -x "$run_bin" ] || [ ! -x "$inproc" ]; then
    cmake --build "$build" --target cacheout-run sbx-bench-inproc >/dev/null
fi

bwrap_cmd="bwrap --unshare-pid --unshare-net --unshare-ipc --unshare-uts"
for d in /usr /lib /lib64 /bin; do
    [ -e "$d" ] && bwrap_cmd="$bwrap_cmd --ro-bind $d $d"
done
bwrap_cmd="$bwrap_cmd --tmpfs /tmp --proc /proc --dev /dev --cap-drop ALL --die-with-parent /bin/true"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
names=(plain cacheout-run bwrap-strict)
cmds=("/bin/true" "$run_bin -- /bin/true" "$bwrap_cmd")
for ((round = 0; round < rounds; round++)); do
    args=()
    for ((k = 0; k < 3; k++)); do
        i=$(((k + round) % 3))
        args+=(-n "${names[$i]}" "${cmds[$i]}")
    done
    echo "== round $((round + 1)) of $rounds"
    hyperfine -N --warmup 20 --runs "$runs" --style basic --export-json "$tmp/h$round.json" "${args[@]}" 2>/dev/null |
        grep -E '^Benchmark|Time \(mean'
done

python3 - "$tmp" "$rounds" <<'PY'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
ratios = []
print()
print("medians (ms)     plain  cacheout-run  bwrap-strict  ratio cacheout-run/bwrap")
for r in range(rounds):
    res = {x["command"]: x["median"] * 1000 for x in json.load(open("%s/h%d.json" % (tmp, r)))["results"]}
    ratio = res["cacheout-run"] / res["bwrap-strict"]
    ratios.append(ratio)
    print("  round %d     %7.3f  %12.3f  %12.3f  %5.2f" % (r + 1, res["plain"], res["cacheout-run"],
                                                        res["bwrap-strict"], ratio))
print("ratio cacheout-run / bwrap-strict, median over rounds: %.2f (target <= 0.6)"
      % statistics.median(ratios))
PY

# Interleaved: one run of each command in turn, INTERLEAVED times (default 400), so that the load
# of a shared machine, which drifts within a hyperfine round, weighs on every command alike.
# BASELINE=path/to/an/older/cacheout-run adds it to the comparison (e.g. before a change).
echo
echo "== interleaved, ${INTERLEAVED:-400} runs of each"
python3 - "${INTERLEAVED:-400}" "$run_bin" "${BASELINE:-}" $bwrap_cmd <<'PY'
import statistics, subprocess, sys, time
n, run_bin, baseline, bwrap = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
cmds = {"plain": ["/bin/true"], "cacheout-run": [run_bin, "--", "/bin/true"], "bwrap-strict": bwrap}
if baseline:
    cmds["baseline"] = [baseline, "--", "/bin/true"]
wall = {k: [] for k in cmds}
for _ in range(n):
    for k, c in cmds.items():
        t0 = time.monotonic()
        subprocess.run(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        wall[k].append((time.monotonic() - t0) * 1000)
med = {k: statistics.median(v) for k, v in wall.items()}
print("medians (ms): " + ", ".join("%s %.3f" % kv for kv in med.items()))
print("ratio cacheout-run / bwrap-strict, interleaved: %.2f (target <= 0.6)"
      % (med["cacheout-run"] / med["bwrap-strict"]))
if baseline:
    print("ratio cacheout-run / baseline: %.2f; baseline / bwrap-strict: %.2f"
          % (med["cacheout-run"] / med["baseline"], med["baseline"] / med["bwrap-strict"]))
PY
echo
"$inproc" "$runs"
echo
CACHEOUT_LAUNCHER=1 "$inproc" "$runs"

# Rootless (ROOTLESS=1, or ROOTLESS_USER=name): the same as an unprivileged user prepared with
# `cacheout-run --setup-rootless` (tests/lib/rootless.sh makes one), against bubblewrap
# unprivileged (--unshare-user: a user namespace mapping only the caller's uid).
if [ "${ROOTLESS:-0}" = 1 ] || [ -n "${ROOTLESS_USER:-}" ]; then
    # shellcheck source=../../tests/lib/rootless.sh
    . "$src/tests/lib/rootless.sh"
    if ! rootless_setup "$build" "$inproc"; then
        echo "bench/sandbox: rootless part skipped: $ROOTLESS_WHY" >&2
        exit 1
    fi
    trap 'rm -rf "$tmp"; rootless_cleanup' EXIT
    echo
    echo "== rootless, as $ROOTLESS_USER (uid $ROOTLESS_UID)"
    chown "$ROOTLESS_USER" "$tmp" # hyperfine writes its JSON there as that user
    runuser -u "$ROOTLESS_USER" -- hyperfine -N --warmup 20 --runs "$runs" --style basic \
        --export-json "$tmp/rootless.json" \
        -n cacheout-run-rootless "$ROOTLESS_BIN_DIR/cacheout-run -- /bin/true" \
        -n bwrap-rootless "${bwrap_cmd/bwrap /bwrap --unshare-user }" 2>/dev/null |
        grep -E '^Benchmark|Time \(mean'
    python3 - "$tmp/rootless.json" <<'PY'
import json, sys
res = {x["command"]: x["median"] * 1000 for x in json.load(open(sys.argv[1]))["results"]}
a, b = res["cacheout-run-rootless"], res["bwrap-rootless"]
print("medians (ms): cacheout-run rootless %.3f, bwrap rootless %.3f, ratio %.2f" % (a, b, a / b))
PY
    echo "in-process, rootless:"
    runuser -u "$ROOTLESS_USER" -- "$ROOTLESS_BIN_DIR/$(basename "$inproc")" "$runs"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
