%% Where Python output goes: print() and sys.stdout/sys.stderr writes reach the
%% group leader of the calling Erlang process (not the test's own output); C-level
%% writes to fds 1 and 2 never corrupt the protocol and reach the logger with the
%% context named.
-module(py_output_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([print_goes_to_caller_group_leader/0, print_goes_to_caller_group_leader/1,
         sys_streams_go_to_caller_group_leader/0, sys_streams_go_to_caller_group_leader/1,
         fd_writes_go_to_logger/0, fd_writes_go_to_logger/1,
         fd_lines_are_events_and_long_lines_are_cut/0,
         fd_lines_are_events_and_long_lines_are_cut/1,
         c_printf_goes_to_logger/0, c_printf_goes_to_logger/1,
         fd_flood_keeps_protocol/0, fd_flood_keeps_protocol/1]).
%% logger handler callback
-export([log/2]).

%% Timeout of calls that must succeed.
-define(CALL_TIMEOUT, 30000).
%% Deadline for output to arrive.
-define(EVENTUALLY_MS, 10000).
%% Bytes of binary junk written straight to fd 1 in the flood case.
-define(FLOOD_BYTES, 256 * 256).

suite() -> [{timetrap, {minutes, 3}}].

all() ->
    [print_goes_to_caller_group_leader, sys_streams_go_to_caller_group_leader,
     fd_writes_go_to_logger, fd_lines_are_events_and_long_lines_are_cut,
     c_printf_goes_to_logger, fd_flood_keeps_protocol].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

init_per_testcase(_Case, Config) ->
    {ok, Ctx} = py_context:start_link(#{label => output_test}),
    [{ctx, Ctx} | Config].

end_per_testcase(_Case, Config) ->
    _ = logger:remove_handler(?MODULE),
    ok = py_context:stop(?config(ctx, Config)).

%%% ===========================================================================
%%% Cases
%%% ===========================================================================

print_goes_to_caller_group_leader() ->
    [{doc, "print() in a call reaches the group leader of the calling process (a test io "
      "server), and nothing of it reaches the test process's own group leader."}].
print_goes_to_caller_group_leader(Config) ->
    Ctx = ?config(ctx, Config),
    {Result, Caller, Own} = with_group_leaders(
                              fun() -> py_context:exec(Ctx, "print('hello from', 'print', 42)",
                                                       ?CALL_TIMEOUT) end),
    ?assertEqual(ok, Result),
    wait_until(fun() -> contains(chars(Caller), "hello from print 42\n") end),
    ?assertEqual(nomatch, string:find(chars(Own), "hello from print")).

sys_streams_go_to_caller_group_leader() ->
    [{doc, "sys.stdout.write and sys.stderr.write in a call both reach the caller's "
      "group leader; the call's own result is unchanged."}].
sys_streams_go_to_caller_group_leader(Config) ->
    Ctx = ?config(ctx, Config),
    Code = "import sys\n"
           "sys.stdout.write('out-marker\\n')\n"
           "sys.stderr.write('err-marker\\n')\n"
           "result = 7\n",
    {Result, Caller, Own} = with_group_leaders(
                              fun() ->
                                      ok = py_context:exec(Ctx, Code, ?CALL_TIMEOUT),
                                      py_context:eval(Ctx, <<"result">>, #{}, ?CALL_TIMEOUT)
                              end),
    ?assertEqual({ok, 7}, Result),
    wait_until(fun() -> contains(chars(Caller), "out-marker\n") andalso
                            contains(chars(Caller), "err-marker\n") end),
    ?assertEqual(nomatch, string:find(chars(Own), "-marker")).

fd_writes_go_to_logger() ->
    [{doc, "os.write(1, ...) and os.write(2, ...) return their result through the "
      "protocol intact, and reach the logger as events naming the context."}].
fd_writes_go_to_logger(Config) ->
    Ctx = ?config(ctx, Config),
    add_log_handler(),
    ?assertEqual({ok, 11}, py_context:eval(Ctx, <<"__import__('os').write(1, b'fd1-marker\\n')">>,
                                           #{}, ?CALL_TIMEOUT)),
    ?assertEqual({ok, 11}, py_context:eval(Ctx, <<"__import__('os').write(2, b'fd2-marker\\n')">>,
                                           #{}, ?CALL_TIMEOUT)),
    Name = ctx_name(Ctx),
    wait_logged("fd1-marker", Name),
    wait_logged("fd2-marker", Name),
    ?assertEqual({ok, 2}, py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT)).

fd_lines_are_events_and_long_lines_are_cut() ->
    [{doc, "One os.write of three lines is three logger events (each counted by "
      "log_rate), and a line of 10,000 bytes reaches the logger cut to 4096 bytes "
      "with the number of bytes left out."}].
fd_lines_are_events_and_long_lines_are_cut(Config) ->
    Ctx = ?config(ctx, Config),
    add_log_handler(),
    Code = <<"__import__('os').write(2, b'line-a\\nline-b\\n' + b'L' * 10000 + b'\\n')">>,
    ?assertEqual({ok, 10015}, py_context:eval(Ctx, Code, #{}, ?CALL_TIMEOUT)),
    Name = ctx_name(Ctx),
    Texts = [wait_logged_text(Marker, Name) || Marker <- ["line-a", "line-b", "LLLL"]],
    [A, B, Long] = Texts,
    ?assertEqual(nomatch, string:find(A, "line-b")),
    ?assertEqual(nomatch, string:find(B, "line-a")),
    ?assertEqual(4096, length([C || C <- Long, C =:= $L])),
    ?assertNotEqual(nomatch, string:find(Long, "(5904 bytes more)")).

c_printf_goes_to_logger() ->
    [{doc, "libc printf + fflush through ctypes: the call returns printf's count, the "
      "context keeps working, and the text reaches the logger naming the context."}].
c_printf_goes_to_logger(Config) ->
    Ctx = ?config(ctx, Config),
    add_log_handler(),
    Code = "import ctypes\n"
           "libc = ctypes.CDLL(None)\n"
           "n = libc.printf(b'printf-marker %d\\n', 42)\n"
           "libc.fflush(None)\n",
    ok = py_context:exec(Ctx, Code, ?CALL_TIMEOUT),
    ?assertEqual({ok, 17}, py_context:eval(Ctx, <<"n">>, #{}, ?CALL_TIMEOUT)),
    wait_logged("printf-marker 42", ctx_name(Ctx)),
    ?assertEqual({ok, 2}, py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT)).

fd_flood_keeps_protocol() ->
    [{doc, "64 KB of binary junk (every byte value, like stray frames) written to fd 1 "
      "and fd 2 inside a call: the call still returns its result and the context works."}].
fd_flood_keeps_protocol(Config) ->
    Ctx = ?config(ctx, Config),
    Code = iolist_to_binary(
             io_lib:format("__import__('os').write(1, bytes(range(256)) * ~b) + "
                           "__import__('os').write(2, bytes(range(256)) * ~b)",
                           [?FLOOD_BYTES div 256, ?FLOOD_BYTES div 256])),
    {ok, Written} = py_context:eval(Ctx, Code, #{}, ?CALL_TIMEOUT),
    ?assert(Written > 0),
    ?assertEqual({ok, [1, 2, 3]}, py_context:eval(Ctx, <<"[1, 2, 3]">>, #{}, ?CALL_TIMEOUT)),
    #{restarts := 0} = py_context:info(Ctx).

%%% ===========================================================================
%%% Group leaders
%%% ===========================================================================

%% Runs Fun in a process whose group leader is a fresh collector, while the test
%% process's own group leader is another collector. Returns Fun's result and both.
with_group_leaders(Fun) ->
    OldGL = group_leader(),
    Own = start_collector(),
    Caller = start_collector(),
    group_leader(Own, self()),
    Parent = self(),
    try
        Pid = spawn(fun() ->
                            group_leader(Caller, self()),
                            Parent ! {result, self(), Fun()}
                    end),
        receive {result, Pid, R} -> {R, Caller, Own}
        after ?CALL_TIMEOUT -> ct:fail(no_result)
        end
    after
        group_leader(OldGL, self())
    end.

start_collector() ->
    spawn(fun() -> collect([]) end).

%% A minimal io server: answers every request ok and keeps the characters written.
collect(Acc) ->
    receive
        {io_request, From, ReplyAs, Req} ->
            From ! {io_reply, ReplyAs, ok},
            collect([request_chars(Req) | Acc]);
        {chars, From} ->
            From ! {chars, self(), unicode:characters_to_list(lists:reverse(Acc))},
            collect(Acc)
    end.

request_chars({put_chars, Enc, Chars}) -> unicode:characters_to_binary(Chars, Enc);
request_chars({put_chars, Chars}) -> unicode:characters_to_binary(Chars, latin1);
request_chars({put_chars, Enc, M, F, A}) -> unicode:characters_to_binary(apply(M, F, A), Enc);
request_chars({requests, Reqs}) -> [request_chars(R) || R <- Reqs];
request_chars(_) -> <<>>.

chars(Collector) ->
    Collector ! {chars, self()},
    receive {chars, Collector, Chars} -> Chars
    after ?EVENTUALLY_MS -> ct:fail(collector_silent)
    end.

contains(Haystack, Needle) -> string:find(Haystack, Needle) =/= nomatch.

%%% ===========================================================================
%%% Logger
%%% ===========================================================================

add_log_handler() ->
    ok = logger:add_handler(?MODULE, ?MODULE, #{level => all, config => #{pid => self()}}).

%% logger handler: forwards each event's text and metadata to the test process.
log(#{msg := Msg, meta := Meta}, #{config := #{pid := Pid}}) ->
    Text = case Msg of
               {report, R} -> io_lib:format("~0p", [R]);
               {string, S} -> S;
               {Format, Args} -> io_lib:format(Format, Args)
           end,
    Pid ! {logged, unicode:characters_to_list(Text), Meta},
    ok.

%% Waits for a log event whose text holds Marker and which names the context
%% (in its text or its pyport_context metadata).
wait_logged(Marker, Name) ->
    Deadline = erlang:monotonic_time(millisecond) + ?EVENTUALLY_MS,
    wait_logged(Marker, Name, Deadline, []).

wait_logged(Marker, Name, Deadline, Seen) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {logged, Text, Meta} ->
            Named = contains(Text, Name) orelse
                maps:get(pyport_context, Meta, undefined) =:= list_to_binary(Name),
            case contains(Text, Marker) andalso Named of
                true -> ok;
                false -> wait_logged(Marker, Name, Deadline, [Text | Seen])
            end
    after Left ->
        ct:fail({not_logged, Marker, Name, lists:reverse(Seen)})
    end.

%% The text of the first log event that holds Marker and names the context.
wait_logged_text(Marker, Name) ->
    receive
        {logged, Text, Meta} ->
            Named = contains(Text, Name) orelse
                maps:get(pyport_context, Meta, undefined) =:= list_to_binary(Name),
            case contains(Text, Marker) andalso Named of
                true -> Text;
                false -> wait_logged_text(Marker, Name)
            end
    after ?EVENTUALLY_MS ->
        ct:fail({not_logged, Marker, Name})
    end.

ctx_name(Ctx) ->
    binary_to_list(maps:get(name, py_context:info(Ctx))).

wait_until(Fun) -> pyport_test:wait_until(Fun, ?EVENTUALLY_MS).
