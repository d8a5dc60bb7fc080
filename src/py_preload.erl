%% @doc Code that every new environment starts from, in every context, with
%% erlang_python 2.x's API. The code runs once per interpreter in a namespace
%% that each environment created afterwards copies (the `preload' context option
%% does the same for one context or pool; at a start this code runs first, then
%% the context's own). set_code/1 and clear_code/0 reach contexts started or restarted later
%% and the running contexts of pools that have no `preload' option of their own
%% (their environments created from then on); environments that already exist
%% keep their names. Storage: py_registry.
-module(py_preload).

-export([set_code/1, get_code/0, clear_code/0, has_preload/0, apply_preload/1]).

%% @doc Sets the preload code.
-spec set_code(iodata()) -> ok.
set_code(Code) when is_binary(Code); is_list(Code) ->
    ok = py_registry:set_preload(iolist_to_binary(Code)),
    ok = py_registry:refresh(),
    py_registry:preload_to_pools().

%% @doc The preload code, or `undefined'.
-spec get_code() -> binary() | undefined.
get_code() -> py_registry:preload().

%% @doc Removes the preload code.
-spec clear_code() -> ok.
clear_code() ->
    ok = py_registry:set_preload(undefined),
    ok = py_registry:refresh(),
    py_registry:preload_to_pools().

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
