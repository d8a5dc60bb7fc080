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
         context/0, context/1, contexts_started/0,
         start_contexts/0, start_contexts/1, stop_contexts/0,
         register_pool/2, unregister_pool/1,
         last_error/0]).

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
