"""WSGI and ASGI applications run for Erlang (py:wsgi_run, py:asgi_run).

Imported on first use by a request; nothing here runs at start-up. Every entry
point takes the application as (module, attribute) names, the request as the
WSGI environ or the ASGI scope (a dict from an Erlang map), and the request
body as bytes. The whole-body entry points return (status, headers, body); the
streaming ones are generators whose first item is (status, headers) and whose
next items are the body's chunks (bytes), so that Erlang receives them as a
pyport stream.
"""

import asyncio
import importlib
import io
import sys

__all__ = ["wsgi_run", "wsgi_stream", "asgi_run", "asgi_stream"]


def _app(module, name):
    """The callable `name` (dotted attributes allowed) of module `module`."""
    obj = importlib.import_module(str(module))
    for part in str(name).split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{module}.{name} is not callable")
    return obj


def _bytes(value, what):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("latin-1")
    raise TypeError(f"{what} must be bytes or str, not {type(value).__name__}")


def _str(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return str(value)


# ---------------------------------------------------------------------------
# WSGI (PEP 3333)
# ---------------------------------------------------------------------------


def _environ(environ, body):
    env = {str(k): v for k, v in environ.items()}
    for key, value in list(env.items()):
        if isinstance(value, (bytes, bytearray)) and key.isupper():
            env[key] = _str(value)
    env["wsgi.input"] = io.BytesIO(body or b"")
    env["wsgi.errors"] = sys.stderr
    env["wsgi.version"] = tuple(env.get("wsgi.version", (1, 0)))
    if body and not env.get("CONTENT_LENGTH"):
        env["CONTENT_LENGTH"] = str(len(body))
    return env


class _Head:
    """What start_response was given."""

    __slots__ = ("status", "headers", "sent")

    def __init__(self):
        self.status = None
        self.headers = None
        self.sent = False

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.status is not None and self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called twice without exc_info")
        self.status = _str(status)
        self.headers = [(_str(n), _str(v)) for n, v in headers]
        return self._write

    def _write(self, data):
        raise NotImplementedError("the write() callable of start_response is not supported")


def _wsgi_head(head):
    if head.status is None:
        raise RuntimeError("the WSGI application did not call start_response")
    return head.status, head.headers


def _close(result):
    close = getattr(result, "close", None)
    if close is not None:
        close()


def wsgi_run(module, app, environ, body=b""):
    """Runs a WSGI application once: (status, headers, body)."""
    head = _Head()
    result = _app(module, app)(_environ(environ, body), head.start_response)
    try:
        data = b"".join(_bytes(chunk, "a WSGI body chunk") for chunk in result)
    finally:
        _close(result)
    status, headers = _wsgi_head(head)
    return status, headers, data


def wsgi_stream(module, app, environ, body=b""):
    """Runs a WSGI application, yielding (status, headers), then each chunk."""
    head = _Head()
    result = _app(module, app)(_environ(environ, body), head.start_response)
    try:
        chunks = iter(result)
        first = None
        if head.status is None:
            # An application may call start_response on its first iteration.
            for chunk in chunks:
                first = _bytes(chunk, "a WSGI body chunk")
                break
        head.sent = True
        yield _wsgi_head(head)
        if first:
            yield first
        for chunk in chunks:
            chunk = _bytes(chunk, "a WSGI body chunk")
            if chunk:
                yield chunk
    finally:
        _close(result)


# ---------------------------------------------------------------------------
# ASGI 3 (HTTP)
# ---------------------------------------------------------------------------

def _scope(scope):
    out = {str(k): v for k, v in scope.items()}
    out.setdefault("type", "http")
    out["type"] = _str(out["type"])
    out.setdefault("asgi", {"version": "3.0", "spec_version": "2.3"})
    out["asgi"] = {str(k): _str(v) for k, v in out["asgi"].items()}
    for key in ("http_version", "method", "scheme", "path", "root_path"):
        if key in out:
            out[key] = _str(out[key])
    out.setdefault("http_version", "1.1")
    out.setdefault("method", "GET")
    out.setdefault("scheme", "http")
    out.setdefault("path", "/")
    out.setdefault("root_path", "")
    out["query_string"] = _bytes(out.get("query_string", b""), "query_string")
    out["raw_path"] = _bytes(out.get("raw_path", out["path"].encode()), "raw_path")
    out["headers"] = [
        (_bytes(n, "a header name").lower(), _bytes(v, "a header value"))
        for n, v in out.get("headers", [])
    ]
    for key in ("server", "client"):
        if out.get(key) is not None:
            host, port = out[key]
            out[key] = (_str(host), int(port))
    out.setdefault("state", {})
    return out


class _Exchange:
    """One ASGI request: receive() hands out the body, send() collects the reply
    into a queue as ('head', status, headers), ('body', bytes), ('end',)."""

    def __init__(self, body):
        self._body = body
        self._body_sent = False
        self._started = False
        self._done = False
        self.queue = asyncio.Queue()
        self._disconnect = asyncio.get_running_loop().create_future()

    async def receive(self):
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self._body, "more_body": False}
        await self._disconnect
        return {"type": "http.disconnect"}

    async def send(self, message):
        kind = message.get("type")
        if kind == "http.response.start":
            if self._started:
                raise RuntimeError("http.response.start sent twice")
            self._started = True
            headers = [(_bytes(n, "a header name"), _bytes(v, "a header value"))
                       for n, v in message.get("headers", [])]
            await self.queue.put(("head", int(message["status"]), headers))
        elif kind == "http.response.body":
            if not self._started:
                raise RuntimeError("http.response.body before http.response.start")
            if self._done:
                raise RuntimeError("http.response.body after the last body message")
            data = _bytes(message.get("body", b""), "a body")
            if data:
                await self.queue.put(("body", data))
            if not message.get("more_body", False):
                self._done = True
                await self.queue.put(("end",))
        else:
            raise ValueError(f"unsupported ASGI message type {kind!r}")

    def finish(self):
        if not self._disconnect.done():
            self._disconnect.set_result(None)


async def _asgi_events(module, app, scope, body):
    """Runs the application; yields the queued events until the response ends."""
    application = _app(module, app)
    exchange = _Exchange(bytes(body or b""))
    task = asyncio.ensure_future(application(_scope(scope), exchange.receive, exchange.send))
    waiter = None
    finished = False
    try:
        while True:
            waiter = asyncio.ensure_future(exchange.queue.get())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if waiter.done():
                event = waiter.result()
                waiter = None
                yield event
                if event[0] == "end":
                    finished = True
                    break
                continue
            waiter.cancel()
            waiter = None
            task.result()  # raises the application's exception, if any
            # The application returned: drain what it sent, then stop.
            while not exchange.queue.empty():
                event = exchange.queue.get_nowait()
                yield event
                if event[0] == "end":
                    finished = True
                    return
            if exchange._started:
                finished = True
                yield ("end",)
                return
            raise RuntimeError("the ASGI application returned without a response")
    finally:
        if waiter is not None:
            waiter.cancel()
        exchange.finish()  # receive() now says http.disconnect
        if not task.done():
            if finished:
                # The response is complete; the application may still run
                # (background work after the body). Let it end.
                task.add_done_callback(_retrieve)
            else:
                # Stopped early (an error, or the stream was cancelled).
                task.cancel()
                task.add_done_callback(_retrieve)
        else:
            _retrieve(task)


def _retrieve(task):
    """Marks the task's outcome as seen (no "exception never retrieved")."""
    if not task.cancelled():
        task.exception()


async def asgi_run(module, app, scope, body=b""):
    """Runs an ASGI application once: (status, headers, body)."""
    status, headers, chunks = None, None, []
    async for event in _asgi_events(module, app, scope, body):
        if event[0] == "head":
            _, status, headers = event
        elif event[0] == "body":
            chunks.append(event[1])
    return status, headers, b"".join(chunks)


async def asgi_stream(module, app, scope, body=b""):
    """Runs an ASGI application, yielding (status, headers), then each chunk."""
    async for event in _asgi_events(module, app, scope, body):
        if event[0] == "head":
            yield event[1], event[2]
        elif event[0] == "body":
            yield event[1]
