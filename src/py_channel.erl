%% @doc Channels (erlang_python 2.x's `py_channel'): an Erlang process pushes
%% terms into a channel, Python code takes them (`erlang.Channel(ref)':
%% receive, try_receive, iteration, `await async_receive()', `async for').
%% A channel is a reference naming a queue process (py_channel_queue) that
%% lives as long as the process that created it; the channel may be handed to
%% any context (it is a plain reference in the Python data), and be read from
%% several. This module owns the table of channels (shared with py_byte_channel)
%% and answers the `_pyport.channel' operations Python calls.
-module(py_channel).

-export([new_table/0, new/0, new/1, send/2, close/1, info/1, try_receive/1, receive_term/2,
         register_callbacks/0, handle_receive/1, handle_try_receive/1,
         create/2, lookup/1, python/2, notify/2]).

-export_type([channel/0, opts/0]).

-type channel() :: reference().
-type opts() :: #{max_size => non_neg_integer()}.

-define(TABLE, py_channels).

%% @doc Creates the table of channels (once, by the application's top supervisor).
-spec new_table() -> ok.
new_table() ->
    _ = ets:new(?TABLE, [named_table, public, set, {read_concurrency, true}]),
    ok.

%% @doc A new unbounded channel owned by the caller.
-spec new() -> {ok, channel()}.
new() -> new(#{}).

%% @doc A new channel; `max_size' (bytes of queued terms in external format, 0:
%% unbounded) makes send/2 answer `busy' when it would be exceeded.
-spec new(opts()) -> {ok, channel()} | {error, {badarg, term()}}.
new(Opts) when is_map(Opts) ->
    case maps:get(max_size, Opts, 0) of
        Max when is_integer(Max), Max >= 0 ->
            case maps:keys(maps:remove(max_size, Opts)) of
                [] -> {ok, create(term, Max)};
                Unknown -> {error, {badarg, {unknown_options, Unknown}}}
            end;
        Bad ->
            {error, {badarg, {max_size, Bad}}}
    end.

%% @doc A channel of `Kind' owned by the caller (py_byte_channel uses `bytes').
-spec create(py_channel_queue:kind(), non_neg_integer()) -> channel().
create(Kind, Max) ->
    Ref = make_ref(),
    Pid = py_channel_queue:start(self(), Kind, Max, fun() -> ets:delete(?TABLE, Ref) end),
    true = ets:insert(?TABLE, {Ref, Pid, Kind}),
    Ref.

%% @doc The queue process of a channel, or `closed' when it no longer exists.
-spec lookup(channel()) -> {ok, pid(), py_channel_queue:kind()} | closed.
lookup(Ref) ->
    case ets:lookup(?TABLE, Ref) of
        [{_, Pid, Kind}] -> {ok, Pid, Kind};
        [] -> closed
    end.

%% @doc Queues `Term' for Python: `ok', `busy' (max_size) or `{error, closed}'.
-spec send(channel(), term()) -> ok | busy | {error, closed}.
send(Ch, Term) ->
    with(Ch, fun(Pid, _) -> py_channel_queue:push(Pid, Term) end, {error, closed}).

%% @doc Closes the channel: receivers take what is queued, then see it closed.
-spec close(channel()) -> ok.
close(Ch) ->
    with(Ch, fun(Pid, _) -> py_channel_queue:close(Pid) end, ok).

%% @doc `#{size, max_size, closed, items}' (`size' in bytes).
-spec info(channel()) -> #{size := non_neg_integer(), max_size := non_neg_integer(),
                           closed := boolean(), items := non_neg_integer()}.
info(Ch) ->
    with(Ch, fun(Pid, _) -> py_channel_queue:info(Pid) end,
         #{size => 0, max_size => 0, closed => true, items => 0}).

%% @doc Takes the next term without waiting: `{ok, Term}', `{error, empty}' or
%% `{error, closed}'.
-spec try_receive(channel()) -> {ok, term()} | {error, empty | closed}.
try_receive(Ch) ->
    with(Ch, fun(Pid, _) -> py_channel_queue:try_pop(Pid) end, {error, closed}).

%% @doc Takes the next term, waiting up to `Timeout' ms.
-spec receive_term(channel(), timeout()) -> {ok, term()} | {error, closed | timeout}.
receive_term(Ch, Timeout) ->
    with(Ch, fun(Pid, _) -> py_channel_queue:pop(Pid, Timeout) end, {error, closed}).

%% @doc `Who' gets `channel_data_ready' once an item is queued (at once if one
%% is), or `channel_closed'; one registration at a time.
-spec notify(channel(), pid()) -> ok | {error, waiter_exists | closed}.
notify(Ch, Who) ->
    with(Ch, fun(Pid, _) -> py_channel_queue:notify(Pid, Who) end, {error, closed}).

%% @doc Nothing to register: Python reaches channels through pyport's built-in
%% callbacks.
-spec register_callbacks() -> ok.
register_callbacks() -> ok.

%% @doc erlang_python's blocking receive, `[Channel]' as a callback's arguments.
-spec handle_receive([channel()]) -> {ok, term()} | {error, closed | timeout}.
handle_receive([Ch]) -> receive_term(Ch, infinity).

%% @doc erlang_python's non-blocking receive.
-spec handle_try_receive([channel()]) -> {ok, term()} | {error, empty | closed}.
handle_try_receive([Ch]) -> try_receive(Ch).

with(Ch, Fun, IfClosed) when is_reference(Ch) ->
    case lookup(Ch) of
        {ok, Pid, Kind} -> Fun(Pid, Kind);
        closed -> IfClosed
    end;
with(Ch, _, _) ->
    erlang:error({badarg, {not_a_channel, Ch}}).

%% @doc The `_pyport.channel' operations of erlang.Channel and erlang.ByteChannel:
%% an item comes back as `[true, Item]', or `[false, empty | closed | timeout]'
%% (a byte channel's items as `{bytes, Binary}', so Python gets bytes).
-spec python(binary(), list()) -> term().
python(<<"try_receive">>, [Ch]) ->
    with(Ch, fun(Pid, Kind) -> to_python(Kind, py_channel_queue:try_pop(Pid)) end,
         [false, closed]);
python(<<"receive">>, [Ch, Timeout]) ->
    with(Ch, fun(Pid, Kind) -> to_python(Kind, py_channel_queue:pop(Pid, timeout_ms(Timeout))) end,
         [false, closed]);
python(<<"wait">>, [Ch]) ->
    with(Ch, fun(Pid, _) -> py_channel_queue:wait(Pid, infinity) end, closed);
python(<<"send">>, [Ch, Item]) ->
    case lookup(Ch) of
        {ok, Pid, term} -> py_channel_queue:push(Pid, Item);
        {ok, Pid, _} when is_binary(Item) -> py_channel_queue:push(Pid, Item);
        {ok, _, _} -> erlang:error({badarg, {not_bytes, Item}});
        closed -> closed
    end;
python(<<"close">>, [Ch]) ->
    close(Ch);
python(<<"kind">>, [Ref]) ->
    case is_reference(Ref) andalso lookup(Ref) of
        {ok, _, term} -> channel;
        {ok, _, bytes} -> byte_channel;
        {ok, _, buffer} -> buffer;
        _ -> none
    end;
python(<<"info">>, [Ch]) ->
    info(Ch).

timeout_ms(none) -> infinity;
timeout_ms(undefined) -> infinity;
timeout_ms(S) when is_number(S), S >= 0 -> round(S * 1000).

to_python(Kind, {ok, Item}) when Kind =/= term, is_binary(Item) ->
    [true, {bytes, Item}];
to_python(_, {ok, Item}) ->
    [true, Item];
to_python(_, {error, Why}) ->
    [false, Why].
