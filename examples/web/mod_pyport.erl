%% @doc An `inets' httpd module that serves WSGI and ASGI applications through
%% pyport (docs/web.md). Each request is run with `py:wsgi_run/5' or
%% `py:asgi_run/5' in streaming mode: the status and headers are sent as soon as
%% the application gives them, then the body as it comes (chunked for HTTP/1.1
%% when the application gives no Content-Length).
%%
%% ```
%% {ok, Httpd} = mod_pyport:start(#{port => 8080,
%%     routes => [{"/wsgi", wsgi, flask_app, app}, {"/asgi", asgi, asgi_app, app}]}).
%% '''
%%
%% Configuration (the httpd property `pyport_web', a map): `routes' (a list of
%% `{Prefix, wsgi | asgi, Module, App}'; the first prefix that matches wins and
%% is the application's SCRIPT_NAME / root_path), `context' or `pool' (where the
%% applications run; the `default' pool otherwise) and `timeout' (ms to wait for
%% the status and each chunk, default 30000).
-module(mod_pyport).

-export([start/1, stop/1, do/1, store/2]).

-include_lib("inets/include/httpd.hrl").

-define(TIMEOUT, 30000).

%% @doc Starts an httpd on 127.0.0.1 with this module as its only module.
%% `Opts': `port' (0 picks a free one, see httpd:info/1), `dir' (server and
%% document root, default the system's temporary directory) and the
%% configuration keys above.
-spec start(map()) -> {ok, pid()} | {error, term()}.
start(Opts) ->
    Dir = maps:get(dir, Opts, "/tmp"),
    Config = maps:with([routes, context, pool, timeout], Opts),
    inets:start(httpd, [{port, maps:get(port, Opts, 0)},
                        {server_name, "pyport"},
                        {server_root, Dir},
                        {document_root, Dir},
                        {bind_address, {127, 0, 0, 1}},
                        {modules, [?MODULE]},
                        {pyport_web, Config}]).

%% @doc Stops an httpd started by start/1.
-spec stop(pid()) -> ok | {error, term()}.
stop(Httpd) ->
    inets:stop(httpd, Httpd).

%% @doc httpd's configuration hook: checks the `pyport_web' property.
-spec store({atom(), term()}, list()) -> {ok, {atom(), term()}} | {error, term()}.
store({pyport_web, #{routes := Routes} = Config}, _) when is_list(Routes) ->
    {ok, {pyport_web, Config}};
store({pyport_web, Other}, _) ->
    {error, {bad_pyport_web, Other}}.

%% @doc httpd's request hook.
-spec do(#mod{}) -> {proceed, list()} | {break, list()} | done.
do(#mod{config_db = Db, request_uri = Uri} = Mod) ->
    Config = httpd_util:lookup(Db, pyport_web, #{routes => []}),
    {Path, Query} = case string:split(Uri, "?") of
                        [P, Q] -> {P, Q};
                        [P] -> {P, ""}
                    end,
    case route(maps:get(routes, Config), Path) of
        {Prefix, Kind, Module, App} ->
            serve(Mod, Config, Kind, Module, App, Prefix, strip(Prefix, Path), Query);
        none ->
            %% Not ours: 404, unless a later module answers.
            {proceed, [{status, {404, Uri, "Not Found"}} | Mod#mod.data]}
    end.

%%% ===========================================================================
%%% Internals
%%% ===========================================================================

route([{Prefix, _, _, _} = Route | Rest], Path) ->
    case lists:prefix(Prefix, Path) andalso
         (length(Path) =:= length(Prefix) orelse lists:nth(length(Prefix) + 1, Path) =:= $/) of
        true -> Route;
        false -> route(Rest, Path)
    end;
route([], _) ->
    none.

strip(Prefix, Path) ->
    case lists:nthtail(length(Prefix), Path) of
        "" -> "/";
        Rest -> Rest
    end.

serve(Mod, Config, Kind, Module, App, Prefix, Path, Query) ->
    Timeout = maps:get(timeout, Config, ?TIMEOUT),
    Opts = maps:merge(#{stream => true, timeout => Timeout},
                      maps:with([context, pool], Config)),
    Body = iolist_to_binary(Mod#mod.entity_body),
    Result = case Kind of
                 wsgi -> py:wsgi_run(Module, App, environ(Mod, Prefix, Path, Query), Body, Opts);
                 asgi -> py:asgi_run(Module, App, scope(Mod, Prefix, Path, Query), Body, Opts)
             end,
    case Result of
        {ok, {Status, Headers, {stream, Ref}}} ->
            send(Mod, status_code(Status), Headers, Ref, Timeout);
        {error, Reason} ->
            Text = io_lib:format("application error: ~0p~n", [Reason]),
            Bin = unicode:characters_to_binary(Text),
            {proceed, [{response, {response, [{code, 500},
                                              {content_type, "text/plain"},
                                              {content_length, integer_to_list(byte_size(Bin))}],
                                   [binary_to_list(Bin)]}}]}
    end.

environ(#mod{method = Method, parsed_header = Hs, http_version = Ver} = Mod,
        Prefix, Path, Query) ->
    {Host, Port} = server(Mod),
    Base = #{<<"REQUEST_METHOD">> => list_to_binary(Method),
             <<"SCRIPT_NAME">> => list_to_binary(Prefix),
             <<"PATH_INFO">> => list_to_binary(Path),
             <<"QUERY_STRING">> => list_to_binary(Query),
             <<"SERVER_NAME">> => Host,
             <<"SERVER_PORT">> => integer_to_binary(Port),
             <<"SERVER_PROTOCOL">> => list_to_binary(Ver)},
    lists:foldl(fun({"content-type", V}, E) -> E#{<<"CONTENT_TYPE">> => list_to_binary(V)};
                   ({"content-length", V}, E) -> E#{<<"CONTENT_LENGTH">> => list_to_binary(V)};
                   ({Name, V}, E) ->
                       Key = [case C of $- -> $_; _ -> string:to_upper(C) end || C <- Name],
                       E#{list_to_binary("HTTP_" ++ Key) => list_to_binary(V)}
                end, Base, Hs).

scope(#mod{method = Method, parsed_header = Hs, http_version = Ver} = Mod,
      Prefix, Path, Query) ->
    {Host, Port} = server(Mod),
    #{type => <<"http">>,
      method => list_to_binary(Method),
      http_version => case Ver of "HTTP/1.0" -> <<"1.0">>; _ -> <<"1.1">> end,
      path => list_to_binary(Path),
      root_path => list_to_binary(Prefix),
      query_string => list_to_binary(Query),
      headers => [{list_to_binary(N), list_to_binary(V)} || {N, V} <- Hs],
      server => {Host, Port}}.

server(#mod{init_data = #init_data{sockname = {Port, Addr}}}) ->
    {list_to_binary(Addr), Port}.

status_code(Code) when is_integer(Code) -> Code;
status_code(<<D1, D2, D3, _/binary>>) -> list_to_integer([D1, D2, D3]).

%% Sends the head, then each chunk as the application produces it.
send(Mod, Code, Headers0, Ref, Timeout) ->
    Headers = [{string:lowercase(binary_to_list(N)), binary_to_list(V)} || {N, V} <- Headers0],
    Chunked = Mod#mod.http_version =:= "HTTP/1.1" andalso
              not lists:keymember("content-length", 1, Headers),
    Head = case Chunked of
               true -> [{"transfer-encoding", "chunked"} | Headers];
               false -> Headers
           end,
    %% The head and the chunks are separate writes: without nodelay, Nagle's
    %% algorithm and the client's delayed ACK hold the second one ~40 ms.
    _ = case Mod#mod.socket_type of
            ip_comm -> inet:setopts(Mod#mod.socket, [{nodelay, true}]);
            _ -> ok
        end,
    ok = httpd_response:send_header(Mod, Code, Head),
    case body(Mod, Ref, Timeout, Chunked, 0) of
        {ok, Size} ->
            {proceed, [{response, {already_sent, Code, Size}}]};
        {error, _} ->
            %% The head is gone: the only way left to say "failed" is to close.
            _ = py:stream_cancel(Ref),
            httpd_socket:close(Mod#mod.socket_type, Mod#mod.socket),
            done
    end.

body(Mod, Ref, Timeout, Chunked, Size) ->
    case py_web:next_chunk(Ref, Timeout) of
        {ok, Chunk} ->
            case httpd_response:send_chunk(Mod, Chunk, not Chunked) of
                ok -> body(Mod, Ref, Timeout, Chunked, Size + byte_size(Chunk));
                Error -> {error, Error}
            end;
        done when Chunked ->
            _ = httpd_response:send_final_chunk(Mod, false),
            {ok, Size};
        done ->
            {ok, Size};
        {error, _} = Error ->
            Error
    end.
