# Rootless sandboxes in the test suites (sourced by tests/sandbox/run.sh and
# tests/integration/agent/run.sh).  The suites run as root; their rootless passes run the
# sandbox as an unprivileged user made here.
#
# rootless_setup BUILD_DIR [BINARY...]
#   As root: create the system user $ROOTLESS_USER (default cacheout-rl) if it is missing, let
#   `cacheout-run --setup-rootless` give it subordinate ids and delegated cgroups (what an
#   administrator does once), and copy BUILD_DIR/sandbox/cacheout-run and each BINARY (paths)
#   into a fresh folder the user can read: the checkout may sit below a folder only root can
#   enter.  Exports ROOTLESS_USER, ROOTLESS_UID, ROOTLESS_BIN_DIR.  Returns 1 with the reason in
#   ROOTLESS_WHY when that is impossible here.
# rootless_cleanup
#   Remove the copies.

rootless_setup() {
    local build=$1
    shift
    ROOTLESS_USER=${ROOTLESS_USER:-cacheout-rl}
    ROOTLESS_WHY=
    if [ "$(id -u)" -ne 0 ]; then
        ROOTLESS_WHY="not running as root: cannot create the unprivileged test user"
        return 1
    fi
    if ! id -u "$ROOTLESS_USER" >/dev/null 2>&1; then
        if ! useradd --system --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$ROOTLESS_USER" >/dev/null 2>&1; then
            ROOTLESS_WHY="useradd $ROOTLESS_USER failed"
            return 1
        fi
    fi
    ROOTLESS_UID=$(id -u "$ROOTLESS_USER")
    local out
    if ! out=$("$build/sandbox/cacheout-run" --setup-rootless "$ROOTLESS_USER" 2>&1); then
        ROOTLESS_WHY="cacheout-run --setup-rootless $ROOTLESS_USER failed: $out"
        return 1
    fi
    ROOTLESS_BIN_DIR=$(mktemp -d /tmp/cacheout-rootless-bin.XXXXXX) || {
        ROOTLESS_WHY="mktemp failed"
        return 1
    }
    chmod 755 "$ROOTLESS_BIN_DIR"
    local f
    for f in "$build/sandbox/cacheout-run" "$@"; do
        if ! cp "$f" "$ROOTLESS_BIN_DIR/"; then
            ROOTLESS_WHY="cannot copy $f"
            return 1
        fi
    done
    chmod -R a+rX "$ROOTLESS_BIN_DIR"
    export ROOTLESS_USER ROOTLESS_UID ROOTLESS_BIN_DIR
    return 0
}

rootless_cleanup() {
    if [ -n "${ROOTLESS_BIN_DIR:-}" ]; then
        rm -rf "$ROOTLESS_BIN_DIR"
    fi
}
