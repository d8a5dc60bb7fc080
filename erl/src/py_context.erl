%% @doc One Python context: a gen_server that owns one pyport OS process (a port)
%% and keeps it running. The pid is the context's stable handle: when the OS
%% process dies (segfault, kill, memory limit) the context answers the calls in
%% flight with `{error, {context_died, Reason}}' and starts a new one with backoff.
%%
%% Request path: a caller on this node writes its request frame straight to the
%% port (`erlang:port_command/2' works from any local process) after recording it
%% in the context's in-flight ETS table; only the reply passes through the context
%% process, which routes it by request id to the caller's alias. Callers on other
%% nodes, and callers that find no port (restarting), send the request to the
%% context process instead. Replies are decoded by the caller, not here.
%%
%% Threading: the state is owned by the gen_server; the in-flight table is public,
%% and an entry is removed by exactly one party (the reply, the death sweep, a
%% cancel, or a caller whose write failed), which is what makes every request get
%% exactly one answer.
-module(py_context).
-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

%% Public API
-export([start_link/1, start_link/2, child_spec/1, new/1, stop/1, destroy/1,
         call/4, call/5, call/6, eval/2, eval/3, eval/4, exec/2, exec/3,
         info/1, interrupt/1, kill/1, restart/1, monitor/1, demonitor/2,
         default_opts/0]).

%% Used by py and the other modules of the application
-export([request/4, new_request_id/0]).

%% gen_server
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([context/0, options/0]).

-type context() :: pid().
-type options() :: map().

%% How long a new OS process may take to say `ready'.
-define(START_TIMEOUT, 30000).
%% How often RSS is compared with max_memory when a limit is set.
-define(MEMORY_CHECK_MS, 250).
%% A port that lived at least this long restarts at once; a shorter life is a
%% crash loop and backs off.
-define(STABLE_MS, 1000).
%% First and last backoff delay of a crash loop.
-define(BACKOFF_MIN_MS, 100).
-define(BACKOFF_MAX_MS, 10000).
%% Grace between a timeout's exception and killing the OS process.
-define(KILL_AFTER_MS, 2000).
%% Requests in flight or queued per context before callers get `overloaded'.
-define(MAX_QUEUE, 10000).
%% How long info/1 waits for the port's loop thread to answer.
-define(INFO_TIMEOUT, 5000).

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
    internal = #{} :: #{pos_integer() => {info, gen_server:from()}},
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
      python_path => [],
      env => [],
      restart => #{min => ?BACKOFF_MIN_MS, max => ?BACKOFF_MAX_MS, stable => ?STABLE_MS}}.

%% @doc Starts a context linked to the caller; returns once Python is ready.
%% Options: see docs/operations.md (`name' registers the pid locally).
-spec start_link(options()) -> {ok, context()} | {error, term()}.
start_link(Opts) when is_map(Opts) ->
    case maps:find(name, Opts) of
        {ok, Name} when is_atom(Name) -> gen_server:start_link({local, Name}, ?MODULE, Opts, []);
        _ -> gen_server:start_link(?MODULE, Opts, [])
    end.

%% @doc erlang_python compatible form: `Id' names the context, `Mode' is ignored
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
    case {py_protocol:name(M), py_protocol:name(F)} of
        {{error, badarg}, _} -> {error, {badarg, "module name must be an atom, binary or string"}};
        {_, {error, badarg}} -> {error, {badarg, "function name must be an atom, binary or string"}};
        _ when not is_list(Args) -> {error, {badarg, "arguments must be a list"}};
        _ when not is_map(Kwargs) -> {error, {badarg, "keyword arguments must be a map"}};
        {Mod, Fun} ->
            Id = new_request_id(),
            request(Ctx, Id, py_protocol:call(Id, self(), Mod, Fun, Args, Kwargs), Timeout)
    end.

%% @doc Evaluates a Python expression in the caller's environment.
-spec eval(context(), iodata()) -> {ok, term()} | {error, term()}.
eval(Ctx, Code) -> eval(Ctx, Code, #{}, infinity).

%% @doc As eval/2, with `Locals' bound for this evaluation only.
-spec eval(context(), iodata(), map()) -> {ok, term()} | {error, term()}.
eval(Ctx, Code, Locals) -> eval(Ctx, Code, Locals, infinity).

%% @doc As eval/3 with a timeout.
-spec eval(context(), iodata(), map(), timeout()) -> {ok, term()} | {error, term()}.
eval(Ctx, Code, Locals, Timeout) ->
    case {py_protocol:code(Code), py_protocol:locals(Locals)} of
        {{error, badarg}, _} -> {error, {badarg, "code must be a binary, string or iolist"}};
        {_, {error, badarg}} -> {error, {badarg, "locals must be a map"}};
        {Bin, Map} ->
            Id = new_request_id(),
            request(Ctx, Id, py_protocol:eval(Id, self(), Bin, Map), Timeout)
    end.

%% @doc Executes Python statements in the caller's environment.
-spec exec(context(), iodata()) -> ok | {error, term()}.
exec(Ctx, Code) -> exec(Ctx, Code, infinity).

%% @doc As exec/2 with a timeout.
-spec exec(context(), iodata(), timeout()) -> ok | {error, term()}.
exec(Ctx, Code, Timeout) ->
    case py_protocol:code(Code) of
        {error, badarg} -> {error, {badarg, "code must be a binary, string or iolist"}};
        Bin ->
            Id = new_request_id(),
            case request(Ctx, Id, py_protocol:exec(Id, self(), Bin), Timeout) of
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

%%% ===========================================================================
%%% The request path (runs in the caller)
%%% ===========================================================================

%% @doc A fresh request id.
-spec new_request_id() -> pos_integer().
new_request_id() -> erlang:unique_integer([positive]).

%% @doc Sends request frame `Frame' (built with id `Id' and the caller's pid) and
%% waits for its answer. Handles Python exceptions (keeping the traceback for
%% py:last_error/0), timeouts (the Python work is cancelled; no late reply can
%% arrive) and the death of the context.
-spec request(context(), pos_integer(), binary(), timeout()) -> {ok, term()} | {error, term()}.
request(Ctx, Id, Frame, Timeout) when is_pid(Ctx) ->
    Mref = erlang:monitor(process, Ctx, [{alias, demonitor}]),
    Deadline = deadline(Timeout),
    case send_request(Ctx, Id, Mref, Frame, Deadline) of
        ok ->
            wait(Ctx, Id, Mref, Timeout);
        {error, _} = Error ->
            erlang:demonitor(Mref, [flush]),
            Error
    end;
request(_, _, _, _) ->
    {error, {badarg, "a context must be a pid"}}.

deadline(infinity) -> infinity;
deadline(T) -> erlang:monotonic_time(millisecond) + T.

send_request(Ctx, Id, Mref, Frame, Deadline) when node(Ctx) =:= node() ->
    case persistent_term:get({?MODULE, Ctx}, undefined) of
        undefined ->
            via_context(Ctx, Id, Mref, Frame, Deadline);
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
                            direct(Ctx, Tab, Port, Id, Mref, Frame, Deadline);
                        true ->
                            via_context(Ctx, Id, Mref, Frame, Deadline)
                    end
            catch
                error:badarg -> via_context(Ctx, Id, Mref, Frame, Deadline)
            end
    end;
send_request(Ctx, Id, Mref, Frame, Deadline) ->
    via_context(Ctx, Id, Mref, Frame, Deadline).

direct(Ctx, Tab, Port, Id, Mref, Frame, Deadline) ->
    true = ets:insert(Tab, {Id, Mref, self(), group_leader()}),
    try erlang:port_command(Port, Frame) of
        true -> ok
    catch
        error:badarg ->
            %% The port closed under us. If the entry is still ours nobody will
            %% answer it: hand the request to the context. Otherwise the death
            %% sweep took it and its answer is on the way.
            case ets:take(Tab, Id) of
                [_] -> via_context(Ctx, Id, Mref, Frame, Deadline);
                [] -> ok
            end
    end.

via_context(Ctx, Id, Mref, Frame, Deadline) ->
    Ctx ! {'$py_req', Id, Mref, self(), group_leader(), Frame, Deadline},
    ok.

wait(Ctx, Id, Mref, Timeout) ->
    receive
        {Mref, Status, Body} ->
            erlang:demonitor(Mref, [flush]),
            result(Status, Body);
        {'DOWN', Mref, process, _, Reason} ->
            {error, {context_died, Reason}}
    after Timeout ->
        Ctx ! {'$py_cancel', Id},
        erlang:demonitor(Mref, [flush]),
        %% The alias is now inactive: nothing sent to it can arrive any more. An
        %% answer that got in before is still taken.
        receive
            {Mref, Status, Body} -> result(Status, Body)
        after 0 ->
            {error, timeout}
        end
    end.

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

%%% ===========================================================================
%%% gen_server
%%% ===========================================================================

%% @private
init(Opts0) ->
    process_flag(trap_exit, true),
    Opts = maps:merge(default_opts(), Opts0),
    Name = context_name(Opts),
    Tab = ets:new(py_context_inflight, [set, public, {write_concurrency, true},
                                        {read_concurrency, true}]),
    true = ets:insert(Tab, {'$port', none, max_queue(Opts), maps:get(max_frame, Opts)}),
    persistent_term:put({?MODULE, self()}, Tab),
    S0 = #s{opts = Opts, name = Name, tab = Tab, created = now_ms()},
    case open(S0) of
        {ok, S1} ->
            case await_ready(S1) of
                {ok, S2} ->
                    notify_router(Opts),
                    {ok, schedule_memory_check(S2)};
                {error, Reason} ->
                    persistent_term:erase({?MODULE, self()}),
                    {stop, Reason}
            end;
        {error, Reason} ->
            persistent_term:erase({?MODULE, self()}),
            {stop, Reason}
    end.

%% @private
handle_call(info, From, S = #s{status = Status, port = Port}) when
      Status =:= ready; Status =:= draining ->
    Id = new_request_id(),
    erlang:port_command(Port, py_protocol:info(Id)),
    erlang:send_after(?INFO_TIMEOUT, self(), {'$py_info_timeout', Id}),
    {noreply, S#s{internal = maps:put(Id, {info, From}, S#s.internal)}};
handle_call(info, _From, S) ->
    {reply, base_info(S, #{}), S};
handle_call(interrupt, _From, S = #s{status = ready, port = Port}) ->
    erlang:port_command(Port, py_protocol:interrupt(keyboard)),
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
handle_call(_Other, _From, S) ->
    {reply, {error, badarg}, S}.

%% @private
handle_cast(_Msg, S) ->
    {noreply, S}.

%% @private
handle_info({Port, {data, Frame}}, S = #s{port = Port}) ->
    {Header, Body} = py_protocol:split(Frame),
    {noreply, frame(Header, Body, S)};
handle_info({Port, {exit_status, Status}}, S = #s{port = Port}) ->
    {noreply, port_died(Status, S)};
handle_info({'$py_req', Id, Mref, Caller, GL, Frame, Deadline}, S) ->
    {noreply, accept(Id, Mref, Caller, GL, Frame, Deadline, S)};
handle_info({'$py_cancel', Id}, S) ->
    {noreply, cancel(Id, S)};
handle_info({'$py_kill_after', Id, Gen}, S = #s{gen = Gen}) ->
    case maps:is_key(Id, S#s.cancelled) of
        true -> {noreply, kill_port({killed, {kill_after, Id}}, S)};
        false -> {noreply, S}
    end;
handle_info({'$py_restart', Gen}, S = #s{gen = Gen, status = down}) ->
    {noreply, start_port(S)};
handle_info({'$py_info_timeout', Id}, S) ->
    case maps:take(Id, S#s.internal) of
        {{info, From}, Internal} ->
            gen_server:reply(From, base_info(S, #{current => unknown})),
            {noreply, S#s{internal = Internal}};
        error ->
            {noreply, S}
    end;
handle_info('$py_memory_check', S) ->
    {noreply, schedule_memory_check(check_memory(S))};
handle_info({'DOWN', Ref, process, _Pid, _}, S) ->
    {noreply, down(Ref, S)};
handle_info({io_reply, _, _}, S) ->
    {noreply, S};
handle_info({'EXIT', _Port, _}, S) when is_port(_Port) ->
    {noreply, S};
handle_info({'EXIT', _Pid, Reason}, S) ->
    {stop, Reason, S};
handle_info({_OldPort, _}, S) when is_port(_OldPort) ->
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
frame({error, Id}, Body, S) ->
    deliver(Id, error, Body, S#s{errors = S#s.errors + 1});
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
frame(Other, _, S) ->
    ?LOG_WARNING("pyport context ~ts: unexpected frame ~0p", [S#s.name, Other]),
    S.

deliver(Id, Status, Body, S = #s{tab = Tab}) ->
    case ets:take(Tab, Id) of
        [{_, Mref, _, _}] ->
            Mref ! {Mref, Status, Body},
            after_reply(S#s{calls = S#s.calls + 1, port_calls = S#s.port_calls + 1});
        [] ->
            internal_reply(Id, Status, Body, S)
    end.

internal_reply(Id, Status, Body, S) ->
    case maps:take(Id, S#s.internal) of
        {{info, From}, Internal} ->
            Port = case Status of
                       reply -> binary_to_term(Body);
                       error -> #{}
                   end,
            gen_server:reply(From, base_info(S, Port)),
            S#s{internal = Internal};
        error ->
            %% The answer to a request whose caller gave up: the Python work has
            %% stopped, so no kill is needed.
            case maps:take(Id, S#s.cancelled) of
                {TRef, Cancelled} ->
                    erlang:cancel_timer(TRef),
                    after_reply(S#s{cancelled = Cancelled, port_calls = S#s.port_calls + 1});
                error ->
                    S
            end
    end.

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

%%% ===========================================================================
%%% Requests that pass through the context process
%%% ===========================================================================

accept(Id, Mref, Caller, GL, Frame, Deadline, S = #s{opts = Opts}) ->
    Size = byte_size(Frame),
    MaxFrame = maps:get(max_frame, Opts),
    MaxQueue = max_queue(Opts),
    Len = in_flight(S) + queue:len(S#s.queue),
    if
        Size > MaxFrame ->
            Mref ! {Mref, failed, {too_large, Size, MaxFrame}},
            S;
        Len >= MaxQueue ->
            Mref ! {Mref, failed, {overloaded, Len, MaxQueue}},
            S;
        S#s.status =:= ready ->
            write(Id, Mref, Caller, GL, Frame, S),
            S;
        true ->
            S#s{queue = queue:in({Id, Mref, Caller, GL, Frame, Deadline}, S#s.queue)}
    end.

write(Id, Mref, Caller, GL, Frame, #s{tab = Tab, port = Port}) ->
    true = ets:insert(Tab, {Id, Mref, Caller, GL}),
    erlang:port_command(Port, Frame).

%% Sends what queued while there was no port, dropping requests whose caller
%% has given up (they must never run).
flush_queue(S = #s{queue = Q}) ->
    Now = erlang:monotonic_time(millisecond),
    lists:foreach(
      fun({Id, Mref, Caller, GL, Frame, Deadline}) ->
              case Deadline =:= infinity orelse Deadline > Now of
                  true -> write(Id, Mref, Caller, GL, Frame, S);
                  false -> ok
              end
      end, queue:to_list(Q)),
    S#s{queue = queue:new()}.

%% A caller timed out: drop its request if it never reached the port, else ask
%% the port to stop it, and kill the OS process if it has not within kill_after.
cancel(Id, S = #s{tab = Tab, opts = Opts}) ->
    Q = queue:filter(fun(Item) -> element(1, Item) =/= Id end, S#s.queue),
    case queue:len(Q) =/= queue:len(S#s.queue) of
        true ->
            S#s{queue = Q};
        false ->
            case ets:take(Tab, Id) of
                [_] when is_port(S#s.port) ->
                    erlang:port_command(S#s.port, py_protocol:cancel(Id)),
                    TRef = erlang:send_after(maps:get(kill_after, Opts), self(),
                                             {'$py_kill_after', Id, S#s.gen}),
                    maybe_finish_drain(S#s{cancelled = maps:put(Id, TRef, S#s.cancelled)});
                _ ->
                    S
            end
    end.

%%% ===========================================================================
%%% The OS process
%%% ===========================================================================

open(S = #s{opts = Opts, name = Name}) ->
    Exe = port_executable(Opts),
    Args = ["--name", binary_to_list(Name),
            "--max-frame", integer_to_list(maps:get(max_frame, Opts)),
            "--max-depth", integer_to_list(maps:get(max_depth, Opts))]
        ++ lists:append([["--path", to_list(P)] || P <- maps:get(python_path, Opts)])
        ++ case maps:find(python, Opts) of
               {ok, Py} -> ["--python", to_list(Py)];
               error -> []
           end,
    PortOpts = [{packet, 4}, binary, exit_status, use_stdio, hide, {args, Args},
                {env, [{to_list(K), to_list(V)} || {K, V} <- env_list(Opts)]}]
        ++ case maps:find(cd, Opts) of
               {ok, Dir} -> [{cd, to_list(Dir)}];
               error -> []
           end,
    try open_port({spawn_executable, Exe}, PortOpts) of
        Port ->
            OsPid = case erlang:port_info(Port, os_pid) of
                        {os_pid, P} -> P;
                        undefined -> undefined
                    end,
            {ok, S#s{port = Port, os_pid = OsPid, gen = S#s.gen + 1, status = starting,
                     port_started = now_ms(), port_calls = 0, kill_reason = undefined}}
    catch
        error:Reason -> {error, {cannot_start_port, Exe, Reason}}
    end.

env_list(Opts) ->
    case maps:get(env, Opts) of
        M when is_map(M) -> maps:to_list(M);
        L when is_list(L) -> L
    end.

port_executable(Opts) ->
    case maps:find(executable, Opts) of
        {ok, Exe} -> to_list(Exe);
        error ->
            case application:get_env(pyport, executable) of
                {ok, Exe} -> to_list(Exe);
                undefined -> filename:join(code:priv_dir(pyport), "pyport")
            end
    end.

%% Blocks until the new OS process says ready (init only).
await_ready(S = #s{port = Port}) ->
    receive
        {Port, {data, Frame}} ->
            case py_protocol:split(Frame) of
                {{ready, _, _, _} = Ready, _} -> {ok, ready(Ready, S)};
                {_, _} -> await_ready(S)
            end;
        {Port, {exit_status, Status}} ->
            {error, {python_failed_to_start, py_protocol:exit_reason(Status)}}
    after ?START_TIMEOUT ->
        close_port(S),
        {error, {python_failed_to_start, timeout}}
    end.

ready({ready, Version, PyVersion, OsPid}, S = #s{tab = Tab, opts = Opts}) ->
    Version =:= py_protocol:version() orelse
        ?LOG_WARNING("pyport context ~ts: port speaks protocol ~p, expected ~p",
                     [S#s.name, Version, py_protocol:version()]),
    true = ets:insert(Tab, {'$port', S#s.port, max_queue(Opts), maps:get(max_frame, Opts)}),
    S1 = flush_queue(S#s{status = ready, os_pid = OsPid, python_version = PyVersion}),
    case S#s.restart_reason of
        undefined -> ok;
        Reason -> maps:foreach(fun(_, Pid) -> Pid ! {py_context, self(), restarted, Reason} end,
                               S#s.subscribers)
    end,
    S1#s{restart_reason = undefined}.

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
port_died(Status, S = #s{tab = Tab}) ->
    Reason = case S#s.kill_reason of
                 undefined -> py_protocol:exit_reason(Status);
                 Killed -> Killed
             end,
    true = ets:insert(Tab, {'$port', none, max_queue(S#s.opts), maps:get(max_frame, S#s.opts)}),
    sweep(Tab, Reason),
    S1 = forget_port(S),
    Uptime = now_ms() - S#s.port_started,
    schedule_restart(Reason, Uptime, S1#s{restarts = S#s.restarts + 1}).

sweep(Tab, Reason) ->
    Ids = ets:select(Tab, [{{'$1', '_', '_', '_'}, [{is_integer, '$1'}], ['$1']}]),
    lists:foreach(
      fun(Id) ->
              case ets:take(Tab, Id) of
                  [{_, Mref, _, _}] -> Mref ! {Mref, died, Reason};
                  [] -> ok
              end
      end, Ids).

forget_port(S) ->
    maps:foreach(fun(_, TRef) -> erlang:cancel_timer(TRef) end, S#s.cancelled),
    maps:foreach(fun(_, {info, From}) -> gen_server:reply(From, base_info(S, #{})) end,
                 S#s.internal),
    maps:foreach(fun(Ref, _) -> erlang:demonitor(Ref, [flush]) end, S#s.env_mons),
    S#s{port = undefined, os_pid = undefined, status = down, cancelled = #{}, internal = #{},
        envs = #{}, env_mons = #{}, drain_reason = undefined, recycle_when_idle = undefined}.

schedule_restart(Reason, Uptime, S = #s{opts = Opts}) ->
    #{min := Min, max := Max, stable := Stable} =
        maps:merge(#{min => ?BACKOFF_MIN_MS, max => ?BACKOFF_MAX_MS, stable => ?STABLE_MS},
                   maps:get(restart, Opts)),
    Backoff = if
                  Uptime >= Stable -> 0;
                  S#s.backoff =:= 0 -> Min;
                  true -> min(Max, S#s.backoff * 2)
              end,
    Logged = {Reason, Backoff},
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
    _ = os:cmd("kill -KILL " ++ integer_to_list(OsPid)),
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
    case rss_bytes(S#s.os_pid) of
        Rss when is_integer(Rss), Rss > 2 * Max ->
            kill_port({killed, {max_memory, Rss, Max}}, S);
        Rss when is_integer(Rss), Rss > Max ->
            case in_flight(S) of
                0 ->
                    begin_drain({max_memory, Rss, Max}, S);
                _ ->
                    erlang:port_command(S#s.port, py_protocol:interrupt(memory)),
                    S#s{recycle_when_idle = {max_memory, Rss, Max}}
            end;
        _ ->
            S
    end;
check_memory(S) ->
    S.

rss_bytes(OsPid) when is_integer(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/statm") of
        {ok, Bin} ->
            [_, Rss | _] = binary:split(Bin, <<" ">>, [global]),
            binary_to_integer(Rss) * page_size();
        {error, _} ->
            undefined
    end;
rss_bytes(_) ->
    undefined.

page_size() ->
    case persistent_term:get({?MODULE, page_size}, undefined) of
        undefined ->
            Size = case string:to_integer(os:cmd("getconf PAGESIZE")) of
                       {N, _} when is_integer(N), N > 0 -> N;
                       _ -> 4096
                   end,
            persistent_term:put({?MODULE, page_size}, Size),
            Size;
        Size ->
            Size
    end.

%%% ===========================================================================
%%% Monitors, info, helpers
%%% ===========================================================================

down(Ref, S = #s{env_mons = Mons}) ->
    case maps:take(Ref, Mons) of
        {Pid, Mons1} ->
            case S#s.status of
                Status when Status =:= ready; Status =:= draining ->
                    erlang:port_command(S#s.port, py_protocol:drop_env(Pid));
                _ ->
                    ok
            end,
            S#s{env_mons = Mons1, envs = maps:remove(Pid, S#s.envs)};
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
                       error -> rss_bytes(S#s.os_pid)
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
    iolist_to_binary(io_lib:format("~ts:~b", [to_list(Pool), Index]));
context_name(#{label := Label}) ->
    iolist_to_binary(io_lib:format("~0p", [Label]));
context_name(#{name := Name}) ->
    iolist_to_binary(io_lib:format("~0p", [Name]));
context_name(_) ->
    iolist_to_binary(pid_to_list(self())).

now_ms() -> erlang:monotonic_time(millisecond).

to_list(A) when is_atom(A) -> atom_to_list(A);
to_list(B) when is_binary(B) -> unicode:characters_to_list(B);
to_list(I) when is_integer(I) -> integer_to_list(I);
to_list(L) when is_list(L) -> L.
