"""erlang.reactor: a Python Protocol does the protocol logic, Erlang does the I/O.

In pyport a connection handed to a reactor context (py_reactor_context) stays
an Erlang socket: Erlang reads it and passes the bytes here, and sends what the
protocol wrote (docs/reactor.md). The `fd` a protocol sees is then the
connection's number in its reactor, not an OS descriptor of this process.

The same functions also drive a protocol on a real descriptor of this process
(a socketpair made in Python, say): on_read_ready(fd) without data reads the fd,
and Protocol.write writes to it.

Entry points Erlang calls (each returns (bytes to send, action)):
init_connection, on_read_ready, on_write_ready; and close_connection.
Actions: "continue" (read on), "write_pending" (call write_ready),
"read_pending" (read again), "async_pending" (wait for signal_write_ready),
"close".
"""

import os

__all__ = ["Protocol", "Transport", "ReactorBuffer", "set_protocol_factory",
           "get_protocol", "init_connection", "on_read_ready", "on_write_ready",
           "close_connection", "signal_write_ready"]

_ACTIONS = ("continue", "write_pending", "read_pending", "async_pending", "close")


class ReactorBuffer(bytes):
    """The data handed to data_received: bytes (slicing, find, decode, buffer
    protocol...)."""

    @classmethod
    def _test_create(cls, data):
        return cls(data)


class Transport:
    """What a protocol writes to: write() queues bytes that the reactor sends
    after the current callback; close() closes the connection after them."""

    __slots__ = ("_out", "_closing", "_info")

    def __init__(self, info):
        self._out = bytearray()
        self._closing = False
        self._info = info

    def write(self, data):
        if not self._closing:
            self._out += data

    def writelines(self, chunks):
        for chunk in chunks:
            self.write(chunk)

    def close(self):
        self._closing = True

    def is_closing(self):
        return self._closing

    def get_extra_info(self, name, default=None):
        return self._info.get(name, default)

    def _take(self):
        out = bytes(self._out)
        self._out.clear()
        return out


class Protocol:
    """Base class: override data_received (and write_ready, connection_lost).

    data_received(data) may write (self.write, self.transport.write, or
    self.write_buffer with "write_pending") and returns an action; None means
    "continue". write_ready() returns an action; the default sends
    write_buffer and returns "read_pending"."""

    def __init__(self):
        self.fd = -1
        self.client_info = {}
        self.write_buffer = bytearray()
        self.closed = False
        self.transport = None

    def connection_made(self, fd, client_info):
        self.fd = fd
        self.client_info = client_info

    def data_received(self, data):
        raise NotImplementedError

    def write_ready(self):
        if self.write_buffer:
            written = self.write(bytes(self.write_buffer))
            del self.write_buffer[:written]
        return "continue" if self.write_buffer else "read_pending"

    def connection_lost(self):
        pass

    def read(self, size=65536):
        if self.transport is not None:
            return b""  # relayed: data comes with data_received
        try:
            return os.read(self.fd, size)
        except OSError:
            return b""

    def write(self, data):
        if self.transport is not None:
            self.transport.write(data)
            return len(data)
        try:
            return os.write(self.fd, data)
        except OSError:
            return 0


_protocols = {}
_reactor_pids = {}
_protocol_factory = None


def set_protocol_factory(factory):
    """The callable that makes the Protocol of each new connection."""
    global _protocol_factory
    _protocol_factory = factory


def ready():
    """Whether a protocol factory is set (the reactor asks once, at start)."""
    return _protocol_factory is not None


def get_protocol(fd):
    return _protocols.get(fd)


def _answer(proto, action):
    if action is None:
        action = "continue"
    action = str(action)
    if action not in _ACTIONS:
        raise ValueError(f"unknown reactor action {action!r}")
    transport = proto.transport
    if transport is None:
        return b"", action
    if transport._closing:
        action = "close"
    return transport._take(), action


def init_connection(fd, client_info, relayed=False):
    """A new connection: makes its protocol. Relayed connections (Erlang holds
    the socket) get a Transport."""
    if _protocol_factory is None:
        raise RuntimeError("no protocol factory: call erlang.reactor.set_protocol_factory")
    info = dict(client_info or {})
    proto = _protocol_factory()
    if relayed:
        proto.transport = Transport(info)
    _protocols[fd] = proto
    pid = info.get("reactor_pid")
    if pid is not None:
        _reactor_pids[fd] = pid
    proto.connection_made(fd, info)
    return _answer(proto, "continue")


def on_read_ready(fd, data=None):
    proto = _protocols.get(fd)
    if proto is None:
        return "close" if data is None else (b"", "close")
    if data is None:
        data = proto.read()
        if not data:
            return "close"
        return proto.data_received(ReactorBuffer(data))
    return _answer(proto, proto.data_received(ReactorBuffer(data)))


def on_write_ready(fd):
    proto = _protocols.get(fd)
    if proto is None:
        return "close"
    action = proto.write_ready()
    if proto.transport is None:
        return action
    return _answer(proto, action)


def close_connection(fd):
    proto = _protocols.pop(fd, None)
    _reactor_pids.pop(fd, None)
    if proto is not None and not proto.closed:
        proto.closed = True
        proto.connection_lost()


def signal_write_ready(fd):
    """Asks the reactor to call write_ready (after an "async_pending")."""
    pid = _reactor_pids.get(fd)
    if pid is None:
        return False
    import erlang
    erlang.send(pid, (erlang.atom("write_ready"), fd))
    return True


def _install():
    import sys
    import erlang
    module = sys.modules[__name__]
    sys.modules["erlang.reactor"] = module
    erlang.reactor = module
    erlang.ReactorBuffer = ReactorBuffer
