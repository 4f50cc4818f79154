"""Echo peer: answers every request with a JSON description of what it received.

{"method", "path" (request-target as received, query included), "version",
 "headers": [[name, value], ...] (in order, as received), "peer", "peer_port",
 "body_len", "body_sha256", "local"}
A request whose path contains `/redirect?to=URL` is answered with a 302 to URL;
one whose path contains `/switch` with `101 Switching Protocols`, after which every
byte received is echoed back until the client closes (a WebSocket stand-in).
Keeps the connection alive when the request allows it.
Usage: echo.py [--bind ADDR]
"""

import hashlib
import json
import sys

import peerlib


def handle(conn, peer):
    rfile = conn.makefile("rb")
    while True:
        req = peerlib.read_request(rfile)
        if req is None:
            return
        local = conn.getsockname()
        body = json.dumps(
            {
                "method": req.method,
                "path": req.target,
                "version": req.version,
                "headers": [[k, v] for k, v in req.headers],
                "peer": peer[0],
                "peer_port": peer[1],
                "local": "%s:%d" % (local[0], local[1]),
                "body_len": len(req.body),
                "body_sha256": hashlib.sha256(req.body).hexdigest(),
            }
        ).encode()
        ka = req.keep_alive()
        if "/switch" in req.target:
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\n"
            )
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)
        if "/redirect?to=" in req.target:
            to = req.target.split("/redirect?to=", 1)[1]
            conn.sendall(
                peerlib.response_head(302, [("Location", to), ("Content-Length", "0")], ka)
            )
            if not ka:
                return
            continue
        head = peerlib.response_head(
            200,
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            ka,
        )
        conn.sendall(head + (b"" if req.method == "HEAD" else body))
        if not ka:
            return


if __name__ == "__main__":
    peerlib.main_guard(lambda argv: peerlib.serve(peerlib.listen(argv), handle))
