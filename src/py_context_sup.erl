%% @doc The supervisor of one pool: its contexts are ordinary workers, one child
%% per index, so observer shows each and a crash of one restarts only that one.
-module(py_context_sup).
-behaviour(supervisor).

-export([start_link/3, child_spec/3]).
-export([init/1]).

%% @doc The child spec of a pool supervisor under py_pools_sup.
-spec child_spec(atom(), pos_integer(), map()) -> supervisor:child_spec().
child_spec(Pool, Size, Opts) ->
    #{id => {pool, Pool},
      start => {?MODULE, start_link, [Pool, Size, Opts]},
      restart => permanent,
      shutdown => infinity,
      type => supervisor,
      modules => [?MODULE]}.

%% @doc Starts the supervisor and its `Size' contexts (each ready when this returns).
-spec start_link(atom(), pos_integer(), map()) -> {ok, pid()} | {error, term()}.
start_link(Pool, Size, Opts) ->
    supervisor:start_link(?MODULE, {Pool, Size, Opts}).

%% @private
init({Pool, Size, Opts}) ->
    %% The router starts each context, so that it learns the new pid after every
    %% restart.
    Children = [#{id => {py_context, I},
                  start => {py_context_router, start_context, [Pool, I, Opts]},
                  restart => permanent,
                  shutdown => 5000,
                  type => worker,
                  modules => [py_context, py_context_server]}
                || I <- lists:seq(1, Size)],
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10}, Children}}.
