"""A plain ASGI 3 callable (no framework, no server) served by Erlang's httpd
through pyport (examples/web/mod_pyport.erl, docs/web.md)."""

import asyncio
import ctypes
import json
import os


async def read_body(receive):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


async def respond(send, status, body, headers=()):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), *headers]})
    await send({"type": "http.response.body", "body": body})


async def wait_for(path, limit=30.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not os.path.exists(path) and loop.time() < deadline:
        await asyncio.sleep(0.02)


async def app(scope, receive, send):
    assert scope["type"] == "http"
    path, method = scope["path"], scope["method"]
    if path == "/" and method == "GET":
        await respond(send, 200, b"hello from asgi")
    elif path == "/echo" and method == "POST":
        body = await read_body(receive)
        await respond(send, 201, body.upper(), [(b"x-length", str(len(body)).encode())])
    elif path == "/headers":
        info = {"headers": {k.decode(): v.decode() for k, v in scope["headers"]},
                "query": scope["query_string"].decode(),
                "root_path": scope["root_path"]}
        await respond(send, 200, json.dumps(info).encode(), [(b"x-served-by", b"asgi")])
    elif path == "/stream":
        params = dict(p.split("=") for p in scope["query_string"].decode().split("&") if p)
        count, pause = int(params.get("n", "3")), float(params.get("pause", "0"))
        until = params.get("until")  # a file to wait for after the first part
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for i in range(count):
            if i:
                await asyncio.sleep(pause)
            if i == 1 and until:
                await wait_for(until)
            await send({"type": "http.response.body", "body": f"part {i}\n".encode(),
                        "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path == "/pid":
        await respond(send, 200, str(os.getpid()).encode())
    elif path == "/crash":
        ctypes.string_at(0)
    else:
        await respond(send, 404, b"not found")
