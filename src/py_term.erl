%% @private
%% @doc Decoding of terms that come from Python, under the context's atom budget.
%% Atoms are never garbage collected: Python data may create at most `max_atoms'
%% new ones in the node over a context's whole life (its OS-process restarts
%% included). Every term the port sends (results, callback arguments,
%% `erlang.send' messages, stream items) is decoded here: with `[safe]' first,
%% which creates no atom; only if that fails are the atoms of the term counted
%% (those that do not exist yet) and charged to the budget. Pure functions over an
%% `atomics' counter; callable from any process.
-module(py_term).

-export([new_budget/1, decode/2, used/1, limit/1]).

-export_type([budget/0]).

%% The budget: a counter of new atoms created so far, and the limit.
-opaque budget() :: {atomics:atomics_ref(), non_neg_integer() | infinity}.

%% A binary term from this size on is returned as a sub-binary of the frame
%% (binary_to_term/1 would copy it: for 64 MiB, a third of a second of copying
%% and page faults here).
-define(SHARED_BINARY_BYTES, 65536).

%% ETF tags (erts/emulator/beam/external.h).
-define(NEW_FLOAT, 70).
-define(BIT_BINARY, 77).
-define(NEW_PID, 88).
-define(NEW_PORT, 89).
-define(NEWER_REFERENCE, 90).
-define(SMALL_INTEGER, 97).
-define(INTEGER, 98).
-define(FLOAT, 99).
-define(ATOM, 100).
-define(REFERENCE, 101).
-define(PORT, 102).
-define(PID, 103).
-define(SMALL_TUPLE, 104).
-define(LARGE_TUPLE, 105).
-define(NIL, 106).
-define(STRING, 107).
-define(LIST, 108).
-define(BINARY, 109).
-define(SMALL_BIG, 110).
-define(LARGE_BIG, 111).
-define(NEW_FUN, 112).
-define(EXPORT, 113).
-define(NEW_REFERENCE, 114).
-define(SMALL_ATOM, 115).
-define(MAP, 116).
-define(ATOM_UTF8, 118).
-define(SMALL_ATOM_UTF8, 119).
-define(V4_PORT, 120).

%% @doc A fresh budget of `Max' new atoms.
-spec new_budget(non_neg_integer() | infinity) -> budget().
new_budget(Max) ->
    {atomics:new(1, [{signed, false}]), Max}.

%% @doc New atoms charged so far.
-spec used(budget()) -> non_neg_integer().
used({Ref, _}) -> atomics:get(Ref, 1).

%% @doc The budget's limit.
-spec limit(budget()) -> non_neg_integer() | infinity.
limit({_, Max}) -> Max.

%% @doc Decodes the ETF binary `Bin'. `{error, {atom_limit, Max}}' when it holds
%% more atoms that do not exist yet than the budget has left (nothing is
%% created then); `{error, badarg}' when it is not a term.
%% A term that is one large binary (a bytes result) is returned as a part of
%% `Bin' rather than copied out of it.
-spec decode(binary(), budget()) -> {ok, term()} | {error, {atom_limit, non_neg_integer()} | badarg}.
decode(<<131, ?BINARY, Len:32, Data:Len/binary>>, _Budget) when Len >= ?SHARED_BINARY_BYTES ->
    {ok, Data};
decode(Bin, Budget) ->
    try binary_to_term(Bin, [safe]) of
        Term -> {ok, Term}
    catch
        error:badarg -> decode_charged(Bin, Budget)
    end.

decode_charged(Bin, {Ref, Max}) ->
    Left = case Max of
               infinity -> infinity;
               _ -> max(0, Max - atomics:get(Ref, 1))
           end,
    case new_atoms(Bin, Left) of
        error ->
            {error, badarg};
        over ->
            {error, {atom_limit, Max}};
        0 ->
            %% Not atoms: an unsafe term of another kind, or a malformed one.
            unsafe(Bin);
        N when Max =:= infinity ->
            _ = atomics:add_get(Ref, 1, N),
            unsafe(Bin);
        N ->
            case atomics:add_get(Ref, 1, N) of
                Used when Used =< Max ->
                    unsafe(Bin);
                _ ->
                    %% Another decoder took what was left meanwhile.
                    atomics:sub(Ref, 1, N),
                    {error, {atom_limit, Max}}
            end
    end.

unsafe(Bin) ->
    try binary_to_term(Bin) of
        Term -> {ok, Term}
    catch
        error:badarg -> {error, badarg}
    end.

%% The number of distinct atoms in the term that do not exist yet; `over' as
%% soon as there are more than `Left' (the walk stops there: a term of a million
%% new atoms costs no more than the budget); `error' if the binary is not one
%% well-formed term.
new_atoms(<<131, Rest/binary>>, Left) ->
    try walk(Rest, 1, {Left, #{}}) of
        {_, New} -> map_size(New)
    catch
        throw:over -> over;
        error:_ -> error
    end;
new_atoms(_, _) ->
    error.

exists(Name) ->
    try binary_to_existing_atom(Name, utf8) of
        _ -> true
    catch
        error:badarg -> false
    end.

%% Terms are written in prefix order, so one count of terms still to read is all
%% the state a walk needs (no recursion, so deep terms cost no native stack).
walk(<<>>, 0, Acc) ->
    Acc;
walk(Bin, N, Acc) when N > 0 ->
    {Acc1, Rest, Children} = term(Bin, Acc),
    walk(Rest, N - 1 + Children, Acc1).

%% One term's header: its atom added to Acc, the bytes after the header, and
%% how many sub-terms follow them.
term(<<?SMALL_INTEGER, _, R/binary>>, A) -> {A, R, 0};
term(<<?INTEGER, _:32, R/binary>>, A) -> {A, R, 0};
term(<<?FLOAT, _:31/binary, R/binary>>, A) -> {A, R, 0};
term(<<?NEW_FLOAT, _:64, R/binary>>, A) -> {A, R, 0};
term(<<?ATOM, L:16, N:L/binary, R/binary>>, A) -> {add(latin1(N), A), R, 0};
term(<<?SMALL_ATOM, L, N:L/binary, R/binary>>, A) -> {add(latin1(N), A), R, 0};
term(<<?ATOM_UTF8, L:16, N:L/binary, R/binary>>, A) -> {add(N, A), R, 0};
term(<<?SMALL_ATOM_UTF8, L, N:L/binary, R/binary>>, A) -> {add(N, A), R, 0};
term(<<?SMALL_TUPLE, N, R/binary>>, A) -> {A, R, N};
term(<<?LARGE_TUPLE, N:32, R/binary>>, A) -> {A, R, N};
term(<<?NIL, R/binary>>, A) -> {A, R, 0};
term(<<?STRING, L:16, _:L/binary, R/binary>>, A) -> {A, R, 0};
term(<<?LIST, N:32, R/binary>>, A) -> {A, R, N + 1};
term(<<?BINARY, L:32, _:L/binary, R/binary>>, A) -> {A, R, 0};
term(<<?BIT_BINARY, L:32, _, _:L/binary, R/binary>>, A) -> {A, R, 0};
term(<<?SMALL_BIG, L, _, _:L/binary, R/binary>>, A) -> {A, R, 0};
term(<<?LARGE_BIG, L:32, _, _:L/binary, R/binary>>, A) -> {A, R, 0};
term(<<?MAP, N:32, R/binary>>, A) -> {A, R, 2 * N};
%% Node names in pids, ports and references are atoms; what follows them has a
%% fixed size.
term(<<?PID, R/binary>>, A) -> node_then(R, 9, A);
term(<<?NEW_PID, R/binary>>, A) -> node_then(R, 12, A);
term(<<?PORT, R/binary>>, A) -> node_then(R, 5, A);
term(<<?NEW_PORT, R/binary>>, A) -> node_then(R, 8, A);
term(<<?V4_PORT, R/binary>>, A) -> node_then(R, 12, A);
term(<<?REFERENCE, R/binary>>, A) -> node_then(R, 5, A);
term(<<?NEW_REFERENCE, Len:16, R/binary>>, A) -> node_then(R, 1 + 4 * Len, A);
term(<<?NEWER_REFERENCE, Len:16, R/binary>>, A) -> node_then(R, 4 + 4 * Len, A);
%% Export funs: module, function (atoms) and arity (a small integer).
term(<<?EXPORT, R/binary>>, A) -> {A, R, 3};
%% Closures: a fixed header, then module, old index, old uniq, the creator pid
%% and the free variables, all of them terms.
term(<<?NEW_FUN, _Size:32, _Arity, _Uniq:16/binary, _Index:32, NumFree:32, R/binary>>, A) ->
    {A, R, 4 + NumFree}.

node_then(Bin, Fixed, A) ->
    {A1, <<_:Fixed/binary, R/binary>>, 0} = term(Bin, A),
    {A1, R, 0}.

%% Records a name that is not an atom yet; existing ones cost nothing.
add(Name, {Left, New} = Acc) ->
    case is_map_key(Name, New) orelse exists(Name) of
        true -> Acc;
        false when map_size(New) >= Left -> throw(over);
        false -> {Left, New#{Name => true}}
    end.

latin1(N) -> unicode:characters_to_binary(N, latin1).
