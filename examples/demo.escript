#!/usr/bin/env escript
%% A short tour of pyport (make demo): contexts, process-bound environments,
%% a crash contained, and a timeout that really stops a runaway loop.
%% Usage: demo.escript APP_DIR
-mode(compile).

main([AppDir]) ->
    true = code:add_patha(filename:join(AppDir, "ebin")),
    logger:set_primary_config(level, error),   % keep the tour readable
    {ok, _} = application:ensure_all_started(pyport),
    title("1. Contexts: each is an OS process running CPython"),
    [begin
         #{os_pid := OsPid, python_version := V, name := Name} = py_context:info(Ctx),
         say("~ts  os pid ~p  Python ~ts", [Name, OsPid, V])
     end || Ctx <- py_context_router:contexts(default)],
    show("py:call(math, sqrt, [16])", py:call(math, sqrt, [16])),

    title("2. Process-bound environments: one namespace per Erlang process"),
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"counter = 0">>),
    ok = py:exec(Ctx, <<"counter += 1">>),
    show("this process: counter", py:eval(Ctx, <<"counter">>)),
    Self = self(),
    spawn(fun() -> Self ! {other, py:eval(Ctx, <<"counter">>)} end),
    receive {other, Other} -> show("another process, same context: counter", Other) end,

    title("3. A segfault kills one OS process, never the node"),
    #{os_pid := Before} = py_context:info(Ctx),
    show("ctypes.string_at(0)", py:exec(Ctx, <<"import ctypes; ctypes.string_at(0)">>)),
    #{os_pid := After, restarts := Restarts} = wait_restarted(Ctx, 0),
    say("same handle ~p, new os pid ~p (was ~p), restarts ~p", [Ctx, After, Before, Restarts]),
    show("and it answers again", py:call(Ctx, math, factorial, [20])),

    title("4. A timeout stops the Python work"),
    T0 = erlang:monotonic_time(millisecond),
    show("while True: pass   (timeout 500 ms)",
         py:exec(Ctx, <<"while True: pass">>, 500)),
    show("next call", py:eval(Ctx, <<"'served after ' + str(1 + 1) + ' tries'">>)),
    say("both within ~p ms", [erlang:monotonic_time(millisecond) - T0]),
    T1 = erlang:monotonic_time(millisecond),
    #{restarts := R1} = py_context:info(Ctx),
    show("stuck in C with signals blocked   (timeout 500 ms, kill_after 2000 ms)",
         py:exec(Ctx, <<"import signal, time\n"
                        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, signal.SIGINT})\n"
                        "time.sleep(60)">>, 500)),
    #{restarts := R2} = wait_restarted(Ctx, R1),
    show("next call (the OS process was killed and restarted)", py:call(Ctx, math, sqrt, [2])),
    say("restarts now ~p, ~p ms in all", [R2, erlang:monotonic_time(millisecond) - T1]),

    title("5. Python calls back into Erlang"),
    ok = py:register_function(double, fun([X]) -> 2 * X end),
    ok = py:exec(Ctx, <<"import erlang\ndef process(n): return erlang.call('double', n) + 1">>),
    show("process(10) through Erlang", py:call(Ctx, '__main__', process, [10])),
    application:stop(pyport),
    io:format("~nDone.~n").

wait_restarted(Ctx, Before) ->
    case py_context:info(Ctx) of
        #{restarts := R, status := ready} = Info when R > Before -> Info;
        _ -> timer:sleep(50), wait_restarted(Ctx, Before)
    end.

title(T) -> io:format("~n== ~ts~n", [T]).
say(F, A) -> io:format("   " ++ F ++ "~n", A).
show(What, Result) -> io:format("   ~ts~n     -> ~tp~n", [What, Result]).
