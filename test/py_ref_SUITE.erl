%% Object references: Python objects with no Erlang form come back as
%% {py_ref, ...}; later calls accept them (arguments, eval locals), call_method
%% and getattr use them, and release/1 or the owner's death frees them (seen
%% through weakref finalizers). Misuse (wrong context, released, from before a
%% restart) is a clear {error, {badarg, Msg}}.
-module(py_ref_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([opaque_kinds/0, opaque_kinds/1,
         as_argument/0, as_argument/1,
         call_method_getattr/0, call_method_getattr/1,
         kinds_usable/0, kinds_usable/1,
         other_process_uses/0, other_process_uses/1,
         release_frees/0, release_frees/1,
         owner_death_frees/0, owner_death_frees/1,
         wrong_context/0, wrong_context/1,
         after_restart/0, after_restart/1,
         thread_send_object/0, thread_send_object/1]).

%% Generous bound for a whole case.
-define(CASE_TIMEOUT, {minutes, 3}).
%% Deadline for asynchronous effects (an environment dropped, an object freed,
%% a context restarted).
-define(EVENTUALLY_MS, 10000).
%% How long a helper process may take to report back.
-define(HELPER_TIMEOUT, 60000).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [opaque_kinds, as_argument, call_method_getattr, kinds_usable, other_process_uses,
     release_frees, owner_death_frees, wrong_context, after_restart, thread_send_object].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

init_per_testcase(_Case, Config) ->
    {ok, Ctx} = py_context:start_link(#{python_path => [?config(data_dir, Config)]}),
    ok = py:exec(Ctx, <<"import reftrack\n"
                        "class Point:\n"
                        "    def __init__(self, x, y): self.x, self.y = x, y\n"
                        "    def norm2(self): return self.x ** 2 + self.y ** 2\n">>),
    [{ctx, Ctx} | Config].

end_per_testcase(_Case, Config) ->
    ok = py_context:stop(?config(ctx, Config)).

%%% ===========================================================================
%%% Cases
%%% ===========================================================================

opaque_kinds() ->
    [{doc, "object(), a class instance, a generator, a module and a function come back "
      "as {py_ref, Ctx, Incarnation, Owner, Id}: this context, owned by the caller, "
      "each with its own id."}].
opaque_kinds(Config) ->
    Ctx = ?config(ctx, Config),
    Self = self(),
    Codes = [<<"object()">>, <<"Point(1, 2)">>, <<"(i for i in range(3))">>,
             <<"__import__('json')">>, <<"lambda x: x">>, <<"reftrack.Box(1)">>],
    Refs = [begin {ok, R} = py:eval(Ctx, C), R end || C <- Codes],
    [?assertMatch({py_ref, Ctx, _, Self, _}, R) || R <- Refs],
    ?assertEqual(length(Refs), length(lists:usort([element(5, R) || R <- Refs]))),
    ?assertEqual(1, length(lists:usort([element(3, R) || R <- Refs]))),
    %% Values with an Erlang form are never references.
    ?assertEqual({ok, {1, [2], #{<<"k">> => 3}}}, py:eval(Ctx, <<"(1, [2], {'k': 3})">>)),
    ok.

as_argument() ->
    [{doc, "A reference given back to the same context is the very object: as a call "
      "argument, as an eval local, inside lists/tuples/maps, and identity holds."}].
as_argument(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:exec(Ctx, <<"def norm_of(p): return p.norm2()\n"
                        "def same(a, b): return a is b\n">>),
    {ok, P} = py:eval(Ctx, <<"Point(3, 4)">>),
    ?assertEqual({ok, 25}, py:call(Ctx, '__main__', norm_of, [P])),
    ?assertEqual({ok, 7}, py:eval(Ctx, <<"p.x + p.y">>, #{p => P})),
    ?assertEqual({ok, true}, py:call(Ctx, '__main__', same, [P, P])),
    ?assertEqual({ok, 3}, py:eval(Ctx, <<"ps[0].x">>, #{ps => [P]})),
    ?assertEqual({ok, 4}, py:eval(Ctx, <<"t[1]['k'].y">>, #{t => {1, #{k => P}}})),
    ?assertEqual({ok, <<"Point">>}, py:eval(Ctx, <<"type(p).__name__">>, #{p => P})),
    %% Mutations through one use are seen by the next.
    {ok, none} = py:eval(Ctx, <<"setattr(p, 'x', 30)">>, #{p => P}),
    ?assertEqual({ok, 30}, py:getattr(P, x)),
    ok.

call_method_getattr() ->
    [{doc, "py:call_method(Ref, Method, Args) and py:getattr(Ref, Name) (atom, binary, "
      "string names); Python exceptions are {error, {Type, Msg}}; a non-reference is "
      "{error, {badarg, _}}."}].
call_method_getattr(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, B} = py:call(Ctx, reftrack, 'Box', [10]),
    ?assertEqual({ok, 10}, py:getattr(B, value)),
    ?assertEqual({ok, 15}, py:call_method(B, add, [5])),
    ?assertEqual({ok, 17}, py:call_method(B, <<"add">>, [2])),
    ?assertEqual({ok, 17}, py:getattr(B, "value")),
    ?assertEqual({error, {"RuntimeError", "box failed"}}, py:call_method(B, fail, [])),
    ?assertMatch({error, {"AttributeError", _}}, py:getattr(B, no_such_attribute)),
    ?assertMatch({error, {"AttributeError", _}}, py:call_method(B, no_such_method, [])),
    %% A method result with no Erlang form is a reference too.
    {ok, Add} = py:getattr(B, add),
    ?assertMatch({py_ref, Ctx, _, _, _}, Add),
    ?assertEqual({ok, 18}, py:eval(Ctx, <<"f(1)">>, #{f => Add})),
    ?assertMatch({error, {badarg, _}}, py:call_method(not_a_ref, add, [1])),
    ?assertMatch({error, {badarg, _}}, py:getattr({py_ref, nope}, value)),
    ok.

kinds_usable() ->
    [{doc, "References to a module, a function and a generator work as such: "
      "json.dumps through call_method, calling the function, advancing the generator."}].
kinds_usable(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, Json} = py:eval(Ctx, <<"__import__('json')">>),
    ?assertEqual({ok, <<"[1, 2]">>}, py:call_method(Json, dumps, [[1, 2]])),
    {ok, Triple} = py:eval(Ctx, <<"lambda x: x * 3">>),
    ?assertEqual({ok, 12}, py:call_method(Triple, '__call__', [4])),
    ?assertEqual({ok, 15}, py:eval(Ctx, <<"f(5)">>, #{f => Triple})),
    {ok, Gen} = py:eval(Ctx, <<"(i * i for i in range(4))">>),
    ?assertEqual({ok, 0}, py:call_method(Gen, '__next__', [])),
    ?assertEqual({ok, 1}, py:eval(Ctx, <<"next(g)">>, #{g => Gen})),
    ?assertEqual({ok, [4, 9]}, py:eval(Ctx, <<"list(g)">>, #{g => Gen})),
    ok.

other_process_uses() ->
    [{doc, "Any process may use a reference while it is valid; it stays owned by its "
      "owner."}].
other_process_uses(Config) ->
    Ctx = ?config(ctx, Config),
    Self = self(),
    {ok, B} = py:call(Ctx, reftrack, 'Box', [1]),
    Pid = spawn_link(fun() ->
                             R1 = py:call_method(B, add, [1]),
                             R2 = py:eval(Ctx, <<"b.value">>, #{b => B}),
                             Self ! {used, self(), R1, R2}
                     end),
    receive {used, Pid, R1, R2} ->
            ?assertEqual({ok, 2}, R1),
            ?assertEqual({ok, 2}, R2)
    after ?HELPER_TIMEOUT -> ct:fail(helper_timeout)
    end,
    %% The user has exited; the owner (this process) still holds the object.
    ?assertEqual({ok, 3}, py:call_method(B, add, [1])),
    ok.

release_frees() ->
    [{doc, "py:release(Ref) frees the object (its weakref finalizer runs) and later use "
      "is {error, {badarg, Msg}} saying it was released; releasing again is ok."}].
release_frees(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, B} = py:call(Ctx, reftrack, tracked_box, [1, <<"released">>]),
    ?assertEqual({ok, 1}, py:getattr(B, value)),
    ?assertEqual({ok, false}, py:call(Ctx, reftrack, was_freed, [<<"released">>])),
    ?assertEqual(ok, py:release(B)),
    ok = eventually(fun() -> py:call(Ctx, reftrack, was_freed, [<<"released">>]) end,
                    {ok, true}),
    {error, {badarg, Msg}} = py:getattr(B, value),
    ?assertNotEqual(nomatch, string:find(Msg, "released")),
    ?assertMatch({error, {badarg, _}}, py:call_method(B, add, [1])),
    ?assertMatch({error, {badarg, _}}, py:eval(Ctx, <<"b">>, #{b => B})),
    ?assertMatch({error, {badarg, _}}, py:call(Ctx, builtins, id, [B])),
    ?assertEqual(ok, py:release(B)),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1 + 1">>)),
    ok.

owner_death_frees() ->
    [{doc, "A process creates a reference, sends it to the test process and exits: the "
      "object is freed (finalizer ran) and using the reference becomes {error, "
      "{badarg, Msg}} (polled: the drop is asynchronous)."}].
owner_death_frees(Config) ->
    Ctx = ?config(ctx, Config),
    Self = self(),
    Owner = spawn(fun() ->
                          {ok, R} = py:call(Ctx, reftrack, tracked_box, [5, <<"owner">>]),
                          Self ! {ref, self(), R},
                          receive exit -> ok end
                  end),
    OwnerMon = erlang:monitor(process, Owner),
    B = receive {ref, Owner, R} -> R after ?HELPER_TIMEOUT -> ct:fail(no_ref) end,
    ?assertMatch({py_ref, Ctx, _, Owner, _}, B),
    %% Valid while the owner lives.
    ?assertEqual({ok, 5}, py:getattr(B, value)),
    Owner ! exit,
    receive {'DOWN', OwnerMon, process, Owner, _} -> ok
    after ?HELPER_TIMEOUT -> ct:fail(owner_did_not_exit)
    end,
    ok = eventually(fun() -> case py:getattr(B, value) of
                                 {error, {badarg, _}} -> gone;
                                 Other -> Other
                             end
                    end, gone),
    {error, {badarg, Msg}} = py:getattr(B, value),
    ?assertNotEqual(nomatch, string:find(Msg, "owner")),
    ok = eventually(fun() -> py:call(Ctx, reftrack, was_freed, [<<"owner">>]) end, {ok, true}),
    ok.

wrong_context() ->
    [{doc, "A reference used on another context (call argument, eval local) is "
      "{error, {badarg, Msg}} saying it belongs to another context; it still works on "
      "its own."}].
wrong_context(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, Other} = py_context:start_link(#{}),
    try
        {ok, P} = py:eval(Ctx, <<"Point(1, 1)">>),
        {error, {badarg, Msg}} = py:eval(Other, <<"p">>, #{p => P}),
        ?assertNotEqual(nomatch, string:find(Msg, "another context")),
        ?assertMatch({error, {badarg, _}}, py:call(Other, builtins, id, [P])),
        ?assertEqual({ok, 2}, py:eval(Ctx, <<"p.norm2()">>, #{p => P})),
        ?assertEqual({ok, 2}, py:eval(Other, <<"1 + 1">>))
    after
        py_context:stop(Other)
    end,
    ok.

after_restart() ->
    [{doc, "After py_context:kill/1 and the restart that follows, an old reference is "
      "{error, {badarg, Msg}} saying it is from before the restart (same context pid)."}].
after_restart(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, P} = py:eval(Ctx, <<"Point(2, 0)">>),
    ?assertEqual({ok, 4}, py:call_method(P, norm2, [])),
    MonRef = py_context:monitor(Ctx),
    ok = py_context:kill(Ctx),
    receive {py_context, Ctx, restarted, _} -> ok
    after ?EVENTUALLY_MS -> ct:fail(no_restart)
    end,
    py_context:demonitor(Ctx, MonRef),
    {error, {badarg, Msg}} = py:call_method(P, norm2, []),
    ?assertNotEqual(nomatch, string:find(Msg, "restart")),
    ?assertMatch({error, {badarg, _}}, py:getattr(P, x)),
    ?assertMatch({error, {badarg, _}}, py:eval(Ctx, <<"p">>, #{p => P})),
    %% New references on the restarted context work.
    {ok, Q} = py:eval(Ctx, <<"object()">>),
    ?assertMatch({py_ref, Ctx, _, _, _}, Q),
    ?assertNotEqual(element(3, P), element(3, Q)),
    ?assertEqual({ok, true}, py:eval(Ctx, <<"isinstance(q, object)">>, #{q => Q})),
    ok.

thread_send_object() ->
    [{doc, "References are only made for requests: a Python thread that erlang.send's an "
      "object with no Erlang form gets TypeError, and nothing is sent."}].
thread_send_object(Config) ->
    Ctx = ?config(ctx, Config),
    ok = py:exec(Ctx, <<"import erlang, threading\n"
                        "def send_from_thread(pid):\n"
                        "    out = []\n"
                        "    def work():\n"
                        "        try:\n"
                        "            erlang.send(pid, object())\n"
                        "            out.append('sent')\n"
                        "        except TypeError:\n"
                        "            out.append('TypeError')\n"
                        "    t = threading.Thread(target=work)\n"
                        "    t.start(); t.join()\n"
                        "    return out\n">>),
    ?assertEqual({ok, [<<"TypeError">>]}, py:call(Ctx, '__main__', send_from_thread, [self()])),
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ok.

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

eventually(Fun, Expected) -> pyport_test:eventually(Fun, Expected, ?EVENTUALLY_MS).
