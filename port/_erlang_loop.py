"""The event-loop part of the `erlang` module: erlang.run, new_event_loop, the
loop policy, sleep, spawn_task and async_call (erlang_python 2.x names).

Runs on the context's Python thread. A context is an OS process of its own, so
its asyncio loop is a plain selector loop: its timers (asyncio.sleep, call_later)
wait in that process's epoll and delay nothing else of the node. What makes a
loop "Erlang's" is that, while it runs on the Python thread, it also serves the
frames Erlang sends to the context (the inbox eventfd): the replies of
erlang.async_call, requests made back into Python by a callback, and, on the
context's own loop, every new request. _pyport.py owns the context's loop
and the requests' tasks; this module only adds what user code calls.
"""

import asyncio
import threading
import time

import erlang

_PYTHON_THREAD = threading.get_ident()   # imported by the port on its Python thread

# erlang.async_call futures waiting for their callback_reply, by callback id.
_calls = {}


def _on_python_thread():
    return threading.get_ident() == _PYTHON_THREAD


class ErlangEventLoop(asyncio.SelectorEventLoop):
    """A selector event loop that, while it runs on the context's Python thread,
    serves the frames Erlang sends to the context: replies of erlang.async_call,
    and the requests of the running request's call chain (all requests when no
    request runs). The context's own loop (_pyport) is one, with the inbox
    reader added by _pyport.run instead."""

    def __init__(self, selector=None, *, serve_inbox=True):
        super().__init__(selector)
        self._serve_inbox = serve_inbox

    def run_forever(self):
        fd = -1
        if self._serve_inbox and _on_python_thread():
            fd = erlang._inbox_fd()
            self.add_reader(fd, erlang._drain)
        try:
            return super().run_forever()
        finally:
            if fd >= 0 and not self.is_closed():
                self.remove_reader(fd)


class ErlangEventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """The policy whose new loops are ErlangEventLoop (erlang.install() sets it)."""

    def new_event_loop(self):
        return ErlangEventLoop()


EventLoopPolicy = ErlangEventLoopPolicy


def new_event_loop():
    """A new ErlangEventLoop."""
    return ErlangEventLoop()


def get_event_loop_policy():
    """A new ErlangEventLoopPolicy."""
    return ErlangEventLoopPolicy()


def install():
    """Make ErlangEventLoopPolicy asyncio's policy: asyncio.run() and
    asyncio.new_event_loop() then give loops that serve Erlang's frames."""
    asyncio.set_event_loop_policy(ErlangEventLoopPolicy())


def _cancel_all(loop):
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in tasks:
        t.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())


def run(main, *, debug=None):
    """Run coroutine `main` to completion on a new ErlangEventLoop and return
    its result, as asyncio.run() does. From sync code: also while the context's
    own loop runs other coroutines (they wait until `main` is done, as they would
    for any sync request). From a coroutine: RuntimeError (await it instead)."""
    if not asyncio.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    outer = asyncio.events._get_running_loop()
    if outer is not None and asyncio.current_task(outer) is not None:
        main.close()
        raise RuntimeError("erlang.run() cannot be called from a running coroutine; "
                           "await the coroutine instead")
    loop = ErlangEventLoop()
    if debug is not None:
        loop.set_debug(debug)
    asyncio.events._set_running_loop(None)
    try:
        try:
            return loop.run_until_complete(main)
        finally:
            try:
                _cancel_all(loop)
            finally:
                loop.close()
    finally:
        asyncio.events._set_running_loop(outer)


def sleep(seconds):
    """In a coroutine: an awaitable of asyncio.sleep(seconds) (only that coroutine
    waits). In sync code: blocks the context's Python thread for `seconds`
    (nothing else of the node waits; a caller's timeout still interrupts it)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None and asyncio.current_task(loop) is not None:
        return asyncio.sleep(seconds)
    if seconds > 0:
        time.sleep(seconds)
    return None


def spawn_task(coro, *, name=None):
    """Schedule `coro` as a task and return it. From sync code (a request) it
    runs on the context's loop, which keeps running until it is done, after the
    request has answered; from a coroutine, on the running loop."""
    import _pyport
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    context_loop = _pyport._get_loop()
    if loop is not None and loop is not context_loop:
        return loop.create_task(coro, name=name)
    return _pyport.spawn(coro, name)


def async_call(name, *args):
    """An awaitable of the Erlang function registered as `name`: only the
    awaiting coroutine waits for it, concurrent ones run at the same time (each
    in an Erlang process of its own, or, under erlang.run in sync code, in the
    request's caller). erlang.Error if the function raised."""
    loop = asyncio.get_running_loop()
    if not _on_python_thread():
        raise RuntimeError("erlang.async_call runs on the context's Python thread")
    fut = loop.create_future()
    cb_id = erlang._callback_send(name if isinstance(name, str) else _name(name), list(args))
    _calls[cb_id] = fut
    release = _watch_inbox(loop)

    def done(_f):
        _calls.pop(cb_id, None)
        release()

    fut.add_done_callback(done)
    return fut


# Loops that do not serve the inbox themselves (a plain asyncio loop, e.g. from
# asyncio.run without erlang.install()): while an async_call of theirs waits,
# they watch the inbox too, so its reply gets in. loop -> waiting calls.
_borrowed = {}


def _watch_inbox(loop):
    import _pyport
    if isinstance(loop, ErlangEventLoop) and (loop._serve_inbox or loop is _pyport._loop):
        return lambda: None
    fd = erlang._inbox_fd()
    if loop not in _borrowed:
        loop.add_reader(fd, erlang._drain)
        _borrowed[loop] = 0
    _borrowed[loop] += 1

    def release():
        _borrowed[loop] -= 1
        if _borrowed[loop] == 0:
            del _borrowed[loop]
            if not loop.is_closed():
                loop.remove_reader(fd)

    return release


def _name(name):
    if isinstance(name, bytes):
        return name.decode()
    return str(name)


def callback_done(cb_id, value, exc):
    """The reply of erlang.async_call `cb_id` (from port/async.c)."""
    fut = _calls.pop(cb_id, None)
    if fut is None or fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)


def install_into(module):
    for key, value in {
        "ErlangEventLoop": ErlangEventLoop,
        "ErlangEventLoopPolicy": ErlangEventLoopPolicy,
        "EventLoopPolicy": EventLoopPolicy,
        "new_event_loop": new_event_loop,
        "get_event_loop_policy": get_event_loop_policy,
        "install": install,
        "run": run,
        "sleep": sleep,
        "spawn_task": spawn_task,
        "async_call": async_call,
    }.items():
        setattr(module, key, value)
