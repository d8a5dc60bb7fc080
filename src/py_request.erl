%% @private
%% @doc The request path, run in the calling process. A caller on the context's
%% node records its request in the context's in-flight table (py_inflight) and
%% writes the frame straight to the port (any local process may `port_command' a
%% port); callers on other nodes, and callers that find the gate closed, hand
%% the request to the context's server. The answer comes back to the caller's
%% alias (py_reply), and so do the callbacks Python makes while the request runs
%% (the caller runs them itself, py_callback) and the output it prints (the
%% caller writes it to its own group leader, as Erlang's io does).
%%
%% A request made while the caller runs a callback of request R on the same
%% context carries R as its parent: the port serves it inside R's wait, and
%% serves nothing else there (docs/protocol.md).
-module(py_request).

-export([run/5, submit/7, send_frame/2, parent/1, budget/1, decode/2, last_context/0]).

%% How long a timed-out caller waits for the context to confirm its cancel.
-define(CANCEL_ACK_MS, 5000).
%% The context the calling process last made a request on for itself.
-define(LAST_KEY, {?MODULE, last_context}).
%% How long the caller's group leader may take to accept a chunk of output.
-define(IO_TIMEOUT, 5000).
%% New atoms the results of contexts on other nodes may create on this one.
-define(REMOTE_MAX_ATOMS, 5000).

%% @doc Sends the request built by `Build(Id, Parent)' for the environment of
%% `EnvPid' and waits for its answer, running callbacks meanwhile. Python
%% exceptions keep their traceback for py:last_error/0. On timeout the Python
%% work is cancelled and no late answer can reach the caller. The whole is the
%% telemetry span `[pyport, call]' (py_telemetry) whose metadata is `Meta' (what
%% is asked: `op', and `module', `function' when there are) and `context'.
-spec run(pid(), pid(), fun((pos_integer(), py_protocol:parent()) -> py_protocol:frame()), timeout(),
          #{atom() => term()}) ->
    {ok, term()} | {error, term()}.
run(Ctx, EnvPid, Build, Timeout, Meta) ->
    case py_telemetry:enabled() of
        false ->
            request(Ctx, EnvPid, Build, Timeout);
        true ->
            py_telemetry:span([call], Meta#{context => Ctx},
                              fun() -> request(Ctx, EnvPid, Build, Timeout) end)
    end.

%% The waiter is an alias (py_reply:waiter/0), not a monitor of the context: a
%% request written straight to the port is in the context's in-flight table,
%% and whoever takes it from there answers it, the table's heir included when
%% the context dies (py_inflight). Only a request handed to the context's server
%% (and a cancel) waits on a monitor as well, which the server would otherwise
%% have to handle twice per call.
request(Ctx0, EnvPid, Build, Timeout0) ->
    case {target(Ctx0), py_args:timeout(Timeout0)} of
        {{error, _} = Error, _} ->
            Error;
        {_, {error, _} = Error} ->
            Error;
        {{Ctx, H}, Timeout} ->
            _ = EnvPid =:= self() andalso get(?LAST_KEY) =/= Ctx andalso put(?LAST_KEY, Ctx),
            Id = py_protocol:new_id(),
            Parent = parent(Ctx),
            Frame = Build(Id, Parent),
            Ref = py_reply:waiter(),
            Deadline = deadline(Timeout),
            case submit(Ctx, H, Id, Ref, EnvPid, Frame, Deadline, Parent) of
                direct ->
                    wait(Ctx, H, Id, {Ref, none}, Deadline);
                queued ->
                    wait(Ctx, H, Id, {Ref, py_reply:watch(Ctx, Ref)}, Deadline);
                {error, _} = Error ->
                    forget({Ref, none}),
                    Error
            end
    end.

%% The context and its in-flight handle (`undefined' on another node), or the
%% error py_args:context/1 gives.
target(Ctx) when is_pid(Ctx), node(Ctx) =:= node() ->
    case py_inflight:handle(Ctx) of
        undefined ->
            case py_args:context(Ctx) of
                {error, _} = Error -> Error;
                _ -> {Ctx, py_inflight:handle(Ctx)}
            end;
        H ->
            {Ctx, H}
    end;
target(Ctx) ->
    case py_args:context(Ctx) of
        {error, _} = Error -> Error;
        _ -> {Ctx, undefined}
    end.

%% @doc The context the calling process last made a request on in its own
%% environment (where the names it defined live), or `undefined'.
-spec last_context() -> pid() | undefined.
last_context() ->
    get(?LAST_KEY).

%% @doc Submits a request frame without waiting. The answer (or stream items)
%% go to `Reply'.
-spec submit(pid(), pos_integer(), py_inflight:reply_to(), pid(), py_protocol:frame(),
             integer() | infinity, py_protocol:parent()) -> ok | {error, term()}.
submit(Ctx, Id, Reply, EnvPid, Frame, Deadline, Parent) ->
    case submit(Ctx, py_inflight:handle(Ctx), Id, Reply, EnvPid, Frame, Deadline, Parent) of
        {error, _} = Error -> Error;
        _ -> ok
    end.

%% `direct' (written to the port, recorded in the in-flight table), `queued'
%% (handed to the context's server) or the error.
submit(Ctx, undefined, Id, Reply, EnvPid, Frame, Deadline, Parent) ->
    enqueue(Ctx, Id, Reply, EnvPid, Frame, Deadline, Parent);
submit(Ctx, H, Id, Reply, EnvPid, Frame, Deadline, Parent) ->
    try
        admitted(Ctx, H, Id, Reply, EnvPid, Frame, Deadline, Parent)
    catch
        error:badarg:Stack ->
            %% The context died and its heir deleted the in-flight table under
            %% us: the heir answered what the table held, and this request was
            %% not in it (or its answer is in the mailbox, dropped with the
            %% waiter).
            case py_inflight:handle(Ctx) of
                undefined -> {error, {context_died, noproc}};
                _ -> erlang:raise(error, badarg, Stack)
            end
    end.

admitted(Ctx, H, Id, Reply, EnvPid, Frame, Deadline, Parent) ->
    case py_inflight:admit(H, iolist_size(Frame)) of
        {ok, InFlight} ->
            case writable(H, Parent) of
                none ->
                    enqueue(Ctx, Id, Reply, EnvPid, Frame, Deadline, Parent);
                Port ->
                    direct(Ctx, H, Port, py_port_writer:busy(InFlight), Id, Reply, EnvPid,
                           Frame, Deadline, Parent)
            end;
        Error ->
            Error
    end.

%% A request of a call chain goes to the OS process running the chain even
%% while the gate is closed for new work.
writable(H, 0) ->
    py_inflight:open_port(H);
writable(H, _) ->
    case py_inflight:live_port(H) of
        {Port, _} -> Port;
        none -> none
    end.

%% Busy: the OS process has other requests to answer first, and the frame
%% waits for the next batch (py_port_writer); else it is written here.
direct(Ctx, H, Port, Busy, Id, Reply, EnvPid, Frame, Deadline, Parent) ->
    watched(Ctx, EnvPid),
    ok = py_inflight:add(H, Id, Reply, EnvPid, group_leader()),
    Sent = case Busy of
               true -> py_port_writer:queue(py_inflight:writer(H), Port, Frame, closed_under(H, Id));
               false -> port_write(Port, Frame)
           end,
    case Sent of
        ok ->
            recorded(Ctx, H, Id);
        closed ->
            %% The port closed under us. If the entry is still ours nobody will
            %% answer it: hand the request to the context. Otherwise the death
            %% sweep took it and its answer is on the way.
            case py_inflight:take(H, Id) of
                {ok, _, _, _} -> enqueue(Ctx, Id, Reply, EnvPid, Frame, Deadline, Parent);
                error -> direct
            end
    end.

port_write(Port, Frame) ->
    try erlang:port_command(Port, Frame) of
        true -> ok
    catch
        error:badarg -> closed
    end.

%% For a frame the context's server wrote from the writer's queue into a port
%% that had closed and whose death sweep was over by then (py_port_writer): the
%% request never reached an OS process. Unless the entry was taken meanwhile, it
%% is answered here, as the death of the OS process it was written to.
closed_under(H, Id) ->
    fun() ->
            case py_inflight:take(H, Id) of
                {ok, Reply, _, _} -> py_reply:answer(Reply, died, noproc);
                error -> ok
            end
    end.

%% The entry was recorded while the context was alive, or its heir will find it:
%% the heir unpublishes the handle before it answers what the table holds, so
%% an entry recorded before the handle is seen still published is answered.
%% Once it is gone, the entry is taken back here unless the heir had it.
recorded(Ctx, H, Id) ->
    case py_inflight:handle(Ctx) of
        undefined ->
            case py_inflight:take(H, Id) of
                {ok, _, _, _} -> {error, {context_died, noproc}};
                error -> direct
            end;
        _ ->
            direct
    end.

%% The context must know the owner of an environment before its first request
%% waits in the OS process, so that the owner's death cancels it there: once
%% per calling process and context (always for requests made on behalf of
%% another process).
watched(Ctx, EnvPid) when EnvPid =:= self() ->
    Key = {?MODULE, watched, Ctx},
    case get(Key) of
        undefined -> put(Key, true), py_context_server:watch(Ctx, EnvPid);
        true -> ok
    end;
watched(Ctx, EnvPid) ->
    py_context_server:watch(Ctx, EnvPid).

enqueue(Ctx, Id, Reply, EnvPid, Frame, Deadline, Parent) ->
    ok = py_context_server:enqueue(Ctx, Id, Reply, EnvPid, group_leader(), Frame, Deadline, Parent),
    queued.

%% @doc Writes a frame that takes no answer (a callback reply, a release) to the
%% context's live OS process. When there is none, the Python side it was for is
%% gone with it.
-spec send_frame(pid(), py_protocol:frame()) -> ok.
send_frame(Ctx, Frame) ->
    case py_inflight:handle(Ctx) of
        undefined when node(Ctx) =/= node() -> py_context_server:forward_frame(Ctx, Frame);
        undefined -> ok;
        H -> _ = py_inflight:write(H, Frame), ok
    end.

%% @doc The request whose callback the calling process runs on `Ctx' now (0: none).
-spec parent(pid()) -> py_protocol:parent().
parent(Ctx) ->
    case get({?MODULE, chain, Ctx}) of
        undefined -> 0;
        Id -> Id
    end.

%% @doc The atom budget that results from `Ctx' are decoded under.
-spec budget(pid()) -> py_term:budget().
budget(Ctx) ->
    case py_inflight:handle(Ctx) of
        undefined -> remote_budget();
        H -> py_inflight:budget(H)
    end.

%% @doc Decodes a body from `Ctx' (under its atom budget).
-spec decode(pid(), binary()) -> {ok, term()} | {error, term()}.
decode(Ctx, Body) -> py_term:decode(Body, budget(Ctx)).

remote_budget() ->
    Key = {?MODULE, remote_budget},
    case persistent_term:get(Key, undefined) of
        undefined ->
            B = py_term:new_budget(?REMOTE_MAX_ATOMS),
            persistent_term:put(Key, B),
            B;
        B ->
            B
    end.

deadline(infinity) -> infinity;
deadline(T) -> erlang:monotonic_time(millisecond) + T.

remaining(infinity) -> infinity;
remaining(Deadline) -> max(0, Deadline - erlang:monotonic_time(millisecond)).

wait(Ctx, H, Id, W = {Ref, _}, Deadline) ->
    case py_reply:next(Ref, remaining(Deadline)) of
        {answer, Status, Body} ->
            py_reply:done(W),
            result(Ctx, H, Status, Body);
        {callback, CbId, Name, Args} ->
            Reply = in_chain(Ctx, Id, fun() -> py_callback:run(CbId, Name, Args, budget(Ctx)) end),
            case remaining(Deadline) of
                0 ->
                    %% The deadline passed while the callback ran: the cancel must
                    %% reach the port before the reply, so both go through the
                    %% context, in this order.
                    W1 = watch(Ctx, W),
                    py_context_server:cancel(Ctx, Id, Ref),
                    py_context_server:forward_frame(Ctx, Reply),
                    cancelled(Ctx, H, W1);
                _ ->
                    send_frame(Ctx, Reply),
                    wait(Ctx, H, Id, W, Deadline)
            end;
        {async_callback, CbId, Name, Args} ->
            Budget = budget(Ctx),
            _ = spawn(fun() ->
                              Reply = in_chain(Ctx, Id, fun() ->
                                                                py_callback:run(CbId, Name, Args, Budget)
                                                        end),
                              send_frame(Ctx, Reply)
                      end),
            wait(Ctx, H, Id, W, Deadline);
        {output, _Stream, Bytes, {Server, ReqId, Size}} ->
            _ = py_output:put_chars(group_leader(), py_output:printable(Bytes),
                                    min(?IO_TIMEOUT, remaining(Deadline))),
            py_context_server:output_done(Server, ReqId, Size),
            wait(Ctx, H, Id, W, Deadline);
        {down, Reason} ->
            py_reply:done(W),
            {error, {context_died, Reason}};
        cancel_ack ->
            wait(Ctx, H, Id, W, Deadline);
        timeout ->
            W1 = watch(Ctx, W),
            py_context_server:cancel(Ctx, Id, Ref),
            cancelled(Ctx, H, W1)
    end.

%% A cancel waits for the context's acknowledgement, or for its death.
watch(Ctx, {Ref, none}) -> {Ref, py_reply:watch(Ctx, Ref)};
watch(_, W) -> W.

%% Runs Fun as part of request Id's call chain on Ctx: requests it makes to Ctx
%% carry Id as their parent.
in_chain(Ctx, Id, Fun) ->
    Key = {?MODULE, chain, Ctx},
    Prev = put(Key, Id),
    try
        Fun()
    after
        case Prev of
            undefined -> erase(Key);
            _ -> put(Key, Prev)
        end
    end.

%% Waits until the context confirms the cancel: the request was dropped or asked
%% to stop, and the context holds new requests until it has stopped, so the
%% caller's next request never goes to an OS process about to be killed.
%% Callbacks and output that arrive meanwhile are for a request that is being
%% stopped: the context takes their credit back itself.
cancelled(Ctx, H, W = {Ref, _}) ->
    case py_reply:next(Ref, ?CANCEL_ACK_MS) of
        cancel_ack -> timed_out(Ctx, H, W);
        {callback, _, _, _} -> cancelled(Ctx, H, W);
        {async_callback, _, _, _} -> cancelled(Ctx, H, W);
        {output, _, _, _} -> cancelled(Ctx, H, W);
        {answer, Status, Body} -> forget(W), result(Ctx, H, Status, Body);
        {down, Reason} -> forget(W), {error, {context_died, Reason}};
        timeout -> timed_out(Ctx, H, W)
    end.

timed_out(Ctx, H, W = {Ref, _}) ->
    %% An answer that got in before the alias went inactive is still taken.
    case py_reply:next(Ref, 0) of
        {answer, Status, Body} ->
            forget(W),
            result(Ctx, H, Status, Body);
        {down, Reason} ->
            forget(W),
            {error, {context_died, Reason}};
        timeout ->
            forget(W),
            {error, timeout};
        _ ->
            timed_out(Ctx, H, W)
    end.

%% Deactivates the alias (nothing sent to it can arrive any more) and drops what
%% arrived before: callbacks nobody will run, output, the cancel's acknowledgement.
forget(W = {Ref, _}) ->
    py_reply:done(W),
    flush(Ref).

flush(Ref) ->
    case py_reply:next(Ref, 0) of
        timeout -> ok;
        _ -> flush(Ref)
    end.

result(Ctx, undefined, reply, Body) ->
    decode(Ctx, Body);
result(_, H, reply, Body) ->
    py_term:decode(Body, py_inflight:budget(H));
result(_, _, Status, Body) ->
    result(Status, Body).

result(error, Body) ->
    {Error, Details} = py_protocol:error_body(Body),
    Details =/= undefined andalso put(pyport_last_error, Details),
    Error;
result(died, Reason) ->
    {error, {context_died, Reason}};
result(failed, Reason) ->
    {error, Reason}.
