%% @private
%% @doc The delivery process of one context: everything Python emits that no
%% waiting caller takes. Output of Python threads and bytes written to fd 1/2 go
%% to `logger' (notice), Python `logging' records to `logger' at their level,
%% output of a stream's request to its owner's group leader, and `erlang.send'
%% messages to their destination. It runs apart from the context's server, so
%% that delivering (a slow group leader, a busy logger, a full mailbox) never
%% delays the answers that process routes.
%%
%% Nothing here grows without bound: the port sends output and messages only
%% within a credit window, and this process returns the credit once it has
%% delivered them (py_protocol:credit/2). Lines to `logger' are limited to
%% `log_rate' a second; those over it are dropped and counted (py_context:info/1
%% `output_dropped'), and the count is logged once a second, never per line. A
%% local destination with more than `send_queue_limit' messages waiting gets no
%% more until it has read some: its messages wait here, their credit is not
%% returned, and the Python code that sends waits for credit.
-module(py_output).

-include_lib("kernel/include/logger.hrl").

-export([start_link/1, deliver/5, new_port/4, put_chars/3, printable/1]).

%% How long a group leader may take to accept one chunk of output.
-define(IO_TIMEOUT, 5000).
%% How often dropped output is reported (and the rate limit's period).
-define(REPORT_MS, 1000).
%% First and last delay between two looks at a destination that has too many
%% messages waiting.
-define(SEND_RECHECK_MIN_MS, 1).
-define(SEND_RECHECK_MAX_MS, 100).
%% Credit goes back to the port once this fraction of a window is due.
-define(CREDIT_BATCH_DIVISOR, 4).
%% Longest line sent to `logger'; the rest of a longer one is counted, not kept
%% (a frame of fd output holds up to 64 KiB, and a handler formats each event).
-define(LOG_LINE_MAX, 4096).

-record(st, {ctx :: pid(),
             name :: binary(),
             h :: py_inflight:handle(),
             counters :: {counters:counters_ref(), pos_integer(), pos_integer()},
             gen = 0 :: non_neg_integer(),           % the OS process credit goes to
             flow = false :: boolean(),              % whether it takes credit
             log_rate :: non_neg_integer() | infinity,
             tokens :: float(),                      % lines `logger' may take now
             refilled :: integer(),                  % when tokens were last refilled (ms)
             dropped = 0 :: non_neg_integer(),       % since the last report
             reporting = false :: boolean(),         % a report is scheduled
             windows :: #{output | send => pos_integer()},
             due = #{output => 0, send => 0} :: #{output | send => non_neg_integer()},
             queue_limit :: pos_integer() | infinity,
             parked = queue:new() :: queue:queue(),  % sends waiting for their destination
             delay = ?SEND_RECHECK_MIN_MS :: pos_integer()}). % before the next look at it

%%% ===========================================================================
%%% API
%%% ===========================================================================

%% @doc Starts the delivery process of a context, linked to the caller (the
%% context's server). `Config': `context', `name', `metadata' (for logger),
%% `inflight', `counters' (`{Ref, OutputDroppedIx, SendsDroppedIx}'), `log_rate',
%% `output_window', `send_window', `send_queue_limit'.
-spec start_link(map()) -> pid().
start_link(Config) ->
    proc_lib:spawn_link(fun() -> init(Config) end).

%% @doc Hands over one frame from OS process generation `Gen': `{output, GL,
%% Stream, Bytes}' (GL `undefined': to logger), `{log, Level, Logger, Message}',
%% or `{send, Dest}' with the ETF body. `Size' is the frame's size in bytes,
%% returned as credit once delivered.
-spec deliver(pid(), non_neg_integer(), tuple(), binary(), non_neg_integer()) -> ok.
deliver(Pid, Gen, Header, Body, Size) ->
    Pid ! {deliver, Gen, Header, Body, Size},
    ok.

%% @doc A new OS process (generation `Gen') serves the context: credit owed to an
%% older one is void. `Flow': whether it takes credit at all. `Metadata': the
%% context's logger metadata now (with the new OS pid).
-spec new_port(pid(), non_neg_integer(), boolean(), logger:metadata()) -> ok.
new_port(Pid, Gen, Flow, Metadata) ->
    Pid ! {new_port, Gen, Flow, Metadata},
    ok.

%% @doc Writes `Chars' to the io server `GL' and waits for it, at most `Timeout' ms.
-spec put_chars(pid(), unicode:chardata(), timeout()) -> ok | {error, term()}.
put_chars(GL, Chars, Timeout) ->
    Mref = erlang:monitor(process, GL),
    GL ! {io_request, self(), Mref, {put_chars, unicode, Chars}},
    receive
        {io_reply, Mref, ok} ->
            erlang:demonitor(Mref, [flush]),
            ok;
        {io_reply, Mref, Error} ->
            erlang:demonitor(Mref, [flush]),
            {error, Error};
        {'DOWN', Mref, process, _, Reason} ->
            {error, Reason}
    after Timeout ->
        erlang:demonitor(Mref, [flush]),
        {error, timeout}
    end.

%% @doc Bytes from Python as text: UTF-8 as it is, anything else as Latin-1.
-spec printable(binary()) -> binary().
printable(Bytes) ->
    case unicode:characters_to_binary(Bytes) of
        B when is_binary(B) -> B;
        _ -> unicode:characters_to_binary(Bytes, latin1)
    end.

%% The lines of a chunk of output, each cut to LOG_LINE_MAX bytes.
log_lines(Bin) ->
    [log_line(L) || L <- binary:split(Bin, <<"\n">>, [global, trim_all])].

log_line(Line) when is_binary(Line), byte_size(Line) > ?LOG_LINE_MAX ->
    Head = case unicode:characters_to_binary(binary:part(Line, 0, ?LOG_LINE_MAX)) of
               B when is_binary(B) -> B;
               {_, Valid, _} -> Valid   % cut inside a character: up to it
           end,
    More = integer_to_binary(byte_size(Line) - byte_size(Head)),
    <<Head/binary, " ... (", More/binary, " bytes more)">>;
log_line(Line) ->
    Line.

%%% ===========================================================================
%%% The process
%%% ===========================================================================

init(#{context := Ctx, name := Name, inflight := H, counters := Counters, log_rate := Rate,
       output_window := OutWin, send_window := SendWin, send_queue_limit := Limit,
       metadata := Metadata}) ->
    process_flag(trap_exit, true),
    put('$process_label', {py_output, Name}),
    logger:update_process_metadata(Metadata),
    loop(#st{ctx = Ctx, name = Name, h = H, counters = Counters, log_rate = Rate,
             tokens = float(rate(Rate)), refilled = now_ms(),
             windows = #{output => OutWin, send => SendWin}, queue_limit = Limit}).

loop(St) ->
    receive
        {deliver, Gen, Header, Body, Size} ->
            loop(idle_credit(handle(Header, Body, {Gen, Size}, St)));
        {new_port, Gen, Flow, Metadata} ->
            logger:update_process_metadata(Metadata),
            loop(St#st{gen = Gen, flow = Flow, due = #{output => 0, send => 0}});
        report ->
            loop(report(St));
        recheck ->
            loop(unpark(St));
        {'EXIT', Ctx, _} when Ctx =:= St#st.ctx ->
            ok;   % the context is gone: so is what it had to deliver
        _ ->
            loop(St)
    end.

handle({output, GL, _Stream, Bytes}, _, Credit, St) when is_pid(GL) ->
    St1 = case put_chars(GL, printable(Bytes), ?IO_TIMEOUT) of
              ok -> St;
              {error, _} -> drop(output, St)
          end,
    credit(output, Credit, St1);
handle({output, undefined, Stream, Bytes}, _, Credit, St = #st{name = Name}) ->
    %% One event per line, each under the rate limit.
    St1 = lists:foldl(fun(Line, S) ->
                              to_logger(fun() -> ?LOG_NOTICE("pyport context ~ts ~ts: ~ts",
                                                             [Name, Stream, Line]) end, S)
                      end, St, log_lines(printable(Bytes))),
    credit(output, Credit, St1);
handle({log, Level, Logger, Message}, _, Credit, St) ->
    %% No `domain': the default handler only passes events without one (or OTP's).
    St1 = to_logger(fun() -> logger:log(logger_level(Level), "~ts: ~ts",
                                        [Logger, log_line(Message)],
                                        #{python_logger => Logger})
                    end, St),
    credit(output, Credit, St1);
handle({send, Dest}, Body, Credit, St = #st{h = H}) ->
    case py_term:decode(Body, py_inflight:budget(H)) of
        {ok, Msg} ->
            case queue:is_empty(St#st.parked) of
                true -> send(Dest, Msg, Credit, St);
                false -> St#st{parked = queue:in({Dest, Msg, Credit}, St#st.parked)}
            end;
        {error, _} ->
            credit(send, Credit, drop(send, St))
    end;
handle(_, _, _, St) ->
    St.

%% Sends now, or parks the message (and every later one) while its local
%% destination has too many messages waiting.
send(Dest, Msg, Credit, St = #st{queue_limit = Limit}) ->
    case resolve(Dest) of
        undefined ->
            credit(send, Credit, drop(send, St));   % no such name: like `!', lost
        Pid when node(Pid) =:= node(), Limit =/= infinity ->
            case erlang:process_info(Pid, message_queue_len) of
                {message_queue_len, Len} when Len >= Limit ->
                    park({Dest, Msg, Credit}, St);
                _ ->
                    Pid ! Msg,
                    credit(send, Credit, St)
            end;
        Pid ->
            Pid ! Msg,
            credit(send, Credit, St)
    end.

%% Parks a message at the head of the queue and looks again later, each time a
%% little later while the destination does not read.
park(Item, St = #st{delay = Delay}) ->
    erlang:send_after(Delay, self(), recheck),
    St#st{parked = queue:in_r(Item, St#st.parked), delay = min(?SEND_RECHECK_MAX_MS, Delay * 2)}.

unpark(St = #st{parked = Q}) ->
    case queue:out(Q) of
        {{value, {Dest, Msg, Credit}}, Q1} ->
            St1 = send(Dest, Msg, Credit, St#st{parked = Q1}),
            case St1#st.parked =:= Q1 of
                true -> unpark(St1#st{delay = ?SEND_RECHECK_MIN_MS});   % sent: on with the rest
                false -> St1                                            % parked again
            end;
        {empty, _} ->
            St
    end.

resolve(Pid) when is_pid(Pid) -> Pid;
resolve(Name) when is_binary(Name) ->
    try binary_to_existing_atom(Name, utf8) of
        Atom -> whereis(Atom)
    catch
        error:badarg -> undefined
    end;
resolve(_) -> undefined.

%% Lines to logger under the rate limit; over it, dropped and counted.
to_logger(Log, St) ->
    St1 = refill(St),
    case St1#st.tokens >= 1.0 of
        true ->
            Log(),
            St1#st{tokens = St1#st.tokens - 1.0};
        false ->
            drop(output, St1)
    end.

refill(St = #st{log_rate = Rate, tokens = Tokens, refilled = Then}) ->
    Now = now_ms(),
    Max = float(rate(Rate)),
    St#st{tokens = min(Max, Tokens + Max * (Now - Then) / ?REPORT_MS), refilled = Now}.

rate(infinity) -> 1 bsl 40;
rate(N) -> N.

drop(Kind, St = #st{counters = {C, OutIx, SendIx}}) ->
    counters:add(C, case Kind of output -> OutIx; send -> SendIx end, 1),
    case St#st.reporting of
        true -> ok;
        false -> erlang:send_after(?REPORT_MS, self(), report)
    end,
    St#st{dropped = St#st.dropped + 1, reporting = true}.

report(St = #st{dropped = 0}) ->
    St#st{reporting = false};
report(St = #st{dropped = N, name = Name, log_rate = Rate}) ->
    py_telemetry:overload(output, #{dropped => N}, #{context => St#st.ctx, name => Name}),
    ?LOG_WARNING("pyport context ~ts: dropped ~b lines of output, log records or messages in "
                 "the last ~b ms (log_rate ~p lines/s; see py_context:info/1)",
                 [Name, N, ?REPORT_MS, Rate]),
    erlang:send_after(?REPORT_MS, self(), report),
    St#st{dropped = 0}.

%% With nothing more to deliver, what is due goes back at once: credit held
%% back then could stall a frame that needs the whole window.
idle_credit(St = #st{due = Due, gen = Gen}) ->
    case process_info(self(), message_queue_len) of
        {message_queue_len, 0} ->
            maps:fold(fun(_, 0, Acc) -> Acc;
                         (Kind, N, Acc) -> credit_now(Kind, Gen, N, Acc)
                      end, St, Due);
        _ ->
            St
    end.

credit_now(Kind, Gen, N, St = #st{gen = Gen, flow = true, due = Due}) ->
    _ = py_inflight:write(St#st.h, py_protocol:credit(Kind, N)),
    St#st{due = Due#{Kind := 0}};
credit_now(_, _, _, St) ->
    St.

%% Returns credit to the OS process that sent the frame, a batch at a time.
credit(Kind, {Gen, Size}, St = #st{gen = Gen, flow = true, due = Due, windows = Windows}) ->
    Total = maps:get(Kind, Due) + Size,
    case Total * ?CREDIT_BATCH_DIVISOR >= maps:get(Kind, Windows) of
        true ->
            _ = py_inflight:write(St#st.h, py_protocol:credit(Kind, Total)),
            St#st{due = Due#{Kind := 0}};
        false ->
            St#st{due = Due#{Kind := Total}}
    end;
credit(_, _, St) ->
    St.   % owed to an OS process that is gone, or that takes no credit

logger_level(L) when L >= 50 -> critical;
logger_level(L) when L >= 40 -> error;
logger_level(L) when L >= 30 -> warning;
logger_level(L) when L >= 20 -> info;
logger_level(_) -> debug.

now_ms() -> erlang:monotonic_time(millisecond).
