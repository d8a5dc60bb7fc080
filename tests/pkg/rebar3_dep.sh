#!/usr/bin/env bash
# pkg.rebar3: a throw-away rebar3 project (Debian's rebar3, offline) depends on the
# checkout as a plain git dependency, with the deps line of README.md as written
# (only the URL replaced); it compiles, calls Python, and builds a relx release
# that starts as a daemon and calls Python too.
# Usage: tests/pkg/rebar3_dep.sh SRC
SRC=$(cd "$1" && pwd)
source "$(dirname "$0")/common.sh"
snapshot

app=$WORK/pkgdemo
mkdir -p "$app/src" "$app/config"
deps=$(readme_line '{deps, [{pyport, {git,')
deps=$(printf '%s\n' "$deps" | sed -E "s|\{git, \"[^\"]*\"|{git, \"$PYPORT_URL\"|")
node=pkgdemo_$$
cat >"$app/rebar.config" <<CONF
{erl_opts, [debug_info]}.
$deps
{relx, [{release, {pkgdemo, "0.1.0"}, [pkgdemo]},
        {mode, prod},
        {vm_args_src, "config/vm.args.src"}]}.
CONF
cat >"$app/config/vm.args.src" <<'ARGS'
-sname ${PKGDEMO_NODE}
-setcookie pkgdemo
ARGS
cat >"$app/src/pkgdemo.app.src" <<'APP'
{application, pkgdemo,
 [{description, "depends on pyport"}, {vsn, "0.1.0"},
  {applications, [kernel, stdlib, pyport]}, {env, []}, {modules, []}]}.
APP
cat >"$app/src/pkgdemo.erl" <<'ERL'
-module(pkgdemo).
-export([check/0]).
check() -> py:eval(<<"1+1">>).
ERL
echo "     rebar.config: $(grep pyport "$app/rebar.config")"

cd "$app"
step 600 "rebar3 compile (clones pyport, builds its port with CMake)" rebar3 compile
expect_in_log "Compiling pyport"
test -x _build/default/lib/pyport/priv/pyport
test -f _build/default/lib/pyport/priv/python/_pyport.py
echo "ok   priv/pyport and priv/python/_pyport.py in the dependency"

step 120 "erl: start pkgdemo, py:eval(<<\"1+1\">>)" \
    erl -noshell -pa _build/default/lib/*/ebin -eval \
    '{ok, _} = application:ensure_all_started(pkgdemo), io:format("result: ~p~n", [pkgdemo:check()]), halt().'
expect_in_log "result: {ok,2}"

step 300 "rebar3 release" rebar3 release
rel=$app/_build/default/rel/pkgdemo
test -x "$rel/lib/pyport-0.1.0/priv/pyport"
test -x "$rel/lib/pyport-0.1.0/priv/pyport-keeper"
echo "ok   the release holds lib/pyport-0.1.0/priv/pyport and priv/pyport-keeper"
if [ -e "$rel/lib/pyport-0.1.0/_build" ]; then
    echo "FAIL the release copied pyport's CMake build directory" >&2
    exit 1
fi

export PKGDEMO_NODE=$node
PKG_AT_EXIT='"$rel/bin/pkgdemo" stop >/dev/null 2>&1'
step 60 "release: bin/pkgdemo daemon" "$rel/bin/pkgdemo" daemon
up=no
for _ in $(seq 1 60); do
    if "$rel/bin/pkgdemo" ping >/dev/null 2>&1; then up=yes; break; fi
    sleep 0.5
done
[ "$up" = yes ] || { echo "FAIL the release did not answer ping within 30 s" >&2; exit 1; }
step 60 "release: bin/pkgdemo eval 'pkgdemo:check().'" "$rel/bin/pkgdemo" eval \
    'case pkgdemo:check() of {ok, 2} -> result_ok_2; Other -> Other end.'
expect_in_log "result_ok_2"
step 60 "release: bin/pkgdemo stop" "$rel/bin/pkgdemo" stop
no_package_manager_calls
echo "pkg.rebar3: passed"
