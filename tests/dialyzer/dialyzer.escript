#!/usr/bin/env escript
%% dialyzer.pyport: the application and a user's module that calls its public API
%% (tests/dialyzer/pyport_api_user.erl) are dialyzer clean, with the warnings
%% rebar3 dialyzer enables (error_handling, unknown) on top of dialyzer's own; and
%% that module still calls every exported function of the public modules.
%% The PLT of erts, kernel and stdlib is built once into PLT_DIR and reused.
%% Usage: dialyzer.escript APP_DIR USER_MODULE_SRC PLT_DIR     Exits 0 or 1.
-mode(compile).

-define(PUBLIC, [py, py_context, py_context_router, py_semaphore, py_import, py_preload]).
-define(PLT_APPS, [erts, kernel, stdlib]).

main([AppDir, UserSrc, PltDir]) ->
    ok = filelib:ensure_path(filename:join(PltDir, "x")),
    Plt = plt(PltDir),
    Ebin = filename:join(AppDir, "ebin"),
    UserBeam = compile_user(UserSrc, PltDir),
    Missing = not_called(Ebin, UserBeam),
    [io:format("not called by ~ts: ~ts:~ts/~b~n", [UserSrc, M, F, A]) || {M, F, A} <- Missing],
    Beams = filelib:wildcard(filename:join(Ebin, "*.beam")) ++ [UserBeam],
    io:format("dialyzer: ~b modules against ~ts~n", [length(Beams), Plt]),
    Warnings = dialyzer:run([{analysis_type, succ_typings}, {plts, [Plt]},
                             {files, Beams}, {from, byte_code},
                             {warnings, [error_handling, unknown]}]),
    [io:format("~ts", [dialyzer:format_warning(W, [{filename_opt, basename}])])
     || W <- Warnings],
    io:format("dialyzer: ~b warnings; ~b public functions not called~n",
              [length(Warnings), length(Missing)]),
    halt(case {Warnings, Missing} of {[], []} -> 0; _ -> 1 end);
main(_) ->
    io:format("usage: dialyzer.escript APP_DIR USER_MODULE_SRC PLT_DIR~n"),
    halt(2).

%% The PLT of the OTP applications pyport uses, named after the OTP release so an
%% upgrade builds a new one.
plt(PltDir) ->
    Plt = filename:join(PltDir, "otp" ++ erlang:system_info(otp_release) ++ ".plt"),
    case filelib:is_regular(Plt) of
        true ->
            Plt;
        false ->
            io:format("dialyzer: building ~ts (once)~n", [Plt]),
            Tmp = Plt ++ ".tmp",
            Dirs = [code:lib_dir(App, ebin) || App <- ?PLT_APPS],
            _ = dialyzer:run([{analysis_type, plt_build}, {output_plt, Tmp},
                              {files_rec, Dirs}]),
            ok = file:rename(Tmp, Plt),
            Plt
    end.

compile_user(Src, OutDir) ->
    {ok, Mod} = compile:file(Src, [debug_info, report, warnings_as_errors,
                                   {outdir, OutDir}]),
    filename:join(OutDir, atom_to_list(Mod) ++ ".beam").

%% Exported functions of the public modules that the user's module never calls.
not_called(Ebin, UserBeam) ->
    {ok, {_, [{abstract_code, {raw_abstract_v1, Forms}}]}} =
        beam_lib:chunks(UserBeam, [abstract_code]),
    Called = remote_calls(Forms, #{}),
    Exported = lists:append(
                 [[{M, F, A} || {F, A} <- exports(Ebin, M) -- callbacks(Ebin, M),
                                F =/= module_info] || M <- ?PUBLIC]),
    [MFA || MFA <- Exported, not maps:is_key(MFA, Called)].

%% The callbacks of the module's behaviours (gen_server's init/1 ...) are not API.
callbacks(Ebin, Mod) ->
    {ok, {_, [{attributes, Attrs}]}} = beam_lib:chunks(beam(Ebin, Mod), [attributes]),
    lists:append([B:behaviour_info(callbacks) ++ B:behaviour_info(optional_callbacks)
                  || {K, Bs} <- Attrs, K =:= behaviour orelse K =:= behavior, B <- Bs]).

beam(Ebin, Mod) ->
    filename:join(Ebin, atom_to_list(Mod) ++ ".beam").

exports(Ebin, Mod) ->
    {ok, {_, [{exports, Exports}]}} = beam_lib:chunks(beam(Ebin, Mod), [exports]),
    Exports.

remote_calls({call, _, {remote, _, {atom, _, M}, {atom, _, F}}, Args} = _, Acc) ->
    remote_calls(Args, Acc#{{M, F, length(Args)} => true});
remote_calls(T, Acc) when is_tuple(T) ->
    remote_calls(tuple_to_list(T), Acc);
remote_calls([H | T], Acc) ->
    remote_calls(T, remote_calls(H, Acc));
remote_calls(_, Acc) ->
    Acc.
