#!/usr/bin/env bash
# Builds the dashboard (frontend/) into frontend/dist.
#   scripts/build-frontend.sh           install dependencies if needed, build if sources changed
#   scripts/build-frontend.sh --deps    only install dependencies if needed
#   scripts/build-frontend.sh --force   install and build even if nothing changed
# Dependencies come from the committed package-lock.json with `npm ci` (the only network access
# is to the npm registry, and only when node_modules is missing or older than the lock file).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
fe="$root/frontend"
mode=build
force=0
for arg in "$@"; do
    case "$arg" in
    --deps) mode=deps ;;
    --force) force=1 ;;
    -h | --help)
        sed -n '2,7p' "$0"
        exit 0
        ;;
    *)
        echo "build-frontend: unknown argument '$arg'" >&2
        exit 2
        ;;
    esac
done

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "build-frontend: node and npm are required (Node.js >= 20.19)" >&2
    exit 1
fi
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
    echo "build-frontend: Node.js >= 20.19 is required, found $(node --version)" >&2
    exit 1
fi

cd "$fe"
deps_stamp=node_modules/.cacheout-deps
if [ "$force" = 1 ] || [ ! -f "$deps_stamp" ] || [ package-lock.json -nt "$deps_stamp" ] ||
    [ package.json -nt "$deps_stamp" ]; then
    echo "build-frontend: installing dependencies (npm ci)"
    # Install scripts are not needed: native parts (esbuild, tailwind) come as platform packages.
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
    touch "$deps_stamp"
fi
[ "$mode" = deps ] && exit 0

build_stamp=dist/.cacheout-build
inputs=(src public index.html vite.config.ts tsconfig.json package.json package-lock.json)
if [ "$force" = 0 ] && [ -f "$build_stamp" ] && [ -f dist/index.html ] &&
    [ -z "$(find "${inputs[@]}" -newer "$build_stamp" -print -quit 2>/dev/null)" ]; then
    echo "build-frontend: frontend/dist is up to date"
    exit 0
fi
echo "build-frontend: building frontend/dist"
npm run --silent build
touch "$build_stamp"
