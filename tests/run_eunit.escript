#!/usr/bin/env escript
%% Runs the EUnit tests of one module (pure modules only) and exits 0 or 1.
%% Usage: run_eunit.escript APP_DIR TEST_DIR MODULE
-mode(compile).

main([AppDir, TestDir, Module]) ->
    true = code:add_patha(filename:join(AppDir, "ebin")),
    Out = filename:join(filename:dirname(AppDir), "eunit_ebin"),
    ok = filelib:ensure_path(filename:join(Out, "x")),
    {ok, Mod} = compile:file(filename:join(TestDir, Module),
                             [{outdir, Out}, debug_info, report, return_errors,
                              {i, filename:join(TestDir, "../include")}]),
    true = code:add_patha(Out),
    case eunit:test(Mod, [verbose]) of
        ok -> halt(0);
        _ -> halt(1)
    end.
