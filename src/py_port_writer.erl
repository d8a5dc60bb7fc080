%% @private
%% @doc Writes the request frames of many callers on one context to its port in
%% one write. Each write to a port is a system call that wakes the OS process;
%% with many callers on one context those calls are most of what a call costs.
%% A caller whose context's OS process has other requests to answer first (so
%% its own would not run any sooner for being written at once) leaves its frame
%% in the context's queue and asks the context's server, once until it runs, to
%% flush: the server writes everything queued in one batch frame
%% (`PYPORT_BATCH_TAG', docs/protocol.md), which the OS process reads as if the
%% frames had come one by one. A caller with nothing else in flight writes its
%% own frame, as it always did.
%%
%% Only the server takes frames out of the queue, and it writes what is queued
%% before each frame of its own (a cancel, a setup): so a cancel never
%% overtakes its request, and a process's queued frames leave in the order it
%% queued them. Nobody holds a lock: a caller killed at any point leaves at
%% most a frame in the queue, which the next flush writes. A queued frame whose
%% port has closed by the time it is written is answered like any request in
%% flight in that OS process: by the server's death sweep when the port is the
%% server's current one (its exit is still to be handled), else, the sweep
%% being over, by its `on_closed' function (py_request answers it as died).
%%
%% The queue belongs to the context (py_inflight keeps the writer in its
%% handle); its table is owned by the context's server and goes with it.
-module(py_port_writer).

-export([new/2, busy/1, queue/4, flush/2, write/3]).

-export_type([writer/0]).

-include("pyport_wire.hrl").

%% Frames larger than this are written on their own, not copied into a batch.
-define(BATCH_FRAME_MAX, 16384).
%% Most bytes in one batch frame (also kept under the context's max_frame).
-define(BATCH_MAX, 65536).
%% Queued frames taken out at a time.
-define(TAKE, 256).

-record(w, {q :: ets:tid(),
            asked :: atomics:atomics_ref(),  % 1 while a flush is asked for
            max :: pos_integer(),
            ask :: fun(() -> term())}).

-opaque writer() :: #w{}.

%% @doc A writer for a context whose frames may be up to `MaxFrame' bytes; call
%% it in the context's server (the queue table is its). `AskFlush()' must have
%% the server call flush/2 soon.
-spec new(pos_integer(), fun(() -> term())) -> writer().
new(MaxFrame, AskFlush) ->
    #w{q = ets:new(py_port_writer, [ordered_set, public, {write_concurrency, true}]),
       asked = atomics:new(1, []),
       max = min(?BATCH_MAX, MaxFrame),
       ask = AskFlush}.

%% @doc Whether a new request frame should wait for a batch: the OS process
%% has `Others' requests in flight to answer first, so the frame would not run
%% any sooner for being written at once. (Else its caller writes it.)
-spec busy(non_neg_integer()) -> boolean().
busy(Others) ->
    Others > 0.

%% @doc Queues a request frame for `Port' until the server's next flush, and
%% asks for one unless one is asked for already. `closed' when the server, and
%% with it the OS process (its port is the server's), is gone. A queued frame
%% whose port has closed by the time the server writes it gets `OnClosed()'
%% instead, in the server, once that port's death sweep is over.
-spec queue(writer(), port(), iodata(), fun(() -> term())) -> ok | closed.
queue(#w{q = Q, asked = A, ask = Ask}, Port, Frame, OnClosed) ->
    try ets:insert(Q, {erlang:unique_integer([monotonic]), Port, Frame, OnClosed}) of
        true ->
            _ = atomics:compare_exchange(A, 1, 0, 1) =:= ok andalso Ask(),
            ok
    catch
        error:badarg -> closed
    end.

%% @doc Writes everything queued (in the server, when asked, and before each
%% of its own writes); `Current' is the server's port now. A caller killed
%% between asking and sending its request leaves the request standing; any
%% flush clears it.
-spec flush(writer(), port() | undefined) -> ok.
flush(W = #w{asked = A}, Current) ->
    atomics:put(A, 1, 0),
    drain(W, Current).

%% @doc Writes `Frame' to `Port' (the server's current port) after everything
%% queued: `closed' when the port has closed.
-spec write(writer(), port(), iodata()) -> ok | closed.
write(W, Port, Frame) ->
    ok = flush(W, Port),
    port_write(Port, Frame).

%% Takes the queued frames out in key order, a chunk at a time, and writes
%% them; frames queued meanwhile (even with a smaller key) are found by the
%% next round.
drain(W = #w{q = Q}, Current) ->
    case ets:select(Q, [{'_', [], ['$_']}], ?TAKE) of
        '$end_of_table' ->
            ok;
        {Entries, _} ->
            [ets:delete(Q, Key) || {Key, _, _, _} <- Entries],
            write_groups(W, Entries, Current),
            drain(W, Current)
    end.

%% Consecutive frames for one port, up to the batch size, go in one batch; a
%% large frame goes alone.
write_groups(_, [], _) ->
    ok;
write_groups(W, [{_, Port, Frame, OnClosed} | Rest], Current) ->
    Size = iolist_size(Frame),
    case Size > ?BATCH_FRAME_MAX of
        true ->
            write_batch([{Port, Frame, Size, OnClosed}], Current),
            write_groups(W, Rest, Current);
        false ->
            group(W, Port, Rest, [{Port, Frame, Size, OnClosed}], Size, Current)
    end.

group(W = #w{max = Max}, Port, All = [{_, Port, Frame, OnClosed} | Rest], Acc, Bytes, Current) ->
    Size = iolist_size(Frame),
    case Size =< ?BATCH_FRAME_MAX andalso Bytes + Size + 5 =< Max of
        true ->
            group(W, Port, Rest, [{Port, Frame, Size, OnClosed} | Acc], Bytes + Size + 4,
                  Current);
        false ->
            write_batch(lists:reverse(Acc), Current),
            write_groups(W, All, Current)
    end;
group(W, _, Rest, Acc, _, Current) ->
    write_batch(lists:reverse(Acc), Current),
    write_groups(W, Rest, Current).

write_batch([{Port, Frame, _, OnClosed}], Current) ->
    closed(port_write(Port, Frame), Port, Current, [OnClosed]);
write_batch(Frames = [{Port, _, _, _} | _], Current) ->
    Batch = [?PYPORT_BATCH_TAG | [[<<Size:32>>, Frame] || {_, Frame, Size, _} <- Frames]],
    closed(port_write(Port, Batch), Port, Current, [OnClosed || {_, _, _, OnClosed} <- Frames]).

%% A closed port that is still the server's: its exit, and the sweep that
%% answers what was in flight, are still to come.
closed(ok, _, _, _) -> ok;
closed(closed, Current, Current, _) -> ok;
closed(closed, _, _, Funs) -> lists:foreach(fun(F) -> F() end, Funs).

port_write(Port, Frame) ->
    try erlang:port_command(Port, Frame) of
        true -> ok
    catch
        error:badarg -> closed
    end.
