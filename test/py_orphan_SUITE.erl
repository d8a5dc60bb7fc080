%% No orphans: when the BEAM dies (even kill -9) or closes the port, every pyport
%% OS process exits, including one whose Python is stuck in C with signals blocked.
%% The BEAM case runs pyport in a peer node and kills that node's OS process.
-module(py_orphan_SUITE).

-import(pyport_test, [os_pid_alive/1, wait_until/2]).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([beam_kill9_leaves_no_python/0, beam_kill9_leaves_no_python/1,
         port_close_ends_python/0, port_close_ends_python/1,
         port_close_ends_stuck_python/0, port_close_ends_stuck_python/1]).

%% How long the Python processes may take to exit (the requirement is "within a
%% second"; the deadline is generous for a loaded host).
-define(GONE_DEADLINE_MS, 5000).
%% Timeout of calls that must succeed, and of the RPCs to the peer.
-define(CALL_TIMEOUT, 30000).
%% Deadline for the stuck call to be running.
-define(EVENTUALLY_MS, 20000).
%% Code that blocks the port's interrupt signals and sleeps in C.
-define(STUCK, "import signal, time\n"
               "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, signal.SIGINT})\n"
               "time.sleep(120)\n").

suite() -> [{timetrap, {minutes, 3}}].

all() -> [beam_kill9_leaves_no_python, port_close_ends_python, port_close_ends_stuck_python].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

%%% ===========================================================================
%%% Cases
%%% ===========================================================================

beam_kill9_leaves_no_python() ->
    [{doc, "kill -9 of a peer BEAM running pyport (its pools plus a context stuck in C "
      "with signals blocked): every Python OS process of that node exits within the "
      "deadline."}].
beam_kill9_leaves_no_python(_Config) ->
    case erlang:is_alive() of
        false -> {skip, "this node is not distributed; peer needs distribution"};
        true -> beam_kill9()
    end.

beam_kill9() ->
    Ebin = filename:dirname(code:which(py_context)),
    {ok, Peer, Node} = peer:start(#{name => peer:random_name(?MODULE), args => ["-pa", Ebin]}),
    {ok, _} = rpc:call(Node, application, ensure_all_started, [pyport], ?CALL_TIMEOUT),
    Ctxs = lists:append([rpc:call(Node, py_context_router, contexts, [Pool])
                         || Pool <- rpc:call(Node, py_context_router, pools, [])]),
    ?assert(length(Ctxs) >= 2),
    %% Keep the first context busy in C with its interrupt signals blocked.
    Stuck = hd(Ctxs),
    _ = rpc:call(Node, erlang, spawn, [py_context, exec, [Stuck, ?STUCK]]),
    wait_until(fun() -> is_map(maps:get(current, rpc:call(Node, py_context, info, [Stuck]))) end,
               ?EVENTUALLY_MS),
    OsPids = [maps:get(os_pid, rpc:call(Node, py_context, info, [C])) || C <- Ctxs],
    ct:pal("peer ~p python os pids ~p", [Node, OsPids]),
    [?assert(os_pid_alive(P)) || P <- OsPids],
    BeamPid = rpc:call(Node, os, getpid, []),
    erlang:monitor_node(Node, true),
    PeerRef = erlang:monitor(process, Peer),
    os:cmd("kill -9 " ++ BeamPid),
    receive {nodedown, Node} -> ok
    after ?CALL_TIMEOUT -> ct:fail(peer_still_up)
    end,
    %% The peer's controlling process ends with its node.
    receive {'DOWN', PeerRef, process, Peer, _} -> ok
    after ?CALL_TIMEOUT -> ct:fail(peer_control_process_still_up)
    end,
    wait_until(fun() -> not os_pid_alive(list_to_integer(BeamPid)) end, ?GONE_DEADLINE_MS),
    wait_until(fun() -> not lists:any(fun pyport_test:os_pid_alive/1, OsPids) end, ?GONE_DEADLINE_MS),
    ok.

port_close_ends_python() ->
    [{doc, "Stopping a context closes its port; the idle Python OS process exits within "
      "the deadline."}].
port_close_ends_python(_Config) ->
    {ok, Ctx} = py_context:start_link(#{}),
    #{os_pid := OsPid} = py_context:info(Ctx),
    ?assert(os_pid_alive(OsPid)),
    ok = py_context:stop(Ctx),
    wait_until(fun() -> not os_pid_alive(OsPid) end, ?GONE_DEADLINE_MS).

port_close_ends_stuck_python() ->
    [{doc, "Stopping a context whose Python is stuck in C with signals blocked still "
      "ends the OS process within the deadline."}].
port_close_ends_stuck_python(_Config) ->
    {ok, Ctx} = py_context:start_link(#{}),
    #{os_pid := OsPid} = py_context:info(Ctx),
    _ = spawn(py_context, exec, [Ctx, ?STUCK]),
    wait_until(fun() -> is_map(maps:get(current, py_context:info(Ctx))) end, ?EVENTUALLY_MS),
    ok = py_context:stop(Ctx),
    wait_until(fun() -> not os_pid_alive(OsPid) end, ?GONE_DEADLINE_MS).

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

%% Whether the process runs; a zombie has exited (only the reaping is pending).
