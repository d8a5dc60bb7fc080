%% The warm template (`template => true'): contexts are forks of one template
%% OS process that ran the preload, at their start and at every restart; what
%% holds for a cold context holds for a forked one (crash containment,
%% kill/restart with a stable handle, timeouts, info, limits, output, no
%% orphans); the template's own death is survived; unsafe preloads are refused.
-module(py_template_SUITE).

-import(pyport_test, [os_pid_alive/1, wait_until/2]).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([context_is_a_fork/0, context_is_a_fork/1,
         pool_shares_one_template/0, pool_shares_one_template/1,
         template_from_app_env/0, template_from_app_env/1,
         pool_over_nodes/0, pool_over_nodes/1,
         every_restart_forks_again/0, every_restart_forks_again/1,
         limits_restart_by_forking/0, limits_restart_by_forking/1,
         timeout_and_output/0, timeout_and_output/1,
         template_death_is_survived/0, template_death_is_survived/1,
         unsafe_preload_refused/0, unsafe_preload_refused/1,
         preload_output/0, preload_output/1,
         stop_leaves_no_process/0, stop_leaves_no_process/1,
         beam_kill9_leaves_no_process/0, beam_kill9_leaves_no_process/1,
         parked_port_is_used/0, parked_port_is_used/1,
         parked_port_killed_is_replaced/0, parked_port_killed_is_replaced/1,
         forks_get_their_own_options/0, forks_get_their_own_options/1,
         spare_dies_with_template/0, spare_dies_with_template/1,
         spare_killed_is_replaced/0, spare_killed_is_replaced/1,
         forks_reseed_random/0, forks_reseed_random/1]).

-define(CALL_TIMEOUT, 30000).
-define(GONE_DEADLINE_MS, 5000).
-define(PRELOAD, <<"import json, decimal\nWARM = json.dumps({'warm': 1})\n">>).

suite() -> [{timetrap, {minutes, 4}}].

all() ->
    [context_is_a_fork, pool_shares_one_template, template_from_app_env, pool_over_nodes,
     every_restart_forks_again,
     limits_restart_by_forking, timeout_and_output, template_death_is_survived,
     unsafe_preload_refused, preload_output, stop_leaves_no_process, beam_kill9_leaves_no_process,
     parked_port_is_used, parked_port_killed_is_replaced, forks_get_their_own_options,
     spare_dies_with_template, spare_killed_is_replaced, forks_reseed_random].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

%%% ===========================================================================
%%% Cases
%%% ===========================================================================

context_is_a_fork() ->
    [{doc, "py_context:start_link(#{template => true}): the context's OS process (info "
      "os_pid, the real one) is a child of its template, the preload's names and modules "
      "are there without running it again, and its port is pyport-attach."}].
context_is_a_fork(_Config) ->
    {ok, Ctx} = py_context:start_link(#{template => true, preload => ?PRELOAD}),
    #{os_pid := OsPid, template := T} = py_context:info(Ctx),
    #{os_pid := TPid} = py_template:info(T),
    ?assertEqual(TPid, ppid(OsPid)),
    ?assertEqual({ok, OsPid}, py_context:eval(Ctx, <<"__import__('os').getpid()">>, #{}, ?CALL_TIMEOUT)),
    ?assertEqual({ok, <<"{\"warm\": 1}">>}, py_context:eval(Ctx, <<"WARM">>, #{}, ?CALL_TIMEOUT)),
    %% The preload ran once, in the template: the fork did not import json again.
    ?assertEqual({ok, true}, py_context:eval(Ctx, <<"'decimal' in __import__('sys').modules">>,
                                             #{}, ?CALL_TIMEOUT)),
    ?assertEqual("pyport-attach", comm(ppid_of_port(Ctx))),
    ok = py_context:stop(Ctx).

pool_shares_one_template() ->
    [{doc, "A pool with template => true has one template; each of its contexts is a "
      "distinct fork of it; routed calls see the preload."}].
pool_shares_one_template(_Config) ->
    {ok, Ctxs} = py_context_router:start_pool(tpool, 3, #{template => true, preload => ?PRELOAD}),
    #{os_pid := TPid} = py_template:info(py_template:name(tpool)),
    OsPids = [maps:get(os_pid, py_context:info(C)) || C <- Ctxs],
    ?assertEqual(3, length(lists:usort(OsPids))),
    [?assertEqual(TPid, ppid(P)) || P <- OsPids],
    ?assertEqual({ok, <<"{\"warm\": 1}">>}, py_context:eval(py_context_router:get_context(tpool), <<"WARM">>, #{}, ?CALL_TIMEOUT)),
    ok = py_context_router:stop_pool(tpool),
    wait_until(fun() -> not os_pid_alive(TPid) end, ?GONE_DEADLINE_MS),
    wait_until(fun() -> not lists:any(fun pyport_test:os_pid_alive/1, OsPids) end,
               ?GONE_DEADLINE_MS).

template_from_app_env() ->
    [{doc, "template => true and the preload in the application's context_opts: a pool "
      "started without options has one template, with that preload, for all its contexts."}].
template_from_app_env(_Config) ->
    ok = application:set_env(pyport, context_opts, #{template => true, preload => ?PRELOAD}),
    try
        {ok, Ctxs} = py_context_router:start_pool(tapp, 2, #{}),
        #{os_pid := TPid} = py_template:info(py_template:name(tapp)),
        [?assertEqual(TPid, ppid(maps:get(os_pid, py_context:info(C)))) || C <- Ctxs],
        [?assertEqual({ok, <<"{\"warm\": 1}">>}, py_context:eval(C, <<"WARM">>, #{}, ?CALL_TIMEOUT))
         || C <- Ctxs],
        ok = py_context_router:stop_pool(tapp)
    after
        application:unset_env(pyport, context_opts)
    end.

pool_over_nodes() ->
    [{doc, "A pool over two nodes with template => true has one template per node; each "
      "context is a fork of its own node's template."}].
pool_over_nodes(_Config) ->
    case erlang:is_alive() of
        false -> {skip, "this node is not distributed; peer needs distribution"};
        true -> over_nodes()
    end.

over_nodes() ->
    Ebin = filename:dirname(code:which(py_context)),
    {ok, Peer, Node} = peer:start(#{name => peer:random_name(?MODULE), args => ["-pa", Ebin]}),
    try
        {ok, _} = rpc:call(Node, application, ensure_all_started, [pyport], ?CALL_TIMEOUT),
        {ok, Ctxs} = py_context_router:start_pool(tnodes, 4, #{nodes => [node(), Node],
                                                               template => true,
                                                               preload => ?PRELOAD}),
        Templates = maps:from_list([{N, maps:get(os_pid, rpc:call(N, py_template, info,
                                                                  [py_template:name(tnodes)]))}
                                    || N <- [node(), Node]]),
        Where = [{node(C), maps:get(os_pid, rpc:call(node(C), py_context, info, [C]))}
                 || C <- Ctxs],
        ct:pal("templates ~p contexts ~p", [Templates, Where]),
        ?assertEqual([node(), Node], lists:usort([N || {N, _} <- Where])),
        %% One machine: the peer's processes are in this /proc too.
        [?assertEqual(maps:get(N, Templates), ppid(P)) || {N, P} <- Where],
        ok = py_context_router:stop_pool(tnodes)
    after
        peer:stop(Peer)
    end.

every_restart_forks_again() ->
    [{doc, "kill/1, a segfault, kill -9 from outside and restart/1 each give a new OS "
      "process forked from the same template, with the real exit reason reported and "
      "the handle unchanged."}].
every_restart_forks_again(_Config) ->
    {ok, Ctx} = py_context:start_link(#{template => true, preload => ?PRELOAD}),
    #{template := T} = py_context:info(Ctx),
    #{os_pid := TPid} = py_template:info(T),
    Ref = py_context:monitor(Ctx),
    Steps = [{fun() -> ok = py_context:kill(Ctx) end, {killed, requested}},
             {fun() -> {error, {context_died, {signal, 'SIGSEGV'}}} =
                           py_context:exec(Ctx, <<"import ctypes; ctypes.string_at(0)">>,
                                           ?CALL_TIMEOUT) end,
              {signal, 'SIGSEGV'}},
             {fun() -> os:cmd("kill -9 " ++ integer_to_list(os_pid(Ctx))) end,
              {signal, 'SIGKILL'}},
             {fun() -> ok = py_context:restart(Ctx) end, {restart, requested}}],
    lists:foldl(
      fun({Do, Why}, Prev) ->
              Do(),
              receive {py_context, Ctx, restarted, Reason} -> ?assertEqual(Why, Reason)
              after ?CALL_TIMEOUT -> ct:fail({no_restart, Why})
              end,
              {ok, New} = py_context:eval(Ctx, <<"__import__('os').getpid()">>, #{}, ?CALL_TIMEOUT),
              ?assertNotEqual(Prev, New),
              ?assertEqual(New, os_pid(Ctx)),
              ?assertEqual(TPid, ppid(New)),
              ?assertEqual({ok, <<"{\"warm\": 1}">>},
                           py_context:eval(Ctx, <<"WARM">>, #{}, ?CALL_TIMEOUT)),
              New
      end, os_pid(Ctx), Steps),
    py_context:demonitor(Ctx, Ref),
    ok = py_context:stop(Ctx).

limits_restart_by_forking() ->
    [{doc, "max_calls and max_memory recycle a forked context into a new fork."}].
limits_restart_by_forking(_Config) ->
    {ok, Ctx} = py_context:start_link(#{template => true, preload => ?PRELOAD, max_calls => 3}),
    #{template := T} = py_context:info(Ctx),
    #{os_pid := TPid} = py_template:info(T),
    Pids = [begin
                {ok, P} = py_context:eval(Ctx, <<"__import__('os').getpid()">>, #{}, ?CALL_TIMEOUT),
                P
            end || _ <- lists:seq(1, 7)],
    ?assertEqual(3, length(lists:usort(Pids))),
    [?assertEqual(TPid, ppid(P)) || P <- lists:usort(Pids), os_pid_alive(P)],
    ok = py_context:stop(Ctx),
    {ok, M} = py_context:start_link(#{template => true, max_memory => 200 bsl 20}),
    Before = os_pid(M),
    _ = py_context:exec(M, <<"hog = bytearray(300 << 20)\nhog[::4096] = b'x' * len(hog[::4096])">>,
                        ?CALL_TIMEOUT),
    wait_until(fun() -> case os_pid(M) of
                            undefined -> false;
                            Before -> false;
                            _ -> true
                        end end, ?CALL_TIMEOUT),
    #{template := MT} = py_context:info(M),
    #{os_pid := MTPid} = py_template:info(MT),
    {ok, After} = py_context:eval(M, <<"__import__('os').getpid()">>, #{}, ?CALL_TIMEOUT),
    ?assertEqual(MTPid, ppid(After)),
    ok = py_context:stop(M).

timeout_and_output() ->
    [{doc, "A forked context times out a busy loop and keeps serving; print() output "
      "reaches the caller's group leader."}].
timeout_and_output(_Config) ->
    {ok, Ctx} = py_context:start_link(#{template => true, preload => ?PRELOAD}),
    ?assertEqual({error, timeout}, py_context:exec(Ctx, <<"while True: pass">>, 300)),
    ?assertEqual({ok, 2}, py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT)),
    Self = self(),
    GL = spawn_link(fun() -> collect(Self, []) end),
    Caller = spawn_link(fun() ->
                                group_leader(GL, self()),
                                Self ! {done, py_context:exec(Ctx, <<"print('from a fork', WARM)">>,
                                                             ?CALL_TIMEOUT)}
                        end),
    receive {done, R} -> ?assertEqual(ok, R) after ?CALL_TIMEOUT -> ct:fail(no_answer) end,
    wait_until(fun() -> GL ! {chars, self()},
                        receive {chars, C} -> string:find(C, "from a fork {\"warm\": 1}") =/= nomatch
                        after 1000 -> false
                        end
               end, 5000),
    unlink(Caller),
    ok = py_context:stop(Ctx).

template_death_is_survived() ->
    [{doc, "kill -9 of the template: its forked contexts keep answering, a new template "
      "starts, and the next restart of a context forks from the new one."}].
template_death_is_survived(_Config) ->
    {ok, Ctx} = py_context:start_link(#{template => true, preload => ?PRELOAD}),
    #{template := T} = py_context:info(Ctx),
    #{os_pid := Old, starts := 1} = py_template:info(T),
    Forked = os_pid(Ctx),
    os:cmd("kill -9 " ++ integer_to_list(Old)),
    wait_until(fun() -> not os_pid_alive(Old) end, ?GONE_DEADLINE_MS),
    wait_until(fun() -> maps:get(os_pid, py_template:info(T)) =/= Old end, ?CALL_TIMEOUT),
    ?assertEqual({ok, <<"{\"warm\": 1}">>}, py_context:eval(Ctx, <<"WARM">>, #{}, ?CALL_TIMEOUT)),
    ?assertEqual(Forked, os_pid(Ctx)),
    %% Its fork now ends after its template (its exit status is lost); the
    %% restart forks from a new template (started at once, or on this demand
    %% if the old one died young).
    Ref = py_context:monitor(Ctx),
    ok = py_context:kill(Ctx),
    receive {py_context, Ctx, restarted, _} -> ok after ?CALL_TIMEOUT -> ct:fail(no_restart) end,
    {ok, Next} = py_context:eval(Ctx, <<"__import__('os').getpid()">>, #{}, ?CALL_TIMEOUT),
    #{os_pid := New, starts := 2} = py_template:info(T),
    ?assertNotEqual(Old, New),
    ?assertEqual(New, ppid(Next)),
    py_context:demonitor(Ctx, Ref),
    ok = py_context:stop(Ctx).

unsafe_preload_refused() ->
    [{doc, "A preload that leaves a Python thread running, or that fails, makes the "
      "start fail with the template's reason; a bad template option is refused."}].
unsafe_preload_refused(_Config) ->
    process_flag(trap_exit, true),
    Threads = <<"import threading, time\n"
                "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n">>,
    {error, {template_failed, Why}} = py_context:start_link(#{template => true, preload => Threads}),
    ?assertNotEqual(nomatch, string:find(Why, "Python thread")),
    {error, {template_failed, Why2}} = py_context:start_link(#{template => true,
                                                               preload => <<"1/0">>}),
    ?assertNotEqual(nomatch, string:find(Why2, "ZeroDivisionError")),
    ?assertMatch({error, {badarg, _}}, py_context:start_link(#{template => yes})),
    ?assertMatch({error, _}, py_context_router:start_pool(tbad, 2, #{template => true,
                                                                     preload => Threads})).

preload_output() ->
    [{doc, "A preload that prints (stdout and stderr) starts its template (the text goes "
      "to the node's stderr), and the forks' own prints still reach their callers."}].
preload_output(_Config) ->
    {ok, Ctx} = py_context:start_link(#{template => true,
                                        preload => <<"import sys\nprint('preloading')\n"
                                                     "sys.stderr.write('preload err\\n')\n"
                                                     "Y = 2\n">>}),
    ?assertEqual({ok, 2}, py_context:eval(Ctx, <<"Y">>, #{}, ?CALL_TIMEOUT)),
    Self = self(),
    GL = spawn_link(fun() -> collect(Self, []) end),
    _ = spawn_link(fun() ->
                           group_leader(GL, self()),
                           Self ! {done, py_context:exec(Ctx, <<"print('fork says', Y)">>,
                                                        ?CALL_TIMEOUT)}
                   end),
    receive {done, R} -> ?assertEqual(ok, R) after ?CALL_TIMEOUT -> ct:fail(no_answer) end,
    wait_until(fun() -> GL ! {chars, self()},
                        receive {chars, C} -> string:find(C, "fork says 2") =/= nomatch
                        after 1000 -> false
                        end
               end, 5000),
    ok = py_context:stop(Ctx).

stop_leaves_no_process() ->
    [{doc, "Stopping a context stops its fork, its pyport-attach and its own template "
      "with its spare and its parked port."}].
stop_leaves_no_process(_Config) ->
    {ok, Ctx} = py_context:start_link(#{template => true}),
    #{os_pid := OsPid, template := T} = py_context:info(Ctx),
    #{os_pid := TPid, socket := Socket} = py_template:info(T),
    {PAttach, PFork} = next_parked(T, [OsPid]),
    Spare = next_spare(T, [OsPid, PFork]),
    Attach = ppid_of_port(Ctx),
    ok = py_context:stop(Ctx),
    wait_until(fun() -> not lists:any(fun pyport_test:os_pid_alive/1,
                                      [OsPid, TPid, Attach, Spare, PAttach, PFork]) end,
               ?GONE_DEADLINE_MS),
    ?assertNot(filelib:is_file(Socket)).

beam_kill9_leaves_no_process() ->
    [{doc, "kill -9 of a peer BEAM running a template pool: the template, every fork "
      "and every pyport-attach exit within the deadline."}].
beam_kill9_leaves_no_process(_Config) ->
    case erlang:is_alive() of
        false -> {skip, "this node is not distributed; peer needs distribution"};
        true -> beam_kill9()
    end.

beam_kill9() ->
    Ebin = filename:dirname(code:which(py_context)),
    {ok, Peer, Node} = peer:start(#{name => peer:random_name(?MODULE), args => ["-pa", Ebin]}),
    {ok, _} = rpc:call(Node, application, ensure_all_started, [pyport], ?CALL_TIMEOUT),
    {ok, Ctxs} = rpc:call(Node, py_context_router, start_pool,
                          [tpeer, 3, #{template => true, preload => ?PRELOAD}], ?CALL_TIMEOUT),
    #{os_pid := TPid} = rpc:call(Node, py_template, info, [py_template:name(tpeer)]),
    Forks = [maps:get(os_pid, rpc:call(Node, py_context, info, [C])) || C <- Ctxs],
    %% The spare parked for the next start (none of the contexts).
    wait_until(fun() -> spare_parked(rpc:call(Node, py_template, info, [py_template:name(tpeer)]),
                                     Forks) end, ?CALL_TIMEOUT),
    %% And the port parked for it, with the fork behind it.
    wait_until(fun() -> parked(rpc:call(Node, py_template, info, [py_template:name(tpeer)]),
                               Forks) end, ?CALL_TIMEOUT),
    #{spare := Spare, parked := #{attach := PAttach, python := PFork}} =
        rpc:call(Node, py_template, info, [py_template:name(tpeer)]),
    Attach = [ppid_of(rpc:call(Node, erlang, port_info, [P, os_pid]))
              || C <- Ctxs, P <- [port_of(Node, C)]],
    All = [TPid, Spare, PAttach, PFork | Forks] ++ Attach,
    ct:pal("peer ~p: template ~p spare ~p parked ~p/~p forks ~p attach ~p",
           [Node, TPid, Spare, PAttach, PFork, Forks, Attach]),
    [?assert(os_pid_alive(P)) || P <- All],
    %% One fork busy in C with its interrupt signals blocked.
    _ = rpc:call(Node, erlang, spawn,
                 [py_context, exec, [hd(Ctxs), "import signal, time\n"
                                     "signal.pthread_sigmask(signal.SIG_BLOCK, "
                                     "{signal.SIGUSR2, signal.SIGINT})\ntime.sleep(120)\n"]]),
    timer:sleep(300),
    BeamPid = rpc:call(Node, os, getpid, []),
    erlang:monitor_node(Node, true),
    PeerRef = erlang:monitor(process, Peer),
    os:cmd("kill -9 " ++ BeamPid),
    receive {nodedown, Node} -> ok after ?CALL_TIMEOUT -> ct:fail(peer_still_up) end,
    receive {'DOWN', PeerRef, process, Peer, _} -> ok
    after ?CALL_TIMEOUT -> ct:fail(peer_control_process_still_up)
    end,
    wait_until(fun() -> not lists:any(fun pyport_test:os_pid_alive/1, All) end,
               ?GONE_DEADLINE_MS).

parked_port_is_used() ->
    [{doc, "The template keeps a pyport-attach opened ahead of demand (info `parked'), "
      "whose pipes a warmed-up fork already holds: the next context start, and a restart "
      "after kill -9, take that port (its attach is the context's port program, its fork "
      "the context's os_pid, a child of the template), and a new one is parked after each."}].
parked_port_is_used(_Config) ->
    Opts = #{template => true, preload => ?PRELOAD},
    {ok, [C0]} = py_context_router:start_pool(tpark, 1, Opts),
    Tmpl = py_template:name(tpark),
    #{os_pid := TPid} = py_template:info(Tmpl),
    {A1, P1} = next_parked(Tmpl, [os_pid(C0)]),
    ?assertEqual(TPid, ppid(P1)),
    ?assertEqual("pyport-attach", comm(A1)),
    {ok, C} = py_context:start_link(Opts#{pool => tpark, index => 100}),
    ?assertEqual(P1, os_pid(C)),
    ?assertEqual(A1, ppid_of_port(C)),
    ?assertEqual({ok, P1}, py_context:eval(C, <<"__import__('os').getpid()">>, #{}, ?CALL_TIMEOUT)),
    ?assertEqual({ok, <<"{\"warm\": 1}">>}, py_context:eval(C, <<"WARM">>, #{}, ?CALL_TIMEOUT)),
    {A2, P2} = next_parked(Tmpl, [P1]),
    ?assertNotEqual(A1, A2),
    ?assertEqual(TPid, ppid(P2)),
    Ref = py_context:monitor(C),
    os:cmd("kill -9 " ++ integer_to_list(P1)),
    receive {py_context, C, restarted, {signal, 'SIGKILL'}} -> ok
    after ?CALL_TIMEOUT -> ct:fail(no_restart)
    end,
    ?assertEqual({ok, P2}, py_context:eval(C, <<"__import__('os').getpid()">>, #{}, ?CALL_TIMEOUT)),
    ?assertEqual(A2, ppid_of_port(C)),
    %% The attach of the killed fork exited the same way (SIGKILL), and is gone.
    wait_until(fun() -> not os_pid_alive(A1) end, ?GONE_DEADLINE_MS),
    {A3, P3} = next_parked(Tmpl, [P2]),
    ?assertEqual(TPid, ppid(P3)),
    py_context:demonitor(C, Ref),
    ok = py_context:stop(C),
    ok = py_context_router:stop_pool(tpark),
    wait_until(fun() -> not lists:any(fun pyport_test:os_pid_alive/1, [TPid, A3, P3]) end,
               ?GONE_DEADLINE_MS).

parked_port_killed_is_replaced() ->
    [{doc, "A parked pyport-attach killed from outside, and the fork parked behind "
      "another: each time the port dies, the template's server opens another, and the "
      "next start uses it."}].
parked_port_killed_is_replaced(_Config) ->
    Opts = #{template => true, preload => ?PRELOAD},
    {ok, [C0]} = py_context_router:start_pool(tpkill, 1, Opts),
    Tmpl = py_template:name(tpkill),
    #{os_pid := TPid} = py_template:info(Tmpl),
    {A1, P1} = next_parked(Tmpl, [os_pid(C0)]),
    os:cmd("kill -9 " ++ integer_to_list(A1)),
    %% The fork behind it sees its attach die (a pidfd), and exits.
    wait_until(fun() -> not os_pid_alive(P1) end, ?GONE_DEADLINE_MS),
    {A2, P2} = next_parked(Tmpl, [os_pid(C0), P1]),
    ?assertNotEqual(A1, A2),
    os:cmd("kill -9 " ++ integer_to_list(P2)),
    %% Its attach exits as the fork did.
    wait_until(fun() -> not os_pid_alive(A2) end, ?GONE_DEADLINE_MS),
    {A3, P3} = next_parked(Tmpl, [os_pid(C0), P1, P2]),
    ?assert(not lists:member(A3, [A1, A2])),
    {ok, C} = py_context:start_link(Opts#{pool => tpkill, index => 100}),
    ?assertEqual(P3, os_pid(C)),
    ?assertEqual(A3, ppid_of_port(C)),
    ?assertEqual(TPid, ppid(P3)),
    ?assertEqual({ok, <<"{\"warm\": 1}">>}, py_context:eval(C, <<"WARM">>, #{}, ?CALL_TIMEOUT)),
    ok = py_context:stop(C),
    ok = py_context_router:stop_pool(tpkill),
    wait_until(fun() -> not lists:any(fun pyport_test:os_pid_alive/1, [TPid, A3, P3]) end,
               ?GONE_DEADLINE_MS).

forks_get_their_own_options() ->
    [{doc, "Two contexts forked from one template, one after the other through parked "
      "ports, each get their own options: a crash file of their own name open, and "
      "their own max_frame (a 3 MB result is too large for the one with 1 MiB only)."}].
forks_get_their_own_options(_Config) ->
    Opts = #{template => true, preload => ?PRELOAD},
    {ok, [C0]} = py_context_router:start_pool(topts, 1, Opts),
    Tmpl = py_template:name(topts),
    _ = next_parked(Tmpl, [os_pid(C0)]),
    {ok, Small} = py_context:start_link(Opts#{pool => topts, index => 101,
                                              max_frame => 1024 * 1024}),
    _ = next_parked(Tmpl, [os_pid(Small)]),
    {ok, Big} = py_context:start_link(Opts#{pool => topts, index => 102}),
    [?assertEqual(maps:get(os_pid, py_template:info(Tmpl)), ppid(os_pid(X))) || X <- [Small, Big]],
    Files = [crash_files(os_pid(X)) || X <- [Small, Big]],
    ct:pal("crash files ~p", [Files]),
    [[SmallFile], [BigFile]] = Files,
    ?assertNotEqual(SmallFile, BigFile),
    [?assertNotEqual(nomatch, string:find(F, safe_name(X)))
     || {F, X} <- [{SmallFile, Small}, {BigFile, Big}]],
    ?assertMatch({error, {too_large, _, _}},
                 py_context:eval(Small, <<"b'x' * 3000000">>, #{}, ?CALL_TIMEOUT)),
    ?assertEqual({ok, 3000000}, py_context:eval(Big, <<"len(b'x' * 3000000)">>, #{},
                                                ?CALL_TIMEOUT)),
    ?assertMatch({ok, <<_:3000000/binary>>}, py_context:eval(Big, <<"b'x' * 3000000">>, #{},
                                                            ?CALL_TIMEOUT)),
    [ok = py_context:stop(X) || X <- [Small, Big]],
    ok = py_context_router:stop_pool(topts).

spare_dies_with_template() ->
    [{doc, "kill -9 of the template kills its parked spare (not the contexts it forked); "
      "the new template forks the next restart and parks a spare of its own."}].
spare_dies_with_template(_Config) ->
    {ok, Ctx} = py_context:start_link(#{template => true, preload => ?PRELOAD}),
    #{os_pid := Forked, template := T} = py_context:info(Ctx),
    #{os_pid := Old} = py_template:info(T),
    Spare = next_spare(T, [Forked]),
    os:cmd("kill -9 " ++ integer_to_list(Old)),
    wait_until(fun() -> not os_pid_alive(Spare) end, ?GONE_DEADLINE_MS),
    ?assert(os_pid_alive(Forked)),
    ?assertEqual({ok, Forked}, py_context:eval(Ctx, <<"__import__('os').getpid()">>, #{},
                                               ?CALL_TIMEOUT)),
    %% The restart starts a new template; the fork it gets is a child of that one,
    %% which then parks a spare of its own.
    Ref = py_context:monitor(Ctx),
    ok = py_context:kill(Ctx),
    receive {py_context, Ctx, restarted, _} -> ok after ?CALL_TIMEOUT -> ct:fail(no_restart) end,
    {ok, Next} = py_context:eval(Ctx, <<"__import__('os').getpid()">>, #{}, ?CALL_TIMEOUT),
    #{os_pid := New} = py_template:info(T),
    ?assertNotEqual(Old, New),
    ?assertEqual(New, ppid(Next)),
    NewSpare = next_spare(T, [Spare, Next]),
    ?assertEqual(New, ppid(NewSpare)),
    py_context:demonitor(Ctx, Ref),
    ok = py_context:stop(Ctx).

spare_killed_is_replaced() ->
    [{doc, "A parked spare killed from outside: the next start forks its own child at "
      "once, and the template parks a new spare."}].
spare_killed_is_replaced(_Config) ->
    Opts = #{template => true, preload => ?PRELOAD},
    {ok, [C0]} = py_context_router:start_pool(tkilled, 1, Opts),
    Tmpl = py_template:name(tkilled),
    #{os_pid := TPid} = py_template:info(Tmpl),
    Spare = next_spare(Tmpl, [os_pid(C0)]),
    os:cmd("kill -9 " ++ integer_to_list(Spare)),
    wait_until(fun() -> not os_pid_alive(Spare) end, ?GONE_DEADLINE_MS),
    {ok, C} = py_context:start_link(Opts#{pool => tkilled, index => 100}),
    ?assertEqual(TPid, ppid(os_pid(C))),
    ?assertEqual({ok, <<"{\"warm\": 1}">>}, py_context:eval(C, <<"WARM">>, #{}, ?CALL_TIMEOUT)),
    New = next_spare(Tmpl, [Spare, os_pid(C0), os_pid(C)]),
    ?assertEqual(TPid, ppid(New)),
    ok = py_context:stop(C),
    ok = py_context_router:stop_pool(tkilled),
    wait_until(fun() -> not lists:any(fun pyport_test:os_pid_alive/1, [TPid, New]) end,
               ?GONE_DEADLINE_MS).

forks_reseed_random() ->
    [{doc, "Each fork draws its own numbers from random and numpy.random (imported by "
      "the preload), not the template's."}].
forks_reseed_random(_Config) ->
    {ok, _} = py_context_router:start_pool(trandom, 3, #{template => true,
                                                         preload => <<"import random, numpy">>}),
    Draw = <<"(random.getrandbits(64), int(numpy.random.randint(0, 2**62)))">>,
    Draws = [begin
                 {ok, D} = py_context:eval(C, Draw, #{}, ?CALL_TIMEOUT),
                 D
             end || C <- py_context_router:contexts(trandom)],
    ct:pal("draws ~p", [Draws]),
    ?assertEqual(3, length(lists:usort([R || {R, _} <- Draws]))),
    ?assertEqual(3, length(lists:usort([N || {_, N} <- Draws]))),
    ok = py_context_router:stop_pool(trandom).

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================
os_pid(Ctx) -> maps:get(os_pid, py_context:info(Ctx)).

%% The template's parked spare, once it is alive and none of the pids `Not'.
next_spare(T, Not) ->
    wait_until(fun() -> spare_parked(py_template:info(T), Not) end, ?CALL_TIMEOUT),
    maps:get(spare, py_template:info(T)).

spare_parked(#{spare := S}, Not) ->
    is_integer(S) andalso not lists:member(S, Not) andalso os_pid_alive(S).

%% The template's parked port, once its fork is known, both alive, and the
%% fork none of the pids `Not': {attach os pid, fork os pid}.
next_parked(T, Not) ->
    wait_until(fun() -> parked(py_template:info(T), Not) end, ?CALL_TIMEOUT),
    #{parked := #{attach := A, python := P}} = py_template:info(T),
    {A, P}.

parked(#{parked := #{attach := A, python := P}}, Not) when is_integer(P) ->
    not lists:member(P, Not) andalso os_pid_alive(A) andalso os_pid_alive(P);
parked(_, _) ->
    false.

%% The crash files an OS process holds open.
crash_files(OsPid) ->
    Dir = "/proc/" ++ integer_to_list(OsPid) ++ "/fd",
    {ok, Fds} = file:list_dir(Dir),
    [F || Fd <- Fds, {ok, F} <- [file:read_link(filename:join(Dir, Fd))],
          lists:suffix(".crash", F)].

%% A context's name as its crash file spells it.
safe_name(Ctx) ->
    #{name := Name} = py_context:info(Ctx),
    [case (C >= $a andalso C =< $z) orelse (C >= $A andalso C =< $Z)
              orelse (C >= $0 andalso C =< $9) orelse C =:= $. orelse C =:= $- of
         true -> C;
         false -> $_
     end || C <- unicode:characters_to_list(Name)].

%% The parent of an OS process (field 4 of /proc/PID/stat).
ppid(OsPid) ->
    {ok, Stat} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat"),
    [_, AfterComm] = string:split(Stat, ") ", trailing),
    [_State, PPid | _] = string:split(AfterComm, " ", all),
    binary_to_integer(PPid).

comm(OsPid) ->
    {ok, C} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/comm"),
    string:trim(binary_to_list(C)).

%% The OS pid of the context's port program (pyport-attach for a fork).
ppid_of_port(Ctx) ->
    P = port_of(node(), Ctx),
    {os_pid, OsPid} = erlang:port_info(P, os_pid),
    OsPid.

port_of(Node, Ctx) ->
    Links = element(2, rpc:call(Node, erlang, process_info, [Ctx, links])),
    [P] = [P || P <- Links, is_port(P)],
    P.

ppid_of({os_pid, OsPid}) -> OsPid.

collect(Test, Acc) ->
    receive
        {io_request, From, ReplyAs, Req} ->
            From ! {io_reply, ReplyAs, ok},
            collect(Test, [chars(Req) | Acc]);
        {chars, From} ->
            From ! {chars, unicode:characters_to_list(lists:reverse(Acc))},
            collect(Test, Acc)
    end.

chars({put_chars, Enc, Chars}) -> unicode:characters_to_binary(Chars, Enc);
chars({put_chars, Chars}) -> unicode:characters_to_binary(Chars, latin1);
chars({put_chars, Enc, M, F, A}) -> unicode:characters_to_binary(apply(M, F, A), Enc);
chars({requests, Reqs}) -> [chars(R) || R <- Reqs];
chars(_) -> <<>>.
