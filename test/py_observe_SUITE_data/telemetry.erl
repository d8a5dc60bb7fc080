%% A small stand-in for the `telemetry' library (Debian has no package of it),
%% loaded only by py_observe_SUITE: the same functions, arguments and results
%% as the library for what pyport and the suite use (attach/4, attach_many/4,
%% detach/1, execute/3, span/3, list_handlers/1). Handlers live in a public ETS
%% table owned by a process the suite keeps alive (start_store/0). As in the
%% library, a handler that raises is detached.
-module(telemetry).

-export([start_store/0, attach/4, attach_many/4, detach/1, execute/3, span/3,
         list_handlers/1]).

-define(TAB, telemetry_test_handlers).

%% Creates the handler table, owned by a process that lives until it is told to
%% stop (or its caller dies).
start_store() ->
    Parent = self(),
    Pid = spawn(fun() ->
                        Mref = erlang:monitor(process, Parent),
                        ?TAB = ets:new(?TAB, [named_table, public, bag]),
                        Parent ! {telemetry_store, self()},
                        receive
                            stop -> ok;
                            {'DOWN', Mref, _, _, _} -> ok
                        end
                end),
    receive {telemetry_store, Pid} -> {ok, Pid} end.

attach(Id, Event, Fun, Config) ->
    attach_many(Id, [Event], Fun, Config).

attach_many(Id, Events, Fun, Config) when is_function(Fun, 4) ->
    case ets:match_object(?TAB, {'_', Id, '_', '_'}) of
        [] ->
            true = ets:insert(?TAB, [{Event, Id, Fun, Config} || Event <- Events]),
            ok;
        _ ->
            {error, already_exists}
    end.

detach(Id) ->
    case ets:match_object(?TAB, {'_', Id, '_', '_'}) of
        [] -> {error, not_found};
        _ -> true = ets:match_delete(?TAB, {'_', Id, '_', '_'}), ok
    end.

list_handlers(Prefix) ->
    [#{id => Id, event_name => E, function => F, config => C}
     || {E, Id, F, C} <- ets:tab2list(?TAB), lists:prefix(Prefix, E)].

execute(Event, Measurements, Metadata) when is_map(Measurements), is_map(Metadata) ->
    [try F(Event, Measurements, Metadata, C)
     catch _:_ -> detach(Id)
     end || {_, Id, F, C} <- ets:lookup(?TAB, Event)],
    ok.

span(Prefix, StartMeta, Fun) ->
    Ctx = make_ref(),
    Start = erlang:monotonic_time(),
    execute(Prefix ++ [start], #{monotonic_time => Start, system_time => erlang:system_time()},
            StartMeta#{telemetry_span_context => Ctx}),
    try Fun() of
        {Result, StopMeta} ->
            Stop = erlang:monotonic_time(),
            execute(Prefix ++ [stop], #{duration => Stop - Start, monotonic_time => Stop},
                    StopMeta#{telemetry_span_context => Ctx}),
            Result;
        {Result, Extra, StopMeta} ->
            Stop = erlang:monotonic_time(),
            execute(Prefix ++ [stop],
                    Extra#{duration => Stop - Start, monotonic_time => Stop},
                    StopMeta#{telemetry_span_context => Ctx}),
            Result
    catch
        Kind:Reason:Stack ->
            Stop = erlang:monotonic_time(),
            execute(Prefix ++ [exception], #{duration => Stop - Start, monotonic_time => Stop},
                    StartMeta#{kind => Kind, reason => Reason, stacktrace => Stack,
                               telemetry_span_context => Ctx}),
            erlang:raise(Kind, Reason, Stack)
    end.
