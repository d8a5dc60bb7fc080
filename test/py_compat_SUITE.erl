%% erlang_python 2.x behaviour that code ported to pyport relies on: the erlang
%% module (pre-imported, registry-checked attributes, send errors, exception
%% classes, whereis, system callbacks, async_call), the asyncio names of py, the
%% semaphore, object references, interpreter ids and environment references,
%% subinterpreter handles, the facts (execution mode, executors, debug counters),
%% reload, tracemalloc, stream owners and the single-context supervisor.
-module(py_compat_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([erlang_preimported/0, erlang_preimported/1,
         attributes_follow_registry/0, attributes_follow_registry/1,
         send_errors/0, send_errors/1,
         exception_classes/0, exception_classes/1,
         whereis_types/0, whereis_types/1,
         system_callbacks/0, system_callbacks/1,
         python_async_call/0, python_async_call/1,
         async_api/0, async_api/1,
         semaphore/0, semaphore/1,
         overload/0, overload/1,
         references/0, references/1,
         interpreter_ids/0, interpreter_ids/1,
         env_refs/0, env_refs/1,
         subinterp_handles/0, subinterp_handles/1,
         facts/0, facts/1,
         debug_counters/0, debug_counters/1,
         reload/0, reload/1,
         tracemalloc/0, tracemalloc/1,
         stream_owner/0, stream_owner/1,
         single_contexts/0, single_contexts/1]).

%% Generous bound for a whole case (contexts start and restart).
-define(CASE_TIMEOUT, {minutes, 3}).
%% How long a message or a helper may take.
-define(WAIT_MS, 10000).
%% How long a killed context may take to serve again.
-define(RESTART_MS, 30000).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [erlang_preimported, attributes_follow_registry, send_errors, exception_classes,
     whereis_types, system_callbacks, python_async_call, async_api, semaphore, overload,
     references, interpreter_ids, env_refs, subinterp_handles, facts, debug_counters,
     reload, tracemalloc, stream_owner, single_contexts].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

erlang_preimported() ->
    [{doc, "`erlang' needs no import in eval, exec, functions defined with exec, and "
      "modules of the context."}].
erlang_preimported(_Config) ->
    ok = py:register_function(compat_add, fun([A, B]) -> A + B end),
    try
        ?assertEqual({ok, 12}, py:eval(<<"erlang.call('compat_add', 5, 7)">>)),
        ok = py:exec(<<"r = erlang.compat_add(1, 2)\ndef f(): return erlang.compat_add(r, 1)">>),
        ?assertEqual({ok, 4}, py:call('__main__', f, [])),
        ?assertEqual({ok, true}, py:eval(<<"__import__('json').__dict__.get('erlang', erlang) is erlang">>))
    after
        py:unregister_function(compat_add)
    end.

attributes_follow_registry() ->
    [{doc, "hasattr(erlang, Name) is true only while Name is registered; `from erlang "
      "import Name' fails for a name nobody registered; dunder names are never "
      "looked up."}].
attributes_follow_registry(_Config) ->
    ?assertEqual({ok, false}, py:eval(<<"hasattr(erlang, 'compat_reg')">>)),
    ?assertMatch({error, {"ImportError", _}}, py:exec(<<"from erlang import compat_reg">>)),
    ok = py:register_function(compat_reg, fun([X]) -> X * 2 end),
    ?assertEqual({ok, true}, py:eval(<<"hasattr(erlang, 'compat_reg')">>)),
    ok = py:exec(<<"from erlang import compat_reg as cr">>),
    ?assertEqual({ok, 10}, py:eval(<<"cr(5)">>)),
    ?assertEqual({ok, true}, py:eval(<<"isinstance(erlang.compat_reg, erlang.Function)">>)),
    ok = py:unregister_function(compat_reg),
    ?assertEqual({ok, false}, py:eval(<<"hasattr(erlang, 'compat_reg')">>)),
    ?assertEqual({ok, false}, py:eval(<<"hasattr(erlang, '__path__')">>)),
    ok.

send_errors() ->
    [{doc, "erlang.send delivers to a live pid or registered name and returns None; "
      "a pid that has exited or a name nobody registered raise erlang.ProcessError "
      "(an Exception); a destination that is neither raises TypeError; messages "
      "from one request arrive in order."}].
send_errors(_Config) ->
    Dead = spawn(fun() -> ok end),
    Mref = monitor(process, Dead),
    receive {'DOWN', Mref, _, _, _} -> ok end,
    ?assertEqual({ok, none}, py:eval(<<"(lambda p: [erlang.send(p, i) for i in range(3)] and None)(p)">>,
                                     #{p => self()})),
    ?assertEqual([0, 1, 2], [receive N -> N after ?WAIT_MS -> timeout end || _ <- [1, 2, 3]]),
    ?assertMatch({error, {"ProcessError", _}}, py:eval(<<"erlang.send(p, 1)">>, #{p => Dead})),
    ?assertEqual({ok, true}, py:eval(<<"issubclass(erlang.ProcessError, Exception)">>)),
    ?assertMatch({error, {"ProcessError", _}},
                 py:eval(<<"erlang.send('compat_nobody_registered_this', 1)">>)),
    true = register(compat_sink, self()),
    try
        ?assertEqual({ok, none}, py:eval(<<"erlang.send(erlang.atom('compat_sink'), 'by atom')">>)),
        ?assertEqual(<<"by atom">>, receive M -> M after ?WAIT_MS -> timeout end)
    after
        unregister(compat_sink)
    end,
    ?assertMatch({error, {"TypeError", _}}, py:eval(<<"erlang.send(42, 1)">>)),
    ok.

exception_classes() ->
    [{doc, "erlang.SuspensionRequired is a class, a BaseException and not an "
      "Exception (so `except Exception' would not catch it); pyport never raises it."}].
exception_classes(_Config) ->
    ?assertEqual({ok, [true, true, false]},
                 py:eval(<<"[isinstance(erlang.SuspensionRequired, type),\n"
                           " issubclass(erlang.SuspensionRequired, BaseException),\n"
                           " issubclass(erlang.SuspensionRequired, Exception)]">>)),
    ok.

whereis_types() ->
    [{doc, "erlang.whereis takes a str, bytes or erlang.Atom (None when nobody has the "
      "name) and raises TypeError for anything else."}].
whereis_types(_Config) ->
    true = register(compat_where, self()),
    try
        Self = self(),
        ?assertEqual({ok, [Self, Self, Self, none]},
                     py:eval(<<"[erlang.whereis('compat_where'), erlang.whereis(b'compat_where'),\n"
                               " erlang.whereis(erlang._atom('compat_where')), erlang.whereis('compat_none')]">>)),
        ?assertMatch({error, {"TypeError", _}}, py:eval(<<"erlang.whereis(123)">>))
    after
        unregister(compat_where)
    end.

system_callbacks() ->
    [{doc, "The names erlang_python registers for itself answer without registration "
      "(state_get/state_set/state_incr..., _py_sleep, _whereis); a registration of "
      "the same name wins."}].
system_callbacks(_Config) ->
    ok = py:state_store(<<"compat_k">>, 7),
    ?assertEqual({ok, 7}, py:eval(<<"erlang.call('state_get', 'compat_k')">>)),
    ?assertEqual({ok, none}, py:eval(<<"erlang.call('state_set', 'compat_k2', [1])">>)),
    ?assertEqual({ok, [1]}, py:state_fetch(<<"compat_k2">>)),
    ?assertEqual({ok, 8}, py:eval(<<"erlang.call('state_incr', 'compat_k')">>)),
    {T, {ok, none}} = timer:tc(fun() -> py:eval(<<"erlang.call('_py_sleep', 0.05)">>) end),
    ?assert(T >= 50000),
    ?assertEqual({ok, true}, py:eval(<<"hasattr(erlang, 'state_get')">>)),
    ok = py:register_function(state_get, fun(_) -> mine end),
    try
        ?assertEqual({ok, mine}, py:eval(<<"erlang.call('state_get', 'compat_k')">>))
    after
        py:unregister_function(state_get),
        py:state_remove(<<"compat_k">>),
        py:state_remove(<<"compat_k2">>)
    end.

python_async_call() ->
    [{doc, "erlang.async_call returns an awaitable: gathered calls run concurrently "
      "(three 300 ms callbacks finish well under 900 ms) with their results in order."}].
python_async_call(_Config) ->
    ok = py:register_function(compat_slow, fun([X]) -> timer:sleep(300), X * 2 end),
    try
        ok = py:exec(<<"import asyncio, time\n"
                       "async def many():\n"
                       "    return await asyncio.gather(*[erlang.async_call('compat_slow', i) for i in (1, 2, 3)])\n"
                       "def run():\n"
                       "    t = time.monotonic()\n"
                       "    r = asyncio.run(many())\n"
                       "    return r, time.monotonic() - t\n">>),
        {ok, {[2, 4, 6], Elapsed}} = py:call('__main__', run, []),
        ?assert(Elapsed < 0.85)
    after
        py:unregister_function(compat_slow)
    end.

async_api() ->
    [{doc, "py:async_call/async_await answer like spawn_call/await (coroutines are "
      "awaited); async_gather runs the calls at once (three 0.3 s coroutines in well "
      "under 0.9 s) in order, or gives the first error; async_stream collects an "
      "async generator."}].
async_api(_Config) ->
    ok = py:exec(<<"import asyncio\n"
                   "async def nap(x):\n"
                   "    await asyncio.sleep(0.3)\n"
                   "    return x\n"
                   "async def agen(n):\n"
                   "    for i in range(n):\n"
                   "        await asyncio.sleep(0)\n"
                   "        yield i * i\n">>),
    Ref = py:async_call('__main__', nap, [7]),
    ?assert(is_reference(Ref)),
    ?assertEqual({ok, 7}, py:async_await(Ref, ?WAIT_MS)),
    {T, Gathered} = timer:tc(fun() -> py:async_gather([{'__main__', nap, [I]} || I <- [1, 2, 3]]) end),
    ?assertEqual({ok, [1, 2, 3]}, Gathered),
    ?assert(T < 850000),
    ?assertMatch({error, {"ValueError", _}},
                 py:async_gather([{math, sqrt, [4]}, {math, sqrt, [-1]}])),
    ?assertEqual({ok, [0, 1, 4, 9]}, py:async_stream('__main__', agen, [4])),
    ok.

semaphore() ->
    [{doc, "py_semaphore: acquire/release move current/0; with the limit reached, "
      "acquire gives up after its timeout with {error, max_concurrent}; the limit is "
      "never exceeded by concurrent holders."}].
semaphore(_Config) ->
    Max = py_semaphore:max_concurrent(),
    ?assert(is_integer(Max) andalso Max > 0),
    Start = py_semaphore:current(),
    ok = py_semaphore:acquire(1000),
    ?assertEqual(Start + 1, py_semaphore:current()),
    ok = py_semaphore:release(),
    ?assertEqual(Start, py_semaphore:current()),
    ok = py_semaphore:set_max_concurrent(2),
    try
        Seen = atomics:new(2, []),
        Parent = self(),
        Pids = [spawn_link(fun() ->
                                   ok = py_semaphore:acquire(?WAIT_MS),
                                   N = atomics:add_get(Seen, 1, 1),
                                   atomics:put(Seen, 2, max(N, atomics:get(Seen, 2))),
                                   timer:sleep(30),
                                   atomics:sub(Seen, 1, 1),
                                   ok = py_semaphore:release(),
                                   Parent ! {done, self()}
                           end) || _ <- lists:seq(1, 8)],
        [receive {done, P} -> ok after ?WAIT_MS -> ct:fail(stuck) end || P <- Pids],
        ?assert(atomics:get(Seen, 2) =< 2),
        ok = py_semaphore:acquire(1000),
        ok = py_semaphore:acquire(1000),
        ?assertEqual({error, max_concurrent}, py_semaphore:acquire(50)),
        ok = py_semaphore:release(),
        ok = py_semaphore:release()
    after
        py_semaphore:set_max_concurrent(Max)
    end.

overload() ->
    [{doc, "With every semaphore slot taken, a routed py:call gives up within its "
      "timeout with {error, {overloaded, Current, Max}} and is counted as rejected."}].
overload(_Config) ->
    Max = py_semaphore:max_concurrent(),
    Rejected = py_semaphore:rejected(),
    ok = py_semaphore:set_max_concurrent(1),
    try
        ok = py_semaphore:acquire(1000),
        ?assertEqual({error, {overloaded, 1, 1}}, py:call(math, sqrt, [4], #{}, 100)),
        ?assertEqual(Rejected + 1, py_semaphore:rejected()),
        ok = py_semaphore:release(),
        ?assertEqual({ok, 2.0}, py:call(math, sqrt, [4], #{}, 1000))
    after
        py_semaphore:set_max_concurrent(Max)
    end.

references() ->
    [{doc, "py:is_ref/1 tells object references from other terms; py:to_term/1 "
      "converts the object (an object with no term form stays a reference)."}].
references(_Config) ->
    Ctx = py:context(1),
    {ok, Deque} = py:eval(Ctx, <<"__import__('collections').deque([1, 2])">>),
    ?assert(py:is_ref(Deque)),
    ?assertNot(py:is_ref(make_ref())),
    ?assertNot(py:is_ref({py_ref, not_a_pid, 1, 2, 3})),
    {ok, Obj} = py:eval(Ctx, <<"type('O', (), {})()">>),
    ?assert(py:is_ref(Obj)),
    {ok, Again} = py:to_term(Obj),
    ?assert(py:is_ref(Again)),
    ?assertEqual({ok, [1, 2]}, py:call(Ctx, builtins, list, [Deque])),
    ?assertMatch({error, {badarg, _}}, py:to_term(42)),
    ok.

interpreter_ids() ->
    [{doc, "py_context:get_interp_id/1 differs between contexts, is stable across "
      "calls, and changes when the context's OS process is replaced; "
      "is_subinterp/1 is true."}].
interpreter_ids(_Config) ->
    C1 = pyport_test:start_ctx(#{}),
    C2 = pyport_test:start_ctx(#{}),
    try
        {ok, I1} = py_context:get_interp_id(C1),
        {ok, I2} = py_context:get_interp_id(C2),
        ?assertNotEqual(I1, I2),
        ?assertEqual({ok, I1}, py_context:get_interp_id(C1)),
        ?assertEqual({ok, I1}, py:eval(C1, <<"__import__('os').getpid()">>)),
        ?assert(py_context:is_subinterp(C1)),
        ok = py_context:kill(C1),
        ok = pyport_test:wait_until(
               fun() -> case py_context:get_interp_id(C1) of
                            {ok, I} -> I =/= I1;
                            _ -> false
                        end
               end, ?RESTART_MS)
    after
        pyport_test:stop_ctx(C1),
        pyport_test:stop_ctx(C2)
    end.

env_refs() ->
    [{doc, "py:get_local_env/1 gives a stable reference per context; another process "
      "given it runs py_context:call/7, eval/5 and exec/3 in the owner's environment."}].
env_refs(_Config) ->
    Ctx = py:context(1),
    Env = py:get_local_env(Ctx),
    ?assert(is_reference(Env)),
    ?assertEqual(Env, py:get_local_env(Ctx)),
    ?assertEqual({ok, Env}, py_context:create_local_env(Ctx)),
    ok = py:exec(Ctx, <<"owner_value = 'owner'\ndef get(): return owner_value">>),
    Got = pyport_test:on_scheduler(1, fun() ->
              ok = py_context:exec(Ctx, <<"seen = owner_value">>, Env),
              {py_context:call(Ctx, '__main__', get, [], #{}, 5000, Env),
               py_context:eval(Ctx, <<"seen">>, #{}, 5000, Env),
               py:eval(Ctx, <<"owner_value">>)}
          end, ?WAIT_MS),
    ?assertMatch({{ok, <<"owner">>}, {ok, <<"owner">>}, {error, {"NameError", _}}}, Got),
    ?assertError({not_supported, _}, py_context:get_nif_ref(Ctx)),
    ok.

subinterp_handles() ->
    [{doc, "py:subinterp_* handles: each handle is a context of its own (isolated "
      "names, its own OS process); call/eval/exec/cast/async_call/await work on it; "
      "destroy stops it; pool stats count handles."}].
subinterp_handles(_Config) ->
    ok = py:subinterp_pool_start(),
    ?assert(py:subinterp_pool_ready()),
    {ok, H1} = py:subinterp_create(),
    {ok, H2} = py:subinterp_create(),
    try
        ?assertMatch(#{num_workers := 2}, py:subinterp_pool_stats()),
        ok = py:subinterp_exec(H1, <<"v = 'one'">>),
        ?assertEqual({ok, <<"one">>}, py:subinterp_eval(H1, <<"v">>)),
        ?assertMatch({error, {"NameError", _}}, py:subinterp_eval(H2, <<"v">>)),
        ?assertEqual({ok, 3.0}, py:subinterp_call(H1, math, sqrt, [9])),
        ?assertEqual({ok, 8}, py:subinterp_call(H1, builtins, pow, [2, 3], #{})),
        ?assertEqual({ok, 6}, py:subinterp_eval(H2, <<"x * 2">>, #{x => 3})),
        {ok, P1} = py:subinterp_eval(H1, <<"__import__('os').getpid()">>),
        {ok, P2} = py:subinterp_eval(H2, <<"__import__('os').getpid()">>),
        ?assertNotEqual(P1, P2),
        Ref = py:subinterp_async_call(H1, math, floor, [2.5]),
        ?assertEqual({ok, 2}, py:subinterp_await(Ref, ?WAIT_MS)),
        ok = py:subinterp_cast(H1, builtins, print, [<<"cast">>]),
        ok = py:subinterp_destroy(H1),
        ?assertEqual({error, invalid_handle}, py:subinterp_eval(H1, <<"1">>))
    after
        ok = py:subinterp_pool_stop()
    end,
    ?assertEqual({error, invalid_handle}, py:subinterp_eval(H2, <<"1">>)),
    ?assertNot(py:subinterp_pool_ready()),
    ok.

facts() ->
    [{doc, "subinterp_supported/0 is true, execution_mode/0 is subinterp, "
      "num_executors/0 is the default pool's size; py_nif answers the same; "
      "venv_info/0 has erlang_python's binary-keyed shape."}].
facts(_Config) ->
    ?assert(py:subinterp_supported()),
    ?assert(py_nif:subinterp_supported()),
    ?assert(py_nif:owngil_supported()),
    ?assertEqual(subinterp, py:execution_mode()),
    ?assertEqual(py_context_router:num_contexts(), py:num_executors()),
    ?assertEqual(py:num_executors(), py_nif:num_executors()),
    ?assertEqual({ok, #{<<"active">> => false}}, py:venv_info()),
    ?assertMatch({ok, <<"3.", _/binary>>}, py_nif:version()),
    ?assertMatch({error, {not_supported, _}}, py:dup_fd(0)),
    ok.

debug_counters() ->
    [{doc, "py_nif:get_debug_counters/0 counts interpreters started and ended (a new "
      "context adds one started; stopping it one ended), requests answered, and "
      "rejected routed calls; the GIL and suspension counters are 0."}].
debug_counters(_Config) ->
    #{ctx_created := C0, ctx_destroyed := D0, complete_count := Done0} = py_nif:get_debug_counters(),
    Ctx = pyport_test:start_ctx(#{}),
    {ok, 2} = py:eval(Ctx, <<"1 + 1">>),
    #{ctx_created := C1, complete_count := Done1, contexts := N} = py_nif:get_debug_counters(),
    ?assertEqual(C0 + 1, C1),
    ?assert(Done1 >= Done0 + 1),
    ?assert(N >= py_context_router:num_contexts() + 1),
    pyport_test:stop_ctx(Ctx),
    ok = pyport_test:eventually(fun() -> maps:get(ctx_destroyed, py_nif:get_debug_counters()) end,
                                D0 + 1, ?WAIT_MS),
    ?assertMatch(#{gil_ensure := 0, gil_release := 0, suspended_created := 0,
                   suspended_destroyed := 0, rejected_count := R} when is_integer(R),
                 py_nif:get_debug_counters()),
    ok.

reload() ->
    [{doc, "py:reload/1 re-reads a changed module in every context that imported it "
      "(each pool context and a context of its own), and is ok for a module nobody "
      "imported."}].
reload(Config) ->
    Dir = ?config(priv_dir, Config),
    File = filename:join(Dir, "compat_reloaded.py"),
    ok = file:write_file(File, <<"V = 1\n">>),
    Own = pyport_test:start_ctx(#{python_path => [Dir]}),
    Ctxs = [Own | py_context_router:contexts()],
    try
        [{ok, _} = py:eval(C, <<"__import__('sys').path.insert(0, d) or __import__('compat_reloaded').V">>,
                           #{d => list_to_binary(Dir)}) || C <- Ctxs],
        ok = file:write_file(File, <<"V = 2\n# longer, so the size differs\n">>),
        ok = py:reload(compat_reloaded),
        [?assertEqual({C, {ok, 2}}, {C, py:eval(C, <<"__import__('compat_reloaded').V">>)})
         || C <- Ctxs],
        ?assertEqual(ok, py:reload(compat_never_imported))
    after
        pyport_test:stop_ctx(Own)
    end.

tracemalloc() ->
    [{doc, "py:tracemalloc_start/0 makes memory_stats/0 report traced memory in every "
      "context; tracemalloc_stop/0 ends it."}].
tracemalloc(_Config) ->
    ok = py:tracemalloc_start(),
    try
        [?assertEqual({C, {ok, true}}, {C, py:eval(C, <<"__import__('tracemalloc').is_tracing()">>)})
         || C <- py_context_router:contexts()],
        {ok, Stats} = py:memory_stats(),
        ?assert(maps:is_key(traced_memory_current, Stats)),
        ?assert(maps:is_key(traced_memory_peak, Stats))
    after
        ok = py:tracemalloc_stop()
    end,
    {ok, After} = py:memory_stats(),
    ?assertNot(maps:is_key(traced_memory_current, After)),
    ok.

stream_owner() ->
    [{doc, "stream_start/4 with `owner' sends the items to that process while the "
      "generator runs in the caller's environment (a generator the caller defined "
      "with exec)."}].
stream_owner(_Config) ->
    Parent = self(),
    Owner = spawn_link(fun() ->
                               receive {go, Ref} -> Parent ! {got, collect(Ref, [])} end
                       end),
    ok = py:exec(<<"def mine(n):\n    for i in range(n): yield i + 10\n">>),
    {ok, Ref} = py:stream_start('__main__', mine, [3], #{owner => Owner}),
    Owner ! {go, Ref},
    ?assertEqual({got, {ok, [10, 11, 12]}}, receive M -> M after ?WAIT_MS -> timeout end),
    ok.

single_contexts() ->
    [{doc, "py_context_sup:start_context/2 starts a supervised context of its own, "
      "which_contexts/0 lists it, stop_context/1 stops it (and is ok twice)."}].
single_contexts(_Config) ->
    {ok, A} = py_context_sup:start_context(1, worker),
    {ok, B} = py_context_sup:start_context(2, subinterp),
    ?assertEqual({ok, 4.0}, py_context:call(A, math, sqrt, [16], #{})),
    ?assert(lists:member(A, py_context_sup:which_contexts())),
    ?assert(lists:member(B, py_context_sup:which_contexts())),
    ok = py_context_sup:stop_context(A),
    ?assertNot(is_process_alive(A)),
    ?assert(is_process_alive(B)),
    ok = py_context_sup:stop_context(A),
    ok = py_context_sup:stop_context(B),
    ok.

collect(Ref, Acc) ->
    receive
        {py_stream, Ref, {data, V}} -> collect(Ref, [V | Acc]);
        {py_stream, Ref, done} -> {ok, lists:reverse(Acc)};
        {py_stream, Ref, {error, E}} -> {error, E}
    after ?WAIT_MS -> timeout
    end.
