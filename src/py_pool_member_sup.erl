%% @private
%% @doc One node's share of a pool spread over nodes (py_pool_nodes): a
%% supervisor, under this node's py_pools_sup, of `Count' contexts that each
%% join the pool's `pg' group when they start (and again after each restart),
%% plus a watcher of the pool's owner. When the owner (the py_pool_nodes server
%% on the pool's node) stops, or its node goes away, the watcher ends and takes
%% the whole supervisor with it (a significant child), so no member outlives
%% its pool.
-module(py_pool_member_sup).
-behaviour(supervisor).

-export([start/4, stop/1, start_link/4, start_context/4, watch/1]).
-export([init/1]).

-define(SCOPE, pyport_pg).

%% @doc Starts the share of pool `Pool' owned by `Owner' on this node: `Count'
%% contexts with the options `Opts', each in the group `{pyport_pool, Owner}' of
%% the `pyport_pg' scope. Returns the supervisor (one per owner: a second start
%% for the same owner answers the running one). Runs on the member node (the
%% owner calls it with erpc); fails with `noproc' when the pyport application
%% does not run there.
-spec start(pid(), atom(), pos_integer(), map()) -> {ok, pid()} | {error, term()}.
start(Owner, Pool, Count, Opts) ->
    Spec = #{id => {pool_member, Owner},
             start => {?MODULE, start_link, [Owner, Pool, Count, Opts]},
             restart => temporary,
             shutdown => infinity,
             type => supervisor,
             modules => [?MODULE]},
    case supervisor:start_child(py_pools_sup, Spec) of
        {ok, Sup} -> {ok, Sup};
        {error, {already_started, Sup}} -> {ok, Sup};
        {error, _} = Error -> Error
    end.

%% @doc Stops the share of the pool owned by `Owner' on this node, if any.
-spec stop(pid()) -> ok.
stop(Owner) ->
    _ = supervisor:terminate_child(py_pools_sup, {pool_member, Owner}),
    ok.

%% @private Started by start/4.
-spec start_link(pid(), atom(), pos_integer(), map()) -> {ok, pid()} | {error, term()}.
start_link(Owner, Pool, Count, Opts) ->
    supervisor:start_link(?MODULE, {Owner, Pool, Count, Opts}).

%% @private Starts member context `Index' and puts it in the pool's group.
-spec start_context(pid(), atom(), pos_integer(), map()) -> {ok, pid()} | {error, term()}.
start_context(Owner, Pool, Index, Opts) ->
    case py_context:start_link(Opts#{pool => Pool, index => Index}) of
        {ok, Pid} ->
            ok = pg:join(?SCOPE, {pyport_pool, Owner}, Pid),
            {ok, Pid};
        Error ->
            Error
    end.

%% @private The watcher: returns (normally) when the owner is gone.
-spec watch(pid()) -> {ok, pid()}.
watch(Owner) ->
    {ok, proc_lib:spawn_link(fun() ->
        Ref = erlang:monitor(process, Owner),
        receive {'DOWN', Ref, process, Owner, _} -> ok end
    end)}.

%% @private
init({Owner, Pool, Count, Opts}) ->
    Watcher = #{id => owner,
                start => {?MODULE, watch, [Owner]},
                restart => transient,
                significant => true,
                shutdown => brutal_kill,
                type => worker,
                modules => [?MODULE]},
    Contexts = [#{id => {py_context, I},
                  start => {?MODULE, start_context, [Owner, Pool, I, Opts]},
                  restart => permanent,
                  shutdown => 5000,
                  type => worker,
                  modules => [py_context, py_context_server]}
                || I <- lists:seq(1, Count)],
    %% With a warm template, one per node, before the node's contexts.
    Template = case py_template:wanted(Opts) of
                   true -> [py_template:child_spec(Pool, Opts)];
                   false -> []
               end,
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10,
            auto_shutdown => any_significant},
          [Watcher | Template ++ Contexts]}}.
