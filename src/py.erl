%% @doc The public facade of pyport, compatible with erlang_python's `py'.
%% Stateless: every function routes to a context (py_context_router) and makes
%% the request there (py_context). Routed calls use the pool's `call_timeout'
%% (30000 ms by default); calls on an explicit context wait `infinity' unless a
%% timeout is given. Results are `{ok, Term}' or `{error, Reason}'; a Python
%% exception is `{error, {Type, Message}}' with strings, and its traceback is
%% kept for last_error/0.
-module(py).

-export([call/3, call/4, call/5,
         eval/1, eval/2, eval/3, eval/4,
         exec/1, exec/2, exec/3,
         cast/3, cast/4, cast/5,
         spawn_call/3, spawn_call/4, spawn_call/5, await/1, await/2,
         parallel/1,
         stream/3, stream/4, stream_eval/1, stream_eval/2,
         stream_start/3, stream_start/4, stream_cancel/1,
         wsgi_run/3, wsgi_run/4, wsgi_run/5, asgi_run/4, asgi_run/5,
         call_method/3, getattr/2, release/1,
         register_function/2, register_function/3, unregister_function/1,
         state_store/2, state_fetch/1, state_remove/1, state_keys/0, state_clear/0,
         state_incr/1, state_incr/2, state_decr/1, state_decr/2,
         activate_venv/1, activate_venv/2, deactivate_venv/0, deactivate_venv/1,
         venv_info/0, venv_info/1,
         configure_logging/0, configure_logging/1,
         version/0, memory_stats/0, gc/0, gc/1,
         context/0, context/1, contexts_started/0,
         start_contexts/0, start_contexts/1, stop_contexts/0,
         register_pool/2, unregister_pool/1,
         last_error/0]).

%% The rest of erlang_python 2.x's py API (see py_compat for what each means in
%% pyport).
-export([async_call/3, async_call/4, async_await/1, async_await/2, async_gather/1,
         async_stream/3, async_stream/4,
         subinterp_supported/0, subinterp_create/0, subinterp_destroy/1,
         subinterp_call/4, subinterp_call/5, subinterp_eval/2, subinterp_eval/3,
         subinterp_exec/2, subinterp_cast/4, subinterp_async_call/4,
         subinterp_await/1, subinterp_await/2, subinterp_pool_start/0,
         subinterp_pool_start/1, subinterp_pool_stop/0, subinterp_pool_ready/0,
         subinterp_pool_stats/0,
         ensure_venv/2, ensure_venv/3, get_local_env/1, execution_mode/0, num_executors/0,
         reload/1, enable_tracing/0, disable_tracing/0, get_traces/0, clear_traces/0,
         to_term/1, is_ref/1, dup_fd/1, tracemalloc_start/0, tracemalloc_start/1,
         tracemalloc_stop/0,
         shared_dict_new/0, shared_dict_get/2, shared_dict_get/3, shared_dict_set/3,
         shared_dict_del/2, shared_dict_keys/1, shared_dict_destroy/1]).

-include_lib("kernel/include/logger.hrl").

-export_type([py_result/0]).

-type py_result() :: {ok, term()} | {error, term()}.
-type py_module() :: atom() | binary() | string().
-type py_func() :: atom() | binary() | string().

%%% ===========================================================================
%%% call
%%% ===========================================================================

%% @doc Calls `Module.Func(*Args)' on the caller's context (bound, registered
%% pool, or by scheduler).
-spec call(py_module(), py_func(), list()) -> py_result().
call(Module, Func, Args) ->
    routed_call(Module, Func, Args, #{}, undefined).

%% @doc `call(Ctx, Module, Func, Args)' on an explicit context,
%% `call(Pool, Module, Func, Args)' on a named pool, or
%% `call(Module, Func, Args, Kwargs)' with keyword arguments.
-spec call(pid() | atom(), py_module(), py_func(), list()) -> py_result()
        ; (py_module(), py_func(), list(), map()) -> py_result().
call(Ctx, Module, Func, Args) when is_pid(Ctx) ->
    py_context:call(Ctx, Module, Func, Args, #{}, infinity);
call(Pool, Module, Func, Args) when is_atom(Pool), is_list(Args) ->
    pool_call(Pool, Module, Func, Args, #{}, undefined);
call(Module, Func, Args, Kwargs) ->
    routed_call(Module, Func, Args, Kwargs, undefined).

%% @doc `call(Ctx, Module, Func, Args, Opts)' with `Opts' = `#{kwargs, timeout}',
%% `call(Pool, Module, Func, Args, Kwargs)', or
%% `call(Module, Func, Args, Kwargs, Timeout)'.
-spec call(pid() | atom(), py_module(), py_func(), list(), map()) -> py_result()
        ; (py_module(), py_func(), list(), map(), timeout()) -> py_result().
call(Ctx, Module, Func, Args, Opts) when is_pid(Ctx), is_map(Opts) ->
    py_context:call(Ctx, Module, Func, Args, maps:get(kwargs, Opts, #{}),
                    maps:get(timeout, Opts, infinity));
call(Pool, Module, Func, Args, Kwargs) when is_atom(Pool), is_list(Args), is_map(Kwargs) ->
    pool_call(Pool, Module, Func, Args, Kwargs, undefined);
call(Module, Func, Args, Kwargs, Timeout) ->
    routed_call(Module, Func, Args, Kwargs, Timeout).

routed_call(Module, Func, Args, Kwargs, Timeout) ->
    pool_call(py_context_router:lookup_pool(Module, Func), Module, Func, Args, Kwargs, Timeout).

%% Routed calls hold a py_semaphore slot while they run (erlang_python 2.x's
%% node-wide limit; `{error, {overloaded, Current, Max}}' when none frees up
%% within the call's timeout).
pool_call(Pool, Module, Func, Args, Kwargs, Timeout0) ->
    on_pool(Pool, Timeout0, fun(Ctx, Timeout) ->
        case py_semaphore:acquire(Timeout) of
            ok ->
                try
                    py_context:call(Ctx, Module, Func, Args, Kwargs, Timeout)
                after
                    py_semaphore:release()
                end;
            {error, max_concurrent} ->
                Current = py_semaphore:current(),
                Max = py_semaphore:max_concurrent(),
                py_telemetry:overload(semaphore, #{current => Current, max => Max},
                                      #{context => Ctx, pool => Pool}),
                {error, {overloaded, Current, Max}}
        end
    end).

%% Runs Fun(Ctx, Timeout) on the caller's context in Pool (bound, else picked
%% and then bound), with the pool's call_timeout unless Timeout is given. A
%% pool that is not started is the error.
on_pool(Pool, Timeout, Fun) ->
    case routed(Pool) of
        {ok, Ctx} -> Fun(Ctx, timeout(Pool, Timeout));
        Error -> Error
    end.

%% on_pool/3 on the pool registered for Module.Func (default: `default').
on_module(Module, Func, Timeout, Fun) ->
    on_pool(py_context_router:lookup_pool(Module, Func), Timeout, Fun).

%%% ===========================================================================
%%% eval / exec
%%% ===========================================================================

%% @doc Evaluates a Python expression on the caller's context.
-spec eval(iodata()) -> py_result().
eval(Code) -> eval(Code, #{}).

%% @doc `eval(Ctx, Code)' on an explicit context, or `eval(Code, Locals)'.
-spec eval(pid(), iodata()) -> py_result()
        ; (iodata(), map()) -> py_result().
eval(Ctx, Code) when is_pid(Ctx) ->
    py_context:eval(Ctx, Code, #{}, infinity);
eval(Code, Locals) ->
    routed_eval(Code, Locals, undefined).

%% @doc `eval(Ctx, Code, Locals)' on an explicit context, or
%% `eval(Code, Locals, Timeout)'.
-spec eval(pid(), iodata(), map()) -> py_result()
        ; (iodata(), map(), timeout()) -> py_result().
eval(Ctx, Code, Locals) when is_pid(Ctx) ->
    py_context:eval(Ctx, Code, Locals, infinity);
eval(Code, Locals, Timeout) ->
    routed_eval(Code, Locals, Timeout).

%% `Timeout' `undefined': the default pool's call_timeout.
routed_eval(Code, Locals, Timeout) ->
    on_pool(default, Timeout, fun(Ctx, T) -> py_context:eval(Ctx, Code, Locals, T) end).

%% @doc Evaluates on an explicit context with a timeout.
-spec eval(pid(), iodata(), map(), timeout()) -> py_result().
eval(Ctx, Code, Locals, Timeout) when is_pid(Ctx) ->
    py_context:eval(Ctx, Code, Locals, Timeout).

%% @doc Executes Python statements on the caller's context.
-spec exec(iodata()) -> ok | {error, term()}.
exec(Code) ->
    on_pool(default, undefined, fun(Ctx, T) -> py_context:exec(Ctx, Code, T) end).

%% @doc Executes Python statements on an explicit context.
-spec exec(pid(), iodata()) -> ok | {error, term()}.
exec(Ctx, Code) when is_pid(Ctx) ->
    py_context:exec(Ctx, Code, infinity).

%% @doc Executes on an explicit context with a timeout.
-spec exec(pid(), iodata(), timeout()) -> ok | {error, term()}.
exec(Ctx, Code, Timeout) when is_pid(Ctx) ->
    py_context:exec(Ctx, Code, Timeout).

%%% ===========================================================================
%%% cast, spawn_call / await, parallel
%%% ===========================================================================

%% @doc Fire and forget `Module.Func(*Args)', in the caller's environment on the
%% caller's context. Errors are logged.
-spec cast(py_module(), py_func(), list()) -> ok.
cast(Module, Func, Args) -> cast(Module, Func, Args, #{}).

%% @doc `cast(Ctx, Module, Func, Args)' or `cast(Module, Func, Args, Kwargs)'.
-spec cast(pid() | py_module(), py_module() | py_func(), py_func() | list(), list() | map()) -> ok.
cast(Ctx, Module, Func, Args) when is_pid(Ctx) ->
    cast(Ctx, Module, Func, Args, #{});
cast(Module, Func, Args, Kwargs) ->
    case on_module(Module, Func, undefined,
                   fun(Ctx, T) -> do_cast(Ctx, Module, Func, Args, Kwargs, T) end) of
        ok -> ok;
        {error, Reason} -> ?LOG_WARNING("py:cast ~0p:~0p: ~0p", [Module, Func, Reason])
    end.

%% @doc `cast(Ctx, Module, Func, Args, Kwargs)' on an explicit context.
-spec cast(pid(), py_module(), py_func(), list(), map()) -> ok.
cast(Ctx, Module, Func, Args, Kwargs) when is_pid(Ctx) ->
    do_cast(Ctx, Module, Func, Args, Kwargs, infinity).

do_cast(Ctx, Module, Func, Args, Kwargs, Timeout) ->
    Caller = self(),
    _ = spawn(fun() ->
                      case py_context:call_as(Ctx, Caller, Module, Func, Args, Kwargs, Timeout) of
                          {ok, _} -> ok;
                          {error, Reason} ->
                              ?LOG_WARNING("py:cast ~0p:~0p failed: ~0p", [Module, Func, Reason])
                      end
              end),
    ok.

%% @doc Starts `Module.Func(*Args)' (caller's environment and context) and
%% returns a reference for await/1,2.
-spec spawn_call(py_module(), py_func(), list()) -> reference().
spawn_call(Module, Func, Args) -> spawn_call(Module, Func, Args, #{}).

%% @doc `spawn_call(Ctx, Module, Func, Args)' or `spawn_call(Module, Func, Args, Kwargs)'.
-spec spawn_call(pid() | py_module(), term(), term(), list() | map()) -> reference().
spawn_call(Ctx, Module, Func, Args) when is_pid(Ctx) ->
    spawn_call(Ctx, Module, Func, Args, #{});
spawn_call(Module, Func, Args, Kwargs) ->
    case on_module(Module, Func, undefined,
                   fun(Ctx, T) -> do_spawn_call(Ctx, Module, Func, Args, Kwargs, T) end) of
        {error, _} = Error -> answered(Error);
        Ref -> Ref
    end.

%% @doc `spawn_call(Ctx, Module, Func, Args, Kwargs)' on an explicit context.
-spec spawn_call(pid(), py_module(), py_func(), list(), map()) -> reference().
spawn_call(Ctx, Module, Func, Args, Kwargs) when is_pid(Ctx) ->
    do_spawn_call(Ctx, Module, Func, Args, Kwargs, infinity).

%% The reference is an alias of the caller: after await/2 gives up it is
%% deactivated, so a late result is dropped by the runtime.
do_spawn_call(Ctx, Module, Func, Args, Kwargs, Timeout) ->
    Caller = self(),
    Ref = erlang:alias([explicit_unalias]),
    _ = spawn(fun() ->
                      Result = py_context:call_as(Ctx, Caller, Module, Func, Args, Kwargs, Timeout),
                      Ref ! {py_response, Ref, Result}
              end),
    Ref.

answered(Result) ->
    Ref = erlang:alias([explicit_unalias]),
    Ref ! {py_response, Ref, Result},
    Ref.

%% @doc The result of a spawn_call/3,4,5 (waits up to 30 s).
-spec await(reference()) -> py_result().
await(Ref) -> await(Ref, 30000).

%% @doc The result of a spawn_call, waiting at most `Timeout' ms. After a timeout
%% the result can no longer arrive.
-spec await(reference(), timeout()) -> py_result().
await(Ref, Timeout) ->
    receive
        {py_response, Ref, Result} ->
            erlang:unalias(Ref),
            Result
    after Timeout ->
        erlang:unalias(Ref),
        receive
            {py_response, Ref, Result} -> Result
        after 0 ->
            {error, timeout}
        end
    end.

%% @doc Runs the calls across the contexts of the default pool, concurrently;
%% `{ok, Results}' in input order, or the first error.
-spec parallel([{py_module(), py_func(), list()}]) -> py_result().
parallel(Calls) when is_list(Calls) ->
    case py_context_router:contexts(default) of
        [] ->
            {error, {pool_not_started, default}};
        Ctxs ->
            N = length(Ctxs),
            Timeout = timeout(default, undefined),
            Refs = [spawn_call(lists:nth((I - 1) rem N + 1, Ctxs), M, F, A)
                    || {I, {M, F, A}} <- lists:zip(lists:seq(1, length(Calls)), Calls)],
            Results = [await(Ref, Timeout) || Ref <- Refs],
            case [E || {error, _} = E <- Results] of
                [] -> {ok, [V || {ok, V} <- Results]};
                [First | _] -> First
            end
    end.

%%% ===========================================================================
%%% Streams
%%% ===========================================================================

%% @doc All the items of the generator `Module.Func(*Args)', as a list.
-spec stream(py_module(), py_func(), list()) -> py_result().
stream(Module, Func, Args) -> stream(Module, Func, Args, #{}).

%% @doc As stream/3 with keyword arguments.
-spec stream(py_module(), py_func(), list(), map()) -> py_result().
stream(Module, Func, Args, Kwargs) ->
    on_module(Module, Func, undefined, fun(Ctx, T) ->
        py_stream:collect(py_stream:start(Ctx, Module, Func, Args, #{kwargs => Kwargs}), T, [])
    end).

%% @doc All the items of the iterable the expression `Code' evaluates to.
-spec stream_eval(iodata()) -> py_result().
stream_eval(Code) -> stream_eval(Code, #{}).

%% @doc As stream_eval/1 with locals.
-spec stream_eval(iodata(), map()) -> py_result().
stream_eval(Code, Locals) ->
    on_pool(default, undefined, fun(Ctx, T) ->
        py_stream:collect(py_stream:start_eval(Ctx, Code, Locals, #{}), T, [])
    end).

%% @doc Starts a stream; the caller receives `{py_stream, Ref, {data, V}}', then
%% `{py_stream, Ref, done}' or `{py_stream, Ref, {error, E}}'.
-spec stream_start(py_module(), py_func(), list()) -> {ok, reference()} | {error, term()}.
stream_start(Module, Func, Args) -> stream_start(Module, Func, Args, #{}).

%% @doc As stream_start/3. `Opts': `context' (explicit context), `kwargs',
%% `window' (items the port may send ahead of delivery, default 16), `owner'
%% (the process that receives the messages; the generator still runs in the
%% caller's environment).
-spec stream_start(py_module(), py_func(), list(), map()) -> {ok, reference()} | {error, term()}.
stream_start(Module, Func, Args, Opts) ->
    Start = case maps:get(owner, Opts, self()) of
                Self when Self =:= self() -> fun py_stream:start/5;
                Owner -> fun(C, M, F, A, O) -> py_compat:stream_start(C, M, F, A, O, Owner) end
            end,
    case maps:find(context, Opts) of
        {ok, Ctx} ->
            Start(Ctx, Module, Func, Args, Opts);
        error ->
            on_module(Module, Func, undefined,
                      fun(Ctx, _) -> Start(Ctx, Module, Func, Args, Opts) end)
    end.

%% @doc Stops a stream; afterwards no message for `Ref' is in the mailbox or will arrive.
-spec stream_cancel(reference()) -> ok.
stream_cancel(Ref) -> py_stream:cancel(Ref).

%%% ===========================================================================
%%% WSGI / ASGI (py_web, docs/web.md)
%%% ===========================================================================

%% @doc Runs the WSGI application `Module.App' with `Environ' and no body (a
%% binary under `<<"wsgi.input">>' is taken as the body):
%% `{ok, {<<"200 OK">>, [{Name, Value}], Body}}'.
-spec wsgi_run(py_module(), py_func(), map()) -> py_web:answer().
wsgi_run(Module, App, Environ) when is_map(Environ) ->
    case maps:take(<<"wsgi.input">>, Environ) of
        {Body, Rest} when is_binary(Body) -> wsgi_run(Module, App, Rest, Body, #{});
        _ -> wsgi_run(Module, App, Environ, <<>>, #{})
    end;
wsgi_run(Module, App, Environ) ->
    wsgi_run(Module, App, Environ, <<>>, #{}).

%% @doc Runs the WSGI application `Module.App' with `Environ' (a map with binary
%% keys; py_web:wsgi_environ/1 adds the defaults) and the request body `Body'.
-spec wsgi_run(py_module(), py_func(), map(), iodata()) -> py_web:answer().
wsgi_run(Module, App, Environ, Body) -> wsgi_run(Module, App, Environ, Body, #{}).

%% @doc As wsgi_run/4 with options (py_options:validate_web/1): `context',
%% `pool', `timeout', `stream' (the body then follows as a stream), `window'.
-spec wsgi_run(py_module(), py_func(), map(), iodata(), map()) -> py_web:answer().
wsgi_run(Module, App, Environ, Body, Opts) ->
    on_web(Opts, fun(Ctx, O) -> py_web:wsgi_run(Ctx, Module, App, Environ, Body, O) end).

%% @doc Runs the ASGI application `Module.App' with `Scope' (a map with atom or
%% binary keys; py_web:asgi_scope/1 adds the defaults) and the request body:
%% `{ok, {200, [{Name, Value}], Body}}'.
-spec asgi_run(py_module(), py_func(), map(), iodata()) -> py_web:answer().
asgi_run(Module, App, Scope, Body) -> asgi_run(Module, App, Scope, Body, #{}).

%% @doc As asgi_run/4 with the options of wsgi_run/5.
-spec asgi_run(py_module(), py_func(), map(), iodata(), map()) -> py_web:answer().
asgi_run(Module, App, Scope, Body, Opts) ->
    on_web(Opts, fun(Ctx, O) -> py_web:asgi_run(Ctx, Module, App, Scope, Body, O) end).

%% An explicit context waits as long as the options say (`infinity' by
%% default), a pool's context as long as the pool's call_timeout.
on_web(Opts0, Fun) ->
    case py_options:validate_web(Opts0) of
        {ok, #{context := Ctx} = Opts} ->
            Fun(Ctx, Opts);
        {ok, Opts} ->
            on_pool(maps:get(pool, Opts, default), maps:get(timeout, Opts, undefined),
                    fun(Ctx, T) -> Fun(Ctx, Opts#{timeout => T}) end);
        Error ->
            Error
    end.

%%% ===========================================================================
%%% Object references
%%% ===========================================================================

%% @doc Calls method `Method' of the referenced object with `Args'.
-spec call_method(tuple(), atom() | binary() | string(), list()) -> py_result().
call_method({py_ref, Ctx, _, _, _} = Ref, Method, Args) when is_pid(Ctx) ->
    case py_args:check([py_args:name("method", Method), py_args:args(Args)]) of
        {ok, [Name, A]} ->
            Self = self(),
            py_request:run(Ctx, Self,
                           fun(Id, Parent) -> py_protocol:method(Id, Self, Parent, Ref, Name, A, #{}) end,
                           infinity, #{op => method, function => Name});
        Error ->
            Error
    end;
call_method(_, _, _) ->
    {error, {badarg, "not an object reference"}}.

%% @doc Attribute `Name' of the referenced object.
-spec getattr(tuple(), atom() | binary() | string()) -> py_result().
getattr({py_ref, Ctx, _, _, _} = Ref, Name0) when is_pid(Ctx) ->
    case py_args:name("attribute", Name0) of
        {error, _} = Error ->
            Error;
        Name ->
            Self = self(),
            py_request:run(Ctx, Self,
                           fun(Id, Parent) -> py_protocol:getattr(Id, Self, Parent, Ref, Name) end,
                           infinity, #{op => getattr, function => Name})
    end;
getattr(_, _) ->
    {error, {badarg, "not an object reference"}}.

%% @doc Releases the referenced object (it is also released when its owner dies).
-spec release(tuple()) -> ok.
release({py_ref, Ctx, _, _, _} = Ref) when is_pid(Ctx) ->
    py_request:send_frame(Ctx, py_protocol:release(Ref));
release(_) ->
    ok.

%%% ===========================================================================
%%% Erlang functions for Python, shared state
%%% ===========================================================================

%% @doc Makes `Fun' (called with the list of arguments) callable from Python as
%% `erlang.call(Name, ...)' or `erlang.Name(...)'.
-spec register_function(atom() | binary(), fun((list()) -> term())) -> ok.
register_function(Name, Fun) when is_function(Fun, 1) -> py_callback:register(Name, Fun).

%% @doc Makes `Module:Function(Args)' callable from Python as `Name'.
-spec register_function(atom() | binary(), module(), atom()) -> ok.
register_function(Name, Module, Function) when is_atom(Module), is_atom(Function) ->
    py_callback:register(Name, {Module, Function}).

%% @doc Removes a registered function.
-spec unregister_function(atom() | binary()) -> ok.
unregister_function(Name) -> py_callback:unregister(Name).

%% @doc Stores `Value' under `Key' in the state shared with every context.
-spec state_store(term(), term()) -> ok.
state_store(Key, Value) -> py_state:store(Key, Value).

%% @doc The value under `Key'.
-spec state_fetch(term()) -> {ok, term()} | {error, not_found}.
state_fetch(Key) -> py_state:fetch(Key).

%% @doc Removes `Key'.
-spec state_remove(term()) -> ok.
state_remove(Key) -> py_state:remove(Key).

%% @doc All keys of the shared state.
-spec state_keys() -> [term()].
state_keys() -> py_state:keys().

%% @doc Empties the shared state.
-spec state_clear() -> ok.
state_clear() -> py_state:clear().

%% @doc Atomically adds 1 (0 if absent); returns the new value.
-spec state_incr(term()) -> integer().
state_incr(Key) -> py_state:incr(Key).

%% @doc Atomically adds `N'; returns the new value.
-spec state_incr(term(), integer()) -> integer().
state_incr(Key, N) -> py_state:incr(Key, N).

%% @doc Atomically subtracts 1; returns the new value.
-spec state_decr(term()) -> integer().
state_decr(Key) -> py_state:decr(Key).

%% @doc Atomically subtracts `N'; returns the new value.
-spec state_decr(term(), integer()) -> integer().
state_decr(Key, N) -> py_state:decr(Key, N).

%%% ===========================================================================
%%% Environment: venv, logging, facts
%%% ===========================================================================

%% @doc Activates the venv at `Path' in every context of the default pool, and in
%% contexts started (or restarted) later.
-spec activate_venv(iodata()) -> ok | {error, term()}.
activate_venv(Path) -> activate_venv(default, Path).

%% @doc Activates a venv in every context of `Pool'.
-spec activate_venv(atom(), iodata()) -> ok | {error, term()}.
activate_venv(Pool, Path) ->
    case py_protocol:code(Path) of
        {error, badarg} ->
            {error, {badarg, "a venv path must be a string or binary"}};
        Bin ->
            Glob = filename:join([Bin, "lib", "python*", "site-packages"]),
            case filelib:wildcard(unicode:characters_to_list(Glob)) of
                [] -> {error, {invalid_venv, Bin}};
                _ -> apply_setting(Pool, venv, Bin)
            end
    end.

%% @doc Deactivates the venv of the default pool.
-spec deactivate_venv() -> ok | {error, term()}.
deactivate_venv() -> deactivate_venv(default).

%% @doc Deactivates the venv of `Pool'.
-spec deactivate_venv(atom()) -> ok | {error, term()}.
deactivate_venv(Pool) -> apply_setting(Pool, venv, none).

%% @doc `{ok, #{active, path, site_packages}}' of the caller's context in the default pool.
-spec venv_info() -> py_result().
venv_info() -> venv_info(default).

%% @doc The venv of `Pool'.
-spec venv_info(atom()) -> py_result().
venv_info(Pool) -> pool_call(Pool, '_pyport', venv_info, [], #{}, undefined).

%% @doc Sends Python `logging' records (level info and up) to Erlang's logger.
-spec configure_logging() -> ok | {error, term()}.
configure_logging() -> configure_logging(#{}).

%% @doc Sends Python `logging' records to Erlang's logger, in every pool.
%% `Opts': `level' (an Erlang logger level, default `info'), `format' (a
%% Python logging format string).
-spec configure_logging(#{level => logger:level() | non_neg_integer(),
                          format => unicode:chardata()}) -> ok | {error, term()}.
configure_logging(Opts) ->
    Level = case maps:find(format, Opts) of
                {ok, Format} -> [python_level(maps:get(level, Opts, info)),
                                 unicode:characters_to_binary(Format)];
                error -> python_level(maps:get(level, Opts, info))
            end,
    Results = [apply_setting(Pool, logging, Level) || Pool <- py_context_router:pools()],
    ok = py_settings:set('$all', logging, Level),   % pools started later
    first_error(Results).

python_level(emergency) -> 50;
python_level(alert) -> 50;
python_level(critical) -> 50;
python_level(error) -> 40;
python_level(warning) -> 30;
python_level(notice) -> 20;
python_level(info) -> 20;
python_level(debug) -> 10;
python_level(N) when is_integer(N) -> N.

%% Applies a setting to the running contexts of a pool, and records it for
%% contexts started later only if every running one accepted it.
apply_setting(Pool, Key, Value) ->
    Results = [py_context:setup(Ctx, #{Key => Value}) || Ctx <- py_context_router:contexts(Pool)],
    case first_error(Results) of
        ok -> py_settings:set(Pool, Key, Value);
        Error -> Error
    end.

first_error(Results) ->
    case [E || {error, _} = E <- Results] of
        [] -> ok;
        [First | _] -> First
    end.

%% @doc The Python version of the caller's context, e.g. `{ok, <<"3.11.2">>}'.
-spec version() -> py_result().
version() -> call(platform, python_version, []).

%% @doc Python memory facts of the caller's context: gc_stats, gc_count,
%% gc_threshold, rss_bytes (the OS process), and traced memory when tracemalloc runs.
-spec memory_stats() -> py_result().
memory_stats() -> call('_pyport', memory_stats, []).

%% @doc A full garbage collection in the caller's context; the number of
%% unreachable objects found.
-spec gc() -> py_result().
gc() -> gc(2).

%% @doc Collects generations up to `Generation' (0..2).
-spec gc(0..2) -> py_result().
gc(Generation) when Generation >= 0, Generation =< 2 -> call(gc, collect, [Generation]).

%%% ===========================================================================
%%% Contexts and pools
%%% ===========================================================================

%% @doc The caller's context in the default pool (bound, else by scheduler).
-spec context() -> pid().
context() -> py_context_router:get_context().

%% @doc The N-th (1-based) context of the default pool.
-spec context(pos_integer()) -> pid().
context(N) -> py_context_router:get_context(N).

%% @doc Whether the default pool is running.
-spec contexts_started() -> boolean().
contexts_started() -> py_context_router:is_started().

%% @doc Starts the default pool (one context per scheduler, at least 2).
-spec start_contexts() -> {ok, [pid()]} | {error, term()}.
start_contexts() -> py_context_router:start().

%% @doc Starts the default pool with options (`contexts' = size).
-spec start_contexts(py_context_router:start_opts()) -> {ok, [pid()]} | {error, term()}.
start_contexts(Opts) -> py_context_router:start(Opts).

%% @doc Stops the default pool.
-spec stop_contexts() -> ok.
stop_contexts() -> py_context_router:stop().

%% @doc Routes calls of `Module' (or of `{Module, Func}') to `Pool'.
-spec register_pool(atom(), atom() | binary() | {atom() | binary(), atom() | binary()}) -> ok.
register_pool(Pool, {Module, Func}) -> py_context_router:register_pool(Pool, Module, Func);
register_pool(Pool, Module) -> py_context_router:register_pool(Pool, Module).

%% @doc Removes a registration made with register_pool/2.
-spec unregister_pool(atom() | binary() | {atom() | binary(), atom() | binary()}) -> ok.
unregister_pool({Module, Func}) -> py_context_router:unregister_pool(Module, Func);
unregister_pool(Module) -> py_context_router:unregister_pool(Module).

%% @doc The last Python exception seen by the calling process, as
%% `#{type, message, traceback}' (strings), or `undefined'.
-spec last_error() -> map() | undefined.
last_error() -> get(pyport_last_error).

%%% ===========================================================================
%%% Internals
%%% ===========================================================================

routed(Pool) ->
    try
        {ok, py_context_router:get_context(Pool)}
    catch
        error:{pool_not_started, _} = Reason -> {error, Reason};
        error:{no_contexts, _} = Reason -> {error, Reason}
    end.

timeout(Pool, undefined) -> py_context_router:call_timeout(Pool);
timeout(_, Timeout) -> Timeout.

%%% ===========================================================================
%%% erlang_python 2.x: asyncio names
%%% ===========================================================================

%% @doc spawn_call/3 under erlang_python's asyncio name: an `async def' function
%% is awaited on the context's event loop, so such calls interleave.
-spec async_call(py_module(), py_func(), list()) -> reference().
async_call(Module, Func, Args) -> spawn_call(Module, Func, Args).

%% @doc async_call/3 with keyword arguments.
-spec async_call(py_module(), py_func(), list(), map()) -> reference().
async_call(Module, Func, Args, Kwargs) -> spawn_call(Module, Func, Args, Kwargs).

%% @doc await/1 for async_call/3,4.
-spec async_await(reference()) -> py_result().
async_await(Ref) -> await(Ref).

%% @doc await/2 for async_call/3,4.
-spec async_await(reference(), timeout()) -> py_result().
async_await(Ref, Timeout) -> await(Ref, Timeout).

%% @doc Runs the calls at once on the caller's context (coroutines interleave);
%% `{ok, Results}' in order, or the first error.
-spec async_gather([{py_module(), py_func(), list()}]) -> py_result().
async_gather(Calls) ->
    Refs = [spawn_call(M, F, A) || {M, F, A} <- Calls],
    Results = [await(Ref) || Ref <- Refs],
    case [E || {error, _} = E <- Results] of
        [] -> {ok, [V || {ok, V} <- Results]};
        [E | _] -> E
    end.

%% @doc All the items of an (async) generator, as stream/3.
-spec async_stream(py_module(), py_func(), list()) -> py_result().
async_stream(Module, Func, Args) -> stream(Module, Func, Args).

%% @doc As async_stream/3 with keyword arguments.
-spec async_stream(py_module(), py_func(), list(), map()) -> py_result().
async_stream(Module, Func, Args, Kwargs) -> stream(Module, Func, Args, Kwargs).

%%% ===========================================================================
%%% erlang_python 2.x: subinterpreter handles (each a context of its own)
%%% ===========================================================================

%% @doc True: every context is an interpreter of its own with its own GIL,
%% running in parallel with the others (see py_compat).
-spec subinterp_supported() -> true.
subinterp_supported() -> true.

%% @doc `{ok, Handle}' for a new context of its own (under py_context_sup).
-spec subinterp_create() -> {ok, reference()} | {error, term()}.
subinterp_create() -> py_compat:subinterp_create().

%% @doc Stops a handle's context.
-spec subinterp_destroy(reference()) -> ok.
subinterp_destroy(Handle) -> py_compat:subinterp_destroy(Handle).

%% @doc call/4 on a handle's context.
-spec subinterp_call(reference(), py_module(), py_func(), list()) -> py_result().
subinterp_call(Handle, Module, Func, Args) -> subinterp_call(Handle, Module, Func, Args, #{}).

%% @doc call/5 on a handle's context, with keyword arguments.
-spec subinterp_call(reference(), py_module(), py_func(), list(), map()) -> py_result().
subinterp_call(Handle, Module, Func, Args, Kwargs) ->
    with_handle(Handle, fun(Ctx) -> py_context:call(Ctx, Module, Func, Args, Kwargs) end).

%% @doc eval/2 on a handle's context.
-spec subinterp_eval(reference(), iodata()) -> py_result().
subinterp_eval(Handle, Code) -> subinterp_eval(Handle, Code, #{}).

%% @doc eval/3 on a handle's context.
-spec subinterp_eval(reference(), iodata(), map()) -> py_result().
subinterp_eval(Handle, Code, Locals) ->
    with_handle(Handle, fun(Ctx) -> py_context:eval(Ctx, Code, Locals) end).

%% @doc exec/2 on a handle's context.
-spec subinterp_exec(reference(), iodata()) -> ok | {error, term()}.
subinterp_exec(Handle, Code) ->
    with_handle(Handle, fun(Ctx) -> py_context:exec(Ctx, Code) end).

%% @doc cast/4 on a handle's context.
-spec subinterp_cast(reference(), py_module(), py_func(), list()) -> ok.
subinterp_cast(Handle, Module, Func, Args) ->
    _ = with_handle(Handle, fun(Ctx) -> cast(Ctx, Module, Func, Args) end),
    ok.

%% @doc Starts a call on a handle's context; subinterp_await/1,2 gives its result.
-spec subinterp_async_call(reference(), py_module(), py_func(), list()) -> reference().
subinterp_async_call(Handle, Module, Func, Args) ->
    Caller = self(),
    Ref = make_ref(),
    _ = spawn(fun() ->
                      Result = with_handle(Handle, fun(Ctx) ->
                                   py_context:call_as(Ctx, Caller, Module, Func, Args, #{},
                                                      infinity)
                               end),
                      Caller ! {py_subinterp_result, Ref, Result}
              end),
    Ref.

%% @doc The result of subinterp_async_call/4 (waits up to 30 s).
-spec subinterp_await(reference()) -> py_result().
subinterp_await(Ref) -> subinterp_await(Ref, 30000).

%% @doc The result of subinterp_async_call/4, waiting at most `Timeout' ms.
-spec subinterp_await(reference(), timeout()) -> py_result().
subinterp_await(Ref, Timeout) ->
    receive {py_subinterp_result, Ref, Result} -> Result
    after Timeout -> {error, timeout}
    end.

%% @doc Makes handles available (each handle starts its own context).
-spec subinterp_pool_start() -> ok.
subinterp_pool_start() -> py_compat:subinterp_pool_start().

%% @doc As subinterp_pool_start/0 (the size does not apply: one context per handle).
-spec subinterp_pool_start(non_neg_integer()) -> ok.
subinterp_pool_start(_NumWorkers) -> py_compat:subinterp_pool_start().

%% @doc Stops every handle's context.
-spec subinterp_pool_stop() -> ok.
subinterp_pool_stop() -> py_compat:subinterp_pool_stop().

%% @doc Whether subinterp_pool_start/0,1 was called.
-spec subinterp_pool_ready() -> boolean().
subinterp_pool_ready() -> py_compat:subinterp_pool_ready().

%% @doc `#{num_workers, active_handles, ready}'.
-spec subinterp_pool_stats() -> map().
subinterp_pool_stats() -> py_compat:subinterp_pool_stats().

with_handle(Handle, Fun) ->
    case py_compat:subinterp_ctx(Handle) of
        {ok, Ctx} -> Fun(Ctx);
        Error -> Error
    end.

%%% ===========================================================================
%%% erlang_python 2.x: environment, facts, tracing, references
%%% ===========================================================================

%% @doc Creates the venv at `Path' if needed, installs `Requirements' into it and
%% activates it in the default pool (see py_compat:ensure_venv/3).
-spec ensure_venv(iodata(), iodata()) -> ok | {error, term()}.
ensure_venv(Path, Requirements) -> ensure_venv(Path, Requirements, []).

%% @doc As ensure_venv/2 with options: `force', `{installer, pip | uv}',
%% `{python, Exe}', `{extras, [Name]}'.
-spec ensure_venv(iodata(), iodata(), list()) -> ok | {error, term()}.
ensure_venv(Path, Requirements, Opts) ->
    py_compat:ensure_venv(Path, Requirements, Opts,
                          #{activate => fun activate_venv/1,
                            python => fun() -> eval(<<"__import__('sys').executable">>) end}).

%% @doc A reference naming the caller's environment on `Ctx' (environments are
%% per process in pyport; py_context:call/7 and friends take it).
-spec get_local_env(pid()) -> reference().
get_local_env(Ctx) -> py_env_refs:local_env(Ctx).

%% @doc `subinterp': each context has its own interpreter and GIL (see py_compat).
-spec execution_mode() -> free_threaded | subinterp | multi_executor.
execution_mode() -> py_compat:execution_mode().

%% @doc The number of contexts of the default pool.
-spec num_executors() -> pos_integer().
num_executors() -> py_compat:num_executors().

%% @doc importlib.reload of `Module' in every running context that imported it.
-spec reload(py_module()) -> ok | {error, [{context, term()}]}.
reload(Module) -> py_compat:reload(Module).

%% @doc Starts keeping the spans Python code creates (erlang.Span, @erlang.trace).
-spec enable_tracing() -> ok.
enable_tracing() ->
    ok = py_trace:enable(),
    py_compat:set_tracing(true).

%% @doc Stops keeping spans (contexts stop sending them).
-spec disable_tracing() -> ok.
disable_tracing() ->
    ok = py_trace:disable(),
    py_compat:set_tracing(false).

%% @doc `{ok, Spans}' in completion order (see py_trace:spans/0 for their shape).
-spec get_traces() -> {ok, [map()]}.
get_traces() -> py_trace:spans().

%% @doc Forgets the spans kept so far.
-spec clear_traces() -> ok.
clear_traces() -> py_trace:clear().

%% @doc The referenced object converted to a term.
-spec to_term(tuple()) -> py_result().
to_term(Ref) -> py_context:to_term(Ref).

%% @doc Whether `Term' is a Python object reference.
-spec is_ref(term()) -> boolean().
is_ref(Term) -> py_compat:is_ref(Term).

%% @doc Not available in pyport: `{error, {not_supported, Why}}'.
-spec dup_fd(integer()) -> {ok, integer()} | {error, term()}.
dup_fd(Fd) -> py_compat:dup_fd(Fd).

%% @doc tracemalloc.start() in every running context (memory_stats/0 then has
%% traced_memory_current and traced_memory_peak).
-spec tracemalloc_start() -> ok | {error, term()}.
tracemalloc_start() -> tracemalloc_start(1).

%% @doc tracemalloc.start(NFrame) in every running context.
-spec tracemalloc_start(pos_integer()) -> ok | {error, term()}.
tracemalloc_start(NFrame) when is_integer(NFrame), NFrame > 0 ->
    py_compat:tracemalloc_start(NFrame).

%% @doc tracemalloc.stop() in every running context.
-spec tracemalloc_stop() -> ok | {error, term()}.
tracemalloc_stop() -> py_compat:tracemalloc_stop().

%%% ===========================================================================
%%% erlang_python 2.x: SharedDict (py_shared_dict)
%%% ===========================================================================

%% @doc `{ok, Handle}' of a new dictionary shared with every context (Python:
%% `erlang.SharedDict(handle)').
-spec shared_dict_new() -> {ok, reference()}.
shared_dict_new() -> py_shared_dict:new().

%% @doc The value under `Key', or `undefined'.
-spec shared_dict_get(reference(), binary()) -> term().
shared_dict_get(Handle, Key) -> shared_dict_get(Handle, Key, undefined).

%% @doc The value under `Key', or `Default'.
-spec shared_dict_get(reference(), binary(), term()) -> term().
shared_dict_get(Handle, Key, Default) when is_binary(Key) ->
    py_shared_dict:get(Handle, Key, Default).

%% @doc Stores `Value' under `Key'.
-spec shared_dict_set(reference(), binary(), term()) -> ok.
shared_dict_set(Handle, Key, Value) when is_binary(Key) ->
    py_shared_dict:set(Handle, Key, Value).

%% @doc Removes `Key'.
-spec shared_dict_del(reference(), binary()) -> ok.
shared_dict_del(Handle, Key) when is_binary(Key) ->
    py_shared_dict:del(Handle, Key).

%% @doc The keys.
-spec shared_dict_keys(reference()) -> [binary()].
shared_dict_keys(Handle) -> py_shared_dict:keys(Handle).

%% @doc Empties and invalidates the dictionary (later operations raise badarg).
-spec shared_dict_destroy(reference()) -> ok.
shared_dict_destroy(Handle) -> py_shared_dict:destroy(Handle).
