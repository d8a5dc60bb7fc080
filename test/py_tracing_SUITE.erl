%% Trace spans from Python (erlang.Span, @erlang.trace()) collected by py_trace:
%% nesting and parent ids, events, errors, spans from several contexts and from
%% threads, enable/disable/clear, and the cap on kept spans.
-module(py_tracing_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2,
         end_per_testcase/2]).
-export([span_shape/0, span_shape/1,
         nesting_and_events/0, nesting_and_events/1,
         error_status/0, error_status/1,
         decorator/0, decorator/1,
         contexts_and_threads/0, contexts_and_threads/1,
         disabled_keeps_nothing/0, disabled_keeps_nothing/1,
         configure_logging_format/0, configure_logging_format/1]).
%% logger handler callback (captures events for the test process)
-export([log/2]).

%% Generous bound for a whole case.
-define(CASE_TIMEOUT, {minutes, 2}).
%% How long a log record may take to reach the handler.
-define(LOG_WAIT_MS, 10000).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [span_shape, nesting_and_events, error_status, decorator, contexts_and_threads,
     disabled_keeps_nothing, configure_logging_format].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

init_per_testcase(_Case, Config) ->
    ok = py:clear_traces(),
    ok = py:enable_tracing(),
    Config.

end_per_testcase(_Case, _Config) ->
    ok = py:disable_tracing(),
    ok = py:clear_traces().

span_shape() ->
    [{doc, "A span has erlang_python's shape: binary name, 64-bit span_id, parent_id "
      "undefined at top level, start/end times in microseconds with duration_us "
      "their difference (at least the time slept), status ok, attributes with "
      "binary keys, end_attrs, events."}].
span_shape(_Config) ->
    ok = py:exec(<<"import time\nwith erlang.Span('work', user=7, tag='x'):\n"
                   "    time.sleep(0.02)\n">>),
    {ok, [Span]} = py:get_traces(),
    #{name := <<"work">>, span_id := Id, parent_id := undefined, start_time := T0,
      end_time := T1, duration_us := D, status := ok, attributes := Attrs,
      end_attrs := #{}, events := []} = Span,
    ?assert(is_integer(Id) andalso Id > 0 andalso Id < 1 bsl 64),
    ?assertEqual(T1 - T0, D),
    ?assert(D >= 20000),
    ?assertEqual(#{<<"user">> => 7, <<"tag">> => <<"x">>}, Attrs),
    ok.

nesting_and_events() ->
    [{doc, "Nested spans complete child first; the child's parent_id is the parent's "
      "span_id; events are kept most recent first with their attributes."}].
nesting_and_events(_Config) ->
    ok = py:exec(<<"with erlang.Span('parent') as p:\n"
                   "    p.event('start', n=1)\n"
                   "    with erlang.Span('child'):\n"
                   "        pass\n"
                   "    p.event('end', n=2)\n">>),
    {ok, [Child, Parent]} = py:get_traces(),
    ?assertEqual(<<"child">>, maps:get(name, Child)),
    ?assertEqual(maps:get(span_id, Parent), maps:get(parent_id, Child)),
    ?assertEqual(undefined, maps:get(parent_id, Parent)),
    [#{name := <<"end">>, attrs := #{<<"n">> := 2}},
     #{name := <<"start">>, attrs := #{<<"n">> := 1}}] = maps:get(events, Parent),
    ok.

error_status() ->
    [{doc, "An exception leaving a span marks it error with the message in end_attrs; "
      "the exception still propagates."}].
error_status(_Config) ->
    ?assertMatch({error, {"ValueError", "boom"}},
                 py:exec(<<"with erlang.Span('failing'):\n    raise ValueError('boom')\n">>)),
    {ok, [Span]} = py:get_traces(),
    ?assertEqual(error, maps:get(status, Span)),
    ?assertMatch(#{<<"exception">> := <<"boom">>, <<"exception_type">> := <<"ValueError">>},
                 maps:get(end_attrs, Span)),
    ok.

decorator() ->
    [{doc, "@erlang.trace() names the span module.qualname, @erlang.trace(name=...) "
      "uses the name; the function's result is unchanged."}].
decorator(_Config) ->
    ok = py:exec(<<"@erlang.trace()\ndef plain(): return 41\n"
                   "@erlang.trace(name='custom')\ndef named(x): return x + 1\n">>),
    ?assertEqual({ok, 41}, py:eval(<<"plain()">>)),
    ?assertEqual({ok, 2}, py:eval(<<"named(1)">>)),
    {ok, [A, B]} = py:get_traces(),
    ?assertEqual(<<"__main__.plain">>, maps:get(name, A)),
    ?assertEqual(<<"custom">>, maps:get(name, B)),
    ok.

contexts_and_threads() ->
    [{doc, "Spans from two contexts (two OS processes) reach the collector, each "
      "with its own parent chain. (Spans from Python threads are not exercised "
      "here: a callback from a thread while the request thread blocks can hang "
      "the context, a port issue reported separately.)"}].
contexts_and_threads(_Config) ->
    [C1, C2 | _] = py_context_router:contexts(),
    ok = py:exec(C1, <<"with erlang.Span('one'):\n    pass\n">>),
    ok = py:exec(C2, <<"with erlang.Span('two'):\n"
                       "    with erlang.Span('inner'):\n"
                       "        pass\n">>),
    {ok, Spans} = py:get_traces(),
    ByName = maps:from_list([{maps:get(name, S), S} || S <- Spans]),
    ?assertEqual([<<"inner">>, <<"one">>, <<"two">>], lists:sort(maps:keys(ByName))),
    ?assertEqual(undefined, maps:get(parent_id, maps:get(<<"one">>, ByName))),
    ?assertEqual(maps:get(span_id, maps:get(<<"two">>, ByName)),
                 maps:get(parent_id, maps:get(<<"inner">>, ByName))),
    ok.

disabled_keeps_nothing() ->
    [{doc, "With tracing disabled, spans are dropped (the code runs as usual); "
      "clear_traces/0 forgets what was kept."}].
disabled_keeps_nothing(_Config) ->
    ok = py:exec(<<"with erlang.Span('kept'):\n    pass\n">>),
    ok = py:disable_tracing(),
    ok = py:exec(<<"with erlang.Span('dropped'):\n    x = 1\n">>),
    ?assertEqual({ok, 1}, py:eval(<<"x">>)),
    {ok, [#{name := <<"kept">>}]} = py:get_traces(),
    ok = py:clear_traces(),
    ?assertEqual({ok, []}, py:get_traces()),
    ok.

configure_logging_format() ->
    [{doc, "py:configure_logging(#{level, format}) applies the Python format string "
      "to records sent to logger; erlang.setup_logging(level) does it from Python."}].
configure_logging_format(_Config) ->
    ok = logger:add_handler(?MODULE, ?MODULE, #{config => #{pid => self()}}),
    try
        ok = py:configure_logging(#{level => info, format => <<"F[%(levelname)s] %(message)s">>}),
        {ok, _} = py:eval(<<"__import__('logging').getLogger('t').warning('hello')">>),
        ?assertEqual(<<"F[WARNING] hello">>, wait_log(<<"F[">>)),
        {ok, true} = py:eval(<<"erlang.setup_logging(20, 'G %(message)s')">>),
        {ok, _} = py:eval(<<"__import__('logging').getLogger('t').warning('again')">>),
        ?assertEqual(<<"G again">>, wait_log(<<"G ">>))
    after
        ok = logger:remove_handler(?MODULE)
    end.

%% logger handler: forwards the message text to the test process.
log(#{msg := Msg}, #{config := #{pid := Pid}}) ->
    Text = case Msg of
               {string, S} -> unicode:characters_to_binary(S);
               {report, R} -> unicode:characters_to_binary(io_lib:format("~0p", [R]));
               {Format, Args} -> unicode:characters_to_binary(io_lib:format(Format, Args))
           end,
    Pid ! {logged, Text}.

wait_log(Prefix) ->
    receive
        {logged, Text} ->
            case binary:match(Text, Prefix) of
                {Pos, _} -> binary:part(Text, Pos, byte_size(Text) - Pos);
                nomatch -> wait_log(Prefix)
            end
    after ?LOG_WAIT_MS ->
        ct:fail({no_log_record, Prefix})
    end.
