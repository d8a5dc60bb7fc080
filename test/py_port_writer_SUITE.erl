%% The port writer (py_port_writer): the request frames of many callers on one
%% context go to the OS process in batch frames, each answered once and in the
%% order each process sent them (a cancel after its request); a caller alone writes its own frame; frames
%% queued for an OS process that dies are answered.
-module(py_port_writer_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-import(pyport_test, [start_ctx/1, stop_ctx/1]).

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([requests_of_many_callers_go_in_batches/0, requests_of_many_callers_go_in_batches/1,
         cancels_follow_their_requests_among_many_callers/0,
         cancels_follow_their_requests_among_many_callers/1,
         a_lone_caller_writes_its_own_frames/0, a_lone_caller_writes_its_own_frames/1,
         killed_callers_never_wedge_the_writer/0, killed_callers_never_wedge_the_writer/1,
         queued_requests_of_a_killed_process_are_answered/0,
         queued_requests_of_a_killed_process_are_answered/1]).

-define(CALLERS, 64).
-define(CALLS, 200).

suite() -> [{timetrap, {minutes, 5}}].

all() ->
    [requests_of_many_callers_go_in_batches, cancels_follow_their_requests_among_many_callers,
     a_lone_caller_writes_its_own_frames, killed_callers_never_wedge_the_writer,
     queued_requests_of_a_killed_process_are_answered].

init_per_suite(Config) ->
    application:load(pyport),
    application:set_env(pyport, start_pools, false),
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport),
    application:unset_env(pyport, start_pools).

end_per_testcase(_Case, _Config) ->
    untrace(),
    ok.

requests_of_many_callers_go_in_batches() ->
    [{doc, "64 callers, 200 calls each, on one context: every call gets its own "
      "answer, and the frames went to the OS process in batches of several."}].
requests_of_many_callers_go_in_batches(_Config) ->
    Ctx = start_ctx(#{}),
    trace_writes(),
    Results = run_callers(?CALLERS, fun(N) ->
                                            [py:call(Ctx, operator, add, [N, I]) || I <- lists:seq(1, ?CALLS)]
                                    end),
    Batches = batch_sizes(),
    untrace(),
    [?assertEqual([{ok, N + I} || I <- lists:seq(1, ?CALLS)], R) || {N, R} <- Results],
    ct:log("batch frames: ~p, frames in them: ~p, largest: ~p",
           [length(Batches), lists:sum(Batches), lists:max([0 | Batches])]),
    ?assert(length(Batches) > 0),
    ?assert(lists:max(Batches) >= 2),
    stop_ctx(Ctx).

cancels_follow_their_requests_among_many_callers() ->
    [{doc, "While 32 callers keep a context busy (their frames queued for batches), "
      "20 calls of time.sleep(30) with a timeout of 0 each end {error, timeout}, and "
      "each cancel reaches the OS process after its request: none of the sleeps "
      "holds the context, whose next call is answered."}].
cancels_follow_their_requests_among_many_callers(_Config) ->
    Ctx = start_ctx(#{}),
    Stop = atomics:new(1, []),
    Busy = [spawn_link(fun() -> busy(Ctx, Stop) end) || _ <- lists:seq(1, 32)],
    Timeouts = [py:call(Ctx, time, sleep, [30], #{timeout => 0}) || _ <- lists:seq(1, 20)],
    Next = py:call(Ctx, operator, add, [1, 1], #{timeout => 15000}),
    atomics:put(Stop, 1, 1),
    [begin Ref = monitor(process, P), receive {'DOWN', Ref, _, _, _} -> ok end end || P <- Busy],
    ?assertEqual(lists:duplicate(20, {error, timeout}), Timeouts),
    ?assertEqual({ok, 2}, Next),
    stop_ctx(Ctx).

a_lone_caller_writes_its_own_frames() ->
    [{doc, "One caller making calls one after the other writes each frame itself: "
      "none waits for a batch."}].
a_lone_caller_writes_its_own_frames(_Config) ->
    Ctx = start_ctx(#{}),
    1 = erlang:trace_pattern({py_port_writer, busy, 1}, [{'_', [], [{return_trace}]}], [local]),
    Self = self(),
    Caller = spawn_link(fun() ->
                                receive go -> ok end,
                                [{ok, I} = py:call(Ctx, operator, add, [I, 0]) || I <- lists:seq(1, 500)],
                                Self ! {done, self()}
                        end),
    1 = erlang:trace(Caller, true, [call, {tracer, self()}]),
    Caller ! go,
    receive {done, Caller} -> ok end,
    untrace(),
    Busy = submits(),
    ?assertEqual(500, length(Busy)),
    ?assertEqual([], [B || B <- Busy, B =/= false]),
    stop_ctx(Ctx).

killed_callers_never_wedge_the_writer() ->
    [{doc, "64 callers keep calling while, for 2 s, one of them is killed every "
      "millisecond or so (and replaced): afterwards the context answers at once, "
      "and no caller left anything in the writer's queue unwritten."}].
killed_callers_never_wedge_the_writer(_Config) ->
    Ctx = start_ctx(#{}),
    Spawn = fun() -> spawn(fun() -> busy(Ctx, atomics:new(1, [])) end) end,
    Callers = [Spawn() || _ <- lists:seq(1, ?CALLERS)],
    Deadline = erlang:monotonic_time(millisecond) + 2000,
    Left = kill_round(Callers, Spawn, Deadline, 0),
    [exit(P, kill) || P <- Left],
    ?assertEqual({ok, 2}, py:call(Ctx, operator, add, [1, 1], #{timeout => 5000})),
    ?assertMatch(#{queue_len := 0}, wait_idle(Ctx, 50)),
    stop_ctx(Ctx).

queued_requests_of_a_killed_process_are_answered() ->
    [{doc, "64 callers keep calling while the context's OS process is killed, five "
      "times: every call is answered, {ok, _} or {error, {context_died, _}}, and the "
      "context serves calls after each restart."}].
queued_requests_of_a_killed_process_are_answered(_Config) ->
    Ctx = start_ctx(#{}),
    lists:foreach(
      fun(_) ->
              Stop = atomics:new(1, []),
              Parent = self(),
              Callers = [spawn_link(fun() -> Parent ! {self(), calls(Ctx, Stop, [])} end)
                         || _ <- lists:seq(1, ?CALLERS)],
              timer:sleep(50),
              ok = py_context:kill(Ctx),
              timer:sleep(50),
              atomics:put(Stop, 1, 1),
              Answers = lists:append([receive {P, A} -> A after 30000 -> ct:fail(no_answer) end
                                      || P <- Callers]),
              Bad = [A || A <- Answers, not answer_ok(A)],
              ?assertEqual([], Bad),
              ?assertMatch({ok, 3}, py:call(Ctx, operator, add, [1, 2]))
      end, lists:seq(1, 5)),
    stop_ctx(Ctx).

%%% Helpers --------------------------------------------------------------------

run_callers(N, Fun) ->
    Parent = self(),
    Pids = [{I, spawn_link(fun() -> Parent ! {self(), Fun(I)} end)} || I <- lists:seq(1, N)],
    [{I, receive {P, R} -> R end} || {I, P} <- Pids].

busy(Ctx, Stop) ->
    case atomics:get(Stop, 1) of
        0 -> {ok, _} = py:call(Ctx, operator, add, [1, 1]), busy(Ctx, Stop);
        _ -> ok
    end.

calls(Ctx, Stop, Acc) ->
    case atomics:get(Stop, 1) of
        0 -> calls(Ctx, Stop, [py:call(Ctx, operator, add, [1, 1], #{timeout => 10000}) | Acc]);
        _ -> Acc
    end.

answer_ok({ok, 2}) -> true;
answer_ok({error, {context_died, _}}) -> true;
answer_ok(_) -> false.

%% Call trace of the writer's batch writes, to this process.
trace_writes() ->
    1 = erlang:trace_pattern({py_port_writer, write_batch, 2}, true, [local]),
    _ = erlang:trace(all, true, [call, {tracer, self()}]),
    ok.

untrace() ->
    _ = erlang:trace(all, false, [call]),
    _ = erlang:trace_pattern({py_port_writer, '_', '_'}, false, [local]),
    ok.

%% The number of frames in each batch frame written so far (single frames
%% written from the queue are not batches).
batch_sizes() ->
    receive
        {trace, _, call, {py_port_writer, write_batch, [Frames, _]}} when length(Frames) > 1 ->
            [length(Frames) | batch_sizes()];
        {trace, _, call, {py_port_writer, write_batch, [_, _]}} ->
            batch_sizes()
    after 500 ->
            []
    end.

%% What each traced py_port_writer:busy/1 returned (whether the request frame
%% waited for a batch).
submits() ->
    receive
        {trace, _, call, {py_port_writer, busy, _}} -> submits();
        {trace, _, return_from, {py_port_writer, busy, 1}, Busy} -> [Busy | submits()]
    after 0 -> []
    end.

%% Kills a random caller and starts another, about every millisecond, until
%% Deadline; returns the callers alive then.
kill_round(Callers, Spawn, Deadline, N) ->
    case erlang:monotonic_time(millisecond) > Deadline of
        true ->
            ct:log("callers killed: ~p", [N]),
            Callers;
        false ->
            Victim = lists:nth(rand:uniform(length(Callers)), Callers),
            exit(Victim, kill),
            timer:sleep(1),
            kill_round([Spawn() | lists:delete(Victim, Callers)], Spawn, Deadline, N + 1)
    end.

%% The context's info once nothing is in flight (the killed callers' requests
%% answered to nobody), or the last info after Tries polls.
wait_idle(Ctx, Tries) ->
    Info = py_context:info(Ctx),
    case Info of
        #{queue_len := 0} -> Info;
        _ when Tries =:= 0 -> Info;
        _ -> timer:sleep(100), wait_idle(Ctx, Tries - 1)
    end.
