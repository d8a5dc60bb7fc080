%% @private
%% @doc The operating-system side of a context, as pure functions: how its pyport
%% process is started (executable, command line, environment, directory), how
%% long to wait before starting another after a death (the backoff policy), its
%% resident memory, and killing it. Used by py_context; no state of its own
%% beyond a cached page size.
-module(py_os_process).

-include_lib("kernel/include/logger.hrl").
-include("pyport_wire.hrl").

-export([open/2, open_template/2, open_attach/2, attach/3, backoff/3, rss_bytes/1, kill/1, report_crash/3]).

%% Lines of a crash dump quoted in the log (the whole dump stays in its file).
-define(CRASH_LOG_LINES, 12).

%% @doc Starts the pyport program for a context named `Name' with the options
%% of py_context (max_frame, max_depth, max_nesting, python_path, python, env,
%% cd, executable, crash_dir). Returns the port and the file its crash dump
%% would go to (see report_crash/3).
-spec open(binary(), map()) -> {ok, port(), file:filename()} | {error, term()}.
open(Name, Opts) ->
    {Args, Crash} = context_args(Name, Opts),
    case open_exe(executable(Opts), Args ++ interpreter_args(Opts), Opts) of
        {ok, Port} -> {ok, Port, Crash};
        Error -> Error
    end.

%% @doc Opens a `pyport-attach' (beside the executable of `Opts') on the warm
%% template listening at `Socket', ahead of demand: it hands its pipes to the
%% template at once, and the child that gets them waits for its context's
%% options, the first frame on the port (attach/3). The port is connected to
%% the caller. (python_path, python, env and cd are the template's.)
-spec open_attach(string(), map()) -> {ok, port()} | {error, term()}.
open_attach(Socket, Opts) ->
    Attach = filename:join(filename:dirname(executable(Opts)), "pyport-attach"),
    open_exe(Attach, [Socket, "--args-on-stdin"], maps:without([env, cd], Opts)).

%% @doc Makes the port of open_attach/2 the context named `Name' with the
%% options of py_context (those of open/2 that are not the template's):
%% sends them as its first frame. Returns the port and the file its crash
%% dump would go to, as open/2 does.
-spec attach(port(), binary(), map()) -> {ok, port(), file:filename()} | {error, term()}.
attach(Port, Name, Opts) ->
    {Args, Crash} = context_args(Name, Opts),
    Frame = [?PYPORT_ATTACH_ARGS_TAG | [[unicode:characters_to_binary(A), 0] || A <- Args]],
    case iolist_size(Frame) =< ?PYPORT_ATTACH_MAX_ARGS of
        true ->
            try erlang:port_command(Port, Frame) of
                true -> {ok, Port, Crash}
            catch
                error:badarg -> {error, {cannot_start_port, attach, closed}}
            end;
        false ->
            catch erlang:port_close(Port),
            {error, {cannot_start_port, attach, options_too_long}}
    end.

%% The command line of a context's own options, and its crash file.
context_args(Name, Opts) ->
    Crash = crash_file(Name, Opts),
    _ = filelib:ensure_dir(Crash),
    {["--name", binary_to_list(Name),
      "--max-frame", integer_to_list(maps:get(max_frame, Opts)),
      "--max-depth", integer_to_list(maps:get(max_depth, Opts)),
      "--max-nesting", integer_to_list(maps:get(max_nesting, Opts)),
      "--crash-file", Crash], Crash}.

%% @doc Starts the warm template of a pool or context named `Name' (see
%% py_template): pyport with `--template' and the options of open/2 that the
%% forked contexts inherit (python_path, python, env, cd, executable).
-spec open_template(binary(), map()) -> {ok, port()} | {error, term()}.
open_template(Name, Opts) ->
    open_exe(executable(Opts), ["--template", "--name", binary_to_list(Name)]
                            ++ interpreter_args(Opts), Opts).

interpreter_args(Opts) ->
    lists:append([["--path", to_list(P)] || P <- maps:get(python_path, Opts, [])])
        ++ case maps:find(python, Opts) of
               {ok, Py} -> ["--python", to_list(Py)];
               error -> []
           end.

open_exe(Exe, Args, Opts) ->
    PortOpts = [{packet, 4}, binary, exit_status, use_stdio, hide, {args, Args},
                {env, [{to_list(K), to_list(V)} || {K, V} <- env_list(Opts)]}]
        ++ case maps:find(cd, Opts) of
               {ok, Dir} -> [{cd, to_list(Dir)}];
               error -> []
           end,
    try
        {ok, open_port({spawn_executable, Exe}, PortOpts)}
    catch
        error:Reason -> {error, {cannot_start_port, Exe, Reason}}
    end.

%% @doc Milliseconds to wait before the next start, after an OS process that
%% lived `Uptime' ms (`infinity' for a deliberate kill) when the previous wait
%% was `Previous': 0 for a process that had been stable, else from `min'
%% doubling to `max' (`Restart': the context's `restart' option).
-spec backoff(non_neg_integer() | infinity, non_neg_integer(), map()) -> non_neg_integer().
backoff(Uptime, Previous, Restart) ->
    #{min := Min, max := Max, stable := Stable} = maps:merge(py_options:restart_defaults(), Restart),
    if
        Uptime >= Stable -> 0;
        Previous =:= 0 -> Min;
        true -> min(Max, Previous * 2)
    end.

%% @doc Resident memory of an OS process in bytes, or `undefined'.
-spec rss_bytes(integer() | undefined) -> non_neg_integer() | undefined.
rss_bytes(OsPid) when is_integer(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/statm") of
        {ok, Bin} ->
            [_, Rss | _] = binary:split(Bin, <<" ">>, [global]),
            binary_to_integer(Rss) * page_size();
        {error, _} ->
            undefined
    end;
rss_bytes(_) ->
    undefined.

%% @doc SIGKILL to an OS process.
-spec kill(integer()) -> ok.
kill(OsPid) ->
    _ = os:cmd("kill -KILL " ++ integer_to_list(OsPid)),
    ok.

%% Where one OS process of context `Name' writes a crash dump (Python's
%% faulthandler: the stack of every thread on a fatal signal): a file of its
%% own, so that contexts of the same name on other nodes never share one.
crash_file(Name, Opts) ->
    Dir = case maps:find(crash_dir, Opts) of
              {ok, D} -> to_list(D);
              error -> filename:join(tmp_dir(), "pyport-crash")
          end,
    Safe = [case (C >= $a andalso C =< $z) orelse (C >= $A andalso C =< $Z)
                     orelse (C >= $0 andalso C =< $9) orelse C =:= $. orelse C =:= $- of
                true -> C;
                false -> $_
            end || C <- unicode:characters_to_list(Name) ++ "-" ++ atom_to_list(node())],
    filename:join(Dir, io_lib:format("pyport-~ts-~b.crash",
                                     [Safe, erlang:unique_integer([positive])])).

%% @doc After an OS process died: if it left a crash dump in `File', keeps it as
%% `<File>.<OsPid>' for operators and logs its first lines through logger
%% (metadata: pyport_context, os_pid, crash_dump); an empty dump is removed.
-spec report_crash(file:filename() | undefined, binary(), integer() | undefined) -> ok.
report_crash(undefined, _, _) ->
    ok;
report_crash(File, Name, OsPid) ->
    case file:read_file(File) of
        {ok, Dump} when byte_size(Dump) > 0 ->
            Kept = lists:flatten([File, ".", case OsPid of
                                                 undefined -> "unknown";
                                                 _ -> integer_to_list(OsPid)
                                             end]),
            _ = file:rename(File, Kept),
            Lines = lists:sublist(binary:split(Dump, <<"\n">>, [global, trim_all]),
                                  ?CRASH_LOG_LINES),
            ?LOG_ERROR("pyport context ~ts: OS process ~p crashed; Python said:~n~ts~n"
                       "(full dump: ~ts)", [Name, OsPid, lists:join("\n", Lines), Kept],
                       #{pyport_context => Name, os_pid => OsPid, crash_dump => Kept}),
            ok;
        _ ->
            _ = file:delete(File),
            ok
    end.

tmp_dir() ->
    case os:getenv("TMPDIR") of
        false -> "/tmp";
        "" -> "/tmp";
        Dir -> Dir
    end.

executable(Opts) ->
    case maps:find(executable, Opts) of
        {ok, Exe} -> to_list(Exe);
        error ->
            case application:get_env(pyport, executable) of
                {ok, Exe} -> to_list(Exe);
                undefined -> filename:join(code:priv_dir(pyport), "pyport")
            end
    end.

env_list(Opts) ->
    case maps:get(env, Opts, []) of
        M when is_map(M) -> maps:to_list(M);
        L when is_list(L) -> L
    end.

page_size() ->
    case persistent_term:get({?MODULE, page_size}, undefined) of
        undefined ->
            Size = case string:to_integer(os:cmd("getconf PAGESIZE")) of
                       {N, _} when is_integer(N), N > 0 -> N;
                       _ -> 4096
                   end,
            persistent_term:put({?MODULE, page_size}, Size),
            Size;
        Size ->
            Size
    end.

to_list(A) when is_atom(A) -> atom_to_list(A);
to_list(B) when is_binary(B) -> unicode:characters_to_list(B);
to_list(I) when is_integer(I) -> integer_to_list(I);
to_list(L) when is_list(L) -> L.
