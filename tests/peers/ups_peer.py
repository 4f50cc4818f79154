"""Upstream-group peer: one of several backends behind an `upstream {}` block.

Answers every request with its own id (body `ID\\n`, header `X-Peer: ID`) and counts what
it served, so a test can tell which backend took each request and how many each got.

  /health          status = the current health code (200 until changed), body `ID`;
                   counted in "health", not in "hits"
  /_health?code=N  sets the health code (answers 200; not counted)
  /_stats          JSON {"id", "hits", "posts", "health", "inflight_max"} (not counted)
  /_reset          zeroes the counters (not counted)
  anything else    200 `ID\\n`, counted in "hits" (and "posts" for a POST); query options:
                   status=N  answer with status N instead
                   close=1   read the request, then close without answering
                   sleep=MS  wait MS milliseconds first
                   stall=MS  send the head and half the body, wait MS ms, then the rest
                   only=ID   apply the options above only on the peer named ID

Usage: ups_peer.py --id NAME [--port N] [--health CODE]
`--port` binds that port (SO_REUSEADDR), so a killed peer can be restarted in its place.
Prints `PORT <n>` when ready.
"""

import json
import socket
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

import peerlib

STATE = {"hits": 0, "posts": 0, "health": 0, "inflight": 0, "inflight_max": 0}
HEALTH = {"code": 200}
LOCK = threading.Lock()
REASONS = {200: "OK", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout"}


def answer(conn, status, body, ka, extra=()):
    head = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status")),
            "Content-Type: text/plain", "Content-Length: %d" % len(body),
            "X-Peer: %s" % PEER_ID, "Connection: %s" % ("keep-alive" if ka else "close")]
    head += ["%s: %s" % kv for kv in extra]
    conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)


def handle(conn, peer):
    rfile = conn.makefile("rb")
    while True:
        req = peerlib.read_request(rfile)
        if req is None:
            return
        ka = req.keep_alive()
        url = urlsplit(req.target)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = url.path
        if path == "/_stats":
            with LOCK:
                body = json.dumps(dict(STATE, id=PEER_ID)).encode()
            answer(conn, 200, body, ka)
        elif path == "/_reset":
            with LOCK:
                for k in STATE:
                    STATE[k] = 0
            answer(conn, 200, b"reset\n", ka)
        elif path == "/_health":
            HEALTH["code"] = int(q.get("code", "200"))
            answer(conn, 200, b"health %d\n" % HEALTH["code"], ka)
        elif path == "/health":
            with LOCK:
                STATE["health"] += 1
            answer(conn, HEALTH["code"], PEER_ID.encode(), ka)
        else:
            with LOCK:
                STATE["hits"] += 1
                if req.method == "POST":
                    STATE["posts"] += 1
                STATE["inflight"] += 1
                STATE["inflight_max"] = max(STATE["inflight_max"], STATE["inflight"])
            if q.get("only", PEER_ID) != PEER_ID:
                q = {}
            try:
                if "sleep" in q:
                    time.sleep(int(q["sleep"]) / 1000.0)
                if q.get("close") == "1":
                    return
                if "stall" in q:
                    half = (PEER_ID + "\n").encode() + b"x" * 4096
                    head = ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: %d\r\nX-Peer: %s\r\nConnection: close\r\n\r\n"
                            % (2 * len(half), PEER_ID)).encode()
                    conn.sendall(head + half)
                    time.sleep(int(q["stall"]) / 1000.0)
                    conn.sendall(half)
                    return
                answer(conn, int(q.get("status", "200")), (PEER_ID + "\n").encode(), ka)
            finally:
                with LOCK:
                    STATE["inflight"] -= 1
        if not ka:
            return


def main(argv):
    global PEER_ID
    opts = {"--id": "peer", "--port": "0", "--health": "200"}
    for i, a in enumerate(argv):
        if a in opts and i + 1 < len(argv):
            opts[a] = argv[i + 1]
    PEER_ID = opts["--id"]
    HEALTH["code"] = int(opts["--health"])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(opts["--port"])))
    srv.listen(256)
    peerlib.serve(srv, handle)


PEER_ID = "peer"

if __name__ == "__main__":
    peerlib.main_guard(main)
