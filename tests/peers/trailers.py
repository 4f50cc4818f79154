"""Trailers peer: a chunked response followed by trailer fields.

`GET /anything?len=N&t=Name:Value&t=...` answers 200 with a chunked body of `len`
bytes (11; byte i is `b"abcdefghij\\n"[i % 11]`) in up to 3 chunks, then each `t` as a
trailer field. Values are percent-decoded. Keeps the connection alive when asked.
Usage: trailers.py [--bind ADDR]
"""

import urllib.parse

import peerlib


def handle(conn, peer):
    rfile = conn.makefile("rb")
    while True:
        req = peerlib.read_request(rfile)
        if req is None:
            return
        ka = req.keep_alive()
        _, _, query = req.target.partition("?")
        q = urllib.parse.parse_qs(query, keep_blank_values=True)
        n = int(q.get("len", ["11"])[0])
        pattern = b"abcdefghij\n"
        body = (pattern * (n // len(pattern) + 1))[:n]
        trailers = [t.partition(":") for t in q.get("t", [])]
        head = peerlib.response_head(
            200,
            [
                ("Content-Type", "text/plain"),
                ("Transfer-Encoding", "chunked"),
                ("Trailer", ", ".join(k for k, _, _ in trailers)),
            ],
            ka,
        )
        out = [head]
        step = max(1, -(-len(body) // 3))
        for i in range(0, len(body), step):
            part = body[i : i + step]
            out.append(b"%x\r\n%s\r\n" % (len(part), part))
        out.append(b"0\r\n")
        for k, _, v in trailers:
            out.append(("%s: %s\r\n" % (k, v.strip())).encode("latin-1"))
        out.append(b"\r\n")
        conn.sendall(b"".join(out))
        if not ka:
            return


if __name__ == "__main__":
    peerlib.main_guard(lambda argv: peerlib.serve(peerlib.listen(argv), handle))
