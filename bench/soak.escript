#!/usr/bin/env escript
%%! -noshell
%% make soak: pyport under everything at once for a long time (not part of
%% make test). 64 callers mix calls that call back into Erlang, calls that time
%% out, streams, prints and plain evals on one context, while the context is
%% restarted gracefully and killed in turn and a Python thread floods output and
%% erlang.send messages now and then. At the end it prints the calls made, those
%% lost (timed out without being meant to, or never answered: must be 0), those
%% answered twice (a stray message after the answer: must be 0), those run twice
%% (must be 0), and the node's memory drift; and writes the summary to
%% bench/results/soak-<date>-<commit>-<seconds>s.md.
%%
%% Usage: escript bench/soak.escript BUILD_DIR [SECONDS]   (default 1800)
-mode(compile).

-define(CALLERS, 64).
%% Chaos: a graceful restart or a kill every this many ms, alternately.
-define(CHAOS_MS, 2000).
%% A flood of output and messages from a Python thread every this many ms, for
%% FLOOD_S seconds.
-define(FLOOD_EVERY_MS, 60000).
-define(FLOOD_S, 5).
%% Node memory is sampled this often.
-define(SAMPLE_MS, 5000).
%% Timeout of calls that are not meant to time out (a lost call shows as one).
-define(CALL_TIMEOUT, 60000).

-define(PRELOAD, <<"import erlang, time, threading, random, itertools\n"
                   "def f(tok):\n"
                   "    erlang.state_incr(tok)\n"
                   "    return tok\n"
                   "def slow(tok):\n"
                   "    erlang.state_incr(tok)\n"
                   "    time.sleep(0.2)\n"
                   "    return tok\n"
                   "def talk(tok):\n"
                   "    erlang.state_incr(tok)\n"
                   "    for i in range(20): print('soak', tok, i)\n"
                   "    return tok\n"
                   "def flood(seconds, pid):\n"
                   "    def run():\n"
                   "        end = time.time() + seconds\n"
                   "        n = 0\n"
                   "        while time.time() < end:\n"
                   "            print('flood', n)\n"
                   "            erlang.send(pid, ('flood', n))\n"
                   "            n += 1\n"
                   "    threading.Thread(target=run, daemon=True).start()\n"
                   "    return True\n">>).

main([Build]) -> main([Build, "1800"]);
main([Build, Seconds]) ->
    true = code:add_patha(filename:join([Build, "pyport", "ebin"])),
    application:load(pyport),
    application:set_env(pyport, start_pools, false),
    {ok, _} = application:ensure_all_started(pyport),
    logger:set_primary_config(level, error),
    Duration = list_to_integer(Seconds) * 1000,
    {ok, Ctx} = py_context:start_link(#{preload => ?PRELOAD, name => soak_ctx}),
    py:state_clear(),
    Mem0 = erlang:memory(total),
    Me = self(),
    Deadline = erlang:monotonic_time(millisecond) + Duration,
    Callers = [spawn_link(fun() -> caller(Ctx, Me, I, 0, Deadline, []) end)
               || I <- lists:seq(1, ?CALLERS)],
    Sink = spawn_link(fun() -> sink(0) end),
    Sampler = spawn_link(fun() -> sampler(Mem0, Mem0) end),
    chaos(Ctx, Sink, Deadline, 0, erlang:monotonic_time(millisecond)),
    All = lists:append([receive {done, P, L} -> L
                        after ?CALL_TIMEOUT * 2 -> [{P, hung, never}]
                        end || P <- Callers]),
    Sampler ! {stop, self()},
    MemPeak = receive {peak, P1} -> P1 end,
    timer:sleep(2000),
    erlang:garbage_collect(),
    MemEnd = erlang:memory(total),
    report(Build, Ctx, All, Mem0, MemPeak, MemEnd, Duration).

%% One caller: a random mix of requests until the deadline. Each result is
%% recorded with what kind of request it was.
caller(Ctx, Parent, I, N, Deadline, Acc) ->
    case erlang:monotonic_time(millisecond) >= Deadline of
        true ->
            Parent ! {done, self(), Acc};
        false ->
            Tok = I * 100000000 + N,
            {Kind, R} = one(rand:uniform(10), Ctx, Tok),
            {messages, Stray} = process_info(self(), messages),
            caller(Ctx, Parent, I, N + 1, Deadline, [{Tok, Kind, R, Stray} | Acc])
    end.

one(K, Ctx, Tok) when K =< 5 ->
    {callback, check(Tok, py:call(Ctx, '__main__', f, [Tok], #{timeout => ?CALL_TIMEOUT}))};
one(6, Ctx, Tok) ->
    %% Meant to time out: slow() takes 200 ms.
    {timeout, case py:call(Ctx, '__main__', slow, [Tok], #{timeout => 50}) of
                  {error, timeout} -> ok;
                  Other -> check(Tok, Other)
              end};
one(7, Ctx, _Tok) ->
    {stream, case py_stream:collect(py_stream:start_eval(Ctx, <<"iter(range(50))">>, #{}, #{}),
                                    ?CALL_TIMEOUT, []) of
                 {ok, L} when length(L) =:= 50 -> ok;
                 Other -> Other
             end};
one(8, Ctx, Tok) ->
    {print, check(Tok, py:call(Ctx, '__main__', talk, [Tok], #{timeout => ?CALL_TIMEOUT}))};
one(_, Ctx, _Tok) ->
    {eval, case py:eval(Ctx, <<"sum(range(100))">>, #{}, ?CALL_TIMEOUT) of
               {ok, 4950} -> ok;
               Other -> Other
           end}.

check(Tok, {ok, Tok}) -> ok;
check(_, Other) -> Other.

%% Restarts and kills in turn; starts a flood now and then.
chaos(Ctx, Sink, Deadline, N, LastFlood) ->
    Now = erlang:monotonic_time(millisecond),
    case Now >= Deadline of
        true ->
            ok;
        false ->
            timer:sleep(?CHAOS_MS),
            _ = case N rem 2 of
                    0 -> catch py_context:restart(Ctx);
                    1 -> catch py_context:kill(Ctx)
                end,
            Flood = case Now - LastFlood >= ?FLOOD_EVERY_MS of
                        true ->
                            _ = py:call(Ctx, '__main__', flood, [?FLOOD_S, Sink],
                                        #{timeout => ?CALL_TIMEOUT}),
                            Now;
                        false ->
                            LastFlood
                    end,
            chaos(Ctx, Sink, Deadline, N + 1, Flood)
    end.

%% A destination of the flood's messages that reads slowly.
sink(N) ->
    receive
        _ -> timer:sleep(1), sink(N + 1)
    end.

sampler(Mem0, Peak) ->
    receive
        {stop, From} -> From ! {peak, Peak}
    after ?SAMPLE_MS ->
        sampler(Mem0, max(Peak, erlang:memory(total)))
    end.

%% Every call stores its token with py:state_incr (how "run twice" is seen),
%% so the state table grows with the calls made: that is not a leak.
state_table_bytes() ->
    case ets:info(py_state, memory) of
        undefined -> 0;
        Words -> Words * erlang:system_info(wordsize)
    end.

report(Build, Ctx, All, Mem0, MemPeak, MemEnd, Duration) ->
    Runs = maps:from_list([{K, V} || K <- py:state_keys(), {ok, V} <- [py:state_fetch(K)]]),
    Made = length(All),
    Hung = [A || {_, hung, never} = A <- All],
    Expected = fun({_, timeout, ok, _}) -> true;
                  ({_, _, ok, _}) -> true;
                  ({_, _, {error, {context_died, _}}, _}) -> true;
                  (_) -> false
               end,
    Lost = [A || A <- All, not Expected(A)] ++ Hung,
    Dup = [A || {_, _, _, Stray} = A <- All, is_list(Stray), Stray =/= []],
    Twice = [T || {T, _, _, _} <- All, is_integer(T), maps:get(T, Runs, 0) > 1],
    ByKind = lists:foldl(fun({_, K, R, _}, M) ->
                                 Key = {K, case R of ok -> ok; {error, {context_died, _}} -> died;
                                                     _ -> other end},
                                 maps:update_with(Key, fun(X) -> X + 1 end, 1, M)
                         end, #{}, [A || {_, _, _, _} = A <- All]),
    Info = py_context:info(Ctx),
    Commit = string:trim(os:cmd("git rev-parse --short HEAD")),
    Lines =
        [io_lib:format("# pyport soak run~n~n", []),
         io_lib:format("- date: ~s~n", [calendar:system_time_to_rfc3339(erlang:system_time(second))]),
         io_lib:format("- commit: ~s~n", [Commit]),
         io_lib:format("- machine: ~s, ~b schedulers~n",
                       [string:trim(os:cmd("uname -srm")), erlang:system_info(schedulers_online)]),
         io_lib:format("- duration: ~b s, ~b callers, chaos every ~b ms (restart/kill), flood every ~b s~n~n",
                       [Duration div 1000, ?CALLERS, ?CHAOS_MS, ?FLOOD_EVERY_MS div 1000]),
         io_lib:format("| figure | value |~n|---|---|~n", []),
         io_lib:format("| calls made | ~b |~n", [Made]),
         io_lib:format("| lost (must be 0) | ~b |~n", [length(Lost)]),
         io_lib:format("| duplicated answers (must be 0) | ~b |~n", [length(Dup)]),
         io_lib:format("| run twice (must be 0) | ~b |~n", [length(Twice)]),
         io_lib:format("| node memory start / peak / end (MB) | ~.1f / ~.1f / ~.1f |~n",
                       [Mem0 / 1.0e6, MemPeak / 1.0e6, MemEnd / 1.0e6]),
         io_lib:format("| memory drift (MB) | ~.1f |~n", [(MemEnd - Mem0) / 1.0e6]),
         io_lib:format("| of which the soak's own records: run tokens in py:state / results list (MB) | ~.1f / ~.1f |~n",
                       [state_table_bytes() / 1.0e6,
                        erts_debug:flat_size(All) * erlang:system_info(wordsize) / 1.0e6]),
         io_lib:format("| context restarts | ~b |~n", [maps:get(restarts, Info)]),
         io_lib:format("| output dropped / sends dropped | ~b / ~b |~n~n",
                       [maps:get(output_dropped, Info), maps:get(sends_dropped, Info)]),
         io_lib:format("Results by kind: ~p~n", [ByKind]),
         io_lib:format("~nFirst lost: ~P~n", [lists:sublist(Lost, 5), 20])],
    Text = iolist_to_binary(Lines),
    io:format("~s", [Text]),
    _ = Build,
    Out = filename:join(["bench", "results",
                         "soak-" ++ lists:sublist(calendar:system_time_to_rfc3339(
                                                   erlang:system_time(second)), 10)
                         ++ "-" ++ Commit ++ "-" ++ integer_to_list(Duration div 1000)
                         ++ "s.md"]),
    ok = file:write_file(Out, Text),
    io:format("written to ~s~n", [Out]),
    halt(case {Lost, Dup, Twice} of {[], [], []} -> 0; _ -> 1 end).
