%% OS facilities inside a context: subprocess, os.fork + os.waitpid and
%% multiprocessing with the 'spawn' start method all work, and the context keeps
%% serving afterwards.
-module(py_os_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([subprocess_run/0, subprocess_run/1,
         fork_and_waitpid/0, fork_and_waitpid/1,
         multiprocessing_spawn_pool/0, multiprocessing_spawn_pool/1]).

%% Timeout of calls that must succeed (multiprocessing starts two interpreters).
-define(CALL_TIMEOUT, 60000).

suite() -> [{timetrap, {minutes, 3}}].

all() -> [subprocess_run, fork_and_waitpid, multiprocessing_spawn_pool].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

init_per_testcase(_Case, Config) ->
    {ok, Ctx} = py_context:start_link(#{python_path => [?config(data_dir, Config)]}),
    [{ctx, Ctx} | Config].

end_per_testcase(_Case, Config) ->
    ok = py_context:stop(?config(ctx, Config)).

%%% ===========================================================================
%%% Cases
%%% ===========================================================================

subprocess_run() ->
    [{doc, "subprocess.run(['echo', 'hi'], capture_output=True).stdout == b'hi\\n'; the "
      "context serves afterwards."}].
subprocess_run(Config) ->
    Ctx = ?config(ctx, Config),
    Code = <<"__import__('subprocess').run(['echo', 'hi'], capture_output=True).stdout">>,
    ?assertEqual({ok, <<"hi\n">>}, py_context:eval(Ctx, Code, #{}, ?CALL_TIMEOUT)),
    ?assertMatch({ok, 0}, py_context:eval(Ctx, <<"__import__('subprocess').call(['true'])">>,
                                          #{}, ?CALL_TIMEOUT)),
    served(Ctx).

fork_and_waitpid() ->
    [{doc, "os.fork(): the child calls os._exit(7), the parent's os.waitpid sees exit "
      "status 7; the context is not disturbed (same os_pid, no restart)."}].
fork_and_waitpid(Config) ->
    Ctx = ?config(ctx, Config),
    #{os_pid := OsPid} = py_context:info(Ctx),
    Code = "import os\n"
           "pid = os.fork()\n"
           "if pid == 0:\n"
           "    os._exit(7)\n"
           "_, status = os.waitpid(pid, 0)\n"
           "code = os.waitstatus_to_exitcode(status)\n"
           "child = pid\n",
    ok = py_context:exec(Ctx, Code, ?CALL_TIMEOUT),
    ?assertEqual({ok, 7}, py_context:eval(Ctx, <<"code">>, #{}, ?CALL_TIMEOUT)),
    {ok, Child} = py_context:eval(Ctx, <<"child">>, #{}, ?CALL_TIMEOUT),
    ?assertNotEqual(OsPid, Child),
    served(Ctx),
    #{os_pid := OsPid, restarts := 0} = py_context:info(Ctx).

multiprocessing_spawn_pool() ->
    [{doc, "multiprocessing with the 'spawn' start method: Pool(2).map over a function "
      "from a module on python_path returns the right values from other processes."}].
multiprocessing_spawn_pool(Config) ->
    Ctx = ?config(ctx, Config),
    {ok, {Squares, WorkerPids, Parent}} =
        py_context:call(Ctx, pyport_mp_work, pool_map, [lists:seq(1, 10)], #{}, ?CALL_TIMEOUT),
    ?assertEqual([X * X || X <- lists:seq(1, 10)], Squares),
    ?assert(length(WorkerPids) >= 1),
    ?assertNot(lists:member(Parent, WorkerPids)),
    served(Ctx).

served(Ctx) ->
    ?assertEqual({ok, 2}, py_context:eval(Ctx, <<"1 + 1">>, #{}, ?CALL_TIMEOUT)).
