"""Misbehaving peer.
Usage: garbage.py [--bind ADDR] [--mode garbage|close|reset]
  garbage (default): reads the request head, replies non-HTTP bytes, closes.
  close: reads the request head, closes without a byte.
  reset: reads the request head, closes with a TCP RST (SO_LINGER 0).
  cut: reads the request head, sends a 200 head with Content-Length 1000 and 10 bytes
       of body, closes.
"""

import socket
import struct
import sys

import peerlib

MODE = sys.argv[sys.argv.index("--mode") + 1] if "--mode" in sys.argv else "garbage"


def handle(conn, peer):
    rfile = conn.makefile("rb")
    while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
        pass
    if MODE == "garbage":
        conn.sendall(b"\x00\x01this is not HTTP at all\x7f\xff\r\n\r\n")
    elif MODE == "cut":
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
    elif MODE == "reset":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


if __name__ == "__main__":
    peerlib.main_guard(lambda argv: peerlib.serve(peerlib.listen(argv), handle))
