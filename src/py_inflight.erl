%% @private
%% @doc The in-flight table of one context: which requests its OS process owes an
%% answer, and how to reach that OS process. This module is the only one that
%% knows the table's rows.
%%
%% The context's server process owns the table; callers on the same node read and
%% write it directly (their request is recorded here before they write it to the
%% port themselves). Two facts about the OS process are kept apart:
%% `live' (a port to write to: callback replies, releases, cancels, credit) and
%% `open' (new requests may be written straight to it). A graceful restart or a
%% timed-out request closes the gate while the OS process stays live.
%%
%% Exactly one party takes an entry (`take/2'): the answer, the death sweep, a
%% cancel, or the writer whose write failed. A small heir process inherits the
%% table if the server dies without cleaning up (`exit(Ctx, kill)'): it ends the
%% streams of that context with `{error, {context_died, Reason}}' and deletes
%% the table, so nothing leaks and no stream owner waits forever.
-module(py_inflight).

-export([new/2, handle/1, forget/1, budget/1, limits/1,
         set_port/4, live_port/1, open_port/1, generation/1,
         add/5, take/2, lookup/2, count/1, ids_of/2, take_all/1, admit/2, write/2,
         writer/1]).

-export_type([handle/0, reply_to/0, port_state/0]).

-record(h, {tab :: ets:tid(),
            budget :: py_term:budget(),
            max_queue :: pos_integer(),
            max_frame :: pos_integer(),
            writer :: py_port_writer:writer()}).

-opaque handle() :: #h{}.

%% Where an answer goes: a caller's alias, or the owner of a stream.
-type reply_to() :: reference() | {stream, pid(), reference(), pos_integer()}.
%% The OS process as writers see it.
-type port_state() :: {port(), Gen :: non_neg_integer()} | none.

%% The row that describes the OS process: {?PORT_ROW, Port | none, Gen, Open,
%% OpenPort}, OpenPort being Port while new requests may be written to it, else
%% `none' (what a request reads, in one lookup_element).
-define(PORT_ROW, '$port').
%% After its context died, how long the heir waits for the table (it comes
%% unless the table was deleted).
-define(HEIR_WAIT_MS, 5000).
%% Queue limits of `infinity' are a number no table reaches.
-define(UNLIMITED, 1 bsl 60).

%% @doc Creates the table of the calling process (a context's server) and its
%% heir, and publishes the handle for callers of `Ctx' (= `self()').
%% `Opts': `max_queue', `max_frame', `max_atoms', and `ask_flush' (see
%% py_port_writer:new/2).
-spec new(pid(), map()) -> handle().
new(Ctx, Opts = #{max_queue := MaxQueue, max_frame := MaxFrame, max_atoms := MaxAtoms}) ->
    Ctx = self(),
    Heir = spawn(fun() -> heir(Ctx) end),
    Tab = ets:new(py_inflight, [set, public, {write_concurrency, true},
                                {read_concurrency, true}, {heir, Heir, Ctx}]),
    true = ets:insert(Tab, {?PORT_ROW, none, 0, false, none}),
    H = #h{tab = Tab, budget = py_term:new_budget(MaxAtoms),
           max_queue = case MaxQueue of infinity -> ?UNLIMITED; N -> N end,
           max_frame = MaxFrame,
           writer = py_port_writer:new(MaxFrame, maps:get(ask_flush, Opts))},
    persistent_term:put({?MODULE, Ctx}, H),
    H.

%% @doc The handle of a context on this node, or `undefined' (not a context, or
%% not on this node).
-spec handle(pid()) -> handle() | undefined.
handle(Ctx) -> persistent_term:get({?MODULE, Ctx}, undefined).

%% @doc Unpublishes the handle (the context is going away). The table itself
%% goes to the heir when its owner exits.
-spec forget(pid()) -> ok.
forget(Ctx) ->
    _ = persistent_term:erase({?MODULE, Ctx}),
    ok.

%% @doc The context's atom budget (see py_term).
-spec budget(handle()) -> py_term:budget().
budget(#h{budget = B}) -> B.

%% @doc `{MaxQueue, MaxFrame}' of the context.
-spec limits(handle()) -> {pos_integer(), pos_integer()}.
limits(#h{max_queue = Q, max_frame = F}) -> {Q, F}.

%% @doc Records the OS process: its port (`none' when there is none), its
%% generation, and whether new requests may be written to it.
-spec set_port(handle(), port() | none, non_neg_integer(), boolean()) -> ok.
set_port(#h{tab = Tab}, Port, Gen, Open) ->
    IsOpen = Open andalso is_port(Port),
    OpenPort = case IsOpen of true -> Port; false -> none end,
    true = ets:insert(Tab, {?PORT_ROW, Port, Gen, IsOpen, OpenPort}),
    ok.

%% @doc The OS process, if one is alive (frames other than new requests may be
%% written to it).
-spec live_port(handle()) -> port_state().
live_port(#h{tab = Tab}) ->
    case ets:lookup(Tab, ?PORT_ROW) of
        [{_, Port, Gen, _, _}] when is_port(Port) -> {Port, Gen};
        _ -> none
    end.

%% @doc The port if new requests may be written to it now, else `none'.
-spec open_port(handle()) -> port() | none.
open_port(#h{tab = Tab}) ->
    ets:lookup_element(Tab, ?PORT_ROW, 5).

%% @doc The generation of the OS process now recorded (each new OS process of a
%% context has the next one).
-spec generation(handle()) -> non_neg_integer().
generation(#h{tab = Tab}) ->
    ets:lookup_element(Tab, ?PORT_ROW, 3).

%% @doc Records request `Id'; its answer goes to `Reply'; `EnvPid' owns the
%% environment it runs in; Python's output during it goes to `GL'.
-spec add(handle(), pos_integer(), reply_to(), pid(), pid()) -> ok.
add(#h{tab = Tab}, Id, Reply, EnvPid, GL) ->
    true = ets:insert(Tab, {Id, Reply, EnvPid, GL}),
    ok.

%% @doc Takes request `Id' (whoever gets `{ok, ...}' owns its one answer).
-spec take(handle(), pos_integer()) -> {ok, reply_to(), pid(), pid()} | error.
take(#h{tab = Tab}, Id) ->
    case ets:take(Tab, Id) of
        [{_, Reply, EnvPid, GL}] -> {ok, Reply, EnvPid, GL};
        [] -> error
    end.

%% @doc Request `Id', if still in flight.
-spec lookup(handle(), pos_integer()) -> {ok, reply_to(), pid(), pid()} | error.
lookup(#h{tab = Tab}, Id) ->
    case ets:lookup(Tab, Id) of
        [{_, Reply, EnvPid, GL}] -> {ok, Reply, EnvPid, GL};
        [] -> error
    end.

%% @doc Requests in flight.
-spec count(handle()) -> non_neg_integer().
count(#h{tab = Tab}) ->
    case ets:info(Tab, size) of
        undefined -> error(badarg);  % the table is gone, as for any other use of it
        Size -> Size - 1
    end.

%% @doc The requests in flight in the environment of `EnvPid'.
-spec ids_of(handle(), pid()) -> [pos_integer()].
ids_of(#h{tab = Tab}, EnvPid) ->
    ets:select(Tab, [{{'$1', '_', EnvPid, '_'}, [{is_integer, '$1'}], ['$1']}]).

%% @doc Takes every request in flight (the OS process died).
-spec take_all(handle()) -> [{pos_integer(), reply_to()}].
take_all(#h{tab = Tab}) -> take_all_of(Tab).

take_all_of(Tab) ->
    Ids = ets:select(Tab, [{{'$1', '_', '_', '_'}, [{is_integer, '$1'}], ['$1']}]),
    [{Id, Reply} || Id <- Ids, {_, Reply, _, _} <- ets:take(Tab, Id)].

%% @doc Whether a request frame of `Size' bytes may be sent now, with the
%% number of requests in flight before it.
-spec admit(handle(), non_neg_integer()) ->
    {ok, non_neg_integer()}
    | {error, {too_large, non_neg_integer(), pos_integer()}
              | {overloaded, non_neg_integer(), pos_integer()}}.
admit(H = #h{max_frame = MaxFrame, max_queue = MaxQueue}, Size) ->
    InFlight = count(H),
    if
        Size > MaxFrame -> {error, {too_large, Size, MaxFrame}};
        InFlight >= MaxQueue -> {error, {overloaded, InFlight, MaxQueue}};
        true -> {ok, InFlight}
    end.

%% @doc Writes a frame that answers or feeds work already running (a callback
%% reply, credit) to the live OS process; `closed' if there is none (or it
%% closed under the writer). Such a frame may pass request frames queued for a
%% batch (py_port_writer): they are other processes' new requests.
-spec write(handle(), iodata()) -> ok | closed.
write(H, Frame) ->
    case live_port(H) of
        {Port, _} ->
            try erlang:port_command(Port, Frame) of
                true -> ok
            catch
                error:badarg -> closed
            end;
        none ->
            closed
    end.

%% @doc The context's port writer (py_port_writer): the queue of request frames
%% waiting for a batch.
-spec writer(handle()) -> py_port_writer:writer().
writer(#h{writer = W}) -> W.

%%% ===========================================================================
%%% The heir
%%% ===========================================================================

%% Waits for the context to die and its table to arrive (both are signals from
%% the dying process; either may come first), then ends what is in flight and
%% deletes the table.
heir(Ctx) ->
    Mref = erlang:monitor(process, Ctx),
    heir(Ctx, Mref, undefined, undefined).

heir(Ctx, _Mref, Reason, Tab) when Reason =/= undefined, Tab =/= undefined ->
    _ = persistent_term:erase({?MODULE, Ctx}),
    [py_reply:answer(Reply, died, Reason) || {_, Reply} <- take_all_of(Tab)],
    ets:delete(Tab);
heir(Ctx, Mref, Reason, Tab) ->
    receive
        {'DOWN', Mref, process, _, Why} -> heir(Ctx, Mref, Why, Tab);
        {'ETS-TRANSFER', T, _, Ctx} -> heir(Ctx, Mref, Reason, T)
    after heir_wait(Reason) ->
        ok
    end.

heir_wait(undefined) -> infinity;
heir_wait(_) -> ?HEIR_WAIT_MS.
