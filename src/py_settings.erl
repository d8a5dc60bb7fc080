%% @private
%% @doc Settings a pool's contexts apply to every OS process they start, set at
%% run time (`venv' by py:activate_venv/2, `logging' by py:configure_logging/1,
%% `preload' by py_preload and py_import)
%% rather than by options. Kept in persistent_term: written rarely, read by each
%% context when a new OS process is ready. `'$all'' holds settings of every pool.
-module(py_settings).

-export([get/1, set/3]).

-define(KEY(Pool), {?MODULE, Pool}).

%% @doc The settings of `Pool' (those of `'$all'' under the pool's own).
-spec get(atom() | undefined) -> map().
get(Pool) ->
    maps:merge(persistent_term:get(?KEY('$all'), #{}), persistent_term:get(?KEY(Pool), #{})).

%% @doc Records a setting for `Pool', or for every pool with `'$all''.
-spec set(atom(), atom(), term()) -> ok.
set(Pool, Key, Value) ->
    persistent_term:put(?KEY(Pool), maps:put(Key, Value, persistent_term:get(?KEY(Pool), #{}))).
