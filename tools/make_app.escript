#!/usr/bin/env escript
%% Writes ebin/pyport.app from src/pyport.app.src with the module list filled in.
%% Usage: make_app.escript SRC OUT mod1,mod2,...
main([Src, Out, Mods]) ->
    {ok, [{application, App, Props}]} = file:consult(Src),
    Modules = [list_to_atom(M) || M <- string:split(Mods, ",", all), M =/= ""],
    Props1 = lists:keystore(modules, 1, Props, {modules, Modules}),
    ok = file:write_file(Out, io_lib:format("~p.~n", [{application, App, Props1}])).
