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

pool_call(Pool, Module, Func, Args, Kwargs, Timeout) ->
    case routed(Pool) of
        {ok, Ctx} ->
            py_context:call(Ctx, Module, Func, Args, Kwargs, timeout(Pool, Timeout));
        Error ->
            Error
    end.

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
    eval(Code, Locals, undefined).

%% @doc `eval(Ctx, Code, Locals)' on an explicit context, or
%% `eval(Code, Locals, Timeout)'.
-spec eval(pid(), iodata(), map()) -> py_result()
        ; (iodata(), map(), timeout()) -> py_result().
eval(Ctx, Code, Locals) when is_pid(Ctx) ->
    py_context:eval(Ctx, Code, Locals, infinity);
eval(Code, Locals, Timeout) ->
    case routed(default) of
        {ok, Ctx} -> py_context:eval(Ctx, Code, Locals, timeout(default, Timeout));
        Error -> Error
    end.

%% @doc Evaluates on an explicit context with a timeout.
-spec eval(pid(), iodata(), map(), timeout()) -> py_result().
eval(Ctx, Code, Locals, Timeout) when is_pid(Ctx) ->
    py_context:eval(Ctx, Code, Locals, Timeout).

%% @doc Executes Python statements on the caller's context.
-spec exec(iodata()) -> ok | {error, term()}.
exec(Code) ->
    case routed(default) of
        {ok, Ctx} -> py_context:exec(Ctx, Code, timeout(default, undefined));
        Error -> Error
    end.

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
    Pool = py_context_router:lookup_pool(Module, Func),
    case routed(Pool) of
        {ok, Ctx} -> do_cast(Ctx, Module, Func, Args, Kwargs, timeout(Pool, undefined));
        {error, Reason} -> ?LOG_WARNING("py:cast ~0p:~0p: ~0p", [Module, Func, Reason])
    end,
    ok.

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
    Pool = py_context_router:lookup_pool(Module, Func),
    case routed(Pool) of
        {ok, Ctx} -> do_spawn_call(Ctx, Module, Func, Args, Kwargs, timeout(Pool, undefined));
        Error -> answered(Error)
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
    Pool = py_context_router:lookup_pool(Module, Func),
    case routed(Pool) of
        {ok, Ctx} ->
            py_stream:collect(py_stream:start(Ctx, Module, Func, Args, #{kwargs => Kwargs}),
                              timeout(Pool, undefined), []);
        Error ->
            Error
    end.

%% @doc All the items of the iterable the expression `Code' evaluates to.
-spec stream_eval(iodata()) -> py_result().
stream_eval(Code) -> stream_eval(Code, #{}).

%% @doc As stream_eval/1 with locals.
-spec stream_eval(iodata(), map()) -> py_result().
stream_eval(Code, Locals) ->
    case routed(default) of
        {ok, Ctx} ->
            py_stream:collect(py_stream:start_eval(Ctx, Code, Locals, #{}),
                              timeout(default, undefined), []);
        Error ->
            Error
    end.

%% @doc Starts a stream; the caller receives `{py_stream, Ref, {data, V}}', then
%% `{py_stream, Ref, done}' or `{py_stream, Ref, {error, E}}'.
-spec stream_start(py_module(), py_func(), list()) -> {ok, reference()} | {error, term()}.
stream_start(Module, Func, Args) -> stream_start(Module, Func, Args, #{}).

%% @doc As stream_start/3. `Opts': `context' (explicit context), `kwargs',
%% `window' (items the port may send ahead of delivery, default 16).
-spec stream_start(py_module(), py_func(), list(), map()) -> {ok, reference()} | {error, term()}.
stream_start(Module, Func, Args, Opts) ->
    case maps:find(context, Opts) of
        {ok, Ctx} ->
            py_stream:start(Ctx, Module, Func, Args, Opts);
        error ->
            case routed(py_context_router:lookup_pool(Module, Func)) of
                {ok, Ctx} -> py_stream:start(Ctx, Module, Func, Args, Opts);
                Error -> Error
            end
    end.

%% @doc Stops a stream; afterwards no message for `Ref' is in the mailbox or will arrive.
-spec stream_cancel(reference()) -> ok.
stream_cancel(Ref) -> py_stream:cancel(Ref).

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
                           infinity);
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
                           infinity)
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
%% `Opts': `level' (an Erlang logger level, default `info').
-spec configure_logging(map()) -> ok | {error, term()}.
configure_logging(Opts) ->
    Level = python_level(maps:get(level, Opts, info)),
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
-spec start_contexts(map()) -> {ok, [pid()]} | {error, term()}.
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
        error:{pool_not_started, _} = Reason -> {error, Reason}
    end.

timeout(Pool, undefined) -> py_context_router:call_timeout(Pool);
timeout(_, Timeout) -> Timeout.
