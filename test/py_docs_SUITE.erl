%% The examples of README.md, docs/callbacks.md, docs/async.md, docs/channels.md,
%% docs/scaling.md, docs/web.md, docs/reactor.md and the object references
%% section of docs/types.md, run as written. Placeholder modules
%% (mymodule, logger_mod, model, my_module) live in the data directory, which
%% is on the default pool's python_path; the examples' own lines are unchanged.
%% Run elsewhere: README's dependency lines (rebar3, Mix) by the packaging tests
%% tests/pkg/rebar3_dep.sh and mix_dep.sh, which put them in throw-away projects,
%% and every block of docs/elixir.md by the Mix project of mix_dep.sh; the
%% telemetry handler of docs/operations.md by py_observe_SUITE, where a telemetry
%% module is loaded.
-module(py_docs_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([readme_quick_start/0, readme_quick_start/1,
         readme_callback/0, readme_callback/1,
         readme_coroutine/0, readme_coroutine/1,
         readme_streams/0, readme_streams/1,
         readme_refs/0, readme_refs/1,
         readme_child_spec/0, readme_child_spec/1,
         callbacks_python_block/0, callbacks_python_block/1,
         callbacks_registering/0, callbacks_registering/1,
         callbacks_errors/0, callbacks_errors/1,
         callbacks_round_trip/0, callbacks_round_trip/1,
         callbacks_shared_state/0, callbacks_shared_state/1,
         async_fifty/0, async_fifty/1,
         async_cast_spawn_parallel/0, async_cast_spawn_parallel/1,
         async_streams/0, async_streams/1,
         async_event_loop_tasks/0, async_event_loop_tasks/1,
         channels_channel/0, channels_channel/1,
         channels_byte_channel/0, channels_byte_channel/1,
         channels_buffer/0, channels_buffer/1,
         types_object_references/0, types_object_references/1,
         types_errors/0, types_errors/1,
         scaling_pool_over_nodes/0, scaling_pool_over_nodes/1,
         readme_web/0, readme_web/1, readme_reactor/0, readme_reactor/1,
         web_examples/0, web_examples/1, reactor_example/0, reactor_example/1]).
%% supervisor callback, for readme_child_spec
-export([init/1]).

%% Generous bound for a whole case.
-define(CASE_TIMEOUT, {minutes, 3}).
%% How long an example's result (a message, a cast's effect) may take.
-define(EVENTUALLY_MS, 10000).

suite() ->
    [{timetrap, ?CASE_TIMEOUT}].

all() ->
    [readme_quick_start, readme_callback, readme_coroutine, readme_streams, readme_refs,
     readme_child_spec, callbacks_python_block, callbacks_registering, callbacks_errors,
     callbacks_round_trip, callbacks_shared_state, async_fifty, async_cast_spawn_parallel,
     async_streams, async_event_loop_tasks, channels_channel, channels_byte_channel,
     channels_buffer, types_object_references, types_errors, scaling_pool_over_nodes,
     readme_web, readme_reactor, web_examples, reactor_example].

init_per_suite(Config) ->
    Data = ?config(data_dir, Config),
    %% my_module (docs/callbacks.md) is an Erlang module: compile and load it.
    {ok, my_module, Bin} = compile:file(filename:join(Data, "my_module.erl"), [binary]),
    {module, my_module} = code:load_binary(my_module, "my_module.erl", Bin),
    ok = pyport_test:load_app(),
    %% examples/web (flask_app, asgi_app: README and docs/web.md) too.
    Web = pyport_test:examples_dir(Data, "web"),
    ok = application:set_env(pyport, context_opts, #{python_path => [Data, Web]}),
    {ok, _} = application:ensure_all_started(pyport),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(pyport),
    ok = application:unset_env(pyport, context_opts).

end_per_testcase(_Case, _Config) ->
    [py:unregister_function(N) || N <- [double, lookup]],
    ok = py:state_clear().

%%% ===========================================================================
%%% README.md
%%% ===========================================================================

readme_quick_start() ->
    [{doc, "README, Quick start: the shell session."}].
readme_quick_start(_Config) ->
    {ok, _} = application:ensure_all_started(pyport),
    {ok, 4.0} = py:call(math, sqrt, [16]),
    {ok, 42} = begin
                   Ctx = py:context(1), py:exec(Ctx, <<"counter = 41">>),
                   py:eval(Ctx, <<"counter + 1">>)
               end,
    {error, {"ZeroDivisionError", "division by zero"}} = py:eval(<<"1/0">>),
    {error, timeout} = py:exec(Ctx, <<"while True: pass">>, 500),
    ok.

readme_callback() ->
    [{doc, "README, Examples: Python calling back into Erlang."}].
readme_callback(_Config) ->
    Ctx = py:context(1),
    py:register_function(double, fun([X]) -> 2 * X end),
    py:exec(Ctx, <<"import erlang\ndef process(n): return erlang.call('double', n) + 1">>),
    {ok, 21} = py:call(Ctx, '__main__', process, [10]),
    ok.

readme_coroutine() ->
    [{doc, "README, Examples: a coroutine through routed py:call."}].
readme_coroutine(_Config) ->
    {ok, 7} = py:call(asyncio, sleep, [0.5, 7]),
    ok.

readme_streams() ->
    [{doc, "README, Examples: stream_eval and stream_start with mymodule:tokens."}].
readme_streams(_Config) ->
    Prompt = <<"streams from generators">>,
    {ok, [0, 1, 4, 9]} = py:stream_eval(<<"(x * x for x in range(4))">>),
    {ok, Ref} = py:stream_start(mymodule, tokens, [Prompt]),
    %% The example's `...' is the check (a hang here ends in the timetrap).
    receive {py_stream, Ref, {data, Token}} -> ?assertEqual(<<"streams">>, Token) end,
    ok = py:stream_cancel(Ref),
    ok.

readme_refs() ->
    [{doc, "README, Examples: a collections.deque held from Erlang."}].
readme_refs(_Config) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"import collections">>),
    {ok, Deque} = py:eval(Ctx, <<"collections.deque(maxlen=2)">>),   % {py_ref, ...}
    {ok, none} = py:call_method(Deque, append, [1]),
    {ok, [1]} = py:eval(Ctx, <<"list(d)">>, #{d => Deque}),
    ok = py:release(Deque),
    ?assertMatch({py_ref, _, _, _, _}, Deque),
    ok.

readme_child_spec() ->
    [{doc, "README, Examples: a context in your own supervision tree, from the child "
      "spec as written; it registers its name and has the python_path."}].
readme_child_spec(_Config) ->
    Children = [py_context:child_spec(#{id => ml, name => ml_python,
                                         python_path => ["priv/python"],
                                         max_memory => 2 bsl 30, max_calls => 10000})],
    {ok, Sup} = supervisor:start_link(?MODULE, Children),
    try
        Ctx = whereis(ml_python),
        ?assert(is_pid(Ctx)),
        ?assertMatch([{ml, Ctx, worker, _}], supervisor:which_children(Sup)),
        {ok, Path} = py:eval(Ctx, <<"__import__('sys').path">>),
        ?assert(lists:any(fun(P) -> lists:suffix("priv/python", binary_to_list(P)) end, Path)),
        ?assertEqual({ok, 4.0}, py:call(Ctx, math, sqrt, [16]))
    after
        unlink(Sup),
        exit(Sup, shutdown)
    end,
    ok.

%% @private supervisor callback for readme_child_spec.
init(Children) ->
    {ok, {#{strategy => one_for_one, intensity => 1, period => 5}, Children}}.

%%% ===========================================================================
%%% docs/callbacks.md
%%% ===========================================================================

callbacks_python_block() ->
    [{doc, "docs/callbacks.md, the Python block, run as written (no import: erlang is "
      "a builtin name; pid an erlang.Pid and double registered); then each "
      "expression's value."}].
callbacks_python_block(_Config) ->
    Ctx = py:context(1),
    ok = py:register_function(double, fun([X]) -> 2 * X end),
    {ok, _} = py:eval(Ctx, <<"globals().__setitem__('pid', p)">>, #{p => self()}),
    ok = py:exec(Ctx, <<"erlang.call('double', 21)        # a function registered in Erlang, "
                        "exactly once\n"
                        "erlang.double(21)                # the same (hasattr(erlang, 'double') "
                        "only while registered)\n"
                        "from erlang import double        # the same (ImportError if nobody "
                        "registered it)\n"
                        "erlang.send(pid, ('hello', 1))   # pid: an erlang.Pid, or a "
                        "registered name (str, bytes, Atom)\n"
                        "erlang.self()                    # the Erlang process whose request "
                        "is running\n"
                        "erlang.whereis('logger')         # an erlang.Pid, or None\n"
                        "erlang.atom('ok')                # an erlang.Atom\n"
                        "erlang.state_set('k', 1); erlang.state_incr('k', 2); "
                        "erlang.state_get('k')   # 3\n">>),
    receive {<<"hello">>, 1} -> ok after ?EVENTUALLY_MS -> ct:fail(no_hello) end,
    ?assertEqual({ok, 42}, py:eval(Ctx, <<"erlang.call('double', 21)">>)),
    ?assertEqual({ok, 42}, py:eval(Ctx, <<"erlang.double(21)">>)),
    ?assertEqual({ok, 42}, py:eval(Ctx, <<"double(21)">>)),
    ?assertEqual({ok, self()}, py:eval(Ctx, <<"erlang.self()">>)),
    ?assertEqual({ok, whereis(logger)}, py:eval(Ctx, <<"erlang.whereis('logger')">>)),
    ?assertEqual({ok, ok}, py:eval(Ctx, <<"erlang.atom('ok')">>)),
    ?assertEqual({ok, 3}, py:eval(Ctx, <<"erlang.state_get('k')">>)),
    ok.

callbacks_registering() ->
    [{doc, "docs/callbacks.md, Registering functions: the three lines as written "
      "(my_module:lookup/1 from the data directory); lookup answers from Python."}].
callbacks_registering(_Config) ->
    Ctx = py:context(1),
    ok = py:register_function(double, fun([X]) -> 2 * X end),          % called with the argument list
    ok = py:register_function(lookup, my_module, lookup),               % my_module:lookup(Args)
    ok = py:unregister_function(double),
    ?assertEqual({ok, {found, <<"key">>}},
                 py:eval(Ctx, <<"__import__('erlang').call('lookup', 'key')">>)),
    ?assertMatch({error, _}, py:eval(Ctx, <<"__import__('erlang').call('double', 1)">>)),
    ok.

callbacks_errors() ->
    [{doc, "docs/callbacks.md, Errors: an Erlang badarith raises erlang.Error with "
      "args == (erlang.Atom('error'), erlang.Atom('badarith')); an unknown name has "
      "reason {undefined_function, Name}."}].
callbacks_errors(_Config) ->
    Ctx = py:context(1),
    ok = py:register_function(double, fun([X]) -> 2 * X end),
    ok = py:exec(Ctx, <<"import erlang\n"
                        "def args_of(f):\n"
                        "    try:\n"
                        "        f()\n"
                        "    except erlang.Error as e:\n"
                        "        return e.args\n"
                        "badarith = args_of(lambda: erlang.call('double', 'x')) == "
                        "(erlang.Atom('error'), erlang.Atom('badarith'))\n"
                        "unknown = args_of(lambda: erlang.call('nobody'))\n">>),
    ?assertEqual({ok, true}, py:eval(Ctx, <<"badarith">>)),
    ?assertEqual({ok, {error, {undefined_function, <<"nobody">>}}}, py:eval(Ctx, <<"unknown">>)),
    ok.

callbacks_round_trip() ->
    [{doc, "docs/callbacks.md, Example: the reentrant round trip, as written."}].
callbacks_round_trip(_Config) ->
    Ctx = py:context(1),
    ok = py:register_function(double, fun([X]) -> 2 * X end),
    ok = py:exec(Ctx, <<"import erlang\n"
                        "def process(n):\n"
                        "    return erlang.call('double', n) + 1\n">>),
    {ok, 21} = py:call(Ctx, '__main__', process, [10]),
    ok.

callbacks_shared_state() ->
    [{doc, "docs/callbacks.md, Shared state: py:state_store(<<\"k\">>, 1) is "
      "erlang.state_get('k'); state_get's default."}].
callbacks_shared_state(_Config) ->
    Ctx = py:context(1),
    ok = py:state_store(<<"k">>, 1),
    ?assertEqual({ok, 1}, py:eval(Ctx, <<"__import__('erlang').state_get('k')">>)),
    ?assertEqual({ok, none}, py:eval(Ctx, <<"__import__('erlang').state_get('nokey')">>)),
    ?assertEqual({ok, 0}, py:eval(Ctx, <<"__import__('erlang').state_get('nokey', 0)">>)),
    ok.

%%% ===========================================================================
%%% docs/async.md
%%% ===========================================================================

async_fifty() ->
    [{doc, "docs/async.md, Coroutines: the 50 spawned calls as written; each answers "
      "{ok, I}."}].
async_fifty(_Config) ->
    Ctx = py:context(1),
    %% 50 calls of a coroutine that sleeps 0.5 s: about 0.5 s in all, on one context.
    Self = self(),
    [spawn(fun() -> Self ! py:call(Ctx, asyncio, sleep, [0.5, I]) end) || I <- lists:seq(1, 50)],
    Got = [receive {ok, _} = R -> R after ?EVENTUALLY_MS -> ct:fail(missing_answer) end
           || _ <- lists:seq(1, 50)],
    ?assertEqual([{ok, I} || I <- lists:seq(1, 50)], lists:sort(Got)),
    ok.

async_cast_spawn_parallel() ->
    [{doc, "docs/async.md, cast, spawn_call, await, parallel: the four lines as written "
      "(logger_mod and model from the data directory); the cast's effect shows."}].
async_cast_spawn_parallel(_Config) ->
    Event = #{what => <<"login">>, user => 7},
    Rows = [[1, 2], [3, 4.5]],
    ok = py:cast(logger_mod, record, [Event]),                 % fire and forget; errors are logged
    Ref = py:spawn_call(model, predict, [Rows]),               % start now ...
    {ok, Prediction} = py:await(Ref, 5000),                    % ... collect later
    {ok, [1.0, 2.0]} = py:parallel([{math, sqrt, [1]}, {math, sqrt, [4]}]),
    ?assertEqual([3.0, 7.5], Prediction),
    ok = eventually(fun() -> py:state_fetch(<<"logger_mod_events">>) end, {ok, 1}),
    ?assertEqual({ok, Event},
                 py:state_fetch(<<"logger_mod_last_event">>)),
    ok.

async_streams() ->
    [{doc, "docs/async.md, Streams: stream, stream_eval, stream_start with the loop "
      "as written (loop/1 and handle/1 below), then stream_cancel."}].
async_streams(_Config) ->
    Prompt = <<"one two three">>,
    {ok, [0, 1, 2]} = py:stream(mymodule, counter, [3]),          % all items of a generator
    {ok, [0, 1, 4]} = py:stream_eval(<<"(x * x for x in range(3))">>),

    {ok, Ref} = py:stream_start(mymodule, tokens, [Prompt]),      % items as messages
    ok = loop(Ref),
    ?assertEqual([<<"one">>, <<"two">>, <<"three">>], lists:reverse(get(handled))),
    ok = py:stream_cancel(Ref),   % afterwards no message for Ref is in the mailbox or will come
    ok.

loop(Ref) ->
    receive
        {py_stream, Ref, {data, Token}} -> handle(Token), loop(Ref);
        {py_stream, Ref, done} -> ok;
        {py_stream, Ref, {error, E}} -> {error, E}
    end.

handle(Token) ->
    put(handled, [Token | case get(handled) of undefined -> []; L -> L end]).


async_event_loop_tasks() ->
    [{doc, "docs/async.md, Tasks from Erlang: the py_event_loop block as written."}].
async_event_loop_tasks(_Config) ->
    Ref = py_event_loop:create_task(math, sqrt, [25.0]),         % start now
    {ok, 5.0} = py_event_loop:await(Ref, 1000),                   % collect later
    {ok, 3} = py_event_loop:run(math, floor, [3.7], #{timeout => 1000}),
    ok = py_event_loop:spawn_task(math, ceil, [2.3]),             % result dropped
    ok = py_event_loop:exec(<<"def double(x): return 2 * x">>),   % the caller's namespace
    {ok, 42} = py_event_loop:run('__main__', double, [21]).

%%% ===========================================================================
%%% docs/channels.md
%%% ===========================================================================

channels_channel() ->
    [{doc, "docs/channels.md, Channels: the Erlang block as written."}].
channels_channel(_Config) ->
    {ok, Ch} = py_channel:new(#{max_size => 10000}),   % bytes queued (external format); default unbounded
    ok = py_channel:send(Ch, {job, 1, <<"payload">>}), % ok | busy | {error, closed}
    #{size := _, max_size := 10000, closed := false} = py_channel:info(Ch),
    {ok, {job, 1, <<"payload">>}} = py_channel:try_receive(Ch), % Erlang can take items too
    ok = py_channel:close(Ch).

channels_byte_channel() ->
    [{doc, "docs/channels.md, Byte channels: the Erlang block as written."}].
channels_byte_channel(_Config) ->
    {ok, BCh} = py_byte_channel:new(#{max_size => 65536}), % bytes
    ok = py_byte_channel:send(BCh, <<"HTTP/1.1 200 OK\r\n">>),
    {ok, <<"HTTP/1.1 200 OK\r\n">>} = py_byte_channel:recv(BCh, 1000),
    {error, empty} = py_byte_channel:try_receive(BCh),
    ok = py_byte_channel:close(BCh).

channels_buffer() ->
    [{doc, "docs/channels.md, Buffers: the Erlang block as written."}].
channels_buffer(_Config) ->
    {ok, Buf} = py_buffer:new(),                  % or py_buffer:new(ContentLength)
    ok = py_buffer:write(Buf, <<"line one\n">>),
    ok = py_buffer:write(Buf, [<<"line ">>, <<"two\n">>]),
    ok = py_buffer:close(Buf),                    % end of the stream
    {ok, [<<"line one\n">>, <<"line two\n">>]} = py:eval(<<"list(erlang.PyBuffer(b))">>, #{b => Buf}).

%%% ===========================================================================
%%% docs/types.md
%%% ===========================================================================

types_object_references() ->
    [{doc, "docs/types.md, Object references: the open('/etc/hostname') example (the "
      "placeholder <<\"myhost\\n\">> is this machine's /etc/hostname)."}].
types_object_references(_Config) ->
    case file:read_file("/etc/hostname") of
        {ok, Hostname} ->
            Ctx = py:context(1),
            {ok, Ref} = py:eval(Ctx, <<"open('/etc/hostname')">>),   % {py_ref, Ctx, _, Owner, _}
            {ok, Hostname} = py:call_method(Ref, read, []),
            {ok, false} = py:getattr(Ref, closed),
            {ok, true} = py:eval(Ctx, <<"f.readable()">>, #{f => Ref}),   % as an argument
            ok = py:release(Ref),
            Self = self(),
            ?assertMatch({py_ref, Ctx, _, Self, _}, Ref),
            ok;
        {error, Reason} ->
            {skip, {no_etc_hostname, Reason}}
    end.

types_errors() ->
    [{doc, "docs/types.md, Errors: 1/0 is {error, {\"ZeroDivisionError\", \"division by "
      "zero\"}} and py:last_error() has type, message and traceback."}].
types_errors(_Config) ->
    Ctx = py:context(1),
    {error, {"ZeroDivisionError", "division by zero"}} = py:eval(Ctx, <<"1/0">>),
    #{type := "ZeroDivisionError", message := "division by zero", traceback := Tb} =
        py:last_error(),
    ?assertNotEqual(nomatch, string:find(Tb, "ZeroDivisionError")),
    ok.

%%% ===========================================================================
%%% docs/scaling.md
%%% ===========================================================================

scaling_pool_over_nodes() ->
    [{doc, "docs/scaling.md, Pools across nodes: the example as written, with this "
      "node and a peer node running pyport (skipped when this node is not "
      "distributed)."}].
scaling_pool_over_nodes(_Config) ->
    case is_alive() of
        false ->
            {skip, "the Common Test node is not distributed"};
        true ->
            Ebin = filename:dirname(code:which(py)),
            {ok, Peer, Node} = peer:start(#{name => peer:random_name(?MODULE),
                                            args => ["-pa", Ebin, "-pyport", "start_pools",
                                                     "false"]}),
            try
                {ok, _} = erpc:call(Node, application, ensure_all_started, [pyport]),
                Nodes = [node() | nodes()],
                {ok, Ctxs} = py_context_router:start_pool(spread, 2 * length(Nodes), #{nodes => Nodes}),
                {ok, 3.0} = py:call(spread, math, sqrt, [9]),
                ?assertEqual(lists:sort([node(), node(), Node, Node]),
                             lists:sort([node(C) || C <- Ctxs]))
            after
                ok = py_context_router:stop_pool(spread),
                peer:stop(Peer)
            end,
            ok
    end.

%%% ===========================================================================
%%% README.md, docs/web.md, docs/reactor.md: web applications and the reactor
%%% ===========================================================================

%% The Python block of docs/reactor.md, as written.
-define(UPPER_SETUP, <<"
import erlang.reactor as reactor

class Upper(reactor.Protocol):
    def data_received(self, data):
        self.transport.write(bytes(data).upper())   # None: read on

reactor.set_protocol_factory(Upper)
">>).

readme_web() ->
    [{doc, "README, Examples: py:wsgi_run and py:asgi_run on examples/web's apps."}].
readme_web(_Config) ->
    {ok, {<<"200 OK">>, Headers, Body}} =
        py:wsgi_run(flask_app, app, #{<<"PATH_INFO">> => <<"/">>}, <<>>),
    {ok, {200, _, _}} = py:asgi_run(asgi_app, app, #{path => <<"/">>}, <<>>),
    ?assertEqual(<<"hello from flask">>, Body),
    ?assert(lists:keymember(<<"Content-Type">>, 1, Headers)),
    ok.

readme_reactor() ->
    [{doc, "README, Examples: a reactor with docs/reactor.md's protocol, and a socket "
      "accepted by gen_tcp handed to it; a client sees the protocol's answer."}].
readme_reactor(_Config) ->
    Setup = ?UPPER_SETUP,
    {ok, L} = gen_tcp:listen(0, [binary, {active, false}]),
    {ok, Port} = inet:port(L),
    {ok, Client} = gen_tcp:connect("localhost", Port, [binary, {active, false}]),
    {ok, AcceptedSocket} = gen_tcp:accept(L),
    {ok, Reactor} = py_reactor_context:start_link(1, worker, #{setup_code => Setup}),
    ok = py_reactor_context:handoff(Reactor, AcceptedSocket, #{}),
    ok = gen_tcp:send(Client, <<"abc">>),
    {ok, <<"ABC">>} = gen_tcp:recv(Client, 3, ?EVENTUALLY_MS),
    ok = py_reactor_context:stop(Reactor),
    ok.

web_examples() ->
    [{doc, "docs/web.md: the WSGI, ASGI and streaming examples, as written."}].
web_examples(_Config) ->
    {ok, {<<"200 OK">>, Headers, <<"hello from flask">>}} =
        py:wsgi_run(flask_app, app, #{<<"PATH_INFO">> => <<"/">>}, <<>>),
    {ok, {201, Headers2, <<"SOME BODY">>}} =
        py:asgi_run(asgi_app, app, #{path => <<"/echo">>, method => <<"POST">>}, <<"some body">>),
    {ok, {<<"200 OK">>, _Headers, {stream, Ref}}} =
        py:wsgi_run(flask_app, app, #{<<"PATH_INFO">> => <<"/stream">>}, <<>>, #{stream => true}),
    {ok, <<"chunk 0\n">>} = py_web:next_chunk(Ref, 5000),
    ok = py:stream_cancel(Ref),
    ?assertNotEqual([], Headers),
    ?assertNotEqual([], Headers2),
    ok.

reactor_example() ->
    [{doc, "docs/reactor.md: the Python block and the Erlang block, as written."}].
reactor_example(_Config) ->
    Setup = ?UPPER_SETUP,
    {ok, Reactor} = py_reactor_context:start_link(1, worker, #{setup_code => Setup}),
    {ok, Listen} = gen_tcp:listen(0, [binary, {active, false}]),
    {ok, Port} = inet:port(Listen),
    {ok, Client} = gen_tcp:connect("localhost", Port, [binary, {active, false}]),
    {ok, Sock} = gen_tcp:accept(Listen),
    ok = py_reactor_context:handoff(Reactor, Sock, #{}),
    ok = gen_tcp:send(Client, <<"hello">>),
    {ok, <<"HELLO">>} = gen_tcp:recv(Client, 5),
    ok = py_reactor_context:stop(Reactor),
    ok.

%%% ===========================================================================
%%% Helpers
%%% ===========================================================================

eventually(Fun, Expected) -> pyport_test:eventually(Fun, Expected, ?EVENTUALLY_MS).
