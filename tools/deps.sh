#!/usr/bin/env bash
# Makes sure the Debian packages pyport builds and tests with are installed.
# As root it installs what is missing with apt-get (non-interactive, no stdin
# needed); otherwise it prints the exact command and fails.
# Usage: tools/deps.sh PACKAGE...
set -euo pipefail

missing=()
for pkg in "$@"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "installed" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd=(apt-get install -y --no-install-recommends "${missing[@]}")
if [ "$(id -u)" -ne 0 ]; then
    echo "pyport needs these Debian packages: ${missing[*]}" >&2
    echo "install them with:  sudo ${cmd[*]}" >&2
    exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! "${cmd[@]}" </dev/null; then
    # A fresh machine may have no package lists yet.
    apt-get update </dev/null
    "${cmd[@]}" </dev/null
fi
