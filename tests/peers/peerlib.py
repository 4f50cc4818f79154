"""Shared helpers for the test peers (python3 stdlib only).

Every peer listens on an OS-chosen port (127.0.0.1 unless `--bind ADDR`) and prints
`PORT <n>` as its first stdout line: that line is the testkit's readiness signal.
A peer runs until it is killed; each connection is served on its own thread.
"""

import socket
import sys
import threading


def listen(argv):
    """Parses `--bind ADDR` (and `--port N`, default 0: OS-chosen) from argv, binds
    ADDR:PORT and announces the port."""
    addr = "127.0.0.1"
    if "--bind" in argv:
        addr = argv[argv.index("--bind") + 1]
    port = 0
    if "--port" in argv:
        port = int(argv[argv.index("--port") + 1])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(128)
    return srv


def announce(srv):
    print("PORT %d" % srv.getsockname()[1], flush=True)


def serve(srv, handle):
    """Accepts forever; runs handle(conn, peer) on a daemon thread per connection."""
    announce(srv)
    while True:
        conn, peer = srv.accept()
        t = threading.Thread(target=_run, args=(handle, conn, peer), daemon=True)
        t.start()


def _run(handle, conn, peer):
    try:
        handle(conn, peer)
    except (OSError, ValueError):
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


class Request:
    def __init__(self, method, target, version, headers, body):
        self.method = method  # str
        self.target = target  # str: the request-target exactly as received
        self.version = version  # str, e.g. "HTTP/1.0"
        self.headers = headers  # [(name, value)] exactly as received (latin-1 str)
        self.body = body  # bytes

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def keep_alive(self):
        conn = (self.header("Connection") or "").lower()
        if self.version == "HTTP/1.1":
            return "close" not in conn
        return "keep-alive" in conn


def read_request(rfile):
    """Reads one request from a binary file object; returns None on a clean EOF."""
    line = rfile.readline(65537)
    while line in (b"\r\n", b"\n"):
        line = rfile.readline(65537)
    if not line:
        return None
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3:
        raise ValueError("bad request line %r" % line)
    method, target, version = parts
    headers = []
    while True:
        h = rfile.readline(65537)
        if not h:
            raise ValueError("EOF in headers")
        if h in (b"\r\n", b"\n"):
            break
        name, _, value = h.decode("latin-1").rstrip("\r\n").partition(":")
        headers.append((name, value.strip(" \t")))
    req = Request(method, target, version, headers, b"")
    te = (req.header("Transfer-Encoding") or "").lower()
    if "chunked" in te:
        chunks = []
        while True:
            size_line = rfile.readline(1026)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                break
            chunks.append(_read_exact(rfile, size))
            rfile.readline(3)
        req.body = b"".join(chunks)
    elif req.header("Content-Length") is not None:
        req.body = _read_exact(rfile, int(req.header("Content-Length")))
    return req


def _read_exact(rfile, n):
    data = rfile.read(n)
    if data is None or len(data) != n:
        raise ValueError("short body")
    return data


def response_head(status, headers, keep_alive):
    reasons = {200: "OK", 404: "Not Found", 400: "Bad Request"}
    lines = ["HTTP/1.1 %d %s" % (status, reasons.get(status, "Status"))]
    lines += ["%s: %s" % (k, v) for k, v in headers]
    lines.append("Connection: %s" % ("keep-alive" if keep_alive else "close"))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def main_guard(fn):
    try:
        fn(sys.argv[1:])
    except KeyboardInterrupt:
        pass
