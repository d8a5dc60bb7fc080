%% @private
%% @doc Holds one py_context_sup per started pool (added and removed by
%% py_context_router).
-module(py_pools_sup).
-behaviour(supervisor).

-export([start_link/0]).
-export([init/1]).

%% @doc Starts the (initially empty) supervisor of pools.
-spec start_link() -> {ok, pid()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @private
init([]) ->
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10}, []}}.
