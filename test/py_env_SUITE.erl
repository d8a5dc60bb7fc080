%% Process-bound environments: each Erlang process has its own Python globals
%% on a context (named '__main__'), functions defined there are callable by
%% name, eval locals last for one evaluation, and an environment is dropped when
%% its process dies, also for ten thousand short-lived processes.
-module(py_env_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([same_context_own_globals/0, same_context_own_globals/1,
         main_name/0, main_name/1,
         call_defined_function/0, call_defined_function/1,
         eval_locals_once/0, eval_locals_once/1,
         env_dropped_after_death/0, env_dropped_after_death/1,
         env_dropped_death_mid_request/0, env_dropped_death_mid_request/1,
         env_dropped_death_while_queued/0, env_dropped_death_while_queued/1,
         many_short_lived_envs/0, many_short_lived_envs/1]).

%% Generous bound for a whole case (10,000 processes on a loaded 2-core machine,
%% possibly with the sanitizer port).
-define(CASE_TIMEOUT, {minutes, 10}).
%% How long a helper process may take to answer one step.
-define(HELPER_TIMEOUT, 60000).
%% Deadline for a dead process's environment to be dropped.
-define(ENV_DROP_MS, 10000).
%% Deadline for all of the 10,000 environments to be dropped.
-define(MANY_DROP_MS, 60000).
-define(POLL_MS, 100).
%% How long a request keeps the context busy: long enough to be seen running
%% (and to queue another request behind it) by polling py_context:info/1.
-define(BUSY_CODE, <<"import time; time.sleep(2)">>).
%% Short-lived processes and how many run at once.
-define(MANY, 10000).
-define(WAVE, 100).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [same_context_own_globals, main_name, call_defined_function, eval_locals_once,
     env_dropped_after_death, env_dropped_death_mid_request,
     env_dropped_death_while_queued, many_short_lived_envs].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

%%% ===========================================================================
%%% Cases
%%% ===========================================================================

same_context_own_globals() ->
    [{doc, "Two processes exec `x = ...' with different values on the same context; "
      "each reads back its own x, also after the other wrote."}].
same_context_own_globals(_Config) ->
    Ctx = py:context(1),
    A = start_actor(Ctx),
    B = start_actor(Ctx),
    ok = ask(A, {exec, <<"x = 'from a'">>}),
    ok = ask(B, {exec, <<"x = 'from b'">>}),
    ?assertEqual({ok, <<"from a">>}, ask(A, {eval, <<"x">>})),
    ?assertEqual({ok, <<"from b">>}, ask(B, {eval, <<"x">>})),
    ok = ask(A, {exec, <<"x = [1, 2]">>}),
    ?assertEqual({ok, <<"from b">>}, ask(B, {eval, <<"x">>})),
    ?assertEqual({ok, [1, 2]}, ask(A, {eval, <<"x">>})),
    %% The test process itself has yet another environment.
    ?assertMatch({error, {"NameError", _}}, py:eval(Ctx, <<"x">>)),
    stop_actor(A),
    stop_actor(B),
    ok.

main_name() ->
    [{doc, "A process-bound environment is a __main__ namespace: __name__ is "
      "'__main__' there, for eval and for code run by exec."}].
main_name(_Config) ->
    Ctx = py:context(1),
    ?assertEqual({ok, true}, py:eval(Ctx, <<"__name__ == '__main__'">>)),
    ok = py:exec(Ctx, <<"if __name__ == '__main__':\n    ran_as_main = True\n">>),
    ?assertEqual({ok, true}, py:eval(Ctx, <<"ran_as_main">>)),
    ok.

call_defined_function() ->
    [{doc, "A function defined with exec is callable with py:call(Ctx, '__main__', F, "
      "Args) (names as atoms, binaries or strings) and sees the other globals of the "
      "same environment, including later changes."}].
call_defined_function(_Config) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"factor = 3\n"
                        "def scale(v, extra=0):\n"
                        "    return v * factor + extra\n">>),
    ?assertEqual({ok, 15}, py:call(Ctx, '__main__', scale, [5])),
    ?assertEqual({ok, 15}, py:call(Ctx, <<"__main__">>, <<"scale">>, [5])),
    ?assertEqual({ok, 15}, py:call(Ctx, "__main__", "scale", [5])),
    ?assertEqual({ok, 16}, py:call(Ctx, '__main__', scale, [5], #{kwargs => #{extra => 1}})),
    ok = py:exec(Ctx, <<"factor = 10">>),
    ?assertEqual({ok, 50}, py:call(Ctx, '__main__', scale, [5])),
    %% Another process has no such function.
    Other = start_actor(Ctx),
    ?assertMatch({error, {"NameError", _}}, ask(Other, {call, '__main__', scale, [5]})),
    %% Names not in the environment fall back to the builtins.
    ?assertEqual({ok, 2}, py:call(Ctx, '__main__', len, [[a, b]])),
    stop_actor(Other),
    ok.

eval_locals_once() ->
    [{doc, "py:eval(Ctx, Code, Locals) binds the locals for that evaluation only: a "
      "later eval raises NameError, and a global of the same name is untouched."}].
eval_locals_once(_Config) ->
    Ctx = py:context(1),
    ?assertEqual({ok, 3}, py:eval(Ctx, <<"a + b">>, #{a => 1, b => 2})),
    ?assertEqual({ok, 3}, py:eval(Ctx, <<"a + b">>, #{<<"a">> => 1, <<"b">> => 2})),
    ?assertMatch({error, {"NameError", _}}, py:eval(Ctx, <<"a">>)),
    ?assertMatch({error, {"NameError", _}}, py:eval(Ctx, <<"b">>)),
    ok = py:exec(Ctx, <<"a = 100">>),
    ?assertEqual({ok, 3}, py:eval(Ctx, <<"a + b">>, #{a => 1, b => 2})),
    ?assertEqual({ok, 100}, py:eval(Ctx, <<"a">>)),
    ?assertMatch({error, {"NameError", _}}, py:eval(Ctx, <<"b">>)),
    ok.

env_dropped_after_death() ->
    [{doc, "A process's environment exists after its first request (envs goes up by "
      "one) and is dropped after the process dies (envs back to its start value)."}].
env_dropped_after_death(_Config) ->
    {ok, Ctx} = py_context:start_link(#{}),
    Start = envs(Ctx),
    A = start_actor(Ctx),
    ok = ask(A, {exec, <<"y = 1">>}),
    ?assertEqual(Start + 1, envs(Ctx)),
    ok = ask(A, {exec, <<"y = 2">>}),
    ?assertEqual(Start + 1, envs(Ctx)),
    stop_actor(A),
    ?assertEqual(ok, envs_become(Ctx, Start, ?ENV_DROP_MS)),
    ok = py_context:stop(Ctx).

env_dropped_death_mid_request() ->
    [{doc, "A process killed while its request runs: the request finishes, and the "
      "process's environment is dropped all the same."}].
env_dropped_death_mid_request(_Config) ->
    {ok, Ctx} = py_context:start_link(#{}),
    Start = envs(Ctx),
    Pid = spawn(fun() -> py:exec(Ctx, ?BUSY_CODE) end),
    ?assertEqual(ok, until(fun() -> maps:get(current, py_context:info(Ctx)) =/= idle end,
                           ?ENV_DROP_MS)),
    ?assertEqual(ok, until(fun() -> envs(Ctx) =:= Start + 1 end, ?ENV_DROP_MS)),
    exit(Pid, kill),
    ?assertEqual(ok, envs_become(Ctx, Start, ?ENV_DROP_MS)),
    ?assertEqual(ok, until(fun() -> maps:get(current, py_context:info(Ctx)) =:= idle end,
                           ?ENV_DROP_MS)),
    ?assertEqual(Start, envs(Ctx)),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1 + 1">>)),
    ok = py_context:stop(Ctx).

env_dropped_death_while_queued() ->
    [{doc, "A process killed while its first request waits behind a busy one: "
      "its environment, created only when that request runs, is dropped too."}].
env_dropped_death_while_queued(_Config) ->
    {ok, Ctx} = py_context:start_link(#{}),
    Start = envs(Ctx),
    Busy = spawn(fun() -> py:exec(Ctx, ?BUSY_CODE) end),
    ?assertEqual(ok, until(fun() -> maps:get(current, py_context:info(Ctx)) =/= idle end,
                           ?ENV_DROP_MS)),
    Queued = spawn(fun() -> py:exec(Ctx, <<"w = 1">>) end),
    ?assertEqual(ok, until(fun() -> maps:get(queue_len, py_context:info(Ctx)) =:= 2 end,
                           ?ENV_DROP_MS)),
    exit(Queued, kill),
    ?assertEqual(ok, until(fun() -> not is_process_alive(Busy) end, ?ENV_DROP_MS)),
    ?assertEqual(ok, envs_become(Ctx, Start, ?ENV_DROP_MS)),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1 + 1">>)),
    ok = py_context:stop(Ctx).

many_short_lived_envs() ->
    [{doc, "10,000 short-lived processes each exec on one context and exit; every "
      "exec succeeds and the context's envs count returns to its start value."}].
many_short_lived_envs(_Config) ->
    {ok, Ctx} = py_context:start_link(#{}),
    #{envs := Start, calls := Calls0} = py_context:info(Ctx),
    Failures = run_waves(Ctx, ?MANY, []),
    ?assertEqual([], Failures),
    ?assertEqual(ok, envs_become(Ctx, Start, ?MANY_DROP_MS)),
    Info = py_context:info(Ctx),
    ?assertEqual(Calls0 + ?MANY, maps:get(calls, Info)),
    ?assertEqual(0, maps:get(restarts, Info)),
    ?assertEqual(0, maps:get(errors, Info)),
    ok = py_context:stop(Ctx).

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

%% Runs N short-lived processes, ?WAVE at a time; returns the failed results.
run_waves(_Ctx, 0, Failures) ->
    Failures;
run_waves(Ctx, N, Failures) ->
    Wave = min(N, ?WAVE),
    Mons = [spawn_monitor(fun() ->
                                  exit({done, py:exec(Ctx, <<"v = [i for i in range(3)]">>)})
                          end) || _ <- lists:seq(1, Wave)],
    New = [receive
               {'DOWN', Mref, process, Pid, {done, ok}} -> ok;
               {'DOWN', Mref, process, Pid, Reason} -> {failed, Reason}
           after ?HELPER_TIMEOUT -> {failed, timeout}
           end || {Pid, Mref} <- Mons],
    run_waves(Ctx, N - Wave, [R || R <- New, R =/= ok] ++ Failures).

envs(Ctx) ->
    maps:get(envs, py_context:info(Ctx)).

envs_become(Ctx, Expected, Ms) ->
    Deadline = erlang:monotonic_time(millisecond) + Ms,
    envs_become_until(Ctx, Expected, Deadline).

envs_become_until(Ctx, Expected, Deadline) ->
    case envs(Ctx) of
        Expected -> ok;
        Other ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> {still, Other, expected, Expected};
                false -> timer:sleep(?POLL_MS), envs_become_until(Ctx, Expected, Deadline)
            end
    end.

until(Fun, Ms) ->
    until_deadline(Fun, erlang:monotonic_time(millisecond) + Ms).

until_deadline(Fun, Deadline) ->
    case Fun() of
        true -> ok;
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> {error, deadline};
                false -> timer:sleep(?POLL_MS), until_deadline(Fun, Deadline)
            end
    end.

start_actor(Ctx) -> pyport_test:start_actor(Ctx).

ask(Actor, Request) -> pyport_test:ask(Actor, Request, ?HELPER_TIMEOUT).

stop_actor(Actor) -> pyport_test:stop_actor(Actor, ?HELPER_TIMEOUT).
