%% @doc Code that every new environment starts from, in every context, with
%% erlang_python 2.x's API. The code runs once per interpreter in a namespace
%% that each environment created afterwards copies (the `preload' context option
%% does the same for one context or pool; a context's own option wins over this
%% one). set_code/1 and clear_code/0 reach contexts started or restarted later
%% and the running contexts of pools that have no `preload' option of their own
%% (their environments created from then on); environments that already exist
%% keep their names.
%%
%% The start-up settings also carry the py_import registries: refresh/0 builds
%% the one piece of code every new interpreter runs first (paths, imports, then
%% this code).
-module(py_preload).

-export([set_code/1, get_code/0, clear_code/0, has_preload/0, apply_preload/1, refresh/0]).

-define(KEY, {?MODULE, code}).

%% @doc Sets the preload code.
-spec set_code(iodata()) -> ok.
set_code(Code) when is_binary(Code); is_list(Code) ->
    persistent_term:put(?KEY, iolist_to_binary(Code)),
    refresh(),
    apply_to_pools().

%% @doc The preload code, or `undefined'.
-spec get_code() -> binary() | undefined.
get_code() -> persistent_term:get(?KEY, undefined).

%% @doc Removes the preload code.
-spec clear_code() -> ok.
clear_code() ->
    _ = persistent_term:erase(?KEY),
    refresh(),
    apply_to_pools().

%% @doc Whether preload code is set.
-spec has_preload() -> boolean().
has_preload() -> get_code() =/= undefined.

%% @doc Runs the preload code in the calling process's environment on `Ctx'.
-spec apply_preload(pid()) -> ok | {error, term()}.
apply_preload(Ctx) ->
    case get_code() of
        undefined -> ok;
        Code -> py_context:exec(Ctx, Code)
    end.

%% @doc Recomputes the code every interpreter started from now on runs at
%% start-up: the py_import paths and modules, then the preload code.
-spec refresh() -> ok.
refresh() ->
    Paths = py_import:all_paths(),
    Modules = lists:usort([M || {M, _} <- py_import:all_imports()]),
    Registry = case {Paths, Modules} of
                   {[], []} -> <<>>;
                   _ -> iolist_to_binary(
                          ["__import__('_erlang_compat').apply_registry(",
                           py_list(Paths), ", ", py_list(Modules), ")\n"])
               end,
    Code = <<Registry/binary, (case get_code() of undefined -> <<>>; C -> C end)/binary>>,
    py_context_router:set_setting('$all', preload,
                                  case Code of <<>> -> undefined; _ -> Code end).

%% New environments of running pool contexts start from the new code (pools
%% with their own `preload' option keep it).
apply_to_pools() ->
    Code = maps:get(preload, py_context_router:settings('$none'), undefined),
    Setting = case Code of undefined -> <<>>; _ -> Code end,
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
