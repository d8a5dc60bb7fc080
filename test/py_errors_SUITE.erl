%% Error shapes (SPEC 1.4): Python exceptions as {error, {Type, Message}} with
%% strings, the traceback kept for py:last_error/0, malformed input answered
%% with an error without ever hurting the context, and payloads over the frame
%% limit refused in both directions.
-module(py_errors_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([exception_strings/0, exception_strings/1,
         custom_exception/0, custom_exception/1,
         awkward_exceptions/0, awkward_exceptions/1,
         last_error/0, last_error/1,
         improper_args/0, improper_args/1,
         non_list_args/0, non_list_args/1,
         bad_module_name/0, bad_module_name/1,
         name_list_not_string/0, name_list_not_string/1,
         routed_bad_names/0, routed_bad_names/1,
         bad_function_name/0, bad_function_name/1,
         non_map_kwargs/0, non_map_kwargs/1,
         code_not_iodata/0, code_not_iodata/1,
         unknown_module/0, unknown_module/1,
         unknown_function/0, unknown_function/1,
         syntax_errors/0, syntax_errors/1,
         too_large_argument/0, too_large_argument/1,
         too_large_result/0, too_large_result/1]).

%% Generous bound for a whole case (the sanitizer port is slower).
-define(CASE_TIMEOUT, {minutes, 3}).
%% The frame limit of the context that receives huge payloads.
-define(MAX_FRAME, 1048576).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [exception_strings, custom_exception, awkward_exceptions, last_error,
     improper_args, non_list_args, bad_module_name, name_list_not_string,
     routed_bad_names, bad_function_name, non_map_kwargs, code_not_iodata,
     unknown_module, unknown_function, syntax_errors, too_large_argument,
     too_large_result].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport).

%%% ===========================================================================
%%% Python exceptions
%%% ===========================================================================

exception_strings() ->
    [{doc, "Python exceptions come back as {error, {Type, Message}} where both are "
      "printable Unicode strings (never atoms), also for an empty or non-ASCII "
      "message, through call, eval and exec."}].
exception_strings(_Config) ->
    Ctx = py:context(1),
    Cases = [{py:eval(Ctx, <<"1 / 0">>), "ZeroDivisionError", "division by zero"},
             {py:call(Ctx, math, sqrt, [-1]), "ValueError", "math domain error"},
             {py:eval(Ctx, <<"{}['k']">>), "KeyError", "'k'"},
             {py:exec(Ctx, <<"raise ValueError()">>), "ValueError", ""},
             {py:exec(Ctx, <<"raise RuntimeError('h\\u00e9 \\u2713')">>),
              "RuntimeError", [$h, 16#e9, $\s, 16#2713]},
             {py:call(Ctx, builtins, int, [<<"zz">>]), "ValueError",
              "invalid literal for int() with base 10: 'zz'"}],
    lists:foreach(
      fun({Result, Type, Message}) ->
              ?assertMatch({error, {T, M}} when is_list(T) andalso is_list(M), Result),
              {error, {T, M}} = Result,
              ?assert(io_lib:printable_unicode_list(T)),
              ?assert(M =:= [] orelse io_lib:printable_unicode_list(M)),
              ?assertEqual({Type, Message}, {T, M})
      end, Cases),
    ok.

custom_exception() ->
    [{doc, "An exception class defined with exec keeps its class name as the Type, "
      "raised from call and from eval; a subclass of a builtin too."}].
custom_exception(_Config) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"class MyAppError(Exception):\n    pass\n"
                        "class MyLookup(KeyError):\n    pass\n"
                        "def fail(what):\n    raise MyAppError('failed: ' + what)\n">>),
    ?assertEqual({error, {"MyAppError", "failed: disk"}},
                 py:call(Ctx, '__main__', fail, [<<"disk">>])),
    ?assertEqual({error, {"MyAppError", "failed: net"}}, py:eval(Ctx, <<"fail('net')">>)),
    ?assertMatch({error, {"MyLookup", _}}, py:exec(Ctx, <<"raise MyLookup('k')">>)),
    ok.

awkward_exceptions() ->
    [{doc, "SystemExit, KeyboardInterrupt, an exception whose __str__ raises, one with "
      "a lone surrogate and one with non-string args still give {error, {Type, Message}} "
      "with strings; the context survives them all."}].
awkward_exceptions(_Config) ->
    survives(fun(Ctx) ->
        ok = py:exec(Ctx, <<"class BadStr(Exception):\n"
                            "    def __str__(self):\n"
                            "        raise ValueError('no str')\n">>),
        Cases = [{<<"raise SystemExit(3)">>, "SystemExit", "3"},
                 {<<"import sys; sys.exit()">>, "SystemExit", ""},
                 {<<"raise KeyboardInterrupt">>, "KeyboardInterrupt", ""},
                 {<<"raise ValueError(1, 2)">>, "ValueError", "(1, 2)"},
                 {<<"raise BadStr()">>, "BadStr", any},
                 {<<"raise ValueError('\\ud800')">>, "ValueError", any}],
        lists:foreach(
          fun({Code, Type, Message}) ->
                  Result = py:exec(Ctx, Code),
                  ?assertMatch({Code, {error, {Type, M}}} when is_list(M), {Code, Result}),
                  {error, {Type, M}} = Result,
                  ?assert(M =:= [] orelse io_lib:printable_unicode_list(M)),
                  Message =:= any orelse ?assertEqual({Code, Message}, {Code, M})
          end, Cases)
    end).

last_error() ->
    [{doc, "py:last_error() returns a map with the type, message and a traceback "
      "string of the caller's last Python exception."}].
last_error(_Config) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"def inner():\n    raise LookupError('deep')\n"
                        "def outer():\n    inner()\n">>),
    {error, {Type, Message}} = py:call(Ctx, '__main__', outer, []),
    Last = py:last_error(),
    ?assertMatch(#{type := _, message := _, traceback := _}, Last),
    #{type := LType, message := LMessage, traceback := Tb} = Last,
    ?assertEqual({"LookupError", "deep"}, {Type, Message}),
    ?assertEqual({Type, Message}, {LType, LMessage}),
    ?assert(io_lib:printable_unicode_list(Tb)),
    ?assertNotEqual(nomatch, string:find(Tb, "Traceback")),
    ?assertNotEqual(nomatch, string:find(Tb, "inner")),
    ?assertNotEqual(nomatch, string:find(Tb, "LookupError: deep")),
    %% A later exception replaces it.
    {error, _} = py:eval(Ctx, <<"1 / 0">>),
    ?assertMatch(#{type := "ZeroDivisionError"}, py:last_error()),
    ok.

%%% ===========================================================================
%%% Malformed input: an error reply, and the context keeps serving
%%% ===========================================================================

improper_args() ->
    [{doc, "An improper list as Args ([1|2]) is {error, {badarg, _}}; the context "
      "still answers and has not restarted."}].
improper_args(_Config) ->
    survives(fun(Ctx) ->
                     ?assertMatch({error, {badarg, _}}, py:call(Ctx, math, sqrt, [1 | 2])),
                     ?assertMatch({error, {badarg, _}}, py:call(Ctx, math, sqrt, [1, 2 | 3]))
             end).

non_list_args() ->
    [{doc, "Args that are not a list (an integer, a tuple, a map) give "
      "{error, {badarg, _}}; the context survives."}].
non_list_args(_Config) ->
    survives(fun(Ctx) ->
                     [?assertMatch({error, {badarg, _}}, py:call(Ctx, math, sqrt, Bad, #{}))
                      || Bad <- [16, {16}, #{a => 1}, <<"16">>]]
             end).

bad_module_name() ->
    [{doc, "A module name that is not an atom, binary or string (42, {a}, a pid) "
      "gives {error, {badarg, _}}; the context survives."}].
bad_module_name(_Config) ->
    survives(fun(Ctx) ->
                     [?assertMatch({error, {badarg, _}}, py:call(Ctx, Bad, sqrt, [16]))
                      || Bad <- [42, {a}, self(), 1.5]]
             end).

name_list_not_string() ->
    [{doc, "A module or function name that is a list but not a string ([a, b], a "
      "code point out of range) gives {error, {badarg, _}} to the caller rather than "
      "raising; the context survives."}].
name_list_not_string(_Config) ->
    survives(fun(Ctx) ->
                     [?assertMatch({error, {badarg, _}}, catch_call(Ctx, Bad, sqrt, [16]))
                      || Bad <- [[a, b], [-1], [16#110000]]],
                     [?assertMatch({error, {badarg, _}}, catch_call(Ctx, math, Bad, [16]))
                      || Bad <- [[a, b], [-1], [16#110000]]]
             end).

routed_bad_names() ->
    [{doc, "Routed py:call/3,4 (no explicit context) with a module or function name "
      "that is not a name gives {error, {badarg, _}} as the explicit form does, "
      "rather than raising in the caller; routed calls keep working."}].
routed_bad_names(_Config) ->
    Bad = [{42, sqrt}, {{a}, sqrt}, {[a, b], sqrt}, {math, 42}, {math, {sqrt}},
           {math, [a, b]}],
    lists:foreach(
      fun({M, F}) ->
              ?assertMatch({{M, F}, {error, {badarg, _}}}, {{M, F}, catch_routed(M, F, [16])})
      end, Bad),
    ?assertEqual({ok, 4.0}, py:call(math, sqrt, [16])),
    ok.

bad_function_name() ->
    [{doc, "A function name that is an invalid UTF-8 binary, or not a name at all, "
      "gives {error, {badarg, _}}; the context survives."}].
bad_function_name(_Config) ->
    survives(fun(Ctx) ->
                     [?assertMatch({error, {badarg, _}}, py:call(Ctx, math, Bad, [16]))
                      || Bad <- [<<255, 254>>, <<"sq", 192, "rt">>, 3.5, {sqrt}]]
             end).

non_map_kwargs() ->
    [{doc, "Keyword arguments that are not a map, or a map with keys that are not "
      "names, give {error, {badarg, _}}; the context survives."}].
non_map_kwargs(_Config) ->
    survives(fun(Ctx) ->
                     [?assertMatch({error, {badarg, _}},
                                   py:call(Ctx, builtins, int, [<<"7">>], #{kwargs => Bad}))
                      || Bad <- [[{base, 10}], base, 10, #{1 => 10}, #{<<255>> => 10}]]
             end).

code_not_iodata() ->
    [{doc, "Code that is not iodata (an integer, a tuple, an improper list) gives "
      "{error, {badarg, _}} for eval and exec; the context survives."}].
code_not_iodata(_Config) ->
    survives(fun(Ctx) ->
                     lists:foreach(
                       fun(Bad) ->
                               ?assertMatch({error, {badarg, _}}, py:eval(Ctx, Bad)),
                               ?assertMatch({error, {badarg, _}}, py:exec(Ctx, Bad))
                       end, [42, {a}, [<<"1">> | 2], 1.5])
             end).

unknown_module() ->
    [{doc, "An unknown module is {error, {\"ModuleNotFoundError\", _}}; the context "
      "survives."}].
unknown_module(_Config) ->
    survives(fun(Ctx) ->
                     ?assertMatch({error, {"ModuleNotFoundError", _}},
                                  py:call(Ctx, no_such_module_pyport, f, [])),
                     ?assertMatch({error, {"ModuleNotFoundError", _}},
                                  py:call(Ctx, <<"no_such_pkg.sub">>, f, []))
             end).

unknown_function() ->
    [{doc, "An unknown function of a real module is {error, {\"AttributeError\", _}}; "
      "the context survives."}].
unknown_function(_Config) ->
    survives(fun(Ctx) ->
                     ?assertMatch({error, {"AttributeError", _}},
                                  py:call(Ctx, math, no_such_function, [])),
                     ?assertMatch({error, {"AttributeError", _}},
                                  py:call(Ctx, <<"os.path">>, no_such_function, []))
             end).

syntax_errors() ->
    [{doc, "A SyntaxError in exec and in eval (including statements given to eval) "
      "is {error, {\"SyntaxError\", _}}; the context survives."}].
syntax_errors(_Config) ->
    survives(fun(Ctx) ->
                     ?assertMatch({error, {"SyntaxError", _}}, py:exec(Ctx, <<"def (:">>)),
                     ?assertMatch({error, {"SyntaxError", _}}, py:eval(Ctx, <<"1 +">>)),
                     ?assertMatch({error, {"SyntaxError", _}}, py:eval(Ctx, <<"x = 1">>)),
                     ?assertMatch({error, {"IndentationError", _}},
                                  py:exec(Ctx, <<"if True:\nx = 1">>))
             end).

%%% ===========================================================================
%%% Payloads over the frame limit
%%% ===========================================================================

too_large_argument() ->
    [{doc, "A context started with max_frame 1 MiB answers a 2 MiB binary argument "
      "with {error, {too_large, Size, 1048576}} (Size over the limit) and still works."}].
too_large_argument(_Config) ->
    {ok, Ctx} = py_context:start_link(#{max_frame => ?MAX_FRAME}),
    Big = binary:copy(<<"x">>, 2 * 1024 * 1024),
    Result = py:call(Ctx, builtins, len, [Big]),
    ?assertMatch({error, {too_large, _, ?MAX_FRAME}}, Result),
    {error, {too_large, Size, _}} = Result,
    ?assert(Size > byte_size(Big)),
    ?assertEqual({ok, 1024}, py:call(Ctx, builtins, len, [binary:copy(<<"y">>, 1024)])),
    ?assertMatch({error, {too_large, _, ?MAX_FRAME}}, py:eval(Ctx, <<"len(b)">>, #{b => Big})),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1 + 1">>)),
    ?assertEqual(0, maps:get(restarts, py_context:info(Ctx))),
    ok = py_context:stop(Ctx).

too_large_result() ->
    [{doc, "A result over max_frame (eval of b\"x\" * 3000000 with a 1 MiB limit) is "
      "{error, {too_large, _, _}}; the context still works and has not restarted."}].
too_large_result(_Config) ->
    {ok, Ctx} = py_context:start_link(#{max_frame => ?MAX_FRAME}),
    ?assertMatch({error, {too_large, _, _}}, py:eval(Ctx, <<"b\"x\" * 3000000">>)),
    ?assertMatch({error, {too_large, _, _}},
                 py:call(Ctx, builtins, bytes, [3000000])),
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1 + 1">>)),
    ?assertEqual({ok, 1000}, py:eval(Ctx, <<"len(b'x' * 1000)">>)),
    ?assertEqual(0, maps:get(restarts, py_context:info(Ctx))),
    ok = py_context:stop(Ctx).

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

%% py:call/4, with an exception turned into a value the assertion shows.
catch_call(Ctx, M, F, Args) ->
    try
        py:call(Ctx, M, F, Args)
    catch
        Class:Reason -> {raised, Class, Reason}
    end.

%% py:call/3 (routed), with an exception turned into a value.
catch_routed(M, F, Args) ->
    try
        py:call(M, F, Args)
    catch
        Class:Reason -> {raised, Class, Reason}
    end.

%% Runs Bad(Ctx) on context 1, then checks that the same context still answers
%% from the same OS process and has not restarted.
survives(Bad) ->
    Ctx = py:context(1),
    #{os_pid := OsPid, restarts := Restarts} = py_context:info(Ctx),
    Bad(Ctx),
    ?assertEqual({ok, 4.0}, py:call(Ctx, math, sqrt, [16])),
    ?assertEqual({ok, OsPid}, py:eval(Ctx, <<"__import__('os').getpid()">>)),
    #{os_pid := OsPidAfter, restarts := RestartsAfter} = py_context:info(Ctx),
    ?assertEqual({OsPid, Restarts}, {OsPidAfter, RestartsAfter}),
    ok.
