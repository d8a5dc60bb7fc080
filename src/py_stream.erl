%% @private
%% @doc Streaming from Python generators and async generators. A stream is one
%% request whose items come back as they are produced: the owner receives
%% `{py_stream, Ref, {data, V}}' messages, then exactly one of
%% `{py_stream, Ref, done}' or `{py_stream, Ref, {error, E}}' (also when the
%% context dies: `{error, {context_died, Reason}}'). A stream ends with its
%% owner too: the context cancels the streams of a process that dies.
%% Flow control: see py_streams.
-module(py_stream).

-export([start/5, start_eval/4, cancel/1, collect/3]).

%% Items the port may send ahead of acknowledgements.
-define(WINDOW, 16).

%% @doc Starts streaming `Module.Function(*Args, **Kwargs)' from `Ctx' to the
%% caller. `Opts': `kwargs', `window' (items ahead of acknowledgements).
-spec start(pid(), term(), term(), list(), map()) -> {ok, reference()} | {error, term()}.
start(Ctx, M, F, Args, Opts) ->
    case py_args:check([py_args:name("module", M), py_args:name("function", F),
                        py_args:args(Args), py_args:kwargs("keyword arguments",
                                                           maps:get(kwargs, Opts, #{}))]) of
        {ok, [Mod, Fun, A, Kw]} -> submit(Ctx, {call, Mod, Fun, A, Kw}, Opts);
        Error -> Error
    end.

%% @doc Starts streaming the iterable that the expression `Code' evaluates to.
-spec start_eval(pid(), iodata(), map(), map()) -> {ok, reference()} | {error, term()}.
start_eval(Ctx, Code, Locals, Opts) ->
    case py_args:check([py_args:code(Code), py_args:kwargs("locals", Locals)]) of
        {ok, [Bin, Map]} -> submit(Ctx, {eval, Bin, Map}, Opts);
        Error -> Error
    end.

submit(Ctx0, Source, Opts) ->
    case {py_args:context(Ctx0), maps:get(window, Opts, ?WINDOW)} of
        {{error, _} = Error, _} ->
            Error;
        {_, Window} when not is_integer(Window); Window < 1 ->
            {error, {badarg, "window must be a positive integer"}};
        {Ctx, Window} ->
            Ref = make_ref(),
            Id = py_protocol:new_id(),
            Parent = py_request:parent(Ctx),
            Frame = py_protocol:stream(Id, self(), Parent, Source, Window),
            ok = py_streams:insert(Ref, Ctx, Id),
            case py_request:submit(Ctx, Id, {stream, self(), Ref, Window}, self(), Frame,
                                   infinity, Parent) of
                ok ->
                    {ok, Ref};
                {error, _} = Error ->
                    ok = py_streams:delete(Ref),
                    Error
            end
    end.

%% @doc Stops a stream. When this returns, no message for `Ref' is in the
%% caller's mailbox or will arrive.
-spec cancel(reference()) -> ok.
cancel(Ref) ->
    case py_streams:take(Ref) of
        {Ctx, Id} -> catch py_context_server:stream_cancel(Ctx, Id);
        error -> ok
    end,
    flush(Ref).

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
