%% @doc Modules to import and directories to put on `sys.path' in every context,
%% with erlang_python 2.x's API. A registration applies at once to every running
%% context (pooled or not: py_context_router:all_contexts/0) and, through the
%% start-up settings (py_preload:refresh/0), to every context started or
%% restarted later. The registries are public ETS tables owned by
%% py_context_router; the application environment keys `imports'
%% ([{Module, Func}]) and `paths' fill them (init/0).
-module(py_import).

-export([init/0, ensure_imported/1, ensure_imported/2, is_imported/1, is_imported/2,
         all_imports/0, clear_imports/0, import_list/0,
         add_path/1, add_paths/1, all_paths/0, clear_paths/0, is_path_added/1,
         tables/0, apply_to_running/2]).

-define(IMPORTS, py_import_registry).
-define(PATHS, py_path_registry).
%% How long a registration waits for the running contexts to apply it. A context
%% busy with a long request applies it when that request is done.
-define(APPLY_WAIT_MS, 10000).

-type name() :: atom() | binary() | string().

%% @doc The registry tables and their options (created by py_context_router).
-spec tables() -> [{atom(), list()}].
tables() ->
    [{?IMPORTS, [bag, {read_concurrency, true}]},
     {?PATHS, [ordered_set, {read_concurrency, true}]}].

%% @doc Loads the `imports' and `paths' application environment keys into the
%% registries (and so into contexts started from now on).
-spec init() -> ok.
init() ->
    py_context_router:init_pool_registry(),
    [true = ets:insert(?IMPORTS, {bin(M), bin(F)})
     || {M, F} <- application:get_env(pyport, imports, [])],
    [true = ets:insert(?PATHS, {erlang:unique_integer([monotonic]), bin(P)})
     || P <- application:get_env(pyport, paths, [])],
    py_preload:refresh().

%% @doc Imports `Module' in every context (into `sys.modules'; no namespace gets a
%% name). A module that cannot be imported is accepted: calls to it fail as they
%% would have. `__main__' is refused.
-spec ensure_imported(name()) -> ok | {error, main_not_cacheable}.
ensure_imported(Module) -> register_import(bin(Module), all).

%% @doc As ensure_imported/1, recording `Func' for import_list/0.
-spec ensure_imported(name(), name()) -> ok | {error, main_not_cacheable}.
ensure_imported(Module, Func) -> register_import(bin(Module), bin(Func)).

register_import(<<"__main__">>, _) ->
    {error, main_not_cacheable};
register_import(Module, What) ->
    py_context_router:init_pool_registry(),
    New = not lists:member({Module, What}, ets:lookup(?IMPORTS, Module)),
    true = ets:insert(?IMPORTS, {Module, What}),
    New andalso begin
                    ok = py_preload:refresh(),
                    apply_to_running([], [Module])
                end,
    ok.

%% @doc Whether `Module' is registered.
-spec is_imported(name()) -> boolean().
is_imported(Module) ->
    try ets:member(?IMPORTS, bin(Module)) catch error:badarg -> false end.

%% @doc Whether `Module' is registered as a whole or with `Func'.
-spec is_imported(name(), name()) -> boolean().
is_imported(Module, Func) ->
    F = bin(Func),
    try [E || {_, W} = E <- ets:lookup(?IMPORTS, bin(Module)), W =:= all orelse W =:= F] =/= []
    catch error:badarg -> false
    end.

%% @doc The registrations, `{Module, all | Func}' with binary names.
-spec all_imports() -> [{binary(), binary() | all}].
all_imports() ->
    try ets:tab2list(?IMPORTS) catch error:badarg -> [] end.

%% @doc Forgets every import registration (modules already imported stay
%% imported in running contexts).
-spec clear_imports() -> ok.
clear_imports() ->
    try ets:delete_all_objects(?IMPORTS) catch error:badarg -> true end,
    py_preload:refresh().

%% @doc `{ok, #{Module => [Func]}}' ([] for a module registered as a whole only).
-spec import_list() -> {ok, #{binary() => [binary()]}}.
import_list() ->
    {ok, lists:foldl(fun({M, all}, Acc) -> maps:update_with(M, fun(L) -> L end, [], Acc);
                        ({M, F}, Acc) -> maps:update_with(M, fun(L) -> [F | L] end, [F], Acc)
                     end, #{}, all_imports())}.

%% @doc Puts `Path' first on `sys.path' in every context.
-spec add_path(name()) -> ok.
add_path(Path) ->
    py_context_router:init_pool_registry(),
    P = bin(Path),
    true = ets:insert(?PATHS, {erlang:unique_integer([monotonic]), P}),
    ok = py_preload:refresh(),
    apply_to_running([P], []).

%% @doc add_path/1 for each, in order.
-spec add_paths([name()]) -> ok.
add_paths(Paths) when is_list(Paths) ->
    lists:foreach(fun add_path/1, Paths).

%% @doc The registered paths, oldest first.
-spec all_paths() -> [binary()].
all_paths() ->
    try [P || {_, P} <- ets:tab2list(?PATHS)] catch error:badarg -> [] end.

%% @doc Forgets the path registrations (running contexts keep their sys.path).
-spec clear_paths() -> ok.
clear_paths() ->
    try ets:delete_all_objects(?PATHS) catch error:badarg -> true end,
    py_preload:refresh().

%% @doc Whether `Path' is registered.
-spec is_path_added(name()) -> boolean().
is_path_added(Path) ->
    lists:member(bin(Path), all_paths()).

%% @doc Puts `Paths' on sys.path and imports `Modules' in every running context,
%% concurrently; waits up to ?APPLY_WAIT_MS for them (a busy context catches up
%% when its current request is done).
-spec apply_to_running([binary()], [binary()]) -> ok.
apply_to_running(Paths, Modules) ->
    Parent = self(),
    Tag = make_ref(),
    Pids = [spawn(fun() ->
                          _ = py_context:call(Ctx, '_erlang_compat', apply_registry,
                                              [Paths, Modules], #{}, infinity),
                          Parent ! {Tag, self()}
                  end) || Ctx <- py_context_router:all_contexts()],
    Deadline = erlang:monotonic_time(millisecond) + ?APPLY_WAIT_MS,
    lists:foreach(
      fun(Pid) ->
              receive {Tag, Pid} -> ok
              after max(0, Deadline - erlang:monotonic_time(millisecond)) -> ok
              end
      end, Pids).

bin(A) when is_atom(A) -> atom_to_binary(A, utf8);
bin(B) when is_binary(B) -> B;
bin(L) when is_list(L) -> unicode:characters_to_binary(L).
