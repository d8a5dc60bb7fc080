%% @private
%% @doc Shared state: a public ETS table visible from every process, every
%% context and from Python (erlang.state_get/set/delete/keys/incr/decr). Keys
%% and values are any terms; a Python str key is a binary on the Erlang side.
%% The table is created once, by the application's top supervisor.
-module(py_state).

-export([new_table/0, store/2, fetch/1, remove/1, keys/0, clear/0, incr/1, incr/2, decr/1,
         decr/2]).

-define(TABLE, py_state).

%% @doc Creates the table (once, by the application's top supervisor).
-spec new_table() -> ok.
new_table() ->
    _ = ets:new(?TABLE, [named_table, public, set, {write_concurrency, true},
                         {read_concurrency, true}]),
    ok.

%% @doc Stores `Value' under `Key'.
-spec store(term(), term()) -> ok.
store(Key, Value) ->
    true = ets:insert(?TABLE, {Key, Value}),
    ok.

%% @doc The value under `Key'.
-spec fetch(term()) -> {ok, term()} | {error, not_found}.
fetch(Key) ->
    case ets:lookup(?TABLE, Key) of
        [{_, Value}] -> {ok, Value};
        [] -> {error, not_found}
    end.

%% @doc Removes `Key'.
-spec remove(term()) -> ok.
remove(Key) ->
    true = ets:delete(?TABLE, Key),
    ok.

%% @doc All keys.
-spec keys() -> [term()].
keys() ->
    [K || {K, _} <- ets:tab2list(?TABLE)].

%% @doc Removes every key.
-spec clear() -> ok.
clear() ->
    true = ets:delete_all_objects(?TABLE),
    ok.

%% @doc Adds 1 to the integer under `Key' (0 if absent); returns the new value.
-spec incr(term()) -> integer().
incr(Key) -> incr(Key, 1).

%% @doc Adds `N' atomically; returns the new value.
-spec incr(term(), integer()) -> integer().
incr(Key, N) when is_integer(N) ->
    ets:update_counter(?TABLE, Key, N, {Key, 0}).

%% @doc Subtracts 1; returns the new value.
-spec decr(term()) -> integer().
decr(Key) -> decr(Key, 1).

%% @doc Subtracts `N' atomically; returns the new value.
-spec decr(term(), integer()) -> integer().
decr(Key, N) when is_integer(N) ->
    incr(Key, -N).
