"""A TCP relay in front of a real upstream that carries one request per connection:
the first request and its answer pass through; when the next request arrives on the
same (kept-alive) connection, both sides are closed without a byte sent back, as
gunicorn, Node.js or php-fpm's `pm.max_requests` do with an idle keep-alive
connection at the moment a request reaches it.

Usage: close_reused.py --to HOST:PORT [--bind ADDR]
Prints `PORT <n>` when ready; writes `DROP` to stderr for each request it dropped.
"""

import socket
import sys
import threading

import peerlib


def pump_back(up, conn, answered):
    try:
        while True:
            data = up.recv(65536)
            if not data:
                break
            answered.set()
            conn.sendall(data)
    except OSError:
        pass
    finally:
        # The upstream ended the connection: end the client's too.
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def handle_with(target):
    host, port = target.rsplit(":", 1)

    def handle(conn, peer):
        up = socket.create_connection((host, int(port)))
        answered = threading.Event()
        t = threading.Thread(target=pump_back, args=(up, conn, answered), daemon=True)
        t.start()
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                if answered.is_set():
                    # A second request on a reused connection: close, answer nothing.
                    sys.stderr.write("DROP\n")
                    sys.stderr.flush()
                    return
                up.sendall(data)
        finally:
            # shutdown() first: it wakes pump_back's recv() and sends the FIN now (a
            # bare close() under a blocked recv() leaves the socket open).
            for s in (up, conn):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            up.close()

    return handle


def main(argv):
    target = argv[argv.index("--to") + 1]
    peerlib.serve(peerlib.listen(argv), handle_with(target))


if __name__ == "__main__":
    peerlib.main_guard(main)
