"""A syslog receiver for the tests: a UDP socket on 127.0.0.1 (OS-chosen port) and,
with `--unix PATH`, a unix datagram socket at PATH (as /dev/log is). Every datagram
is appended to OUTFILE as one line `udp HEX` or `unix HEX` (hex of the exact bytes),
flushed at once. Prints `PORT <n>` (the UDP port) once both sockets are bound.

Usage: syslog_sink.py OUTFILE [--unix PATH]
"""

import os
import socket
import sys
import threading


def main():
    out_path = sys.argv[1]
    unix_path = None
    if "--unix" in sys.argv:
        unix_path = sys.argv[sys.argv.index("--unix") + 1]
    lock = threading.Lock()
    out = open(out_path, "a")

    def pump(sock, name):
        while True:
            data = sock.recv(65536)
            with lock:
                out.write("%s %s\n" % (name, data.hex()))
                out.flush()

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    threads = [threading.Thread(target=pump, args=(udp, "udp"), daemon=True)]
    if unix_path:
        if os.path.exists(unix_path):
            os.unlink(unix_path)
        ux = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ux.bind(unix_path)
        threads.append(threading.Thread(target=pump, args=(ux, "unix"), daemon=True))
    for t in threads:
        t.start()
    print("PORT %d" % udp.getsockname()[1], flush=True)
    for t in threads:
        t.join()


main()
