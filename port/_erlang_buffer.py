"""erlang.PyBuffer: Python's end of py_buffer, a byte stream an Erlang process
writes and Python reads as a read-only, seekable file.

What Erlang has written is fetched in one `_pyport.buffer` call (everything
queued at that moment, each byte crossing the pipe once) and kept here, so
seek/tell/find work on everything read so far. A blocking read waits in Erlang
while the context keeps serving its own call chain; read_async waits on the
event loop through erlang.async_call, so only the awaiting coroutine waits.
`memoryview(buf)` is a read-only, zero-copy view of the bytes fetched so far.
"""

import io

import erlang


class PyBuffer(erlang._BufferBase):
    """A readable, seekable byte stream (io.RawIOBase-like, read-only)."""

    def __init__(self, ref=None):
        super().__init__()
        self._ref = ref          # None: a local buffer (_test_create)
        self._buf = bytearray()  # everything fetched (exported by memoryview)
        self._set_data(self._buf)
        self._pos = 0
        self._eof = False        # the writer closed it (end of stream)

    @classmethod
    def _test_create(cls, data):
        """A buffer holding `data`, not yet at its end (close() ends it)."""
        buf = cls(None)
        buf._append(data)
        return buf

    # ---- fetching -------------------------------------------------------------

    def _take(self, block):
        if self._eof or self._ref is None:
            return
        chunks, closed = erlang.call("_pyport.buffer", "take", self._ref, bool(block))
        for chunk in chunks:
            self._append(chunk)
        if closed:
            self._eof = True

    def _append(self, chunk):
        try:
            self._buf += chunk
        except BufferError:
            # A memoryview holds the bytearray: it cannot grow; move to a copy.
            self._buf = self._buf + chunk
            self._set_data(self._buf)

    def _all(self):
        """The bytes fetched so far (a bytearray: slice with _slice)."""
        return self._buf

    def _slice(self, start, end):
        with memoryview(self._buf) as mv:
            return mv[start:end].tobytes()

    def _fill(self, want):
        """Fetch until `want` bytes are available after the position (-1: all)."""
        while not self._eof and self._ref is not None:
            data = self._all()
            if want >= 0 and len(data) - self._pos >= want:
                return
            self._take(True)

    # ---- reading --------------------------------------------------------------

    def read(self, size=-1):
        """Up to `size` bytes (all, until the end of the stream, when -1);
        waits for the writer; b'' at the end."""
        size = -1 if size is None else size
        self._fill(size)
        data = self._all()
        end = len(data) if size < 0 else min(len(data), self._pos + size)
        out = self._slice(self._pos, end)
        self._pos = end
        return out

    def read_nonblock(self, size=-1):
        """What is available now, up to `size` bytes; b'' if nothing is."""
        self._take(False)
        data = self._all()
        size = -1 if size is None else size
        end = len(data) if size < 0 else min(len(data), self._pos + size)
        out = self._slice(self._pos, end)
        self._pos = end
        return out

    async def read_async(self, size=-1):
        """As read(), waiting on the event loop: only this coroutine waits."""
        size = -1 if size is None else size
        while not self._eof and self._ref is not None:
            self._take(False)
            if self._eof or (size >= 0 and len(self._all()) - self._pos >= size):
                break
            await erlang.async_call("_pyport.buffer", "wait", self._ref)
        return self.read(size)

    def readable_amount(self):
        """Bytes that can be read now without waiting."""
        self._take(False)
        return len(self._all()) - self._pos

    def at_eof(self):
        """True once the writer closed the stream and everything was read."""
        self._take(False)
        return self._eof and self._pos >= len(self._all())

    def readline(self, size=-1):
        size = -1 if size is None else size
        while True:
            data = self._all()
            nl = data.find(b"\n", self._pos)
            if nl >= 0 or self._eof or self._ref is None:
                end = nl + 1 if nl >= 0 else len(data)
                if size >= 0:
                    end = min(end, self._pos + size)
                out = self._slice(self._pos, end)
                self._pos = end
                return out
            if size >= 0 and len(data) - self._pos >= size:
                out = self._slice(self._pos, self._pos + size)
                self._pos += size
                return out
            self._take(True)

    def readlines(self, hint=-1):
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    # ---- position -------------------------------------------------------------

    def tell(self):
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            self._fill(-1)
            pos = len(self._all()) + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def find(self, sub, start=0, end=None):
        """Index of `sub` in the bytes fetched so far (from `start`), or -1."""
        self._take(False)
        return self._all().find(sub, start, *(() if end is None else (end,)))

    # ---- file-like ------------------------------------------------------------

    def readable(self):
        return True

    def writable(self):
        return False

    def seekable(self):
        return True

    @property
    def closed(self):
        """True once the stream has ended (the writer closed it)."""
        return self._eof

    def close(self):
        """End the stream here: what is written so far is all there is."""
        if self._ref is not None and not self._eof:
            self._take(False)
            erlang.call("_pyport.buffer", "close", self._ref)
            self._take(False)
        self._eof = True

    def __len__(self):
        self._take(False)
        return len(self._all())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return f"erlang.PyBuffer({self._ref!r}, {len(self._all())} bytes, eof={self._eof})"


def install_into(module):
    module.PyBuffer = PyBuffer
