#!/usr/bin/env escript
%% Figures for docs/web.md and docs/reactor.md (not part of `make bench', never
%% part of `make test'): on one context, the round trip of
%%   - py:wsgi_run of examples/web's Flask "/" and py:asgi_run of its ASGI "/";
%%   - a GET of each through OTP's httpd with mod_pyport (httpc, one connection
%%     at a time: latency, not throughput);
%%   - a 100-byte message echoed by a reactor protocol over a gen_tcp socket, one
%%     connection, then 20 connections at once (messages per second).
%% Usage: escript bench/web_reactor.escript BUILD_DIR   (from the repository root)
-mode(compile).

-define(N, 2000).
-define(HTTP_N, 500).
-define(CONNS, 20).

main([Build]) ->
    true = code:add_patha(filename:join([Build, "pyport", "ebin"])),
    Web = filename:absname("examples/web"),
    {ok, mod_pyport, Bin} = compile:file(filename:join(Web, "mod_pyport.erl"), [binary]),
    {module, mod_pyport} = code:load_binary(mod_pyport, "mod_pyport.erl", Bin),
    ok = application:set_env(pyport, start_pools, false, [{persistent, true}]),
    {ok, _} = application:ensure_all_started(pyport),
    {ok, _} = application:ensure_all_started(inets),
    {ok, Ctx} = py_context:start_link(#{python_path => [Web]}),
    io:format("machine: ~s cores, load ~s~n",
              [string:trim(os:cmd("nproc")), string:trim(os:cmd("cut -d' ' -f1-3 /proc/loadavg"))]),
    Wsgi = fun() -> {ok, {<<"200 OK">>, _, _}} =
                        py:wsgi_run(flask_app, app, #{}, <<>>, #{context => Ctx}) end,
    Asgi = fun() -> {ok, {200, _, _}} =
                        py:asgi_run(asgi_app, app, #{path => <<"/">>}, <<>>, #{context => Ctx}) end,
    report("py:wsgi_run (Flask /)", ?N, Wsgi),
    report("py:asgi_run (ASGI /)", ?N, Asgi),
    {ok, Httpd} = mod_pyport:start(#{port => 0, context => Ctx,
                                     routes => [{"/wsgi", wsgi, flask_app, app},
                                                {"/asgi", asgi, asgi_app, app}]}),
    Port = proplists:get_value(port, httpd:info(Httpd)),
    Base = "http://127.0.0.1:" ++ integer_to_list(Port),
    Get = fun(Path) -> fun() -> {ok, {{_, 200, _}, _, _}} =
                                    httpc:request(get, {Base ++ Path, []}, [], []) end end,
    report("HTTP GET /wsgi/ (httpd + httpc)", ?HTTP_N, Get("/wsgi/")),
    report("HTTP GET /asgi/ (httpd + httpc)", ?HTTP_N, Get("/asgi/")),
    reactor(),
    halt(0);
main(_) ->
    io:format("usage: escript bench/web_reactor.escript BUILD_DIR~n"),
    halt(2).

reactor() ->
    Setup = <<"import erlang.reactor as reactor\n"
              "class Echo(reactor.Protocol):\n"
              "    def data_received(self, data):\n"
              "        self.transport.write(data)\n"
              "reactor.set_protocol_factory(Echo)\n">>,
    {ok, R} = py_reactor_context:start_link(1, worker, #{setup_code => Setup}),
    {ok, L} = gen_tcp:listen(0, [binary, {active, false}]),
    {ok, P} = inet:port(L),
    Conns = [begin
                 {ok, C} = gen_tcp:connect({127, 0, 0, 1}, P, [binary, {active, false},
                                                               {nodelay, true}]),
                 {ok, S} = gen_tcp:accept(L),
                 ok = py_reactor_context:handoff(R, S, #{}),
                 C
             end || _ <- lists:seq(1, ?CONNS)],
    Msg = binary:copy(<<"x">>, 100),
    [C1 | _] = Conns,
    Echo = fun(C) -> ok = gen_tcp:send(C, Msg), {ok, Msg} = gen_tcp:recv(C, 100) end,
    report("reactor echo, 100 B, 1 connection", ?N, fun() -> Echo(C1) end),
    Self = self(),
    T0 = erlang:monotonic_time(microsecond),
    [spawn_link(fun() -> [Echo(C) || _ <- lists:seq(1, ?N div ?CONNS)], Self ! done end)
     || C <- Conns],
    [receive done -> ok end || _ <- Conns],
    Us = erlang:monotonic_time(microsecond) - T0,
    io:format("~-40s ~8.1f msg/s (~b connections)~n",
              ["reactor echo, 100 B, at once", ?N * 1.0e6 / Us, ?CONNS]),
    ok = py_reactor_context:stop(R).

report(Name, N, Fun) ->
    [Fun() || _ <- lists:seq(1, 20)],                    % warm up
    Times = [begin T = erlang:monotonic_time(nanosecond), Fun(),
                   erlang:monotonic_time(nanosecond) - T end || _ <- lists:seq(1, N)],
    Sorted = lists:sort(Times),
    Median = lists:nth(N div 2, Sorted) / 1000,
    P99 = lists:nth(N * 99 div 100, Sorted) / 1000,
    io:format("~-40s median ~8.1f us  p99 ~8.1f us  (~b runs)~n", [Name, Median, P99, N]).
