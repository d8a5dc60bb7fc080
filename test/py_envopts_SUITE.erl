%% The environment a context runs in: the python_path, venv, env, cd and preload
%% options (of a context and of a pool), py:activate_venv/deactivate_venv/
%% venv_info on running pools, on restarted contexts and on pools started later,
%% and py:configure_logging (Python logging records in Erlang's logger). The
%% venv is made with the contexts' Python (-m venv) and packages installed offline.
-module(py_envopts_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([python_path/0, python_path/1,
         venv_option/0, venv_option/1,
         venv_option_string/0, venv_option_string/1,
         env_option/0, env_option/1,
         cd_option/0, cd_option/1,
         preload_option/0, preload_option/1,
         pool_options/0, pool_options/1,
         context_opts_standalone/0, context_opts_standalone/1,
         activate_venv_pool/0, activate_venv_pool/1,
         activate_venv_survives_restart/0, activate_venv_survives_restart/1,
         activate_venv_later_pool/0, activate_venv_later_pool/1,
         activate_venv_bad_path/0, activate_venv_bad_path/1,
         logging_levels/0, logging_levels/1,
         logging_level_option/0, logging_level_option/1,
         logging_survives_restart/0, logging_survives_restart/1,
         logging_later_pool/0, logging_later_pool/1]).

%% Generous bound for a whole case (pools start, contexts restart).
-define(CASE_TIMEOUT, {minutes, 3}).
%% Creating the venv and installing two packages (pip, setuptools; slow machine).
-define(SETUP_TIMEOUT, {minutes, 5}).
%% Deadline for "eventually" conditions (a restart, a log event).
-define(EVENTUALLY_MS, 10000).
-define(POLL_MS, 50).
%% Finds talkpkg on sys.path only (not in sys.modules), so it tells whether the
%% venv is on the path now even after an earlier import.
-define(FINDS_TALKPKG,
        <<"__import__('importlib.machinery').machinery.PathFinder.find_spec('talkpkg') "
          "is not None">>).
-define(LATER_POOL, envopts_later).
%% Log events captured by capture_logs/0.
-define(LOG_TABLE, py_envopts_logs).
-define(OPTS_POOL, envopts_opts).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [python_path, venv_option, venv_option_string, env_option, cd_option, preload_option,
     pool_options, context_opts_standalone,
     activate_venv_pool, activate_venv_survives_restart, activate_venv_later_pool,
     activate_venv_bad_path, logging_levels, logging_level_option, logging_survives_restart,
     logging_later_pool].

init_per_suite(Config0) ->
    ct:timetrap(?SETUP_TIMEOUT),
    Config = [{log_table_owner, start_log_table()} | Config0],
    {ok, _} = application:ensure_all_started(pyport),
    %% The venv must be made by the Python the contexts run (a venv is tied to
    %% one Python version; pyport refuses others).
    {ok, Exe} = py:eval(py:context(1), <<"__import__('sys').executable">>),
    Python = binary_to_list(Exe),
    case make_venv(Python, Config) of
        {ok, Venv, EdSrc} ->
            [{venv, Venv}, {edsrc, EdSrc} | Config];
        {error, Why} ->
            ok = application:stop(pyport),
            {skip, lists:flatten(io_lib:format("cannot make a venv with ~s offline: ~p",
                                               [Python, Why]))}
    end.

end_per_suite(Config) ->
    ?config(log_table_owner, Config) ! stop,
    ok = application:stop(pyport).

init_per_testcase(_Case, Config) ->
    #{level := Level} = logger:get_primary_config(),
    [{primary_level, Level} | Config].

end_per_testcase(_Case, Config) ->
    ok = logger:set_primary_config(level, ?config(primary_level, Config)),
    _ = py:deactivate_venv(),
    _ = py:deactivate_venv(?OPTS_POOL),
    %% Whatever a case left active in the default pool (even if deactivation
    %% failed), the next case starts from fresh OS processes.
    [restart_and_wait(C) || C <- py_context_router:contexts(),
                            py:call(C, '_pyport', venv_info, []) =/= {ok, #{<<"active">> => false}}],
    _ = py_context_router:stop_pool(?LATER_POOL),
    _ = py_context_router:stop_pool(?OPTS_POOL),
    _ = logger:remove_primary_filter(?MODULE),
    ok.

%%% ===========================================================================
%%% Options of a context
%%% ===========================================================================

python_path() ->
    [{doc, "python_path puts its directories first on sys.path: a module there imports; "
      "without the option it does not."}].
python_path(Config) ->
    Dir = ?config(data_dir, Config),
    with_context(#{python_path => [Dir]}, fun(Ctx) ->
        ?assertEqual({ok, <<"pathmod">>}, py:eval(Ctx, <<"__import__('pathmod').NAME">>)),
        {ok, Path} = py:eval(Ctx, <<"__import__('sys').path">>),
        ?assertEqual(norm(Dir), norm(hd(Path)))
    end),
    with_context(#{}, fun(Ctx) ->
        ?assertMatch({error, {"ModuleNotFoundError", _}},
                     py:eval(Ctx, <<"__import__('pathmod')">>))
    end),
    ok.

venv_option() ->
    [{doc, "The venv option activates a venv made with python3 -m venv: a package pip "
      "installed there imports, an editable install (found through a .pth file) "
      "too, VIRTUAL_ENV is set and _pyport.venv_info says active; without the "
      "option the package is not found."}].
venv_option(Config) ->
    venv_option(list_to_binary(?config(venv, Config)), Config).

venv_option_string() ->
    [{doc, "As venv_option, with the path as a string (a charlist, as priv_dir and "
      "filename:join give it), like python_path and cd accept."}].
venv_option_string(Config) ->
    venv_option(?config(venv, Config), Config).

venv_option(Venv, Config) ->
    with_context(#{venv => Venv}, fun(Ctx) ->
        ?assertEqual({ok, <<"from the venv">>}, py:eval(Ctx, <<"__import__('talkpkg').MAGIC">>)),
        {ok, Where} = py:eval(Ctx, <<"__import__('edmod').WHERE">>),
        ?assertEqual(norm(filename:join([?config(edsrc, Config), "edmod", "__init__.py"])),
                     norm(Where)),
        {ok, VirtualEnv} = py:eval(Ctx, <<"__import__('os').environ.get('VIRTUAL_ENV')">>),
        ?assertEqual(norm(Venv), norm(VirtualEnv)),
        {ok, Info} = py:call(Ctx, '_pyport', venv_info, []),
        ?assertMatch(#{<<"active">> := true}, Info),
        ?assertEqual(norm(Venv), norm(maps:get(<<"venv_path">>, Info)))
    end),
    with_context(#{}, fun(Ctx) ->
        ?assertEqual({ok, false}, py:eval(Ctx, ?FINDS_TALKPKG))
    end),
    ok.

env_option() ->
    [{doc, "env sets OS environment variables of the Python process, as a list of "
      "pairs or a map."}].
env_option(_Config) ->
    with_context(#{env => [{"PYPORT_TALK", "hello"}, {"PYPORT_TALK2", "two words"}]},
                 fun(Ctx) ->
        ?assertEqual({ok, {<<"hello">>, <<"two words">>}},
                     py:eval(Ctx, <<"(__import__('os').environ['PYPORT_TALK'], "
                                    "__import__('os').environ['PYPORT_TALK2'])">>))
    end),
    with_context(#{env => #{"PYPORT_TALK" => "from a map"}}, fun(Ctx) ->
        ?assertEqual({ok, <<"from a map">>},
                     py:eval(Ctx, <<"__import__('os').environ['PYPORT_TALK']">>))
    end),
    ok.

cd_option() ->
    [{doc, "cd sets the working directory of the Python process (os.getcwd())."}].
cd_option(Config) ->
    Dir = ?config(priv_dir, Config),
    with_context(#{cd => Dir}, fun(Ctx) ->
        {ok, Cwd} = py:eval(Ctx, <<"__import__('os').getcwd()">>),
        ?assertEqual(norm(Dir), norm(Cwd))
    end),
    ok.

preload_option() ->
    [{doc, "Names defined by preload are in every process's environment (the test "
      "process and others), a process's own change does not leak to another, and "
      "preload runs again after a restart."}].
preload_option(_Config) ->
    Preload = <<"PRELOADED = 41\n"
                "def plus_one(x):\n"
                "    return x + 1\n">>,
    with_context(#{preload => Preload}, fun(Ctx) ->
        ?assertEqual({ok, 42}, py:eval(Ctx, <<"plus_one(PRELOADED)">>)),
        ?assertEqual({ok, 42}, py:call(Ctx, '__main__', plus_one, [41])),
        ok = py:exec(Ctx, <<"PRELOADED = 0">>),
        ?assertEqual({ok, 41}, in_other_process(fun() -> py:eval(Ctx, <<"PRELOADED">>) end)),
        ?assertEqual({ok, 2}, in_other_process(fun() -> py:call(Ctx, '__main__', plus_one, [1])
                                               end)),
        ?assertEqual({ok, 0}, py:eval(Ctx, <<"PRELOADED">>)),
        restart_and_wait(Ctx),
        ?assertEqual({ok, 41}, py:eval(Ctx, <<"PRELOADED">>))
    end),
    ok.

pool_options() ->
    [{doc, "A pool started with python_path, venv, env, cd and preload: every context "
      "of the pool has all of them; routed calls to the pool see them."}].
pool_options(Config) ->
    Dir = ?config(data_dir, Config),
    Priv = ?config(priv_dir, Config),
    Venv = ?config(venv, Config),
    {ok, Ctxs} = py_context_router:start_pool(?OPTS_POOL, 2,
                                              #{python_path => [Dir],
                                                venv => list_to_binary(Venv),
                                                env => [{"PYPORT_POOL", "pooled"}],
                                                cd => Priv, preload => <<"POOLED = True">>}),
    ?assertEqual(2, length(Ctxs)),
    Probe = <<"(__import__('pathmod').NAME, __import__('talkpkg').MAGIC, "
              "__import__('os').environ['PYPORT_POOL'], __import__('os').getcwd(), POOLED)">>,
    [begin
         {ok, {N, M, E, Cwd, P}} = py:eval(Ctx, Probe),
         ?assertEqual({<<"pathmod">>, <<"from the venv">>, <<"pooled">>, true}, {N, M, E, P}),
         ?assertEqual(norm(Priv), norm(Cwd))
     end || Ctx <- Ctxs],
    %% Routed calls to the pool: the venv's package metadata, the env.
    ?assertEqual({ok, <<"1.0">>}, py:call(?OPTS_POOL, 'importlib.metadata', version,
                                          [<<"talkpkg">>])),
    ?assertEqual({ok, <<"pooled">>}, py:call(?OPTS_POOL, os, getenv, [<<"PYPORT_POOL">>])),
    ok.

context_opts_standalone() ->
    [{doc, "The application's context_opts apply to every context (docs/operations.md), "
      "also one started on its own with py_context:start_link/1."}].
context_opts_standalone(Config) ->
    Old = application:get_env(pyport, context_opts),
    ok = application:set_env(pyport, context_opts,
                             #{env => [{"PYPORT_APP_ENV", "app"}],
                               python_path => [?config(data_dir, Config)]}),
    try
        with_context(#{}, fun(Ctx) ->
            ?assertEqual({ok, {<<"app">>, <<"pathmod">>}},
                         py:eval(Ctx, <<"(__import__('os').environ.get('PYPORT_APP_ENV'), "
                                        "__import__('pathmod').NAME)">>))
        end)
    after
        case Old of
            {ok, V} -> application:set_env(pyport, context_opts, V);
            undefined -> application:unset_env(pyport, context_opts)
        end
    end,
    ok.

%%% ===========================================================================
%%% activate_venv / deactivate_venv / venv_info
%%% ===========================================================================

activate_venv_pool() ->
    [{doc, "py:activate_venv/1 applies to every context of the default pool; "
      "venv_info/0 says active with the path; deactivate_venv/0 takes it off sys.path "
      "everywhere and venv_info says inactive."}].
activate_venv_pool(Config) ->
    Venv = ?config(venv, Config),
    Ctxs = py_context_router:contexts(),
    [?assertEqual({ok, false}, py:eval(C, ?FINDS_TALKPKG)) || C <- Ctxs],
    ?assertMatch({ok, #{<<"active">> := false}}, py:venv_info()),
    ?assertEqual(ok, py:activate_venv(Venv)),
    {ok, Info} = py:venv_info(),
    ?assertMatch(#{<<"active">> := true, <<"site_packages">> := _}, Info),
    ?assertEqual(norm(Venv), norm(maps:get(<<"venv_path">>, Info))),
    [?assertEqual({ok, <<"from the venv">>}, py:eval(C, <<"__import__('talkpkg').MAGIC">>))
     || C <- Ctxs],
    [?assertMatch({ok, _}, py:eval(C, <<"__import__('edmod').WHERE">>)) || C <- Ctxs],
    ?assertEqual(ok, py:deactivate_venv()),
    ?assertMatch({ok, #{<<"active">> := false}}, py:venv_info()),
    [?assertEqual({ok, false}, py:eval(C, ?FINDS_TALKPKG)) || C <- Ctxs],
    ok.

activate_venv_survives_restart() ->
    [{doc, "After activate_venv/1, a context of the pool killed with py_context:kill "
      "has the venv active again in its new OS process."}].
activate_venv_survives_restart(Config) ->
    Venv = ?config(venv, Config),
    ?assertEqual(ok, py:activate_venv(Venv)),
    Ctx = py:context(1),
    {ok, OsPid} = py:eval(Ctx, <<"__import__('os').getpid()">>),
    kill_and_wait(Ctx),
    {ok, NewOsPid} = py:eval(Ctx, <<"__import__('os').getpid()">>),
    ?assertNotEqual(OsPid, NewOsPid),
    ?assertEqual({ok, true}, py:eval(Ctx, ?FINDS_TALKPKG)),
    ?assertEqual({ok, <<"from the venv">>}, py:eval(Ctx, <<"__import__('talkpkg').MAGIC">>)),
    {ok, Info} = py:call(Ctx, '_pyport', venv_info, []),
    ?assertMatch(#{<<"active">> := true}, Info),
    %% Deactivated, a restart no longer brings it back.
    ?assertEqual(ok, py:deactivate_venv()),
    kill_and_wait(Ctx),
    ?assertEqual({ok, false}, py:eval(Ctx, ?FINDS_TALKPKG)),
    ok.

activate_venv_later_pool() ->
    [{doc, "py:activate_venv(Pool, Path) before the pool exists: every context of the "
      "pool started afterwards has it; venv_info(Pool) and deactivate_venv(Pool) work "
      "on that pool only."}].
activate_venv_later_pool(Config) ->
    Venv = ?config(venv, Config),
    ?assertEqual(ok, py:activate_venv(?LATER_POOL, Venv)),
    {ok, Ctxs} = py_context_router:start_pool(?LATER_POOL, 2),
    [?assertEqual({ok, <<"from the venv">>}, py:eval(C, <<"__import__('talkpkg').MAGIC">>))
     || C <- Ctxs],
    ?assertMatch({ok, #{<<"active">> := true}}, py:venv_info(?LATER_POOL)),
    %% The default pool is untouched.
    ?assertMatch({ok, #{<<"active">> := false}}, py:venv_info()),
    ?assertEqual({ok, false}, py:eval(py:context(1), ?FINDS_TALKPKG)),
    ?assertEqual(ok, py:deactivate_venv(?LATER_POOL)),
    [?assertEqual({ok, false}, py:eval(C, ?FINDS_TALKPKG)) || C <- Ctxs],
    ok.

activate_venv_bad_path() ->
    [{doc, "activate_venv with a directory that is not a venv is an error, and it does "
      "not stick: a context restarted afterwards comes back healthy (no crash loop)."}].
activate_venv_bad_path(Config) ->
    NotVenv = ?config(data_dir, Config),
    %% A pool of its own, so a failure here cannot spill into other cases.
    {ok, [Ctx]} = py_context_router:start_pool(?OPTS_POOL, 1),
    ?assertMatch({error, _}, py:activate_venv(?OPTS_POOL, NotVenv)),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1 + 1">>)),
    ok = capture_logs(),
    Ref = py_context:monitor(Ctx),
    ok = py_context:kill(Ctx),
    receive
        {py_context, Ctx, restarted, _} -> ok
    after ?EVENTUALLY_MS ->
        Why = [text(Ev) || {logged, Ev} <- mailbox(),
                           string:find(text(Ev), "setup failed") =/= nomatch],
        ct:fail({no_restart, lists:sublist(Why, 1)})
    end,
    py_context:demonitor(Ctx, Ref),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1 + 1">>)),
    ?assertMatch(#{status := ready}, py_context:info(Ctx)),
    ok.

%%% ===========================================================================
%%% Logging
%%% ===========================================================================

logging_levels() ->
    [{doc, "After py:configure_logging(#{}), Python logging records reach Erlang's "
      "logger: warning -> warning, error -> error, info -> info, with the text "
      "\"<logger>: <message>\" and metadata python_logger and pyport_context (the "
      "context's name); debug is not sent at the default level."}].
logging_levels(_Config) ->
    ok = capture_logs(),
    ?assertEqual(ok, py:configure_logging(#{})),
    Ctx = py:context(1),
    #{name := CtxName} = py_context:info(Ctx),
    ok = py:exec(Ctx, <<"import logging\n"
                        "log = logging.getLogger('talk.test')\n"
                        "log.warning('careful %s', 'now')\n"
                        "log.error('it broke')\n"
                        "log.info('for your information')\n"
                        "log.debug('too detailed')\n">>),
    W = wait_log(<<"careful now">>),
    ?assertMatch(#{level := warning}, W),
    E = wait_log(<<"it broke">>),
    ?assertMatch(#{level := error}, E),
    I = wait_log(<<"for your information">>),
    ?assertMatch(#{level := info}, I),
    [begin
         ?assertMatch(#{meta := #{python_logger := _, pyport_context := _}}, Ev),
         #{meta := #{python_logger := L, pyport_context := C}} = Ev,
         ?assertEqual(<<"talk.test">>, iolist_to_binary(L)),
         ?assertEqual(CtxName, iolist_to_binary(C))
     end || Ev <- [W, E, I]],
    ?assertNotEqual(nomatch, string:find(text(W), "talk.test: careful now")),
    %% A record after everything else: once it is in, debug would have been too.
    ok = py:exec(Ctx, <<"log.warning('last one')">>),
    _ = wait_log(<<"last one">>),
    ?assertEqual([], [Ev || {logged, Ev} <- mailbox(),
                            string:find(text(Ev), "too detailed") =/= nomatch]),
    ok.

logging_level_option() ->
    [{doc, "py:configure_logging(#{level => debug}) lets debug records through (as "
      "Erlang debug), #{level => error} keeps warnings out."}].
logging_level_option(_Config) ->
    ok = capture_logs(),
    Ctx = py:context(1),
    ?assertEqual(ok, py:configure_logging(#{level => debug})),
    ok = py:exec(Ctx, <<"import logging\n"
                        "logging.getLogger('talk.debug').debug('fine detail')\n">>),
    ?assertMatch(#{level := debug}, wait_log(<<"fine detail">>)),
    ?assertEqual(ok, py:configure_logging(#{level => error})),
    ok = py:exec(Ctx, <<"logging.getLogger('talk.debug').warning('filtered out')\n"
                        "logging.getLogger('talk.debug').error('let through')\n">>),
    _ = wait_log(<<"let through">>),
    ?assertEqual([], [Ev || {logged, Ev} <- mailbox(),
                            string:find(text(Ev), "filtered out") =/= nomatch]),
    ok.

logging_survives_restart() ->
    [{doc, "After py:configure_logging/1, a context killed with py_context:kill still "
      "sends Python logging records to logger from its new OS process."}].
logging_survives_restart(_Config) ->
    ok = capture_logs(),
    {ok, [Ctx]} = py_context_router:start_pool(?OPTS_POOL, 1),
    ?assertEqual(ok, py:configure_logging(#{})),
    kill_and_wait(Ctx),
    ok = py:exec(Ctx, <<"import logging\n"
                        "logging.getLogger('talk.restarted').warning('after the restart')\n">>),
    Ev = wait_log(<<"after the restart">>),
    ?assertMatch(#{level := warning, meta := #{pyport_context := _}}, Ev),
    ok.

logging_later_pool() ->
    [{doc, "py:configure_logging/1 also applies to contexts started later "
      "(docs/operations.md): the contexts of a pool started afterwards send their "
      "Python logging records to logger."}].
logging_later_pool(_Config) ->
    ok = capture_logs(),
    ?assertEqual(ok, py:configure_logging(#{})),
    {ok, [Ctx | _]} = py_context_router:start_pool(?LATER_POOL, 1),
    ok = py:exec(Ctx, <<"import logging\n"
                        "logging.getLogger('talk.later').warning('from a later pool')\n">>),
    Ev = wait_log(<<"from a later pool">>),
    ?assertMatch(#{level := warning}, Ev),
    ok.

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

%% Makes the suite's venv in priv_dir and installs talkpkg (regular) and edmod
%% (editable) into it from copies of their sources.
make_venv(Python, Config) ->
    Priv = ?config(priv_dir, Config),
    Data = ?config(data_dir, Config),
    Venv = filename:join(Priv, "venv"),
    TalkSrc = copy_tree(filename:join(Data, "talkpkg_src"), filename:join(Priv, "talkpkg_src")),
    EdSrc = copy_tree(filename:join(Data, "edpkg_src"), filename:join(Priv, "edpkg_src")),
    Pip = filename:join([Venv, "bin", "pip"]),
    PipArgs = ["install", "--no-index", "--no-use-pep517", "--disable-pip-version-check"],
    case run(Python, ["-m", "venv", Venv], Priv) of
        {0, _} ->
            case run(Pip, PipArgs ++ [TalkSrc], Priv) of
                {0, _} ->
                    case run(Pip, PipArgs ++ ["-e", EdSrc], Priv) of
                        {0, _} -> {ok, Venv, EdSrc};
                        Failed -> {error, {pip_editable, Failed}}
                    end;
                Failed ->
                    {error, {pip, Failed}}
            end;
        Failed ->
            {error, {venv, Failed}}
    end.

copy_tree(From, To) ->
    [begin
         Dest = filename:join(To, Rel),
         ok = filelib:ensure_dir(Dest),
         {ok, _} = file:copy(filename:join(From, Rel), Dest)
     end || Rel <- filelib:wildcard("**/*.py", From)],
    To.

%% Runs a program; {ExitStatus, Output}.
run(Exe, Args, Cwd) ->
    Port = open_port({spawn_executable, Exe},
                     [{args, Args}, {cd, Cwd}, exit_status, stderr_to_stdout, binary, hide,
                      {env, [{"PIP_DISABLE_PIP_VERSION_CHECK", "1"}, {"PIP_NO_INPUT", "1"}]}]),
    run_loop(Port, []).

run_loop(Port, Acc) ->
    receive
        {Port, {data, D}} -> run_loop(Port, [D | Acc]);
        {Port, {exit_status, S}} ->
            Out = iolist_to_binary(lists:reverse(Acc)),
            ct:log("~ts", [Out]),
            {S, Out}
    end.

with_context(Opts, Fun) ->
    {ok, Ctx} = py_context:start_link(Opts),
    try Fun(Ctx) after py_context:stop(Ctx) end.

in_other_process(Fun) ->
    Self = self(),
    Pid = spawn_link(fun() -> Self ! {result, self(), Fun()} end),
    receive {result, Pid, R} -> R
    after ?EVENTUALLY_MS -> ct:fail(helper_timeout)
    end.

kill_and_wait(Ctx) ->
    Ref = py_context:monitor(Ctx),
    ok = py_context:kill(Ctx),
    wait_restarted(Ctx, Ref).

restart_and_wait(Ctx) ->
    Ref = py_context:monitor(Ctx),
    ok = py_context:restart(Ctx),
    wait_restarted(Ctx, Ref).

wait_restarted(Ctx, Ref) ->
    receive {py_context, Ctx, restarted, _} -> ok
    after ?EVENTUALLY_MS -> ct:fail(no_restart)
    end,
    py_context:demonitor(Ctx, Ref).

%% A path with symlinks resolved, as a string (compares cwd and venv paths).
norm(P) ->
    [Root | Parts] = filename:split(filename:absname(unicode:characters_to_list(P))),
    lists:foldl(fun(".", Acc) -> Acc;
                   ("..", Acc) -> filename:dirname(Acc);
                   (Part, Acc) -> resolve(filename:join(Acc, Part))
                end, Root, Parts).

resolve(Path) ->
    case file:read_link(Path) of
        {ok, Target} -> norm(filename:absname(Target, filename:dirname(Path)));
        {error, _} -> Path
    end.

%% The events captured since capture_logs/0, oldest first, as {logged, Event}.
mailbox() ->
    [{logged, Ev} || {_, Ev} <- ets:tab2list(?LOG_TABLE)].

%% Copies every event that passes the primary level into LOG_TABLE, and lets
%% every level through for the duration of the case. A primary filter runs in
%% the logging process before any handler, so it sees exactly what logger
%% accepted; it passes every event on unchanged. (The copies go to a table
%% rather than to the test process, whose mailbox is also read by the calls the
%% case makes.)
capture_logs() ->
    ok = logger:set_primary_config(level, all),
    true = ets:delete_all_objects(?LOG_TABLE),
    logger:add_primary_filter(?MODULE, {fun copy_event/2, ?LOG_TABLE}).

copy_event(Event, Tab) ->
    ets:insert(Tab, {erlang:unique_integer([monotonic]), Event}),
    ignore.

%% LOG_TABLE lives as long as the suite: a process of its own owns it.
start_log_table() ->
    Self = self(),
    Owner = spawn(fun() ->
                          _ = ets:new(?LOG_TABLE, [ordered_set, public, named_table]),
                          Self ! {log_table, self()},
                          receive stop -> ok end
                  end),
    receive {log_table, Owner} -> Owner end.

%% Waits for a logged event whose text contains Needle; other events stay.
wait_log(Needle) ->
    Deadline = erlang:monotonic_time(millisecond) + ?EVENTUALLY_MS,
    wait_log(Needle, Deadline).

wait_log(Needle, Deadline) ->
    case [Ev || {logged, Ev} <- mailbox(), string:find(text(Ev), Needle) =/= nomatch] of
        [Ev | _] -> Ev;
        [] ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true ->
                    ct:log("primary ~p~nmailbox ~p",
                           [logger:get_primary_config(),
                            [text(Ev) || {logged, Ev} <- mailbox()]]),
                    ct:fail({no_log_event, Needle});
                false -> timer:sleep(?POLL_MS), wait_log(Needle, Deadline)
            end
    end.

text(#{msg := {string, S}}) -> unicode:characters_to_list(S);
text(#{msg := {report, R}}) -> lists:flatten(io_lib:format("~0p", [R]));
text(#{msg := {Format, Args}}) -> lists:flatten(io_lib:format(Format, Args)).
