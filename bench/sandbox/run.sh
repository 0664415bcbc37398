#!/usr/bin/env bash
# Sandbox start-up benchmark (run by hand as root, not by make test):
#  1. hyperfine, side by side in one run: plain /bin/true; cacheout-run (namespaces + cgroups +
#     seccomp); bubblewrap with an equivalent strict setup (pid/net/ipc/uts namespaces, read-only
#     binds of /usr /lib /lib64 /bin, tmpfs /tmp, /proc, /dev, --cap-drop ALL,
#     --die-with-parent), which has no cgroups and no seccomp.  Prints the medians and the ratio
#     cacheout-run / bwrap (target <= 0.8).
#  2. sbx-bench-inproc: the per-job overhead of sbx_run() over fork+exec+wait inside one process,
#     as the agent uses it (target <= 2.5 ms).
# Environment: CO_SRC_DIR, CO_BUILD_DIR (default build/), RUNS (default 300).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${CO_SRC_DIR:-$(cd "$here/../.." && pwd)}
build=${CO_BUILD_DIR:-$src/build}
runs=${RUNS:-300}
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
hyperfine -N --warmup 20 --runs "$runs" --export-json "$tmp/h.json" \
    -n plain "/bin/true" \
    -n cacheout-run "$run_bin -- /bin/true" \
    -n bwrap-strict "$bwrap_cmd"

python3 - "$tmp/h.json" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
med = {k: v["median"] * 1000 for k, v in res.items()}
print()
print("medians (ms):")
for k in ("plain", "cacheout-run", "bwrap-strict"):
    print("  %-13s %7.3f" % (k, med[k]))
print("ratio cacheout-run / bwrap-strict (medians): %.2f (target <= 0.8)"
      % (med["cacheout-run"] / med["bwrap-strict"]))
PY
echo
"$inproc" "$runs"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
