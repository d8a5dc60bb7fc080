%% Pools that span nodes (py_pool_nodes), with real peer nodes started by
%% OTP's `peer', each running the pyport application: a pool over three nodes
%% spreads its contexts and its callers; a node killed under 64 callers takes
%% only its contexts out, every call is answered exactly once, and the node's
%% contexts rejoin when it comes back; environments, callbacks, streams and
%% references work for a caller on this node using a context on another.
-module(py_nodes_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([spread/0, spread/1,
         caller_features/0, caller_features/1,
         bad_node/0, bad_node/1,
         stop_pool_stops_members/0, stop_pool_stops_members/1,
         owner_is_member/0, owner_is_member/1,
         declared_pool/0, declared_pool/1,
         owner_node_down/0, owner_node_down/1,
         failing_share_backs_off/0, failing_share_backs_off/1,
         node_killed_and_rejoins/0, node_killed_and_rejoins/1]).

%% Generous bound for a whole case (peers boot, contexts start on them).
-define(CASE_TIMEOUT, {minutes, 5}).
-define(PEER_BOOT_MS, 60000).
-define(RPC_TIMEOUT, 60000).
%% Deadline for "eventually" conditions (group changes seen, a node rejoined).
-define(EVENTUALLY_MS, 60000).
%% How long failing_share_backs_off watches the tries on a node without pyport.
-define(BACKOFF_WATCH_MS, 9000).
%% The pool of the cases: two contexts on each of the three peers.
-define(POOL, spread).
-define(PER_NODE, 2).
%% The load of node_killed_and_rejoins: callers, the length of their calls
%% (asyncio.sleep, so that calls interleave on a context), how long they run
%% before and after the kill.
-define(CALLERS, 64).
-define(CALL_S, 0.02).
-define(BEFORE_KILL_MS, 1500).
-define(AFTER_GONE_MS, 1500).
%% Calls in flight on the killed node must answer within this of the kill
%% (their Python sleeps ?LONG_S): "at once", with room for a loaded machine.
-define(LONG_S, 600).
-define(PROMPT_MS, 5000).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [spread, caller_features, bad_node, stop_pool_stops_members, owner_is_member, declared_pool,
     owner_node_down, failing_share_backs_off, node_killed_and_rejoins].

init_per_suite(Config) ->
    case is_alive() of
        false ->
            {skip, "the Common Test node is not distributed"};
        true ->
            ok = pyport_test:load_app(),
            {ok, _} = application:ensure_all_started(pyport),
            Names = [list_to_atom(peer:random_name(?MODULE)) || _ <- [1, 2, 3]],
            Peers = [start_peer(Name) || Name <- Names],
            [{peers, Peers} | Config]
    end.

end_per_suite(Config) ->
    [catch peer:stop(Peer) || {Peer, _} <- ?config(peers, Config)],
    ok = application:stop(pyport).

init_per_testcase(_Case, Config) ->
    Config.

end_per_testcase(_Case, _Config) ->
    ok = py_context_router:stop_pool(?POOL),
    ok.

%%% ===========================================================================
%%% Cases
%%% ===========================================================================

spread() ->
    [{doc, "start_pool(Name, 6, #{nodes => [A, B, C]}) runs two contexts on each "
      "node; contexts/1 lists them, get_context/1 hands them out in turn to new "
      "processes (each node in turn) and keeps a process on the first it got; "
      "py:call on the pool and through register_pool/2 runs on those contexts."}].
spread(Config) ->
    Nodes = nodes_of(Config),
    {ok, Ctxs} = py_context_router:start_pool(?POOL, ?PER_NODE * 3, #{nodes => Nodes}),
    ?assertEqual(Ctxs, py_context_router:contexts(?POOL)),
    ?assertEqual(?PER_NODE * 3, py_context_router:num_contexts(?POOL)),
    ?assert(py_context_router:pool_started(?POOL)),
    ?assert(lists:member(?POOL, py_context_router:pools())),
    ?assertEqual(lists:sort([N || N <- Nodes, _ <- lists:seq(1, ?PER_NODE)]),
                 lists:sort([node(C) || C <- Ctxs])),
    %% Members interleave: one of each node in turn.
    ?assertEqual(Nodes, [node(C) || C <- lists:sublist(Ctxs, 3)]),
    %% Six new processes get the six contexts, one each.
    Picked = [in_process(fun() -> py_context_router:get_context(?POOL) end)
              || _ <- Ctxs],
    ?assertEqual(lists:sort(Ctxs), lists:sort(Picked)),
    %% A process stays on its context: ten calls, one OS process.
    OsPids = maps:from_list([{os_pid(C), node(C)} || C <- Ctxs]),
    ?assertEqual(?PER_NODE * 3, map_size(OsPids)),
    Sticky = in_process(fun() ->
        [begin {ok, P} = py:call(?POOL, os, getpid, []), P end || _ <- lists:seq(1, 10)]
    end),
    ?assertMatch([_], lists:usort(Sticky)),
    ?assert(maps:is_key(hd(Sticky), OsPids)),
    %% Thirty processes calling the pool reach every node.
    Seen = [in_process(fun() -> {ok, P} = py:call(?POOL, os, getpid, []), P end)
            || _ <- lists:seq(1, 30)],
    ?assertEqual(lists:sort(Nodes), lists:usort([maps:get(P, OsPids) || P <- Seen])),
    %% A module registered to the pool: routed calls go there.
    ok = py:register_pool(?POOL, <<"os">>),
    try
        Routed = [in_process(fun() -> {ok, P} = py:call(os, getpid, []), P end)
                  || _ <- lists:seq(1, 6)],
        ?assertEqual(lists:sort(maps:keys(OsPids)), lists:sort(Routed))
    after
        py:unregister_pool(<<"os">>)
    end,
    %% Each context is an ordinary context of its node.
    [?assertMatch(#{pool := ?POOL}, erpc:call(node(C), py_context, info, [C])) || C <- Ctxs],
    %% The same start again answers the running pool; another size is refused.
    ?assertEqual({ok, Ctxs}, py_context_router:start_pool(?POOL, ?PER_NODE * 3,
                                                          #{nodes => Nodes})),
    ?assertMatch({error, {badarg, _}}, py_context_router:start_pool(?POOL, 2, #{nodes => Nodes})),
    ok.

caller_features() ->
    [{doc, "A process of this node using a context of a pool that lives on a peer: "
      "its environment is its own, callbacks run in the caller (on this node, "
      "to any depth), streams (routed and explicit) deliver every item, and "
      "references work and are released."}].
caller_features(Config) ->
    [B | _] = nodes_of(Config),
    {ok, [Ctx]} = py_context_router:start_pool(?POOL, 1, #{nodes => [B]}),
    ?assertEqual(B, node(Ctx)),
    ?assertEqual(Ctx, py_context_router:get_context(?POOL)),
    %% Environment: this process's own, on B.
    ok = py:exec(Ctx, <<"import erlang\nx = 41">>),
    ?assertEqual({ok, 42}, py:eval(Ctx, <<"x + 1">>)),
    ?assertMatch({error, {"NameError", _}},
                 in_process(fun() -> py:eval(Ctx, <<"x">>) end)),
    %% Callbacks run in the caller, on this node.
    Self = self(),
    ok = py:register_function(where_am_i, fun([]) -> {node(), self()} end),
    ok = py:register_function(back_to_b,
                              fun([N]) -> {ok, V} = py:eval(Ctx, <<"x + n">>, #{n => N}), V end),
    try
        ?assertEqual({ok, {node(), Self}}, py:eval(Ctx, <<"erlang.call('where_am_i')">>)),
        %% Python on B calls Erlang on this node, which calls Python on B again.
        ok = py:exec(Ctx, <<"def nested(n): return erlang.call('back_to_b', n) * 2">>),
        ?assertEqual({ok, 84}, py:call(Ctx, '__main__', nested, [1])),
        %% The same through the pool's routing.
        ok = py:register_pool(?POOL, <<"__main__">>),
        try
            ?assertEqual({ok, 86}, py:call('__main__', nested, [2]))
        after
            py:unregister_pool(<<"__main__">>)
        end
    after
        py:unregister_function(where_am_i),
        py:unregister_function(back_to_b)
    end,
    %% Streams: routed to the pool, and on the explicit context.
    ok = py:register_pool(?POOL, <<"itertools">>),
    try
        ?assertEqual({ok, [7, 7, 7]}, py:stream(itertools, repeat, [7, 3]))
    after
        py:unregister_pool(<<"itertools">>)
    end,
    {ok, SRef} = py:stream_start(builtins, range, [100], #{context => Ctx}),
    ?assertEqual(lists:seq(0, 99), stream_items(SRef, [])),
    %% References: an object of B's Python, used from this node.
    ok = py:exec(Ctx, <<"import weakref\n"
                        "boxes = []\n"
                        "class Box:\n"
                        "    def __init__(self, v):\n"
                        "        self.v = v\n"
                        "        boxes.append(weakref.ref(self))\n"
                        "    def add(self, n):\n"
                        "        self.v += n\n"
                        "        return self.v\n">>),
    {ok, Box} = py:eval(Ctx, <<"Box(10)">>),
    ?assertMatch({py_ref, Ctx, _, Self, _}, Box),
    ?assertEqual({ok, 15}, py:call_method(Box, add, [5])),
    ?assertEqual({ok, 15}, py:getattr(Box, v)),
    ?assertEqual({ok, 16}, py:eval(Ctx, <<"b.add(1)">>, #{b => Box})),
    Alive = <<"sum(1 for w in boxes if w() is not None)">>,
    ?assertEqual({ok, 1}, py:eval(Ctx, Alive)),
    ok = py:release(Box),
    eventually(fun() -> py:eval(Ctx, Alive) =:= {ok, 0} end),
    ok.

bad_node() ->
    [{doc, "A pool over a node that does not answer is not started: "
      "{error, {nodes, [{Node, _}]}}, nothing left on the nodes that did start "
      "their share, and the pool name is free again."}].
bad_node(Config) ->
    [B | _] = nodes_of(Config),
    Missing = list_to_atom("nobody_here@" ++ hd(tl(string:split(atom_to_list(node()), "@")))),
    BeforeKids = pool_children(B),
    ?assertMatch({error, {nodes, [{Missing, _}]}},
                 py_context_router:start_pool(?POOL, 2, #{nodes => [B, Missing]})),
    eventually(fun() -> pool_children(B) =:= BeforeKids end),
    ?assertEqual([], py_context_router:contexts(?POOL)),
    ?assertNot(lists:member(?POOL, py_context_router:pools())),
    ?assertMatch({error, {badarg, _}}, py_context_router:start_pool(?POOL, 2, #{nodes => []})),
    ?assertMatch({error, {badarg, _}}, py_context_router:start_pool(?POOL, 2, #{nodes => [B, B]})),
    ?assertMatch({error, {badarg, _}}, py_context_router:start_pool(?POOL, 2, #{nodes => B})),
    %% And it starts fine on the node that is there.
    {ok, [_, _]} = py_context_router:start_pool(?POOL, 2, #{nodes => [B]}),
    ok.

stop_pool_stops_members() ->
    [{doc, "stop_pool/1 on a pool over nodes stops the contexts on every node "
      "(their OS processes exit) and withdraws the pool; calls then answer "
      "{error, {pool_not_started, Name}}."}].
stop_pool_stops_members(Config) ->
    Nodes = nodes_of(Config),
    {ok, Ctxs} = py_context_router:start_pool(?POOL, 3, #{nodes => Nodes}),
    Os = [{node(C), os_pid(C)} || C <- Ctxs],
    ok = py_context_router:stop_pool(?POOL),
    ?assertEqual([], py_context_router:contexts(?POOL)),
    ?assertEqual({error, {pool_not_started, ?POOL}},
                 in_process(fun() -> py:call(?POOL, os, getpid, []) end)),
    [eventually(fun() -> not erpc:call(N, pyport_test, os_pid_alive, [P]) end)
     || {N, P} <- Os],
    [?assertNot(erpc:call(node(C), erlang, is_process_alive, [C])) || C <- Ctxs],
    ok.

owner_is_member() ->
    [{doc, "The node that starts the pool may be one of its nodes: a share runs "
      "here beside the pool's server, calls reach both nodes, stop_pool stops both."}].
owner_is_member(Config) ->
    [B | _] = nodes_of(Config),
    {ok, Ctxs} = py_context_router:start_pool(?POOL, 2, #{nodes => [node(), B]}),
    ?assertEqual([node(), B], [node(C) || C <- Ctxs]),
    Os = lists:sort([os_pid(C) || C <- Ctxs]),
    ?assertEqual(Os, lists:usort([in_process(fun() -> {ok, P} = py:call(?POOL, os, getpid, []), P end)
                                  || _ <- [1, 2]])),
    ok = py_context_router:stop_pool(?POOL),
    [?assertNot(erpc:call(node(C), erlang, is_process_alive, [C])) || C <- Ctxs],
    ok.

declared_pool() ->
    [{doc, "A pool over nodes declared to start on first use (as `lazy => true' in "
      "the application environment does): the first routed call starts it on "
      "its nodes; with fewer contexts than nodes, the last node runs none."}].
declared_pool(Config) ->
    [B, C, D] = nodes_of(Config),
    ok = py_context_router:declare_pool(?POOL, 2, #{nodes => [B, C, D]}),
    ?assertNot(lists:member(?POOL, py_context_router:pools())),
    ?assertEqual({ok, 2.0}, py:call(?POOL, math, sqrt, [4])),
    ?assertEqual([B, C], [node(X) || X <- py_context_router:contexts(?POOL)]),
    ?assertEqual([], member_shares(D)),
    ok.

owner_node_down() ->
    [{doc, "A pool owned by a node that goes away (kill -9): the shares on the "
      "other nodes stop by themselves (no orphan contexts, no OS processes left)."}].
owner_node_down(Config) ->
    [B, C | _] = nodes_of(Config),
    {OwnerPeer, Owner} = start_peer(list_to_atom(peer:random_name(?MODULE))),
    try
        {ok, Ctxs} = erpc:call(Owner, py_context_router, start_pool,
                               [owned, 4, #{nodes => [B, C]}], ?RPC_TIMEOUT),
        ?assertEqual(lists:sort([B, B, C, C]), lists:sort([node(X) || X <- Ctxs])),
        Os = [{node(X), os_pid(X)} || X <- Ctxs],
        ?assertMatch([_, _], member_shares(B) ++ member_shares(C)),
        OsPid = erpc:call(Owner, os, getpid, [], ?RPC_TIMEOUT),
        _ = os:cmd("kill -9 " ++ OsPid),
        eventually(fun() -> member_shares(B) ++ member_shares(C) =:= [] end),
        [?assertNot(erpc:call(node(X), erlang, is_process_alive, [X])) || X <- Ctxs],
        [eventually(fun() -> not erpc:call(N, pyport_test, os_pid_alive, [P]) end)
         || {N, P} <- Os]
    after
        catch peer:stop(OwnerPeer)
    end,
    ok.

failing_share_backs_off() ->
    [{doc, "A share whose node stops running pyport is started again after 1 s, "
      "then 2 s, 4 s... rather than every second (the owner logs each try), and "
      "rejoins the pool once the node runs pyport again; the other node's share "
      "serves meanwhile."}].
failing_share_backs_off(Config) ->
    [B, C | _] = nodes_of(Config),
    {ok, _} = py_context_router:start_pool(?POOL, 2, #{nodes => [B, C]}),
    %% Counts the owner's tries on C (call_count needs no tracer process).
    Try = {py_pool_member_sup, start, 4},
    1 = erpc:call(C, erlang, trace_pattern, [Try, true, [call_count]], ?RPC_TIMEOUT),
    ok = erpc:call(C, application, stop, [pyport], ?RPC_TIMEOUT),
    eventually(fun() -> [node(X) || X <- py_context_router:contexts(?POOL)] =:= [B] end),
    timer:sleep(?BACKOFF_WATCH_MS),
    {call_count, Tries} = erpc:call(C, erlang, trace_info, [Try, call_count], ?RPC_TIMEOUT),
    %% Tries at about 1, 3 and 7 s: every second would be 7 or 8.
    ?assert(Tries >= 2 andalso Tries =< 4, {tries, Tries}),
    ?assertMatch({ok, 2.0}, in_process(fun() -> py:call(?POOL, math, sqrt, [4]) end)),
    {ok, _} = erpc:call(C, application, ensure_all_started, [pyport], ?RPC_TIMEOUT),
    eventually(fun() -> lists:sort([node(X) || X <- py_context_router:contexts(?POOL)])
                                        =:= lists:sort([B, C]) end),
    {call_count, Tries1} = erpc:call(C, erlang, trace_info, [Try, call_count], ?RPC_TIMEOUT),
    ?assert(Tries1 > Tries, {tries, Tries, Tries1}),
    _ = erpc:call(C, erlang, trace_pattern, [Try, false, [call_count]], ?RPC_TIMEOUT),
    ok.

node_killed_and_rejoins() ->
    [{doc, "Three nodes, 64 callers looping over the pool: one node's BEAM is "
      "killed (kill -9). Every call is answered exactly once; calls in flight on "
      "that node (two of them sleeping ten minutes) answer "
      "{error, {context_died, noconnection}} at once, and no other call fails; "
      "the pool drops that node's contexts only and later calls all succeed on "
      "the others. A new node with the same name comes back, runs pyport (it "
      "does not connect to this node: the pool's owner connects to it), and "
      "its contexts rejoin the pool and receive calls."}].
node_killed_and_rejoins(Config) ->
    Nodes = nodes_of(Config),
    Victim = lists:nth(2, Nodes),
    Survivors = Nodes -- [Victim],
    {ok, Ctxs} = py_context_router:start_pool(?POOL, ?PER_NODE * 3, #{nodes => Nodes}),
    OnVictim = [C || C <- Ctxs, node(C) =:= Victim],
    Self = self(),
    Callers = [spawn_link(fun() -> caller(Self, I, 0) end) || I <- lists:seq(1, ?CALLERS)],
    Longs = [spawn_link(fun() ->
                 ok = py_context_router:bind_context(?POOL, C),
                 Self ! {long, self(), py:call(?POOL, asyncio, sleep, [?LONG_S, long])}
             end) || C <- OnVictim],
    timer:sleep(?BEFORE_KILL_MS),
    %% Each victim context has its long call in flight (and callers' calls).
    eventually(fun() -> lists:all(fun(C) -> in_flight(C) >= 1 end, OnVictim) end),
    OsPid = erpc:call(Victim, os, getpid, [], ?RPC_TIMEOUT),
    Killed = erlang:monotonic_time(millisecond),
    _ = os:cmd("kill -9 " ++ OsPid),
    %% The long calls answer at once.
    [receive
         {long, L, R} ->
             ?assertEqual({error, {context_died, noconnection}}, R),
             ?assert(erlang:monotonic_time(millisecond) - Killed < ?PROMPT_MS)
     after ?PROMPT_MS -> ct:fail({long_call_still_waiting, L})
     end || L <- Longs],
    %% Only the victim's contexts leave.
    eventually(fun() -> lists:sort(py_context_router:contexts(?POOL))
                            =:= lists:sort(Ctxs -- OnVictim) end),
    Gone = erlang:monotonic_time(millisecond),
    timer:sleep(?AFTER_GONE_MS),
    [C ! stop || C <- Callers],
    Log = collect(Callers, #{}, #{}),
    %% Exactly once: every call issued has one answer, no call id twice.
    #{issued := Issued, answers := Answers, counts := Counts} = Log,
    ?assertEqual([], [Id || {Id, N} <- maps:to_list(Counts), N =/= 1]),
    ?assertEqual(lists:sort(maps:keys(Issued)), lists:sort(maps:keys(Answers))),
    Died = [{Id, Ctx} || {Id, {{error, {context_died, noconnection}}, Ctx}} <- maps:to_list(Answers)],
    Other = [{Id, R} || {Id, {R, _}} <- maps:to_list(Answers),
                        not is_ok(R), R =/= {error, {context_died, noconnection}}],
    ?assertEqual([], Other),
    ?assert(length(Died) > 0),
    ?assertEqual([], [D || {_, Ctx} = D <- Died, node(Ctx) =/= Victim]),
    %% Calls issued once the pool had dropped the node all succeeded, on the others.
    After = [{Id, R, Ctx} || {Id, {R, Ctx}} <- maps:to_list(Answers),
                             maps:get(Id, Issued) > Gone],
    ?assert(length(After) > ?CALLERS),
    ?assertEqual([], [A || {_, R, _} = A <- After, not is_ok(R)]),
    ?assertEqual(lists:sort(Survivors), lists:usort([node(C) || {_, _, C} <- After])),
    ct:log("~b calls, ~b answered context_died, ~b after the node left",
           [map_size(Answers), length(Died), length(After)]),
    %% The node comes back under the same name and runs pyport: it rejoins.
    %% It does not connect to this node itself (its control channel is its
    %% standard I/O): the pool's owner connects to it.
    {NewPeer, Victim} = start_unconnected_peer(Victim),
    try
        eventually(fun() -> length(py_context_router:contexts(?POOL)) =:= ?PER_NODE * 3 end),
        Back = py_context_router:contexts(?POOL),
        NewOnVictim = [C || C <- Back, node(C) =:= Victim],
        ?assertEqual(?PER_NODE, length(NewOnVictim)),
        ?assertEqual([], [C || C <- NewOnVictim, lists:member(C, OnVictim)]),
        ?assertEqual(lists:sort(Ctxs -- OnVictim), lists:sort(Back -- NewOnVictim)),
        %% New processes reach the node again.
        VictimOs = [os_pid(C) || C <- NewOnVictim],
        Reached = [in_process(fun() -> {ok, P} = py:call(?POOL, os, getpid, []), P end)
                   || _ <- lists:seq(1, 12)],
        ?assertEqual(lists:sort(VictimOs),
                     lists:usort([P || P <- Reached, lists:member(P, VictimOs)]))
    after
        ok = py_context_router:stop_pool(?POOL),
        peer:stop(NewPeer)
    end,
    ok.

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

%% A caller: calls the pool until told to stop; reports each call id when it
%% issues it (with the time) and when it has the answer (with the context it
%% was routed to), then how many it issued.
caller(Parent, I, K) ->
    receive
        stop -> Parent ! {done, self(), I, K}
    after 0 ->
        Id = {I, K},
        Parent ! {issued, Id, erlang:monotonic_time(millisecond)},
        Ctx = catch py_context_router:get_context(?POOL),
        R = py:call(?POOL, asyncio, sleep, [?CALL_S, K]),
        Parent ! {answer, Id, R, Ctx},
        caller(Parent, I, K + 1)
    end.

collect([], Issued, Answers) ->
    collect_rest(#{issued => Issued, answers => Answers,
                   counts => maps:map(fun(_, _) -> 1 end, Answers)});
collect(Callers, Issued, Answers) ->
    receive
        {issued, Id, T} ->
            collect(Callers, Issued#{Id => T}, Answers);
        {answer, Id, R, Ctx} ->
            case maps:is_key(Id, Answers) of
                true -> ct:fail({answered_twice, Id});
                false -> collect(Callers, Issued, Answers#{Id => {R, Ctx}})
            end;
        {done, Pid, _I, _K} ->
            collect(Callers -- [Pid], Issued, Answers)
    after ?RPC_TIMEOUT ->
        ct:fail({callers_still_running, Callers})
    end.

%% Nothing may arrive after every caller is done.
collect_rest(Log) ->
    receive
        {answer, Id, _, _} -> ct:fail({late_answer, Id})
    after 500 ->
        Log
    end.

is_ok({ok, _}) -> true;
is_ok(_) -> false.

in_flight(Ctx) ->
    try erpc:call(node(Ctx), py_context, info, [Ctx], 5000) of
        #{queue_len := N} -> N
    catch _:_ -> 0
    end.

%% Starts a peer node (not linked: one case kills it) that runs pyport without
%% its default pools, and can load this suite's helpers.
start_peer(Name) ->
    Ebin = filename:dirname(code:which(py)),
    {ok, Peer, Node} = peer:start(#{name => Name,
                                    args => ["-pa", Ebin, "-pyport", "start_pools", "false"],
                                    wait_boot => ?PEER_BOOT_MS}),
    {ok, _} = erpc:call(Node, application, ensure_all_started, [pyport], ?RPC_TIMEOUT),
    lists:foreach(
      fun(M) ->
              {Mod, Bin, File} = code:get_object_code(M),
              {module, Mod} = erpc:call(Node, code, load_binary, [Mod, File, Bin], ?RPC_TIMEOUT)
      end, [pyport_test]),
    {Peer, Node}.

member_shares(Node) ->
    [Id || {{pool_member, _} = Id, _, _, _} <- erpc:call(Node, supervisor, which_children,
                                                        [py_pools_sup], ?RPC_TIMEOUT)].

%% A peer node whose control goes over its standard I/O: it connects to no
%% node by itself.
start_unconnected_peer(Name) ->
    Ebin = filename:dirname(code:which(py)),
    {ok, Peer, Node} = peer:start(#{name => Name, connection => standard_io,
                                    args => ["-pa", Ebin, "-pyport", "start_pools", "false"],
                                    wait_boot => ?PEER_BOOT_MS}),
    {ok, _} = peer:call(Peer, application, ensure_all_started, [pyport], ?RPC_TIMEOUT),
    {Mod, Bin, File} = code:get_object_code(pyport_test),
    {module, Mod} = peer:call(Peer, code, load_binary, [Mod, File, Bin], ?RPC_TIMEOUT),
    {Peer, Node}.

nodes_of(Config) ->
    [N || {_, N} <- ?config(peers, Config)].

pool_children(Node) ->
    lists:sort([Id || {Id, _, _, _} <- erpc:call(Node, supervisor, which_children,
                                                 [py_pools_sup], ?RPC_TIMEOUT)]).

os_pid(Ctx) ->
    maps:get(os_pid, erpc:call(node(Ctx), py_context, info, [Ctx], ?RPC_TIMEOUT)).

%% Runs Fun in a new process and returns its result.
in_process(Fun) ->
    {Pid, Ref} = spawn_monitor(fun() -> exit({result, Fun()}) end),
    receive
        {'DOWN', Ref, process, Pid, {result, R}} -> R;
        {'DOWN', Ref, process, Pid, Other} -> ct:fail({in_process, Other})
    after ?RPC_TIMEOUT -> ct:fail({in_process_timeout, Pid})
    end.

stream_items(Ref, Acc) ->
    receive
        {py_stream, Ref, {data, V}} -> stream_items(Ref, [V | Acc]);
        {py_stream, Ref, done} -> lists:reverse(Acc);
        {py_stream, Ref, {error, E}} -> ct:fail({stream_error, E})
    after ?RPC_TIMEOUT -> ct:fail(stream_timeout)
    end.

%% Polls Fun until it holds; fails the case after ?EVENTUALLY_MS.
eventually(Fun) ->
    pyport_test:wait_until(Fun, ?EVENTUALLY_MS).
