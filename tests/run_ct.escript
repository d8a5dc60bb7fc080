#!/usr/bin/env escript
%% Runs one Common Test suite against an application directory and exits with a
%% status ctest understands: 0 all passed, 1 a case failed or was auto-skipped
%% (or a sanitizer wrote a report), 77 some case skipped itself (reported as
%% skipped, never as passed).
%%
%% Usage: run_ct.escript APP_DIR SUITE_DIR SUITE LOG_DIR [SANITIZER_LOG_DIR]
-mode(compile).

main([AppDir, SuiteDir, Suite, LogDir | Rest]) ->
    ok = filelib:ensure_dir(filename:join(LogDir, "x")),
    true = code:add_patha(filename:join(AppDir, "ebin")),
    os:putenv("PYPORT_APP_DIR", AppDir),
    start_distribution(Suite),
    SanDir = case Rest of
                 [D] -> ok = filelib:ensure_dir(filename:join(D, "x")), D;
                 [] -> undefined
             end,
    Result = ct:run_test([{dir, SuiteDir},
                          {suite, list_to_atom(Suite)},
                          {logdir, LogDir},
                          {auto_compile, true},
                          {include, [filename:join(SuiteDir, "../include")]},
                          {readable, true}]),
    Reports = sanitizer_reports(SanDir),
    io:format("~n~s: ~p~n", [Suite, Result]),
    [io:format("sanitizer report ~s:~n~s~n", [F, element(2, file:read_file(F))]) || F <- Reports],
    halt(status(Result, Reports));
main(_) ->
    io:format("usage: run_ct.escript APP_DIR SUITE_DIR SUITE LOG_DIR [SANITIZER_LOG_DIR]~n"),
    halt(2).

start_distribution(Suite) ->
    _ = os:cmd("epmd -daemon"),
    Name = list_to_atom("ct_" ++ Suite ++ "_" ++ os:getpid()),
    {ok, _} = net_kernel:start([Name, shortnames]),
    ok.

sanitizer_reports(undefined) -> [];
sanitizer_reports(Dir) -> [F || F <- filelib:wildcard(filename:join(Dir, "*")), filelib:is_regular(F)].

status({_Ok, 0, {0, 0}}, []) -> 0;
status({_Ok, 0, {_User, 0}}, []) -> 77;
status(_, _) -> 1.
