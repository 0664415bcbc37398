#!/usr/bin/env bash
# Prints the Debian mirror URI this machine's apt uses for the main suite (deb822 .sources files
# first, then one-line sources.list entries), so that debootstrap uses the same mirror as apt.
set -euo pipefail
suite=${1:-bookworm}
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v suite="$suite" '
        function flush() {
            if (uris != "" && types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " "))
                { split(uris, u, " "); print u[1]; found = 1; exit }
            uris = ""; suites = ""; types = ""
        }
        /^[[:space:]]*$/ { flush(); next }
        /^URIs:/   { sub(/^URIs:[[:space:]]*/, ""); uris = $0 }
        /^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
        /^Types:/  { sub(/^Types:[[:space:]]*/, ""); types = $0 }
        END { if (!found) flush() }
    ' "$f" | head -n 1 | grep . && exit 0
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v suite="$suite" '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
    }' "$f" | grep . && exit 0
done
echo "cannot find a Debian mirror for '$suite' in the apt sources" >&2
exit 1
