#!/usr/bin/env escript
%% -*- erlang -*-
%%
%% CPU per call of many callers on one context, for A/B runs of two builds:
%%   escript bench/callers.escript APP_DIR [SECONDS] [CALLERS]
%% APP_DIR is an OTP application directory (build/pyport). Starts one context
%% (py_context:start_link(#{})), times 10,000 calls of one caller (p50), then has
%% CALLERS processes (64) call py:call(C, math, sqrt, [16]) for SECONDS (3) and
%% prints one line: calls/s, the CPU (utime + stime) per call of the port's OS
%% process and of the whole BEAM, in microseconds, and the p50.
%% The BEAM figure includes its schedulers' busy-waiting, which follows the
%% machine's load; to count work only, run it with
%%   ERL_FLAGS="+sbwt none +sbwtdcpu none +sbwtdio none"
%% Alternate the builds in one go (A B A B ...): single runs on a shared machine
%% mean little.
-mode(compile).

-define(WARMUP, 3000).
-define(SAMPLES, 10000).

main([App | Rest]) ->
    {Secs, Callers} = case Rest of
                          [] -> {3, 64};
                          [S] -> {list_to_integer(S), 64};
                          [S, N] -> {list_to_integer(S), list_to_integer(N)}
                      end,
    true = code:add_patha(filename:join(App, "ebin")),
    {ok, _} = application:ensure_all_started(pyport),
    {ok, C} = py_context:start_link(#{}),
    #{os_pid := OsPid} = py_context:info(C),
    _ = [{ok, 4.0} = py:call(C, math, sqrt, [16]) || _ <- lists:seq(1, ?WARMUP)],
    Ts = lists:sort([timed(C) || _ <- lists:seq(1, ?SAMPLES)]),
    P50 = erlang:convert_time_unit(lists:nth(?SAMPLES div 2, Ts), native, nanosecond) / 1000,
    _ = run(C, OsPid, Callers, 1),
    {Rate, Port, Beam} = run(C, OsPid, Callers, Secs),
    io:format("calls_per_s ~.1f port_us ~.2f beam_us ~.2f total_us ~.2f p50_us ~.1f~n",
              [Rate, Port, Beam, Port + Beam, P50]),
    halt(0);
main(_) ->
    io:format(standard_error, "usage: escript bench/callers.escript APP_DIR [SECONDS] [CALLERS]~n", []),
    halt(2).

timed(C) ->
    T0 = erlang:monotonic_time(),
    {ok, 4.0} = py:call(C, math, sqrt, [16]),
    erlang:monotonic_time() - T0.

%% {calls/s, port CPU us per call, BEAM CPU us per call} over Secs.
run(C, OsPid, Callers, Secs) ->
    Parent = self(),
    Pids = [spawn_link(fun() ->
                               receive {go, End} -> ok end,
                               Parent ! {done, self(), loop(C, End, 0)}
                       end) || _ <- lists:seq(1, Callers)],
    Beam = list_to_integer(os:getpid()),
    {Port0, Beam0} = {cpu_s(OsPid), cpu_s(Beam)},
    T0 = erlang:monotonic_time(),
    End = T0 + erlang:convert_time_unit(Secs, second, native),
    _ = [P ! {go, End} || P <- Pids],
    N = lists:sum([receive {done, P, K} -> K end || P <- Pids]),
    Us = erlang:convert_time_unit(erlang:monotonic_time() - T0, native, microsecond),
    {Port1, Beam1} = {cpu_s(OsPid), cpu_s(Beam)},
    {N * 1.0e6 / Us, (Port1 - Port0) * 1.0e6 / N, (Beam1 - Beam0) * 1.0e6 / N}.

loop(C, End, N) ->
    case erlang:monotonic_time() < End of
        true ->
            {ok, 4.0} = py:call(C, math, sqrt, [16]),
            loop(C, End, N + 1);
        false ->
            N
    end.

%% utime + stime of an OS process, in seconds (/proc/PID/stat, 100 ticks a second).
cpu_s(OsPid) ->
    {ok, Stat} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat"),
    [_, AfterComm] = string:split(Stat, ") ", trailing),
    Fields = string:lexemes(AfterComm, " "),
    (binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields))) / 100.
