#!/usr/bin/env escript
%% The pyport benchmark (make bench): measures pyport against the echo-port floor
%% (bench/echo.c) in the same run, prints each figure with its ratio to the floor
%% and PASS/MISS per design target, and writes bench/results/<date>-<commit>.md.
%% Usage: escript bench/bench.escript BUILD_DIR. Exits 0 whatever the verdicts.
-mode(compile).

%% Single-caller latency: untimed warm-up calls, then rounds x calls per variant.
-define(LAT_WARMUP, 2000).
-define(LAT_ROUNDS, 20).
-define(LAT_PER_ROUND, 1000).
%% Throughput: concurrent callers, window per run, runs per variant (median).
-define(TP_CALLERS, 64).
-define(TP_WINDOW_MS, 1000).
-define(TP_RUNS, 7).
%% Payload round trips: untimed warm-up and timed round trips per variant.
-define(PAYLOAD_WARMUP, 3).
-define(PAYLOAD_RUNS, 50).
%% Context start-ups per variant (median).
-define(START_RUNS, 10).
%% The size sweep: binaries from 1 KiB to 64 MiB, about SWEEP_BYTES moved per
%% size and variant (at least SWEEP_MIN_RUNS round trips, at most SWEEP_MAX_RUNS).
-define(SWEEP_SIZES, [1 bsl 10, 16 bsl 10, 256 bsl 10, 1 bsl 20, 4 bsl 20, 16 bsl 20, 64 bsl 20]).
-define(SWEEP_BYTES, 256 bsl 20).
-define(SWEEP_MIN_RUNS, 9).
-define(SWEEP_MAX_RUNS, 50).

main([Build]) ->
    BenchDir = filename:dirname(filename:absname(escript:script_name())),
    AppEbin = filename:join([Build, "pyport", "ebin"]),
    BenchEbin = filename:join([Build, "bench", "ebin"]),
    Echo = filename:absname(filename:join([Build, "bench", "echo"])),
    Pyport = filename:absname(filename:join([Build, "pyport", "priv", "pyport"])),
    [check_exists(F) || F <- [AppEbin, BenchEbin, Echo, Pyport]],
    true = code:add_patha(AppEbin),
    true = code:add_patha(BenchEbin),
    Started = calendar:system_time_to_rfc3339(erlang:system_time(second)),
    {ok, _} = application:ensure_all_started(pyport),
    N = py_context_router:num_contexts(),
    #{python_version := PyVersion} = py_context:info(py:context(1)),
    Machine = bench_report:machine(PyVersion),
    Git = bench_report:git(BenchDir),
    io:format("pyport bench: commit ~s~s, ~b cores, ~ts, OTP ~s, Python ~s, "
              "default pool ~b contexts~n",
              [maps:get(commit, Git), dirty_note(Git), maps:get(nproc, Machine),
               maps:get(cpu, Machine), maps:get(otp_release, Machine), PyVersion, N]),
    case bench_report:busy_note(Machine) of
        "" -> ok;
        Note -> io:format("note: ~s~n", [Note])
    end,
    %% BENCH_NODES=1 adds the scenario of pools over peer nodes; `only' runs
    %% that scenario alone.
    NodesMode = os:getenv("BENCH_NODES", "0"),
    Core = case NodesMode of
               "only" ->
                   #{latency => #{}, rows => [], targets => []};
               _ ->
                   Latency = latency(Echo, Pyport),
                   Throughput = throughput(Echo, N),
                   Payload = payload(Echo),
                   Sweep = sweep(Echo),
                   Startup = startup(Echo),
                   Rss = rss(Echo),
                   {Rows0, Targets0} = figures(N, Latency, Throughput, Payload, Startup, Rss),
                   {SweepRows, SweepTarget} = sweep_figures(Sweep),
                   Rows1 = Rows0 ++ SweepRows,
                   Targets1 = Targets0 ++ [SweepTarget],
                   bench_report:print(Rows1, Targets1, Latency),
                   #{latency => Latency, throughput => Throughput, payload => Payload,
                     sweep => Sweep, startup => Startup, rss => Rss, rows => Rows1,
                     targets => Targets1}
           end,
    Nodes = case NodesMode of
                "0" -> #{};
                _ -> R = bench_nodes:run(AppEbin), bench_nodes:print(R), #{nodes => R}
            end,
    #{rows := Rows, targets := Targets} = Core,
    Raw = maps:merge(maps:without([rows, targets], Core), Nodes#{
            date => lists:sublist(Started, 10), started => Started,
            loadavg_end => string:trim(os:cmd("cat /proc/loadavg")),
            git => Git, machine => Machine, default_pool_size => N,
            settings => settings(),
            targets => [{T, P} || #{target := T, pass := P} <- Targets]}),
    File = bench_report:write(filename:join(BenchDir, "results"), Raw, {Rows, Targets}),
    io:format("~nwrote ~s~n", [File]),
    ok = logger:set_primary_config(level, warning),
    application:stop(pyport),
    halt(0);
main(_) ->
    io:format(standard_error, "usage: bench.escript BUILD_DIR~n", []),
    halt(64).

check_exists(F) ->
    filelib:is_file(F) orelse begin
        io:format(standard_error, "bench: ~s is missing; run `make bench`~n", [F]),
        halt(1)
    end.

dirty_note(#{dirty := true}) -> " (dirty tree)";
dirty_note(_) -> "".

settings() ->
    #{lat_warmup => ?LAT_WARMUP, lat_rounds => ?LAT_ROUNDS, lat_per_round => ?LAT_PER_ROUND,
      tp_callers => ?TP_CALLERS, tp_window_ms => ?TP_WINDOW_MS, tp_runs => ?TP_RUNS,
      payload_warmup => ?PAYLOAD_WARMUP, payload_runs => ?PAYLOAD_RUNS,
      start_runs => ?START_RUNS, sweep_sizes => ?SWEEP_SIZES, sweep_bytes => ?SWEEP_BYTES}.

%%% ===========================================================================
%%% Single-caller latency of py:call(math, sqrt, [16])
%%% ===========================================================================

latency(Echo, Pyport) ->
    io:format("latency: ~b calls per variant after ~b warm-up calls...~n",
              [?LAT_ROUNDS * ?LAT_PER_ROUND, ?LAT_WARMUP]),
    {ok, Owner} = bench_floor:start_link(Echo),
    {ok, PortOwner} = bench_floor:start_link(Pyport),
    Routed = {routed, Owner},
    PortRouted = {routed, PortOwner},
    Samples = in_fresh_process(
                fun() ->
                        %% The measuring process opens (owns) the direct ports.
                        Direct = {direct, bench_floor:open(Echo)},
                        PortDirect = {direct, bench_floor:open(Pyport)},
                        Sqrt = fun(T) -> {ok, 4.0} = bench_floor:call(T, math, sqrt, [16], #{}) end,
                        bench_run:latency(
                          [{pyport, fun() -> {ok, 4.0} = py:call(math, sqrt, [16]) end},
                           {echo_direct,
                            fun() -> {ok, #{}} = bench_floor:call(Direct, math, sqrt, [16], #{})
                            end},
                           {echo_routed,
                            fun() -> {ok, #{}} = bench_floor:call(Routed, math, sqrt, [16], #{})
                            end},
                           {program_direct, fun() -> Sqrt(PortDirect) end},
                           {program_routed, fun() -> Sqrt(PortRouted) end}],
                          ?LAT_WARMUP, ?LAT_ROUNDS, ?LAT_PER_ROUND)
                end),
    bench_floor:stop(Owner),
    bench_floor:stop(PortOwner),
    maps:map(fun(_, S) -> bench_run:summary(S) end, Samples).

%%% ===========================================================================
%%% Calls per second with 64 concurrent callers
%%% ===========================================================================

throughput(Echo, N) ->
    io:format("throughput: ~b callers, ~b runs of ~b ms per variant, over 1 and ~b...~n",
              [?TP_CALLERS, ?TP_RUNS, ?TP_WINDOW_MS, N]),
    Owners = list_to_tuple([begin {ok, O} = bench_floor:start_link(Echo), O end
                            || _ <- lists:seq(1, N)]),
    Ctx1 = py:context(1),
    O1 = element(1, Owners),
    Tp = fun(F) -> fun() -> bench_run:throughput(F, ?TP_CALLERS, ?TP_WINDOW_MS) end end,
    Runs = bench_run:repeat_interleaved(
             [{pyport_1, Tp(fun() -> {ok, 4.0} = py:call(Ctx1, math, sqrt, [16]) end)},
              {echo_1, Tp(fun() -> {ok, #{}} = bench_floor:call({routed, O1}, math, sqrt, [16], #{})
                          end)},
              {pyport_n, Tp(fun() -> {ok, 4.0} = py:call(math, sqrt, [16]) end)},
              {echo_n, Tp(fun() ->
                                  %% The router's rule: the caller's scheduler picks.
                                  O = element((erlang:system_info(scheduler_id) - 1) rem N + 1,
                                              Owners),
                                  {ok, #{}} = bench_floor:call({routed, O}, math, sqrt, [16], #{})
                          end)}],
             ?TP_RUNS),
    [bench_floor:stop(O) || O <- tuple_to_list(Owners)],
    %% Runs i of pyport and of the echo were neighbours in time: the median of
    %% their ratios resists the machine's load changing during the runs.
    Paired = fun(P, E) ->
                     bench_run:median(lists:zipwith(fun(X, Y) -> X / Y end,
                                                    maps:get(P, Runs), maps:get(E, Runs)))
             end,
    maps:merge(maps:map(fun(_, L) -> #{runs => L, median => bench_run:median(L)} end, Runs),
               #{ratio_1 => Paired(pyport_1, echo_1), ratio_n => Paired(pyport_n, echo_n)}).

%%% ===========================================================================
%%% Round trips of large terms through an identity function
%%% ===========================================================================

payloads() ->
    [{binary_1mib, fun() ->
                           rand:seed(exsss, {1, 2, 3}),
                           rand:bytes(1024 * 1024)
                   end},
     {list_100k, fun() -> lists:seq(1, 100000) end},
     {map_10k, fun() -> maps:from_list([{<<"key", (integer_to_binary(I))/binary>>, I}
                                        || I <- lists:seq(1, 10000)])
               end}].

payload(Echo) ->
    io:format("payloads: ~b round trips per payload and variant...~n", [?PAYLOAD_RUNS]),
    {ok, Ctx} = py_context:start_link(#{}),
    {ok, Owner} = bench_floor:start_link(Echo),
    %% Each payload is measured by a fresh process that holds only that payload,
    %% so garbage collections of unrelated live data do not land in one variant.
    Result = maps:from_list(
               [{Name, in_fresh_process(
                         fun() ->
                                 X = Make(),
                                 ok = py:exec(Ctx, <<"def ident(x):\n    return x\n">>),
                                 Direct = {direct, bench_floor:open(Echo)},
                                 S = payload(X, Ctx, Direct, {routed, Owner}),
                                 port_close(element(2, Direct)),
                                 S
                         end)}
                || {Name, Make} <- payloads()]),
    bench_floor:stop(Owner),
    py_context:stop(Ctx),
    Result.

in_fresh_process(F) ->
    {Pid, Ref} = spawn_monitor(fun() -> exit({done, F()}) end),
    receive
        {'DOWN', Ref, process, Pid, {done, V}} -> V;
        {'DOWN', Ref, process, Pid, Reason} -> error({measurement_failed, Reason})
    end.

payload(X, Ctx, Direct, Routed) ->
    %% The answer is checked outside the timed part: comparing 100k elements is
    %% not the system's cost.
    Timed = fun(Call) ->
                    fun() ->
                            T0 = erlang:monotonic_time(),
                            {ok, Y} = Call(),
                            T1 = erlang:monotonic_time(),
                            X =:= Y orelse error(wrong_answer),
                            erlang:convert_time_unit(T1 - T0, native, nanosecond) / 1000
                    end
            end,
    Variants = [{pyport, Timed(fun() -> py:call(Ctx, '__main__', ident, [X]) end)},
                {echo_direct, Timed(fun() -> bench_floor:echo(Direct, X) end)},
                {echo_routed, Timed(fun() -> bench_floor:echo(Routed, X) end)}],
    _ = bench_run:repeat_interleaved(Variants, ?PAYLOAD_WARMUP),
    Runs = bench_run:repeat_interleaved(Variants, ?PAYLOAD_RUNS),
    maps:map(fun(_, L) -> bench_run:summary(L) end, Runs).

%%% ===========================================================================
%%% Context start to first answer
%%% ===========================================================================

%% Binary round trips over sizes from 1 KiB to 64 MiB, pyport vs echo direct:
%% the time per MiB must not grow with the size. One context with a max_frame
%% large enough for the biggest size; the p50 of each size in microseconds.
sweep(Echo) ->
    io:format("size sweep: binary round trips of ~s...~n",
              [lists:join(", ", [size_label(S) || S <- ?SWEEP_SIZES])]),
    {ok, Ctx} = py_context:start_link(#{}),
    R = maps:from_list(
          [{Size, in_fresh_process(
                    fun() ->
                            rand:seed(exsss, {1, 2, 3}),
                            X = rand:bytes(Size),
                            ok = py:exec(Ctx, <<"def ident(x):\n    return x\n">>),
                            Direct = {direct, bench_floor:open(Echo)},
                            Runs = max(?SWEEP_MIN_RUNS, min(?SWEEP_MAX_RUNS, ?SWEEP_BYTES div Size)),
                            Timed = fun(Call) ->
                                            fun() ->
                                                    {Us, {ok, Y}} = bench_run:time_us(Call),
                                                    byte_size(Y) =:= Size orelse error(wrong_answer),
                                                    Us
                                            end
                                    end,
                            Variants = [{pyport, Timed(fun() -> py:call(Ctx, '__main__', ident, [X]) end)},
                                        {echo_direct, Timed(fun() -> bench_floor:echo(Direct, X) end)}],
                            _ = bench_run:repeat_interleaved(Variants, 1),
                            S = bench_run:repeat_interleaved(Variants, Runs),
                            port_close(element(2, Direct)),
                            maps:map(fun(_, L) -> bench_run:median(L) end, S)
                    end)}
           || Size <- ?SWEEP_SIZES]),
    py_context:stop(Ctx),
    R.

size_label(S) when S >= 1 bsl 20 -> integer_to_list(S bsr 20) ++ " MiB";
size_label(S) -> integer_to_list(S bsr 10) ++ " KiB".

sweep_figures(Sweep) ->
    PerMiB = fun(Size, V) -> maps:get(V, maps:get(Size, Sweep)) / 1000 / (Size / 1048576) end,
    Rows = [#{figure => "binary round trip " ++ size_label(Size) ++ ", per MiB", unit => "ms",
              pyport => PerMiB(Size, pyport), direct => PerMiB(Size, echo_direct),
              routed => undefined}
            || Size <- ?SWEEP_SIZES, Size >= 1 bsl 20],
    %% From 1 MiB up (below it the fixed cost of a call dominates the per-MiB
    %% figure): the largest per-MiB time against the 1 MiB one.
    Big = [PerMiB(S, pyport) || S <- ?SWEEP_SIZES, S >= 1 bsl 20],
    Growth = lists:max(Big) / PerMiB(1 bsl 20, pyport),
    {Rows, target("time per MiB, 1 MiB to 64 MiB (worst / 1 MiB)", fmt("~.2fx", [Growth]),
                  "<= 1.50x", Growth =< 1.5)}.

startup(Echo) ->
    io:format("start-up: ~b starts per variant...~n", [?START_RUNS]),
    %% Each variant times its start and first answer, then stops what it started.
    Run = fun(Start, Stop) ->
                  fun() ->
                          {Us, Started} = bench_run:time_us(Start),
                          Stop(Started),
                          Us / 1000
                  end
          end,
    Runs = bench_run:repeat_interleaved(
             [{pyport, Run(fun() ->
                                   {ok, C} = py_context:start_link(#{}),
                                   {ok, 4.0} = py:call(C, math, sqrt, [16]),
                                   C
                           end, fun py_context:stop/1)},
              {echo_direct, Run(fun() ->
                                        P = bench_floor:open(Echo),
                                        {ok, #{}} = bench_floor:call({direct, P}, math, sqrt,
                                                                     [16], #{}),
                                        P
                                end, fun erlang:port_close/1)},
              {echo_routed, Run(fun() ->
                                        {ok, O} = bench_floor:start_link(Echo),
                                        {ok, #{}} = bench_floor:call({routed, O}, math, sqrt,
                                                                     [16], #{}),
                                        O
                                end, fun bench_floor:stop/1)}],
             ?START_RUNS),
    maps:map(fun(_, L) -> #{runs_ms => L, median_ms => bench_run:median(L)} end, Runs).

%%% ===========================================================================
%%% Memory of an idle context
%%% ===========================================================================

rss(Echo) ->
    io:format("rss: one fresh context and one fresh echo port, idle after one answer...~n"),
    %% One answer first, so both processes are past start-up (a just-spawned echo
    %% has not even mapped its libraries) and idle.
    {ok, Ctx} = py_context:start_link(#{}),
    {ok, 4.0} = py:call(Ctx, math, sqrt, [16]),
    #{rss_bytes := InfoRss, os_pid := OsPid} = py_context:info(Ctx),
    CtxVm = vm_rss_bytes(OsPid),
    py_context:stop(Ctx),
    Port = {direct, bench_floor:open(Echo)},
    {ok, #{}} = bench_floor:call(Port, math, sqrt, [16], #{}),
    EchoVm = vm_rss_bytes(bench_floor:os_pid(Port)),
    port_close(element(2, Port)),
    #{pyport_info_rss_bytes => InfoRss, pyport_vmrss_bytes => CtxVm,
      echo_vmrss_bytes => EchoVm}.

vm_rss_bytes(OsPid) ->
    {ok, Bin} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status"),
    [Kb] = [binary_to_integer(hd(string:lexemes(V, " \t")))
            || L <- string:split(Bin, "\n", all), [<<"VmRSS">>, V] <- [string:split(L, ":")]],
    Kb * 1024.

%%% ===========================================================================
%%% Figures and targets
%%% ===========================================================================

figures(N, Lat, Tp, Pay, Start, Rss) ->
    #{pyport := LP, echo_direct := LD, echo_routed := LR} = Lat,
    Med = fun(K) -> maps:get(median, maps:get(K, Tp)) end,
    #{ratio_1 := Tp1, ratio_n := TpN} = Tp,
    Pms = fun(Name, V) -> maps:get(p50, maps:get(V, maps:get(Name, Pay))) / 1000 end,
    Sms = fun(V) -> maps:get(median_ms, maps:get(V, Start)) end,
    MiB = fun(B) -> B / 1048576 end,
    NStr = integer_to_list(N),
    Row = fun(F, U, P, D, R) -> #{figure => F, unit => U, pyport => P, direct => D, routed => R}
          end,
    Rows = [Row("py:call(math, sqrt, [16]) p50", "us", p(LP, p50), p(LD, p50), p(LR, p50)),
            Row("py:call(math, sqrt, [16]) p99", "us", p(LP, p99), p(LD, p99), p(LR, p99)),
            (Row("64 callers, 1 context", "calls/s", Med(pyport_1), undefined, Med(echo_1)))
                #{routed_ratio => Tp1},
            (Row("64 callers, " ++ NStr ++ " contexts", "calls/s", Med(pyport_n), undefined,
                 Med(echo_n)))#{routed_ratio => TpN},
            Row("1 MiB binary round trip, median", "ms", Pms(binary_1mib, pyport),
                Pms(binary_1mib, echo_direct), Pms(binary_1mib, echo_routed)),
            Row("100k-integer list round trip, median", "ms", Pms(list_100k, pyport),
                Pms(list_100k, echo_direct), Pms(list_100k, echo_routed)),
            Row("10k-key map round trip, median", "ms", Pms(map_10k, pyport),
                Pms(map_10k, echo_direct), Pms(map_10k, echo_routed)),
            Row("start to first answer, median", "ms", Sms(pyport), Sms(echo_direct),
                Sms(echo_routed)),
            Row("idle RSS, info rss_bytes", "MiB", MiB(maps:get(pyport_info_rss_bytes, Rss)),
                MiB(maps:get(echo_vmrss_bytes, Rss)), undefined),
            Row("idle RSS, /proc VmRSS", "MiB", MiB(maps:get(pyport_vmrss_bytes, Rss)),
                MiB(maps:get(echo_vmrss_bytes, Rss)), undefined)],
    LatRatio = p(LP, p50) / p(LD, p50),
    ListRatio = Pms(list_100k, pyport) / Pms(list_100k, echo_direct),
    Targets = [target("p50 latency vs echo direct", fmt("~.2fx", [LatRatio]), "<= 1.30x",
                      LatRatio =< 1.3),
               target("64 callers, 1 context vs 1 echo port", pct(Tp1),
                      ">= 60%", Tp1 >= 0.6),
               target("64 callers, " ++ NStr ++ " contexts vs " ++ NStr ++ " echo ports",
                      pct(TpN), ">= 60%", TpN >= 0.6),
               target("100k-integer list round trip vs echo direct", fmt("~.2fx", [ListRatio]),
                      "<= 4.00x", ListRatio =< 4.0)],
    {Rows, Targets}.

p(Summary, K) -> maps:get(K, Summary).

target(Name, Measured, Limit, Pass) ->
    #{target => Name, measured => Measured, limit => Limit, pass => Pass}.

fmt(F, A) -> lists:flatten(io_lib:format(F, A)).

pct(X) -> float_to_list(X * 100, [{decimals, 0}]) ++ "%".
