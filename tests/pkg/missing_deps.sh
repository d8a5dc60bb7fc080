#!/usr/bin/env bash
# pkg.missing_deps: the dependency build (tools/build_port.sh, which rebar3's hook
# and mix.exs run) stops with ONE message naming each missing build dependency:
# a bogus Python, libuv hidden from pkg-config and from CMake's search, Erlang's
# erl_interface hidden, all three at once, and no cmake on PATH.
# Usage: tests/pkg/missing_deps.sh SRC
SRC=$(cd "$1" && pwd)
source "$(dirname "$0")/common.sh"
unset PYPORT_PYTHON

# fails_with NAME [ENV=VALUE...] -- COMMAND...: COMMAND fails, printing the header
# of the missing-dependencies message exactly once; its output is $WORK/NAME.out.
fails_with() {
    local name=$1 rc=0
    shift
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    env "${envs[@]}" "$(command -v timeout)" 120 "$@" </dev/null >"$WORK/$name.out" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
        echo "FAIL $name: the build succeeded" >&2
        exit 1
    fi
    local n
    n=$(grep -c "pyport cannot be built; missing build dependencies:" "$WORK/$name.out" || true)
    if [ "$n" != 1 ]; then
        echo "FAIL $name: the message came $n times; output:" >&2
        cat "$WORK/$name.out" >&2
        exit 1
    fi
    echo "ok   $name: one message (exit $rc)"
}

# names NAME TEXT...: the message of NAME names each TEXT (as a "  - " item).
names() {
    local name=$1
    shift
    for text in "$@"; do
        if ! grep -qE -- "^ *- .*$text" "$WORK/$name.out"; then
            echo "FAIL $name: the message does not name '$text':" >&2
            cat "$WORK/$name.out" >&2
            exit 1
        fi
        echo "ok   $name: names $text"
    done
}

# lacks NAME TEXT...: the message of NAME does not name TEXT (it is not missing).
lacks() {
    local name=$1
    shift
    for text in "$@"; do
        if grep -qE -- "^ *- .*$text" "$WORK/$name.out"; then
            echo "FAIL $name: the message names '$text', which is present:" >&2
            cat "$WORK/$name.out" >&2
            exit 1
        fi
    done
}

build_port=(sh "$SRC/tools/build_port.sh" "$WORK/priv")

# Where CMake would find uv.h; ignoring that directory (and pkg-config's answer)
# hides libuv and nothing else.
uv_include=$(pkg-config --variable=includedir libuv 2>/dev/null || echo /usr/include)
hide_uv=(PKG_CONFIG_LIBDIR=/nonexistent "PYPORT_CMAKE_ARGS=-DCMAKE_IGNORE_PATH=$uv_include")

fails_with python PYPORT_PYTHON=/nonexistent/python3 -- "${build_port[@]}" "$WORK/build-python"
names python "CPython 3.11\+ .*/nonexistent/python3"
lacks python libuv erl_interface compiler

fails_with libuv "${hide_uv[@]}" -- "${build_port[@]}" "$WORK/build-libuv"
names libuv "libuv 1.x"
lacks libuv CPython erl_interface compiler

fails_with ei ERL_INTERFACE_DIR=/nonexistent -- "${build_port[@]}" "$WORK/build-ei"
names ei "erl_interface, ei.h and libei.a: looked in /nonexistent"
lacks ei CPython libuv compiler

fails_with all PYPORT_PYTHON=/nonexistent/python3 ERL_INTERFACE_DIR=/nonexistent \
    "${hide_uv[@]}" -- "${build_port[@]}" "$WORK/build-all"
names all "CPython 3.11\+" "libuv 1.x" "erl_interface"

# No cmake on PATH: the script says so itself (only the tools it needs before that).
bin=$WORK/bin-without-cmake
mkdir -p "$bin"
for tool in sh dirname mkdir; do ln -s "$(command -v $tool)" "$bin/$tool"; done
fails_with cmake PATH="$bin" -- "$bin/sh" "$SRC/tools/build_port.sh" "$WORK/priv" "$WORK/build-cmake"
names cmake "CMake 3.20 or newer"

[ ! -e "$WORK/priv/pyport" ] || { echo "FAIL a port program was built" >&2; exit 1; }
echo "pkg.missing_deps: passed"
