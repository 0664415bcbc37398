#!/usr/bin/env bash
# make-rootfs.sh NAME [PACKAGE...]: build a Debian rootfs job image with debootstrap and register
# it as /var/lib/cacheout/images/NAME.  Environment: SUITE (default bookworm), MIRROR (default:
# debootstrap's own), CACHEOUT_IMAGE_DIR (default /var/lib/cacheout/images).
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 NAME [PACKAGE...]" >&2
    exit 2
fi
name=$1
shift
case $name in
    .* | *[!A-Za-z0-9._-]*) echo "$0: invalid image name '$name'" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
    echo "$0: must run as root" >&2
    exit 1
fi
command -v debootstrap >/dev/null || { echo "$0: install debootstrap first" >&2; exit 1; }
dir=${CACHEOUT_IMAGE_DIR:-/var/lib/cacheout/images}
suite=${SUITE:-bookworm}
final=$dir/$name
if [ -e "$final" ]; then
    echo "$0: '$final' exists; remove it first to rebuild" >&2
    exit 1
fi
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.build-$name.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

include=python3
for p in "$@"; do include="$include,$p"; done
# shellcheck disable=SC2086
debootstrap --variant=minbase --include="$include" "$suite" "$tmp" ${MIRROR:-}

# The job users (uid/gid 900000 + slot, see sandbox/sbx.h) so that tools can name them.
for i in $(seq 0 255); do
    echo "job$i:x:$((900000 + i)):$((900000 + i)):cacheout job:/work:/bin/sh" >> "$tmp/etc/passwd"
    echo "job$i:x:$((900000 + i)):" >> "$tmp/etc/group"
done
mkdir -p "$tmp/proc" "$tmp/dev" "$tmp/tmp" "$tmp/work"
rm -rf "$tmp/var/cache/apt/archives/"*.deb "$tmp/var/lib/apt/lists/"* "$tmp/etc/resolv.conf"
chmod 0755 "$tmp"
mv "$tmp" "$final"
trap - EXIT
echo "image '$name' registered at $final"
