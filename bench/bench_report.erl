%% @doc Reporting for the benchmark: the machine and commit a run was made on,
%% the console table, the PASS/MISS lines of the design targets, and the results
%% files (bench/results/<date>-<commit>.md with a markdown table and the raw
%% numbers, and the same raw numbers as an Erlang term file beside it).
-module(bench_report).

-export([machine/1, git/1, busy_note/1, print/3, write/3]).

%% A row: #{figure, unit, pyport, direct, routed} (floors `undefined' when not
%% measured), optionally `routed_ratio' when the ratio is not pyport / routed;
%% a target: #{target, measured, limit, pass}.

%% @doc nproc, CPU model, memory, kernel, OTP, Python, load average.
-spec machine(binary()) -> map().
machine(PythonVersion) ->
    #{nproc => list_to_integer(string:trim(os:cmd("nproc"))),
      cpu => cpu_model(),
      mem_total_kb => meminfo("MemTotal"),
      kernel => string:trim(os:cmd("uname -sr")),
      otp_release => erlang:system_info(otp_release),
      erts_version => erlang:system_info(version),
      schedulers => erlang:system_info(schedulers_online),
      python_version => PythonVersion,
      loadavg => string:trim(os:cmd("cat /proc/loadavg"))}.

%% @doc A warning when the machine was busy at the start (1-minute load average
%% above half the cores), or "" when it was not.
-spec busy_note(map()) -> string().
busy_note(#{loadavg := Load, nproc := N}) ->
    [One | _] = string:lexemes(Load, " "),
    case list_to_float(One) > N / 2 of
        true -> lists:flatten(io_lib:format("the machine was busy (load average ~s on ~b cores): "
                                            "absolute figures are inflated and noisy; compare "
                                            "ratios", [One, N]));
        false -> ""
    end.

cpu_model() ->
    {ok, Bin} = file:read_file("/proc/cpuinfo"),
    Lines = string:split(Bin, "\n", all),
    case [V || L <- Lines, [K, V] <- [string:split(L, ":")], string:trim(K) =:= <<"model name">>] of
        [Model | _] -> string:trim(Model);
        [] -> <<"unknown">>
    end.

meminfo(Key) ->
    {ok, Bin} = file:read_file("/proc/meminfo"),
    [Kb] = [binary_to_integer(hd(string:lexemes(V, " ")))
            || L <- string:split(Bin, "\n", all), [K, V] <- [string:split(L, ":")],
               K =:= list_to_binary(Key)],
    Kb.

%% @doc The commit of the source tree at `Dir', and whether tracked files differ
%% from it (untracked files, such as earlier results, do not count).
-spec git(file:filename()) -> map().
git(Dir) ->
    Git = "git -C '" ++ Dir ++ "' ",
    #{commit => string:trim(os:cmd(Git ++ "rev-parse --short HEAD")),
      commit_full => string:trim(os:cmd(Git ++ "rev-parse HEAD")),
      branch => string:trim(os:cmd(Git ++ "rev-parse --abbrev-ref HEAD")),
      dirty => string:trim(os:cmd(Git ++ "status --porcelain --untracked-files=no")) =/= ""}.

%% @doc Prints the figures with their ratios, the latency breakdown (from the
%% latency summaries), then PASS/MISS per target.
-spec print([map()], [map()], map()) -> ok.
print(Rows, Targets, Latency) ->
    io:format("~n~-44s ~12s ~12s ~8s ~12s ~8s~n",
              ["figure", "pyport", "echo direct", "ratio", "echo routed", "ratio"]),
    io:format("~s~n", [lists:duplicate(101, $-)]),
    [io:format("~-44ts ~12s ~12s ~8s ~12s ~8s~n",
               [label(R), num(P), num(D), ratio(P, D), num(Rt), routed_ratio(R)])
     || R = #{pyport := P, direct := D, routed := Rt} <- Rows],
    case breakdown(Latency) of
        [] -> ok;
        Steps ->
            io:format("~nLatency breakdown, p50 (us):~n"),
            [io:format("  ~-62ts ~8s ~8s~n", [Step, num(P50), added(Added)])
             || {Step, P50, Added} <- Steps]
    end,
    io:format("~nDesign targets (informational; a MISS does not fail the build):~n"),
    [io:format("  ~-4s ~ts: ~ts (target ~ts)~n",
               [verdict(T), Name, Measured, Limit])
     || T = #{target := Name, measured := Measured, limit := Limit} <- Targets],
    ok.

label(#{figure := F, unit := U}) -> [F, " (", U, ")"].

%% The single-caller p50 built up step by step, from the echo floor to py:call:
%% [{Step, P50, AddedByTheStep | undefined}].
breakdown(#{echo_direct := ED, program_direct := PD, program_routed := PR, pyport := API}) ->
    Steps = [{"echo direct: a pipe, a port and the Erlang side", ED},
             {"pyport program, direct: + the C port and Python", PD},
             {"pyport program, routed: + the reply hop through the owner", PR},
             {"py:call/3: + routing, environments, monitor, timeout", API}],
    {Rows, _} = lists:mapfoldl(fun({Step, S}, Prev) ->
                                       P50 = maps:get(p50, S),
                                       {{Step, P50, step_cost(P50, Prev)}, P50}
                               end, undefined, Steps),
    Rows;
breakdown(_) ->
    [].

step_cost(_, undefined) -> undefined;
step_cost(P50, Previous) -> P50 - Previous.

added(undefined) -> "";
added(V) when V >= 0 -> "+" ++ num(V);
added(V) -> num(V).

verdict(#{pass := true}) -> "PASS";
verdict(#{pass := false}) -> "MISS".

num(undefined) -> "-";
num(V) when is_integer(V) -> integer_to_list(V);
num(V) when abs(V) >= 1000 -> float_to_list(float(V), [{decimals, 0}]);
num(V) when abs(V) >= 10 -> float_to_list(float(V), [{decimals, 1}]);
num(V) -> float_to_list(float(V), [{decimals, 2}]).

%% A row may carry its own ratio to the routed floor (the median of paired runs).
routed_ratio(#{routed_ratio := Ratio}) -> float_to_list(Ratio, [{decimals, 2}]) ++ "x";
routed_ratio(#{pyport := P, routed := Rt}) -> ratio(P, Rt).

ratio(_, undefined) -> "-";
ratio(P, F) when F > 0 -> float_to_list(P / F, [{decimals, 2}]) ++ "x".

%% @doc Writes `<Dir>/<date>-<commit>.md' (and `.term'); a second run of the same
%% commit on the same day gets `-2', `-3', ... Returns the markdown file name.
-spec write(file:filename(), map(), {[map()], [map()]}) -> file:filename().
write(Dir, Raw = #{git := Git, machine := Machine, date := Date}, {Rows, Targets}) ->
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Base = free_name(Dir, Date ++ "-" ++ maps:get(commit, Git), 1),
    Md = filename:join(Dir, Base ++ ".md"),
    Term = filename:join(Dir, Base ++ ".term"),
    RawText = io_lib:format("~p.~n", [Raw]),
    ok = file:write_file(Term, ["%% Raw numbers of ", Base, ".md (file:consult/1).\n", RawText]),
    ok = file:write_file(Md, markdown(Base, Raw, Git, Machine, Rows, Targets, RawText)),
    Md.

free_name(Dir, Base, N) ->
    Name = case N of
               1 -> Base;
               _ -> Base ++ "-" ++ integer_to_list(N)
           end,
    case filelib:is_file(filename:join(Dir, Name ++ ".md")) of
        true -> free_name(Dir, Base, N + 1);
        false -> Name
    end.

markdown(Base, Raw, Git, M, Rows, Targets, RawText) ->
    [io_lib:format("# pyport benchmark ~s~n~n", [Base]),
     io_lib:format("Run ~s with `make bench`; see bench/README.md for what each figure "
                   "means.~n~n", [maps:get(started, Raw)]),
     "| | |\n|---|---|\n",
     io_lib:format("| commit | `~s` (~s)~s |~n",
                   [maps:get(commit_full, Git), maps:get(branch, Git),
                    case maps:get(dirty, Git) of
                        true -> ", **tree dirty** (tracked files differ from the commit)";
                        false -> ", tree clean"
                    end]),
     io_lib:format("| nproc | ~b |~n", [maps:get(nproc, M)]),
     io_lib:format("| CPU | ~ts |~n", [maps:get(cpu, M)]),
     io_lib:format("| memory | ~.1f GiB |~n", [maps:get(mem_total_kb, M) / 1048576]),
     io_lib:format("| kernel | ~s |~n", [maps:get(kernel, M)]),
     io_lib:format("| OTP | ~s (erts ~s, ~b schedulers) |~n",
                   [maps:get(otp_release, M), maps:get(erts_version, M),
                    maps:get(schedulers, M)]),
     io_lib:format("| Python | ~s |~n", [maps:get(python_version, M)]),
     io_lib:format("| load average | at start ~s; at end ~s |~n",
                   [maps:get(loadavg, M), maps:get(loadavg_end, Raw)]),
     case busy_note(M) of
         "" -> "";
         Note -> ["\n**Note:** ", Note, ".\n"]
     end,
     "\n## Figures\n\n"
     "Ratio = pyport / floor (for calls/s, the median of the ratios of neighbouring "
     "runs). *echo direct*: the measuring process owns the echo port. "
     "*echo routed*: the echo port behind a gen_server that routes replies the way "
     "py_context does.\n\n"
     "| figure | pyport | echo direct | ratio | echo routed | ratio |\n"
     "|---|---:|---:|---:|---:|---:|\n",
     [io_lib:format("| ~ts | ~s | ~s | ~s | ~s | ~s |~n",
                    [label(R), num(P), num(D), ratio(P, D), num(Rt), routed_ratio(R)])
      || R = #{pyport := P, direct := D, routed := Rt} <- Rows],
     case breakdown(maps:get(latency, Raw)) of
         [] -> "";
         Steps ->
             ["\n## Latency breakdown\n\n"
              "`py:call(math, sqrt, [16])` p50 built up from the floor: the pyport program "
              "driven without pyport's Erlang side, first owned by the measuring process, "
              "then behind the routing gen_server of *echo routed*.\n\n"
              "| step | p50 (us) | added (us) |\n|---|---:|---:|\n",
              [io_lib:format("| ~ts | ~s | ~s |~n", [Step, num(P50), added(Added)])
               || {Step, P50, Added} <- Steps]]
     end,
     "\n## Design targets\n\n"
     "Informational: a MISS does not fail the build.\n\n"
     "| target | measured | limit | verdict |\n|---|---|---|---|\n",
     [io_lib:format("| ~ts | ~ts | ~ts | ~s |~n", [Name, Measured, Limit, verdict(T)])
      || T = #{target := Name, measured := Measured, limit := Limit} <- Targets],
     case Raw of
         #{nodes := Nodes} -> bench_nodes:markdown(Nodes);
         _ -> ""
     end,
     "\n## Raw numbers\n\nThe same term is in the `.term` file beside this one.\n\n"
     "```erlang\n", RawText, "```\n"].
