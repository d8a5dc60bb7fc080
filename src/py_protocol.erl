%% @private
%% @doc The pyport wire grammar on the Erlang side (docs/protocol.md): builds
%% request frames, splits reply frames into header and body, normalises names and
%% code, and names the ways a port can die. Pure functions, no processes; unit
%% tested on their own (test/py_protocol_tests.erl).
-module(py_protocol).

-include("../include/pyport_wire.hrl").

-export([new_id/0, call/7, eval/5, exec/4, drop_env/1, cancel/1, interrupt/1, info/1,
         method/7, getattr/5, release/1, stream/5, stream_ack/2, setup/2, callback_reply/3,
         credit/2, split/1, name/1, code/1, locals/1, exit_reason/2, error_result/1,
         error_body/1, version/0, port_atoms/0]).

-export_type([request_id/0, parent/0, frame/0]).

-type request_id() :: pos_integer().
-type parent() :: request_id() | 0.
%% A request carrying a large binary argument is an I/O vector that refers to
%% that binary (erlang:term_to_iovec/1) instead of a copy of it.
-type frame() :: binary() | [binary()].

%% Binary arguments from this size on are referred to by the frame, not copied.
-define(BY_REFERENCE_BYTES, 65536).

%% @doc Protocol version this module speaks (must match the port's `ready').
-spec version() -> pos_integer().
version() -> ?PYPORT_PROTOCOL_VERSION.

%% @doc Every atom the port writes in frame headers, error bodies and info
%% maps. Frames are decoded with `[safe]' (they may create no atom), so these
%% must exist: naming them here makes them exist while this module is loaded.
-spec port_atoms() -> [atom()].
port_atoms() ->
    [ready, reply, error, env, output, stream_data, callback, async_callback, send, log, exiting,
     stdout, stderr, fd1, fd2,
     pyerr, badarg, too_large, cancelled,
     current, idle, id, op, running_ms, envs, queue, calls, os_pid, rss_bytes, python_version,
     call, eval, exec, method, getattr, stream, setup, unknown].

%% @doc A fresh request id (unique on this node; the port only needs uniqueness
%% among the requests in flight on it).
-spec new_id() -> request_id().
new_id() -> erlang:unique_integer([positive]).

%% @doc `{call, Id, Pid, Parent, Module, Function, Args, Kwargs}'. `Parent' is
%% the request whose callback the caller runs (0: none): the port serves the
%% request inside that request's erlang.call wait.
-spec call(request_id(), pid(), parent(), atom() | binary(), atom() | binary(), list(), map()) ->
    frame().
call(Id, Pid, Parent, M, F, Args, Kwargs) ->
    with_args({call, Id, Pid, Parent, M, F, Args, Kwargs}, Args, Kwargs).

%% @doc `{eval, Id, Pid, Parent, Code, Locals}'.
-spec eval(request_id(), pid(), parent(), binary(), map()) -> frame().
eval(Id, Pid, Parent, Code, Locals) ->
    term_to_binary({eval, Id, Pid, Parent, Code, Locals}).

%% @doc `{exec, Id, Pid, Parent, Code}'.
-spec exec(request_id(), pid(), parent(), binary()) -> frame().
exec(Id, Pid, Parent, Code) ->
    term_to_binary({exec, Id, Pid, Parent, Code}).

%% @doc `{drop_env, Pid}': forget the environment of a dead process.
-spec drop_env(pid()) -> frame().
drop_env(Pid) -> term_to_binary({drop_env, Pid}).

%% @doc `{cancel, Id}': drop the request if queued, else raise in it.
-spec cancel(request_id()) -> frame().
cancel(Id) -> term_to_binary({cancel, Id}).

%% @doc `{interrupt, Kind}': raise KeyboardInterrupt (`keyboard') or MemoryError
%% (`memory') in the running code.
-spec interrupt(keyboard | memory) -> frame().
interrupt(Kind) when Kind =:= keyboard; Kind =:= memory -> term_to_binary({interrupt, Kind}).

%% @doc `{info, Id}': answered by the port's loop thread even while Python runs.
-spec info(request_id()) -> frame().
info(Id) -> term_to_binary({info, Id}).

%% @doc `{method, Id, Pid, Parent, Ref, Name, Args, Kwargs}': call a method of a
%% referenced object.
-spec method(request_id(), pid(), parent(), tuple(), atom() | binary(), list(), map()) -> frame().
method(Id, Pid, Parent, Ref, Name, Args, Kwargs) ->
    with_args({method, Id, Pid, Parent, Ref, Name, Args, Kwargs}, Args, Kwargs).

%% The frame of a request with arguments: when an argument (or keyword value) is
%% a binary of at least ?BY_REFERENCE_BYTES, an I/O vector in which that binary
%% is referred to, so the port driver writes it to the pipe from where it is
%% (encoding a 64 MiB binary into a new one costs a copy and its page faults,
%% about a third of a second here); otherwise one binary.
with_args(Request, Args, Kwargs) ->
    case large_binary(Args) orelse (map_size(Kwargs) > 0 andalso large_binary(maps:values(Kwargs))) of
        true -> erlang:term_to_iovec(Request);
        false -> term_to_binary(Request)
    end.

large_binary([B | _]) when is_binary(B), byte_size(B) >= ?BY_REFERENCE_BYTES -> true;
large_binary([_ | T]) -> large_binary(T);
large_binary(_) -> false.

%% @doc `{getattr, Id, Pid, Parent, Ref, Name}': an attribute of a referenced object.
-spec getattr(request_id(), pid(), parent(), tuple(), atom() | binary()) -> frame().
getattr(Id, Pid, Parent, Ref, Name) ->
    term_to_binary({getattr, Id, Pid, Parent, Ref, Name}).

%% @doc `{release, Ref}': forget a referenced object.
-spec release(tuple()) -> frame().
release(Ref) -> term_to_binary({release, Ref}).

%% @doc `{stream, Id, Pid, Parent, Source, Window}': stream the items of an
%% iterable; `Source' is `{call, M, F, Args, Kwargs}' or `{eval, Code, Locals}'.
-spec stream(request_id(), pid(), parent(), tuple(), pos_integer()) -> frame().
stream(Id, Pid, Parent, Source, Window) ->
    term_to_binary({stream, Id, Pid, Parent, Source, Window}).

%% @doc `{stream_ack, Id, N}': the consumer took N more items of stream Id.
-spec stream_ack(request_id(), pos_integer()) -> frame().
stream_ack(Id, N) -> term_to_binary({stream_ack, Id, N}).

%% @doc `{setup, Id, Opts}': per-start settings (context, preload, venv, logging).
-spec setup(request_id(), map()) -> frame().
setup(Id, Opts) -> term_to_binary({setup, Id, Opts}).

%% @doc `{callback_reply, CbId, ok | error, Term}': the answer to erlang.call.
-spec callback_reply(integer(), ok | error, term()) -> frame().
callback_reply(CbId, Status, Value) ->
    term_to_binary({callback_reply, CbId, Status, Value}).

%% @doc `{credit, Kind, Bytes}': Erlang delivered `Bytes' of output (`output')
%% or messages (`send'); the port may send that much more.
-spec credit(output | send, non_neg_integer()) -> frame().
credit(Kind, Bytes) when Kind =:= output; Kind =:= send -> term_to_binary({credit, Kind, Bytes}).

%% @doc Splits a frame from the port into its header term and the ETF bytes of
%% its body (empty when the frame has no body). Only the header is decoded, and
%% it may create no atom: `error' if it is not a term the port writes.
-spec split(frame()) -> {ok, tuple(), binary()} | error.
split(Frame) ->
    try binary_to_term(Frame, [used, safe]) of
        {Header, Used} when is_tuple(Header) ->
            {ok, Header, binary_part(Frame, Used, byte_size(Frame) - Used)};
        _ ->
            error
    catch
        error:badarg -> error
    end.

%% @doc A module or function name as sent: atoms and binaries as they are,
%% strings as UTF-8 binaries. `{error, badarg}' for anything else.
-spec name(term()) -> atom() | binary() | {error, badarg}.
name(N) when is_atom(N); is_binary(N) -> N;
name(N) when is_list(N) ->
    try unicode:characters_to_binary(N) of
        B when is_binary(B) -> B;
        _ -> {error, badarg}
    catch
        error:badarg -> {error, badarg}
    end;
name(_) -> {error, badarg}.

%% @doc Python source as a UTF-8 binary: binaries as they are, strings and
%% iolists converted. `{error, badarg}' for anything else.
-spec code(term()) -> binary() | {error, badarg}.
code(C) when is_binary(C) -> C;
code(C) when is_list(C) ->
    try unicode:characters_to_binary(C) of
        B when is_binary(B) -> B;
        _ -> {error, badarg}
    catch
        error:badarg -> {error, badarg}
    end;
code(_) -> {error, badarg}.

%% @doc Locals or keyword arguments: a map (keys are checked by the port).
-spec locals(term()) -> map() | {error, badarg}.
locals(M) when is_map(M) -> M;
locals(_) -> {error, badarg}.

%% @doc What an exit status of the port means. Statuses above 128 are deaths by
%% signal (as the BEAM reports them). pyport's own statuses are named only when
%% `Own' says the port itself chose it (it announced it, or it had not started
%% Python code yet); otherwise the status is the user's (`os._exit(66)').
-spec exit_reason(non_neg_integer(), boolean()) -> term().
exit_reason(N, _) when N > 128, N < 128 + 65 -> {signal, signal_name(N - 128)};
exit_reason(N, true) -> own_exit(N);
exit_reason(N, false) -> {exit, N}.

own_exit(?PYPORT_EXIT_USAGE) -> {exit, ?PYPORT_EXIT_USAGE, usage};
own_exit(?PYPORT_EXIT_PYTHON) -> {exit, ?PYPORT_EXIT_PYTHON, python_failed_to_start};
own_exit(?PYPORT_EXIT_FRAMING) -> {exit, ?PYPORT_EXIT_FRAMING, framing_lost};
own_exit(?PYPORT_EXIT_OOM) -> {exit, ?PYPORT_EXIT_OOM, out_of_memory};
own_exit(?PYPORT_EXIT_IO) -> {exit, ?PYPORT_EXIT_IO, io_error};
own_exit(?PYPORT_EXIT_LOST) -> {exit, ?PYPORT_EXIT_LOST, status_lost};
own_exit(N) -> {exit, N}.

signal_name(1) -> 'SIGHUP';
signal_name(2) -> 'SIGINT';
signal_name(3) -> 'SIGQUIT';
signal_name(4) -> 'SIGILL';
signal_name(5) -> 'SIGTRAP';
signal_name(6) -> 'SIGABRT';
signal_name(7) -> 'SIGBUS';
signal_name(8) -> 'SIGFPE';
signal_name(9) -> 'SIGKILL';
signal_name(10) -> 'SIGUSR1';
signal_name(11) -> 'SIGSEGV';
signal_name(12) -> 'SIGUSR2';
signal_name(13) -> 'SIGPIPE';
signal_name(14) -> 'SIGALRM';
signal_name(15) -> 'SIGTERM';
signal_name(N) -> N.

%% @doc The caller-facing result of an error body from the port. Python
%% exceptions keep their traceback apart (see py:last_error/0).
-spec error_result(term()) -> {{error, term()}, map() | undefined}.
error_result({pyerr, Type, Message, Traceback}) ->
    {{error, {Type, Message}}, #{type => Type, message => Message, traceback => Traceback}};
error_result(Other) ->
    {{error, Other}, undefined}.

%% @doc error_result/1 of an error body as the port sent it (ETF bytes). The
%% port builds error bodies from its own atoms and strings only.
-spec error_body(binary()) -> {{error, term()}, map() | undefined}.
error_body(Body) ->
    try binary_to_term(Body, [safe]) of
        Term -> error_result(Term)
    catch
        error:badarg -> {{error, {badarg, "undecodable error from the port"}}, undefined}
    end.
