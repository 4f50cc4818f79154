"""Server-sent-events peer for unbuffered proxying.

`GET /events` (any path but /release): sends the response head and `data: one\n\n`, then
waits until `GET /release` arrives (or 5 s pass), then sends `data: two (released)\n\n` or
`data: two (timeout)\n\n` and closes (the body is close-delimited).
`GET /release` answers "released" if event two had not been sent yet, else "too-late".
So a test that reads event one through the proxy, then calls /release, then reads event two
"(released)" has shown that event one crossed the proxy before event two existed.
With --head-only, event one is not sent: the head alone waits for the release.
Usage: sse.py [--bind ADDR] [--accel-no] [--head-only]
(--accel-no adds `X-Accel-Buffering: no`)
"""

import sys
import threading

import peerlib

RELEASE = threading.Event()
SENT_TWO = threading.Event()
LOCK = threading.Lock()
ACCEL_NO = "--accel-no" in sys.argv
HEAD_ONLY = "--head-only" in sys.argv


def handle(conn, peer):
    rfile = conn.makefile("rb")
    req = peerlib.read_request(rfile)
    if req is None:
        return
    if req.target.startswith("/release"):
        with LOCK:
            RELEASE.set()
            body = b"too-late" if SENT_TWO.is_set() else b"released"
        conn.sendall(peerlib.response_head(200, [("Content-Length", str(len(body)))], False) + body)
        return
    headers = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]
    if ACCEL_NO:
        headers.append(("X-Accel-Buffering", "no"))
    conn.sendall(peerlib.response_head(200, headers, False))
    if not HEAD_ONLY:
        conn.sendall(b"data: one\n\n")
    released = RELEASE.wait(5.0)
    with LOCK:
        SENT_TWO.set()
    conn.sendall(b"data: two (%s)\n\n" % (b"released" if released else b"timeout"))


if __name__ == "__main__":
    peerlib.main_guard(lambda argv: peerlib.serve(peerlib.listen(argv), handle))
