%% An interruptible timeout never escalates to a kill, even on a loaded machine
%% (issue 15): with four CPU hogs (busy-loop OS processes) and contexts starting
%% and stopping beside it, every one of 500 runs of `while True: pass' with a
%% 100 ms timeout ends with {error, timeout}, and the context keeps its OS process
%% (and so its Python state) throughout.
-module(pyport_interrupt_SUITE).

-import(pyport_test, [start_ctx/1, stop_ctx/1]).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([interruptible_loop_is_never_killed_under_load/0,
         interruptible_loop_is_never_killed_under_load/1]).

%% Runs of the interruptible loop, and the timeout of each.
-define(RUNS, 500).
-define(TIMEOUT_MS, 100).
%% Busy-loop OS processes started beside it (the machine has 2 cores).
-define(HOGS, 4).
%% Pause between two context starts of the churn process.
-define(CHURN_PAUSE_MS, 50).
%% How long the churn process may take to stop its last context.
-define(CHURN_STOP_MS, 30000).

suite() -> [{timetrap, {minutes, 10}}].

all() -> [interruptible_loop_is_never_killed_under_load].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

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
