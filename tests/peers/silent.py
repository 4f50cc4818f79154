"""Silent peer: accepts connections, reads whatever arrives, never answers.
Usage: silent.py [--bind ADDR]
"""

import peerlib


def handle(conn, peer):
    while conn.recv(65536):
        pass


if __name__ == "__main__":
    peerlib.main_guard(lambda argv: peerlib.serve(peerlib.listen(argv), handle))
