#!/usr/bin/env escript
%% -*- erlang -*-
%%
%% bench_api.escript - the figures of compare.sh, measured through the API that
%% pyport and erlang_python share (py_context:new/1, py:call/4, py:call/3,
%% py_context:stop/1), so that one script measures either application.
%%
%% Usage: escript bench_api.escript App EbinDir
%%   App     pyport | erlang_python (the application to start)
%%   EbinDir its ebin directory (the application directory around it must be
%%           named after the application: code:priv_dir/1 finds its priv/ there)
%% Environment: BENCH_N [20000] latency samples, BENCH_WARMUP [2000],
%% BENCH_SECS [5] per throughput run, BENCH_CALLERS [64], BENCH_STARTS [5].
%%
%% Every figure is printed as: RESULT <app> <metric> <value>
-mode(compile).

main([AppS, Ebin]) ->
    App = list_to_atom(AppS),
    true = code:add_patha(Ebin),
    {ok, _} = application:ensure_all_started(App),
    io:format("# ~s on ~s, ~p schedulers~n",
              [App, erlang:system_info(system_version) -- "\n",
               erlang:system_info(schedulers_online)]),
    run(App),
    halt(0);
main(_) ->
    io:format(standard_error, "usage: escript bench_api.escript pyport|erlang_python EBIN~n", []),
    halt(2).

run(App) ->
    N = envint("BENCH_N", 20000),
    Warm = envint("BENCH_WARMUP", 2000),
    Secs = envint("BENCH_SECS", 5),
    Callers = envint("BENCH_CALLERS", 64),
    Starts = envint("BENCH_STARTS", 5),
    Call = fun(C) -> {ok, 4.0} = py:call(C, math, sqrt, [16]) end,

    %% start to first answer (one unmeasured start first)
    py_context:stop(start_ctx(Call)),
    StartTimes = [begin
                      T0 = erlang:monotonic_time(),
                      C0 = start_ctx(Call),
                      T1 = erlang:monotonic_time(),
                      py_context:stop(C0),
                      timer:sleep(50),
                      to_ms(T1 - T0)
                  end || _ <- lists:seq(1, Starts)],
    result(App, startup_ms_median, median(StartTimes)),

    %% memory each extra context adds: the node plus the contexts' OS processes
    Rss0 = rss_kb(os_pids([])),
    Extra = [start_ctx(Call) || _ <- lists:seq(1, 4)],
    Rss1 = rss_kb(os_pids(Extra)),
    result(App, rss_kb_per_extra_context, (Rss1 - Rss0) / 4),
    [py_context:stop(C) || C <- Extra],

    C = start_ctx(Call),
    {P50, P99} = latency(fun() -> Call(C) end, N, Warm),
    result(App, lat_p50_us, P50),
    result(App, lat_p99_us, P99),

    OsPids = os_pids([C]),
    {Rate, CpuUs} = throughput(fun() -> Call(C) end, Callers, Secs, OsPids),
    result(App, tput_1ctx_calls_per_s, Rate),
    result(App, tput_1ctx_cpu_us_per_call, CpuUs),
    DefaultCall = fun() -> {ok, 4.0} = py:call(math, sqrt, [16]) end,
    DefaultCall(),
    {RateD, CpuD} = throughput(DefaultCall, Callers, Secs, os_pids(all)),
    result(App, tput_default_pool_calls_per_s, RateD),
    result(App, tput_default_pool_cpu_us_per_call, CpuD),

    payloads(App, C),
    py_context:stop(C),
    ok.

start_ctx(Call) ->
    {ok, C} = py_context:new(#{}),
    unlink(C),
    Call(C),
    C.

%% The OS processes of the given contexts (pyport: each context is one; an
%% erlang_python context lives in the node). `all': every child OS process of
%% the node (the default pool's).
os_pids(all) ->
    Me = os:getpid(),
    [list_to_integer(P) || P <- string:lexemes(os:cmd("pgrep -P " ++ Me), "\n"),
                           P =/= ""];
os_pids(Ctxs) ->
    [P || C <- Ctxs, P <- [os_pid(C)], is_integer(P)].

os_pid(C) ->
    try py_context:info(C) of
        #{os_pid := P} -> P;
        {ok, #{os_pid := P}} -> P;
        _ -> none
    catch
        _:_ -> none
    end.

latency(Call, N, Warm) ->
    _ = [Call() || _ <- lists:seq(1, Warm)],
    Ts = lists:sort([begin
                         T0 = erlang:monotonic_time(),
                         Call(),
                         erlang:monotonic_time() - T0
                     end || _ <- lists:seq(1, N)]),
    {to_us(pct(Ts, 50)), to_us(pct(Ts, 99))}.

%% Calls/s of NCallers processes calling for Secs, and the CPU time (node plus
%% OsPids) per call in microseconds.
throughput(Call, NCallers, Secs, OsPids) ->
    Procs = [list_to_integer(os:getpid()) | OsPids],
    Cpu0 = lists:sum([cpu_s(P) || P <- Procs]),
    Parent = self(),
    Pids = [spawn_link(fun() ->
                               receive {go, Deadline} -> ok end,
                               Parent ! {done, self(), loop(Call, Deadline, 0)}
                       end) || _ <- lists:seq(1, NCallers)],
    T0 = erlang:monotonic_time(),
    Deadline = T0 + erlang:convert_time_unit(Secs, second, native),
    _ = [P ! {go, Deadline} || P <- Pids],
    Total = lists:sum([receive {done, P, K} -> K end || P <- Pids]),
    T1 = erlang:monotonic_time(),
    Cpu1 = lists:sum([cpu_s(P) || P <- Procs]),
    {Total / (to_ms(T1 - T0) / 1000), (Cpu1 - Cpu0) * 1.0e6 / Total}.

loop(Call, Deadline, K) ->
    case erlang:monotonic_time() < Deadline of
        true -> Call(), loop(Call, Deadline, K + 1);
        false -> K
    end.

payloads(App, C) ->
    rand:seed(exsss, {1, 2, 3}),
    Bin = << <<(rand:uniform(256) - 1)>> || _ <- lists:seq(1, 1 bsl 20) >>,
    List = lists:seq(1, 100000),
    Map = maps:from_list([{<<"key", (integer_to_binary(I))/binary>>, I}
                          || I <- lists:seq(1, 10000)]),
    lists:foreach(
      fun({Name, T}) ->
              Echo = fun() -> {ok, T} = py:call(C, copy, copy, [T]) end,
              Echo(),
              Ts = payload_loop(Echo, 0, 0, []),
              result(App, "echo_" ++ Name ++ "_ms_median", median(Ts))
      end, [{"bin1mb", Bin}, {"list100k", List}, {"map10k", Map}]).

%% at least 5 round trips, then until 2 s spent or 200 round trips
payload_loop(Echo, K, Spent, Acc) when K < 5; Spent < 2000, K < 200 ->
    T0 = erlang:monotonic_time(),
    Echo(),
    Ms = to_ms(erlang:monotonic_time() - T0),
    payload_loop(Echo, K + 1, Spent + Ms, [Ms | Acc]);
payload_loop(_Echo, _K, _Spent, Acc) ->
    Acc.

%% VmRSS of the node plus the given OS processes, KiB
rss_kb(OsPids) ->
    lists:sum([vm_rss(P) || P <- [list_to_integer(os:getpid()) | OsPids]]).

vm_rss(P) ->
    {ok, Bin} = file:read_file("/proc/" ++ integer_to_list(P) ++ "/status"),
    [Line] = [L || L <- binary:split(Bin, <<"\n">>, [global]), binary:match(L, <<"VmRSS:">>) =/= nomatch],
    [_, Kb | _] = string:lexemes(Line, " \t"),
    binary_to_integer(Kb).

%% utime + stime of an OS process in seconds
cpu_s(P) ->
    {ok, Bin} = file:read_file("/proc/" ++ integer_to_list(P) ++ "/stat"),
    [_, After] = string:split(Bin, ") ", trailing),
    Fields = string:lexemes(After, " "),
    (binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields))) / 100.

result(App, Metric, Value) when is_float(Value) ->
    io:format("RESULT ~s ~s ~.3f~n", [App, Metric, Value]);
result(App, Metric, Value) ->
    io:format("RESULT ~s ~s ~p~n", [App, Metric, Value]).

env(Name, Default) ->
    case os:getenv(Name) of
        false -> Default;
        "" -> Default;
        V -> V
    end.

envint(Name, Default) -> list_to_integer(env(Name, integer_to_list(Default))).

to_us(Native) -> Native * 1.0e6 / erlang:convert_time_unit(1, second, native).
to_ms(Native) -> Native * 1.0e3 / erlang:convert_time_unit(1, second, native).

pct(Sorted, P) ->
    Len = length(Sorted),
    lists:nth(max(1, min(Len, ceil(P / 100 * Len))), Sorted).

median(L) -> pct(lists:sort(L), 50).
