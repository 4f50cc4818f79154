"""Big-header peer: answers 200 with an `X-Big` header of 3 KiB (more than a 2k
proxy_buffer_size) and a small body.
Usage: bigheader.py [--bind ADDR] [--size N]   (N = length of the X-Big value, default 3072)
"""

import sys

import peerlib

SIZE = int(sys.argv[sys.argv.index("--size") + 1]) if "--size" in sys.argv else 3072


def handle(conn, peer):
    rfile = conn.makefile("rb")
    req = peerlib.read_request(rfile)
    if req is None:
        return
    body = b"small body\n"
    head = peerlib.response_head(
        200, [("X-Big", "b" * SIZE), ("Content-Length", str(len(body)))], False
    )
    conn.sendall(head + body)


if __name__ == "__main__":
    peerlib.main_guard(lambda argv: peerlib.serve(peerlib.listen(argv), handle))
