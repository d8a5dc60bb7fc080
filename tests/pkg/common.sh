# Sourced by the pkg.* tests (tests/pkg/*.sh): a throw-away directory, a hermetic
# and offline environment for rebar3, Mix and git, the checkout as a git repository
# to depend on, and bounded steps that fail with a clear message.
# Needs: SRC (the checkout), set by the caller before sourcing.
set -euo pipefail

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pyport-pkg.XXXXXX")
PKG_AT_EXIT=""   # a command run first at exit (e.g. stop a release)
pkg_cleanup() {
    local status=$?
    [ -z "$PKG_AT_EXIT" ] || eval "$PKG_AT_EXIT" || true
    if [ "$status" -eq 0 ]; then
        rm -rf "$WORK"
    else
        echo "pkg: failed; the throw-away projects are kept in $WORK" >&2
    fi
}
trap pkg_cleanup EXIT

# Nothing from the user's own configuration, and no registry: empty rebar3 and Mix
# homes (no Hex installed for Mix: with stdin closed its offer to install Hex is
# declined at once), HEX_OFFLINE, and HTTP(S) proxies on a closed local port, which
# rebar3 honours (its offline mode would refuse even a file:// git dependency).
# Every step has a time limit, so something that still waits for a network fails.
export HOME=$WORK/home
mkdir -p "$HOME"
export REBAR_CACHE_DIR=$WORK/rebar-cache REBAR_GLOBAL_CONFIG_DIR=$WORK/rebar-config
export REBAR_COLOR=none
export MIX_HOME=$WORK/mix-home HEX_HOME=$WORK/hex-home HEX_OFFLINE=1 MIX_ENV=dev
export http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9
export HTTP_PROXY=$http_proxy HTTPS_PROXY=$https_proxy no_proxy= NO_PROXY=
export GIT_TERMINAL_PROMPT=0 GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=pkg GIT_AUTHOR_EMAIL=pkg@localhost
export GIT_COMMITTER_NAME=pkg GIT_COMMITTER_EMAIL=pkg@localhost
unset ERL_LIBS ERL_FLAGS ERL_AFLAGS ERL_ZFLAGS MIX_REBAR3 REBAR_CONFIG 2>/dev/null || true

# A system package manager is never part of a dependency build: these stand-ins,
# first on PATH, record any call and fail (checked by no_package_manager_calls).
mkdir -p "$WORK/shims"
for pm in dpkg dpkg-query apt-get apt; do
    printf '#!/bin/sh\necho "%s $*" >>"%s"\nexit 1\n' "$pm" "$WORK/package-manager-calls" \
        >"$WORK/shims/$pm"
    chmod +x "$WORK/shims/$pm"
done
export PATH=$WORK/shims:$PATH
no_package_manager_calls() {
    if [ -e "$WORK/package-manager-calls" ]; then
        echo "FAIL the build called a package manager:" >&2
        cat "$WORK/package-manager-calls" >&2
        exit 1
    fi
    echo "ok   no call to dpkg or apt"
}

# step SECONDS DESCRIPTION COMMAND...: runs COMMAND with stdin closed and a time
# limit, its output in $WORK/logs; on failure prints the output's tail and exits.
STEP=0
mkdir -p "$WORK/logs"
step() {
    local limit=$1 what=$2
    shift 2
    STEP=$((STEP + 1))
    local log=$WORK/logs/$STEP.log
    local t0=$SECONDS rc=0
    timeout --kill-after=10 "$limit" "$@" </dev/null >"$log" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
        echo "ok   $what ($((SECONDS - t0)) s)"
        return 0
    fi
    echo "FAIL $what: exit $rc after $((SECONDS - t0)) s" >&2
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "     (time limit of $limit s: did something wait for the network?)" >&2
    fi
    echo "---- last lines of $log:" >&2
    tail -n 60 "$log" >&2
    exit 1
}

# The output of the last step.
last_log() { cat "$WORK/logs/$STEP.log"; }

# expect_in_log TEXT: the last step printed TEXT (a fixed string).
expect_in_log() {
    if ! grep -qF -- "$1" "$WORK/logs/$STEP.log"; then
        echo "FAIL expected '$1' in the output of step $STEP:" >&2
        tail -n 40 "$WORK/logs/$STEP.log" >&2
        exit 1
    fi
    echo "ok   saw: $1"
}

# snapshot: the checkout's files as they are (tracked and new, not ignored; so
# never a build directory or priv/) committed on branch main of a fresh repository
# $WORK/pyport, which the throw-away projects depend on by its file:// URL.
snapshot() {
    local dst=$WORK/pyport
    mkdir -p "$dst"
    (
        cd "$SRC"
        git ls-files -z --cached --others --exclude-standard |
            while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
            tar --null -T - -cf -
    ) | tar -xf - -C "$dst"
    git -C "$dst" init -q -b main
    git -C "$dst" add -A
    git -C "$dst" commit -q -m "snapshot of $SRC"
    PYPORT_URL=file://$dst
    echo "ok   snapshot of the checkout: $PYPORT_URL"
}

# readme_line PATTERN: the one README.md line that contains PATTERN (fixed string).
readme_line() {
    local n
    n=$(grep -cF -- "$1" "$SRC/README.md" || true)
    if [ "$n" != 1 ]; then
        echo "FAIL README.md has $n lines with '$1' (expected exactly one)" >&2
        exit 1
    fi
    grep -F -- "$1" "$SRC/README.md"
}
