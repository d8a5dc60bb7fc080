"""Internal helpers of a pyport context, imported by the port at start-up.

The C side (port/async.c, port/ops.c) calls these for everything that is easier in
Python: the asyncio event loop that awaits coroutines and pumps streams, venv
activation, logging to Erlang, memory statistics. Runs on the Python thread; the
functions of the `erlang` module prefixed with `_` send frames to Erlang.
"""

import gc
import os
import sys
# The two names contextvars.py re-exports, without importing it at start.
from _contextvars import ContextVar, copy_context

import erlang

# Imported where first needed, not here, to keep a context's start short:
# asyncio (the event loop), logging (configure_logging, ErlangHandler), glob,
# importlib and site (venvs).

_loop = None
_tasks = {}    # request id -> asyncio.Task awaiting a coroutine result
_streams = {}  # request id -> _Stream
_spawned = set()  # tasks of erlang.spawn_task, answered to nobody

# The request a coroutine or stream runs for, seen from C (port/async.c): each
# task has its own copy, so while a task runs this names its request (a cancel
# is raised in it, its erlang.call says whose callback it is).
request = ContextVar("pyport_request", default=0)


# ---- the event loop ------------------------------------------------------------

def _get_loop():
    global _loop
    if _loop is None:
        import asyncio
        import _erlang_loop
        _loop = _erlang_loop.ErlangEventLoop(serve_inbox=False)  # run() adds the reader
        asyncio.set_event_loop(_loop)
    return _loop


def pending():
    """Number of coroutines and streams still running."""
    return len(_tasks) + len(_streams) + len(_spawned)


def run(fd, drain):
    """Run the event loop until nothing is pending; `drain` serves new jobs
    whenever `fd` (the inbox eventfd) becomes readable."""
    loop = _get_loop()
    loop.add_reader(fd, drain)
    try:
        if pending():
            loop.run_forever()
    finally:
        loop.remove_reader(fd)


def stop():
    if _loop is not None:
        _loop.stop()


def _maybe_stop():
    if not pending():
        stop()


class _Raised:
    """SystemExit or KeyboardInterrupt raised by a coroutine or a stream: the
    task returns it instead of raising it, because asyncio lets those two out of
    the event loop (they would end the OS process, or stop every other
    coroutine). Its request is answered with the exception, as a synchronous
    request would be."""

    __slots__ = ("exc",)

    def __init__(self, exc):
        self.exc = exc


async def _await(req_id, awaitable):
    request.set(req_id)
    try:
        return await awaitable
    except (SystemExit, KeyboardInterrupt) as exc:
        return _Raised(exc)


def start_task(req_id, owner, awaitable):
    """Await `awaitable` on the loop; answer request `req_id` when it is done."""
    task = _get_loop().create_task(_await(req_id, awaitable))
    _tasks[req_id] = task

    def done(t):
        _tasks.pop(req_id, None)
        _finish(req_id, owner, t, None)
        _maybe_stop()

    task.add_done_callback(done)


def _finish(req_id, owner, task, value):
    if task is not None and task.cancelled():
        erlang._finish(req_id, owner, "cancelled", None)
    elif task is not None and task.exception() is not None:
        erlang._finish(req_id, owner, "error", task.exception())
    else:
        result = task.result() if task is not None else value
        if isinstance(result, _Raised):
            erlang._finish(req_id, owner, "error", result.exc)
        else:
            erlang._finish(req_id, owner, "ok", result)


def spawn(coro, name=None):
    """A task of the context's loop that answers no request (erlang.spawn_task):
    the loop runs until it is done. Its exception, if any, is logged."""
    ctx = copy_context()
    ctx.run(request.set, 0)   # a cancel of the spawning request does not reach it
    task = _get_loop().create_task(coro, name=name, context=ctx)
    _spawned.add(task)
    erlang._pending_add(1)

    def done(t):
        _spawned.discard(t)
        erlang._pending_add(-1)
        if not t.cancelled() and t.exception() is not None:
            _get_loop().call_exception_handler({
                "message": "erlang.spawn_task: the task raised",
                "exception": t.exception(), "task": t})
        _maybe_stop()

    task.add_done_callback(done)
    return task


def callback_done(cb_id, value, exc):
    """The reply of an erlang.async_call (port/async.c)."""
    import _erlang_loop
    _erlang_loop.callback_done(cb_id, value, exc)


def cancel(req_id):
    """A caller gave up: cancel its coroutine or stream, if it has one."""
    task = _tasks.get(req_id)
    if task is not None:
        task.cancel()
    stream = _streams.get(req_id)
    if stream is not None:
        stream.task.cancel()


# ---- streams -------------------------------------------------------------------

class _Stream:
    """Sends the items of an iterator or async iterator as stream_data frames,
    at most `credit` ahead of the acknowledgements from Erlang. The answer of
    the stream request (done, the error, or cancelled) is sent exactly once, by
    the task's done-callback, however the task ends."""

    def __init__(self, req_id, owner, source, window):
        import asyncio
        self.req_id = req_id
        self.owner = owner
        self.source = source
        self.credit = window
        self.more = asyncio.Event()
        self.task = _get_loop().create_task(self.pump())
        self.task.add_done_callback(self.done)

    def ack(self, n):
        self.credit += n
        self.more.set()

    async def _credit(self):
        while self.credit <= 0:
            self.more.clear()
            await self.more.wait()
        self.credit -= 1

    async def pump(self):
        request.set(self.req_id)
        try:
            return await self._pump()
        except (SystemExit, KeyboardInterrupt) as exc:
            return _Raised(exc)

    async def _pump(self):
        import asyncio
        source = self.source
        try:
            if hasattr(source, "__aiter__") or hasattr(source, "__anext__"):
                it = source.__aiter__() if hasattr(source, "__aiter__") else source
                while True:
                    await self._credit()
                    try:
                        item = await it.__anext__()
                    except StopAsyncIteration:
                        break
                    erlang._stream_data(self.req_id, self.owner, item)
            else:
                it = iter(source)
                while True:
                    await self._credit()
                    try:
                        item = next(it)
                    except StopIteration:
                        break
                    erlang._stream_data(self.req_id, self.owner, item)
                    await asyncio.sleep(0)  # let requests and other streams run
        finally:
            await _close(source)
        return erlang.atom("done")

    def done(self, task):
        _streams.pop(self.req_id, None)
        _finish(self.req_id, self.owner, task, None)
        _maybe_stop()


async def _close(source):
    try:
        if hasattr(source, "aclose"):
            await source.aclose()
        elif hasattr(source, "close"):
            source.close()
    except Exception:
        pass


def start_stream(req_id, owner, source, window):
    if not (hasattr(source, "__iter__") or hasattr(source, "__aiter__")
            or hasattr(source, "__anext__")):
        raise TypeError(f"a stream needs an iterable or async iterable, not {type(source).__name__}")
    _streams[req_id] = _Stream(req_id, owner, source, window)


def stream_ack(req_id, n):
    stream = _streams.get(req_id)
    if stream is not None:
        stream.ack(n)


# ---- resources named by references -------------------------------------------

_RESOURCES_KEPT = 256
_resources = {}   # ref's ETF -> its reader (erlang.PyBuffer) or None; bounded


def resource_attr(ref, name):
    """An attribute of the resource `ref` names (port/terms.c asks when an
    erlang.Ref has no attribute `name`): a py_buffer answers as erlang.PyBuffer,
    one reader per buffer. NotImplemented when `ref` names no resource."""
    key = ref.etf
    if key in _resources:
        reader = _resources[key]
    else:
        kind = erlang.call("_pyport.resource_kind", ref)
        reader = erlang.PyBuffer(ref) if kind == "buffer" else None
        if len(_resources) >= _RESOURCES_KEPT:
            del _resources[next(iter(_resources))]
        _resources[key] = reader
    if reader is None:
        return NotImplemented
    return getattr(reader, name)


# ---- virtual environments ------------------------------------------------------

_venv = None


def activate_venv(path):
    """Put the site-packages of the venv at `path` first on sys.path, honouring
    its .pth files. Replaces a venv activated before; None deactivates."""
    global _venv
    if path is None:
        return deactivate_venv()
    import glob
    import importlib
    import site
    path = os.path.abspath(os.fsdecode(path))
    want = f"python{sys.version_info.major}.{sys.version_info.minor}"
    found = sorted(glob.glob(os.path.join(path, "lib", "python*", "site-packages")))
    if not found:
        raise ValueError(f"no lib/python*/site-packages under {path}: not a venv")
    matching = [p for p in found if os.path.basename(os.path.dirname(p)) == want]
    if not matching:
        raise ValueError(f"the venv at {path} is for another Python ({found}); this is {want}")
    deactivate_venv()
    site_packages = matching[0]
    before = list(sys.path)
    site.addsitedir(site_packages)
    added = [p for p in sys.path if p not in before]
    for p in added:
        sys.path.remove(p)
    sys.path[0:0] = added
    os.environ["VIRTUAL_ENV"] = path
    importlib.invalidate_caches()
    _venv = {"path": path, "site_packages": site_packages, "added": added}
    return venv_info()


def deactivate_venv():
    """Take the active venv's entries off sys.path (modules already imported
    from it stay loaded)."""
    global _venv
    if _venv is None:
        return venv_info()
    for p in _venv["added"]:
        while p in sys.path:
            sys.path.remove(p)
    os.environ.pop("VIRTUAL_ENV", None)
    import importlib
    importlib.invalidate_caches()
    _venv = None
    return venv_info()


def venv_info():
    """As erlang_python 2.x: a map with binary keys, <<"active">>, and when
    active <<"venv_path">>, <<"site_packages">> and <<"sys_path">>."""
    if _venv is None:
        return {"active": False}
    return {"active": True, "venv_path": _venv["path"],
            "site_packages": _venv["site_packages"], "sys_path": list(sys.path)}


# ---- logging -------------------------------------------------------------------

_handler_class = None


def erlang_handler():
    """The logging.Handler class that sends each record to Erlang's logger
    (erlang.ErlangHandler); defined on first use, so that logging is imported
    only by contexts that log."""
    global _handler_class
    if _handler_class is None:
        import logging

        class ErlangHandler(logging.Handler):
            """Sends each record to Erlang's logger (level, logger name, message)."""

            def emit(self, record):
                try:
                    message = self.format(record)
                except Exception:
                    message = record.getMessage()
                erlang._log(record.levelno, record.name, message)

        _handler_class = ErlangHandler
    return _handler_class


def __getattr__(name):
    if name == "ErlangHandler":
        return erlang_handler()
    raise AttributeError(f"module '_pyport' has no attribute '{name}'")


def configure_logging(level=20, fmt=None):
    """Route Python logging (the root logger and everything below it) to Erlang.
    `level` (default logging.INFO) may also be [level, fmt] (the form
    py:configure_logging/1 sends)."""
    import logging
    ErlangHandler = erlang_handler()
    if isinstance(level, (list, tuple)):
        level, fmt = level
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, ErlangHandler):
            root.removeHandler(h)
    handler = ErlangHandler(level)
    if fmt:
        handler.setFormatter(logging.Formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level)
    return True


# ---- facts ---------------------------------------------------------------------

def memory_stats():
    """A map with atom keys for Erlang (py:memory_stats/0)."""
    a = erlang.atom
    stats = {
        a("gc_stats"): [{a(k): v for k, v in g.items()} for g in gc.get_stats()],
        a("gc_count"): gc.get_count(),
        a("gc_threshold"): gc.get_threshold(),
        a("rss_bytes"): _rss(),
    }
    import tracemalloc
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        stats[a("traced_memory_current")] = current
        stats[a("traced_memory_peak")] = peak
    return stats


def _rss():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


def collect(generation=2):
    return gc.collect(generation)


# ---- the warm template ---------------------------------------------------------

def fork_check():
    """What makes this process (a warm template, after its preload) unsafe to
    fork: (errors, warnings), two lists of sentences. A fork copies only the
    forking thread, so Python threads still running are refused; native
    threads, sockets and an asyncio loop are reported. When it is safe, the
    objects that exist now are frozen out of the garbage collector (gc.freeze)."""
    errors, warnings = [], []
    threading = sys.modules.get("threading")
    py_threads = 1
    if threading is not None:
        others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        py_threads += len(others)
        if others:
            errors.append("the preload left %d Python thread(s) running (%s): a forked "
                          "context would have none of them, and any lock they hold "
                          "stays locked; start threads in the context, not in the "
                          "preload" % (len(others), ", ".join(others)))
    try:
        native = len(os.listdir("/proc/self/task"))
    except OSError:
        native = 1
    if native > py_threads:
        warnings.append("%d native thread(s) besides the main one after the preload "
                        "(a library's worker pool?): forked contexts start without them; "
                        "libraries that handle fork (OpenBLAS, ...) start theirs again"
                        % (native - py_threads))
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        fds = []
    for fd in fds:
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            continue
        if target.startswith("socket:"):
            warnings.append("fd %s is a socket opened by the preload: every forked "
                            "context shares it (open connections in the context)" % fd)
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        policy = asyncio.events._event_loop_policy
        local = getattr(policy, "_local", None)
        if getattr(local, "_loop", None) is not None:
            warnings.append("the preload created an asyncio event loop: forked contexts "
                            "share its selector and self-pipe; create loops in the context")
    if not errors:
        # What the preload made is never collected in the forks: their
        # collections do not touch (and so do not copy) the template's pages.
        gc.collect()
        gc.freeze()
        # Python's random reseeds itself in a fork; numpy's global generator
        # does not: every fork would draw the template's numbers.
        os.register_at_fork(after_in_child=_reseed_forked)
    return errors, warnings


def _reseed_forked():
    """In a context forked from a warm template: fresh OS entropy for the global
    generator of numpy.random when the preload imported it (generators the
    preload created itself keep the template's state)."""
    np_random = sys.modules.get("numpy.random")
    seed = getattr(np_random, "seed", None)
    if seed is not None:
        try:
            seed()
        except Exception:  # a numpy without the legacy global generator
            pass


# ---- the parts of the erlang module written in Python --------------------------

def _install():
    """Adds to the erlang module the functions built on erlang.call."""

    def state_get(key, default=None):
        """The value stored under `key` in pyport's shared state (py:state_store/2)."""
        found, value = erlang.call("_pyport.state_fetch", key)
        return value if found else default

    def state_set(key, value):
        """Store `value` under `key` in the shared state."""
        erlang.call("_pyport.state_store", key, value)

    def state_delete(key):
        """Remove `key` from the shared state."""
        erlang.call("_pyport.state_remove", key)

    def state_keys():
        """All keys of the shared state."""
        return erlang.call("_pyport.state_keys")

    def state_incr(key, n=1):
        """Atomically add `n` to the integer under `key` (0 if absent); the new value."""
        return erlang.call("_pyport.state_incr", key, n)

    def state_decr(key, n=1):
        """Atomically subtract `n`; the new value."""
        return erlang.call("_pyport.state_decr", key, n)

    for f in (state_get, state_set, state_delete, state_keys, state_incr, state_decr):
        setattr(erlang, f.__name__, f)

    # What erlang_python 2.x code expects of the module besides (send, whereis,
    # __getattr__, schedule*, SharedDict, Span, ...): _erlang_compat.py.
    import _erlang_compat
    _erlang_compat.install(erlang)
    # The event-loop API (run, new_event_loop, sleep, spawn_task, async_call):
    # _erlang_loop.py, imported on first use (it imports asyncio, tens of ms).
    def install_loop():
        import _erlang_loop
        _erlang_loop.install_into(erlang)
    _erlang_compat.lazy_attributes(
        ("ErlangEventLoop", "ErlangEventLoopPolicy", "EventLoopPolicy", "new_event_loop",
         "get_event_loop_policy", "install", "run", "sleep", "spawn_task", "async_call"),
        install_loop)
    # erlang.reactor (_pyport_reactor.py), channels and byte channels
    # (_erlang_channel.py) and erlang.PyBuffer (_erlang_buffer.py) are imported
    # on first use too, as an attribute or as a submodule (`import erlang.reactor`).
    def install_reactor():
        import _pyport_reactor
        _pyport_reactor._install()

    def install_channels():
        import _erlang_channel
        _erlang_channel.install_into(erlang)

    def install_buffer():
        import _erlang_buffer
        _erlang_buffer.install_into(erlang)
    _erlang_compat.lazy_attributes(("reactor", "ReactorBuffer"), install_reactor)
    _erlang_compat.lazy_attributes(
        ("Channel", "ChannelClosed", "reply", "ByteChannel", "ByteChannelClosed",
         "channel", "byte_channel"), install_channels)
    _erlang_compat.lazy_attributes(("PyBuffer",), install_buffer)
    _erlang_compat.lazy_submodules(("reactor", "channel", "byte_channel"))

_install()
