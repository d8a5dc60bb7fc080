%% Interrupts through py_context reach only their own request, and never
%% escalate to a kill. An interruptible timeout is never a kill, even on a loaded
%% machine (issue 15): with four CPU hogs (busy-loop OS processes) and contexts
%% starting and stopping beside it, every one of 500 runs of `while True: pass'
%% with a 100 ms timeout ends with {error, timeout}, and the context keeps its OS
%% process (and so its Python state) throughout. While a request waits in
%% erlang.call, another caller's request neither delays its answer nor catches
%% its timeout (F5): it waits for the call chain.
-module(pyport_interrupt_SUITE).

-import(pyport_test, [start_ctx/1, stop_ctx/1, spawn_caller/1, answer/2]).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([interruptible_loop_is_never_killed_under_load/0,
         interruptible_loop_is_never_killed_under_load/1,
         other_callers_wait_for_a_callback_wait/0, other_callers_wait_for_a_callback_wait/1,
         timeout_in_a_callback_wait_hits_only_its_request/0,
         timeout_in_a_callback_wait_hits_only_its_request/1]).

%% Runs of the interruptible loop, and the timeout of each.
-define(RUNS, 500).
-define(TIMEOUT_MS, 100).
%% Busy-loop OS processes started beside it (the machine has 2 cores).
-define(HOGS, 4).
%% Pause between two context starts of the churn process.
-define(CHURN_PAUSE_MS, 50).
%% How long the churn process may take to stop its last context.
-define(CHURN_STOP_MS, 30000).
%% How long the callback of the waiting request naps (ms), and how long the other
%% caller's request sleeps in Python (s), much longer.
-define(NAP_MS, 300).
-define(OTHER_SLEEP_S, "1.5").
%% Timeout of the waiting request in the timeout case: shorter than its nap.
-define(WAIT_TIMEOUT_MS, 100).
%% Bound on any answer in the call-chain cases.
-define(ANSWER_MS, 30000).
%% Pause before the other caller's request, so it arrives during the wait.
-define(OTHER_AFTER_MS, 50).

suite() -> [{timetrap, {minutes, 10}}].

all() ->
    [other_callers_wait_for_a_callback_wait, timeout_in_a_callback_wait_hits_only_its_request,
     interruptible_loop_is_never_killed_under_load].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

other_callers_wait_for_a_callback_wait() ->
    [{doc, "While request A waits in erlang.call, another caller's long request B waits "
           "for A's call chain: A answers first; a request the callback itself makes to "
           "the same context (A's chain) is served meanwhile."}].
other_callers_wait_for_a_callback_wait(_Config) ->
    Ctx = start_ctx(#{preload => chain_preload()}),
    ok = py:register_function(pyport_test_nap,
                              fun([Ms]) ->
                                      timer:sleep(Ms),
                                      {ok, Nested} = py:eval(Ctx, <<"6 * 7">>),
                                      Nested
                              end),
    try
        Me = self(),
        A = spawn_caller(fun() -> R = py:call(Ctx, '__main__', a, [?NAP_MS]), Me ! {done, a}, R end),
        timer:sleep(?OTHER_AFTER_MS),
        B = spawn_caller(fun() -> R = py:call(Ctx, '__main__', b, []), Me ! {done, b}, R end),
        ?assertEqual({ok, 42}, answer(A, ?ANSWER_MS)),
        ?assertEqual({ok, <<"b finished">>}, answer(B, ?ANSWER_MS)),
        ?assertEqual([a, b], [receive {done, X} -> X end || _ <- [1, 2]])
    after
        py:unregister_function(pyport_test_nap),
        stop_ctx(Ctx)
    end.

timeout_in_a_callback_wait_hits_only_its_request() ->
    [{doc, "Request A times out while it waits in erlang.call and another caller's "
           "request B (timeout infinity) is queued: A gets {error, timeout}, B finishes "
           "normally (never RequestTimeout), and the OS process is not killed."}].
timeout_in_a_callback_wait_hits_only_its_request(_Config) ->
    Ctx = start_ctx(#{preload => chain_preload()}),
    ok = py:register_function(pyport_test_nap, fun([Ms]) -> timer:sleep(Ms), napped end),
    try
        #{os_pid := OsPid, restarts := Restarts} = py_context:info(Ctx),
        A = spawn_caller(fun() -> py:call(Ctx, '__main__', a, [?NAP_MS * 3],
                                          #{timeout => ?WAIT_TIMEOUT_MS}) end),
        timer:sleep(?OTHER_AFTER_MS),
        B = spawn_caller(fun() -> py:call(Ctx, '__main__', b, []) end),
        ?assertEqual({error, timeout}, answer(A, ?ANSWER_MS)),
        ?assertEqual({ok, <<"b finished">>}, answer(B, ?ANSWER_MS)),
        ?assertMatch(#{os_pid := OsPid, restarts := Restarts}, py_context:info(Ctx)),
        ?assertEqual({ok, OsPid}, py:eval(Ctx, <<"__import__('os').getpid()">>))
    after
        py:unregister_function(pyport_test_nap),
        stop_ctx(Ctx)
    end.

chain_preload() ->
    iolist_to_binary(["import erlang, time\n"
                      "def a(ms): return erlang.call('pyport_test_nap', ms)\n"
                      "def b():\n"
                      "    time.sleep(", ?OTHER_SLEEP_S, ")\n"
                      "    return 'b finished'\n"]).

interruptible_loop_is_never_killed_under_load() ->
    [{doc, "Under four CPU hogs and a churn of contexts starting and stopping, 500 runs of "
           "`while True: pass` with a 100 ms timeout all end with {error, timeout}; the "
           "context's OS pid never changes and it never restarts (the default kill_after "
           "is never needed), and a value set before the runs is still there after."}].
interruptible_loop_is_never_killed_under_load(_Config) ->
    Ctx = start_ctx(#{}),
    ok = py:exec(Ctx, <<"state = 'kept'">>),
    #{os_pid := OsPid, restarts := Restarts0} = py_context:info(Ctx),
    Hogs = [start_hog() || _ <- lists:seq(1, ?HOGS)],
    Churn = start_churn(),
    try
        Results = [py:exec(Ctx, <<"while True: pass">>, ?TIMEOUT_MS)
                   || _ <- lists:seq(1, ?RUNS)],
        Counts = lists:foldl(fun(R, M) -> maps:update_with(R, fun(N) -> N + 1 end, 1, M) end,
                             #{}, Results),
        ct:log("results: ~p", [Counts]),
        ?assertEqual(#{{error, timeout} => ?RUNS}, Counts),
        #{os_pid := OsPidAfter, restarts := Restarts} = py_context:info(Ctx),
        ?assertEqual(OsPid, OsPidAfter),
        ?assertEqual(Restarts0, Restarts),
        ?assertEqual({ok, <<"kept">>}, py:eval(Ctx, <<"state">>)),
        ?assertEqual({ok, OsPid}, py:eval(Ctx, <<"__import__('os').getpid()">>)),
        ?assert(stop_churn(Churn) > 0)
    after
        [stop_hog(H) || H <- Hogs],
        stop_ctx(Ctx)
    end.

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

%% A shell spinning in a busy loop; {Port, OsPid}.
start_hog() ->
    Port = open_port({spawn_executable, os:find_executable("sh")},
                     [{args, ["-c", "while :; do :; done"]}, exit_status]),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    {Port, OsPid}.

stop_hog({Port, OsPid}) ->
    os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    receive {Port, {exit_status, _}} -> ok after ?CHURN_STOP_MS -> ok end.

%% A process that starts a context, makes one call, stops it, and again, until
%% told to stop; it answers with the number of contexts it went through.
start_churn() ->
    Parent = self(),
    spawn_link(fun() -> churn(Parent, 0) end).

churn(Parent, N) ->
    receive
        {stop, From} -> From ! {churned, self(), N}
    after ?CHURN_PAUSE_MS ->
        Ctx = start_ctx(#{}),
        {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
        stop_ctx(Ctx),
        churn(Parent, N + 1)
    end.

stop_churn(Churn) ->
    Churn ! {stop, self()},
    receive
        {churned, Churn, N} -> N
    after ?CHURN_STOP_MS ->
        ct:fail(churn_did_not_stop)
    end.
