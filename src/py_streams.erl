%% @private
%% @doc The running streams: the node-wide table that maps a stream's reference
%% to its context and request (so that py:stream_cancel/1 finds it), and the
%% flow-control state a context keeps per stream. This module alone knows the
%% table's rows and the state's shape.
%%
%% Flow control: the port sends at most a window of items ahead of the
%% acknowledgements. The context acknowledges an item once the owner has taken
%% it from its mailbox (items delivered minus those still waiting there), so a
%% consumer that stops reading stops the generator within a window. While the
%% owner lags, the context looks again after a delay that doubles up to a second:
%% a stalled owner costs about one look per second, however long it stalls.
-module(py_streams).

-export([new_table/0, insert/3, take/1, delete/1, count/0,
         credit/2, delivered/1, recheck/1, owner/1]).

-export_type([credit/0]).

-define(TABLE, py_streams).
%% First and last delay between two looks at a lagging owner's mailbox.
-define(RECHECK_MIN_MS, 5).
-define(RECHECK_MAX_MS, 1000).

-record(credit, {owner :: pid(),
                 window :: pos_integer(),
                 unacked = 0 :: non_neg_integer(),     % delivered, not yet acknowledged
                 waiting = false :: false | pos_integer()}). % a recheck is due after this delay

-opaque credit() :: #credit{}.

%% @doc Creates the table (once, by the application's top supervisor).
-spec new_table() -> ok.
new_table() ->
    _ = ets:new(?TABLE, [named_table, public, set, {write_concurrency, true}]),
    ok.

%% @doc Records stream `Ref' as request `Id' of `Ctx'.
-spec insert(reference(), pid(), pos_integer()) -> ok.
insert(Ref, Ctx, Id) ->
    true = ets:insert(?TABLE, {Ref, Ctx, Id}),
    ok.

%% @doc Takes stream `Ref': `{Ctx, Id}' for the one who ends it, else `error'.
-spec take(reference()) -> {pid(), pos_integer()} | error.
take(Ref) ->
    case ets:take(?TABLE, Ref) of
        [{_, Ctx, Id}] -> {Ctx, Id};
        [] -> error
    end.

%% @doc Forgets stream `Ref' (it ended).
-spec delete(reference()) -> ok.
delete(Ref) ->
    true = ets:delete(?TABLE, Ref),
    ok.

%% @doc Streams running on this node.
-spec count() -> non_neg_integer().
count() -> ets:info(?TABLE, size).

%% @doc Flow-control state of a new stream to `Owner'.
-spec credit(pid(), pos_integer()) -> credit().
credit(Owner, Window) -> #credit{owner = Owner, window = Window}.

%% @doc The owner of a stream.
-spec owner(credit()) -> pid().
owner(#credit{owner = Owner}) -> Owner.

%% @doc One more item was delivered to the owner. Returns the items to
%% acknowledge to the port now (0 for none), whether a recheck must be scheduled
%% (`{recheck, Ms}') and the new state.
-spec delivered(credit()) -> {non_neg_integer(), none | {recheck, pos_integer()}, credit()}.
delivered(C = #credit{unacked = U, window = W, waiting = false}) when U + 1 >= W div 2 ->
    ack(C#credit{unacked = U + 1}, ?RECHECK_MIN_MS);
delivered(C = #credit{unacked = U}) ->
    {0, none, C#credit{unacked = U + 1}}.

%% @doc The recheck scheduled by delivered/1 or recheck/1 is due.
-spec recheck(credit()) -> {non_neg_integer(), none | {recheck, pos_integer()}, credit()}.
recheck(C = #credit{waiting = false}) ->
    {0, none, C};
recheck(C = #credit{waiting = Delay}) ->
    ack(C, min(?RECHECK_MAX_MS, Delay * 2)).

%% Acknowledges what the owner has taken; if it still lags, looks again later.
ack(C = #credit{unacked = U, owner = Owner}, NextDelay) ->
    Credit = U - min(U, waiting(Owner)),
    case U - Credit of
        0 -> {Credit, none, C#credit{unacked = 0, waiting = false}};
        Left -> {Credit, {recheck, NextDelay}, C#credit{unacked = Left, waiting = NextDelay}}
    end.

%% Messages waiting in a local owner's mailbox (a remote owner's are not known:
%% its credit comes back as items are delivered).
waiting(Owner) when node(Owner) =:= node() ->
    case erlang:process_info(Owner, message_queue_len) of
        {message_queue_len, Len} -> Len;
        undefined -> 0
    end;
waiting(_) ->
    0.
