%% @private
%% @doc The arguments of the public API, checked in the caller before anything
%% is sent: names, code, argument lists, keyword maps, timeouts and contexts.
%% Each check returns the value as it goes on the wire, or `{error, {badarg,
%% Why}}'. Pure functions.
-module(py_args).

-export([name/2, code/1, args/1, kwargs/2, timeout/1, context/1, check/1]).

-export_type([error/0]).

-type error() :: {error, {badarg, string()}}.

%% @doc A module, function, method or attribute name (`What' says which, for the
%% message): atoms and binaries as they are, strings as UTF-8 binaries; never
%% with a NUL byte.
-spec name(string(), term()) -> atom() | binary() | error().
name(What, N) ->
    case py_protocol:name(N) of
        {error, badarg} -> badarg(What ++ " name must be an atom, binary or string");
        Name ->
            case has_nul(Name) of
                false -> Name;
                true -> badarg(What ++ " name must not contain a NUL byte")
            end
    end.

%% @doc Python source as a UTF-8 binary; never with a NUL byte (Python would
%% stop reading there).
-spec code(term()) -> binary() | error().
code(C) ->
    case py_protocol:code(C) of
        {error, badarg} -> badarg("code must be a binary, string or iolist");
        Bin -> no_nul("code", Bin)
    end.

%% @doc A proper list of arguments.
-spec args(term()) -> list() | error().
args(A) when is_list(A) ->
    try length(A) of
        _ -> A
    catch
        error:badarg -> badarg("arguments must be a proper list")
    end;
args(_) -> badarg("arguments must be a list").

%% @doc A map of keyword arguments or locals (`What' says which).
-spec kwargs(string(), term()) -> map() | error().
kwargs(_, M) when is_map(M) -> M;
kwargs(What, _) -> badarg(What ++ " must be a map").

%% @doc A timeout: milliseconds or `infinity'.
-spec timeout(term()) -> timeout() | error().
timeout(infinity) -> infinity;
timeout(T) when is_integer(T), T >= 0 -> T;
timeout(_) -> badarg("timeout must be a non-negative integer (milliseconds) or infinity").

%% @doc A context: a pid, which on this node must be a live pyport context.
-spec context(term()) -> pid() | {error, {badarg, string()} | {context_died, noproc}}.
context(Ctx) when is_pid(Ctx), node(Ctx) =/= node() ->
    Ctx;
context(Ctx) when is_pid(Ctx) ->
    case py_inflight:handle(Ctx) of
        undefined ->
            case is_process_alive(Ctx) of
                true -> badarg("not a pyport context");
                false -> {error, {context_died, noproc}}
            end;
        _ ->
            Ctx
    end;
context(_) ->
    badarg("a context must be a pid").

%% @doc The results of several checks: `{ok, Values}' in order, or the first error.
-spec check([term()]) -> {ok, [term()]} | {error, term()}.
check(Results) ->
    case [E || {error, _} = E <- Results] of
        [] -> {ok, Results};
        [First | _] -> First
    end.

badarg(Why) -> {error, {badarg, Why}}.

%% Names are short: a scan costs less than setting up binary:match/2.
has_nul(Name) when is_atom(Name) -> has_nul(atom_to_binary(Name, utf8));
has_nul(<<0, _/binary>>) -> true;
has_nul(<<_, Rest/binary>>) -> has_nul(Rest);
has_nul(<<>>) -> false.

no_nul(What, Bin) ->
    case binary:match(Bin, <<0>>) of
        nomatch -> Bin;
        _ -> badarg(What ++ " must not contain a NUL byte")
    end.
