%% Python cannot exhaust the node: new atoms from Python data are capped per
%% context (max_atoms, over the context's whole life, restarts included) on every
%% path that decodes Python data.
-module(py_budget_SUITE).

-import(pyport_test, [start_ctx/1, stop_ctx/1, wait_until/2]).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([a_million_atoms_stay_within_budget/0, a_million_atoms_stay_within_budget/1,
         every_path_is_under_the_budget/0, every_path_is_under_the_budget/1,
         budget_survives_restarts/0, budget_survives_restarts/1,
         existing_atoms_cost_nothing/0, existing_atoms_cost_nothing/1]).

%% The budget of the per-path case (each path tries more than this).
-define(SMALL_BUDGET, 300).
%% New atoms each path tries.
-define(PER_PATH, 1000).
%% A call that must be answered on a loaded host is given this much.
-define(CALL_TIMEOUT, 60000).
%% Deadline for eventual conditions.
-define(EVENTUALLY_MS, 20000).

suite() -> [{timetrap, {minutes, 5}}].

all() ->
    [a_million_atoms_stay_within_budget, every_path_is_under_the_budget,
     budget_survives_restarts, existing_atoms_cost_nothing].

init_per_suite(Config) ->
    application:load(pyport),
    application:set_env(pyport, start_pools, false),
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport),
    application:unset_env(pyport, start_pools).

a_million_atoms_stay_within_budget() ->
    [{doc, "Python tries 1,000,000 new atoms (a returned list of erlang.atom values): the "
      "call fails with a clear error, nothing crashes, and the node's atom count grows "
      "by at most the default budget."}].
a_million_atoms_stay_within_budget(_Config) ->
    Ctx = start_ctx(#{}),
    #{max_atoms := Max} = py_context:info(Ctx),
    ?assert(is_integer(Max)),
    Before = erlang:system_info(atom_count),
    R = py:eval(Ctx, <<"[__import__('erlang').atom('pyport_budget_million_%d' % i) "
                       "for i in range(1000000)]">>, #{}, ?CALL_TIMEOUT),
    ?assertMatch({error, _}, R),
    Grew = erlang:system_info(atom_count) - Before,
    ct:log("result ~P; atom table grew by ~b (budget ~b)", [R, 8, Grew, Max]),
    ?assert(Grew =< Max),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1+1">>)),
    stop_ctx(Ctx).

every_path_is_under_the_budget() ->
    [{doc, "Returned values, erlang.send payloads, erlang.call arguments (to a registered "
      "and to an unknown name), erlang.Term bytes, shared-state keys and stream items all "
      "draw on one budget: together they create at most max_atoms new atoms."}].
every_path_is_under_the_budget(_Config) ->
    Ctx = start_ctx(#{max_atoms => ?SMALL_BUDGET}),
    py:register_function(sink, fun(_) -> ok end),
    Sink = spawn(fun() -> receive never -> ok end end),
    {ok, _} = py:eval(Ctx, <<"globals().__setitem__('sink', p)">>, #{p => Sink}),
    Before = erlang:system_info(atom_count),
    N = integer_to_binary(?PER_PATH),
    Atoms = fun(Tag) ->
                    <<"[erlang.atom('pyport_budget_", Tag/binary, "_%d' % i) for i in range(",
                      N/binary, ")]">>
            end,
    Each = fun(Tag, Stmt) ->
                   <<"import erlang\nfor a in ", (Atoms(Tag))/binary, ":\n"
                     "    try: ", Stmt/binary, "\n    except Exception: pass">>
           end,
    Execs = [{send, Each(<<"send">>, <<"erlang.send(sink, a)">>)},
             {call, Each(<<"call">>, <<"erlang.call('sink', a)">>)},
             {unknown, Each(<<"unknown">>, <<"erlang.call('no_such_function', a)">>)},
             {state, Each(<<"state">>, <<"erlang.state_set(a, 1)">>)}],
    Evals = [{return, <<"__import__('erlang') and ", (Atoms(<<"ret">>))/binary>>},
             {term, <<"[__import__('erlang').Term(b'\\x83w' + bytes([len(s)]) + s.encode()) "
                      "for s in ['pyport_budget_term_%d' % i for i in range(", N/binary, ")]]">>}],
    [ct:log("~p: ~P", [Name, py:exec(Ctx, Code, ?CALL_TIMEOUT), 6]) || {Name, Code} <- Execs],
    [ct:log("~p: ~P", [Name, py:eval(Ctx, <<"(lambda erlang: ", Code/binary, ")(__import__('erlang'))">>,
                                      #{}, ?CALL_TIMEOUT), 6]) || {Name, Code} <- Evals],
    {ok, Ref} = py:stream_start(builtins, iter,
                                [[]], #{context => Ctx}),
    _ = py:stream_cancel(Ref),
    Stream = py_stream:collect(
               py_stream:start_eval(Ctx, <<"(__import__('erlang').atom('pyport_budget_stream_%d' % i) "
                                           "for i in range(", N/binary, "))">>, #{}, #{}),
               ?CALL_TIMEOUT, []),
    ct:log("stream: ~P", [Stream, 6]),
    Grew = erlang:system_info(atom_count) - Before,
    ct:log("atom table grew by ~b (budget ~b)", [Grew, ?SMALL_BUDGET]),
    ?assert(Grew =< ?SMALL_BUDGET),
    ?assertMatch(#{atoms := Used} when Used =< ?SMALL_BUDGET, py_context:info(Ctx)),
    py:unregister_function(sink),
    exit(Sink, kill),
    stop_ctx(Ctx).

budget_survives_restarts() ->
    [{doc, "The budget counts over the context's life: after its OS process is killed and "
      "restarted, what was used stays used."}].
budget_survives_restarts(_Config) ->
    Ctx = start_ctx(#{max_atoms => 100}),
    {ok, L1} = py:eval(Ctx, <<"[__import__('erlang').atom('pyport_budget_life_a%d' % i) "
                              "for i in range(60)]">>),
    ?assertEqual(60, length(L1)),
    ok = py_context:kill(Ctx),
    wait_until(fun() -> maps:get(status, py_context:info(Ctx)) =:= ready end, ?EVENTUALLY_MS),
    ?assertMatch(#{atoms := 60}, py_context:info(Ctx)),
    ?assertMatch({error, _}, py:eval(Ctx, <<"[__import__('erlang').atom('pyport_budget_life_b%d' % i) "
                                            "for i in range(60)]">>)),
    ?assertMatch(#{atoms := A} when A =< 100, py_context:info(Ctx)),
    stop_ctx(Ctx).

existing_atoms_cost_nothing() ->
    [{doc, "Atoms that already exist in the node cost nothing: a context with a budget of "
      "0 still returns ok, true and the names of loaded modules as atoms."}].
existing_atoms_cost_nothing(_Config) ->
    Ctx = start_ctx(#{max_atoms => 0}),
    ?assertEqual({ok, [ok, true, lists, kernel]},
                 py:eval(Ctx, <<"[__import__('erlang').atom(s) for s in "
                                "('ok', 'true', 'lists', 'kernel')]">>)),
    ?assertMatch(#{atoms := 0}, py_context:info(Ctx)),
    stop_ctx(Ctx).
