"""Big-response peer: `GET /N` answers N bytes, byte i = (i*7+3) % 251, with
Content-Length, written in 64 KiB pieces. `GET /stats` answers "started=A done=B" where
done counts big responses whose last byte was handed to the kernel.
Usage: big.py [--bind ADDR]
"""

import threading

import peerlib

PIECE = 64 * 1024
PERIOD = 251
# PATTERN[k:k+PIECE] is the pattern from any offset with k = offset % 251.
PATTERN = bytes((i * 7 + 3) % PERIOD for i in range(PIECE + PERIOD))
LOCK = threading.Lock()
STATS = {"started": 0, "done": 0}


def handle(conn, peer):
    rfile = conn.makefile("rb")
    while True:
        req = peerlib.read_request(rfile)
        if req is None:
            return
        ka = req.keep_alive()
        path = req.target.split("?")[0].lstrip("/")
        if path == "stats":
            with LOCK:
                body = ("started=%d done=%d" % (STATS["started"], STATS["done"])).encode()
            conn.sendall(peerlib.response_head(200, [("Content-Length", str(len(body)))], ka) + body)
        elif path.isdigit():
            n = int(path)
            with LOCK:
                STATS["started"] += 1
            head = peerlib.response_head(
                200,
                [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))],
                ka,
            )
            conn.sendall(head)
            if req.method != "HEAD":
                off = 0
                while off < n:
                    k = off % PERIOD
                    size = min(PIECE, n - off)
                    conn.sendall(PATTERN[k : k + size])
                    off += size
            with LOCK:
                STATS["done"] += 1
        else:
            conn.sendall(peerlib.response_head(404, [("Content-Length", "0")], ka))
        if not ka:
            return


if __name__ == "__main__":
    peerlib.main_guard(lambda argv: peerlib.serve(peerlib.listen(argv), handle))
