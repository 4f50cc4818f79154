"""Caching-front application: the app behind `error_page 404 502 504 = @app`.

Every request (except GET /__hits) counts as a hit. The app answers
`<METHOD> <target> hit <n>\n` (text/plain-ish `application/x-cache-app`, so a test can
tell the app's answers from memcached's, whose Content-Type comes from the URI's
extension) and, for GET, stores that page in memcached under the key the front's
`set $memcached_key "$uri?$args"` computes, with the PyPI `pymemcache` client — the way
a real application fills the cache nginx reads.

With `--describe`, each answer also names the client the front reported and this app
instance: `<METHOD> <target> hit <n> client=<X-Real-IP> app=<ADDR:PORT>\n` (several
instances on one port of different loopback addresses tell apart who answered).

GET /__hits answers `{"hits": n, "requests": [[method, target, body_len], ...]}` and is
not counted (tests call it on the app directly).

Usage: cache_app.py --memcached PORT [--bind ADDR] [--port N] [--no-store] [--describe]
"""

import json
import sys
import threading

import peerlib

try:
    from pymemcache.client.base import Client
except ImportError:  # the testkit shows stderr when the peer does not start
    sys.stderr.write(
        "cache_app.py needs pymemcache: python3 -m pip install pymemcache "
        "(scripts/install-test-deps.sh does it)\n"
    )
    raise

lock = threading.Lock()
hits = 0
requests = []


def main(argv):
    port = int(argv[argv.index("--memcached") + 1])
    store = "--no-store" not in argv
    describe = "--describe" in argv
    local = threading.local()

    def client():
        # One pymemcache client per connection thread (a client is not thread-safe).
        c = getattr(local, "client", None)
        if c is None:
            c = Client(("127.0.0.1", port), connect_timeout=2, timeout=2)
            local.client = c
        return c

    def handle(conn, peer):
        global hits
        rfile = conn.makefile("rb")
        while True:
            req = peerlib.read_request(rfile)
            if req is None:
                return
            ka = req.keep_alive()
            if req.method == "GET" and req.target == "/__hits":
                with lock:
                    body = json.dumps({"hits": hits, "requests": requests}).encode()
                ctype = "application/json"
            else:
                with lock:
                    hits += 1
                    n = hits
                    requests.append([req.method, req.target, len(req.body)])
                if describe:
                    me = "%s:%d" % conn.getsockname()[:2]
                    real_ip = req.header("X-Real-IP") or "-"
                    body = "%s %s hit %d client=%s app=%s\n" % (
                        req.method, req.target, n, real_ip, me)
                    body = body.encode()
                else:
                    body = ("%s %s hit %d\n" % (req.method, req.target, n)).encode()
                ctype = "application/x-cache-app"
                if store and req.method == "GET":
                    path, _, query = req.target.partition("?")
                    try:
                        # noreply=False: the page is stored before the answer leaves
                        # (pymemcache's default does not wait for STORED).
                        client().set(path + "?" + query, body, noreply=False)
                    except Exception as e:  # memcached stopped: still answer
                        sys.stderr.write("memcached set failed: %r\n" % (e,))
                        local.client = None
            head = peerlib.response_head(
                200,
                [("Content-Type", ctype), ("Content-Length", str(len(body)))],
                ka,
            )
            conn.sendall(head + (b"" if req.method == "HEAD" else body))
            if not ka:
                return

    peerlib.serve(peerlib.listen(argv), handle)


if __name__ == "__main__":
    peerlib.main_guard(main)
