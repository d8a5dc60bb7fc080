%% @private
%% @doc A reactor context: connections accepted by Erlang, protocol logic in a
%% Python `erlang.reactor.Protocol' (docs/reactor.md).
%%
%% A pyport context is another OS process, which cannot use the node's file
%% descriptors, so the connection stays in Erlang: this process owns each
%% handed-off socket, reads it (`{active, once}'), passes the bytes to the
%% protocol in its own context and sends what the protocol wrote. Actions the
%% protocol returns drive it as in erlang_python: `continue' and `read_pending'
%% read on, `write_pending' calls `write_ready', `async_pending' waits for
%% `erlang.reactor.signal_write_ready', `close' closes. A protocol that raises,
%% or a context that dies, closes its connection(s) and nothing else.
-module(py_reactor_context).

-behaviour(gen_server).

-export([start_link/2, start_link/3, stop/1, stats/1, handoff/2, handoff/3]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-include_lib("kernel/include/logger.hrl").

-define(HELPER, '_pyport_reactor').
-define(DEFAULT_MAX_CONNECTIONS, 100).
-define(CALL_TIMEOUT, 30000).

-record(conn, {sock :: gen_tcp:socket() | socket:socket(), kind :: gen_tcp | socket}).

-record(s, {ctx :: pid(),
            conns = #{} :: #{pos_integer() => #conn{}},
            by_sock = #{} :: #{term() => pos_integer()},
            next = 1 :: pos_integer(),
            max :: pos_integer(),
            total = 0 :: non_neg_integer(),
            requests = 0 :: non_neg_integer()}).

%%% ===========================================================================
%%% API
%%% ===========================================================================

%% @doc As start_link/3 with no options.
-spec start_link(term(), atom()) -> {ok, pid()} | {error, term()}.
start_link(Id, Mode) -> start_link(Id, Mode, #{}).

%% @doc Starts a reactor context with its own pyport context. `Id' and `Mode'
%% are accepted for erlang_python's signature (every pyport context is an OS
%% process). `Opts': `setup_code' (Python run once per OS process of the
%% context, as its `preload', e.g. to call `erlang.reactor.set_protocol_factory'),
%% `max_connections' (default 100), `context_opts' (options of the pyport
%% context, py_context:start_link/1).
-spec start_link(term(), atom(), map()) -> {ok, pid()} | {error, term()}.
start_link(_Id, _Mode, Opts) when is_map(Opts) ->
    gen_server:start_link(?MODULE, Opts, []).

%% @doc Stops the reactor: its connections close, its context stops.
-spec stop(pid()) -> ok.
stop(Reactor) ->
    gen_server:stop(Reactor).

%% @doc Counters: `active_connections', `total_connections', `total_requests',
%% `max_connections', `context' (the pyport context).
-spec stats(pid()) -> map().
stats(Reactor) ->
    gen_server:call(Reactor, stats).

%% @doc handoff/3 to the reactor registered as `py_reactor_context_default'.
-spec handoff(gen_tcp:socket() | integer(), map()) -> ok | {error, term()}.
handoff(Conn, ClientInfo) ->
    case whereis(py_reactor_context_default) of
        undefined -> {error, no_reactor_context};
        Reactor -> handoff(Reactor, Conn, ClientInfo)
    end.

%% @doc Hands a connection to `Reactor'. `Conn' is a connected gen_tcp socket
%% owned by the caller (ownership moves to the reactor), or the number of a file
%% descriptor of this node (from inet:getfd/1; the reactor reads a duplicate
%% of it with the `socket' module). `ClientInfo' reaches connection_made,
%% completed with `addr', `port', `type' and `reactor_pid'.
-spec handoff(pid(), gen_tcp:socket() | integer(), map()) -> ok | {error, term()}.
handoff(Reactor, Sock, ClientInfo) when is_port(Sock), is_map(ClientInfo) ->
    case gen_tcp:controlling_process(Sock, Reactor) of
        ok -> gen_server:call(Reactor, {handoff, #conn{sock = Sock, kind = gen_tcp}, ClientInfo});
        Error -> Error
    end;
handoff(Reactor, Fd, ClientInfo) when is_integer(Fd), Fd >= 0, is_map(ClientInfo) ->
    case socket:open(Fd, #{dup => true}) of
        {ok, S} ->
            case socket:setopt(S, {otp, controlling_process}, Reactor) of
                ok -> gen_server:call(Reactor, {handoff, #conn{sock = S, kind = socket}, ClientInfo});
                Error -> _ = socket:close(S), Error
            end;
        Error ->
            Error
    end;
handoff(_, _, _) ->
    {error, {badarg, "handoff(Reactor, Socket | Fd, ClientInfo map)"}}.

%%% ===========================================================================
%%% gen_server
%%% ===========================================================================

%% @private
%% The setup code runs as the context's preload: once per OS process, so a
%% restarted process (after a crash) has its protocol factory again.
init(Opts) ->
    process_flag(trap_exit, true),
    CtxOpts = context_opts(maps:get(context_opts, Opts, #{}),
                           maps:get(setup_code, Opts, undefined)),
    case py_context:start_link(CtxOpts) of
        {ok, Ctx} ->
            case py_context:call(Ctx, ?HELPER, ready, [], #{}, ?CALL_TIMEOUT) of
                {ok, _} ->
                    {ok, #s{ctx = Ctx,
                            max = maps:get(max_connections, Opts, ?DEFAULT_MAX_CONNECTIONS)}};
                {error, Reason} ->
                    py_context:stop(Ctx),
                    {stop, {setup_code, Reason}}
            end;
        {error, Reason} ->
            {stop, Reason}
    end.

%% @private
handle_call({handoff, Conn, _}, _From, #s{conns = Conns, max = Max} = S)
  when map_size(Conns) >= Max ->
    close_sock(Conn),
    {reply, {error, max_connections}, S};
handle_call({handoff, Conn, Info0}, _From, #s{next = Id} = S0) ->
    case prepare(Conn) of
        ok ->
            Info = maps:merge(peer(Conn), Info0#{reactor_pid => self()}),
            S = S0#s{conns = (S0#s.conns)#{Id => Conn},
                     by_sock = (S0#s.by_sock)#{Conn#conn.sock => Id},
                     next = Id + 1, total = S0#s.total + 1},
            {reply, ok, act(Id, py(S, init_connection, [Id, Info, true]), S)};
        {error, _} = Error ->
            close_sock(Conn),
            {reply, Error, S0}
    end;
handle_call(stats, _From, S) ->
    {reply, #{active_connections => map_size(S#s.conns),
              total_connections => S#s.total,
              total_requests => S#s.requests,
              max_connections => S#s.max,
              context => S#s.ctx}, S};
handle_call(_, _From, S) ->
    {reply, {error, badarg}, S}.

%% @private
handle_cast(_, S) ->
    {noreply, S}.

%% @private
handle_info({tcp, Sock, Data}, S) ->
    {noreply, data(maps:get(Sock, S#s.by_sock, undefined), Data, S)};
handle_info({tcp_closed, Sock}, S) ->
    {noreply, lost(maps:get(Sock, S#s.by_sock, undefined), S)};
handle_info({tcp_error, Sock, _}, S) ->
    {noreply, lost(maps:get(Sock, S#s.by_sock, undefined), S)};
handle_info({'$socket', Sock, select, _}, S) ->
    {noreply, activate(maps:get(Sock, S#s.by_sock, undefined), S)};
handle_info({'$socket', Sock, abort, _}, S) ->
    {noreply, lost(maps:get(Sock, S#s.by_sock, undefined), S)};
handle_info({socket_data, Id, Data}, S) ->
    {noreply, data(Id, Data, S)};
handle_info({socket_closed, Id}, S) ->
    {noreply, lost(Id, S)};
handle_info({write_ready, Id}, S) when is_map_key(Id, S#s.conns) ->
    {noreply, act(Id, py(S, on_write_ready, [Id]), S)};
handle_info({'EXIT', Ctx, Reason}, #s{ctx = Ctx} = S) ->
    {stop, {context_exit, Reason}, S};
handle_info(_, S) ->
    {noreply, S}.

%% @private
terminate(_Reason, S) ->
    [close_sock(C) || C <- maps:values(S#s.conns)],
    catch py_context:stop(S#s.ctx),
    ok.

%%% ===========================================================================
%%% Internals
%%% ===========================================================================

context_opts(CtxOpts, undefined) ->
    CtxOpts;
context_opts(CtxOpts, Setup) ->
    case maps:get(preload, CtxOpts, undefined) of
        undefined -> CtxOpts#{preload => Setup};
        Preload -> CtxOpts#{preload => [Preload, <<"\n">>, Setup]}
    end.

py(#s{ctx = Ctx}, Fun, Args) ->
    py_context:call(Ctx, ?HELPER, Fun, Args, #{}, ?CALL_TIMEOUT).

data(undefined, _, S) ->
    S;
data(Id, Data, S) ->
    act(Id, py(S, on_read_ready, [Id, {bytes, Data}]), S#s{requests = S#s.requests + 1}).

%% What the protocol answered: send its output, then do what it asked.
act(Id, {ok, {Out, Action}}, S) ->
    case maps:find(Id, S#s.conns) of
        {ok, Conn} ->
            case send(Conn, Out) of
                ok -> action(Id, Action, S);
                {error, _} -> lost(Id, S)
            end;
        error ->
            S
    end;
act(Id, {ok, Other}, S) ->
    ?LOG_WARNING("reactor protocol of connection ~p answered ~0p", [Id, Other]),
    close(Id, S);
act(Id, {error, Reason}, S) ->
    ?LOG_WARNING("reactor protocol of connection ~p failed: ~0p", [Id, Reason]),
    close(Id, S).

action(Id, <<"close">>, S) -> close(Id, S);
action(Id, <<"write_pending">>, S) -> self() ! {write_ready, Id}, S;
action(_, <<"async_pending">>, S) -> S;
action(Id, <<"continue">>, S) -> activate(Id, S);
action(Id, <<"read_pending">>, S) -> activate(Id, S).

%% Ask for the next data of a connection.
activate(undefined, S) ->
    S;
activate(Id, S) ->
    case maps:find(Id, S#s.conns) of
        {ok, #conn{kind = gen_tcp, sock = Sock}} ->
            case inet:setopts(Sock, [{active, once}]) of
                ok -> S;
                {error, _} -> lost(Id, S)
            end;
        {ok, #conn{kind = socket, sock = Sock}} ->
            case socket:recv(Sock, 0, nowait) of
                {ok, Data} -> self() ! {socket_data, Id, Data}, S;
                {select, _} -> S;
                {error, _} -> self() ! {socket_closed, Id}, S
            end;
        error ->
            S
    end.

%% The peer closed (or the socket failed): the protocol learns it.
lost(undefined, S) ->
    S;
lost(Id, S) ->
    close(Id, S).

%% Close a connection and tell its protocol (once).
close(Id, S) ->
    case maps:take(Id, S#s.conns) of
        {Conn, Conns} ->
            close_sock(Conn),
            case py(S, close_connection, [Id]) of
                {ok, _} -> ok;
                {error, Reason} ->
                    ?LOG_WARNING("connection_lost of reactor connection ~p failed: ~0p",
                                 [Id, Reason])
            end,
            S#s{conns = Conns, by_sock = maps:remove(Conn#conn.sock, S#s.by_sock)};
        error ->
            S
    end.

prepare(#conn{kind = gen_tcp, sock = Sock}) -> inet:setopts(Sock, [binary, {active, false}]);
prepare(#conn{kind = socket}) -> ok.

send(_, <<>>) -> ok;
send(#conn{kind = gen_tcp, sock = Sock}, Data) -> gen_tcp:send(Sock, Data);
send(#conn{kind = socket, sock = Sock}, Data) -> socket:send(Sock, Data).

close_sock(#conn{kind = gen_tcp, sock = Sock}) -> gen_tcp:close(Sock);
close_sock(#conn{kind = socket, sock = Sock}) -> socket:close(Sock).

peer(#conn{kind = gen_tcp, sock = Sock}) ->
    case inet:peername(Sock) of
        {ok, {Addr, Port}} -> #{addr => list_to_binary(inet:ntoa(Addr)), port => Port, type => tcp};
        _ -> #{type => tcp}
    end;
peer(#conn{kind = socket, sock = Sock}) ->
    case socket:peername(Sock) of
        {ok, #{addr := Addr, port := Port}} when is_tuple(Addr) ->
            #{addr => list_to_binary(inet:ntoa(Addr)), port => Port, type => tcp};
        _ -> #{type => socket}
    end.
