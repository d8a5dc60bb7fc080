%% EUnit tests of py_term: terms from Python decode under an atom budget. Terms
%% whose atoms all exist cost nothing; new atoms are charged once per distinct
%% name; past the budget nothing is created; node names inside pids count too;
%% deep and large terms are walked without recursion. Pure: no port, no app.
-module(py_term_tests).

-include_lib("eunit/include/eunit.hrl").

%% A fresh atom name per call (never written in this module's source).
name(Tag) ->
    list_to_binary(io_lib:format("py_term_tests_~s_~b", [Tag, erlang:unique_integer([positive])])).

atom_ext(Name) -> <<119, (byte_size(Name)), Name/binary>>.

list_of(Elems) -> iolist_to_binary([<<131, 108, (length(Elems)):32>>, Elems, <<106>>]).

existing_atoms_cost_nothing_test() ->
    B = py_term:new_budget(0),
    T = [ok, true, {a, self(), make_ref(), fun erlang:abs/1, fun() -> ok end}, #{k => 1.5},
         <<1, 2>>, "str", 1 bsl 100, 300, 1.0e10, [1 | 2], <<1:3>>],
    ?assertEqual({ok, T}, py_term:decode(term_to_binary(T), B)),
    ?assertEqual(0, py_term:used(B)).

%% A result that is one large binary is a part of the frame, not a copy; a
%% smaller one, or one inside another term, decodes as binary_to_term does.
large_binary_result_is_not_copied_test() ->
    B = py_term:new_budget(0),
    Big = binary:copy(<<3>>, 65536),
    Frame = <<"header", (term_to_binary(Big))/binary>>,
    Body = binary_part(Frame, 6, byte_size(Frame) - 6),
    {ok, Got} = py_term:decode(Body, B),
    ?assertEqual(Big, Got),
    ?assertEqual(byte_size(Frame), binary:referenced_byte_size(Got)),
    Small = binary:copy(<<3>>, 65535),
    ?assertEqual({ok, Small}, py_term:decode(term_to_binary(Small), B)),
    ?assertEqual({ok, [Big]}, py_term:decode(term_to_binary([Big]), B)),
    %% A length that does not match the body: as binary_to_term decides.
    ?assertEqual({error, badarg}, py_term:decode(<<131, 109, 65536:32, Small/binary>>, B)),
    ?assertEqual({ok, Big}, py_term:decode(<<131, 109, 65536:32, Big/binary, 0>>, B)),
    ?assertEqual(0, py_term:used(B)).

new_atoms_are_charged_once_each_test() ->
    B = py_term:new_budget(3),
    A = name("a"),
    {ok, [X, X]} = py_term:decode(list_of([atom_ext(A), atom_ext(A)]), B),
    ?assertEqual(A, atom_to_binary(X, utf8)),
    ?assertEqual(1, py_term:used(B)),
    %% The same name again: it exists now, so it is free.
    {ok, _} = py_term:decode(<<131, (atom_ext(A))/binary>>, B),
    ?assertEqual(1, py_term:used(B)).

over_budget_creates_nothing_test() ->
    B = py_term:new_budget(2),
    Names = [name("over") || _ <- lists:seq(1, 3)],
    ?assertEqual({error, {atom_limit, 2}}, py_term:decode(list_of([atom_ext(N) || N <- Names]), B)),
    ?assertEqual(0, py_term:used(B)),
    [?assertError(badarg, binary_to_existing_atom(N, utf8)) || N <- Names].

node_names_in_pids_are_atoms_test() ->
    B = py_term:new_budget(1),
    <<131, 88, 100, L:16, _:L/binary, Tail/binary>> = term_to_binary(self()),
    Node = name("node"),
    {ok, Pid} = py_term:decode(<<131, 88, (atom_ext(Node))/binary, Tail/binary>>, B),
    ?assert(is_pid(Pid)),
    ?assertEqual(1, py_term:used(B)).

%% Building a million-element term takes a while on a loaded machine.
a_million_new_atoms_are_refused_test_() ->
    {timeout, 120, fun a_million_new_atoms_are_refused/0}.

a_million_new_atoms_are_refused() ->
    B = py_term:new_budget(100),
    Prefix = name("million"),
    Elems = [atom_ext(<<Prefix/binary, "_", (integer_to_binary(I))/binary>>)
             || I <- lists:seq(1, 1000000)],
    ?assertEqual({error, {atom_limit, 100}}, py_term:decode(list_of(Elems), B)),
    ?assertEqual(0, py_term:used(B)).

infinity_budget_counts_test() ->
    B = py_term:new_budget(infinity),
    {ok, _} = py_term:decode(<<131, (atom_ext(name("inf")))/binary>>, B),
    ?assertEqual(1, py_term:used(B)),
    ?assertEqual(infinity, py_term:limit(B)).

deep_terms_test() ->
    B = py_term:new_budget(1),
    Deep = lists:foldl(fun(_, Acc) -> [Acc] end, [], lists:seq(1, 100000)),
    ?assertEqual({ok, Deep}, py_term:decode(term_to_binary(Deep), B)),
    %% A deep term that hides one new atom at the bottom.
    Atom = atom_ext(name("deep")),
    Bin = iolist_to_binary([<<131>>, lists:duplicate(10000, <<108, 1:32>>), Atom,
                            lists:duplicate(10000, <<106>>)]),
    {ok, _} = py_term:decode(Bin, B),
    ?assertEqual(1, py_term:used(B)).

malformed_is_badarg_test() ->
    B = py_term:new_budget(10),
    ?assertEqual({error, badarg}, py_term:decode(<<131, 119, 200, "ab">>, B)),
    ?assertEqual({error, badarg}, py_term:decode(<<"not etf">>, B)),
    ?assertEqual({error, badarg}, py_term:decode(<<131, 108, 0, 0, 0, 5, 106>>, B)),
    ?assertEqual(0, py_term:used(B)).
