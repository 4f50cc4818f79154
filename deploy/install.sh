#!/usr/bin/env bash
# Installs a release build of Junction in the packaged layout (run as root from the
# repository): /usr/local/bin/junction, /etc/junction/ (junction.conf, mime.types,
# *_params, sites-available/, sites-enabled/, conf.d/ — existing files are kept),
# /var/log/junction/, the systemd unit and the logrotate snippet.
#   deploy/install.sh && systemctl daemon-reload && systemctl enable --now junction
# JUNCTION_PGO=1 builds with profile-guided optimisation instead (scripts/build-pgo.sh:
# about twice as long, needs llvm-profdata and the benchmark's peers; ~15% fewer
# instructions per small request).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${JUNCTION_PGO:-0}" = 1 ]; then
  scripts/build-pgo.sh
  bin=target/pgo/release/junction
else
  cargo build --release --locked --bin junction
  bin=target/release/junction
fi
install -D -m 0755 "$bin" /usr/local/bin/junction
install -d /etc/junction/sites-available /etc/junction/sites-enabled /etc/junction/conf.d /var/log/junction
keep() { [ -e "$2" ] || install -m 0644 "$1" "$2"; }
keep deploy/junction.conf /etc/junction/junction.conf
for f in mime.types fastcgi_params fastcgi.conf uwsgi_params scgi_params; do
  keep "config/$f" "/etc/junction/$f"
done
keep config/debian/etc-nginx/proxy_params /etc/junction/proxy_params
install -d /etc/junction/snippets
keep config/debian/etc-nginx/snippets/fastcgi-php.conf /etc/junction/snippets/fastcgi-php.conf
install -D -m 0644 deploy/systemd/junction.service /etc/systemd/system/junction.service
install -D -m 0644 deploy/logrotate/junction /etc/logrotate.d/junction
/usr/local/bin/junction -t -c /etc/junction/junction.conf
echo "installed; put sites in /etc/junction/sites-enabled/, then: systemctl daemon-reload && systemctl enable --now junction"
