%% @private
%% @doc The application's top supervisor: the router, the `pg' scope
%% `pyport_pg' (the groups of pools that span nodes), then the pools, then the
%% services of erlang_python 2.x's API (SharedDict, trace spans, single
%% contexts). A crash of the router restarts everything after it (rest_for_one),
%% since it owns their registries.
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
    ok = py_interpreters:new_table(),
    ok = py_registry:new_tables(),
    ok = py_env_refs:new_table(),
    ok = py_compat:new_tables(),
    ok = py_shared_dict:new_table(),
    ok = py_event_loop:new_table(),
    ok = py_channel:new_table(),
    ok = py_semaphore:new(),
    Children = [#{id => py_context_router,
                  start => {py_context_router, start_link, []},
                  type => worker},
                #{id => pyport_pg,
                  start => {pg, start_link, [pyport_pg]},
                  type => worker},
                #{id => py_pools_sup,
                  start => {py_pools_sup, start_link, []},
                  type => supervisor,
                  shutdown => infinity},
                #{id => py_shared_dict,
                  start => {py_shared_dict, start_link, []},
                  type => worker},
                #{id => py_trace,
                  start => {py_trace, start_link, []},
                  type => worker},
                #{id => py_context_sup,
                  start => {py_context_sup, start_link, []},
                  type => supervisor,
                  shutdown => infinity}],
    {ok, {#{strategy => rest_for_one, intensity => 5, period => 10}, Children}}.
