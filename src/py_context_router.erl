%% @doc Routes calls to contexts, and starts and stops pools of them.
%%
%% Read path (every call, no process hop): a pool's contexts are a tuple in
%% persistent_term; a process's first routed call in a pool takes the context of
%% `erlang:system_info(scheduler_id)' modulo the pool size and binds the process
%% to it (process dictionary) until unbind_context; bind_context sets the binding
%% explicitly; module or module/function registrations in a public ETS table
%% pick the pool. A pool over nodes (py_pool_nodes) publishes its members
%% itself; this module's key for it only says so and holds its call timeout.
%% Write path: this gen_server starts and stops pools and owns the registry
%% table.
-module(py_context_router).
-behaviour(gen_server).

-export([start_link/0, start/0, start/1, stop/0,
         get_context/0, get_context/1, bind_context/1, bind_context/2,
         unbind_context/0, unbind_context/1, contexts/0, contexts/1,
         num_contexts/0, num_contexts/1, is_started/0, pool_started/1,
         start_pool/2, start_pool/3, declare_pool/3, stop_pool/1,
         register_pool/2, register_pool/3, unregister_pool/1, unregister_pool/2,
         lookup_pool/2, list_pool_registrations/0, init_pool_registry/0,
         pools/0, call_timeout/1, new_table/0, start_context/3, contexts_without/1]).

-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-export_type([pool_name/0, start_opts/0]).

-type pool_name() :: default | io | atom().
%% The default pool's size (`contexts') and the options of its contexts.
-type start_opts() :: py_options:pool_options().

-define(REGISTRY, py_pool_registry).
-define(POOL_KEY(Pool), {?MODULE, pool, Pool}).
-define(BOUND_KEY(Pool), {?MODULE, bound, Pool}).
-define(DECLARED_KEY(Pool), {?MODULE, declared, Pool}).
%% Starting a pool waits for every context's Python to be ready.
-define(START_POOL_TIMEOUT, 120000).

%%% ===========================================================================
%%% API
%%% ===========================================================================

%% @private Started by pyport_sup.
-spec start_link() -> {ok, pid()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Starts the default pool with one context per scheduler (at least 2).
-spec start() -> {ok, [pid()]} | {error, term()}.
start() -> start(#{}).

%% @doc Starts the default pool; `contexts' sets its size, other keys are context
%% options (docs/operations.md). `mode' is accepted and ignored.
-spec start(start_opts()) -> {ok, [pid()]} | {error, term()}.
start(Opts) ->
    start_pool(default, maps:get(contexts, Opts, default_size()), maps:remove(contexts, Opts)).

%% @doc Stops the default pool.
-spec stop() -> ok.
stop() -> stop_pool(default).

%% @doc The context for the caller in the default pool (see get_context/1).
-spec get_context() -> pid().
get_context() -> get_context(default).

%% @doc With an integer N: the N-th (1-based) context of the default pool. With a
%% pool name: the caller's context in that pool. The first time a process is
%% routed in a pool it gets the context of its current scheduler and stays bound
%% to it (as erlang_python 2.3 does), so its later calls meet the same
%% process-bound environment wherever the process migrates; bind_context/2
%% overrides the binding, unbind_context/1 drops it (the next call picks again).
%% A binding to a context that is no longer alive picks again. In a pool over
%% nodes the first pick takes the next member round-robin, and a binding to a
%% context that left the pool (its node went down) picks again.
-spec get_context(pos_integer() | pool_name()) -> pid().
get_context(N) when is_integer(N) ->
    element(N, pool_tuple(default));
get_context(Pool) when is_atom(Pool) ->
    case get(?BOUND_KEY(Pool)) of
        undefined ->
            pick(Pool);
        Ctx when node(Ctx) =/= node() ->
            case persistent_term:get(?POOL_KEY(Pool), undefined) of
                {nodes, _} ->
                    case py_pool_nodes:is_member(Pool, Ctx) of
                        true -> Ctx;
                        false -> pick(Pool)
                    end;
                _ ->
                    Ctx
            end;
        Ctx ->
            case erlang:is_process_alive(Ctx) of
                true -> Ctx;
                false -> pick(Pool)
            end
    end.

%% Picks the context of the caller's scheduler (in a pool over nodes: the next
%% member, round-robin) and binds the caller to it.
pick(Pool) ->
    Ctx = case persistent_term:get(?POOL_KEY(Pool), undefined) of
              {nodes, _} ->
                  py_pool_nodes:pick(Pool);
              _ ->
                  Ctxs = pool_tuple(Pool),
                  element((erlang:system_info(scheduler_id) - 1) rem tuple_size(Ctxs) + 1, Ctxs)
          end,
    put(?BOUND_KEY(Pool), Ctx),
    Ctx.

%% @doc Binds `Ctx' to the calling process for the default pool: its routed calls
%% go to `Ctx' until unbind_context/0. The binding dies with the process.
-spec bind_context(pid()) -> ok.
bind_context(Ctx) -> bind_context(default, Ctx).

%% @doc Binds `Ctx' to the calling process for `Pool'.
-spec bind_context(pool_name(), pid()) -> ok.
bind_context(Pool, Ctx) when is_atom(Pool), is_pid(Ctx) ->
    put(?BOUND_KEY(Pool), Ctx),
    ok.

%% @doc Removes the caller's binding in the default pool (explicit or implicit):
%% its next routed call picks a context by scheduler again.
-spec unbind_context() -> ok.
unbind_context() -> unbind_context(default).

%% @doc Removes the caller's binding in `Pool'.
-spec unbind_context(pool_name()) -> ok.
unbind_context(Pool) ->
    erase(?BOUND_KEY(Pool)),
    ok.

%% @doc The contexts of the default pool, in index order.
-spec contexts() -> [pid()].
contexts() -> contexts(default).

%% @doc The contexts of `Pool', in index order ([] if not started).
-spec contexts(pool_name()) -> [pid()].
contexts(Pool) ->
    case persistent_term:get(?POOL_KEY(Pool), undefined) of
        undefined ->
            case start_declared(Pool) of
                ok -> contexts(Pool);
                error -> []
            end;
        {Ctxs, _} ->
            tuple_to_list(tuple(Pool, Ctxs))
    end.

%% @doc Size of the default pool.
-spec num_contexts() -> non_neg_integer().
num_contexts() -> num_contexts(default).

%% @doc Size of `Pool' (0 if not started).
-spec num_contexts(pool_name()) -> non_neg_integer().
num_contexts(Pool) -> length(contexts(Pool)).

%% @doc Whether the default pool is started and its contexts are alive.
-spec is_started() -> boolean().
is_started() -> pool_started(default).

%% @doc Whether `Pool' is started and its contexts are alive.
-spec pool_started(pool_name()) -> boolean().
pool_started(Pool) ->
    case contexts(Pool) of
        [] -> false;
        Ctxs -> lists:all(fun alive/1, Ctxs)
    end.

%% @doc Starts a named pool of `Size' contexts.
-spec start_pool(pool_name(), pos_integer()) -> {ok, [pid()]} | {error, term()}.
start_pool(Pool, Size) -> start_pool(Pool, Size, #{}).

%% @doc Starts a named pool with context options (a map), or with an
%% erlang_python mode atom (ignored: every context is its own OS process). A
%% pool that is already running is resized to `Size' (its options stay).
%% With `nodes => Nodes' the `Size' contexts are spread over those nodes, each
%% running the pyport application (py_pool_nodes, docs/scaling.md); such a pool
%% is not resized: starting it again answers the running pool if the size and
%% options are the same, and is refused otherwise.
-spec start_pool(pool_name(), pos_integer(), py_options:pool_options() | atom()) ->
    {ok, [pid()]} | {error, term()}.
start_pool(Pool, Size, Mode) when is_atom(Mode) ->
    start_pool(Pool, Size, #{});
start_pool(Pool, Size, Opts) when is_atom(Pool), is_integer(Size), Size > 0 ->
    case py_options:validate_pool(Opts) of
        {ok, _, Valid} -> gen_server:call(?MODULE, {start_pool, Pool, Size, Valid}, ?START_POOL_TIMEOUT);
        Error -> Error
    end;
start_pool(_, _, _) ->
    {error, {badarg, "start_pool(Name, Size, Opts): an atom, a positive integer and a map"}}.

%% @doc Declares a pool that starts on first use: the first call routed to it,
%% get_context/1, contexts/1 or pool_started/1 starts it (and waits for it).
%% The application declares its `io' pool this way, so that a node pays for it
%% only if it uses it.
-spec declare_pool(pool_name(), pos_integer(), py_options:pool_options()) -> ok | {error, term()}.
declare_pool(Pool, Size, Opts) when is_atom(Pool), is_integer(Size), Size > 0 ->
    case py_options:validate_pool(Opts) of
        {ok, _, Valid} -> gen_server:call(?MODULE, {declare_pool, Pool, Size, Valid});
        Error -> Error
    end;
declare_pool(_, _, _) ->
    {error, {badarg, "declare_pool(Name, Size, Opts): an atom, a positive integer and a map"}}.

%% Starts a declared pool if it is not started yet: `ok' when it runs.
start_declared(Pool) ->
    case persistent_term:get(?DECLARED_KEY(Pool), undefined) of
        undefined ->
            error;
        {Size, Opts} ->
            case gen_server:call(?MODULE, {start_pool, Pool, Size, Opts}, ?START_POOL_TIMEOUT) of
                {ok, _} -> ok;
                {error, Reason} -> error({pool_failed_to_start, Pool, Reason})
            end
    end.

%% @doc Stops a named pool and its OS processes.
-spec stop_pool(pool_name()) -> ok.
stop_pool(Pool) ->
    gen_server:call(?MODULE, {stop_pool, Pool}, ?START_POOL_TIMEOUT).

%% @doc Routes every call to `Module' (any function) to `Pool'.
-spec register_pool(pool_name(), atom() | binary()) -> ok.
register_pool(Pool, Module) ->
    true = ets:insert(?REGISTRY, {{key(Module), '_'}, Pool, {Module, '_'}}),
    ok.

%% @doc Routes calls to `Module.Func' to `Pool' (wins over a module registration).
-spec register_pool(pool_name(), atom() | binary(), atom() | binary()) -> ok.
register_pool(Pool, Module, Func) ->
    true = ets:insert(?REGISTRY, {{key(Module), key(Func)}, Pool, {Module, Func}}),
    ok.

%% @doc Removes a module registration.
-spec unregister_pool(atom() | binary()) -> ok.
unregister_pool(Module) ->
    true = ets:delete(?REGISTRY, {key(Module), '_'}),
    ok.

%% @doc Removes a module/function registration.
-spec unregister_pool(atom() | binary(), atom() | binary()) -> ok.
unregister_pool(Module, Func) ->
    true = ets:delete(?REGISTRY, {key(Module), key(Func)}),
    ok.

%% @doc The pool for a call of `Module.Func': a module/function registration,
%% else a module registration, else `default'.
-spec lookup_pool(term(), term()) -> pool_name().
lookup_pool(Module, Func) ->
    try
        M = key(Module),
        case ets:lookup(?REGISTRY, {M, key(Func)}) of
            [{_, Pool, _}] -> Pool;
            [] ->
                case ets:lookup(?REGISTRY, {M, '_'}) of
                    [{_, Pool, _}] -> Pool;
                    [] -> default
                end
        end
    catch
        error:badarg -> default   % no registry yet, or names that are not names
    end.

%% @doc All registrations, as `{{Module, Func | '_'}, Pool}' with the names as
%% they were registered.
-spec list_pool_registrations() -> [{{atom() | binary(), atom() | binary()}, pool_name()}].
list_pool_registrations() ->
    [{Names, Pool} || {_, Pool, Names} <- ets:tab2list(?REGISTRY)].

%% @doc erlang_python compatibility: the registry exists as long as the
%% application runs, so there is nothing to do.
-spec init_pool_registry() -> ok.
init_pool_registry() -> ok.

%% @doc Creates the pool registry (once, by the application's top supervisor).
-spec new_table() -> ok.
new_table() ->
    _ = ets:new(?REGISTRY, [named_table, public, set, {read_concurrency, true}]),
    ok.

%% @doc The contexts of the pools whose options (and the application's
%% `context_opts') do not set `Key'.
-spec contexts_without(atom()) -> [pid()].
contexts_without(Key) ->
    case maps:is_key(Key, application:get_env(pyport, context_opts, #{})) of
        true -> [];
        false -> gen_server:call(?MODULE, {contexts_without, Key})
    end.

%% @doc The started pools.
-spec pools() -> [pool_name()].
pools() -> gen_server:call(?MODULE, pools).

%% @doc The routed-call timeout of `Pool' (its `call_timeout' option).
-spec call_timeout(pool_name()) -> timeout().
call_timeout(Pool) ->
    case persistent_term:get(?POOL_KEY(Pool), undefined) of
        undefined -> 30000;
        {_, Timeout} -> Timeout
    end.

%% @private Starts context `Index' of `Pool' (the pool's supervisor calls this);
%% the router publishes its pid once it is up, and again after each restart.
-spec start_context(pool_name(), pos_integer(), py_options:options()) -> {ok, pid()} | {error, term()}.
start_context(Pool, Index, Opts) ->
    case py_context:start_link(Opts#{pool => Pool, index => Index}) of
        {ok, Pid} ->
            gen_server:cast(?MODULE, {context_up, Pool, Index, Pid}),
            {ok, Pid};
        Error ->
            Error
    end.

%%% ===========================================================================
%%% gen_server
%%% ===========================================================================

%% @private
init([]) ->
    {ok, #{pools => #{}}}.

%% @private
handle_call({declare_pool, Pool, Size, Opts}, _From, S = #{pools := Pools}) ->
    case maps:is_key(Pool, Pools) of
        true -> ok;
        false -> persistent_term:put(?DECLARED_KEY(Pool), {Size, Opts})
    end,
    {reply, ok, S};
handle_call({start_pool, Pool, Size, Opts = #{nodes := Nodes}}, _From, S = #{pools := Pools}) ->
    _ = persistent_term:erase(?DECLARED_KEY(Pool)),
    case maps:find(Pool, Pools) of
        {ok, #{opts := Opts, size := Size}} ->
            {reply, {ok, contexts(Pool)}, S};
        {ok, _} ->
            {reply, {error, {badarg, "a pool over nodes is started again only with the same "
                             "options; stop it first"}}, S};
        error ->
            case start_over_nodes(Pool, Size, Nodes, maps:remove(nodes, Opts)) of
                {ok, Server} ->
                    {reply, {ok, contexts(Pool)},
                     S#{pools := maps:put(Pool, #{sup => Server, opts => Opts, size => Size}, Pools)}};
                {error, _} = Error ->
                    {reply, Error, S}
            end
    end;
handle_call({start_pool, Pool, Size, Opts0}, _From, S = #{pools := Pools}) ->
    _ = persistent_term:erase(?DECLARED_KEY(Pool)),
    case maps:find(Pool, Pools) of
        {ok, #{opts := #{nodes := _}}} ->
            {reply, {error, {badarg, "a pool over nodes is started again only with the same "
                             "options; stop it first"}}, S};
        {ok, #{sup := Sup, opts := Opts}} ->
            resize(Pool, Sup, Opts, Size),
            publish(Pool, Sup, Opts),
            {reply, {ok, contexts(Pool)}, S};
        error ->
            Opts = Opts0,
            case supervisor:start_child(py_pools_sup, py_context_sup:child_spec(Pool, Size, Opts)) of
                {ok, Sup} ->
                    publish(Pool, Sup, Opts),
                    {reply, {ok, contexts(Pool)},
                     S#{pools := maps:put(Pool, #{sup => Sup, opts => Opts}, Pools)}};
                {error, Reason} ->
                    _ = supervisor:delete_child(py_pools_sup, {pool, Pool}),
                    {reply, {error, Reason}, S}
            end
    end;
handle_call({stop_pool, Pool}, _From, S = #{pools := Pools}) ->
    _ = supervisor:terminate_child(py_pools_sup, {pool, Pool}),
    _ = supervisor:delete_child(py_pools_sup, {pool, Pool}),
    _ = persistent_term:erase(?POOL_KEY(Pool)),
    _ = persistent_term:erase(?DECLARED_KEY(Pool)),
    {reply, ok, S#{pools := maps:remove(Pool, Pools)}};
handle_call(pools, _From, S = #{pools := Pools}) ->
    {reply, maps:keys(Pools), S};
handle_call({contexts_without, Key}, _From, S = #{pools := Pools}) ->
    {reply, [Ctx || {Pool, #{opts := Opts}} <- maps:to_list(Pools), not maps:is_key(Key, Opts),
                    Ctx <- contexts(Pool)], S}.

%% @private A context whose interpreter started (py_interpreters) or the owner
%% of environment references (py_env_refs): forget it when it exits.
handle_cast({watch, Pid}, S) ->
    _ = erlang:monitor(process, Pid),
    {noreply, S};
handle_cast({context_up, Pool, _Index, _Pid}, S = #{pools := Pools}) ->
    case maps:find(Pool, Pools) of
        {ok, #{opts := #{nodes := _}}} -> ok;
        {ok, #{sup := Sup, opts := Opts}} -> publish(Pool, Sup, Opts);
        error -> ok
    end,
    {noreply, S}.

%% @private
handle_info({'DOWN', _, process, Pid, _}, S) ->
    ok = py_interpreters:ended(Pid),
    ok = py_env_refs:forget(Pid),
    {noreply, S};
handle_info(_Msg, S) ->
    {noreply, S}.

%%% ===========================================================================
%%% Internals
%%% ===========================================================================

%% Starts a pool over nodes (its server under py_pools_sup) and publishes it
%% once every node runs its share.
start_over_nodes(Pool, Size, Nodes, Opts) ->
    Spec = py_pool_nodes:child_spec(Pool, Size, Nodes, Opts),
    Result = case supervisor:start_child(py_pools_sup, Spec) of
                 {ok, Server} ->
                     case py_pool_nodes:await(Server) of
                         ok -> {ok, Server};
                         Error -> Error
                     end;
                 {error, _} = Error ->
                     Error
             end,
    case Result of
        {ok, _} ->
            Timeout = maps:get(call_timeout, Opts, py_options:default(call_timeout)),
            persistent_term:put(?POOL_KEY(Pool), {nodes, Timeout});
        _ ->
            _ = supervisor:terminate_child(py_pools_sup, {pool, Pool}),
            _ = supervisor:delete_child(py_pools_sup, {pool, Pool})
    end,
    Result.

%% A running pool asked for another size grows (new contexts get the pool's
%% options) or shrinks (the highest indexes stop; processes bound to them are
%% routed again on their next call).
resize(Pool, Sup, Opts, Size) ->
    Current = length([I || {{py_context, I}, _, _, _} <- supervisor:which_children(Sup)]),
    if
        Size > Current ->
            lists:foreach(
              fun(I) ->
                      Spec = #{id => {py_context, I},
                               start => {?MODULE, start_context, [Pool, I, Opts]},
                               restart => permanent, shutdown => 5000, type => worker,
                               modules => [py_context, py_context_server]},
                      {ok, _} = supervisor:start_child(Sup, Spec)
              end, lists:seq(Current + 1, Size));
        Size < Current ->
            lists:foreach(
              fun(I) ->
                      ok = supervisor:terminate_child(Sup, {py_context, I}),
                      ok = supervisor:delete_child(Sup, {py_context, I})
              end, lists:seq(Size + 1, Current));
        true ->
            ok
    end.

%% Publishes the pool's contexts (in index order) for the read path.
publish(Pool, Sup, Opts) ->
    Children = [{I, Pid} || {{py_context, I}, Pid, _, _} <- supervisor:which_children(Sup),
                            is_pid(Pid)],
    Ctxs = list_to_tuple([Pid || {_, Pid} <- lists:keysort(1, Children)]),
    Timeout = maps:get(call_timeout, Opts, py_options:default(call_timeout)),
    case persistent_term:get(?POOL_KEY(Pool), undefined) of
        {Ctxs, Timeout} -> ok;
        _ -> persistent_term:put(?POOL_KEY(Pool), {Ctxs, Timeout})
    end.

pool_tuple(Pool) ->
    case persistent_term:get(?POOL_KEY(Pool), undefined) of
        undefined ->
            case start_declared(Pool) of
                ok -> pool_tuple(Pool);
                error -> error({pool_not_started, Pool})
            end;
        {Ctxs, _} ->
            tuple(Pool, Ctxs)
    end.

%% A pool over nodes publishes its members itself (py_pool_nodes).
tuple(Pool, nodes) -> py_pool_nodes:members(Pool);
tuple(_, Ctxs) -> Ctxs.

%% A member of a pool over nodes on another node is alive while it is listed
%% (its node's departure or its own exit removes it).
alive(Ctx) when node(Ctx) =:= node() -> erlang:is_process_alive(Ctx);
alive(_) -> true.

default_size() ->
    case application:get_env(pyport, contexts, 0) of
        N when is_integer(N), N > 0 -> N;
        _ -> max(2, erlang:system_info(schedulers_online))
    end.

%% Registrations match whatever form a name takes (atom, binary or string).
%% Something that is not a name raises badarg (lookup_pool then routes to
%% default, and the call itself answers {error, {badarg, _}}).
key(A) when is_atom(A) -> atom_to_binary(A, utf8);
key(B) when is_binary(B) -> B;
key(L) when is_list(L) ->
    case unicode:characters_to_binary(L) of
        B when is_binary(B) -> B;
        _ -> error(badarg)
    end;
key(_) -> error(badarg).
