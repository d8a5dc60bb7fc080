# pyport as a Mix dependency: `{:pyport, git: "..."}` in a Mix project's deps.
# The application is the rebar3 one (src/, include/): this file takes its metadata
# from src/pyport.app.src, builds the port program with CMake (tools/build_port.sh)
# into the application's priv/, and lets Mix compile src/*.erl. Nothing here needs
# rebar3 or Hex, so an offline machine with Elixir, CMake and a C toolchain builds it.
defmodule Pyport.MixProject do
  use Mix.Project

  {:ok, [{:application, :pyport, app}]} =
    :file.consult(Path.join(__DIR__, "src/pyport.app.src"))

  @app app

  def project do
    [
      app: :pyport,
      version: to_string(@app[:vsn]),
      language: :erlang,
      description: to_string(@app[:description]),
      compilers: [:pyport_port | Mix.compilers()],
      erlc_paths: ["src"],
      erlc_include_path: "include",
      erlc_options: [:debug_info],
      deps: [],
      package: [
        licenses: Enum.map(@app[:licenses], &to_string/1),
        links: Map.new(@app[:links], fn {k, v} -> {to_string(k), to_string(v)} end),
        files: Enum.map(@app[:files], &to_string/1)
      ]
    ]
  end

  def application do
    optional = Keyword.get(@app, :optional_applications, [])

    [
      mod: @app[:mod],
      registered: @app[:registered],
      env: @app[:env],
      extra_applications:
        for a <- @app[:applications] -- [:kernel, :stdlib] do
          if a in optional, do: {a, :optional}, else: a
        end
    ]
  end
end

defmodule Mix.Tasks.Compile.PyportPort do
  @moduledoc "Builds pyport's port program (priv/pyport) with CMake."
  use Mix.Task.Compiler

  @impl true
  def run(_args) do
    project_dir = Path.dirname(Mix.Project.project_file())
    priv = Path.join(Mix.Project.app_path(), "priv")
    build = Path.join(Mix.Project.build_path(), "pyport_port")

    # The erl_interface of the Erlang that runs Mix, whatever installed it.
    env =
      case :code.lib_dir(:erl_interface) do
        dir when is_list(dir) -> [{"ERL_INTERFACE_DIR", to_string(dir)}]
        _ -> []
      end

    script = Path.join([project_dir, "tools", "build_port.sh"])

    case System.cmd("sh", [script, priv, build],
           env: env,
           into: IO.stream(:stdio, :line),
           stderr_to_stdout: true
         ) do
      {_, 0} -> {:ok, []}
      {_, status} -> Mix.raise("pyport: building the port program failed (status #{status})")
    end
  end
end
