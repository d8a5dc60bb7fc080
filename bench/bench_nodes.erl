%% @doc The optional scenario of the benchmark for pools that span nodes
%% (`make bench BENCH_NODES=1', or `BENCH_NODES=only' for this scenario alone):
%% two peer nodes on this machine run pyport; 64 callers call
%% `py:call(Pool, math, sqrt, [16])' on a pool of this node, on a pool over one
%% peer and on a pool over both peers (the same contexts per node), and one
%% caller's latency on a local and a remote context gives what the distribution
%% hop costs per call (beside a bare distribution round trip, for scale).
-module(bench_nodes).

-export([run/1, print/1, markdown/1, echo_loop/0]).

%% Contexts per node, callers, throughput window and runs (median), latency.
-define(PER_NODE, 2).
-define(CALLERS, 64).
-define(WINDOW_MS, 1000).
-define(RUNS, 5).
-define(LAT_WARMUP, 1000).
-define(LAT_ROUNDS, 10).
-define(LAT_PER_ROUND, 500).
-define(RPC_TIMEOUT, 60000).

%% @doc Runs the scenario (distributing this node if it is not) and returns
%% its raw numbers.
-spec run(file:filename()) -> map().
run(AppEbin) ->
    ok = distribute(),
    Peers = [start_peer(AppEbin, I) || I <- [1, 2]],
    [{_, P1}, {_, P2}] = Peers,
    try
        {ok, _} = py_context_router:start_pool(bench_local, ?PER_NODE, #{}),
        {ok, _} = py_context_router:start_pool(bench_one, ?PER_NODE, #{nodes => [P1]}),
        {ok, _} = py_context_router:start_pool(bench_two, 2 * ?PER_NODE, #{nodes => [P1, P2]}),
        io:format("nodes: latency, one caller, local vs remote context...~n"),
        Echo = spawn(P1, ?MODULE, echo_loop, []),
        Lat = in_process(fun() ->
            bench_run:latency(
              [{local, fun() -> {ok, 4.0} = py:call(bench_local, math, sqrt, [16]) end},
               {remote, fun() -> {ok, 4.0} = py:call(bench_one, math, sqrt, [16]) end},
               {dist_round_trip, fun() -> dist_echo(Echo) end}],
              ?LAT_WARMUP, ?LAT_ROUNDS, ?LAT_PER_ROUND)
        end),
        exit(Echo, kill),
        io:format("nodes: throughput, ~b callers, ~b runs of ~b ms per variant...~n",
                  [?CALLERS, ?RUNS, ?WINDOW_MS]),
        Tp = fun(Pool) ->
                 fun() -> bench_run:throughput(
                            fun() -> {ok, 4.0} = py:call(Pool, math, sqrt, [16]) end,
                            ?CALLERS, ?WINDOW_MS)
                 end
             end,
        Runs = bench_run:repeat_interleaved(
                 [{local, Tp(bench_local)}, {one_node, Tp(bench_one)},
                  {two_nodes, Tp(bench_two)}], ?RUNS),
        Latency = maps:map(fun(_, S) -> bench_run:summary(S) end, Lat),
        #{per_node => ?PER_NODE, callers => ?CALLERS,
          latency => Latency,
          hop_us => p50(Latency, remote) - p50(Latency, local),
          throughput => maps:map(fun(_, L) -> bench_run:median(L) end, Runs),
          throughput_runs => Runs}
    after
        [py_context_router:stop_pool(P) || P <- [bench_local, bench_one, bench_two]],
        [peer:stop(Peer) || {Peer, _} <- Peers]
    end.

%% @doc Prints the scenario's figures.
-spec print(map()) -> ok.
print(R) ->
    io:format("~nPools over nodes (~b contexts per node, ~b callers, this machine's cores "
              "shared by every node):~n", [maps:get(per_node, R), maps:get(callers, R)]),
    [io:format("  ~-58ts ~10s~n", [Label, Value]) || {Label, Value} <- lines(R)],
    ok.

%% @doc The scenario as a markdown section of the results file.
-spec markdown(map()) -> iolist().
markdown(R) ->
    ["\n## Pools over nodes\n\n",
     io_lib:format("`BENCH_NODES`: two peer nodes on this machine, ~b contexts per node, "
                   "~b callers; every node shares this machine's cores.\n\n",
                   [maps:get(per_node, R), maps:get(callers, R)]),
     "| figure | value |\n|---|---:|\n",
     [io_lib:format("| ~ts | ~s |~n", [Label, Value]) || {Label, Value} <- lines(R)]].

%% @private A process of the peer that answers each message (the bare
%% distribution round trip).
-spec echo_loop() -> no_return().
echo_loop() ->
    receive
        {From, Ref} -> From ! Ref, echo_loop()
    end.

%%% ===========================================================================
%%% Internals
%%% ===========================================================================

lines(#{latency := L, hop_us := Hop, throughput := T, per_node := C}) ->
    [{"p50 latency, local context (us)", num(p50(L, local))},
     {"p50 latency, context on a peer node (us)", num(p50(L, remote))},
     {"distribution hop per call, remote - local p50 (us)", num(Hop)},
     {"bare distribution round trip p50, for scale (us)", num(p50(L, dist_round_trip))},
     {io_lib:format("calls/s, pool on this node (~b contexts)", [C]), num(maps:get(local, T))},
     {io_lib:format("calls/s, pool over one peer node (~b contexts)", [C]),
      num(maps:get(one_node, T))},
     {io_lib:format("calls/s, pool over two peer nodes (~b contexts)", [2 * C]),
      num(maps:get(two_nodes, T))},
     {"two peer nodes / one peer node", ratio(maps:get(two_nodes, T), maps:get(one_node, T))},
     {"one peer node / this node", ratio(maps:get(one_node, T), maps:get(local, T))}].

p50(L, K) -> maps:get(p50, maps:get(K, L)).

dist_echo(Echo) ->
    Ref = make_ref(),
    Echo ! {self(), Ref},
    receive Ref -> ok after ?RPC_TIMEOUT -> error(echo_timeout) end.

distribute() ->
    case is_alive() of
        true ->
            ok;
        false ->
            _ = os:cmd("epmd -daemon"),
            Name = list_to_atom("pyport_bench_" ++ os:getpid()),
            {ok, _} = net_kernel:start([Name, shortnames]),
            ok
    end.

start_peer(AppEbin, I) ->
    Name = list_to_atom(lists:flatten(io_lib:format("pyport_bench_~s_~b", [os:getpid(), I]))),
    {ok, Peer, Node} = peer:start(#{name => Name,
                                    args => ["-pa", AppEbin, "-pyport", "start_pools", "false"],
                                    wait_boot => ?RPC_TIMEOUT}),
    {ok, _} = erpc:call(Node, application, ensure_all_started, [pyport], ?RPC_TIMEOUT),
    %% The echo process of the latency figures runs this module's code.
    {Mod, Bin, File} = code:get_object_code(?MODULE),
    {module, Mod} = erpc:call(Node, code, load_binary, [Mod, File, Bin], ?RPC_TIMEOUT),
    {Peer, Node}.

in_process(F) ->
    {Pid, Ref} = spawn_monitor(fun() -> exit({result, F()}) end),
    receive {'DOWN', Ref, process, Pid, {result, R}} -> R;
            {'DOWN', Ref, process, Pid, Other} -> error(Other)
    end.

num(V) when is_integer(V) -> integer_to_list(V);
num(V) when abs(V) >= 1000 -> float_to_list(float(V), [{decimals, 0}]);
num(V) when abs(V) >= 10 -> float_to_list(float(V), [{decimals, 1}]);
num(V) -> float_to_list(float(V), [{decimals, 2}]).

ratio(A, B) when B > 0 -> float_to_list(A / B, [{decimals, 2}]) ++ "x".
