%% @private
%% @doc What reaches a process that waits for a request: the one answer, the
%% callbacks Python makes while the request runs, the output it prints, the
%% acknowledgement of a cancel; and the messages that end a stream at its owner.
%% The senders (the context's server, the in-flight table's heir) and the
%% receiver (py_request) both go through this module, so the message shapes live
%% here alone. A waiter is reached through its alias: once it gives up, the
%% runtime drops whatever is still sent to it.
-module(py_reply).

-export([answer/3, callback/4, async_callback/4, output/4, cancel_ack/1, stream_item/3,
         waiter/0, watch/2, done/1, next/2]).

-export_type([status/0, event/0, waiter/0]).

%% `reply' and `error' carry the undecoded body from the port; `died' and
%% `failed' carry the reason.
-type status() :: reply | error | died | failed.
-type event() :: {answer, status(), term()}
               | {callback, integer(), binary(), binary()}
               | {async_callback, integer(), binary(), binary()}
               | {output, binary(), binary(), term()}
               | cancel_ack
               | {down, term()}
               | timeout.
%% A waiter: its alias, and the monitor of the context it also waits on (`none'
%% while the context's in-flight table answers for the context's death).
-type waiter() :: {reference(), reference() | none}.

%% @doc The one answer of a request: to the caller's alias, or the end of a
%% stream at its owner (whose row in the stream table goes with it).
-spec answer(py_inflight:reply_to(), status(), term()) -> ok.
answer(Mref, Status, Payload) when is_reference(Mref) ->
    Mref ! {Mref, Status, Payload},
    ok;
answer({stream, Owner, Ref, _}, Status, Payload) ->
    Owner ! {py_stream, Ref, stream_end(Status, Payload)},
    py_streams:delete(Ref).

stream_end(reply, _) -> done;
stream_end(error, Body) -> element(1, py_protocol:error_body(Body));
stream_end(died, Reason) -> {error, {context_died, Reason}};
stream_end(failed, Reason) -> {error, Reason}.

%% @doc A callback of the request waited for at `Reply': `sent', or `no_waiter'
%% when nobody runs callbacks there (a stream owner).
-spec callback(py_inflight:reply_to(), integer(), binary(), binary()) -> sent | no_waiter.
callback(Mref, CbId, Name, Args) when is_reference(Mref) ->
    Mref ! {Mref, callback, CbId, Name, Args},
    sent;
callback(_, _, _, _) ->
    no_waiter.

%% @doc An erlang.async_call of the request waited for at `Reply' (the waiter
%% runs it in a process of its own): `sent', or `no_waiter'.
-spec async_callback(py_inflight:reply_to(), integer(), binary(), binary()) -> sent | no_waiter.
async_callback(Mref, CbId, Name, Args) when is_reference(Mref) ->
    Mref ! {Mref, async_callback, CbId, Name, Args},
    sent;
async_callback(_, _, _, _) ->
    no_waiter.

%% @doc Output the request printed: the waiter writes it to its group leader,
%% then hands `Token' back to the context (py_context_server:output_done/2).
-spec output(reference(), binary(), binary(), term()) -> ok.
output(Mref, Stream, Bytes, Token) ->
    Mref ! {Mref, output, Stream, Bytes, Token},
    ok.

%% @doc The context has dropped or stopped the waiter's cancelled request.
-spec cancel_ack(reference()) -> ok.
cancel_ack(Mref) ->
    Mref ! {Mref, cancel_ack},
    ok.

%% @doc One item of a stream, to its owner.
-spec stream_item(pid(), reference(), term()) -> ok.
stream_item(Owner, Ref, Item) ->
    Owner ! {py_stream, Ref, {data, Item}},
    ok.

%% @doc A new alias to wait at: what is sent to it arrives until done/1.
-spec waiter() -> reference().
waiter() ->
    erlang:alias([explicit_unalias]).

%% @doc Monitors `Ctx' for the waiter at `Ref': its death arrives at next/2 as
%% `{down, Reason}'.
-spec watch(pid(), reference()) -> reference().
watch(Ctx, Ref) ->
    erlang:monitor(process, Ctx, [{tag, Ref}]).

%% @doc The waiter gives up its alias (nothing sent to it arrives any more) and
%% its monitor, if any (with a `down' that already arrived).
-spec done(waiter()) -> ok.
done({Ref, Mon}) ->
    erlang:unalias(Ref),
    _ = Mon =:= none orelse erlang:demonitor(Mon, [flush]),
    ok.

%% @doc The next event for the waiter at `Ref' (its alias, which also tags the
%% monitor of watch/2), or `timeout' after `Timeout' ms.
-spec next(reference(), timeout()) -> event().
next(Ref, Timeout) ->
    receive
        {Ref, Status, Payload} -> {answer, Status, Payload};
        {Ref, Mon, process, _, Reason} when is_reference(Mon) -> {down, Reason};
        {Ref, callback, CbId, Name, Args} -> {callback, CbId, Name, Args};
        {Ref, async_callback, CbId, Name, Args} -> {async_callback, CbId, Name, Args};
        {Ref, output, Stream, Bytes, Token} -> {output, Stream, Bytes, Token};
        {Ref, cancel_ack} -> cancel_ack
    after Timeout ->
        timeout
    end.
