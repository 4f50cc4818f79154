"""WSGI test application (stdlib only), served by a real uWSGI over uwsgi or SCGI.

Routes (by PATH_INFO; scgi_params sends none, so the path of REQUEST_URI then):
  /big?n=N          N bytes of big.py's pattern (byte i = (i*7+3) % 251), in 64 KiB pieces,
                    with Content-Length
  /stream?flag=F    a generator: yields "first\\n", then waits (up to 10 s) for the flag file
                    F to appear and yields "last\\n" (or "timeout\\n" if it never did)
  /slow?flag=F      waits (up to 10 s) for the flag file F before it answers at all
  /status?code=N    status N with the body "app says N" (a CGI-style error from the app)
  /own_headers      the app's own Server, Date and X-Pad headers
  anything else     200 JSON: {"environ": {every str-valued CGI/HTTP_* variable},
                    "body_len": n, "body_md5": hex} — the request body is read as a stream

Flag files live in the directory named by the JUNCTION_TEST_FLAGS environment variable
(set with uwsgi `--env`): the test creates them to release the app, so nothing here or in
the test waits by sleeping for a fixed time.
"""

import hashlib
import json
import os
import time
import urllib.parse

PIECE = 64 * 1024
# big.py's pattern repeats every 251 bytes: one 64 KiB + 251 window serves every offset.
PATTERN = bytes((i * 7 + 3) % 251 for i in range(PIECE + 251))


def _query(environ):
    return dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))


def _wait_flag(environ, name, deadline_s=10.0):
    """True once the flag file appears, False after the deadline."""
    path = os.path.join(os.environ.get("JUNCTION_TEST_FLAGS", "/nonexistent"), name)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.01)
    return False


def big(environ, start_response):
    n = int(_query(environ).get("n", "0"))
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))],
    )

    def body():
        off = 0
        while off < n:
            k = min(PIECE, n - off)
            start = off % 251
            yield PATTERN[start : start + k]
            off += k

    return body()


def stream(environ, start_response):
    flag = _query(environ).get("flag", "")
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        yield b"first\n"
        yield b"last\n" if _wait_flag(environ, flag) else b"timeout\n"

    return body()


def slow(environ, start_response):
    released = _wait_flag(environ, _query(environ).get("flag", ""))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"late\n" if released else b"timeout\n"]


def status(environ, start_response):
    code = int(_query(environ).get("code", "200"))
    body = b"app says %d\n" % code
    start_response(
        "%d App Status" % code,
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]


def echo(environ, start_response):
    md5 = hashlib.md5()
    n = 0
    stream = environ["wsgi.input"]
    while True:
        piece = stream.read(PIECE)
        if not piece:
            break
        md5.update(piece)
        n += len(piece)
    env = {k: v for k, v in environ.items() if isinstance(v, str)}
    body = json.dumps(
        {"environ": env, "body_len": n, "body_md5": md5.hexdigest()}, sort_keys=True
    ).encode()
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("X-App", "wsgi_app"),
        ],
    )
    return [body]


def own_headers(environ, start_response):
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Server", "wsgi-app"),
         ("Date", "Mon, 01 Jan 2024 00:00:00 GMT"), ("X-Pad", "pad")],
    )
    return [b"own headers\n"]


ROUTES = {"/big": big, "/stream": stream, "/slow": slow, "/status": status,
          "/own_headers": own_headers}


def application(environ, start_response):
    path = environ.get("PATH_INFO") or environ.get("REQUEST_URI", "").split("?")[0]
    return ROUTES.get(path, echo)(environ, start_response)
