"""A Flask (WSGI) application served by Erlang's httpd through pyport
(examples/web/mod_pyport.erl, docs/web.md)."""

import ctypes
import os
import time

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.get("/")
def index():
    return "hello from flask"


@app.post("/echo")
def echo():
    data = request.get_data()
    return Response(data[::-1], content_type=request.content_type or "application/octet-stream",
                    headers={"X-Length": str(len(data))})


@app.get("/headers")
def headers():
    resp = jsonify({"user_agent": request.headers.get("User-Agent"),
                    "x_token": request.headers.get("X-Token"),
                    "query": request.args.to_dict(),
                    "path": request.path,
                    "script_name": request.script_root})
    resp.headers["X-Served-By"] = "flask"
    return resp


@app.get("/stream")
def stream():
    count = int(request.args.get("n", "3"))
    pause = float(request.args.get("pause", "0"))
    until = request.args.get("until")  # a file to wait for after the first chunk

    def generate():
        for i in range(count):
            if i:
                time.sleep(pause)
            if i == 1 and until:
                wait_for(until)
            yield f"chunk {i}\n"

    return Response(generate(), content_type="text/plain")


def wait_for(path, limit=30.0):
    deadline = time.monotonic() + limit
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)


@app.get("/pid")
def pid():
    return str(os.getpid())


@app.get("/crash")
def crash():
    ctypes.string_at(0)  # reads address 0: the context's OS process dies
    return "unreachable"
