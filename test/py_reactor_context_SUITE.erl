%% erlang.reactor protocols behind py_reactor_context, over real TCP sockets:
%% connections accepted by gen_tcp are handed off, Erlang relays the bytes to the
%% protocol's context and sends what it writes. An echo protocol in
%% erlang_python's style (write_buffer, write_pending, write_ready), an
%% upper-casing one in asyncio's style (transport.write), many connections at
%% once, connections closed by the client and by the protocol, a protocol that
%% raises, a handoff by file descriptor number, and async_pending completed by
%% signal_write_ready from another Python thread, a segfault in a protocol, and
%% setup code that fails.
-module(py_reactor_context_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([echo/1, upper/1, greeting/1, many_connections/1, closed_by_client/1,
         closed_by_protocol/1, protocol_raises/1, handoff_fd/1, async_pending/1,
         max_connections/1, python_api/1, context_crash/1, bad_setup/1]).

-define(RECV_TIMEOUT, 10000).
%% Simultaneous clients of many_connections, and the lines each sends.
-define(CLIENTS, 50).
-define(LINES, 20).

suite() -> [{timetrap, {minutes, 3}}].

all() ->
    [echo, upper, greeting, many_connections, closed_by_client, closed_by_protocol,
     protocol_raises, handoff_fd, async_pending, max_connections, python_api, context_crash, bad_setup].

init_per_suite(Config) ->
    ok = pyport_test:load_app(),
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

init_per_testcase(_Case, Config) ->
    true = register(reactor_test, self()),
    {ok, L} = gen_tcp:listen(0, [binary, {active, false}, {ip, {127, 0, 0, 1}}]),
    [{listen, L} | Config].

end_per_testcase(_Case, Config) ->
    unregister(reactor_test),
    gen_tcp:close(?config(listen, Config)).

-define(ECHO, <<"
import erlang, erlang.reactor as reactor
class Echo(reactor.Protocol):
    def data_received(self, data):
        self.write_buffer.extend(data)
        return 'write_pending'
    def write_ready(self):
        written = self.write(bytes(self.write_buffer))
        del self.write_buffer[:written]
        return 'continue' if self.write_buffer else 'read_pending'
    def connection_lost(self):
        erlang.send('reactor_test', (erlang.atom('lost'), self.fd))
reactor.set_protocol_factory(Echo)
">>).

-define(UPPER, <<"
import erlang, erlang.reactor as reactor
class Upper(reactor.Protocol):
    def connection_made(self, fd, info):
        super().connection_made(fd, info)
        if info.get('greet'):
            self.transport.write(b'hello ' + info['addr'].encode() + b'\\n')
    def data_received(self, data):
        if data.startswith(b'quit'):
            self.transport.write(b'BYE')
            self.transport.close()
        elif data.startswith(b'boom'):
            raise ValueError('boom')
        elif data.startswith(b'segv'):
            import ctypes
            ctypes.string_at(0)
        else:
            self.transport.write(bytes(data).upper())
    def connection_lost(self):
        erlang.send('reactor_test', (erlang.atom('lost'), self.fd))
reactor.set_protocol_factory(Upper)
">>).

%%% ===========================================================================
%%% Cases
%%% ===========================================================================

echo(Config) ->
    R = reactor(?ECHO),
    C = connect(Config, R),
    [begin
         ok = gen_tcp:send(C, Msg),
         ?assertEqual(Msg, recv_exactly(C, byte_size(Msg)))
     end || Msg <- [<<"hello">>, <<"second message">>, binary:copy(<<"x">>, 200000)]],
    #{active_connections := 1, total_connections := 1} = py_reactor_context:stats(R),
    ok = py_reactor_context:stop(R),
    {error, closed} = gen_tcp:recv(C, 0, ?RECV_TIMEOUT).

upper(Config) ->
    R = reactor(?UPPER),
    C = connect(Config, R),
    ok = gen_tcp:send(C, <<"make me loud">>),
    <<"MAKE ME LOUD">> = recv_exactly(C, 12),
    ok = gen_tcp:send(C, <<"again">>),
    <<"AGAIN">> = recv_exactly(C, 5),
    ok = py_reactor_context:stop(R).

%% connection_made may write; client_info carries the peer and the caller's keys.
greeting(Config) ->
    R = reactor(?UPPER),
    C = connect(Config, R, #{greet => true}),
    <<"hello 127.0.0.1\n">> = recv_exactly(C, 16),
    ok = py_reactor_context:stop(R).

many_connections(Config) ->
    R = reactor(?ECHO),
    Clients = [connect(Config, R) || _ <- lists:seq(1, ?CLIENTS)],
    Self = self(),
    Pids = [spawn_link(fun() ->
                               Lines = [iolist_to_binary(io_lib:format("client ~p line ~p~n", [N, L]))
                                        || L <- lists:seq(1, ?LINES)],
                               [ok = gen_tcp:send(C, Line) || Line <- Lines],
                               Expected = iolist_to_binary(Lines),
                               Got = recv_exactly(C, byte_size(Expected)),
                               Self ! {done, self(), Got =:= Expected}
                       end) || {N, C} <- lists:zip(lists:seq(1, ?CLIENTS), Clients)],
    [receive {done, P, Ok} -> ?assert(Ok) after 60000 -> ct:fail(client_stuck) end
     || P <- Pids],
    #{active_connections := ?CLIENTS, total_requests := Reqs} = py_reactor_context:stats(R),
    ?assert(Reqs >= ?CLIENTS),
    [gen_tcp:close(C) || C <- Clients],
    Lost = [receive {lost, Id} -> Id after ?RECV_TIMEOUT -> ct:fail(not_all_lost) end
            || _ <- Clients],
    ?assertEqual(?CLIENTS, length(lists:usort(Lost))),
    pyport_test:wait_until(fun() -> maps:get(active_connections,
                                             py_reactor_context:stats(R)) =:= 0 end,
                           ?RECV_TIMEOUT),
    ok = py_reactor_context:stop(R).

closed_by_client(Config) ->
    R = reactor(?UPPER),
    C = connect(Config, R),
    ok = gen_tcp:send(C, <<"x">>),
    <<"X">> = recv_exactly(C, 1),
    ok = gen_tcp:close(C),
    receive {lost, 1} -> ok after ?RECV_TIMEOUT -> ct:fail(no_connection_lost) end,
    pyport_test:wait_until(fun() -> maps:get(active_connections,
                                             py_reactor_context:stats(R)) =:= 0 end,
                           ?RECV_TIMEOUT),
    ok = py_reactor_context:stop(R).

closed_by_protocol(Config) ->
    R = reactor(?UPPER),
    C = connect(Config, R),
    ok = gen_tcp:send(C, <<"quit">>),
    <<"BYE">> = recv_exactly(C, 3),
    {error, closed} = gen_tcp:recv(C, 0, ?RECV_TIMEOUT),
    receive {lost, 1} -> ok after ?RECV_TIMEOUT -> ct:fail(no_connection_lost) end,
    #{active_connections := 0} = py_reactor_context:stats(R),
    ok = py_reactor_context:stop(R).

%% The raising connection is closed (its protocol learns it); the other one
%% and later ones are served.
protocol_raises(Config) ->
    R = reactor(?UPPER),
    C1 = connect(Config, R),
    C2 = connect(Config, R),
    ok = gen_tcp:send(C1, <<"boom">>),
    {error, closed} = gen_tcp:recv(C1, 0, ?RECV_TIMEOUT),
    receive {lost, 1} -> ok after ?RECV_TIMEOUT -> ct:fail(no_connection_lost) end,
    ok = gen_tcp:send(C2, <<"still here">>),
    <<"STILL HERE">> = recv_exactly(C2, 10),
    C3 = connect(Config, R),
    ok = gen_tcp:send(C3, <<"new">>),
    <<"NEW">> = recv_exactly(C3, 3),
    #{active_connections := 2} = py_reactor_context:stats(R),
    ok = py_reactor_context:stop(R).

%% A segfault in a protocol kills the context's OS process: that connection
%% closes, the other one (whose protocol died with the process) closes at its
%% next data, and a new connection is served by the restarted process.
context_crash(Config) ->
    R = reactor(?UPPER),
    #{context := Ctx} = py_reactor_context:stats(R),
    #{os_pid := Os1} = py_context:info(Ctx),
    C1 = connect(Config, R),
    C2 = connect(Config, R),
    ok = gen_tcp:send(C2, <<"before">>),
    <<"BEFORE">> = recv_exactly(C2, 6),
    ok = gen_tcp:send(C1, <<"segv">>),
    {error, closed} = gen_tcp:recv(C1, 0, ?RECV_TIMEOUT),
    ok = gen_tcp:send(C2, <<"after">>),
    {error, closed} = gen_tcp:recv(C2, 0, ?RECV_TIMEOUT),
    C3 = connect(Config, R),
    ok = gen_tcp:send(C3, <<"new">>),
    <<"NEW">> = recv_exactly(C3, 3),
    #{os_pid := Os2} = py_context:info(Ctx),
    ?assertNotEqual(Os1, Os2),
    #{active_connections := 1} = py_reactor_context:stats(R),
    ok = py_reactor_context:stop(R).

%% Setup code that raises: the reactor does not start, and says why.
bad_setup(_Config) ->
    process_flag(trap_exit, true),
    {error, {python_failed_to_start, {setup_failed, {"ValueError", "bad setup"}}}} =
        py_reactor_context:start_link(1, worker, #{setup_code => <<"raise ValueError('bad setup')">>}),
    ok.

%% erlang_python's handoff takes a descriptor number (inet:getfd/1); the
%% reactor reads a duplicate of it.
handoff_fd(Config) ->
    R = reactor(?UPPER),
    {ok, P} = inet:port(?config(listen, Config)),
    {ok, C} = gen_tcp:connect({127, 0, 0, 1}, P, [binary, {active, false}]),
    {ok, S} = gen_tcp:accept(?config(listen, Config), ?RECV_TIMEOUT),
    {ok, Fd} = inet:getfd(S),
    ok = py_reactor_context:handoff(R, Fd, #{}),
    ok = gen_tcp:send(C, <<"by fd">>),
    <<"BY FD">> = recv_exactly(C, 5),
    ok = py_reactor_context:stop(R),
    gen_tcp:close(S).

async_pending(Config) ->
    R = reactor(<<"
import threading, time, erlang.reactor as reactor
class Later(reactor.Protocol):
    def data_received(self, data):
        def work(data):
            time.sleep(0.05)
            self.write_buffer.extend(b'LATER:' + data)
            reactor.signal_write_ready(self.fd)
        threading.Thread(target=work, args=(bytes(data),)).start()
        return 'async_pending'
reactor.set_protocol_factory(Later)
">>),
    C = connect(Config, R),
    ok = gen_tcp:send(C, <<"x">>),
    <<"LATER:x">> = recv_exactly(C, 7),
    ok = py_reactor_context:stop(R).

max_connections(Config) ->
    {ok, R} = py_reactor_context:start_link(1, worker, #{setup_code => ?ECHO,
                                                         max_connections => 1}),
    _C1 = connect(Config, R),
    {ok, P} = inet:port(?config(listen, Config)),
    {ok, C2} = gen_tcp:connect({127, 0, 0, 1}, P, [binary, {active, false}]),
    {ok, S2} = gen_tcp:accept(?config(listen, Config), ?RECV_TIMEOUT),
    {error, max_connections} = py_reactor_context:handoff(R, S2, #{}),
    {error, closed} = gen_tcp:recv(C2, 0, ?RECV_TIMEOUT),
    ok = py_reactor_context:stop(R).

%% The module as erlang_python's suites use it from Python, on real descriptors
%% of the context's own process.
python_api(_Config) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"
import socket, erlang, erlang.reactor as reactor
assert hasattr(erlang, 'reactor') and callable(reactor.Protocol)
class P(reactor.Protocol):
    def data_received(self, data):
        self.write_buffer.extend(data)
        return 'write_pending'
reactor.set_protocol_factory(P)
a, b = socket.socketpair()
reactor.init_connection(a.fileno(), {})
b.send(b'ping')
action = reactor.on_read_ready(a.fileno())
wrote = reactor.on_write_ready(a.fileno())
got = b.recv(10)
reactor.close_connection(a.fileno())
a.close(); b.close()
result = (action, wrote, got, bytes(erlang.ReactorBuffer._test_create(b'ab')[0:1]))
">>),
    {ok, {<<"write_pending">>, <<"read_pending">>, <<"ping">>, <<"a">>}} =
        py:eval(Ctx, <<"result">>).

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

reactor(Setup) ->
    {ok, R} = py_reactor_context:start_link(1, worker, #{setup_code => Setup}),
    unlink(R),
    R.

connect(Config, R) ->
    connect(Config, R, #{}).

%% A client socket whose server side was accepted by gen_tcp and handed to R.
connect(Config, R, Info) ->
    L = ?config(listen, Config),
    {ok, P} = inet:port(L),
    {ok, C} = gen_tcp:connect({127, 0, 0, 1}, P, [binary, {active, false}]),
    {ok, S} = gen_tcp:accept(L, ?RECV_TIMEOUT),
    ok = py_reactor_context:handoff(R, S, Info),
    C.

recv_exactly(C, N) ->
    {ok, Data} = gen_tcp:recv(C, N, ?RECV_TIMEOUT),
    Data.
