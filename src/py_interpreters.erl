%% @private
%% @doc Which contexts run, pooled or not, and how many interpreters (OS
%% processes) have started and ended. A context tells when its interpreter has
%% started by reading its settings (py_settings:get/1 calls started/1 from the
%% context's server process); the first time, py_context_router is asked (a
%% message) to watch the context, and drops it when it exits. Registrations that
%% must reach every running context (py_import, py_preload, tracing, reload) use
%% running/0. The table is public, created by the application's top supervisor.
-module(py_interpreters).

-export([new_table/0, started/1, running/0, counts/0, ended/1]).

-define(TABLE, py_contexts_seen).

%% @doc Creates the table (once, by the application's top supervisor).
-spec new_table() -> ok.
new_table() ->
    _ = ets:new(?TABLE, [named_table, public, set, {write_concurrency, true}]),
    ok.

%% @doc The interpreter of context `Ctx' has started.
-spec started(pid()) -> ok.
started(Ctx) ->
    try
        ets:update_counter(?TABLE, '$created', 1, {'$created', 0}),
        case ets:update_counter(?TABLE, Ctx, 1, {Ctx, 0}) of
            1 -> gen_server:cast(py_context_router, {watch, Ctx});
            _ -> ets:update_counter(?TABLE, '$destroyed', 1, {'$destroyed', 0})
        end,
        ok
    catch
        error:badarg -> ok   % no table: the application is stopping
    end.

%% @doc Context `Ctx' has exited (its last interpreter with it).
-spec ended(pid()) -> ok.
ended(Ctx) ->
    case ets:take(?TABLE, Ctx) of
        [_] -> _ = ets:update_counter(?TABLE, '$destroyed', 1, {'$destroyed', 0}), ok;
        [] -> ok
    end.

%% @doc Every running context whose interpreter has started at least once.
-spec running() -> [pid()].
running() ->
    try ets:select(?TABLE, [{{'$1', '_'}, [{is_pid, '$1'}], ['$1']}])
    catch error:badarg -> []
    end.

%% @doc Interpreters started since the application started, and those known to
%% have ended (replaced by a restart, or their context stopped).
-spec counts() -> #{created := non_neg_integer(), destroyed := non_neg_integer()}.
counts() ->
    Get = fun(K) -> try ets:lookup_element(?TABLE, K, 2) catch error:badarg -> 0 end end,
    #{created => Get('$created'), destroyed => Get('$destroyed')}.
