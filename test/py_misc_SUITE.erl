%% The rest of "Python talks back": erlang.send/self/whereis/atom, shared state
%% seen from both sides (with concurrent increments), py:cast in the caller's
%% environment (and its errors logged), spawn_call/await (timeouts leave
%% nothing behind), version, memory_stats, gc and parallel.
-module(py_misc_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([send_to_pid/0, send_to_pid/1,
         send_to_name/0, send_to_name/1,
         self_is_caller/0, self_is_caller/1,
         whereis_name/0, whereis_name/1,
         atom_fun/0, atom_fun/1,
         state_erlang_to_python/0, state_erlang_to_python/1,
         state_python_to_erlang/0, state_python_to_erlang/1,
         state_keys_clear/0, state_keys_clear/1,
         state_incr_decr/0, state_incr_decr/1,
         state_concurrent_incr/0, state_concurrent_incr/1,
         spawn_call_await/0, spawn_call_await/1,
         spawn_call_caller_env/0, spawn_call_caller_env/1,
         await_timeout/0, await_timeout/1,
         cast_caller_env/0, cast_caller_env/1,
         cast_routed_caller_env/0, cast_routed_caller_env/1,
         cast_error_logged/0, cast_error_logged/1,
         version/0, version/1,
         memory_stats/0, memory_stats/1,
         gc/0, gc/1,
         parallel_order/0, parallel_order/1,
         parallel_first_error/0, parallel_first_error/1]).
%% logger handler callback (captures events for the test process)
-export([log/2]).

%% Generous bound for a whole case.
-define(CASE_TIMEOUT, {minutes, 3}).
%% How long a message or a side effect may take to show up.
-define(EVENTUALLY_MS, 10000).
%% await_timeout: the call sleeps ?SLOW_S seconds, await gives up after
%% ?AWAIT_MS; the mailbox must then stay empty for ?QUIET_MS (longer than the
%% sleep, so a late result would have arrived).
-define(SLOW_S, 1.0).
-define(AWAIT_MS, 200).
-define(QUIET_MS, 2000).
%% state_concurrent_incr: Erlang processes x increments each, Python callers x
%% increments each.
-define(ERL_INCRERS, 20).
-define(ERL_INCRS, 500).
-define(PY_INCRERS, 4).
-define(PY_INCRS, 100).
%% How long a helper process may take to report back.
-define(HELPER_TIMEOUT, 120000).
%% Name a test process registers so Python can reach it by name.
-define(SINK, py_misc_SUITE_sink).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [send_to_pid, send_to_name, self_is_caller, whereis_name, atom_fun, state_erlang_to_python,
     state_python_to_erlang, state_keys_clear, state_incr_decr, state_concurrent_incr,
     spawn_call_await, spawn_call_caller_env, await_timeout, cast_caller_env,
     cast_routed_caller_env, cast_error_logged, version, memory_stats, gc, parallel_order,
     parallel_first_error].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

init_per_testcase(_Case, Config) ->
    ok = py:state_clear(),
    {ok, Ctx} = py_context:start_link(#{}),
    ok = py:exec(Ctx, <<"import erlang">>),
    [{ctx, Ctx} | Config].

end_per_testcase(_Case, Config) ->
    py_context_router:unbind_context(),
    catch unregister(?SINK),
    _ = logger:remove_handler(?MODULE),
    ok = py:state_clear(),
    ok = py_context:stop(?config(ctx, Config)).

%%% ===========================================================================
%%% Messages
%%% ===========================================================================

send_to_pid() ->
    [{doc, "erlang.send(pid, term) delivers the converted term to an erlang.Pid: the "
      "caller's own (erlang.self()) and another process's, passed as an argument."}].
send_to_pid(Config) ->
    Ctx = ?config(ctx, Config),
    ?assertEqual({ok, none}, py:eval(Ctx, <<"erlang.send(erlang.self(), ('hello', 1, [2.5]))">>)),
    ?assertEqual({<<"hello">>, 1, [2.5]}, receive_one()),
    Self = self(),
    Other = spawn_link(fun() -> receive M -> Self ! {forwarded, M} end end),
    ?assertEqual({ok, none}, py:eval(Ctx, <<"erlang.send(p, {'k': erlang.atom('v')})">>,
                                     #{p => Other})),
    ?assertEqual({forwarded, #{<<"k">> => v}}, receive_one()),
    ok.

send_to_name() ->
    [{doc, "erlang.send('name', term) delivers to a registered name; a name nobody "
      "registered raises erlang.ProcessError (as `!' raises badarg), and the "
      "context keeps serving."}].
send_to_name(Config) ->
    Ctx = ?config(ctx, Config),
    true = register(?SINK, self()),
    ?assertEqual({ok, none}, py:eval(Ctx, <<"erlang.send(n, ('by name', 7))">>,
                                     #{n => atom_to_binary(?SINK)})),
    ?assertEqual({<<"by name">>, 7}, receive_one()),
    ?assertMatch({error, {"ProcessError", _}},
                 py:eval(Ctx, <<"erlang.send('py_misc_SUITE_nobody_registered_this', 1)">>)),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1 + 1">>)),
    ?assertEqual(nothing, receive_one(200)),
    ok.

self_is_caller() ->
    [{doc, "erlang.self() is the Erlang pid whose request is running: the test process "
      "for its calls, another process for that process's calls on the same context."}].
self_is_caller(Config) ->
    Ctx = ?config(ctx, Config),
    Self = self(),
    ?assertEqual({ok, Self}, py:eval(Ctx, <<"erlang.self()">>)),
    ?assertEqual({ok, true}, py:eval(Ctx, <<"isinstance(erlang.self(), erlang.Pid)">>)),
    Other = spawn_link(fun() ->
                               R = py:eval(Ctx, <<"__import__('erlang').self()">>),
                               Self ! {other, self(), R}
                       end),
    receive {other, Other, R} -> ?assertEqual({ok, Other}, R)
    after ?HELPER_TIMEOUT -> ct:fail(helper_timeout)
    end,
    ok.

whereis_name() ->
    [{doc, "erlang.whereis(name) is the registered pid (an erlang.Pid equal to "
      "whereis/1), or None for an unregistered name, also one that is no atom yet."}].
whereis_name(Config) ->
    Ctx = ?config(ctx, Config),
    true = register(?SINK, self()),
    ?assertEqual({ok, self()}, py:eval(Ctx, <<"erlang.whereis(n)">>,
                                       #{n => atom_to_binary(?SINK)})),
    ?assertEqual({ok, whereis(logger)}, py:eval(Ctx, <<"erlang.whereis('logger')">>)),
    ?assertEqual({ok, true}, py:eval(Ctx, <<"isinstance(erlang.whereis('logger'), erlang.Pid)">>)),
    ?assertEqual({ok, none}, py:eval(Ctx, <<"erlang.whereis('init_not_a_process')">>)),
    ?assertEqual({ok, none},
                 py:eval(Ctx, <<"erlang.whereis('py_misc_SUITE_' + 'never_an_atom_4711')">>)),
    ok.

atom_fun() ->
    [{doc, "erlang.atom(s) is an erlang.Atom (a str equal to s) that comes back as the "
      "atom; other strings come back as binaries."}].
atom_fun(Config) ->
    Ctx = ?config(ctx, Config),
    ?assertEqual({ok, ok}, py:eval(Ctx, <<"erlang.atom('ok')">>)),
    ?assertEqual({ok, 'hello world'}, py:eval(Ctx, <<"erlang.atom('hello world')">>)),
    ?assertEqual({ok, {true, true, true}},
                 py:eval(Ctx, <<"(isinstance(erlang.atom('ok'), erlang.Atom), "
                                "isinstance(erlang.atom('ok'), str), "
                                "erlang.atom('ok') == 'ok')">>)),
    ?assertEqual({ok, [ok, <<"ok">>]}, py:eval(Ctx, <<"[erlang.atom('ok'), 'ok']">>)),
    ok.

%%% ===========================================================================
%%% Shared state
%%% ===========================================================================

state_erlang_to_python() ->
    [{doc, "Values stored with py:state_store are read by erlang.state_get (a Python str "
      "key is a binary in Erlang); a missing key gives the default; py:state_remove "
      "removes for Python too."}].
state_erlang_to_python(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:state_store(<<"k">>, #{<<"a">> => [1, 2.5, <<"s">>]}),
    ?assertEqual({ok, #{<<"a">> => [1, 2.5, <<"s">>]}}, py:eval(Ctx, <<"erlang.state_get('k')">>)),
    ?assertEqual({ok, none}, py:eval(Ctx, <<"erlang.state_get('missing')">>)),
    ?assertEqual({ok, 5}, py:eval(Ctx, <<"erlang.state_get('missing', 5)">>)),
    ok = py:state_remove(<<"k">>),
    ?assertEqual({ok, gone}, py:eval(Ctx, <<"erlang.state_get('k', erlang.atom('gone'))">>)),
    ok.

state_python_to_erlang() ->
    [{doc, "erlang.state_set is read by py:state_fetch; erlang.state_delete removes it "
      "({error, not_found})."}].
state_python_to_erlang(Config) ->
    Ctx = ?config(ctx, Config),
    ?assertEqual({ok, none}, py:eval(Ctx, <<"erlang.state_set('pk', (1, 'two'))">>)),
    ?assertEqual({ok, {1, <<"two">>}}, py:state_fetch(<<"pk">>)),
    ?assertEqual({ok, none}, py:eval(Ctx, <<"erlang.state_delete('pk')">>)),
    ?assertEqual({error, not_found}, py:state_fetch(<<"pk">>)),
    ok.

state_keys_clear() ->
    [{doc, "py:state_keys and erlang.state_keys list the same keys, whoever stored them; "
      "py:state_clear empties the state for Python too."}].
state_keys_clear(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:state_store(<<"e1">>, 1),
    ok = py:state_store(<<"e2">>, 2),
    {ok, none} = py:eval(Ctx, <<"erlang.state_set('p1', 3)">>),
    Keys = [<<"e1">>, <<"e2">>, <<"p1">>],
    ?assertEqual(Keys, lists:sort(py:state_keys())),
    {ok, PyKeys} = py:eval(Ctx, <<"erlang.state_keys()">>),
    ?assertEqual(Keys, lists:sort(PyKeys)),
    ok = py:state_clear(),
    ?assertEqual([], py:state_keys()),
    ?assertEqual({ok, []}, py:eval(Ctx, <<"erlang.state_keys()">>)),
    ok.

state_incr_decr() ->
    [{doc, "py:state_incr/decr (1 and 2 args) and erlang.state_incr/decr (default and "
      "explicit step) work on the same counter; an absent key counts from 0."}].
state_incr_decr(Config) ->
    Ctx = ?config(ctx, Config),
    ?assertEqual(1, py:state_incr(<<"c">>)),
    ?assertEqual(11, py:state_incr(<<"c">>, 10)),
    ?assertEqual({ok, 12}, py:eval(Ctx, <<"erlang.state_incr('c')">>)),
    ?assertEqual({ok, 17}, py:eval(Ctx, <<"erlang.state_incr('c', 5)">>)),
    ?assertEqual(16, py:state_decr(<<"c">>)),
    ?assertEqual(13, py:state_decr(<<"c">>, 3)),
    ?assertEqual({ok, 12}, py:eval(Ctx, <<"erlang.state_decr('c')">>)),
    ?assertEqual({ok, 8}, py:eval(Ctx, <<"erlang.state_decr('c', 4)">>)),
    ?assertEqual({ok, 8}, py:state_fetch(<<"c">>)),
    ?assertEqual({ok, -2}, py:eval(Ctx, <<"erlang.state_decr('fresh', 2)">>)),
    ?assertEqual(-1, py:state_incr(<<"fresh">>)),
    ok.

state_concurrent_incr() ->
    [{doc, "20 Erlang processes and several Python callers (on two contexts, and Python "
      "threads) increment one counter at the same time: the total is exact."}].
state_concurrent_incr(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, Ctx2} = py_context:start_link(#{}),
    Code = iolist_to_binary(["import erlang, threading\n"
                             "def bump(n):\n"
                             "    for _ in range(n): erlang.state_incr('total')\n"
                             "def bump_threads(k, n):\n"
                             "    ts = [threading.Thread(target=bump, args=(n,))\n"
                             "          for _ in range(k)]\n"
                             "    for t in ts: t.start()\n"
                             "    for t in ts: t.join()\n"]),
    Self = self(),
    ErlPids = [spawn_link(fun() ->
                                  [py:state_incr(<<"total">>) || _ <- lists:seq(1, ?ERL_INCRS)],
                                  Self ! {done, self(), ok}
                          end) || _ <- lists:seq(1, ?ERL_INCRERS)],
    PyPids = [spawn_link(fun() ->
                                 C = case I rem 2 of 0 -> Ctx; 1 -> Ctx2 end,
                                 ok = py:exec(C, Code),
                                 R = case I of
                                         1 -> py:call(C, '__main__', bump_threads, [2, ?PY_INCRS]);
                                         _ -> py:call(C, '__main__', bump, [?PY_INCRS])
                                     end,
                                 Self ! {done, self(), R}
                         end) || I <- lists:seq(1, ?PY_INCRERS)],
    [?assertEqual(ok, wait_done(P)) || P <- ErlPids],
    [?assertEqual({ok, none}, wait_done(P)) || P <- PyPids],
    %% Caller 1 ran two threads of ?PY_INCRS each.
    Expected = ?ERL_INCRERS * ?ERL_INCRS + (?PY_INCRERS + 1) * ?PY_INCRS,
    ?assertEqual({ok, Expected}, py:state_fetch(<<"total">>)),
    ?assertEqual({ok, Expected}, py:eval(Ctx, <<"erlang.state_get('total')">>)),
    ok = py_context:stop(Ctx2).

%%% ===========================================================================
%%% spawn_call / await, cast
%%% ===========================================================================

spawn_call_await() ->
    [{doc, "py:spawn_call (routed, with kwargs, explicit context) then py:await/1,2 gives "
      "the call's result, errors included; several may be in flight at once."}].
spawn_call_await(Config) ->
    Ctx = ?config(ctx, Config),
    R1 = py:spawn_call(math, sqrt, [16]),
    R2 = py:spawn_call(builtins, int, [<<"ff">>], #{base => 16}),
    R3 = py:spawn_call(Ctx, math, factorial, [10]),
    R4 = py:spawn_call(Ctx, builtins, round, [2.567], #{ndigits => 1}),
    R5 = py:spawn_call(Ctx, math, sqrt, [-1]),
    ?assert(is_reference(R1)),
    ?assertEqual({ok, 2.6}, py:await(R4)),
    ?assertEqual({ok, 3628800}, py:await(R3, ?EVENTUALLY_MS)),
    ?assertEqual({ok, 255}, py:await(R2)),
    ?assertEqual({ok, 4.0}, py:await(R1, ?EVENTUALLY_MS)),
    ?assertMatch({error, {"ValueError", _}}, py:await(R5)),
    ?assertEqual(nothing, receive_one(0)),
    ok.

spawn_call_caller_env() ->
    [{doc, "spawn_call runs in the caller's environment: a function the caller defined "
      "with py:exec is found, and it sees (and changes) the caller's globals."}].
spawn_call_caller_env(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:exec(Ctx, <<"hits = []\n"
                        "def hit(x):\n"
                        "    hits.append(x)\n"
                        "    return len(hits)\n">>),
    ?assertEqual({ok, 1}, py:await(py:spawn_call(Ctx, '__main__', hit, [a]))),
    ?assertEqual({ok, 2}, py:await(py:spawn_call(Ctx, '__main__', hit, [b]))),
    ?assertEqual({ok, [a, b]}, py:eval(Ctx, <<"hits">>)),
    ok.

await_timeout() ->
    [{doc, "py:await(Ref, Timeout) on a call that takes longer gives {error, timeout}, "
      "and no late result arrives in the mailbox afterwards (2 s)."}].
await_timeout(Config) ->
    Ctx = ?config(ctx, Config),
    Slow = list_to_binary(io_lib:format("import time\ndef slow():\n    time.sleep(~p)\n"
                                        "    return 'late'\n", [?SLOW_S])),
    ok = py:exec(Ctx, Slow),
    Ref = py:spawn_call(Ctx, '__main__', slow, []),
    ?assertEqual({error, timeout}, py:await(Ref, ?AWAIT_MS)),
    timer:sleep(?QUIET_MS),
    ?assertEqual({messages, []}, process_info(self(), messages)),
    %% The context is free again.
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1 + 1">>)),
    ok.

cast_caller_env() ->
    [{doc, "py:cast(Ctx, ...) (cast/4 and cast/5) returns ok at once and runs in the "
      "caller's environment: a function the caller defined with py:exec runs and its "
      "side effect shows in the caller's globals."}].
cast_caller_env(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:exec(Ctx, <<"seen = []\n"
                        "def record(x, tag='plain'):\n"
                        "    seen.append((x, tag))\n">>),
    ?assertEqual(ok, py:cast(Ctx, '__main__', record, [1])),
    ?assertEqual(ok, py:cast(Ctx, '__main__', record, [2], #{tag => <<"kw">>})),
    ok = eventually(fun() -> py:eval(Ctx, <<"sorted(seen)">>) end,
                    {ok, [{1, <<"plain">>}, {2, <<"kw">>}]}),
    ok.

cast_routed_caller_env() ->
    [{doc, "Routed py:cast/3,4 runs on the caller's (bound) context in the caller's "
      "environment."}].
cast_routed_caller_env(_Config) ->
    Ctx = py:context(1),
    ok = py_context_router:bind_context(Ctx),
    ok = py:exec(Ctx, <<"seen_routed = []\n"
                        "def record_routed(x, tag='plain'):\n"
                        "    seen_routed.append((x, tag))\n">>),
    ?assertEqual(ok, py:cast('__main__', record_routed, [1])),
    ?assertEqual(ok, py:cast('__main__', record_routed, [2], #{tag => <<"kw">>})),
    ok = eventually(fun() -> py:eval(Ctx, <<"sorted(seen_routed)">>) end,
                    {ok, [{1, <<"plain">>}, {2, <<"kw">>}]}),
    ok.

cast_error_logged() ->
    [{doc, "A cast whose function raises is logged (a logger event naming the function "
      "and the Python exception); the caller gets nothing."}].
cast_error_logged(Config) ->
    Ctx = ?config(ctx, Config),
    ok = capture_logs(),
    ok = py:exec(Ctx, <<"def explode(): raise ValueError('cast went wrong')">>),
    ?assertEqual(ok, py:cast(Ctx, '__main__', explode, [])),
    Text = wait_log(fun(T) -> string:find(T, "cast went wrong") =/= nomatch end),
    ?assertNotEqual(nomatch, string:find(Text, "explode")),
    ?assertNotEqual(nomatch, string:find(Text, "ValueError")),
    {messages, Left} = process_info(self(), messages),
    ?assertEqual([], [M || M <- Left, element(1, M) =/= logged]),
    ok.

%%% ===========================================================================
%%% Facts
%%% ===========================================================================

version() ->
    [{doc, "py:version() is {ok, <<\"3.N...\">>}, the version the context runs "
      "(platform.python_version() and py_context:info/1 agree)."}].
version(_Config) ->
    Ctx = py:context(1),
    ok = py_context_router:bind_context(Ctx),
    {ok, V} = py:version(),
    ?assertMatch(<<"3.", _/binary>>, V),
    ?assertEqual({ok, V}, py:eval(Ctx, <<"__import__('platform').python_version()">>)),
    ?assertEqual(V, maps:get(python_version, py_context:info(Ctx))),
    ok.

memory_stats() ->
    [{doc, "py:memory_stats() is a map with gc_stats (one map per generation), gc_count, "
      "gc_threshold and rss_bytes > 0."}].
memory_stats(_Config) ->
    {ok, Stats} = py:memory_stats(),
    ?assert(is_map(Stats)),
    #{gc_stats := GcStats, gc_count := Count, gc_threshold := Threshold,
      rss_bytes := Rss} = Stats,
    ?assertEqual(3, length(GcStats)),
    [?assertMatch(#{collections := C, collected := _, uncollectable := _} when is_integer(C), G)
     || G <- GcStats],
    ?assertMatch({A, B, C} when is_integer(A) andalso is_integer(B) andalso is_integer(C),
                 Count),
    ?assertMatch({A, B, C} when A > 0 andalso is_integer(B) andalso is_integer(C), Threshold),
    ?assert(is_integer(Rss) andalso Rss > 0),
    ok.

gc() ->
    [{doc, "py:gc/0,1 collect in the caller's context: cycles the caller made are found "
      "(count >= their number), a second full collection finds none of them."}].
gc(_Config) ->
    Ctx = py:context(1),
    ok = py_context_router:bind_context(Ctx),
    ok = py:exec(Ctx, <<"import gc\n"
                        "gc.collect()\n"
                        "gc.disable()\n"
                        "class Cyc: pass\n"
                        "for _ in range(100):\n"
                        "    c = Cyc(); c.me = c\n"
                        "del c\n">>),
    try
        {ok, N} = py:gc(),
        ?assert(N >= 100),
        {ok, N0} = py:gc(0),
        ?assert(is_integer(N0) andalso N0 >= 0 andalso N0 < 100),
        {ok, N1} = py:gc(1),
        ?assert(is_integer(N1) andalso N1 >= 0 andalso N1 < 100),
        {ok, N2} = py:gc(2),
        ?assert(N2 < 100)
    after
        py:exec(Ctx, <<"gc.enable()">>)
    end,
    ok.

parallel_order() ->
    [{doc, "py:parallel returns results in input order even when later calls finish "
      "first (coroutines sleeping less for later items), spread over the pool."}].
parallel_order(_Config) ->
    N = 8,
    Calls = [{asyncio, sleep, [0.05 * (N - I), I]} || I <- lists:seq(1, N)],
    ?assertEqual({ok, lists:seq(1, N)}, py:parallel(Calls)),
    ?assertEqual({ok, [2.0, 3.0, 4.0]},
                 py:parallel([{math, sqrt, [4]}, {math, sqrt, [9]}, {math, sqrt, [16]}])),
    ?assertEqual({ok, []}, py:parallel([])),
    ok.

parallel_first_error() ->
    [{doc, "py:parallel with failing calls returns the error of the first failing call "
      "in input order, even when a later one failed sooner."}].
parallel_first_error(_Config) ->
    Calls = [{math, sqrt, [4]},
             {builtins, eval, [<<"__import__('time').sleep(0.5) or 1 / 0">>, #{}]},
             {builtins, int, [<<"not a number">>]},
             {math, sqrt, [9]}],
    ?assertMatch({error, {"ZeroDivisionError", _}}, py:parallel(Calls)),
    ok.

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

receive_one() -> receive_one(?EVENTUALLY_MS).

wait_done(Pid) ->
    receive {done, Pid, R} -> R
    after ?HELPER_TIMEOUT -> ct:fail({helper_timeout, Pid})
    end.

receive_one(Timeout) ->
    receive M -> M
    after Timeout -> nothing
    end.

%% Adds a logger handler that sends every event to the test process.
capture_logs() ->
    logger:add_handler(?MODULE, ?MODULE, #{level => all, config => #{pid => self()}}).

%% @private logger handler callback.
log(Event, #{config := #{pid := Pid}}) ->
    Pid ! {logged, Event},
    ok.

%% Waits for a logged event whose text satisfies Pred; returns the text.
wait_log(Pred) ->
    receive
        {logged, #{msg := Msg}} ->
            Text = msg_text(Msg),
            case Pred(Text) of
                true -> Text;
                false -> wait_log(Pred)
            end
    after ?EVENTUALLY_MS ->
        ct:fail(no_such_log_event)
    end.

msg_text({string, S}) -> unicode:characters_to_list(S);
msg_text({report, R}) -> lists:flatten(io_lib:format("~0p", [R]));
msg_text({Format, Args}) -> lists:flatten(io_lib:format(Format, Args)).

eventually(Fun, Expected) -> pyport_test:eventually(Fun, Expected, ?EVENTUALLY_MS).
