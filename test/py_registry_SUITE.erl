%% The import, path and preload registries (py_import, py_preload): applied at
%% once to every running context (pools and contexts of their own), and to every
%% context started or restarted later; clear functions; a module that cannot be
%% imported is accepted; a context's own preload option wins.
-module(py_registry_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([import_registry_api/0, import_registry_api/1,
         import_reaches_running_and_new/0, import_reaches_running_and_new/1,
         bad_module_accepted/0, bad_module_accepted/1,
         path_reaches_running_and_new/0, path_reaches_running_and_new/1,
         survives_restart/0, survives_restart/1,
         preload_new_contexts/0, preload_new_contexts/1,
         preload_running_pools/0, preload_running_pools/1,
         own_preload_wins/0, own_preload_wins/1,
         config_keys/0, config_keys/1]).

%% Generous bound for a whole case (contexts start and restart).
-define(CASE_TIMEOUT, {minutes, 3}).
%% How long a killed context may take to serve again.
-define(RESTART_MS, 30000).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [import_registry_api, import_reaches_running_and_new, bad_module_accepted,
     path_reaches_running_and_new, survives_restart, preload_new_contexts,
     preload_running_pools, own_preload_wins, config_keys].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

end_per_testcase(_Case, _Config) ->
    ok = py_import:clear_imports(),
    ok = py_import:clear_paths(),
    ok = py_preload:clear_code().

import_registry_api() ->
    [{doc, "ensure_imported/1,2 record {Module, all | Func} (binary names, no "
      "duplicates), is_imported/1,2 and import_list/0 read them, __main__ is refused, "
      "clear_imports/0 empties the registry."}].
import_registry_api(_Config) ->
    ?assertEqual([], py_import:all_imports()),
    ok = py_import:ensure_imported(json),
    ok = py_import:ensure_imported(json),
    ok = py_import:ensure_imported(<<"json">>, dumps),
    ok = py_import:ensure_imported("math", "sqrt"),
    ?assertEqual(lists:sort([{<<"json">>, all}, {<<"json">>, <<"dumps">>},
                             {<<"math">>, <<"sqrt">>}]),
                 lists:sort(py_import:all_imports())),
    ?assert(py_import:is_imported(json)),
    ?assert(py_import:is_imported(math, sqrt)),
    ?assertNot(py_import:is_imported(math, floor)),
    ?assert(py_import:is_imported(json, loads)),   % json is registered whole
    ?assertEqual({ok, #{<<"json">> => [<<"dumps">>], <<"math">> => [<<"sqrt">>]}},
                 py_import:import_list()),
    ?assertEqual({error, main_not_cacheable}, py_import:ensure_imported('__main__')),
    ?assertEqual({error, main_not_cacheable}, py_import:ensure_imported(<<"__main__">>, f)),
    ok = py_import:clear_imports(),
    ?assertEqual([], py_import:all_imports()),
    ?assertEqual({ok, #{}}, py_import:import_list()),
    ok.

import_reaches_running_and_new() ->
    [{doc, "ensure_imported puts the module in sys.modules of every running context "
      "(each pool context and a context of its own) before it returns, without "
      "binding a name in any namespace, and in contexts started afterwards."}].
import_reaches_running_and_new(_Config) ->
    Own = pyport_test:start_ctx(#{}),
    try
        Running = [Own | py_context_router:contexts()],
        [?assertEqual({ok, false}, in_sys_modules(C, <<"tabnanny">>)) || C <- Running],
        ok = py_import:ensure_imported(tabnanny),
        [?assertEqual({C, {ok, true}}, {C, in_sys_modules(C, <<"tabnanny">>)}) || C <- Running],
        ?assertMatch({error, {"NameError", _}}, py:eval(Own, <<"tabnanny">>)),
        New = pyport_test:start_ctx(#{}),
        try
            ?assertEqual({ok, true}, in_sys_modules(New, <<"tabnanny">>))
        after
            pyport_test:stop_ctx(New)
        end
    after
        pyport_test:stop_ctx(Own)
    end.

bad_module_accepted() ->
    [{doc, "A module that cannot be imported is registered anyway; contexts keep "
      "working (new ones start), and a call to it fails as it would have."}].
bad_module_accepted(_Config) ->
    ok = py_import:ensure_imported(no_such_module_xyz),
    ?assert(py_import:is_imported(no_such_module_xyz)),
    New = pyport_test:start_ctx(#{}),
    try
        ?assertEqual({ok, 2}, py:eval(New, <<"1 + 1">>)),
        ?assertMatch({error, {"ModuleNotFoundError", _}},
                     py:call(New, no_such_module_xyz, f, []))
    after
        pyport_test:stop_ctx(New)
    end.

path_reaches_running_and_new() ->
    [{doc, "add_path/1 puts a directory first on sys.path of running contexts (its "
      "modules import at once) and of new ones; is_path_added/1, all_paths/0, "
      "clear_paths/0."}].
path_reaches_running_and_new(Config) ->
    Dir = filename:join(?config(priv_dir, Config), "registry_path"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    ok = file:write_file(filename:join(Dir, "registry_mod.py"), <<"VALUE = 'from path'\n">>),
    Ctx = py:context(1),
    ?assertMatch({error, {"ModuleNotFoundError", _}}, py:call(Ctx, registry_mod, '__str__', [])),
    ok = py_import:add_path(Dir),
    DirBin = list_to_binary(Dir),
    ?assert(py_import:is_path_added(Dir)),
    ?assertEqual([DirBin], py_import:all_paths()),
    ?assertEqual({ok, DirBin}, py:eval(Ctx, <<"__import__('sys').path[0]">>)),
    ?assertEqual({ok, <<"from path">>}, py:eval(Ctx, <<"__import__('registry_mod').VALUE">>)),
    New = pyport_test:start_ctx(#{}),
    try
        ?assertEqual({ok, <<"from path">>}, py:eval(New, <<"__import__('registry_mod').VALUE">>))
    after
        pyport_test:stop_ctx(New)
    end,
    ok = py_import:clear_paths(),
    ?assertEqual([], py_import:all_paths()),
    ?assertNot(py_import:is_path_added(Dir)),
    ok.

survives_restart() ->
    [{doc, "A pool context whose OS process is killed starts again with the "
      "registered imports and paths."}].
survives_restart(Config) ->
    Dir = filename:join(?config(priv_dir, Config), "restart_path"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    ok = py_import:add_path(Dir),
    ok = py_import:ensure_imported(tabnanny),
    Ctx = py:context(1),
    #{os_pid := Before} = py_context:info(Ctx),
    ok = py_context:kill(Ctx),
    ok = pyport_test:wait_until(fun() -> new_os_pid(Ctx, Before) end, ?RESTART_MS),
    ?assertEqual({ok, true}, in_sys_modules(Ctx, <<"tabnanny">>)),
    ?assertEqual({ok, list_to_binary(Dir)}, py:eval(Ctx, <<"__import__('sys').path[0]">>)),
    ok.

preload_new_contexts() ->
    [{doc, "py_preload code defines the starting names of environments in contexts "
      "started afterwards; each environment has its own namespace (rebinding a name "
      "in one does not change another); clear_code/0 stops that for later contexts; "
      "set/get/has/clear."}].
preload_new_contexts(_Config) ->
    ?assertEqual(undefined, py_preload:get_code()),
    ?assertNot(py_preload:has_preload()),
    ok = py_preload:set_code(<<"PRE = [42]\ndef double(x): return 2 * x\n">>),
    ?assertEqual(<<"PRE = [42]\ndef double(x): return 2 * x\n">>, py_preload:get_code()),
    ?assert(py_preload:has_preload()),
    Ctx = pyport_test:start_ctx(#{}),
    try
        ?assertEqual({ok, 10}, py:eval(Ctx, <<"double(5)">>)),
        ok = py:exec(Ctx, <<"PRE = 'mine'">>),
        ?assertEqual({ok, <<"mine">>}, py:eval(Ctx, <<"PRE">>)),
        Other = pyport_test:on_scheduler(1, fun() -> py:eval(Ctx, <<"PRE">>) end, 60000),
        ?assertEqual({ok, [42]}, Other)
    after
        pyport_test:stop_ctx(Ctx)
    end,
    ok = py_preload:clear_code(),
    ?assertEqual(undefined, py_preload:get_code()),
    Later = pyport_test:start_ctx(#{}),
    try
        ?assertMatch({error, {"NameError", _}}, py:eval(Later, <<"PRE">>))
    after
        pyport_test:stop_ctx(Later)
    end.

preload_running_pools() ->
    [{doc, "Setting preload code reaches the running pool contexts: a process that "
      "first uses them afterwards starts with the names; clearing it stops that."}].
preload_running_pools(_Config) ->
    ok = py_preload:set_code(<<"RUNNING = 'yes'">>),
    Got = pyport_test:on_scheduler(1, fun() -> py:eval(<<"RUNNING">>) end, 60000),
    ?assertEqual({ok, <<"yes">>}, Got),
    ok = py_preload:clear_code(),
    Gone = pyport_test:on_scheduler(1, fun() -> py:eval(<<"RUNNING">>) end, 60000),
    ?assertMatch({error, {"NameError", _}}, Gone),
    ok.

own_preload_wins() ->
    [{doc, "A context started with its own preload option keeps it: the global "
      "preload code does not replace it."}].
own_preload_wins(_Config) ->
    ok = py_preload:set_code(<<"WHO = 'global'">>),
    Ctx = pyport_test:start_ctx(#{preload => <<"WHO = 'own'">>}),
    try
        ?assertEqual({ok, <<"own">>}, py:eval(Ctx, <<"WHO">>))
    after
        pyport_test:stop_ctx(Ctx)
    end.

config_keys() ->
    [{doc, "py_import:init/0 loads the `imports' and `paths' application environment "
      "keys; a context started afterwards has both."}].
config_keys(Config) ->
    Dir = filename:join(?config(priv_dir, Config), "config_path"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    ok = file:write_file(filename:join(Dir, "config_mod.py"), <<"V = 123\n">>),
    ok = application:set_env(pyport, imports, [{tabnanny, check}]),
    ok = application:set_env(pyport, paths, [Dir]),
    try
        ok = py_import:init(),
        ?assert(py_import:is_imported(tabnanny, check)),
        ?assertEqual([list_to_binary(Dir)], py_import:all_paths()),
        Ctx = pyport_test:start_ctx(#{}),
        try
            ?assertEqual({ok, true}, in_sys_modules(Ctx, <<"tabnanny">>)),
            ?assertEqual({ok, 123}, py:eval(Ctx, <<"__import__('config_mod').V">>))
        after
            pyport_test:stop_ctx(Ctx)
        end
    after
        application:unset_env(pyport, imports),
        application:unset_env(pyport, paths)
    end.

in_sys_modules(Ctx, Name) ->
    py:eval(Ctx, <<"m in __import__('sys').modules">>, #{m => Name}).

new_os_pid(Ctx, Before) ->
    case catch py_context:info(Ctx) of
        #{status := ready, os_pid := P} when P =/= Before -> true;
        _ -> false
    end.
