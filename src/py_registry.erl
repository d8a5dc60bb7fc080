%% @private
%% @doc The storage behind py_import and py_preload: modules to import,
%% directories to put on `sys.path', and preload code, for every context. Each
%% change reaches contexts started or restarted later through the `preload'
%% start-up setting (one piece of code: paths, imports, then the preload code;
%% py_settings), and running contexts at once (apply_to_running/2,
%% preload_to_pools/0). The tables are public, created by the application's top
%% supervisor.
-module(py_registry).

-export([new_tables/0, add_import/2, imports/0, clear_imports/0, add_path/1, paths/0,
         clear_paths/0, preload/0, set_preload/1, refresh/0, apply_to_running/2,
         preload_to_pools/0]).

-define(IMPORTS, py_import_registry).
-define(PATHS, py_path_registry).
-define(PRELOAD_KEY, {?MODULE, preload}).
%% How long a registration waits for the running contexts to apply it. A context
%% busy with a long request applies it when that request is done.
-define(APPLY_WAIT_MS, 10000).

%% @doc Creates the registry tables (once, by the application's top supervisor).
-spec new_tables() -> ok.
new_tables() ->
    _ = ets:new(?IMPORTS, [named_table, public, bag, {read_concurrency, true}]),
    _ = ets:new(?PATHS, [named_table, public, ordered_set, {read_concurrency, true}]),
    ok.

%% @doc Records `{Module, all | Func}'; true if it was not there yet.
-spec add_import(binary(), binary() | all) -> boolean().
add_import(Module, What) ->
    New = not lists:member({Module, What}, ets:lookup(?IMPORTS, Module)),
    true = ets:insert(?IMPORTS, {Module, What}),
    New.

%% @doc The import registrations.
-spec imports() -> [{binary(), binary() | all}].
imports() ->
    try ets:tab2list(?IMPORTS) catch error:badarg -> [] end.

%% @doc Forgets the import registrations.
-spec clear_imports() -> ok.
clear_imports() ->
    try ets:delete_all_objects(?IMPORTS) catch error:badarg -> true end,
    ok.

%% @doc Records a path (after those recorded before).
-spec add_path(binary()) -> ok.
add_path(Path) ->
    true = ets:insert(?PATHS, {erlang:unique_integer([monotonic]), Path}),
    ok.

%% @doc The recorded paths, oldest first.
-spec paths() -> [binary()].
paths() ->
    try [P || {_, P} <- ets:tab2list(?PATHS)] catch error:badarg -> [] end.

%% @doc Forgets the paths.
-spec clear_paths() -> ok.
clear_paths() ->
    try ets:delete_all_objects(?PATHS) catch error:badarg -> true end,
    ok.

%% @doc The preload code, or `undefined'.
-spec preload() -> binary() | undefined.
preload() -> persistent_term:get(?PRELOAD_KEY, undefined).

%% @doc Sets (a binary) or removes (`undefined') the preload code.
-spec set_preload(binary() | undefined) -> ok.
set_preload(undefined) ->
    _ = persistent_term:erase(?PRELOAD_KEY),
    ok;
set_preload(Code) ->
    persistent_term:put(?PRELOAD_KEY, Code).

%% @doc Recomputes the code every interpreter started from now on runs at
%% start-up: the paths and modules, then the preload code.
-spec refresh() -> ok.
refresh() ->
    Modules = lists:usort([M || {M, _} <- imports()]),
    Registry = case {paths(), Modules} of
                   {[], []} -> <<>>;
                   {Paths, _} -> iolist_to_binary(
                                   ["__import__('_erlang_compat').apply_registry(",
                                    py_list(Paths), ", ", py_list(Modules), ")\n"])
               end,
    Code = <<Registry/binary, (case preload() of undefined -> <<>>; C -> C end)/binary>>,
    py_settings:set('$all', preload, case Code of <<>> -> undefined; _ -> Code end).

%% @doc Puts `Paths' on sys.path and imports `Modules' in every running context,
%% concurrently; waits up to ?APPLY_WAIT_MS for them.
-spec apply_to_running([binary()], [binary()]) -> ok.
apply_to_running(Paths, Modules) ->
    Parent = self(),
    Tag = make_ref(),
    Pids = [spawn(fun() ->
                          _ = py_context:call(Ctx, '_erlang_compat', apply_registry,
                                              [Paths, Modules], #{}, infinity),
                          Parent ! {Tag, self()}
                  end) || Ctx <- py_interpreters:running()],
    Deadline = erlang:monotonic_time(millisecond) + ?APPLY_WAIT_MS,
    lists:foreach(
      fun(Pid) ->
              receive {Tag, Pid} -> ok
              after max(0, Deadline - erlang:monotonic_time(millisecond)) -> ok
              end
      end, Pids).

%% @doc New environments of running pool contexts start from the current code
%% (pools with their own `preload' option keep it).
-spec preload_to_pools() -> ok.
preload_to_pools() ->
    Setting = case maps:get(preload, py_settings:get('$none'), undefined) of
                  undefined -> <<>>;
                  Code -> Code
              end,
    lists:foreach(fun(Ctx) -> _ = py_context:setup(Ctx, #{preload => Setting}) end,
                  py_context_router:contexts_without(preload)).

py_list(Bins) ->
    ["[", lists:join(", ", [py_str(B) || B <- Bins]), "]"].

%% A Python str literal of a UTF-8 binary.
py_str(Bin) ->
    Escaped = [case C of
                   $\\ -> "\\\\";
                   $' -> "\\'";
                   $\n -> "\\n";
                   $\r -> "\\r";
                   0 -> "\\x00";
                   _ -> C
               end || <<C>> <= Bin],
    ["'", Escaped, "'"].
