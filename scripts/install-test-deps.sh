#!/usr/bin/env bash
# Installs the real peers Junction's tests run against: nginx (the reference),
# php-fpm, uwsgi with the python3 plugin (also the SCGI server), memcached,
# wrk (benchmark smoke test), htpasswd (apache2-utils), mkpasswd (whois) and openssl (auth_basic files),
# haproxy (PROXY protocol), dnsmasq (resolver), pebble (ACME) and the Python client libraries the test apps use.
# Idempotent: does nothing when everything is present.
set -euo pipefail

need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
ls /usr/sbin/php-fpm* >/dev/null 2>&1 || need_apt+=(php-fpm)
command -v uwsgi >/dev/null 2>&1 || need_apt+=(uwsgi)
[ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] || ls /usr/lib/uwsgi/plugins/python3*_plugin.so >/dev/null 2>&1 || need_apt+=(uwsgi-plugin-python3)
command -v memcached >/dev/null 2>&1 || need_apt+=(memcached)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
# h2load: the bench's h2-small row (HTTP/2 over TLS).
command -v h2load >/dev/null 2>&1 || need_apt+=(nghttp2-client)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# Packaging tests: the systemd unit is checked by systemd-analyze, the logrotate snippet
# by logrotate.
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v logrotate >/dev/null 2>&1 || [ -x /usr/sbin/logrotate ] || need_apt+=(logrotate)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# config/proxy-https.conf verifies against the system CA bundle (TLS to upstreams).
[ -e /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
# htpasswd: the auth_basic tests make their user files with Apache's own tool.
command -v htpasswd >/dev/null 2>&1 || need_apt+=(apache2-utils)
# mkpasswd (whois): yescrypt (`$y$`) lines for the auth_basic tests.
command -v mkpasswd >/dev/null 2>&1 || need_apt+=(whois)
# haproxy: the PROXY protocol test runs Junction behind a real L4 load balancer.
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
# dnsmasq: the resolver tests run a real DNS server whose records they change
# (dnsmasq-base: the binary without the system service).
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq-base)
# ss (iproute2): the restart tests read a listening socket's backlog.
command -v ss >/dev/null 2>&1 || [ -x /usr/bin/ss ] || need_apt+=(iproute2)
# pebble: the ACME tests (tests/acme.rs) order certificates from Let's Encrypt's test server.
command -v pebble >/dev/null 2>&1 || need_apt+=(pebble)

if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  echo "install-test-deps: apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  # Debian starts the services it installs; the tests start their own.
  for s in nginx memcached php8.2-fpm uwsgi haproxy; do $SUDO service "$s" stop >/dev/null 2>&1 || true; done
fi

# Python libraries for the tests, for the python3 the tests run: pymemcache
# (tests/peers/cache_app.py fills memcached), prometheus_client (tests/status.rs parses
# the metrics with its OpenMetrics parser). Debian's own python3 is "externally
# managed": take its package; another python3 (pyenv, venv): pip.
py_need() { # module debian-package pypi-name
  python3 -c "import $1" >/dev/null 2>&1 && return 0
  if [ "$(command -v python3)" = /usr/bin/python3 ] && command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    echo "install-test-deps: apt-get install $2"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$2" >/dev/null || true
  fi
  if ! python3 -c "import $1" >/dev/null 2>&1; then
    echo "install-test-deps: pip install $3"
    python3 -m pip install --quiet --disable-pip-version-check "$3" \
      || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$3"
  fi
}
py_need pymemcache python3-pymemcache pymemcache
py_need prometheus_client python3-prometheus-client prometheus-client
# Python's brotli module decodes Junction's Brotli output in tests/compression.rs
# (an implementation other than the one Junction uses).
py_need brotli python3-brotli brotli
# PyYAML reads the Kubernetes manifests and kubernetes-validate checks them against the
# Kubernetes schemas it ships (tests/deploy_kubernetes.rs; PyPI only, no Debian package).
py_need yaml python3-yaml PyYAML
py_need kubernetes_validate python3-kubernetes-validate kubernetes-validate
