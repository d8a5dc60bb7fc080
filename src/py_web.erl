%% @private
%% @doc WSGI and ASGI applications run on one context: the Erlang half of
%% `py:wsgi_run/4,5' and `py:asgi_run/4,5' (the Python half is
%% `_pyport_web.py', imported by the context on first use).
%%
%% A whole answer is `{ok, {Status, Headers, Body}}': for WSGI `Status' is the
%% status line (`<<"200 OK">>'), for ASGI the status code (`200'); `Headers' is
%% a list of `{Name, Value}' binaries; `Body' a binary. With `stream => true' the
%% answer comes once the application has given its status and headers:
%% `{ok, {Status, Headers, {stream, Ref}}}', and the body follows as a pyport
%% stream (`{py_stream, Ref, {data, Chunk}}' ... then `{py_stream, Ref, done}'
%% or `{py_stream, Ref, {error, E}}'; `next_chunk/2' reads one, and
%% `py:stream_cancel/1' stops it). See docs/web.md.
-module(py_web).

-export([wsgi_run/6, asgi_run/6, next_chunk/2, wsgi_environ/1, asgi_scope/1]).

-export_type([status/0, headers/0, answer/0]).

-type status() :: binary() | integer().
-type headers() :: [{binary(), binary()}].
-type answer() :: {ok, {status(), headers(), binary() | {stream, reference()}}}
                | {error, term()}.

-define(HELPER, '_pyport_web').

%% @doc Runs the WSGI application `Module.App' on `Ctx' with `Environ' (a map
%% with binary keys, completed by wsgi_environ/1) and the request body.
%% `Opts' were validated by py_options:validate_web/1.
-spec wsgi_run(pid(), term(), term(), map(), iodata(), py_options:web_options()) ->
    answer().
wsgi_run(Ctx, Module, App, Environ, Body, Opts) when is_map(Environ) ->
    run(Ctx, wsgi, Module, App, wsgi_environ(Environ), Body, Opts);
wsgi_run(_, _, _, _, _, _) ->
    {error, {badarg, "the WSGI environ must be a map"}}.

%% @doc Runs the ASGI application `Module.App' on `Ctx' with `Scope' (a map with
%% atom or binary keys, completed by asgi_scope/1) and the request body.
-spec asgi_run(pid(), term(), term(), map(), iodata(), py_options:web_options()) ->
    answer().
asgi_run(Ctx, Module, App, Scope, Body, Opts) when is_map(Scope) ->
    run(Ctx, asgi, Module, App, asgi_scope(Scope), Body, Opts);
asgi_run(_, _, _, _, _, _) ->
    {error, {badarg, "the ASGI scope must be a map"}}.

%% @doc The next chunk of a streamed body: `{ok, Chunk}', `done',
%% `{error, Reason}', or `{error, timeout}' (the stream goes on; cancel it with
%% py:stream_cancel/1 if it is no longer wanted).
-spec next_chunk(reference(), timeout()) -> {ok, binary()} | done | {error, term()}.
next_chunk(Ref, Timeout) ->
    receive
        {py_stream, Ref, {data, Chunk}} when is_binary(Chunk) -> {ok, Chunk};
        {py_stream, Ref, {data, Other}} -> {error, {bad_chunk, Other}};
        {py_stream, Ref, done} -> done;
        {py_stream, Ref, {error, _} = Error} -> Error
    after Timeout ->
        {error, timeout}
    end.

%% @doc `Environ' with the WSGI defaults for the keys it lacks (method GET, path
%% `/', server localhost:80, HTTP/1.1, `wsgi.version' {1, 0}, scheme http...).
-spec wsgi_environ(map()) -> map().
wsgi_environ(Environ) ->
    maps:merge(#{<<"REQUEST_METHOD">> => <<"GET">>,
                 <<"SCRIPT_NAME">> => <<>>,
                 <<"PATH_INFO">> => <<"/">>,
                 <<"QUERY_STRING">> => <<>>,
                 <<"SERVER_NAME">> => <<"localhost">>,
                 <<"SERVER_PORT">> => <<"80">>,
                 <<"SERVER_PROTOCOL">> => <<"HTTP/1.1">>,
                 <<"wsgi.version">> => {1, 0},
                 <<"wsgi.url_scheme">> => <<"http">>,
                 <<"wsgi.multithread">> => false,
                 <<"wsgi.multiprocess">> => true,
                 <<"wsgi.run_once">> => false},
               Environ).

%% @doc `Scope' with the ASGI defaults for the keys it lacks (type http, method
%% GET, HTTP/1.1, scheme http, `raw_path' from `path', ASGI 3.0). Header names
%% and values, `query_string' and `raw_path' reach the application as bytes.
-spec asgi_scope(map()) -> map().
asgi_scope(Scope0) ->
    Scope = maps:from_list([{key(K), V} || {K, V} <- maps:to_list(Scope0)]),
    Path = maps:get(<<"path">>, Scope, <<"/">>),
    maps:merge(#{<<"type">> => <<"http">>,
                 <<"asgi">> => #{<<"version">> => <<"3.0">>, <<"spec_version">> => <<"2.3">>},
                 <<"http_version">> => <<"1.1">>,
                 <<"method">> => <<"GET">>,
                 <<"scheme">> => <<"http">>,
                 <<"path">> => Path,
                 <<"raw_path">> => bytes(Path),
                 <<"query_string">> => {bytes, <<>>},
                 <<"root_path">> => <<>>,
                 <<"headers">> => [],
                 <<"state">> => #{}},
               bytes_fields(Scope)).

%%% ===========================================================================
%%% Internals
%%% ===========================================================================

run(Ctx, Kind, Module, App, Request, Body0, Opts) ->
    case py_args:check([py_args:name("module", Module), py_args:name("application", App),
                        body(Body0)]) of
        {ok, [Mod, Name, Body]} ->
            Args = [Mod, Name, Request, {bytes, Body}],
            case maps:get(stream, Opts, false) of
                false ->
                    Fun = case Kind of wsgi -> wsgi_run; asgi -> asgi_run end,
                    answer(py_context:call(Ctx, ?HELPER, Fun, Args, #{},
                                           maps:get(timeout, Opts, infinity)));
                true ->
                    Fun = case Kind of wsgi -> wsgi_stream; asgi -> asgi_stream end,
                    StreamOpts = maps:with([window], Opts),
                    head(py_stream:start(Ctx, ?HELPER, Fun, Args, StreamOpts),
                         maps:get(timeout, Opts, infinity))
            end;
        Error ->
            Error
    end.

body(Body) ->
    try iolist_to_binary(Body)
    catch error:badarg -> {error, {badarg, "the request body must be iodata"}}
    end.

answer({ok, {Status, Headers, Body}}) when is_binary(Body) ->
    {ok, {Status, headers(Headers), Body}};
answer({ok, Other}) ->
    {error, {bad_response, Other}};
answer(Error) ->
    Error.

%% Waits for the stream's first item, the status and headers.
head({error, _} = Error, _) ->
    Error;
head({ok, Ref}, Timeout) ->
    receive
        {py_stream, Ref, {data, {Status, Headers}}} ->
            {ok, {Status, headers(Headers), {stream, Ref}}};
        {py_stream, Ref, {data, Other}} ->
            ok = py_stream:cancel(Ref),
            {error, {bad_response, Other}};
        {py_stream, Ref, done} ->
            {error, {bad_response, no_head}};
        {py_stream, Ref, {error, _} = Error} ->
            Error
    after Timeout ->
        ok = py_stream:cancel(Ref),
        {error, timeout}
    end.

headers(Headers) ->
    [{iolist_to_binary(N), iolist_to_binary(V)} || {N, V} <- Headers].

key(K) when is_atom(K) -> atom_to_binary(K);
key(K) when is_list(K) -> unicode:characters_to_binary(K);
key(K) -> K.

bytes({bytes, _} = B) -> B;
bytes(B) when is_binary(B) -> {bytes, B};
bytes(L) when is_list(L) -> {bytes, iolist_to_binary(L)};
bytes(Other) -> Other.

%% The scope fields ASGI wants as bytes.
bytes_fields(Scope) ->
    S1 = maps:map(fun(K, V) when K =:= <<"raw_path">>; K =:= <<"query_string">> -> bytes(V);
                     (_, V) -> V
                  end, Scope),
    case maps:find(<<"headers">>, S1) of
        {ok, Hs} when is_list(Hs) -> S1#{<<"headers">> := [header(H) || H <- Hs]};
        _ -> S1
    end.

header({N, V}) -> {bytes(N), bytes(V)};
header([N, V]) -> {bytes(N), bytes(V)};
header(Other) -> Other.
