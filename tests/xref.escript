#!/usr/bin/env escript
%% Cross-reference check of the application: no call to an undefined or
%% deprecated function, no unused local function. Exits 0 or 1.
%% Usage: xref.escript APP_DIR
-mode(compile).

main([AppDir]) ->
    {ok, _} = xref:start(s),
    xref:set_default(s, [{warnings, false}]),
    ok = xref:set_library_path(s, code:get_path()),
    {ok, _} = xref:add_directory(s, filename:join(AppDir, "ebin")),
    Checks = [undefined_function_calls, deprecated_function_calls, locals_not_used],
    Found = [{C, R} || C <- Checks, {ok, R} <- [xref:analyze(s, C)], R =/= []],
    io:format("~p~n", [Found]),
    halt(case Found of [] -> 0; _ -> 1 end).
