%% @doc The request path, run in the calling process. A caller on the context's
%% node records its request in the context's in-flight table and writes the frame
%% straight to the port (any local process may `port_command' a port); callers on
%% other nodes, and callers that find no port (restarting), hand the frame to the
%% context process. The answer comes back to the caller's alias, and so do the
%% callbacks Python makes while the request runs: the caller runs them itself
%% (py_callback) and keeps waiting. While it runs a callback of request R of
%% context C, the requests it makes to C carry Parent = R (docs/protocol.md): the
%% port serves them inside R's erlang.call, and nothing else.
%%
%% In-flight entries are `{Id, Reply, EnvPid, GroupLeader}': `Reply' is the
%% caller's alias, or `{stream, Owner, Ref, Window}' for a stream. Exactly one party takes
%% an entry (the answer, the death sweep, a cancel, or the writer whose write
%% failed), which is what gives every request exactly one answer.
-module(py_request).

-export([run/4, submit/6, new_id/0, send_frame/2, parent/1]).

%% How long a timed-out caller waits for the context to confirm its cancel.
-define(CANCEL_ACK_MS, 5000).

-export_type([reply_to/0]).

-type reply_to() :: reference() | {stream, pid(), reference(), pos_integer()}.

%% @doc A fresh request id (unique on this node; the port only needs uniqueness
%% among the requests in flight on it).
-spec new_id() -> pos_integer().
new_id() -> erlang:unique_integer([positive]).

%% The in-flight table of a local context, or `undefined'.
-spec table(pid()) -> ets:tid() | undefined.
table(Ctx) -> persistent_term:get({py_context, Ctx}, undefined).

%% Absolute deadline (monotonic ms) of a timeout.
-spec deadline(timeout()) -> integer() | infinity.
deadline(infinity) -> infinity;
deadline(T) -> erlang:monotonic_time(millisecond) + T.

%% @doc The parent of a request the calling process makes to `Ctx' now: the
%% request whose callback it is running on that context, or 0.
-spec parent(pid()) -> py_protocol:parent().
parent(Ctx) ->
    case get({pyport_parent, Ctx}) of
        undefined -> 0;
        Parent -> Parent
    end.

%% Runs Fun as a callback of request Id of Ctx: requests it makes to Ctx belong
%% to Id's call chain.
with_parent(Ctx, Id, Fun) ->
    Key = {pyport_parent, Ctx},
    Old = put(Key, Id),
    try
        Fun()
    after
        case Old of
            undefined -> erase(Key);
            _ -> put(Key, Old)
        end
    end.

%% @doc Sends the request built by `Build(Id, Parent)' for the environment of
%% `EnvPid' and waits for its answer, running callbacks meanwhile. Python
%% exceptions keep their traceback for py:last_error/0. On timeout the Python
%% work is cancelled and no late answer can reach the caller.
-spec run(pid(), pid(), fun((pos_integer(), py_protocol:parent()) -> binary()), timeout()) ->
    {ok, term()} | {error, term()}.
run(Ctx, EnvPid, Build, Timeout) when is_pid(Ctx) ->
    Id = new_id(),
    Frame = Build(Id, parent(Ctx)),
    Mref = erlang:monitor(process, Ctx, [{alias, demonitor}]),
    Deadline = deadline(Timeout),
    case submit(Ctx, Id, Mref, EnvPid, Frame, Deadline) of
        ok ->
            wait(Ctx, Id, Mref, Deadline);
        {error, _} = Error ->
            erlang:demonitor(Mref, [flush]),
            Error
    end;
run(_, _, _, _) ->
    {error, {badarg, "a context must be a pid"}}.

%% @doc Submits a request frame without waiting. The answer (or stream items)
%% go to `Reply'.
-spec submit(pid(), pos_integer(), reply_to(), pid(), binary(), integer() | infinity) ->
    ok | {error, term()}.
submit(Ctx, Id, Reply, EnvPid, Frame, Deadline) when node(Ctx) =:= node() ->
    case table(Ctx) of
        undefined ->
            via_context(Ctx, Id, Reply, EnvPid, Frame, Deadline);
        Tab ->
            try ets:lookup(Tab, '$port') of
                [{_, Port, MaxQueue, MaxFrame}] ->
                    Size = byte_size(Frame),
                    InFlight = ets:info(Tab, size) - 1,
                    if
                        Size > MaxFrame ->
                            {error, {too_large, Size, MaxFrame}};
                        InFlight >= MaxQueue ->
                            {error, {overloaded, InFlight, MaxQueue}};
                        is_port(Port) ->
                            direct(Ctx, Tab, Port, Id, Reply, EnvPid, Frame, Deadline);
                        true ->
                            via_context(Ctx, Id, Reply, EnvPid, Frame, Deadline)
                    end
            catch
                error:badarg -> via_context(Ctx, Id, Reply, EnvPid, Frame, Deadline)
            end
    end;
submit(Ctx, Id, Reply, EnvPid, Frame, Deadline) ->
    via_context(Ctx, Id, Reply, EnvPid, Frame, Deadline).

direct(Ctx, Tab, Port, Id, Reply, EnvPid, Frame, Deadline) ->
    true = ets:insert(Tab, {Id, Reply, EnvPid, group_leader()}),
    try erlang:port_command(Port, Frame) of
        true -> ok
    catch
        error:badarg ->
            %% The port closed under us. If the entry is still ours nobody will
            %% answer it: hand the request to the context. Otherwise the death
            %% sweep took it and its answer is on the way.
            case ets:take(Tab, Id) of
                [_] -> via_context(Ctx, Id, Reply, EnvPid, Frame, Deadline);
                [] -> ok
            end
    end.

via_context(Ctx, Id, Reply, EnvPid, Frame, Deadline) ->
    Ctx ! {'$py_req', Id, Reply, EnvPid, group_leader(), Frame, Deadline},
    ok.

%% @doc Writes a frame that takes no answer (callback replies, releases): to
%% the port if it is up, else nowhere (the Python side it was for is gone).
-spec send_frame(pid(), binary()) -> ok.
send_frame(Ctx, Frame) when node(Ctx) =:= node() ->
    case table(Ctx) of
        undefined ->
            ok;
        Tab ->
            try ets:lookup_element(Tab, '$port', 2) of
                Port when is_port(Port) ->
                    try erlang:port_command(Port, Frame) catch error:badarg -> ok end,
                    ok;
                _ ->
                    ok
            catch
                error:badarg -> ok
            end
    end;
send_frame(Ctx, Frame) ->
    Ctx ! {'$py_frame', Frame},
    ok.

wait(Ctx, Id, Mref, Deadline) ->
    receive
        {Mref, callback, CbId, Name, Args} ->
            Reply = with_parent(Ctx, Id, fun() -> py_callback:run(CbId, Name, Args) end),
            case remaining(Deadline) of
                0 ->
                    %% The deadline passed while the callback ran: the cancel must
                    %% reach the port before the reply, so both go through the
                    %% context, in this order.
                    Ctx ! {'$py_cancel', Id, Mref},
                    Ctx ! {'$py_frame', Reply},
                    cancelled(Mref);
                _ ->
                    send_frame(Ctx, Reply),
                    wait(Ctx, Id, Mref, Deadline)
            end;
        {Mref, Status, Body} ->
            erlang:demonitor(Mref, [flush]),
            result(Status, Body);
        {'DOWN', Mref, process, _, Reason} ->
            {error, {context_died, Reason}}
    after remaining(Deadline) ->
        Ctx ! {'$py_cancel', Id, Mref},
        cancelled(Mref)
    end.

%% Waits until the context confirms the cancel: the request was dropped or asked
%% to stop, and the context holds new requests until it has stopped, so the
%% caller's next request never goes to an OS process about to be killed.
cancelled(Mref) ->
    receive
        {Mref, cancel_ack} -> timed_out(Mref);
        {Mref, callback, _, _, _} -> cancelled(Mref);   % stopped before it gets a reply
        {Mref, Status, Body} -> forget(Mref), result(Status, Body);
        {'DOWN', Mref, process, _, Reason} -> {error, {context_died, Reason}}
    after ?CANCEL_ACK_MS ->
        timed_out(Mref)
    end.

timed_out(Mref) ->
    %% An answer that got in before the alias went inactive is still taken.
    receive
        {Mref, Status, Body} when Status =/= callback, Status =/= cancel_ack ->
            forget(Mref),
            result(Status, Body)
    after 0 ->
        forget(Mref),
        {error, timeout}
    end.

%% Deactivates the alias (nothing sent to it can arrive any more) and drops what
%% arrived before: callbacks nobody will run, the cancel's acknowledgement.
forget(Mref) ->
    erlang:demonitor(Mref, [flush]),
    flush(Mref).

flush(Mref) ->
    receive
        {Mref, callback, _, _, _} -> flush(Mref);
        {Mref, cancel_ack} -> flush(Mref)
    after 0 ->
        ok
    end.

remaining(infinity) -> infinity;
remaining(Deadline) -> max(0, Deadline - erlang:monotonic_time(millisecond)).

result(reply, Body) ->
    {ok, binary_to_term(Body)};
result(error, Body) ->
    {Error, Details} = py_protocol:error_result(binary_to_term(Body)),
    Details =/= undefined andalso put(pyport_last_error, Details),
    Error;
result(died, Reason) ->
    {error, {context_died, Reason}};
result(failed, Reason) ->
    {error, Reason}.
