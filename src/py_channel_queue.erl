%% @doc One channel (py_channel, py_byte_channel): a process holding a FIFO queue
%% of terms or binaries that any process may push to and pull from. It lives as
%% long as the process that created it (its owner), like an ETS table; closing
%% it refuses new items, and the queued ones can still be taken. `max_size'
%% bounds the queued bytes (external format size for terms, byte size for
%% binaries): a push that would go over it is refused with `busy' (unless the
%% queue is empty, so that one large item can always pass).
%%
%% Waiters: a process blocked in pop/2 takes the next item directly; a process
%% registered with wait/2 is only told that an item is there (or that the
%% channel closed) and takes it itself, so a waiter that gives up loses nothing.
-module(py_channel_queue).

-export([start/4, push/2, try_pop/1, pop/2, wait/2, cancel_wait/2, close/1, info/1, notify/2, take_all/1]).

-type kind() :: term | bytes | buffer.
-export_type([kind/0]).

-record(s, {owner :: pid(),
            on_exit :: fun(() -> term()),
            kind :: kind(),
            max :: non_neg_integer(),   % 0: unbounded
            q = queue:new() :: queue:queue({non_neg_integer(), term()}),
            size = 0 :: non_neg_integer(),
            closed = false :: boolean(),
            pops = queue:new() :: queue:queue({pid(), reference()}),
            waits = [] :: [{pid(), reference()}],
            notify :: pid() | undefined}).

%% How long a caller waits for the channel process to answer a quick operation.
-define(OP_TIMEOUT, 5000).

%% @doc Starts the channel of `Owner' (monitored: its death ends the channel,
%% after `OnExit()').
-spec start(pid(), kind(), non_neg_integer(), fun(() -> term())) -> pid().
start(Owner, Kind, Max, OnExit) ->
    spawn(fun() ->
                  _ = erlang:monitor(process, Owner),
                  loop(#s{owner = Owner, on_exit = OnExit, kind = Kind, max = Max})
          end).

%% @doc Queues `Item': `ok', `busy' (over max_size) or `{error, closed}'.
-spec push(pid(), term()) -> ok | busy | {error, closed}.
push(Pid, Item) -> op(Pid, {push, Item}).

%% @doc The next item if one is queued: `{ok, Item}', `{error, empty}', or
%% `{error, closed}' once closed and drained.
-spec try_pop(pid()) -> {ok, term()} | {error, empty | closed}.
try_pop(Pid) -> op(Pid, try_pop).

%% @doc The next item, waiting up to `Timeout' ms for one: `{ok, Item}',
%% `{error, closed}' (closed and drained) or `{error, timeout}'.
-spec pop(pid(), timeout()) -> {ok, term()} | {error, closed | timeout}.
pop(Pid, Timeout) ->
    Mref = erlang:monitor(process, Pid),
    Pid ! {pop, self(), Mref},
    receive
        {Mref, Result} ->
            erlang:demonitor(Mref, [flush]),
            Result;
        {'DOWN', Mref, _, _, _} ->
            {error, closed}
    after Timeout ->
        Pid ! {cancel_pop, self(), Mref},
        erlang:demonitor(Mref, [flush]),
        %% An item handed over before the cancel arrived is still ours.
        receive {Mref, Result} -> Result after 0 -> {error, timeout} end
    end.

%% @doc Waits (up to `Timeout' ms) until an item is queued or the channel is
%% closed, without taking anything: `ready', `closed' or `timeout'.
-spec wait(pid(), timeout()) -> ready | closed | timeout.
wait(Pid, Timeout) ->
    Mref = erlang:monitor(process, Pid),
    Pid ! {wait, self(), Mref},
    receive
        {Mref, Result} ->
            erlang:demonitor(Mref, [flush]),
            Result;
        {'DOWN', Mref, _, _, _} ->
            closed
    after Timeout ->
        cancel_wait(Pid, Mref),
        erlang:demonitor(Mref, [flush]),
        receive {Mref, Result} -> Result after 0 -> timeout end
    end.

%% @doc Forgets the wait/2 of the calling process under `Mref'.
-spec cancel_wait(pid(), reference()) -> ok.
cancel_wait(Pid, Mref) ->
    Pid ! {cancel_wait, self(), Mref},
    ok.

%% @doc erlang_python's single "sync waiter": `Pid' gets `channel_data_ready'
%% when an item is queued (at once if one is) or `channel_closed', once.
%% `{error, waiter_exists}' while another registration is pending.
-spec notify(pid(), pid()) -> ok | {error, waiter_exists | closed}.
notify(Pid, Who) -> op(Pid, {notify, Who}).

%% @doc Everything queued now, oldest first, and whether the channel is closed.
-spec take_all(pid()) -> {[term()], boolean()}.
take_all(Pid) ->
    case op(Pid, take_all) of
        {error, closed} -> {[], true};
        Taken -> Taken
    end.

%% @doc Closes the channel; waiters are woken. Idempotent.
-spec close(pid()) -> ok.
close(Pid) ->
    case op(Pid, close) of
        {error, closed} -> ok;
        ok -> ok
    end.

%% @doc `#{size, max_size, closed, items}'.
-spec info(pid()) -> map().
info(Pid) ->
    case op(Pid, info) of
        {error, closed} -> #{size => 0, max_size => 0, closed => true, items => 0};
        Info -> Info
    end.

op(Pid, Op) ->
    Mref = erlang:monitor(process, Pid),
    Pid ! {op, self(), Mref, Op},
    receive
        {Mref, Result} -> erlang:demonitor(Mref, [flush]), Result;
        {'DOWN', Mref, _, _, _} -> {error, closed}
    after ?OP_TIMEOUT ->
        erlang:demonitor(Mref, [flush]),
        {error, closed}
    end.

%%% ===========================================================================
%%% The channel process
%%% ===========================================================================

loop(S = #s{owner = Owner}) ->
    receive
        {op, From, Mref, Op} ->
            {Reply, S1} = handle(Op, S),
            From ! {Mref, Reply},
            loop(S1);
        {pop, From, Mref} ->
            loop(pop_request(From, Mref, S));
        {cancel_pop, From, Mref} ->
            loop(S#s{pops = queue:filter(fun(W) -> W =/= {From, Mref} end, S#s.pops)});
        {wait, From, Mref} ->
            loop(wait_request(From, Mref, S));
        {cancel_wait, From, Mref} ->
            loop(S#s{waits = lists:delete({From, Mref}, S#s.waits)});
        {'DOWN', _, process, Owner, _} ->
            _ = (S#s.on_exit)(),
            [From ! {Mref, {error, closed}} || {From, Mref} <- queue:to_list(S#s.pops)],
            [From ! {Mref, closed} || {From, Mref} <- S#s.waits],
            exit(normal);
        _ ->
            loop(S)
    end.

handle({push, _}, S = #s{closed = true}) ->
    {{error, closed}, S};
handle({push, Item}, S = #s{max = Max, size = Size}) ->
    N = item_size(S#s.kind, Item),
    case Max > 0 andalso Size > 0 andalso Size + N > Max of
        true -> {busy, S};
        false -> {ok, deliver(S#s{q = queue:in({N, Item}, S#s.q), size = Size + N})}
    end;
handle(try_pop, S) ->
    case take(S) of
        {ok, Item, S1} -> {{ok, Item}, S1};
        empty when S#s.closed -> {{error, closed}, S};
        empty -> {{error, empty}, S}
    end;
handle(take_all, S = #s{q = Q}) ->
    {{[Item || {_, Item} <- queue:to_list(Q)], S#s.closed}, S#s{q = queue:new(), size = 0}};
handle(close, S) ->
    [From ! {Mref, {error, closed}} || {From, Mref} <- queue:to_list(S#s.pops)],
    [From ! {Mref, closed} || {From, Mref} <- S#s.waits],
    S#s.notify =:= undefined orelse (S#s.notify ! channel_closed),
    {ok, S#s{closed = true, pops = queue:new(), waits = [], notify = undefined}};
handle({notify, _}, S = #s{notify = N}) when N =/= undefined ->
    {{error, waiter_exists}, S};
handle({notify, _}, S = #s{closed = true}) ->
    {{error, closed}, S};
handle({notify, Who}, S) ->
    {ok, notify_ready(S#s{notify = Who})};
handle(info, S) ->
    {#{size => S#s.size, max_size => S#s.max, closed => S#s.closed,
       items => queue:len(S#s.q)}, S}.

item_size(term, Term) -> erlang:external_size(Term);
item_size(_, Bin) -> byte_size(Bin).

take(S = #s{q = Q, size = Size}) ->
    case queue:out(Q) of
        {{value, {N, Item}}, Q1} -> {ok, Item, S#s{q = Q1, size = Size - N}};
        {empty, _} -> empty
    end.

pop_request(From, Mref, S) ->
    case take(S) of
        {ok, Item, S1} -> From ! {Mref, {ok, Item}}, S1;
        empty when S#s.closed -> From ! {Mref, {error, closed}}, S;
        empty -> S#s{pops = queue:in({From, Mref}, S#s.pops)}
    end.

wait_request(From, Mref, S) ->
    case queue:is_empty(S#s.q) of
        false -> From ! {Mref, ready}, S;
        true when S#s.closed -> From ! {Mref, closed}, S;
        true -> S#s{waits = [{From, Mref} | S#s.waits]}
    end.

%% Hands queued items to blocked pops (skipping those that died), then tells
%% the waiters there is something.
deliver(S = #s{pops = Pops}) ->
    case queue:out(Pops) of
        {{value, {From, Mref}}, Pops1} ->
            case alive(From) of
                true ->
                    case take(S) of
                        {ok, Item, S1} ->
                            From ! {Mref, {ok, Item}},
                            deliver(S1#s{pops = Pops1});
                        empty ->
                            S
                    end;
                false ->
                    deliver(S#s{pops = Pops1})
            end;
        {empty, _} ->
            case queue:is_empty(S#s.q) of
                true -> S;
                false ->
                    [From ! {Mref, ready} || {From, Mref} <- S#s.waits],
                    notify_ready(S#s{waits = []})
            end
    end.

notify_ready(S = #s{notify = undefined}) ->
    S;
notify_ready(S = #s{notify = Who, q = Q}) ->
    case queue:is_empty(Q) of
        true -> S;
        false -> Who ! channel_data_ready, S#s{notify = undefined}
    end.

alive(Pid) when node(Pid) =:= node() -> is_process_alive(Pid);
alive(_) -> true.
