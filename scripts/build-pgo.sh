#!/usr/bin/env bash
# Builds the release binary with profile-guided optimisation (PGO):
#   1. an instrumented build (target/pgo-gen), which records which branches and
#      functions a run takes;
#   2. a training run: bench/run.py --quick on the small-response scenarios (every
#      protocol, keep-alive and Connection: close, TLS, HTTP/2, gzip) against real
#      peers, as the benchmark runs them;
#   3. the profiles merged (llvm-profdata of rustc's own LLVM version) and the
#      release binary built with them: target/pgo/release/junction.
# LLVM lays the hot path out together and inlines along it: fewer instruction-cache
# misses and instructions per request (bench/README, "Twelfth session").
#
# Needs: llvm-profdata of the LLVM major version `rustc -vV` names (Debian:
# apt-get install llvm-22 for rustc 1.95), and what bench/run.py needs (nginx,
# wrk, php-fpm, uwsgi, memcached: scripts/install-test-deps.sh). Takes about
# twice a release build (~16 min on 2 cores). CI builds no release and does not
# run this.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
profdata=""
for c in "llvm-profdata-$major" llvm-profdata "/usr/lib/llvm-$major/bin/llvm-profdata"; do
  if command -v "$c" >/dev/null 2>&1 && "$c" --version 2>/dev/null | grep -q "version $major\."; then
    profdata=$c
    break
  fi
done
if [ -z "$profdata" ]; then
  echo "build-pgo: no llvm-profdata for LLVM $major (rustc's); install it: apt-get install llvm-$major" >&2
  exit 1
fi

data="$root/target/pgo-data"
rm -rf "$data"
mkdir -p "$data"

echo "build-pgo: 1/3 instrumented build (target/pgo-gen)"
RUSTFLAGS="-Cprofile-generate=$data" CARGO_TARGET_DIR="$root/target/pgo-gen" \
  cargo build --release --locked --bin junction
# Build scripts ran instrumented too: only the training run's profiles are kept.
rm -f "$data"/*.profraw

echo "build-pgo: 2/3 training run (bench/run.py --quick)"
python3 bench/run.py --quick --workers 1 --json "$data/training.json" \
  --only http-small,http-close,http-100k,php-fpm,uwsgi,scgi,memcached-hit,https-small,h2-small,gzip-1 \
  --junction "$root/target/pgo-gen/release/junction"
ls "$data"/*.profraw >/dev/null 2>&1 || {
  echo "build-pgo: the training run left no profile in $data" >&2
  exit 1
}

echo "build-pgo: 3/3 optimised build (target/pgo)"
"$profdata" merge -o "$data/merged.profdata" "$data"/*.profraw
RUSTFLAGS="-Cprofile-use=$data/merged.profdata" CARGO_TARGET_DIR="$root/target/pgo" \
  cargo build --release --locked --bin junction
echo "build-pgo: target/pgo/release/junction"
