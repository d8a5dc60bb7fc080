"""Stands in for the `logger_mod` of docs/async.md's py:cast example: record(event)
keeps the event in pyport's shared state, where py_docs_SUITE looks for it."""
import erlang


def record(event):
    erlang.state_set('logger_mod_last_event', event)
    erlang.state_incr('logger_mod_events')
