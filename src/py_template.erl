%% @private
%% @doc The warm template of a pool (or of one context started with
%% `template => true'): a gen_server owning one pyport OS process started with
%% `--template', which starts Python, runs the preload once and then only forks
%% (port/template.c). Each context of the pool asks socket/1 for the template's
%% Unix socket when it starts an OS process, and starts `pyport-attach' on it
%% (py_os_process:open/2): its OS process is a fork of the template, with the
%% preload already imported and its pages shared copy-on-write.
%%
%% The template's own death is handled like a context's: logged, and a new one
%% started at once (a context that starts meanwhile waits for it), or, for a
%% template that died within the `restart' option's `stable' time, when a
%% context next asks for it (the contexts' backoff then paces a crash loop). Contexts
%% forked from a dead template live on; they no longer need it. A template that
%% cannot start (Python, a failing preload, a preload that leaves threads
%% running) makes socket/1 answer `{error, Reason}', and the context backs off
%% as for any failed start.
-module(py_template).
-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([start_link/1, start_link/2, child_spec/2, wanted/1, name/1, socket/1, info/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

%% How long a template may take to start Python and run the preload.
-define(START_TIMEOUT, 60000).

-record(s, {
    opts :: map(),                        % the context options it was started with
    name :: binary(),                     % in logs, and its OS process's --name
    port :: port() | undefined,           % while one runs
    os_pid :: integer() | undefined,
    path :: string() | undefined,         % its socket, once ready
    spare :: integer() | undefined,       % os pid of the last spare it forked
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

%% @doc The Unix socket of the running template, starting a new OS process
%% first if the last one died.
-spec socket(pid() | atom()) -> {ok, string()} | {error, term()}.
socket(T) ->
    try
        gen_server:call(T, socket, ?START_TIMEOUT + 5000)
    catch
        exit:{Reason, _} -> {error, {template_down, Reason}}
    end.

%% @doc The template's state: `os_pid' (undefined while none runs), `socket',
%% `spare' (the os pid of the last spare child it forked ahead of demand: the
%% next context forked is that process, unless it was already used),
%% `starts' (OS processes started so far) and `last_error'.
-spec info(pid() | atom()) -> #{os_pid := integer() | undefined,
                                 socket := string() | undefined,
                                 spare := integer() | undefined,
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
handle_call(socket, _From, S = #s{path = Path}) when is_list(Path) ->
    {reply, {ok, Path}, S};
handle_call(socket, _From, S) ->
    case start(S) of
        {ok, S1} -> {reply, {ok, S1#s.path}, S1};
        {error, Reason, S1} -> {reply, {error, Reason}, S1}
    end;
handle_call(info, _From, S) ->
    {reply, #{os_pid => S#s.os_pid, socket => S#s.path, spare => S#s.spare,
              starts => S#s.starts,
              last_error => S#s.last_error}, S};
handle_call(_, _From, S) ->
    {reply, {error, badarg}, S}.

%% @private
handle_cast(_, S) ->
    {noreply, S}.

%% @private
handle_info({Port, {exit_status, Status}}, S = #s{port = Port}) ->
    Reason = py_protocol:exit_reason(Status, true),
    S1 = (forget(S))#s{last_error = Reason},
    #{stable := Stable} = maps:merge(py_options:restart_defaults(),
                                     maps:get(restart, S#s.opts, #{})),
    case erlang:monotonic_time(millisecond) - S#s.started_at >= Stable of
        true ->
            ?LOG_WARNING("pyport template ~ts: OS process ~p died (~0p); starting a new one",
                         [S#s.name, S#s.os_pid, Reason]),
            case start(S1) of
                {ok, S2} -> {noreply, S2};
                {error, _, S2} -> {noreply, S2}   % the next socket/1 tries again
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
handle_info({Port, {data, Frame}}, S = #s{port = Port}) ->
    log_frame(Frame, S),
    {noreply, S};
handle_info({'EXIT', _, _}, S) ->
    {noreply, S};
handle_info(_, S) ->
    {noreply, S}.

%% @private
terminate(_, S) ->
    close(S),
    ok.

%%% ===========================================================================

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
                    {ok, S2#s{path = Path, last_error = undefined}};
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

forget(S) ->
    remove_socket(S#s.path),
    S#s{port = undefined, os_pid = undefined, path = undefined, spare = undefined}.

remove_socket(Path) when is_list(Path) ->
    _ = file:delete(Path),
    _ = file:del_dir(filename:dirname(Path)),
    ok;
remove_socket(_) ->
    ok.
