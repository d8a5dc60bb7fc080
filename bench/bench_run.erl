%% @doc Measurement primitives of the benchmark: per-call latency samples taken
%% in interleaved rounds (so the variants share the machine's noise), concurrent
%% throughput over a fixed window, and summary statistics. Every measured call
%% checks its answer, so a failing call stops the run instead of counting.
-module(bench_run).

-export([latency/4, throughput/3, repeat_interleaved/2, summary/1, median/1, percentile/2,
         time_us/1]).

%% How long a caller may take to report after the throughput window closed.
-define(CALLER_REPORT_TIMEOUT, 60000).
%% Pause between the callers' start signal and the opening of the window.
-define(THROUGHPUT_WARMUP_MS, 300).

-type variant() :: {Name :: atom(), fun(() -> term())}.

%% @doc Times `Fun' per call: each variant runs `Warmup' untimed calls once, then
%% `Rounds' rounds of `PerRound' timed calls, the variants taking turns each round.
%% Returns `#{Name => [Microseconds]}' (sorted).
-spec latency([variant()], non_neg_integer(), pos_integer(), pos_integer()) ->
    #{atom() => [float()]}.
latency(Variants, Warmup, Rounds, PerRound) ->
    [loop(F, Warmup) || {_, F} <- Variants],
    Acc = lists:foldl(
            fun(_, Acc0) ->
                    lists:foldl(
                      fun({Name, F}, A) ->
                              maps:update_with(Name, fun(L) -> timed(F, PerRound, L) end,
                                               timed(F, PerRound, []), A)
                      end, Acc0, Variants)
            end, #{}, lists:seq(1, Rounds)),
    maps:map(fun(_, L) -> lists:sort(L) end, Acc).

loop(_, 0) -> ok;
loop(F, N) -> F(), loop(F, N - 1).

timed(_, 0, Acc) ->
    Acc;
timed(F, N, Acc) ->
    T0 = erlang:monotonic_time(),
    F(),
    T1 = erlang:monotonic_time(),
    timed(F, N - 1, [to_us(T1 - T0) | Acc]).

to_us(Native) ->
    erlang:convert_time_unit(Native, native, nanosecond) / 1000.

%% @doc Microseconds `Fun' takes once, and what it returned.
-spec time_us(fun(() -> T)) -> {float(), T}.
time_us(F) ->
    T0 = erlang:monotonic_time(),
    V = F(),
    {to_us(erlang:monotonic_time() - T0), V}.

%% @doc Calls per second of `Callers' processes each calling `Fun' in a loop
%% during a window of `WindowMs' (after a short warm-up). A caller that crashes
%% makes the whole measurement fail.
-spec throughput(fun(() -> term()), pos_integer(), pos_integer()) -> float().
throughput(Fun, Callers, WindowMs) ->
    Go = make_ref(),
    Pids = [spawn_monitor(fun() -> caller(Go, Fun) end) || _ <- lists:seq(1, Callers)],
    Start = erlang:monotonic_time(millisecond) + ?THROUGHPUT_WARMUP_MS,
    Stop = Start + WindowMs,
    [Pid ! {Go, Start, Stop} || {Pid, _} <- Pids],
    Total = lists:sum([collect(Pid, Ref) || {Pid, Ref} <- Pids]),
    Total * 1000 / WindowMs.

caller(Go, Fun) ->
    receive
        {Go, Start, Stop} ->
            warm(Fun, Start),
            exit({calls, counted(Fun, Stop, 0)})
    end.

warm(Fun, Until) ->
    case erlang:monotonic_time(millisecond) < Until of
        true -> Fun(), warm(Fun, Until);
        false -> ok
    end.

%% Counts the calls that completed inside the window.
counted(Fun, Stop, N) ->
    Fun(),
    case erlang:monotonic_time(millisecond) of
        Now when Now < Stop -> counted(Fun, Stop, N + 1);
        _ -> N
    end.

collect(Pid, Ref) ->
    receive
        {'DOWN', Ref, process, Pid, {calls, N}} -> N;
        {'DOWN', Ref, process, Pid, Reason} -> error({caller_failed, Reason})
    after ?CALLER_REPORT_TIMEOUT ->
        error(caller_stuck)
    end.

%% @doc Runs each variant's `Fun' `Times' times, the variants taking turns, and
%% returns `#{Name => [Result]}' in run order (for figures that are one
%% measurement per run: throughput windows, payload round trips, start-ups).
-spec repeat_interleaved([{atom(), fun(() -> number())}], pos_integer()) ->
    #{atom() => [number()]}.
repeat_interleaved(Variants, Times) ->
    Runs = [[{Name, F()} || {Name, F} <- Variants] || _ <- lists:seq(1, Times)],
    maps:map(fun(_, L) -> lists:reverse(L) end,
             lists:foldl(fun({Name, V}, A) -> maps:update_with(Name, fun(L) -> [V | L] end, [V], A)
                         end, #{}, lists:append(Runs))).

%% @doc Count, min, mean, median and tail percentiles of a sample.
-spec summary([number()]) -> map().
summary(Samples) ->
    S = lists:sort(Samples),
    N = length(S),
    #{n => N, min => hd(S), max => lists:last(S), mean => lists:sum(S) / N,
      p50 => percentile(S, 50), p90 => percentile(S, 90), p99 => percentile(S, 99),
      p999 => percentile(S, 99.9)}.

%% @doc The median of a list of numbers.
-spec median([number()]) -> number().
median(L) -> percentile(lists:sort(L), 50).

%% @doc Nearest-rank percentile of a sorted list.
-spec percentile([number()], number()) -> number().
percentile(Sorted, P) ->
    N = length(Sorted),
    Rank = max(1, min(N, ceil(P / 100 * N))),
    lists:nth(Rank, Sorted).
