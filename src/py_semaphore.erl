%% @doc A node-wide limit on routed py:call requests in flight, with erlang_python
%% 2.x's API. py:call/3,4,5 and pool calls take a slot for their duration; when
%% none is free within the call's timeout they return
%% `{error, {overloaded, Current, Max}}'. The count is an atomics cell (no process
%% on the path); the limit is the application environment key `max_concurrent'
%% (default 10000 per scheduler, so that it never throttles the asynchronous
%% calls a context interleaves) or set_max_concurrent/1.
-module(py_semaphore).

-export([init/0, new/0, acquire/1, release/0, max_concurrent/0, current/0,
         set_max_concurrent/1, rejected/0]).

-define(KEY, {?MODULE, cells}).
-define(RUNNING, 1).
-define(MAX, 2).
-define(REJECTED, 3).
%% acquire/1 polls for a free slot with a backoff between these bounds (ms).
-define(BACKOFF_MIN_MS, 5).
-define(BACKOFF_MAX_MS, 50).
%% acquire/1 with a timeout that is neither an integer nor infinity.
-define(DEFAULT_TIMEOUT, 30000).

%% @doc Creates the counters if they do not exist (the application does it at
%% start; calling it again does nothing).
-spec init() -> ok.
init() ->
    case persistent_term:get(?KEY, undefined) of
        undefined -> new();
        _ -> ok
    end.

%% @private Fresh counters (the application's top supervisor, at each start).
-spec new() -> ok.
new() ->
    Cells = atomics:new(3, [{signed, true}]),
    atomics:put(Cells, ?MAX, default_max()),
    persistent_term:put(?KEY, Cells).

%% @doc Takes a slot, waiting up to `Timeout' ms for one.
-spec acquire(timeout()) -> ok | {error, max_concurrent}.
acquire(infinity) ->
    acquire_loop(cells(), infinity, ?BACKOFF_MIN_MS);
acquire(Timeout) when is_integer(Timeout), Timeout >= 0 ->
    acquire_loop(cells(), erlang:monotonic_time(millisecond) + Timeout, ?BACKOFF_MIN_MS);
acquire(_) ->
    acquire(?DEFAULT_TIMEOUT).

%% @doc Gives a slot back.
-spec release() -> ok.
release() ->
    Cells = cells(),
    case atomics:sub_get(Cells, ?RUNNING, 1) of
        N when N < 0 -> atomics:add(Cells, ?RUNNING, 1);
        _ -> ok
    end,
    ok.

%% @doc The limit.
-spec max_concurrent() -> pos_integer().
max_concurrent() -> atomics:get(cells(), ?MAX).

%% @doc Slots taken now.
-spec current() -> non_neg_integer().
current() -> max(0, atomics:get(cells(), ?RUNNING)).

%% @doc Sets the limit (slots already taken stay taken).
-spec set_max_concurrent(pos_integer()) -> ok.
set_max_concurrent(Max) when is_integer(Max), Max > 0 ->
    atomics:put(cells(), ?MAX, Max).

%% @doc How many acquisitions have given up (the `overloaded' answers).
-spec rejected() -> non_neg_integer().
rejected() -> atomics:get(cells(), ?REJECTED).

acquire_loop(Cells, Deadline, Backoff) ->
    case atomics:add_get(Cells, ?RUNNING, 1) =< atomics:get(Cells, ?MAX) of
        true ->
            ok;
        false ->
            atomics:sub(Cells, ?RUNNING, 1),
            Now = erlang:monotonic_time(millisecond),
            case Deadline =/= infinity andalso Now >= Deadline of
                true ->
                    atomics:add(Cells, ?REJECTED, 1),
                    {error, max_concurrent};
                false ->
                    Sleep = case Deadline of
                                infinity -> Backoff;
                                _ -> min(Backoff, Deadline - Now)
                            end,
                    timer:sleep(Sleep + rand:uniform(Backoff div 2 + 1) - 1),
                    acquire_loop(Cells, Deadline, min(Backoff * 2, ?BACKOFF_MAX_MS))
            end
    end.

cells() ->
    case persistent_term:get(?KEY, undefined) of
        undefined -> init(), persistent_term:get(?KEY);
        Cells -> Cells
    end.

default_max() ->
    case application:get_env(pyport, max_concurrent) of
        {ok, N} when is_integer(N), N > 0 -> N;
        _ -> 10000 * max(2, erlang:system_info(schedulers))
    end.
