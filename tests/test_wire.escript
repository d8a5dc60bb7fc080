#!/usr/bin/env escript
%% Checks that every PYPORT_* number defined in include/pyport/wire.h is defined
%% with the same value in include/pyport_wire.hrl, and the other way round.
%% Usage: test_wire.escript WIRE_H WIRE_HRL
-mode(compile).

main([H, Hrl]) ->
    C = defines(H, "^#define\\s+(PYPORT_[A-Z0-9_]+)\\s+\\(?([0-9u* ]+)\\)?"),
    E = defines(Hrl, "^-define\\((PYPORT_[A-Z0-9_]+),\\s*\\(?([0-9* ]+)\\)?\\)"),
    Missing = [K || K <- maps:keys(C), not maps:is_key(K, E)]
        ++ [K || K <- maps:keys(E), not maps:is_key(K, C)],
    Different = [{K, V, maps:get(K, E)} || {K, V} <- maps:to_list(C),
                                          maps:is_key(K, E), V =/= maps:get(K, E)],
    io:format("C: ~p~nErlang: ~p~n", [C, E]),
    case {map_size(C) > 5, Missing, Different} of
        {true, [], []} -> halt(0);
        _ -> io:format("missing: ~p~ndifferent: ~p~n", [Missing, Different]), halt(1)
    end.

defines(File, Re) ->
    {ok, Bin} = file:read_file(File),
    Lines = string:split(binary_to_list(Bin), "\n", all),
    maps:from_list([{Name, eval(Expr)} || L <- Lines,
                                          {match, [Name, Expr]} <- [re:run(L, Re, [{capture, all_but_first, list}])]]).

eval(Expr) ->
    Clean = [C || C <- Expr, C =/= $u],
    {ok, Tokens, _} = erl_scan:string(Clean ++ "."),
    {ok, [Form]} = erl_parse:parse_exprs(Tokens),
    {value, V, _} = erl_eval:expr(Form, []),
    V.
