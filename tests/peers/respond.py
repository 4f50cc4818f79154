"""Configurable-response peer: the query says what to answer.

`GET /anything?status=N&type=T&len=N&h=Name:Value&h=...&chunked=1&pieces=N`
answers status N (200), `Content-Type: T` (text/html; `type=-` sends none), a text body of
`len` bytes (1000; line i is "line i of a compressible response\n", cut at len), each `h`
as a response header, with Content-Length unless `chunked=1` (then chunked, in `pieces`
chunks). Values are percent-decoded. HEAD gets the same head and no body.
Keeps the connection alive when the request allows it.
Usage: respond.py [--bind ADDR]
"""

import urllib.parse

import peerlib


def body_of(n):
    out = []
    size = 0
    i = 0
    while size < n:
        line = b"line %d of a compressible response\n" % i
        out.append(line)
        size += len(line)
        i += 1
    return b"".join(out)[:n]


def handle(conn, peer):
    rfile = conn.makefile("rb")
    while True:
        req = peerlib.read_request(rfile)
        if req is None:
            return
        ka = req.keep_alive()
        _, _, query = req.target.partition("?")
        q = urllib.parse.parse_qs(query, keep_blank_values=True)
        status = int(q.get("status", ["200"])[0])
        ctype = q.get("type", ["text/html"])[0]
        body = body_of(int(q.get("len", ["1000"])[0]))
        chunked = q.get("chunked", ["0"])[0] == "1"
        pieces = max(1, int(q.get("pieces", ["3"])[0]))
        headers = []
        if ctype != "-":
            headers.append(("Content-Type", ctype))
        for h in q.get("h", []):
            k, _, v = h.partition(":")
            headers.append((k, v.strip()))
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        else:
            headers.append(("Content-Length", str(len(body))))
        head = peerlib.response_head(status, headers, ka)
        if req.method == "HEAD" or status in (204, 304):
            conn.sendall(head)
        elif chunked:
            conn.sendall(head)
            step = max(1, -(-len(body) // pieces))
            for i in range(0, len(body), step):
                part = body[i : i + step]
                conn.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            conn.sendall(b"0\r\n\r\n")
        else:
            conn.sendall(head + body)
        if not ka:
            return


if __name__ == "__main__":
    peerlib.main_guard(lambda argv: peerlib.serve(peerlib.listen(argv), handle))
