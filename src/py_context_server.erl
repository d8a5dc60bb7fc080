%% @private
%% @doc The server of one Python context: a gen_server that owns one pyport OS
%% process (a port) and keeps it running. Its pid is the context's handle (see
%% py_context for the public API); it survives restarts of the OS process.
%%
%% Requests do not pass through this process on their way in (py_request writes
%% them to the port itself); it routes what the port sends back, without decoding
%% results: answers to their callers (py_reply), callbacks to the waiting caller,
%% stream items to their owner, output of a request to its waiting caller, and
%% everything else Python emits (thread output, fd 1/2, log records, sends) to the
%% context's delivery process (py_output). It owns the lifecycle: start, setup,
%% graceful restart, kill, backoff, heartbeat, the limits (max_calls, max_memory,
%% kill_after), and the death of callers (their requests are cancelled).
-module(py_context_server).
-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

%% Client functions (py_context, py_request, py_stream, py_output call them)
-export([start_link/1, enqueue/8, cancel/3, forward_frame/2, output_done/3, watch/2,
         stream_cancel/2, info/1, interrupt/1, kill/1, restart/1, subscribe/1,
         unsubscribe/2, setup/2, stop/1]).

%% gen_server
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

%% How long a new OS process may take to say `ready' and finish its setup.
-define(START_TIMEOUT, 30000).
%% How often RSS is compared with max_memory when a limit is set.
-define(MEMORY_CHECK_MS, 250).
%% How long info/1 waits for the port's loop thread to answer.
-define(INFO_TIMEOUT, 5000).
%% Heartbeats go out this many times per heartbeat timeout.
-define(HEARTBEATS_PER_TIMEOUT, 4).
%% The first protocol version whose ports take output and send credit.
-define(FLOW_PROTOCOL, 2).
%% Output credit goes back to the port once this fraction of the window is due.
-define(CREDIT_BATCH_DIVISOR, 4).
%% Atom names the port may send beyond what is left of the budget: it counts
%% every name that did not come from Erlang, and cannot tell the atoms that
%% already exist in the node (free for py_term, which keeps the exact count).
-define(PORT_ATOM_SLACK, 10000).

-record(s, {
    opts :: py_options:options(),          % validated, defaults filled in
    name :: binary(),                      % in logs and info
    h :: py_inflight:handle(),             % the in-flight table
    delivery :: pid(),                     % py_output: delivers what no caller waits for
    counters :: counters:counters_ref(),   % shared with py_output (see info/1)
    %% The OS process
    template :: pid() | atom() | undefined, % py_template to fork from (template => true)
    port :: port() | undefined,            % while one is open
    os_pid :: integer() | undefined,       % once it said ready
    crash_file :: file:filename() | undefined, % where its crash dump would go
    gen = 0 :: non_neg_integer(),          % generation: +1 per OS process
    status = starting :: starting | ready | draining | down,
    announced :: non_neg_integer() | undefined, % exit status it said it is about to use
    flow = false :: boolean(),             % it takes output/send credit (protocol 2 and up)
    created :: integer(),                  % monotonic ms of the handle's start
    port_started :: integer(),             % monotonic ms of this OS process's start
    python_version = <<>> :: binary(),
    port_calls = 0 :: non_neg_integer(),   % answered by this OS process (max_calls)
    %% Requests
    queue = queue:new() :: queue:queue(),  % waiting for the gate to open
    cancelled = #{} :: #{pos_integer() => reference() | none}, % still running after a cancel: kill_after timers
    internal = #{} :: #{pos_integer() => term()}, % the context's own requests (info, setup, heartbeat)
    pending_setup = #{} :: map(),          % settings for the OS process now starting
    streams = #{} :: #{pos_integer() => py_streams:credit()},
    out = #{} :: #{pos_integer() => non_neg_integer()}, % output bytes a waiting caller has not written yet
    credit_due = 0 :: non_neg_integer(),   % output credit not yet returned to the port
    heartbeat :: {pos_integer(), integer()} | undefined, % the ping in flight and when it left
    %% Environments: their owners are monitored; a dead owner's requests are cancelled
    envs = #{} :: #{pid() => reference()},
    env_mons = #{} :: #{reference() => pid()},
    subscribers = #{} :: #{reference() => pid()},  % monitor/1 subscribers
    %% Counters and reasons
    calls = 0 :: non_neg_integer(),
    errors = 0 :: non_neg_integer(),
    restarts = 0 :: non_neg_integer(),
    backoff = 0 :: non_neg_integer(),      % last restart delay (ms)
    logged :: term(),                      % last death reason logged (logged once per change)
    kill_reason :: term(),                 % why we killed the OS process, until it exits
    restart_reason :: term(),              % told to subscribers when the next one is ready
    drain_reason :: term(),                % why a graceful restart is under way
    recycle_when_idle :: term()            % over max_memory: recycle at the next idle moment
}).

%% Counter indexes in #s.counters (shared with py_output).
-define(C_OUTPUT_DROPPED, 1).
-define(C_SENDS_DROPPED, 2).
-define(C_COUNT, 2).

%%% ===========================================================================
%%% Client functions
%%% ===========================================================================

%% @doc Starts a context server with validated options (py_context:start_link/1).
-spec start_link(py_options:options()) -> {ok, pid()} | {error, term()}.
start_link(Opts = #{name := Name}) ->
    gen_server:start_link({local, Name}, ?MODULE, Opts, []);
start_link(Opts) ->
    gen_server:start_link(?MODULE, Opts, []).

%% @doc Hands a request to the context (no port to write to, a remote caller, or
%% the gate closed): it is written when the gate opens, unless `Deadline' passed.
%% `Parent' is the request whose callback the caller is running (0: none); such
%% a request goes to the live OS process even while the gate is closed.
-spec enqueue(pid(), pos_integer(), py_inflight:reply_to(), pid(), pid(), py_protocol:frame(),
              integer() | infinity, non_neg_integer()) -> ok.
enqueue(Ctx, Id, Reply, EnvPid, GL, Frame, Deadline, Parent) ->
    Ctx ! {'$py_req', Id, Reply, EnvPid, GL, Frame, Deadline, Parent},
    ok.

%% @doc A caller gave up on request `Id': the context drops it if it is still
%% waiting, else stops it (exception first, `kill_after' later), and then sends
%% `cancel_ack' to `Ack' (py_reply).
-spec cancel(pid(), pos_integer(), reference()) -> ok.
cancel(Ctx, Id, Ack) ->
    Ctx ! {'$py_cancel', Id, Ack},
    ok.

%% @doc Writes a frame that takes no answer (a callback reply, a release) to the
%% live OS process, in order with what the context itself writes.
-spec forward_frame(pid(), py_protocol:frame()) -> ok.
forward_frame(Ctx, Frame) ->
    Ctx ! {'$py_frame', Frame},
    ok.

%% @doc A waiting caller has written `Bytes' of output of request `Id' (the
%% token it got with the output): the context returns the credit to the port.
-spec output_done(pid(), pos_integer(), non_neg_integer()) -> ok.
output_done(Ctx, Id, Bytes) ->
    Ctx ! {'$py_output_done', Id, Bytes},
    ok.

%% @doc Tells the context that `Pid' makes requests in its own environment: when
%% it dies, its requests (running or queued) are cancelled and its environment
%% dropped. (The context also learns this when the environment is created.)
-spec watch(pid(), pid()) -> ok.
watch(Ctx, Pid) ->
    Ctx ! {'$py_watch', Pid},
    ok.

%% @doc Stops stream `Id': after this returns, the context sends nothing more for it.
-spec stream_cancel(pid(), pos_integer()) -> ok.
stream_cancel(Ctx, Id) -> gen_server:call(Ctx, {stream_cancel, Id}).

%% @doc See py_context:info/1.
-spec info(pid()) -> map().
info(Ctx) -> gen_server:call(Ctx, info, ?INFO_TIMEOUT + 1000).

%% @doc See py_context:interrupt/1.
-spec interrupt(pid()) -> ok.
interrupt(Ctx) -> gen_server:call(Ctx, interrupt).

%% @doc See py_context:kill/1.
-spec kill(pid()) -> ok.
kill(Ctx) -> gen_server:call(Ctx, kill).

%% @doc See py_context:restart/1.
-spec restart(pid()) -> ok.
restart(Ctx) -> gen_server:call(Ctx, restart).

%% @doc See py_context:monitor/1.
-spec subscribe(pid()) -> reference().
subscribe(Ctx) -> gen_server:call(Ctx, {subscribe, self()}).

%% @doc See py_context:demonitor/2.
-spec unsubscribe(pid(), reference()) -> ok.
unsubscribe(Ctx, Ref) -> gen_server:call(Ctx, {unsubscribe, Ref}).

%% @doc See py_context:setup/2.
-spec setup(pid(), map()) -> {ok, term()} | {error, term()}.
setup(Ctx, Settings) -> gen_server:call(Ctx, {setup, Settings}, ?START_TIMEOUT).

%% @doc Stops the context; its OS process exits.
-spec stop(pid()) -> ok.
stop(Ctx) -> gen_server:stop(Ctx).

%%% ===========================================================================
%%% gen_server
%%% ===========================================================================

%% @private
init(Opts) ->
    process_flag(trap_exit, true),
    Name = context_name(Opts),
    label(Opts, Name),
    logger:update_process_metadata(log_metadata(Name, Opts, undefined)),
    Self = self(),
    H = py_inflight:new(Self, Opts#{ask_flush => fun() -> Self ! '$py_flush' end}),
    Counters = counters:new(?C_COUNT, [write_concurrency]),
    Delivery = py_output:start_link(#{context => self(), name => Name, inflight => H,
                                       metadata => log_metadata(Name, Opts, undefined),
                                       counters => {Counters, ?C_OUTPUT_DROPPED, ?C_SENDS_DROPPED},
                                       log_rate => maps:get(log_rate, Opts),
                                       output_window => maps:get(output_window, Opts),
                                       send_window => maps:get(send_window, Opts),
                                       send_queue_limit => maps:get(send_queue_limit, Opts)}),
    S0 = #s{opts = Opts, name = Name, h = H, delivery = Delivery, counters = Counters,
            created = now_ms(), port_started = now_ms()},
    case template(S0) of
        {ok, S00} -> init_port(S00);
        {error, Reason} ->
            py_inflight:forget(self()),
            {stop, Reason}
    end.

%% The template a context with `template => true' forks from: its pool's, or
%% one of its own (linked, stopped with it).
template(S = #s{opts = #{template := true} = Opts}) ->
    Shared = case Opts of
                 #{pool := Pool} when Pool =/= undefined ->
                     erlang:whereis(py_template:name(Pool));
                 _ -> undefined
             end,
    case Shared of
        undefined ->
            case py_template:start_link(Opts) of
                {ok, T} -> {ok, S#s{template = T}};
                {error, Reason} -> {error, Reason}
            end;
        _ ->
            {ok, S#s{template = py_template:name(maps:get(pool, Opts))}}
    end;
template(S) ->
    {ok, S}.

init_port(S0) ->
    case open(S0) of
        {ok, S1} ->
            case await_started(S1, now_ms() + ?START_TIMEOUT) of
                {ok, S2} ->
                    {ok, schedule_heartbeat(schedule_memory_check(S2))};
                {error, Reason} ->
                    close_port(S1),
                    py_inflight:forget(self()),
                    {stop, Reason}
            end;
        {error, Reason} ->
            py_inflight:forget(self()),
            {stop, Reason}
    end.

%% @private
handle_call(info, From, S = #s{status = Status}) when Status =:= ready; Status =:= draining ->
    Id = py_protocol:new_id(),
    case port_send(S, py_protocol:info(Id)) of
        ok ->
            erlang:send_after(?INFO_TIMEOUT, self(), {'$py_internal_timeout', Id}),
            {noreply, S#s{internal = maps:put(Id, {info, From}, S#s.internal)}};
        closed ->
            {reply, base_info(S, #{}), S}
    end;
handle_call(info, _From, S) ->
    {reply, base_info(S, #{}), S};
handle_call(interrupt, _From, S = #s{status = Status}) when Status =:= ready; Status =:= draining ->
    port_send(S, py_protocol:interrupt(keyboard)),
    {reply, ok, S};
handle_call(interrupt, _From, S) ->
    {reply, ok, S};
handle_call(kill, _From, S) ->
    {reply, ok, kill_port({killed, requested}, S)};
handle_call(restart, _From, S) ->
    {reply, ok, begin_drain({restart, requested}, S)};
handle_call({subscribe, Pid}, _From, S) ->
    Ref = erlang:monitor(process, Pid),
    {reply, Ref, S#s{subscribers = maps:put(Ref, Pid, S#s.subscribers)}};
handle_call({unsubscribe, Ref}, _From, S) ->
    erlang:demonitor(Ref, [flush]),
    {reply, ok, S#s{subscribers = maps:remove(Ref, S#s.subscribers)}};
handle_call({setup, Settings}, From, S) ->
    case S#s.status of
        ready ->
            {noreply, send_setup(Settings, {setup, From, Settings}, S)};
        Status ->
            %% The next OS process starts with it (its options); one that is
            %% starting now gets it as soon as its own setup is done.
            Opts = maps:merge(S#s.opts, maps:with([venv, logging], Settings)),
            Pending = case Status of
                          starting -> maps:merge(S#s.pending_setup, Settings);
                          _ -> S#s.pending_setup
                      end,
            {reply, {ok, pending}, S#s{opts = Opts, pending_setup = Pending}}
    end;
handle_call({stream_cancel, Id}, _From, S) ->
    {reply, ok, cancel(Id, S)};
handle_call(_Other, _From, S) ->
    {reply, {error, badarg}, S}.

%% @private
handle_cast(_Msg, S) ->
    {noreply, S}.

%% @private
handle_info({Port, {data, Frame}}, S = #s{port = Port}) ->
    case py_protocol:split(Frame) of
        {ok, Header, Body} ->
            {noreply, frame(Header, Body, byte_size(Frame), S)};
        error ->
            %% The port never writes such a frame: the stream from it is not
            %% pyport's any more (Python wrote to the protocol descriptor).
            {noreply, kill_port({protocol_violation, byte_size(Frame)}, S)}
    end;
handle_info({Port, {exit_status, Status}}, S = #s{port = Port}) ->
    {noreply, port_died(exit_reason(Status, S), S)};
handle_info({'EXIT', Port, Reason}, S = #s{port = Port}) ->
    %% The runtime closed the port without an exit status: a write found the
    %% pipe broken (the OS process had died). The status is lost with it.
    {noreply, port_died({port_closed, Reason}, S)};
handle_info({'$py_req', Id, Reply, EnvPid, GL, Frame, Deadline, Parent}, S) ->
    {noreply, accept(Id, Reply, EnvPid, GL, Frame, Deadline, Parent, S)};
handle_info({'$py_watch', Pid}, S) ->
    {noreply, env_created(Pid, S)};
handle_info({'$py_frame', Frame}, S) ->
    port_send(S, Frame),
    {noreply, S};
handle_info({'$py_cancel', Id, Ack}, S) ->
    S1 = cancel(Id, S),
    py_reply:cancel_ack(Ack),
    {noreply, S1};
handle_info({'$py_output_done', Id, Bytes}, S = #s{out = Out}) ->
    case maps:find(Id, Out) of
        {ok, Left} ->
            Done = min(Left, Bytes),
            {noreply, credit(Done, S#s{out = Out#{Id := Left - Done}})};
        error ->
            {noreply, S}   % the request ended: its credit went back then
    end;
handle_info({'$py_kill_after', Id, Gen}, S = #s{gen = Gen}) ->
    case maps:is_key(Id, S#s.cancelled) of
        true -> {noreply, kill_port({killed, {kill_after, Id}}, S)};
        false -> {noreply, S}
    end;
handle_info({'$py_restart', Gen}, S = #s{gen = Gen, status = down}) ->
    {noreply, start_port(S)};
handle_info({'$py_start_timeout', Gen}, S = #s{gen = Gen, status = starting}) ->
    {noreply, kill_port(start_timeout, S)};
handle_info({'$py_stream_recheck', Id}, S) ->
    {noreply, stream_credit(Id, fun py_streams:recheck/1, S)};
handle_info({'$py_internal_timeout', Id}, S) ->
    case maps:take(Id, S#s.internal) of
        {{info, From}, Internal} ->
            gen_server:reply(From, base_info(S, #{current => unknown})),
            {noreply, S#s{internal = Internal}};
        _ ->
            {noreply, S}
    end;
handle_info('$py_flush', S = #s{h = H}) ->
    ok = py_port_writer:flush(py_inflight:writer(H), S#s.port),
    {noreply, S};
handle_info('$py_heartbeat', S) ->
    {noreply, schedule_heartbeat(heartbeat(S))};
handle_info('$py_memory_check', S) ->
    {noreply, schedule_memory_check(check_memory(S))};
handle_info({'DOWN', Ref, process, _Pid, _}, S) ->
    {noreply, down(Ref, S)};
handle_info({'EXIT', Delivery, Reason}, S = #s{delivery = Delivery}) ->
    {stop, {delivery_died, Reason}, S};
handle_info({'EXIT', Port, _}, S) when is_port(Port) ->
    {noreply, S};
handle_info({'EXIT', _Pid, Reason}, S) ->
    {stop, Reason, S};
handle_info({Port, _}, S) when is_port(Port) ->
    %% A message from an OS process this context already left behind.
    {noreply, S};
handle_info(_Other, S) ->
    {noreply, S}.

%% @private
terminate(_Reason, S) ->
    close_port(S),
    is_pid(S#s.template) andalso gen_server:stop(S#s.template),
    py_os_process:report_crash(S#s.crash_file, S#s.name, S#s.os_pid),
    py_inflight:forget(self()),
    ok.

%%% ===========================================================================
%%% Frames from the port
%%% ===========================================================================

frame({reply, Id}, Body, _, S) ->
    deliver(Id, reply, Body, S);
frame({error, Id}, Body, _, S) ->
    deliver(Id, error, Body, S#s{errors = S#s.errors + 1});
frame({ready, _, _, _} = Ready, _, _, S = #s{status = starting}) ->
    ready(Ready, S);
frame({stream_data, Id}, Body, _, S) ->
    stream_data(Id, Body, S);
frame({callback, CbId, ReqId, Name}, Args, _, S) ->
    callback(CbId, ReqId, Name, Args, S);
frame({async_callback, CbId, ReqId, Name}, Args, _, S) ->
    async_callback(CbId, ReqId, Name, Args, S);
frame({env, Pid}, _, _, S) ->
    env_created(Pid, S);
frame({output, Id, Stream, Bytes}, _, Size, S) ->
    output(Id, Stream, Bytes, Size, S);
frame({send, _} = Header, Body, Size, S) ->
    py_output:deliver(S#s.delivery, S#s.gen, Header, Body, Size),
    S;
frame({log, _, _, _} = Header, Body, Size, S) ->
    py_output:deliver(S#s.delivery, S#s.gen, Header, Body, Size),
    S;
frame({exiting, Status}, _, _, S) when is_integer(Status) ->
    S#s{announced = Status};
frame(Other, _, Size, S) ->
    ?LOG_WARNING("pyport context ~ts: unexpected frame ~0p", [S#s.name, Other]),
    kill_port({protocol_violation, Size}, S).

deliver(Id, Status, Body, S = #s{h = H}) ->
    case py_inflight:take(H, Id) of
        {ok, Reply, _, _} ->
            py_reply:answer(Reply, Status, Body),
            S1 = request_ended(Id, S),
            after_reply(S1#s{calls = S#s.calls + 1, port_calls = S#s.port_calls + 1});
        error ->
            internal_reply(Id, Status, Body, S)
    end.

%% What the context kept about a request that has its answer (or was
%% cancelled): its stream state, and the output credit its caller still holds.
request_ended(_, S = #s{out = Out, streams = Streams})
  when map_size(Out) =:= 0, map_size(Streams) =:= 0 ->
    S;
request_ended(Id, S = #s{out = Out, streams = Streams}) ->
    S1 = S#s{streams = maps:remove(Id, Streams)},
    case maps:take(Id, Out) of
        {Left, Out1} -> credit(Left, S1#s{out = Out1});
        error -> S1
    end.

%% A stream item goes to its owner; credit goes back to the port as the owner
%% takes items from its mailbox (py_streams).
stream_data(Id, Body, S = #s{h = H}) ->
    case py_inflight:lookup(H, Id) of
        {ok, {stream, Owner, Ref, Window}, _, _} ->
            case py_term:decode(Body, py_inflight:budget(H)) of
                {ok, Item} ->
                    py_reply:stream_item(Owner, Ref, Item),
                    Streams = S#s.streams,
                    S1 = case maps:is_key(Id, Streams) of
                             true -> S;
                             false -> S#s{streams = Streams#{Id => py_streams:credit(Owner, Window)}}
                         end,
                    stream_credit(Id, fun py_streams:delivered/1, S1);
                {error, Reason} ->
                    %% The item cannot become a term here: end the stream with why.
                    S1 = cancel(Id, S),
                    py_reply:answer({stream, Owner, Ref, Window}, failed, Reason),
                    S1
            end;
        _ ->
            S
    end.

stream_credit(Id, Step, S = #s{streams = Streams}) ->
    case maps:find(Id, Streams) of
        {ok, C} ->
            {Ack, Next, C1} = Step(C),
            Ack > 0 andalso port_send(S, py_protocol:stream_ack(Id, Ack)),
            case Next of
                {recheck, Ms} -> erlang:send_after(Ms, self(), {'$py_stream_recheck', Id});
                none -> ok
            end,
            S#s{streams = Streams#{Id := C1}};
        error ->
            S
    end.

%% A callback runs in the process waiting for the request that made it; if
%% nobody waits there (a Python thread, a stream), in a new process.
callback(CbId, ReqId, Name, Args, S = #s{h = H}) ->
    Sent = case py_inflight:lookup(H, ReqId) of
               {ok, Reply, _, _} -> py_reply:callback(Reply, CbId, Name, Args);
               error -> no_waiter
           end,
    case Sent of
        sent ->
            ok;
        no_waiter ->
            case maps:is_key(ReqId, S#s.cancelled) of
                true -> port_send(S, py_protocol:callback_reply(CbId, error, {error, cancelled}));
                false -> py_callback:spawn_handler(H, CbId, Name, Args)
            end
    end,
    S.

%% erlang.async_call: the waiting caller starts a process that runs it in the
%% request's call chain; if nobody waits there, a new process runs it. Either
%% way the caller goes on waiting, so several run at once.
async_callback(CbId, ReqId, Name, Args, S = #s{h = H}) ->
    Sent = case py_inflight:lookup(H, ReqId) of
               {ok, Reply, _, _} -> py_reply:async_callback(Reply, CbId, Name, Args);
               error -> no_waiter
           end,
    Sent =:= sent orelse py_callback:spawn_handler(H, CbId, Name, Args),
    S.

%% Output of a request goes to its waiting caller, who writes it to its group
%% leader and gives the credit back; everything else goes to the delivery
%% process (logger, or the group leader of a stream's owner).
output(Id, Stream, Bytes, Size, S = #s{h = H, out = Out}) ->
    case Id =/= 0 andalso py_inflight:lookup(H, Id) of
        {ok, Mref, _, _} when is_reference(Mref) ->
            py_reply:output(Mref, Stream, Bytes, {self(), Id, Size}),
            S#s{out = maps:update_with(Id, fun(N) -> N + Size end, Size, Out)};
        {ok, _, _, GL} ->
            py_output:deliver(S#s.delivery, S#s.gen, {output, GL, Stream, Bytes}, <<>>, Size),
            S;
        _ ->
            py_output:deliver(S#s.delivery, S#s.gen, {output, undefined, Stream, Bytes}, <<>>, Size),
            S
    end.

%% Returns output credit to the port, a batch at a time.
credit(0, S) ->
    S;
credit(_, S = #s{flow = false}) ->
    S;
credit(Bytes, S = #s{credit_due = Due, opts = #{output_window := Window}, out = Out}) ->
    Total = Due + Bytes,
    %% Also at once when no caller holds output any more: credit held back
    %% then could stall a frame that needs the whole window.
    case Total * ?CREDIT_BATCH_DIVISOR >= Window orelse lists:sum(maps:values(Out)) =:= 0 of
        true ->
            port_send(S, py_protocol:credit(output, Total)),
            S#s{credit_due = 0};
        false ->
            S#s{credit_due = Total}
    end.

env_created(Pid, S = #s{envs = Envs}) ->
    case maps:is_key(Pid, Envs) of
        true ->
            S;
        false ->
            Ref = erlang:monitor(process, Pid),
            S#s{envs = maps:put(Pid, Ref, Envs), env_mons = maps:put(Ref, Pid, S#s.env_mons)}
    end.

internal_reply(Id, Status, Body, S) ->
    case maps:take(Id, S#s.internal) of
        {{info, From}, Internal} ->
            FromPort = case {Status, decode(Body, S)} of
                           {reply, {ok, Map}} when is_map(Map) -> Map;
                           _ -> #{}
                       end,
            gen_server:reply(From, base_info(S, FromPort)),
            S#s{internal = Internal};
        {heartbeat, Internal} ->
            S#s{internal = Internal, heartbeat = undefined};
        {pending_setup, Internal} ->
            case setup_result(Status, Body, S) of
                {ok, _} -> ok;
                {error, Reason} -> ?LOG_WARNING("pyport context ~ts: setup failed: ~0p",
                                                [S#s.name, Reason])
            end,
            S#s{internal = Internal};
        {{setup, From, Settings}, Internal} ->
            Result = setup_result(Status, Body, S),
            gen_server:reply(From, Result),
            Opts = case Result of
                       {ok, _} -> maps:merge(S#s.opts, maps:with([venv, logging], Settings));
                       {error, _} -> S#s.opts
                   end,
            S#s{internal = Internal, opts = Opts};
        {start_setup, Internal} ->
            setup_done(setup_result(Status, Body, S), S#s{internal = Internal});
        error ->
            %% The answer to a request whose caller gave up: the Python work has
            %% stopped, so no kill is needed.
            case maps:take(Id, S#s.cancelled) of
                {TRef, Cancelled} ->
                    cancel_timer(TRef),
                    S1 = S#s{cancelled = Cancelled, port_calls = S#s.port_calls + 1},
                    after_reply(open_gate(S1));
                error ->
                    S
            end
    end.

setup_result(reply, Body, S) -> decode(Body, S);
setup_result(error, Body, _) -> element(1, py_protocol:error_body(Body)).

decode(Body, #s{h = H}) -> py_term:decode(Body, py_inflight:budget(H)).

after_reply(S = #s{status = draining}) ->
    maybe_finish_drain(S);
after_reply(S = #s{opts = #{max_calls := Max}, port_calls = N}) when is_integer(Max), N >= Max ->
    begin_drain(max_calls, S);
after_reply(S = #s{recycle_when_idle = Why}) when Why =/= undefined ->
    case py_inflight:count(S#s.h) of
        0 -> begin_drain(Why, S#s{recycle_when_idle = undefined});
        _ -> S
    end;
after_reply(S) ->
    S.

%%% ===========================================================================
%%% Requests that pass through the context
%%% ===========================================================================

accept(Id, Reply, EnvPid, GL, Frame, Deadline, Parent, S0) ->
    S = env_created(EnvPid, S0),
    case admit(iolist_size(Frame), S) of
        {error, Reason} ->
            py_reply:answer(Reply, failed, Reason),
            S;
        ok when S#s.status =:= ready, map_size(S#s.cancelled) =:= 0 ->
            write(Id, Reply, EnvPid, GL, Frame, S);
        ok when Parent =/= 0, is_port(S#s.port), S#s.status =/= starting ->
            %% Part of a call chain that runs in this OS process: it must reach
            %% it, whatever the gate says, or the chain waits for itself.
            write(Id, Reply, EnvPid, GL, Frame, S);
        ok ->
            S#s{queue = queue:in({Id, Reply, EnvPid, GL, Frame, Deadline}, S#s.queue)}
    end.

admit(Size, S = #s{h = H}) ->
    case py_inflight:admit(H, Size) of
        {ok, InFlight} ->
            {MaxQueue, _} = py_inflight:limits(H),
            Len = InFlight + queue:len(S#s.queue),
            case Len >= MaxQueue of
                true -> {error, {overloaded, Len, MaxQueue}};
                false -> ok
            end;
        Error ->
            Error
    end.

%% If the port is closing, the entry stays: the death sweep answers it.
write(Id, Reply, EnvPid, GL, Frame, S = #s{h = H}) ->
    ok = py_inflight:add(H, Id, Reply, EnvPid, GL),
    port_send(S, Frame),
    S.

%% Sends what queued while the gate was closed, dropping requests whose caller
%% has given up (they must never run).
flush_queue(S = #s{queue = Q}) ->
    Now = now_ms(),
    S1 = S#s{queue = queue:new()},
    lists:foldl(
      fun({Id, Reply, EnvPid, GL, Frame, Deadline}, Acc) ->
              case Deadline =:= infinity orelse Deadline > Now of
                  true -> write(Id, Reply, EnvPid, GL, Frame, Acc);
                  false -> Acc
              end
      end, S1, queue:to_list(Q)).

%% A request's caller gave up or died: drop the request if it never reached the
%% port; else ask the port to stop it, and kill the OS process if it has not
%% within kill_after. Until it stops, new requests wait (the gate is closed).
cancel(Id, S = #s{h = H, opts = Opts}) ->
    Q = queue:filter(fun(Item) -> element(1, Item) =/= Id end, S#s.queue),
    case queue:len(Q) =/= queue:len(S#s.queue) of
        true ->
            S#s{queue = Q};
        false ->
            case py_inflight:take(H, Id) of
                {ok, Reply, _, _} ->
                    stream_row_gone(Reply),
                    S1 = request_ended(Id, S),
                    case is_port(S#s.port) andalso port_send(S, py_protocol:cancel(Id)) of
                        ok ->
                            TRef = case maps:get(kill_after, Opts) of
                                       infinity -> none;
                                       Ms -> erlang:send_after(Ms, self(),
                                                               {'$py_kill_after', Id, S#s.gen})
                                   end,
                            S2 = S1#s{cancelled = maps:put(Id, TRef, S1#s.cancelled)},
                            maybe_finish_drain(close_gate(S2));
                        _ ->
                            S1
                    end;
                error ->
                    S
            end
    end.

stream_row_gone({stream, _, Ref, _}) -> py_streams:delete(Ref);
stream_row_gone(_) -> ok.

%%% ===========================================================================
%%% The OS process
%%% ===========================================================================

%% A cold start, or a fork of the template.
start_os_process(#s{template = undefined, opts = Opts, name = Name}) ->
    py_os_process:open(Name, Opts);
start_os_process(#s{template = T, opts = Opts, name = Name}) ->
    case py_template:take(T) of
        {ok, Port} -> py_os_process:attach(Port, Name, Opts);
        {error, Reason} -> {error, Reason}
    end.

open(S = #s{gen = Gen}) ->
    case start_os_process(S) of
        {ok, Port, Crash} ->
            erlang:send_after(?START_TIMEOUT, self(), {'$py_start_timeout', Gen + 1}),
            {ok, send_start_setup(
                   S#s{port = Port, os_pid = undefined, gen = Gen + 1, status = starting,
                       port_started = now_ms(), port_calls = 0, kill_reason = undefined,
                       crash_file = Crash,
                       announced = undefined, heartbeat = undefined, credit_due = 0})};
        Error ->
            Error
    end.

%% Blocks until the new OS process is ready and set up (init only): the frames
%% are handled as they would be later, and other messages wait in the mailbox.
await_started(S = #s{port = Port}, Deadline) ->
    receive
        {Port, {data, Frame}} ->
            case py_protocol:split(Frame) of
                {ok, Header, Body} ->
                    S1 = frame(Header, Body, byte_size(Frame), S),
                    case S1#s.status of
                        ready -> {ok, S1};
                        down -> {error, {python_failed_to_start, S1#s.restart_reason}};
                        _ -> await_started(S1, Deadline)
                    end;
                error ->
                    {error, {python_failed_to_start, protocol_violation}}
            end;
        {Port, {exit_status, Status}} ->
            {error, {python_failed_to_start, exit_reason(Status, S)}}
    after max(0, Deadline - now_ms()) ->
        {error, {python_failed_to_start, timeout}}
    end.

%% The start setup goes with the OS process's start, before its `ready': the
%% port reads it once Python is up, so the start costs no round trip. It assumes
%% the port speaks this node's protocol, with flow control (ready/2 warns when
%% it does not).
send_start_setup(S = #s{opts = Opts, h = H}) ->
    %% The context's own options win; settings recorded for its pool at run time
    %% (py:activate_venv/2, py:configure_logging/1) fill in the rest. A setting
    %% applied to this running context is in its options too (handle_call setup).
    Own = maps:filter(fun(_, V) -> V =/= undefined end, maps:with([venv, logging], Opts)),
    Settings = maps:map(fun(venv, V) when V =/= none -> unicode:characters_to_binary(V);
                           (_, V) -> V
                        end, maps:merge(py_settings:get(maps:get(pool, Opts, undefined)), Own)),
    Budget = py_inflight:budget(H),
    Flow = #{output_window => maps:get(output_window, Opts),
             send_window => maps:get(send_window, Opts)},
    Limits = #{context => self(),
               max_atoms => case py_term:limit(Budget) of
                                infinity -> none;
                                Max -> max(0, Max - py_term:used(Budget)) + ?PORT_ATOM_SLACK
                            end},
    %% Code registered for every context (py_preload, py_import) runs first,
    %% then the context's own preload.
    %% (A fork of a template has run them already, in the template.)
    Preload = case [C || S#s.template =:= undefined,
                         C <- [maps:get(preload, Settings, undefined), maps:get(preload, Opts)],
                         is_binary(C)] of
                  [] -> #{};
                  Codes -> #{preload => iolist_to_binary(lists:join(<<"\n">>, Codes))}
              end,
    send_setup(maps:merge(maps:merge(Settings, maps:merge(Limits, Flow)), Preload), start_setup,
               S).

%% The OS process said ready (its start setup is already on its way); requests
%% wait until that setup is done.
ready({ready, Version, PyVersion, OsPid}, S = #s{opts = Opts, h = H}) ->
    Version =:= py_protocol:version() orelse
        ?LOG_WARNING("pyport context ~ts: port speaks protocol ~p, expected ~p",
                     [S#s.name, Version, py_protocol:version()]),
    py_inflight:set_port(H, S#s.port, S#s.gen, false),
    FlowOn = Version >= ?FLOW_PROTOCOL,
    py_interpreters:started(self()),
    Meta = log_metadata(S#s.name, Opts, OsPid),
    logger:update_process_metadata(Meta),
    py_output:new_port(S#s.delivery, S#s.gen, FlowOn, Meta),
    S#s{os_pid = OsPid, python_version = PyVersion, flow = FlowOn}.

send_setup(Settings, Why, S) ->
    Id = py_protocol:new_id(),
    Clean = maps:map(fun(_, undefined) -> none; (_, V) -> V end, Settings),
    port_send(S, py_protocol:setup(Id, Clean)),
    S#s{internal = maps:put(Id, Why, S#s.internal)}.

setup_done({ok, _}, S0) ->
    %% Settings that arrived while it started go before any request.
    S = case S0#s.pending_setup of
            P when map_size(P) =:= 0 -> S0;
            P -> send_setup(P, pending_setup, S0#s{pending_setup = #{}})
        end,
    S1 = open_gate(S#s{status = ready}),
    Startup = #{duration => erlang:convert_time_unit(now_ms() - S#s.port_started, millisecond,
                                                     native)},
    case S#s.restart_reason of
        undefined when S#s.restarts =:= 0 ->
            telemetry_event(start, Startup, #{}, S);
        undefined ->
            telemetry_event(restart, Startup#{restarts => S#s.restarts}, #{reason => undefined},
                            S);
        Reason ->
            telemetry_event(restart, Startup#{restarts => S#s.restarts}, #{reason => Reason}, S),
            maps:foreach(fun(_, Pid) -> Pid ! {py_context, self(), restarted, Reason} end,
                         S#s.subscribers)
    end,
    S1#s{restart_reason = undefined};
setup_done({error, Reason}, S) ->
    %% A preload or venv that fails makes the context unusable: treat it as a
    %% crash, so it backs off and says why.
    ?LOG_ERROR("pyport context ~ts: setup failed: ~0p", [S#s.name, Reason]),
    close_port(S),
    port_died({setup_failed, Reason}, S).

start_port(S) ->
    case open(S) of
        {ok, S1} ->
            S1;
        {error, Reason} ->
            ?LOG_ERROR("pyport context ~ts: ~0p", [S#s.name, Reason]),
            schedule_restart(Reason, 0, S)
    end.

%% The OS process exited: answer everything in flight, forget the environments
%% it held, and start a new one (at once, or with backoff in a crash loop). One
%% that never finished its start (Python, preload, venv) is always a crash loop,
%% however long it took.
port_died(Exit, S = #s{h = H}) ->
    {Reason, Uptime} = case S#s.kill_reason of
                           %% A deliberate kill is not a crash loop: restart at once.
                           undefined when S#s.status =:= starting -> {Exit, 0};
                           undefined -> {Exit, now_ms() - S#s.port_started};
                           Killed -> {Killed, infinity}
                       end,
    ok = py_inflight:set_port(H, none, S#s.gen, false),
    telemetry_exit(Reason, S),
    [py_reply:answer(Reply, died, Reason) || {_, Reply} <- py_inflight:take_all(H)],
    py_os_process:report_crash(S#s.crash_file, S#s.name, S#s.os_pid),
    S1 = forget_port(S),
    schedule_restart(Reason, Uptime, S1#s{restarts = S#s.restarts + 1}).

forget_port(S) ->
    maps:foreach(fun(_, TRef) -> cancel_timer(TRef) end, S#s.cancelled),
    maps:foreach(fun(_, {info, From}) -> gen_server:reply(From, base_info(S, #{}));
                    (_, {setup, From, _}) -> gen_server:reply(From, {error, context_restarted});
                    (_, _) -> ok
                 end, S#s.internal),
    maps:foreach(fun(Ref, _) -> erlang:demonitor(Ref, [flush]) end, S#s.env_mons),
    S#s{port = undefined, os_pid = undefined, status = down, cancelled = #{}, internal = #{},
        streams = #{}, out = #{}, envs = #{}, env_mons = #{}, drain_reason = undefined,
        pending_setup = #{},
        recycle_when_idle = undefined, heartbeat = undefined, credit_due = 0}.

schedule_restart(Reason, Uptime, S = #s{opts = Opts}) ->
    Backoff = py_os_process:backoff(Uptime, S#s.backoff, maps:get(restart, Opts)),
    %% Logged once per change of reason, not once per attempt of a crash loop.
    case Reason =:= S#s.logged of
        true -> ok;
        false when Backoff =:= 0 ->
            ?LOG_WARNING("pyport context ~ts: OS process died (~0p); restarting",
                         [S#s.name, Reason]);
        false ->
            ?LOG_WARNING("pyport context ~ts: OS process died (~0p) after ~b ms; "
                         "restarting in ~b ms", [S#s.name, Reason, Uptime, Backoff])
    end,
    S1 = S#s{backoff = Backoff, logged = Reason, restart_reason = Reason},
    case Backoff of
        0 -> start_port(S1);
        _ -> erlang:send_after(Backoff, self(), {'$py_restart', S1#s.gen}), S1
    end.

kill_port(Why, S = #s{port = Port}) when is_port(Port) ->
    %% The process that runs Python: the port's own, or (forked from a template)
    %% the one it said `ready' from; its pyport-attach then exits the same way.
    case {S#s.os_pid, erlang:port_info(Port, os_pid)} of
        {_, undefined} -> ok;   % already closed: its exit is on the way
        {OsPid, _} when is_integer(OsPid) -> ok = py_os_process:kill(OsPid);
        {undefined, {os_pid, OsPid}} -> ok = py_os_process:kill(OsPid)
    end,
    ok = py_inflight:set_port(S#s.h, Port, S#s.gen, false),
    S#s{kill_reason = Why};
kill_port(_, S) ->
    S.

close_port(#s{port = Port}) when is_port(Port) ->
    catch erlang:port_close(Port),
    ok;
close_port(_) ->
    ok.

%% A graceful restart: new requests wait while those already sent are answered;
%% then stdin is closed (the old process exits by itself) and a new one starts.
begin_drain(Why, S = #s{status = ready}) ->
    maybe_finish_drain(close_gate(S#s{status = draining, drain_reason = Why}));
begin_drain(_, S) ->
    S.

maybe_finish_drain(S = #s{status = draining, h = H}) ->
    case py_inflight:count(H) =:= 0 andalso map_size(S#s.cancelled) =:= 0 of
        true ->
            ok = py_inflight:set_port(H, none, S#s.gen, false),
            close_port(S),
            py_os_process:report_crash(S#s.crash_file, S#s.name, S#s.os_pid),
            Why = S#s.drain_reason,
            telemetry_exit(Why, S),
            S1 = forget_port(S),
            start_port(S1#s{restarts = S#s.restarts + 1, restart_reason = Why, backoff = 0});
        false ->
            S
    end;
maybe_finish_drain(S) ->
    S.

%% The gate: callers write straight to the port only while it is open (ready,
%% and no cancelled request still running there: new requests wait in the
%% context until it answers or is killed, so they are never written to an OS
%% process about to be killed).
open_gate(S = #s{status = ready, cancelled = C, h = H}) when map_size(C) =:= 0 ->
    ok = py_inflight:set_port(H, S#s.port, S#s.gen, true),
    flush_queue(S);
open_gate(S) ->
    S.

close_gate(S = #s{h = H}) ->
    ok = py_inflight:set_port(H, S#s.port, S#s.gen, false),
    S.

exit_reason(Status, #s{announced = Announced, os_pid = OsPid}) ->
    py_protocol:exit_reason(Status, OsPid =:= undefined orelse Announced =:= Status).

%%% ===========================================================================
%%% Heartbeat and limits
%%% ===========================================================================

%% A ping (an `info' request, answered by the port's loop thread even while
%% Python runs) goes out a few times per heartbeat timeout; an OS process that
%% leaves one unanswered for the whole timeout is killed.
schedule_heartbeat(S = #s{opts = #{heartbeat := infinity}}) ->
    S;
schedule_heartbeat(S = #s{opts = #{heartbeat := Ms}}) ->
    erlang:send_after(max(1, Ms div ?HEARTBEATS_PER_TIMEOUT), self(), '$py_heartbeat'),
    S.

heartbeat(S = #s{status = Status, opts = #{heartbeat := Timeout}})
  when Status =:= ready; Status =:= draining ->
    Now = now_ms(),
    case S#s.heartbeat of
        undefined ->
            Id = py_protocol:new_id(),
            port_send(S, py_protocol:info(Id)),
            S#s{heartbeat = {Id, Now}, internal = maps:put(Id, heartbeat, S#s.internal)};
        {_, Sent} when Now - Sent >= Timeout ->
            kill_port(unresponsive, S);
        _ ->
            S
    end;
heartbeat(S) ->
    S.

%% max_memory: over the limit, recycle as soon as the context is idle and raise
%% MemoryError in the code running now; far over it (twice), kill at once.
schedule_memory_check(S = #s{opts = #{max_memory := Max}}) when is_integer(Max) ->
    erlang:send_after(?MEMORY_CHECK_MS, self(), '$py_memory_check'),
    S;
schedule_memory_check(S) ->
    S.

check_memory(S = #s{status = ready, opts = #{max_memory := Max}}) ->
    case py_os_process:rss_bytes(S#s.os_pid) of
        Rss when is_integer(Rss), Rss > 2 * Max ->
            kill_port({killed, {max_memory, Rss, Max}}, S);
        Rss when is_integer(Rss), Rss > Max ->
            case py_inflight:count(S#s.h) of
                0 ->
                    begin_drain({max_memory, Rss, Max}, S);
                _ ->
                    port_send(S, py_protocol:interrupt(memory)),
                    S#s{recycle_when_idle = {max_memory, Rss, Max}}
            end;
        _ ->
            S
    end;
check_memory(S) ->
    S.

%%% ===========================================================================
%%% Monitors, info, helpers
%%% ===========================================================================

%% An environment owner died: its environment goes, and so do its requests
%% (queued ones are dropped, running ones cancelled) and its streams.
down(Ref, S = #s{env_mons = Mons, h = H}) ->
    case maps:take(Ref, Mons) of
        {Pid, Mons1} ->
            (S#s.status =:= ready orelse S#s.status =:= draining)
                andalso port_send(S, py_protocol:drop_env(Pid)),
            Q = queue:filter(fun(Item) -> element(3, Item) =/= Pid end, S#s.queue),
            S1 = lists:foldl(fun cancel/2, S#s{queue = Q}, py_inflight:ids_of(H, Pid)),
            S1#s{env_mons = Mons1, envs = maps:remove(Pid, S#s.envs)};
        error ->
            S#s{subscribers = maps:remove(Ref, S#s.subscribers)}
    end.

base_info(S = #s{h = H, counters = C}, FromPort) ->
    Current = case maps:get(current, FromPort, undefined) of
                  #{id := Id} = Cur ->
                      Caller = case py_inflight:lookup(H, Id) of
                                   {ok, _, Pid, _} -> Pid;
                                   error -> undefined
                               end,
                      maps:put(caller, Caller, Cur);
                  idle when S#s.kill_reason =/= undefined -> S#s.status;
                  idle -> idle;
                  undefined when S#s.status =:= ready, S#s.kill_reason =:= undefined -> idle;
                  undefined -> S#s.status;
                  Other -> Other
              end,
    Budget = py_inflight:budget(H),
    #{name => S#s.name,
      pool => maps:get(pool, S#s.opts, undefined),
      index => maps:get(index, S#s.opts, undefined),
      template => S#s.template,
      status => S#s.status,
      os_pid => S#s.os_pid,
      rss_bytes => case maps:find(rss_bytes, FromPort) of
                       {ok, R} -> R;
                       error -> py_os_process:rss_bytes(S#s.os_pid)
                   end,
      python_version => S#s.python_version,
      uptime_ms => case S#s.status of
                       down -> 0;
                       _ -> now_ms() - S#s.port_started
                   end,
      context_uptime_ms => now_ms() - S#s.created,
      calls => S#s.calls,
      errors => S#s.errors,
      restarts => S#s.restarts,
      queue_len => py_inflight:count(H) + queue:len(S#s.queue),
      envs => maps:get(envs, FromPort, map_size(S#s.envs)),
      atoms => py_term:used(Budget),
      max_atoms => py_term:limit(Budget),
      output_dropped => counters:get(C, ?C_OUTPUT_DROPPED),
      sends_dropped => counters:get(C, ?C_SENDS_DROPPED),
      current => Current}.

%% Writes a frame to the OS process. The runtime closes the port as soon as the
%% process exits, before its exit_status is handled here: a closed port is not an
%% error (the exit handling that follows answers whatever was in flight).
port_send(#s{port = Port, h = H}, Frame) when is_port(Port) ->
    py_port_writer:write(py_inflight:writer(H), Port, Frame);
port_send(_, _) ->
    closed.

cancel_timer(none) -> ok;
cancel_timer(TRef) -> _ = erlang:cancel_timer(TRef), ok.

%% Telemetry (py_telemetry): [pyport, context, start | restart | exit], with the
%% context's pid, name, pool and index, and the OS pid, in the metadata.
telemetry_event(Event, Measurements, Extra, S = #s{opts = Opts}) ->
    Meta = maps:with([pool, index], Opts),
    py_telemetry:execute([context, Event], Measurements,
                         maps:merge(Meta#{context => self(), name => S#s.name,
                                          os_pid => S#s.os_pid}, Extra)).

telemetry_exit(Reason, S) ->
    Uptime = erlang:convert_time_unit(now_ms() - S#s.port_started, millisecond, native),
    telemetry_event(exit, #{uptime => Uptime}, #{reason => Reason}, S).

%% Observer and crash reports show which context a process is: a pool's context
%% is registered as py_pool_<Pool>_<Index> (a context started with `name' is
%% registered under it by start_link/1); the label is what OTP 27's
%% proc_lib:get_label/1 reads. A name already taken is left to its holder.
label(Opts, Name) ->
    put('$process_label', {py_context, Name}),
    case Opts of
        #{name := _} ->
            ok;
        #{pool := Pool, index := Index} ->
            Reg = list_to_atom(lists:flatten(io_lib:format("py_pool_~ts_~b", [Pool, Index]))),
            _ = catch register(Reg, self()),
            ok;
        _ ->
            ok
    end.

%% The logger metadata of every event the context's processes log: the flat
%% `pyport_context' (its name) and `pyport', a map of its name, pool, index
%% and the OS pid of its current pyport process (once there is one).
log_metadata(Name, Opts, OsPid) ->
    Facts = maps:with([pool, index], Opts),
    Pyport = case OsPid of
                 undefined -> Facts#{context => Name};
                 _ -> Facts#{context => Name, os_pid => OsPid}
             end,
    #{pyport_context => Name, pyport => Pyport}.

context_name(#{pool := Pool, index := Index}) ->
    iolist_to_binary(io_lib:format("~ts:~b", [Pool, Index]));
context_name(#{label := Label}) ->
    iolist_to_binary(io_lib:format("~0p", [Label]));
context_name(#{name := Name}) ->
    iolist_to_binary(io_lib:format("~0p", [Name]));
context_name(_) ->
    iolist_to_binary(pid_to_list(self())).

now_ms() -> erlang:monotonic_time(millisecond).
