#!/bin/sh
# Smoke test of the benchmark harness (issue 3): every scenario for ~1 s, 1 run, 1 worker count.
#
#   bench/smoke_test.sh [JUNCTION_BINARY]
#
# Exits 0 when the harness itself worked (backends, nginx, measurements, JSON), even if
# junction is "not available" for some or all scenarios; non-zero if the harness broke or
# nginx itself failed.  Without JUNCTION_BINARY it runs the self-test (nginx on both sides),
# so it never runs `cargo build` (which would deadlock on cargo's lock inside `cargo test`).
# From a Rust integration test, pass env!("CARGO_BIN_EXE_junction").
# Takes ~30-40 s.  Needs nginx, wrk, php-fpm, uwsgi(+python3 plugin) and memcached; run.py
# apt-get installs the missing ones when run as root.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
out=$(mktemp -d "${TMPDIR:-/tmp}/junction-bench-smoke.XXXXXX")
trap 'rm -rf "$out"' EXIT INT TERM

if [ $# -ge 1 ] && [ -n "$1" ]; then
    set -- --junction "$1"
else
    set -- --junction-is-nginx
fi

"$py" "$here/run.py" --quick "$@" --json "$out/quick.json"

"$py" - "$out/quick.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
want = ["http-small", "http-100k", "http-close", "http-unbuffered", "php-fpm", "uwsgi", "scgi",
        "memcached-hit", "idle-10k", "https-small", "tls-handshakes", "h2-small", "idle-tls"]
bad = []
for name in want:
    s = d["scenarios"].get(name)
    if s is None or "error" in s:
        bad.append("%s: %s" % (name, s and s["error"]))
        continue
    for w, r in s["workers"].items():
        m = r["nginx"].get("median") or {}
        key = "kb_per_conn" if name in ("idle-10k", "idle-tls") else "rps"
        if not m.get(key):
            bad.append("%s w%s: no nginx figure" % (name, w))
        if not r["junction"]["available"]:
            print("smoke: %s w%s: junction not available (%s)" % (name, w, r["junction"]["reason"]))
if bad:
    print("smoke: FAILED: " + "; ".join(bad))
    sys.exit(1)
print("smoke: harness OK (%d scenarios)" % len(want))
EOF
