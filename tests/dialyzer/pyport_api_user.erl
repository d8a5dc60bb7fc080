%% A user's module that calls every exported function of pyport's public modules
%% (py, py_context, py_context_router, py_semaphore, py_import, py_preload) the
%% way the documentation shows, and matches their results as a user would.
%% It is never run: tests/dialyzer/dialyzer.escript analyzes it together with the
%% application (dialyzer.pyport) and fails on any warning, and checks that it
%% still calls every exported function.
-module(pyport_api_user).

-export([calls/0, contexts/1, routing/0, streams/0, refs/1, state/0, venv/0,
         compat/0, registries/0, opaque/1, web/1]).

%% Calls, evals and execs, routed and on an explicit context.
-spec calls() -> [term()].
calls() ->
    Ctx = py:context(),
    {ok, _} = py:call(math, sqrt, [16]),
    R1 = py:call(Ctx, math, sqrt, [2]),
    R2 = py:call(math, pow, [2, 3], #{}),
    R3 = py:call(Ctx, <<"math">>, "pow", [2, 3], #{}),
    R4 = py:call(math, pow, [2, 3], #{}, 5000),
    R5 = py:call(my_pool_name, math, floor, [2.5], #{}),
    {ok, _} = py:eval(<<"1 + 1">>),
    R6 = py:eval(Ctx, <<"x + 1">>),
    R7 = py:eval(<<"x + 1">>, #{x => 1}),
    R8 = py:eval(Ctx, "x + 1", #{x => 1}),
    R9 = py:eval(<<"x + 1">>, #{x => 1}, 1000),
    R10 = py:eval(Ctx, [<<"x">>, " + 1"], #{x => 1}, infinity),
    ok = py:exec(<<"import math">>),
    R11 = py:exec(Ctx, <<"y = 2">>),
    R12 = py:exec(Ctx, <<"y = 3">>, 1000),
    ok = py:cast(math, sqrt, [4]),
    ok = py:cast(math, pow, [2, 3], #{}),
    ok = py:cast(Ctx, math, sqrt, [4]),
    ok = py:cast(Ctx, math, pow, [2, 3], #{}),
    Ref1 = py:spawn_call(math, sqrt, [4]),
    Ref2 = py:spawn_call(math, pow, [2, 3], #{}),
    Ref3 = py:spawn_call(Ctx, math, sqrt, [9]),
    Ref4 = py:spawn_call(Ctx, math, pow, [2, 3], #{}),
    R13 = py:await(Ref1),
    R14 = py:await(Ref2, 1000),
    R15 = [py:await(R) || R <- [Ref3, Ref4]],
    R16 = py:parallel([{math, sqrt, [4]}, {math, sqrt, [9]}]),
    Py = py:last_error(),
    [R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, R11, R12, R13, R14, R15, R16, Py].

%% The public API of one context.
-spec contexts(pid()) -> [term()].
contexts(Pool) ->
    Defaults = py_context:default_opts(),
    {ok, Ctx} = py_context:start_link(#{name => ml_python, max_memory => 2 bsl 30,
                                        max_calls => 10000, python_path => ["priv/python"]}),
    {ok, Ctx2} = py_context:start_link(one, subinterp),
    Spec = py_context:child_spec(#{id => ml, max_queue => 100, restart => #{min => 10}}),
    {ok, Ctx3} = py_context:new(#{label => <<"batch">>, kill_after => infinity,
                                  env => #{"A" => "1"}, heartbeat => 5000}),
    R1 = py_context:call(Ctx, math, sqrt, [4]),
    R2 = py_context:call(Ctx, math, pow, [2, 3], #{}),
    R3 = py_context:call(Ctx, math, pow, [2, 3], #{}, 1000),
    R4 = py_context:call_as(Ctx, Pool, math, sqrt, [4], #{}, infinity),
    R5 = py_context:eval(Ctx, <<"1">>),
    R6 = py_context:eval(Ctx, <<"x">>, #{x => 2}),
    R7 = py_context:eval(Ctx, <<"x">>, #{x => 2}, 1000),
    R8 = py_context:eval_as(Ctx, Pool, <<"x">>, #{x => 2}, 1000),
    ok = py_context:exec(Ctx, <<"z = 1">>),
    R9 = py_context:exec(Ctx, <<"z = 2">>, 1000),
    R10 = py_context:exec_as(Ctx, Pool, <<"z = 3">>, infinity),
    #{} = Info = py_context:info(Ctx),
    ok = py_context:interrupt(Ctx),
    ok = py_context:restart(Ctx),
    Mon = py_context:monitor(Ctx),
    ok = py_context:demonitor(Ctx, Mon),
    R11 = py_context:setup(Ctx, #{logging => 20}),
    {ok, Env} = py_context:create_local_env(Ctx),
    R12 = py_context:exec(Ctx, <<"w = 1">>, Env),
    R13 = py_context:call(Ctx, math, sqrt, [4], #{}, 1000, Env),
    R14 = py_context:eval(Ctx, <<"w">>, #{}, 1000, Env),
    R15 = py_context:get_interp_id(Ctx),
    B = py_context:is_subinterp(Ctx),
    ok = py_context:kill(Ctx2),
    ok = py_context:stop(Ctx2),
    ok = py_context:destroy(Ctx3),
    [Defaults, Spec, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, Info, R11, R12, R13, R14,
     R15, B].

%% Pools and routing.
-spec routing() -> [term()].
routing() ->
    R1 = py_context_router:start(),
    R2 = py_context_router:start(#{contexts => 2}),
    Ctx = py_context_router:get_context(),
    Ctx1 = py_context_router:get_context(1),
    Io = py_context_router:get_context(io),
    ok = py_context_router:bind_context(Ctx),
    ok = py_context_router:bind_context(io, Io),
    ok = py_context_router:unbind_context(),
    ok = py_context_router:unbind_context(io),
    All = py_context_router:contexts(),
    IoAll = py_context_router:contexts(io),
    N = py_context_router:num_contexts() + py_context_router:num_contexts(io),
    B1 = py_context_router:is_started(),
    B2 = py_context_router:pool_started(io),
    R3 = py_context_router:start_pool(gpu, 2),
    R4 = py_context_router:start_pool(cpu, 2, #{max_calls => 100, lazy => false}),
    R5 = py_context_router:start_pool(cpu2, 2, io),
    R6 = py_context_router:declare_pool(later, 1, #{max_queue => 10}),
    ok = py_context_router:register_pool(gpu, torch),
    ok = py_context_router:register_pool(gpu, <<"numpy">>, <<"dot">>),
    ok = py_context_router:unregister_pool(torch),
    ok = py_context_router:unregister_pool(<<"numpy">>, <<"dot">>),
    Pool = py_context_router:lookup_pool(math, sqrt),
    Regs = py_context_router:list_pool_registrations(),
    ok = py_context_router:init_pool_registry(),
    ok = py_context_router:new_table(),
    Others = py_context_router:contexts_without(io),
    Pools = py_context_router:pools(),
    T = py_context_router:call_timeout(default),
    R7 = py_context_router:start_context(gpu, 3, #{}),
    ok = py_context_router:stop_pool(gpu),
    ok = py_context_router:stop(),
    {ok, _} = py_context_router:start_link(),
    ok = py:register_pool(io, requests),
    ok = py:register_pool(io, {requests, get}),
    ok = py:unregister_pool({requests, get}),
    ok = py:unregister_pool(requests),
    C1 = py:context(1),
    B3 = py:contexts_started(),
    R8 = py:start_contexts(),
    R9 = py:start_contexts(#{contexts => 4}),
    ok = py:stop_contexts(),
    [R1, R2, Ctx1, All, IoAll, N, B1, B2, R3, R4, R5, R6, Pool, Regs, Others, Pools, T,
     R7, C1, B3, R8, R9].

%% Streams.
-spec streams() -> [term()].
streams() ->
    {ok, _} = py:stream_eval(<<"(x * x for x in range(4))">>),
    R1 = py:stream_eval(<<"range(n)">>, #{n => 3}),
    R2 = py:stream(builtins, range, [3]),
    R3 = py:stream(builtins, range, [3], #{}),
    {ok, Ref} = py:stream_start(builtins, range, [3]),
    R4 = py:stream_start(builtins, range, [3], #{}),
    ok = py:stream_cancel(Ref),
    [R1, R2, R3, R4].

%% Live Python objects.
-spec refs(pid()) -> [term()].
refs(Ctx) ->
    {ok, Deque} = py:eval(Ctx, <<"collections.deque(maxlen=2)">>),
    true = py:is_ref(Deque),
    R1 = py:call_method(Deque, append, [1]),
    R2 = py:getattr(Deque, maxlen),
    R3 = py:to_term(Deque),
    R4 = py_context:call_method(Ctx, Deque, "append", [2]),
    R5 = py_context:to_term(Deque),
    ok = py:release(Deque),
    [R1, R2, R3, R4, R5].

%% Shared state, callbacks, logging and facts.
-spec state() -> [term()].
state() ->
    ok = py:register_function(double, fun([X]) -> 2 * X end),
    ok = py:register_function(<<"len">>, erlang, length),
    ok = py:unregister_function(double),
    ok = py:state_store(<<"k">>, 1),
    R1 = case py:state_fetch(<<"k">>) of
             {ok, V} -> V;
             {error, not_found} -> 0
         end,
    ok = py:state_remove(<<"k">>),
    Keys = py:state_keys(),
    ok = py:state_clear(),
    N = py:state_incr(c) + py:state_incr(c, 2) + py:state_decr(c) + py:state_decr(c, 2),
    L1 = py:configure_logging(),
    L2 = py:configure_logging(#{level => info}),
    {ok, _} = py:version(),
    R2 = py:memory_stats(),
    R3 = py:gc(),
    R4 = py:gc(2),
    [R1, Keys, N, L1, L2, R2, R3, R4].

%% Virtual environments.
-spec venv() -> [term()].
venv() ->
    R1 = py:activate_venv(<<"/srv/venv">>),
    R2 = py:activate_venv(io, "/srv/venv"),
    R3 = py:venv_info(),
    R4 = py:venv_info(io),
    R5 = py:deactivate_venv(),
    R6 = py:deactivate_venv(io),
    R7 = py:ensure_venv("/srv/venv", "requirements.txt"),
    R8 = py:ensure_venv(<<"/srv/venv">>, <<"requirements.txt">>, [{installer, pip}]),
    [R1, R2, R3, R4, R5, R6, R7, R8].

%% WSGI and ASGI applications (docs/web.md).
-spec web(pid()) -> [term()].
web(Ctx) ->
    {ok, {<<"200 OK">>, _, <<_/binary>>}} =
        py:wsgi_run(flask_app, app, #{<<"PATH_INFO">> => <<"/">>}, <<>>),
    R1 = py:wsgi_run(flask_app, app, #{<<"wsgi.input">> => <<"body">>}),
    R2 = py:wsgi_run(<<"flask_app">>, "app", #{}, [<<"io">>, "list"],
                     #{context => Ctx, timeout => 5000, stream => true, window => 4}),
    {ok, {200, _, _}} = py:asgi_run(asgi_app, app, #{path => <<"/">>}, <<>>),
    R3 = py:asgi_run(asgi_app, app, #{<<"path">> => <<"/">>}, <<>>, #{pool => default}),
    case R2 of
        {ok, {_Status, _Headers, {stream, Ref}}} -> ok = py:stream_cancel(Ref);
        _ -> ok
    end,
    [R1, R2, R3].

%% The rest of erlang_python 2.x's py API.
-spec compat() -> [term()].
compat() ->
    A1 = py:async_call(asyncio, sleep, [0.1, 1]),
    A2 = py:async_call(asyncio, sleep, [0.1, 1], #{}),
    R1 = py:async_await(A1),
    R2 = py:async_await(A2, 1000),
    R3 = py:async_gather([{asyncio, sleep, [0.1, 1]}]),
    R4 = py:async_stream(builtins, range, [3]),
    R5 = py:async_stream(builtins, range, [3], #{}),
    true = py:subinterp_supported(),
    {ok, S} = py:subinterp_create(),
    R6 = py:subinterp_call(S, math, sqrt, [4]),
    R7 = py:subinterp_call(S, math, pow, [2, 3], #{}),
    R8 = py:subinterp_eval(S, <<"1">>),
    R9 = py:subinterp_eval(S, <<"x">>, #{x => 1}),
    R10 = py:subinterp_exec(S, <<"x = 1">>),
    ok = py:subinterp_cast(S, math, sqrt, [4]),
    SRef = py:subinterp_async_call(S, math, sqrt, [4]),
    R11 = py:subinterp_await(SRef),
    R12 = py:subinterp_await(SRef, 1000),
    ok = py:subinterp_destroy(S),
    ok = py:subinterp_pool_start(),
    ok = py:subinterp_pool_start(4),
    B = py:subinterp_pool_ready(),
    #{} = Stats = py:subinterp_pool_stats(),
    ok = py:subinterp_pool_stop(),
    Env = py:get_local_env(py:context()),
    Mode = py:execution_mode(),
    N = py:num_executors(),
    R13 = py:reload(json),
    ok = py:enable_tracing(),
    {ok, Traces} = py:get_traces(),
    ok = py:clear_traces(),
    ok = py:disable_tracing(),
    R14 = py:dup_fd(0),
    R15 = py:tracemalloc_start(),
    R16 = py:tracemalloc_start(10),
    R17 = py:tracemalloc_stop(),
    {ok, D} = py:shared_dict_new(),
    ok = py:shared_dict_set(D, <<"k">>, 1),
    V1 = py:shared_dict_get(D, <<"k">>),
    V2 = py:shared_dict_get(D, <<"missing">>, none),
    Keys = py:shared_dict_keys(D),
    ok = py:shared_dict_del(D, <<"k">>),
    ok = py:shared_dict_destroy(D),
    [R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, R11, R12, B, Stats, Env, Mode, N, R13, Traces,
     R14, R15, R16, R17, V1, V2, Keys].

%% Import, path and preload registries, and the call semaphore.
-spec registries() -> [term()].
registries() ->
    ok = py_import:init(),
    R1 = py_import:ensure_imported(json),
    R2 = py_import:ensure_imported(<<"json">>, <<"dumps">>),
    B1 = py_import:is_imported(json),
    B2 = py_import:is_imported("json", "dumps"),
    All = py_import:all_imports(),
    {ok, #{}} = py_import:import_list(),
    ok = py_import:clear_imports(),
    ok = py_import:add_path("/srv/python"),
    ok = py_import:add_paths([<<"/srv/a">>, "/srv/b"]),
    Paths = py_import:all_paths(),
    B3 = py_import:is_path_added(<<"/srv/a">>),
    ok = py_import:clear_paths(),
    ok = py_preload:set_code(<<"import json">>),
    Code = py_preload:get_code(),
    B4 = py_preload:has_preload(),
    R3 = py_preload:apply_preload(py:context()),
    ok = py_preload:clear_code(),
    ok = py_semaphore:init(),
    ok = py_semaphore:new(),
    ok = py_semaphore:set_max_concurrent(8),
    Max = py_semaphore:max_concurrent(),
    R4 = case py_semaphore:acquire(1000) of
             ok -> py_semaphore:release();
             {error, max_concurrent} -> busy
         end,
    Cur = py_semaphore:current(),
    Rej = py_semaphore:rejected(),
    [R1, R2, B1, B2, All, Paths, B3, Code, B4, R3, Max, R4, Cur, Rej].

%% get_nif_ref/1 never returns (pyport has no NIF resource): a user who calls it
%% handles the exception.
-spec opaque(pid()) -> term().
opaque(Ctx) ->
    try py_context:get_nif_ref(Ctx)
    catch error:Reason -> Reason
    end.
