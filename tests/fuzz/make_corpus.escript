#!/usr/bin/env escript
%% Writes the seed corpora of the fuzz targets: requests and a spread of terms
%% (every ETF tag the codec meets) for fuzz_convert, and framed streams of them
%% for fuzz_frame. Usage: make_corpus.escript OUT_DIR (writes OUT_DIR/convert,
%% OUT_DIR/frame). Deterministic, so the committed corpus can be regenerated.
-mode(compile).

main([Out]) ->
    Pid = list_to_pid("<0.85.0>"),
    Ref = list_to_ref("#Ref<0.1.2.3>"),
    Port = list_to_port("#Port<0.7>"),
    Terms =
        [{call, 1, Pid, 0, math, sqrt, [16], #{}},
         {call, 2, Pid, 1, <<"__main__">>, <<"str.join">>, [<<"-">>, [<<"a">>]], #{sep => 1}},
         {eval, 3, Pid, 0, <<"x + 1">>, #{x => 41}},
         {exec, 4, Pid, 2, <<"import os">>},
         {info, 5}, {cancel, 6}, {interrupt, keyboard}, {drop_env, Pid},
         {callback_reply, 7, ok, [1]}, {stream, 8, Pid, 0, gen, 10}, {stream_ack, 8, 1},
         {method, 9, Pid, 0, {py_ref, 1}, name, [], #{}},
         {getattr, 10, Pid, 3, {py_ref, 2}, attr},
         {release, Pid, 3},
         0, 255, 256, -1, 1 bsl 31, -(1 bsl 31), 1 bsl 63, 1 bsl 64, -(1 bsl 100),
         1 bsl 2040, 1.5, -0.0, 1.0e308,
         true, false, none, nil, undefined, hello, 'héllo', '☃',
         <<>>, <<"text">>, <<"héllo"/utf8>>, <<255, 0>>, <<1:3>>, {bytes, <<"b">>},
         [], "abc", [16#20AC, 16#1F600], [1, [2, [3]]], [1 | 2], [a, b | c],
         {}, {1, 2}, list_to_tuple(lists:seq(1, 300)),
         #{a => 1, <<"b">> => [2]}, #{[1] => x, #{} => y},
         Pid, Ref, Port, fun lists:sum/1, fun(X) -> {X, Pid} end,
         lists:foldl(fun(_, A) -> [A] end, [], lists:seq(1, 1000)),
         lists:foldl(fun(_, A) -> {A} end, x, lists:seq(1, 1001))],
    ConvDir = filename:join(Out, "convert"),
    FrameDir = filename:join(Out, "frame"),
    ok = filelib:ensure_path(ConvDir),
    ok = filelib:ensure_path(FrameDir),
    Bins = [term_to_binary(T) || T <- Terms],
    lists:foreach(fun({N, B}) -> write(ConvDir, N, B) end, lists:enumerate(Bins)),
    %% Framed streams: [MaxDiv4, ChunkSeed | frames], some over the limit.
    Frames = [<<(byte_size(B)):32, B/binary>> || B <- lists:sublist(Bins, 20)],
    write(FrameDir, 1, iolist_to_binary([255, 7 | Frames])),
    write(FrameDir, 2, iolist_to_binary([4, 1 | Frames])),
    write(FrameDir, 3, iolist_to_binary([200, 3, <<0:32>>, <<5000:32>>, binary:copy(<<1>>, 5000),
                                         hd(Frames)])),
    write(FrameDir, 4, <<64, 9, 100:32, "abc">>),
    ok.

write(Dir, N, Bin) ->
    ok = file:write_file(filename:join(Dir, io_lib:format("seed-~3..0b", [N])), Bin).
