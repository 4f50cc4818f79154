"""A TCP relay in front of a real upstream that closes a kept-alive connection at the
moment the next request arrives, whatever the protocol on top (TLS included): client
bytes that arrive after the connection was quiet (no byte either way) for --gap
milliseconds are not passed on; both sides are closed instead, as a backend whose
keep-alive timer fires just as a request reaches it. Bytes in quick succession (a TLS
handshake's flights, a request and its body) pass.

Usage: close_idle.py --to HOST:PORT [--gap MS] [--bind ADDR]
Prints `PORT <n>` when ready; writes `DROP` to stderr for each request it dropped.
"""

import socket
import sys
import threading
import time

import peerlib


def handle_with(target, gap):
    host, port = target.rsplit(":", 1)

    def handle(conn, peer):
        up = socket.create_connection((host, int(port)))
        last = [time.monotonic()]

        def pump_back():
            try:
                while True:
                    data = up.recv(65536)
                    if not data:
                        break
                    last[0] = time.monotonic()
                    conn.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        threading.Thread(target=pump_back, daemon=True).start()
        first = True
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                now = time.monotonic()
                if not first and now - last[0] >= gap:
                    sys.stderr.write("DROP\n")
                    sys.stderr.flush()
                    return
                first = False
                last[0] = now
                up.sendall(data)
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
    gap = int(argv[argv.index("--gap") + 1]) / 1000.0 if "--gap" in argv else 0.2
    peerlib.serve(peerlib.listen(argv), handle_with(target, gap))


if __name__ == "__main__":
    peerlib.main_guard(main)
