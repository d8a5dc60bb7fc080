%% Python calling Erlang: py:register_function/2,3 and unregister_function/1,
%% the three ways Python names a function, exactly-once calls at any nesting on
%% explicit, bound and routed contexts, the max_nesting limit (RecursionError),
%% exceptions in both directions, and callbacks from Python threads.
-module(py_callback_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([thread_callback_while_request_joins/0, thread_callback_while_request_joins/1]).
-export([register_fun/0, register_fun/1,
         register_mfa/0, register_mfa/1,
         three_ways_to_call/0, three_ways_to_call/1,
         unregistered_raises/0, unregistered_raises/1,
         unregister_function/0, unregister_function/1,
         exactly_once_nesting_1/0, exactly_once_nesting_1/1,
         exactly_once_nesting_10/0, exactly_once_nesting_10/1,
         exactly_once_nesting_100/0, exactly_once_nesting_100/1,
         nesting_100_bound/0, nesting_100_bound/1,
         nesting_100_routed/0, nesting_100_routed/1,
         nesting_limit_default/0, nesting_limit_default/1,
         nesting_limit_configured/0, nesting_limit_configured/1,
         erlang_exception_to_python/0, erlang_exception_to_python/1,
         erlang_exception_uncaught/0, erlang_exception_uncaught/1,
         python_exception_in_nested_call/0, python_exception_in_nested_call/1,
         callback_from_thread/0, callback_from_thread/1,
         callbacks_from_many_threads/0, callbacks_from_many_threads/1,
         callback_from_thread_after_request/0, callback_from_thread_after_request/1,
         nesting_across_contexts/0, nesting_across_contexts/1,
         timeout_covers_callbacks/0, timeout_covers_callbacks/1]).

%% Generous bound for a whole case (deep chains of round trips on a loaded
%% 2-core machine, possibly with the sanitizer port).
-define(CASE_TIMEOUT, {minutes, 5}).
%% The nesting limit a context has unless told otherwise (docs/callbacks.md).
-define(DEFAULT_MAX_NESTING, 200).
%% Levels of the chain that alternates between two contexts.
-define(CROSS_DEPTH, 30).
%% timeout_covers_callbacks: the caller's timeout, and how long the Erlang
%% function it calls takes (longer).
-define(CB_TIMEOUT, 300).
-define(SLOW_CB_MS, 1000).
%% How many times the timeout round runs.
-define(TIMEOUT_ROUNDS, 10).
%% Deadline for "eventually" conditions.
-define(EVENTUALLY_MS, 10000).
%% The limit given to the context started by nesting_limit_configured.
-define(SMALL_MAX_NESTING, 20).
%% Python threads started at once by callbacks_from_many_threads.
-define(THREADS, 8).
%% How long (s) Python waits for its threads to finish before reporting them stuck.
-define(THREAD_JOIN_S, 60).

%% Defines, in the caller's environment, the Python step of a chain: it records
%% its argument and calls the Erlang function 'talk_down'.
-define(STEP_CODE, <<"import erlang\n"
                     "trail = []\n"
                     "def step(n):\n"
                     "    trail.append(n)\n"
                     "    return erlang.call('talk_down', n) + 1\n">>).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [register_fun, register_mfa, three_ways_to_call, unregistered_raises,
     unregister_function, exactly_once_nesting_1, exactly_once_nesting_10,
     exactly_once_nesting_100, nesting_100_bound, nesting_100_routed,
     nesting_limit_default, nesting_limit_configured, erlang_exception_to_python,
     erlang_exception_uncaught, python_exception_in_nested_call, callback_from_thread,
     callbacks_from_many_threads, callback_from_thread_after_request,
     thread_callback_while_request_joins, nesting_across_contexts,
     timeout_covers_callbacks].

init_per_suite(Config) ->
    %% The routed chain imports talkback.py from every context of the default pool.
    ok = pyport_test:load_app(),
    ok = application:set_env(pyport, context_opts, #{python_path => [?config(data_dir, Config)]}),
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport),
    ok = application:unset_env(pyport, context_opts).

init_per_testcase(_Case, Config) ->
    %% A fresh context per case: nothing one case defines leaks into the next.
    {ok, Ctx} = py_context:start_link(#{}),
    [{ctx, Ctx} | Config].

end_per_testcase(_Case, Config) ->
    py_context_router:unbind_context(),
    [py:unregister_function(N) || N <- [double, talk_down, sum_all, boom, relay, echo, slow]],
    ok = py_context:stop(?config(ctx, Config)).

%%% ===========================================================================
%%% Registering and naming
%%% ===========================================================================

register_fun() ->
    [{doc, "register_function(Name, Fun) with the name as an atom, a binary and a string: "
      "Python's erlang.call(name, *args) calls Fun with the argument list."}].
register_fun(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:exec(Ctx, <<"import erlang">>),
    ok = py:register_function(double, fun([X]) -> 2 * X end),
    ?assertEqual({ok, 42}, py:eval(Ctx, <<"erlang.call('double', 21)">>)),
    ok = py:register_function(<<"echo">>, fun(Args) -> {got, Args} end),
    ?assertEqual({ok, {got, [1, <<"two">>, [3.0]]}},
                 py:eval(Ctx, <<"erlang.call('echo', 1, 'two', [3.0])">>)),
    ok = py:register_function("sum_all", fun(Args) -> lists:sum(Args) end),
    ?assertEqual({ok, 10}, py:eval(Ctx, <<"erlang.call('sum_all', 1, 2, 3, 4)">>)),
    %% Registering a name again replaces the function.
    ok = py:register_function(double, fun([X]) -> 3 * X end),
    ?assertEqual({ok, 63}, py:eval(Ctx, <<"erlang.call('double', 21)">>)),
    ok.

register_mfa() ->
    [{doc, "register_function(Name, M, F) calls M:F(Args) with the argument list."}].
register_mfa(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:exec(Ctx, <<"import erlang">>),
    ok = py:register_function(sum_all, lists, sum),
    ?assertEqual({ok, 6}, py:eval(Ctx, <<"erlang.call('sum_all', 1, 2, 3)">>)),
    ok = py:register_function(echo, lists, reverse),
    ?assertEqual({ok, [<<"c">>, <<"b">>, <<"a">>]},
                 py:eval(Ctx, <<"erlang.echo('a', 'b', 'c')">>)),
    ok.

three_ways_to_call() ->
    [{doc, "erlang.call('double', n), erlang.double(n) and `from erlang import double' "
      "all call the registered function (and the README's process/1 example gives 21)."}].
three_ways_to_call(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:register_function(double, fun([X]) -> 2 * X end),
    ok = py:exec(Ctx, <<"import erlang\n"
                        "def via_call(n): return erlang.call('double', n) + 1\n"
                        "def via_attr(n): return erlang.double(n) + 1\n"
                        "def via_import(n):\n"
                        "    from erlang import double\n"
                        "    return double(n) + 1\n">>),
    [?assertEqual({ok, 21}, py:call(Ctx, '__main__', F, [10]))
     || F <- [via_call, via_attr, via_import]],
    ok.

unregistered_raises() ->
    [{doc, "Calling a name nobody registered raises erlang.Error in Python, with args "
      "('error', ('undefined_function', name)); uncaught, the caller gets an error. "
      "As in erlang_python, erlang.<name> of an unregistered name is an "
      "AttributeError and `from erlang import name' an ImportError."}].
unregistered_raises(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:exec(Ctx, <<"import erlang\n"
                        "def probe(how):\n"
                        "    try:\n"
                        "        if how == 'call': erlang.call('no_such_fn', 1)\n"
                        "        elif how == 'attr': erlang.no_such_fn(1)\n"
                        "        else:\n"
                        "            from erlang import no_such_fn\n"
                        "            no_such_fn(1)\n"
                        "    except erlang.Error as e:\n"
                        "        return (type(e).__name__, e.args[0] == 'error',\n"
                        "                e.args[1][0] == 'undefined_function', e.args[1][1])\n"
                        "    except (AttributeError, ImportError) as e:\n"
                        "        return (type(e).__name__, 'no_such_fn' in str(e))\n"
                        "    return 'no exception'\n">>),
    ?assertEqual({ok, {<<"Error">>, true, true, <<"no_such_fn">>}},
                 py:call(Ctx, '__main__', probe, [<<"call">>])),
    ?assertEqual({ok, {<<"AttributeError">>, true}}, py:call(Ctx, '__main__', probe, [<<"attr">>])),
    ?assertEqual({ok, {<<"ImportError">>, true}}, py:call(Ctx, '__main__', probe, [<<"import">>])),
    ?assertMatch({error, {_, _}}, py:eval(Ctx, <<"erlang.call('no_such_fn')">>)),
    ok.

unregister_function() ->
    [{doc, "After unregister_function(Name) the name raises erlang.Error again; "
      "unregistering an unknown name is ok."}].
unregister_function(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:exec(Ctx, <<"import erlang\n"
                        "def try_call(name, n):\n"
                        "    try:\n"
                        "        return erlang.call(name, n)\n"
                        "    except erlang.Error as e:\n"
                        "        return ('raised', e.args[1][0])\n">>),
    ok = py:register_function(double, fun([X]) -> 2 * X end),
    ?assertEqual({ok, 8}, py:call(Ctx, '__main__', try_call, [<<"double">>, 4])),
    ok = py:unregister_function(double),
    ?assertEqual({ok, {<<"raised">>, undefined_function}},
                 py:call(Ctx, '__main__', try_call, [<<"double">>, 4])),
    %% An M:F registration, unregistered by its name as a string.
    ok = py:register_function(sum_all, lists, sum),
    ?assertEqual({ok, 5}, py:call(Ctx, '__main__', try_call, [<<"sum_all">>, 5])),
    ok = py:unregister_function("sum_all"),
    ?assertEqual({ok, {<<"raised">>, undefined_function}},
                 py:call(Ctx, '__main__', try_call, [<<"sum_all">>, 5])),
    ok = py:unregister_function(never_registered),
    ok.

%%% ===========================================================================
%%% Exactly once, nesting
%%% ===========================================================================

exactly_once_nesting_1() ->
    [{doc, "A Python function that appends to a list and then calls Erlang, which calls "
      "it again once: each level ran exactly once, on Python's and Erlang's side."}].
exactly_once_nesting_1(Config) ->
    explicit_chain(?config(ctx, Config), 1).

exactly_once_nesting_10() ->
    [{doc, "As exactly_once_nesting_1, with 10 levels of Python -> Erlang -> Python."}].
exactly_once_nesting_10(Config) ->
    explicit_chain(?config(ctx, Config), 10).

exactly_once_nesting_100() ->
    [{doc, "As exactly_once_nesting_1, with 100 levels on an explicit context: no "
      "deadlock, no replay."}].
exactly_once_nesting_100(Config) ->
    explicit_chain(?config(ctx, Config), 100).

explicit_chain(Ctx, Depth) ->
    ok = py:exec(Ctx, ?STEP_CODE),
    Counter = counters:new(1, []),
    ok = register_chain(fun(M) -> py:call(Ctx, '__main__', step, [M]) end, Counter),
    ?assertEqual({ok, Depth + 1}, py:call(Ctx, '__main__', step, [Depth])),
    ?assertEqual({ok, lists:seq(Depth, 0, -1)}, py:eval(Ctx, <<"trail">>)),
    ?assertEqual(Depth + 1, counters:get(Counter, 1)),
    ?assertEqual([], nested_errors()),
    ok.

nesting_100_bound() ->
    [{doc, "100 levels through a bound context (bind_context + routed py:call): every "
      "level runs once, in the caller's environment on the bound context."}].
nesting_100_bound(Config) ->
    Ctx = ?config(ctx, Config),
    Depth = 100,
    ok = py_context_router:bind_context(Ctx),
    ?assertEqual(Ctx, py:context()),
    ok = py:exec(Ctx, ?STEP_CODE),
    Counter = counters:new(1, []),
    ok = register_chain(fun(M) -> py:call('__main__', step, [M]) end, Counter),
    ?assertEqual({ok, Depth + 1}, py:call('__main__', step, [Depth])),
    ?assertEqual({ok, lists:seq(Depth, 0, -1)}, py:eval(Ctx, <<"trail">>)),
    ?assertEqual(Depth + 1, counters:get(Counter, 1)),
    ?assertEqual([], nested_errors()),
    ok.

nesting_100_routed() ->
    [{doc, "100 levels through routed calls (py:call/3 on the default pool, the context "
      "picked by scheduler at each level): no deadlock, and over all contexts of the "
      "pool each level ran exactly once."}].
nesting_100_routed(_Config) ->
    Depth = 100,
    Ctxs = py_context_router:contexts(),
    [{ok, none} = py:call(C, talkback, reset, []) || C <- Ctxs],
    Counter = counters:new(1, []),
    ok = register_chain(fun(M) -> py:call(talkback, step, [M]) end, Counter),
    ?assertEqual({ok, Depth + 1}, py:call(talkback, step, [Depth])),
    Taken = lists:append([T || C <- Ctxs, {ok, T} <- [py:call(C, talkback, taken, [])]]),
    ?assertEqual(lists:seq(0, Depth), lists:sort(Taken)),
    ?assertEqual(Depth + 1, counters:get(Counter, 1)),
    ?assertEqual([], nested_errors()),
    ok.

nesting_limit_default() ->
    [{doc, "Past max_nesting (default 200) erlang.call raises RecursionError, naming the "
      "limit; the Python caller at that level sees it (here: the py:call made by the "
      "Erlang function gets {error, {\"RecursionError\", _}}), exactly at level 201, "
      "and the context is usable afterwards."}].
nesting_limit_default(Config) ->
    nesting_limit(?config(ctx, Config), ?DEFAULT_MAX_NESTING).

nesting_limit_configured() ->
    [{doc, "A context started with max_nesting => 20 raises RecursionError at the 21st "
      "level instead."}].
nesting_limit_configured(_Config) ->
    {ok, Ctx} = py_context:start_link(#{max_nesting => ?SMALL_MAX_NESTING}),
    try
        nesting_limit(Ctx, ?SMALL_MAX_NESTING)
    after
        py_context:stop(Ctx)
    end.

nesting_limit(Ctx, Limit) ->
    Depth = Limit + 50,
    ok = py:exec(Ctx, ?STEP_CODE),
    Counter = counters:new(1, []),
    ok = register_chain(fun(M) -> py:call(Ctx, '__main__', step, [M]) end, Counter),
    ?assertMatch({error, {_, _}}, py:call(Ctx, '__main__', step, [Depth])),
    %% Python ran Limit + 1 steps: the last one's erlang.call was refused.
    {ok, Trail} = py:eval(Ctx, <<"trail">>),
    ?assertEqual(lists:seq(Depth, Depth - Limit, -1), Trail),
    ?assertEqual(Limit, counters:get(Counter, 1)),
    %% The innermost failure, seen first, is the RecursionError.
    [{Level, {Type, Msg}} | _] = nested_errors(),
    ?assertEqual("RecursionError", Type),
    ?assertEqual(Depth - Limit, Level),
    ?assertNotEqual(nomatch, string:find(Msg, integer_to_list(Limit))),
    %% The context still works, nested calls too.
    ?assertEqual({ok, 4}, py:call(Ctx, '__main__', step, [3])),
    ok.

%% Registers 'talk_down': level N calls the next step through CallNext(N - 1)
%% until 0. A failed nested call is reported to the process running the
%% callback (the test process) and raised, so the chain unwinds.
register_chain(CallNext, Counter) ->
    py:register_function(
      talk_down,
      fun([0]) ->
              counters:add(Counter, 1, 1),
              0;
         ([N]) ->
              counters:add(Counter, 1, 1),
              case CallNext(N - 1) of
                  {ok, V} ->
                      V;
                  {error, E} ->
                      self() ! {nested_error, N - 1, E},
                      erlang:error({nested_failed, N - 1})
              end
      end).

nested_errors() ->
    receive
        {nested_error, Level, E} -> [{Level, E} | nested_errors()]
    after 0 ->
        []
    end.

%%% ===========================================================================
%%% Exceptions
%%% ===========================================================================

erlang_exception_to_python() ->
    [{doc, "An Erlang exception in the function raises erlang.Error in Python with args "
      "(Class, Reason): error, throw and exit, atoms and compound reasons."}].
erlang_exception_to_python(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:register_function(boom, fun([error]) -> erlang:error(badarith);
                                       ([throw]) -> throw(my_ball);
                                       ([exit]) -> exit(bye);
                                       ([compound]) -> erlang:error({bad, 42, <<"x">>})
                                    end),
    ok = py:exec(Ctx, <<"import erlang\n"
                        "def catch_it(how):\n"
                        "    try:\n"
                        "        erlang.call('boom', erlang.atom(how))\n"
                        "    except erlang.Error as e:\n"
                        "        return (isinstance(e.args[0], erlang.Atom), len(e.args),\n"
                        "                e.args[0], e.args[1])\n"
                        "    return 'no exception'\n"
                        "def is_error_badarith():\n"
                        "    try:\n"
                        "        erlang.boom(erlang.atom('error'))\n"
                        "    except erlang.Error as e:\n"
                        "        return e.args[0] == 'error' and e.args[1] == 'badarith'\n">>),
    Catch = fun(How) -> py:call(Ctx, '__main__', catch_it, [How]) end,
    ?assertEqual({ok, {true, 2, error, badarith}}, Catch(<<"error">>)),
    ?assertEqual({ok, {true, 2, throw, my_ball}}, Catch(<<"throw">>)),
    ?assertEqual({ok, {true, 2, exit, bye}}, Catch(<<"exit">>)),
    ?assertEqual({ok, {true, 2, error, {bad, 42, <<"x">>}}},
                 Catch(<<"compound">>)),
    ?assertEqual({ok, true}, py:call(Ctx, '__main__', is_error_badarith, [])),
    %% erlang.Error is an ordinary Exception subclass.
    ?assertEqual({ok, true}, py:eval(Ctx, <<"issubclass(erlang.Error, Exception)">>)),
    ok.

erlang_exception_uncaught() ->
    [{doc, "An erlang.Error that Python does not catch reaches the caller as "
      "{error, {Type, Message}} whose message carries the Erlang reason; the caller "
      "itself does not crash."}].
erlang_exception_uncaught(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:register_function(boom, fun(_) -> erlang:error(badarith) end),
    ok = py:exec(Ctx, <<"import erlang">>),
    {error, {Type, Msg}} = py:eval(Ctx, <<"erlang.boom()">>),
    ?assertNotEqual(nomatch, string:find(Type, "Error")),
    ?assertNotEqual(nomatch, string:find(Msg, "badarith")),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1 + 1">>)),
    ok.

python_exception_in_nested_call() ->
    [{doc, "A Python exception in a call made by the Erlang function comes back to that "
      "function as {error, {Type, Msg}}, which it may hand back to Python as a value."}].
python_exception_in_nested_call(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:exec(Ctx, <<"import erlang\n"
                        "def fail(): raise ValueError('bad thing')\n"
                        "def relay(): return erlang.call('relay')\n">>),
    Self = self(),
    ok = py:register_function(relay, fun([]) ->
                                             R = py:call(Ctx, '__main__', fail, []),
                                             Self ! {nested_result, R},
                                             {error, {Type, Msg}} = R,
                                             {list_to_binary(Type), list_to_binary(Msg)}
                                     end),
    ?assertEqual({ok, {<<"ValueError">>, <<"bad thing">>}}, py:call(Ctx, '__main__', relay, [])),
    receive {nested_result, R} -> ?assertEqual({error, {"ValueError", "bad thing"}}, R)
    after 0 -> ct:fail(no_nested_result)
    end,
    ok.

%%% ===========================================================================
%%% Threads
%%% ===========================================================================

callback_from_thread() ->
    [{doc, "A threading.Thread started by user code calls erlang.call and gets the "
      "result; the function ran once."}].
callback_from_thread(Config) ->
    threads(?config(ctx, Config), 1).

callbacks_from_many_threads() ->
    [{doc, "Several Python threads call erlang.call at the same time; each gets its "
      "own result and the function ran once per thread."}].
callbacks_from_many_threads(Config) ->
    threads(?config(ctx, Config), ?THREADS).

thread_callback_while_request_joins() ->
    [{doc, "300 times: a request starts a Python thread that calls erlang.call and joins "
      "it, so the request thread waits in C while the other thread's callback comes and "
      "goes; every call returns (none hangs the context)."}].
thread_callback_while_request_joins(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:register_function(echo, fun([X]) -> X end),
    ok = py:exec(Ctx, <<"import threading, erlang\n"
                        "def work(): erlang.call('echo', 1)\n"
                        "def run():\n"
                        "    t = threading.Thread(target=work)\n"
                        "    t.start(); t.join()\n">>),
    R = [py:call(Ctx, '__main__', run, [], #{timeout => ?EVENTUALLY_MS}) || _ <- lists:seq(1, 300)],
    ?assertEqual([{ok, none}], lists:usort(R)),
    ok = py:unregister_function(echo).

threads(Ctx, K) ->
    Counter = counters:new(1, []),
    ok = py:register_function(double, fun([X]) ->
                                              counters:add(Counter, 1, 1),
                                              timer:sleep(50),
                                              2 * X
                                      end),
    ok = py:exec(Ctx, iolist_to_binary(
                        ["import erlang, threading\n"
                         "def threaded(k):\n"
                         "    out = [None] * k\n"
                         "    def work(i):\n"
                         "        try:\n"
                         "            out[i] = erlang.call('double', i + 1)\n"
                         "        except BaseException as e:\n"
                         "            out[i] = repr(e)\n"
                         "    ts = [threading.Thread(target=work, args=(i,)) for i in range(k)]\n"
                         "    for t in ts: t.start()\n"
                         "    for t in ts: t.join(", integer_to_list(?THREAD_JOIN_S), ")\n"
                         "    return (out, sum(t.is_alive() for t in ts))\n"])),
    Expected = [2 * I || I <- lists:seq(1, K)],
    ?assertEqual({ok, {Expected, 0}}, py:call(Ctx, '__main__', threaded, [K])),
    ?assertEqual(K, counters:get(Counter, 1)),
    ok.

callback_from_thread_after_request() ->
    [{doc, "A Python thread that calls erlang.call after the request that started it "
      "has returned (nobody waits for that request) still gets its answer; the "
      "function runs once, in a process other than the caller."}].
callback_from_thread_after_request(Config) ->
    Ctx = ?config(ctx, Config),
    Self = self(),
    ok = py:register_function(double, fun([X]) -> Self ! {ran_in, self()}, 2 * X end),
    ok = py:exec(Ctx, <<"import erlang, threading, time\n"
                        "late = []\n"
                        "def later():\n"
                        "    time.sleep(0.3)\n"
                        "    late.append(erlang.call('double', 50))\n"
                        "threading.Thread(target=later).start()\n">>),
    ok = eventually(fun() -> py:eval(Ctx, <<"late">>) end, {ok, [100]}),
    Ran = receive {ran_in, P} -> P after 0 -> ct:fail(not_run) end,
    ?assertNotEqual(self(), Ran),
    receive {ran_in, _} -> ct:fail(ran_twice) after 0 -> ok end,
    ok.

nesting_across_contexts() ->
    [{doc, "A chain that alternates between two contexts (A -> Erlang -> B -> Erlang -> A "
      "...) for 30 levels: no deadlock, each level once, on the right context."}].
nesting_across_contexts(Config) ->
    CtxA = ?config(ctx, Config),
    {ok, CtxB} = py_context:start_link(#{}),
    try
        [ok = py:exec(C, ?STEP_CODE) || C <- [CtxA, CtxB]],
        Counter = counters:new(1, []),
        Next = fun(M) when M rem 2 =:= 0 -> py:call(CtxA, '__main__', step, [M]);
                  (M) -> py:call(CtxB, '__main__', step, [M])
               end,
        ok = register_chain(Next, Counter),
        ?assertEqual({ok, ?CROSS_DEPTH + 1}, Next(?CROSS_DEPTH)),
        ?assertEqual({ok, lists:seq(?CROSS_DEPTH, 0, -2)}, py:eval(CtxA, <<"trail">>)),
        ?assertEqual({ok, lists:seq(?CROSS_DEPTH - 1, 1, -2)}, py:eval(CtxB, <<"trail">>)),
        ?assertEqual(?CROSS_DEPTH + 1, counters:get(Counter, 1)),
        ?assertEqual([], nested_errors())
    after
        py_context:stop(CtxB)
    end.

timeout_covers_callbacks() ->
    [{doc, "The caller's timeout covers callbacks (docs/callbacks.md, Timeouts): an "
      "Erlang function that runs past it delays the answer until it returns, then the "
      "caller gets {error, timeout} and Python gets erlang.RequestTimeout (not the "
      "function's result), no late reply arrives, and the context serves the next "
      "call. Repeated, since the order of the reply and the cancel is a race."}].
timeout_covers_callbacks(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:register_function(slow, fun([]) -> timer:sleep(?SLOW_CB_MS), done end),
    ok = py:exec(Ctx, <<"import erlang\n"
                        "seen = []\n"
                        "def waits():\n"
                        "    try:\n"
                        "        r = erlang.call('slow')\n"
                        "        seen.append('returned')\n"
                        "        return r\n"
                        "    except erlang.RequestTimeout:\n"
                        "        seen.append('RequestTimeout')\n"
                        "        raise\n">>),
    Rounds = [timeout_round(Ctx) || _ <- lists:seq(1, ?TIMEOUT_ROUNDS)],
    ?assertEqual(lists:duplicate(?TIMEOUT_ROUNDS, {{error, timeout}, [<<"RequestTimeout">>]}),
                 Rounds),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1 + 1">>)),
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ok.

timeout_round(Ctx) ->
    ok = py:exec(Ctx, <<"seen.clear()">>),
    T0 = erlang:monotonic_time(millisecond),
    Result = py:call(Ctx, '__main__', waits, [], #{timeout => ?CB_TIMEOUT}),
    %% The answer waited for the function (it runs in this process).
    ?assert(erlang:monotonic_time(millisecond) - T0 >= ?SLOW_CB_MS),
    ok = eventually(fun() -> case py:eval(Ctx, <<"len(seen)">>) of
                                 {ok, 0} -> nothing_yet;
                                 _ -> seen
                             end
                    end, seen),
    {ok, Seen} = py:eval(Ctx, <<"seen">>),
    {Result, Seen}.

eventually(Fun, Expected) -> pyport_test:eventually(Fun, Expected, ?EVENTUALLY_MS).
