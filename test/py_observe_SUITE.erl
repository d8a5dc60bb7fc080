%% Observability: contexts and pools are named so observer and reports say which
%% context a process is; every log event of a context carries the `pyport'
%% metadata (context name, pool, index, OS pid); and, when the `telemetry' module
%% is loaded, pyport emits the events docs/operations.md lists (a stand-in for
%% the library, py_observe_SUITE_data/telemetry.erl, records them here).
-module(py_observe_SUITE).

-import(pyport_test, [start_ctx/1, stop_ctx/1, spawn_caller/1, wait_until/2]).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([pool_contexts_named/0, pool_contexts_named/1,
         named_context_shows_its_name/0, named_context_shows_its_name/1,
         death_logged_with_metadata/0, death_logged_with_metadata/1,
         python_logging_has_metadata/0, python_logging_has_metadata/1,
         no_telemetry_no_events/0, no_telemetry_no_events/1,
         call_events/0, call_events/1,
         span_exception/0, span_exception/1,
         context_lifecycle_events/0, context_lifecycle_events/1,
         overload_queue_event/0, overload_queue_event/1,
         overload_output_event/0, overload_output_event/1,
         overload_semaphore_event/0, overload_semaphore_event/1,
         operations_handler_example/0, operations_handler_example/1]).
%% logger handler callback
-export([log/2]).

-define(EVENTUALLY_MS, 20000).
-define(CALL_EVENTS, [[pyport, call, start], [pyport, call, stop],
                      [pyport, call, exception]]).
-define(CONTEXT_EVENTS, [[pyport, context, start], [pyport, context, exit],
                         [pyport, context, restart]]).

suite() -> [{timetrap, {minutes, 3}}].

all() ->
    [pool_contexts_named, named_context_shows_its_name, death_logged_with_metadata,
     python_logging_has_metadata, no_telemetry_no_events, call_events, span_exception,
     context_lifecycle_events, overload_queue_event, overload_output_event,
     overload_semaphore_event,
     operations_handler_example].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

%% Every case but no_telemetry_no_events runs with the stand-in loaded; it is
%% unloaded after each case, so no other suite ever sees it.
init_per_testcase(no_telemetry_no_events, Config) ->
    Config;
init_per_testcase(_Case, Config) ->
    Src = filename:join(?config(data_dir, Config), "telemetry.erl"),
    {ok, telemetry, Beam} = compile:file(Src, [binary, report]),
    {module, telemetry} = code:load_binary(telemetry, Src, Beam),
    {ok, Store} = telemetry:start_store(),
    [{telemetry_store, Store} | Config].

end_per_testcase(_Case, Config) ->
    _ = logger:remove_handler(?MODULE),
    _ = py_context_router:stop_pool(obs),
    case ?config(telemetry_store, Config) of
        undefined -> ok;
        Store -> Store ! stop
    end,
    _ = code:purge(telemetry),
    _ = code:delete(telemetry),
    _ = code:purge(telemetry),
    ok.

%%% ===========================================================================
%%% Names
%%% ===========================================================================

pool_contexts_named() ->
    [{doc, "Each context of a pool is registered as py_pool_<Pool>_<Index> and the pool's "
      "supervisor as py_pool_<Pool>_sup, whose children they are; after a crash of its "
      "Erlang server the restarted context has the same name."}].
pool_contexts_named(_Config) ->
    {ok, [C1, C2]} = py_context_router:start_pool(obs, 2),
    ?assertEqual({registered_name, py_pool_obs_1}, process_info(C1, registered_name)),
    ?assertEqual({registered_name, py_pool_obs_2}, process_info(C2, registered_name)),
    Sup = whereis(py_pool_obs_sup),
    ?assert(is_pid(Sup)),
    Children = lists:sort([Pid || {_, Pid, worker, _} <- supervisor:which_children(Sup)]),
    ?assertEqual(lists:sort([C1, C2]), Children),
    [?assertEqual(C, whereis(list_to_atom("py_pool_default_" ++ integer_to_list(I))))
     || {I, C} <- lists:zip(lists:seq(1, length(py_context_router:contexts(default))),
                            py_context_router:contexts(default))],
    exit(C2, kill),
    wait_until(fun() ->
                       case whereis(py_pool_obs_2) of
                           Pid when is_pid(Pid), Pid =/= C2 -> true;
                           _ -> false
                       end
               end, ?EVENTUALLY_MS),
    %% The router learns the new pid once the supervisor's start returns.
    wait_until(fun() ->
                       lists:sort(py_context_router:contexts(obs)) =:=
                           lists:sort([whereis(py_pool_obs_1), whereis(py_pool_obs_2)])
               end, ?EVENTUALLY_MS).

named_context_shows_its_name() ->
    [{doc, "A context started with `name' is registered under it, and its name is in "
      "its info and its process label."}].
named_context_shows_its_name(_Config) ->
    Ctx = start_ctx(#{name => obs_named}),
    ?assertEqual(Ctx, whereis(obs_named)),
    #{name := Name} = py_context:info(Ctx),
    ?assertEqual(<<"obs_named">>, Name),
    {dictionary, Dict} = process_info(Ctx, dictionary),
    ?assertEqual({py_context, <<"obs_named">>}, proplists:get_value('$process_label', Dict)),
    stop_ctx(Ctx),
    ?assertEqual(undefined, whereis(obs_named)).

%%% ===========================================================================
%%% Logger metadata
%%% ===========================================================================

death_logged_with_metadata() ->
    [{doc, "When a pool context's OS process dies, the warning names the context and "
      "carries the metadata pyport => #{context, pool, index, os_pid} of the dead OS "
      "process."}].
death_logged_with_metadata(_Config) ->
    {ok, [_, C2]} = py_context_router:start_pool(obs, 2),
    #{os_pid := OsPid, name := Name} = py_context:info(C2),
    ?assertEqual(<<"obs:2">>, Name),
    capture_logs(),
    ok = py_context:kill(C2),
    {Text, Meta} = wait_log(fun(_, #{pyport := #{os_pid := P}}) -> P =:= OsPid;
                               (_, _) -> false
                            end),
    ?assertNotEqual(nomatch, string:find(Text, "obs:2")),
    ?assertMatch(#{pyport := #{context := <<"obs:2">>, pool := obs, index := 2,
                               os_pid := OsPid}}, Meta),
    %% Events after the restart carry the new OS pid.
    wait_until(fun() -> #{os_pid := P} = py_context:info(C2), is_integer(P) andalso P =/= OsPid
               end, ?EVENTUALLY_MS),
    #{os_pid := NewPid} = py_context:info(C2),
    {dictionary, Dict} = process_info(C2, dictionary),
    #{pyport := #{os_pid := NewPid}} = proplists:get_value('$logger_metadata$', Dict).

python_logging_has_metadata() ->
    [{doc, "A Python logging record reaches logger with the pyport metadata of its "
      "context (pool, index, current OS pid)."}].
python_logging_has_metadata(_Config) ->
    {ok, [C1, _]} = py_context_router:start_pool(obs, 2),
    #{os_pid := OsPid} = py_context:info(C1),
    {ok, _} = py_context:setup(C1, #{logging => 30}),
    capture_logs(),
    ok = py:exec(C1, <<"import logging\nlogging.getLogger('obs.test').warning('observed')">>),
    {_, Meta} = wait_log(fun(T, _) -> string:find(T, "observed") =/= nomatch end),
    ?assertMatch(#{python_logger := _, pyport := #{context := <<"obs:1">>, pool := obs,
                                                    index := 1, os_pid := OsPid}}, Meta).

%%% ===========================================================================
%%% Telemetry
%%% ===========================================================================

no_telemetry_no_events() ->
    [{doc, "Without a `telemetry' module, calls work as ever and pyport emits nothing "
      "(py_telemetry:enabled/0 is false; pyport does not load the module)."}].
no_telemetry_no_events(_Config) ->
    ?assertEqual(false, code:is_loaded(telemetry)),
    ?assertEqual(false, py_telemetry:enabled()),
    ?assertEqual({ok, 4.0}, py:call(math, sqrt, [16])),
    ?assertEqual({error, {"ZeroDivisionError", "division by zero"}}, py:eval(<<"1/0">>)),
    ?assertEqual(false, code:is_loaded(telemetry)).

call_events() ->
    [{doc, "A call emits [pyport, call, start] (monotonic_time, system_time; op, module, "
      "function, context) and [pyport, call, stop] (duration >= the time Python took; "
      "result ok), sharing one telemetry_span_context (module and function as the caller gave them); a Python exception is a stop with "
      "result error and the error; eval and exec say their op."}].
call_events(_Config) ->
    attach(obs_calls, ?CALL_EVENTS),
    Ctx = py:context(1),
    {ok, _} = py:call(Ctx, time, sleep, [0.05]),
    [{[pyport, call, start], M1, Start}, {[pyport, call, stop], M2, Stop}] = events(2),
    ?assertMatch(#{monotonic_time := _, system_time := _}, M1),
    ?assertMatch(#{op := call, module := time, function := sleep,
                   context := Ctx, telemetry_span_context := _}, Start),
    ?assertEqual(maps:get(telemetry_span_context, Start),
                 maps:get(telemetry_span_context, Stop)),
    ?assertMatch(#{result := ok, op := call, context := Ctx}, Stop),
    ?assert(erlang:convert_time_unit(maps:get(duration, M2), native, millisecond) >= 50),
    {error, _} = py:eval(Ctx, <<"1/0">>),
    [{[pyport, call, start], _, #{op := eval}},
     {[pyport, call, stop], _, #{op := eval, result := error,
                                 error := {"ZeroDivisionError", _}}}] = events(2),
    ok = py:exec(Ctx, <<"x = 1">>),
    [{[pyport, call, start], _, #{op := exec}},
     {[pyport, call, stop], _, #{op := exec, result := ok}}] = events(2),
    %% A routed call emits the same pair.
    {ok, 4.0} = py:call(math, sqrt, [16]),
    [{[pyport, call, start], _, #{module := math, function := sqrt}},
     {[pyport, call, stop], _, #{result := ok}}] = events(2),
    ?assertEqual([], events_now()).

span_exception() ->
    [{doc, "A span whose work raises emits [pyport, call, exception] with kind, reason and "
      "stacktrace, and the exception reaches the caller unchanged."}].
span_exception(_Config) ->
    attach(obs_exc, ?CALL_EVENTS),
    ?assertError(boom, py_telemetry:span([call], #{op => call}, fun() -> error(boom) end)),
    [{[pyport, call, start], _, _},
     {[pyport, call, exception], M, #{kind := error, reason := boom, stacktrace := [_ | _],
                                      op := call}}] = events(2),
    ?assertMatch(#{duration := _, monotonic_time := _}, M).

context_lifecycle_events() ->
    [{doc, "A context emits [pyport, context, start] when its first OS process is ready "
      "(duration; name, OS pid); a kill emits [pyport, context, exit] (uptime; reason "
      "{killed, requested}) then [pyport, context, restart] (restarts 1, the new OS pid); "
      "restart/1 emits exit and restart with reason {restart, requested}."}].
context_lifecycle_events(_Config) ->
    attach(obs_ctx, ?CONTEXT_EVENTS),
    Ctx = start_ctx(#{name => obs_lifecycle}),
    #{os_pid := P1} = py_context:info(Ctx),
    [{[pyport, context, start], #{duration := D}, Start}] = events(1),
    ?assert(is_integer(D) andalso D > 0),
    ?assertMatch(#{context := Ctx, name := <<"obs_lifecycle">>, os_pid := P1}, Start),
    ok = py_context:kill(Ctx),
    [{[pyport, context, exit], #{uptime := _}, Exit},
     {[pyport, context, restart], #{restarts := 1, duration := _}, Restart}] = events(2),
    ?assertMatch(#{context := Ctx, os_pid := P1, reason := {killed, requested}}, Exit),
    #{os_pid := P2} = py_context:info(Ctx),
    ?assertNotEqual(P1, P2),
    ?assertMatch(#{context := Ctx, os_pid := P2, reason := {killed, requested}}, Restart),
    ok = py_context:restart(Ctx),
    [{[pyport, context, exit], _, #{reason := {restart, requested}, os_pid := P2}},
     {[pyport, context, restart], #{restarts := 2}, #{reason := {restart, requested}}}] =
        events(2),
    stop_ctx(Ctx).

overload_queue_event() ->
    [{doc, "A call refused by a full context (max_queue) answers {error, {overloaded, N, "
      "Max}} and emits [pyport, overload] (current, max; kind queue, the context)."}].
overload_queue_event(_Config) ->
    attach(obs_overload, [[pyport, overload]]),
    Ctx = start_ctx(#{max_queue => 1}),
    Busy = spawn_caller(fun() -> py:call(Ctx, time, sleep, [2]) end),
    wait_until(fun() -> maps:get(current, py_context:info(Ctx), idle) =/= idle end,
               ?EVENTUALLY_MS),
    {error, {overloaded, 1, 1}} = py:call(Ctx, math, sqrt, [4]),
    [{[pyport, overload], #{current := 1, max := 1}, #{kind := queue, context := Ctx}}] =
        events(1),
    {ok, _} = pyport_test:answer(Busy, ?EVENTUALLY_MS),
    stop_ctx(Ctx).

overload_output_event() ->
    [{doc, "Output over a context's log_rate is dropped, and each report of the drops "
      "emits [pyport, overload] (dropped; kind output, the context and its name)."}].
overload_output_event(_Config) ->
    attach(obs_output, [[pyport, overload]]),
    Ctx = start_ctx(#{name => obs_noisy, log_rate => 1}),
    ok = py:exec(Ctx, <<"import threading\n"
                        "t = threading.Thread(target=lambda: [print(i) for i in range(50)])\n"
                        "t.start(); t.join()">>),
    [{[pyport, overload], #{dropped := N}, Meta}] = events(1),
    ?assert(N > 0),
    ?assertMatch(#{kind := output, context := Ctx, name := <<"obs_noisy">>}, Meta),
    #{output_dropped := Dropped} = py_context:info(Ctx),
    ?assert(Dropped >= N),
    stop_ctx(Ctx).

overload_semaphore_event() ->
    [{doc, "A routed call that finds no free slot of the node-wide limit (py_semaphore) "
      "within its timeout answers {error, {overloaded, 1, 1}} and emits [pyport, overload] "
      "(current, max; kind semaphore, the pool)."}].
overload_semaphore_event(_Config) ->
    attach(obs_semaphore, [[pyport, overload]]),
    Max = py_semaphore:max_concurrent(),
    ok = py_semaphore:set_max_concurrent(1),
    try
        Busy = spawn_caller(fun() -> py:call(time, sleep, [1.5]) end),
        wait_until(fun() -> py_semaphore:current() =:= 1 end, ?EVENTUALLY_MS),
        {error, {overloaded, 1, 1}} = py:call(math, sqrt, [4], #{}, 200),
        [{[pyport, overload], #{current := 1, max := 1},
          #{kind := semaphore, pool := default, context := Ctx}}] = events(1),
        ?assert(is_pid(Ctx)),
        {ok, _} = pyport_test:answer(Busy, ?EVENTUALLY_MS)
    after
        ok = py_semaphore:set_max_concurrent(Max)
    end.

operations_handler_example() ->
    [{doc, "docs/operations.md, Telemetry events: the handler example, as written, logs a "
      "slow call, a restart and an overload."}].
operations_handler_example(_Config) ->
    ok = telemetry:attach_many(
           <<"pyport-log">>,
           [[pyport, call, stop], [pyport, context, restart], [pyport, overload]],
           fun([pyport, call, stop], #{duration := D}, #{op := Op} = Meta, #{slow_ms := Slow}) ->
                   Ms = erlang:convert_time_unit(D, native, millisecond),
                   Ms >= Slow andalso
                       logger:warning("slow python ~p (~0p) took ~b ms",
                                      [Op, maps:get(function, Meta, none), Ms]);
              ([pyport, context, restart], #{restarts := N}, #{name := Name, reason := Why}, _) ->
                   logger:warning("python context ~ts restarted (~b): ~0p", [Name, N, Why]);
              ([pyport, overload], Measurements, #{kind := Kind}, _) ->
                   logger:warning("python overload (~p): ~0p", [Kind, Measurements])
           end,
           #{slow_ms => 500}),
    capture_logs(),
    Ctx = start_ctx(#{name => obs_doc, max_queue => 1}),
    {ok, 4.0} = py:call(Ctx, math, sqrt, [16]),
    Busy = spawn_caller(fun() -> py:call(Ctx, time, sleep, [0.6]) end),
    wait_until(fun() -> maps:get(current, py_context:info(Ctx), idle) =/= idle end,
               ?EVENTUALLY_MS),
    {error, {overloaded, 1, 1}} = py:call(Ctx, math, sqrt, [4]),
    {ok, _} = pyport_test:answer(Busy, ?EVENTUALLY_MS),
    ok = py_context:kill(Ctx),
    Has = fun(Prefix) -> fun(T, _) -> string:prefix(T, Prefix) =/= nomatch end end,
    {_, _} = wait_log(Has("python overload (queue): ")),
    {Slow, _} = wait_log(Has("slow python call (sleep) took ")),
    {Restart, _} = wait_log(Has("python context obs_doc restarted (1): {killed,requested}")),
    ?assertEqual(nomatch, string:find(Slow, "sqrt")),
    ?assertNotEqual(nomatch, string:find(Restart, "restarted")),
    ok = telemetry:detach(<<"pyport-log">>),
    stop_ctx(Ctx).

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

attach(Id, Events) ->
    Self = self(),
    ok = telemetry:attach_many(Id, Events,
                               fun(E, M, Meta, Pid) -> Pid ! {telemetry, E, M, Meta} end, Self).

%% The next N events, in the order they came, each within the deadline.
events(0) ->
    [];
events(N) ->
    receive {telemetry, E, M, Meta} -> [{E, M, Meta} | events(N - 1)]
    after ?EVENTUALLY_MS -> ct:fail({missing_events, N})
    end.

events_now() ->
    receive {telemetry, E, M, Meta} -> [{E, M, Meta} | events_now()]
    after 100 -> []
    end.

capture_logs() ->
    ok = logger:add_handler(?MODULE, ?MODULE, #{level => all, config => #{pid => self()}}).

%% The first log event whose text and metadata satisfy Pred.
wait_log(Pred) ->
    receive
        {logged, Text, Meta} ->
            case Pred(Text, Meta) of
                true -> {Text, Meta};
                false -> wait_log(Pred)
            end
    after ?EVENTUALLY_MS -> ct:fail(no_matching_log)
    end.

%% logger handler: forwards each formatted message and its metadata.
log(#{msg := Msg, meta := Meta}, #{config := #{pid := Pid}}) ->
    Text = case Msg of
               {report, R} -> io_lib:format("~0p", [R]);
               {string, S} -> S;
               {Format, Args} -> io_lib:format(Format, Args)
           end,
    Pid ! {logged, unicode:characters_to_list(Text), Meta},
    ok.
