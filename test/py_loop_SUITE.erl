%% The event-loop API of the `erlang' module: `await erlang.async_call(...)'
%% suspends only its coroutine; erlang.run, new_event_loop, the loop policy,
%% erlang.sleep and erlang.spawn_task work with the standard asyncio API.
-module(py_loop_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([async_call_suspends_one/0, async_call_suspends_one/1,
         async_calls_overlap/0, async_calls_overlap/1,
         async_call_error/0, async_call_error/1,
         async_call_cancelled/0, async_call_cancelled/1,
         async_call_calls_back/0, async_call_calls_back/1,
         plain_asyncio_run/0, plain_asyncio_run/1,
         run_gather/0, run_gather/1,
         run_standard_api/0, run_standard_api/1,
         run_callback_chain/0, run_callback_chain/1,
         run_while_coroutines_pending/0, run_while_coroutines_pending/1,
         run_refused_in_coroutine/0, run_refused_in_coroutine/1,
         policy/0, policy/1,
         sleep/0, sleep/1,
         spawn_task/0, spawn_task/1,
         loop_ref_lives_with_its_context/0, loop_ref_lives_with_its_context/1]).

-define(CASE_TIMEOUT, {minutes, 2}).
-define(CALL_TIMEOUT, 30000).
%% async_call_suspends_one: ?SLEEPERS coroutines sleep ?NAP_S while one awaits
%% an Erlang callback of ?SLOW_MS; each sleeper must finish well before the
%% callback returns (loose bound ?SLEEPER_MAX_S; they take ?NAP_S when nothing
%% stalls the loop).
-define(SLEEPERS, 10).
-define(NAP_S, 0.05).
-define(SLOW_MS, 500).
-define(SLEEPER_MAX_S, 0.3).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [async_call_suspends_one, async_calls_overlap, async_call_error, async_call_cancelled,
     async_call_calls_back, plain_asyncio_run,
     run_gather, run_standard_api, run_callback_chain, run_while_coroutines_pending,
     run_refused_in_coroutine, policy, sleep, spawn_task, loop_ref_lives_with_its_context].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    ok = py:register_function(slow, fun([Ms]) -> timer:sleep(Ms), Ms end),
    ok = py:register_function(double, fun([X]) -> 2 * X end),
    ok = py:register_function(boom, fun(_) -> error(boom_in_erlang) end),
    Config.

end_per_suite(_Config) ->
    [py:unregister_function(F) || F <- [slow, double, boom, back_into_python]],
    ok = application:stop(pyport).

init_per_testcase(_Case, Config) ->
    {ok, Ctx} = py_context:start_link(#{python_path => [?config(data_dir, Config)]}),
    [{ctx, Ctx} | Config].

end_per_testcase(_Case, Config) ->
    ok = py_context:stop(?config(ctx, Config)).

%%% ===========================================================================
%%% Cases
%%% ===========================================================================

async_call_suspends_one() ->
    [{doc, "While one coroutine awaits a 500 ms Erlang callback, 10 coroutines of "
      "other callers each sleeping 50 ms finish in about 50 ms; the callback's "
      "coroutine gets its result after about 500 ms."}].
async_call_suspends_one(Config) ->
    Ctx = ?config(ctx, Config),
    Slow = pyport_test:spawn_caller(fun() -> py:call(Ctx, loop_cases, callback, [slow, ?SLOW_MS]) end),
    timer:sleep(50), % the callback is under way
    Sleepers = [pyport_test:spawn_caller(fun() -> py:call(Ctx, loop_cases, nap, [?NAP_S]) end)
                || _ <- lists:seq(1, ?SLEEPERS)],
    Naps = [begin {ok, S} = pyport_test:answer(P, ?CALL_TIMEOUT), S end || P <- Sleepers],
    ct:log("sleepers took ~p s", [Naps]),
    [?assert(S >= ?NAP_S * 0.9 andalso S < ?SLEEPER_MAX_S, {nap, S}) || S <- Naps],
    {ok, {?SLOW_MS, Took}} = pyport_test:answer(Slow, ?CALL_TIMEOUT),
    ct:log("the callback's coroutine took ~p s", [Took]),
    ?assert(Took >= ?SLOW_MS / 1000 * 0.9),
    ok.

async_calls_overlap() ->
    [{doc, "Five async_calls of a 300 ms function gathered in one coroutine run at "
      "the same time (well under 5 x 300 ms), in order."}].
async_calls_overlap(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, {Results, Took}} = py:call(Ctx, loop_cases, callbacks_together, [slow, 5, 300],
                                    #{timeout => ?CALL_TIMEOUT}),
    ct:log("5 x 300 ms together: ~p s", [Took]),
    ?assertEqual([300, 300, 300, 300, 300], Results),
    ?assert(Took < 1.2),
    ok.

async_call_error() ->
    [{doc, "An Erlang exception in the function reaches the awaiting coroutine as "
      "erlang.Error; an unknown name too. The context goes on."}].
async_call_error(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, {<<"Error">>, Msg}} = py:call(Ctx, loop_cases, callback_error, [boom]),
    ?assertNotEqual(nomatch, binary:match(Msg, <<"boom_in_erlang">>)),
    {ok, {<<"Error">>, _}} = py:call(Ctx, loop_cases, callback_error, [no_such_function]),
    {ok, {42, _}} = py:call(Ctx, loop_cases, callback, [double, 21]),
    ok.

async_call_cancelled() ->
    [{doc, "An async_call abandoned by asyncio.wait_for times out in its coroutine "
      "only; its late reply is dropped and the context serves the next calls."}].
async_call_cancelled(Config) ->
    Ctx = ?config(ctx, Config),
    ?assertEqual({ok, <<"timed_out">>}, py:call(Ctx, loop_cases, callback_cancelled, [slow, 300])),
    timer:sleep(400), % the reply arrives, nobody waits for it
    {ok, {42, _}} = py:call(Ctx, loop_cases, callback, [double, 21]),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1 + 1">>)),
    ok.

async_call_calls_back() ->
    [{doc, "A coroutine awaits an async_call whose Erlang function calls back into the "
      "same context (in the request's call chain); three such at once."}].
async_call_calls_back(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:register_function(back_into_python,
                              fun([X]) -> {ok, R} = py:call(Ctx, operator, mul, [X, 3]), R end),
    {ok, {[42, 42, 42], _}} = py:call(Ctx, loop_cases, callbacks_together,
                                      [back_into_python, 3, 14], #{timeout => ?CALL_TIMEOUT}),
    ok.

plain_asyncio_run() ->
    [{doc, "asyncio.run with asyncio's own loop (no erlang.install()) in sync code: "
      "three gathered async_calls of a 300 ms function overlap (< 850 ms)."}].
plain_asyncio_run(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, {[300, 300, 300], Took}} = py:call(Ctx, loop_cases, plain_asyncio_run, [slow, 3, 300],
                                            #{timeout => ?CALL_TIMEOUT}),
    ct:log("3 x 300 ms under asyncio.run: ~p s", [Took]),
    ?assert(Took < 0.85),
    ok.

run_gather() ->
    [{doc, "erlang.run from sync code: 20 tasks sleeping 100 ms with asyncio.gather "
      "take about 100 ms, results in order."}].
run_gather(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, {Results, Took}} = py:call(Ctx, loop_cases, run_gather, [20, 0.1]),
    ?assertEqual([I * 2 || I <- lists:seq(0, 19)], Results),
    ct:log("20 x 100 ms gathered: ~p s", [Took]),
    ?assert(Took >= 0.09 andalso Took < 1.0),
    ok.

run_standard_api() ->
    [{doc, "On the loop erlang.run makes: futures, call_soon, call_later, "
      "create_task, wait_for (result and timeout); the loop is an ErlangEventLoop."}].
run_standard_api(Config) ->
    Ctx = ?config(ctx, Config),
    ?assertEqual({ok, [<<"soon">>, <<"task">>, <<"wait_for">>, <<"timeout">>, <<"later">>,
                       <<"ErlangEventLoop">>]},
                 py:call(Ctx, loop_cases, run_standard_api, [])),
    ok.

run_callback_chain() ->
    [{doc, "erlang.run in a sync request awaits an async_call whose Erlang function "
      "calls back into the same context: the loop serves the request's call chain."}].
run_callback_chain(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:register_function(back_into_python,
                              fun([X]) -> {ok, R} = py:call(Ctx, operator, mul, [X, 3]), R end),
    ?assertEqual({ok, 42}, py:call(Ctx, loop_cases, run_callback, [back_into_python, 14],
                                   #{timeout => ?CALL_TIMEOUT})),
    ok.

run_while_coroutines_pending() ->
    [{doc, "erlang.run from sync code while coroutines of other callers are pending "
      "on the context's loop: it completes, and so do they afterwards."}].
run_while_coroutines_pending(Config) ->
    Ctx = ?config(ctx, Config),
    Pending = [pyport_test:spawn_caller(fun() -> py:call(Ctx, loop_cases, nap, [0.3]) end)
               || _ <- lists:seq(1, 5)],
    timer:sleep(50),
    {ok, {[0, 2], _}} = py:call(Ctx, loop_cases, run_gather, [2, 0.05]),
    [{ok, _} = pyport_test:answer(P, ?CALL_TIMEOUT) || P <- Pending],
    ok.

run_refused_in_coroutine() ->
    [{doc, "erlang.run from a running coroutine raises RuntimeError, as asyncio.run does."}].
run_refused_in_coroutine(Config) ->
    ?assertEqual({ok, <<"refused">>},
                 py:call(?config(ctx, Config), loop_cases, run_in_coroutine_refused, [])),
    ok.

policy() ->
    [{doc, "After erlang.install(), asyncio.run uses an ErlangEventLoop, and "
      "erlang.async_call works in it; erlang.EventLoopPolicy and new_event_loop exist."}].
policy(Config) ->
    Ctx = ?config(ctx, Config),
    ?assertEqual({ok, {<<"ErlangEventLoop">>, 42}}, py:call(Ctx, loop_cases, policy_asyncio_run, [])),
    ?assertEqual({ok, <<"ErlangEventLoop">>},
                 py:eval(Ctx, <<"type(erlang.new_event_loop()).__name__">>)),
    ?assertEqual({ok, true},
                 py:eval(Ctx, <<"isinstance(erlang.EventLoopPolicy().new_event_loop(), "
                                "erlang.ErlangEventLoop)">>)),
    ok.

sleep() ->
    [{doc, "erlang.sleep blocks sync code for its duration; awaited in a coroutine it "
      "suspends only that coroutine (10 of them sleeping 100 ms together: ~100 ms)."}].
sleep(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, S} = py:call(Ctx, loop_cases, sync_sleep, [0.1]),
    ?assert(S >= 0.09 andalso S < 1.0),
    T0 = erlang:monotonic_time(millisecond),
    Ps = [pyport_test:spawn_caller(fun() -> py:call(Ctx, loop_cases, async_sleep, [0.1]) end)
          || _ <- lists:seq(1, 10)],
    [{ok, _} = pyport_test:answer(P, ?CALL_TIMEOUT) || P <- Ps],
    Took = erlang:monotonic_time(millisecond) - T0,
    ct:log("10 x await erlang.sleep(0.1): ~p ms", [Took]),
    ?assert(Took < 800),
    ok.

spawn_task() ->
    [{doc, "erlang.spawn_task from sync code: the request answers at once; the task "
      "runs on the context's loop afterwards and finishes."}].
spawn_task(Config) ->
    Ctx = ?config(ctx, Config),
    ?assertEqual({ok, []}, py:call(Ctx, loop_cases, spawn_background, [0.1, 7])),
    ?assertEqual({ok, []}, py:call(Ctx, loop_cases, spawned, [])),
    ok = pyport_test:eventually(fun() -> py:call(Ctx, loop_cases, spawned, []) end,
                                {ok, [7]}, 5000),
    ok.

loop_ref_lives_with_its_context() ->
    [{doc, "py_event_loop:get_loop/0 names the caller's context with one reference "
      "while the context runs (context_of/1 gives it back); once the context "
      "stops, the reference is unknown and its rows are gone from the table."}].
loop_ref_lives_with_its_context(_Config) ->
    {ok, Ctx} = py_context:start_link(#{}),
    Size0 = ets:info(py_event_loops, size),
    Caller = pyport_test:spawn_caller(fun() ->
                                              {ok, 2.0} = py:call(Ctx, math, sqrt, [4]),
                                              {ok, R1} = py_event_loop:get_loop(),
                                              {ok, R2} = py_event_loop:get_loop(),
                                              {R1, R2}
                                      end),
    {Ref, Ref} = pyport_test:answer(Caller, ?CALL_TIMEOUT),
    ?assertEqual({ok, Ctx}, py_event_loop:context_of(Ref)),
    ?assertEqual(Size0 + 2, ets:info(py_event_loops, size)),
    ok = py_context:stop(Ctx),
    pyport_test:eventually(fun() -> py_event_loop:context_of(Ref) end, {error, unknown_loop}, ?CALL_TIMEOUT),
    pyport_test:eventually(fun() -> ets:info(py_event_loops, size) end, Size0, ?CALL_TIMEOUT),
    ok.
