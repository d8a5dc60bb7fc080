%% @doc Helpers shared by the Common Test suites of pyport (not a suite itself):
%% contexts the test owns, callers whose answer and later mailbox the test can
%% inspect, OS-process checks, and polling with a deadline.
-module(pyport_test).

-export([start_ctx/1, stop_ctx/1, spawn_caller/1, answer/2, answer_at/2, mailbox/2,
         os_pid_alive/1, wait_until/2, eventually/3,
         start_actor/1, actor/2, ask/3, stop_actor/2, on_scheduler/3, load_app/0,
         examples_dir/2]).

%% Interval between two looks of wait_until/2.
-define(POLL_MS, 20).

%% @doc Loads the pyport application unless it is loaded already: under
%% `rebar3 ct' every suite runs in one node, where an earlier suite loaded it.
-spec load_app() -> ok.
load_app() ->
    case application:load(pyport) of
        ok -> ok;
        {error, {already_loaded, pyport}} -> ok
    end.

%% @doc The directory `examples/Sub' of the checkout, found from a suite's data
%% directory upwards (test/X_SUITE_data under ctest; deeper under `_build' with
%% rebar3 ct). Fails the case when there is none.
-spec examples_dir(string(), string()) -> string().
examples_dir(Data, Sub) ->
    find_examples(filename:absname(Data), Sub, 12).

find_examples(_, Sub, 0) ->
    error({examples_dir_not_found, Sub});
find_examples(Dir, Sub, N) ->
    Candidate = filename:join([Dir, "examples", Sub]),
    case filelib:is_dir(Candidate) of
        true -> Candidate;
        false when Dir =:= "/" -> error({examples_dir_not_found, Sub});
        false -> find_examples(filename:dirname(Dir), Sub, N - 1)
    end.

%% @doc Starts a context not linked to the test process (faults must not kill it).
-spec start_ctx(map()) -> pid().
start_ctx(Opts) ->
    {ok, Ctx} = py_context:start_link(Opts),
    unlink(Ctx),
    Ctx.

%% @doc Stops a context started with start_ctx/1.
-spec stop_ctx(pid()) -> ok.
stop_ctx(Ctx) ->
    ok = py_context:stop(Ctx).

%% @doc Runs Fun in a new process, which sends its result (and when it had it),
%% then stays alive to report what else reached its mailbox (mailbox/2).
-spec spawn_caller(fun(() -> term())) -> pid().
spawn_caller(Fun) ->
    Parent = self(),
    spawn(fun() ->
                  R = Fun(),
                  Parent ! {answer, self(), R, erlang:monotonic_time(millisecond)},
                  receive
                      {mailbox, From} ->
                          {messages, Ms} = process_info(self(), messages),
                          From ! {mailbox, self(), Ms}
                  end
          end).

%% @doc The result of a spawn_caller/1 process; fails the case after Timeout ms.
-spec answer(pid(), timeout()) -> term().
answer(Pid, Timeout) ->
    element(1, answer_at(Pid, Timeout)).

%% @doc The result and the monotonic time (ms) the caller had it.
-spec answer_at(pid(), timeout()) -> {term(), integer()}.
answer_at(Pid, Timeout) ->
    receive {answer, Pid, R, T} -> {R, T}
    after Timeout -> ct:fail({no_answer, Pid})
    end.

%% @doc What reached the mailbox of a spawn_caller/1 process after its answer.
-spec mailbox(pid(), timeout()) -> [term()].
mailbox(Pid, Timeout) ->
    Pid ! {mailbox, self()},
    receive {mailbox, Pid, Ms} -> Ms
    after Timeout -> ct:fail({mailbox_silent, Pid})
    end.

%% @doc Whether an OS process runs (a zombie has exited; only its reaping is pending).
-spec os_pid_alive(integer()) -> boolean().
os_pid_alive(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, Stat} ->
            [_, AfterComm] = string:split(Stat, ") ", trailing),
            not lists:prefix("Z", binary_to_list(AfterComm));
        {error, _} ->
            false
    end.

%% @doc Polls Fun until it returns true; fails the case after Timeout ms.
-spec wait_until(fun(() -> boolean()), non_neg_integer()) -> ok.
wait_until(Fun, Timeout) ->
    wait_until(Fun, erlang:monotonic_time(millisecond) + Timeout, Timeout).

wait_until(Fun, Deadline, Timeout) ->
    case Fun() of
        true -> ok;
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> ct:fail({condition_not_met_within_ms, Timeout});
                false -> timer:sleep(?POLL_MS), wait_until(Fun, Deadline, Timeout)
            end
    end.

%% @doc Polls Fun until it returns Expected; fails the case after Timeout ms with
%% the last value seen.
-spec eventually(fun(() -> term()), term(), non_neg_integer()) -> ok.
eventually(Fun, Expected, Timeout) ->
    eventually_until(Fun, Expected, erlang:monotonic_time(millisecond) + Timeout).

eventually_until(Fun, Expected, Deadline) ->
    case Fun() of
        Expected -> ok;
        Other ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> ct:fail({not_eventually, Expected, Other});
                false -> timer:sleep(?POLL_MS), eventually_until(Fun, Expected, Deadline)
            end
    end.

%% @doc Starts (linked) an actor for Ctx: a process that runs the test's requests
%% on Ctx one at a time, so that it keeps one environment across steps.
-spec start_actor(pid()) -> pid().
start_actor(Ctx) ->
    Parent = self(),
    spawn_link(fun() -> actor(Parent, Ctx) end).

%% @doc The actor's loop (exported so that it can run on another node).
-spec actor(pid(), pid()) -> ok.
actor(Parent, Ctx) ->
    receive
        {Parent, Ref, {exec, Code}} -> Parent ! {Ref, py:exec(Ctx, Code)}, actor(Parent, Ctx);
        {Parent, Ref, {eval, Code}} -> Parent ! {Ref, py:eval(Ctx, Code)}, actor(Parent, Ctx);
        {Parent, Ref, {call, M, F, A}} -> Parent ! {Ref, py:call(Ctx, M, F, A)}, actor(Parent, Ctx);
        {Parent, stop} -> ok
    end.

%% @doc Runs a request ({exec, Code}, {eval, Code}, {call, M, F, A}) in an actor.
-spec ask(pid(), tuple(), timeout()) -> term().
ask(Actor, Request, Timeout) ->
    Ref = make_ref(),
    Actor ! {self(), Ref, Request},
    receive {Ref, Result} -> Result
    after Timeout -> error({actor_timeout, Request})
    end.

%% @doc Stops an actor and waits until it is gone.
-spec stop_actor(pid(), timeout()) -> ok.
stop_actor(Actor, Timeout) ->
    Mref = erlang:monitor(process, Actor),
    Actor ! {self(), stop},
    receive {'DOWN', Mref, process, Actor, _} -> ok
    after Timeout -> error({actor_did_not_stop, Actor})
    end.

%% @doc Runs Fun in a new process pinned to scheduler Sched and returns its result;
%% a failure in Fun fails the caller with the same reason.
-spec on_scheduler(pos_integer(), fun(() -> term()), timeout()) -> term().
on_scheduler(Sched, Fun, Timeout) ->
    {Pid, Mref} =
        spawn_monitor(fun() ->
                              process_flag(scheduler, Sched),
                              erlang:yield(),
                              Sched = erlang:system_info(scheduler_id),
                              exit({done, Fun()})
                      end),
    receive
        {'DOWN', Mref, process, Pid, {done, Result}} -> Result;
        {'DOWN', Mref, process, Pid, Reason} -> error({helper_failed, Reason})
    after Timeout ->
        exit(Pid, kill),
        error({helper_timeout, Sched})
    end.
