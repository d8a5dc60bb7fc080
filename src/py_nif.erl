%% @private
%% @doc erlang_python 2.x's NIF module held the informational functions that
%% code and test suites call directly (py_nif:subinterp_supported/0, ...).
%% pyport has no NIF: this module answers them with what is true of pyport
%% (see py_compat).
-module(py_nif).

-export([subinterp_supported/0, owngil_supported/0, execution_mode/0, num_executors/0,
         get_debug_counters/0, version/0,
         channel_try_receive/1, byte_channel_try_receive_bytes/1,
         channel_register_sync_waiter/1]).

%% @doc True: each context is an interpreter of its own with its own GIL.
-spec subinterp_supported() -> true.
subinterp_supported() -> true.

%% @doc True: a context started with mode `owngil' (like any other) has its own
%% interpreter, GIL and thread of execution (its own OS process).
-spec owngil_supported() -> true.
owngil_supported() -> true.

%% @doc See py:execution_mode/0.
-spec execution_mode() -> subinterp.
execution_mode() -> py_compat:execution_mode().

%% @doc See py:num_executors/0.
-spec num_executors() -> pos_integer().
num_executors() -> py_compat:num_executors().

%% @doc Counters measured in pyport (see py_compat:debug_counters/0).
-spec get_debug_counters() -> map().
get_debug_counters() -> py_compat:debug_counters().

%% @doc The Python version of the caller's context.
-spec version() -> {ok, binary()} | {error, term()}.
version() -> py:version().

%% @doc py_channel:try_receive/1 under its erlang_python 2.x NIF name.
-spec channel_try_receive(reference()) -> {ok, term()} | {error, empty | closed}.
channel_try_receive(Ch) -> py_channel:try_receive(Ch).

%% @doc py_byte_channel:try_receive/1 under its erlang_python 2.x NIF name.
-spec byte_channel_try_receive_bytes(reference()) -> {ok, binary()} | {error, empty | closed}.
byte_channel_try_receive_bytes(Ch) -> py_byte_channel:try_receive(Ch).

%% @doc The caller gets `channel_data_ready' once an item is queued, or
%% `channel_closed'; one such registration at a time per channel.
-spec channel_register_sync_waiter(reference()) -> ok | {error, waiter_exists | closed}.
channel_register_sync_waiter(Ch) -> py_channel:notify(Ch, self()).
