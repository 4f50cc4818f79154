"""A misbehaving memcached: reads one command line per request and answers it badly.

Modes (the reply to every `get <key>`):
  error         SERVER_ERROR out of memory storing object
  client_error  CLIENT_ERROR bad command line format
  garbage       HTTP/1.1 200 OK (not memcached at all)
  other_key     VALUE <another key> 0 2 + data + END
  cut           VALUE <key> 0 100 + 10 bytes, then close (value cut short)
  bad_trailer   VALUE <key> 0 2 + "ok" + "\r\nXND\r\n"
Usage: memcached_fake.py --mode MODE [--bind ADDR]
"""

import sys

import peerlib

MODE = sys.argv[sys.argv.index("--mode") + 1]


def reply(key):
    if MODE == "error":
        return b"SERVER_ERROR out of memory storing object\r\n", True
    if MODE == "client_error":
        return b"CLIENT_ERROR bad command line format\r\n", True
    if MODE == "garbage":
        return b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", True
    if MODE == "other_key":
        return b"VALUE /not-" + key + b" 0 2\r\nok\r\nEND\r\n", True
    if MODE == "cut":
        return b"VALUE " + key + b" 0 100\r\n0123456789", False
    if MODE == "bad_trailer":
        return b"VALUE " + key + b" 0 2\r\nok\r\nXND\r\n", True
    raise SystemExit("unknown mode " + MODE)


def handle(conn, peer):
    rfile = conn.makefile("rb")
    while True:
        line = rfile.readline(4096)
        if not line:
            return
        parts = line.rstrip(b"\r\n").split(b" ")
        key = parts[1] if len(parts) > 1 else b""
        data, keep = reply(key)
        conn.sendall(data)
        if not keep:
            return


if __name__ == "__main__":
    peerlib.main_guard(lambda argv: peerlib.serve(peerlib.listen(argv), handle))
