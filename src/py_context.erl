%% @doc One Python context: the public API of a context, compatible with
%% erlang_python's `py_context'. A context is a server process
%% (py_context_server) that owns one pyport OS process and keeps it running; its
%% pid is the handle users keep, stable across restarts of the OS process.
%% Calls on an explicit context wait `infinity' unless given a timeout.
-module(py_context).

-export([start_link/1, start_link/2, child_spec/1, new/1, stop/1, destroy/1,
         call/4, call/5, call/6, eval/2, eval/3, eval/4, exec/2, exec/3,
         info/1, interrupt/1, kill/1, restart/1, monitor/1, demonitor/2,
         setup/2, default_opts/0]).

%% Requests in the environment of another process (py:cast/spawn_call)
-export([call_as/7, eval_as/5, exec_as/4]).

%% The rest of erlang_python 2.x's py_context API (answered by py_compat)
-export([call/7, eval/5, call_method/4, to_term/1, get_interp_id/1, is_subinterp/1,
         create_local_env/1, get_nif_ref/1]).

-export_type([context/0, options/0, settings/0]).

-type context() :: pid().
-type options() :: py_options:options().
%% Settings of a running context (setup/2): `venv' a path or `none'; `logging'
%% a Python level, `[Level, Format]', or `none'; `preload' the code new
%% environments start from.
-type settings() :: #{venv => iodata() | none,
                      logging => non_neg_integer() | [non_neg_integer() | binary()] | none,
                      preload => binary()}.

%% @doc The options every context starts from (see docs/operations.md).
-spec default_opts() -> options().
default_opts() -> py_options:defaults().

%% @doc Starts a context linked to the caller; returns once Python is ready and
%% set up. Options: see docs/operations.md (`name' registers the pid locally).
%% Bad options are refused with `{error, {badarg, Why}}' before anything starts.
-spec start_link(options()) -> {ok, context()} | {error, term()}.
start_link(Opts) ->
    case py_options:validate(Opts) of
        {ok, Valid} -> py_context_server:start_link(Valid);
        Error -> Error
    end.

%% @doc erlang_python compatible form: `Id' labels the context, `Mode' is ignored
%% (every pyport context is its own OS process).
-spec start_link(term(), atom()) -> {ok, context()} | {error, term()}.
start_link(Id, _Mode) ->
    start_link(#{label => Id}).

%% @doc A child spec, so a context drops into any supervision tree.
-spec child_spec(options()) -> supervisor:child_spec().
child_spec(Opts) ->
    #{id => maps:get(id, Opts, py_context),
      start => {?MODULE, start_link, [Opts]},
      restart => permanent,
      shutdown => 5000,
      type => worker,
      modules => [?MODULE, py_context_server]}.

%% @doc Starts a context outside any pool (linked to the caller).
-spec new(options()) -> {ok, context()} | {error, term()}.
new(Opts) -> start_link(Opts).

%% @doc Stops a context; its OS process exits.
-spec stop(context()) -> ok.
stop(Ctx) -> py_context_server:stop(Ctx).

%% @doc Same as stop/1.
-spec destroy(context()) -> ok.
destroy(Ctx) -> stop(Ctx).

%% @doc Calls `Module.Function(*Args)' in the caller's environment on `Ctx'.
-spec call(context(), term(), term(), list()) -> {ok, term()} | {error, term()}.
call(Ctx, M, F, Args) -> call(Ctx, M, F, Args, #{}, infinity).

%% @doc As call/4 with keyword arguments.
-spec call(context(), term(), term(), list(), map()) -> {ok, term()} | {error, term()}.
call(Ctx, M, F, Args, Kwargs) -> call(Ctx, M, F, Args, Kwargs, infinity).

%% @doc As call/5 with a timeout in milliseconds (or `infinity').
-spec call(context(), term(), term(), list(), map(), timeout()) ->
    {ok, term()} | {error, term()}.
call(Ctx, M, F, Args, Kwargs, Timeout) ->
    call_as(Ctx, self(), M, F, Args, Kwargs, Timeout).

%% @doc As call/6 in the environment of `EnvPid' (py:cast/spawn_call run a
%% request for their caller from another process).
-spec call_as(context(), pid(), term(), term(), list(), map(), timeout()) ->
    {ok, term()} | {error, term()}.
call_as(Ctx, EnvPid, M, F, Args, Kwargs, Timeout) ->
    case py_args:check([py_args:name("module", M), py_args:name("function", F),
                        py_args:args(Args), py_args:kwargs("keyword arguments", Kwargs)]) of
        {ok, [Mod, Fun, A, Kw]} ->
            py_request:run(Ctx, EnvPid,
                           fun(Id, Parent) -> py_protocol:call(Id, EnvPid, Parent, Mod, Fun, A, Kw) end,
                           Timeout, #{op => call, module => Mod, function => Fun});
        Error ->
            Error
    end.

%% @doc Evaluates a Python expression in the caller's environment.
-spec eval(context(), iodata()) -> {ok, term()} | {error, term()}.
eval(Ctx, Code) -> eval(Ctx, Code, #{}, infinity).

%% @doc As eval/2, with `Locals' bound for this evaluation only.
-spec eval(context(), iodata(), map()) -> {ok, term()} | {error, term()}.
eval(Ctx, Code, Locals) -> eval(Ctx, Code, Locals, infinity).

%% @doc As eval/3 with a timeout.
-spec eval(context(), iodata(), map(), timeout()) -> {ok, term()} | {error, term()}.
eval(Ctx, Code, Locals, Timeout) -> eval_as(Ctx, self(), Code, Locals, Timeout).

%% @doc As eval/4 in the environment of `EnvPid'.
-spec eval_as(context(), pid(), iodata(), map(), timeout()) -> {ok, term()} | {error, term()}.
eval_as(Ctx, EnvPid, Code, Locals, Timeout) ->
    case py_args:check([py_args:code(Code), py_args:kwargs("locals", Locals)]) of
        {ok, [Bin, Map]} ->
            py_request:run(Ctx, EnvPid,
                           fun(Id, Parent) -> py_protocol:eval(Id, EnvPid, Parent, Bin, Map) end,
                           Timeout, #{op => eval});
        Error ->
            Error
    end.

%% @doc Executes Python statements in the caller's environment.
-spec exec(context(), iodata()) -> ok | {error, term()}.
exec(Ctx, Code) -> exec(Ctx, Code, infinity).

%% @doc As exec/2 with a timeout, or (erlang_python 2.x) in the environment
%% named by an environment reference (py:get_local_env/1).
-spec exec(context(), iodata(), timeout() | reference()) -> ok | {error, term()}.
exec(Ctx, Code, EnvRef) when is_reference(EnvRef) ->
    exec_as(Ctx, py_env_refs:owner(EnvRef), Code, infinity);
exec(Ctx, Code, Timeout) -> exec_as(Ctx, self(), Code, Timeout).

%% @doc As exec/3 in the environment of `EnvPid'.
-spec exec_as(context(), pid(), iodata(), timeout()) -> ok | {error, term()}.
exec_as(Ctx, EnvPid, Code, Timeout) ->
    case py_args:code(Code) of
        {error, _} = Error ->
            Error;
        Bin ->
            Build = fun(Id, Parent) -> py_protocol:exec(Id, EnvPid, Parent, Bin) end,
            case py_request:run(Ctx, EnvPid, Build, Timeout, #{op => exec}) of
                {ok, _} -> ok;
                Error -> Error
            end
    end.

%% @doc What the context is doing: OS pid, RSS, Python version, uptime, counters,
%% queue length, environments, atoms created, output dropped, and the request
%% running now (or `idle'). See docs/operations.md.
-spec info(context()) -> map().
info(Ctx) -> py_context_server:info(Ctx).

%% @doc Raises KeyboardInterrupt in the Python code running now, if any.
-spec interrupt(context()) -> ok.
interrupt(Ctx) -> py_context_server:interrupt(Ctx).

%% @doc Kills the OS process at once (SIGKILL); the context starts a new one.
-spec kill(context()) -> ok.
kill(Ctx) -> py_context_server:kill(Ctx).

%% @doc Restarts the OS process gracefully: requests already sent are answered by
%% the old process, requests arriving meanwhile by the new one; none is lost.
-spec restart(context()) -> ok.
restart(Ctx) -> py_context_server:restart(Ctx).

%% @doc Subscribes the caller to `{py_context, Ctx, restarted, Reason}' messages,
%% sent each time the context has a new OS process (its Python state is fresh).
-spec monitor(context()) -> reference().
monitor(Ctx) -> py_context_server:subscribe(Ctx).

%% @doc Cancels a monitor/1 subscription.
-spec demonitor(context(), reference()) -> ok.
demonitor(Ctx, Ref) -> py_context_server:unsubscribe(Ctx, Ref).

%% @doc Changes settings of the running context and of its future OS processes:
%% `venv' (a path, or `none' to deactivate), `logging' (a Python level number,
%% `[Level, Format]', or `none'), `preload' (code new environments start from).
%% Returns what Python answered.
-spec setup(context(), settings()) -> {ok, term()} | {error, term()}.
setup(Ctx, Settings) -> py_context_server:setup(Ctx, Settings).

%%% ===========================================================================
%%% erlang_python 2.x compatibility (see py_compat)
%%% ===========================================================================

%% @doc call/6 in the environment named by `EnvRef' (create_local_env/1).
-spec call(context(), term(), term(), list(), map(), timeout(), reference()) ->
    {ok, term()} | {error, term()}.
call(Ctx, M, F, Args, Kwargs, Timeout, EnvRef) when is_reference(EnvRef) ->
    call_as(Ctx, py_env_refs:owner(EnvRef), M, F, Args, Kwargs, Timeout).

%% @doc eval/4 in the environment named by `EnvRef'.
-spec eval(context(), iodata(), map(), timeout(), reference()) ->
    {ok, term()} | {error, term()}.
eval(Ctx, Code, Locals, Timeout, EnvRef) when is_reference(EnvRef) ->
    eval_as(Ctx, py_env_refs:owner(EnvRef), Code, Locals, Timeout).

%% @doc As py:call_method/3 (an object reference knows its context).
-spec call_method(context(), tuple(), atom() | binary() | string(), list()) ->
    {ok, term()} | {error, term()}.
call_method(_Ctx, {py_ref, Ctx, _, _, _} = Ref, Method, Args) when is_pid(Ctx) ->
    case py_args:check([py_args:name("method", Method), py_args:args(Args)]) of
        {ok, [Name, A]} ->
            Self = self(),
            py_request:run(Ctx, Self,
                           fun(Id, Parent) -> py_protocol:method(Id, Self, Parent, Ref, Name, A, #{}) end,
                           infinity, #{op => method, function => Name});
        Error ->
            Error
    end;
call_method(_, _, _, _) ->
    {error, {badarg, "not an object reference"}}.

%% @doc The referenced object converted to a term (an object with no term form
%% comes back as a reference again).
-spec to_term(tuple()) -> {ok, term()} | {error, term()}.
to_term({py_ref, Ctx, _, _, _} = Ref) when is_pid(Ctx) ->
    eval(Ctx, <<"o">>, #{o => Ref});
to_term(_) ->
    {error, {badarg, "not an object reference"}}.

%% @doc `{ok, Id}': the OS pid of the context's current Python process (each
%% context is an interpreter of its own; a restart makes a new one).
-spec get_interp_id(context()) -> {ok, integer()} | {error, term()}.
get_interp_id(Ctx) ->
    try info(Ctx) of
        #{os_pid := OsPid} when is_integer(OsPid) -> {ok, OsPid};
        #{status := Status} -> {error, {not_running, Status}}
    catch
        exit:Reason -> {error, Reason}
    end.

%% @doc Always true: every context has an interpreter and a GIL of its own
%% (its own OS process); nothing is shared with other contexts.
-spec is_subinterp(context()) -> boolean().
is_subinterp(Ctx) when is_pid(Ctx) -> true.

%% @doc `{ok, EnvRef}' naming the caller's environment on `Ctx'.
-spec create_local_env(context()) -> {ok, reference()}.
create_local_env(Ctx) -> {ok, py_env_refs:local_env(Ctx)}.

%% @doc There is no NIF resource behind a pyport context: raises
%% `{not_supported, Reason}'.
-spec get_nif_ref(context()) -> no_return().
get_nif_ref(_Ctx) ->
    erlang:error({not_supported, <<"a pyport context is a process, not a NIF resource">>}).
