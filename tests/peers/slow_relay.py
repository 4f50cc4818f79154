"""A TCP relay in front of a real upstream that holds the first bytes a client sends
on each connection for --delay milliseconds before passing them on (and everything
after at once): a TLS upstream behind it takes that long to answer the ClientHello,
so a handshake lasts at least the delay while the TCP connect itself is immediate.

Usage: slow_relay.py --to HOST:PORT --delay MS [--bind ADDR]
Prints `PORT <n>` when ready.
"""

import socket
import threading
import time

import peerlib


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def handle_with(target, delay):
    host, port = target.rsplit(":", 1)

    def handle(conn, peer):
        up = socket.create_connection((host, int(port)))
        threading.Thread(target=pump, args=(up, conn), daemon=True).start()
        try:
            first = conn.recv(65536)
            if not first:
                return
            time.sleep(delay)
            up.sendall(first)
            pump(conn, up)
        finally:
            for s in (up, conn):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            up.close()

    return handle


def main(argv):
    target = argv[argv.index("--to") + 1]
    delay = int(argv[argv.index("--delay") + 1]) / 1000.0
    peerlib.serve(peerlib.listen(argv), handle_with(target, delay))


if __name__ == "__main__":
    peerlib.main_guard(main)
