#!/usr/bin/env escript
%% The cross-language contract of the codec. Erlang writes each fixture term
%% with term_to_binary; the C codec (golden_roundtrip) decodes it to Python and
%% encodes it back; Erlang checks the result is the term docs/types.md promises
%% (the same term, or its documented normal form) and that terms the codec must
%% refuse are refused.
%% Usage: golden.escript GOLDEN_ROUNDTRIP_BINARY WORK_DIR
-mode(compile).

main([Exe, Dir]) ->
    _ = file:del_dir_r(Dir),
    ok = filelib:ensure_path(filename:join(Dir, "x")),
    Cases = cases(),
    lists:foreach(fun({Name, Term, _}) ->
                          ok = file:write_file(filename:join(Dir, Name ++ ".etf"),
                                               term_to_binary(Term))
                  end, Cases),
    Out = os:cmd(Exe ++ " " ++ Dir ++ "; echo status=$?"),
    io:format("~s", [Out]),
    Failures = [F || F <- [check(Dir, C) || C <- Cases], F =/= ok],
    [io:format("FAIL ~p~n", [F]) || F <- Failures],
    io:format("~b fixtures, ~b failures~n", [length(Cases), length(Failures)]),
    case {Failures, string:find(Out, "status=0")} of
        {[], nomatch} -> halt(1);
        {[], _} -> halt(0);
        _ -> halt(1)
    end.

check(Dir, {Name, Term, Expect}) ->
    OutFile = filename:join(Dir, Name ++ ".out"),
    ErrFile = filename:join(Dir, Name ++ ".err"),
    case {file:read_file(OutFile), file:read_file(ErrFile), Expect} of
        {{ok, Bin}, _, same} -> compare(Name, Term, binary_to_term(Bin));
        {{ok, Bin}, _, {as, Want}} -> compare(Name, Want, binary_to_term(Bin));
        {_, {ok, Msg}, {error, Part}} ->
            case string:find(Msg, Part) of
                nomatch -> {Name, wrong_error, Msg};
                _ -> ok
            end;
        {Out, Err, _} -> {Name, Out, Err, Expect}
    end.

compare(_, Want, Want) -> ok;
compare(Name, Want, Got) -> {Name, {want, Want}, {got, Got}}.

deep(0, Acc) -> Acc;
deep(N, Acc) -> deep(N - 1, [Acc]).

cases() ->
    Pid = self(),
    Ref = make_ref(),
    Port = hd(erlang:ports()),
    Fun = fun(X) -> X + 1 end,
    [{"small_int", 42, same},
     {"neg_int", -7, same},
     {"int32", 1 bsl 31, same},
     {"int64_max", (1 bsl 63) - 1, same},
     {"int64_min", -(1 bsl 63), same},
     {"uint64", (1 bsl 64) - 1, same},
     {"bignum", 1 bsl 200, same},
     {"neg_bignum", -(1 bsl 200) - 12345, same},
     {"huge_bignum", 1 bsl 40000, same},
     {"float", 3.25, same},
     {"neg_zero", -0.0, same},
     {"float_tiny", 5.0e-324, same},
     {"true", true, same},
     {"false", false, same},
     {"none", none, same},
     {"nil", nil, {as, none}},
     {"undefined", undefined, {as, none}},
     {"atom", hello, same},
     {"atom_utf8", 'héllo_ünïcode', same},
     {"atom_long", list_to_atom(lists:duplicate(255, $a)), same},
     {"binary_utf8", <<"hello é"/utf8>>, same},
     {"binary_empty", <<>>, same},
     {"binary_invalid_utf8", <<255, 254, 0, 1>>, same},
     {"bytes_tuple", {bytes, <<"abc">>}, {as, <<"abc">>}},
     {"bitstring", <<1:3>>, same},
     {"charlist", "abc", same},
     {"charlist_unicode", [1000, 2000], same},
     {"empty_list", [], same},
     {"list", [1, <<"a">>, [2, [3]]], same},
     {"improper_list", [1, 2 | 3], same},
     {"nested_improper", [a, [b | c]], same},
     {"tuple", {1, 2, 3}, same},
     {"empty_tuple", {}, same},
     {"large_tuple", list_to_tuple(lists:seq(1, 300)), same},
     {"map", #{a => 1, <<"b">> => [2]}, same},
     {"map_tuple_key", #{{1, 2} => x}, same},
     {"map_list_key", #{[1, 2] => x}, same},
     {"map_map_key", #{#{a => 1} => x}, same},
     {"empty_map", #{}, same},
     {"pid", Pid, same},
     {"ref", Ref, same},
     {"port", Port, same},
     {"fun", Fun, same},
     {"export_fun", fun lists:map/2, same},
     {"mixed", {Pid, [Ref, #{k => {Port, 1.5}}], <<"x">>}, same},
     {"list_100k", lists:seq(1, 100000), same},
     {"binary_1mb", binary:copy(<<"abcdefgh">>, 131072), same},
     {"deep_ok", deep(900, []), same},
     {"deep_too_far", deep(5000, []), {error, "deeper than"}}].
