%% The type table of SPEC section 2, both ways, through the real port: every row
%% of both tables, bignums, bytes, atoms as keys and kwarg names, opaque terms,
%% NaN/inf, nesting limits and large terms. Runs on one explicit context of the
%% default pool; Python helpers live in each case's own environment.
-module(py_types_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, groups/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([integers_are_int/1, bignums_both_ways/1, floats_are_float/1,
         booleans_are_bool/1, none_atoms_are_none/1, other_atoms_are_erlang_atom/1,
         atom_as_dict_key/1, atom_as_kwarg_name/1, erlang_atom_function/1,
         utf8_binary_is_str/1, invalid_utf8_binary_is_bytes/1, bytes_tuple_is_bytes/1,
         lists_and_charlists_are_list/1, improper_list_round_trips/1, tuples_are_tuple/1,
         maps_are_dict/1, pids_and_refs_round_trip/1, funs_and_ports_round_trip/1,
         str_is_utf8_binary/1, bytes_like_are_binary/1, strided_memoryview_is_binary/1,
         true_false_none_from_python/1,
         ints_computed_in_python/1, floats_from_python/1, nan_and_infinities_are_atoms/1,
         containers_from_python/1, sets_are_lists/1, unmapped_objects_are_not_none/1,
         nesting_900_round_trips/1, nesting_5000_is_clean_error/1,
         python_nesting_too_deep_is_clean_error/1, list_100k_round_trips/1,
         text_binary_10mb_round_trips/1, random_binary_10mb_round_trips/1,
         large_binaries_anywhere_round_trip/1,
         map_10k_keys_round_trips/1]).
-export([integers_are_int/0, bignums_both_ways/0, floats_are_float/0, booleans_are_bool/0,
         none_atoms_are_none/0, other_atoms_are_erlang_atom/0, atom_as_dict_key/0,
         atom_as_kwarg_name/0, erlang_atom_function/0, utf8_binary_is_str/0,
         invalid_utf8_binary_is_bytes/0, bytes_tuple_is_bytes/0,
         lists_and_charlists_are_list/0, improper_list_round_trips/0, tuples_are_tuple/0,
         maps_are_dict/0, pids_and_refs_round_trip/0, funs_and_ports_round_trip/0,
         term_subclass_instances/0, term_subclass_instances/1,
         str_is_utf8_binary/0, bytes_like_are_binary/0,
         strided_memoryview_is_binary/0, true_false_none_from_python/0,
         ints_computed_in_python/0, floats_from_python/0, nan_and_infinities_are_atoms/0,
         containers_from_python/0, sets_are_lists/0, unmapped_objects_are_not_none/0,
         nesting_900_round_trips/0, nesting_5000_is_clean_error/0,
         python_nesting_too_deep_is_clean_error/0, list_100k_round_trips/0,
         text_binary_10mb_round_trips/0, random_binary_10mb_round_trips/0,
         large_binaries_anywhere_round_trip/0,
         map_10k_keys_round_trips/0]).

%% Every explicit-context request in this suite: generous, for the sanitizer port
%% on a loaded machine; a request that hangs fails the case instead of the run.
-define(CALL_TIMEOUT, 120000).

%% Python helpers defined in each case's environment.
-define(HELPERS, <<"
import erlang

def ident(x):
    return x

def tname(x):
    t = type(x)
    return t.__name__ if t.__module__ == 'builtins' else t.__module__ + '.' + t.__name__

def lookup(d, k):
    return d[k]

def kw(**k):
    return k

def call_with_kwarg(name, value):
    return kw(**{name: value})

def keyword_only(*, alpha=0, beta=0):
    return (alpha, beta)

def deep(n):
    x = []
    for _ in range(n):
        x = [x]
    return x

def depth(x):
    d = 0
    while isinstance(x, list) and x:
        x = x[0]
        d += 1
    return d

class Plain:
    pass

def gen():
    yield 1
">>).

suite() ->
    [{timetrap, {minutes, 10}}].

all() ->
    [{group, erlang_to_python}, {group, python_to_erlang}, {group, limits}].

groups() ->
    [{erlang_to_python, [],
      [integers_are_int, bignums_both_ways, floats_are_float, booleans_are_bool,
       none_atoms_are_none, other_atoms_are_erlang_atom, atom_as_dict_key, atom_as_kwarg_name,
       erlang_atom_function, utf8_binary_is_str, invalid_utf8_binary_is_bytes,
       bytes_tuple_is_bytes, lists_and_charlists_are_list, improper_list_round_trips,
       tuples_are_tuple, maps_are_dict, pids_and_refs_round_trip, funs_and_ports_round_trip,
       term_subclass_instances]},
     {python_to_erlang, [],
      [str_is_utf8_binary, bytes_like_are_binary, strided_memoryview_is_binary,
       true_false_none_from_python,
       ints_computed_in_python, floats_from_python, nan_and_infinities_are_atoms,
       containers_from_python, sets_are_lists, unmapped_objects_are_not_none]},
     {limits, [],
      [nesting_900_round_trips, nesting_5000_is_clean_error,
       python_nesting_too_deep_is_clean_error, list_100k_round_trips,
       text_binary_10mb_round_trips, random_binary_10mb_round_trips,
       large_binaries_anywhere_round_trip,
       map_10k_keys_round_trips]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(crypto),
    {ok, _} = application:ensure_all_started(pyport),
    [{ctx, py:context(1)} | Config].

end_per_suite(_Config) ->
    ok = application:stop(pyport).

%% init_per_testcase runs in the case's own process, so the helpers land in the
%% environment the case will use.
init_per_testcase(_Case, Config) ->
    ok = py:exec(ctx(Config), ?HELPERS, ?CALL_TIMEOUT),
    Config.

end_per_testcase(_Case, _Config) ->
    ok.

%%% ===========================================================================
%%% Erlang -> Python
%%% ===========================================================================

integers_are_int() ->
    [{doc, "Integers of every size arrive as int with their value and come back equal."}].
integers_are_int(Config) ->
    C = ctx(Config),
    Ints = [0, 1, -1, 255, 256, 1 bsl 27, 1 bsl 31, -(1 bsl 31), (1 bsl 63) - 1, -(1 bsl 63),
            1 bsl 64, 1 bsl 100, -(1 bsl 100)],
    lists:foreach(
      fun(I) ->
              ?assertEqual({ok, <<"int">>}, call(C, tname, [I])),
              ?assertEqual({ok, I}, call(C, ident, [I])),
              Lit = integer_to_binary(I),
              ?assertEqual({ok, true}, eval(C, <<"x == ", Lit/binary>>, #{x => I}))
      end, Ints).

bignums_both_ways() ->
    [{doc, "2^100, -2^100 and 2^64 are exact in Python; Python's big results are exact "
           "in Erlang."}].
bignums_both_ways(Config) ->
    C = ctx(Config),
    ?assertEqual({ok, true}, eval(C, <<"x == 2**100 and type(x) is int">>, #{x => pow(2, 100)})),
    ?assertEqual({ok, true}, eval(C, <<"x == -2**100">>, #{x => -pow(2, 100)})),
    ?assertEqual({ok, true}, eval(C, <<"x == 2**64">>, #{x => pow(2, 64)})),
    ?assertEqual({ok, pow(2, 100) + 1}, eval(C, <<"x + 1">>, #{x => pow(2, 100)})),
    ?assertEqual({ok, pow(3, 200)}, eval(C, <<"3**200">>)),
    ?assertEqual({ok, -pow(7, 150)}, eval(C, <<"-(7**150)">>)),
    ?assertEqual({ok, pow(2, 64)}, eval(C, <<"2**64">>)),
    ?assertEqual({ok, pow(2, 64) - 1}, eval(C, <<"2**64 - 1">>)),
    ?assertEqual({ok, pow(10, 1000)}, eval(C, <<"10**1000">>)),
    Big = pow(12345678901234567890, 40),
    ?assertEqual({ok, Big * 3}, eval(C, <<"x * 3">>, #{x => Big})).

floats_are_float() ->
    [{doc, "Floats arrive as float and come back bit-exact."}].
floats_are_float(Config) ->
    C = ctx(Config),
    lists:foreach(
      fun(F) ->
              ?assertEqual({ok, <<"float">>}, call(C, tname, [F])),
              {ok, Back} = call(C, ident, [F]),
              ?assertEqual(<<F/float>>, <<Back/float>>)
      end, [0.0, 1.5, -2.25, 1.0e300, -1.0e-300, 0.1, 5.0e-324]),
    ?assertEqual({ok, true}, eval(C, <<"x == 0.1">>, #{x => 0.1})).

booleans_are_bool() ->
    [{doc, "true and false are True and False (not ints)."}].
booleans_are_bool(Config) ->
    C = ctx(Config),
    ?assertEqual({ok, <<"bool">>}, call(C, tname, [true])),
    ?assertEqual({ok, true}, eval(C, <<"x is True">>, #{x => true})),
    ?assertEqual({ok, true}, eval(C, <<"x is False">>, #{x => false})),
    ?assertEqual({ok, true}, call(C, ident, [true])),
    ?assertEqual({ok, false}, call(C, ident, [false])).

none_atoms_are_none() ->
    [{doc, "none, nil and undefined are None; None comes back as none."}].
none_atoms_are_none(Config) ->
    C = ctx(Config),
    lists:foreach(
      fun(A) ->
              ?assertEqual({ok, true}, eval(C, <<"x is None">>, #{x => A})),
              ?assertEqual({ok, none}, call(C, ident, [A]))
      end, [none, nil, undefined]).

other_atoms_are_erlang_atom() ->
    [{doc, "Other atoms are erlang.Atom, a str equal to the name, and come back as the atom."}].
other_atoms_are_erlang_atom(Config) ->
    C = ctx(Config),
    lists:foreach(
      fun(A) ->
              ?assertEqual({ok, <<"erlang.Atom">>}, call(C, tname, [A])),
              ?assertEqual({ok, true}, eval(C, <<"isinstance(x, str)">>, #{x => A})),
              Name = atom_to_binary(A),
              ?assertEqual({ok, Name}, eval(C, <<"str.__str__(x)">>, #{x => A})),
              ?assertEqual({ok, true}, eval(C, <<"x == n and hash(x) == hash(n)">>,
                                            #{x => A, n => Name})),
              ?assertEqual({ok, A}, call(C, ident, [A]))
      end, [hello, ok, error, 'with space', 'héllo', '☃', nan, infinity,
            list_to_atom(lists:duplicate(255, $a))]),
    ?assertEqual({ok, [a, {b, #{c => d}}]}, call(C, ident, [[a, {b, #{c => d}}]])).

atom_as_dict_key() ->
    [{doc, "An atom works as a dict key, found by the atom and by the plain str."}].
atom_as_dict_key(Config) ->
    C = ctx(Config),
    D = #{key => 1, other => 2},
    ?assertEqual({ok, 1}, call(C, lookup, [D, key])),
    ?assertEqual({ok, 2}, call(C, lookup, [D, <<"other">>])),
    ?assertEqual({ok, 1}, eval(C, <<"d['key']">>, #{d => D})),
    ?assertEqual({ok, 1}, eval(C, <<"{k: 1}['key']">>, #{k => key})),
    %% The keys of a dict come back as the atoms they were.
    ?assertEqual({ok, D}, call(C, ident, [D])).

atom_as_kwarg_name() ->
    [{doc, "An atom works as a keyword-argument name, in Python and in Kwargs maps."}].
atom_as_kwarg_name(Config) ->
    C = ctx(Config),
    ?assertEqual({ok, #{alpha => 1}}, call(C, call_with_kwarg, [alpha, 1])),
    ?assertEqual({ok, {1, 2}},
                 py:call(C, '__main__', keyword_only, [],
                         #{kwargs => #{alpha => 1, <<"beta">> => 2}, timeout => ?CALL_TIMEOUT})),
    ?assertEqual({ok, {0, 5}},
                 py:call(C, '__main__', keyword_only, [],
                         #{kwargs => #{beta => 5}, timeout => ?CALL_TIMEOUT})).

erlang_atom_function() ->
    [{doc, "erlang.atom('x') in Python is the atom x in Erlang."}].
erlang_atom_function(Config) ->
    C = ctx(Config),
    ?assertEqual({ok, x}, eval(C, <<"erlang.atom('x')">>)),
    ?assertEqual({ok, 'héllo ☃'}, eval(C, <<"erlang.atom('héllo ☃')"/utf8>>)),
    ?assertEqual({ok, [x, {y}]}, eval(C, <<"[erlang.atom('x'), (erlang.Atom('y'),)]">>)),
    ?assertMatch({error, {"ValueError", _}}, eval(C, <<"erlang.atom('a' * 256)">>)).

utf8_binary_is_str() ->
    [{doc, "A valid UTF-8 binary is str with the same characters, and comes back equal."}].
utf8_binary_is_str(Config) ->
    C = ctx(Config),
    lists:foreach(
      fun(B) ->
              ?assertEqual({ok, <<"str">>}, call(C, tname, [B])),
              ?assertEqual({ok, length(unicode:characters_to_list(B))},
                           call(C, len, [B])),
              ?assertEqual({ok, B}, call(C, ident, [B]))
      end, [<<>>, <<"hello">>, <<"héllo ☃ 😀"/utf8>>, <<0, 1, 2>>]).

invalid_utf8_binary_is_bytes() ->
    [{doc, "An invalid UTF-8 binary is bytes in Python and comes back as the same binary."}].
invalid_utf8_binary_is_bytes(Config) ->
    C = ctx(Config),
    lists:foreach(
      fun(B) ->
              ?assertEqual({ok, <<"bytes">>}, call(C, tname, [B])),
              ?assertEqual({ok, byte_size(B)}, call(C, len, [B])),
              ?assertEqual({ok, B}, call(C, ident, [B]))
      end, [<<255>>, <<"abc", 200>>, <<16#ED, 16#A0, 16#80>>, <<16#C0, 16#80>>]),
    ?assertEqual({ok, [255, 0]}, eval(C, <<"list(b)">>, #{b => <<255, 0>>})).

bytes_tuple_is_bytes() ->
    [{doc, "{bytes, B} is bytes even when B is valid UTF-8; it comes back as B."}].
bytes_tuple_is_bytes(Config) ->
    C = ctx(Config),
    ?assertEqual({ok, <<"bytes">>}, call(C, tname, [{bytes, <<"abc">>}])),
    ?assertEqual({ok, true}, eval(C, <<"x == b'abc'">>, #{x => {bytes, <<"abc">>}})),
    ?assertEqual({ok, <<"abc">>}, call(C, ident, [{bytes, <<"abc">>}])),
    ?assertEqual({ok, <<255, 1>>}, call(C, ident, [{bytes, <<255, 1>>}])),
    ?assertEqual({ok, <<"bytes">>}, call(C, tname, [{bytes, <<>>}])).

lists_and_charlists_are_list() ->
    [{doc, "Lists and charlists are list; a charlist comes back as the same list."}].
lists_and_charlists_are_list(Config) ->
    C = ctx(Config),
    ?assertEqual({ok, <<"list">>}, call(C, tname, [[1, 2, 3]])),
    ?assertEqual({ok, <<"list">>}, call(C, tname, ["abc"])),
    ?assertEqual({ok, <<"list">>}, call(C, tname, [[]])),
    ?assertEqual({ok, [97, 98, 99]}, eval(C, <<"x">>, #{x => "abc"})),
    ?assertEqual({ok, "abc"}, call(C, ident, ["abc"])),
    ?assertEqual({ok, [16#20AC, 16#1F600]}, call(C, ident, [[16#20AC, 16#1F600]])),
    L = [1, <<"two">>, 3.0, [four], {5}],
    ?assertEqual({ok, L}, call(C, ident, [L])),
    ?assertEqual({ok, 5}, call(C, len, [L])).

improper_list_round_trips() ->
    [{doc, "An improper list is an opaque erlang.Term (never None) and round-trips unchanged."}].
improper_list_round_trips(Config) ->
    C = ctx(Config),
    lists:foreach(
      fun(L) ->
              ?assertEqual({ok, <<"erlang.Term">>}, call(C, tname, [L])),
              ?assertEqual({ok, L}, call(C, ident, [L]))
      end, [[1 | 2], [a, b | c], [[] | <<"tail">>]]),
    ?assertEqual({ok, [x, [1 | 2]]}, call(C, ident, [[x, [1 | 2]]])).

tuples_are_tuple() ->
    [{doc, "Tuples are tuple, of any size, and come back equal."}].
tuples_are_tuple(Config) ->
    C = ctx(Config),
    Big = list_to_tuple(lists:seq(1, 300)),
    lists:foreach(
      fun(T) ->
              ?assertEqual({ok, <<"tuple">>}, call(C, tname, [T])),
              ?assertEqual({ok, tuple_size(T)}, call(C, len, [T])),
              ?assertEqual({ok, T}, call(C, ident, [T]))
      end, [{}, {1}, {1, <<"a">>, b}, Big]).

maps_are_dict() ->
    [{doc, "Maps are dict (unhashable keys kept opaque) and come back equal."}].
maps_are_dict(Config) ->
    C = ctx(Config),
    M = #{a => 1, <<"b">> => [2], 3 => #{nested => {x}}, {t, 1} => 4.5},
    ?assertEqual({ok, <<"dict">>}, call(C, tname, [M])),
    ?assertEqual({ok, 4}, call(C, len, [M])),
    ?assertEqual({ok, M}, call(C, ident, [M])),
    Unhashable = #{[1, 2] => list, #{k => v} => map},
    ?assertEqual({ok, Unhashable}, call(C, ident, [Unhashable])),
    ?assertEqual({ok, 2}, call(C, len, [Unhashable])).

pids_and_refs_round_trip() ->
    [{doc, "Pids and refs are erlang.Pid/erlang.Ref, compare by value, and round-trip =:=."}].
pids_and_refs_round_trip(Config) ->
    C = ctx(Config),
    Other = spawn(fun() -> receive stop -> ok end end),
    Ref = make_ref(),
    ?assertEqual({ok, <<"erlang.Pid">>}, call(C, tname, [self()])),
    ?assertEqual({ok, <<"erlang.Ref">>}, call(C, tname, [Ref])),
    {ok, P} = call(C, ident, [self()]),
    ?assert(P =:= self()),
    {ok, R} = call(C, ident, [Ref]),
    ?assert(R =:= Ref),
    {ok, Nested} = call(C, ident, [#{pid => Other, refs => [Ref, make_ref()]}]),
    ?assert(maps:get(pid, Nested) =:= Other),
    ?assert(hd(maps:get(refs, Nested)) =:= Ref),
    ?assertEqual({ok, true}, eval(C, <<"a == b and hash(a) == hash(b)">>,
                                  #{a => self(), b => self()})),
    ?assertEqual({ok, false}, eval(C, <<"a == b">>, #{a => self(), b => Other})),
    ?assertEqual({ok, 1}, eval(C, <<"{a: 1}[b]">>, #{a => Ref, b => Ref})),
    Other ! stop.

term_subclass_instances() ->
    [{doc, "A Python subclass of erlang.Term (with its own attributes) is made, converts "
      "to its term, and is freed by the collector without harming the context."}].
term_subclass_instances(Config) ->
    C = ctx(Config),
    ok = py:exec(C, <<"import erlang, gc\n"
                      "class Tagged(erlang.Term):\n"
                      "    pass\n"
                      "def make():\n"
                      "    t = Tagged(b'\\x83d\\x00\\x02ok')\n"
                      "    t.note = 'kept'\n"
                      "    return t\n"
                      "def churn(n):\n"
                      "    for i in range(n):\n"
                      "        t = make(); t.cycle = t\n"
                      "    return gc.collect() >= 0\n">>),
    ?assertEqual({ok, ok}, py:eval(C, <<"make()">>)),
    ?assertEqual({ok, true}, py:eval(C, <<"churn(10000)">>)),
    ?assertEqual({ok, <<"kept">>}, py:eval(C, <<"make().note">>)),
    ?assertEqual({ok, 2}, py:eval(C, <<"1+1">>)).

funs_and_ports_round_trip() ->
    [{doc, "Funs and ports are opaque erlang.Term and round-trip =:=."}].
funs_and_ports_round_trip(Config) ->
    C = ctx(Config),
    Local = fun(X) -> X + 1 end,
    Port = open_port({spawn, "cat"}, []),
    lists:foreach(
      fun(T) ->
              ?assertEqual({ok, <<"erlang.Term">>}, call(C, tname, [T])),
              {ok, Back} = call(C, ident, [T]),
              ?assert(Back =:= T)
      end, [Local, fun lists:sum/1, Port]),
    {ok, F} = call(C, ident, [Local]),
    ?assertEqual(2, F(1)),
    port_close(Port).

%%% ===========================================================================
%%% Python -> Erlang
%%% ===========================================================================

str_is_utf8_binary() ->
    [{doc, "str is a UTF-8 binary."}].
str_is_utf8_binary(Config) ->
    C = ctx(Config),
    ?assertEqual({ok, <<"héllo ☃ 😀"/utf8>>},
                 eval(C, <<"'h\\u00e9llo \\u2603 \\U0001F600'">>)),
    ?assertEqual({ok, <<>>}, eval(C, <<"''">>)),
    ?assertEqual({ok, <<"abc">>}, eval(C, <<"type('S', (str,), {})('abc')">>)).

bytes_like_are_binary() ->
    [{doc, "bytes, bytearray and memoryview are binaries."}].
bytes_like_are_binary(Config) ->
    C = ctx(Config),
    ?assertEqual({ok, <<0, 255>>}, eval(C, <<"b'\\x00\\xff'">>)),
    ?assertEqual({ok, <<"ab">>}, eval(C, <<"bytearray(b'ab')">>)),
    ?assertEqual({ok, <<"abc">>}, eval(C, <<"memoryview(b'abc')">>)),
    ?assertEqual({ok, <<"bc">>}, eval(C, <<"memoryview(b'abcd')[1:3]">>)).

strided_memoryview_is_binary() ->
    [{doc, "A non-contiguous memoryview is still a memoryview: its bytes, in order."}].
strided_memoryview_is_binary(Config) ->
    C = ctx(Config),
    ?assertEqual({ok, <<"ace">>}, eval(C, <<"memoryview(b'abcdef')[::2]">>)),
    ?assertEqual({ok, <<"adgj">>},
                 eval(C, <<"memoryview(bytearray(b'abcdefghij'))[::3]">>)).

true_false_none_from_python() ->
    [{doc, "True, False and None are true, false and none."}].
true_false_none_from_python(Config) ->
    C = ctx(Config),
    ?assertEqual({ok, [true, false, none]}, eval(C, <<"[True, False, None]">>)),
    ?assertEqual({ok, true}, eval(C, <<"1 == 1">>)).

ints_computed_in_python() ->
    [{doc, "Python ints of any size are Erlang integers (never strings or floats)."}].
ints_computed_in_python(Config) ->
    C = ctx(Config),
    ?assertEqual({ok, 42}, eval(C, <<"6 * 7">>)),
    ?assertEqual({ok, pow(3, 200)}, eval(C, <<"3**200">>)),
    ?assertEqual({ok, -pow(2, 100)}, eval(C, <<"-(2**100)">>)),
    ?assertEqual({ok, pow(2, 63)}, eval(C, <<"2**63">>)),
    ?assertEqual({ok, -pow(2, 63) - 1}, eval(C, <<"-(2**63) - 1">>)),
    {ok, F} = eval(C, <<"__import__('math').factorial(300)">>),
    ?assertEqual(lists:foldl(fun erlang:'*'/2, 1, lists:seq(1, 300)), F),
    ?assertEqual({ok, 255}, eval(C, <<"__import__('enum').IntEnum('E', 'A')(1) * 255">>)).

floats_from_python() ->
    [{doc, "Python floats are Erlang floats with the same bits."}].
floats_from_python(Config) ->
    C = ctx(Config),
    ?assertEqual({ok, 0.1 + 0.2}, eval(C, <<"0.1 + 0.2">>)),
    {ok, NegZero} = eval(C, <<"-0.0">>),
    ?assertEqual(<<-0.0/float>>, <<NegZero/float>>),
    ?assertEqual({ok, 1.0e308}, eval(C, <<"1e308">>)).

nan_and_infinities_are_atoms() ->
    [{doc, "NaN, inf and -inf become the atoms nan, infinity and neg_infinity."}].
nan_and_infinities_are_atoms(Config) ->
    C = ctx(Config),
    ?assertEqual({ok, nan}, eval(C, <<"float('nan')">>)),
    ?assertEqual({ok, infinity}, eval(C, <<"float('inf')">>)),
    ?assertEqual({ok, neg_infinity}, eval(C, <<"float('-inf')">>)),
    ?assertEqual({ok, [1.5, nan, infinity]},
                 eval(C, <<"[1.5, float('nan'), __import__('math').inf]">>)).

containers_from_python() ->
    [{doc, "list, tuple and dict are list, tuple and map, nested."}].
containers_from_python(Config) ->
    C = ctx(Config),
    ?assertEqual({ok, [1, {2, 3}, #{<<"k">> => [4]}, {}, []]},
                 eval(C, <<"[1, (2, 3), {'k': [4]}, (), []]">>)),
    ?assertEqual({ok, #{1 => <<"one">>, {2} => none}}, eval(C, <<"{1: 'one', (2,): None}">>)),
    ?assertEqual({ok, #{<<"a">> => 1}},
                 eval(C, <<"__import__('collections').OrderedDict(a=1)">>)).

sets_are_lists() ->
    [{doc, "set and frozenset become lists of their elements."}].
sets_are_lists(Config) ->
    C = ctx(Config),
    {ok, S} = eval(C, <<"{3, 1, 2}">>),
    ?assertEqual([1, 2, 3], lists:sort(S)),
    {ok, F} = eval(C, <<"frozenset(['b', 'a'])">>),
    ?assertEqual([<<"a">>, <<"b">>], lists:sort(F)),
    ?assertEqual({ok, []}, eval(C, <<"set()">>)).

unmapped_objects_are_not_none() ->
    [{doc, "Objects with no Erlang form (object(), instances, generators, modules) come "
           "back as some term, never none and never an error."}].
unmapped_objects_are_not_none(Config) ->
    C = ctx(Config),
    lists:foreach(
      fun(Code) ->
              R = eval(C, Code),
              ?assertMatch({ok, _}, R),
              ?assertNotEqual({ok, none}, R)
      end, [<<"object()">>, <<"Plain()">>, <<"gen()">>, <<"__import__('os')">>,
            <<"len">>, <<"Plain">>]).

%%% ===========================================================================
%%% Limits and large terms
%%% ===========================================================================

nesting_900_round_trips() ->
    [{doc, "A list nested 900 levels goes to Python and back unchanged."}].
nesting_900_round_trips(Config) ->
    C = ctx(Config),
    Deep = nest(900),
    ?assertEqual({ok, 900}, call(C, depth, [Deep])),
    {ok, Back} = call(C, ident, [Deep]),
    ?assert(Back =:= Deep),
    ?assertEqual({ok, 900}, eval(C, <<"depth(deep(900))">>)),
    {ok, FromPython} = call(C, deep, [900]),
    ?assert(FromPython =:= Deep).

nesting_5000_is_clean_error() ->
    [{doc, "A list nested 5000 levels is a clean error; the context answers afterwards "
           "and has not restarted."}].
nesting_5000_is_clean_error(Config) ->
    C = ctx(Config),
    #{restarts := Restarts, os_pid := OsPid} = py_context:info(C),
    Deep = nest(5000),
    ?assertMatch({error, _}, call(C, ident, [Deep])),
    ?assertMatch({error, _}, eval(C, <<"x">>, #{x => Deep})),
    ?assertMatch({error, _}, call(C, ident, [#{k => {Deep}}])),
    ?assertEqual({ok, 2}, eval(C, <<"1 + 1">>)),
    #{restarts := After, os_pid := OsPidAfter} = py_context:info(C),
    ?assertEqual(Restarts, After),
    ?assertEqual(OsPid, OsPidAfter).

python_nesting_too_deep_is_clean_error() ->
    [{doc, "A Python result nested too deep is a clean ValueError; the context answers "
           "afterwards and has not restarted."}].
python_nesting_too_deep_is_clean_error(Config) ->
    C = ctx(Config),
    #{restarts := Restarts} = py_context:info(C),
    ?assertMatch({error, {"ValueError", _}}, call(C, deep, [5000])),
    ?assertMatch({error, {"ValueError", _}}, eval(C, <<"deep(100000)">>)),
    ok = py:exec(C, <<"selfish = []\nselfish.append(selfish)\n">>, ?CALL_TIMEOUT),
    ?assertMatch({error, {"ValueError", _}}, eval(C, <<"selfish">>)),
    ?assertEqual({ok, 3}, eval(C, <<"1 + 2">>)),
    #{restarts := After} = py_context:info(C),
    ?assertEqual(Restarts, After).

list_100k_round_trips() ->
    [{doc, "A 100,000-element list round-trips, and Python's sum matches lists:sum/1."}].
list_100k_round_trips(Config) ->
    C = ctx(Config),
    L = [I * 7 - 3 || I <- lists:seq(1, 100000)],
    {ok, Back} = call(C, ident, [L]),
    ?assert(Back =:= L),
    ?assertEqual({ok, lists:sum(L)}, call(C, sum, [L])),
    ?assertEqual({ok, 100000}, call(C, len, [L])).

text_binary_10mb_round_trips() ->
    [{doc, "A 10 MB UTF-8 binary is str in Python and comes back unchanged."}].
text_binary_10mb_round_trips(Config) ->
    C = ctx(Config),
    Line = <<"pyport text line: héllo ☃ 😀 0123456789\n"/utf8>>,
    Text = binary:copy(Line, (10 * 1024 * 1024) div byte_size(Line) + 1),
    ?assert(byte_size(Text) >= 10 * 1024 * 1024),
    ?assertEqual({ok, <<"str">>}, call(C, tname, [Text])),
    {ok, Back} = call(C, ident, [Text]),
    ?assert(Back =:= Text),
    ?assertEqual({ok, byte_size(Text)}, eval(C, <<"len(t.encode())">>, #{t => Text})).

random_binary_10mb_round_trips() ->
    [{doc, "A 10 MB random binary is bytes in Python and comes back unchanged."}].
random_binary_10mb_round_trips(Config) ->
    C = ctx(Config),
    Bin = crypto:strong_rand_bytes(10 * 1024 * 1024),
    ?assertEqual({ok, <<"bytes">>}, call(C, tname, [Bin])),
    {ok, Back} = call(C, ident, [Bin]),
    ?assert(Back =:= Bin),
    ?assertEqual({ok, byte_size(Bin)}, call(C, len, [Bin])).

large_binaries_anywhere_round_trip() ->
    [{doc, "Binaries around the 64 KiB from which a request refers to its binary "
      "arguments instead of copying them (and a binary result is not copied out of "
      "the reply) cross unchanged as arguments, keyword values, nested terms and "
      "results."}].
large_binaries_anywhere_round_trip(Config) ->
    C = ctx(Config),
    [Under, Edge, Big] = [crypto:strong_rand_bytes(N) || N <- [65535, 65536, 1024 * 1024]],
    [?assertEqual({ok, B}, call(C, ident, [B])) || B <- [Under, Edge, Big]],
    ?assertEqual({ok, [1, Big, Under, Edge]},
                 eval(C, <<"[a, b, c, d]">>, #{a => 1, b => Big, c => Under, d => Edge})),
    ?assertEqual({ok, [Under, {Edge, #{<<"k">> => Big}}]},
                 call(C, ident, [[Under, {Edge, #{<<"k">> => Big}}]])),
    ?assertEqual({ok, #{<<"a">> => Big, <<"b">> => Under}},
                 py:call(C, '__main__', kw, [],
                         #{kwargs => #{a => Big, b => Under}, timeout => ?CALL_TIMEOUT})),
    ?assertEqual({ok, <<"bytes">>}, call(C, tname, [Big])),
    %% A result that is one large binary stays valid after the call's frame
    %% is gone from every other process.
    {ok, Back} = call(C, ident, [Edge]),
    erlang:garbage_collect(),
    ?assertEqual(Edge, binary:copy(Back)).

map_10k_keys_round_trips() ->
    [{doc, "A map of 10,000 keys of mixed types round-trips unchanged."}].
map_10k_keys_round_trips(Config) ->
    C = ctx(Config),
    M = maps:from_list(
          [{key(I), {I, integer_to_binary(I)}} || I <- lists:seq(1, 10000)]),
    ?assertEqual(10000, map_size(M)),
    {ok, Back} = call(C, ident, [M]),
    ?assert(Back =:= M),
    ?assertEqual({ok, 10000}, call(C, len, [M])).

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

ctx(Config) -> ?config(ctx, Config).

call(Ctx, Fun, Args) ->
    py:call(Ctx, '__main__', Fun, Args, #{timeout => ?CALL_TIMEOUT}).

eval(Ctx, Code) ->
    eval(Ctx, Code, #{}).

eval(Ctx, Code, Locals) ->
    py:eval(Ctx, Code, Locals, ?CALL_TIMEOUT).

nest(N) ->
    lists:foldl(fun(_, Acc) -> [Acc] end, [], lists:seq(1, N)).

%% Keys of three kinds that Python keeps apart (no two are equal in Python).
key(I) when I rem 3 =:= 0 -> I;
key(I) when I rem 3 =:= 1 -> <<"k", (integer_to_binary(I))/binary>>;
key(I) -> {t, I}.

%% Exact integer power (math:pow/2 is a float).
pow(_, 0) -> 1;
pow(B, E) when E rem 2 =:= 0 -> pow(B * B, E div 2);
pow(B, E) -> B * pow(B, E - 1).
