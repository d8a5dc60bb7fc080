%% Coroutines: an `async def' called through py:call or py:eval is awaited on
%% the context's asyncio loop; concurrent coroutines on one context interleave,
%% sync requests are served while they are pending, a timed-out coroutine is
%% cancelled, and a coroutine may call Erlang.
-module(py_async_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([coroutine_call/0, coroutine_call/1,
         coroutine_eval/0, coroutine_eval/1,
         coroutine_routed/0, coroutine_routed/1,
         coroutine_exception/0, coroutine_exception/1,
         fifty_concurrent/0, fifty_concurrent/1,
         sync_while_pending/0, sync_while_pending/1,
         timeout_cancels/0, timeout_cancels/1,
         coroutine_callback/0, coroutine_callback/1,
         asyncio_run_when_idle/0, asyncio_run_when_idle/1]).

%% Generous bound for a whole case.
-define(CASE_TIMEOUT, {minutes, 3}).
%% fifty_concurrent: callers, each awaiting a coroutine that sleeps ?NAP_S; the
%% issue's own criterion is that all of them finish in well under ?FIFTY_MAX_MS
%% (serially they would take 25 s).
-define(CALLERS, 50).
-define(NAP_S, 0.5).
-define(FIFTY_MAX_MS, 5000).
%% sync_while_pending: coroutines pending, each sleeping ?LONG_NAP_S.
-define(PENDING, 10).
-define(LONG_NAP_S, 2).
%% timeout_cancels: the caller's timeout; the coroutine would sleep far longer.
-define(SHORT_TIMEOUT, 300).
-define(FOREVER_S, 60).
%% How long a helper process or an "eventually" condition may take.
-define(HELPER_TIMEOUT, 60000).
-define(EVENTUALLY_MS, 10000).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [coroutine_call, coroutine_eval, coroutine_routed, coroutine_exception, fifty_concurrent,
     sync_while_pending, timeout_cancels, coroutine_callback, asyncio_run_when_idle].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

init_per_testcase(_Case, Config) ->
    {ok, Ctx} = py_context:start_link(#{}),
    ok = py:exec(Ctx, <<"import asyncio, erlang\n"
                        "async def add_later(a, b, delay=0.01):\n"
                        "    await asyncio.sleep(delay)\n"
                        "    return a + b\n">>),
    [{ctx, Ctx} | Config].

end_per_testcase(_Case, Config) ->
    py:unregister_function(double),
    ok = py_context:stop(?config(ctx, Config)).

%%% ===========================================================================
%%% Cases
%%% ===========================================================================

coroutine_call() ->
    [{doc, "py:call of an async def (the caller's own, and asyncio.sleep(d, result)) "
      "returns the awaited result, keyword arguments included."}].
coroutine_call(Config) ->
    Ctx = ?config(ctx, Config),
    ?assertEqual({ok, 3}, py:call(Ctx, '__main__', add_later, [1, 2])),
    ?assertEqual({ok, 7}, py:call(Ctx, '__main__', add_later, [3, 4], #{kwargs => #{delay => 0}})),
    ?assertEqual({ok, 7}, py:call(Ctx, asyncio, sleep, [0.05, 7])),
    ok.

coroutine_eval() ->
    [{doc, "py:eval of an expression that gives an awaitable (a coroutine, a gather) "
      "returns the awaited result."}].
coroutine_eval(Config) ->
    Ctx = ?config(ctx, Config),
    ?assertEqual({ok, 5}, py:eval(Ctx, <<"add_later(2, 3)">>)),
    ?assertEqual({ok, [2, 4, 6]},
                 py:eval(Ctx, <<"asyncio.gather(*[add_later(i, i) for i in (1, 2, 3)])">>)),
    ?assertEqual({ok, 11}, py:eval(Ctx, <<"add_later(a, 1)">>, #{a => 10})),
    ok.

coroutine_routed() ->
    [{doc, "The README's routed form: py:call(asyncio, sleep, [0.5, 7]) gives {ok, 7}."}].
coroutine_routed(_Config) ->
    ?assertEqual({ok, 7}, py:call(asyncio, sleep, [0.5, 7])),
    ok.

coroutine_exception() ->
    [{doc, "An exception raised by a coroutine is the call's {error, {Type, Message}}, "
      "and the context keeps serving coroutines."}].
coroutine_exception(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:exec(Ctx, <<"async def fails():\n"
                        "    await asyncio.sleep(0.01)\n"
                        "    raise KeyError('nope')\n">>),
    ?assertEqual({error, {"KeyError", "'nope'"}}, py:call(Ctx, '__main__', fails, [])),
    ?assertEqual({ok, 3}, py:call(Ctx, '__main__', add_later, [1, 2])),
    ok.

fifty_concurrent() ->
    [{doc, "50 callers each call a coroutine sleeping 0.5 s on ONE explicit context: all "
      "get their own value, and together they finish in well under 5 s (they "
      "interleave on the event loop; serially it would be 25 s)."}].
fifty_concurrent(Config) ->
    Ctx = ?config(ctx, Config),
    Self = self(),
    T0 = erlang:monotonic_time(millisecond),
    Pids = [spawn_link(fun() -> Self ! {done, self(), I, py:call(Ctx, asyncio, sleep, [?NAP_S, I])}
                       end) || I <- lists:seq(1, ?CALLERS)],
    Results = [receive {done, P, I, R} -> {I, R} after ?HELPER_TIMEOUT -> ct:fail(timeout) end
               || P <- Pids],
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    ct:log("~b coroutines of ~p s on one context took ~b ms", [?CALLERS, ?NAP_S, Elapsed]),
    ?assertEqual([{I, {ok, I}} || I <- lists:seq(1, ?CALLERS)], Results),
    ?assert(Elapsed < ?FIFTY_MAX_MS),
    ok.

sync_while_pending() ->
    [{doc, "While 10 coroutines of 2 s are pending on a context, a sync request on it "
      "returns before any of them has finished; then all of them complete."}].
sync_while_pending(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:exec(Ctx, <<"started, finished = [], []\n"
                        "async def nap(i, s):\n"
                        "    started.append(i)\n"
                        "    await asyncio.sleep(s)\n"
                        "    finished.append(i)\n"
                        "    return i\n">>),
    %% spawn_call runs in this process's environment: the coroutines share `started'.
    Refs = [{I, py:spawn_call(Ctx, '__main__', nap, [I, ?LONG_NAP_S])}
            || I <- lists:seq(1, ?PENDING)],
    ok = eventually(fun() -> py:eval(Ctx, <<"len(started)">>) end, {ok, ?PENDING}),
    %% A sync request: it runs and answers while every coroutine still sleeps.
    ?assertEqual({ok, {45, ?PENDING, 0}},
                 py:eval(Ctx, <<"(sum(range(10)), len(started), len(finished))">>)),
    ?assertEqual({ok, 4.0}, py:call(Ctx, math, sqrt, [16])),
    [?assertEqual({ok, I}, py:await(Ref, ?HELPER_TIMEOUT)) || {I, Ref} <- Refs],
    ?assertEqual({ok, lists:seq(1, ?PENDING)}, py:eval(Ctx, <<"sorted(finished)">>)),
    ok.

timeout_cancels() ->
    [{doc, "A coroutine call that times out gives {error, timeout} and its task is "
      "cancelled: CancelledError reaches the coroutine (its except and finally blocks "
      "run), it never finishes, and the context serves the next call."}].
timeout_cancels(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:exec(Ctx, <<"events = []\n"
                        "async def guarded(s):\n"
                        "    events.append('started')\n"
                        "    try:\n"
                        "        await asyncio.sleep(s)\n"
                        "        events.append('finished')\n"
                        "    except asyncio.CancelledError:\n"
                        "        events.append('cancelled')\n"
                        "        raise\n"
                        "    finally:\n"
                        "        events.append('finally')\n">>),
    ?assertEqual({error, timeout},
                 py:call(Ctx, '__main__', guarded, [?FOREVER_S], #{timeout => ?SHORT_TIMEOUT})),
    ok = eventually(fun() -> py:eval(Ctx, <<"events">>) end,
                    {ok, [<<"started">>, <<"cancelled">>, <<"finally">>]}),
    ?assertEqual({ok, 3}, py:call(Ctx, '__main__', add_later, [1, 2])),
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ok.

coroutine_callback() ->
    [{doc, "A coroutine may call Erlang (erlang.call) between awaits; the function runs "
      "once per call, for concurrent coroutines too."}].
coroutine_callback(Config) ->
    Ctx = ?config(ctx, Config),
    Counter = counters:new(1, []),
    ok = py:register_function(double, fun([X]) -> counters:add(Counter, 1, 1), 2 * X end),
    ok = py:exec(Ctx, <<"async def co_double(n):\n"
                        "    await asyncio.sleep(0.05)\n"
                        "    return erlang.call('double', n)\n">>),
    ?assertEqual({ok, 42}, py:call(Ctx, '__main__', co_double, [21])),
    Refs = [{I, py:spawn_call(Ctx, '__main__', co_double, [I])} || I <- lists:seq(1, 5)],
    [?assertEqual({ok, 2 * I}, py:await(Ref, ?HELPER_TIMEOUT)) || {I, Ref} <- Refs],
    ?assertEqual(6, counters:get(Counter, 1)),
    ok.

asyncio_run_when_idle() ->
    [{doc, "Code that calls asyncio.run() itself works when no coroutine of the context "
      "is pending (docs/async.md)."}].
asyncio_run_when_idle(Config) ->
    Ctx = ?config(ctx, Config),
    ?assertEqual({ok, 3}, py:call(Ctx, '__main__', add_later, [1, 2])),
    ok = py:exec(Ctx, <<"ran = asyncio.run(add_later(20, 22))">>),
    ?assertEqual({ok, 42}, py:eval(Ctx, <<"ran">>)),
    %% And the context's own loop still awaits coroutines afterwards.
    ?assertEqual({ok, 3}, py:call(Ctx, '__main__', add_later, [1, 2])),
    ok.

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

eventually(Fun, Expected) -> pyport_test:eventually(Fun, Expected, ?EVENTUALLY_MS).
