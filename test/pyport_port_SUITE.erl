%% Port-level tests: open the pyport program directly and speak docs/protocol.md by
%% hand (term_to_binary frames out, binary_to_term(F, [used]) to split header and
%% body in), with no py_context in between. Covers the ready frame, replies, one
%% answer per request, malformed and oversized frames, cancel/interrupt/info
%% (each reaching only its own request), stray fd writes, output frames, NUL
%% bytes, coroutines that raise SystemExit, the exiting frame, the crash file,
%% shutdown and exit statuses.
-module(pyport_port_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
%% PYPORT_BATCH_TAG of include/pyport/wire.h: the first byte of a batch frame.
-define(PYPORT_BATCH_TAG, 66).

-export([all/0, suite/0, groups/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([ready_frame_comes_first/1, call_eval_exec_reply/1, python_error_reply/1,
         env_frame_once_per_pid/1, every_request_gets_exactly_one_reply/1,
         not_etf_is_dropped/1, compressed_etf_is_not_run/1, non_tuple_is_dropped/1,
         unknown_op_with_id_is_badarg/1, unknown_op_without_id_is_dropped/1,
         wrong_arity_is_badarg/1, bad_request_ids_are_dropped/1, bad_caller_pid_is_badarg/1,
         non_list_args_is_badarg/1, improper_list_args_is_badarg/1,
         non_binary_code_is_badarg/1, non_map_kwargs_is_badarg/1,
         zero_length_frame_is_dropped/1, truncated_term_is_badarg/1,
         oversized_request_is_too_large/1, oversized_reply_is_too_large/1,
         batch_frame_is_read_as_its_frames/1, malformed_batch_keeps_its_whole_frames/1,
         cancel_queued_request_never_runs/1, cancel_running_request_raises/1,
         interrupt_keyboard_raises/1, info_answered_while_busy/1,
         stray_fd_writes_become_output_frames/1, print_output_precedes_reply/1,
         close_exits_when_idle/1, close_exits_when_stuck/1,
         truncated_frame_then_eof_exits_66/1, bad_command_line_exits_64/1,
         help_exits_0/1,
         cancel_waits_for_the_nested_request_on_top/1, two_cancels_at_once_both_count/1,
         cancel_reaches_a_spinning_coroutine/1, coroutine_callback_names_its_request/1,
         other_callers_wait_for_the_call_chain/1, bad_parent_is_badarg/1,
         nul_in_code_is_badarg/1, nul_in_names_is_badarg/1, atom_with_nul_round_trips/1,
         system_exit_in_a_coroutine_is_its_error/1,
         framing_lost_is_announced_before_exit_66/1, out_of_memory_is_announced_before_exit_67/1,
         crash_file_gets_the_fault_dump/1, unopenable_crash_file_exits_64/1,
         thread_output_waits_for_credit/1, fd_output_waits_for_credit/1,
         log_records_wait_for_credit/1, sends_wait_for_their_own_credit/1,
         cancel_reaches_a_request_blocked_on_credit/1,
         frame_larger_than_the_window_goes_alone/1, no_window_means_no_limit/1,
         bad_window_is_badarg/1,
         atom_budget_bounds_new_atoms/1, atom_budget_spares_known_atoms/1,
         atom_budget_covers_terms_and_replies/1, bad_atom_budget_is_badarg/1]).
-export([ready_frame_comes_first/0, call_eval_exec_reply/0, python_error_reply/0,
         env_frame_once_per_pid/0, every_request_gets_exactly_one_reply/0,
         not_etf_is_dropped/0, compressed_etf_is_not_run/0, non_tuple_is_dropped/0,
         unknown_op_with_id_is_badarg/0, unknown_op_without_id_is_dropped/0,
         wrong_arity_is_badarg/0, bad_request_ids_are_dropped/0, bad_caller_pid_is_badarg/0,
         non_list_args_is_badarg/0, improper_list_args_is_badarg/0,
         non_binary_code_is_badarg/0, non_map_kwargs_is_badarg/0,
         zero_length_frame_is_dropped/0, truncated_term_is_badarg/0,
         oversized_request_is_too_large/0, oversized_reply_is_too_large/0,
         cancel_queued_request_never_runs/0, cancel_running_request_raises/0,
         interrupt_keyboard_raises/0, info_answered_while_busy/0,
         stray_fd_writes_become_output_frames/0, print_output_precedes_reply/0,
         close_exits_when_idle/0, close_exits_when_stuck/0,
         truncated_frame_then_eof_exits_66/0, bad_command_line_exits_64/0,
         help_exits_0/0,
         cancel_waits_for_the_nested_request_on_top/0, two_cancels_at_once_both_count/0,
         cancel_reaches_a_spinning_coroutine/0, coroutine_callback_names_its_request/0,
         other_callers_wait_for_the_call_chain/0, bad_parent_is_badarg/0,
         nul_in_code_is_badarg/0, nul_in_names_is_badarg/0, atom_with_nul_round_trips/0,
         system_exit_in_a_coroutine_is_its_error/0,
         framing_lost_is_announced_before_exit_66/0, out_of_memory_is_announced_before_exit_67/0,
         crash_file_gets_the_fault_dump/0, unopenable_crash_file_exits_64/0,
         thread_output_waits_for_credit/0, fd_output_waits_for_credit/0,
         log_records_wait_for_credit/0, sends_wait_for_their_own_credit/0,
         cancel_reaches_a_request_blocked_on_credit/0,
         frame_larger_than_the_window_goes_alone/0, no_window_means_no_limit/0,
         bad_window_is_badarg/0,
         atom_budget_bounds_new_atoms/0, atom_budget_spares_known_atoms/0,
         atom_budget_covers_terms_and_replies/0, bad_atom_budget_is_badarg/0]).

%% How long a new port may take to say ready (Python start-up, sanitizer build).
-define(READY_TIMEOUT, 30000).
%% How long any single answer may take on a loaded machine.
-define(ANSWER_TIMEOUT, 60000).
%% Deadline for "eventually" conditions (a request is running, output arrived).
-define(EVENTUALLY_MS, 10000).
%% Pause between polls of an "eventually" condition.
-define(POLL_MS, 20).
%% docs/protocol.md: the port exits at most 500 ms after stdin closes, even with
%% Python stuck; the check allows that plus scheduling slack.
-define(EXIT_DEADLINE_MS, 1000).
%% How long a bad command line may take to be refused.
-define(EXIT_STATUS_TIMEOUT, 30000).
%% A producer held by its credit window sends nothing more: frames are collected
%% until none has come for this long.
-define(QUIET_MS, 500).
%% Credit windows of the flow-control cases (bytes).
-define(WINDOW, 1000).
%% Atom budget of the atom cases, and how many new atoms Python tries.
-define(MAX_ATOMS, 1000).
-define(ATOM_TRIES, 100000).
%% Python: runs f in a daemon thread a moment later, after the request that
%% starts it has been answered (so the test sees every frame it sends).
-define(START_LATER, "def start_later(f):\n"
                     "    t = threading.Timer(0.2, f)\n"
                     "    t.daemon = True\n"
                     "    t.start()\n").

suite() ->
    [{timetrap, {minutes, 10}}].

all() ->
    [{group, replies}, {group, malformed}, {group, control}, {group, lifecycle},
     {group, hardening}, {group, flow_control}, {group, atoms}].

groups() ->
    [{replies, [],
      [ready_frame_comes_first, call_eval_exec_reply, python_error_reply,
       env_frame_once_per_pid, every_request_gets_exactly_one_reply,
       batch_frame_is_read_as_its_frames]},
     {malformed, [],
      [not_etf_is_dropped, compressed_etf_is_not_run, non_tuple_is_dropped,
       unknown_op_with_id_is_badarg, unknown_op_without_id_is_dropped, wrong_arity_is_badarg,
       bad_request_ids_are_dropped, bad_caller_pid_is_badarg, non_list_args_is_badarg,
       improper_list_args_is_badarg, non_binary_code_is_badarg, non_map_kwargs_is_badarg,
       zero_length_frame_is_dropped, truncated_term_is_badarg,
       oversized_request_is_too_large, oversized_reply_is_too_large,
       malformed_batch_keeps_its_whole_frames]},
     {control, [],
      [cancel_queued_request_never_runs, cancel_running_request_raises,
       interrupt_keyboard_raises, info_answered_while_busy,
       stray_fd_writes_become_output_frames, print_output_precedes_reply]},
     {lifecycle, [],
      [close_exits_when_idle, close_exits_when_stuck, truncated_frame_then_eof_exits_66,
       bad_command_line_exits_64, help_exits_0]},
     {hardening, [],
      [cancel_waits_for_the_nested_request_on_top, two_cancels_at_once_both_count,
       cancel_reaches_a_spinning_coroutine, coroutine_callback_names_its_request,
       other_callers_wait_for_the_call_chain, bad_parent_is_badarg,
       nul_in_code_is_badarg, nul_in_names_is_badarg, atom_with_nul_round_trips,
       system_exit_in_a_coroutine_is_its_error,
       framing_lost_is_announced_before_exit_66, out_of_memory_is_announced_before_exit_67,
       crash_file_gets_the_fault_dump, unopenable_crash_file_exits_64]},
     {flow_control, [],
      [thread_output_waits_for_credit, fd_output_waits_for_credit, log_records_wait_for_credit,
       sends_wait_for_their_own_credit, cancel_reaches_a_request_blocked_on_credit,
       frame_larger_than_the_window_goes_alone, no_window_means_no_limit,
       bad_window_is_badarg]},
     {atoms, [],
      [atom_budget_bounds_new_atoms, atom_budget_spares_known_atoms,
       atom_budget_covers_terms_and_replies, bad_atom_budget_is_badarg]}].

init_per_suite(Config) ->
    Exe = executable(),
    case filelib:is_regular(Exe) of
        true -> [{exe, Exe} | Config];
        false -> {skip, {no_port_program, Exe}}
    end.

end_per_suite(_Config) ->
    ok.

init_per_testcase(_Case, Config) ->
    Config.

%% Ports opened by a case are linked to its process and close with it; this only
%% checks that no exit status is left unread (a port that died under a case).
end_per_testcase(_Case, _Config) ->
    receive
        {Port, {exit_status, S}} when is_port(Port) -> {fail, {port_exited, S}}
    after 0 -> ok
    end.

%%% ===========================================================================
%%% Replies
%%% ===========================================================================

ready_frame_comes_first() ->
    [{doc, "The first frame is {ready, 2, PythonVersion, OsPid} with the port's real OS pid."}].
ready_frame_comes_first(Config) ->
    Exe = ?config(exe, Config),
    Port = open_port({spawn_executable, Exe}, port_opts([])),
    {os_pid, RealPid} = erlang:port_info(Port, os_pid),
    {{ready, Version, PyVersion, OsPid}, none} = next_frame(Port),
    ?assertEqual(2, Version),
    ?assertEqual(RealPid, OsPid),
    ?assert(is_binary(PyVersion)),
    ?assertMatch(<<"3.", _/binary>>, PyVersion),
    {reply, Same} =
        request(Port, fun(Id) -> eval(Id, <<"__import__('platform').python_version()">>) end),
    ?assertEqual(PyVersion, Same),
    {reply, OsPid} = request(Port, fun(Id) -> eval(Id, <<"__import__('os').getpid()">>) end),
    close(Port).

call_eval_exec_reply() ->
    [{doc, "call, eval and exec are answered {reply, Id} + result term."}].
call_eval_exec_reply(Config) ->
    Port = open_ready(Config),
    ?assertEqual({reply, 4.0},
                 request(Port, fun(Id) -> {call, Id, self(), 0, math, sqrt, [16], #{}} end)),
    ?assertEqual({reply, <<"a-b">>},
                 request(Port, fun(Id) -> {call, Id, self(), 0, <<"__main__">>, <<"str.join">>,
                                           [<<"-">>, [<<"a">>, <<"b">>]], #{}} end)),
    ?assertEqual({reply, 42}, request(Port, fun(Id) -> eval(Id, <<"6 * 7">>) end)),
    ?assertEqual({reply, ok},
                 request(Port, fun(Id) -> exec(Id, <<"x = 5\ndef f(a, b=1): return a * b">>) end)),
    ?assertEqual({reply, 6},
                 request(Port, fun(Id) -> {eval, Id, self(), 0, <<"x + y">>, #{y => 1}} end)),
    ?assertEqual({reply, 15},
                 request(Port, fun(Id) -> {call, Id, self(), 0, '__main__', f, [5], #{b => 3}} end)),
    close(Port).

python_error_reply() ->
    [{doc, "A Python exception is {error, Id} + {pyerr, Type, Message, Traceback} (strings)."}].
python_error_reply(Config) ->
    Port = open_ready(Config),
    {error, {pyerr, Type, Msg, Tb}} = request(Port, fun(Id) -> eval(Id, <<"1 / 0">>) end),
    ?assertEqual("ZeroDivisionError", Type),
    ?assertEqual("division by zero", Msg),
    ?assert(io_lib:printable_unicode_list(Tb)),
    ?assertNotEqual(nomatch, string:find(Tb, "ZeroDivisionError")),
    {error, {pyerr, "NameError", _, _}} =
        request(Port, fun(Id) -> eval(Id, <<"undefined_name">>) end),
    {error, {pyerr, "SyntaxError", _, _}} = request(Port, fun(Id) -> exec(Id, <<"def (">>) end),
    {error, {pyerr, "ModuleNotFoundError", _, _}} =
        request(Port, fun(Id) -> {call, Id, self(), 0, no_such_module_xyz, f, [], #{}} end),
    alive(Port),
    close(Port).

env_frame_once_per_pid() ->
    [{doc, "The first request of a pid announces {env, Pid} before its reply; later ones do not."}].
env_frame_once_per_pid(Config) ->
    Port = open_ready(Config),
    Self = self(),
    {reply, 1, Before1} = answer_after(Port, fun(Id) -> eval(Id, <<"1">>) end),
    ?assertEqual([{env, Self}], [H || {H = {env, _}, _} <- Before1]),
    {reply, 2, Before2} = answer_after(Port, fun(Id) -> eval(Id, <<"2">>) end),
    ?assertEqual([], [H || {H = {env, _}, _} <- Before2]),
    Other = spawn(fun() -> receive stop -> ok end end),
    {reply, 3, Before3} =
        answer_after(Port, fun(Id) -> {eval, Id, Other, 0, <<"3">>, #{}} end),
    ?assertEqual([{env, Other}], [H || {H = {env, _}, _} <- Before3]),
    Other ! stop,
    close(Port).

every_request_gets_exactly_one_reply() ->
    [{doc, "1000 mixed requests sent at once get exactly one answer each."}].
every_request_gets_exactly_one_reply(Config) ->
    Port = open_ready(Config),
    N = 1000,
    Ids = lists:seq(1, N),
    lists:foreach(
      fun(Id) ->
              Req = case Id rem 4 of
                        0 -> {call, Id, self(), 0, math, sqrt, [Id], #{}};
                        1 -> eval(Id, <<"41 + 1">>);
                        2 -> exec(Id, <<"y = 1">>);
                        3 -> eval(Id, <<"1 / 0">>)
                    end,
              send(Port, Req)
      end, Ids),
    Counts = collect_answers(Port, N, #{}),
    ?assertEqual(Ids, lists:sort(maps:keys(Counts))),
    ?assertEqual([], [Id || {Id, C} <- maps:to_list(Counts), C =/= 1]),
    %% Anything answered twice would have been sent before this one's answer.
    {reply, 42, Before} = answer_after(Port, fun(Id) -> eval(Id, <<"42">>) end),
    ?assertEqual([], answers(Before)),
    close(Port).

batch_frame_is_read_as_its_frames() ->
    [{doc, "A batch frame (the batch tag, then frames each with its own length) is "
      "read as its frames one by one: each request is answered once, in order."}].
batch_frame_is_read_as_its_frames(Config) ->
    Port = open_ready(Config),
    Ids = [erlang:unique_integer([positive]) || _ <- lists:seq(1, 20)],
    Frames = [term_to_binary(exec(Id, iolist_to_binary(["seen.append(", integer_to_list(Id), ")"])))
              || Id <- Ids],
    {reply, ok} = request(Port, fun(Id) -> exec(Id, <<"seen = []">>) end),
    send_raw(Port, batch(Frames)),
    {reply, Seen, Before} = answer_after(Port, fun(Id) -> eval(Id, <<"seen">>) end),
    ?assertEqual(Ids, Seen),
    ?assertEqual([{{reply, Id}, ok} || Id <- Ids], answers(Before)),
    close(Port).

%%% ===========================================================================
%%% Malformed frames
%%% ===========================================================================

malformed_batch_keeps_its_whole_frames() ->
    [{doc, "A batch whose last length runs past its end: the whole frames before it "
      "are served, the rest is dropped, and the port keeps answering."}].
malformed_batch_keeps_its_whole_frames(Config) ->
    Port = open_ready(Config),
    Ok = term_to_binary(eval(7001, <<"1 + 1">>)),
    send_raw(Port, [batch([Ok]), <<0, 0, 1, 0, 1, 2, 3>>]),
    {reply, 42, Before} = answer_after(Port, fun(Id) -> eval(Id, <<"40 + 2">>) end),
    ?assertEqual([{{reply, 7001}, 2}], answers(Before)),
    dropped(Port, <<?PYPORT_BATCH_TAG, 0, 0, 0, 0>>),
    dropped(Port, <<?PYPORT_BATCH_TAG, 0, 0>>),
    alive(Port),
    close(Port).

not_etf_is_dropped() ->
    [{doc, "Random bytes (not ETF) are dropped; the port keeps answering."}].
not_etf_is_dropped(Config) ->
    Port = open_ready(Config),
    dropped(Port, <<0, (rand:bytes(64))/binary>>),
    dropped(Port, <<"hello, not a term">>),
    dropped(Port, <<131>>),
    dropped(Port, <<130, 104, 1, 100, 0, 1, $x>>),
    close(Port).

compressed_etf_is_not_run() ->
    [{doc, "Compressed ETF is not a request: it is never run (and at most answered badarg)."}].
compressed_etf_is_not_run(Config) ->
    Port = open_ready(Config),
    Id = 901,
    Frame = term_to_binary({exec, Id, self(), 0, binary:copy(<<"ran = True\n">>, 100)},
                           [compressed]),
    <<131, 80, _/binary>> = Frame,
    send_raw(Port, Frame),
    {reply, Answer, Before} =
        answer_after(Port, fun(I) -> eval(I, <<"'ran' in globals()">>) end),
    ?assertEqual(false, Answer),
    case answers(Before) of
        [] -> ok;
        [{{error, Id}, {badarg, Msg}}] -> ?assert(io_lib:printable_unicode_list(Msg));
        Other -> ct:fail({unexpected_answers, Other})
    end,
    close(Port).

non_tuple_is_dropped() ->
    [{doc, "A term that is not a tuple (or a tuple not led by an atom) is dropped."}].
non_tuple_is_dropped(Config) ->
    Port = open_ready(Config),
    dropped(Port, term_to_binary([eval, 1, self(), <<"1">>, #{}])),
    dropped(Port, term_to_binary(eval)),
    dropped(Port, term_to_binary({})),
    dropped(Port, term_to_binary({<<"eval">>, 2, self(), <<"1">>, #{}})),
    dropped(Port, term_to_binary(#{op => eval, id => 3})),
    close(Port).

unknown_op_with_id_is_badarg() ->
    [{doc, "An unknown op with a readable id is answered {error, Id} + {badarg, _}."}].
unknown_op_with_id_is_badarg(Config) ->
    Port = open_ready(Config),
    badarg(Port, fun(Id) -> {frobnicate, Id, self(), <<"x">>} end),
    badarg(Port, fun(Id) -> {frobnicate, Id} end),
    close(Port).

unknown_op_without_id_is_dropped() ->
    [{doc, "An unknown op whose id cannot be read is dropped; the port keeps answering."}].
unknown_op_without_id_is_dropped(Config) ->
    Port = open_ready(Config),
    dropped(Port, term_to_binary({frobnicate})),
    dropped(Port, term_to_binary({frobnicate, not_an_id})),
    dropped(Port, term_to_binary({frobnicate, -3})),
    close(Port).

wrong_arity_is_badarg() ->
    [{doc, "A known op with the wrong number of fields is answered badarg (or dropped "
           "when it has no id)."}].
wrong_arity_is_badarg(Config) ->
    Port = open_ready(Config),
    badarg(Port, fun(Id) -> {call, Id, self(), 0, math, sqrt} end),
    badarg(Port, fun(Id) -> {call, Id, self(), 0, math, sqrt, [4], #{}, extra} end),
    badarg(Port, fun(Id) -> {eval, Id, self(), 0, <<"1">>} end),
    badarg(Port, fun(Id) -> {exec, Id, self(), 0, <<"x = 1">>, #{}} end),
    badarg(Port, fun(Id) -> {info, Id, extra} end),
    dropped(Port, term_to_binary({exec})),
    dropped(Port, term_to_binary({cancel, 1, 2})),
    dropped(Port, term_to_binary({drop_env})),
    close(Port).

bad_request_ids_are_dropped() ->
    [{doc, "Requests whose id is 0, negative or not an integer cannot be answered: dropped."}].
bad_request_ids_are_dropped(Config) ->
    Port = open_ready(Config),
    lists:foreach(
      fun(BadId) -> dropped(Port, term_to_binary({exec, BadId, self(), 0, <<"ran = True">>})) end,
      [0, -1, -(1 bsl 40), one, 1.0, <<"1">>, 1 bsl 70]),
    {reply, false} = request(Port, fun(Id) -> eval(Id, <<"'ran' in globals()">>) end),
    close(Port).

bad_caller_pid_is_badarg() ->
    [{doc, "A caller that is not a pid is answered badarg."}].
bad_caller_pid_is_badarg(Config) ->
    Port = open_ready(Config),
    badarg(Port, fun(Id) -> {eval, Id, not_a_pid, 0, <<"1">>, #{}} end),
    badarg(Port, fun(Id) -> {exec, Id, make_ref(), 0, <<"x = 1">>} end),
    badarg(Port, fun(Id) -> {call, Id, <<"pid">>, 0, math, sqrt, [4], #{}} end),
    close(Port).

non_list_args_is_badarg() ->
    [{doc, "Call arguments that are not a list are answered badarg."}].
non_list_args_is_badarg(Config) ->
    Port = open_ready(Config),
    badarg(Port, fun(Id) -> {call, Id, self(), 0, math, sqrt, {16}, #{}} end),
    badarg(Port, fun(Id) -> {call, Id, self(), 0, math, sqrt, 16, #{}} end),
    badarg(Port, fun(Id) -> {call, Id, self(), 0, math, sqrt, <<"16">>, #{}} end),
    close(Port).

improper_list_args_is_badarg() ->
    [{doc, "An improper argument list is answered badarg."}].
improper_list_args_is_badarg(Config) ->
    Port = open_ready(Config),
    badarg(Port, fun(Id) -> {call, Id, self(), 0, math, sqrt, [16 | tail], #{}} end),
    badarg(Port, fun(Id) -> {call, Id, self(), 0, builtins, max, [1, 2 | 3], #{}} end),
    close(Port).

non_binary_code_is_badarg() ->
    [{doc, "eval/exec code that is not a binary is answered badarg."}].
non_binary_code_is_badarg(Config) ->
    Port = open_ready(Config),
    badarg(Port, fun(Id) -> {eval, Id, self(), 0, "1 + 1", #{}} end),
    badarg(Port, fun(Id) -> {exec, Id, self(), 0, 'x = 1'} end),
    badarg(Port, fun(Id) -> {exec, Id, self(), 0, 42} end),
    badarg(Port, fun(Id) -> {call, Id, self(), 0, 42, sqrt, [4], #{}} end),
    badarg(Port, fun(Id) -> {call, Id, self(), 0, math, {sqrt}, [4], #{}} end),
    close(Port).

non_map_kwargs_is_badarg() ->
    [{doc, "Kwargs or locals that are not a map (or have non-name keys) are answered badarg."}].
non_map_kwargs_is_badarg(Config) ->
    Port = open_ready(Config),
    badarg(Port, fun(Id) -> {call, Id, self(), 0, math, sqrt, [4], []} end),
    badarg(Port, fun(Id) -> {call, Id, self(), 0, math, sqrt, [4], #{1 => 2}} end),
    badarg(Port, fun(Id) -> {eval, Id, self(), 0, <<"1">>, [{x, 1}]} end),
    close(Port).

zero_length_frame_is_dropped() ->
    [{doc, "A zero-length frame is dropped; the port keeps answering."}].
zero_length_frame_is_dropped(Config) ->
    Port = open_ready(Config),
    dropped(Port, <<>>),
    dropped(Port, <<>>),
    close(Port).

truncated_term_is_badarg() ->
    [{doc, "A whole frame holding a term cut short (id readable) is answered badarg, "
           "never decoded past its end or run."}].
truncated_term_is_badarg(Config) ->
    Port = open_ready(Config),
    Full = term_to_binary({call, 1, self(), 0, builtins, print, [<<"ran">>], #{}}),
    Results =
        [begin
             Id = erlang:unique_integer([positive]),
             Frame = binary_part(term_to_binary({call, Id, self(), 0, builtins, print,
                                                 [<<"ran">>], #{}}),
                                 0, byte_size(Full) - Cut),
             send_raw(Port, Frame),
             {Tag, Body, Before} = answer(Port, Id),
             alive(Port),
             {Cut, Tag, Body, [B || {{output, _, _, B}, _} <- Before]}
         end || Cut <- [1, 2, 6, 12]],
    ct:log("truncated frames: ~p", [Results]),
    ?assertEqual([], [R || {_, Tag, Body, Out} = R <- Results,
                           not is_clean_badarg(Tag, Body, Out)]),
    close(Port).

is_clean_badarg(error, {badarg, _}, []) -> true;
is_clean_badarg(_, _, _) -> false.

oversized_request_is_too_large() ->
    [{doc, "A request over --max-frame gets {error, Id} + {too_large, Size, Max}; the next "
           "request works."}].
oversized_request_is_too_large(Config) ->
    Port = open_ready(Config, ["--max-frame", "100000"]),
    Big = binary:copy(<<"x">>, 200000),
    Id = 77,
    Frame = term_to_binary({eval, Id, self(), 0, <<"len('", Big/binary, "')">>, #{}}),
    send_raw(Port, Frame),
    {error, Body, _} = answer(Port, Id),
    ?assertEqual({too_large, byte_size(Frame), 100000}, Body),
    alive(Port),
    %% Just under the limit is fine.
    Small = binary:copy(<<"x">>, 90000),
    {reply, 90000} = request(Port, fun(I) -> eval(I, <<"len('", Small/binary, "')">>) end),
    close(Port).

oversized_reply_is_too_large() ->
    [{doc, "A reply over --max-frame becomes {error, Id} + {too_large, Size, Max}."}].
oversized_reply_is_too_large(Config) ->
    Port = open_ready(Config, ["--max-frame", "100000"]),
    {error, {too_large, Size, 100000}} = request(Port, fun(Id) -> eval(Id, <<"'x' * 200000">>) end),
    ?assert(Size > 200000),
    alive(Port),
    close(Port).

%%% ===========================================================================
%%% cancel, interrupt, info, output
%%% ===========================================================================

cancel_queued_request_never_runs() ->
    [{doc, "{cancel, Id} of a request queued behind a running one answers "
           "{error, Id} + cancelled and the request never runs."}].
cancel_queued_request_never_runs(Config) ->
    Port = open_ready(Config),
    send(Port, exec(1, <<"import time\ntime.sleep(600)">>)),
    wait_running(Port, 1),
    send(Port, exec(2, <<"side_effect = True">>)),
    send(Port, {cancel, 2}),
    {error, cancelled, _} = answer(Port, 2),
    %% End the sleep, then check that request 2 left no trace.
    send(Port, {cancel, 1}),
    {error, {pyerr, "RequestTimeout", _, _}, _} = answer(Port, 1),
    {reply, false} = request(Port, fun(Id) -> eval(Id, <<"'side_effect' in globals()">>) end),
    %% Cancelling what is not there any more does nothing, and answers nothing.
    send(Port, {cancel, 2}),
    {reply, 1, Before} = answer_after(Port, fun(Id) -> eval(Id, <<"1">>) end),
    ?assertEqual([], answers(Before)),
    close(Port).

cancel_running_request_raises() ->
    [{doc, "{cancel, Id} of a running Python loop makes it answer {error, Id} with a "
           "pyerr of type RequestTimeout."}].
cancel_running_request_raises(Config) ->
    Port = open_ready(Config),
    send(Port, exec(5, <<"while True:\n    pass\n">>)),
    wait_running(Port, 5),
    send(Port, {cancel, 5}),
    {error, {pyerr, "RequestTimeout", _, _}, _} = answer(Port, 5),
    %% An except Exception clause does not swallow it.
    send(Port, exec(6, <<"while True:\n    try:\n        pass\n    except Exception:\n"
                         "        pass\n">>)),
    wait_running(Port, 6),
    send(Port, {cancel, 6}),
    {error, {pyerr, "RequestTimeout", _, _}, _} = answer(Port, 6),
    alive(Port),
    close(Port).

interrupt_keyboard_raises() ->
    [{doc, "{interrupt, keyboard} raises KeyboardInterrupt in the running code."}].
interrupt_keyboard_raises(Config) ->
    Port = open_ready(Config),
    send(Port, exec(7, <<"while True:\n    pass\n">>)),
    wait_running(Port, 7),
    send(Port, {interrupt, keyboard}),
    {error, {pyerr, "KeyboardInterrupt", _, _}, _} = answer(Port, 7),
    %% With nothing running it does nothing.
    send(Port, {interrupt, keyboard}),
    {reply, 1, Before} = answer_after(Port, fun(Id) -> eval(Id, <<"1">>) end),
    ?assertEqual([], answers(Before)),
    close(Port).

info_answered_while_busy() ->
    [{doc, "{info, Id} is answered while Python sleeps; current shows the running id and op."}].
info_answered_while_busy(Config) ->
    {Port, OsPid} = open_ready_pid(Config, []),
    {reply, Idle} = request(Port, fun(Id) -> {info, Id} end),
    ?assertMatch(#{current := idle, os_pid := OsPid, python_version := <<"3.", _/binary>>,
                   envs := _, queue := 0, calls := _, rss_bytes := _}, Idle),
    send(Port, exec(11, <<"import time\ntime.sleep(600)">>)),
    wait_running(Port, 11),
    {reply, Busy} = request(Port, fun(Id) -> {info, Id} end),
    #{current := #{id := 11, op := exec, running_ms := Ms}} = Busy,
    ?assert(is_integer(Ms) andalso Ms >= 0),
    send(Port, exec(12, <<"pass">>)),
    {reply, Queued} = request(Port, fun(Id) -> {info, Id} end),
    ?assertMatch(#{queue := 1}, Queued),
    send(Port, {cancel, 11}),
    {error, {pyerr, "RequestTimeout", _, _}, _} = answer(Port, 11),
    {reply, ok, _} = answer(Port, 12),
    close(Port).

stray_fd_writes_become_output_frames() ->
    [{doc, "Writes to fd 1/2 (os.write, C printf) never corrupt frames: they arrive as "
           "{output, 0, fd1 | fd2, Bytes}."}].
stray_fd_writes_become_output_frames(Config) ->
    Port = open_ready(Config),
    {reply, ok, B1} = answer_after(
                        Port, fun(Id) -> exec(Id, <<"import os\nos.write(1, b\"garbage\\n\")\n"
                                                    "os.write(2, b\"more\\n\")\n">>) end),
    {reply, ok, B2} = answer_after(
                        Port, fun(Id) -> exec(Id, <<"import ctypes\nlibc = ctypes.CDLL(None)\n"
                                                    "libc.printf(b\"from printf %d\\n\", 42)\n"
                                                    "libc.fflush(None)\n">>) end),
    Seen = stray_output(B1 ++ B2, #{}),
    Final = await_stray(Port, Seen, [{fd1, <<"garbage\n">>}, {fd2, <<"more\n">>},
                                     {fd1, <<"from printf 42\n">>}]),
    ?assertEqual([], [F || F = {{output, Id, S, _}, _} <- B1 ++ B2,
                           (S =:= fd1 orelse S =:= fd2), Id =/= 0]),
    ct:log("stray output: ~p", [Final]),
    alive(Port),
    close(Port).

print_output_precedes_reply() ->
    [{doc, "print() arrives as {output, Id, stdout, <<\"...\\n\">>} before the reply of Id."}].
print_output_precedes_reply(Config) ->
    Port = open_ready(Config),
    Id = 21,
    send(Port, exec(Id, <<"import sys\nprint('hello from print')\n"
                          "print('to stderr', file=sys.stderr)\n">>)),
    {reply, ok, Before} = answer(Port, Id),
    Out = [{S, B} || {{output, I, S, B}, none} <- Before, I =:= Id],
    ?assertEqual(<<"hello from print\n">>, iolist_to_binary([B || {stdout, B} <- Out])),
    ?assertEqual(<<"to stderr\n">>, iolist_to_binary([B || {stderr, B} <- Out])),
    close(Port).

%%% ===========================================================================
%%% Lifecycle
%%% ===========================================================================

close_exits_when_idle() ->
    [{doc, "Closing the port makes the idle OS process exit promptly."}].
close_exits_when_idle(Config) ->
    {Port, OsPid} = open_ready_pid(Config, []),
    ?assert(os_alive(OsPid)),
    port_close(Port),
    ?assertEqual(ok, wait_exited(OsPid, ?EXIT_DEADLINE_MS)).

close_exits_when_stuck() ->
    [{doc, "Closing the port makes the OS process exit within 1 s even while Python is "
           "stuck in `while True: pass`."}].
close_exits_when_stuck(Config) ->
    %% A plain loop, and one that swallows the KeyboardInterrupt sent at EOF.
    Loops = [<<"while True:\n    pass\n">>,
             <<"while True:\n    try:\n        pass\n    except BaseException:\n"
               "        pass\n">>],
    lists:foreach(
      fun(Loop) ->
              {Port, OsPid} = open_ready_pid(Config, []),
              send(Port, exec(31, Loop)),
              wait_running(Port, 31),
              port_close(Port),
              ?assertEqual({Loop, ok}, {Loop, wait_exited(OsPid, ?EXIT_DEADLINE_MS)})
      end, Loops).

truncated_frame_then_eof_exits_66() ->
    [{doc, "stdin closing in the middle of a frame ends the port with status 66."}].
truncated_frame_then_eof_exits_66(Config) ->
    Exe = ?config(exe, Config),
    %% `head' passes exactly the 7 bytes we send (a header announcing 100 bytes
    %% and 3 of them) and exits, so the port's stdin closes mid-frame.
    Sh = os:find_executable("sh"),
    Port = open_port({spawn_executable, Sh},
                     [stream, binary, exit_status, use_stdio,
                      {args, ["-c", "head -c 7 | exec \"$0\"", Exe]}]),
    true = port_command(Port, <<100:32, "abc">>),
    ?assertEqual(66, exit_status(Port)).

bad_command_line_exits_64() ->
    [{doc, "A bad command line ends the port with status 64 before anything else."}].
bad_command_line_exits_64(Config) ->
    Exe = ?config(exe, Config),
    lists:foreach(
      fun(Args) ->
              Port = open_port({spawn_executable, Exe}, port_opts(Args)),
              ?assertEqual({Args, 64}, {Args, exit_status(Port)})
      end, [["--bogus"], ["extra"], ["--max-frame", "abc"], ["--max-frame", "1"],
            ["--max-frame", "99999999999"], ["--max-depth", "0"], ["--max-frame"]]).

help_exits_0() ->
    [{doc, "--help prints usage and ends with status 0."}].
help_exits_0(Config) ->
    Port = open_port({spawn_executable, ?config(exe, Config)}, port_opts(["--help"])),
    ?assertEqual(0, exit_status(Port)).

%%% ===========================================================================
%%% Hardening: interrupts reach their own request, bad input, own exits, crashes
%%% ===========================================================================

cancel_waits_for_the_nested_request_on_top() ->
    [{doc, "A cancel of request A while a request B runs nested in A's erlang.call wait "
           "never raises in B: B answers normally, then A ends with RequestTimeout."}].
cancel_waits_for_the_nested_request_on_top(Config) ->
    Port = open_ready(Config),
    {reply, ok} = request(Port, fun(Id) ->
                                        exec(Id, <<"import erlang, time
"
                                                   "def a(): return erlang.call('never')
">>)
                                end),
    send(Port, {call, 1, self(), 0, '__main__', a, [], #{}}),
    {{callback, _CbId, 1, <<"never">>}, []} = await_frame(Port, callback),
    %% B belongs to A's call chain (Parent = A): it is served in A's wait.
    send(Port, {exec, 2, self(), 1, <<"time.sleep(0.3)\nb_done = True">>}),
    wait_running(Port, 2),
    send(Port, {cancel, 1}),
    {reply, ok, BeforeB} = answer(Port, 2),
    ?assertEqual([], [F || {{_, 1}, _} = F <- answers(BeforeB)]),
    {error, {pyerr, "RequestTimeout", _, _}, _} = answer(Port, 1),
    {reply, true} = request(Port, fun(Id) -> eval(Id, <<"b_done">>) end),
    close(Port).

two_cancels_at_once_both_count() ->
    [{doc, "Cancels of A and of B (nested in A's erlang.call wait), sent together, are "
           "both kept: B ends with RequestTimeout, then A does."}].
two_cancels_at_once_both_count(Config) ->
    Port = open_ready(Config),
    {reply, ok} = request(Port, fun(Id) ->
                                        exec(Id, <<"import erlang\n"
                                                   "def a(): return erlang.call('never')\n">>)
                                end),
    send(Port, {call, 4, self(), 0, '__main__', a, [], #{}}),
    {{callback, _, 4, <<"never">>}, []} = await_frame(Port, callback),
    send(Port, {exec, 5, self(), 4, <<"while True: pass">>}),
    wait_running(Port, 5),
    true = port_command(Port, [term_to_binary({cancel, 4})]),
    true = port_command(Port, [term_to_binary({cancel, 5})]),
    {error, {pyerr, "RequestTimeout", _, _}, _} = answer(Port, 5),
    {error, {pyerr, "RequestTimeout", _, _}, _} = answer(Port, 4),
    alive(Port),
    close(Port).

other_callers_wait_for_the_call_chain() ->
    [{doc, "While request A waits in erlang.call, a request of A's call chain (Parent = A) "
           "runs inside the wait, and another caller's request (Parent 0) waits in order: "
           "it runs after A has answered, and A's answer is not held back by it."}].
other_callers_wait_for_the_call_chain(Config) ->
    Port = open_ready(Config),
    {reply, ok} = request(Port, fun(Id) ->
                                        exec(Id, <<"import erlang, sys\n"
                                                   "sys.pyport_test_log = []\n"
                                                   "def a(): return erlang.call('cb')\n">>)
                                end),
    send(Port, {call, 1, self(), 0, '__main__', a, [], #{}}),
    {{callback, CbId, 1, <<"cb">>}, []} = await_frame(Port, callback),
    Other = spawn(fun() -> receive stop -> ok end end),
    send(Port, {exec, 2, Other, 0, <<"import sys\nsys.pyport_test_log.append('other')">>}),
    send(Port, {exec, 3, self(), 1, <<"sys.pyport_test_log.append('chain')">>}),
    {reply, ok, Before3} = answer(Port, 3),
    ?assertEqual([], answers(Before3)),
    send(Port, {callback_reply, CbId, ok, done}),
    {reply, done, Before1} = answer(Port, 1),
    ?assertEqual([], answers(Before1)),
    {reply, ok, _} = answer(Port, 2),
    ?assertEqual({reply, [<<"chain">>, <<"other">>]},
                 request(Port, fun(Id) -> eval(Id, <<"sys.pyport_test_log">>) end)),
    Other ! stop,
    close(Port).

bad_parent_is_badarg() ->
    [{doc, "A request whose Parent is not a non-negative integer is answered badarg."}].
bad_parent_is_badarg(Config) ->
    Port = open_ready(Config),
    badarg(Port, fun(Id) -> {exec, Id, self(), -1, <<"x = 1">>} end),
    badarg(Port, fun(Id) -> {eval, Id, self(), top, <<"1">>, #{}} end),
    badarg(Port, fun(Id) -> {call, Id, self(), 1.0, math, sqrt, [4], #{}} end),
    close(Port).

cancel_reaches_a_spinning_coroutine() ->
    [{doc, "{cancel, Id} of a coroutine that spins on the event loop (never awaiting) "
           "raises RequestTimeout in it; other requests are served after."}].
cancel_reaches_a_spinning_coroutine(Config) ->
    Port = open_ready(Config),
    {reply, ok} = request(Port, fun(Id) ->
                                        exec(Id, <<"async def spin():\n"
                                                   "    print('spinning', flush=True)\n"
                                                   "    while True: pass\n">>)
                                end),
    send(Port, {call, 20, self(), 0, '__main__', spin, [], #{}}),
    {{output, _, stdout, <<"spinning\n">>}, none} = await_frame(Port, output),
    send(Port, {cancel, 20}),
    {error, {pyerr, "RequestTimeout", _, _}, _} = answer(Port, 20),
    alive(Port),
    close(Port).

coroutine_callback_names_its_request() ->
    [{doc, "erlang.call from a coroutine names the coroutine's request in the callback "
           "frame, and a cancel of that request reaches it while it waits."}].
coroutine_callback_names_its_request(Config) ->
    Port = open_ready(Config),
    {reply, ok} = request(Port, fun(Id) ->
                                        exec(Id, <<"import erlang\n"
                                                   "async def waits():\n"
                                                   "    return erlang.call('never')\n">>)
                                end),
    send(Port, {call, 21, self(), 0, '__main__', waits, [], #{}}),
    {{callback, _, 21, <<"never">>}, []} = await_frame(Port, callback),
    send(Port, {cancel, 21}),
    {error, {pyerr, "RequestTimeout", _, _}, _} = answer(Port, 21),
    alive(Port),
    close(Port).

nul_in_code_is_badarg() ->
    [{doc, "eval/exec code holding a NUL byte is refused with badarg, never run cut short."}].
nul_in_code_is_badarg(Config) ->
    Port = open_ready(Config),
    badarg(Port, fun(Id) -> exec(Id, <<"a = 1", 0, "\na = 2\nraise SystemError('x')">>) end),
    badarg(Port, fun(Id) -> eval(Id, <<"1", 0, "/0">>) end),
    {reply, false} = request(Port, fun(Id) -> eval(Id, <<"'a' in globals()">>) end),
    close(Port).

nul_in_names_is_badarg() ->
    [{doc, "Module, function, method, attribute and keyword names holding NUL are "
           "refused with badarg (atoms, binaries and strings alike)."}].
nul_in_names_is_badarg(Config) ->
    Port = open_ready(Config),
    badarg(Port, fun(Id) -> {call, Id, self(), 0, <<"os", 0, "junk">>, getpid, [], #{}} end),
    badarg(Port, fun(Id) -> {call, Id, self(), 0, 'os\0junk', getpid, [], #{}} end),
    badarg(Port, fun(Id) -> {call, Id, self(), 0, os, "getpid\0x", [], #{}} end),
    badarg(Port, fun(Id) -> {call, Id, self(), 0, builtins, max, [1, 2], #{<<"k", 0>> => 1}} end),
    close(Port).

atom_with_nul_round_trips() ->
    [{doc, "An atom holding NUL (or Latin-1 characters) decodes whole and comes back "
           "the same, not cut at the NUL."}].
atom_with_nul_round_trips(Config) ->
    Port = open_ready(Config),
    Atoms = ['a\0b', '\0', 'caf\x{e9}\0', list_to_atom([255, 0, 128])],
    lists:foreach(
      fun(A) ->
              ?assertEqual({reply, A},
                           request(Port, fun(Id) -> {eval, Id, self(), 0, <<"x">>, #{x => A}} end)),
              ?assertEqual({reply, length(atom_to_list(A))},
                           request(Port, fun(Id) -> {eval, Id, self(), 0, <<"len(x)">>,
                                                     #{x => A}} end))
      end, Atoms),
    close(Port).

system_exit_in_a_coroutine_is_its_error() ->
    [{doc, "SystemExit or KeyboardInterrupt raised in a coroutine ends that coroutine's "
           "request with the error a sync call gives; other coroutines go on and the "
           "OS process lives."}].
system_exit_in_a_coroutine_is_its_error(Config) ->
    {Port, OsPid} = open_ready_pid(Config, []),
    {reply, ok} = request(Port, fun(Id) ->
                                        exec(Id, <<"import asyncio\n"
                                                   "async def nap():\n"
                                                   "    await asyncio.sleep(0.3)\n"
                                                   "    return 'slept'\n"
                                                   "async def bad(kind):\n"
                                                   "    await asyncio.sleep(0.05)\n"
                                                   "    if kind == 'exit': raise SystemExit(7)\n"
                                                   "    raise KeyboardInterrupt()\n"
                                                   "def gen():\n"
                                                   "    yield 1\n"
                                                   "    raise SystemExit(8)\n">>)
                                end),
    [send(Port, {call, Id, self(), 0, '__main__', nap, [], #{}}) || Id <- [11, 12, 13]],
    send(Port, {call, 14, self(), 0, '__main__', bad, [<<"exit">>], #{}}),
    send(Port, {call, 15, self(), 0, '__main__', bad, [<<"kbd">>], #{}}),
    {error, {pyerr, "SystemExit", "7", _}, _} = answer(Port, 14),
    {error, {pyerr, "KeyboardInterrupt", _, _}, _} = answer(Port, 15),
    [{reply, <<"slept">>, _} = answer(Port, Id) || Id <- [11, 12, 13]],
    send(Port, {stream, 16, self(), 0, {call, '__main__', gen, [], #{}}, 10}),
    {error, {pyerr, "SystemExit", "8", _}, Items} = answer(Port, 16),
    ?assertEqual([1], [I || {{stream_data, 16}, I} <- Items]),
    {reply, OsPid} = request(Port, fun(Id) -> eval(Id, <<"__import__('os').getpid()">>) end),
    close(Port).

framing_lost_is_announced_before_exit_66() ->
    [{doc, "When stdin closes in the middle of a frame the port sends {exiting, 66} "
           "(after ready) and then exits with 66."}].
framing_lost_is_announced_before_exit_66(Config) ->
    %% `head' passes the 4-byte header announcing 100 bytes and 3 of them, and
    %% exits: the port's stdin closes mid-frame.
    Port = open_port({spawn_executable, os:find_executable("sh")},
                     port_opts(["-c", "head -c 7 | exec \"$0\"", ?config(exe, Config)])),
    true = port_command(Port, binary:copy(<<0>>, 100)),
    {{ready, _, _, _}, none} = next_frame(Port),
    ?assertEqual({{exiting, 66}, none}, next_frame(Port)),
    ?assertEqual(66, exit_status(Port)).

out_of_memory_is_announced_before_exit_67() ->
    [{doc, "When the port's own allocation fails (a frame larger than the address space "
           "left, under ulimit -v) it sends {exiting, 67} and exits with 67."}].
out_of_memory_is_announced_before_exit_67(Config) ->
    Exe = ?config(exe, Config),
    %% Allocations over 500 MB fail: by the address-space limit, or (the sanitizer
    %% build reserves more address space than that) by the sanitizer's
    %% allocator, whose warning about it goes to a log of this case's own.
    AsanLog = filename:join(?config(priv_dir, Config), "asan-oom"),
    Sanitized = string:find(os:cmd("ldd " ++ Exe), "libasan") =/= nomatch,
    Limit = case Sanitized of
                false -> "ulimit -v 600000 && ";
                true -> "export ASAN_OPTIONS=\"$ASAN_OPTIONS:log_path=" ++ AsanLog ++
                            ":max_allocation_size_mb=500\" && "
            end,
    %% Before anything from Erlang, the shell feeds the port a frame header that
    %% announces 900 MB (under --max-frame); the frame reader allocates the
    %% announced length as soon as it has the header.
    Sh = Limit ++ "{ printf '\\065\\244\\351\\000'; cat; } | exec \"$0\" --max-frame 1000000000",
    Port = open_port({spawn_executable, os:find_executable("sh")}, port_opts(["-c", Sh, Exe])),
    {{ready, _, _, _}, none} = next_frame(Port),
    ?assertEqual({{exiting, 67}, none}, next_frame(Port)),
    %% `cat' ends (and the shell with the port's status) at its first write once
    %% nothing holds the read end any more.
    ?assertEqual(67, exit_status_nudging(Port)),
    Reports = [R || F <- filelib:wildcard(AsanLog ++ ".*"), {ok, R} <- [file:read_file(F)]],
    ct:log("sanitizer output: ~p", [Reports]),
    ?assertEqual(Sanitized, Reports =/= []),
    ?assertEqual([], [R || R <- Reports, binary:match(R, <<"ERROR">>) =/= nomatch]).

crash_file_gets_the_fault_dump() ->
    [{doc, "With --crash-file the dump of a segfault goes to that file (emptied at start) "
           "and nothing of it to the port's stderr; the port dies by SIGSEGV."}].
crash_file_gets_the_fault_dump(Config) ->
    Dir = ?config(priv_dir, Config),
    Crash = filename:join(Dir, "crash.txt"),
    Err = filename:join(Dir, "stderr.txt"),
    ok = file:write_file(Crash, <<"left from an earlier run\n">>),
    Port = open_port({spawn_executable, os:find_executable("sh")},
                     port_opts(["-c", "exec \"$0\" --crash-file \"$1\" 2>\"$2\"",
                                   ?config(exe, Config), Crash, Err])),
    {{ready, _, _, _}, none} = next_frame(Port),
    ?assertEqual({ok, <<>>}, file:read_file(Crash)),
    send(Port, exec(1, <<"import ctypes\nctypes.string_at(0)">>)),
    ?assertEqual(128 + 11, exit_status(Port)),
    {ok, Dump} = file:read_file(Crash),
    {ok, Stderr} = file:read_file(Err),
    ct:log("crash file:~n~ts~nstderr:~n~ts", [Dump, Stderr]),
    ?assertNotEqual(nomatch, binary:match(Dump, <<"Fatal Python error: Segmentation fault">>)),
    ?assertNotEqual(nomatch, binary:match(Dump, <<"string_at">>)),
    ?assertEqual(nomatch, binary:match(Stderr, <<"Fatal Python error">>)).

unopenable_crash_file_exits_64() ->
    [{doc, "A --crash-file that cannot be opened is a bad command line: exit 64."}].
unopenable_crash_file_exits_64(Config) ->
    Port = open_port({spawn_executable, ?config(exe, Config)},
                     port_opts(["--crash-file", "/nonexistent-dir/crash.txt"])),
    ?assertEqual(64, exit_status(Port)).

%%% ===========================================================================
%%% Flow control: output, log and send frames within the credit windows
%%% ===========================================================================

thread_output_waits_for_credit() ->
    [{doc, "A Python thread printing in a loop sends no more than output_window bytes of "
           "frames ahead of credit; each {credit, output, Bytes} lets it go on, and no line "
           "is lost or reordered."}].
thread_output_waits_for_credit(Config) ->
    Port = open_ready(Config),
    set_windows(Port, #{output_window => ?WINDOW}),
    {reply, ok} = request(Port, fun(Id) ->
                                        exec(Id, <<"import threading\n"
                                                   ?START_LATER
                                                   "def spam():\n"
                                                   "    i = 0\n"
                                                   "    while True:\n"
                                                   "        print('line %06d ' % i + 'x' * 40)\n"
                                                   "        i += 1\n"
                                                   "start_later(spam)\n">>)
                                end),
    Lines = held_by_credit(Port, output, fun output_lines/1, 4),
    ?assertEqual(lists:seq(0, length(Lines) - 1), Lines),
    close(Port).

fd_output_waits_for_credit() ->
    [{doc, "Bytes a thread writes to fd 1 are read only within the output window: the "
           "writer blocks on the full pipe until credit returns, and nothing is lost."}].
fd_output_waits_for_credit(Config) ->
    Port = open_ready(Config),
    set_windows(Port, #{output_window => ?WINDOW}),
    {reply, ok} = request(Port, fun(Id) ->
                                        exec(Id, <<"import os, threading\n"
                                                   ?START_LATER
                                                   "def spam():\n"
                                                   "    i = 0\n"
                                                   "    while True:\n"
                                                   "        os.write(1, b'%09d;' % i)\n"
                                                   "        i += 1\n"
                                                   "start_later(spam)\n">>)
                                end),
    Counts = held_by_credit(Port, output, fun fd_numbers/1, 4),
    ?assertEqual(lists:seq(0, length(Counts) - 1), Counts),
    close(Port).

log_records_wait_for_credit() ->
    [{doc, "logging records (log frames) share the output window."}].
log_records_wait_for_credit(Config) ->
    Port = open_ready(Config),
    set_windows(Port, #{output_window => ?WINDOW, logging => 20}),
    {reply, ok} = request(Port, fun(Id) ->
                                        exec(Id, <<"import logging, threading\n"
                                                   ?START_LATER
                                                   "def spam():\n"
                                                   "    i = 0\n"
                                                   "    while True:\n"
                                                   "        logging.getLogger('t').info('rec %d', i)\n"
                                                   "        i += 1\n"
                                                   "start_later(spam)\n">>)
                                end),
    Recs = held_by_credit(Port, output, fun log_numbers/1, 3),
    ?assertEqual(lists:seq(0, length(Recs) - 1), Recs),
    close(Port).

sends_wait_for_their_own_credit() ->
    [{doc, "erlang.send frames stay within send_window and wait for {credit, send, _}; "
           "output credit does not release them."}].
sends_wait_for_their_own_credit(Config) ->
    Port = open_ready(Config),
    set_windows(Port, #{send_window => ?WINDOW}),
    {reply, ok} = request(Port, fun(Id) ->
                                        exec(Id, <<"import erlang, threading\n"
                                                   ?START_LATER
                                                   "def start(pid):\n"
                                                   "    def spam():\n"
                                                   "        i = 0\n"
                                                   "        while True:\n"
                                                   "            erlang._send(pid, ('n', i))\n"
                                                   "            i += 1\n"
                                                   "    start_later(spam)\n">>)
                                end),
    {reply, none} = request(Port, fun(Id) -> {call, Id, self(), 0, '__main__', start, [self()],
                                              #{}} end),
    First = [F || F = {{send, _}, _, _} <- frames_until_quiet(Port)],
    ?assert(First =/= []),
    ?assert(sizes(First) =< ?WINDOW),
    send(Port, {credit, output, 100000}),
    ?assertEqual([], [F || F = {{send, _}, _, _} <- frames_until_quiet(Port)]),
    Ns = held_by_credit(Port, send, fun send_numbers/1, 3, sizes(First), lists:reverse(First)),
    ?assertEqual(lists:seq(0, length(Ns) - 1), Ns),
    close(Port).

cancel_reaches_a_request_blocked_on_credit() ->
    [{doc, "A request whose print waits for output credit is still cancelled: it answers "
           "RequestTimeout without any credit returned."}].
cancel_reaches_a_request_blocked_on_credit(Config) ->
    Port = open_ready(Config),
    set_windows(Port, #{output_window => ?WINDOW}),
    send(Port, exec(30, <<"while True: print('y' * 100)">>)),
    Out = [F || F = {{output, 30, stdout, _}, _, _} <- frames_until_quiet(Port)],
    ?assert(Out =/= []),
    ?assert(sizes(Out) =< ?WINDOW),
    send(Port, {cancel, 30}),
    {error, {pyerr, "RequestTimeout", _, _}, _} = answer(Port, 30),
    close(Port).

frame_larger_than_the_window_goes_alone() ->
    [{doc, "A frame larger than the whole window is sent once nothing is in flight (never "
           "a deadlock), and the next waits for its credit."}].
frame_larger_than_the_window_goes_alone(Config) ->
    Port = open_ready(Config),
    set_windows(Port, #{output_window => 100}),
    {reply, ok} = request(Port, fun(Id) ->
                                        exec(Id, <<"import threading\n"
                                                   ?START_LATER
                                                   "def big():\n"
                                                   "    for i in range(3): print(str(i) * 500)\n"
                                                   "start_later(big)\n">>)
                                end),
    [{{output, 0, stdout, <<"000", _/binary>>}, _, Size1}] = output_only(frames_until_quiet(Port)),
    ?assert(Size1 > 100),
    send(Port, {credit, output, Size1}),
    [{{output, 0, stdout, <<"111", _/binary>>}, _, _}] = output_only(frames_until_quiet(Port)),
    close(Port).

no_window_means_no_limit() ->
    [{doc, "Without output_window (or with 0) output is not held: 300 lines of 100 bytes "
           "arrive with no credit returned."}].
no_window_means_no_limit(Config) ->
    Port = open_ready(Config),
    set_windows(Port, #{output_window => 0}),
    {reply, ok, Before} =
        answer_after(Port, fun(Id) -> exec(Id, <<"for i in range(300): print('z' * 100)">>) end),
    ?assertEqual(300, length([B || {{output, _, stdout, B}, none} <- Before])),
    close(Port).

bad_window_is_badarg() ->
    [{doc, "A window that is not a non-negative integer is refused by setup with badarg."}].
bad_window_is_badarg(Config) ->
    Port = open_ready(Config),
    badarg(Port, fun(Id) -> {setup, Id, #{output_window => -1}} end),
    badarg(Port, fun(Id) -> {setup, Id, #{send_window => big}} end),
    close(Port).

%%% ===========================================================================
%%% The atom budget
%%% ===========================================================================

atom_budget_bounds_new_atoms() ->
    [{doc, "Python creating 100,000 new atoms with max_atoms 1000: at most 1000 distinct "
           "new atom names reach Erlang, and the next one raises erlang.AtomLimitError (a "
           "ValueError) in the operation that tried."}].
atom_budget_bounds_new_atoms(Config) ->
    Port = open_ready(Config),
    set_windows(Port, #{max_atoms => ?MAX_ATOMS}),
    {reply, ok} = request(Port, fun(Id) ->
                                        exec(Id, <<"import erlang\n"
                                                   "def flood(pid, n):\n"
                                                   "    for i in range(n):\n"
                                                   "        try:\n"
                                                   "            erlang._send(pid, erlang.Atom('pyport_t_%d' % i))\n"
                                                   "        except erlang.AtomLimitError as e:\n"
                                                   "            return (i, isinstance(e, ValueError))\n"
                                                   "    return (n, False)\n">>)
                                end),
    {reply, {Stopped, true}, Before} =
        answer_after(Port, fun(Id) -> {call, Id, self(), 0, '__main__', flood,
                                        [self(), ?ATOM_TRIES], #{}} end),
    Sent = lists:usort([A || {{send, _}, A} <- Before, is_atom(A)]),
    ?assertEqual(?MAX_ATOMS, Stopped),
    ?assertEqual(?MAX_ATOMS, length(Sent)),
    %% A name sent before is free to send again; a new one is not.
    {reply, ok, Again} = answer_after(Port, fun(Id) -> exec(Id, <<"erlang._send(erlang.self(), erlang.Atom('pyport_t_7'))">>) end),
    ?assertEqual(['pyport_t_7'], [A || {{send, _}, A} <- Again]),
    {error, {pyerr, "AtomLimitError", _, _}} =
        request(Port, fun(Id) -> exec(Id, <<"erlang._send(erlang.self(), erlang.Atom('brand_new'))">>) end),
    close(Port).

atom_budget_spares_known_atoms() ->
    [{doc, "Atoms that came from Erlang (arguments, names, node names of pids) go back "
           "without using the budget, even when it is used up."}].
atom_budget_spares_known_atoms(Config) ->
    Port = open_ready(Config),
    set_windows(Port, #{max_atoms => 0}),
    Sent = {'pyport_known_atom', [self()], #{key => value}},
    ?assertEqual({reply, Sent}, request(Port, fun(Id) -> {eval, Id, self(), 0, <<"x">>,
                                                          #{x => Sent}} end)),
    ?assertEqual({reply, [true, false, none, nan]},
                 request(Port, fun(Id) -> eval(Id, <<"[True, False, None, float('nan')]">>) end)),
    {error, {pyerr, "AtomLimitError", _, _}} =
        request(Port, fun(Id) -> eval(Id, <<"__import__('erlang').atom('never_seen_here')">>) end),
    close(Port).

atom_budget_covers_terms_and_replies() ->
    [{doc, "erlang.Term bytes holding a new atom, a reply, a stream item and erlang.call "
           "arguments are all refused past the budget, with AtomLimitError."}].
atom_budget_covers_terms_and_replies(Config) ->
    Port = open_ready(Config),
    set_windows(Port, #{max_atoms => 0}),
    Etf = term_to_binary({fresh_atom_in_term_bytes}),
    {error, {pyerr, "AtomLimitError", _, _}} =
        request(Port, fun(Id) -> {eval, Id, self(), 0, <<"__import__('erlang').Term(b)">>,
                                  #{b => {bytes, Etf}}} end),
    {error, {pyerr, "AtomLimitError", _, _}} =
        request(Port, fun(Id) -> {stream, Id, self(), 0,
                                  {eval, <<"iter([__import__('erlang').atom('s_new')])">>, #{}},
                                  4} end),
    {error, {pyerr, "AtomLimitError", _, _}} =
        request(Port, fun(Id) -> eval(Id, <<"__import__('erlang').call('f', "
                                            "__import__('erlang').atom('cb_new'))">>) end),
    alive(Port),
    close(Port).

bad_atom_budget_is_badarg() ->
    [{doc, "A max_atoms that is not a non-negative integer is refused by setup with badarg."}].
bad_atom_budget_is_badarg(Config) ->
    Port = open_ready(Config),
    badarg(Port, fun(Id) -> {setup, Id, #{max_atoms => -5}} end),
    badarg(Port, fun(Id) -> {setup, Id, #{max_atoms => infinity}} end),
    close(Port).

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

executable() ->
    AppDir = case os:getenv("PYPORT_APP_DIR") of
                 false -> filename:dirname(code:priv_dir(pyport));
                 Dir -> Dir
             end,
    filename:join([AppDir, "priv", "pyport"]).

port_opts(Args) ->
    [{packet, 4}, binary, exit_status, use_stdio, {args, Args}].

open_ready(Config) ->
    open_ready(Config, []).

open_ready(Config, Args) ->
    {Port, _} = open_ready_pid(Config, Args),
    Port.

open_ready_pid(Config, Args) ->
    Port = open_port({spawn_executable, ?config(exe, Config)}, port_opts(Args)),
    {{ready, 2, _, OsPid}, none} = next_frame(Port),
    {Port, OsPid}.

close(Port) ->
    port_close(Port),
    ok.

%% A top-level request (Parent 0) of the test process.
eval(Id, Code) -> {eval, Id, self(), 0, Code, #{}}.
exec(Id, Code) -> {exec, Id, self(), 0, Code}.

send(Port, Term) ->
    send_raw(Port, term_to_binary(Term)).

send_raw(Port, Bytes) ->
    true = port_command(Port, Bytes).

%% A batch frame of Frames (binaries), as py_port_writer writes it.
batch(Frames) ->
    [?PYPORT_BATCH_TAG | [[<<(byte_size(F)):32>>, F] || F <- Frames]].

%%% Flow-control helpers ------------------------------------------------------

set_windows(Port, Opts) ->
    {reply, ok} = request(Port, fun(Id) -> {setup, Id, Opts} end).

%% Frames (with their sizes, as credit counts them) until none comes for QUIET_MS.
frames_until_quiet(Port) ->
    receive
        {Port, {data, Frame}} ->
            {H, B} = split(Frame),
            [{H, B, byte_size(Frame)} | frames_until_quiet(Port)];
        {Port, {exit_status, S}} ->
            ct:fail({port_exited, S})
    after ?QUIET_MS ->
        []
    end.

sizes(Frames) -> lists:sum([S || {_, _, S} <- Frames]).

output_only(Frames) -> [F || F = {{output, _, _, _}, _, _} <- Frames].

%% The producer holds at most WINDOW bytes of frames of Kind ahead of credit;
%% returning the credit of a batch lets the next one out. Rounds batches are
%% checked; returns the producer's sequence numbers (Numbers extracts them).
held_by_credit(Port, Kind, Numbers, Rounds) ->
    held_by_credit(Port, Kind, Numbers, Rounds, 0, []).

held_by_credit(Port, Kind, Numbers, Rounds, _, Seen) when Rounds =:= 0 ->
    Numbers(lists:reverse(Seen));
held_by_credit(Port, Kind, Numbers, Rounds, Credit, Seen) ->
    Credit > 0 andalso send(Port, {credit, Kind, Credit}),
    Batch = [F || F <- frames_until_quiet(Port), counted(Kind, F)],
    ct:log("~p: ~b frames, ~b bytes", [Kind, length(Batch), sizes(Batch)]),
    ?assert(Batch =/= []),
    ?assert(sizes(Batch) =< ?WINDOW),
    held_by_credit(Port, Kind, Numbers, Rounds - 1, sizes(Batch), lists:reverse(Batch, Seen)).

counted(output, {{output, _, _, _}, _, _}) -> true;
counted(output, {{log, _, _, _}, _, _}) -> true;
counted(send, {{send, _}, _, _}) -> true;
counted(_, _) -> false.

%% 'line NNNNNN xxx...' printed lines, in order.
output_lines(Frames) ->
    Text = iolist_to_binary([B || {{output, _, stdout, B}, _, _} <- Frames]),
    [binary_to_integer(N) || <<"line ", N:6/binary, _/binary>>
                                 <- binary:split(Text, <<"\n">>, [global, trim])].

%% 'NNNNNNNNN;' records written to fd 1, in order (a record cut by the last
%% frame, its rest not read yet, is left out).
fd_numbers(Frames) ->
    Text = iolist_to_binary([B || {{output, 0, fd1, B}, _, _} <- Frames]),
    Whole = binary:part(Text, 0, case binary:matches(Text, <<";">>) of
                                     [] -> 0;
                                     Ms -> element(1, lists:last(Ms)) + 1
                                 end),
    [binary_to_integer(N) || N <- binary:split(Whole, <<";">>, [global, trim])].

log_numbers(Frames) ->
    [binary_to_integer(N) || {{log, _, <<"t">>, <<"rec ", N/binary>>}, _, _} <- Frames].

send_numbers(Frames) ->
    [N || {{send, _}, {<<"n">>, N}, _} <- Frames].

%% The next frame as {Header, Body | none}; the body is the second term, if any.
next_frame(Port) ->
    receive
        {Port, {data, Frame}} -> split(Frame);
        {Port, {exit_status, S}} -> ct:fail({port_exited, S})
    after ?ANSWER_TIMEOUT ->
        ct:fail(no_frame_from_port)
    end.

split(Frame) ->
    {Header, Used} = binary_to_term(Frame, [used]),
    case byte_size(Frame) - Used of
        0 -> {Header, none};
        N -> {Header, binary_to_term(binary_part(Frame, Used, N))}
    end.

%% Skips frames until one whose header is a tuple tagged Tag.
await_frame(Port, Tag) ->
    case next_frame(Port) of
        {Header, _} = F when element(1, Header) =:= Tag -> F;
        _ -> await_frame(Port, Tag)
    end.

%% Waits for the answer to Id: {reply | error, Body, FramesBeforeIt}.
answer(Port, Id) ->
    answer(Port, Id, []).

answer(Port, Id, Acc) ->
    case next_frame(Port) of
        {{reply, Id}, Body} -> {reply, Body, lists:reverse(Acc)};
        {{error, Id}, Body} -> {error, Body, lists:reverse(Acc)};
        Other -> answer(Port, Id, [Other | Acc])
    end.

%% Sends the request built by Make(Id) for a fresh Id; returns {Tag, Body}.
request(Port, Make) ->
    {Tag, Body, _} = answer_after(Port, Make),
    {Tag, Body}.

answer_after(Port, Make) ->
    Id = erlang:unique_integer([positive]),
    send(Port, Make(Id)),
    answer(Port, Id).

%% The answers ({reply, _} and {error, _} frames) among frames.
answers(Frames) ->
    [F || {{Tag, _}, _} = F <- Frames, Tag =:= reply orelse Tag =:= error].

%% The port is alive and answering, and has not exited.
alive(Port) ->
    ?assertEqual({reply, 42}, request(Port, fun(Id) -> eval(Id, <<"40 + 2">>) end)),
    receive
        {Port, {exit_status, S}} -> ct:fail({port_exited, S})
    after 0 -> ok
    end.

%% Frame gets no answer at all, and the port keeps answering.
dropped(Port, Frame) ->
    send_raw(Port, Frame),
    {reply, 42, Before} = answer_after(Port, fun(Id) -> eval(Id, <<"40 + 2">>) end),
    ?assertEqual({Frame, []}, {Frame, answers(Before)}).

%% The request built by Make(Id) is answered {error, Id} + {badarg, Message}, and
%% the port keeps answering.
badarg(Port, Make) ->
    Id = erlang:unique_integer([positive]),
    Req = Make(Id),
    send(Port, Req),
    case answer(Port, Id) of
        {error, {badarg, Msg}, _} ->
            ?assert(io_lib:printable_unicode_list(Msg));
        Other ->
            ct:fail({not_badarg, Req, Other})
    end,
    alive(Port).

collect_answers(_Port, 0, Counts) ->
    Counts;
collect_answers(Port, Left, Counts) ->
    case next_frame(Port) of
        {{Tag, Id}, _} when Tag =:= reply; Tag =:= error ->
            collect_answers(Port, Left - 1, maps:update_with(Id, fun(C) -> C + 1 end, 1, Counts));
        _ ->
            collect_answers(Port, Left, Counts)
    end.

%% Polls {info, _} until request Id is the one running.
wait_running(Port, Id) ->
    wait_running(Port, Id, erlang:monotonic_time(millisecond) + ?EVENTUALLY_MS).

wait_running(Port, Id, Deadline) ->
    {reply, Info} = request(Port, fun(I) -> {info, I} end),
    case Info of
        #{current := #{id := Id}} ->
            ok;
        _ ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> ct:fail({never_running, Id, Info});
                false -> timer:sleep(?POLL_MS), wait_running(Port, Id, Deadline)
            end
    end.

%% Accumulates fd1/fd2 output bytes by stream.
stray_output(Frames, Acc) ->
    lists:foldl(
      fun({{output, 0, S, B}, none}, A) when S =:= fd1; S =:= fd2 ->
              maps:update_with(S, fun(Old) -> <<Old/binary, B/binary>> end, B, A);
         (_, A) ->
              A
      end, Acc, Frames).

%% Reads frames until every {Stream, Bytes} in Want appears in that stream.
await_stray(Port, Seen, Want) ->
    Deadline = erlang:monotonic_time(millisecond) + ?EVENTUALLY_MS,
    await_stray(Port, Seen, Want, Deadline).

await_stray(Port, Seen, Want, Deadline) ->
    Missing = [W || {S, B} = W <- Want, binary:match(maps:get(S, Seen, <<>>), B) =:= nomatch],
    case Missing of
        [] ->
            Seen;
        _ ->
            Left = Deadline - erlang:monotonic_time(millisecond),
            receive
                {Port, {data, Frame}} ->
                    await_stray(Port, stray_output([split(Frame)], Seen), Want, Deadline)
            after max(0, Left) ->
                ct:fail({stray_output_missing, Missing, Seen})
            end
    end.

exit_status(Port) ->
    receive
        {Port, {exit_status, S}} -> S
    after ?EXIT_STATUS_TIMEOUT ->
        ct:fail(no_exit_status)
    end.

%% As exit_status/1, writing a byte every POLL_MS meanwhile (for a port behind a
%% shell pipeline whose first command only ends when its output pipe breaks).
%% A write that finds the pipe gone closes the port with an exit signal: trapped.
exit_status_nudging(Port) ->
    Trap = process_flag(trap_exit, true),
    try
        exit_status_nudging(Port, erlang:monotonic_time(millisecond) + ?EXIT_STATUS_TIMEOUT)
    after
        receive {'EXIT', Port, _} -> ok after 0 -> ok end,
        process_flag(trap_exit, Trap)
    end.

exit_status_nudging(Port, Deadline) ->
    receive
        {Port, {exit_status, S}} -> S
    after ?POLL_MS ->
        catch port_command(Port, <<0>>),
        case erlang:monotonic_time(millisecond) > Deadline of
            true -> ct:fail(no_exit_status);
            false -> exit_status_nudging(Port, Deadline)
        end
    end.

%% An OS process is alive while /proc has it and it is not a zombie.
os_alive(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, Stat} ->
            [_, AfterName] = string:split(Stat, ") ", trailing),
            not lists:member(binary:first(AfterName), [$Z, $X]);
        {error, _} ->
            false
    end.

wait_exited(OsPid, Ms) ->
    Deadline = erlang:monotonic_time(millisecond) + Ms,
    wait_exited_until(OsPid, Deadline).

wait_exited_until(OsPid, Deadline) ->
    case os_alive(OsPid) of
        false ->
            ok;
        true ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> {still_running_after_ms, OsPid};
                false -> timer:sleep(?POLL_MS), wait_exited_until(OsPid, Deadline)
            end
    end.
