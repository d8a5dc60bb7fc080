%% @doc Byte channels (erlang_python 2.x's `py_byte_channel'): a channel of raw
%% binaries, read in Python as `bytes' (`erlang.ByteChannel(ref)'), written from
%% both sides (Python's `send_bytes', Erlang's send/2), read from both sides
%% (Python's receive_bytes, Erlang's recv/1,2). `max_size' counts bytes. The
%% queue and its lifetime are those of py_channel.
-module(py_byte_channel).

-export([new/0, new/1, send/2, try_receive/1, recv/1, recv/2, close/1, info/1,
         register_callbacks/0, handle_receive_bytes/1, handle_try_receive_bytes/1]).

%% @doc A new unbounded byte channel owned by the caller.
-spec new() -> {ok, py_channel:channel()}.
new() -> new(#{}).

%% @doc A new byte channel; `max_size' bounds the queued bytes (send/2 answers
%% `busy' when it would be exceeded).
-spec new(py_channel:opts()) -> {ok, py_channel:channel()} | {error, {badarg, term()}}.
new(Opts) when is_map(Opts) ->
    case maps:get(max_size, Opts, 0) of
        Max when is_integer(Max), Max >= 0 ->
            case maps:keys(maps:remove(max_size, Opts)) of
                [] -> {ok, py_channel:create(bytes, Max)};
                Unknown -> {error, {badarg, {unknown_options, Unknown}}}
            end;
        Bad ->
            {error, {badarg, {max_size, Bad}}}
    end.

%% @doc Queues `Bytes': `ok', `busy' or `{error, closed}'.
-spec send(py_channel:channel(), binary()) -> ok | busy | {error, closed}.
send(Ch, Bytes) when is_binary(Bytes) ->
    py_channel:send(Ch, Bytes).

%% @doc The next binary without waiting: `{ok, Bytes}', `{error, empty}' or
%% `{error, closed}'.
-spec try_receive(py_channel:channel()) -> {ok, binary()} | {error, empty | closed}.
try_receive(Ch) -> py_channel:try_receive(Ch).

%% @doc The next binary, waiting for it as long as it takes (`{error, closed}'
%% once the channel is closed and drained).
-spec recv(py_channel:channel()) -> {ok, binary()} | {error, closed | timeout}.
recv(Ch) -> py_channel:receive_term(Ch, infinity).

%% @doc The next binary, waiting up to `Timeout' ms.
-spec recv(py_channel:channel(), timeout()) -> {ok, binary()} | {error, closed | timeout}.
recv(Ch, Timeout) -> py_channel:receive_term(Ch, Timeout).

%% @doc Closes the channel (what is queued can still be read).
-spec close(py_channel:channel()) -> ok.
close(Ch) -> py_channel:close(Ch).

%% @doc `#{size, max_size, closed, items}'.
-spec info(py_channel:channel()) -> map().
info(Ch) -> py_channel:info(Ch).

%% @doc Nothing to register (built-in callbacks).
-spec register_callbacks() -> ok.
register_callbacks() -> ok.

%% @doc erlang_python's blocking receive, as a callback's arguments.
-spec handle_receive_bytes([py_channel:channel()]) -> {ok, binary()} | {error, closed | timeout}.
handle_receive_bytes([Ch]) -> recv(Ch, infinity).

%% @doc erlang_python's non-blocking receive, as a callback's arguments.
-spec handle_try_receive_bytes([py_channel:channel()]) -> {ok, binary()} | {error, empty | closed}.
handle_try_receive_bytes([Ch]) -> try_receive(Ch).
