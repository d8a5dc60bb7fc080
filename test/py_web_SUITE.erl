%% WSGI and ASGI through pyport: py:wsgi_run / py:asgi_run called directly, and
%% the example of examples/web (OTP's httpd with mod_pyport serving a Flask app
%% and a plain ASGI callable) driven with real HTTP requests from httpc: GET,
%% POST with a body, request and response headers, a streamed response whose
%% first chunk arrives before the application has produced the rest, and an
%% application that segfaults, after which the next request is served by the
%% restarted OS process.
-module(py_web_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([wsgi_direct/1, asgi_direct/1, wsgi_direct_stream/1, asgi_direct_stream/1,
         direct_errors/1, bad_arguments/1,
         http_get/1, http_post_body/1, http_headers/1, http_streaming/1,
         http_not_routed/1, http_concurrent/1, http_segfault/1]).

%% Bound of one HTTP request.
-define(HTTP_TIMEOUT, 30000).
%% Concurrent clients of http_concurrent.
-define(CLIENTS, 20).

suite() -> [{timetrap, {minutes, 3}}].

all() ->
    [wsgi_direct, asgi_direct, wsgi_direct_stream, asgi_direct_stream, direct_errors,
     bad_arguments, http_get, http_post_body, http_headers, http_streaming,
     http_not_routed, http_concurrent, http_segfault].

init_per_suite(Config) ->
    Dir = pyport_test:examples_dir(?config(data_dir, Config), "web"),
    {ok, mod_pyport, Bin} = compile:file(filename:join(Dir, "mod_pyport.erl"),
                                         [binary, debug_info]),
    {module, mod_pyport} = code:load_binary(mod_pyport, "mod_pyport.erl", Bin),
    ok = pyport_test:load_app(),
    ok = application:set_env(pyport, context_opts, #{python_path => [Dir]}),
    {ok, _} = application:ensure_all_started(pyport),
    {ok, _} = application:ensure_all_started(inets),
    [{examples, Dir} | Config].

end_per_suite(_Config) ->
    ok = application:stop(pyport),
    ok = application:unset_env(pyport, context_opts).

init_per_testcase(_Case, Config) ->
    Dir = ?config(examples, Config),
    Ctx = pyport_test:start_ctx(#{python_path => [Dir]}),
    {ok, Httpd} = mod_pyport:start(#{port => 0, dir => ?config(priv_dir, Config),
                                     context => Ctx,
                                     routes => [{"/wsgi", wsgi, flask_app, app},
                                                {"/asgi", asgi, asgi_app, app}]}),
    Port = proplists:get_value(port, httpd:info(Httpd)),
    [{ctx, Ctx}, {httpd, Httpd}, {base, "http://127.0.0.1:" ++ integer_to_list(Port)}
     | Config].

end_per_testcase(_Case, Config) ->
    ok = mod_pyport:stop(?config(httpd, Config)),
    pyport_test:stop_ctx(?config(ctx, Config)).

%%% ===========================================================================
%%% py:wsgi_run / py:asgi_run
%%% ===========================================================================

wsgi_direct(Config) ->
    Ctx = ?config(ctx, Config),
    Opts = #{context => Ctx},
    {ok, {<<"200 OK">>, Hs, <<"hello from flask">>}} =
        py:wsgi_run(flask_app, app, #{<<"PATH_INFO">> => <<"/">>}, <<>>, Opts),
    ?assertMatch(<<"text/html", _/binary>>, header(<<"Content-Type">>, Hs)),
    {ok, {<<"200 OK">>, Hs2, <<"olleh">>}} =
        py:wsgi_run(flask_app, app, #{<<"REQUEST_METHOD">> => <<"POST">>,
                                      <<"PATH_INFO">> => <<"/echo">>,
                                      <<"CONTENT_TYPE">> => <<"text/plain">>},
                    <<"hello">>, Opts),
    ?assertEqual(<<"5">>, header(<<"X-Length">>, Hs2)),
    %% Bytes that are not UTF-8 go through untouched.
    Raw = <<255, 0, 1, 254>>,
    {ok, {<<"200 OK">>, _, Rev}} =
        py:wsgi_run(flask_app, app, #{<<"REQUEST_METHOD">> => <<"POST">>,
                                      <<"PATH_INFO">> => <<"/echo">>}, Raw, Opts),
    ?assertEqual(list_to_binary(lists:reverse(binary_to_list(Raw))), Rev),
    {ok, {<<"404 NOT FOUND">>, _, _}} =
        py:wsgi_run(flask_app, app, #{<<"PATH_INFO">> => <<"/nowhere">>}, <<>>, Opts),
    %% wsgi_run/3 on the default pool; the body may come as wsgi.input.
    {ok, {<<"200 OK">>, _, <<"cba">>}} =
        py:wsgi_run(flask_app, app, #{<<"REQUEST_METHOD">> => <<"POST">>,
                                      <<"PATH_INFO">> => <<"/echo">>,
                                      <<"wsgi.input">> => <<"abc">>}).

asgi_direct(Config) ->
    Opts = #{context => ?config(ctx, Config)},
    {ok, {200, Hs, <<"hello from asgi">>}} =
        py:asgi_run(asgi_app, app, #{path => <<"/">>}, <<>>, Opts),
    ?assertEqual(<<"text/plain">>, header(<<"content-type">>, Hs)),
    {ok, {201, Hs2, <<"SOME BODY">>}} =
        py:asgi_run(asgi_app, app, #{path => <<"/echo">>, method => <<"POST">>},
                    <<"some body">>, Opts),
    ?assertEqual(<<"9">>, header(<<"x-length">>, Hs2)),
    {ok, {200, _, Json}} =
        py:asgi_run(asgi_app, app, #{path => <<"/headers">>, query_string => <<"a=1">>,
                                     headers => [[<<"x-token">>, <<"t0k">>]]},
                    <<>>, Opts),
    ?assertMatch({_, _}, binary:match(Json, <<"\"x-token\": \"t0k\"">>)),
    ?assertMatch({_, _}, binary:match(Json, <<"\"query\": \"a=1\"">>)),
    %% The default pool, binary scope keys.
    {ok, {404, _, <<"not found">>}} =
        py:asgi_run(asgi_app, app, #{<<"path">> => <<"/missing">>}, <<>>).

wsgi_direct_stream(Config) ->
    Opts = #{context => ?config(ctx, Config), stream => true},
    {ok, {<<"200 OK">>, Hs, {stream, Ref}}} =
        py:wsgi_run(flask_app, app, #{<<"PATH_INFO">> => <<"/stream">>,
                                      <<"QUERY_STRING">> => <<"n=4">>}, <<>>, Opts),
    ?assertMatch(<<"text/plain", _/binary>>, header(<<"Content-Type">>, Hs)),
    ?assertEqual([<<"chunk 0\n">>, <<"chunk 1\n">>, <<"chunk 2\n">>, <<"chunk 3\n">>],
                 chunks(Ref)),
    %% A response that is not a stream in the application is one chunk.
    {ok, {<<"200 OK">>, _, {stream, Ref2}}} =
        py:wsgi_run(flask_app, app, #{<<"PATH_INFO">> => <<"/">>}, <<>>, Opts),
    ?assertEqual([<<"hello from flask">>], chunks(Ref2)).

asgi_direct_stream(Config) ->
    Opts = #{context => ?config(ctx, Config), stream => true},
    {ok, {200, _, {stream, Ref}}} =
        py:asgi_run(asgi_app, app, #{path => <<"/stream">>, query_string => <<"n=3">>},
                    <<>>, Opts),
    ?assertEqual([<<"part 0\n">>, <<"part 1\n">>, <<"part 2\n">>], chunks(Ref)),
    %% Cancelling a stream in the middle leaves nothing behind, and the context
    %% serves the next request.
    Gate = gate(Config, "cancel"),
    {ok, {200, _, {stream, Ref2}}} =
        py:asgi_run(asgi_app, app, #{path => <<"/stream">>,
                                     query_string => <<"n=3&until=", Gate/binary>>},
                    <<>>, Opts),
    {ok, <<"part 0\n">>} = py_web:next_chunk(Ref2, ?HTTP_TIMEOUT),
    ok = py:stream_cancel(Ref2),
    {ok, {200, _, <<"hello from asgi">>}} =
        py:asgi_run(asgi_app, app, #{path => <<"/">>}, <<>>, maps:remove(stream, Opts)).

direct_errors(Config) ->
    Ctx = ?config(ctx, Config),
    Opts = #{context => Ctx},
    ok = py:exec(Ctx, <<"import sys, types\n"
                        "m = types.ModuleType('web_errors')\n"
                        "def no_start(environ, start_response): return [b'x']\n"
                        "def raises(environ, start_response): raise ValueError('boom')\n"
                        "async def asgi_raises(scope, receive, send): raise KeyError('k')\n"
                        "async def asgi_silent(scope, receive, send): return None\n"
                        "m.no_start, m.raises = no_start, raises\n"
                        "m.asgi_raises, m.asgi_silent = asgi_raises, asgi_silent\n"
                        "sys.modules['web_errors'] = m\n">>),
    {error, {"ValueError", "boom"}} = py:wsgi_run(web_errors, raises, #{}, <<>>, Opts),
    {error, {"RuntimeError", _}} = py:wsgi_run(web_errors, no_start, #{}, <<>>, Opts),
    {error, {"KeyError", _}} = py:asgi_run(web_errors, asgi_raises, #{}, <<>>, Opts),
    {error, {"RuntimeError", _}} = py:asgi_run(web_errors, asgi_silent, #{}, <<>>, Opts),
    {error, {"ModuleNotFoundError", _}} = py:wsgi_run(no_such_module, app, #{}, <<>>, Opts),
    {error, {"AttributeError", _}} = py:asgi_run(asgi_app, nope, #{}, <<>>, Opts),
    %% Streaming: an error before the head is the answer.
    {error, {"ValueError", "boom"}} =
        py:wsgi_run(web_errors, raises, #{}, <<>>, Opts#{stream => true}),
    {error, {"KeyError", _}} =
        py:asgi_run(web_errors, asgi_raises, #{}, <<>>, Opts#{stream => true}),
    %% The context still serves.
    {ok, {200, _, _}} = py:asgi_run(asgi_app, app, #{path => <<"/">>}, <<>>, Opts).

bad_arguments(Config) ->
    Ctx = ?config(ctx, Config),
    {error, {badarg, _}} = py:wsgi_run(flask_app, app, #{}, <<>>, #{context => Ctx, bogus => 1}),
    {error, {badarg, _}} = py:asgi_run(asgi_app, app, #{}, <<>>, #{stream => maybe}),
    {error, {badarg, _}} = py:asgi_run(asgi_app, app, not_a_map, <<>>, #{context => Ctx}),
    {error, {badarg, _}} = py:wsgi_run(flask_app, app, #{}, [bad_body], #{context => Ctx}),
    {error, {badarg, _}} = py:wsgi_run(flask_app, <<"a\0b">>, #{}, <<>>, #{context => Ctx}).

%%% ===========================================================================
%%% HTTP through httpd + mod_pyport
%%% ===========================================================================

http_get(Config) ->
    {200, Hs, <<"hello from flask">>} = get(Config, "/wsgi/"),
    ?assertMatch("text/html" ++ _, proplists:get_value("content-type", Hs)),
    {200, _, <<"hello from flask">>} = get(Config, "/wsgi"),
    {200, Hs2, <<"hello from asgi">>} = get(Config, "/asgi/"),
    ?assertEqual("text/plain", proplists:get_value("content-type", Hs2)),
    {404, _, _} = get(Config, "/wsgi/missing"),
    {404, _, <<"not found">>} = get(Config, "/asgi/missing").

http_post_body(Config) ->
    Body = binary:copy(<<"0123456789">>, 10000),   % 100 kB
    {200, Hs, Rev} = request(Config, post, "/wsgi/echo", [], "application/x-test", Body),
    ?assertEqual(lists:reverse(binary_to_list(Body)), binary_to_list(Rev)),
    ?assertEqual("100000", proplists:get_value("x-length", Hs)),
    ?assertEqual("application/x-test", proplists:get_value("content-type", Hs)),
    {201, Hs2, Up} = request(Config, post, "/asgi/echo", [], "text/plain", <<"post me">>),
    ?assertEqual(<<"POST ME">>, Up),
    ?assertEqual("7", proplists:get_value("x-length", Hs2)).

http_headers(Config) ->
    Req = [{"x-token", "secret-1"}, {"user-agent", "pyport-test"}],
    {200, Hs, Json} = request(Config, get, "/wsgi/headers?a=1&b=two", Req, undefined, <<>>),
    ?assertEqual("flask", proplists:get_value("x-served-by", Hs)),
    ?assertEqual("application/json", proplists:get_value("content-type", Hs)),
    Flask = decode_json(Json),
    ?assertEqual(<<"secret-1">>, maps:get(<<"x_token">>, Flask)),
    ?assertEqual(<<"pyport-test">>, maps:get(<<"user_agent">>, Flask)),
    ?assertEqual(#{<<"a">> => <<"1">>, <<"b">> => <<"two">>}, maps:get(<<"query">>, Flask)),
    ?assertEqual(<<"/headers">>, maps:get(<<"path">>, Flask)),
    ?assertEqual(<<"/wsgi">>, maps:get(<<"script_name">>, Flask)),
    {200, Hs2, Json2} = request(Config, get, "/asgi/headers?q=x", Req, undefined, <<>>),
    ?assertEqual("asgi", proplists:get_value("x-served-by", Hs2)),
    ?assertMatch({_, _}, binary:match(Json2, <<"\"x-token\": \"secret-1\"">>)),
    ?assertMatch({_, _}, binary:match(Json2, <<"\"query\": \"q=x\"">>)),
    ?assertMatch({_, _}, binary:match(Json2, <<"\"root_path\": \"/asgi\"">>)).

%% The application produces its second chunk only once the test has created a
%% file, after it has seen the first chunk on the wire: the first chunk left the
%% server while the body was not finished. A raw HTTP/1.1 client reads the
%% socket (httpc's stream mode may hold a chunk that came in the same packet as
%% the headers until more data arrives); httpc then reads whole streamed bodies.
http_streaming(Config) ->
    {ok, Port} = port_of(Config),
    lists:foreach(
      fun({Prefix, Word}) ->
              Gate = gate(Config, Prefix),
              Path = "/" ++ Prefix ++ "/stream?n=3&until=" ++ binary_to_list(Gate),
              {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}]),
              ok = gen_tcp:send(S, ["GET ", Path, " HTTP/1.1\r\nHost: localhost\r\n"
                                    "Connection: close\r\n\r\n"]),
              First = iolist_to_binary([Word, " 0\n"]),
              Head = recv_until(S, First, <<>>),
              ?assertMatch({_, _}, binary:match(string:lowercase(Head),
                                                <<"transfer-encoding: chunked">>)),
              ?assertEqual(nomatch, binary:match(Head, iolist_to_binary([Word, " 1"]))),
              ok = file:write_file(Gate, <<>>),
              All = recv_all(S, Head),
              [_, Chunked] = binary:split(All, <<"\r\n\r\n">>),
              ?assertEqual(iolist_to_binary([[Word, " ", integer_to_list(I), "\n"]
                                             || I <- [0, 1, 2]]),
                           dechunk(Chunked, <<>>)),
              {200, _, Body} = get(Config, "/" ++ Prefix ++ "/stream?n=5"),
              ?assertEqual(iolist_to_binary([[Word, " ", integer_to_list(I), "\n"]
                                             || I <- lists:seq(0, 4)]), Body)
      end, [{"wsgi", "chunk"}, {"asgi", "part"}]).

http_not_routed(Config) ->
    {404, _, _} = get(Config, "/elsewhere"),
    {404, _, _} = get(Config, "/wsgix").

http_concurrent(Config) ->
    Self = self(),
    Pids = [spawn_link(fun() ->
                               Path = case N rem 2 of 0 -> "/wsgi/echo"; 1 -> "/asgi/echo" end,
                               Body = integer_to_binary(N * 1000003),
                               Self ! {done, self(), N,
                                       request(Config, post, Path, [], "text/plain", Body)}
                       end) || N <- lists:seq(1, ?CLIENTS)],
    [receive
         {done, Pid, N, {Code, _, Got}} ->
             Sent = integer_to_binary(N * 1000003),
             case N rem 2 of
                 0 -> ?assertEqual({200, list_to_binary(lists:reverse(binary_to_list(Sent)))},
                                   {Code, Got});
                 1 -> ?assertEqual({201, Sent}, {Code, Got})
             end
     after ?HTTP_TIMEOUT -> ct:fail({no_answer, N})
     end || {Pid, N} <- lists:zip(Pids, lists:seq(1, ?CLIENTS))].

%% ctypes.string_at(0) kills the context's OS process: that request gets a 500
%% (the context died), the next one is served by a new OS process.
http_segfault(Config) ->
    lists:foreach(
      fun(Prefix) ->
              {200, _, Pid1} = get(Config, Prefix ++ "/pid"),
              {500, _, Why} = get(Config, Prefix ++ "/crash"),
              ?assertMatch({_, _}, binary:match(Why, <<"context_died">>)),
              {200, _, Pid2} = get(Config, Prefix ++ "/pid"),
              ?assertNotEqual(Pid1, Pid2),
              ?assertEqual(Pid2, integer_to_binary(os_pid(Config))),
              {200, _, _} = get(Config, Prefix ++ "/")
      end, ["/wsgi", "/asgi"]).

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

os_pid(Config) ->
    maps:get(os_pid, py_context:info(?config(ctx, Config))).

get(Config, Path) ->
    request(Config, get, Path, [], undefined, <<>>).

request(Config, Method, Path, Headers, ContentType, Body) ->
    Url = ?config(base, Config) ++ Path,
    Req = case Method of
              get -> {Url, Headers};
              post -> {Url, Headers, ContentType, Body}
          end,
    {ok, {{_, Code, _}, RespHeaders, RespBody}} =
        httpc:request(Method, Req, [{timeout, ?HTTP_TIMEOUT}], [{body_format, binary}]),
    {Code, RespHeaders, RespBody}.

port_of(Config) ->
    {ok, proplists:get_value(port, httpd:info(?config(httpd, Config)))}.

%% Reads until Pattern has arrived; what was read.
recv_until(S, Pattern, Acc) ->
    case binary:match(Acc, Pattern) of
        {_, _} -> Acc;
        nomatch ->
            case gen_tcp:recv(S, 0, ?HTTP_TIMEOUT) of
                {ok, Data} -> recv_until(S, Pattern, <<Acc/binary, Data/binary>>);
                {error, Reason} -> ct:fail({no_first_chunk, Reason, Acc})
            end
    end.

recv_all(S, Acc) ->
    case gen_tcp:recv(S, 0, ?HTTP_TIMEOUT) of
        {ok, Data} -> recv_all(S, <<Acc/binary, Data/binary>>);
        {error, closed} -> Acc;
        {error, Reason} -> ct:fail({response_not_closed, Reason, Acc})
    end.

dechunk(Bin, Acc) ->
    [SizeHex, Rest] = binary:split(Bin, <<"\r\n">>),
    case binary_to_integer(SizeHex, 16) of
        0 -> Acc;
        N ->
            <<Chunk:N/binary, "\r\n", More/binary>> = Rest,
            dechunk(More, <<Acc/binary, Chunk/binary>>)
    end.

chunks(Ref) ->
    case py_web:next_chunk(Ref, ?HTTP_TIMEOUT) of
        {ok, C} -> [C | chunks(Ref)];
        done -> []
    end.

header(Name, Headers) ->
    Lower = string:lowercase(Name),
    case [V || {N, V} <- Headers, string:lowercase(N) =:= Lower] of
        [V | _] -> V;
        [] -> undefined
    end.

gate(Config, Tag) ->
    Path = filename:join(?config(priv_dir, Config),
                         Tag ++ "-" ++ integer_to_list(erlang:unique_integer([positive]))),
    list_to_binary(Path).

%% The JSON Flask sends here: one flat object of strings or of one nested object.
decode_json(Json) ->
    {ok, Term} = py:eval(<<"__import__('json').loads(j)">>, #{j => Json}),
    Term.
