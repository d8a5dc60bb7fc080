"""Python consumers py_channels_SUITE drives."""
import asyncio
import time

import erlang
from erlang import ByteChannel, Channel, ChannelClosed, PyBuffer


def receive_all(ch):
    """Every item until the channel is closed (sync iteration)."""
    return [m for m in Channel(ch)]


def receive_one(ch, timeout=None):
    try:
        return ("ok", Channel(ch).receive(timeout))
    except ChannelClosed:
        return ("closed", None)
    except TimeoutError:
        return ("timeout", None)


async def async_all(ch):
    """Every item until closed, with async for."""
    return [m async for m in Channel(ch)]


async def nap(seconds):
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    return time.monotonic() - t0


async def async_receive_cancelled(ch):
    """An async_receive abandoned by wait_for takes nothing from the channel."""
    try:
        await asyncio.wait_for(Channel(ch).async_receive(), 0.05)
    except asyncio.TimeoutError:
        return "timed_out"
    return "received"


def bytes_roundtrip(ch):
    """Receive bytes, send them back upper-cased, until closed."""
    c = ByteChannel(ch)
    n = 0
    for chunk in c:
        assert isinstance(chunk, bytes), type(chunk)
        c.send_bytes(chunk.upper())
        n += 1
    return n


def read_buffer(buf):
    """The whole stream, read in 64 KiB pieces: (length, sha256 hex)."""
    import hashlib
    b = PyBuffer(buf)
    h = hashlib.sha256()
    n = 0
    while True:
        piece = b.read(65536)
        if not piece:
            return (n, h.hexdigest())
        h.update(piece)
        n += len(piece)


def buffer_lines(buf):
    return list(PyBuffer(buf))


def buffer_view(buf):
    b = PyBuffer(buf)
    b.read()
    mv = memoryview(b)
    return (len(mv), mv.readonly, bytes(mv[:5]), b.find(b"world"))


async def buffer_async(buf):
    return await PyBuffer(buf).read_async()
