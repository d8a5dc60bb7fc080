"""erlang.Channel and erlang.ByteChannel: Python's end of py_channel and
py_byte_channel (erlang_python 2.x names; also importable as erlang.channel and
erlang.byte_channel).

A channel is a queue held by an Erlang process and named by a reference; the
operations are built-in callbacks (`_pyport.channel`). A blocking receive waits
in Erlang while this context's Python thread keeps serving its own call chain;
an async receive first takes what is queued, and otherwise awaits a wake-up
through erlang.async_call, so only the awaiting coroutine waits and a
cancelled wait takes nothing from the queue.
"""

import erlang


class ChannelClosed(Exception):
    """The channel is closed and everything queued in it has been taken."""


class ByteChannelClosed(ChannelClosed):
    """A byte channel is closed and drained."""


def _op(op, *args):
    return erlang.call("_pyport.channel", op, *args)


class Channel:
    """Receives the terms Erlang sends with py_channel:send/2."""

    _closed_error = ChannelClosed

    __slots__ = ("_ref",)

    def __init__(self, ref):
        self._ref = ref

    @property
    def ref(self):
        return self._ref

    def _unwrap(self, answer, *, empty=None):
        ok, value = answer
        if ok:
            return value
        if value == "closed":
            raise self._closed_error("channel closed")
        if value == "timeout":
            raise TimeoutError("channel receive timed out")
        return empty

    def receive(self, timeout=None):
        """The next item, waiting for one (at most `timeout` seconds, then
        TimeoutError). ChannelClosed once closed and drained."""
        return self._unwrap(_op("receive", self._ref, timeout))

    def try_receive(self):
        """The next item, or None if none is queued. ChannelClosed once closed
        and drained."""
        return self._unwrap(_op("try_receive", self._ref))

    async def async_receive(self):
        """The next item; only the awaiting coroutine waits."""
        while True:
            ok, value = _op("try_receive", self._ref)
            if ok:
                return value
            if value == "closed":
                raise self._closed_error("channel closed")
            await erlang.async_call("_pyport.channel", "wait", self._ref)

    def send(self, item):
        """Queue an item (as Erlang's send/2): True, or False when the channel is
        over its max_size. ChannelClosed if closed."""
        answer = _op("send", self._ref, item)
        if answer == "closed" or (isinstance(answer, tuple) and answer[-1] == "closed"):
            raise self._closed_error("channel closed")
        return answer == "ok"

    def close(self):
        """Close the channel (idempotent); receivers drain what is queued."""
        _op("close", self._ref)

    def info(self):
        return _op("info", self._ref)

    def _is_closed(self):
        if self._ref is None:
            return True
        return bool(self.info().get("closed", True))

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return self.receive()
        except ChannelClosed:
            raise StopIteration from None

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self.async_receive()
        except ChannelClosed:
            raise StopAsyncIteration from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return f"erlang.{type(self).__name__}({self._ref!r})"


class ByteChannel(Channel):
    """A channel of bytes (py_byte_channel), written and read from both sides."""

    _closed_error = ByteChannelClosed

    __slots__ = ()

    def receive_bytes(self, timeout=None):
        return self.receive(timeout)

    def try_receive_bytes(self):
        return self.try_receive()

    async def async_receive_bytes(self):
        return await self.async_receive()

    def send_bytes(self, data):
        """Queue bytes for the reader (Erlang's recv/1,2 or Python's receive)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"send_bytes needs bytes, not {type(data).__name__}")
        return self.send(bytes(data))


def reply(pid, term):
    """Send `term` to an Erlang process (erlang.send)."""
    erlang.send(pid, term)


def install_into(module):
    import sys
    module_type = type(sys)  # types.ModuleType, without importing types at start
    names = {"Channel": Channel, "ChannelClosed": ChannelClosed, "reply": reply,
             "ByteChannel": ByteChannel, "ByteChannelClosed": ByteChannelClosed}
    for key, value in names.items():
        setattr(module, key, value)
    for sub, keys in (("channel", ("Channel", "ChannelClosed", "reply")),
                      ("byte_channel", ("ByteChannel", "ByteChannelClosed"))):
        m = module_type(f"erlang.{sub}")
        for k in keys:
            setattr(m, k, names[k])
        setattr(module, sub, m)
        sys.modules[f"erlang.{sub}"] = m
