%% @doc The application's top supervisor: the router, then the pools. A crash of
%% the router restarts the pools too (rest_for_one), since it owns their registry.
-module(pyport_sup).
-behaviour(supervisor).

-export([start_link/0]).
-export([init/1]).

%% @doc Starts the top supervisor.
-spec start_link() -> {ok, pid()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @private
init([]) ->
    %% The public tables of the application live as long as it runs: created
    %% here, by the process that outlives every other of the application. Each
    %% belongs to the module that knows its rows.
    ok = py_callback:new_table(),
    ok = py_state:new_table(),
    ok = py_streams:new_table(),
    ok = py_context_router:new_table(),
    Children = [#{id => py_context_router,
                  start => {py_context_router, start_link, []},
                  type => worker},
                #{id => py_pools_sup,
                  start => {py_pools_sup, start_link, []},
                  type => supervisor,
                  shutdown => infinity}],
    {ok, {#{strategy => rest_for_one, intensity => 5, period => 10}, Children}}.
