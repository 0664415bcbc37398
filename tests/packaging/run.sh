#!/usr/bin/env bash
# Packaging suite.
#  1. local_test.py: `cmake --install` into a temporary prefix; the installed coordinator runs from
#     /; compiled-in migrations; TLS with a throw-away CA (tests/lib/tls.sh); enroll.
#  2. The .deb packages (cpack) installed with `apt install ./*.deb` into a fresh
#     debian:bookworm-slim container (tests/lib/containers.sh; Podman, or Docker where it runs):
#     files, conffiles, the system user; then the coordinator (HTTPS) and the agent (wss://,
#     certificate verified) started from their installed paths with their packaged settings
#     files, and the original README's example job run on them; then remove and purge.
#  3. The same packages under systemd (PID 1 of a container): the units as shipped, with their
#     hardening; postinst starts the coordinator; the agent's unit runs the README job and stops.
#
# Environment: CO_SRC_DIR, CO_BUILD_DIR, CO_ASAN_BUILD_DIR (as scripts/test.sh sets them; part 1
# runs again with the sanitizer build); PACKAGING_CONTAINER=0 skips parts 2 and 3 (loudly).
# Needs root for parts 2 and 3 (containers with the agent's privileges) and for the agent case
# of part 1.  Last line: "packaging: N passed, M failed".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=${CO_SRC_DIR:-$(cd "$here/../.." && pwd)}
build=${CO_BUILD_DIR:-$top/build}
passed=0
failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; failed=$((failed + 1)); }
finish() {
    echo "packaging: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}
t0=$SECONDS
step_time() { echo "    # $1 took $((SECONDS - $2)) s"; }

for b in coordinator/cacheout-coordinator agent/cacheout-agent sandbox/cacheout-run; do
    if [ ! -x "$build/$b" ]; then
        bad "built: $build/$b is missing (build first)"
        finish
    fi
done

work=$(mktemp -d /tmp/cacheout-packaging-XXXXXX)
name=cacheout-pkg-$$
engine=
cleanup() {
    if [ -n "$engine" ]; then
        $engine rm -f "$name" "$name-systemd" >/dev/null 2>&1
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=../lib/tls.sh
. "$top/tests/lib/tls.sh"
if tls_make "$work/tls"; then ok "throw-away CA and certificates"; else bad "throw-away CA"; finish; fi

# ---- part 1: installed tree, run from anywhere, TLS, enroll
s=$SECONDS
if cmake --install "$build" --prefix "$work/prefix" >"$work/install.log" 2>&1; then
    ok "cmake --install into a prefix"
else
    tail -20 "$work/install.log"
    bad "cmake --install into a prefix"
    finish
fi
# The units: what systemd-analyze finds wrong, with ExecStart pointed at the built binaries (the
# only thing it cannot find outside an installed system).
units_ok=1
for u in cacheout-coordinator cacheout-agent; do
    sed "s|/usr/bin/$u|$build/${u#cacheout-}/$u|" "$top/packaging/systemd/$u.service" >"$work/$u.service"
    if ! systemd-analyze verify --man=no "$work/$u.service" >"$work/verify.log" 2>&1; then
        cat "$work/verify.log"
        units_ok=0
    fi
done
if [ "$units_ok" = 1 ]; then ok "systemd-analyze verify: both units"; else bad "systemd-analyze verify"; fi
out=$(mktemp)
python3 "$here/local_test.py" --src "$top" --bin "$build/coordinator/cacheout-coordinator" \
    --agent "$build/agent/cacheout-agent" --prefix "$work/prefix" --tls-dir "$work/tls" 2>&1 |
    tee "$out"
line=$(grep '^RESULT ' "$out" | tail -n 1)
if [ -z "$line" ]; then
    bad "local_test.py ended without a RESULT line"
else
    passed=$((passed + $(cut -d' ' -f2 <<<"$line")))
    failed=$((failed + $(cut -d' ' -f3 <<<"$line")))
fi
asan=${CO_ASAN_BUILD_DIR:-}
if [ -n "$asan" ] && [ -x "$asan/coordinator/cacheout-coordinator" ] && [ -x "$asan/agent/cacheout-agent" ]; then
    python3 "$here/local_test.py" --src "$top" --bin "$asan/coordinator/cacheout-coordinator" \
        --agent "$asan/agent/cacheout-agent" --prefix "$work/prefix" --tls-dir "$work/tls" \
        --label local-asan 2>&1 | tee "$out"
    line=$(grep '^RESULT ' "$out" | tail -n 1)
    if [ -z "$line" ]; then
        bad "local_test.py (sanitizer build) ended without a RESULT line"
    else
        passed=$((passed + $(cut -d' ' -f2 <<<"$line")))
        failed=$((failed + $(cut -d' ' -f3 <<<"$line")))
    fi
else
    echo "    # no sanitizer build (CO_ASAN_BUILD_DIR unset or not built): part 1 ran once"
fi
rm -f "$out"
step_time "part 1 (install, run from anywhere, TLS)" "$s"

# ---- part 2: the .deb packages in a fresh container
if [ "${PACKAGING_CONTAINER:-1}" = 0 ]; then
    echo "SKIPPED LOUDLY: the .deb packages in a container (PACKAGING_CONTAINER=0)"
    bad "packages installed and run in a container (skipped)"
    finish
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "SKIPPED LOUDLY: the container part needs root (the agent's sandbox privileges)"
    bad "packages installed and run in a container (needs root)"
    finish
fi

s=$SECONDS
mkdir -p "$work/debs"
if (cd "$work/debs" && cpack --config "$build/CPackConfig.cmake" -B "$work/debs") \
    >"$work/cpack.log" 2>&1 && ls "$work/debs"/cacheout-coordinator_*.deb "$work/debs"/cacheout-agent_*.deb >/dev/null 2>&1; then
    ok "cpack builds cacheout-coordinator and cacheout-agent .deb packages"
else
    tail -30 "$work/cpack.log"
    bad "cpack builds the .deb packages"
    finish
fi
rm -rf "$work/debs/_CPack_Packages"
deps=$(dpkg-deb -f "$work/debs"/cacheout-coordinator_*.deb Depends)
if grep -q 'libwebsockets17' <<<"$deps" && grep -q 'libsqlite3-0' <<<"$deps" && grep -q 'libpq5' <<<"$deps"; then
    ok "coordinator Depends come from dpkg-shlibdeps ($deps)"
else
    bad "coordinator Depends from dpkg-shlibdeps (got: $deps)"
fi
step_time "cpack" "$s"

# shellcheck source=../lib/containers.sh
. "$top/tests/lib/containers.sh"
containers_engine "$work"
s=$SECONDS
if containers_base_image "$work"; then ok "base image debian:bookworm-slim ($engine)"; else
    bad "base image debian:bookworm-slim"
    finish
fi

# The agent's sandbox needs what the compose worker gets (images/README.md): CAP_SYS_ADMIN,
# no AppArmor profile, the host's cgroup tree, and the host-wide sandbox slot locks.  The host's
# network: the test talks to the coordinator on a free loopback port.
mkdir -p /run/cacheout
ct_start() { # container-name image [run args... --] command...
    local n=$1 image=$2
    shift 2
    local args=()
    while [ "$1" != -- ]; do args+=("$1"); shift; done
    shift
    $engine run -d --name "$n" --cap-add SYS_ADMIN --security-opt apparmor=unconfined \
        -v /run/cacheout:/run/cacheout -v "$work/debs:/debs:ro" -v "$work/tls:/tls:ro" \
        "${args[@]}" "$image" "$@" >"$work/run.log" 2>&1 || { cat "$work/run.log"; return 1; }
}
if ! ct_start "$name" debian:bookworm-slim --network host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
    -- sleep infinity; then
    bad "start a debian:bookworm-slim container"
    finish
fi
ct=$name
in_ct() { $engine exec "$ct" sh -c "$1"; }

if in_ct 'test ! -e /usr/bin/cacheout-coordinator && test ! -e /work && ! command -v cmake' \
    >/dev/null 2>&1; then
    ok "the container is fresh (no CacheOut, no source tree, no build tools)"
else
    bad "the container is fresh"
fi

apt_install() { in_ct 'export DEBIAN_FRONTEND=noninteractive; apt-get update -q && cd /debs && apt-get install -y -q ./*.deb'; }
if apt_install >"$work/apt.log" 2>&1; then
    ok "apt install ./*.deb in the container"
else
    tail -30 "$work/apt.log"
    bad "apt install ./*.deb in the container"
    finish
fi
step_time "container and apt install" "$s"

files_ok=1
for f in /usr/bin/cacheout-coordinator /usr/bin/cacheout-agent /usr/bin/cacheout-run \
    /usr/share/cacheout/frontend/index.html /usr/share/man/man8/cacheout-coordinator.8 \
    /usr/share/man/man8/cacheout-agent.8 /usr/share/man/man1/cacheout-run.1 \
    /usr/lib/systemd/system/cacheout-coordinator.service \
    /usr/lib/systemd/system/cacheout-agent.service /etc/cacheout/coordinator.env \
    /etc/cacheout/agent.env; do
    in_ct "test -e $f" || { echo "    missing: $f"; files_ok=0; }
done
if [ "$files_ok" = 1 ]; then ok "binaries, dashboard, man pages, units and settings installed"; else
    bad "installed files"
fi
conf=$(in_ct "dpkg-query -W -f='\${Conffiles}\n' cacheout-coordinator cacheout-agent")
if grep -q /etc/cacheout/coordinator.env <<<"$conf" && grep -q /etc/cacheout/agent.env <<<"$conf"; then
    ok "/etc/cacheout/*.env are conffiles"
else
    bad "conffiles (got: $conf)"
fi
perms=$(in_ct 'getent passwd cacheout | cut -d: -f7; stat -c "%U:%G %a" /etc/cacheout/coordinator.env /etc/cacheout/agent.env /var/lib/cacheout-coordinator')
if [ "$perms" = "$(printf '/usr/sbin/nologin\nroot:cacheout 640\nroot:root 600\ncacheout:cacheout 750')" ]; then
    ok "system user cacheout; settings files readable by their service only"
else
    bad "system user and permissions (got: $(echo $perms))"
fi

# The coordinator: its packaged settings file plus the test's tokens, port and certificate.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin=pkg-admin-token-$$-0123456789abcdef
agent_token=pkg-agent-$$
coordinator_settings() { # listening address
    in_ct "install -d -o root -g cacheout -m 0750 /etc/cacheout/tls &&
        install -o root -g cacheout -m 0640 /tls/server.pem /tls/server.key /etc/cacheout/tls/ &&
        install -m 0644 /tls/ca.pem /etc/cacheout/coordinator-ca.pem &&
        printf 'PORT=$port\nHOST=$1\nADMIN_TOKEN=$admin\nAGENT_TOKEN=$agent_token\nTLS_CERT_FILE=/etc/cacheout/tls/server.pem\nTLS_KEY_FILE=/etc/cacheout/tls/server.key\n' >>/etc/cacheout/coordinator.env"
}
coordinator_settings 127.0.0.1
# As the unit runs it: user cacheout, its EnvironmentFile, from the state folder.
$engine exec -d "$name" sh -c 'cd /var/lib/cacheout-coordinator && set -a && . /etc/cacheout/coordinator.env && set +a &&
    exec runuser -u cacheout -- /usr/bin/cacheout-coordinator >/var/log/cacheout-coordinator.log 2>&1' >/dev/null
api=https://localhost:$port
cacert=(--cacert "$work/tls/ca.pem")
wait_healthy() {
    for _ in $(seq 1 60); do
        curl -fsS "${cacert[@]}" "$api/api/v1/health" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    return 1
}
wait_worker() { # worker id
    for _ in $(seq 1 60); do
        curl -fsS "${cacert[@]}" "$api/api/v1/workers" | grep -q "\"$1\"" && return 0
        sleep 0.5
    done
    return 1
}
if wait_healthy; then ok "installed coordinator serves HTTPS as user cacheout (SQLite in its state folder)"; else
    in_ct 'cat /var/log/cacheout-coordinator.log' | tail -20
    bad "installed coordinator serves HTTPS"
fi
if curl -fsS "${cacert[@]}" "$api/" | grep -q '<div id="root"'; then ok "installed dashboard served"; else
    bad "installed dashboard served"
fi
if in_ct 'test -s /var/lib/cacheout-coordinator/cacheout.db'; then ok "database in /var/lib/cacheout-coordinator"; else
    bad "database in /var/lib/cacheout-coordinator"
fi

# The agent's settings: with accounts (GET /api/v1/me) and an agent that takes AGENT_KEY, as a
# seller does it: a user and a sell key made by the admin, then `cacheout-agent enroll` (key
# checked over verified TLS) writes the settings file.  Otherwise the operator's AGENT_TOKEN.
agent_settings() { # worker id
    me=$(curl -s -o /dev/null -w '%{http_code}' "${cacert[@]}" -H "X-Admin-Token: $admin" "$api/api/v1/me")
    if [ "$me" = 200 ] && in_ct '/usr/bin/cacheout-agent --help' | grep -q AGENT_KEY; then
        seller=pkg-seller-$$
        curl -fsS "${cacert[@]}" -H "X-Admin-Token: $admin" -H "Content-Type: application/json" \
            -d "{\"user_id\": \"$seller\"}" "$api/api/v1/users" >/dev/null
        key=$(curl -fsS "${cacert[@]}" -H "X-Admin-Token: $admin" -H "Content-Type: application/json" \
            -d '{"name": "packaging", "scopes": ["sell"]}' "$api/api/v1/users/$seller/keys" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
        if in_ct "AGENT_KEY=$key /usr/bin/cacheout-agent enroll --coordinator https://localhost:$port --tls-ca-file /etc/cacheout/coordinator-ca.pem" \
            >"$work/enroll.log" 2>&1 && in_ct "grep -qx 'AGENT_KEY=$key' /etc/cacheout/agent.env"; then
            ok "cacheout-agent enroll with a seller's sell key wrote /etc/cacheout/agent.env"
        else
            cat "$work/enroll.log"
            bad "cacheout-agent enroll"
        fi
        in_ct "printf 'WORKER_ID=$1\nAGENT_CORES=2\nAGENT_RAM_MB=4096\n' >>/etc/cacheout/agent.env"
    else
        echo "    # no accounts (GET /api/v1/me: $me) or no AGENT_KEY in this agent: it uses AGENT_TOKEN, enroll is not run here"
        in_ct "printf 'COORDINATOR_URL=wss://localhost:$port/ws/agent\nAGENT_TOKEN=$agent_token\nTLS_CA_FILE=/etc/cacheout/coordinator-ca.pem\nWORKER_ID=$1\nAGENT_CORES=2\nAGENT_RAM_MB=4096\n' >>/etc/cacheout/agent.env"
    fi
}
agent_settings "pkg-worker-$$"
# The agent, as its unit runs it (root, --env-file /etc/cacheout/agent.env), over wss://.
$engine exec -d "$name" sh -c 'cd / && exec /usr/bin/cacheout-agent --env-file /etc/cacheout/agent.env >/var/log/cacheout-agent.log 2>&1' >/dev/null
if wait_worker "pkg-worker-$$"; then ok "installed agent connected over wss:// (certificate verified)"; else
    in_ct 'cat /var/log/cacheout-agent.log' | tail -20
    bad "installed agent connected over wss://"
fi

# The original README's example, verbatim but for the token, the port and https.
# shellcheck source=../lib/readme_job.sh
. "$top/tests/lib/readme_job.sh"
readme_job() { # what ran it, for the case's name; log command
    local job status stdout
    job=$(readme_job_submit "$api" "$admin" "${cacert[@]}")
    status=$(readme_job_wait "$api" "$job" 60 "${cacert[@]}")
    stdout=$(readme_job_stdout "$api" "$job" "$admin" "${cacert[@]}")
    if [ "$status" = completed ] && [ "$stdout" = "Hello World" ]; then
        ok "the README example job ran on $1: Hello World"
    else
        in_ct "$2" | tail -20
        bad "README example job on $1 (job '$job'; status '$status'; stdout '$stdout')"
    fi
}
readme_job "the installed agent" 'tail -20 /var/log/cacheout-agent.log'

# Stop both (the agent first, as the units would) and remove the packages.
# (the slim image has no pkill: look the process up in /proc)
stop_ct() { # process name (comm, 15 characters at most)
    in_ct "for p in /proc/[0-9]*; do [ \"\$(cat \$p/comm 2>/dev/null)\" = '$1' ] && kill -TERM \${p#/proc/}; done
        for i in \$(seq 1 100); do grep -qx '$1' /proc/[0-9]*/comm 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
}
if stop_ct cacheout-agent && stop_ct cacheout-coordi; then ok "agent and coordinator stop on SIGTERM"; else
    bad "agent and coordinator stop on SIGTERM"
fi
if in_ct 'export DEBIAN_FRONTEND=noninteractive; apt-get remove -y -q cacheout-agent cacheout-coordinator >/dev/null &&
    test ! -e /usr/bin/cacheout-coordinator && test -e /etc/cacheout/coordinator.env &&
    apt-get purge -y -q cacheout-agent cacheout-coordinator >/dev/null && test ! -e /etc/cacheout/agent.env' \
    >"$work/remove.log" 2>&1; then
    ok "remove keeps the settings files, purge removes them"
else
    tail -20 "$work/remove.log"
    bad "remove and purge"
fi
step_time "part 2 (packages in a container)" "$s"

# ---- part 3: the same packages under systemd (the units as shipped, with their hardening)
# systemd runs as PID 1 of a Podman container (--systemd=always) made from the base image plus
# systemd, kept for later runs like the base image.
s=$SECONDS
if [ "$engine" != podman ]; then
    echo "SKIPPED LOUDLY: the units under systemd need Podman's --systemd=always"
    bad "units under systemd (no Podman)"
    finish
fi
sd_image=localhost/cacheout-test-systemd:bookworm
if ! $engine image exists "$sd_image"; then
    if $engine run --name "$name-sdbuild" --network host debian:bookworm-slim sh -c \
        'export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q --no-install-recommends systemd systemd-sysv dbus' \
        >"$work/sd-image.log" 2>&1 && $engine commit -q "$name-sdbuild" "$sd_image" >/dev/null; then
        :
    else
        tail -20 "$work/sd-image.log"
    fi
    $engine rm -f "$name-sdbuild" >/dev/null 2>&1
fi
# Its own network (the port published on loopback): the coordinator that postinst starts on
# the packaged PORT=8000 must not meet another one of the machine.
# The agent's cgroups: on cgroup v1 each controller hierarchy of the host, read-write (binding
# the whole /sys/fs/cgroup instead lets the container's set-up create mount points in the
# host's own cgroup folder); on cgroup v2 Podman gives systemd a writable cgroup of its own.
cg=()
while read -r fstype mnt; do
    [ "$fstype" = cgroup ] && [ "${mnt##*/}" != systemd ] && cg+=(-v "$mnt:$mnt:rw")
done < <(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { print $(i + 1), $5; break } }' /proc/self/mountinfo)
ct=$name-systemd
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
api=https://localhost:$port
if ct_start "$ct" "$sd_image" --systemd=always -p "127.0.0.1:$port:$port" "${cg[@]}" -- /sbin/init &&
   for _ in $(seq 1 60); do
       st=$(in_ct 'systemctl is-system-running' 2>/dev/null)
       case $st in running | degraded) break ;; esac
       sleep 0.5
   done && [ "$st" = running ]; then
    ok "a container with systemd as PID 1 ($st)"
else
    bad "a container with systemd as PID 1 (state '$st')"
    finish
fi
if apt_install >"$work/apt-sd.log" 2>&1 &&
   [ "$(in_ct 'systemctl is-enabled cacheout-coordinator; systemctl is-active cacheout-coordinator')" = "$(printf 'enabled\nactive')" ]; then
    ok "apt install under systemd: postinst enabled and started cacheout-coordinator"
else
    tail -20 "$work/apt-sd.log"
    bad "apt install under systemd enables and starts the coordinator"
fi
coordinator_settings 0.0.0.0
in_ct 'systemctl restart cacheout-coordinator'
if wait_healthy; then ok "cacheout-coordinator.service serves HTTPS with the packaged unit's hardening"; else
    in_ct 'journalctl -u cacheout-coordinator --no-pager | tail -20'
    bad "cacheout-coordinator.service serves HTTPS"
fi
agent_settings "pkg-sd-worker-$$"
in_ct 'systemctl enable --now cacheout-agent' >/dev/null 2>&1
if wait_worker "pkg-sd-worker-$$"; then
    ok "cacheout-agent.service passed its sandbox self-test and connected over wss://"
else
    in_ct 'journalctl -u cacheout-agent --no-pager | tail -20'
    bad "cacheout-agent.service connected"
fi
props=$(in_ct 'systemctl show -p Delegate -p KillMode -p OOMPolicy -p NoNewPrivileges cacheout-agent' | sort | tr '\n' ' ')
if [ "$props" = "Delegate=yes KillMode=mixed NoNewPrivileges=yes OOMPolicy=continue " ]; then
    ok "the agent's unit: $props"
else
    bad "the agent's unit properties (got: $props)"
fi
readme_job "cacheout-agent.service (systemd)" 'journalctl -u cacheout-agent --no-pager'
if in_ct 'systemctl stop cacheout-agent && [ "$(systemctl show -p Result --value cacheout-agent)" = success ]'; then
    ok "systemctl stop cacheout-agent: a clean stop (KillMode=mixed, SIGTERM to the agent)"
else
    in_ct 'journalctl -u cacheout-agent --no-pager | tail -10'
    bad "systemctl stop cacheout-agent"
fi
step_time "part 3 (units under systemd)" "$s"
echo "    # packaging suite: $((SECONDS - t0)) s in all"
finish
