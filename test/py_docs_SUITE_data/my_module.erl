%% Stands in for the `my_module' of docs/callbacks.md's register_function/3
%% example (py_docs_SUITE compiles and loads it): lookup(Args) answers a key.
-module(my_module).
-export([lookup/1]).

lookup([Key]) -> {found, Key}.
