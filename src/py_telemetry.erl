%% @private
%% @doc Events through the `telemetry' library when it is loaded (an optional
%% dependency: pyport never starts or requires it). Every event name starts with
%% `pyport'; docs/operations.md lists them with their measurements and metadata.
%%
%% `telemetry' is loaded once anything has attached a handler (attaching calls
%% it), so when no module `telemetry' is loaded there is nobody to tell, and an
%% event costs one `erlang:function_exported/3'.
-module(py_telemetry).

-export([enabled/0, execute/3, span/3, overload/3]).

-export_type([event/0]).

-type event() :: [atom(), ...].

%% @doc True when the `telemetry' module is loaded (so handlers may be attached).
-spec enabled() -> boolean().
enabled() ->
    erlang:function_exported(mod(), execute, 3).

%% @doc Emits `[pyport | Event]' with `Measurements' and `Metadata', if telemetry
%% is loaded. A failing telemetry never fails the caller.
-spec execute(event(), #{atom() => number()}, map()) -> ok.
execute(Event, Measurements, Metadata) ->
    case enabled() of
        true -> emit(Event, Measurements, Metadata);
        false -> ok
    end.

%% @doc Runs `Fun' as the span `[pyport | Event]': a `start' event (measurements
%% `monotonic_time', `system_time'), then `stop' (`duration', `monotonic_time';
%% metadata also `result' (`ok' | `error') and, for an error, `error' with the
%% reason) or, if `Fun' raises, `exception' (metadata also `kind', `reason',
%% `stacktrace') and the exception goes on. Durations are in native time units,
%% as telemetry's own spans. An answer `{error, {overloaded, Current, Max}}' also
%% emits `[pyport, overload]' (`queue' => the context's request queue).
-spec span(event(), map(), fun(() -> Result)) -> Result.
span(Event, Metadata, Fun) ->
    case enabled() of
        false ->
            Fun();
        true ->
            Meta = Metadata#{telemetry_span_context => make_ref()},
            Start = erlang:monotonic_time(),
            emit(Event ++ [start], #{monotonic_time => Start,
                                     system_time => erlang:system_time()}, Meta),
            try Fun() of
                Result ->
                    Stop = erlang:monotonic_time(),
                    emit(Event ++ [stop], #{duration => Stop - Start, monotonic_time => Stop},
                         maps:merge(Meta, result_meta(Result))),
                    case Result of
                        {error, {overloaded, Current, Max}} ->
                            overload(queue, #{current => Current, max => Max}, Metadata);
                        _ ->
                            ok
                    end,
                    Result
            catch
                Kind:Reason:Stack ->
                    Stop = erlang:monotonic_time(),
                    emit(Event ++ [exception], #{duration => Stop - Start, monotonic_time => Stop},
                         Meta#{kind => Kind, reason => Reason, stacktrace => Stack}),
                    erlang:raise(Kind, Reason, Stack)
            end
    end.

%% @doc Emits `[pyport, overload]': something was refused or dropped because a
%% limit was reached. `Kind' says which (`queue', `semaphore', `output').
-spec overload(atom(), #{atom() => number()}, map()) -> ok.
overload(Kind, Measurements, Metadata) ->
    execute([overload], Measurements, Metadata#{kind => Kind}).

result_meta({error, Reason}) -> #{result => error, error => Reason};
result_meta(_) -> #{result => ok}.

emit(Event, Measurements, Metadata) ->
    Mod = mod(),
    try Mod:execute([pyport | Event], Measurements, Metadata) of
        _ -> ok
    catch
        _:_ -> ok
    end.

%% The library's module, named at run time: pyport does not depend on it.
mod() ->
    persistent_term:get({?MODULE, module}, telemetry).
