%% @doc Modules to import and directories to put on `sys.path' in every context,
%% with erlang_python 2.x's API. A registration applies at once to every running
%% context (pooled or not) and to every context started or restarted later (see
%% py_registry, which stores them). The application environment keys `imports'
%% ([{Module, Func}]) and `paths' fill the registries (init/0).
-module(py_import).

-export([init/0, ensure_imported/1, ensure_imported/2, is_imported/1, is_imported/2,
         all_imports/0, clear_imports/0, import_list/0,
         add_path/1, add_paths/1, all_paths/0, clear_paths/0, is_path_added/1]).

-type name() :: atom() | binary() | string().

%% @doc Loads the `imports' and `paths' application environment keys into the
%% registries (and so into contexts started from now on).
-spec init() -> ok.
init() ->
    [py_registry:add_import(bin(M), bin(F)) || {M, F} <- application:get_env(pyport, imports, [])],
    [py_registry:add_path(bin(P)) || P <- application:get_env(pyport, paths, [])],
    py_registry:refresh().

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
    case py_registry:add_import(Module, What) of
        true -> ok = py_registry:refresh(), py_registry:apply_to_running([], [Module]);
        false -> ok
    end.

%% @doc Whether `Module' is registered.
-spec is_imported(name()) -> boolean().
is_imported(Module) ->
    lists:keymember(bin(Module), 1, all_imports()).

%% @doc Whether `Module' is registered as a whole or with `Func'.
-spec is_imported(name(), name()) -> boolean().
is_imported(Module, Func) ->
    M = bin(Module),
    F = bin(Func),
    lists:any(fun({Mod, W}) -> Mod =:= M andalso (W =:= all orelse W =:= F) end, all_imports()).

%% @doc The registrations, `{Module, all | Func}' with binary names.
-spec all_imports() -> [{binary(), binary() | all}].
all_imports() -> py_registry:imports().

%% @doc Forgets every import registration (modules already imported stay
%% imported in running contexts).
-spec clear_imports() -> ok.
clear_imports() ->
    ok = py_registry:clear_imports(),
    py_registry:refresh().

%% @doc `{ok, #{Module => [Func]}}' ([] for a module registered as a whole only).
-spec import_list() -> {ok, #{binary() => [binary()]}}.
import_list() ->
    {ok, lists:foldl(fun({M, all}, Acc) -> maps:update_with(M, fun(L) -> L end, [], Acc);
                        ({M, F}, Acc) -> maps:update_with(M, fun(L) -> [F | L] end, [F], Acc)
                     end, #{}, all_imports())}.

%% @doc Puts `Path' first on `sys.path' in every context.
-spec add_path(name()) -> ok.
add_path(Path) ->
    P = bin(Path),
    ok = py_registry:add_path(P),
    ok = py_registry:refresh(),
    py_registry:apply_to_running([P], []).

%% @doc add_path/1 for each, in order.
-spec add_paths([name()]) -> ok.
add_paths(Paths) when is_list(Paths) ->
    lists:foreach(fun add_path/1, Paths).

%% @doc The registered paths, oldest first.
-spec all_paths() -> [binary()].
all_paths() -> py_registry:paths().

%% @doc Forgets the path registrations (running contexts keep their sys.path).
-spec clear_paths() -> ok.
clear_paths() ->
    ok = py_registry:clear_paths(),
    py_registry:refresh().

%% @doc Whether `Path' is registered.
-spec is_path_added(name()) -> boolean().
is_path_added(Path) ->
    lists:member(bin(Path), all_paths()).

bin(A) when is_atom(A) -> atom_to_binary(A, utf8);
bin(B) when is_binary(B) -> B;
bin(L) when is_list(L) -> unicode:characters_to_binary(L).
