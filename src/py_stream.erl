%% @doc Streaming from Python generators and async generators. A stream is one
%% request whose items come back as they are produced: the owner receives
%% `{py_stream, Ref, {data, V}}' messages, then `{py_stream, Ref, done}' or
%% `{py_stream, Ref, {error, E}}'. Flow control: the port sends at most a window
%% of items ahead of the context's acknowledgements, and the context acknowledges
%% only while the owner's mailbox holds less than a window; so a slow consumer
%% slows the generator down, and neither the port nor the mailbox grows without
%% bound.
-module(py_stream).

-export([start/5, start_eval/4, cancel/1, collect/3, table/0]).

-define(TABLE, py_streams).
%% Items the port may send ahead of acknowledgements.
-define(WINDOW, 16).

%% @doc The table of running streams (Ref -> {Ctx, Id}), owned by the router.
-spec table() -> atom().
table() -> ?TABLE.

%% @doc Starts streaming `Module.Function(*Args, **Kwargs)' from `Ctx' to the
%% caller. `Opts': `window' (items ahead of acknowledgements).
-spec start(pid(), term(), term(), list(), map()) -> {ok, reference()} | {error, term()}.
start(Ctx, M, F, Args, Opts) ->
    case {py_protocol:name(M), py_protocol:name(F)} of
        {{error, badarg}, _} -> {error, {badarg, "module name must be an atom, binary or string"}};
        {_, {error, badarg}} -> {error, {badarg, "function name must be an atom, binary or string"}};
        _ when not is_list(Args) -> {error, {badarg, "arguments must be a list"}};
        {Mod, Fun} -> submit(Ctx, {call, Mod, Fun, Args, maps:get(kwargs, Opts, #{})}, Opts)
    end.

%% @doc Starts streaming the iterable that the expression `Code' evaluates to.
-spec start_eval(pid(), iodata(), map(), map()) -> {ok, reference()} | {error, term()}.
start_eval(Ctx, Code, Locals, Opts) ->
    case {py_protocol:code(Code), py_protocol:locals(Locals)} of
        {{error, badarg}, _} -> {error, {badarg, "code must be a binary, string or iolist"}};
        {_, {error, badarg}} -> {error, {badarg, "locals must be a map"}};
        {Bin, Map} -> submit(Ctx, {eval, Bin, Map}, Opts)
    end.

submit(Ctx, Source, Opts) ->
    Ref = make_ref(),
    Id = py_request:new_id(),
    Window = maps:get(window, Opts, ?WINDOW),
    Frame = py_protocol:stream(Id, self(), py_request:parent(Ctx), Source, Window),
    true = ets:insert(?TABLE, {Ref, Ctx, Id}),
    case py_request:submit(Ctx, Id, {stream, self(), Ref, Window}, self(), Frame, infinity) of
        ok ->
            {ok, Ref};
        {error, _} = Error ->
            ets:delete(?TABLE, Ref),
            Error
    end.

%% @doc Stops a stream. When this returns, no message for `Ref' is in the
%% caller's mailbox or will arrive.
-spec cancel(reference()) -> ok.
cancel(Ref) ->
    case ets:take(?TABLE, Ref) of
        [{_, Ctx, Id}] ->
            catch py_context:stream_cancel(Ctx, Id),
            flush(Ref);
        [] ->
            flush(Ref)
    end.

flush(Ref) ->
    receive
        {py_stream, Ref, _} -> flush(Ref)
    after 0 ->
        ok
    end.

%% @doc Collects a whole stream into a list; `Timeout' bounds the wait for each
%% item. On timeout the stream is cancelled.
-spec collect({ok, reference()} | {error, term()}, timeout(), [term()]) ->
    {ok, [term()]} | {error, term()}.
collect({error, _} = Error, _, _) ->
    Error;
collect({ok, Ref}, Timeout, Acc) ->
    receive
        {py_stream, Ref, {data, V}} -> collect({ok, Ref}, Timeout, [V | Acc]);
        {py_stream, Ref, done} -> {ok, lists:reverse(Acc)};
        {py_stream, Ref, {error, E}} -> {error, E}
    after Timeout ->
        cancel(Ref),
        {error, timeout}
    end.
