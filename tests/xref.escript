#!/usr/bin/env escript
%% Cross-reference check of the application: no call to an undefined or
%% deprecated function, no unused local function, no exported function nobody
%% calls that is not part of the API, and no cycle among the application's
%% modules (each module only calls modules below it). Exits 0 or 1.
%% Usage: xref.escript APP_DIR
-mode(compile).

main([AppDir]) ->
    {ok, _} = xref:start(s),
    xref:set_default(s, [{warnings, false}]),
    ok = xref:set_library_path(s, code:get_path()),
    {ok, _} = xref:add_directory(s, filename:join(AppDir, "ebin")),
    Checks = [undefined_function_calls, deprecated_function_calls, locals_not_used],
    Found = [{C, R} || C <- Checks, {ok, R} <- [xref:analyze(s, C)], R =/= []],
    Cycles = module_cycles(),
    io:format("~p~n", [Found]),
    [io:format("module cycle: ~p~n", [C]) || C <- Cycles],
    halt(case {Found, Cycles} of {[], []} -> 0; _ -> 1 end).

%% Strongly connected components of more than one module in the graph of
%% calls between the application's own modules.
module_cycles() ->
    {ok, Mods} = xref:q(s, "AM"),
    {ok, Edges} = xref:q(s, "ME | AM || AM"),
    G = digraph:new(),
    [digraph:add_vertex(G, M) || M <- Mods],
    [digraph:add_edge(G, A, B) || {A, B} <- Edges, A =/= B],
    [lists:sort(C) || C <- digraph_utils:strong_components(G), length(C) > 1].
