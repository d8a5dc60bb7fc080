%% @private
%% @doc SharedDict: dictionaries shared by Erlang processes and every context,
%% with erlang_python 2.x's API (py:shared_dict_*/N, Python `erlang.SharedDict').
%% The data is in one public ordered_set ETS table, read and written directly by
%% the callers (each operation is atomic; values are copied in and out); this
%% gen_server decides lifetimes.
%%
%% Lifetime: a dictionary lives until shared_dict_destroy/1 or until every Erlang
%% process that created it or used it through py:shared_dict_* has exited (the
%% NIF version frees it when no term refers to it any more, which a table of
%% terms cannot see). Python code that uses a handle does not keep it alive.
%% After destroy, every operation but destroy raises `badarg'.
-module(py_shared_dict).
-behaviour(gen_server).

-export([new_table/0, start_link/0, new/0, get/3, set/3, del/2, keys/1, destroy/1, python/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(TABLE, py_shared_dicts).

%% @doc Creates the table (once, by the application's top supervisor, so that the
%% data outlives a crash of this server).
-spec new_table() -> ok.
new_table() ->
    _ = ets:new(?TABLE, [named_table, public, ordered_set, {read_concurrency, true},
                         {write_concurrency, true}]),
    ok.

%% @private Started by pyport_sup.
-spec start_link() -> {ok, pid()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc A new, empty dictionary owned by the caller.
-spec new() -> {ok, reference()}.
new() ->
    Handle = make_ref(),
    true = ets:insert(?TABLE, {{meta, Handle}, live}),
    hold(Handle),
    {ok, Handle}.

%% @doc The value under `Key', or `Default'.
-spec get(reference(), term(), term()) -> term().
get(Handle, Key, Default) ->
    live(Handle),
    case ets:lookup(?TABLE, {data, Handle, Key}) of
        [{_, Value}] -> Value;
        [] -> Default
    end.

%% @doc Stores `Value' under `Key'.
-spec set(reference(), term(), term()) -> ok.
set(Handle, Key, Value) ->
    live(Handle),
    true = ets:insert(?TABLE, {{data, Handle, Key}, Value}),
    ok.

%% @doc Removes `Key' (absent or not).
-spec del(reference(), term()) -> ok.
del(Handle, Key) ->
    live(Handle),
    true = ets:delete(?TABLE, {data, Handle, Key}),
    ok.

%% @doc The keys.
-spec keys(reference()) -> [term()].
keys(Handle) ->
    live(Handle),
    ets:select(?TABLE, [{{{data, Handle, '$1'}, '_'}, [], ['$1']}]).

%% @doc Empties and invalidates the dictionary (idempotent).
-spec destroy(reference()) -> ok.
destroy(Handle) when is_reference(Handle) ->
    case ets:lookup(?TABLE, {meta, Handle}) of
        [{_, live}] ->
            true = ets:insert(?TABLE, {{meta, Handle}, destroyed}),
            _ = ets:select_delete(?TABLE, [{{{data, Handle, '_'}, '_'}, [], [true]}]),
            ok;
        _ ->
            ok
    end;
destroy(_) ->
    error(badarg).

%% @doc The Python side (erlang.SharedDict, through the `_pyport.shared_dict'
%% builtin): `get' answers `{Found, Value}', `del' whether the key was there.
-spec python(binary(), list()) -> term().
python(<<"get">>, [Handle, Key]) ->
    check(Handle),
    case ets:lookup(?TABLE, {data, Handle, Key}) of
        [{_, Value}] -> {true, Value};
        [] -> {false, none}
    end;
python(<<"set">>, [Handle, Key, Value]) ->
    check(Handle),
    true = ets:insert(?TABLE, {{data, Handle, Key}, Value}),
    none;
python(<<"del">>, [Handle, Key]) ->
    check(Handle),
    ets:take(?TABLE, {data, Handle, Key}) =/= [];
python(<<"keys">>, [Handle]) ->
    check(Handle),
    ets:select(?TABLE, [{{{data, Handle, '$1'}, '_'}, [], ['$1']}]);
python(<<"destroy">>, [Handle]) ->
    destroy(Handle),
    none.

%% Raises badarg unless the dictionary exists; the caller becomes a holder.
live(Handle) ->
    check(Handle),
    hold(Handle).

check(Handle) when is_reference(Handle) ->
    case ets:lookup(?TABLE, {meta, Handle}) of
        [{_, live}] -> ok;
        _ -> error(badarg)
    end;
check(_) ->
    error(badarg).

hold(Handle) ->
    case erlang:get({?MODULE, Handle}) of
        undefined ->
            put({?MODULE, Handle}, true),
            gen_server:cast(?MODULE, {hold, Handle, self()});
        true ->
            ok
    end.

%%% ===========================================================================
%%% gen_server: holders per dictionary, monitors per holder
%%% ===========================================================================

%% @private
init([]) ->
    {ok, #{holders => #{}, held => #{}}}.

%% @private
handle_call(_Request, _From, S) ->
    {reply, {error, badarg}, S}.

%% @private
handle_cast({hold, Handle, Pid}, S = #{holders := Holders, held := Held}) ->
    case ets:member(?TABLE, {meta, Handle}) of
        false ->
            {noreply, S};
        true ->
            Held1 = case maps:find(Pid, Held) of
                        {ok, Hs} -> Held#{Pid := [Handle | Hs]};
                        error -> _ = erlang:monitor(process, Pid), Held#{Pid => [Handle]}
                    end,
            Holders1 = maps:update_with(Handle, fun(P) -> P#{Pid => true} end,
                                        #{Pid => true}, Holders),
            {noreply, S#{holders := Holders1, held := Held1}}
    end.

%% @private
handle_info({'DOWN', _, process, Pid, _}, S = #{holders := Holders, held := Held}) ->
    {Handles, Held1} = case maps:take(Pid, Held) of
                           {Hs, H1} -> {Hs, H1};
                           error -> {[], Held}
                       end,
    Holders1 = lists:foldl(
                 fun(Handle, Acc) ->
                         Left = maps:remove(Pid, maps:get(Handle, Acc, #{})),
                         case map_size(Left) of
                             0 -> forget(Handle), maps:remove(Handle, Acc);
                             _ -> Acc#{Handle => Left}
                         end
                 end, Holders, Handles),
    {noreply, S#{holders := Holders1, held := Held1}};
handle_info(_Msg, S) ->
    {noreply, S}.

forget(Handle) ->
    true = ets:delete(?TABLE, {meta, Handle}),
    _ = ets:select_delete(?TABLE, [{{{data, Handle, '_'}, '_'}, [], [true]}]),
    ok.
