%% @private
%% @doc The warm template of a pool (or of one context started with
%% `template => true'): a gen_server owning one pyport OS process started with
%% `--template', which starts Python, runs the preload once and then only forks
%% (port/template.c). Each context of the pool, when it starts an OS process,
%% takes a port from take/1: a `pyport-attach' on the template's Unix socket,
%% opened ahead of demand (the *parked* port), whose pipes the template has
%% already handed to a warmed-up fork waiting for the context's options, which
%% the context sends as the port's first frame (py_os_process:attach/3). Its
%% OS process is that fork, with the preload already imported and its pages
%% shared copy-on-write. A taken port is replaced in the background
%% (?PARK_DELAY ms later); one that dies while parked is replaced after a
%% backoff (the `restart' option's `min', doubling to its `max' while they die
%% within its `stable' time); with none
%% parked, take/1 opens one for the caller at once.
%%
%% The template's own death is handled like a context's: logged, and a new one
%% started at once (a context that starts meanwhile waits for it), or, for a
%% template that died within the `restart' option's `stable' time, when a
%% context next asks for it (the contexts' backoff then paces a crash loop). Contexts
%% forked from a dead template live on; they no longer need it. A template that
%% cannot start (Python, a failing preload, a preload that leaves threads
%% running) makes take/1 answer `{error, Reason}', and the
%% context backs off as for any failed start. When the template dies, its
%% parked port is closed (the fork behind it died with the template) and a new
%% one is parked once a new template is ready.
-module(py_template).
-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([start_link/1, start_link/2, child_spec/2, wanted/1, name/1, take/1, info/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

%% How long a template may take to start Python and run the preload.
-define(START_TIMEOUT, 60000).
%% After a parked port was taken, the next is opened this much later: opening
%% it (the node spawning pyport-attach, the template handing it a fork) takes
%% CPU that the context just started needs for its own first answer.
-define(PARK_DELAY, 30).

-record(s, {
    opts :: map(),                        % the context options it was started with
    name :: binary(),                     % in logs, and its OS process's --name
    port :: port() | undefined,           % while one runs
    os_pid :: integer() | undefined,
    path :: string() | undefined,         % its socket, once ready
    spare :: integer() | undefined,       % os pid of the last spare it forked
    parked :: port() | undefined,         % pyport-attach opened ahead of demand
    parked_os_pid :: integer() | undefined,  % its OS process
    parked_python :: integer() | undefined,  % the fork that holds its pipes
    park_timer :: reference() | undefined,   % the next one is due
    park_backoff = 0 :: non_neg_integer(),   % after parked ports that died
    parked_at = 0 :: integer(),              % monotonic ms it was opened
    starts = 0 :: non_neg_integer(),      % OS processes started
    started_at = 0 :: integer(),          % monotonic ms of the last start
    last_error :: term()                  % why the last start failed
}).

%% @doc Starts a template for one context with options `Opts' (validated
%% context options). Returns once the template has run the preload and listens,
%% or with the reason it could not (e.g. `{template_failed, "preload failed: ..."}').
-spec start_link(map()) -> {ok, pid()} | {error, term()}.
start_link(Opts) ->
    gen_server:start_link(?MODULE, Opts, []).

%% @doc Starts the template of pool `Pool', registered as name/1 of the pool;
%% `Opts' are the pool's options (the application's `context_opts' and the
%% defaults under them, as for its contexts).
-spec start_link(atom(), map()) -> {ok, pid()} | {error, term()}.
start_link(Pool, Opts) ->
    case py_options:validate(maps:put(pool, Pool, Opts)) of
        {ok, Valid} -> gen_server:start_link({local, name(Pool)}, ?MODULE, Valid, []);
        {error, _} = Error -> Error
    end.

%% @doc The child spec of the template of pool `Pool' (in the pool's supervisor,
%% before its contexts).
-spec child_spec(atom(), map()) -> supervisor:child_spec().
child_spec(Pool, Opts) ->
    #{id => py_template,
      start => {?MODULE, start_link, [Pool, Opts]},
      restart => permanent,
      shutdown => 5000,
      type => worker,
      modules => [?MODULE]}.

%% @doc Whether a pool with options `Opts' forks its contexts from a template:
%% `template => true' among them, or in the application's `context_opts'.
-spec wanted(map()) -> boolean().
wanted(Opts) ->
    Own = case py_options:context_opts() of
              {ok, AppOpts} -> maps:merge(AppOpts, Opts);
              {error, _} -> Opts
          end,
    maps:get(template, Own, false) =:= true.

%% @doc The registered name of the template of pool `Pool'.
-spec name(atom()) -> atom().
name(Pool) ->
    list_to_atom("py_template:" ++ atom_to_list(Pool)).

%% @doc A port for a context's new OS process: the parked `pyport-attach'
%% (or, with none parked, one opened now), connected to and linked with the
%% caller, no longer linked with the template's server. The caller makes it
%% its context with py_os_process:attach/3. Starts a new template OS process
%% first if the last one died.
-spec take(pid() | atom()) -> {ok, port()} | {error, term()}.
take(T) ->
    try
        gen_server:call(T, take, ?START_TIMEOUT + 5000)
    catch
        exit:{Reason, _} -> {error, {template_down, Reason}}
    end.

%% @doc The template's state: `os_pid' (undefined while none runs), `socket',
%% `spare' (the os pid of the last spare child it forked ahead of demand: the
%% next port opened is handed to it, unless it was already used), `parked'
%% (the OS pid of the parked `pyport-attach', and `python', the fork waiting
%% behind it: the next context's OS process, once the template said which),
%% `starts' (OS processes started so far) and `last_error'.
-spec info(pid() | atom()) -> #{os_pid := integer() | undefined,
                                 socket := string() | undefined,
                                 spare := integer() | undefined,
                                 parked := #{attach := integer(),
                                             python := integer() | undefined} | undefined,
                                 starts := non_neg_integer(), last_error := term()}.
info(T) ->
    gen_server:call(T, info).

%% @private
init(Opts) ->
    process_flag(trap_exit, true),
    Name = case Opts of
               #{pool := _, index := _} -> iolist_to_binary(pid_to_list(self()));
               #{pool := Pool} when Pool =/= undefined -> atom_to_binary(Pool);
               _ -> iolist_to_binary(pid_to_list(self()))
           end,
    S0 = #s{opts = Opts, name = <<Name/binary, ":template">>},
    case start(S0) of
        {ok, S} -> {ok, S};
        {error, Reason, _} -> {stop, Reason}
    end.

%% @private
handle_call(take, {Pid, _}, S = #s{path = Path}) when is_list(Path) ->
    {Reply, S1} = take_port(Pid, S),
    {reply, Reply, S1};
handle_call(take, {Pid, _}, S) ->
    case start(S) of
        {ok, S1} ->
            {Reply, S2} = take_port(Pid, S1),
            {reply, Reply, S2};
        {error, Reason, S1} -> {reply, {error, Reason}, S1}
    end;
handle_call(info, _From, S) ->
    Parked = case S#s.parked_os_pid of
                 undefined -> undefined;
                 A -> #{attach => A, python => S#s.parked_python}
             end,
    {reply, #{os_pid => S#s.os_pid, socket => S#s.path, spare => S#s.spare,
              parked => Parked, starts => S#s.starts,
              last_error => S#s.last_error}, S};
handle_call(_, _From, S) ->
    {reply, {error, badarg}, S}.

%% @private
handle_cast(_, S) ->
    {noreply, S}.

%% @private
handle_info({Port, {exit_status, Status}}, S = #s{parked = Port}) ->
    #{min := Min, max := Max, stable := Stable} = restart(S),
    Lived = erlang:monotonic_time(millisecond) - S#s.parked_at,
    Backoff = case S#s.park_backoff of
                  B when B =:= 0; Lived >= Stable -> max(1, Min);
                  B -> min(Max, 2 * B)
              end,
    ?LOG_WARNING("pyport template ~ts: the parked pyport-attach ~p died (~0p); opening "
                 "another in ~b ms", [S#s.name, S#s.parked_os_pid,
                                      py_protocol:exit_reason(Status, true), Backoff]),
    S1 = S#s{parked = undefined, parked_os_pid = undefined, parked_python = undefined,
             park_backoff = Backoff},
    {noreply, schedule_park(Backoff, S1)};
handle_info(park, S) ->
    {noreply, open_parked(S#s{park_timer = undefined})};
handle_info({Port, {exit_status, Status}}, S = #s{port = Port}) ->
    Reason = py_protocol:exit_reason(Status, true),
    S1 = (forget(S))#s{last_error = Reason},
    #{stable := Stable} = restart(S),
    case erlang:monotonic_time(millisecond) - S#s.started_at >= Stable of
        true ->
            ?LOG_WARNING("pyport template ~ts: OS process ~p died (~0p); starting a new one",
                         [S#s.name, S#s.os_pid, Reason]),
            case start(S1) of
                {ok, S2} -> {noreply, S2};
                {error, _, S2} -> {noreply, S2}   % the next take/1 tries again
            end;
        false ->
            %% A template that dies young starts again only when a context
            %% needs it, so its contexts' backoff paces a crash loop.
            ?LOG_WARNING("pyport template ~ts: OS process ~p died (~0p) soon after its "
                         "start; the next context start starts a new one",
                         [S#s.name, S#s.os_pid, Reason]),
            {noreply, S1}
    end;
handle_info({Port, {data, <<"spare ", Pid/binary>>}}, S = #s{port = Port}) ->
    {noreply, S#s{spare = binary_to_integer(Pid)}};
handle_info({Port, {data, <<"attached ", Pids/binary>>}}, S = #s{port = Port}) ->
    [Python, Attach] = [binary_to_integer(P) || P <- binary:split(Pids, <<" ">>)],
    case S#s.parked_os_pid of
        Attach -> {noreply, S#s{parked_python = Python}};
        _ -> {noreply, S}     % a port already taken, or one opened for a caller
    end;
handle_info({Port, {data, Frame}}, S = #s{port = Port}) ->
    log_frame(Frame, S),
    {noreply, S};
handle_info({'EXIT', _, _}, S) ->
    {noreply, S};
handle_info(_, S) ->
    {noreply, S}.

%% @private
terminate(_, S) ->
    _ = close_parked(S),
    close(S),
    ok.

%%% ===========================================================================

%% The parked port for context process `Pid' (or one opened now), and the
%% next one scheduled.
take_port(Pid, S = #s{parked = Port}) when is_port(Port) ->
    S1 = schedule_park(?PARK_DELAY, S#s{parked = undefined, parked_os_pid = undefined,
                                        parked_python = undefined, park_backoff = 0}),
    case hand(Port, Pid) of
        ok -> {{ok, Port}, S1};
        error -> take_port(Pid, S1)    % it died meanwhile: its exit is not ours to handle
    end;
take_port(Pid, S = #s{path = Path, opts = Opts}) ->
    S1 = schedule_park(?PARK_DELAY, S),
    case py_os_process:open_attach(Path, Opts) of
        {ok, Port} ->
            case hand(Port, Pid) of
                ok -> {{ok, Port}, S1};
                error -> {{error, {cannot_start_port, attach, closed}}, S1}
            end;
        {error, _} = Error ->
            {Error, S1}
    end.

%% Makes process Pid the port's owner (linked with it), and unlinks this one.
hand(Port, Pid) ->
    try erlang:port_connect(Port, Pid) of
        true ->
            unlink(Port),
            ok
    catch
        error:badarg ->
            catch erlang:port_close(Port),
            error
    end.

schedule_park(Delay, S = #s{park_timer = undefined, parked = undefined}) ->
    S#s{park_timer = erlang:send_after(Delay, self(), park)};
schedule_park(_, S) ->
    S.

%% Opens the parked port, if the template runs and none is parked.
open_parked(S = #s{path = Path, parked = undefined, opts = Opts}) when is_list(Path) ->
    case py_os_process:open_attach(Path, Opts) of
        {ok, Port} ->
            {os_pid, OsPid} = erlang:port_info(Port, os_pid),
            S#s{parked = Port, parked_os_pid = OsPid, parked_python = undefined,
                parked_at = erlang:monotonic_time(millisecond)};
        {error, Reason} ->
            #{max := Max} = restart(S),
            ?LOG_WARNING("pyport template ~ts: cannot open a pyport-attach (~0p); trying "
                         "again in ~b ms", [S#s.name, Reason, Max]),
            schedule_park(Max, S)
    end;
open_parked(S) ->
    S.

close_parked(S = #s{parked = Port, park_timer = Timer}) ->
    is_port(Port) andalso (catch erlang:port_close(Port)),
    is_reference(Timer) andalso erlang:cancel_timer(Timer),
    receive park -> ok after 0 -> ok end,
    S#s{parked = undefined, parked_os_pid = undefined, parked_python = undefined,
        park_timer = undefined}.

restart(#s{opts = Opts}) ->
    maps:merge(py_options:restart_defaults(), maps:get(restart, Opts, #{})).

%% Starts the OS process, sends the preload, and waits for `ready'.
start(S = #s{opts = Opts, name = Name}) ->
    case py_os_process:open_template(Name, Opts) of
        {ok, Port} ->
            {os_pid, OsPid} = erlang:port_info(Port, os_pid),
            true = erlang:port_command(Port, preload(Opts)),
            S1 = S#s{port = Port, os_pid = OsPid, starts = S#s.starts + 1,
                     started_at = erlang:monotonic_time(millisecond)},
            case await_ready(S1, erlang:monotonic_time(millisecond) + ?START_TIMEOUT) of
                {ok, Path, S2} ->
                    {ok, schedule_park(0, S2#s{path = Path, last_error = undefined})};
                {error, Reason} ->
                    close(S1),
                    {error, Reason, (forget(S1))#s{last_error = Reason}}
            end;
        {error, Reason} ->
            {error, Reason, S#s{last_error = Reason}}
    end.

await_ready(S = #s{port = Port}, Deadline) ->
    receive
        {Port, {data, <<"ready ", Path/binary>>}} ->
            {ok, binary_to_list(Path), S};
        {Port, {data, <<"spare ", Pid/binary>>}} ->
            await_ready(S#s{spare = binary_to_integer(Pid)}, Deadline);
        {Port, {data, <<"error ", Why/binary>>}} ->
            {error, {template_failed, unicode:characters_to_list(Why)}};
        {Port, {data, Frame}} ->
            log_frame(Frame, S),
            await_ready(S, Deadline);
        {Port, {exit_status, Status}} ->
            {error, {template_failed, py_protocol:exit_reason(Status, true)}}
    after max(0, Deadline - erlang:monotonic_time(millisecond)) ->
        {error, {template_failed, timeout}}
    end.

log_frame(<<"warning ", Text/binary>>, S) ->
    ?LOG_WARNING("pyport template ~ts: ~ts", [S#s.name, Text],
                 #{pyport_template => S#s.name});
log_frame(Frame, S) ->
    ?LOG_WARNING("pyport template ~ts: ~0p", [S#s.name, Frame]).

%% Code registered for every context (py_preload) runs first, then the
%% template's own preload (as for a context started cold).
preload(Opts) ->
    Registered = maps:get(preload, py_settings:get(maps:get(pool, Opts, undefined)), undefined),
    iolist_to_binary(lists:join(<<"\n">>, [C || C <- [Registered, maps:get(preload, Opts, undefined)],
                                                is_binary(C)])).

close(#s{port = Port} = S) when is_port(Port) ->
    catch erlang:port_close(Port),
    %% A template that is killed leaves its socket: remove it (and its directory).
    remove_socket(S#s.path),
    ok;
close(_) ->
    ok.

forget(S0) ->
    S = close_parked(S0),
    remove_socket(S#s.path),
    S#s{port = undefined, os_pid = undefined, path = undefined, spare = undefined}.

remove_socket(Path) when is_list(Path) ->
    _ = file:delete(Path),
    _ = file:del_dir(filename:dirname(Path)),
    ok;
remove_socket(_) ->
    ok.
