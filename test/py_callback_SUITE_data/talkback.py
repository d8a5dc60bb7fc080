"""One step of a Python -> Erlang -> Python chain, for py_callback_SUITE's routed
case: each run is recorded in a module-level list (one list per OS process), then
the step calls the Erlang function registered as 'talk_down'."""
import erlang

trail = []


def step(n):
    trail.append(n)
    return erlang.call('talk_down', n) + 1


def taken():
    return list(trail)


def reset():
    trail.clear()
