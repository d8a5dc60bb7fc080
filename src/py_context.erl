%% @doc One Python context: a gen_server that owns one pyport OS process (a port)
%% and keeps it running. The pid is the context's stable handle: when the OS
%% process dies (segfault, kill, memory limit) the context answers the requests in
%% flight with `{error, {context_died, Reason}}' and starts a new one with backoff.
%%
%% Requests do not pass through this process on their way in (see py_request);
%% it routes what the port sends back: answers to their callers' aliases (undecoded
%% bodies, the caller decodes), callbacks to the waiting caller, stream items to
%% their owner, output to the caller's group leader, Python log records to logger.
%% It also owns the lifecycle: start, setup, graceful restart, kill, backoff, and
%% the limits (max_calls, max_memory, kill_after).
-module(py_context).
-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

%% Public API
-export([start_link/1, start_link/2, child_spec/1, new/1, stop/1, destroy/1,
         call/4, call/5, call/6, eval/2, eval/3, eval/4, exec/2, exec/3,
         info/1, interrupt/1, kill/1, restart/1, monitor/1, demonitor/2,
         setup/2, default_opts/0]).

%% Used by other modules of the application
-export([call_as/7, eval_as/5, exec_as/4, stream_cancel/2]).

%% gen_server
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([context/0, options/0]).

-type context() :: pid().
-type options() :: map().

%% How long a new OS process may take to say `ready' and finish its setup.
-define(START_TIMEOUT, 30000).
%% How often RSS is compared with max_memory when a limit is set.
-define(MEMORY_CHECK_MS, 250).
%% Grace between a timeout's exception and killing the OS process.
-define(KILL_AFTER_MS, 2000).
%% Requests in flight or queued per context before callers get `overloaded'.
-define(MAX_QUEUE, 10000).
%% How long info/1 waits for the port's loop thread to answer.
-define(INFO_TIMEOUT, 5000).
%% While a stream's owner has more than a window of messages waiting, its
%% acknowledgements are held and looked at again this much later.
-define(STREAM_RECHECK_MS, 5).

-record(s, {
    opts :: map(),
    name :: binary(),
    tab :: ets:tid(),
    port :: port() | undefined,
    os_pid :: integer() | undefined,
    gen = 0 :: non_neg_integer(),
    status = starting :: starting | ready | draining | down,
    created :: integer(),
    port_started :: integer(),
    python_version = <<>> :: binary(),
    queue = queue:new() :: queue:queue(),
    envs = #{} :: #{pid() => reference()},
    env_mons = #{} :: #{reference() => pid()},
    cancelled = #{} :: #{pos_integer() => reference()},
    internal = #{} :: #{pos_integer() => term()},
    streams = #{} :: #{pos_integer() => {non_neg_integer(), pos_integer(), pid(), boolean()}},
    subscribers = #{} :: #{reference() => pid()},
    calls = 0 :: non_neg_integer(),
    errors = 0 :: non_neg_integer(),
    restarts = 0 :: non_neg_integer(),
    port_calls = 0 :: non_neg_integer(),
    backoff = 0 :: non_neg_integer(),
    logged :: term(),
    kill_reason :: term(),
    restart_reason :: term(),
    drain_reason :: term(),
    recycle_when_idle :: term()
}).

%%% ===========================================================================
%%% API
%%% ===========================================================================

%% @doc The options every context starts from (see docs/operations.md).
-spec default_opts() -> options().
default_opts() ->
    #{call_timeout => 30000,
      kill_after => ?KILL_AFTER_MS,
      max_queue => ?MAX_QUEUE,
      max_calls => infinity,
      max_memory => infinity,
      max_frame => 256 * 1024 * 1024,
      max_depth => 1000,
      max_nesting => 200,
      python_path => [],
      env => [],
      preload => undefined,
      venv => undefined,
      restart => py_os_process:default_restart()}.

%% @doc Starts a context linked to the caller; returns once Python is ready and
%% set up. Options: see docs/operations.md (`name' registers the pid locally).
-spec start_link(options()) -> {ok, context()} | {error, term()}.
start_link(Opts) when is_map(Opts) ->
    case maps:find(name, Opts) of
        {ok, Name} when is_atom(Name) -> gen_server:start_link({local, Name}, ?MODULE, Opts, []);
        _ -> gen_server:start_link(?MODULE, Opts, [])
    end.

%% @doc erlang_python compatible form: `Id' labels the context, `Mode' is ignored
%% (every pyport context is its own process).
-spec start_link(term(), atom()) -> {ok, context()} | {error, term()}.
start_link(Id, _Mode) ->
    start_link(#{label => Id}).

%% @doc A child spec, so a context drops into any supervision tree.
-spec child_spec(options()) -> supervisor:child_spec().
child_spec(Opts) ->
    #{id => maps:get(id, Opts, py_context),
      start => {?MODULE, start_link, [Opts]},
      restart => permanent,
      shutdown => 5000,
      type => worker,
      modules => [?MODULE]}.

%% @doc Starts a context outside any pool (linked to the caller).
-spec new(options()) -> {ok, context()} | {error, term()}.
new(Opts) -> start_link(Opts).

%% @doc Stops a context; its OS process exits.
-spec stop(context()) -> ok.
stop(Ctx) -> gen_server:stop(Ctx).

%% @doc Same as stop/1.
-spec destroy(context()) -> ok.
destroy(Ctx) -> stop(Ctx).

%% @doc Calls `Module.Function(*Args)' in the caller's environment on `Ctx'.
-spec call(context(), term(), term(), list()) -> {ok, term()} | {error, term()}.
call(Ctx, M, F, Args) -> call(Ctx, M, F, Args, #{}, infinity).

%% @doc As call/4 with keyword arguments.
-spec call(context(), term(), term(), list(), map()) -> {ok, term()} | {error, term()}.
call(Ctx, M, F, Args, Kwargs) -> call(Ctx, M, F, Args, Kwargs, infinity).

%% @doc As call/5 with a timeout in milliseconds (or `infinity').
-spec call(context(), term(), term(), list(), map(), timeout()) ->
    {ok, term()} | {error, term()}.
call(Ctx, M, F, Args, Kwargs, Timeout) ->
    call_as(Ctx, self(), M, F, Args, Kwargs, Timeout).

%% @doc As call/6 in the environment of `EnvPid' (py:cast/spawn_call run a
%% request for their caller from another process).
-spec call_as(context(), pid(), term(), term(), list(), map(), timeout()) ->
    {ok, term()} | {error, term()}.
call_as(Ctx, EnvPid, M, F, Args, Kwargs, Timeout) ->
    case {py_protocol:name(M), py_protocol:name(F)} of
        {{error, badarg}, _} -> {error, {badarg, "module name must be an atom, binary or string"}};
        {_, {error, badarg}} -> {error, {badarg, "function name must be an atom, binary or string"}};
        _ when not is_list(Args) -> {error, {badarg, "arguments must be a list"}};
        _ when not is_map(Kwargs) -> {error, {badarg, "keyword arguments must be a map"}};
        {Mod, Fun} ->
            py_request:run(Ctx, EnvPid,
                           fun(Id, Parent) ->
                                   py_protocol:call(Id, EnvPid, Parent, Mod, Fun, Args, Kwargs)
                           end,
                           Timeout)
    end.

%% @doc Evaluates a Python expression in the caller's environment.
-spec eval(context(), iodata()) -> {ok, term()} | {error, term()}.
eval(Ctx, Code) -> eval(Ctx, Code, #{}, infinity).

%% @doc As eval/2, with `Locals' bound for this evaluation only.
-spec eval(context(), iodata(), map()) -> {ok, term()} | {error, term()}.
eval(Ctx, Code, Locals) -> eval(Ctx, Code, Locals, infinity).

%% @doc As eval/3 with a timeout.
-spec eval(context(), iodata(), map(), timeout()) -> {ok, term()} | {error, term()}.
eval(Ctx, Code, Locals, Timeout) -> eval_as(Ctx, self(), Code, Locals, Timeout).

%% @doc As eval/4 in the environment of `EnvPid'.
-spec eval_as(context(), pid(), iodata(), map(), timeout()) -> {ok, term()} | {error, term()}.
eval_as(Ctx, EnvPid, Code, Locals, Timeout) ->
    case {py_protocol:code(Code), py_protocol:locals(Locals)} of
        {{error, badarg}, _} -> {error, {badarg, "code must be a binary, string or iolist"}};
        {_, {error, badarg}} -> {error, {badarg, "locals must be a map"}};
        {Bin, Map} ->
            py_request:run(Ctx, EnvPid,
                           fun(Id, Parent) -> py_protocol:eval(Id, EnvPid, Parent, Bin, Map) end,
                           Timeout)
    end.

%% @doc Executes Python statements in the caller's environment.
-spec exec(context(), iodata()) -> ok | {error, term()}.
exec(Ctx, Code) -> exec(Ctx, Code, infinity).

%% @doc As exec/2 with a timeout.
-spec exec(context(), iodata(), timeout()) -> ok | {error, term()}.
exec(Ctx, Code, Timeout) -> exec_as(Ctx, self(), Code, Timeout).

%% @doc As exec/3 in the environment of `EnvPid'.
-spec exec_as(context(), pid(), iodata(), timeout()) -> ok | {error, term()}.
exec_as(Ctx, EnvPid, Code, Timeout) ->
    case py_protocol:code(Code) of
        {error, badarg} ->
            {error, {badarg, "code must be a binary, string or iolist"}};
        Bin ->
            case py_request:run(Ctx, EnvPid,
                                fun(Id, Parent) -> py_protocol:exec(Id, EnvPid, Parent, Bin) end,
                                Timeout) of
                {ok, _} -> ok;
                Error -> Error
            end
    end.

%% @doc What the context is doing: OS pid, RSS, Python version, uptime, counters,
%% queue length, environments and the request running now (or `idle').
-spec info(context()) -> map().
info(Ctx) -> gen_server:call(Ctx, info, ?INFO_TIMEOUT + 1000).

%% @doc Raises KeyboardInterrupt in the Python code running now, if any.
-spec interrupt(context()) -> ok.
interrupt(Ctx) -> gen_server:call(Ctx, interrupt).

%% @doc Kills the OS process at once (SIGKILL); the context starts a new one.
-spec kill(context()) -> ok.
kill(Ctx) -> gen_server:call(Ctx, kill).

%% @doc Restarts the OS process gracefully: requests already sent are answered by
%% the old process, requests arriving meanwhile by the new one; none is lost.
-spec restart(context()) -> ok.
restart(Ctx) -> gen_server:call(Ctx, restart).

%% @doc Subscribes the caller to `{py_context, Ctx, restarted, Reason}' messages,
%% sent each time the context has a new OS process (its Python state is fresh).
-spec monitor(context()) -> reference().
monitor(Ctx) -> gen_server:call(Ctx, {subscribe, self()}).

%% @doc Cancels a monitor/1 subscription.
-spec demonitor(context(), reference()) -> ok.
demonitor(Ctx, Ref) -> gen_server:call(Ctx, {unsubscribe, Ref}).

%% @doc Changes settings of the running context and of its future OS processes:
%% `venv' (a path, or `none' to deactivate), `logging' (a Python level number, or
%% `none'). Returns what Python answered.
-spec setup(context(), map()) -> {ok, term()} | {error, term()}.
setup(Ctx, Settings) -> gen_server:call(Ctx, {setup, Settings}, ?START_TIMEOUT).

%% @private Stops stream `Id': after this returns, the context sends nothing more
%% for it.
-spec stream_cancel(context(), pos_integer()) -> ok.
stream_cancel(Ctx, Id) -> gen_server:call(Ctx, {stream_cancel, Id}).

%%% ===========================================================================
%%% gen_server
%%% ===========================================================================

%% @private
init(Opts0) ->
    process_flag(trap_exit, true),
    Opts = maps:merge(maps:merge(default_opts(), application:get_env(pyport, context_opts, #{})),
                      Opts0),
    Name = context_name(Opts),
    Tab = ets:new(py_context_inflight, [set, public, {write_concurrency, true},
                                        {read_concurrency, true}]),
    true = ets:insert(Tab, {'$port', none, max_queue(Opts), maps:get(max_frame, Opts)}),
    persistent_term:put({?MODULE, self()}, Tab),
    S0 = #s{opts = Opts, name = Name, tab = Tab, created = now_ms()},
    case open(S0) of
        {ok, S1} ->
            case await_started(S1, erlang:monotonic_time(millisecond) + ?START_TIMEOUT) of
                {ok, S2} ->
                    notify_router(Opts),
                    {ok, schedule_memory_check(S2)};
                {error, Reason} ->
                    close_port(S1),
                    persistent_term:erase({?MODULE, self()}),
                    {stop, Reason}
            end;
        {error, Reason} ->
            persistent_term:erase({?MODULE, self()}),
            {stop, Reason}
    end.

%% @private
handle_call(info, From, S = #s{status = Status}) when Status =:= ready; Status =:= draining ->
    Id = py_request:new_id(),
    case port_send(S, py_protocol:info(Id)) of
        ok ->
            erlang:send_after(?INFO_TIMEOUT, self(), {'$py_internal_timeout', Id}),
            {noreply, S#s{internal = maps:put(Id, {info, From}, S#s.internal)}};
        closed ->
            {reply, base_info(S, #{}), S}
    end;
handle_call(info, _From, S) ->
    {reply, base_info(S, #{}), S};
handle_call(interrupt, _From, S = #s{status = ready}) ->
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
        ready -> {noreply, send_setup(Settings, {setup, From, Settings}, S)};
        _ -> {reply, {ok, pending}, S}
    end;
handle_call({stream_cancel, Id}, _From, S) ->
    {reply, ok, cancel(Id, S#s{streams = maps:remove(Id, S#s.streams)})};
handle_call(_Other, _From, S) ->
    {reply, {error, badarg}, S}.

%% @private
handle_cast(_Msg, S) ->
    {noreply, S}.

%% @private
handle_info({Port, {data, Frame}}, S = #s{port = Port}) ->
    try py_protocol:split(Frame) of
        {Header, Body} -> {noreply, frame(Header, Body, S)}
    catch
        error:badarg ->
            %% Only a port dying in the middle of a write can produce this.
            ?LOG_WARNING("pyport context ~ts: undecodable frame of ~b bytes",
                         [S#s.name, byte_size(Frame)]),
            {noreply, S}
    end;
handle_info({Port, {exit_status, Status}}, S = #s{port = Port}) ->
    {noreply, port_died(py_protocol:exit_reason(Status), S)};
handle_info({'EXIT', Port, Reason}, S = #s{port = Port}) ->
    %% The runtime closed the port without an exit status: a write found the
    %% pipe broken (the OS process had died). The status is lost with it.
    {noreply, port_died({port_closed, Reason}, S)};
handle_info({'$py_req', Id, Reply, EnvPid, GL, Frame, Deadline}, S) ->
    {noreply, accept(Id, Reply, EnvPid, GL, Frame, Deadline, S)};
handle_info({'$py_frame', Frame}, S = #s{status = Status}) ->
    (Status =:= ready orelse Status =:= draining) andalso port_send(S, Frame),
    {noreply, S};
handle_info({'$py_cancel', Id, Ack}, S) ->
    S1 = cancel(Id, S),
    Ack ! {Ack, cancel_ack},
    {noreply, S1};
handle_info({'$py_kill_after', Id, Gen}, S = #s{gen = Gen}) ->
    case maps:is_key(Id, S#s.cancelled) of
        true -> {noreply, kill_port({killed, {kill_after, Id}}, S)};
        false -> {noreply, S}
    end;
handle_info({'$py_restart', Gen}, S = #s{gen = Gen, status = down}) ->
    {noreply, start_port(S)};
handle_info({'$py_stream_ack', Id}, S) ->
    case maps:find(Id, S#s.streams) of
        {ok, {Unacked, Window, Owner, true}} ->
            {noreply, stream_ack(Id, S#s{streams = maps:put(Id, {Unacked, Window, Owner, false},
                                                          S#s.streams)})};
        _ ->
            {noreply, S}
    end;
handle_info({'$py_internal_timeout', Id}, S) ->
    case maps:take(Id, S#s.internal) of
        {{info, From}, Internal} ->
            gen_server:reply(From, base_info(S, #{current => unknown})),
            {noreply, S#s{internal = Internal}};
        _ ->
            {noreply, S}
    end;
handle_info('$py_memory_check', S) ->
    {noreply, schedule_memory_check(check_memory(S))};
handle_info({'DOWN', Ref, process, _Pid, _}, S) ->
    {noreply, down(Ref, S)};
handle_info({io_reply, _, _}, S) ->
    {noreply, S};
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
    persistent_term:erase({?MODULE, self()}),
    ok.

%%% ===========================================================================
%%% Frames from the port
%%% ===========================================================================

frame({reply, Id}, Body, S) ->
    deliver(Id, reply, Body, S);
frame({ready, _, _, _} = Ready, _, S = #s{status = starting}) ->
    ready(Ready, S);
frame({error, Id}, Body, S) ->
    deliver(Id, error, Body, S#s{errors = S#s.errors + 1});
frame({stream_data, Id}, Body, S) ->
    stream_data(Id, Body, S);
frame({callback, CbId, ReqId, Name}, Args, S) ->
    callback(CbId, ReqId, Name, Args, S);
frame({send, Dest}, Body, S) ->
    send(Dest, Body),
    S;
frame({env, Pid}, _, S = #s{envs = Envs}) ->
    case maps:is_key(Pid, Envs) of
        true ->
            S;
        false ->
            Ref = erlang:monitor(process, Pid),
            S#s{envs = maps:put(Pid, Ref, Envs), env_mons = maps:put(Ref, Pid, S#s.env_mons)}
    end;
frame({output, Id, Stream, Bytes}, _, S) ->
    output(Id, Stream, Bytes, S),
    S;
frame({log, Level, Logger, Message}, _, S) ->
    python_log(Level, Logger, Message, S),
    S;
frame(Other, _, S) ->
    ?LOG_WARNING("pyport context ~ts: unexpected frame ~0p", [S#s.name, Other]),
    S.

deliver(Id, Status, Body, S = #s{tab = Tab}) ->
    case ets:take(Tab, Id) of
        [{_, Reply, _, _}] ->
            answer(Reply, Status, Body),
            S1 = case Reply of
                     {stream, _, _, _} -> S#s{streams = maps:remove(Id, S#s.streams)};
                     _ -> S
                 end,
            after_reply(S1#s{calls = S#s.calls + 1, port_calls = S#s.port_calls + 1});
        [] ->
            internal_reply(Id, Status, Body, S)
    end.

%% Answers a request's caller (its alias), or ends a stream at its owner.
answer(Mref, Status, Payload) when is_reference(Mref) ->
    Mref ! {Mref, Status, Payload};
answer({stream, Owner, Ref, _}, reply, _) ->
    Owner ! {py_stream, Ref, done},
    stream_ended(Ref);
answer({stream, Owner, Ref, _}, error, Body) ->
    {{error, Reason}, _} = py_protocol:error_result(binary_to_term(Body)),
    Owner ! {py_stream, Ref, {error, Reason}},
    stream_ended(Ref);
answer({stream, Owner, Ref, _}, died, Reason) ->
    Owner ! {py_stream, Ref, {error, {context_died, Reason}}},
    stream_ended(Ref);
answer({stream, Owner, Ref, _}, failed, Reason) ->
    Owner ! {py_stream, Ref, {error, Reason}},
    stream_ended(Ref).

stream_ended(Ref) ->
    catch ets:delete(py_stream:table(), Ref),
    ok.

%% A stream item goes to its owner. Credit goes back to the port only for items
%% the owner has taken from its mailbox (delivered, minus what still waits
%% there), so a consumer that stops reading stops the generator within a window;
%% while the owner lags, the context looks again every ?STREAM_RECHECK_MS.
stream_data(Id, Body, S = #s{tab = Tab}) ->
    case ets:lookup(Tab, Id) of
        [{_, {stream, Owner, Ref, Window}, _, _}] ->
            Owner ! {py_stream, Ref, {data, binary_to_term(Body)}},
            {Unacked, _, _, Pending} = maps:get(Id, S#s.streams, {0, Window, Owner, false}),
            S1 = S#s{streams = maps:put(Id, {Unacked + 1, Window, Owner, Pending}, S#s.streams)},
            case Unacked + 1 >= max(1, Window div 2) andalso not Pending of
                true -> stream_ack(Id, S1);
                false -> S1
            end;
        _ ->
            S
    end.

stream_ack(Id, S) ->
    {Unacked, Window, Owner, _} = maps:get(Id, S#s.streams),
    Credit = Unacked - min(Unacked, waiting(Owner)),
    Credit > 0 andalso port_send(S, py_protocol:stream_ack(Id, Credit)),
    Left = Unacked - Credit,
    Pending = Left > 0,
    Pending andalso erlang:send_after(?STREAM_RECHECK_MS, self(), {'$py_stream_ack', Id}),
    S#s{streams = maps:put(Id, {Left, Window, Owner, Pending}, S#s.streams)}.

%% Messages waiting in a local owner's mailbox (a remote owner's are not known:
%% its credit comes back as items are delivered).
waiting(Owner) when node(Owner) =:= node() ->
    case erlang:process_info(Owner, message_queue_len) of
        {message_queue_len, Len} -> Len;
        undefined -> 0
    end;
waiting(_) ->
    0.

%% A callback runs in the process waiting for the request that made it; if
%% nobody waits (a Python thread, a cancelled request), in a new process.
callback(CbId, ReqId, Name, Args, S = #s{tab = Tab}) ->
    case ets:lookup(Tab, ReqId) of
        [{_, Mref, _, _}] when is_reference(Mref) ->
            Mref ! {Mref, callback, CbId, Name, Args};
        _ ->
            case maps:is_key(ReqId, S#s.cancelled) of
                true ->
                    port_send(S, py_protocol:callback_reply(CbId, error, {error, cancelled}));
                false ->
                    py_callback:spawn_handler(self(), CbId, Name, Args)
            end
    end,
    S.

send(Dest, Body) ->
    Msg = binary_to_term(Body),
    try
        case Dest of
            Pid when is_pid(Pid) -> Pid ! Msg;
            Name when is_binary(Name) -> binary_to_existing_atom(Name, utf8) ! Msg
        end
    catch
        error:badarg -> ok  % no such registered name: like `!', the message is lost
    end.

internal_reply(Id, Status, Body, S) ->
    case maps:take(Id, S#s.internal) of
        {{info, From}, Internal} ->
            FromPort = case Status of
                           reply -> binary_to_term(Body);
                           error -> #{}
                       end,
            gen_server:reply(From, base_info(S, FromPort)),
            S#s{internal = Internal};
        {{setup, From, Settings}, Internal} ->
            Result = setup_result(Status, Body),
            gen_server:reply(From, Result),
            Opts = case Result of
                       {ok, _} -> maps:merge(S#s.opts, maps:with([venv, logging], Settings));
                       {error, _} -> S#s.opts
                   end,
            S#s{internal = Internal, opts = Opts};
        {start_setup, Internal} ->
            setup_done(setup_result(Status, Body), S#s{internal = Internal});
        error ->
            %% The answer to a request whose caller gave up: the Python work has
            %% stopped, so no kill is needed.
            case maps:take(Id, S#s.cancelled) of
                {TRef, Cancelled} ->
                    erlang:cancel_timer(TRef),
                    S1 = S#s{cancelled = Cancelled, port_calls = S#s.port_calls + 1},
                    after_reply(open_gate(S1));
                error ->
                    S
            end
    end.

setup_result(reply, Body) -> {ok, binary_to_term(Body)};
setup_result(error, Body) -> element(1, py_protocol:error_result(binary_to_term(Body))).

after_reply(S = #s{status = draining}) ->
    maybe_finish_drain(S);
after_reply(S = #s{opts = #{max_calls := Max}, port_calls = N}) when is_integer(Max), N >= Max ->
    begin_drain(max_calls, S);
after_reply(S = #s{recycle_when_idle = Why}) when Why =/= undefined ->
    case in_flight(S) of
        0 -> begin_drain(Why, S#s{recycle_when_idle = undefined});
        _ -> S
    end;
after_reply(S) ->
    S.

output(Id, Stream, Bytes, S = #s{tab = Tab}) ->
    GL = case Id of
             0 -> undefined;
             _ ->
                 case ets:lookup(Tab, Id) of
                     [{_, _, _, G}] -> G;
                     [] -> undefined
                 end
         end,
    case GL of
        undefined ->
            ?LOG_NOTICE("pyport context ~ts ~ts: ~ts",
                        [S#s.name, Stream, printable(Bytes)], #{pyport_context => S#s.name});
        _ ->
            GL ! {io_request, self(), make_ref(), {put_chars, unicode, printable(Bytes)}}
    end.

printable(Bytes) ->
    case unicode:characters_to_binary(Bytes) of
        B when is_binary(B) -> B;
        _ -> unicode:characters_to_binary(Bytes, latin1)
    end.

python_log(Level, Logger, Message, S) ->
    %% No `domain': the default handler only passes events without one (or OTP's).
    logger:log(logger_level(Level), "~ts: ~ts", [Logger, Message],
               #{python_logger => Logger, pyport_context => S#s.name}).

logger_level(L) when L >= 50 -> critical;
logger_level(L) when L >= 40 -> error;
logger_level(L) when L >= 30 -> warning;
logger_level(L) when L >= 20 -> info;
logger_level(_) -> debug.

%%% ===========================================================================
%%% Requests that pass through the context process
%%% ===========================================================================

accept(Id, Reply, EnvPid, GL, Frame, Deadline, S = #s{opts = Opts}) ->
    Size = byte_size(Frame),
    MaxFrame = maps:get(max_frame, Opts),
    MaxQueue = max_queue(Opts),
    Len = in_flight(S) + queue:len(S#s.queue),
    if
        Size > MaxFrame ->
            answer(Reply, failed, {too_large, Size, MaxFrame}),
            S;
        Len >= MaxQueue ->
            answer(Reply, failed, {overloaded, Len, MaxQueue}),
            S;
        S#s.status =:= ready, map_size(S#s.cancelled) =:= 0 ->
            write(Id, Reply, EnvPid, GL, Frame, S),
            S;
        true ->
            S#s{queue = queue:in({Id, Reply, EnvPid, GL, Frame, Deadline}, S#s.queue)}
    end.

%% If the port is closing, the entry stays: the death sweep answers it.
write(Id, Reply, EnvPid, GL, Frame, S = #s{tab = Tab}) ->
    true = ets:insert(Tab, {Id, Reply, EnvPid, GL}),
    port_send(S, Frame).

%% Sends what queued while there was no port, dropping requests whose caller
%% has given up (they must never run).
flush_queue(S = #s{queue = Q}) ->
    Now = erlang:monotonic_time(millisecond),
    lists:foreach(
      fun({Id, Reply, EnvPid, GL, Frame, Deadline}) ->
              case Deadline =:= infinity orelse Deadline > Now of
                  true -> write(Id, Reply, EnvPid, GL, Frame, S);
                  false -> ok
              end
      end, queue:to_list(Q)),
    S#s{queue = queue:new()}.

%% A caller gave up: drop its request if it never reached the port, else ask
%% the port to stop it, and kill the OS process if it has not within kill_after.
cancel(Id, S = #s{tab = Tab, opts = Opts}) ->
    Q = queue:filter(fun(Item) -> element(1, Item) =/= Id end, S#s.queue),
    case queue:len(Q) =/= queue:len(S#s.queue) of
        true ->
            S#s{queue = Q};
        false ->
            case ets:take(Tab, Id) of
                [_] when is_port(S#s.port) ->
                    port_send(S, py_protocol:cancel(Id)),
                    TRef = erlang:send_after(maps:get(kill_after, Opts), self(),
                                             {'$py_kill_after', Id, S#s.gen}),
                    S1 = S#s{cancelled = maps:put(Id, TRef, S#s.cancelled)},
                    maybe_finish_drain(close_gate(S1));
                _ ->
                    S
            end
    end.

%%% ===========================================================================
%%% The OS process
%%% ===========================================================================

open(S = #s{opts = Opts, name = Name}) ->
    case py_os_process:open(Name, Opts) of
        {ok, Port} ->
            {ok, S#s{port = Port, os_pid = undefined, gen = S#s.gen + 1, status = starting,
                     port_started = now_ms(), port_calls = 0, kill_reason = undefined}};
        Error ->
            Error
    end.

%% Blocks until the new OS process is ready and set up (init only): the frames
%% are handled as they would be later, and other messages wait in the mailbox.
await_started(S = #s{port = Port}, Deadline) ->
    receive
        {Port, {data, Frame}} ->
            {Header, Body} = py_protocol:split(Frame),
            S1 = frame(Header, Body, S),
            case S1#s.status of
                ready -> {ok, S1};
                down -> {error, {python_failed_to_start, S1#s.restart_reason}};
                _ -> await_started(S1, Deadline)
            end;
        {Port, {exit_status, Status}} ->
            {error, {python_failed_to_start, py_protocol:exit_reason(Status)}}
    after max(0, Deadline - erlang:monotonic_time(millisecond)) ->
        {error, {python_failed_to_start, timeout}}
    end.

%% The OS process said ready: send its setup; requests wait until it is done.
ready({ready, Version, PyVersion, OsPid}, S = #s{opts = Opts}) ->
    Version =:= py_protocol:version() orelse
        ?LOG_WARNING("pyport context ~ts: port speaks protocol ~p, expected ~p",
                     [S#s.name, Version, py_protocol:version()]),
    %% The context's own options win; settings recorded for its pool at run time
    %% (py:activate_venv/2, py:configure_logging/1) fill in the rest. A setting
    %% applied to this running context is in its options too (handle_call setup).
    Own = maps:filter(fun(_, V) -> V =/= undefined end, maps:with([venv, logging], Opts)),
    Settings = maps:map(fun(venv, V) when V =/= none -> py_protocol:code(V); (_, V) -> V end,
                        maps:merge(py_context_router:settings(maps:get(pool, Opts, undefined)), Own)),
    Preload = case maps:get(preload, Opts) of
                  undefined -> #{};
                  Code -> #{preload => py_protocol:code(Code)}
              end,
    send_setup(maps:merge(Settings#{context => self()}, Preload), start_setup,
               S#s{os_pid = OsPid, python_version = PyVersion}).

send_setup(Settings, Why, S) ->
    Id = py_request:new_id(),
    Clean = maps:map(fun(_, undefined) -> none; (_, V) -> V end, Settings),
    port_send(S, py_protocol:setup(Id, Clean)),
    S#s{internal = maps:put(Id, Why, S#s.internal)}.

setup_done({ok, _}, S) ->
    S1 = open_gate(S#s{status = ready}),
    case S#s.restart_reason of
        undefined -> ok;
        Reason -> maps:foreach(fun(_, Pid) -> Pid ! {py_context, self(), restarted, Reason} end,
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
%% it held, and start a new one (at once, or with backoff in a crash loop).
port_died(Exit, S = #s{tab = Tab}) ->
    {Reason, Uptime} = case S#s.kill_reason of
                           %% A deliberate kill is not a crash loop: restart at once.
                           undefined -> {Exit, now_ms() - S#s.port_started};
                           Killed -> {Killed, infinity}
                       end,
    true = ets:insert(Tab, {'$port', none, max_queue(S#s.opts), maps:get(max_frame, S#s.opts)}),
    sweep(Tab, Reason),
    S1 = forget_port(S),
    schedule_restart(Reason, Uptime, S1#s{restarts = S#s.restarts + 1}).

sweep(Tab, Reason) ->
    Ids = ets:select(Tab, [{{'$1', '_', '_', '_'}, [{is_integer, '$1'}], ['$1']}]),
    lists:foreach(
      fun(Id) ->
              case ets:take(Tab, Id) of
                  [{_, Reply, _, _}] -> answer(Reply, died, Reason);
                  [] -> ok
              end
      end, Ids).

forget_port(S) ->
    maps:foreach(fun(_, TRef) -> erlang:cancel_timer(TRef) end, S#s.cancelled),
    maps:foreach(fun(_, {info, From}) -> gen_server:reply(From, base_info(S, #{}));
                    (_, {setup, From, _}) -> gen_server:reply(From, {error, context_restarted});
                    (_, _) -> ok
                 end, S#s.internal),
    maps:foreach(fun(Ref, _) -> erlang:demonitor(Ref, [flush]) end, S#s.env_mons),
    S#s{port = undefined, os_pid = undefined, status = down, cancelled = #{}, internal = #{},
        streams = #{}, envs = #{}, env_mons = #{}, drain_reason = undefined,
        recycle_when_idle = undefined}.

schedule_restart(Reason, Uptime, S = #s{opts = Opts}) ->
    Backoff = py_os_process:backoff(Uptime, S#s.backoff, maps:get(restart, Opts)),
    %% Logged once per change of reason, not once per attempt of a crash loop.
    Logged = Reason,
    case Logged =:= S#s.logged of
        true -> ok;
        false when Backoff =:= 0 ->
            ?LOG_WARNING("pyport context ~ts: OS process died (~0p); restarting",
                         [S#s.name, Reason]);
        false ->
            ?LOG_WARNING("pyport context ~ts: OS process died (~0p) after ~b ms; "
                         "restarting in ~b ms", [S#s.name, Reason, Uptime, Backoff])
    end,
    S1 = S#s{backoff = Backoff, logged = Logged, restart_reason = Reason},
    case Backoff of
        0 -> start_port(S1);
        _ -> erlang:send_after(Backoff, self(), {'$py_restart', S1#s.gen}), S1
    end.

kill_port(Why, S = #s{os_pid = OsPid}) when is_integer(OsPid) ->
    ok = py_os_process:kill(OsPid),
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
begin_drain(Why, S = #s{status = ready, tab = Tab, opts = Opts}) ->
    true = ets:insert(Tab, {'$port', none, max_queue(Opts), maps:get(max_frame, Opts)}),
    maybe_finish_drain(S#s{status = draining, drain_reason = Why});
begin_drain(_, S) ->
    S.

maybe_finish_drain(S = #s{status = draining}) ->
    case in_flight(S) =:= 0 andalso map_size(S#s.cancelled) =:= 0 of
        true ->
            close_port(S),
            Why = S#s.drain_reason,
            S1 = forget_port(S),
            start_port(S1#s{restarts = S#s.restarts + 1, restart_reason = Why, backoff = 0});
        false ->
            S
    end;
maybe_finish_drain(S) ->
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
            case in_flight(S) of
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

down(Ref, S = #s{env_mons = Mons}) ->
    case maps:take(Ref, Mons) of
        {Pid, Mons1} ->
            case S#s.status of
                Status when Status =:= ready; Status =:= draining ->
                    port_send(S, py_protocol:drop_env(Pid));
                _ ->
                    ok
            end,
            %% Nobody will read the streams of a dead owner: stop their generators.
            Owned = ets:select(S#s.tab, [{{'$1', {stream, Pid, '_', '_'}, '_', '_'}, [], ['$1']}]),
            S1 = lists:foldl(fun(Id, Acc) -> cancel(Id, Acc#s{streams = maps:remove(Id, Acc#s.streams)})
                             end, S, Owned),
            S1#s{env_mons = Mons1, envs = maps:remove(Pid, S#s.envs)};
        error ->
            S#s{subscribers = maps:remove(Ref, S#s.subscribers)}
    end.

base_info(S = #s{tab = Tab}, FromPort) ->
    Current = case maps:get(current, FromPort, undefined) of
                  #{id := Id} = C ->
                      Caller = case ets:lookup(Tab, Id) of
                                   [{_, _, Pid, _}] -> Pid;
                                   [] -> undefined
                               end,
                      maps:put(caller, Caller, C);
                  idle -> idle;
                  undefined when S#s.status =:= ready -> idle;
                  undefined -> S#s.status;
                  Other -> Other
              end,
    #{name => S#s.name,
      pool => maps:get(pool, S#s.opts, undefined),
      index => maps:get(index, S#s.opts, undefined),
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
      queue_len => in_flight(S) + queue:len(S#s.queue),
      envs => maps:get(envs, FromPort, map_size(S#s.envs)),
      current => Current}.

%% The gate: callers write straight to the port only while it is open (ready, and
%% no cancelled request still running there: new requests wait in the context
%% until it answers or is killed, so they are never written to an OS process
%% that is about to be killed).
open_gate(S = #s{status = ready, cancelled = C, tab = Tab, opts = Opts}) when map_size(C) =:= 0 ->
    true = ets:insert(Tab, {'$port', S#s.port, max_queue(Opts), maps:get(max_frame, Opts)}),
    flush_queue(S);
open_gate(S) ->
    S.

close_gate(S = #s{tab = Tab, opts = Opts}) ->
    true = ets:insert(Tab, {'$port', none, max_queue(Opts), maps:get(max_frame, Opts)}),
    S.

%% Writes a frame to the OS process. The runtime closes the port as soon as the
%% process exits, before its exit_status is handled here: a closed port is not an
%% error (the exit handling that follows answers whatever was in flight).
port_send(#s{port = Port}, Frame) when is_port(Port) ->
    try erlang:port_command(Port, Frame) of
        true -> ok
    catch
        error:badarg -> closed
    end;
port_send(_, _) ->
    closed.

in_flight(#s{tab = Tab}) ->
    ets:info(Tab, size) - 1.

max_queue(Opts) ->
    case maps:get(max_queue, Opts) of
        infinity -> 1 bsl 60;
        N -> N
    end.

notify_router(#{pool := Pool, index := Index}) ->
    py_context_router:context_up(Pool, Index, self());
notify_router(_) ->
    ok.

context_name(#{pool := Pool, index := Index}) ->
    iolist_to_binary(io_lib:format("~ts:~b", [Pool, Index]));
context_name(#{label := Label}) ->
    iolist_to_binary(io_lib:format("~0p", [Label]));
context_name(#{name := Name}) ->
    iolist_to_binary(io_lib:format("~0p", [Name]));
context_name(_) ->
    iolist_to_binary(pid_to_list(self())).

now_ms() -> erlang:monotonic_time(millisecond).

