%% @private
%% @doc The supervisor of one pool, registered as `py_pool_<Pool>_sup': its
%% contexts are ordinary workers, one child per index, each registered as
%% `py_pool_<Pool>_<Index>', so observer shows each and a crash of one restarts
%% only that one.
%%
%% Also, registered as `py_context_sup' (start_link/0, under pyport_sup), the
%% supervisor of contexts started one by one with erlang_python 2.x's API:
%% start_context/2, stop_context/1, which_contexts/0 (temporary children).
-module(py_context_sup).
-behaviour(supervisor).

-export([start_link/3, child_spec/3, start_link/0, start_context/2, stop_context/1,
         which_contexts/0]).
-export([init/1]).

%% @doc Starts the registered supervisor of single contexts.
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, single).

%% @doc Starts a context under it (`Id' labels it; `Mode' is accepted).
-spec start_context(term(), atom()) -> {ok, pid()} | {error, term()}.
start_context(Id, Mode) ->
    supervisor:start_child(?MODULE, [Id, Mode]).

%% @doc Stops a context started with start_context/2.
-spec stop_context(pid()) -> ok | {error, term()}.
stop_context(Ctx) when is_pid(Ctx) ->
    case supervisor:terminate_child(?MODULE, Ctx) of
        {error, not_found} -> ok;
        Other -> Other
    end.

%% @doc The contexts started with start_context/2 that are running.
-spec which_contexts() -> [pid()].
which_contexts() ->
    [Pid || {_, Pid, _, _} <- supervisor:which_children(?MODULE), is_pid(Pid)].

%% @doc The child spec of a pool supervisor under py_pools_sup.
-spec child_spec(atom(), pos_integer(), map()) -> supervisor:child_spec().
child_spec(Pool, Size, Opts) ->
    #{id => {pool, Pool},
      start => {?MODULE, start_link, [Pool, Size, Opts]},
      restart => permanent,
      shutdown => infinity,
      type => supervisor,
      modules => [?MODULE]}.

%% @doc Starts the supervisor and its `Size' contexts (each ready when this returns).
-spec start_link(atom(), pos_integer(), map()) -> {ok, pid()} | {error, term()}.
start_link(Pool, Size, Opts) ->
    supervisor:start_link(?MODULE, {Pool, Size, Opts}).

%% @private
init(single) ->
    {ok, {#{strategy => simple_one_for_one, intensity => 10, period => 10},
          [#{id => py_context, start => {py_context, start_link, []}, restart => temporary,
             shutdown => 5000, type => worker, modules => [py_context]}]}};
init({Pool, Size, Opts}) ->
    %% Registered as py_pool_<Pool>_sup, so observer shows which pool it holds.
    Name = list_to_atom(lists:flatten(io_lib:format("py_pool_~ts_sup", [Pool]))),
    _ = catch register(Name, self()),
    put('$process_label', {py_pool, Pool}),
    %% The router starts each context, so that it learns the new pid after every
    %% restart.
    Children = [#{id => {py_context, I},
                  start => {py_context_router, start_context, [Pool, I, Opts]},
                  restart => permanent,
                  shutdown => 5000,
                  type => worker,
                  modules => [py_context, py_context_server]}
                || I <- lists:seq(1, Size)],
    %% A pool with a warm template (its own option, or the application's
    %% context_opts) starts it first: its contexts fork from it.
    Template = case py_template:wanted(Opts) of
                   true -> [py_template:child_spec(Pool, Opts)];
                   false -> []
               end,
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10}, Template ++ Children}}.
