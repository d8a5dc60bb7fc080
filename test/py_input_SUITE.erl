%% Bad input gets a clear error and loses nothing: NUL bytes in code and names,
%% every option of a context and of a pool, a pid that is not a context, and
%% timeouts that are not timeouts. Each is refused before anything is sent or
%% started: no process, port or persistent term is left behind, and the caller
%% does not crash.
-module(py_input_SUITE).

-import(pyport_test, [start_ctx/1, stop_ctx/1, wait_until/2]).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([nul_in_code_is_refused/0, nul_in_code_is_refused/1,
         nul_in_names_is_refused/0, nul_in_names_is_refused/1,
         bad_context_options_are_refused/0, bad_context_options_are_refused/1,
         bad_pool_options_are_refused/0, bad_pool_options_are_refused/1,
         bad_app_env_is_refused/0, bad_app_env_is_refused/1,
         kill_after_infinity_works/0, kill_after_infinity_works/1,
         restart_policy_cannot_spin/0, restart_policy_cannot_spin/1,
         non_context_pid_is_refused/0, non_context_pid_is_refused/1,
         dead_context_pid_is_context_died/0, dead_context_pid_is_context_died/1,
         bad_timeouts_are_refused/0, bad_timeouts_are_refused/1,
         erlang_python_mode_is_accepted/0, erlang_python_mode_is_accepted/1]).

%% Any single answer here comes at once; this bounds the wait on a loaded host.
-define(CALL_TIMEOUT, 30000).
%% How long the spin check watches a context whose preload always fails.
-define(SPIN_WATCH_MS, 3000).
%% Most restarts a failing context may make in SPIN_WATCH_MS with a 1 ms minimum
%% backoff doubling (1 + 2 + 4 + ... ms, plus each start): a hot loop makes dozens.
-define(SPIN_MAX_RESTARTS, 20).
%% Deadline for eventual conditions.
-define(EVENTUALLY_MS, 20000).

suite() -> [{timetrap, {minutes, 3}}].

all() ->
    [nul_in_code_is_refused, nul_in_names_is_refused, bad_context_options_are_refused,
     bad_pool_options_are_refused, bad_app_env_is_refused, kill_after_infinity_works,
     restart_policy_cannot_spin, non_context_pid_is_refused, dead_context_pid_is_context_died,
     bad_timeouts_are_refused, erlang_python_mode_is_accepted].

init_per_suite(Config) ->
    application:load(pyport),
    application:set_env(pyport, start_pools, false),
    {ok, _} = application:ensure_all_started(pyport),
    Ctx = start_ctx(#{}),
    [{ctx, Ctx} | Config].

end_per_suite(Config) ->
    stop_ctx(?config(ctx, Config)),
    ok = application:stop(pyport),
    application:unset_env(pyport, start_pools).

%%% ===========================================================================
%%% NUL bytes
%%% ===========================================================================

nul_in_code_is_refused() ->
    [{doc, "Code with a NUL byte is refused whole (exec, eval, stream_eval): it is never "
      "cut at the NUL, so nothing before it runs and no silent wrong result comes back."}].
nul_in_code_is_refused(Config) ->
    Ctx = ?config(ctx, Config),
    ?assertMatch({error, {badarg, _}},
                 py:exec(Ctx, <<"nul_a = 1", 0, "\nnul_a = 2\nraise SystemError('never')">>)),
    ?assertMatch({error, {"NameError", _}}, py:eval(Ctx, <<"nul_a">>)),
    ?assertMatch({error, {badarg, _}}, py:eval(Ctx, <<"1", 0, "/0">>)),
    ?assertMatch({error, {badarg, _}}, py:eval(Ctx, [<<"1">>, 0, <<"+1">>])),
    ?assertMatch({error, {badarg, _}}, py_stream:collect(
                                          py_stream:start_eval(Ctx, <<"iter([1])", 0>>, #{}, #{}),
                                          ?CALL_TIMEOUT, [])),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1+1">>)).

nul_in_names_is_refused() ->
    [{doc, "Module, function, method and attribute names with a NUL byte are refused "
      "({badarg, _}), never truncated: <<\"os\\0junk\">> does not import os."}].
nul_in_names_is_refused(Config) ->
    Ctx = ?config(ctx, Config),
    ?assertMatch({error, {badarg, "module name" ++ _}}, py:call(Ctx, <<"os", 0, "junk">>, getcwd, [])),
    ?assertMatch({error, {badarg, "function name" ++ _}}, py:call(Ctx, os, <<"getcwd", 0, "x">>, [])),
    ?assertMatch({error, {badarg, _}}, py:call(Ctx, 'os\0junk', getcwd, [])),
    ?assertMatch({error, {badarg, _}}, py:call(Ctx, "os" ++ [0], getcwd, [])),
    {ok, Ref} = py:eval(Ctx, <<"[]">>),
    _ = Ref,
    {ok, Obj} = py:eval(Ctx, <<"type('O', (), {'x': 1})()">>),
    ?assertMatch({error, {badarg, _}}, py:getattr(Obj, <<"x", 0>>)),
    ?assertMatch({error, {badarg, _}}, py:call_method(Obj, <<"__str__", 0>>, [])),
    ?assertEqual({ok, 1}, py:getattr(Obj, x)).

%%% ===========================================================================
%%% Options
%%% ===========================================================================

bad_context_options_are_refused() ->
    [{doc, "Every bad option of py_context:start_link/1 gives {error, {badarg, Why}} "
      "naming the option; nothing is started or left behind (no process, no OS process, "
      "no persistent term) and the caller does not crash."}].
bad_context_options_are_refused(_Config) ->
    Bad = [not_a_map,
           #{kill_after => foo}, #{kill_after => -1}, #{max_frame => foo},
           #{max_frame => 10}, #{python_path => 42}, #{python_path => "/dir"},
           #{python_path => [42]}, #{env => [{"A", 1.5}]}, #{env => bad},
           #{env => [{"A=B", "x"}]}, #{preload => 123}, #{restart => bad},
           #{restart => #{min => 0}}, #{restart => #{min => 100, max => 10}},
           #{restart => #{bogus => 1}}, #{name => "string"}, #{max_memory => 1.0e9},
           #{max_memory => "1GB"}, #{max_queue => 0}, #{max_calls => -5},
           #{max_depth => 0}, #{max_nesting => foo}, #{max_atoms => -1},
           #{heartbeat => 0}, #{call_timeout => -1}, #{cd => 42}, #{venv => 42},
           #{mispelled_option => 1}, #{num_contexts => 4}, #{crash_dir => <<"a", 0>>}],
    Before = leftovers(),
    [begin
         R = (catch py_context:start_link(Opts)),
         case R of
             {error, {badarg, Why}} when is_list(Why) -> ok;
             Other -> ct:fail({accepted, Opts, Other})
         end
     end || Opts <- Bad],
    ?assertEqual(Before, leftovers()),
    {messages, Ms} = process_info(self(), messages),
    ?assertEqual([], [M || {'EXIT', _, _} = M <- Ms]).

bad_pool_options_are_refused() ->
    [{doc, "py_context_router:start_pool/3 refuses bad sizes and bad options the same way "
      "and starts nothing."}].
bad_pool_options_are_refused(_Config) ->
    Before = leftovers(),
    ?assertMatch({error, {badarg, _}}, py_context_router:start_pool(bad_pool, 2, #{kill_after => x})),
    ?assertMatch({error, {badarg, _}}, py_context_router:start_pool(bad_pool, 0, #{})),
    ?assertMatch({error, {badarg, _}}, py_context_router:start_pool("bad", 1, #{})),
    ?assertMatch({error, {badarg, _}}, py_context_router:start_pool(bad_pool, 1, #{typo => 1})),
    ?assertEqual([], py_context_router:contexts(bad_pool)),
    ?assertEqual(Before, leftovers()).

bad_app_env_is_refused() ->
    [{doc, "A bad context_opts application environment is refused at start with a "
      "{badarg, Why} that says where it came from."}].
bad_app_env_is_refused(_Config) ->
    application:set_env(pyport, context_opts, #{max_queue => none}),
    try
        {error, {badarg, Why}} = py_context:start_link(#{}),
        ?assertNotEqual(nomatch, string:find(Why, "context_opts"))
    after
        application:unset_env(pyport, context_opts)
    end.

kill_after_infinity_works() ->
    [{doc, "kill_after => infinity is accepted: a timed-out interruptible request stops "
      "through its exception, the context keeps its OS process and serves the next call."}].
kill_after_infinity_works(_Config) ->
    Ctx = start_ctx(#{kill_after => infinity}),
    #{os_pid := OsPid} = py_context:info(Ctx),
    ?assertEqual({error, timeout}, py:exec(Ctx, <<"while True: pass">>, 200)),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1+1">>, #{}, ?CALL_TIMEOUT)),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, py_context:info(Ctx)),
    stop_ctx(Ctx).

restart_policy_cannot_spin() ->
    [{doc, "An OS process that never finishes starting (a preload that fails) backs off "
      "from the smallest allowed minimum, doubling: no restart policy gives a hot loop."}].
restart_policy_cannot_spin(_Config) ->
    process_flag(trap_exit, true),
    %% A context whose first start fails does not start at all...
    ?assertMatch({error, _}, py_context:start_link(#{preload => <<"raise ValueError('x')">>,
                                                     restart => #{min => 1, stable => 1}})),
    %% ...so make it fail later: a preload that fails from the second start on.
    Flag = filename:join(string:trim(os:cmd("mktemp -d")), "started"),
    Preload = iolist_to_binary(
                ["import os\n"
                 "if os.path.exists(", io_lib:format("~p", [Flag]), "): raise ValueError('again')\n"
                 "open(", io_lib:format("~p", [Flag]), ", 'w').close()\n"]),
    Ctx = start_ctx(#{preload => Preload, restart => #{min => 1, max => 60000, stable => 1}}),
    logger:set_primary_config(level, error),
    try
        ok = py_context:kill(Ctx),
        timer:sleep(?SPIN_WATCH_MS),
        #{restarts := Restarts} = py_context:info(Ctx),
        ct:log("restarts in ~b ms: ~b", [?SPIN_WATCH_MS, Restarts]),
        ?assert(Restarts >= 3),
        ?assert(Restarts =< ?SPIN_MAX_RESTARTS)
    after
        logger:set_primary_config(level, notice),
        stop_ctx(Ctx)
    end.

erlang_python_mode_is_accepted() ->
    [{doc, "erlang_python's `mode' option is accepted (every pyport context is its own OS "
      "process) and so is py_context:start_link/2 with a mode."}].
erlang_python_mode_is_accepted(_Config) ->
    Ctx = start_ctx(#{mode => subinterp}),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1+1">>)),
    stop_ctx(Ctx),
    {ok, Ctx2} = py_context:start_link(my_id, worker),
    unlink(Ctx2),
    ?assertEqual({ok, 3}, py:eval(Ctx2, <<"1+2">>)),
    stop_ctx(Ctx2).

%%% ===========================================================================
%%% Contexts and timeouts
%%% ===========================================================================

non_context_pid_is_refused() ->
    [{doc, "A call to a live pid that is not a context (logger, the caller itself) is "
      "refused at once, and nothing reaches that process's mailbox."}].
non_context_pid_is_refused(_Config) ->
    Logger = whereis(logger),
    {message_queue_len, _} = process_info(Logger, message_queue_len),
    T0 = erlang:monotonic_time(millisecond),
    ?assertEqual({error, {badarg, "not a pyport context"}}, py:eval(Logger, <<"1">>, #{}, 100)),
    ?assertEqual({error, {badarg, "not a pyport context"}}, py:eval(self(), <<"1">>)),
    ?assertEqual({error, {badarg, "not a pyport context"}}, py:call(self(), math, sqrt, [4])),
    ?assertMatch({error, {badarg, _}}, py:stream_start(math, sqrt, [4], #{context => self()})),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 1000),
    {messages, Ms} = process_info(self(), messages),
    ?assertEqual([], Ms).

dead_context_pid_is_context_died() ->
    [{doc, "A call to a dead local pid answers {context_died, noproc} at once, and a "
      "stream on a dead context is an error, not a stream that never speaks."}].
dead_context_pid_is_context_died(_Config) ->
    Dead = spawn(fun() -> ok end),
    wait_until(fun() -> not is_process_alive(Dead) end, ?EVENTUALLY_MS),
    ?assertEqual({error, {context_died, noproc}}, py:eval(Dead, <<"1">>)),
    Ctx = start_ctx(#{}),
    stop_ctx(Ctx),
    ?assertEqual({error, {context_died, noproc}}, py:eval(Ctx, <<"1">>)),
    ?assertEqual({error, {context_died, noproc}},
                 py:stream_start(builtins, range, [3], #{context => Ctx})).

bad_timeouts_are_refused() ->
    [{doc, "A timeout that is not a non-negative integer or infinity is refused before "
      "the request is sent: the caller does not crash and the code never runs."}].
bad_timeouts_are_refused(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:exec(Ctx, <<"ran = 0">>),
    [?assertMatch({error, {badarg, "timeout" ++ _}},
                  py:exec(Ctx, <<"ran += 1">>, T)) || T <- [foo, 1.5, -1, "1000"]],
    ?assertMatch({error, {badarg, _}}, py:eval(Ctx, <<"1">>, #{}, foo)),
    ?assertMatch({error, {badarg, _}}, py:call(Ctx, math, sqrt, [4], #{timeout => 1.5})),
    ?assertEqual({ok, 0}, py:eval(Ctx, <<"ran">>)).

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

%% What a refused start could leave behind: contexts' persistent terms, and
%% pyport OS processes of this node (children of its erl_child_setup).
leftovers() ->
    Terms = [K || {{py_inflight, _} = K, _} <- persistent_term:get()],
    Setup = string:trim(os:cmd("pgrep -x -P " ++ os:getpid() ++ " erl_child_setup")),
    OsProcs = string:trim(os:cmd("pgrep -c -x -P '" ++ Setup ++ "' pyport || true")),
    {length(Terms), OsProcs}.
