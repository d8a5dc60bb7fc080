%% Channels, byte channels and buffers: Erlang pushes, Python consumers take
%% (sync, iterator, async for, without blocking other coroutines), close and
%% drain, back-pressure, owner death; buffers streamed to Python intact.
-module(py_channels_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([sync_consumer/0, sync_consumer/1,
         receive_timeout/0, receive_timeout/1,
         async_consumer_does_not_block/0, async_consumer_does_not_block/1,
         cancelled_wait_takes_nothing/0, cancelled_wait_takes_nothing/1,
         backpressure/0, backpressure/1,
         close_and_drain/0, close_and_drain/1,
         owner_death/0, owner_death/1,
         two_contexts_share/0, two_contexts_share/1,
         byte_channel_both_ways/0, byte_channel_both_ways/1,
         buffer_large_stream/0, buffer_large_stream/1,
         buffer_file_like/0, buffer_file_like/1,
         buffer_async/0, buffer_async/1]).

-define(CASE_TIMEOUT, {minutes, 2}).
-define(CALL_TIMEOUT, 30000).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [sync_consumer, receive_timeout, async_consumer_does_not_block, cancelled_wait_takes_nothing,
     backpressure, close_and_drain, owner_death, two_contexts_share, byte_channel_both_ways,
     buffer_large_stream, buffer_file_like, buffer_async].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

init_per_testcase(_Case, Config) ->
    {ok, Ctx} = py_context:start_link(#{python_path => [?config(data_dir, Config)]}),
    [{ctx, Ctx} | Config].

end_per_testcase(_Case, Config) ->
    ok = py_context:stop(?config(ctx, Config)).

%%% ===========================================================================
%%% Cases
%%% ===========================================================================

sync_consumer() ->
    [{doc, "A Python consumer iterating a channel gets every term in order while "
      "Erlang pushes them, and stops when the channel is closed."}].
sync_consumer(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, Ch} = py_channel:new(),
    Consumer = pyport_test:spawn_caller(fun() -> py:call(Ctx, chan_cases, receive_all, [Ch]) end),
    Items = [{item, I, <<"payload">>} || I <- lists:seq(1, 200)] ++ [#{k => [1, 2.5]}],
    [begin ok = py_channel:send(Ch, T), T end || T <- Items],
    ok = py_channel:close(Ch),
    {ok, Got} = pyport_test:answer(Consumer, ?CALL_TIMEOUT),
    ?assertEqual(Items, Got),
    ok.

receive_timeout() ->
    [{doc, "Channel.receive(timeout) raises TimeoutError when nothing comes; a "
      "later item is still received."}].
receive_timeout(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, Ch} = py_channel:new(),
    ?assertEqual({ok, {<<"timeout">>, none}}, py:call(Ctx, chan_cases, receive_one, [Ch, 0.1])),
    ok = py_channel:send(Ch, 7),
    ?assertEqual({ok, {<<"ok">>, 7}}, py:call(Ctx, chan_cases, receive_one, [Ch, 1])),
    ok = py_channel:close(Ch),
    ?assertEqual({ok, {<<"closed">>, none}}, py:call(Ctx, chan_cases, receive_one, [Ch])).

async_consumer_does_not_block() ->
    [{doc, "A coroutine waiting on an empty channel with async for leaves the "
      "context free: other coroutines sleep 50 ms in about 50 ms and sync calls "
      "answer; then it gets the items pushed and ends at close."}].
async_consumer_does_not_block(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, Ch} = py_channel:new(),
    Consumer = pyport_test:spawn_caller(fun() -> py:call(Ctx, chan_cases, async_all, [Ch]) end),
    timer:sleep(100),
    Naps = [pyport_test:spawn_caller(fun() -> py:call(Ctx, chan_cases, nap, [0.05]) end)
            || _ <- lists:seq(1, 5)],
    [begin {ok, S} = pyport_test:answer(P, ?CALL_TIMEOUT), ?assert(S < 0.3, S) end || P <- Naps],
    ?assertEqual({ok, 4}, py:eval(Ctx, <<"2 + 2">>)),
    [ok = py_channel:send(Ch, I) || I <- [1, 2, 3]],
    timer:sleep(50),
    ok = py_channel:send(Ch, 4),
    ok = py_channel:close(Ch),
    ?assertEqual({ok, [1, 2, 3, 4]}, pyport_test:answer(Consumer, ?CALL_TIMEOUT)),
    ok.

cancelled_wait_takes_nothing() ->
    [{doc, "An async_receive cancelled by asyncio.wait_for takes nothing: the next "
      "item pushed is still in the channel."}].
cancelled_wait_takes_nothing(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, Ch} = py_channel:new(),
    ?assertEqual({ok, <<"timed_out">>}, py:call(Ctx, chan_cases, async_receive_cancelled, [Ch])),
    ok = py_channel:send(Ch, kept),
    timer:sleep(50),
    ?assertEqual({ok, kept}, py_channel:try_receive(Ch)),
    ok.

backpressure() ->
    [{doc, "max_size bounds the queued bytes: send answers busy when it would go "
      "over, ok again once a consumer took items; info reports the size."}].
backpressure(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, Ch} = py_channel:new(#{max_size => 1000}),
    Item = binary:copy(<<"x">>, 300),
    Sent = lists:takewhile(fun(R) -> R =:= ok end,
                           [py_channel:send(Ch, Item) || _ <- lists:seq(1, 10)]),
    ?assertEqual(3, length(Sent)),
    ?assertEqual(busy, py_channel:send(Ch, Item)),
    #{size := Size, max_size := 1000, closed := false} = py_channel:info(Ch),
    ?assert(Size > 900 andalso Size =< 1000),
    {ok, {<<"ok">>, _}} = py:call(Ctx, chan_cases, receive_one, [Ch]),
    ?assertEqual(ok, py_channel:send(Ch, Item)),
    ?assertEqual({error, {badarg, {max_size, -1}}}, py_channel:new(#{max_size => -1})),
    ok.

close_and_drain() ->
    [{doc, "After close, send answers {error, closed}; queued items are still taken "
      "(from Python, then Erlang), then the channel reads as closed."}].
close_and_drain(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, Ch} = py_channel:new(),
    [ok = py_channel:send(Ch, I) || I <- [a, b, c]],
    ok = py_channel:close(Ch),
    ok = py_channel:close(Ch),
    ?assertEqual({error, closed}, py_channel:send(Ch, d)),
    ?assertEqual({ok, {<<"ok">>, a}}, py:call(Ctx, chan_cases, receive_one, [Ch])),
    ?assertEqual({ok, b}, py_channel:try_receive(Ch)),
    ?assertEqual({ok, [c]}, py:call(Ctx, chan_cases, receive_all, [Ch])),
    ?assertEqual({error, closed}, py_channel:try_receive(Ch)),
    ?assertMatch(#{closed := true, size := 0}, py_channel:info(Ch)),
    ok.

owner_death() ->
    [{doc, "A channel lives as long as the process that created it: when that "
      "process exits, a Python consumer blocked on it sees the channel closed "
      "and later operations answer closed."}].
owner_death(Config) ->
    Ctx = ?config(ctx, Config),
    Self = self(),
    Owner = spawn(fun() -> {ok, Ch} = py_channel:new(), Self ! {ch, Ch},
                           receive stop -> ok end end),
    Ch = receive {ch, C} -> C after 5000 -> ct:fail(no_channel) end,
    Consumer = pyport_test:spawn_caller(fun() -> py:call(Ctx, chan_cases, receive_one, [Ch]) end),
    timer:sleep(100),
    Owner ! stop,
    ?assertEqual({ok, {<<"closed">>, none}}, pyport_test:answer(Consumer, ?CALL_TIMEOUT)),
    ?assertEqual({error, closed}, py_channel:send(Ch, x)),
    ok.

two_contexts_share() ->
    [{doc, "Two contexts consume one channel: every item is taken exactly once."}].
two_contexts_share(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, Ctx2} = py_context:start_link(#{python_path => [?config(data_dir, Config)]}),
    try
        {ok, Ch} = py_channel:new(),
        Cs = [pyport_test:spawn_caller(fun() -> py:call(C, chan_cases, receive_all, [Ch]) end)
              || C <- [Ctx, Ctx2]],
        [ok = py_channel:send(Ch, I) || I <- lists:seq(1, 100)],
        ok = py_channel:close(Ch),
        Got = lists:append([begin {ok, L} = pyport_test:answer(P, ?CALL_TIMEOUT), L end || P <- Cs]),
        ?assertEqual(lists:seq(1, 100), lists:sort(Got))
    after
        py_context:stop(Ctx2)
    end.

byte_channel_both_ways() ->
    [{doc, "A byte channel: Python gets bytes (even for text), sends bytes back that "
      "Erlang reads with recv; max_size counts bytes."}].
byte_channel_both_ways(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, In} = py_byte_channel:new(),
    Worker = pyport_test:spawn_caller(fun() -> py:call(Ctx, chan_cases, bytes_roundtrip, [In]) end),
    ok = py_byte_channel:send(In, <<"hello">>),
    %% The worker sends back into the same channel: read them from Erlang.
    {ok, <<"HELLO">>} = recv_not(In, <<"hello">>),
    ok = py_byte_channel:close(In),
    {ok, _} = pyport_test:answer(Worker, ?CALL_TIMEOUT),
    {ok, Small} = py_byte_channel:new(#{max_size => 10}),
    ok = py_byte_channel:send(Small, <<"12345678">>),
    busy = py_byte_channel:send(Small, <<"abc">>),
    ok.

recv_not(Ch, Skip) ->
    case py_byte_channel:recv(Ch, 5000) of
        {ok, Skip} -> ok = py_byte_channel:send(Ch, Skip), timer:sleep(10), recv_not(Ch, Skip);
        Other -> Other
    end.

buffer_large_stream() ->
    [{doc, "32 MiB written to a buffer in 1 MiB chunks while Python reads it: the "
      "bytes arrive intact (length and SHA-256)."}].
buffer_large_stream(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, Buf} = py_buffer:new(),
    Chunks = [crypto:strong_rand_bytes(1 bsl 20) || _ <- lists:seq(1, 32)],
    Reader = pyport_test:spawn_caller(fun() -> py:call(Ctx, chan_cases, read_buffer, [Buf]) end),
    [ok = py_buffer:write(Buf, C) || C <- Chunks],
    ok = py_buffer:close(Buf),
    Hash = string:lowercase(binary:encode_hex(crypto:hash(sha256, Chunks))),
    T0 = erlang:monotonic_time(millisecond),
    ?assertEqual({ok, {32 bsl 20, Hash}}, pyport_test:answer(Reader, ?CALL_TIMEOUT)),
    ct:log("32 MiB read in ~p ms after the last write", [erlang:monotonic_time(millisecond) - T0]),
    ?assertEqual({error, closed}, py_buffer:write(Buf, <<"late">>)),
    ok.

buffer_file_like() ->
    [{doc, "A buffer reads as a file: line iteration; memoryview of what it holds "
      "(read-only, zero-copy), find; a buffer reference passed as a value answers "
      "read() itself."}].
buffer_file_like(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, B1} = py_buffer:new(),
    ok = py_buffer:write(B1, [<<"one\ntw">>, <<"o\nthree">>]),
    ok = py_buffer:close(B1),
    ?assertEqual({ok, [<<"one\n">>, <<"two\n">>, <<"three">>]},
                 py:call(Ctx, chan_cases, buffer_lines, [B1])),
    {ok, B2} = py_buffer:new(11),
    ok = py_buffer:write(B2, <<"hello world">>),
    ok = py_buffer:close(B2),
    ?assertEqual({ok, {11, true, <<"hello">>, 6}}, py:call(Ctx, chan_cases, buffer_view, [B2])),
    {ok, B3} = py_buffer:new(),
    ok = py_buffer:write(B3, <<"direct">>),
    ok = py_buffer:close(B3),
    ?assertEqual({ok, <<"direct">>}, py:eval(Ctx, <<"b.read()">>, #{b => B3})),
    ok.

buffer_async() ->
    [{doc, "read_async waits on the event loop for the writer to finish while other "
      "coroutines run."}].
buffer_async(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, Buf} = py_buffer:new(),
    Reader = pyport_test:spawn_caller(fun() -> py:call(Ctx, chan_cases, buffer_async, [Buf]) end),
    timer:sleep(50),
    {ok, S} = py:call(Ctx, chan_cases, nap, [0.05]),
    ?assert(S < 0.3),
    ok = py_buffer:write(Buf, <<"part1,">>),
    timer:sleep(30),
    ok = py_buffer:write(Buf, <<"part2">>),
    ok = py_buffer:close(Buf),
    ?assertEqual({ok, <<"part1,part2">>}, pyport_test:answer(Reader, ?CALL_TIMEOUT)),
    ok.
