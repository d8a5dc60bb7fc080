%% @doc The floor of the benchmark: requests to the echo port (bench/echo.c), in
%% two shapes. `direct': the calling process owns the port and receives the reply
%% itself. `routed': the shape of py_context with Python taken out; a gen_server
%% owns the port, callers write their frame straight to it after recording the
%% request in a public ETS table, and the owner routes each reply by id to the
%% caller's alias. Callers build frames and decode replies as py_context does
%% (py_protocol, py_term: a large binary goes out by reference, not copied into
%% the frame, and comes back as a part of the reply frame).
%% Both shapes also work with the pyport program itself in place of the echo
%% (frames other than `{reply, Id}', such as `ready' and `env', are passed over),
%% which splits pyport's latency into the port program, the reply hop and the API.
-module(bench_floor).
-behaviour(gen_server).

-export([open/1, start_link/1, stop/1, os_pid/1, call/5, echo/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([target/0]).

-type target() :: {direct, port()} | {routed, pid()}.

%% Requests in flight per owner before callers are refused (py_context's default).
-define(MAX_QUEUE, 10000).
%% Largest frame a caller may send (py_context's default max_frame).
-define(MAX_FRAME, 256 * 1024 * 1024).

%% @doc Opens the echo port (or another port program) with the port options
%% py_context uses; the caller owns it (the `direct' shape).
-spec open(file:filename()) -> port().
open(Exe) ->
    open_port({spawn_executable, Exe}, [{packet, 4}, binary, exit_status, use_stdio, hide]).

%% @doc Starts an owner of one echo port (or another port program; the `routed'
%% shape).
-spec start_link(file:filename()) -> {ok, pid()}.
start_link(Exe) -> gen_server:start_link(?MODULE, Exe, []).

%% @doc Stops an owner; its echo port closes.
-spec stop(pid()) -> ok.
stop(Owner) -> gen_server:stop(Owner).

%% @doc The OS pid of the echo port behind a target.
-spec os_pid(target()) -> integer().
os_pid({direct, Port}) ->
    {os_pid, P} = erlang:port_info(Port, os_pid),
    P;
os_pid({routed, Owner}) ->
    gen_server:call(Owner, os_pid).

%% @doc The frame of py:call (`{call, Id, Pid, Parent, M, F, Args, Kwargs}'); the
%% echo answers its last element, `Kwargs'.
-spec call(target(), atom(), atom(), list(), map()) -> {ok, term()} | {error, term()}.
call(Target, M, F, Args, Kwargs) ->
    Id = erlang:unique_integer([positive]),
    request(Target, Id, py_protocol:call(Id, self(), 0, M, F, Args, Kwargs)).

%% @doc `{echo, Id, Pid, X}': the echo answers `X'.
-spec echo(target(), term()) -> {ok, term()} | {error, term()}.
echo(Target, X) ->
    Id = erlang:unique_integer([positive]),
    request(Target, Id, erlang:term_to_iovec({echo, Id, self(), X})).

%% Replies are decoded as py_context decodes results (without an atom limit).
decode(Body) ->
    {ok, _} = py_term:decode(Body, py_term:new_budget(infinity)).

%%% ===========================================================================
%%% The two request shapes (run in the caller)
%%% ===========================================================================

request({direct, Port}, Id, Frame) ->
    true = erlang:port_command(Port, Frame),
    direct_reply(Port, Id);
request({routed, Owner}, Id, Frame) ->
    Mref = erlang:monitor(process, Owner, [{alias, demonitor}]),
    Tab = persistent_term:get({?MODULE, Owner}),
    [{_, Port, MaxQueue, MaxFrame}] = ets:lookup(Tab, '$port'),
    InFlight = ets:info(Tab, size) - 1,
    Size = iolist_size(Frame),
    if
        Size > MaxFrame -> {error, too_large};
        InFlight >= MaxQueue -> {error, overloaded};
        true ->
            true = ets:insert(Tab, {Id, Mref, self(), group_leader()}),
            true = erlang:port_command(Port, Frame),
            receive
                {Mref, reply, Body} ->
                    erlang:demonitor(Mref, [flush]),
                    decode(Body);
                {'DOWN', Mref, process, _, Reason} ->
                    {error, {owner_died, Reason}}
            end
    end.

%% Waits for the reply to `Id', passing over the port's notices.
direct_reply(Port, Id) ->
    receive
        {Port, {data, Reply}} ->
            case binary_to_term(Reply, [used]) of
                {{reply, Id}, Used} ->
                    Body = binary_part(Reply, Used, byte_size(Reply) - Used),
                    decode(Body);
                _Notice ->
                    direct_reply(Port, Id)
            end;
        {Port, {exit_status, Status}} ->
            {error, {echo_died, Status}}
    end.

%%% ===========================================================================
%%% The owner (gen_server)
%%% ===========================================================================

-record(s, {port :: port(), tab :: ets:tid()}).

%% @private
init(Exe) ->
    Port = open(Exe),
    Tab = ets:new(bench_floor_inflight, [set, public, {write_concurrency, true},
                                         {read_concurrency, true}]),
    true = ets:insert(Tab, {'$port', Port, ?MAX_QUEUE, ?MAX_FRAME}),
    persistent_term:put({?MODULE, self()}, Tab),
    {ok, #s{port = Port, tab = Tab}}.

%% @private
handle_call(os_pid, _From, S = #s{port = Port}) ->
    {os_pid, P} = erlang:port_info(Port, os_pid),
    {reply, P, S}.

%% @private
handle_cast(_Msg, S) ->
    {noreply, S}.

%% @private
handle_info({Port, {data, Frame}}, S = #s{port = Port, tab = Tab}) ->
    case binary_to_term(Frame, [used]) of
        {{reply, Id}, Used} ->
            Body = binary_part(Frame, Used, byte_size(Frame) - Used),
            case ets:take(Tab, Id) of
                [{_, Mref, _, _}] -> Mref ! {Mref, reply, Body};
                [] -> ok
            end;
        _Notice ->
            ok
    end,
    {noreply, S};
handle_info({Port, {exit_status, Status}}, S = #s{port = Port}) ->
    {stop, {echo_died, Status}, S}.

%% @private
terminate(_Reason, #s{port = Port}) ->
    catch erlang:port_close(Port),
    persistent_term:erase({?MODULE, self()}),
    ok.
