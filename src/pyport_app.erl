%% @private
%% @doc The pyport application: starts the supervision tree, then the default
%% pool and the pools named in the `pools' environment key (unless
%% `start_pools' is false); a pool with `lazy => true' (the `io' pool by
%% default) starts on its first use.
-module(pyport_app).
-behaviour(application).

-export([start/2, stop/1]).

%% @private
start(_Type, _Args) ->
    {ok, Sup} = pyport_sup:start_link(),
    case application:get_env(pyport, start_pools, true) of
        true -> start_pools(Sup);
        false -> {ok, Sup}
    end.

start_pools(Sup) ->
    Pools = application:get_env(pyport, pools, []),
    Start = fun({Pool, Opts}, ok) ->
                    Size = maps:get(contexts, Opts, 1),
                    Rest = maps:without([contexts, lazy], Opts),
                    Result = case maps:get(lazy, Opts, false) of
                                 true -> py_context_router:declare_pool(Pool, Size, Rest);
                                 false -> py_context_router:start_pool(Pool, Size, Rest)
                             end,
                    case Result of
                        ok -> ok;
                        {ok, _} -> ok;
                        {error, Reason} -> {error, {Pool, Reason}}
                    end;
               (_, Error) ->
                    Error
            end,
    case py_context_router:start() of
        {ok, _} ->
            case lists:foldl(Start, ok, Pools) of
                ok -> {ok, Sup};
                Error -> Error
            end;
        {error, Reason} ->
            {error, {default, Reason}}
    end.

%% @private
stop(_State) ->
    ok.
