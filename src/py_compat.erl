%% @private
%% @doc The parts of erlang_python 2.x's API that have no NIF to call in pyport,
%% answered with what is true of pyport (called from py, py_context and py_nif).
%%
%% "Subinterpreters": every pyport context is an interpreter of its own, with its
%% own GIL, in its own OS process, running in parallel with the others. Nothing
%% is shared between contexts: not memory, not `sys.modules', not C extension
%% state (what is shared is what Erlang shares: py:state_*, SharedDict,
%% registered functions). So subinterp_supported/0 and is_subinterp/1 are true,
%% execution_mode/0 is `subinterp', and the py:subinterp_* handles are contexts
%% of their own. An interpreter id is the OS pid of the context's current Python
%% process (it changes when the process is restarted, as the interpreter does).
-module(py_compat).

-export([new_tables/0, execution_mode/0, num_executors/0, reload/1,
         tracemalloc_start/1, tracemalloc_stop/0, set_tracing/1, is_ref/1, dup_fd/1,
         debug_counters/0,
         subinterp_create/0, subinterp_destroy/1, subinterp_ctx/1, subinterp_pool_start/0,
         subinterp_pool_stop/0, subinterp_pool_ready/0, subinterp_pool_stats/0,
         ensure_venv/4, stream_start/6]).

-define(SUBINTERPS, py_subinterps).
-define(SUBINTERP_POOL, {?MODULE, subinterp_pool}).
%% Stream items the port may send ahead of acknowledgements (as py_stream).
-define(STREAM_WINDOW, 16).
%% Waits for the calls that a broadcast (reload, tracemalloc) makes on every
%% running context.
-define(BROADCAST_TIMEOUT, 30000).
%% How long one step of ensure_venv (creating the venv, installing the
%% requirements) may take.
-define(VENV_STEP_TIMEOUT, 900000).

%% @doc Creates the table of subinterpreter handles (once, by the application's
%% top supervisor).
-spec new_tables() -> ok.
new_tables() ->
    _ = ets:new(?SUBINTERPS, [named_table, public, set, {read_concurrency, true}]),
    ok.

%% @doc `subinterp': each context has its own interpreter and GIL and runs in
%% parallel with the others.
-spec execution_mode() -> subinterp.
execution_mode() -> subinterp.

%% @doc How many contexts can run Python at once for routed calls: the size of
%% the default pool (1 when it is not started).
-spec num_executors() -> pos_integer().
num_executors() -> max(1, py_context_router:num_contexts(default)).

%% @doc `importlib.reload' of `Module' in every running context that has it
%% imported (pools and contexts of their own).
-spec reload(atom() | binary() | string()) -> ok | {error, [{context, term()}]}.
reload(Module) ->
    Name = name(Module),
    Code = <<"__import__('importlib').reload(__import__('sys').modules[m]) "
             "if m in __import__('sys').modules else None">>,
    Results = broadcast(fun(Ctx) -> py_context:eval(Ctx, Code, #{m => Name}) end),
    case [{context, E} || {error, E} <- Results] of
        [] -> ok;
        Errors -> {error, Errors}
    end.

%% @doc tracemalloc.start(NFrame) in every running context.
-spec tracemalloc_start(pos_integer()) -> ok | {error, term()}.
tracemalloc_start(NFrame) ->
    first_error(broadcast(fun(Ctx) -> py_context:call(Ctx, tracemalloc, start, [NFrame]) end)).

%% @doc tracemalloc.stop() in every running context.
-spec tracemalloc_stop() -> ok | {error, term()}.
tracemalloc_stop() ->
    first_error(broadcast(fun(Ctx) -> py_context:call(Ctx, tracemalloc, stop, []) end)).

%% @doc Tells every running context whether spans are kept (each caches it).
-spec set_tracing(boolean()) -> ok.
set_tracing(On) ->
    _ = broadcast(fun(Ctx) -> py_context:call(Ctx, '_erlang_compat', set_tracing, [On]) end),
    ok.

broadcast(Fun) ->
    Parent = self(),
    Tag = make_ref(),
    Ctxs = py_interpreters:running(),
    Pids = [spawn(fun() -> Parent ! {Tag, self(), catch Fun(Ctx)} end) || Ctx <- Ctxs],
    [receive {Tag, Pid, R} -> R after ?BROADCAST_TIMEOUT -> {error, timeout} end
     || Pid <- Pids].

first_error(Results) ->
    case [E || {error, _} = E <- Results] of
        [] -> ok;
        [E | _] -> E
    end.

%% @doc Whether `Term' is a Python object reference.
-spec is_ref(term()) -> boolean().
is_ref({py_ref, Ctx, _, _, _}) when is_pid(Ctx) -> true;
is_ref(_) -> false.

%% @doc Not available: a descriptor of the node means nothing to the Python
%% processes (pass a path, a port number or a socket address instead).
-spec dup_fd(integer()) -> {error, term()}.
dup_fd(Fd) when is_integer(Fd) ->
    {error, {not_supported, <<"a pyport context is another OS process: file descriptors "
                              "of the node cannot be handed to it">>}}.

%% @doc What erlang_python's debug counters count, measured in pyport:
%% `ctx_created'/`ctx_destroyed' interpreters (OS processes) started and ended,
%% `enqueue_count' requests answered plus waiting, `complete_count' answered,
%% `rejected_count' routed calls refused by py_semaphore; `contexts' running.
%% pyport never takes a GIL from a BEAM thread nor suspends a request, so
%% `gil_ensure', `gil_release', `suspended_created' and `suspended_destroyed'
%% are 0.
-spec debug_counters() -> map().
debug_counters() ->
    Ctxs = py_interpreters:running(),
    Infos = [I || Ctx <- Ctxs, is_map(I = (catch py_context:info(Ctx)))],
    Calls = lists:sum([maps:get(calls, I, 0) || I <- Infos]),
    Queued = lists:sum([maps:get(queue_len, I, 0) || I <- Infos]),
    #{created := Created, destroyed := Destroyed} = py_interpreters:counts(),
    #{ctx_created => Created, ctx_destroyed => Destroyed,
      enqueue_count => Calls + Queued, complete_count => Calls,
      rejected_count => py_semaphore:rejected(), contexts => length(Ctxs),
      gil_ensure => 0, gil_release => 0, suspended_created => 0, suspended_destroyed => 0}.

%%% ===========================================================================
%%% py:subinterp_*: handles that are contexts of their own
%%% ===========================================================================

%% @doc Marks the handle API ready (contexts are started per handle).
-spec subinterp_pool_start() -> ok.
subinterp_pool_start() ->
    persistent_term:put(?SUBINTERP_POOL, true),
    ok.

%% @doc Stops every handle's context.
-spec subinterp_pool_stop() -> ok.
subinterp_pool_stop() ->
    [subinterp_destroy(Ref) || {Ref, _} <- handles()],
    _ = persistent_term:erase(?SUBINTERP_POOL),
    ok.

%% @doc Whether subinterp_pool_start/0 was called.
-spec subinterp_pool_ready() -> boolean().
subinterp_pool_ready() -> persistent_term:get(?SUBINTERP_POOL, false).

%% @doc `#{num_workers, active_handles}': one context per handle.
-spec subinterp_pool_stats() -> map().
subinterp_pool_stats() ->
    N = length(handles()),
    #{num_workers => N, active_handles => N, ready => subinterp_pool_ready()}.

%% @doc A new context behind a handle.
-spec subinterp_create() -> {ok, reference()} | {error, term()}.
subinterp_create() ->
    Ref = make_ref(),
    case py_context_sup:start_context({subinterp, Ref}, owngil) of
        {ok, Ctx} ->
            true = ets:insert(?SUBINTERPS, {Ref, Ctx}),
            {ok, Ref};
        {error, _} = Error ->
            Error
    end.

%% @doc Stops a handle's context.
-spec subinterp_destroy(reference()) -> ok.
subinterp_destroy(Ref) ->
    case ets:take(?SUBINTERPS, Ref) of
        [{_, Ctx}] -> py_context_sup:stop_context(Ctx);
        [] -> ok
    end.

%% @doc The context behind a handle.
-spec subinterp_ctx(reference()) -> {ok, pid()} | {error, invalid_handle}.
subinterp_ctx(Ref) ->
    try ets:lookup(?SUBINTERPS, Ref) of
        [{_, Ctx}] -> {ok, Ctx};
        [] -> {error, invalid_handle}
    catch
        error:badarg -> {error, invalid_handle}
    end.

handles() ->
    try ets:tab2list(?SUBINTERPS) catch error:badarg -> [] end.

%% @doc py:stream_start/4 with an `owner' other than the caller: the generator
%% runs in the caller's environment, the messages (and the flow control, which
%% watches the owner's mailbox) go to `Owner'. Cancel with py:stream_cancel/1.
-spec stream_start(pid(), term(), term(), list(), map(), pid()) ->
    {ok, reference()} | {error, term()}.
stream_start(Ctx0, M, F, Args, Opts, Owner) when is_pid(Owner) ->
    Checked = py_args:check([py_args:context(Ctx0), py_args:name("module", M),
                             py_args:name("function", F), py_args:args(Args),
                             py_args:kwargs("keyword arguments", maps:get(kwargs, Opts, #{}))]),
    case {Checked, maps:get(window, Opts, ?STREAM_WINDOW)} of
        {{error, _} = Error, _} ->
            Error;
        {_, Window} when not is_integer(Window); Window < 1 ->
            {error, {badarg, "window must be a positive integer"}};
        {{ok, [Ctx, Mod, Fun, A, Kw]}, Window} ->
            Ref = make_ref(),
            Id = py_protocol:new_id(),
            Parent = py_request:parent(Ctx),
            Frame = py_protocol:stream(Id, self(), Parent, {call, Mod, Fun, A, Kw}, Window),
            ok = py_streams:insert(Ref, Ctx, Id),
            case py_request:submit(Ctx, Id, {stream, Owner, Ref, Window}, self(), Frame,
                                   infinity, Parent) of
                ok -> {ok, Ref};
                {error, _} = Error -> ok = py_streams:delete(Ref), Error
            end
    end.

%%% ===========================================================================
%%% ensure_venv
%%% ===========================================================================

%% @doc Creates the venv at `Path' unless it exists (or with `force'), installs
%% `Requirements' into it (a requirements file, or a pyproject.toml installed
%% editable, with `{extras, [Name]}'), and activates it in the default pool.
%% `{installer, pip | uv}' (default: uv when on PATH), `{python, Exe}' (default:
%% the contexts' Python). Commands run without a shell; a failing one is
%% `{error, {exit_code, Code, Output}}'. pip reads its usual configuration and
%% environment (an offline install uses PIP_NO_INDEX / PIP_FIND_LINKS or a
%% requirements file naming local wheels or directories).
%% `Activate' activates the venv; `Python' answers the contexts' Python.
-spec ensure_venv(iodata(), iodata(), list(),
                  #{activate := fun((binary()) -> ok | {error, term()}),
                    python := fun(() -> {ok, binary()} | {error, term()})}) ->
    ok | {error, term()}.
ensure_venv(Path0, Requirements0, Opts, #{activate := Activate, python := ContextPython}) ->
    Path = unicode:characters_to_list(Path0),
    Requirements = unicode:characters_to_list(Requirements0),
    Installer = installer(Opts),
    Steps = [fun() -> create_venv(Path, Installer, Opts, ContextPython) end,
             fun() -> install(Path, Requirements, Installer, Opts) end,
             fun() -> Activate(unicode:characters_to_binary(Path)) end],
    lists:foldl(fun(Step, ok) -> Step(); (_, Error) -> Error end, ok, Steps).

create_venv(Path, Installer, Opts, ContextPython) ->
    Exists = filelib:is_regular(filename:join(Path, "pyvenv.cfg")),
    Force = proplists:get_bool(force, Opts),
    case Exists andalso not Force of
        true ->
            ok;
        false ->
            case python(Opts, ContextPython) of
                {ok, Python} ->
                    Clear = case Exists of true -> ["--clear"]; false -> [] end,
                    case Installer of
                        uv -> run(os:find_executable("uv"),
                                  ["venv", "--python", Python | Clear] ++ [Path], []);
                        pip -> run(Python, ["-m", "venv" | Clear] ++ [Path], [])
                    end;
                Error ->
                    Error
            end
    end.

install(Path, Requirements, Installer, Opts) ->
    Args = case filename:extension(Requirements) of
               ".toml" ->
                   Dir = filename:dirname(filename:absname(Requirements)),
                   Target = case proplists:get_value(extras, Opts, []) of
                                [] -> Dir;
                                Extras -> Dir ++ "[" ++ lists:join(",", Extras) ++ "]"
                            end,
                   ["install", "-e", Target];
               _ ->
                   ["install", "-r", Requirements]
           end,
    case Installer of
        uv -> run(os:find_executable("uv"), ["pip" | Args],
                  [{"VIRTUAL_ENV", filename:absname(Path)}]);
        pip -> run(filename:join([Path, "bin", "pip"]), Args, [])
    end.

installer(Opts) ->
    case proplists:get_value(installer, Opts, auto) of
        auto ->
            case os:find_executable("uv") of
                false -> pip;
                _ -> uv
            end;
        I when I =:= uv; I =:= pip ->
            I
    end.

%% The Python the venv is made from: the option, else the contexts' own.
python(Opts, ContextPython) ->
    case proplists:get_value(python, Opts) of
        undefined ->
            case ContextPython() of
                {ok, Exe} when is_binary(Exe), Exe =/= <<>> -> {ok, unicode:characters_to_list(Exe)};
                {ok, _} -> {error, {no_python_executable, <<"sys.executable is empty">>}};
                Error -> Error
            end;
        Exe ->
            {ok, unicode:characters_to_list(Exe)}
    end.

run(false, _Args, _Env) ->
    {error, {exit_code, 127, <<"uv not found on PATH">>}};
run(Exe, Args, Env) ->
    try open_port({spawn_executable, Exe},
                  [{args, Args}, {env, Env}, exit_status, stderr_to_stdout, binary,
                   use_stdio, hide]) of
        Port -> collect(Port, [], erlang:monotonic_time(millisecond) + ?VENV_STEP_TIMEOUT)
    catch
        error:Reason -> {error, {cannot_run, unicode:characters_to_binary(Exe), Reason}}
    end.

collect(Port, Acc, Deadline) ->
    receive
        {Port, {data, Data}} ->
            collect(Port, [Data | Acc], Deadline);
        {Port, {exit_status, 0}} ->
            ok;
        {Port, {exit_status, Code}} ->
            {error, {exit_code, Code, string:trim(iolist_to_binary(lists:reverse(Acc)))}}
    after max(0, Deadline - erlang:monotonic_time(millisecond)) ->
        catch port_close(Port),
        {error, timeout}
    end.

name(A) when is_atom(A) -> atom_to_binary(A, utf8);
name(B) when is_binary(B) -> B;
name(L) when is_list(L) -> unicode:characters_to_binary(L).
