"""The parts of erlang_python 2.x's `erlang` module that pyport builds in Python.

_pyport._install() calls install(erlang) once, at start-up. Everything here runs on
whichever thread calls it (the request thread, the event loop, or a thread of the
user's): the functions only use erlang.call, which works from any thread, and the
raw frame senders of the C module.

What pyport answers differently, because a context is an OS process and not a
NIF: erlang.schedule*, which exist to give a dirty scheduler back to the BEAM,
run their continuation at once (the Python thread holds nothing the BEAM needs)
and return a marker that converts to its result; consume_time_slice() is always
False; erlang.send asks the Erlang side, so that a dead process is an error as
in erlang_python.
"""

import builtins
import os
import sys
import time
# threading.local itself, without importing threading (and functools,
# collections) at every start.
from _thread import _local


class ProcessError(Exception):
    """erlang.send() could not deliver: the process has exited, or no process is
    registered under the name."""


class SuspensionRequired(BaseException):
    """Kept for code written for erlang_python 2.x, which raises it internally to
    suspend a request around erlang.call. pyport never raises it (erlang.call
    simply waits); as there, it is a BaseException, so `except Exception` in
    user code would not catch it."""


class Function:
    """A registered Erlang function, as `erlang.<name>` returns it."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __call__(self, *args):
        return _erlang.call(self.name, *args)

    def __repr__(self):
        return f"erlang.Function({self.name!r})"


_erlang = None

# Destinations erlang.send has reached from this OS process (see send below);
# forgotten all at once when it holds this many.
_reached = set()
_REACHED_MAX = 4096


# ---- scheduling markers --------------------------------------------------------

def _marker_bytes(value):
    """The Erlang external format of value, as erlang.Term wants it."""
    if isinstance(value, _erlang.Term):
        return value.etf
    return _erlang.call("_pyport.etf", value)


# A marker is a plain erlang.Term (the codec sends its bytes as they are);
# isinstance(marker, erlang.ScheduleMarker) recognises the most recent markers,
# kept here by id (the entry holds the object, so the id cannot be reused).
_MARKERS_KEPT = 4096
_markers = {}


class _MarkerType(type):
    def __instancecheck__(cls, obj):
        entry = _markers.get(id(obj))
        return entry is not None and entry[0] is obj and issubclass(entry[1], cls)


def _mark(cls, etf):
    marker = _erlang.Term(etf)
    _markers[id(marker)] = (marker, cls)
    if len(_markers) > _MARKERS_KEPT:
        del _markers[next(iter(_markers))]
    return marker


def _resolve(module, func, frame_globals):
    if module in ("__main__", b"__main__") and frame_globals is not None:
        name = func.decode() if isinstance(func, bytes) else str(func)
        if name in frame_globals:
            return frame_globals[name]
        main = sys.modules.get("__main__")
        if main is not None and hasattr(main, name):
            return getattr(main, name)
        raise NameError(f"name '{name}' is not defined")
    mod = __import__(module.decode() if isinstance(module, bytes) else str(module),
                     fromlist=["_"])
    return getattr(mod, func.decode() if isinstance(func, bytes) else str(func))


def _caller_globals():
    try:
        return sys._getframe(2).f_globals
    except ValueError:
        return None


# ---- SharedDict ----------------------------------------------------------------

class SharedDict:
    """A dict shared by Erlang and every context (py:shared_dict_new/0). Each
    operation is one atomic step on the Erlang side; values are copied in and out
    (changing a value you read does not change the stored one)."""

    __slots__ = ("_handle",)
    _MISSING = object()

    def __init__(self, handle):
        self._handle = handle

    def _op(self, op, *args):
        return _erlang.call("_pyport.shared_dict", op, self._handle, *args)

    def __getitem__(self, key):
        found, value = self._op("get", key)
        if not found:
            raise KeyError(key)
        return value

    def get(self, key, default=None):
        found, value = self._op("get", key)
        return value if found else default

    def __setitem__(self, key, value):
        self._op("set", key, value)

    def __delitem__(self, key):
        if not self._op("del", key):
            raise KeyError(key)

    def __contains__(self, key):
        return self._op("get", key)[0]

    def keys(self):
        return self._op("keys")

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self.keys())

    def destroy(self):
        self._op("destroy")

    def __repr__(self):
        return f"erlang.SharedDict({self._handle!r})"


# ---- tracing -------------------------------------------------------------------

_spans = _local()
_tracing = None   # whether the Erlang side keeps spans; None: not asked yet


def set_tracing(on):
    """py:enable_tracing/0 and disable_tracing/0 tell every running context."""
    global _tracing
    _tracing = bool(on)
    return _tracing


def _tracing_on():
    global _tracing
    if _tracing is None:
        _tracing = bool(_erlang.call("_pyport.tracing"))
    return _tracing


def _trace(*msg):
    # Through the Erlang process the request runs for, and answered: the spans
    # of a request reach py_trace before the request's answer reaches its caller.
    _erlang.call("_pyport.trace", list(msg))


def _now_us():
    return time.monotonic_ns() // 1000


def _span_stack():
    stack = getattr(_spans, "stack", None)
    if stack is None:
        stack = _spans.stack = []
    return stack


class Span:
    """A trace span: `with erlang.Span('name', key=value) as span: span.event(...)`.
    Spans nest per thread; the Erlang side keeps them while py:enable_tracing()
    is on (py:get_traces/0); while it is off a span sends nothing."""

    def __init__(self, name, **attrs):
        self.name = str(name)
        self.attrs = attrs
        self.span_id = int.from_bytes(os.urandom(8), "big") or 1
        self.parent_id = None
        self.sent = False

    def __enter__(self):
        stack = _span_stack()
        self.parent_id = stack[-1].span_id if stack else None
        stack.append(self)
        if _tracing_on():
            self.sent = True
            _trace(_erlang.atom("span_start"), self.span_id,
                   self.parent_id if self.parent_id is not None else _erlang.atom("undefined"),
                   self.name, dict(self.attrs), _now_us())
        return self

    def event(self, name, **attrs):
        if self.sent:
            _trace(_erlang.atom("span_event"), self.span_id, str(name), dict(attrs), _now_us())

    def __exit__(self, exc_type, exc, tb):
        stack = _span_stack()
        if stack and stack[-1] is self:
            stack.pop()
        elif self in stack:
            stack.remove(self)
        if self.sent:
            if exc_type is None:
                status, end_attrs = "ok", {}
            else:
                status, end_attrs = "error", {"exception": str(exc),
                                              "exception_type": exc_type.__name__}
            _trace(_erlang.atom("span_end"), self.span_id, _erlang.atom(status), end_attrs,
                   _now_us())
        return False


def trace(name=None):
    """Decorator: each call of the function runs in a Span named `name`
    (default: module.qualname)."""

    import functools

    def wrap(func):
        span_name = name or f"{func.__module__}.{func.__qualname__}"

        @functools.wraps(func)
        def traced(*args, **kwargs):
            with Span(span_name):
                return func(*args, **kwargs)

        return traced

    return wrap


# ---- install -------------------------------------------------------------------

# Attributes of the erlang module set on first use: name -> the function that
# sets it (and the rest of its group). See lazy_attributes.
_LAZY = {}


def lazy_attributes(names, install_group):
    """erlang.<name>, for each of names, is set by install_group() when it is
    first looked up (for parts whose imports cost start time)."""
    for name in names:
        _LAZY[name] = install_group


class _LazyModule(type(sys)):
    """What sys.modules holds for `erlang.<name>` until that part is installed
    (see lazy_submodules): the first attribute looked up on it installs the
    part (erlang.<name>, which puts the real module in sys.modules) and makes
    this module a copy of it."""

    def __getattr__(self, attr):
        real = getattr(_erlang, _lazy_parts[self])
        self.__dict__.update(real.__dict__)
        return getattr(real, attr)


_lazy_parts = {}  # _LazyModule -> the erlang attribute it stands for


def lazy_submodules(names):
    """`import erlang.<name>` (and `from erlang.<name> import ...`) works for
    each of names, which lazy_attributes installs on first use."""
    for name in names:
        module = _LazyModule(f"erlang.{name}")
        _lazy_parts[module] = name
        sys.modules.setdefault(f"erlang.{name}", module)


def install(erlang):
    global _erlang
    _erlang = erlang

    class ScheduleMarker(metaclass=_MarkerType):
        """What erlang.schedule / schedule_py return: an erlang.Term that converts
        to the result."""

    class InlineScheduleMarker(metaclass=_MarkerType):
        """What erlang.schedule_inline returns: an erlang.Term that converts to
        the result."""

    # The C module's send: one `send' frame under the send window. Kept as
    # erlang._send (the port-level tests drive it directly).
    frame_send = erlang._send = erlang.send

    def send(dest, term):
        """Send term to an erlang.Pid, or to a process registered under a name
        (str, bytes or erlang.Atom). The first send from this context to a
        destination asks Erlang, so that a process that has exited (or a name
        nobody has) raises erlang.ProcessError; later sends to it go without
        waiting, under the context's send window (like Erlang's `!', a message
        to a process that exited since is lost). TypeError for anything else."""
        if isinstance(dest, bytes):
            dest = dest.decode()
        if not isinstance(dest, (erlang.Pid, str)):
            raise TypeError(f"send(dest, term): dest must be an erlang.Pid or a "
                            f"registered name, not {type(dest).__name__}")
        key = (type(dest) is erlang.Pid, dest.etf if isinstance(dest, erlang.Pid) else str(dest))
        if key in _reached:
            frame_send(dest, term)
            return
        if not erlang.call("_pyport.send", dest, term):
            raise ProcessError(f"no process to send to: {dest!r} has exited or is not "
                               "registered")
        if len(_reached) >= _REACHED_MAX:
            _reached.clear()
        _reached.add(key)

    def whereis(name):
        """The pid registered as `name` (str, bytes or erlang.Atom) in Erlang, or None."""
        if isinstance(name, bytes):
            name = name.decode()
        if not isinstance(name, str):
            raise TypeError(f"whereis(name): name must be a str, bytes or erlang.Atom, "
                            f"not {type(name).__name__}")
        return erlang.call("_pyport.whereis", name)

    def schedule(name, *args):
        """Call the Erlang function registered as `name` and return a marker that
        converts to its result (return it from your function)."""
        return _mark(ScheduleMarker, erlang.call("_pyport.schedule", name, list(args)))

    def schedule_py(module, func, args=None, kwargs=None):
        """Call module.func(*args, **kwargs) ('__main__' is the caller's
        namespace) and return a marker that converts to its result."""
        f = _resolve(module, func, _caller_globals())
        return _mark(ScheduleMarker, _marker_bytes(f(*(args or ()), **(kwargs or {}))))

    def schedule_inline(module, func, args=None, kwargs=None):
        """As schedule_py, with the caller's globals for '__main__' names."""
        f = _resolve(module, func, _caller_globals())
        return _mark(InlineScheduleMarker, _marker_bytes(f(*(args or ()), **(kwargs or {}))))

    def consume_time_slice(percent=1):
        """Always False: a pyport context never holds a BEAM scheduler."""
        return False

    def setup_logging(level=10, format=None):
        """Send Python logging records at `level` and up to Erlang's logger."""
        import _pyport
        return _pyport.configure_logging(level, format)

    def __getattr__(name):
        """erlang.<name> is the Erlang function registered as `name`; a name that
        is not registered is not an attribute (hasattr is False)."""
        loader = _LAZY.get(name)
        if loader is not None:
            loader()
            for key in [k for k, v in _LAZY.items() if v is loader]:
                del _LAZY[key]
            return getattr(erlang, name)
        if name == "ErlangHandler":
            # logging is imported, and the class defined, on first use.
            import _pyport
            cls = _pyport.erlang_handler()
            setattr(erlang, name, cls)
            return cls
        if name.startswith("__") or not erlang.call("_pyport.registered", name):
            raise AttributeError(f"module 'erlang' has no attribute '{name}'")
        return Function(name)

    import _pyport
    for key, value in {
        "ProcessError": ProcessError,
        "SuspensionRequired": SuspensionRequired,
        "Function": Function,
        "ScheduleMarker": ScheduleMarker,
        "InlineScheduleMarker": InlineScheduleMarker,
        "SharedDict": SharedDict,
        "Span": Span,
        "trace": trace,
        "setup_logging": setup_logging,
        "_atom": erlang.atom,
        "send": send,
        "whereis": whereis,
        "schedule": schedule,
        "schedule_py": schedule_py,
        "schedule_inline": schedule_inline,
        "consume_time_slice": consume_time_slice,
        "__getattr__": __getattr__,
    }.items():
        setattr(erlang, key, value)
    # Pre-imported: `erlang` is a name in every namespace of the context.
    builtins.erlang = erlang


# ---- py_import registries ------------------------------------------------------

def apply_registry(paths, modules):
    """Put `paths` first on sys.path (in order, once each) and import `modules`
    into sys.modules; a module that cannot be imported is skipped (calls to it
    fail as they would have)."""
    import importlib
    fresh = [p for p in paths if p not in sys.path]
    sys.path[0:0] = fresh
    if fresh:
        importlib.invalidate_caches()
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:
            pass
    return True
