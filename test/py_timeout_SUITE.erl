%% Timeouts stop the Python work: the running code gets an exception at once; code
%% stuck in C with signals blocked is killed after kill_after and the OS process
%% restarted; a timed-out request that has not started never runs; the context is
%% free again at once and no late reply ever reaches a mailbox.
-module(py_timeout_SUITE).

-import(pyport_test, [start_ctx/1, stop_ctx/1, spawn_caller/1, os_pid_alive/1]).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([timeout_raises_in_python/0, timeout_raises_in_python/1,
         stuck_sleep_killed_after_grace/0, stuck_sleep_killed_after_grace/1,
         stuck_c_call_killed_after_grace/0, stuck_c_call_killed_after_grace/1,
         next_call_after_stuck_timeout_served/0, next_call_after_stuck_timeout_served/1,
         queued_in_port_never_runs/0, queued_in_port_never_runs/1,
         queued_during_restart_never_runs/0, queued_during_restart_never_runs/1,
         no_late_replies/0, no_late_replies/1,
         timeout_in_first_compile_is_not_lost/0, timeout_in_first_compile_is_not_lost/1]).

%% The short timeout the cases give a call that will not finish in time.
-define(SHORT_TIMEOUT, 300).
%% kill_after of the contexts whose Python must not be killed (exception path).
-define(LONG_KILL_AFTER, 60000).
%% kill_after of the contexts whose Python is stuck in C.
-define(SHORT_KILL_AFTER, 500).
%% Timeout of calls that must succeed: far longer than any of the above.
-define(CALL_TIMEOUT, 30000).
%% Deadline for eventual conditions (marker written, restart done).
-define(EVENTUALLY_MS, 20000).
%% How long a call that holds the context busy sleeps (seconds, in Python).
-define(BUSY_S, "1.5").
%% Backoff of the restart during which requests queue in the context process.
-define(SLOW_RESTART_MS, 1500).
%% Rounds of the late-reply race and the duration each call sleeps (ms).
-define(RACE_ROUNDS, 60).
-define(RACE_SLEEP_MS, 30).
%% Timeouts (ms) short enough to land while a fresh context compiles its first
%% code (which imports linecache there).
-define(FIRST_COMPILE_TIMEOUTS, [1, 2, 3, 5, 8, 13]).

suite() -> [{timetrap, {minutes, 5}}].

all() ->
    [timeout_raises_in_python, stuck_sleep_killed_after_grace, stuck_c_call_killed_after_grace,
     next_call_after_stuck_timeout_served, queued_in_port_never_runs,
     queued_during_restart_never_runs, no_late_replies, timeout_in_first_compile_is_not_lost].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

init_per_testcase(Case, Config) ->
    Dir = filename:join(?config(priv_dir, Config), atom_to_list(Case)),
    ok = filelib:ensure_path(Dir),
    [{case_dir, Dir} | Config].

end_per_testcase(_Case, _Config) ->
    ok.

%%% ===========================================================================
%%% Cases
%%% ===========================================================================

timeout_raises_in_python() ->
    [{doc, "On timeout the running Python loop gets an exception at once (its except "
      "BaseException block writes a marker naming erlang.RequestTimeout), the caller gets "
      "{error, timeout}, the next call (made at once) is served and the OS process is not "
      "killed."}].
timeout_raises_in_python(Config) ->
    Marker = filename:join(?config(case_dir, Config), "marker"),
    Ctx = start_ctx(#{kill_after => ?LONG_KILL_AFTER}),
    #{os_pid := OsPid} = py_context:info(Ctx),
    Code = "try:\n"
           "    while True:\n"
           "        pass\n"
           "except BaseException as e:\n"
           "    open(" ++ py_str(Marker) ++ ", 'w').write(type(e).__name__)\n"
           "    raise\n",
    Caller = spawn_caller(fun() ->
                                  Timeout = py_context:exec(Ctx, Code, ?SHORT_TIMEOUT),
                                  Next = py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT),
                                  {Timeout, Next}
                          end),
    ?assertEqual({{error, timeout}, {ok, 2}}, answer(Caller)),
    wait_until(fun() -> file:read_file(Marker) =:= {ok, <<"RequestTimeout">>} end),
    #{os_pid := OsPid, restarts := 0, current := idle} = py_context:info(Ctx),
    ?assertEqual([], mailbox(Caller)),
    stop_ctx(Ctx).

timeout_in_first_compile_is_not_lost() ->
    [{doc, "A timeout whose cancel lands while a fresh context compiles its first code "
      "(the compile imports linecache, Python code in which the cancel is raised) is "
      "not swallowed: `while True: pass' never starts or is stopped, the next call is "
      "served and the OS process is not killed. One fresh context per timeout."}].
timeout_in_first_compile_is_not_lost(_Config) ->
    lists:foreach(
      fun(T) ->
              Ctx = start_ctx(#{kill_after => ?LONG_KILL_AFTER}),
              #{os_pid := OsPid} = py_context:info(Ctx),
              Caller = spawn_caller(
                         fun() ->
                                 First = py_context:exec(Ctx, <<"while True: pass">>, T),
                                 Next = py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT),
                                 {First, Next}
                         end),
              ?assertEqual({T, {{error, timeout}, {ok, 2}}}, {T, answer(Caller)}),
              #{os_pid := OsPid, restarts := 0} = py_context:info(Ctx),
              stop_ctx(Ctx)
      end, ?FIRST_COMPILE_TIMEOUTS).

stuck_sleep_killed_after_grace() ->
    [{doc, "Python stuck in time.sleep with SIGUSR2 and SIGINT blocked ignores the "
      "timeout's exception: after kill_after the OS process is killed and restarted, "
      "the next call is served, no late reply arrives."}].
stuck_sleep_killed_after_grace(_Config) ->
    stuck_killed("import signal, time\n"
                 "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, signal.SIGINT})\n"
                 "time.sleep(60)\n").

stuck_c_call_killed_after_grace() ->
    [{doc, "A pure C call (libc sleep through ctypes) with signals blocked: killed after "
      "kill_after and restarted; the next call is served, no late reply arrives."}].
stuck_c_call_killed_after_grace(_Config) ->
    stuck_killed("import ctypes, signal\n"
                 "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, signal.SIGINT})\n"
                 "ctypes.CDLL(None).sleep(60)\n").

stuck_killed(Code) ->
    Ctx = start_ctx(#{kill_after => ?SHORT_KILL_AFTER}),
    #{os_pid := OldPid} = py_context:info(Ctx),
    _ = py_context:monitor(Ctx),
    Caller = spawn_caller(fun() -> py_context:exec(Ctx, Code, ?SHORT_TIMEOUT) end),
    ?assertMatch({error, timeout}, answer(Caller)),
    receive
        {py_context, Ctx, restarted, Reason} ->
            ?assertMatch({killed, {kill_after, _}}, Reason)
    after ?EVENTUALLY_MS ->
        ct:fail({not_restarted, py_context:info(Ctx)})
    end,
    ?assertEqual(false, os_pid_alive(OldPid)),
    ?assertEqual({ok, 2}, py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT)),
    #{os_pid := NewPid, restarts := 1} = py_context:info(Ctx),
    ?assertNotEqual(OldPid, NewPid),
    ?assertEqual([], mailbox(Caller)),
    stop_ctx(Ctx).

next_call_after_stuck_timeout_served() ->
    [{doc, "The call made right after a stuck call timed out (inside the kill_after "
      "grace) is served: it gets {ok, _}, not an error, and no late reply arrives."}].
next_call_after_stuck_timeout_served(_Config) ->
    Ctx = start_ctx(#{kill_after => ?SHORT_KILL_AFTER}),
    Code = "import signal, time\n"
           "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, signal.SIGINT})\n"
           "time.sleep(60)\n",
    Caller = spawn_caller(fun() ->
                                  {error, timeout} = py_context:exec(Ctx, Code, ?SHORT_TIMEOUT),
                                  py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT)
                          end),
    ?assertEqual({ok, 2}, answer(Caller)),
    ?assertEqual([], mailbox(Caller)),
    stop_ctx(Ctx).

queued_in_port_never_runs() ->
    [{doc, "A request queued behind a sleeping call that times out before it starts is "
      "dropped and never runs: its side effect (a file) never appears, even after later "
      "requests have run."}].
queued_in_port_never_runs(Config) ->
    Marker = filename:join(?config(case_dir, Config), "side_effect"),
    Ctx = start_ctx(#{}),
    Busy = spawn_caller(fun() ->
                                py_context:exec(Ctx, "import time; time.sleep(" ?BUSY_S ")",
                                                ?CALL_TIMEOUT)
                        end),
    wait_until(fun() -> maps:get(current, py_context:info(Ctx)) =/= idle end),
    Side = spawn_caller(fun() ->
                                py_context:exec(Ctx, "open(" ++ py_str(Marker) ++ ", 'w')",
                                                ?SHORT_TIMEOUT)
                        end),
    ?assertEqual({error, timeout}, answer(Side)),
    ?assertEqual(ok, answer(Busy)),
    %% Requests run in order: once a later one has run, the dropped one would have.
    ?assertEqual({ok, 2}, py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT)),
    ?assertEqual(false, filelib:is_file(Marker)),
    ?assertEqual([], mailbox(Side)),
    ?assertEqual([], mailbox(Busy)),
    stop_ctx(Ctx).

queued_during_restart_never_runs() ->
    [{doc, "A request that waits in the context while its OS process restarts, and "
      "times out there, is dropped and never runs on the new process."}].
queued_during_restart_never_runs(Config) ->
    Marker = filename:join(?config(case_dir, Config), "side_effect"),
    Ctx = start_ctx(#{restart => #{min => ?SLOW_RESTART_MS, max => ?SLOW_RESTART_MS,
                                   stable => 600000}}),
    #{os_pid := OldPid} = py_context:info(Ctx),
    _ = py_context:monitor(Ctx),
    os:cmd("kill -KILL " ++ integer_to_list(OldPid)),
    wait_until(fun() -> maps:get(status, py_context:info(Ctx)) =:= down end),
    Side = spawn_caller(fun() ->
                                py_context:exec(Ctx, "open(" ++ py_str(Marker) ++ ", 'w')",
                                                ?SHORT_TIMEOUT)
                        end),
    ?assertEqual({error, timeout}, answer(Side)),
    receive {py_context, Ctx, restarted, _} -> ok
    after ?EVENTUALLY_MS -> ct:fail({not_restarted, py_context:info(Ctx)})
    end,
    ?assertEqual({ok, 2}, py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT)),
    ?assertEqual(false, filelib:is_file(Marker)),
    ?assertEqual([], mailbox(Side)),
    stop_ctx(Ctx).

no_late_replies() ->
    [{doc, "Calls whose timeout races their answer (sleep ~= timeout) end in {ok,_} or "
      "{error, timeout}, never anything else, and no reply arrives after the call returned."}].
no_late_replies(_Config) ->
    Ctx = start_ctx(#{}),
    Sleep = io_lib:format("import time; time.sleep(~f)", [?RACE_SLEEP_MS / 1000]),
    Caller = spawn_caller(
               fun() ->
                       [py_context:exec(Ctx, Sleep, ?RACE_SLEEP_MS + (I rem 3) - 1)
                        || I <- lists:seq(1, ?RACE_ROUNDS)]
               end),
    Results = answer(Caller),
    ct:pal("~b ok, ~b timeout", [length([R || R <- Results, R =:= ok]),
                                 length([R || R <- Results, R =:= {error, timeout}])]),
    ?assertEqual([], [R || R <- Results, R =/= ok, R =/= {error, timeout}]),
    %% Let any straggler arrive before looking, and make sure the context is idle.
    ?assertEqual({ok, 2}, py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT)),
    wait_until(fun() -> maps:get(queue_len, py_context:info(Ctx)) =:= 0 end),
    ?assertEqual([], mailbox(Caller)),
    stop_ctx(Ctx).

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

py_str(S) -> "r'" ++ S ++ "'".

answer(Pid) -> pyport_test:answer(Pid, ?CALL_TIMEOUT + ?EVENTUALLY_MS).

mailbox(Pid) -> pyport_test:mailbox(Pid, ?EVENTUALLY_MS).

wait_until(Fun) -> pyport_test:wait_until(Fun, ?EVENTUALLY_MS).
