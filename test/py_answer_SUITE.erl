%% Every caller gets exactly one answer, promptly: callback replies and releases
%% reach the OS process while the context drains or holds requests after a
%% timeout; a caller's death cancels its requests; streams end with their owner
%% and with their context; a context whose OS process stops answering is killed
%% after the heartbeat timeout; pyport's own exit statuses are not confused with
%% a user's os._exit(N).
-module(py_answer_SUITE).

-import(pyport_test, [start_ctx/1, stop_ctx/1, spawn_caller/1, answer/2, wait_until/2]).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([callback_reply_reaches_draining_context/0, callback_reply_reaches_draining_context/1,
         callback_reply_reaches_held_context/0, callback_reply_reaches_held_context/1,
         release_reaches_draining_context/0, release_reaches_draining_context/1,
         max_calls_with_callbacks_never_wedges/0, max_calls_with_callbacks_never_wedges/1,
         dead_caller_stops_its_running_request/0, dead_caller_stops_its_running_request/1,
         dead_callers_queued_requests_never_run/0, dead_callers_queued_requests_never_run/1,
         caller_dying_in_callback_frees_the_context/0,
         caller_dying_in_callback_frees_the_context/1,
         owner_death_ends_its_streams/0, owner_death_ends_its_streams/1,
         context_stop_ends_streams/0, context_stop_ends_streams/1,
         context_kill_ends_streams/0, context_kill_ends_streams/1,
         context_kill_answers_waiting_callers/0, context_kill_answers_waiting_callers/1,
         callers_racing_a_killed_context/0, callers_racing_a_killed_context/1,
         stalled_streams_cost_nothing/0, stalled_streams_cost_nothing/1,
         hijacked_protocol_fd_is_unresponsive/0, hijacked_protocol_fd_is_unresponsive/1,
         forged_frame_length_is_unresponsive/0, forged_frame_length_is_unresponsive/1,
         stopped_process_is_unresponsive/0, stopped_process_is_unresponsive/1,
         user_exit_status_is_not_pyports/0, user_exit_status_is_not_pyports/1,
         churn_with_callbacks_loses_nothing/0, churn_with_callbacks_loses_nothing/1]).

%% Preloaded into the contexts of the callback cases: every caller's
%% environment starts with it.
-define(NAPPER, <<"import erlang\ndef a(ms): return erlang.call('nap', ms)">>).
%% A call that must be answered on a loaded host is given this much.
-define(CALL_TIMEOUT, 30000).
%% Deadline for eventual conditions.
-define(EVENTUALLY_MS, 20000).
%% How long the Erlang side of a callback naps while the context changes state.
-define(NAP_MS, 500).
%% A request that would run far longer than any answer the tests wait for.
-define(LONG_SLEEP_S, 60).
%% Heartbeat timeout of the unresponsive cases (the default is 10 s).
-define(HEARTBEAT_MS, 1000).
%% Calls and callers of the max_calls case.
-define(MC_CALLERS, 8).
-define(MC_CALLS, 20).
-define(MC_MAX_CALLS, 20).
%% The churn case: callers, rounds (alternately a graceful restart and a kill)
%% and the pause between two rounds.
-define(CHURN_CALLERS, 64).
-define(CHURN_ROUNDS, 20).
-define(CHURN_PAUSE_MS, 150).
%% The race case: callers calling in a loop, rounds (a context killed in each),
%% and how long they call before the kill.
-define(RACE_CALLERS, 32).
-define(RACE_ROUNDS, 20).
-define(RACE_BEFORE_KILL_MS, 30).
%% Owners and streams of the stream cases.
-define(OWNERS, 50).
%% Stalled streams, and how long their cost is watched.
-define(STALLED, 20).
-define(STALL_WATCH_MS, 2000).
%% Reductions the context server may spend on stalled streams while watched:
%% a poll every 5 ms per stream would cost hundreds of thousands.
-define(STALL_MAX_REDUCTIONS, 50000).

suite() -> [{timetrap, {minutes, 5}}].

all() ->
    [callback_reply_reaches_draining_context, callback_reply_reaches_held_context,
     release_reaches_draining_context, max_calls_with_callbacks_never_wedges,
     dead_caller_stops_its_running_request, dead_callers_queued_requests_never_run,
     caller_dying_in_callback_frees_the_context,
     owner_death_ends_its_streams, context_stop_ends_streams, context_kill_ends_streams,
     context_kill_answers_waiting_callers, callers_racing_a_killed_context,
     stalled_streams_cost_nothing,
     hijacked_protocol_fd_is_unresponsive, forged_frame_length_is_unresponsive,
     stopped_process_is_unresponsive, user_exit_status_is_not_pyports,
     churn_with_callbacks_loses_nothing].

init_per_suite(Config) ->
    application:load(pyport),
    application:set_env(pyport, start_pools, false),
    {ok, _} = application:ensure_all_started(pyport),
    py:register_function(nap, fun([Ms]) -> timer:sleep(Ms), napped end),
    Config.

end_per_suite(_Config) ->
    py:unregister_function(nap),
    ok = application:stop(pyport),
    application:unset_env(pyport, start_pools).

end_per_testcase(_Case, _Config) ->
    py:unregister_function(block),
    ok.

%%% ===========================================================================
%%% Callback replies and releases reach a live OS process
%%% ===========================================================================

callback_reply_reaches_draining_context() ->
    [{doc, "restart/1 while request A (timeout infinity) waits in erlang.call: A's "
      "callback reply still reaches the old OS process, A is answered, the graceful "
      "restart completes and the next call is served by the new OS process."}].
callback_reply_reaches_draining_context(_Config) ->
    Ctx = start_ctx(#{preload => ?NAPPER}),
    #{os_pid := Old} = py_context:info(Ctx),
    A = spawn_caller(fun() -> py:call(Ctx, '__main__', a, [?NAP_MS]) end),
    wait_until(fun() -> is_map(maps:get(current, py_context:info(Ctx))) end, ?EVENTUALLY_MS),
    ok = py_context:restart(Ctx),
    ?assertEqual({ok, napped}, answer(A, ?CALL_TIMEOUT)),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1+1">>, #{}, ?CALL_TIMEOUT)),
    #{os_pid := New, status := ready} = py_context:info(Ctx),
    ?assertNotEqual(Old, New),
    stop_ctx(Ctx).

callback_reply_reaches_held_context() ->
    [{doc, "While A (timeout infinity) waits in erlang.call, B on the same context times "
      "out, so the context holds new requests until B has stopped: A's callback reply "
      "still reaches the OS process and A is answered."}].
callback_reply_reaches_held_context(_Config) ->
    Ctx = start_ctx(#{preload => ?NAPPER}),
    A = spawn_caller(fun() -> py:call(Ctx, '__main__', a, [?NAP_MS]) end),
    wait_until(fun() -> is_map(maps:get(current, py_context:info(Ctx))) end, ?EVENTUALLY_MS),
    B = spawn_caller(fun() -> py:eval(Ctx, <<"__import__('time').sleep(5)">>, #{}, 100) end),
    ?assertEqual({ok, napped}, answer(A, ?CALL_TIMEOUT)),
    ?assertEqual({error, timeout}, answer(B, ?CALL_TIMEOUT)),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1+1">>, #{}, ?CALL_TIMEOUT)),
    stop_ctx(Ctx).

release_reaches_draining_context() ->
    [{doc, "py:release/1 made while the context drains (here: from inside a callback of "
      "the request that keeps it draining) reaches the OS process: the object is freed "
      "before that request returns."}].
release_reaches_draining_context(_Config) ->
    Ctx = start_ctx(#{}),
    ok = py:exec(Ctx, <<"import erlang\n"
                        "freed = False\n"
                        "class T:\n"
                        "    def __del__(self):\n"
                        "        global freed\n"
                        "        freed = True\n"
                        "def a():\n"
                        "    erlang.call('release_it')\n"
                        "    erlang.call('nap', 100)\n"
                        "    return freed">>),
    {ok, Ref} = py:eval(Ctx, <<"T()">>),
    Self = self(),
    py:register_function(release_it, fun([]) ->
                                             ok = py_context:restart(Ctx),
                                             Self ! draining,
                                             py:release(Ref)
                                     end),
    try
        ?assertEqual({ok, true}, py:call(Ctx, '__main__', a, [])),
        receive draining -> ok after 0 -> ct:fail(release_it_not_run) end
    after
        py:unregister_function(release_it)
    end,
    stop_ctx(Ctx).

max_calls_with_callbacks_never_wedges() ->
    [{doc, "max_calls recycles gracefully under callbacks: 8 callers x 20 calls that each "
      "call back into Erlang, timeout infinity, max_calls 20: every call is answered and "
      "the context ends ready."}].
max_calls_with_callbacks_never_wedges(_Config) ->
    Ctx = start_ctx(#{max_calls => ?MC_MAX_CALLS, preload => ?NAPPER}),
    Callers = [spawn_caller(fun() ->
                                    [py:call(Ctx, '__main__', a, [5]) || _ <- lists:seq(1, ?MC_CALLS)]
                            end) || _ <- lists:seq(1, ?MC_CALLERS)],
    Results = lists:append([answer(C, ?CALL_TIMEOUT * 2) || C <- Callers]),
    ?assertEqual([{ok, napped}], lists:usort(Results)),
    ?assertEqual(?MC_CALLERS * ?MC_CALLS, length(Results)),
    %% The last answer may itself reach max_calls: the context then recycles
    %% once more, and is ready again after it.
    wait_until(fun() -> maps:get(status, py_context:info(Ctx)) =:= ready end, ?EVENTUALLY_MS),
    #{restarts := Restarts} = py_context:info(Ctx),
    ?assert(Restarts > 0),
    stop_ctx(Ctx).

%%% ===========================================================================
%%% A caller's death
%%% ===========================================================================

dead_caller_stops_its_running_request() ->
    [{doc, "A caller killed while its request runs `while True: pass' (explicit context, "
      "timeout infinity): the loop is interrupted, the same OS process serves the next "
      "call at once, and the in-flight entry is gone."}].
dead_caller_stops_its_running_request(_Config) ->
    Ctx = start_ctx(#{}),
    #{os_pid := OsPid} = py_context:info(Ctx),
    Caller = spawn(fun() -> py:exec(Ctx, <<"while True: pass">>) end),
    wait_until(fun() -> is_map(maps:get(current, py_context:info(Ctx))) end, ?EVENTUALLY_MS),
    exit(Caller, kill),
    wait_until(fun() -> maps:get(current, py_context:info(Ctx)) =:= idle end, ?EVENTUALLY_MS),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1+1">>, #{}, 5000)),
    ?assertMatch(#{os_pid := OsPid, restarts := 0, queue_len := 0}, py_context:info(Ctx)),
    stop_ctx(Ctx).

dead_callers_queued_requests_never_run() ->
    [{doc, "20 callers whose requests wait behind a long one die: their requests are "
      "dropped, never run, and the context's queue is empty afterwards."}].
dead_callers_queued_requests_never_run(_Config) ->
    Ctx = start_ctx(#{}),
    ok = py:exec(Ctx, <<"import builtins\nbuiltins.ran = 0">>),
    Blocker = spawn_caller(fun() -> py:eval(Ctx, <<"__import__('time').sleep(1)">>) end),
    wait_until(fun() -> is_map(maps:get(current, py_context:info(Ctx))) end, ?EVENTUALLY_MS),
    Doomed = [spawn(fun() -> py:exec(Ctx, <<"import builtins\nbuiltins.ran += 1">>) end)
              || _ <- lists:seq(1, 20)],
    wait_until(fun() -> maps:get(queue_len, py_context:info(Ctx)) >= 21 end, ?EVENTUALLY_MS),
    [exit(D, kill) || D <- Doomed],
    ?assertEqual({ok, none}, answer(Blocker, ?CALL_TIMEOUT)),
    ?assertEqual({ok, 0}, py:eval(Ctx, <<"__import__('builtins').ran">>, #{}, ?CALL_TIMEOUT)),
    ?assertMatch(#{queue_len := 0}, py_context:info(Ctx)),
    stop_ctx(Ctx).

caller_dying_in_callback_frees_the_context() ->
    [{doc, "A caller that dies (shutdown) while it runs a callback of its request: the "
      "request is cancelled (it stops waiting for the reply), the in-flight table is "
      "empty at once, and a graceful restart afterwards completes."}].
caller_dying_in_callback_frees_the_context(_Config) ->
    Ctx = start_ctx(#{preload => <<"import erlang\ndef a(): return erlang.call('block')">>}),
    Self = self(),
    py:register_function(block, fun([]) -> Self ! {blocked, self()}, receive never -> ok end end),
    Caller = spawn(fun() -> py:call(Ctx, '__main__', a, []) end),
    receive {blocked, Caller} -> ok after ?EVENTUALLY_MS -> ct:fail(no_callback) end,
    exit(Caller, shutdown),
    wait_until(fun() -> maps:get(queue_len, py_context:info(Ctx)) =:= 0 end, ?EVENTUALLY_MS),
    wait_until(fun() -> maps:get(current, py_context:info(Ctx)) =:= idle end, ?EVENTUALLY_MS),
    ok = py_context:restart(Ctx),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1+1">>, #{}, ?CALL_TIMEOUT)),
    ?assertMatch(#{status := ready, restarts := 1}, py_context:info(Ctx)),
    stop_ctx(Ctx).

%%% ===========================================================================
%%% Streams end with their owner and their context
%%% ===========================================================================

owner_death_ends_its_streams() ->
    [{doc, "50 owners that die mid-stream: their generators stop and every stream row is "
      "deleted (the stream table is back to where it was)."}].
owner_death_ends_its_streams(_Config) ->
    Ctx = start_ctx(#{}),
    ok = py:exec(Ctx, <<"import itertools">>),
    Before = py_streams:count(),
    Self = self(),
    Owners = [spawn(fun() ->
                            {ok, Ref} = py:stream_start(itertools, count, [],
                                                        #{context => Ctx, window => 2}),
                            receive {py_stream, Ref, {data, _}} -> Self ! {streaming, self()} end,
                            receive never -> ok end
                    end) || _ <- lists:seq(1, ?OWNERS)],
    [receive {streaming, O} -> ok after ?EVENTUALLY_MS -> ct:fail(no_stream) end || O <- Owners],
    [exit(O, kill) || O <- Owners],
    wait_until(fun() -> py_streams:count() =:= Before end, ?EVENTUALLY_MS),
    wait_until(fun() -> maps:get(queue_len, py_context:info(Ctx)) =:= 0 end, ?EVENTUALLY_MS),
    stop_ctx(Ctx).

context_stop_ends_streams() ->
    [{doc, "py_context:stop/1 mid-stream: the owner gets {error, {context_died, _}} and the "
      "stream row is deleted."}].
context_stop_ends_streams(_Config) ->
    stream_ends_with_context(fun(Ctx) -> stop_ctx(Ctx) end).

context_kill_ends_streams() ->
    [{doc, "exit(Ctx, kill) mid-stream (the context's server gets no chance to clean up): "
      "the owner gets {error, {context_died, killed}} and the stream row is deleted."}].
context_kill_ends_streams(_Config) ->
    stream_ends_with_context(fun(Ctx) -> exit(Ctx, kill) end).

context_kill_answers_waiting_callers() ->
    [{doc, "exit(Ctx, kill) while one request runs and three wait in the OS process "
      "(timeout infinity, all written by their callers): each caller gets "
      "{error, {context_died, killed}} long before the running one could end, once, "
      "and nothing reaches it after; a call to the dead context gets "
      "{error, {context_died, noproc}}."}].
context_kill_answers_waiting_callers(_Config) ->
    Ctx = start_ctx(#{}),
    Callers = [spawn_caller(fun() -> py:call(Ctx, time, sleep, [?LONG_SLEEP_S]) end)
               || _ <- lists:seq(1, 4)],
    wait_until(fun() -> #{current := Current, queue_len := Len} = py_context:info(Ctx),
                        is_map(Current) andalso Len =:= 4 end,
               ?EVENTUALLY_MS),
    T0 = erlang:monotonic_time(millisecond),
    exit(Ctx, kill),
    Answers = [pyport_test:answer_at(C, ?EVENTUALLY_MS) || C <- Callers],
    [?assertEqual({error, {context_died, killed}}, R) || {R, _} <- Answers],
    [?assert(T - T0 < ?LONG_SLEEP_S * 1000 div 2) || {_, T} <- Answers],
    timer:sleep(200),
    [?assertEqual([], pyport_test:mailbox(C, ?EVENTUALLY_MS)) || C <- Callers],
    ?assertEqual({error, {context_died, noproc}}, py:call(Ctx, math, sqrt, [4.0])).

callers_racing_a_killed_context() ->
    [{doc, "32 callers call a context in a loop while it is killed (exit(Ctx, kill)), "
      "20 times: every call returns {ok, _} or {error, {context_died, _}} (none "
      "raises, even when the context's in-flight table goes away between the "
      "caller's steps), and no answer reaches a caller after its call returned."}].
callers_racing_a_killed_context(_Config) ->
    Bad = lists:append([race_round() || _ <- lists:seq(1, ?RACE_ROUNDS)]),
    ?assertEqual([], Bad).

%% One round: the results that are neither an answer nor context_died, and the
%% messages left in the callers' mailboxes.
race_round() ->
    Ctx = start_ctx(#{}),
    Self = self(),
    Callers = [spawn(fun() -> race_caller(Self, Ctx, []) end) || _ <- lists:seq(1, ?RACE_CALLERS)],
    timer:sleep(?RACE_BEFORE_KILL_MS),
    exit(Ctx, kill),
    lists:append([receive {race, C, Results, Left} ->
                          [R || R <- Results, not race_ok(R)] ++ [{left, M} || M <- Left]
                  after ?EVENTUALLY_MS -> [{no_answer, C}]
                  end || C <- Callers]).

%% Calls until a call finds the context dead, then reports its results and what
%% reached its mailbox after them.
race_caller(Parent, Ctx, Acc) ->
    R = try py:call(Ctx, math, sqrt, [4.0]) catch C:E -> {raised, C, E} end,
    case R of
        {ok, 2.0} ->
            race_caller(Parent, Ctx, [R | Acc]);
        _ ->
            timer:sleep(100),
            {messages, Left} = process_info(self(), messages),
            Parent ! {race, self(), [R | Acc], Left}
    end.

race_ok({ok, 2.0}) -> true;
race_ok({error, {context_died, _}}) -> true;
race_ok(_) -> false.

stream_ends_with_context(End) ->
    Ctx = start_ctx(#{}),
    Before = py_streams:count(),
    {ok, Ref} = py:stream_start(itertools, count, [], #{context => Ctx, window => 2}),
    receive {py_stream, Ref, {data, 0}} -> ok after ?EVENTUALLY_MS -> ct:fail(no_item) end,
    End(Ctx),
    ?assertMatch({context_died, _}, stream_error(Ref)),
    wait_until(fun() -> py_streams:count() =:= Before end, ?EVENTUALLY_MS).

stream_error(Ref) ->
    receive
        {py_stream, Ref, {data, _}} -> stream_error(Ref);
        {py_stream, Ref, {error, E}} -> E;
        {py_stream, Ref, Other} -> ct:fail({unexpected, Other})
    after ?EVENTUALLY_MS ->
        ct:fail(stream_never_ended)
    end.

stalled_streams_cost_nothing() ->
    [{doc, "20 owners that stop reading their infinite streams: their mailboxes stay at a "
      "window and the context server spends next to nothing on them while they stall."}].
stalled_streams_cost_nothing(_Config) ->
    Ctx = start_ctx(#{}),
    Self = self(),
    Owners = [spawn(fun() ->
                            {ok, _} = py:stream_start(itertools, count, [],
                                                      #{context => Ctx, window => 16}),
                            Self ! {started, self()},
                            receive never -> ok end
                    end) || _ <- lists:seq(1, ?STALLED)],
    [receive {started, O} -> ok after ?EVENTUALLY_MS -> ct:fail(no_stream) end || O <- Owners],
    %% Let them fill up and the context settle into its longest wait.
    timer:sleep(2000),
    {reductions, R0} = process_info(Ctx, reductions),
    timer:sleep(?STALL_WATCH_MS),
    {reductions, R1} = process_info(Ctx, reductions),
    Queues = [element(2, process_info(O, message_queue_len)) || O <- Owners],
    ct:log("reductions while stalled: ~b; owner mailboxes ~p", [R1 - R0, Queues]),
    ?assert(R1 - R0 < ?STALL_MAX_REDUCTIONS),
    ?assert(lists:max(Queues) =< 2 * 16),
    [exit(O, kill) || O <- Owners],
    stop_ctx(Ctx).

%%% ===========================================================================
%%% Liveness
%%% ===========================================================================

hijacked_protocol_fd_is_unresponsive() ->
    [{doc, "Python points the protocol's output descriptor at /dev/null: a caller with "
      "timeout infinity gets {error, {context_died, unresponsive}} after the heartbeat "
      "timeout, and the context serves again."}].
hijacked_protocol_fd_is_unresponsive(_Config) ->
    unresponsive(<<"import os\nos.dup2(os.open('/dev/null', os.O_WRONLY), 4)\n"
                   "import time\ntime.sleep(60)">>).

forged_frame_length_is_unresponsive() ->
    [{doc, "Python writes a forged 2 GB frame length to the protocol descriptor, so the "
      "node waits for a frame that never ends: killed after the heartbeat timeout."}].
forged_frame_length_is_unresponsive(_Config) ->
    unresponsive(<<"import os\nos.write(4, b'\\x7f\\xff\\xff\\xff')\n"
                   "import time\ntime.sleep(60)">>).

stopped_process_is_unresponsive() ->
    [{doc, "The OS process stops itself (SIGSTOP): the infinity caller gets "
      "{context_died, unresponsive} after the heartbeat timeout."}].
stopped_process_is_unresponsive(_Config) ->
    unresponsive(<<"import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)">>).

unresponsive(Code) ->
    Ctx = start_ctx(#{heartbeat => ?HEARTBEAT_MS}),
    #{os_pid := Old} = py_context:info(Ctx),
    T0 = erlang:monotonic_time(millisecond),
    ?assertEqual({error, {context_died, unresponsive}}, py:exec(Ctx, Code)),
    Took = erlang:monotonic_time(millisecond) - T0,
    ct:log("answered after ~b ms", [Took]),
    ?assert(Took >= ?HEARTBEAT_MS),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1+1">>, #{}, ?CALL_TIMEOUT)),
    ?assertNotEqual(Old, maps:get(os_pid, py_context:info(Ctx))),
    stop_ctx(Ctx).

user_exit_status_is_not_pyports() ->
    [{doc, "os._exit(66) in Python is reported as {exit, 66}, not as pyport's own "
      "framing_lost; likewise 67 and 68."}].
user_exit_status_is_not_pyports(_Config) ->
    Ctx = start_ctx(#{}),
    [?assertEqual({error, {context_died, {exit, N}}},
                  py:exec(Ctx, iolist_to_binary(io_lib:format("import os\nos._exit(~b)", [N]))))
     || N <- [66, 67, 68]],
    stop_ctx(Ctx).

%%% ===========================================================================
%%% Churn
%%% ===========================================================================

churn_with_callbacks_loses_nothing() ->
    [{doc, "64 callers call a function that calls back into Erlang (erlang.state_incr of "
      "a token) while the context is restarted gracefully and killed, 20 rounds: no call "
      "times out, none is answered twice (no stray message), none runs twice, every ok "
      "ran exactly once, and the only errors are the kills' context_died."}].
churn_with_callbacks_loses_nothing(_Config) ->
    Ctx = start_ctx(#{preload => <<"import erlang\ndef f(tok):\n"
                                   "    erlang.state_incr(tok)\n    return tok\n">>}),
    py:state_clear(),
    Me = self(),
    Callers = [spawn_link(fun() -> churn_caller(Ctx, Me, I, 0, []) end)
               || I <- lists:seq(1, ?CHURN_CALLERS)],
    lists:foreach(fun(Round) ->
                          timer:sleep(?CHURN_PAUSE_MS),
                          case Round rem 2 of
                              0 -> ok = py_context:restart(Ctx);
                              1 -> ok = py_context:kill(Ctx)
                          end
                  end, lists:seq(1, ?CHURN_ROUNDS)),
    timer:sleep(?CHURN_PAUSE_MS * 2),
    [P ! stop || P <- Callers],
    All = lists:append([receive {churned, P, L} -> L
                        after ?CALL_TIMEOUT -> ct:fail({caller_hung, P})
                        end || P <- Callers]),
    Counts = lists:foldl(fun({_, R, _}, A) -> maps:update_with(R, fun(X) -> X + 1 end, 1, A) end,
                         #{}, All),
    Runs = maps:from_list([{K, V} || K <- py:state_keys(), {ok, V} <- [py:state_fetch(K)]]),
    Strays = [S || {_, _, S} <- All, S =/= []],
    Twice = [T || {T, _, _} <- All, maps:get(T, Runs, 0) > 1],
    OkNotOnce = [T || {T, ok, _} <- All, maps:get(T, Runs, 0) =/= 1],
    ct:log("calls: ~b; results: ~p; strays ~b; twice ~b; ok not once ~b",
           [length(All), Counts, length(Strays), length(Twice), length(OkNotOnce)]),
    ?assert(maps:get(ok, Counts, 0) > 0),
    ?assertEqual([], [R || R <- maps:keys(Counts), R =/= ok,
                           R =/= {error, {context_died, {killed, requested}}}]),
    ?assertEqual([], Strays),
    ?assertEqual([], Twice),
    ?assertEqual([], OkNotOnce),
    ?assertEqual({ok, 1}, py:call(Ctx, '__main__', f, [1], #{timeout => ?CALL_TIMEOUT})),
    ?assertMatch(#{status := ready, queue_len := 0}, py_context:info(Ctx)),
    stop_ctx(Ctx).

churn_caller(Ctx, Parent, I, N, Acc) ->
    receive
        stop -> Parent ! {churned, self(), lists:reverse(Acc)}
    after 0 ->
        Tok = I * 1000000 + N,
        R = py:call(Ctx, '__main__', f, [Tok], #{timeout => ?CALL_TIMEOUT div 3}),
        {messages, Stray0} = process_info(self(), messages),
        Stray = [M || M <- Stray0, M =/= stop],
        R1 = case R of {ok, Tok} -> ok; {ok, Other} -> {wrong, Other}; E -> E end,
        churn_caller(Ctx, Parent, I, N + 1, [{Tok, R1, Stray} | Acc])
    end.
