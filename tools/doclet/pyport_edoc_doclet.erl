%% @private An edoc doclet for `rebar3 edoc' (rebar.config, docs profile): the
%% standard doclet, given only the modules listed in the edoc option
%% `{pyport_public_modules, [Module]}', so the API reference leaves out the
%% application's internal modules. Not part of the application.
-module(pyport_edoc_doclet).

-export([run/2]).

-include_lib("edoc/include/edoc_doclet.hrl").

%% @doc Runs edoc_doclet on the public modules only (everything when the option is absent).
-spec run(#doclet_gen{} | #doclet_toc{}, #doclet_context{}) -> ok.
run(#doclet_gen{sources = Sources, modules = Modules} = Gen, #doclet_context{opts = Opts} = Ctxt) ->
    case proplists:get_value(pyport_public_modules, Opts) of
        undefined ->
            edoc_doclet:run(Gen, Ctxt);
        Public ->
            edoc_doclet:run(Gen#doclet_gen{sources = [S || {M, _, _} = S <- Sources,
                                                           lists:member(M, Public)],
                                           modules = [M || M <- Modules,
                                                           lists:member(M, Public)]},
                            Ctxt)
    end;
run(Cmd, Ctxt) ->
    edoc_doclet:run(Cmd, Ctxt).
