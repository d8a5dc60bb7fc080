%% EUnit tests of py_protocol, the Erlang side of the wire grammar in
%% docs/protocol.md: request frames decode to the documented tuples, split/1
%% separates header and body, names and code are normalised, exit statuses and
%% error bodies map to the documented reasons. Pure functions: no port, no app.
-module(py_protocol_tests).

-include_lib("eunit/include/eunit.hrl").

%%% Request frames ------------------------------------------------------------

call_frame_test() ->
    Pid = self(),
    F = py_protocol:call(7, Pid, 0, math, <<"sqrt">>, [16], #{k => 1}),
    ?assert(is_binary(F)),
    ?assertEqual({call, 7, Pid, 0, math, <<"sqrt">>, [16], #{k => 1}}, binary_to_term(F)).

%% A large binary argument (or keyword value) is referred to by the frame, an
%% I/O vector, not copied into it; the bytes on the wire are the same term.
large_binary_argument_is_referred_to_test() ->
    Pid = self(),
    Big = binary:copy(<<7>>, 65536),
    Small = binary:copy(<<7>>, 65535),
    [begin
         F = Build(),
         ?assert(is_list(F)),
         ?assert(lists:any(fun(Part) -> Part =:= Big andalso
                                            binary:referenced_byte_size(Part) =:= 65536 end, F)),
         ?assertEqual(Want, binary_to_term(iolist_to_binary(F)))
     end
     || {Build, Want} <-
            [{fun() -> py_protocol:call(7, Pid, 0, m, f, [1, Big], #{}) end,
              {call, 7, Pid, 0, m, f, [1, Big], #{}}},
             {fun() -> py_protocol:call(7, Pid, 0, m, f, [], #{k => Big}) end,
              {call, 7, Pid, 0, m, f, [], #{k => Big}}},
             {fun() -> py_protocol:method(8, Pid, 0, {py_ref, Pid, 1, Pid, 5}, write, [Big], #{}) end,
              {method, 8, Pid, 0, {py_ref, Pid, 1, Pid, 5}, write, [Big], #{}}}]],
    %% Below the size, and nested deeper than an argument: one binary, as before.
    ?assert(is_binary(py_protocol:call(7, Pid, 0, m, f, [Small], #{}))),
    ?assert(is_binary(py_protocol:call(7, Pid, 0, m, f, [{Big}], #{}))),
    ?assertEqual({call, 7, Pid, 0, m, f, [{Big}], #{}},
                 binary_to_term(py_protocol:call(7, Pid, 0, m, f, [{Big}], #{}))).

eval_frame_test() ->
    Pid = self(),
    ?assertEqual({eval, 8, Pid, 3, <<"x + 1">>, #{x => 1}},
                 binary_to_term(py_protocol:eval(8, Pid, 3, <<"x + 1">>, #{x => 1}))).

exec_frame_test() ->
    Pid = self(),
    ?assertEqual({exec, 9, Pid, 0, <<"import os">>},
                 binary_to_term(py_protocol:exec(9, Pid, 0, <<"import os">>))).

ref_and_stream_frames_test() ->
    Pid = self(),
    Ref = {py_ref, Pid, 1, Pid, 5},
    ?assertEqual({method, 12, Pid, 4, Ref, append, [1], #{}},
                 binary_to_term(py_protocol:method(12, Pid, 4, Ref, append, [1], #{}))),
    ?assertEqual({getattr, 13, Pid, 0, Ref, maxlen},
                 binary_to_term(py_protocol:getattr(13, Pid, 0, Ref, maxlen))),
    Source = {eval, <<"range(3)">>, #{}},
    ?assertEqual({stream, 14, Pid, 0, Source, 16},
                 binary_to_term(py_protocol:stream(14, Pid, 0, Source, 16))).

control_frames_test() ->
    Pid = self(),
    ?assertEqual({drop_env, Pid}, binary_to_term(py_protocol:drop_env(Pid))),
    ?assertEqual({cancel, 10}, binary_to_term(py_protocol:cancel(10))),
    ?assertEqual({interrupt, keyboard}, binary_to_term(py_protocol:interrupt(keyboard))),
    ?assertEqual({interrupt, memory}, binary_to_term(py_protocol:interrupt(memory))),
    ?assertEqual({info, 11}, binary_to_term(py_protocol:info(11))),
    ?assertEqual({credit, output, 4096}, binary_to_term(py_protocol:credit(output, 4096))),
    ?assertEqual({credit, send, 1}, binary_to_term(py_protocol:credit(send, 1))).

interrupt_rejects_other_kinds_test() ->
    ?assertError(function_clause, py_protocol:interrupt(sigterm)).

frames_are_plain_uncompressed_etf_test() ->
    %% The port refuses compressed ETF, so even a large frame must be plain.
    Big = binary:copy(<<"x = 1\n">>, 10000),
    <<131, Tag, _/binary>> = py_protocol:exec(1, self(), 0, Big),
    ?assertNotEqual(80, Tag).

version_test() ->
    ?assertEqual(2, py_protocol:version()).

%%% split/1 -------------------------------------------------------------------

split_two_terms_test() ->
    Body = term_to_binary({ok, [1, 2, 3]}),
    Frame = <<(term_to_binary({reply, 42}))/binary, Body/binary>>,
    ?assertEqual({ok, {reply, 42}, Body}, py_protocol:split(Frame)),
    {ok, _, B} = py_protocol:split(Frame),
    ?assertEqual({ok, [1, 2, 3]}, binary_to_term(B)).

split_one_term_test() ->
    Frame = term_to_binary({ready, 1, <<"3.11.7">>, 1234}),
    ?assertEqual({ok, {ready, 1, <<"3.11.7">>, 1234}, <<>>}, py_protocol:split(Frame)).

split_error_frame_test() ->
    Body = term_to_binary({pyerr, "ValueError", "bad", "Traceback..."}),
    Frame = <<(term_to_binary({error, 3}))/binary, Body/binary>>,
    ?assertEqual({ok, {error, 3}, Body}, py_protocol:split(Frame)).

split_does_not_decode_the_body_test() ->
    %% The body is handed on undecoded: bytes that are not a term stay bytes.
    Frame = <<(term_to_binary({reply, 5}))/binary, 131, 255, 1, 2>>,
    ?assertEqual({ok, {reply, 5}, <<131, 255, 1, 2>>}, py_protocol:split(Frame)).

split_rejects_non_etf_test() ->
    ?assertEqual(error, py_protocol:split(<<"not a term">>)),
    ?assertEqual(error, py_protocol:split(term_to_binary(not_a_tuple))).

split_creates_no_atom_test() ->
    %% A header naming an atom that does not exist is not the port's: refused,
    %% and the atom is not created.
    Name = <<"py_protocol_tests_never_an_atom">>,
    Header = <<131, 104, 2, 119, (byte_size(Name)), Name/binary, 97, 1>>,
    ?assertEqual(error, py_protocol:split(Header)),
    ?assertError(badarg, binary_to_existing_atom(Name, utf8)).

port_atoms_exist_test() ->
    [?assertEqual(A, binary_to_existing_atom(atom_to_binary(A, utf8), utf8))
     || A <- py_protocol:port_atoms()].

%%% name/1 and code/1 -----------------------------------------------------------

name_atom_and_binary_pass_through_test() ->
    ?assertEqual(math, py_protocol:name(math)),
    ?assertEqual('os.path', py_protocol:name('os.path')),
    ?assertEqual(<<"sqrt">>, py_protocol:name(<<"sqrt">>)).

name_strings_become_utf8_binaries_test() ->
    ?assertEqual(<<"sqrt">>, py_protocol:name("sqrt")),
    ?assertEqual(<<"héllo"/utf8>>, py_protocol:name("héllo")),
    ?assertEqual(<<"€😀"/utf8>>, py_protocol:name([16#20AC, 16#1F600])),
    ?assertEqual(<<>>, py_protocol:name("")).

name_iolist_test() ->
    ?assertEqual(<<"os.path">>, py_protocol:name(["os", <<".">>, "path"])).

name_bad_input_test_() ->
    [?_assertEqual({error, badarg}, py_protocol:name(Bad))
     || Bad <- [42, 1.5, {a}, #{}, self(), make_ref(),
                [16#110000], [-1],
                [foo], [$a | b]]].

code_binary_passes_through_test() ->
    ?assertEqual(<<"1 + 1">>, py_protocol:code(<<"1 + 1">>)).

code_strings_and_iolists_test() ->
    ?assertEqual(<<"x = 'é'"/utf8>>, py_protocol:code("x = 'é'")),
    ?assertEqual(<<"a = 1\nb = 2">>, py_protocol:code(["a = 1", $\n, <<"b = 2">>])),
    ?assertEqual(<<"s = '€'"/utf8>>, py_protocol:code(["s = '", 16#20AC, "'"])).

code_bad_input_test_() ->
    [?_assertEqual({error, badarg}, py_protocol:code(Bad))
     || Bad <- [42, foo, {<<"x">>}, #{}, [foo], [16#110000], [$a | b], [<<255>>]]].

locals_test() ->
    ?assertEqual(#{a => 1}, py_protocol:locals(#{a => 1})),
    ?assertEqual({error, badarg}, py_protocol:locals([{a, 1}])).

%%% exit_reason/1 ---------------------------------------------------------------

exit_reason_pyport_statuses_test() ->
    ?assertEqual({exit, 0}, py_protocol:exit_reason(0, true)),
    ?assertEqual({exit, 64, usage}, py_protocol:exit_reason(64, true)),
    ?assertEqual({exit, 65, python_failed_to_start}, py_protocol:exit_reason(65, true)),
    ?assertEqual({exit, 66, framing_lost}, py_protocol:exit_reason(66, true)),
    ?assertEqual({exit, 67, out_of_memory}, py_protocol:exit_reason(67, true)),
    ?assertEqual({exit, 68, io_error}, py_protocol:exit_reason(68, true)),
    ?assertEqual({exit, 69, status_lost}, py_protocol:exit_reason(69, true)).

exit_reason_user_statuses_are_not_named_test() ->
    %% os._exit(66) in Python is the user's status, not pyport's framing_lost.
    [?assertEqual({exit, N}, py_protocol:exit_reason(N, false)) || N <- [0, 64, 65, 66, 67, 68, 69]].

exit_reason_signals_test() ->
    [?assertEqual({signal, 'SIGSEGV'}, py_protocol:exit_reason(139, Own)) || Own <- [true, false]],
    ?assertEqual({signal, 'SIGKILL'}, py_protocol:exit_reason(137, false)),
    ?assertEqual({signal, 'SIGABRT'}, py_protocol:exit_reason(134, false)),
    ?assertEqual({signal, 'SIGTERM'}, py_protocol:exit_reason(143, false)),
    ?assertEqual({signal, 'SIGBUS'}, py_protocol:exit_reason(135, false)),
    %% A signal without a name in the table keeps its number.
    ?assertEqual({signal, 40}, py_protocol:exit_reason(168, false)).

exit_reason_other_statuses_test() ->
    [?assertEqual({exit, N}, py_protocol:exit_reason(N, Own))
     || N <- [1, 2, 63, 70, 128, 255], Own <- [true, false]].

%%% error_result/1 --------------------------------------------------------------

error_result_pyerr_test() ->
    Body = {pyerr, "ZeroDivisionError", "division by zero", "Traceback (most recent...)"},
    ?assertEqual({{error, {"ZeroDivisionError", "division by zero"}},
                  #{type => "ZeroDivisionError", message => "division by zero",
                    traceback => "Traceback (most recent...)"}},
                 py_protocol:error_result(Body)).

error_result_other_reasons_test() ->
    ?assertEqual({{error, {badarg, "bad request id"}}, undefined},
                 py_protocol:error_result({badarg, "bad request id"})),
    ?assertEqual({{error, {too_large, 300, 100}}, undefined},
                 py_protocol:error_result({too_large, 300, 100})),
    ?assertEqual({{error, cancelled}, undefined}, py_protocol:error_result(cancelled)).
