%% Contexts across Erlang distribution, with nodes started by OTP's `peer':
%% a process on another node calls a context of this node (and owns its own
%% environment there), this node calls a context of a pyport running on the
%% peer, and a remote call that times out leaves nothing behind.
-module(py_dist_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([remote_caller_local_context/0, remote_caller_local_context/1,
         remote_env_dropped/0, remote_env_dropped/1,
         local_caller_remote_context/0, local_caller_remote_context/1,
         remote_timeout/0, remote_timeout/1,
         remote_node_down/0, remote_node_down/1]).

%% Run on the peer node (the suite's object code is loaded there).
-export([remote_call/5, remote_eval/2, remote_timeout_call/2]).

%% Generous bound for a whole case (a peer node boots, maybe starts pyport).
-define(CASE_TIMEOUT, {minutes, 3}).
%% How long the peer node may take to boot.
-define(PEER_BOOT_MS, 60000).
%% How long an rpc to the peer, or a helper process, may take.
-define(RPC_TIMEOUT, 60000).
%% The timeout given to calls that must time out; Python sleeps ?SLEEP_S
%% seconds, well past it.
-define(SHORT_TIMEOUT, 200).
-define(SLEEP_S, 1.5).
%% A sleep that outlives the peer node it runs on (the node is stopped first).
-define(LONG_SLEEP_S, 600).
%% How long the mailbox must stay empty after a timeout (longer than the sleep).
-define(QUIET_MS, 2000).
%% Deadline for "eventually" conditions (an environment dropped after its
%% owner is gone, a request seen running).
-define(EVENTUALLY_MS, 10000).
-define(POLL_MS, 100).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [remote_caller_local_context, remote_env_dropped, local_caller_remote_context,
     remote_timeout, remote_node_down].

init_per_suite(Config) ->
    case is_alive() of
        false ->
            {skip, "the Common Test node is not distributed"};
        true ->
            {ok, _} = application:ensure_all_started(pyport),
            Config
    end.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

%%% ===========================================================================
%%% Cases
%%% ===========================================================================

remote_caller_local_context() ->
    [{doc, "A process on a peer node calls a context of this node: the result comes "
      "back, and x defined from the peer process lives in its own environment "
      "(the peer process reads it back; processes of this node do not see it)."}].
remote_caller_local_context(_Config) ->
    with_peer(fun(_Peer, Node) ->
        Ctx = py:context(1),
        ?assertEqual({ok, 4.0}, erpc:call(Node, ?MODULE, remote_call,
                                          [Ctx, math, sqrt, [16], #{}], ?RPC_TIMEOUT)),
        ?assertEqual({ok, 5}, erpc:call(Node, ?MODULE, remote_call,
                                        [Ctx, '__main__', len, [<<"hello">>], #{}],
                                        ?RPC_TIMEOUT)),
        Actor = spawn_link(Node, pyport_test, actor, [self(), Ctx]),
        ?assertEqual(Node, node(Actor)),
        ok = ask(Actor, {exec, <<"x = 'set from the peer'">>}),
        ?assertEqual({ok, <<"set from the peer">>}, ask(Actor, {eval, <<"x">>})),
        ?assertEqual({ok, 10}, ask(Actor, {call, '__main__', len, [<<"abcdefghij">>]})),
        %% Neither this process nor another peer process sees it.
        ?assertMatch({error, {"NameError", _}}, py:eval(Ctx, <<"x">>)),
        ?assertMatch({error, {"NameError", _}},
                     erpc:call(Node, ?MODULE, remote_eval, [Ctx, <<"x">>], ?RPC_TIMEOUT)),
        %% And the peer process does not see this process's globals.
        ok = py:exec(Ctx, <<"x = 'set on this node'">>),
        ?assertEqual({ok, <<"set from the peer">>}, ask(Actor, {eval, <<"x">>})),
        ?assertEqual({ok, <<"set on this node">>}, py:eval(Ctx, <<"x">>)),
        ok = stop_actor(Actor)
    end).

remote_env_dropped() ->
    [{doc, "The environment of a peer process on a context of this node is dropped "
      "when that process exits, and when the whole peer node goes away."}].
remote_env_dropped(_Config) ->
    {ok, Ctx} = py_context:start_link(#{}),
    Start = envs(Ctx),
    Result = with_peer(fun(_Peer, Node) ->
        A = spawn_link(Node, pyport_test, actor, [self(), Ctx]),
        ok = ask(A, {exec, <<"z = 1">>}),
        ?assertEqual(Start + 1, envs(Ctx)),
        ok = stop_actor(A),
        ?assertEqual(ok, envs_become(Ctx, Start)),
        B = spawn(Node, pyport_test, actor, [self(), Ctx]),
        ok = ask(B, {exec, <<"z = 2">>}),
        ?assertEqual(Start + 1, envs(Ctx)),
        ok
    end),
    %% with_peer stopped the node; B died with it.
    Result =:= ok andalso ?assertEqual(ok, envs_become(Ctx, Start)),
    ok = py_context:stop(Ctx),
    Result.

local_caller_remote_context() ->
    [{doc, "pyport started on a peer node: this node calls one of its contexts "
      "(math.sqrt, then an exec/eval pair), served by the peer's own OS process."}].
local_caller_remote_context(_Config) ->
    with_peer(fun(_Peer, Node) ->
        {ok, _} = erpc:call(Node, application, ensure_all_started, [pyport], ?RPC_TIMEOUT),
        RemoteCtx = erpc:call(Node, py, context, [1], ?RPC_TIMEOUT),
        ?assertEqual(Node, node(RemoteCtx)),
        ?assertEqual({ok, 4.0}, py:call(RemoteCtx, math, sqrt, [16])),
        ok = py:exec(RemoteCtx, <<"y = 7">>),
        ?assertEqual({ok, 42}, py:eval(RemoteCtx, <<"y * 6">>)),
        ?assertEqual({ok, 3.0}, py:call(RemoteCtx, math, sqrt, [9], #{timeout => ?RPC_TIMEOUT})),
        %% Its OS process is the peer's, not one of this node's.
        #{os_pid := RemoteOsPid} = py_context:info(RemoteCtx),
        ?assertEqual({ok, RemoteOsPid}, py:eval(RemoteCtx, <<"__import__('os').getpid()">>)),
        Local = [maps:get(os_pid, py_context:info(C))
                 || C <- py_context_router:contexts(default) ++ py_context_router:contexts(io)],
        ?assertNot(lists:member(RemoteOsPid, Local)),
        %% y belongs to this process's environment on the remote context.
        ?assertMatch({error, {"NameError", _}},
                     erpc:call(Node, ?MODULE, remote_eval, [RemoteCtx, <<"y">>], ?RPC_TIMEOUT)),
        ok
    end).

remote_timeout() ->
    [{doc, "A call across nodes with a timeout (this node to a peer context, and a "
      "peer process to a context of this node) returns {error, timeout} and nothing "
      "arrives in the caller's mailbox later."}].
remote_timeout(_Config) ->
    with_peer(fun(_Peer, Node) ->
        {ok, _} = erpc:call(Node, application, ensure_all_started, [pyport], ?RPC_TIMEOUT),
        RemoteCtx = erpc:call(Node, py, context, [1], ?RPC_TIMEOUT),
        ?assertEqual({error, timeout},
                     py:call(RemoteCtx, time, sleep, [?SLEEP_S], #{timeout => ?SHORT_TIMEOUT})),
        ok = assert_quiet_mailbox(),
        ?assertEqual({ok, 4.0}, py:call(RemoteCtx, math, sqrt, [16])),

        Ctx = py:context(1),
        ?assertEqual({{error, timeout}, {messages, []}},
                     erpc:call(Node, ?MODULE, remote_timeout_call, [Ctx, ?SHORT_TIMEOUT],
                               ?RPC_TIMEOUT)),
        ?assertEqual({ok, 4.0}, py:call(Ctx, math, sqrt, [16])),
        ok
    end).

remote_node_down() ->
    [{doc, "A call in flight on a context of a peer node that goes away ends with "
      "{error, {context_died, _}} as soon as the node is gone, not at a timeout."}].
remote_node_down(_Config) ->
    with_peer(fun(Peer, Node) ->
        {ok, _} = erpc:call(Node, application, ensure_all_started, [pyport], ?RPC_TIMEOUT),
        RemoteCtx = erpc:call(Node, py, context, [1], ?RPC_TIMEOUT),
        Self = self(),
        Sleep = fun() -> py:call(RemoteCtx, time, sleep, [?LONG_SLEEP_S]) end,
        Caller = spawn_link(fun() -> Self ! {caller, Sleep()} end),
        ok = until(fun() -> maps:get(current, py_context:info(RemoteCtx)) =/= idle end),
        ok = peer:stop(Peer),
        receive
            {caller, Result} -> ?assertMatch({error, {context_died, _}}, Result)
        after ?RPC_TIMEOUT ->
            error({caller_still_waiting, Caller})
        end,
        ok
    end).

%%% ===========================================================================
%%% Run on the peer node
%%% ===========================================================================

%% @private
remote_call(Ctx, M, F, A, Opts) ->
    py:call(Ctx, M, F, A, Opts).

%% @private
remote_eval(Ctx, Code) ->
    py:eval(Ctx, Code).

%% @private Times out on Ctx, then reports the result and whatever reached the
%% mailbox during ?QUIET_MS.
remote_timeout_call(Ctx, Timeout) ->
    Result = py:call(Ctx, time, sleep, [?SLEEP_S], #{timeout => Timeout}),
    timer:sleep(?QUIET_MS),
    {Result, process_info(self(), messages)}.

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

%% Starts a peer node that can load pyport (and this suite), runs
%% Fun(Peer, Node) and stops the node (unless Fun did). A node that cannot
%% start is a skip, never a pass.
with_peer(Fun) ->
    Ebin = filename:dirname(code:which(py)),
    Name = peer:random_name(?MODULE),
    %% A peer that fails to boot exits; trap that exit while starting so the
    %% failure becomes a skip reason instead of killing the case.
    Trap = process_flag(trap_exit, true),
    Started = try peer:start_link(#{name => Name, args => ["-pa", Ebin],
                                    wait_boot => ?PEER_BOOT_MS})
              catch Class:Reason -> {error, {Class, Reason}}
              end,
    process_flag(trap_exit, Trap),
    receive {'EXIT', _, Exit} when element(1, Started) =:= error -> ok
    after 0 -> Exit = none
    end,
    case Started of
        {ok, Peer, Node} ->
            try
                ok = load_suite(Node),
                Fun(Peer, Node)
            after
                is_process_alive(Peer) andalso peer:stop(Peer)
            end;
        {error, Why} ->
            {skip, lists:flatten(io_lib:format("peer cannot start a node here: ~0p (~0p)",
                                               [Why, Exit]))}
    end.

load_suite(Node) ->
    lists:foreach(
      fun(M) ->
              {Mod, Bin, File} = code:get_object_code(M),
              {module, Mod} = erpc:call(Node, code, load_binary, [Mod, File, Bin], ?RPC_TIMEOUT)
      end, [?MODULE, pyport_test]).

envs(Ctx) ->
    maps:get(envs, py_context:info(Ctx)).

envs_become(Ctx, Expected) ->
    envs_become(Ctx, Expected, erlang:monotonic_time(millisecond) + ?EVENTUALLY_MS).

envs_become(Ctx, Expected, Deadline) ->
    case envs(Ctx) of
        Expected -> ok;
        Other ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> {still, Other, expected, Expected};
                false -> timer:sleep(?POLL_MS), envs_become(Ctx, Expected, Deadline)
            end
    end.

until(Fun) ->
    until(Fun, erlang:monotonic_time(millisecond) + ?EVENTUALLY_MS).

until(Fun, Deadline) ->
    case Fun() of
        true -> ok;
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> {error, deadline};
                false -> timer:sleep(?POLL_MS), until(Fun, Deadline)
            end
    end.

%% Waits ?QUIET_MS, then checks that nothing at all reached the mailbox.
assert_quiet_mailbox() ->
    timer:sleep(?QUIET_MS),
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ok.

ask(Actor, Request) -> pyport_test:ask(Actor, Request, ?RPC_TIMEOUT).

stop_actor(Actor) -> pyport_test:stop_actor(Actor, ?RPC_TIMEOUT).
