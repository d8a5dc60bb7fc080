%% SharedDict (py:shared_dict_*/N and Python's erlang.SharedDict): one dictionary
%% seen by Erlang processes and by every context, values copied in and out,
%% atomic operations under concurrency, destroy, and the lifetime rule (alive
%% while a process that created or used it is alive).
-module(py_shareddict_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([erlang_api/0, erlang_api/1,
         python_api/0, python_api/1,
         across_contexts/0, across_contexts/1,
         concurrent_writers/0, concurrent_writers/1,
         destroy_everywhere/0, destroy_everywhere/1,
         lifetime_follows_users/0, lifetime_follows_users/1]).

%% Generous bound for a whole case.
-define(CASE_TIMEOUT, {minutes, 2}).
%% How long a helper process may take to report back.
-define(HELPER_TIMEOUT, 60000).
%% How long the owner's exit may take to reach py_shared_dict.
-define(EVENTUALLY_MS, 5000).
%% concurrent_writers: processes x increments each.
-define(WRITERS, 8).
-define(INCRS, 200).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [erlang_api, python_api, across_contexts, concurrent_writers, destroy_everywhere,
     lifetime_follows_users].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

erlang_api() ->
    [{doc, "new/get/set/del/keys from Erlang: default values, any term as a value, "
      "stored values are copies, keys as binaries."}].
erlang_api(_Config) ->
    {ok, SD} = py:shared_dict_new(),
    ?assert(is_reference(SD)),
    ?assertEqual([], py:shared_dict_keys(SD)),
    ?assertEqual(undefined, py:shared_dict_get(SD, <<"k">>)),
    ?assertEqual(dflt, py:shared_dict_get(SD, <<"k">>, dflt)),
    Value = #{list => [1, 2.5, <<"three">>], tuple => {a, self()}},
    ok = py:shared_dict_set(SD, <<"k">>, Value),
    ok = py:shared_dict_set(SD, <<"n">>, 42),
    ?assertEqual(Value, py:shared_dict_get(SD, <<"k">>)),
    ?assertEqual([<<"k">>, <<"n">>], lists:sort(py:shared_dict_keys(SD))),
    ok = py:shared_dict_del(SD, <<"k">>),
    ok = py:shared_dict_del(SD, <<"absent">>),
    ?assertEqual([<<"n">>], py:shared_dict_keys(SD)),
    {ok, Other} = py:shared_dict_new(),
    ?assertEqual([], py:shared_dict_keys(Other)),
    ok.

python_api() ->
    [{doc, "erlang.SharedDict(handle) in Python: [] raises KeyError when absent, get "
      "with a default, set, in, len, keys, del; what Python stores Erlang reads."}].
python_api(_Config) ->
    {ok, SD} = py:shared_dict_new(),
    ok = py:shared_dict_set(SD, <<"config">>, #{port => 8080}),
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"
def use(h):
    sd = erlang.SharedDict(h)
    port = sd['config']['port']
    try:
        sd['missing']
        missing = 'no KeyError'
    except KeyError:
        missing = 'KeyError'
    sd['from_python'] = {'value': 42, 'items': [1, 2]}
    out = (port, missing, sd.get('missing', 'dflt'), 'config' in sd, 'nope' in sd,
           len(sd), sorted(sd.keys()))
    del sd['config']
    return out
">>),
    ?assertEqual({ok, {8080, <<"KeyError">>, <<"dflt">>, true, false, 2,
                       [<<"config">>, <<"from_python">>]}},
                 py:call(Ctx, '__main__', use, [SD])),
    ?assertEqual(#{<<"value">> => 42, <<"items">> => [1, 2]},
                 py:shared_dict_get(SD, <<"from_python">>)),
    ?assertEqual(undefined, py:shared_dict_get(SD, <<"config">>)),
    ?assertMatch({error, {"KeyError", _}},
                 py:eval(Ctx, <<"erlang.SharedDict(h).__delitem__('config')">>, #{h => SD})),
    ok.

across_contexts() ->
    [{doc, "A value set in one context (its own OS process) is read in another and "
      "in Erlang: the dictionary is one, not a copy per interpreter."}].
across_contexts(_Config) ->
    {ok, SD} = py:shared_dict_new(),
    [C1, C2 | _] = py_context_router:contexts(),
    ?assertNotEqual(os_pid(C1), os_pid(C2)),
    {ok, none} = py:eval(C1, <<"erlang.SharedDict(h).__setitem__('x', [os, 1])">>,
                         #{h => SD, os => os_pid(C1)}),
    ?assertEqual({ok, [os_pid(C1), 1]}, py:eval(C2, <<"erlang.SharedDict(h)['x']">>, #{h => SD})),
    ?assertEqual([os_pid(C1), 1], py:shared_dict_get(SD, <<"x">>)),
    ok.

concurrent_writers() ->
    [{doc, "Erlang processes and a Python caller write distinct keys at the same time "
      "and overwrite a shared one: every distinct key ends with its last value, the "
      "shared one with one of the written values."}].
concurrent_writers(_Config) ->
    {ok, SD} = py:shared_dict_new(),
    Parent = self(),
    Pids = [spawn_link(fun() ->
                               Key = integer_to_binary(N),
                               [ok = py:shared_dict_set(SD, Key, I) || I <- lists:seq(1, ?INCRS)],
                               [ok = py:shared_dict_set(SD, <<"shared">>, N) || _ <- lists:seq(1, 10)],
                               Parent ! {done, self()}
                       end) || N <- lists:seq(1, ?WRITERS)],
    {ok, none} = py:eval(py:context(1), <<"(lambda sd, n: [sd.__setitem__('py', i) "
                                          "for i in range(1, n + 1)] and None)"
                                          "(erlang.SharedDict(h), n)">>,
                         #{h => SD, n => ?INCRS}),
    [receive {done, P} -> ok after ?HELPER_TIMEOUT -> ct:fail({writer_stuck, P}) end
     || P <- Pids],
    Keys = lists:sort(py:shared_dict_keys(SD)),
    ?assertEqual(lists:sort([<<"py">>, <<"shared">> | [integer_to_binary(N)
                                                      || N <- lists:seq(1, ?WRITERS)]]),
                 Keys),
    [?assertEqual(?INCRS, py:shared_dict_get(SD, integer_to_binary(N)))
     || N <- lists:seq(1, ?WRITERS)],
    ?assertEqual(?INCRS, py:shared_dict_get(SD, <<"py">>)),
    ?assert(lists:member(py:shared_dict_get(SD, <<"shared">>), lists:seq(1, ?WRITERS))),
    ok.

destroy_everywhere() ->
    [{doc, "shared_dict_destroy/1 (or sd.destroy() in Python) empties and invalidates "
      "the dictionary: Erlang operations raise badarg, Python ones raise, destroy "
      "stays idempotent."}].
destroy_everywhere(_Config) ->
    {ok, SD} = py:shared_dict_new(),
    ok = py:shared_dict_set(SD, <<"k">>, 1),
    ok = py:shared_dict_destroy(SD),
    ok = py:shared_dict_destroy(SD),
    ?assertError(badarg, py:shared_dict_get(SD, <<"k">>)),
    ?assertError(badarg, py:shared_dict_set(SD, <<"k">>, 2)),
    ?assertError(badarg, py:shared_dict_keys(SD)),
    ?assertMatch({error, _}, py:eval(<<"erlang.SharedDict(h)['k']">>, #{h => SD})),
    {ok, SD2} = py:shared_dict_new(),
    ok = py:shared_dict_set(SD2, <<"k">>, 1),
    {ok, none} = py:eval(<<"erlang.SharedDict(h).destroy()">>, #{h => SD2}),
    ?assertError(badarg, py:shared_dict_get(SD2, <<"k">>)),
    ?assertError(badarg, py:shared_dict_get(make_ref(), <<"k">>)),
    ok.

lifetime_follows_users() ->
    [{doc, "A dictionary outlives its creator while another process that used it is "
      "alive, and is freed (later use raises badarg) once every such process has "
      "exited."}].
lifetime_follows_users(_Config) ->
    Parent = self(),
    Creator = spawn(fun() ->
                            {ok, SD} = py:shared_dict_new(),
                            ok = py:shared_dict_set(SD, <<"k">>, <<"v">>),
                            Parent ! {sd, SD},
                            receive stop -> ok end
                    end),
    SD = receive {sd, H} -> H after ?HELPER_TIMEOUT -> ct:fail(no_handle) end,
    User = spawn(fun() ->
                         <<"v">> = py:shared_dict_get(SD, <<"k">>),
                         Parent ! used,
                         receive stop -> ok end
                 end),
    receive used -> ok after ?HELPER_TIMEOUT -> ct:fail(user_did_not_read) end,
    exit(Creator, kill),
    timer:sleep(200),
    %% The user is alive: the dictionary is too (this process has not used it yet,
    %% so it reads it through another process to stay out of the holders).
    ?assertEqual(<<"v">>, in_process(fun() -> py:shared_dict_get(SD, <<"k">>) end)),
    exit(User, kill),
    ok = pyport_test:eventually(
           fun() -> in_process(fun() ->
                                       try py:shared_dict_get(SD, <<"k">>)
                                       catch error:badarg -> gone
                                       end
                               end)
           end, gone, ?EVENTUALLY_MS),
    ok.

%% Runs Fun in a short-lived process (which becomes a holder only while it runs).
in_process(Fun) ->
    {Pid, Ref} = spawn_monitor(fun() -> exit({result, Fun()}) end),
    receive {'DOWN', Ref, process, Pid, {result, R}} -> R
    after ?HELPER_TIMEOUT -> ct:fail(helper_stuck)
    end.

os_pid(Ctx) ->
    maps:get(os_pid, py_context:info(Ctx)).
