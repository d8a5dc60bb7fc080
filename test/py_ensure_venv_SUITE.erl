%% py:ensure_venv/2,3 offline: the test builds wheels itself, names them in a
%% requirements file, and pip installs them with PIP_NO_INDEX (no network).
%% Creation, activation in the default pool, an existing venv kept (new
%% requirements installed into it), force, and a failing install.
-module(py_ensure_venv_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([creates_installs_activates/0, creates_installs_activates/1,
         existing_venv_kept/0, existing_venv_kept/1,
         force_recreates/0, force_recreates/1,
         failing_install/0, failing_install/1]).

%% Creating a venv (with pip) and installing into it is slow on a loaded machine.
-define(CASE_TIMEOUT, {minutes, 6}).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [creates_installs_activates, existing_venv_kept, force_recreates, failing_install].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Old = os:getenv("PIP_NO_INDEX"),
    true = os:putenv("PIP_NO_INDEX", "1"),
    [{old_no_index, Old} | Config].

end_per_suite(Config) ->
    case ?config(old_no_index, Config) of
        false -> os:unsetenv("PIP_NO_INDEX");
        Old -> os:putenv("PIP_NO_INDEX", Old)
    end,
    ok = application:stop(pyport).

end_per_testcase(_Case, _Config) ->
    _ = py:deactivate_venv(),
    ok.

creates_installs_activates() ->
    [{doc, "ensure_venv creates the venv (pyvenv.cfg), installs the wheel the "
      "requirements file names, and activates the venv in every context of the "
      "default pool: the package imports everywhere and venv_info says so."}].
creates_installs_activates(Config) ->
    Dir = case_dir(Config, "create"),
    Wheel = wheel(Dir, "offpkg_a", <<"VALUE = 'a from a wheel'\n">>),
    Req = requirements(Dir, [Wheel]),
    Venv = filename:join(Dir, "venv"),
    ?assertMatch({error, {"ModuleNotFoundError", _}}, py:eval(<<"__import__('offpkg_a')">>)),
    ok = py:ensure_venv(Venv, Req, [{installer, pip}]),
    ?assert(filelib:is_regular(filename:join(Venv, "pyvenv.cfg"))),
    [?assertEqual({C, {ok, <<"a from a wheel">>}},
                  {C, py:eval(C, <<"__import__('offpkg_a').VALUE">>)})
     || C <- py_context_router:contexts()],
    {ok, Info} = py:venv_info(),
    ?assertMatch(#{<<"active">> := true, <<"site_packages">> := _, <<"sys_path">> := [_ | _]}, Info),
    ?assertEqual(list_to_binary(Venv), maps:get(<<"venv_path">>, Info)),
    ok.

existing_venv_kept() ->
    [{doc, "A second ensure_venv on an existing venv does not recreate it (a file put "
      "there stays) and installs the requirements added since."}].
existing_venv_kept(Config) ->
    Dir = case_dir(Config, "kept"),
    W1 = wheel(Dir, "offpkg_b1", <<"V = 1\n">>),
    Venv = filename:join(Dir, "venv"),
    ok = py:ensure_venv(Venv, requirements(Dir, [W1]), [{installer, pip}]),
    Marker = filename:join(Venv, "marker"),
    ok = file:write_file(Marker, <<"kept">>),
    ok = py:deactivate_venv(),
    W2 = wheel(Dir, "offpkg_b2", <<"V = 2\n">>),
    ok = py:ensure_venv(Venv, requirements(Dir, [W1, W2]), [{installer, pip}]),
    ?assert(filelib:is_regular(Marker)),
    ?assertEqual({ok, [1, 2]}, py:eval(<<"[__import__('offpkg_b1').V, __import__('offpkg_b2').V]">>)),
    ok.

force_recreates() ->
    [{doc, "`force' recreates the venv (what was put in it is gone) and installs the "
      "requirements again."}].
force_recreates(Config) ->
    Dir = case_dir(Config, "force"),
    W = wheel(Dir, "offpkg_c", <<"V = 'c'\n">>),
    Req = requirements(Dir, [W]),
    Venv = filename:join(Dir, "venv"),
    ok = py:ensure_venv(Venv, Req, [{installer, pip}]),
    Marker = filename:join(Venv, "marker"),
    ok = file:write_file(Marker, <<"old">>),
    ok = py:deactivate_venv(),
    ok = py:ensure_venv(Venv, Req, [{installer, pip}, force]),
    ?assertNot(filelib:is_regular(Marker)),
    ?assertEqual({ok, <<"c">>}, py:eval(<<"__import__('offpkg_c').V">>)),
    ok.

failing_install() ->
    [{doc, "A requirement pip cannot install is {error, {exit_code, Code, Output}} "
      "with pip's message, and the venv is not activated."}].
failing_install(Config) ->
    Dir = case_dir(Config, "failing"),
    Req = requirements(Dir, [filename:join(Dir, "missing-1.0-py3-none-any.whl")]),
    Venv = filename:join(Dir, "venv"),
    {error, {exit_code, Code, Output}} = py:ensure_venv(Venv, Req, [{installer, pip}]),
    ?assert(Code =/= 0),
    ?assertNotEqual(nomatch, binary:match(Output, <<"missing-1.0-py3-none-any.whl">>)),
    ?assertEqual({ok, #{<<"active">> => false}}, py:venv_info()),
    ok.

%%% Helpers

case_dir(Config, Name) ->
    Dir = filename:join(?config(priv_dir, Config), Name),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Dir.

requirements(Dir, Wheels) ->
    File = filename:join(Dir, "requirements.txt"),
    ok = file:write_file(File, ["# offline\n" | [[W, "\n"] || W <- Wheels]]),
    File.

%% A minimal pure-Python wheel (PEP 427) with one package, built here.
wheel(Dir, Name, InitPy) ->
    DistInfo = Name ++ "-1.0.dist-info",
    Files = [{Name ++ "/__init__.py", InitPy},
             {DistInfo ++ "/METADATA",
              iolist_to_binary(["Metadata-Version: 2.1\nName: ", Name, "\nVersion: 1.0\n"])},
             {DistInfo ++ "/WHEEL",
              <<"Wheel-Version: 1.0\nGenerator: py_ensure_venv_SUITE\nRoot-Is-Purelib: true\n"
                "Tag: py3-none-any\n">>}],
    Record = iolist_to_binary(
               [[Path, ",sha256=", b64url(crypto:hash(sha256, Data)), ",",
                 integer_to_list(byte_size(Data)), "\n"] || {Path, Data} <- Files]
               ++ [DistInfo, "/RECORD,,\n"]),
    Whl = filename:join(Dir, Name ++ "-1.0-py3-none-any.whl"),
    {ok, _} = zip:create(Whl, [{P, D} || {P, D} <- Files ++ [{DistInfo ++ "/RECORD", Record}]]),
    Whl.

b64url(Bin) ->
    << <<(case C of $+ -> $-; $/ -> $_; _ -> C end)>> || <<C>> <= base64:encode(Bin), C =/= $= >>.
