%% @private
%% @doc Environment references (erlang_python's py:get_local_env/1): pyport keys
%% environments by process, so a reference only names its owner process; a call
%% given it (py_context:call/7, eval/5, exec/3) runs in the owner's environment.
%% The table is public, created by the application's top supervisor; an owner's
%% entries go when it exits (py_context_router watches it).
-module(py_env_refs).

-export([new_table/0, local_env/1, owner/1, forget/1]).

-define(TABLE, py_env_refs).

%% @doc Creates the table (once, by the application's top supervisor).
-spec new_table() -> ok.
new_table() ->
    _ = ets:new(?TABLE, [named_table, public, set, {read_concurrency, true}]),
    ok.

%% @doc The caller's reference for context `Ctx' (the same each time).
-spec local_env(pid()) -> reference().
local_env(Ctx) when is_pid(Ctx) ->
    case get({py_local_env, Ctx}) of
        undefined ->
            Ref = make_ref(),
            true = ets:insert(?TABLE, {Ref, self()}),
            gen_server:cast(py_context_router, {watch, self()}),
            put({py_local_env, Ctx}, Ref),
            Ref;
        Ref ->
            Ref
    end.

%% @doc The process whose environment `EnvRef' names (the caller if unknown).
-spec owner(term()) -> pid().
owner(EnvRef) ->
    try ets:lookup(?TABLE, EnvRef) of
        [{_, Pid}] -> Pid;
        [] -> self()
    catch
        error:badarg -> self()
    end.

%% @doc Drops the references of `Pid' (it has exited).
-spec forget(pid()) -> ok.
forget(Pid) ->
    try ets:match_delete(?TABLE, {'_', Pid}) catch error:badarg -> true end,
    ok.
