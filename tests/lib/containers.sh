# Sourced by the suites that run containers (compose, packaging): picks the engine and makes the
# debian:bookworm-slim base image when no registry can give it.
#
# containers_engine WORK: sets $engine (docker when a Docker engine answers, else podman) and,
# for Podman, settings for machines without systemd in WORK/containers.conf (CONTAINERS_CONF;
# see images/README.md), kept out of /etc.
containers_engine() {
    local work=$1
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        engine=docker
    else
        engine=podman
        cat >"$work/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
        export CONTAINERS_CONF=$work/containers.conf
        export BUILDAH_FORMAT=docker # keep HEALTHCHECK in the images
    fi
}

# containers_base_image WORK: makes sure $engine has debian:bookworm-slim.  No registry may be
# reachable, so it is made with debootstrap from the machine's own Debian mirror
# (images/debian-mirror.sh), once, and kept for later runs.  Needs $top (the repository root).
containers_base_image() {
    local work=$1 mirror
    if $engine image exists docker.io/library/debian:bookworm-slim 2>/dev/null ||
       $engine image inspect debian:bookworm-slim >/dev/null 2>&1; then
        return 0
    fi
    timeout 120 $engine pull -q debian:bookworm-slim >/dev/null 2>&1 && return 0
    echo "making debian:bookworm-slim with debootstrap"
    mirror=$("$top/images/debian-mirror.sh") || return 1
    if debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 &&
       tar -C "$work/rootfs" -c . | $engine import - localhost/debian:bookworm-slim >/dev/null; then
        $engine tag localhost/debian:bookworm-slim docker.io/library/debian:bookworm-slim
        rm -rf "$work/rootfs"
        return 0
    fi
    tail -20 "$work/debootstrap.log"
    rm -rf "$work/rootfs"
    return 1
}
