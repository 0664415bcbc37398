#!/usr/bin/env bash
# Installs the Debian packages the build and the test suites need, only those that are missing.
# The lists are scripts/packages/*.txt (one package per line, '#' comments). Fast when nothing is
# missing: one dpkg-query call.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

want=$(cat "$here"/packages/*.txt | sed -e 's/#.*//' -e 's/[[:space:]]//g' | awk 'NF' | sort -u)
missing=()
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' $want 2>/dev/null |
            awk '$2 == "installed" {print $1}' || true)
for p in $want; do
    grep -qx "$p" <<<"$installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "bootstrap: installing missing packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "bootstrap: not root and no sudo: install these packages first: ${missing[*]}" >&2
        exit 1
    fi
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
# A source other than Debian's mirror may be unreachable; the packages we need come from Debian.
$SUDO apt-get update -q || echo "bootstrap: warning: apt-get update reported errors; continuing"
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
