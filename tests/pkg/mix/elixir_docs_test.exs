# Every ```elixir block of pyport's docs/elixir.md, in the order of the page, run as
# written in a Mix project that depends on pyport (tests/pkg/mix_dep.sh copies this
# file there; run with --seed 0 so the order holds). A block passes when it runs
# without raising: its pattern matches are its assertions. Two blocks are not plain
# code and are checked for what they are: the deps line (the same as README.md's,
# which mix_dep.sh puts in this project's mix.exs) and config/config.exs (read with
# Config.Reader and applied to a restarted pyport).
defmodule PyportElixirDocsTest do
  use ExUnit.Case, async: false

  @pyport Mix.Project.deps_paths()[:pyport]
  @page Path.join(@pyport, "docs/elixir.md")
  @external_resource @page

  # [{heading, first line number, code}] of the ```elixir blocks.
  blocks =
    @page
    |> File.read!()
    |> String.split("\n")
    |> Enum.with_index(1)
    |> Enum.reduce({nil, nil, []}, fn
      {"```elixir", n}, {heading, nil, acc} -> {heading, {n + 1, []}, acc}
      {"```", _}, {heading, {start, lines}, acc} ->
        {heading, nil, [{heading, start, lines |> Enum.reverse() |> Enum.join("\n")} | acc]}
      {line, _}, {heading, {start, lines}, acc} -> {heading, {start, [line | lines]}, acc}
      {"## " <> heading, _}, {_, nil, acc} -> {heading, nil, acc}
      {_, _}, state -> state
    end)
    |> elem(2)
    |> Enum.reverse()

  test "docs/elixir.md has Elixir examples" do
    assert length(unquote(Macro.escape(blocks))) >= 8
  end

  for {{heading, line, code}, i} <- Enum.with_index(blocks, 1) do
    @tag block: i
    test "docs/elixir.md block #{i} (#{heading}, line #{line})" do
      run(unquote(code), unquote(line))
    end
  end

  defp run("defp deps" <> _ = code, _line) do
    readme = File.read!(Path.join(@pyport, "README.md"))
    assert String.contains?(readme, code), "the deps line differs from README.md's"
  end

  defp run("import Config" <> _ = code, _line) do
    path = Path.join(System.tmp_dir!(), "pyport_docs_config_#{System.unique_integer([:positive])}.exs")
    File.write!(path, code)
    config = Config.Reader.read!(path)
    File.rm!(path)
    pyport_env = Keyword.fetch!(config, :pyport)
    saved = Application.get_all_env(:pyport)
    :ok = Application.stop(:pyport)

    try do
      :ok = Application.put_all_env(pyport: pyport_env)
      {:ok, _} = Application.ensure_all_started(:pyport)
      # The page's sentence after the block: a named pool is called by its name.
      assert {:ok, 4.0} = :py.call(:io, :math, :sqrt, [16])
      assert {:ok, 2} = :py.eval("1 + 1")
    after
      :ok = Application.stop(:pyport)
      for {k, _} <- Application.get_all_env(:pyport), do: Application.delete_env(:pyport, k)
      :ok = Application.put_all_env(pyport: saved)
      {:ok, _} = Application.ensure_all_started(:pyport)
    end
  end

  defp run(code, line) do
    Code.eval_string(code, [], file: @page, line: line)
  end
end
