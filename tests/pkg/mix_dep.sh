#!/usr/bin/env bash
# pkg.mix: a throw-away Mix project (Debian's elixir, offline, no rebar3 and no Hex
# installed for Mix) depends on the checkout as a plain git dependency, with the
# deps line of README.md as written (only the URL replaced); it compiles, calls
# Python, and runs every Elixir example of docs/elixir.md as ExUnit tests
# (tests/pkg/mix/elixir_docs_test.exs).
# Usage: tests/pkg/mix_dep.sh SRC
SRC=$(cd "$1" && pwd)
source "$(dirname "$0")/common.sh"
snapshot

app=$WORK/pkgdemo
mkdir -p "$app/test"
deps=$(readme_line '[{:pyport, git:')
deps=$(printf '%s\n' "$deps" | sed -E "s|git: \"[^\"]*\"|git: \"$PYPORT_URL\"|")
cat >"$app/mix.exs" <<EXS
defmodule Pkgdemo.MixProject do
  use Mix.Project

  # One build for dev and test: the port is built once.
  def project,
    do: [app: :pkgdemo, version: "0.1.0", build_per_environment: false, deps: deps()]

  def application, do: [extra_applications: [:logger]]

  $deps
end
EXS
echo 'ExUnit.start()' >"$app/test/test_helper.exs"
cp "$SRC/tests/pkg/mix/elixir_docs_test.exs" "$app/test/"
echo "     mix.exs: $(grep pyport "$app/mix.exs")"

cd "$app"
step 120 "mix deps.get (a git clone)" mix deps.get
step 600 "mix compile (builds pyport's port with CMake, compiles src/)" mix compile
test -x _build/shared/lib/pyport/priv/pyport
test -f _build/shared/lib/pyport/priv/python/_pyport.py
echo "ok   priv/pyport and priv/python/_pyport.py in _build/shared/lib/pyport"
step 120 "mix run: :py.eval(\"1+1\")" mix run -e 'IO.puts("result: #{inspect(:py.eval("1+1"))}")'
expect_in_log "result: {:ok, 2}"
step 300 "mix test: the examples of docs/elixir.md" mix test --seed 0
expect_in_log ", 0 failures"
blocks=$(grep -c '^```elixir$' "$SRC/docs/elixir.md")
expect_in_log "$((blocks + 1)) tests, 0 failures"
step 300 "mix release" mix release --overwrite
rel=_build/shared/rel/pkgdemo
test -x "$rel"/lib/pyport-*/priv/pyport
test -x "$rel"/lib/pyport-*/priv/pyport-keeper
echo "ok   the release holds lib/pyport-*/priv/pyport and priv/pyport-keeper"
step 60 "release: bin/pkgdemo eval, :py.eval(\"1+1\")" "$rel/bin/pkgdemo" eval \
    '{:ok, _} = Application.ensure_all_started(:pyport); IO.puts("result: #{inspect(:py.eval("1+1"))}")'
expect_in_log "result: {:ok, 2}"
no_package_manager_calls
echo "pkg.mix: passed"
