%% @doc erlang_python 2.x's `py_event_loop' task API, built on pyport's requests.
%% Every context runs its own asyncio loop in its own OS process, so "the event
%% loop" of a calling process is the loop of its context: the context it last
%% made a request on for itself (where the names it defined with py:exec live),
%% else the context the router binds it to. A loop reference (get_loop/0) names
%% that context. A task is a request in the caller's environment; a coroutine
%% function's result is awaited on the context's loop. The NIF's loop internals
%% (fd and timer resources, py_nif:event_loop_*) have no counterpart here
%% (docs/migration.md).
-module(py_event_loop).

-export([new_table/0, get_loop/0, context/0, context_of/1,
         create_task/3, create_task/4, await/1, await/2, run/3, run/4,
         spawn_task/3, spawn_task/4, run_async/2,
         exec/1, exec/2, eval/1, eval/2,
         get_process_env/0, register_callbacks/0]).

-define(TABLE, py_event_loops).
%% await/1 waits this long, as in erlang_python.
-define(AWAIT_TIMEOUT, 5000).
%% run/3,4 wait this long unless `timeout' says otherwise, as in erlang_python.
-define(RUN_TIMEOUT, 5000).

%% @doc Creates the table of loop references (once, by the application's top
%% supervisor): `{Context, Ref}' and `{Ref, Context}'.
-spec new_table() -> ok.
new_table() ->
    _ = ets:new(?TABLE, [named_table, public, set, {read_concurrency, true}]),
    ok.

%% @doc The loop of the calling process: a reference naming its context
%% (the same reference for the same context, for as long as the context runs).
-spec get_loop() -> {ok, reference()}.
get_loop() ->
    {ok, loop_ref(context())}.

%% @doc The context whose loop the calling process uses (see the module doc).
-spec context() -> pid().
context() ->
    case py_request:last_context() of
        Ctx when is_pid(Ctx) ->
            case node(Ctx) =/= node() orelse is_process_alive(Ctx) of
                true -> Ctx;
                false -> py_context_router:get_context()
            end;
        undefined ->
            py_context_router:get_context()
    end.

%% @doc The context a loop reference of get_loop/0 names.
-spec context_of(reference()) -> {ok, pid()} | {error, unknown_loop}.
context_of(Ref) ->
    case ets:lookup(?TABLE, Ref) of
        [{_, Ctx}] -> {ok, Ctx};
        [] -> {error, unknown_loop}
    end.

loop_ref(Ctx) ->
    case ets:lookup(?TABLE, Ctx) of
        [{_, Ref}] ->
            Ref;
        [] ->
            New = make_ref(),
            case ets:insert_new(?TABLE, {Ctx, New}) of
                true ->
                    true = ets:insert(?TABLE, {New, Ctx}),
                    forget_when_down(Ctx, New),
                    New;
                false ->
                    loop_ref(Ctx)
            end
    end.

%% The reference of a context lives as long as the context: a small process
%% drops both rows when it stops (or its node goes away).
forget_when_down(Ctx, Ref) ->
    _ = spawn(fun() ->
                      Mref = erlang:monitor(process, Ctx),
                      receive {'DOWN', Mref, process, _, _} -> ok end,
                      ets:delete(?TABLE, Ref),
                      ets:delete_object(?TABLE, {Ctx, Ref})
              end),
    ok.

%% @doc Starts `Module.Func(*Args)' (awaited if it is a coroutine function) in
%% the caller's environment on its context; await/1,2 give the result.
-spec create_task(atom() | binary(), atom() | binary(), list()) -> reference().
create_task(Module, Func, Args) -> create_task(Module, Func, Args, #{}).

%% @doc create_task/3 with keyword arguments.
-spec create_task(atom() | binary(), atom() | binary(), list(), map()) -> reference().
create_task(Module, Func, Args, Kwargs) ->
    Ref = make_ref(),
    submit(context(), self(), Ref, Module, Func, Args, Kwargs),
    Ref.

%% Runs the task in a process of its own, in the environment of EnvPid, and
%% sends `{async_result, Ref, Result}' to ReplyTo.
submit(Ctx, EnvPid, Ref, Module, Func, Args, Kwargs) ->
    _ = spawn(fun() ->
                      Result = py_context:call_as(Ctx, EnvPid, Module, Func, Args, Kwargs, infinity),
                      EnvPid ! {async_result, Ref, Result}
              end),
    ok.

%% @doc The result of create_task/3,4 (waits up to 5 s).
-spec await(reference()) -> {ok, term()} | {error, term()}.
await(Ref) -> await(Ref, ?AWAIT_TIMEOUT).

%% @doc The result of create_task/3,4, waiting at most `Timeout' ms; `{error,
%% timeout}' leaves the task running (its late result is then discarded by
%% nobody: it stays in the mailbox, as in erlang_python).
-spec await(reference(), timeout()) -> {ok, term()} | {error, term()}.
await(Ref, Timeout) ->
    receive {async_result, Ref, Result} -> Result
    after Timeout -> {error, timeout}
    end.

%% @doc create_task/3 and await it (5 s).
-spec run(atom() | binary(), atom() | binary(), list()) -> {ok, term()} | {error, term()}.
run(Module, Func, Args) -> run(Module, Func, Args, #{}).

%% @doc run/3 with options `timeout' (ms, default 5000) and `kwargs'.
-spec run(atom() | binary(), atom() | binary(), list(), #{timeout => timeout(), kwargs => map()}) ->
    {ok, term()} | {error, term()}.
run(Module, Func, Args, Opts) ->
    await(create_task(Module, Func, Args, maps:get(kwargs, Opts, #{})),
          maps:get(timeout, Opts, ?RUN_TIMEOUT)).

%% @doc Starts `Module.Func(*Args)' in the caller's environment and forgets it.
-spec spawn_task(atom() | binary(), atom() | binary(), list()) -> ok.
spawn_task(Module, Func, Args) -> spawn_task(Module, Func, Args, #{}).

%% @doc spawn_task/3 with keyword arguments.
-spec spawn_task(atom() | binary(), atom() | binary(), list(), map()) -> ok.
spawn_task(Module, Func, Args, Kwargs) ->
    Ctx = context(),
    Caller = self(),
    _ = spawn(fun() -> py_context:call_as(Ctx, Caller, Module, Func, Args, Kwargs, infinity) end),
    ok.

%% @doc erlang_python's low-level submission: runs `module.func(*args, **kwargs)'
%% of `Request' on the loop `LoopRef' and sends `{async_result, Ref, Result}' to
%% `caller'.
-spec run_async(reference(), #{ref := reference(), caller := pid(), module := atom() | binary(),
                               func := atom() | binary(), args := list(), kwargs => map()}) ->
    ok | {error, unknown_loop}.
run_async(LoopRef, #{ref := Ref, caller := Caller, module := M, func := F, args := A} = Req) ->
    case context_of(LoopRef) of
        {ok, Ctx} -> submit(Ctx, Caller, Ref, M, F, A, maps:get(kwargs, Req, #{}));
        Error -> Error
    end.

%% @doc Runs Python statements in the caller's environment on its loop's context.
-spec exec(iodata()) -> ok | {error, term()}.
exec(Code) -> py_context:exec(context(), Code).

%% @doc exec/1 on the context of `LoopRef'.
-spec exec(reference(), iodata()) -> ok | {error, term()}.
exec(LoopRef, Code) ->
    case context_of(LoopRef) of
        {ok, Ctx} -> py_context:exec(Ctx, Code);
        Error -> Error
    end.

%% @doc Evaluates an expression in the caller's environment on its loop's context.
-spec eval(iodata()) -> {ok, term()} | {error, term()}.
eval(Code) -> py_context:eval(context(), Code).

%% @doc eval/1 on the context of `LoopRef'.
-spec eval(reference(), iodata()) -> {ok, term()} | {error, term()}.
eval(LoopRef, Code) ->
    case context_of(LoopRef) of
        {ok, Ctx} -> py_context:eval(Ctx, Code);
        Error -> Error
    end.

%% @doc Always `undefined': an environment is a (context, process) pair that
%% needs no handle (the context of the caller's loop has it).
-spec get_process_env() -> undefined.
get_process_env() -> undefined.

%% @doc Nothing to register: `_py_sleep' and the other callbacks erlang_python
%% registers are built in (py_callback).
-spec register_callbacks() -> ok.
register_callbacks() -> ok.
