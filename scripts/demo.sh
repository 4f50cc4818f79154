#!/usr/bin/env bash
# Quick start: builds Junction and runs the guide's reverse proxy for real.
# The sample app (python3 -m http.server serving "hello world") listens on
# 127.0.0.1:8000 as in the guide; Junction runs config/myapp.conf unchanged but
# for its listen port (80 needs root; default here 8080, override with PORT=80).
# Stop with Ctrl-C: both processes are stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8080}"
cargo build --release
work="$(mktemp -d /tmp/junction-demo.XXXXXX)"
mkdir -p "$work/myapp"
echo "hello world" > "$work/myapp/index.html"
sed "s/listen 80;/listen $PORT;/" config/myapp.conf > "$work/myapp.conf"
(cd "$work/myapp" && exec python3 -m http.server 8000 --bind 127.0.0.1) >"$work/app.log" 2>&1 &
app=$!
trap 'kill $app 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT INT TERM
# Wait for the app, then start Junction and wait until it answers 200 through the app.
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "http://127.0.0.1:8000/" && break
  sleep 0.1
done
./target/release/junction -p "$work" -c myapp.conf -e stderr &
proxy=$!
trap 'kill $proxy $app 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT INT TERM
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/" -H 'Host: myapp' && break
  sleep 0.1
done
echo
echo "Junction is proxying 127.0.0.1:$PORT -> the sample app on 127.0.0.1:8000. Try:"
echo "  curl -I -H 'Host: myapp' http://127.0.0.1:$PORT/"
echo "  curl http://127.0.0.1:$PORT/"
echo
curl -sI -H 'Host: myapp' "http://127.0.0.1:$PORT/"
wait $proxy
