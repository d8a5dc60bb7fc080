#!/usr/bin/env bash
# pkg.rebar3_root: rebar3 (Debian's, offline) at the root of a copy of the checkout
# finds the application and each of its commands works: compile in the project's
# own CI profile (warnings are errors there), eunit, ct (three suites: the docs
# examples, distribution, callbacks; `rebar3 ct' runs them all in one node), edoc
# (the public modules only) and dialyzer (no warning);
# and the hex package's file list is enough to build.
# Usage: tests/pkg/rebar3_root.sh SRC [CACHE_DIR]   (CACHE_DIR keeps dialyzer's PLT)
SRC=$(cd "$1" && pwd)
source "$(dirname "$0")/common.sh"
if [ -n "${2:-}" ]; then
    mkdir -p "$2"
    REBAR_CACHE_DIR=$(cd "$2" && pwd)
    export REBAR_CACHE_DIR
fi
snapshot
cd "$WORK/pyport"

step 600 "rebar3 as ci compile (builds the port, compiles src/ with warnings as errors)" \
    rebar3 as ci compile
expect_in_log "Compiling pyport"
test -x priv/pyport
echo "ok   priv/pyport at the root"

step 300 "rebar3 eunit" rebar3 eunit
expect_in_log ", 0 failures"

step 600 "rebar3 ct (py_docs_SUITE, py_dist_SUITE, py_callback_SUITE)" \
    rebar3 ct --suite test/py_docs_SUITE,test/py_dist_SUITE,test/py_callback_SUITE
expect_in_log "All "
if last_log | grep -qiE "skipped|failed"; then
    echo "FAIL rebar3 ct skipped or failed a case" >&2
    exit 1
fi

step 300 "rebar3 edoc" rebar3 edoc
pages=$(cd doc && ls ./*.html | sed 's|^\./||' | sort | tr '\n' ' ')
expected="index.html modules-frame.html overview-summary.html py.html py_context.html py_context_router.html py_import.html py_preload.html py_semaphore.html "
if [ "$pages" != "$expected" ]; then
    echo "FAIL rebar3 edoc wrote: $pages" >&2
    echo "     expected:          $expected" >&2
    exit 1
fi
echo "ok   doc/ has the public modules (py, py_context, py_context_router, py_semaphore, py_import, py_preload) and no other"

# Dialyzer exits 1 on any warning: the application must be clean.
step 1500 "rebar3 dialyzer (no warning)" rebar3 dialyzer
echo "ok   rebar3 dialyzer: $(last_log | grep -E "Analyzing" | tail -1 | sed 's/\x1b\[[0-9;]*m//g')"
# The hex package's file list (`files' of src/pyport.app.src) alone builds: the port
# with CMake and the application with rebar3.
files=$(erl -noshell -eval '{ok, [{application, pyport, P}]} = file:consult("src/pyport.app.src"),
    [io:format("~s~n", [F]) || F <- proplists:get_value(files, P)], halt().')
mkdir -p "$WORK/hexpkg"
# shellcheck disable=SC2086 # one path per line, none with spaces
tar -cf - $files | tar -xf - -C "$WORK/hexpkg"
cd "$WORK/hexpkg"
step 600 "the hex file list alone: rebar3 compile" rebar3 compile
test -x priv/pyport
test -x priv/pyport-keeper
echo "ok   the files of the hex package build priv/pyport, priv/pyport-keeper and the application"
echo "pkg.rebar3_root: passed"
