%% @private
%% @doc The task part of erlang_python 2.x's py_event_loop_pool, built on pyport's
%% requests: a task is a call in the caller's environment on the caller's
%% context, awaited on that context's event loop when it is a coroutine. A
%% "session" is a context of the default pool (each an interpreter with its own
%% GIL). A "loop" is a context's asyncio loop, named as py_event_loop names it;
%% exec/eval run in the caller's environment on that context.
-module(py_event_loop_pool).

-export([create_task/3, create_task/4, spawn_task/3, spawn_task/4, run/3, run/4,
         await/1, await/2, get_all_sessions/0, is_owngil_enabled/0,
         get_loop/0, get_stats/0, exec/1, eval/1]).

%% await/1 waits this long, as in erlang_python.
-define(AWAIT_TIMEOUT, 5000).
%% run/3,4 wait this long for the task.
-define(RUN_TIMEOUT, 30000).

%% @doc Starts `Module.Func(*Args)'; await/1,2 gives `{ok, Result}' or `{error, _}'.
-spec create_task(atom() | binary(), atom() | binary(), list()) -> reference().
create_task(Module, Func, Args) -> create_task(Module, Func, Args, #{}).

%% @doc create_task/3 with keyword arguments.
-spec create_task(atom() | binary(), atom() | binary(), list(), map()) -> reference().
create_task(Module, Func, Args, Kwargs) ->
    Caller = self(),
    Ref = make_ref(),
    Ctx = py_context_router:get_context(py_context_router:lookup_pool(Module, Func)),
    _ = spawn(fun() ->
                      Result = py_context:call_as(Ctx, Caller, Module, Func, Args, Kwargs,
                                                  infinity),
                      Caller ! {async_result, Ref, Result}
              end),
    Ref.

%% @doc Starts `Module.Func(*Args)' and forgets its result.
-spec spawn_task(atom() | binary(), atom() | binary(), list()) -> ok.
spawn_task(Module, Func, Args) -> spawn_task(Module, Func, Args, #{}).

%% @doc spawn_task/3 with keyword arguments.
-spec spawn_task(atom() | binary(), atom() | binary(), list(), map()) -> ok.
spawn_task(Module, Func, Args, Kwargs) ->
    py:cast(Module, Func, Args, Kwargs).

%% @doc create_task/3 and await its result.
-spec run(atom() | binary(), atom() | binary(), list()) -> {ok, term()} | {error, term()}.
run(Module, Func, Args) -> run(Module, Func, Args, #{}).

%% @doc run/3 with keyword arguments.
-spec run(atom() | binary(), atom() | binary(), list(), map()) -> {ok, term()} | {error, term()}.
run(Module, Func, Args, Kwargs) ->
    await(create_task(Module, Func, Args, Kwargs), ?RUN_TIMEOUT).

%% @doc The result of create_task/3,4 (waits up to 5 s).
-spec await(reference()) -> {ok, term()} | {error, term()}.
await(Ref) -> await(Ref, ?AWAIT_TIMEOUT).

%% @doc The result of create_task/3,4, waiting at most `Timeout' ms.
-spec await(reference(), timeout()) -> {ok, term()} | {error, term()}.
await(Ref, Timeout) ->
    receive {async_result, Ref, Result} -> Result
    after Timeout -> {error, timeout}
    end.

%% @doc `[{Index, Context}]' of the default pool.
-spec get_all_sessions() -> [{pos_integer(), pid()}].
get_all_sessions() ->
    Ctxs = py_context_router:contexts(default),
    lists:zip(lists:seq(1, length(Ctxs)), Ctxs).

%% @doc True: every task runs on an interpreter with its own GIL.
-spec is_owngil_enabled() -> true.
is_owngil_enabled() -> true.

%% @doc The caller's loop (py_event_loop:get_loop/0): the same reference for a
%% process as long as it keeps its context.
-spec get_loop() -> {ok, reference()}.
get_loop() -> py_event_loop:get_loop().

%% @doc `num_loops' (contexts of the default pool, each with its own loop) and
%% `supported' (true).
-spec get_stats() -> #{num_loops := non_neg_integer(), supported := true}.
get_stats() ->
    #{num_loops => length(py_context_router:contexts(default)), supported => true}.

%% @doc Runs Python statements in the caller's environment on its loop's context.
-spec exec(iodata()) -> ok | {error, term()}.
exec(Code) -> py_event_loop:exec(Code).

%% @doc Evaluates an expression in the caller's environment on its loop's context.
-spec eval(iodata()) -> {ok, term()} | {error, term()}.
eval(Code) -> py_event_loop:eval(Code).
