%% Per-context limits: max_calls recycles the OS process without failing queued
%% requests, max_memory ends a runaway allocation in a clean error or a restart
%% (never a hang) and recycles the process, max_queue answers `overloaded'.
-module(py_limits_SUITE).

-import(pyport_test, [start_ctx/1, stop_ctx/1]).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([max_calls_recycles/0, max_calls_recycles/1,
         max_memory_stops_runaway/0, max_memory_stops_runaway/1,
         max_queue_overloaded/0, max_queue_overloaded/1]).

%% Timeout of calls that must be answered (a hang shows as {error, timeout}).
-define(CALL_TIMEOUT, 60000).
%% Deadline for eventual conditions.
-define(EVENTUALLY_MS, 20000).
%% max_calls case: the limit, the callers and the calls each makes.
-define(MAX_CALLS, 50).
-define(CALLERS, 10).
-define(CALLS_EACH, 20).
%% max_memory case: the limit above the context's idle RSS, and a safety stop for
%% the allocation loop so a broken limit fails the test instead of the host (bytes).
-define(MEMORY_HEADROOM, 300 * 1024 * 1024).
-define(RUNAWAY_CAP_CHUNKS, 400).
%% max_queue case: the limit and the number of flooding callers.
-define(MAX_QUEUE, 5).
-define(FLOOD, 20).
%% Python sleep (s) of the call that holds the queue.
-define(LONG_SLEEP_S, 30).

suite() -> [{timetrap, {minutes, 5}}].

all() -> [max_calls_recycles, max_memory_stops_runaway, max_queue_overloaded].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

%%% ===========================================================================
%%% Cases
%%% ===========================================================================

max_calls_recycles() ->
    [{doc, "max_calls 50: 200 calls from 10 processes all succeed while the OS process "
      "is recycled at least 3 times (restarts counter, several os pids answered)."}].
max_calls_recycles(_Config) ->
    Ctx = start_ctx(#{max_calls => ?MAX_CALLS}),
    #{os_pid := FirstPid} = py_context:info(Ctx),
    Parent = self(),
    Callers = [spawn(fun() ->
                             Rs = [py_context:call(Ctx, os, getpid, [], #{}, ?CALL_TIMEOUT)
                                   || _ <- lists:seq(1, ?CALLS_EACH)],
                             Parent ! {answers, self(), Rs}
                     end) || _ <- lists:seq(1, ?CALLERS)],
    Answers = lists:append([receive {answers, P, Rs} -> Rs
                            after 2 * ?CALL_TIMEOUT -> ct:fail({no_answers, P})
                            end || P <- Callers]),
    ?assertEqual(?CALLERS * ?CALLS_EACH, length(Answers)),
    ?assertEqual([], [A || A <- Answers, not is_ok(A)]),
    wait_until(fun() -> maps:get(status, py_context:info(Ctx)) =:= ready end),
    #{os_pid := LastPid, restarts := Restarts} = py_context:info(Ctx),
    ct:pal("restarts ~b, os pids ~p", [Restarts, lists:usort([P || {ok, P} <- Answers])]),
    ?assert(Restarts >= 3),
    ?assertNotEqual(FirstPid, LastPid),
    ?assert(length(lists:usort(Answers)) >= 4),
    stop_ctx(Ctx).

max_memory_stops_runaway() ->
    [{doc, "max_memory (idle RSS + 300 MB): a loop appending 10 MB bytearrays ends in "
      "{error, {\"MemoryError\", _}} or {error, {context_died, _}}, never a hang; the "
      "context is recycled, serves again, and its RSS is back under the limit."}].
max_memory_stops_runaway(_Config) ->
    Probe = start_ctx(#{}),
    #{rss_bytes := IdleRss} = py_context:info(Probe),
    stop_ctx(Probe),
    Max = IdleRss + ?MEMORY_HEADROOM,
    Ctx = start_ctx(#{max_memory => Max}),
    #{os_pid := OldPid} = py_context:info(Ctx),
    Code = io_lib:format("x = []\n"
                         "while len(x) < ~b:\n"
                         "    x.append(bytearray(10**7))\n", [?RUNAWAY_CAP_CHUNKS]),
    Result = py_context:exec(Ctx, Code, ?CALL_TIMEOUT),
    ct:pal("idle rss ~b, limit ~b: ~p", [IdleRss, Max, Result]),
    case Result of
        {error, {"MemoryError", _}} -> ok;
        {error, {context_died, _}} -> ok;
        Other -> ct:fail({runaway_not_stopped, Other})
    end,
    wait_until(fun() ->
                       case py_context:info(Ctx) of
                           #{status := ready, restarts := R, os_pid := P} ->
                               R >= 1 andalso P =/= OldPid;
                           _ ->
                               false
                       end
               end),
    ?assertEqual({ok, 2}, py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT)),
    #{rss_bytes := Rss} = py_context:info(Ctx),
    ?assert(Rss < Max),
    stop_ctx(Ctx).

max_queue_overloaded() ->
    [{doc, "max_queue 5: with one call sleeping, a flood of 20 calls gets "
      "{error, {overloaded, Len, 5}} (Len >= 5) for the excess; the accepted ones succeed."}].
max_queue_overloaded(_Config) ->
    Ctx = start_ctx(#{max_queue => ?MAX_QUEUE}),
    Parent = self(),
    Sleeper = spawn(fun() ->
                            R = py_context:call(Ctx, time, sleep, [?LONG_SLEEP_S], #{},
                                                ?CALL_TIMEOUT),
                            Parent ! {sleeper, R}
                    end),
    wait_until(fun() -> is_map(maps:get(current, py_context:info(Ctx))) end),
    Flood = [spawn(fun() ->
                           Parent ! {flood, self(), py_context:eval(Ctx, <<"1 + 1">>, #{},
                                                                     ?CALL_TIMEOUT)}
                   end) || _ <- lists:seq(1, ?FLOOD)],
    %% The overloaded answers come at once; the accepted calls wait for the sleeper.
    wait_until(fun() -> maps:get(queue_len, py_context:info(Ctx)) >= ?MAX_QUEUE end),
    ok = py_context:interrupt(Ctx),
    receive {sleeper, SR} -> ?assertMatch({error, {"KeyboardInterrupt", _}}, SR)
    after ?CALL_TIMEOUT -> ct:fail({sleeper_silent, Sleeper})
    end,
    Answers = [receive {flood, P, R} -> R after ?CALL_TIMEOUT -> ct:fail({no_answer, P}) end
               || P <- Flood],
    Overloaded = [A || {error, {overloaded, _, _}} = A <- Answers],
    Served = [A || A <- Answers, A =:= {ok, 2}],
    ct:pal("~b overloaded, ~b served", [length(Overloaded), length(Served)]),
    ?assertEqual(?FLOOD, length(Overloaded) + length(Served)),
    ?assert(length(Overloaded) >= ?FLOOD - ?MAX_QUEUE),
    [?assert(Len >= ?MAX_QUEUE) || {error, {overloaded, Len, _}} <- Overloaded],
    [?assertEqual(?MAX_QUEUE, Max) || {error, {overloaded, _, Max}} <- Overloaded],
    ?assertEqual({ok, 2}, py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT)),
    stop_ctx(Ctx).

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

is_ok({ok, _}) -> true;
is_ok(_) -> false.

wait_until(Fun) -> pyport_test:wait_until(Fun, ?EVENTUALLY_MS).
