%% Operator control of a context: interrupt/1, info/1 (every field, cheap while
%% busy), kill/1, graceful restart/1, monitor/1, and contexts as ordinary workers
%% in supervision trees (the app's pools and a user's own supervisor).
-module(py_control_SUITE).

-import(pyport_test, [start_ctx/1, stop_ctx/1, spawn_caller/1, os_pid_alive/1]).
-behaviour(supervisor).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([interrupt_raises_keyboard_interrupt/0, interrupt_raises_keyboard_interrupt/1,
         info_identity_fields/0, info_identity_fields/1,
         info_counters/0, info_counters/1,
         info_current_and_queue/0, info_current_and_queue/1,
         info_envs/0, info_envs/1,
         info_cheap_while_busy/0, info_cheap_while_busy/1,
         kill_answers_in_flight/0, kill_answers_in_flight/1,
         restart_loses_nothing/0, restart_loses_nothing/1,
         monitor_delivers_restarted/0, monitor_delivers_restarted/1,
         pool_contexts_are_workers/0, pool_contexts_are_workers/1,
         child_spec_in_own_supervisor/0, child_spec_in_own_supervisor/1]).
%% supervisor callback for child_spec_in_own_supervisor
-export([init/1]).

%% Timeout of calls that must succeed.
-define(CALL_TIMEOUT, 30000).
%% Deadline for eventual conditions.
-define(EVENTUALLY_MS, 20000).
%% Python sleep (s) of a call that keeps the context busy while the test looks.
-define(LONG_SLEEP_S, 30).
%% info/1 calls made in a row while Python is busy.
-define(INFO_ROUNDS, 100).
%% Concurrent calls around a graceful restart, and what each one sleeps (s).
-define(RESTART_CALLS, 200).
-define(RESTART_CALL_SLEEP, "0.002").
%% Bytes the RSS check allocates and keeps.
-define(BIG_ALLOC, 200000000).

suite() -> [{timetrap, {minutes, 5}}].

all() ->
    [interrupt_raises_keyboard_interrupt, info_identity_fields, info_counters,
     info_current_and_queue, info_envs, info_cheap_while_busy, kill_answers_in_flight,
     restart_loses_nothing, monitor_delivers_restarted, pool_contexts_are_workers,
     child_spec_in_own_supervisor].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

%%% ===========================================================================
%%% interrupt
%%% ===========================================================================

interrupt_raises_keyboard_interrupt() ->
    [{doc, "py_context:interrupt/1 raises KeyboardInterrupt in the code running now: "
      "that call gets {error, {\"KeyboardInterrupt\", _}}; an idle interrupt is harmless."}].
interrupt_raises_keyboard_interrupt(_Config) ->
    Ctx = start_ctx(#{}),
    ok = py_context:interrupt(Ctx),
    ?assertEqual({ok, 2}, py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT)),
    Caller = spawn_caller(fun() -> long_sleep(Ctx) end),
    wait_busy(Ctx),
    ok = py_context:interrupt(Ctx),
    ?assertMatch({error, {"KeyboardInterrupt", _}}, answer(Caller)),
    ?assertEqual({ok, 2}, py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT)),
    #{restarts := 0} = py_context:info(Ctx),
    ?assertEqual([], mailbox(Caller)),
    stop_ctx(Ctx).

%%% ===========================================================================
%%% info
%%% ===========================================================================

info_identity_fields() ->
    [{doc, "info/1: os_pid is the Python process's pid, rss_bytes its resident memory "
      "(grows when Python keeps 200 MB), python_version Python's own version string, "
      "uptime_ms grows."}].
info_identity_fields(_Config) ->
    Ctx = start_ctx(#{}),
    #{os_pid := OsPid, rss_bytes := Rss0, python_version := Version, uptime_ms := Up0} =
        py_context:info(Ctx),
    ?assertEqual({ok, OsPid}, py_context:call(Ctx, os, getpid, [], #{}, ?CALL_TIMEOUT)),
    ?assert(filelib:is_dir("/proc/" ++ integer_to_list(OsPid))),
    {ok, PyVersion} = py_context:call(Ctx, platform, python_version, [], #{}, ?CALL_TIMEOUT),
    ?assertEqual(PyVersion, Version),
    ?assert(is_integer(Rss0) andalso Rss0 > 0),
    ?assert(is_integer(Up0) andalso Up0 >= 0),
    ok = py_context:exec(Ctx, io_lib:format("big = bytearray(~b)", [?BIG_ALLOC]), ?CALL_TIMEOUT),
    #{rss_bytes := Rss1} = py_context:info(Ctx),
    ?assert(Rss1 - Rss0 >= ?BIG_ALLOC div 2),
    wait_until(fun() -> maps:get(uptime_ms, py_context:info(Ctx)) > Up0 end),
    stop_ctx(Ctx).

info_counters() ->
    [{doc, "info/1: calls counts answered requests, errors counts Python exceptions, "
      "restarts counts new OS processes."}].
info_counters(_Config) ->
    Ctx = start_ctx(#{}),
    #{calls := C0, errors := E0, restarts := 0} = py_context:info(Ctx),
    [{ok, _} = py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT) || _ <- lists:seq(1, 3)],
    #{calls := C1, errors := E0} = py_context:info(Ctx),
    ?assertEqual(C0 + 3, C1),
    ?assertMatch({error, {"ZeroDivisionError", _}}, py_context:eval(Ctx, <<"1 / 0">>, #{},
                                                                   ?CALL_TIMEOUT)),
    #{calls := C2, errors := E1} = py_context:info(Ctx),
    ?assertEqual(E0 + 1, E1),
    ?assert(C2 >= C1),
    ok = py_context:kill(Ctx),
    wait_until(fun() -> maps:get(restarts, py_context:info(Ctx)) =:= 1 end),
    stop_ctx(Ctx).

info_current_and_queue() ->
    [{doc, "info/1 while a call sleeps: current names the calling pid, the operation and "
      "a growing running time; queue_len counts the running and the queued requests; "
      "both go back to idle / 0."}].
info_current_and_queue(_Config) ->
    Ctx = start_ctx(#{}),
    #{current := idle, queue_len := 0} = py_context:info(Ctx),
    Caller = spawn_caller(fun() -> long_sleep(Ctx) end),
    wait_busy(Ctx),
    #{current := #{caller := Caller, op := Op, running_ms := Ms0}} = py_context:info(Ctx),
    ?assertEqual(call, Op),
    wait_until(fun() ->
                       #{current := #{running_ms := Ms}} = py_context:info(Ctx),
                       Ms > Ms0
               end),
    Queued = [spawn_caller(fun() -> py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT) end)
              || _ <- lists:seq(1, 3)],
    wait_until(fun() -> maps:get(queue_len, py_context:info(Ctx)) =:= 4 end),
    ok = py_context:interrupt(Ctx),
    ?assertMatch({error, {"KeyboardInterrupt", _}}, answer(Caller)),
    [?assertEqual({ok, 2}, answer(P)) || P <- Queued],
    wait_until(fun() -> maps:get(queue_len, py_context:info(Ctx)) =:= 0 end),
    #{current := idle} = py_context:info(Ctx),
    stop_ctx(Ctx).

info_envs() ->
    [{doc, "info/1: envs counts the process-bound environments: one per calling process, "
      "and one fewer when such a process exits."}].
info_envs(_Config) ->
    Ctx = start_ctx(#{}),
    #{envs := 0} = py_context:info(Ctx),
    Callers = [spawn_caller(fun() -> py_context:exec(Ctx, "x = 1", ?CALL_TIMEOUT) end)
               || _ <- lists:seq(1, 3)],
    [?assertEqual(ok, answer(P)) || P <- Callers],
    wait_until(fun() -> maps:get(envs, py_context:info(Ctx)) =:= 3 end),
    [?assertEqual([], mailbox(P)) || P <- Callers],   %% they exit after reporting
    wait_until(fun() -> maps:get(envs, py_context:info(Ctx)) =:= 0 end),
    stop_ctx(Ctx).

info_cheap_while_busy() ->
    [{doc, "info/1 answers 100 times in a row while a long Python call runs, each time "
      "showing that call as current."}].
info_cheap_while_busy(_Config) ->
    Ctx = start_ctx(#{}),
    Caller = spawn_caller(fun() -> long_sleep(Ctx) end),
    wait_busy(Ctx),
    Infos = [py_context:info(Ctx) || _ <- lists:seq(1, ?INFO_ROUNDS)],
    ?assertEqual(?INFO_ROUNDS, length([I || #{current := #{caller := C}} = I <- Infos,
                                            C =:= Caller])),
    ok = py_context:interrupt(Ctx),
    ?assertMatch({error, {"KeyboardInterrupt", _}}, answer(Caller)),
    stop_ctx(Ctx).

%%% ===========================================================================
%%% kill, restart, monitor
%%% ===========================================================================

kill_answers_in_flight() ->
    [{doc, "kill/1 ends the OS process at once: the running and the queued calls get "
      "{context_died, {killed, requested}}; the context restarts with a new os_pid."}].
kill_answers_in_flight(_Config) ->
    Ctx = start_ctx(#{}),
    #{os_pid := OldPid} = py_context:info(Ctx),
    Running = spawn_caller(fun() -> long_sleep(Ctx) end),
    wait_busy(Ctx),
    Queued = spawn_caller(fun() -> py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT) end),
    wait_until(fun() -> maps:get(queue_len, py_context:info(Ctx)) =:= 2 end),
    ok = py_context:kill(Ctx),
    ?assertEqual({error, {context_died, {killed, requested}}}, answer(Running)),
    ?assertEqual({error, {context_died, {killed, requested}}}, answer(Queued)),
    ?assertEqual({ok, 2}, py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT)),
    #{os_pid := NewPid, restarts := 1} = py_context:info(Ctx),
    ?assertNotEqual(OldPid, NewPid),
    [?assertEqual([], mailbox(P)) || P <- [Running, Queued]],
    stop_ctx(Ctx).

restart_loses_nothing() ->
    [{doc, "restart/1 is graceful: of 200 concurrent calls around it every caller gets "
      "{ok, _}; the old OS process answers what it had, the new one the rest."}].
restart_loses_nothing(_Config) ->
    Ctx = start_ctx(#{}),
    #{os_pid := OldPid} = py_context:info(Ctx),
    Code = <<"__import__('time').sleep(" ?RESTART_CALL_SLEEP ") or __import__('os').getpid()">>,
    Call = fun() -> py_context:eval(Ctx, Code, #{}, ?CALL_TIMEOUT) end,
    Half = ?RESTART_CALLS div 2,
    First = [spawn_caller(Call) || _ <- lists:seq(1, Half)],
    wait_until(fun() -> maps:get(calls, py_context:info(Ctx)) >= Half div 4 end),
    ok = py_context:restart(Ctx),
    Second = [spawn_caller(Call) || _ <- lists:seq(1, ?RESTART_CALLS - Half)],
    Answers = [answer(P) || P <- First ++ Second],
    ?assertEqual([], [A || A <- Answers, not is_ok(A)]),
    #{os_pid := NewPid, restarts := Restarts} = py_context:info(Ctx),
    ?assertNotEqual(OldPid, NewPid),
    ?assert(Restarts >= 1),
    ?assert(lists:member({ok, OldPid}, Answers)),
    ?assert(lists:member({ok, NewPid}, Answers)),
    [?assertEqual([], mailbox(P)) || P <- First ++ Second],
    stop_ctx(Ctx).

monitor_delivers_restarted() ->
    [{doc, "monitor/1 delivers {py_context, Ctx, restarted, Reason} for a kill and a "
      "graceful restart; after demonitor/2 nothing more arrives."}].
monitor_delivers_restarted(_Config) ->
    Ctx = start_ctx(#{}),
    Ref = py_context:monitor(Ctx),
    ok = py_context:kill(Ctx),
    receive {py_context, Ctx, restarted, R1} -> ?assertEqual({killed, requested}, R1)
    after ?EVENTUALLY_MS -> ct:fail(no_restarted_after_kill)
    end,
    ok = py_context:restart(Ctx),
    receive {py_context, Ctx, restarted, R2} -> ?assertEqual({restart, requested}, R2)
    after ?EVENTUALLY_MS -> ct:fail(no_restarted_after_restart)
    end,
    ok = py_context:demonitor(Ctx, Ref),
    ok = py_context:kill(Ctx),
    wait_until(fun() -> maps:get(restarts, py_context:info(Ctx)) =:= 3 end),
    ?assertEqual({ok, 2}, py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT)),
    receive {py_context, Ctx, restarted, R3} -> ct:fail({after_demonitor, R3})
    after 0 -> ok
    end,
    stop_ctx(Ctx).

%%% ===========================================================================
%%% Supervision
%%% ===========================================================================

pool_contexts_are_workers() ->
    [{doc, "The pools' contexts are ordinary workers: under py_pools_sup each pool has a "
      "supervisor whose children are the router's contexts, type worker, modules py_context and py_context_server."}].
pool_contexts_are_workers(_Config) ->
    PoolSups = [{Id, Pid} || {Id, Pid, supervisor, _} <- supervisor:which_children(py_pools_sup)],
    ?assertMatch({_, _}, lists:keyfind({pool, default}, 1, PoolSups)),
    [begin
         Children = supervisor:which_children(Sup),
         Ctxs = py_context_router:contexts(Pool),
         ?assert(length(Ctxs) > 0),
         ?assertEqual(lists:sort(Ctxs),
                      lists:sort([P || {_, P, worker, [py_context, py_context_server]} <- Children])),
         ?assertEqual(length(Children), length(Ctxs))
     end || {{pool, Pool}, Sup} <- PoolSups].

child_spec_in_own_supervisor() ->
    [{doc, "py_context:child_spec/1 puts a context in a user's supervisor; when its Erlang "
      "process is killed the supervisor starts a new one that serves, and the old OS "
      "process exits."}].
child_spec_in_own_supervisor(_Config) ->
    {ok, Sup} = supervisor:start_link(?MODULE, py_context:child_spec(#{id => my_ctx})),
    [{my_ctx, Ctx, worker, [py_context, py_context_server]}] = supervisor:which_children(Sup),
    #{os_pid := OldOsPid} = py_context:info(Ctx),
    ?assertEqual({ok, 2}, py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT)),
    exit(Ctx, kill),
    wait_until(fun() ->
                       case supervisor:which_children(Sup) of
                           [{my_ctx, New, worker, _}] -> is_pid(New) andalso New =/= Ctx;
                           _ -> false
                       end
               end),
    [{my_ctx, Ctx2, worker, [py_context, py_context_server]}] = supervisor:which_children(Sup),
    ?assertEqual({ok, 2}, py_context:eval(Ctx2, <<"1 + 1">>, #{}, ?CALL_TIMEOUT)),
    wait_until(fun() -> not os_pid_alive(OldOsPid) end),
    ok = gen_server:stop(Sup).

%% @private supervisor callback: one child, the given spec.
init(ChildSpec) ->
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10}, [ChildSpec]}}.

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

long_sleep(Ctx) ->
    py_context:call(Ctx, time, sleep, [?LONG_SLEEP_S], #{}, ?CALL_TIMEOUT + ?LONG_SLEEP_S * 1000).

wait_busy(Ctx) ->
    wait_until(fun() -> is_map(maps:get(current, py_context:info(Ctx))) end).

is_ok({ok, _}) -> true;
is_ok(_) -> false.

answer(Pid) -> pyport_test:answer(Pid, ?CALL_TIMEOUT + ?LONG_SLEEP_S * 1000 + ?EVENTUALLY_MS).

mailbox(Pid) -> pyport_test:mailbox(Pid, ?EVENTUALLY_MS).

wait_until(Fun) -> pyport_test:wait_until(Fun, ?EVENTUALLY_MS).
