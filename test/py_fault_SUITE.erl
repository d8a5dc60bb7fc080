%% Crash isolation: a segfault, abort(), os._exit or kill -KILL in one context ends
%% only that context's OS process. Calls in flight get `context_died' at once, the
%% py_context pid survives and starts a new OS process with backoff, the router and
%% the other contexts never notice, and a crash loop backs off and logs quietly.
-module(py_fault_SUITE).

-import(pyport_test, [start_ctx/1, stop_ctx/1, spawn_caller/1, wait_until/2]).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([segfault_isolated/0, segfault_isolated/1,
         abort_isolated/0, abort_isolated/1,
         os_exit_isolated/0, os_exit_isolated/1,
         sigkill_isolated/0, sigkill_isolated/1,
         calls_during_restart_are_served/0, calls_during_restart_are_served/1,
         crash_loop_backs_off/0, crash_loop_backs_off/1,
         crash_loop_logs_once_per_reason/0, crash_loop_logs_once_per_reason/1,
         concurrent_segfault/0, concurrent_segfault/1,
         concurrent_abort/0, concurrent_abort/1,
         concurrent_os_exit/0, concurrent_os_exit/1,
         concurrent_sigkill/0, concurrent_sigkill/1,
         info_right_after_death/0, info_right_after_death/1,
         call_right_after_sigkill/0, call_right_after_sigkill/1,
         crash_dump_goes_to_logger/0, crash_dump_goes_to_logger/1]).
%% logger handler callback (the test captures warnings with it)
-export([log/2]).

%% A call in flight on a dying context carries this timeout; its answer must come
%% long before it.
-define(CALL_TIMEOUT, 30000).
%% How soon "at once" must be: well under CALL_TIMEOUT, generous for a loaded host.
-define(AT_ONCE_MS, 10000).
%% Deadline for eventual conditions (restart done, counters moved, files seen).
-define(EVENTUALLY_MS, 20000).
%% Bystander calls are spaced by this much.
-define(BYSTANDER_PAUSE_MS, 5).
%% Concurrent callers per crash.
-define(CALLERS, 64).
%% Answers the hammered context must give after its restart before the callers stop.
-define(CALLS_AFTER_RESTART, 200).
%% Backoff settings of the crash-loop case (ms): lower bounds the test can check.
-define(LOOP_MIN_MS, 200).
-define(LOOP_MAX_MS, 3200).
%% Crashes the crash-loop cases wait for.
-define(LOOP_CRASHES, 7).
%% Deaths provoked by the death-window cases.
-define(DEATH_ROUNDS, 10).
%% info/1 calls made right after each death.
-define(INFOS_AFTER_DEATH, 20).
%% Backoff of the "calls wait during restart" case: long enough to queue calls.
-define(SLOW_RESTART_MS, 1500).

suite() -> [{timetrap, {minutes, 5}}].

all() ->
    [segfault_isolated, abort_isolated, os_exit_isolated, sigkill_isolated,
     calls_during_restart_are_served, crash_loop_backs_off, crash_loop_logs_once_per_reason,
     concurrent_segfault, concurrent_abort, concurrent_os_exit, concurrent_sigkill,
     info_right_after_death, call_right_after_sigkill, crash_dump_goes_to_logger].

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
    _ = py_context_router:stop_pool(fault_pool),
    _ = logger:remove_handler(?MODULE),
    ok.

%%% ===========================================================================
%%% One crash, in flight, with a bystander context
%%% ===========================================================================

segfault_isolated() ->
    [{doc, "ctypes.string_at(0) kills only the victim's OS process: every call in flight "
      "gets {context_died, {signal,'SIGSEGV'}} well before its timeout, the context pid "
      "survives with a new os_pid, the router still routes to it, the other context "
      "never notices."}].
segfault_isolated(Config) ->
    isolated_crash(Config, {code, "import ctypes; ctypes.string_at(0)"},
                   fun(R) -> R =:= {signal, 'SIGSEGV'} end).

abort_isolated() ->
    [{doc, "os.abort() kills only the victim: in-flight calls get "
      "{context_died, {signal,'SIGABRT'}} at once; the context restarts, others unaffected."}].
abort_isolated(Config) ->
    isolated_crash(Config, {code, "import os; os.abort()"},
                   fun(R) -> R =:= {signal, 'SIGABRT'} end).

os_exit_isolated() ->
    [{doc, "os._exit(3) ends only the victim: in-flight calls get "
      "{context_died, {exit, 3}} at once; the context restarts, others unaffected."}].
os_exit_isolated(Config) ->
    isolated_crash(Config, {code, "import os; os._exit(3)"},
                   fun({exit, 3}) -> true; ({exit, 3, _}) -> true; (_) -> false end).

sigkill_isolated() ->
    [{doc, "kill -KILL of the victim's OS process (what the OOM killer does): in-flight "
      "calls get {context_died, {signal,'SIGKILL'}} at once; restart; others unaffected."}].
sigkill_isolated(Config) ->
    isolated_crash(Config, kill9, fun(R) -> R =:= {signal, 'SIGKILL'} end).

%% The common body: a pool of two contexts, the first one crashes while one call
%% runs on it (waiting for a go file) and three more are queued behind it.
isolated_crash(Config, How, ReasonOk) ->
    Dir = ?config(case_dir, Config),
    {ok, [Victim, Other]} = py_context_router:start_pool(fault_pool, 2, #{}),
    #{os_pid := OldPid, restarts := 0} = py_context:info(Victim),
    #{os_pid := OtherPid, restarts := OtherRestarts} = py_context:info(Other),
    _ = py_context:monitor(Victim),
    Bystander = start_bystander(Other),
    Go = filename:join(Dir, "go"),
    Wait = "import os, time\n"
           "while not os.path.exists(" ++ py_str(Go) ++ "):\n"
           "    time.sleep(0.01)\n",
    First = case How of
                {code, Crash} -> Wait ++ Crash ++ "\n";
                kill9 -> Wait ++ "time.sleep(60)\n"
            end,
    Runner = spawn_caller(fun() -> py_context:exec(Victim, First, ?CALL_TIMEOUT) end),
    wait_until(fun() -> maps:get(current, py_context:info(Victim)) =/= idle end),
    Queued = [spawn_caller(fun() -> py_context:eval(Victim, <<"40 + 2">>, #{}, ?CALL_TIMEOUT) end)
              || _ <- lists:seq(1, 3)],
    wait_until(fun() -> maps:get(queue_len, py_context:info(Victim)) =:= 4 end),
    T0 = now_ms(),
    ok = file:write_file(Go, <<>>),
    case How of
        kill9 -> os:cmd("kill -KILL " ++ integer_to_list(OldPid));
        _ -> ok
    end,
    Answers = [answer(P, ?AT_ONCE_MS) || P <- [Runner | Queued]],
    [begin
         ?assertMatch({error, {context_died, _}}, R),
         {error, {context_died, Reason}} = R,
         ?assert(ReasonOk(Reason)),
         ?assert(T - T0 < ?AT_ONCE_MS)
     end || {R, T} <- Answers],
    {error, {context_died, Reason}} = element(1, hd(Answers)),
    receive
        {py_context, Victim, restarted, Why} -> ?assertEqual(Reason, Why)
    after ?EVENTUALLY_MS ->
        ct:fail({no_restarted_message, py_context:info(Victim)})
    end,
    %% The same pid serves, from a new OS process, and the router still routes to it.
    ?assert(is_process_alive(Victim)),
    ?assertMatch({ok, 42}, py_context:eval(Victim, <<"40 + 2">>, #{}, ?CALL_TIMEOUT)),
    #{os_pid := NewPid, restarts := 1} = py_context:info(Victim),
    ?assertNotEqual(OldPid, NewPid),
    ?assertEqual({ok, NewPid}, py_context:call(Victim, os, getpid, [], #{}, ?CALL_TIMEOUT)),
    ?assertEqual([Victim, Other], py_context_router:contexts(fault_pool)),
    ok = py_context_router:bind_context(fault_pool, Victim),
    ?assertEqual({ok, NewPid}, py:call(fault_pool, os, getpid, [])),
    ok = py_context_router:unbind_context(fault_pool),
    %% The other context never noticed.
    {BystanderCalls, BystanderBad} = stop_bystander(Bystander),
    ?assertEqual([], BystanderBad),
    ?assert(BystanderCalls > 0),
    ?assertMatch(#{os_pid := OtherPid, restarts := OtherRestarts}, py_context:info(Other)),
    %% No caller got a second (late) message.
    [?assertEqual([], mailbox(P)) || P <- [Runner | Queued]],
    ok.

%%% ===========================================================================
%%% Restart behaviour
%%% ===========================================================================

calls_during_restart_are_served() ->
    [{doc, "Calls that arrive while the context restarts its OS process wait (up to "
      "their timeout) and are then served by the new process."}].
calls_during_restart_are_served(_Config) ->
    Ctx = start_ctx(#{restart => #{min => ?SLOW_RESTART_MS, max => ?SLOW_RESTART_MS,
                                   stable => 600000}}),
    #{os_pid := OldPid} = py_context:info(Ctx),
    _ = py_context:monitor(Ctx),
    os:cmd("kill -KILL " ++ integer_to_list(OldPid)),
    wait_until(fun() -> maps:get(os_pid, py_context:info(Ctx)) =/= OldPid end),
    %% Either down (waiting out the backoff) or already starting: not yet ready.
    #{status := Status} = py_context:info(Ctx),
    ?assert(lists:member(Status, [down, starting])),
    Callers = [spawn_caller(fun() -> py_context:call(Ctx, os, getpid, [], #{}, ?CALL_TIMEOUT) end)
               || _ <- lists:seq(1, 5)],
    Answers = [R || {R, _} <- [answer(P, ?CALL_TIMEOUT + ?AT_ONCE_MS) || P <- Callers]],
    receive {py_context, Ctx, restarted, Why} -> ?assertEqual({signal, 'SIGKILL'}, Why)
    after ?EVENTUALLY_MS -> ct:fail(no_restarted_message)
    end,
    #{os_pid := NewPid, status := ready} = py_context:info(Ctx),
    ?assertEqual([{ok, NewPid} || _ <- Callers], Answers),
    [?assertEqual([], mailbox(P)) || P <- Callers],
    stop_ctx(Ctx).

crash_loop_backs_off() ->
    [{doc, "A context whose new OS processes keep dying backs off: the restart "
      "timestamps seen through py_context:monitor/1 space out at least by the doubling "
      "backoff, and the context serves again once the cause is gone."}].
crash_loop_backs_off(Config) ->
    {Ctx, Flag} = crash_loop_ctx(Config),
    _ = py_context:monitor(Ctx),
    ok = file:write_file(Flag, <<>>),
    {error, {context_died, {exit, 3}}} = py_context:exec(Ctx, "import os; os._exit(3)",
                                                         ?CALL_TIMEOUT),
    Stamps = restart_stamps(Ctx, ?LOOP_CRASHES),
    ok = file:delete(Flag),
    Intervals = intervals(Stamps),
    ct:pal("restart intervals (ms): ~p", [Intervals]),
    %% Restart k+1 waited at least the backoff after death k+1: min * 2^k, capped.
    Expected = [min(?LOOP_MAX_MS, ?LOOP_MIN_MS bsl K) || K <- lists:seq(1, length(Intervals))],
    [?assert(I >= E) || {I, E} <- lists:zip(Intervals, Expected)],
    %% And it serves again once the cause is gone.
    wait_until(fun() -> py_context:eval(Ctx, <<"1">>, #{}, ?CALL_TIMEOUT) =:= {ok, 1} end,
               ?EVENTUALLY_MS + ?LOOP_MAX_MS),
    stop_ctx(Ctx).

crash_loop_logs_once_per_reason() ->
    [{doc, "In a crash loop with one unchanging reason, the 'OS process died' warning "
      "is logged once per change of reason, not once per attempt."}].
crash_loop_logs_once_per_reason(Config) ->
    ok = logger:add_handler(?MODULE, ?MODULE, #{level => all, config => #{pid => self()}}),
    {Ctx, Flag} = crash_loop_ctx(Config),
    Name = maps:get(name, py_context:info(Ctx)),
    _ = py_context:monitor(Ctx),
    ok = file:write_file(Flag, <<>>),
    {error, {context_died, {exit, 3}}} = py_context:exec(Ctx, "import os; os._exit(3)",
                                                         ?CALL_TIMEOUT),
    Reasons = [R || {R, _} <- restart_reasons(Ctx, ?LOOP_CRASHES)],
    ok = file:delete(Flag),
    wait_until(fun() -> py_context:eval(Ctx, <<"1">>, #{}, ?CALL_TIMEOUT) =:= {ok, 1} end,
               ?EVENTUALLY_MS + ?LOOP_MAX_MS),
    #{restarts := Restarts} = py_context:info(Ctx),
    ?assert(Restarts >= ?LOOP_CRASHES),
    ok = logger:remove_handler(?MODULE),
    Warnings = [M || M <- logged(), string:find(M, "OS process died") =/= nomatch,
                     string:find(M, Name) =/= nomatch],
    ct:pal("~b deaths, reasons ~p~nwarnings:~n~p", [Restarts, Reasons, Warnings]),
    Changes = length(dedup(Reasons)),
    ?assertEqual(Changes, length(Warnings)),
    stop_ctx(Ctx).

%% A context whose new OS processes die 1 s after start (os._exit(3) from a thread
%% started by sitecustomize) while the flag file exists.
crash_loop_ctx(Config) ->
    Data = ?config(data_dir, Config),
    Flag = filename:join(?config(case_dir, Config), "crash"),
    Ctx = start_ctx(#{env => [{"PYTHONPATH", Data}, {"PYPORT_TEST_CRASH_FLAG", Flag}],
                      restart => #{min => ?LOOP_MIN_MS, max => ?LOOP_MAX_MS,
                                   stable => 600000}}),
    ?assertEqual({ok, true}, py_context:eval(Ctx, <<"__import__('sitecustomize').PYPORT_TEST">>,
                                             #{}, ?CALL_TIMEOUT)),
    {Ctx, Flag}.

restart_stamps(Ctx, N) -> [T || {_, T} <- restart_reasons(Ctx, N)].

restart_reasons(_Ctx, 0) ->
    [];
restart_reasons(Ctx, N) ->
    receive
        {py_context, Ctx, restarted, Reason} ->
            [{Reason, now_ms()} | restart_reasons(Ctx, N - 1)]
    after ?EVENTUALLY_MS + ?LOOP_MAX_MS ->
        ct:fail({restarts_missing, N, py_context:info(Ctx)})
    end.

intervals([A, B | Rest]) -> [B - A | intervals([B | Rest])];
intervals(_) -> [].

dedup([A, A | Rest]) -> dedup([A | Rest]);
dedup([A | Rest]) -> [A | dedup(Rest)];
dedup([]) -> [].

%%% ===========================================================================
%%% Crashes under 64 concurrent callers
%%% ===========================================================================

concurrent_segfault() ->
    [{doc, "A segfault while 64 processes call the context: every call gets exactly one "
      "answer ({ok,_} or context_died), no mailbox holds a stray message, it serves again."}].
concurrent_segfault(_Config) ->
    concurrent_crash({code, "import ctypes; ctypes.string_at(0)"}, {signal, 'SIGSEGV'}).

concurrent_abort() ->
    [{doc, "os.abort() under 64 concurrent callers: exactly one answer per call, clean "
      "mailboxes, the context serves again."}].
concurrent_abort(_Config) ->
    concurrent_crash({code, "import os; os.abort()"}, {signal, 'SIGABRT'}).

concurrent_os_exit() ->
    [{doc, "os._exit(3) under 64 concurrent callers: exactly one answer per call, clean "
      "mailboxes, the context serves again."}].
concurrent_os_exit(_Config) ->
    concurrent_crash({code, "import os; os._exit(3)"}, {exit, 3}).

concurrent_sigkill() ->
    [{doc, "kill -KILL under 64 concurrent callers: exactly one answer per call, clean "
      "mailboxes, the context serves again."}].
concurrent_sigkill(_Config) ->
    concurrent_crash(kill9, {signal, 'SIGKILL'}).

concurrent_crash(How, Reason) ->
    Ctx = start_ctx(#{}),
    #{os_pid := OldPid} = py_context:info(Ctx),
    _ = py_context:monitor(Ctx),
    Parent = self(),
    Workers = [spawn(fun() -> hammer(Ctx, Parent) end) || _ <- lists:seq(1, ?CALLERS)],
    [receive {started, W} -> ok after ?EVENTUALLY_MS -> ct:fail(worker_not_started) end
     || W <- Workers],
    Trigger = case How of
                  {code, Code} ->
                      %% The crash comes after a pause, so that the other callers'
                      %% requests are queued behind it when it happens (the port
                      %% outpaces 64 callers: otherwise none may be in flight).
                      Crash = ["import time; time.sleep(0.2)\n", Code],
                      [spawn_caller(fun() -> py_context:exec(Ctx, Crash, ?CALL_TIMEOUT) end)];
                  kill9 ->
                      os:cmd("kill -KILL " ++ integer_to_list(OldPid)),
                      []
              end,
    [?assertMatch({{error, {context_died, Reason}}, _}, answer(P, ?CALL_TIMEOUT + ?AT_ONCE_MS))
     || P <- Trigger],
    receive {py_context, Ctx, restarted, Why} -> ?assertEqual(Reason, Why)
    after ?EVENTUALLY_MS -> ct:fail({no_restart, py_context:info(Ctx)})
    end,
    #{calls := Calls0} = py_context:info(Ctx),
    wait_until(fun() -> maps:get(calls, py_context:info(Ctx)) >= Calls0 + ?CALLS_AFTER_RESTART end),
    [W ! stop || W <- Workers],
    Reports = [receive {report, W, Counts} -> Counts
               after ?CALL_TIMEOUT + ?AT_ONCE_MS -> ct:fail(worker_silent)
               end || W <- Workers],
    Oks = lists:sum([O || {O, _, _} <- Reports]),
    Died = lists:sum([D || {_, D, _} <- Reports]),
    Others = lists:append([X || {_, _, X} <- Reports]),
    ct:pal("~p: ~b ok, ~b context_died, others ~p", [Reason, Oks, Died, Others]),
    ?assertEqual([], Others),
    ?assert(Died >= 1),
    ?assert(Oks >= ?CALLS_AFTER_RESTART),
    [?assertEqual([], mailbox(W)) || W <- Workers ++ Trigger],
    #{os_pid := NewPid} = py_context:info(Ctx),
    ?assertNotEqual(OldPid, NewPid),
    ?assertEqual({ok, 2}, py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT)),
    stop_ctx(Ctx).

%% Calls the context in a loop until told to stop; counts the answers by kind.
hammer(Ctx, Parent) ->
    {ok, 2} = py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT),
    Parent ! {started, self()},
    hammer(Ctx, Parent, 1, 0, []).

hammer(Ctx, Parent, Oks, Died, Others) ->
    receive
        stop ->
            Parent ! {report, self(), {Oks, Died, lists:reverse(Others)}},
            report_mailbox()
    after 0 ->
        case py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT) of
            {ok, 2} -> hammer(Ctx, Parent, Oks + 1, Died, Others);
            {error, {context_died, _}} -> hammer(Ctx, Parent, Oks, Died + 1, Others);
            Other -> hammer(Ctx, Parent, Oks, Died, [Other | Others])
        end
    end.

%%% ===========================================================================
%%% The window between the OS process's death and the context noticing it
%%% ===========================================================================

info_right_after_death() ->
    [{doc, "info/1 asked right after the OS process died (before the context has seen "
      "its exit) answers, and the context process survives; ten fresh contexts."}].
info_right_after_death(_Config) ->
    [begin
         Ctx = start_ctx(#{}),
         ok = py_context:kill(Ctx),
         Infos = [py_context:info(Ctx) || _ <- lists:seq(1, ?INFOS_AFTER_DEATH)],
         ?assertEqual(?INFOS_AFTER_DEATH, length([I || #{restarts := _} = I <- Infos])),
         ?assert(is_process_alive(Ctx)),
         stop_ctx(Ctx)
     end || _ <- lists:seq(1, ?DEATH_ROUNDS)],
    ok.

call_right_after_sigkill() ->
    [{doc, "A call made right after kill -KILL of the OS process (its request may meet a "
      "dead pipe) is answered well before its timeout: {ok,_} from the new process or "
      "{context_died, {signal,'SIGKILL'}}; the context restarts; ten fresh contexts."}].
call_right_after_sigkill(_Config) ->
    [begin
         Ctx = start_ctx(#{}),
         _ = py_context:monitor(Ctx),
         #{os_pid := OsPid} = py_context:info(Ctx),
         os:cmd("kill -KILL " ++ integer_to_list(OsPid)),
         T0 = now_ms(),
         R = py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT),
         ct:pal("round ~b: ~p after ~b ms", [Round, R, now_ms() - T0]),
         ?assert(now_ms() - T0 < ?AT_ONCE_MS),
         ?assert(lists:member(R, [{ok, 2}, {error, {context_died, {signal, 'SIGKILL'}}}])),
         receive {py_context, Ctx, restarted, Why} -> ?assertEqual({signal, 'SIGKILL'}, Why)
         after ?EVENTUALLY_MS -> ct:fail({no_restart, Round, py_context:info(Ctx)})
         end,
         ?assertEqual({ok, 2}, py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT)),
         stop_ctx(Ctx)
     end || Round <- lists:seq(1, ?DEATH_ROUNDS)],
    ok.

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

%% A process that calls Other in a loop until stopped; reports calls and bad answers.
start_bystander(Other) ->
    Parent = self(),
    spawn(fun() -> bystander(Other, Parent, 0, []) end).

bystander(Ctx, Parent, N, Bad) ->
    receive
        {stop, From} -> From ! {bystander, self(), N, Bad}
    after ?BYSTANDER_PAUSE_MS ->
        case py_context:eval(Ctx, <<"6 * 7">>, #{}, ?CALL_TIMEOUT) of
            {ok, 42} -> bystander(Ctx, Parent, N + 1, Bad);
            Other -> bystander(Ctx, Parent, N + 1, [Other | Bad])
        end
    end.

stop_bystander(Pid) ->
    Pid ! {stop, self()},
    receive {bystander, Pid, N, Bad} -> {N, Bad}
    after ?CALL_TIMEOUT + ?AT_ONCE_MS -> ct:fail(bystander_silent)
    end.

%% Runs Fun in a new process, which sends {answer, Pid, Result, Time} and then
%% stays alive to report what else reached its mailbox (see mailbox/1).
report_mailbox() ->
    receive
        {mailbox, From} ->
            {messages, Ms} = process_info(self(), messages),
            From ! {mailbox, self(), Ms}
    end.

%% The messages that reached a caller after its answer (should be none).
now_ms() -> erlang:monotonic_time(millisecond).

py_str(S) -> "r'" ++ S ++ "'".

%% logger handler: forwards each formatted message (and, with `meta' in its
%% config, the metadata too) to the test process.
log(#{msg := Msg} = Event, #{config := #{pid := Pid} = Config}) ->
    Text = case Msg of
               {report, R} -> io_lib:format("~0p", [R]);
               {string, S} -> S;
               {Format, Args} -> io_lib:format(Format, Args)
           end,
    case Config of
        #{meta := true} -> Pid ! {logged, unicode:characters_to_list(Text), maps:get(meta, Event)};
        _ -> Pid ! {logged, unicode:characters_to_list(Text)}
    end,
    ok.

logged() ->
    receive {logged, M} -> [M | logged()]
    after 0 -> []
    end.

answer(Pid, Timeout) -> pyport_test:answer_at(Pid, Timeout).

mailbox(Pid) -> pyport_test:mailbox(Pid, ?EVENTUALLY_MS).

wait_until(Fun) -> pyport_test:wait_until(Fun, ?EVENTUALLY_MS).

crash_dump_goes_to_logger() ->
    [{doc, "A segfault's faulthandler dump (Fatal Python error and the Python stack) goes "
      "to logger as an error naming the context and the dead OS pid, with the whole dump "
      "kept in a file named by the crash_dump metadata."}].
crash_dump_goes_to_logger(Config) ->
    Dir = filename:join(?config(case_dir, Config), "crashes"),
    Ctx = start_ctx(#{crash_dir => Dir}),
    #{os_pid := OsPid, name := Name} = py_context:info(Ctx),
    ok = logger:add_handler(?MODULE, ?MODULE,
                            #{level => all, config => #{pid => self(), meta => true}}),
    {error, {context_died, {signal, 'SIGSEGV'}}} =
        py_context:exec(Ctx, "import ctypes\ndef crash_here(): ctypes.string_at(0)\ncrash_here()",
                        ?CALL_TIMEOUT),
    {Text, Meta} = receive_crash_report(OsPid),
    ok = logger:remove_handler(?MODULE),
    ?assertNotEqual(nomatch, string:find(Text, "Fatal Python error: Segmentation fault")),
    ?assertNotEqual(nomatch, string:find(Text, "crash_here")),
    ?assertMatch(#{pyport_context := Name, os_pid := OsPid}, Meta),
    {ok, Dump} = file:read_file(maps:get(crash_dump, Meta)),
    ?assertNotEqual(nomatch, binary:match(Dump, <<"crash_here">>)),
    ?assertEqual(filename:dirname(maps:get(crash_dump, Meta)), Dir),
    stop_ctx(Ctx).

receive_crash_report(OsPid) ->
    receive
        {logged, Text, #{os_pid := OsPid} = Meta} -> {Text, Meta};
        {logged, _, _} -> receive_crash_report(OsPid)
    after ?EVENTUALLY_MS ->
        ct:fail(no_crash_report)
    end.
