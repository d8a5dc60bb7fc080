#!/bin/sh
# Builds the port program when pyport is a dependency (rebar.config's compile hook,
# mix.exs's compile step): CMake alone finds the compiler, Python, libuv and
# erl_interface; the program and its Python half land in PRIV_DIR. No package manager.
# Usage: tools/build_port.sh PRIV_DIR BUILD_DIR   (relative paths: from the current dir)
# Environment: PYPORT_PYTHON (the Python to embed), PYPORT_CMAKE_ARGS (more arguments
# for CMake's configure step, split at spaces, e.g. -DLibUV_ROOT=/opt/libuv).
set -eu

missing() {
    echo "pyport cannot be built; missing build dependencies:" >&2
    echo "  - $1" >&2
    echo "Install what is missing with your system's package manager and build again." >&2
    exit 1
}

[ $# -eq 2 ] || { echo "usage: $0 PRIV_DIR BUILD_DIR" >&2; exit 2; }
src=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1" "$2"
priv=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)

command -v cmake >/dev/null 2>&1 ||
    missing "CMake 3.20 or newer on PATH (Debian/Ubuntu, Fedora/RHEL, Alpine: cmake)"
if [ -z "${CMAKE_GENERATOR:-}" ] && ! [ -f "$build/CMakeCache.txt" ]; then
    if command -v make >/dev/null 2>&1; then
        CMAKE_GENERATOR="Unix Makefiles"
    elif command -v ninja >/dev/null 2>&1; then
        CMAKE_GENERATOR=Ninja
    else
        missing "a build tool for CMake, make or ninja, on PATH"
    fi
    export CMAKE_GENERATOR
fi

jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
# shellcheck disable=SC2086 # PYPORT_CMAKE_ARGS is a list of arguments
cmake -S "$src" -B "$build" -DPYPORT_PORT_ONLY=ON -DPYPORT_WERROR=OFF \
      -DPYPORT_PRIV_DIR="$priv" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${PYPORT_CMAKE_ARGS:-}
cmake --build "$build" -j "$jobs"
