%% @private
%% @doc The options of a context and of a pool: their defaults, their types, and
%% their validation. Pure functions; every entry point that takes options
%% (py_context:start_link/1, pools, the application environment) validates here
%% first, so a bad option is refused with `{error, {badarg, Why}}' before any
%% process, port or table exists. See docs/operations.md for what each one does.
-module(py_options).

-include("pyport_wire.hrl").

-export([defaults/0, default/1, validate/1, validate_pool/1, validate_web/1, context_opts/0,
         restart_defaults/0]).

-export_type([options/0, pool_options/0, restart/0, env/0, web_options/0]).

%% Grace between a timeout's exception and killing the OS process.
-define(KILL_AFTER_MS, 2000).
%% Requests in flight or queued per context before callers get `overloaded'.
-define(MAX_QUEUE, 10000).
%% Routed calls (py:call/3 ...) time out after this; explicit contexts wait `infinity'.
-define(CALL_TIMEOUT_MS, 30000).
%% New atoms Python data may create in the node over a context's whole life.
-define(MAX_ATOMS, 5000).
%% A context whose OS process has not answered a heartbeat for this long is
%% killed and restarted (`{context_died, unresponsive}').
-define(HEARTBEAT_MS, 10000).
%% Lines of output and log records per second a context may send to `logger';
%% more are dropped and counted.
-define(LOG_RATE, 200).
%% Bytes of output (and, separately, of `erlang.send' messages) the port may have
%% sent ahead of their delivery.
-define(OUTPUT_WINDOW, 256 * 1024).
-define(SEND_WINDOW, 1024 * 1024).
%% A local process with more messages than this waiting gets no more
%% `erlang.send' messages until it has read some (the sender waits).
-define(SEND_QUEUE_LIMIT, 10000).
%% Restart policy: an OS process that lived `stable' ms restarts at once; shorter
%% lives back off from `min' doubling to `max' ms.
-define(RESTART_MIN_MS, 100).
-define(RESTART_MAX_MS, 10000).
-define(RESTART_STABLE_MS, 1000).
%% Bounds of the numeric options the port program checks on its command line.
-define(MIN_FRAME, 64).
-define(MAX_LIMIT, 100000).

-type web_options() :: #{context => pid(), pool => atom(), timeout => timeout(),
                         stream => boolean(), window => pos_integer()}.
-type restart() :: #{min => pos_integer(), max => pos_integer(), stable => pos_integer()}.
-type env() :: [{string() | binary() | atom(), string() | binary()}]
             | #{string() | binary() | atom() => string() | binary()}.
-type path() :: string() | binary().
%% Every context option and the type of its value.
-define(CONTEXT_OPTIONS,
        name => atom(),
        id => term(),
        label => term(),
        pool => atom(),
        index => pos_integer(),
        call_timeout => timeout(),
        kill_after => non_neg_integer() | infinity,
        max_queue => pos_integer() | infinity,
        max_calls => pos_integer() | infinity,
        max_memory => pos_integer() | infinity,
        max_frame => pos_integer(),
        max_depth => pos_integer(),
        max_nesting => pos_integer(),
        max_atoms => non_neg_integer() | infinity,
        heartbeat => pos_integer() | infinity,
        log_rate => non_neg_integer() | infinity,
        output_window => pos_integer(),
        send_window => pos_integer(),
        send_queue_limit => pos_integer() | infinity,
        restart => restart(),
        python_path => [path()],
        venv => path() | undefined,
        env => env(),
        cd => path(),
        preload => iodata() | undefined,
        template => boolean(),
        python => path(),
        executable => path(),
        crash_dir => path(),
        logging => non_neg_integer() | none,
        mode => atom()).
-type options() :: #{?CONTEXT_OPTIONS}.
%% A pool's options: its size, whether it starts on first use (application
%% environment), the nodes it spans (py_pool_nodes), and the options of its
%% contexts.
-type pool_options() :: #{contexts => pos_integer(), lazy => boolean(), nodes => [node(), ...],
                          ?CONTEXT_OPTIONS}.

%% @doc Every option with its default value (keys without a default are absent).
-spec defaults() -> options().
defaults() ->
    #{call_timeout => ?CALL_TIMEOUT_MS,
      kill_after => ?KILL_AFTER_MS,
      max_queue => ?MAX_QUEUE,
      max_calls => infinity,
      max_memory => infinity,
      max_frame => ?PYPORT_DEFAULT_MAX_FRAME,
      max_depth => ?PYPORT_DEFAULT_MAX_DEPTH,
      max_nesting => ?PYPORT_DEFAULT_MAX_NESTING,
      max_atoms => ?MAX_ATOMS,
      heartbeat => ?HEARTBEAT_MS,
      log_rate => ?LOG_RATE,
      output_window => ?OUTPUT_WINDOW,
      send_window => ?SEND_WINDOW,
      send_queue_limit => ?SEND_QUEUE_LIMIT,
      restart => restart_defaults(),
      python_path => [],
      env => [],
      preload => undefined,
      template => false,
      venv => undefined}.

%% @doc The default of one option (`undefined' for options without one).
-spec default(atom()) -> term().
default(Key) -> maps:get(Key, defaults(), undefined).

%% @doc The backoff settings a context starts from.
-spec restart_defaults() -> restart().
restart_defaults() ->
    #{min => ?RESTART_MIN_MS, max => ?RESTART_MAX_MS, stable => ?RESTART_STABLE_MS}.

%% @doc The application environment's `context_opts', validated (they apply to
%% every context unless a pool or the context itself overrides them).
-spec context_opts() -> {ok, options()} | {error, {badarg, string()}}.
context_opts() ->
    case application:get_env(pyport, context_opts, #{}) of
        Opts when is_map(Opts) -> check(Opts, "application env context_opts: ");
        _ -> badarg("application env context_opts must be a map")
    end.

%% @doc Validates context options and fills in the defaults (the application's
%% `context_opts' under the given ones). `{error, {badarg, Why}}' names the first
%% option that is wrong.
-spec validate(term()) -> {ok, options()} | {error, {badarg, string()}}.
validate(Opts) when is_map(Opts) ->
    case check(Opts, "") of
        {ok, Own} ->
            case context_opts() of
                {ok, App} -> {ok, maps:merge(maps:merge(defaults(), App), Own)};
                Error -> Error
            end;
        Error ->
            Error
    end;
validate(_) ->
    badarg("context options must be a map").

%% @doc Validates the options of a pool: its size (`contexts'), whether it
%% starts on first use (`lazy', application environment only) and the options
%% of its contexts. Returns the size apart; the defaults are not filled in (each
%% context does that when it starts). `nodes' (the nodes of a pool that spans
%% nodes) is checked and stays in the returned options.
-spec validate_pool(term()) -> {ok, pos_integer() | undefined, options() | pool_options()}
                                   | {error, {badarg, string()}}.
validate_pool(Opts) when is_map(Opts) ->
    {Size, Rest} = case maps:take(contexts, maps:remove(lazy, Opts)) of
                       {N, R} -> {N, R};
                       error -> {undefined, maps:remove(lazy, Opts)}
                   end,
    case Size of
        undefined -> pool_nodes(Size, Rest);
        N1 when is_integer(N1), N1 > 0 -> pool_nodes(Size, Rest);
        _ -> badarg("contexts must be a positive integer")
    end;
validate_pool(_) ->
    badarg("pool options must be a map").

%% @doc Validates the options of `py:wsgi_run/5' and `py:asgi_run/5':
%% `context' (a pid: run there instead of a pool), `pool' (default `default'),
%% `timeout' (ms or `infinity'; a pool's `call_timeout' when absent), `stream'
%% (boolean: answer once the head is known, the body follows as a stream) and
%% `window' (stream items the port may send ahead, a positive integer).
%% Unknown keys are refused.
-spec validate_web(term()) -> {ok, web_options()} | {error, {badarg, string()}}.
validate_web(Opts) when is_map(Opts) ->
    Bad = [K || {K, V} <- maps:to_list(Opts), not web_opt(K, V)],
    case Bad of
        [] -> {ok, Opts};
        [K | _] -> badarg(lists:flatten(io_lib:format("bad web option ~0p", [K])))
    end;
validate_web(_) ->
    badarg("web options must be a map").

web_opt(context, C) -> is_pid(C);
web_opt(pool, P) -> is_atom(P);
web_opt(timeout, infinity) -> true;
web_opt(timeout, T) -> is_integer(T) andalso T >= 0;
web_opt(stream, S) -> is_boolean(S);
web_opt(window, W) -> is_integer(W) andalso W > 0;
web_opt(_, _) -> false.

%%% ===========================================================================
%%% Internals
%%% ===========================================================================

%% `nodes' (a pool over nodes, py_pool_nodes): a non-empty list of distinct
%% node names; it stays in the pool's options (its contexts do not get it).
pool_nodes(Size, Opts) ->
    case maps:take(nodes, Opts) of
        error ->
            pool_opts(Size, Opts);
        {Nodes, Rest} ->
            case is_list(Nodes) andalso Nodes =/= [] andalso lists:all(fun is_atom/1, Nodes)
                andalso length(lists:usort(Nodes)) =:= length(Nodes) of
                true ->
                    case pool_opts(Size, Rest) of
                        {ok, Size, Checked} -> {ok, Size, Checked#{nodes => Nodes}};
                        Error -> Error
                    end;
                false ->
                    badarg("nodes must be a non-empty list of distinct node names")
            end
    end.

pool_opts(Size, Opts) ->
    case check(Opts, "") of
        {ok, Checked} -> {ok, Size, Checked};
        Error -> Error
    end.

check(Opts, Prefix) ->
    try
        maps:foreach(fun check_one/2, Opts),
        {ok, normalise(Opts)}
    catch
        throw:{badarg, Why} -> badarg(Prefix ++ Why)
    end.

badarg(Why) -> {error, {badarg, Why}}.

-spec throw_badarg(string()) -> no_return().
throw_badarg(Why) -> throw({badarg, Why}).

-spec throw_badarg(atom(), string()) -> no_return().
throw_badarg(Key, Why) ->
    throw_badarg(lists:flatten(io_lib:format("~p ~s", [Key, Why]))).

check_one(name, V) -> is_atom(V) orelse throw_badarg(name, "must be an atom (a local name)");
check_one(id, _) -> true;
check_one(label, _) -> true;
check_one(pool, V) -> is_atom(V) orelse throw_badarg(pool, "must be an atom");
check_one(index, V) -> pos_int(index, V);
check_one(call_timeout, V) -> timeout(call_timeout, V);
check_one(kill_after, infinity) -> true;
check_one(kill_after, V) -> non_neg_int(kill_after, V);
check_one(max_queue, V) -> pos_int_or_infinity(max_queue, V);
check_one(max_calls, V) -> pos_int_or_infinity(max_calls, V);
check_one(max_memory, V) ->
    pos_int_or_infinity(max_memory, V, "must be a number of bytes (a positive integer) or infinity");
check_one(max_frame, V) -> int_in(max_frame, V, ?MIN_FRAME, ?PYPORT_HARD_MAX_FRAME);
check_one(max_depth, V) -> int_in(max_depth, V, 1, ?MAX_LIMIT);
check_one(max_nesting, V) -> int_in(max_nesting, V, 1, ?MAX_LIMIT);
check_one(max_atoms, infinity) -> true;
check_one(max_atoms, V) -> non_neg_int(max_atoms, V);
check_one(heartbeat, V) -> pos_int_or_infinity(heartbeat, V);
check_one(log_rate, infinity) -> true;
check_one(log_rate, V) -> non_neg_int(log_rate, V);
check_one(output_window, V) -> int_in(output_window, V, 1024, ?PYPORT_HARD_MAX_FRAME);
check_one(send_window, V) -> int_in(send_window, V, 1024, ?PYPORT_HARD_MAX_FRAME);
check_one(send_queue_limit, V) -> pos_int_or_infinity(send_queue_limit, V);
check_one(restart, V) -> restart(V);
check_one(python_path, V) -> python_path(V);
check_one(venv, undefined) -> true;
check_one(venv, V) -> path(venv, V);
check_one(env, V) -> env(V);
check_one(cd, V) -> path(cd, V);
check_one(preload, undefined) -> true;
check_one(preload, V) -> code(preload, V);
check_one(template, V) -> is_boolean(V) orelse throw_badarg(template, "must be a boolean");
check_one(python, V) -> path(python, V);
check_one(executable, V) -> path(executable, V);
check_one(crash_dir, V) -> path(crash_dir, V);
check_one(logging, none) -> true;
check_one(logging, V) -> non_neg_int(logging, V);
%% erlang_python's execution mode: every pyport context is its own OS process.
check_one(mode, V) -> is_atom(V) orelse throw_badarg(mode, "must be an atom");
check_one(Key, _) ->
    throw_badarg(lists:flatten(io_lib:format("unknown option ~p", [Key]))).

pos_int(_, V) when is_integer(V), V > 0 -> true;
pos_int(K, _) -> throw_badarg(K, "must be a positive integer").

non_neg_int(_, V) when is_integer(V), V >= 0 -> true;
non_neg_int(K, _) -> throw_badarg(K, "must be a non-negative integer").

pos_int_or_infinity(K, V) -> pos_int_or_infinity(K, V, "must be a positive integer or infinity").

pos_int_or_infinity(_, infinity, _) -> true;
pos_int_or_infinity(_, V, _) when is_integer(V), V > 0 -> true;
pos_int_or_infinity(K, _, Why) -> throw_badarg(K, Why).

timeout(_, infinity) -> true;
timeout(_, V) when is_integer(V), V >= 0 -> true;
timeout(K, _) -> throw_badarg(K, "must be a timeout (milliseconds or infinity)").

int_in(_, V, Lo, Hi) when is_integer(V), V >= Lo, V =< Hi -> true;
int_in(K, _, Lo, Hi) ->
    throw_badarg(K, lists:flatten(io_lib:format("must be an integer from ~b to ~b", [Lo, Hi]))).

restart(R) when is_map(R) ->
    maps:foreach(fun(K, V) when K =:= min; K =:= max; K =:= stable ->
                         pos_int({restart, K}, V);
                    (K, _) ->
                         throw_badarg(lists:flatten(io_lib:format("unknown restart key ~p", [K])))
                 end, R),
    #{min := Min, max := Max} = maps:merge(restart_defaults(), R),
    Min =< Max orelse throw_badarg(restart, "min must not exceed max");
restart(_) ->
    throw_badarg(restart, "must be a map with min, max and stable (milliseconds)").

python_path(L) when is_list(L) ->
    case io_lib:printable_unicode_list(L) andalso L =/= [] of
        true -> throw_badarg(python_path, "must be a list of directories, not one string");
        false -> lists:foreach(fun(P) -> path(python_path, P) end, L)
    end;
python_path(_) ->
    throw_badarg(python_path, "must be a list of directories").

path(K, V) when is_binary(V) -> no_nul(K, V);
path(K, V) when is_list(V) ->
    case unicode:characters_to_binary(V) of
        B when is_binary(B) -> no_nul(K, B);
        _ -> throw_badarg(K, "must be a path (a string or binary)")
    end;
path(K, _) -> throw_badarg(K, "must be a path (a string or binary)").

no_nul(K, B) ->
    binary:match(B, <<0>>) =:= nomatch orelse throw_badarg(K, "must not contain NUL").

code(K, V) ->
    try iolist_to_binary(V) of
        B -> no_nul(K, B)
    catch
        error:badarg ->
            case is_list(V) andalso unicode:characters_to_binary(V) of
                B when is_binary(B) -> no_nul(K, B);
                _ -> throw_badarg(K, "must be Python code (a string, binary or iolist)")
            end
    end.

env(M) when is_map(M) -> env(maps:to_list(M));
env(L) when is_list(L) ->
    lists:foreach(fun({K, V}) -> env_name(K), path(env, V);
                     (_) -> throw_badarg(env, "must be [{Name, Value}] or a map")
                  end, L);
env(_) -> throw_badarg(env, "must be [{Name, Value}] or a map").

env_name(K) when is_atom(K) -> env_name(atom_to_binary(K, utf8));
env_name(K) ->
    path(env, K),
    B = unicode:characters_to_binary(K),
    (B =/= <<>> andalso binary:match(B, <<"=">>) =:= nomatch)
        orelse throw_badarg(env, "names must be non-empty and contain no '='").

%% python_path entries, env names/values and paths as the port and open_port
%% take them; code as one binary.
normalise(Opts) ->
    maps:map(fun(preload, undefined) -> undefined;
                (preload, C) -> code_binary(C);
                (_, V) -> V
             end, Opts).

code_binary(C) ->
    try iolist_to_binary(C)
    catch error:badarg -> unicode:characters_to_binary(C)
    end.
