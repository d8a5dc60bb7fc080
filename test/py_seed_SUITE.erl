%% Every code example of the user guide "Context Affinity"
%% (shared/seeds/context-affinity.md) and of the py_context_router reference
%% (shared/seeds/py_context_router.txt), run as written against the real port:
%% one case per example, the example's own calls and match patterns first, then
%% the checks that make it a test.
-module(py_seed_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([explicit_contexts/0, explicit_contexts/1,
         multiple_independent_contexts/0, multiple_independent_contexts/1,
         binding/0, binding/1,
         scoped_binding/0, scoped_binding/1,
         scoped_binding_unbinds_on_error/0, scoped_binding_unbinds_on_error/1,
         py_context_0_1/0, py_context_0_1/1,
         bind_unbind/0, bind_unbind/1,
         get_context_0_1/0, get_context_0_1/1,
         stateful_computation/0, stateful_computation/1,
         database_connections/0, database_connections/1,
         incremental_processing/0, incremental_processing/1,
         scheduler_affinity/0, scheduler_affinity/1,
         pool_statistics/0, pool_statistics/1,
         error_handling/0, error_handling/1,
         error_handling_not_started/0, error_handling_not_started/1,
         router_start_when_started/0, router_start_when_started/1,
         router_usage/0, router_usage/1,
         router_register_pool/0, router_register_pool/1]).

%% Generous bound for a whole case: contexts start and answer on a loaded
%% 2-core machine, possibly under the address sanitizer.
-define(CASE_TIMEOUT, {minutes, 3}).
%% How long the one-off python3 that pickles the model may take.
-define(PICKLE_TIMEOUT, 60000).
%% How long a spawned helper process may take to report back.
-define(HELPER_TIMEOUT, 60000).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [explicit_contexts, multiple_independent_contexts, binding, scoped_binding,
     scoped_binding_unbinds_on_error, py_context_0_1, bind_unbind, get_context_0_1,
     stateful_computation, database_connections, incremental_processing,
     scheduler_affinity, pool_statistics, error_handling, router_start_when_started,
     router_usage, router_register_pool,
     %% Last: it stops and restarts the default pool.
     error_handling_not_started].

%% The stateful-computation example opens 'model.pkl' relative to the context's
%% working directory and unpickles a seedmodel.Model, so every context starts in
%% the data directory with it on sys.path.
init_per_suite(Config) ->
    DataDir = ?config(data_dir, Config),
    ok = pickle_model(DataDir),
    ok = pyport_test:load_app(),
    ok = application:set_env(pyport, context_opts,
                             #{cd => DataDir, python_path => [DataDir]}),
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport),
    ok = application:unset_env(pyport, context_opts),
    ok.

%%% ===========================================================================
%%% Using Explicit Contexts
%%% ===========================================================================

explicit_contexts() ->
    [{doc, "Explicit context: a counter defined with exec keeps its value across "
      "exec/eval calls on py:context(1)."}].
explicit_contexts(_Config) ->
    %% Get a specific context by index (1-based)
    Ctx = py:context(1),

    %% Now all calls to this context share state
    ok = py:exec(Ctx, <<"counter = 0">>),
    ok = py:exec(Ctx, <<"counter += 1">>),
    {ok, 1} = py:eval(Ctx, <<"counter">>),

    ok = py:exec(Ctx, <<"counter += 1">>),
    {ok, 2} = py:eval(Ctx, <<"counter">>),
    ok.

multiple_independent_contexts() ->
    [{doc, "Multiple independent contexts: the same name holds a different value "
      "in py:context(1) and py:context(2)."}].
multiple_independent_contexts(_Config) ->
    %% Get two different contexts
    Ctx1 = py:context(1),
    Ctx2 = py:context(2),

    %% Each context has its own namespace
    ok = py:exec(Ctx1, <<"x = 'context one'">>),
    ok = py:exec(Ctx2, <<"x = 'context two'">>),

    %% Values are isolated
    {ok, <<"context one">>} = py:eval(Ctx1, <<"x">>),
    {ok, <<"context two">>} = py:eval(Ctx2, <<"x">>),

    ?assertNotEqual(Ctx1, Ctx2),
    ok.

%%% ===========================================================================
%%% Binding Contexts to Processes
%%% ===========================================================================

binding() ->
    [{doc, "Binding: after bind_context(get_context()) the routed py:exec/py:eval "
      "share state; unbind_context/0 returns ok."}].
binding(_Config) ->
    %% Get a context
    Ctx = py_context_router:get_context(),

    %% Bind it to the current process
    ok = py_context_router:bind_context(Ctx),

    %% Now all py:call/eval/exec from this process use the bound context
    ok = py:exec(<<"x = 42">>),
    {ok, 42} = py:eval(<<"x">>),

    %% Unbind when done
    ok = py_context_router:unbind_context(),

    %% The bound context is the one that holds x.
    {ok, 42} = py:eval(Ctx, <<"x">>),
    ok.

%% As written in the guide.
run_with_context(Fun) ->
    Ctx = py_context_router:get_context(),
    ok = py_context_router:bind_context(Ctx),
    try
        Fun()
    after
        py_context_router:unbind_context()
    end.

scoped_binding() ->
    [{doc, "Scoped binding with try/after: run_with_context/1 sums range(10) to 45 "
      "on one bound context, and the binding is gone afterwards."}].
scoped_binding(_Config) ->
    %% Usage
    Result = run_with_context(fun() ->
        ok = py:exec(<<"total = 0">>),
        ok = py:exec(<<"for i in range(10): total += i">>),
        py:eval(<<"total">>)
    end),
    {ok, 45} = Result,

    %% The binding is gone: on another scheduler the caller gets that
    %% scheduler's context again.
    bound_only_inside(fun(F) -> run_with_context(F) end, fun() -> ok end).

scoped_binding_unbinds_on_error() ->
    [{doc, "Scoped binding with try/after: when the function raises, the exception "
      "reaches the caller and the binding is still removed."}].
scoped_binding_unbinds_on_error(_Config) ->
    Raise = fun() ->
                    ok = py:exec(<<"total = 0">>),
                    error(seed_failure)
            end,
    ?assertError(seed_failure, run_with_context(Raise)),
    bound_only_inside(fun(F) -> catch run_with_context(F) end,
                      fun() -> error(seed_failure) end).

%% Runs `Run(Fun)' in a process pinned to scheduler 1 (so run_with_context
%% binds context 1), then moves that process to scheduler 2: an unbound
%% process must now get context 2.
bound_only_inside(Run, Fun) ->
    case erlang:system_info(schedulers_online) of
        N when N < 2 ->
            {skip, "needs two schedulers to tell a bound context from a routed one"};
        _ ->
            Ctx1 = py_context_router:get_context(1),
            Ctx2 = py_context_router:get_context(2),
            {InsideCtx, AfterCtx} =
                on_scheduler(1, fun() ->
                                        Self = self(),
                                        _ = Run(fun() ->
                                                        Self ! {inside,
                                                                py_context_router:get_context()},
                                                        Fun()
                                                end),
                                        Inside = receive {inside, C} -> C end,
                                        process_flag(scheduler, 2),
                                        erlang:yield(),
                                        2 = erlang:system_info(scheduler_id),
                                        {Inside, py_context_router:get_context()}
                                end),
            ?assertEqual(Ctx1, InsideCtx),
            ?assertEqual(Ctx2, AfterCtx),
            ok
    end.

%%% ===========================================================================
%%% Context API Reference
%%% ===========================================================================

py_context_0_1() ->
    [{doc, "py:context/0 gives the calling scheduler's context of the default pool; "
      "py:context/1 the N-th one."}].
py_context_0_1(_Config) ->
    Contexts = py_context_router:contexts(default),
    Size = length(Contexts),
    lists:foreach(
      fun(Sched) ->
              {Ctx, ExpectedCtx} =
                  on_scheduler(Sched, fun() ->
                                              Ctx = py:context(),
                                              {Ctx, py_context_router:get_context()}
                                      end),
              ?assert(is_pid(Ctx)),
              ?assertEqual(ExpectedCtx, Ctx),
              ?assertEqual(lists:nth((Sched - 1) rem Size + 1, Contexts), Ctx)
      end, lists:seq(1, erlang:system_info(schedulers_online))),
    Ctx = py:context(1),
    ?assertEqual(hd(Contexts), Ctx),
    {ok, 4.0} = py:call(Ctx, math, sqrt, [16]),
    ok.

bind_unbind() ->
    [{doc, "bind_context/1 makes get_context/0 return the bound context (here not "
      "the scheduler's); unbind_context/0 restores scheduler routing."}].
bind_unbind(_Config) ->
    %% Context 2 is never scheduler 1's context (the pool has at least 2).
    Ctx = py:context(2),
    {Bound, Unbound} =
        on_scheduler(1, fun() ->
                                ok = py_context_router:bind_context(Ctx),
                                B = py_context_router:get_context(),
                                ok = py_context_router:unbind_context(),
                                {B, py_context_router:get_context()}
                        end),
    ?assertEqual(Ctx, Bound),
    ?assertEqual(py:context(1), Unbound),
    ok.

get_context_0_1() ->
    [{doc, "get_context/0 gives a context of the default pool; get_context(io) one "
      "of the io pool (the scheduler's)."}].
get_context_0_1(_Config) ->
    %% Get context for current scheduler
    Default = fun() ->
                      Ctx = py_context_router:get_context(),
                      Ctx
              end,
    %% Get context from a specific pool
    Io = fun() ->
                 Ctx = py_context_router:get_context(io),
                 Ctx
         end,
    {DefaultCtx, IoCtx} = on_scheduler(1, fun() -> {Default(), Io()} end),
    ?assertEqual(hd(py_context_router:contexts(default)), DefaultCtx),
    ?assertEqual(hd(py_context_router:contexts(io)), IoCtx),
    ?assertNot(lists:member(IoCtx, py_context_router:contexts(default))),
    {ok, 4.0} = py:call(IoCtx, math, sqrt, [16]),
    ok.

%%% ===========================================================================
%%% Use Cases
%%% ===========================================================================

stateful_computation() ->
    [{doc, "Stateful computation: a model unpickled once from model.pkl (in the "
      "context's working directory) answers several predictions."}].
stateful_computation(_Config) ->
    Ctx = py:context(1),

    %% Load a model once
    py:exec(Ctx, <<"
import pickle
with open('model.pkl', 'rb') as f:
    model = pickle.load(f)
">>),

    %% Use it multiple times
    {ok, Pred1} = py:eval(Ctx, <<"model.predict([[1, 2, 3]])">>),
    {ok, Pred2} = py:eval(Ctx, <<"model.predict([[4, 5, 6]])">>),

    ?assertEqual([6], Pred1),
    ?assertEqual([15], Pred2),
    {ok, [3, 7]} = py:eval(Ctx, <<"model.predict([[1, 2], [3, 4]])">>),
    {ok, <<"Model">>} = py:eval(Ctx, <<"type(model).__name__">>),
    ok.

database_connections() ->
    [{doc, "Database connections: one sqlite3 connection kept across calls; the "
      "inserted rows come back as tuples; conn.close() closes it."}].
database_connections(_Config) ->
    Ctx = py:context(1),

    %% Establish connection once
    py:exec(Ctx, <<"
import sqlite3
conn = sqlite3.connect(':memory:')
cursor = conn.cursor()
cursor.execute('CREATE TABLE users (id INTEGER, name TEXT)')
">>),

    %% Use the connection across multiple calls
    py:exec(Ctx, <<"cursor.execute('INSERT INTO users VALUES (1, \"Alice\")')">>),
    py:exec(Ctx, <<"cursor.execute('INSERT INTO users VALUES (2, \"Bob\")')">>),
    {ok, Users} = py:eval(Ctx, <<"cursor.execute('SELECT * FROM users').fetchall()">>),

    %% Clean up
    py:exec(Ctx, <<"conn.close()">>),

    ?assertEqual([{1, <<"Alice">>}, {2, <<"Bob">>}], Users),
    ?assertMatch({error, {"ProgrammingError", _}},
                 py:eval(Ctx, <<"conn.execute('SELECT 1')">>)),
    ok.

incremental_processing() ->
    [{doc, "Incremental processing: items appended one eval at a time (with the "
      "item passed as a local) accumulate in one list."}].
incremental_processing(_Config) ->
    Ctx = py:context(1),

    %% Initialize accumulator
    py:exec(Ctx, <<"results = []">>),

    %% Process items one at a time
    lists:foreach(fun(Item) ->
        py:eval(Ctx, <<"results.append(item * 2)">>, #{item => Item})
    end, [1, 2, 3, 4, 5]),

    %% Get final results
    {ok, [2, 4, 6, 8, 10]} = py:eval(Ctx, <<"results">>),

    %% The local `item' was bound for each evaluation only.
    ?assertMatch({error, {"NameError", _}}, py:eval(Ctx, <<"item">>)),
    ok.

%%% ===========================================================================
%%% Scheduler Affinity (Default Behavior)
%%% ===========================================================================

scheduler_affinity() ->
    [{doc, "Scheduler affinity: an unbound py:call(math, sqrt, [16]) answers 4.0 "
      "on every scheduler."}].
scheduler_affinity(_Config) ->
    %% Processes on the same scheduler share a context
    %% Processes on different schedulers use different contexts
    {ok, Result} = py:call(math, sqrt, [16]),

    ?assertEqual(4.0, Result),
    lists:foreach(
      fun(Sched) ->
              ?assertEqual({ok, 4.0}, on_scheduler(Sched, fun() -> py:call(math, sqrt, [16]) end))
      end, lists:seq(1, erlang:system_info(schedulers_online))),
    ok.

%%% ===========================================================================
%%% Context Pool Statistics
%%% ===========================================================================

pool_statistics() ->
    [{doc, "Pool statistics: num_contexts/0, pool_started(default) and (io), "
      "contexts(default) agree with each other and with the configured sizes."}].
pool_statistics(_Config) ->
    %% Check number of contexts
    N = py_context_router:num_contexts(),

    %% Check if a pool is started
    true = py_context_router:pool_started(default),
    true = py_context_router:pool_started(io),

    %% Get all contexts in a pool
    Contexts = py_context_router:contexts(default),

    ?assertEqual(max(2, erlang:system_info(schedulers_online)), N),
    ?assertEqual(N, length(Contexts)),
    ?assertEqual(N, length(lists:usort(Contexts))),
    ?assert(lists:all(fun erlang:is_process_alive/1, Contexts)),
    ?assertEqual(4, py_context_router:num_contexts(io)),
    ?assertEqual([], Contexts -- Contexts -- py_context_router:contexts(io)),
    ok.

%%% ===========================================================================
%%% Error Handling
%%% ===========================================================================

error_handling() ->
    [{doc, "Error handling: with the contexts started, py:contexts_started() is true "
      "and the example proceeds."}].
error_handling(_Config) ->
    Result =
    %% If contexts aren't started
    case py:contexts_started() of
        true -> proceed();
        false -> {error, contexts_not_started}
    end,

    ?assertEqual({ok, 4.0}, Result),
    ok.

error_handling_not_started() ->
    [{doc, "Error handling: after py:stop_contexts() the example takes the "
      "contexts_not_started branch; py:start_contexts() brings the pool back."}].
error_handling_not_started(_Config) ->
    Size = py_context_router:num_contexts(),
    ok = py:stop_contexts(),
    Result =
    case py:contexts_started() of
        true -> proceed();
        false -> {error, contexts_not_started}
    end,
    {ok, Contexts} = py:start_contexts(),

    ?assertEqual({error, contexts_not_started}, Result),
    ?assertEqual(Size, length(Contexts)),
    true = py:contexts_started(),
    ?assertEqual({ok, 4.0}, proceed()),
    ok.

proceed() ->
    py:call(math, sqrt, [16]).

%%% ===========================================================================
%%% py_context_router reference
%%% ===========================================================================

router_start_when_started() ->
    [{doc, "py_context_router:start() on a running default pool answers "
      "{ok, Contexts} with the pool's contexts, without starting new ones."}].
router_start_when_started(_Config) ->
    Before = py_context_router:contexts(),
    %% Start the router with default settings
    {ok, Contexts} = py_context_router:start(),

    ?assertEqual(Before, Contexts),
    ?assertEqual(Contexts, py_context_router:contexts()),
    ok.

router_usage() ->
    [{doc, "py_context_router usage: py_context:call/5 on get_context(), "
      "get_context(2), bind_context(Ctx2) then Ctx2 = get_context(), unbind."}].
router_usage(_Config) ->
    {Result, Ctx2, AfterUnbind} =
        on_scheduler(1, fun() ->
            %% Get context for current scheduler (automatic routing)
            Ctx = py_context_router:get_context(),
            {ok, Result} = py_context:call(Ctx, math, sqrt, [16], #{}),
            %% Or get a specific context by index
            Ctx2 = py_context_router:get_context(2),
            %% Bind a specific context to this process
            ok = py_context_router:bind_context(Ctx2),
            Ctx2 = py_context_router:get_context(), %% Returns bound context
            %% Unbind to return to scheduler-based routing
            ok = py_context_router:unbind_context(),
            {Result, Ctx2, py_context_router:get_context()}
        end),
    ?assertEqual(4.0, Result),
    ?assertEqual(lists:nth(2, py_context_router:contexts()), Ctx2),
    ?assertEqual(py_context_router:get_context(1), AfterUnbind),
    ok.

router_register_pool() ->
    [{doc, "py_context_router reference: register_pool(io, requests) and "
      "register_pool(io, requests, get) return ok and route those calls to io."}].
router_register_pool(_Config) ->
    %% Route all 'requests' module calls to io pool
    ok = py_context_router:register_pool(io, requests),
    ModuleRoute = {py_context_router:lookup_pool(requests, post),
                   py_context_router:lookup_pool(requests, get)},
    ok = py_context_router:unregister_pool(requests),

    %% Route requests.get to io pool
    ok = py_context_router:register_pool(io, requests, get),
    FunctionRoute = {py_context_router:lookup_pool(requests, get),
                     py_context_router:lookup_pool(requests, post)},
    ok = py_context_router:unregister_pool(requests, get),

    ?assertEqual({io, io}, ModuleRoute),
    ?assertEqual({io, default}, FunctionRoute),
    ?assertEqual(default, py_context_router:lookup_pool(requests, get)),
    ok.

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

%% Pickles a seedmodel.Model into DataDir/model.pkl with the system Python,
%% through a temporary file so that concurrent runs never read half a file.
pickle_model(DataDir) ->
    Script = "import os, pickle, sys\n"
             "sys.path.insert(0, '.')\n"
             "import seedmodel\n"
             "tmp = 'model.pkl.%d' % os.getpid()\n"
             "with open(tmp, 'wb') as f:\n"
             "    pickle.dump(seedmodel.Model(), f)\n"
             "os.replace(tmp, 'model.pkl')\n",
    Port = open_port({spawn_executable, "/usr/bin/python3"},
                     [{args, ["-B", "-c", Script]}, {cd, DataDir}, exit_status,
                      stderr_to_stdout, binary]),
    collect_exit(Port, []).

collect_exit(Port, Out) ->
    receive
        {Port, {data, Data}} -> collect_exit(Port, [Out, Data]);
        {Port, {exit_status, 0}} -> ok;
        {Port, {exit_status, N}} -> error({pickle_failed, N, iolist_to_binary(Out)})
    after ?PICKLE_TIMEOUT ->
        error({pickle_timeout, iolist_to_binary(Out)})
    end.

on_scheduler(Sched, Fun) -> pyport_test:on_scheduler(Sched, Fun, ?HELPER_TIMEOUT).
