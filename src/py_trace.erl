%% @private
%% @doc Trace spans from Python (`erlang.Span', `@erlang.trace()'), with
%% erlang_python 2.x's API (py:enable_tracing/0, disable_tracing/0,
%% get_traces/0, clear_traces/0). While tracing is enabled, each context sends
%% span_start, span_event and span_end to this registered process through the
%% Erlang process its request runs for (a callback), so that the spans of a
%% request are here before its answer; while it is disabled contexts send
%% nothing (each caches the flag; py:enable_tracing/0 tells the running ones).
%% At most `trace_max_spans' (application environment, default 10000) completed
%% spans are kept (the oldest go first), and as many open ones.
-module(py_trace).
-behaviour(gen_server).

-export([start_link/0, enable/0, disable/0, enabled/0, record/1, spans/0, clear/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(DEFAULT_MAX_SPANS, 10000).
-define(ENABLED_KEY, {?MODULE, enabled}).

%% @private Started by pyport_sup.
-spec start_link() -> {ok, pid()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Starts keeping spans.
-spec enable() -> ok.
enable() -> gen_server:call(?MODULE, {enabled, true}).

%% @doc Stops keeping spans (those kept stay until clear/0).
-spec disable() -> ok.
disable() -> gen_server:call(?MODULE, {enabled, false}).

%% @doc Whether spans are kept (what contexts ask before sending any).
-spec enabled() -> boolean().
enabled() -> persistent_term:get(?ENABLED_KEY, false).

%% @doc A span message from a context (`span_start', `span_event', `span_end').
-spec record(tuple()) -> ok.
record(Msg) when is_tuple(Msg) ->
    case whereis(?MODULE) of
        undefined -> ok;
        Pid -> Pid ! Msg, ok
    end.

%% @doc The completed spans, in completion order: maps with `name', `span_id',
%% `parent_id' (or `undefined'), `start_time', `end_time' (monotonic µs),
%% `duration_us', `status' (`ok' | `error'), `attributes', `end_attrs', and
%% `events' (most recent first: `name', `attrs', `time').
-spec spans() -> {ok, [map()]}.
spans() -> gen_server:call(?MODULE, spans).

%% @doc Forgets every span.
-spec clear() -> ok.
clear() -> gen_server:call(?MODULE, clear).

%% @private
init([]) ->
    persistent_term:put(?ENABLED_KEY, false),
    Max = case application:get_env(pyport, trace_max_spans, ?DEFAULT_MAX_SPANS) of
              N when is_integer(N), N > 0 -> N;
              _ -> ?DEFAULT_MAX_SPANS
          end,
    {ok, #{enabled => false, open => #{}, done => queue:new(), max => Max}}.

%% @private
handle_call({enabled, On}, _From, S) ->
    persistent_term:put(?ENABLED_KEY, On),
    {reply, ok, S#{enabled := On}};
handle_call(spans, _From, S = #{done := Done}) ->
    {reply, {ok, queue:to_list(Done)}, S};
handle_call(clear, _From, S) ->
    {reply, ok, S#{open := #{}, done := queue:new()}}.

%% @private
handle_cast(_Msg, S) ->
    {noreply, S}.

%% @private
handle_info({span_start, Id, Parent, Name, Attrs, Time}, S = #{enabled := true, open := Open,
                                                              max := Max})
  when map_size(Open) < Max ->
    Span = #{span_id => Id, parent_id => Parent, name => Name, attributes => Attrs,
             start_time => Time, events => []},
    {noreply, S#{open := Open#{Id => Span}}};
handle_info({span_event, Id, Name, Attrs, Time}, S = #{open := Open}) ->
    case maps:find(Id, Open) of
        {ok, Span = #{events := Events}} ->
            Event = #{name => Name, attrs => Attrs, time => Time},
            {noreply, S#{open := Open#{Id := Span#{events := [Event | Events]}}}};
        error ->
            {noreply, S}
    end;
handle_info({span_end, Id, Status, Attrs, Time}, S = #{open := Open, done := Done, max := Max}) ->
    case maps:take(Id, Open) of
        {Span = #{start_time := Start}, Open1} ->
            Finished = Span#{status => Status, end_attrs => Attrs, end_time => Time,
                             duration_us => Time - Start},
            Done1 = queue:in(Finished, Done),
            Done2 = case queue:len(Done1) > Max of
                        true -> queue:drop(Done1);
                        false -> Done1
                    end,
            {noreply, S#{open := Open1, done := Done2}};
        error ->
            {noreply, S}
    end;
handle_info(_Msg, S) ->
    {noreply, S}.
