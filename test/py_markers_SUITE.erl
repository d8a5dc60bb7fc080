%% erlang_python's scheduling markers in pyport: erlang.schedule,
%% schedule_py, schedule_inline return a marker (an erlang.Term) that converts to
%% the continuation's result, which pyport computes at once; consume_time_slice
%% is always False.
-module(py_markers_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([schedule_callback/0, schedule_callback/1,
         schedule_py_main_and_module/0, schedule_py_main_and_module/1,
         schedule_inline_chain/0, schedule_inline_chain/1,
         markers_are_terms/0, markers_are_terms/1,
         errors_raise_at_once/0, errors_raise_at_once/1,
         time_slice/0, time_slice/1]).

%% Generous bound for a whole case.
-define(CASE_TIMEOUT, {minutes, 2}).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [schedule_callback, schedule_py_main_and_module, schedule_inline_chain,
     markers_are_terms, errors_raise_at_once, time_slice].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    ok = py:register_function(markers_add, fun([A, B]) -> A + B end),
    Config.

end_per_suite(_Config) ->
    ok = py:unregister_function(markers_add),
    ok = application:stop(pyport).

schedule_callback() ->
    [{doc, "A function returning erlang.schedule('name', *args) answers the "
      "registered Erlang function's result; the callback ran exactly once, in the "
      "calling process."}].
schedule_callback(_Config) ->
    Self = self(),
    ok = py:register_function(markers_who, fun([]) -> Self ! {ran, self()}, ok end),
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"def add(a, b): return erlang.schedule('markers_add', a, b)\n"
                        "def who(): return erlang.schedule('markers_who')\n">>),
    ?assertEqual({ok, 12}, py:eval(Ctx, <<"add(5, 7)">>)),
    ?assertEqual({ok, ok}, py:call(Ctx, '__main__', who, [])),
    ?assertEqual({ran, Self}, receive M -> M after 5000 -> none end),
    ?assertEqual(nothing, receive M2 -> M2 after 200 -> nothing end),
    ok.

schedule_py_main_and_module() ->
    [{doc, "schedule_py('__main__', f, args, kwargs) finds f in the caller's "
      "namespace; schedule_py on a module calls it; the result of a nested marker "
      "passes through."}].
schedule_py_main_and_module(_Config) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"def greet(name, prefix='Hello'): return f'{prefix}, {name}!'\n"
                        "def g(n, p): return erlang.schedule_py('__main__', 'greet', [n], {'prefix': p})\n"
                        "def root(x): return erlang.schedule_py('math', 'sqrt', [x])\n"
                        "def nested(): return erlang.schedule_py('__main__', 'g', ['A', 'B'])\n">>),
    ?assertEqual({ok, <<"Hi, World!">>}, py:eval(Ctx, <<"g('World', 'Hi')">>)),
    ?assertEqual({ok, 4.0}, py:eval(Ctx, <<"root(16.0)">>)),
    ?assertEqual({ok, <<"B, A!">>}, py:eval(Ctx, <<"nested()">>)),
    ok.

schedule_inline_chain() ->
    [{doc, "schedule_inline chains (each step returns the next marker) give the last "
      "step's result; mixing schedule_inline and schedule_py works."}].
schedule_inline_chain(_Config) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"def step(n, acc):\n"
                        "    if n <= 0: return acc\n"
                        "    return erlang.schedule_inline('__main__', 'step', args=[n - 1, acc + n])\n"
                        "def s1(x): return erlang.schedule_inline('__main__', 's2', args=[x * 2])\n"
                        "def s2(x): return erlang.schedule_py('__main__', 's3', [x + 10])\n"
                        "def s3(x): return x * 3\n">>),
    ?assertEqual({ok, 55}, py:eval(Ctx, <<"step(10, 0)">>)),
    ?assertEqual({ok, 60}, py:eval(Ctx, <<"s1(5)">>)),
    ok.

markers_are_terms() ->
    [{doc, "Markers are instances of erlang.ScheduleMarker / InlineScheduleMarker "
      "(and erlang.Term), convert to their result inside containers too, and other "
      "terms are not markers."}].
markers_are_terms(_Config) ->
    Ctx = py:context(1),
    ?assertEqual({ok, [true, true, false, true, false]},
                 py:eval(Ctx, <<"[isinstance(erlang.schedule('markers_add', 1, 2), erlang.ScheduleMarker),\n"
                                " isinstance(erlang.schedule_inline('math', 'floor', args=[2.5]), erlang.InlineScheduleMarker),\n"
                                " isinstance(erlang.schedule('markers_add', 1, 2), erlang.InlineScheduleMarker),\n"
                                " isinstance(erlang.schedule_py('math', 'floor', [1.5]), erlang.Term),\n"
                                " isinstance(erlang.Term(b'\\x83a\\x01'), erlang.ScheduleMarker)]">>)),
    ?assertEqual({ok, [3, {2}]},
                 py:eval(Ctx, <<"[erlang.schedule('markers_add', 1, 2), (erlang.schedule_py('math', 'floor', [2.5]),)]">>)),
    ok.

errors_raise_at_once() ->
    [{doc, "A continuation that fails raises where the marker is made: an unknown "
      "__main__ name is NameError, an Erlang exception is erlang.Error."}].
errors_raise_at_once(_Config) ->
    Ctx = py:context(1),
    ?assertMatch({error, {"NameError", _}},
                 py:eval(Ctx, <<"erlang.schedule_inline('__main__', 'nonexistent_xyz', args=[])">>)),
    ?assertMatch({error, {"Error", _}},
                 py:eval(Ctx, <<"erlang.schedule('markers_add', 1)">>)),
    ok.

time_slice() ->
    [{doc, "consume_time_slice(percent) is always False: a context never holds a "
      "BEAM scheduler, so there is never a reason to yield."}].
time_slice(_Config) ->
    ?assertEqual({ok, [false, false]},
                 py:eval(<<"[erlang.consume_time_slice(1), erlang.consume_time_slice(100)]">>)),
    ok.
