%% How calls find their context: scheduler routing, per-pool and per-process
%% binding, module and module/function pool registrations, named pools started
%% and stopped at run time, get_context/1 by index, and timeouts (routed and
%% explicit) that leave nothing behind in the caller's mailbox.
-module(py_routing_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([scheduler_routing_default/0, scheduler_routing_default/1,
         scheduler_routing_pools/0, scheduler_routing_pools/1,
         bind_per_pool/0, bind_per_pool/1,
         bind_per_process/0, bind_per_process/1,
         register_module/0, register_module/1,
         register_function/0, register_function/1,
         function_registration_wins/0, function_registration_wins/1,
         unregister/0, unregister/1,
         lookup_and_list/0, lookup_and_list/1,
         list_registrations_shape/0, list_registrations_shape/1,
         named_pool_lifecycle/0, named_pool_lifecycle/1,
         start_pool_3/0, start_pool_3/1,
         start_pool_resizes/0, start_pool_resizes/1,
         get_context_by_index/0, get_context_by_index/1,
         routed_timeout/0, routed_timeout/1,
         explicit_timeout/0, explicit_timeout/1,
         queued_request_timeout/0, queued_request_timeout/1,
         timeout_stops_python/0, timeout_stops_python/1,
         sticky_across_schedulers/0, sticky_across_schedulers/1,
         sticky_per_pool/0, sticky_per_pool/1,
         unbind_repicks/0, unbind_repicks/1,
         bind_overrides_implicit/0, bind_overrides_implicit/1,
         dead_binding_repicks/0, dead_binding_repicks/1]).

%% Generous bound for a whole case (pools start, Python sleeps, the sanitizer
%% port is slower).
-define(CASE_TIMEOUT, {minutes, 3}).
%% How long a spawned helper process may take to report back.
-define(HELPER_TIMEOUT, 60000).
%% The timeout given to calls that must time out; the Python side sleeps
%% ?SLEEP_S seconds, well past it.
-define(SHORT_TIMEOUT, 200).
-define(SLEEP_S, 1.5).
%% How long the request that keeps a context busy sleeps: long enough to be
%% seen running and to have another request time out behind it.
-define(BUSY_S, 3).
%% How long the caller's mailbox must stay empty after a timeout: longer than
%% the sleep, so a late reply would have arrived.
-define(QUIET_MS, 2000).
%% Deadline for "eventually" conditions (an OS process gone, a context free).
-define(EVENTUALLY_MS, 10000).
-define(POLL_MS, 50).

-define(GETPID, <<"__import__('os').getpid()">>).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [scheduler_routing_default, scheduler_routing_pools, bind_per_pool, bind_per_process,
     register_module, register_function, function_registration_wins, unregister,
     lookup_and_list, list_registrations_shape, named_pool_lifecycle, start_pool_3,
     start_pool_resizes,
     get_context_by_index, routed_timeout, explicit_timeout, queued_request_timeout,
     timeout_stops_python, sticky_across_schedulers, sticky_per_pool, unbind_repicks,
     bind_overrides_implicit, dead_binding_repicks].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

%% No registration may leak into the next case.
end_per_testcase(_Case, _Config) ->
    [clear_registration(Key) || {Key, _} <- py_context_router:list_pool_registrations()],
    ok.

clear_registration({M, '_'}) -> py_context_router:unregister_pool(M);
clear_registration({M, F}) -> py_context_router:unregister_pool(M, F).

%%% ===========================================================================
%%% Scheduler routing
%%% ===========================================================================

scheduler_routing_default() ->
    [{doc, "A process pinned to scheduler N is served by context ((N-1) rem Size)+1 "
      "of the default pool: get_context/0 names it and its OS process runs the call."}].
scheduler_routing_default(_Config) ->
    Contexts = py_context_router:contexts(default),
    Size = length(Contexts),
    lists:foreach(
      fun(N) ->
              Expected = lists:nth((N - 1) rem Size + 1, Contexts),
              {Ctx, Served, Sqrt} =
                  on_scheduler(N, fun() ->
                                          {py:context(), py:eval(?GETPID),
                                           py:call(math, sqrt, [16])}
                                  end),
              ?assertEqual(Expected, Ctx),
              ?assertEqual({ok, os_pid(Expected)}, Served),
              ?assertEqual({ok, 4.0}, Sqrt)
      end, schedulers()),
    ok.

scheduler_routing_pools() ->
    [{doc, "Scheduler routing in named pools of size 1, 3 and the io pool (4): "
      "py:call(Pool, ...) runs on context ((N-1) rem Size)+1 of that pool."}].
scheduler_routing_pools(_Config) ->
    {ok, [_]} = py_context_router:start_pool(routing_one, 1),
    {ok, [_, _, _]} = py_context_router:start_pool(routing_three, 3),
    try
        lists:foreach(
          fun(Pool) ->
                  Contexts = py_context_router:contexts(Pool),
                  Size = length(Contexts),
                  lists:foreach(
                    fun(N) ->
                            Expected = lists:nth((N - 1) rem Size + 1, Contexts),
                            {Ctx, Served} =
                                on_scheduler(N, fun() ->
                                                        {py_context_router:get_context(Pool),
                                                         py:call(Pool, os, getpid, [])}
                                                end),
                            ?assertEqual({Pool, N, Expected}, {Pool, N, Ctx}),
                            ?assertEqual({Pool, N, {ok, os_pid(Expected)}}, {Pool, N, Served})
                    end, schedulers())
          end, [routing_one, routing_three, io])
    after
        ok = py_context_router:stop_pool(routing_one),
        ok = py_context_router:stop_pool(routing_three)
    end.

%%% ===========================================================================
%%% Implicit binding (sticky routing)
%%% ===========================================================================

sticky_across_schedulers() ->
    [{doc, "A process's first routed call binds it to its scheduler's context: after "
      "py:exec defines names, the process migrates over every scheduler (and back) "
      "and py:eval / py:call('__main__', ...) always meet that namespace, on the "
      "same OS process, although the scheduler's own context differs."}].
sticky_across_schedulers(_Config) ->
    Scheds = at_least_two_schedulers(),
    Contexts = py_context_router:contexts(default),
    First = lists:nth(1, Contexts),
    ?assertNotEqual(First, lists:nth(2, Contexts)),
    on_scheduler(1, fun() ->
        ok = py:exec(<<"x = 41\ndef answer(): return x + 1">>),
        ?assertEqual(First, py:context()),
        lists:foreach(
          fun(N) ->
                  migrate(N),
                  ?assertEqual({N, First}, {N, py:context()}),
                  ?assertEqual({N, {ok, 42}}, {N, py:eval(<<"x + 1">>)}),
                  ?assertEqual({N, {ok, 42}}, {N, py:call('__main__', answer, [])}),
                  ?assertEqual({N, {ok, os_pid(First)}}, {N, py:eval(?GETPID)})
          end, Scheds ++ lists:reverse(Scheds))
    end),
    ok.

sticky_per_pool() ->
    [{doc, "Implicit bindings are per pool: a process bound in default on scheduler 1 "
      "and first routed in io on scheduler 2 keeps each binding when it moves."}].
sticky_per_pool(_Config) ->
    _ = at_least_two_schedulers(),
    [D1 | _] = py_context_router:contexts(default),
    [_, I2 | _] = py_context_router:contexts(io),
    on_scheduler(1, fun() ->
        ?assertEqual({ok, os_pid(D1)}, py:eval(?GETPID)),
        migrate(2),
        ?assertEqual({ok, os_pid(I2)}, py:call(io, os, getpid, [])),
        migrate(1),
        ?assertEqual({ok, os_pid(I2)}, py:call(io, os, getpid, [])),
        ?assertEqual(I2, py_context_router:get_context(io)),
        migrate(2),
        ?assertEqual({ok, os_pid(D1)}, py:eval(?GETPID))
    end),
    ok.

unbind_repicks() ->
    [{doc, "unbind_context/0 drops the implicit binding: the next routed call picks "
      "the context of the scheduler the process is on now, where its names from "
      "before are not defined."}].
unbind_repicks(_Config) ->
    _ = at_least_two_schedulers(),
    [D1, D2 | _] = py_context_router:contexts(default),
    on_scheduler(1, fun() ->
        ok = py:exec(<<"y = 'on one'">>),
        migrate(2),
        ?assertEqual({ok, <<"on one">>}, py:eval(<<"y">>)),
        ?assertEqual(D1, py:context()),
        ok = py_context_router:unbind_context(),
        ?assertMatch({error, {"NameError", _}}, py:eval(<<"y">>)),
        ?assertEqual(D2, py:context()),
        migrate(1),
        ?assertEqual({ok, os_pid(D2)}, py:eval(?GETPID))
    end),
    ok.

bind_overrides_implicit() ->
    [{doc, "bind_context/1 replaces an implicit binding; after unbind_context/0 the "
      "process is routed by its scheduler again and stays there."}].
bind_overrides_implicit(_Config) ->
    [D1, D2 | _] = py_context_router:contexts(default),
    on_scheduler(1, fun() ->
        ?assertEqual({ok, os_pid(D1)}, py:eval(?GETPID)),
        ok = py_context_router:bind_context(D2),
        ?assertEqual({ok, os_pid(D2)}, py:eval(?GETPID)),
        ?assertEqual({ok, os_pid(D2)}, py:call(os, getpid, [])),
        ok = py_context_router:unbind_context(),
        ?assertEqual({ok, os_pid(D1)}, py:eval(?GETPID)),
        ?assertEqual(D1, py:context())
    end),
    ok.

dead_binding_repicks() ->
    [{doc, "A process bound to a context that has stopped is routed again by "
      "scheduler instead of calling a dead process."}].
dead_binding_repicks(_Config) ->
    [D1 | _] = py_context_router:contexts(default),
    on_scheduler(1, fun() ->
        {ok, Own} = py_context:start_link(#{}),
        ok = py_context_router:bind_context(Own),
        ?assertEqual({ok, os_pid(Own)}, py:eval(?GETPID)),
        unlink(Own),
        ok = py_context:stop(Own),
        ?assertEqual({ok, os_pid(D1)}, py:eval(?GETPID)),
        ?assertEqual(D1, py:context())
    end),
    ok.

%%% ===========================================================================
%%% Binding
%%% ===========================================================================

bind_per_pool() ->
    [{doc, "bind_context/1,2 and unbind_context/0,1 act per pool: a binding in "
      "default does not move io calls, and one in io does not move default calls."}].
bind_per_pool(_Config) ->
    [D1, D2 | _] = py_context_router:contexts(default),
    [I1, _, I3 | _] = py_context_router:contexts(io),
    on_scheduler(1, fun() ->
        ok = py_context_router:bind_context(D2),
        ?assertEqual(D2, py:context()),
        ?assertEqual({ok, os_pid(D2)}, py:eval(?GETPID)),
        ?assertEqual(I1, py_context_router:get_context(io)),
        ?assertEqual({ok, os_pid(I1)}, py:call(io, os, getpid, [])),

        ok = py_context_router:bind_context(io, I3),
        ?assertEqual(I3, py_context_router:get_context(io)),
        ?assertEqual({ok, os_pid(I3)}, py:call(io, os, getpid, [])),
        ?assertEqual({ok, os_pid(D2)}, py:eval(?GETPID)),

        ok = py_context_router:unbind_context(),
        ?assertEqual(D1, py:context()),
        ?assertEqual({ok, os_pid(D1)}, py:eval(?GETPID)),
        ?assertEqual({ok, os_pid(I3)}, py:call(io, os, getpid, [])),

        ok = py_context_router:unbind_context(io),
        ?assertEqual({ok, os_pid(I1)}, py:call(io, os, getpid, []))
    end),
    ok.

bind_per_process() ->
    [{doc, "A binding belongs to the process that made it: another process on the "
      "same scheduler is still routed by scheduler."}].
bind_per_process(_Config) ->
    [D1, D2 | _] = py_context_router:contexts(default),
    on_scheduler(1, fun() ->
        ok = py_context_router:bind_context(D2),
        ?assertEqual({ok, os_pid(D2)}, py:eval(?GETPID)),
        Other = on_scheduler(1, fun() -> {py:context(), py:eval(?GETPID)} end),
        ?assertEqual({D1, {ok, os_pid(D1)}}, Other),
        %% The first process is still bound.
        ?assertEqual({ok, os_pid(D2)}, py:eval(?GETPID)),
        ok = py_context_router:unbind_context()
    end),
    ok.

%%% ===========================================================================
%%% Pool registrations
%%% ===========================================================================

register_module() ->
    [{doc, "register_pool(io, Module) routes py:call/3 of every function of Module "
      "to the io pool."}].
register_module(_Config) ->
    Default = [os_pid(C) || C <- py_context_router:contexts(default)],
    ok = py_context_router:register_pool(io, os),
    ?assertEqual(io, py_context_router:lookup_pool(os, getpid)),
    ?assertEqual(io, py_context_router:lookup_pool(os, getcwd)),
    {ok, Served} = on_scheduler(1, fun() -> py:call(os, getpid, []) end),
    ?assertEqual(os_pid(hd(py_context_router:contexts(io))), Served),
    ?assertNot(lists:member(Served, Default)),
    ?assertEqual(default, py_context_router:lookup_pool(math, sqrt)),
    ok.

register_function() ->
    [{doc, "register_pool(io, Module, Func) routes py:call/3 of Module.Func to io "
      "(seen in the io contexts' call counters); other functions stay in default."}].
register_function(_Config) ->
    ok = py_context_router:register_pool(io, math, sqrt),
    ?assertEqual(io, py_context_router:lookup_pool(math, sqrt)),
    ?assertEqual(default, py_context_router:lookup_pool(math, floor)),
    {IoBefore, DefBefore} = {calls(io), calls(default)},
    {ok, 4.0} = py:call(math, sqrt, [16]),
    ?assertEqual({IoBefore + 1, DefBefore}, {calls(io), calls(default)}),
    {ok, 2} = py:call(math, floor, [2.5]),
    ?assertEqual({IoBefore + 1, DefBefore + 1}, {calls(io), calls(default)}),
    ok.

function_registration_wins() ->
    [{doc, "A Module+Func registration wins over a Module registration, whichever "
      "pool each names."}].
function_registration_wins(_Config) ->
    Default = [os_pid(C) || C <- py_context_router:contexts(default)],
    Io = [os_pid(C) || C <- py_context_router:contexts(io)],
    ok = py_context_router:register_pool(io, os),
    ok = py_context_router:register_pool(default, os, getpid),
    ?assertEqual(default, py_context_router:lookup_pool(os, getpid)),
    ?assertEqual(io, py_context_router:lookup_pool(os, getcwd)),
    {ok, P1} = py:call(os, getpid, []),
    ?assert(lists:member(P1, Default)),

    %% Registered the other way round (function first).
    ok = py_context_router:unregister_pool(os),
    ok = py_context_router:unregister_pool(os, getpid),
    ok = py_context_router:register_pool(io, os, getpid),
    ok = py_context_router:register_pool(default, os),
    ?assertEqual(io, py_context_router:lookup_pool(os, getpid)),
    ?assertEqual(default, py_context_router:lookup_pool(os, getcwd)),
    {ok, P2} = py:call(os, getpid, []),
    ?assert(lists:member(P2, Io)),
    ok.

unregister() ->
    [{doc, "unregister_pool/1,2 remove module and module/function registrations: "
      "calls go back to the default pool."}].
unregister(_Config) ->
    Default = [os_pid(C) || C <- py_context_router:contexts(default)],
    ok = py_context_router:register_pool(io, os),
    ok = py_context_router:register_pool(io, math, sqrt),
    ok = py_context_router:unregister_pool(os),
    ?assertEqual(default, py_context_router:lookup_pool(os, getpid)),
    {ok, P} = py:call(os, getpid, []),
    ?assert(lists:member(P, Default)),
    ?assertEqual(io, py_context_router:lookup_pool(math, sqrt)),
    ok = py_context_router:unregister_pool(math, sqrt),
    ?assertEqual(default, py_context_router:lookup_pool(math, sqrt)),
    Before = calls(default),
    {ok, 4.0} = py:call(math, sqrt, [16]),
    ?assertEqual(Before + 1, calls(default)),
    %% Unregistering what is not registered is harmless.
    ok = py_context_router:unregister_pool(os),
    ok = py_context_router:unregister_pool(math, sqrt),
    ok.

lookup_and_list() ->
    [{doc, "lookup_pool/2 takes names as atoms, binaries or strings; "
      "list_pool_registrations/0 shows each registration and forgets removed ones; "
      "init_pool_registry/0 is idempotent and keeps them."}].
lookup_and_list(_Config) ->
    ?assertEqual([], py_context_router:list_pool_registrations()),
    ok = py_context_router:register_pool(io, os),
    ok = py_context_router:register_pool(io, math, sqrt),
    ok = py_context_router:init_pool_registry(),
    ok = py_context_router:init_pool_registry(),
    [?assertEqual(io, py_context_router:lookup_pool(M, F))
     || {M, F} <- [{os, getpid}, {<<"os">>, <<"getpid">>}, {"os", "getpid"},
                   {math, sqrt}, {<<"math">>, <<"sqrt">>}, {"math", "sqrt"}]],
    ?assertEqual(default, py_context_router:lookup_pool("math", "floor")),
    ?assertEqual([{{<<"math">>, <<"sqrt">>}, io}, {{<<"os">>, '_'}, io}],
                 normalised_registrations()),
    ok = py_context_router:unregister_pool(os),
    ?assertEqual([{{<<"math">>, <<"sqrt">>}, io}], normalised_registrations()),
    ok.

list_registrations_shape() ->
    [{doc, "erlang_python compatibility: list_pool_registrations/0 returns "
      "{{Module, Func | '_'}, Pool} with the module and function atoms as registered."}].
list_registrations_shape(_Config) ->
    ok = py_context_router:register_pool(io, os),
    ok = py_context_router:register_pool(io, math, sqrt),
    ?assertEqual([{{math, sqrt}, io}, {{os, '_'}, io}],
                 lists:sort(py_context_router:list_pool_registrations())),
    ok.

%%% ===========================================================================
%%% Named pools
%%% ===========================================================================

named_pool_lifecycle() ->
    [{doc, "start_pool/2 starts a named pool that py:call(Pool, M, F, Args) uses; "
      "starting it again returns the same contexts; stop_pool/1 stops its contexts "
      "and OS processes, and pool_started/1 is then false."}].
named_pool_lifecycle(_Config) ->
    Pool = routing_extra,
    ?assertNot(py_context_router:pool_started(Pool)),
    {ok, Ctxs} = py_context_router:start_pool(Pool, 2),
    ?assertEqual(2, length(Ctxs)),
    ?assertEqual(Ctxs, py_context_router:contexts(Pool)),
    ?assertEqual(2, py_context_router:num_contexts(Pool)),
    true = py_context_router:pool_started(Pool),
    ?assertEqual({ok, Ctxs}, py_context_router:start_pool(Pool, 2)),
    ?assertEqual({ok, 4.0}, py:call(Pool, math, sqrt, [16])),
    OsPids = [os_pid(C) || C <- Ctxs],
    {ok, Served} = py:call(Pool, os, getpid, []),
    ?assert(lists:member(Served, OsPids)),
    ?assert(lists:member(Pool, py_context_router:pools())),

    ok = py_context_router:stop_pool(Pool),
    false = py_context_router:pool_started(Pool),
    ?assertEqual([], py_context_router:contexts(Pool)),
    ?assertEqual(0, py_context_router:num_contexts(Pool)),
    ?assertNot(lists:member(Pool, py_context_router:pools())),
    ?assertEqual([], [C || C <- Ctxs, is_process_alive(C)]),
    [ok = eventually(fun() -> not os_process_exists(P) end) || P <- OsPids],
    ?assertEqual({error, {pool_not_started, Pool}}, py:call(Pool, math, sqrt, [16])),
    %% The other pools are untouched.
    true = py_context_router:pool_started(default),
    true = py_context_router:pool_started(io),
    ok.

start_pool_3() ->
    [{doc, "start_pool/3 takes an erlang_python mode atom (accepted) or a map of "
      "context options (here an OS environment variable the contexts see)."}].
start_pool_3(_Config) ->
    {ok, [_]} = py_context_router:start_pool(routing_mode, 1, worker),
    {ok, [_, _]} = py_context_router:start_pool(routing_opts, 2,
                                                 #{env => [{"PYPORT_ROUTING_MARK", "yes"}]}),
    try
        ?assertEqual({ok, 4.0}, py:call(routing_mode, math, sqrt, [16])),
        ?assertEqual({ok, <<"yes">>},
                     py:call(routing_opts, os, getenv, [<<"PYPORT_ROUTING_MARK">>])),
        ?assertEqual({ok, none}, py:call(routing_mode, os, getenv, [<<"PYPORT_ROUTING_MARK">>])),
        ?assertEqual(1, py_context_router:num_contexts(routing_mode))
    after
        ok = py_context_router:stop_pool(routing_mode),
        ok = py_context_router:stop_pool(routing_opts)
    end.

start_pool_resizes() ->
    [{doc, "start_pool/2,3 of a running pool with another size resizes it (code written "
      "for erlang_python 2.3 starts its io pool with start_pool(io, 10) and gets 10): "
      "growing keeps the first contexts and adds new ones with the pool's options; "
      "shrinking stops the highest indexes, and a process bound to one of them is "
      "routed again."}].
start_pool_resizes(_Config) ->
    Pool = routing_resize,
    {ok, [A, B]} = py_context_router:start_pool(Pool, 2, #{env => [{"PYPORT_RESIZE", "on"}]}),
    try
        {ok, [A, B, C, D]} = py_context_router:start_pool(Pool, 4, worker),
        ?assertEqual(4, py_context_router:num_contexts(Pool)),
        ?assertEqual({ok, <<"on">>}, py:call(D, os, getenv, [<<"PYPORT_RESIZE">>])),
        ?assertEqual(4, length(lists:usort([os_pid(X) || X <- [A, B, C, D]]))),
        DOsPid = os_pid(D),
        Bound = on_scheduler(1, fun() ->
            ok = py_context_router:bind_context(Pool, D),
            {ok, Before} = py:call(Pool, os, getpid, []),
            {ok, [A, B]} = py_context_router:start_pool(Pool, 2),
            {ok, After} = py:call(Pool, os, getpid, []),
            {Before, After, py_context_router:get_context(Pool)}
        end),
        ?assertEqual({DOsPid, os_pid(A), A}, Bound),
        ?assertNot(is_process_alive(C)),
        ?assertNot(is_process_alive(D)),
        ?assertEqual([A, B], py_context_router:contexts(Pool))
    after
        ok = py_context_router:stop_pool(Pool)
    end.

get_context_by_index() ->
    [{doc, "get_context(N) for each N is the N-th context of the default pool, a "
      "distinct context whose own OS process answers."}].
get_context_by_index(_Config) ->
    Contexts = py_context_router:contexts(),
    N = py_context_router:num_contexts(),
    Got = [py_context_router:get_context(I) || I <- lists:seq(1, N)],
    ?assertEqual(Contexts, Got),
    ?assertEqual(N, length(lists:usort(Got))),
    lists:foreach(
      fun({I, Ctx}) ->
              Info = py_context:info(Ctx),
              ?assertEqual({I, default}, {maps:get(index, Info), maps:get(pool, Info)}),
              ?assertEqual({ok, maps:get(os_pid, Info)}, py:eval(Ctx, ?GETPID)),
              ?assertEqual(Ctx, py:context(I))
      end, lists:zip(lists:seq(1, N), Got)),
    ok.

%%% ===========================================================================
%%% Timeouts
%%% ===========================================================================

routed_timeout() ->
    [{doc, "py:call(M, F, A, #{}, Timeout) on a function that sleeps past the "
      "timeout returns {error, timeout}, no message arrives later, and the "
      "context serves the next call."}].
routed_timeout(_Config) ->
    ?assertEqual({error, timeout}, py:call(time, sleep, [?SLEEP_S], #{}, ?SHORT_TIMEOUT)),
    ok = assert_quiet_mailbox(),
    ?assertEqual({ok, 4.0}, py:call(math, sqrt, [16])),
    ok.

explicit_timeout() ->
    [{doc, "Explicit context with #{timeout => T} (call), and eval/exec with a "
      "timeout: {error, timeout}, nothing arrives later, the context still answers."}].
explicit_timeout(_Config) ->
    Ctx = py:context(1),
    ?assertEqual({error, timeout},
                 py:call(Ctx, time, sleep, [?SLEEP_S], #{timeout => ?SHORT_TIMEOUT})),
    ok = assert_quiet_mailbox(),
    ?assertEqual({ok, 4.0}, py:call(Ctx, math, sqrt, [16])),
    Sleep = iolist_to_binary(io_lib:format("__import__('time').sleep(~p)", [?SLEEP_S])),
    ?assertEqual({error, timeout}, py:eval(Ctx, Sleep, #{}, ?SHORT_TIMEOUT)),
    ok = assert_quiet_mailbox(),
    ?assertEqual({error, timeout}, py:exec(Ctx, Sleep, ?SHORT_TIMEOUT)),
    ok = assert_quiet_mailbox(),
    ?assertEqual({ok, 4.0}, py:call(Ctx, math, sqrt, [16], #{timeout => ?EVENTUALLY_MS})),
    ok.

queued_request_timeout() ->
    [{doc, "A request that times out while queued behind a busy one never runs "
      "and its caller receives nothing later."}].
queued_request_timeout(_Config) ->
    Ctx = py:context(1),
    Self = self(),
    Busy = spawn_link(fun() ->
                              Self ! {busy, py:call(Ctx, time, sleep, [?BUSY_S])}
                      end),
    %% The busy request is running once the context reports it as current.
    ok = eventually(fun() -> maps:get(current, py_context:info(Ctx)) =/= idle end),
    ?assertEqual({error, timeout},
                 py:exec(Ctx, <<"ran_after_timeout = True">>, ?SHORT_TIMEOUT)),
    receive {busy, BusyResult} -> ?assertEqual({ok, none}, BusyResult)
    after ?HELPER_TIMEOUT -> error({busy_call_lost, Busy})
    end,
    ok = assert_quiet_mailbox(),
    ?assertMatch({error, {"NameError", _}}, py:eval(Ctx, <<"ran_after_timeout">>)),
    ok.

timeout_stops_python() ->
    [{doc, "A timeout stops the running Python code with erlang.RequestTimeout (seen "
      "by an except clause in the caller's environment) without restarting the "
      "context, and nothing arrives in the mailbox."}].
timeout_stops_python(_Config) ->
    Ctx = py:context(1),
    #{restarts := Restarts, os_pid := OsPid} = py_context:info(Ctx),
    Code = iolist_to_binary(
             io_lib:format("import time~n"
                           "try:~n"
                           "    time.sleep(~p)~n"
                           "except BaseException as e:~n"
                           "    caught = type(e).__module__ + '.' + type(e).__name__~n",
                           [?SLEEP_S])),
    ?assertEqual({error, timeout}, py:exec(Ctx, Code, ?SHORT_TIMEOUT)),
    ?assertEqual({ok, <<"erlang.RequestTimeout">>}, py:eval(Ctx, <<"caught">>)),
    ok = assert_quiet_mailbox(),
    ?assertMatch(#{restarts := Restarts, os_pid := OsPid}, py_context:info(Ctx)),
    ok.

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

schedulers() ->
    lists:seq(1, erlang:system_info(schedulers_online)).

%% Migration between schedulers needs two of them; the default pool has at
%% least two contexts.
at_least_two_schedulers() ->
    case schedulers() of
        [_] -> ct:fail("this case needs at least 2 schedulers online (erl +S 2)");
        Scheds -> Scheds
    end.

%% Moves the calling process to scheduler N.
migrate(N) ->
    process_flag(scheduler, N),
    erlang:yield(),
    N = erlang:system_info(scheduler_id),
    ok.

os_pid(Ctx) ->
    maps:get(os_pid, py_context:info(Ctx)).

%% Requests answered so far by the contexts of Pool.
calls(Pool) ->
    lists:sum([maps:get(calls, py_context:info(C)) || C <- py_context_router:contexts(Pool)]).

normalised_registrations() ->
    lists:sort([{{bin(M), case F of '_' -> '_'; _ -> bin(F) end}, Pool}
                || {{M, F}, Pool} <- py_context_router:list_pool_registrations()]).

bin(A) when is_atom(A) -> atom_to_binary(A, utf8);
bin(B) when is_binary(B) -> B;
bin(L) when is_list(L) -> unicode:characters_to_binary(L).

os_process_exists(OsPid) ->
    filelib:is_dir("/proc/" ++ integer_to_list(OsPid)).

%% Waits ?QUIET_MS, then checks that nothing at all reached the mailbox.
assert_quiet_mailbox() ->
    timer:sleep(?QUIET_MS),
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ok.

eventually(Fun) ->
    eventually(Fun, erlang:monotonic_time(millisecond) + ?EVENTUALLY_MS).

eventually(Fun, Deadline) ->
    case Fun() of
        true -> ok;
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> {error, deadline};
                false -> timer:sleep(?POLL_MS), eventually(Fun, Deadline)
            end
    end.

on_scheduler(Sched, Fun) -> pyport_test:on_scheduler(Sched, Fun, ?HELPER_TIMEOUT).
