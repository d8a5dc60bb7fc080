%% @doc Buffers (erlang_python 2.x's `py_buffer'): a byte stream an Erlang
%% process writes (a request body, a file) and Python reads as a file-like
%% object, `erlang.PyBuffer(ref)': read, readline, iteration, seek/tell, find,
%% non-blocking reads, `await read_async()', and `memoryview(buf)' over what
%% it holds. Closing it from Erlang is the end of the stream. Written chunks
%% stay in the buffer's process (no copy) until Python takes them, all that is
%% queued in one answer: each byte crosses the pipe once. A buffer lives as long
%% as the process that created it (it is a byte channel, py_channel).
-module(py_buffer).

-export([new/0, new/1, write/2, close/1, info/1, python/2]).

%% @doc A new buffer of unknown length (chunked), owned by the caller.
-spec new() -> {ok, reference()}.
new() -> new(undefined).

%% @doc A new buffer; `ContentLength' (bytes, or `undefined') is only
%% informative (info/1 gives it back).
-spec new(non_neg_integer() | undefined) -> {ok, reference()} | {error, {badarg, term()}}.
new(ContentLength) when ContentLength =:= undefined;
                        is_integer(ContentLength), ContentLength >= 0 ->
    {ok, py_channel:create(buffer, 0)};
new(Other) ->
    {error, {badarg, {content_length, Other}}}.

%% @doc Appends `Data' (`ok', or `{error, closed}' once closed).
-spec write(reference(), iodata()) -> ok | {error, closed}.
write(Buf, Data) when is_binary(Data) ->
    case py_channel:send(Buf, Data) of
        ok -> ok;
        {error, closed} -> {error, closed}
    end;
write(Buf, Data) ->
    write(Buf, iolist_to_binary(Data)).

%% @doc Ends the stream: readers get what was written, then end of file.
-spec close(reference()) -> ok.
close(Buf) -> py_channel:close(Buf).

%% @doc `#{size, closed, items}': bytes written and not yet read by Python.
-spec info(reference()) -> map().
info(Buf) -> maps:remove(max_size, py_channel:info(Buf)).

%% @doc The `_pyport.buffer' operations of erlang.PyBuffer: `take' answers
%% `[Chunks, Closed]' (the chunks as `{bytes, B}'), waiting for something first
%% when `Block' is true.
-spec python(binary(), list()) -> term().
python(<<"take">>, [Buf, Block]) ->
    case py_channel:lookup(Buf) of
        {ok, Pid, _} -> take(Pid, Block);
        closed -> [[], true]
    end;
python(<<"wait">>, [Buf]) ->
    py_channel:python(<<"wait">>, [Buf]);
python(<<"close">>, [Buf]) ->
    close(Buf).

take(Pid, Block) ->
    case py_channel_queue:take_all(Pid) of
        {[], false} when Block ->
            _ = py_channel_queue:wait(Pid, infinity),
            take(Pid, false);
        {Chunks, Closed} ->
            [[{bytes, C} || C <- Chunks], Closed]
    end.
