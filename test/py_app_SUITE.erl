%% What the application starts: the default pool at once, the io pool only on
%% its first use.
-module(py_app_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, end_per_testcase/2]).
-export([io_pool_starts_on_first_use/0, io_pool_starts_on_first_use/1,
         lazy_pool_starts_on_a_routed_call/0, lazy_pool_starts_on_a_routed_call/1]).

suite() -> [{timetrap, {minutes, 3}}].

all() -> [io_pool_starts_on_first_use, lazy_pool_starts_on_a_routed_call].

end_per_testcase(_Case, _Config) ->
    _ = application:stop(pyport),
    application:unset_env(pyport, pools),
    ok.

io_pool_starts_on_first_use() ->
    [{doc, "After application start only the default pool's contexts exist (their OS "
      "processes are the node's only pyport processes); pool_started(io) starts the io "
      "pool, waits for it, and its 4 contexts answer."}].
io_pool_starts_on_first_use(_Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Default = py_context_router:num_contexts(default),
    ?assert(Default >= 1),
    ?assertEqual(Default, pyport_os_count()),
    ?assertNot(lists:member(io, py_context_router:pools())),
    ?assert(py_context_router:pool_started(io)),
    ?assertEqual(4, py_context_router:num_contexts(io)),
    ?assertEqual(Default + 4, pyport_os_count()),
    [?assertEqual({ok, 2}, py:eval(C, <<"1+1">>)) || C <- py_context_router:contexts(io)].

lazy_pool_starts_on_a_routed_call() ->
    [{doc, "A lazy pool from the application environment starts on the first call "
      "routed to it (a module registered to it)."}].
lazy_pool_starts_on_a_routed_call(_Config) ->
    application:load(pyport),
    application:set_env(pyport, pools, [{lazy_one, #{contexts => 1, lazy => true}}]),
    {ok, _} = application:ensure_all_started(pyport),
    ?assertNot(lists:member(lazy_one, py_context_router:pools())),
    ok = py_context_router:register_pool(lazy_one, math),
    ?assertEqual({ok, 4.0}, py:call(math, sqrt, [16])),
    ?assert(lists:member(lazy_one, py_context_router:pools())),
    ok = py_context_router:unregister_pool(math).

%% pyport OS processes of this node (children of its erl_child_setup).
pyport_os_count() ->
    Setup = string:trim(os:cmd("pgrep -x -P " ++ os:getpid() ++ " erl_child_setup")),
    list_to_integer(string:trim(os:cmd("pgrep -c -x -P '" ++ Setup ++ "' pyport || true"))).
