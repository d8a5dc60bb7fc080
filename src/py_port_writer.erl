%% @private
%% @doc Writes frames to a context's port, combining the small requests of many
%% callers into one write. Each write to a port is a system call that wakes the
%% OS process; with many callers on one context those calls are most of what a
%% call costs the node. Here one process at a time holds the writer's flag and
%% writes; a caller that finds it held leaves its request frame in the writer's
%% queue and goes on to wait for its answer, and the holder (or the next
%% process to take the flag) writes the queued frames in one batch frame
%% (`PYPORT_BATCH_TAG', docs/protocol.md), which the OS process reads as if
%% they had come one by one. A process alone writes its frame as before, at the
%% cost of one atomic exchange and one look at the empty queue.
%%
%% Order: frames leave in the order they were queued or written; every writer
%% writes what is queued before its own frame, so a frame written later by the
%% same process (a cancel, a callback reply, the next request) never overtakes
%% one of its frames still queued. A queued frame is written to the port it was
%% meant for; when that port has closed meanwhile, the frame's `on_closed'
%% function runs (py_request answers the request as died).
%%
%% The queue and flag belong to the context (py_inflight keeps them in its
%% handle); the queue table is owned by the context's server and goes with it.
-module(py_port_writer).

-export([new/2, write/3, submit/5, flush/1]).

-export_type([writer/0]).

-include("pyport_wire.hrl").

%% Frames larger than this are written on their own, not copied into a batch.
-define(BATCH_FRAME_MAX, 16384).
%% Most bytes in one batch frame (also kept under the context's max_frame).
-define(BATCH_MAX, 65536).

-record(w, {q :: ets:tid(),
            flag :: atomics:atomics_ref(),  % 1: held by a writer; 2: a flush is asked for
            max :: pos_integer(),
            ask :: fun(() -> term())}).

-opaque writer() :: #w{}.

%% @doc A writer for a context whose frames may be up to `MaxFrame' bytes; call
%% it in the process that owns the context (the queue table is its).
%% `AskFlush()' must have flush/1 called soon, in any process (the context's
%% server does it).
-spec new(pos_integer(), fun(() -> term())) -> writer().
new(MaxFrame, AskFlush) ->
    #w{q = ets:new(py_port_writer, [ordered_set, public, {write_concurrency, true}]),
       flag = atomics:new(2, []),
       max = min(?BATCH_MAX, MaxFrame),
       ask = AskFlush}.

%% @doc Writes `Frame' to `Port' after the frames queued before it, and waits
%% for the write: `closed' when the port has closed.
-spec write(writer(), port(), iodata()) -> ok | closed.
write(W, Port, Frame) ->
    unless_gone(W, fun() -> hold(W), holding(W, Port, Frame) end).

%% @doc Writes a request frame to `Port', or queues it behind the process
%% writing now, which writes it with its own. With `Busy' (the OS process has
%% other requests to answer first) the frame is queued even when nobody writes,
%% and a flush is asked for (once until it runs): the frames of many callers
%% then go in one write. `closed' when this call wrote it and the port had
%% closed; a queued frame whose port has closed by the time it is written gets
%% `OnClosed()' instead, in the process that found it so.
-spec submit(writer(), port(), iodata(), fun(() -> term()), boolean()) -> ok | closed.
submit(W, Port, Frame, OnClosed, Busy) ->
    unless_gone(W, fun() -> submit_(W, Port, Frame, OnClosed, Busy) end).

submit_(#w{q = Q, flag = F, ask = Ask}, Port, Frame, OnClosed, true) ->
    true = ets:insert(Q, {erlang:unique_integer([monotonic]), Port, Frame, OnClosed}),
    _ = atomics:compare_exchange(F, 2, 0, 1) =:= ok andalso Ask(),
    ok;
submit_(W = #w{q = Q}, Port, Frame, OnClosed, false) ->
    case take_flag(W) of
        true ->
            holding(W, Port, Frame);
        false ->
            true = ets:insert(Q, {erlang:unique_integer([monotonic]), Port, Frame, OnClosed}),
            %% The holder may have looked at the queue and let go before this
            %% insert: take over if the flag is free now.
            case take_flag(W) of
                true -> holding(W, none, none);
                false -> ok
            end
    end.

%% @doc Writes what is queued (the flush submit/5 asked for).
-spec flush(writer()) -> ok.
flush(W = #w{flag = F}) ->
    atomics:put(F, 2, 0),
    _ = unless_gone(W, fun() -> hold(W), holding(W, none, none) end),
    ok.

%% The queue goes with the context's server: once it is gone, so is the OS
%% process (its port is the server's), and a write is as if the port had
%% closed. The frames still queued are answered by the in-flight table's heir.
unless_gone(#w{q = Q}, Fun) ->
    try
        Fun()
    catch
        error:badarg:Stack ->
            case ets:info(Q, id) of
                undefined -> closed;
                _ -> erlang:raise(error, badarg, Stack)
            end
    end.

take_flag(#w{flag = F}) ->
    atomics:compare_exchange(F, 1, 0, 1) =:= ok.

%% The holder writes and lets go within one port_command, unless the port is
%% busy: after some tries, wait a millisecond between them.
hold(W) ->
    hold(W, 0).

hold(W, Tries) ->
    case take_flag(W) of
        true ->
            ok;
        false when Tries < 100 ->
            erlang:yield(),
            hold(W, Tries + 1);
        false ->
            receive after 1 -> hold(W, Tries) end
    end.

%% With the flag: writes what is queued, then Own (none: nothing of its own),
%% lets go of the flag, and writes what was queued meanwhile. The result is
%% that of Own's write.
holding(W = #w{flag = F}, Port, Own) ->
    Result = try
                 flush(W, Port, Own)
             after
                 atomics:put(F, 1, 0)
             end,
    again(W),
    Result.

%% A frame queued after the last look, by a process that found the flag held,
%% would wait for the next writer: look once more after letting go.
again(W = #w{q = Q}) ->
    case ets:first(Q) =/= '$end_of_table' andalso take_flag(W) of
        true -> holding(W, none, none), ok;
        false -> ok
    end.

%% Writes every queued frame, in order and in batches per port, then Own.
flush(W = #w{q = Q}, Port, Own) ->
    case ets:first(Q) of
        '$end_of_table' ->
            own(W, Port, Own);
        _ ->
            {Batch, Rest} = drain(W),
            write_batch(Batch),
            case Rest of
                [] -> flush(W, Port, Own);
                _ -> write_batch(Rest), flush(W, Port, Own)
            end
    end.

own(_, _, none) -> ok;
own(_, Port, Frame) -> port_write(Port, Frame).

%% Takes queued frames for one port, up to the batch size; a large frame ends
%% the batch and is returned on its own.
drain(W = #w{q = Q}) ->
    Key = ets:first(Q),
    [{_, Port, Frame, OnClosed}] = ets:take(Q, Key),
    Size = iolist_size(Frame),
    case Size > ?BATCH_FRAME_MAX of
        true -> {[], [{Port, Frame, Size, OnClosed}]};
        false -> drain(W, Port, [{Port, Frame, Size, OnClosed}], Size)
    end.

drain(W = #w{q = Q, max = Max}, Port, Acc, Bytes) ->
    case ets:first(Q) of
        '$end_of_table' ->
            {lists:reverse(Acc), []};
        Key ->
            case ets:lookup(Q, Key) of
                [{_, Port, Frame, _}] ->
                    Size = iolist_size(Frame),
                    case Size =< ?BATCH_FRAME_MAX andalso Bytes + Size + 5 =< Max of
                        true ->
                            [{_, _, _, OnClosed}] = ets:take(Q, Key),
                            drain(W, Port, [{Port, Frame, Size, OnClosed} | Acc],
                                  Bytes + Size + 4);
                        false ->
                            {lists:reverse(Acc), []}
                    end;
                _ ->
                    %% Another port (or taken meanwhile: only the holder takes).
                    {lists:reverse(Acc), []}
            end
    end.

write_batch([]) ->
    ok;
write_batch([{Port, Frame, _, OnClosed}]) ->
    closed(port_write(Port, Frame), [OnClosed]);
write_batch(Frames = [{Port, _, _, _} | _]) ->
    Batch = [?PYPORT_BATCH_TAG | [[<<Size:32>>, Frame] || {_, Frame, Size, _} <- Frames]],
    closed(port_write(Port, Batch), [OnClosed || {_, _, _, OnClosed} <- Frames]).

closed(ok, _) -> ok;
closed(closed, Funs) -> lists:foreach(fun(F) -> F() end, Funs).

port_write(Port, Frame) ->
    try erlang:port_command(Port, Frame) of
        true -> ok
    catch
        error:badarg -> closed
    end.
