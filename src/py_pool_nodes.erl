%% @private
%% @doc A pool whose contexts run on several nodes (`start_pool(Name, N,
%% #{nodes => Nodes})'). One server per such pool, on the node that started it
%% (its owner), under py_pools_sup; each node of `Nodes' runs its share of the
%% contexts under its own py_pool_member_sup, and every member context joins
%% the `pg' group `{pyport_pool, Owner}' (scope `pyport_pg', started by each
%% node's pyport application).
%%
%% The owner follows the group (pg:monitor/2) and publishes its members for the
%% read path (persistent_term, interleaved by node: one context of each node in
%% turn). A process's first routed call takes the next member round-robin and
%% stays bound to it while it is a member whose node is connected. When a node
%% goes down, pg drops its members at once, calls in flight on them answer
%% `{error, {context_died, noconnection}}' (their callers monitor the context)
%% and routing continues on the rest. When the node is back (nodeup) and runs
%% pyport, the owner starts its share there again (while the node is away the
%% owner tries to connect to it every second). A share that stops for another
%% reason (its node's pyport stopped), or fails to start, is started again
%% after a delay that doubles with each failure in a row, from 1 s up to 30 s;
%% a share that ran for 10 s or more counts as healthy again.
%% Members stop with their owner (py_pool_member_sup's watcher).
-module(py_pool_nodes).
-behaviour(gen_server).

-export([child_spec/4, start_link/4, await/1, members/1, pick/1, is_member/2]).
-export([init/1, handle_continue/2, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-include_lib("kernel/include/logger.hrl").

-define(SCOPE, pyport_pg).
-define(KEY(Pool), {?MODULE, Pool}).
%% Starting a share on a node waits for its contexts' Python to be ready.
-define(START_MS, 110000).
%% How long stopping waits for each node to stop its share.
-define(STOP_MS, 10000).
%% Delay before trying again to start a share on a node that is up: it doubles
%% with each failure in a row up to ?MAX_RETRY_MS. A share that stopped after
%% running ?STABLE_MS or more starts a new row.
-define(RETRY_MS, 1000).
-define(MAX_RETRY_MS, 30000).
-define(STABLE_MS, 10000).

%%% ===========================================================================
%%% API
%%% ===========================================================================

%% @doc The child spec (under py_pools_sup, id `{pool, Pool}') of the pool
%% `Pool' of `Size' contexts over `Nodes', with context options `Opts'.
-spec child_spec(atom(), pos_integer(), [node(), ...], map()) -> supervisor:child_spec().
child_spec(Pool, Size, Nodes, Opts) ->
    #{id => {pool, Pool},
      start => {?MODULE, start_link, [Pool, Size, Nodes, Opts]},
      restart => transient,
      shutdown => ?STOP_MS + 5000,
      type => worker,
      modules => [?MODULE]}.

%% @doc Starts the pool's server; await/1 then waits for the contexts.
-spec start_link(atom(), pos_integer(), [node(), ...], map()) -> {ok, pid()}.
start_link(Pool, Size, Nodes, Opts) ->
    gen_server:start_link(?MODULE, {Pool, Size, Nodes, Opts}, []).

%% @doc Waits until each node runs its share of the pool and this node sees
%% every member in the group: `ok', or the error (a node that cannot start its
%% share: `{nodes, [{Node, Reason}]}'), after which the server stops.
-spec await(pid()) -> ok | {error, term()}.
await(Server) ->
    try gen_server:call(Server, await, ?START_MS + ?STOP_MS)
    catch exit:Reason -> {error, Reason}
    end.

%% @doc The pool's contexts, one node after the other in turn (`{}' if none is up).
-spec members(atom()) -> tuple().
members(Pool) ->
    {Ctxs, _} = persistent_term:get(?KEY(Pool), {{}, undefined}),
    Ctxs.

%% @doc The next context of the pool, round-robin; raises
%% `{no_contexts, Pool}' when no member is up.
-spec pick(atom()) -> pid().
pick(Pool) ->
    case persistent_term:get(?KEY(Pool), undefined) of
        {Ctxs, Counter} when tuple_size(Ctxs) > 0 ->
            element(atomics:add_get(Counter, 1, 1) rem tuple_size(Ctxs) + 1, Ctxs);
        _ ->
            error({no_contexts, Pool})
    end.

%% @doc Whether `Ctx' is still a member of the pool (and its node connected).
-spec is_member(atom(), pid()) -> boolean().
is_member(Pool, Ctx) ->
    in_tuple(Ctx, members(Pool), 1)
        andalso (node(Ctx) =:= node() orelse lists:member(node(Ctx), nodes())).

%%% ===========================================================================
%%% gen_server
%%% ===========================================================================

%% @private The shares start after init (the local node's share goes under
%% py_pools_sup, which is starting this server); await/1 waits for them.
init({Pool, Size, Nodes, Opts}) ->
    process_flag(trap_exit, true),
    ok = net_kernel:monitor_nodes(true),
    {Ref, Pids} = pg:monitor(?SCOPE, {pyport_pool, self()}),
    {ok, #{pool => Pool, size => Size, ref => Ref, members => Pids,
           place => placement(Size, Nodes), opts => Opts, shares => #{},
           counter => atomics:new(1, [{signed, false}]), status => starting, reconnecting => #{},
           failures => #{}},
     {continue, start}}.

%% @private
handle_continue(start, S = #{pool := Pool, size := Size, place := Place, opts := Opts}) ->
    Owner = self(),
    Requests = [{N, erpc:send_request(N, py_pool_member_sup, start, [Owner, Pool, C, Opts])}
                || {N, C} <- Place],
    Results = [{N, response(Request)} || {N, Request} <- Requests],
    S1 = S#{shares := maps:from_list([{N, {Sup, erlang:monitor(process, Sup), now_ms()}}
                                      || {N, {ok, Sup}} <- Results])},
    case [{N, Why} || {N, {error, Why}} <- Results] of
        [] ->
            case await_members(S1, Size, erlang:monotonic_time(millisecond) + ?START_MS) of
                {ok, S2} ->
                    {noreply, publish(S2#{status := ready})};
                {timeout, S2 = #{members := Members}} ->
                    stop_shares(S2),
                    {noreply, S2#{status := {error, {members_missing, length(Members), Size}}}}
            end;
        Failed ->
            stop_shares(S1),
            {noreply, S1#{status := {error, {nodes, Failed}}}}
    end.

%% @private
handle_call(await, _From, S = #{status := ready}) ->
    {reply, ok, S};
handle_call(await, _From, S = #{status := Error}) ->
    {stop, {shutdown, Error}, Error, S#{shares := #{}}}.

%% @private
handle_cast(_Msg, S) ->
    {noreply, S}.

%% @private
handle_info({Ref, join, _Group, Pids}, S = #{ref := Ref, members := Members}) ->
    {noreply, publish(S#{members := Members ++ (Pids -- Members)})};
handle_info({Ref, leave, _Group, Pids}, S = #{ref := Ref, members := Members}) ->
    {noreply, publish(S#{members := Members -- Pids})};
handle_info({nodeup, Node}, S) ->
    {noreply, maybe_start(Node, S)};
handle_info({nodedown, Node}, S) ->
    {noreply, reconnect(Node, S)};
handle_info({retry, Node}, S) ->
    {noreply, maybe_start(Node, S)};
handle_info({started, Node, Result}, S = #{shares := Shares}) ->
    case Result of
        {ok, Sup} ->
            Mref = erlang:monitor(process, Sup),
            {noreply, S#{shares := Shares#{Node => {Sup, Mref, now_ms()}}}};
        {error, Reason} ->
            {noreply, retry_later(Node, "failed to start", Reason, S#{shares := maps:remove(Node, Shares)})}
    end;
handle_info({'DOWN', Mref, process, _Sup, Reason}, S = #{shares := Shares, failures := F}) ->
    case [{N, T} || {N, {_, M, T}} <- maps:to_list(Shares), M =:= Mref] of
        [{Node, _}] when Reason =:= noconnection ->
            %% A node that went away is started again on nodeup.
            {noreply, S#{shares := maps:remove(Node, Shares)}};
        [{Node, Started}] ->
            F1 = case now_ms() - Started >= ?STABLE_MS of
                     true -> maps:remove(Node, F);
                     false -> F
                 end,
            {noreply, retry_later(Node, "stopped", Reason,
                                  S#{shares := maps:remove(Node, Shares), failures := F1})};
        [] ->
            {noreply, S}
    end;
handle_info({'EXIT', Pid, normal}, S = #{reconnecting := R}) ->
    {noreply, S#{reconnecting := maps:filter(fun(_, P) -> P =/= Pid end, R)}};
handle_info({'EXIT', _, Reason}, S) ->
    {stop, Reason, S};
handle_info(_Msg, S) ->
    {noreply, S}.

%% @private Stops every node's share and withdraws the pool from the read path.
terminate(_Reason, S = #{pool := Pool}) ->
    _ = persistent_term:erase(?KEY(Pool)),
    stop_shares(S);
terminate(_Reason, _) ->
    ok.

%%% ===========================================================================
%%% Internals
%%% ===========================================================================

response(Request) ->
    try erpc:receive_response(Request, ?START_MS) of
        {ok, Sup} when is_pid(Sup) -> {ok, Sup};
        {error, Reason} -> {error, Reason}
    catch
        Class:Reason -> {error, {Class, Reason}}
    end.

%% Takes the group's join and leave messages until it has Size members.
await_members(S = #{ref := Ref, members := Members}, Size, Deadline) ->
    case length(Members) >= Size of
        true ->
            {ok, S};
        false ->
            Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
            receive
                {Ref, join, _, Pids} ->
                    await_members(S#{members := Members ++ (Pids -- Members)}, Size, Deadline);
                {Ref, leave, _, Pids} ->
                    await_members(S#{members := Members -- Pids}, Size, Deadline)
            after Left ->
                {timeout, S}
            end
    end.

%% Starts Node's share again (in a helper process, so that the server keeps
%% following the group meanwhile) if Node is one of the pool's, is connected
%% and runs no share of it yet.
maybe_start(Node, S = #{pool := Pool, place := Place, opts := Opts, shares := Shares}) ->
    case {lists:keyfind(Node, 1, Place), maps:is_key(Node, Shares),
          lists:member(Node, nodes())} of
        {{Node, Count}, false, true} ->
            Owner = self(),
            _ = spawn_link(fun() ->
                Result = try erpc:call(Node, py_pool_member_sup, start,
                                       [Owner, Pool, Count, Opts], ?START_MS)
                         catch Class:Reason -> {error, {Class, Reason}}
                         end,
                Owner ! {started, Node, Result}
            end),
            S#{shares := Shares#{Node => starting}};
        _ ->
            S
    end.

%% While a node of the pool is away, a helper tries to connect to it every
%% ?RETRY_MS (connecting can block for seconds); it ends once the node is
%% connected, by it or by anyone else, and nodeup then starts the share.
reconnect(Node, S = #{place := Place, reconnecting := R}) ->
    case lists:keymember(Node, 1, Place) andalso not maps:is_key(Node, R) of
        true ->
            Pid = spawn_link(fun() -> reconnect_loop(Node) end),
            S#{reconnecting := R#{Node => Pid}};
        false ->
            S
    end.

reconnect_loop(Node) ->
    timer:sleep(?RETRY_MS),
    case net_kernel:connect_node(Node) of
        true -> ok;
        _ -> reconnect_loop(Node)
    end.

%% Starts Node's share again after the delay its failures in a row call for.
retry_later(Node, What, Reason, S = #{pool := Pool, failures := F}) ->
    Failures = maps:get(Node, F, 0),
    Delay = retry_delay(Failures),
    ?LOG_WARNING("pyport pool ~p: its share on ~p ~s (~0p); starting it again in ~p ms",
                 [Pool, Node, What, Reason, Delay]),
    erlang:send_after(Delay, self(), {retry, Node}),
    S#{failures := F#{Node => Failures + 1}}.

retry_delay(Failures) ->
    min(?RETRY_MS bsl min(Failures, 5), ?MAX_RETRY_MS).

now_ms() -> erlang:monotonic_time(millisecond).

stop_shares(#{shares := Shares}) ->
    _ = erpc:multicall(maps:keys(Shares), py_pool_member_sup, stop, [self()], ?STOP_MS),
    ok.

%% Publishes the members, one node after the other in turn (the order of the
%% pool's nodes), so that consecutive picks go to different nodes.
publish(S = #{pool := Pool, place := Place, members := Members, counter := Counter}) ->
    ByNode = [[P || P <- Members, node(P) =:= N] || {N, _} <- Place],
    Ctxs = list_to_tuple(interleave(ByNode)),
    case persistent_term:get(?KEY(Pool), undefined) of
        {Ctxs, Counter} -> ok;
        _ -> persistent_term:put(?KEY(Pool), {Ctxs, Counter})
    end,
    S.

interleave(Lists) ->
    case [L || L <- Lists, L =/= []] of
        [] -> [];
        NonEmpty -> [H || [H | _] <- NonEmpty] ++ interleave([T || [_ | T] <- NonEmpty])
    end.

in_tuple(_, T, I) when I > tuple_size(T) -> false;
in_tuple(X, T, I) -> element(I, T) =:= X orelse in_tuple(X, T, I + 1).

%% How many contexts each node runs: `Size' spread evenly over `Nodes',
%% the first nodes taking one more when it does not divide (nodes that would
%% run none are left out).
placement(Size, Nodes) ->
    L = length(Nodes),
    [{N, C} || {I, N} <- lists:zip(lists:seq(1, L), Nodes),
               C <- [Size div L + case I =< Size rem L of true -> 1; false -> 0 end],
               C > 0].
