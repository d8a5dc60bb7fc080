#!/usr/bin/env escript
%% The warm-template benchmark (part of make bench): contexts with numpy
%% preloaded, started cold and forked from a template, side by side:
%%   - start to first answer (median of START_RUNS);
%%   - restart after kill -9 of the Python process to the next answer (median of
%%     KILL_RUNS; measured from the return of `kill -9', with `restart' set so
%%     that a kill never backs off, for both kinds);
%%   - memory each additional context adds: how much the total PSS
%%     (/proc/PID/smaps_rollup) of every OS process the contexts use (Python
%%     process and its helper: the keeper of a cold context, the pyport-attach
%%     of a fork, plus the template, its spare and its parked port with the
%%     fork behind it) grows from one context
%%     to PSS_CONTEXTS, per added context; and, as before, the PSS of the added
%%     contexts' own processes (which includes their share of shared pages).
%% A forked context is the fork behind the template's parked port (a spare,
%% forked, warmed up and handed that port's pipes before the start): its CPU
%% and wait figures count only what it did after the start (what it did before
%% is printed apart, as off the path).
%% Prints the figures with PASS/MISS against the targets (<= 10 ms, <= 20 ms,
%% <= 25 %) and writes bench/results/<date>-<commit>-template.md.
%% Usage: escript bench/bench_template.escript BUILD_DIR.
-mode(compile).

-define(PRELOAD, <<"import numpy\n">>).
-define(START_RUNS, 9).
-define(KILL_RUNS, 9).
-define(PSS_CONTEXTS, 4).
-define(TIMEOUT, 60000).

main([Build]) ->
    BenchDir = filename:dirname(filename:absname(escript:script_name())),
    true = code:add_patha(filename:join([Build, "pyport", "ebin"])),
    Started = calendar:system_time_to_rfc3339(erlang:system_time(second)),
    ok = application:set_env(pyport, start_pools, false),
    {ok, _} = application:ensure_all_started(pyport),
    ok = logger:set_primary_config(level, error),
    Load0 = loadavg(),
    Base = #{preload => ?PRELOAD, restart => #{min => 1, max => 1, stable => 1}},
    %% The pool whose template the forked contexts use.
    {ok, _} = py_context_router:start_pool(bench_tmpl, 1, Base#{template => true}),
    Forked = Base#{template => true, pool => bench_tmpl},
    Cold = Base,
    io:format("warm template bench (numpy preloaded), load ~s~n", [Load0]),
    {StartCold, CpuCold, WaitCold} = medians([start_ms(Cold, I) || I <- lists:seq(1, ?START_RUNS)]),
    ForkRuns = [start_ms(Forked, I) || I <- lists:seq(1, ?START_RUNS)],
    {StartFork, CpuFork, WaitFork} = medians([{A, B, C} || {A, B, C, _, _} <- ForkRuns]),
    SpareCpu = median([D || {_, _, _, D, _} <- ForkRuns]),
    SpareUsed = length([x || {_, _, _, _, true} <- ForkRuns]),
    KillCold = kill_ms(Cold),
    KillFork = kill_ms(Forked),
    {PssCold, AddedCold} = pss(Cold),
    {PssFork, AddedFork} = pss(Forked),
    Ratio = PssFork / PssCold,
    AddedRatio = AddedFork / AddedCold,
    Rows = [{"start to first answer (ms)", StartCold, StartFork, "<= 10 ms", StartFork =< 10},
            {"  of which the Python process on a CPU (ms)", CpuCold, CpuFork, "", none},
            {"  of which the Python process waiting for a CPU (ms)", WaitCold, WaitFork, "", none},
            {"  (forked: the spare on a CPU before the start, off the path (ms))", 0.0, SpareCpu,
             "", none},
            {"restart after kill -9 to next answer (ms)", KillCold, KillFork, "<= 20 ms",
             KillFork =< 20},
            {"memory each additional context adds: growth of the total PSS (MiB)",
             AddedCold / 1048576, AddedFork / 1048576, "<= 25 % of cold", AddedRatio =< 0.25},
            {"PSS of each additional context's own processes (MiB)", PssCold / 1048576,
             PssFork / 1048576, "<= 25 % of cold", Ratio =< 0.25}],
    Load1 = loadavg(),
    Lines = [io_lib:format("| ~s | ~.1f | ~.1f | ~s | ~s |~n",
                           [Name, float(C), float(F), Target, verdict(P)])
             || {Name, C, F, Target, P} <- Rows],
    Table = ["| figure | cold | forked | target | verdict |\n|---|---|---|---|---|\n", Lines],
    io:format("~s", [Table]),
    io:format("forked: the total PSS grows by ~.1f % of what a cold context adds; "
              "its own processes' PSS is ~.1f % of a cold context's~n", [100 * AddedRatio, 100 * Ratio]),
    io:format("forked starts that used the parked port: ~b of ~b~n", [SpareUsed, ?START_RUNS]),
    Git = string:trim(os:cmd("git -C " ++ BenchDir ++ " rev-parse --short HEAD")),
    File = unique(filename:join([BenchDir, "results",
                                 lists:sublist(Started, 10) ++ "-" ++ Git ++ "-template"])),
    Md = ["# Warm template bench, ", Started, ", commit ", Git, "\n\n",
          "numpy preloaded (`", string:trim(?PRELOAD), "`); ", integer_to_list(erlang:system_info(logical_processors)),
          " cores; load average at start ", Load0, ", at end ", Load1, "\n\n",
          Table, "\n",
          io_lib:format("Memory each additional forked context adds (growth of the total PSS): "
                        "~.1f % of what a cold one adds. PSS of an additional forked context's own "
                        "processes (including its share of the pages it shares): ~.1f % of a cold "
                        "one's.~n", [100 * AddedRatio, 100 * Ratio]),
          io_lib:format("Forked starts that used the template's parked port: ~b of ~b.~n",
                        [SpareUsed, ?START_RUNS]),
          io_lib:format("Medians of ~b starts and ~b kills per kind; PSS with 1 and ~b contexts.~n",
                        [?START_RUNS, ?KILL_RUNS, ?PSS_CONTEXTS])],
    ok = file:write_file(File, Md),
    io:format("wrote ~s~n", [File]),
    ok = py_context_router:stop_pool(bench_tmpl),
    halt(0).

verdict(true) -> "PASS";
verdict(false) -> "MISS";
verdict(none) -> "".

medians(Triples) ->
    {median([A || {A, _, _} <- Triples]), median([B || {_, B, _} <- Triples]),
     median([C || {_, _, C} <- Triples])}.

%% Wall ms to the first answer, and what the new Python process spent on a CPU
%% and waiting for one (/proc/PID/schedstat) by then; for a fork of the
%% fork behind the template's parked port, only since the start (then also its
%% CPU before, and true).
start_ms(Opts = #{template := true}, I) ->
    timer:sleep(200), % the template parks its next port
    Spare = parked_fork(),
    {Cpu0, Wait0} = schedstat(Spare),
    {Ms, Cpu1, Wait1, OsPid} = start_once(Opts, I),
    case OsPid =:= Spare of
        true -> {Ms, Cpu1 - Cpu0, Wait1 - Wait0, Cpu0, true};
        false -> {Ms, Cpu1, Wait1, 0.0, false}
    end;
start_ms(Opts, I) ->
    {Ms, Cpu, Wait, _} = start_once(Opts, I),
    {Ms, Cpu, Wait}.

start_once(Opts, I) ->
    T0 = erlang:monotonic_time(microsecond),
    {ok, Ctx} = py_context:start_link(label(Opts, I)),
    {ok, 3} = py_context:eval(Ctx, <<"1 + 2">>, #{}, ?TIMEOUT),
    T1 = erlang:monotonic_time(microsecond),
    #{os_pid := OsPid} = py_context:info(Ctx),
    {Cpu, Wait} = schedstat(OsPid),
    ok = py_context:stop(Ctx),
    {(T1 - T0) / 1000, Cpu, Wait, OsPid}.

schedstat(OsPid) ->
    {ok, B} = file:read_file(io_lib:format("/proc/~b/schedstat", [OsPid])),
    [Run, Wait | _] = [binary_to_integer(X) || X <- string:lexemes(B, " \n")],
    {Run / 1.0e6, Wait / 1.0e6}.

label(Opts = #{pool := _}, I) -> Opts#{index => 1000 + I};
label(Opts, I) -> Opts#{label => {bench, I}}.

kill_ms(Opts) ->
    {ok, Ctx} = py_context:start_link(label(Opts, 1)),
    {ok, _} = py_context:eval(Ctx, <<"numpy.ones(3).sum()">>, #{}, ?TIMEOUT),
    Ms = [begin
              timer:sleep(200), % the template parks its next spare meanwhile
              #{os_pid := OsPid} = py_context:info(Ctx),
              _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
              T0 = erlang:monotonic_time(microsecond),
              {ok, 3.0} = until_answer(Ctx, OsPid),
              (erlang:monotonic_time(microsecond) - T0) / 1000
          end || _ <- lists:seq(1, ?KILL_RUNS)],
    ok = py_context:stop(Ctx),
    median(Ms).

%% Calls until one is answered by a new OS process (one sent before the death
%% is noticed answers context_died).
until_answer(Ctx, Old) ->
    case py_context:eval(Ctx, <<"float(numpy.ones(3).sum())">>, #{}, ?TIMEOUT) of
        {ok, V} ->
            case py_context:info(Ctx) of
                #{os_pid := Old} -> until_answer(Ctx, Old);
                _ -> {ok, V}
            end;
        {error, _} -> until_answer(Ctx, Old)
    end.

%% {PSS of each additional context's processes, memory each additional
%% context adds}: PSS_CONTEXTS contexts, each having answered a numpy call.
%% The first figure is the PSS of contexts 2..N's own processes (each counts
%% its share of the pages it shares with the template, the spare and its
%% siblings, so it falls as the contexts grow in number); the second is how much
%% the total PSS of every process involved grows from one context to N, per
%% added context: PSS sums to the memory in use, so this is what they add.
pss(Opts) ->
    First = start_for_pss(Opts, 101),
    timer:sleep(500),
    Alone = total_pss([First], Opts),
    Others = [start_for_pss(Opts, 100 + I) || I <- lists:seq(2, ?PSS_CONTEXTS)],
    timer:sleep(500),
    Ctxs = [First | Others],
    Total1 = total_pss([First], Opts),
    TotalN = total_pss(Ctxs, Opts),
    [ok = py_context:stop(C) || C <- Ctxs],
    {(TotalN - Total1) / (?PSS_CONTEXTS - 1), (TotalN - Alone) / (?PSS_CONTEXTS - 1)}.

start_for_pss(Opts, I) ->
    {ok, C} = py_context:start_link(label(Opts, I)),
    {ok, _} = py_context:eval(C, <<"float(numpy.ones(1000).sum())">>, #{}, ?TIMEOUT),
    C.

%% The fork behind the template's parked port, once there is one.
parked_fork() ->
    case py_template:info(py_template:name(bench_tmpl)) of
        #{parked := #{python := P}} when is_integer(P) -> P;
        _ -> timer:sleep(10), parked_fork()
    end.

%% PSS of the contexts' processes (and, for forks, of the template, its spare,
%% and its parked pyport-attach with the fork behind it).
total_pss(Ctxs, Opts) ->
    Template = case Opts of
                   #{template := true} ->
                       #{os_pid := T, spare := Spare, parked := Parked} =
                           py_template:info(py_template:name(bench_tmpl)),
                       [P || P <- [T, Spare | case Parked of
                                                  #{attach := A, python := F} -> [A, F];
                                                  undefined -> []
                                              end], is_integer(P)];
                   _ -> []
               end,
    Pids = lists:usort(Template ++ lists:append([context_pids(C) || C <- Ctxs])),
    lists:sum([pss_of(P) || P <- Pids]).

%% The Python process and its helper (keeper or pyport-attach).
context_pids(Ctx) ->
    #{os_pid := OsPid} = py_context:info(Ctx),
    [Port] = [P || P <- element(2, process_info(Ctx, links)), is_port(P)],
    {os_pid, PortPid} = erlang:port_info(Port, os_pid),
    Children = children(OsPid),
    lists:usort([OsPid, PortPid | Children]).

children(OsPid) ->
    case file:read_file(io_lib:format("/proc/~b/task/~b/children", [OsPid, OsPid])) of
        {ok, B} -> [binary_to_integer(X) || X <- string:lexemes(B, " \n")];
        _ -> []
    end.

pss_of(OsPid) ->
    case file:read_file(io_lib:format("/proc/~b/smaps_rollup", [OsPid])) of
        {ok, B} ->
            [Line] = [L || L <- string:split(B, "\n", all), string:prefix(L, "Pss:") =/= nomatch],
            [_, Kb | _] = string:lexemes(Line, " "),
            binary_to_integer(Kb) * 1024;
        _ ->
            0
    end.

median(L) ->
    lists:nth((length(L) + 1) div 2, lists:sort(L)).

loadavg() ->
    string:trim(os:cmd("cut -d' ' -f1-3 /proc/loadavg")).

unique(Base) ->
    unique(Base, 1).
unique(Base, N) ->
    F = case N of 1 -> Base ++ ".md"; _ -> Base ++ "-" ++ integer_to_list(N) ++ ".md" end,
    case filelib:is_file(F) of
        true -> unique(Base, N + 1);
        false -> F
    end.
