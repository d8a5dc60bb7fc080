%% @private
%% @doc Erlang functions callable from Python (`erlang.call(Name, *Args)',
%% `erlang.Name(*Args)'). The registry is a public ETS table read on every
%% callback (created once by the application's top supervisor). A
%% callback runs in the Erlang process waiting for the request that made it (so
%% `self()', its group leader and its bound contexts are the caller's, and nested
%% py:call/eval/exec use the caller's environment), or, for callbacks from Python
%% threads or from requests nobody waits for, in a fresh process.
-module(py_callback).

-export([new_table/0, register/2, unregister/1, run/4, spawn_handler/4, is_registered/1]).

-define(TABLE, py_callbacks).

%% @doc Creates the registry (once, by the application's top supervisor).
-spec new_table() -> ok.
new_table() ->
    _ = ets:new(?TABLE, [named_table, public, set, {read_concurrency, true}]),
    ok.

%% @doc Registers `Fun' (called with the list of arguments) or `{Module, Function}'
%% (called as `Module:Function(Args)') under `Name'.
-spec register(atom() | binary(), fun((list()) -> term()) | {module(), atom()}) -> ok.
register(Name, Fun) ->
    true = ets:insert(?TABLE, {key(Name), Fun}),
    ok.

%% @doc Removes a registration.
-spec unregister(atom() | binary()) -> ok.
unregister(Name) ->
    true = ets:delete(?TABLE, key(Name)),
    ok.

%% @doc Runs callback `CbId' (`Name' with the ETF-encoded argument list `Args',
%% decoded under the context's atom budget) and returns its reply frame.
%% Exceptions become `{error, {Class, Reason}}' replies, raised in Python as
%% erlang.Error.
-spec run(integer(), binary(), binary(), py_term:budget()) -> binary().
run(CbId, Name, Args, Budget) ->
    case py_term:decode(Args, Budget) of
        {ok, Decoded} ->
            try call(Name, Decoded) of
                Value -> py_protocol:callback_reply(CbId, ok, Value)
            catch
                Class:Reason -> py_protocol:callback_reply(CbId, error, {Class, Reason})
            end;
        {error, Reason} ->
            py_protocol:callback_reply(CbId, error, {error, Reason})
    end.

%% @doc Runs a callback in a new process (nobody waits for its request) and
%% writes its reply to the context's OS process.
-spec spawn_handler(py_inflight:handle(), integer(), binary(), binary()) -> pid().
spawn_handler(H, CbId, Name, Args) ->
    spawn(fun() -> py_inflight:write(H, run(CbId, Name, Args, py_inflight:budget(H))) end).

call(<<"_pyport.", Builtin/binary>>, Args) ->
    builtin(Builtin, Args);
call(Name, Args) ->
    case ets:lookup(?TABLE, Name) of
        [{_, Fun}] when is_function(Fun, 1) -> Fun(Args);
        [{_, {M, F}}] -> M:F(Args);
        [] -> system(Name, Args)
    end.

%% @doc Whether `Name' can be called from Python: registered, or one of the
%% callbacks erlang_python registers for itself (system/2).
-spec is_registered(binary()) -> boolean().
is_registered(Name) ->
    ets:member(?TABLE, Name) orelse lists:member(Name, system_names()).

%% The callbacks erlang_python 2.x registers at start, so that code calling
%% them by name (erlang.call('state_get', k), erlang.call('_py_sleep', 0.1))
%% works unchanged. A registration of the same name wins.
system_names() ->
    [<<"_py_sleep">>, <<"_whereis">>, <<"state_get">>, <<"state_set">>,
     <<"state_delete">>, <<"state_keys">>, <<"state_clear">>, <<"state_incr">>,
     <<"state_decr">>].

system(<<"_py_sleep">>, [Seconds]) when is_number(Seconds), Seconds >= 0 ->
    timer:sleep(round(Seconds * 1000)),
    none;
system(<<"_whereis">>, [Name]) -> builtin(<<"whereis">>, [Name]);
system(<<"state_get">>, [Key]) ->
    case py_state:fetch(Key) of
        {ok, Value} -> Value;
        {error, not_found} -> none
    end;
system(<<"state_set">>, [Key, Value]) -> py_state:store(Key, Value), none;
system(<<"state_delete">>, [Key]) -> py_state:remove(Key), none;
system(<<"state_keys">>, _) -> py_state:keys();
system(<<"state_clear">>, _) -> py_state:clear(), none;
system(<<"state_incr">>, [Key]) -> py_state:incr(Key);
system(<<"state_incr">>, [Key, N]) -> py_state:incr(Key, N);
system(<<"state_decr">>, [Key]) -> py_state:decr(Key);
system(<<"state_decr">>, [Key, N]) -> py_state:decr(Key, N);
system(Name, _Args) -> erlang:error({undefined_function, Name}).

%% Services of the erlang module that need the Erlang side.
builtin(<<"whereis">>, [Name]) when is_atom(Name) ->
    case whereis(Name) of
        undefined -> none;
        Pid -> Pid
    end;
builtin(<<"whereis">>, [Name]) ->
    try binary_to_existing_atom(Name, utf8) of
        Atom -> case whereis(Atom) of
                    undefined -> none;
                    Pid -> Pid
                end
    catch
        error:badarg -> none
    end;
builtin(<<"state_fetch">>, [Key]) ->
    case py_state:fetch(Key) of
        {ok, Value} -> {true, Value};
        {error, not_found} -> {false, none}
    end;
builtin(<<"state_store">>, [Key, Value]) -> py_state:store(Key, Value);
builtin(<<"state_remove">>, [Key]) -> py_state:remove(Key);
builtin(<<"state_keys">>, []) -> py_state:keys();
builtin(<<"state_incr">>, [Key, N]) -> py_state:incr(Key, N);
builtin(<<"state_decr">>, [Key, N]) -> py_state:decr(Key, N);
builtin(<<"send">>, [Dest, Msg]) -> send(Dest, Msg);
builtin(<<"registered">>, [Name]) -> is_registered(key(Name));
builtin(<<"schedule">>, [Name, Args]) -> {bytes, term_to_binary(call(key(Name), Args))};
builtin(<<"etf">>, [Term]) -> {bytes, term_to_binary(Term)};
builtin(<<"shared_dict">>, [Op | Args]) -> py_shared_dict:python(Op, Args);
builtin(<<"tracing">>, []) -> py_trace:enabled();
builtin(<<"channel">>, [Op | Args]) -> py_channel:python(Op, Args);
builtin(<<"buffer">>, [Op | Args]) -> py_buffer:python(Op, Args);
builtin(<<"resource_kind">>, [Ref]) -> py_channel:python(<<"kind">>, [Ref]);
builtin(<<"trace">>, [Msg]) -> py_trace:record(list_to_tuple(Msg));
builtin(Other, Args) -> erlang:error({undefined_function, <<"_pyport.", Other/binary>>, Args}).

%% erlang.send(Dest, Msg): true if delivered to a live process (as far as this
%% node can tell: a local pid that is alive, a registered name, any remote pid),
%% false for a local process that has exited or a name nobody registered.
send(Pid, Msg) when is_pid(Pid), node(Pid) =:= node() ->
    case erlang:is_process_alive(Pid) of
        true -> Pid ! Msg, true;
        false -> false
    end;
send(Pid, Msg) when is_pid(Pid) ->
    Pid ! Msg,
    true;
send(Name, Msg) ->
    case builtin(<<"whereis">>, [Name]) of
        none -> false;
        Pid -> send(Pid, Msg)
    end.

key(A) when is_atom(A) -> atom_to_binary(A, utf8);
key(B) when is_binary(B) -> B;
key(L) when is_list(L) -> unicode:characters_to_binary(L).
