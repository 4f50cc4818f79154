//! DNS-discovered upstreams against a real DNS server this test controls: `dnsmasq`
//! (Debian's `dnsmasq-base`) on a free UDP port of 127.0.0.1, answering only from a
//! hosts file (`--no-resolv --no-hosts --addn-hosts=FILE --local=/test/`: a `*.test`
//! name it does not know is NXDOMAIN), with its TTL set by `--local-ttl` and every
//! query logged (`--log-queries`), so the tests count the lookups. A record change is
//! the file rewritten and SIGHUP (dnsmasq rereads it and logs `read FILE`: the
//! readiness signal of the change). The launcher is `tests/dns_kit/` (shared with
//! `tests/deploy_replicas.rs`).
//!
//! Backends are `echo.py` peers on one port of 127.0.0.2, 127.0.0.3, … (its `local`
//! field says which one answered).
//!
//! Rows: `proxy_pass` with a variable host resolves through `resolver` and caches for
//! the TTL, `valid=` overrides the TTL, an unknown name is 502 with nginx's log line, no
//! `resolver` is 502 `no resolver defined`, a server that never answers is 502 after
//! `resolver_timeout`, a dead first server does not fail the lookup, `uwsgi_pass` and
//! `scgi_pass` with variables resolve the same way (a real uWSGI), `fastcgi_pass` too (a
//! real php-fpm), concurrent lookups share one query, REFUSED and AAAA/`ipv6=off`
//! answers read as nginx — each also against
//! nginx in the reference mode. `server NAME … resolve` (nginx 1.27.3+; nginx 1.22 has
//! no `resolve` parameter, so those rows are Junction-only): the group follows a record
//! change without a reload, a staying address keeps its passive health state, a name
//! unknown at start is no load error and gets servers once it resolves, `/metrics`
//! follows the servers, and the load errors nginx gives (`zone`, `resolver` needed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod dns_kit;
#[allow(unused_macros)]
mod uwsgi_kit;

use common::*;
use dns_kit::*;
use std::fs;
use std::net::UdpSocket;
use std::thread;
use std::time::{Duration, Instant};

/// An echo peer on `ip` (port `port`, or OS-chosen when 0).
fn echo_on(ip: &str, port: u16) -> Peer {
    let p = port.to_string();
    if port == 0 {
        Peer::python("echo.py", &["--bind", ip])
    } else {
        Peer::python("echo.py", &["--bind", ip, "--port", &p])
    }
}

/// Which backend (`IP:PORT`) answered.
fn who(r: &Response) -> String {
    assert_eq!(r.status, 200, "{}", r.describe());
    // echo.py's JSON (`json.dumps`): `"local": "IP:PORT"`.
    let text = r.text();
    text.split_once("\"local\": \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(v, _)| v.to_string())
        .unwrap_or_else(|| panic!("no \"local\" in {text}"))
}

fn junction_only(what: &str) -> bool {
    if proxy_kind() == Kind::Nginx {
        eprintln!("{what}: Junction-only (`server … resolve` is nginx 1.27.3+; nginx 1.22 lacks it): skipped on nginx");
        return true;
    }
    false
}

/// Polls `f` until it is true or `within` passes (a DNS change is time-driven: TTL,
/// `valid=`).
fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// `GET /` on `proxy` is a 502 that came after at least `min` (the resolver_timeout,
/// `timeout` as configured) and the error log has nginx's timed-out line.
fn assert_502_after_resolver_timeout(proxy: &Proxy, min: Duration, timeout: &str) {
    let t0 = Instant::now();
    let r = proxy.get("x", "/");
    let took = t0.elapsed();
    assert_eq!(r.status, 502, "{}", r.describe());
    assert!(
        took >= min && took < Duration::from_secs(10),
        "answered after {took:?}, resolver_timeout is {timeout}"
    );
    proxy
        .wait_error_log(
            "app.test could not be resolved (110: Operation timed out)",
            Duration::from_secs(5),
        )
        .unwrap_or_else(|l| panic!("{l}"));
}

#[test]
fn proxy_pass_with_a_variable_host_resolves_and_caches_for_the_ttl() {
    let a = echo_on("127.0.0.2", 0);
    let dns = Dns::start(&[("app.test", "127.0.0.2")], 600);
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    resolver {DNS} ipv6=off;
    location / { set $h app.test; proxy_pass http://$h:{BACKEND}; }
}
",
        &[("DNS", &dns.addr()), ("BACKEND", &a.port)],
    ));
    for _ in 0..3 {
        assert_eq!(who(&proxy.get("x", "/")), format!("127.0.0.2:{}", a.port));
    }
    assert_eq!(
        dns.a_queries("app.test"),
        1,
        "one lookup, then the cached answer (TTL 600 s):\n{}",
        dns.log()
    );
}

#[test]
fn valid_overrides_the_ttl_and_traffic_follows_a_change() {
    let a = echo_on("127.0.0.2", 0);
    let b = echo_on("127.0.0.3", a.port);
    let mut dns = Dns::start(&[("app.test", "127.0.0.2")], 600);
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    resolver {DNS} valid=1s ipv6=off;
    location / { set $h app.test; proxy_pass http://$h:{BACKEND}; }
}
",
        &[("DNS", &dns.addr()), ("BACKEND", &a.port)],
    ));
    assert_eq!(who(&proxy.get("x", "/")), format!("127.0.0.2:{}", a.port));
    dns.set(&[("app.test", "127.0.0.3")]);
    let want = format!("127.0.0.3:{}", b.port);
    assert!(
        eventually(Duration::from_secs(8), || who(&proxy.get("x", "/")) == want),
        "traffic did not move to the new address within valid=1s:\n{}",
        dns.log()
    );
    assert!(dns.a_queries("app.test") >= 2);
}

#[test]
fn an_unknown_name_is_502_with_nginx_log_line() {
    let dns = Dns::start(&[("app.test", "127.0.0.2")], 600);
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    resolver {DNS} ipv6=off;
    location / { set $h nope.test; proxy_pass http://$h:8000; }
}
",
        &[("DNS", &dns.addr())],
    ));
    let r = proxy.get("x", "/");
    assert_eq!(r.status, 502, "{}", r.describe());
    let log = proxy
        .wait_error_log(
            "nope.test could not be resolved (3: Host not found)",
            Duration::from_secs(5),
        )
        .unwrap_or_else(|l| panic!("no resolve error in the log:\n{l}"));
    assert!(log.contains("[error]"), "{log}");
}

#[test]
fn without_resolver_a_name_is_502_no_resolver_defined() {
    let a = echo_on("127.0.0.1", 0);
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    location /name { set $h localhost; proxy_pass http://$h:{BACKEND}; }
    location /ip { set $h 127.0.0.1; proxy_pass http://$h:{BACKEND}; }
}
",
        &[("BACKEND", &a.port)],
    ));
    // A literal address needs no resolver.
    assert_eq!(who(&proxy.get("x", "/ip")), format!("127.0.0.1:{}", a.port));
    let r = proxy.get("x", "/name");
    assert_eq!(r.status, 502, "{}", r.describe());
    proxy
        .wait_error_log(
            "no resolver defined to resolve localhost",
            Duration::from_secs(5),
        )
        .unwrap_or_else(|l| panic!("{l}"));
}

#[test]
fn a_server_that_never_answers_is_502_after_resolver_timeout() {
    // Bound and never read: queries vanish, as with a dead DNS server behind a firewall.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    resolver {DNS} ipv6=off;
    resolver_timeout 1500ms;
    location / { set $h app.test; proxy_pass http://$h:8000; }
}
",
        &[("DNS", &silent.local_addr().unwrap())],
    ));
    assert_502_after_resolver_timeout(&proxy, Duration::from_millis(1400), "1.5s");
}

#[test]
fn a_dead_first_server_does_not_fail_the_lookup() {
    let a = echo_on("127.0.0.2", 0);
    let dns = Dns::start(&[("app.test", "127.0.0.2")], 600);
    let silent = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    resolver {SILENT} {DNS} ipv6=off;
    location / { set $h app.test; proxy_pass http://$h:{BACKEND}; }
}
",
        &[
            ("SILENT", &silent.local_addr().unwrap()),
            ("DNS", &dns.addr()),
            ("BACKEND", &a.port),
        ],
    ));
    // nginx asks the next server after its 5 s resend timeout; Junction asks two at once.
    assert_eq!(who(&proxy.get("x", "/")), format!("127.0.0.2:{}", a.port));
}

/// The value of the first sample of `name` (a counter's `_total` too) for `server`.
fn metric(text: &str, name: &str, server: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(&format!("server=\"{server}\"")))
        .find_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

fn resolving_config(dns: &Dns, port: u16, params: &str) -> String {
    fill(
        "resolver {DNS} valid=1s ipv6=off;
upstream app {
    zone app 64k;
    server app.test:{BACKEND} resolve {PARAMS};
}
server {
    listen 127.0.0.1:{PORT};
    location / { proxy_pass http://app; }
    location = /metrics { metrics; }
}
",
        &[
            ("DNS", &dns.addr()),
            ("BACKEND", &port),
            ("PARAMS", &params),
        ],
    )
}

#[test]
fn server_resolve_follows_a_record_change_without_reload() {
    if junction_only("server_resolve_follows_a_record_change_without_reload") {
        return;
    }
    let a = echo_on("127.0.0.2", 0);
    let b = echo_on("127.0.0.3", a.port);
    let mut dns = Dns::start(&[("app.test", "127.0.0.2")], 600);
    let proxy = Proxy::start(&resolving_config(&dns, a.port, ""));
    let (wa, wb) = (
        format!("127.0.0.2:{}", a.port),
        format!("127.0.0.3:{}", b.port),
    );
    // The first request waits for the first answer rather than failing.
    for _ in 0..3 {
        assert_eq!(who(&proxy.get("x", "/")), wa);
    }
    let metrics = proxy.get("x", "/metrics").text();
    assert!(metrics.contains(&format!("server=\"{wa}\"")), "{metrics}");
    dns.set(&[("app.test", "127.0.0.3")]);
    assert!(
        eventually(Duration::from_secs(8), || who(&proxy.get("x", "/")) == wb),
        "the group did not follow the change:\n{}\n{}",
        dns.log(),
        proxy.error_log()
    );
    // The old address gets nothing any more.
    for _ in 0..5 {
        assert_eq!(who(&proxy.get("x", "/")), wb);
    }
    let metrics = proxy.get("x", "/metrics").text();
    assert!(metrics.contains(&format!("server=\"{wb}\"")), "{metrics}");
    assert!(
        !metrics.contains(&format!("server=\"{wa}\"")),
        "a removed server leaves the metrics:\n{metrics}"
    );
}

#[test]
fn server_resolve_keeps_the_health_state_of_a_staying_address() {
    if junction_only("server_resolve_keeps_the_health_state_of_a_staying_address") {
        return;
    }
    let a = echo_on("127.0.0.2", 0);
    let c = echo_on("127.0.0.4", a.port);
    // 127.0.0.3:PORT: nothing listens there.
    let mut dns = Dns::start(&[("app.test", "127.0.0.2"), ("app.test", "127.0.0.3")], 600);
    let proxy = Proxy::start(&resolving_config(
        &dns,
        a.port,
        "max_fails=1 fail_timeout=60s",
    ));
    let wa = format!("127.0.0.2:{}", a.port);
    let dead = format!("127.0.0.3:{}", a.port);
    // Round robin reaches the dead address within two requests; the request goes on
    // to the live one, and the dead one is out for fail_timeout.
    for _ in 0..4 {
        assert_eq!(who(&proxy.get("x", "/")), wa);
    }
    // Requests sent to the dead address, from /metrics.
    let tried = || {
        let m = proxy.get("x", "/metrics").text();
        metric(&m, "junction_upstream_requests", &dead)
    };
    let before = tried();
    assert!(before >= 1.0, "the dead address was never tried");
    // A new address joins; the dead one stays in the answer.
    dns.set(&[
        ("app.test", "127.0.0.2"),
        ("app.test", "127.0.0.3"),
        ("app.test", "127.0.0.4"),
    ]);
    let wc = format!("127.0.0.4:{}", c.port);
    assert!(
        eventually(Duration::from_secs(8), || who(&proxy.get("x", "/")) == wc),
        "the new address got no traffic:\n{}",
        proxy.error_log()
    );
    for _ in 0..6 {
        let w = who(&proxy.get("x", "/"));
        assert!(w == wa || w == wc, "{w}");
    }
    assert_eq!(
        tried(),
        before,
        "the staying dead address was tried again: its failure was forgotten"
    );
    let m = proxy.get("x", "/metrics").text();
    assert!(
        m.lines()
            .any(|l| l.contains("junction_upstream_server_state")
                && l.contains(&format!("server=\"{dead}\""))
                && l.contains("state=\"unhealthy\"")),
        "{m}"
    );
}

#[test]
fn server_resolve_with_a_name_unknown_at_start_is_no_load_error() {
    if junction_only("server_resolve_with_a_name_unknown_at_start_is_no_load_error") {
        return;
    }
    let a = echo_on("127.0.0.2", 0);
    let mut dns = Dns::start(&[("other.test", "127.0.0.9")], 600);
    let proxy = Proxy::start(&resolving_config(&dns, a.port, ""));
    let r = proxy.get("x", "/");
    assert_eq!(r.status, 502, "{}", r.describe());
    proxy
        .wait_error_log(
            "app.test could not be resolved (3: Host not found)",
            Duration::from_secs(5),
        )
        .unwrap_or_else(|l| panic!("{l}"));
    dns.set(&[("app.test", "127.0.0.2")]);
    let wa = format!("127.0.0.2:{}", a.port);
    // NXDOMAIN is asked again after valid= (1 s) + 1 s.
    assert!(
        eventually(Duration::from_secs(10), || {
            let r = proxy.get("x", "/");
            r.status == 200 && who(&r) == wa
        }),
        "the name was not resolved again:\n{}",
        proxy.error_log()
    );
}

#[test]
fn server_resolve_load_errors_as_nginx() {
    if junction_only("server_resolve_load_errors_as_nginx") {
        return;
    }
    let check = |text: &str| {
        let (out, _dir) = check_config(&[("junction.conf", text)], "junction.conf");
        assert_eq!(out.code, Some(1), "{}", out.stderr);
        out.stderr
    };
    let e = check(
        "upstream app { server app.test:80 resolve; }
         server { listen 127.0.0.1:1; resolver 127.0.0.1; location / { proxy_pass http://app; } }",
    );
    assert!(
        e.contains("resolving names at run time requires upstream \"app\"")
            && e.contains("to be in shared memory"),
        "{e}"
    );
    let e = check(
        "upstream app { zone app 64k; server app.test:80 resolve; }
         server { listen 127.0.0.1:1; location / { proxy_pass http://app; } }",
    );
    assert!(
        e.contains("no resolver defined to resolve names at run time in upstream \"app\""),
        "{e}"
    );
    let e = check(
        "upstream app { zone app 64k; resolver 127.0.0.1; server app.test service=http resolve; }
         server { listen 127.0.0.1:1; location / { proxy_pass http://app; } }",
    );
    assert!(e.contains("not supported"), "{e}");
    // A resolver inside the upstream block (1.27.3) is enough; the name is not looked up.
    let (out, _dir) = check_config(
        &[(
            "junction.conf",
            "upstream app { zone app 64k; resolver 127.0.0.1 valid=5s; resolver_timeout 2s;
               server no-such-name.test:80 resolve; }
             server { listen 127.0.0.1:1; location / { proxy_pass http://app; } }",
        )],
        "junction.conf",
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn resolver_parameters_are_checked_at_load() {
    let (out, _dir) = check_config(
        &[(
            "junction.conf",
            "server { listen 127.0.0.1:1; resolver 127.0.0.1 valid=bad; }",
        )],
        "junction.conf",
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("invalid parameter: valid=bad"),
        "{}",
        out.stderr
    );
    let (out, _dir) = check_config(
        &[(
            "junction.conf",
            "server { listen 127.0.0.1:1; resolver 127.0.0.1:5353 [::1] valid=30s ipv6=off; resolver_timeout 5s; }",
        )],
        "junction.conf",
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

/// Established TCP connections of this machine to `ip:port` (`/proc/net/tcp`, the
/// connecting side's rows).
fn established_to(ip: [u8; 4], port: u16) -> usize {
    let want = format!(
        "{:02X}{:02X}{:02X}{:02X}:{:04X}",
        ip[3], ip[2], ip[1], ip[0], port
    );
    fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(2) == Some(&want.as_str()) && f.get(3) == Some(&"01")
        })
        .count()
}

#[test]
fn server_resolve_closes_keepalive_connections_to_a_removed_address() {
    if junction_only("server_resolve_closes_keepalive_connections_to_a_removed_address") {
        return;
    }
    let a = echo_on("127.0.0.2", 0);
    let b = echo_on("127.0.0.3", a.port);
    let mut dns = Dns::start(&[("app.test", "127.0.0.2")], 600);
    let proxy = Proxy::start(&fill(
        "resolver {DNS} valid=1s ipv6=off;
upstream app {
    zone app 64k;
    keepalive 4;
    server app.test:{BACKEND} resolve;
}
server {
    listen 127.0.0.1:{PORT};
    location / { proxy_pass http://app; }
}
",
        &[("DNS", &dns.addr()), ("BACKEND", &a.port)],
    ));
    assert_eq!(who(&proxy.get("x", "/")), format!("127.0.0.2:{}", a.port));
    assert_eq!(
        established_to([127, 0, 0, 2], a.port),
        1,
        "the upstream connection is kept alive in the pool"
    );
    dns.set(&[("app.test", "127.0.0.3")]);
    let wb = format!("127.0.0.3:{}", b.port);
    assert!(eventually(Duration::from_secs(8), || who(
        &proxy.get("x", "/")
    ) == wb));
    assert!(
        eventually(Duration::from_secs(3), || established_to(
            [127, 0, 0, 2],
            a.port
        ) == 0),
        "the idle connection to the removed address stays open"
    );
    assert_eq!(established_to([127, 0, 0, 3], b.port), 1);
}

#[test]
fn server_resolve_new_addresses_are_health_checked_before_traffic() {
    if junction_only("server_resolve_new_addresses_are_health_checked_before_traffic") {
        return;
    }
    let a = echo_on("127.0.0.2", 0);
    let mut dns = Dns::start(&[("app.test", "127.0.0.2")], 600);
    let proxy = Proxy::start(&fill(
        "resolver {DNS} valid=1s ipv6=off;
upstream app {
    zone app 64k;
    server app.test:{BACKEND} resolve;
    health_check interval=200ms mandatory;
}
server {
    listen 127.0.0.1:{PORT};
    location / { proxy_pass http://app; }
    location = /metrics { metrics; }
}
",
        &[("DNS", &dns.addr()), ("BACKEND", &a.port)],
    ));
    let wa = format!("127.0.0.2:{}", a.port);
    // `mandatory`: a server found by DNS takes traffic once its first probe passed.
    assert!(eventually(Duration::from_secs(5), || {
        let r = proxy.get("x", "/");
        r.status == 200 && who(&r) == wa
    }));
    // A new address where nothing listens: probed, found down, never sent a request.
    let dead = format!("127.0.0.3:{}", a.port);
    dns.set(&[("app.test", "127.0.0.2"), ("app.test", "127.0.0.3")]);
    let scrape = || proxy.get("x", "/metrics").text();
    assert!(
        eventually(Duration::from_secs(8), || metric(
            &scrape(),
            "junction_upstream_health_check_failures",
            &dead
        ) >= 1.0),
        "the new address was not probed:\n{}",
        scrape()
    );
    for _ in 0..10 {
        assert_eq!(who(&proxy.get("x", "/")), wa);
    }
    assert_eq!(
        metric(&scrape(), "junction_upstream_requests", &dead),
        0.0,
        "{}",
        scrape()
    );
}

#[test]
fn concurrent_lookups_of_one_name_make_one_query() {
    let a = echo_on("127.0.0.2", 0);
    let dns = Dns::start(&[("app.test", "127.0.0.2")], 600);
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    resolver {DNS} ipv6=off;
    location / { set $h app.test; proxy_pass http://$h:{BACKEND}; }
}
",
        &[("DNS", &dns.addr()), ("BACKEND", &a.port)],
    ));
    let port = proxy.port;
    let want = format!("127.0.0.2:{}", a.port);
    let clients: Vec<_> = (0..8)
        .map(|_| thread::spawn(move || who(&http_request(port, get_request("x", "/").as_bytes()))))
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), want);
    }
    assert_eq!(dns.a_queries("app.test"), 1, "{}", dns.log());
}

#[test]
fn a_refused_query_is_502_operation_refused() {
    // dnsmasq answers REFUSED for a name outside its local domains (it has no upstream).
    let dns = Dns::start(&[("app.test", "127.0.0.2")], 600);
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    resolver {DNS} ipv6=off;
    resolver_timeout 5s;
    location / { set $h example.com; proxy_pass http://$h:8000; }
}
",
        &[("DNS", &dns.addr())],
    ));
    let r = proxy.get("x", "/");
    assert_eq!(r.status, 502, "{}", r.describe());
    proxy
        .wait_error_log(
            "example.com could not be resolved (5: Operation refused)",
            Duration::from_secs(5),
        )
        .unwrap_or_else(|l| panic!("{l}"));
}

#[test]
fn server_resolve_follows_the_ttl_without_valid() {
    if junction_only("server_resolve_follows_the_ttl_without_valid") {
        return;
    }
    let a = echo_on("127.0.0.2", 0);
    let b = echo_on("127.0.0.3", a.port);
    let mut dns = Dns::start(&[("app.test", "127.0.0.2")], 1);
    let proxy = Proxy::start(&fill(
        "resolver {DNS} ipv6=off;
upstream app { zone app 64k; server app.test:{BACKEND} resolve; }
server { listen 127.0.0.1:{PORT}; location / { proxy_pass http://app; } }
",
        &[("DNS", &dns.addr()), ("BACKEND", &a.port)],
    ));
    assert_eq!(who(&proxy.get("x", "/")), format!("127.0.0.2:{}", a.port));
    dns.set(&[("app.test", "127.0.0.3")]);
    let wb = format!("127.0.0.3:{}", b.port);
    assert!(
        eventually(Duration::from_secs(8), || who(&proxy.get("x", "/")) == wb),
        "TTL 1 s: the name is asked again within 2 s:\n{}",
        dns.log()
    );
}

#[test]
fn uwsgi_and_scgi_pass_with_a_variable_host_resolve() {
    use uwsgi_kit::{Protocol, Uwsgi};
    for protocol in [Protocol::Uwsgi, Protocol::Scgi] {
        let app = Uwsgi::start(protocol, false);
        let dns = Dns::start(&[("app.test", "127.0.0.1")], 600);
        let p = protocol.prefix();
        let params_name = format!("{p}_params");
        let params = fs::read_to_string(manifest_dir().join("config").join(&params_name))
            .expect("config/*_params");
        let config = fill(
            "server {
    listen 127.0.0.1:{PORT};
    resolver {DNS} ipv6=off;
    location / { include {P}_params; set $h app.test; {P}_pass $h:{APP}; }
    location /nx { include {P}_params; set $h nope.test; {P}_pass $h:{APP}; }
}
",
            &[("DNS", &dns.addr()), ("P", &p), ("APP", &app.port())],
        );
        let proxy = Proxy::start_files(
            &[("site.conf", &config), (&params_name, &params)],
            "site.conf",
        );
        for _ in 0..2 {
            let r = proxy.get("app.test", "/");
            assert_eq!(r.status, 200, "{p}: {}", r.describe());
        }
        assert_eq!(dns.a_queries("app.test"), 1, "{p}: {}", dns.log());
        let r = proxy.get("app.test", "/nx");
        assert_eq!(r.status, 502, "{p}: {}", r.describe());
        proxy
            .wait_error_log(
                "nope.test could not be resolved (3: Host not found)",
                Duration::from_secs(5),
            )
            .unwrap_or_else(|l| panic!("{p}: {l}"));
    }
}

#[test]
fn server_resolve_goes_on_after_a_reload() {
    if junction_only("server_resolve_goes_on_after_a_reload") {
        return;
    }
    let a = echo_on("127.0.0.2", 0);
    let b = echo_on("127.0.0.3", a.port);
    let mut dns = Dns::start(&[("app.test", "127.0.0.2")], 600);
    let proxy = Proxy::start(&resolving_config(&dns, a.port, ""));
    let wa = format!("127.0.0.2:{}", a.port);
    assert_eq!(who(&proxy.get("x", "/")), wa);
    // The new configuration has a marker location: its answer says the reload is done.
    let conf = proxy.dir().join("junction.conf");
    let text = fs::read_to_string(&conf).unwrap().replace(
        "location / {",
        "location = /v2 { return 200 \"v2\"; }\n    location / {",
    );
    fs::write(&conf, text).unwrap();
    proxy.signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || proxy.get("x", "/v2").status
            == 200),
        "the reload was not taken:\n{}",
        proxy.error_log()
    );
    // The new configuration's group resolves on its own (its first requests wait for it).
    for _ in 0..3 {
        assert_eq!(who(&proxy.get("x", "/")), wa);
    }
    dns.set(&[("app.test", "127.0.0.3")]);
    let wb = format!("127.0.0.3:{}", b.port);
    assert!(
        eventually(Duration::from_secs(8), || who(&proxy.get("x", "/")) == wb),
        "{}",
        proxy.error_log()
    );
}

#[test]
fn fastcgi_pass_with_a_variable_host_resolves() {
    let fpm = PhpFpm::start_tcp("");
    let FpmListen::Tcp(fpm_port) = fpm.listen else {
        panic!("a TCP pool");
    };
    let dns = Dns::start(&[("php.test", "127.0.0.1")], 600);
    let params = fs::read_to_string(manifest_dir().join("config/fastcgi_params"))
        .expect("config/fastcgi_params");
    let site = fill(
        "server {
    listen 127.0.0.1:{PORT};
    root {DIR}/www;
    resolver {DNS} ipv6=off;
    location ~ \\.php$ {
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        set $php php.test;
        fastcgi_pass $php:{FPM};
    }
}
",
        &[("DNS", &dns.addr()), ("FPM", &fpm_port)],
    );
    let proxy = Proxy::start_files(
        &[
            ("site.conf", &site),
            ("fastcgi_params", &params),
            ("www/index.php", "<?php echo \"php via dns\";"),
        ],
        "site.conf",
    );
    for _ in 0..2 {
        let r = proxy.get("x", "/index.php");
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_eq!(r.text(), "php via dns");
    }
    assert_eq!(dns.a_queries("php.test"), 1, "{}", dns.log());
}

#[test]
fn aaaa_records_are_asked_unless_ipv6_is_off() {
    let dns = Dns::start(&[("six.test", "::1")], 600);
    let port = closed_port();
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    location /on { resolver {DNS}; set $h six.test; proxy_pass http://$h:{UP}; }
    location /off { resolver {DNS} ipv6=off; set $h six.test; proxy_pass http://$h:{UP}; }
}
",
        &[("DNS", &dns.addr()), ("UP", &port)],
    ));
    // ipv6=on (the default): the AAAA answer is used (nothing listens there: 502).
    let r = proxy.get("x", "/on");
    assert_eq!(r.status, 502, "{}", r.describe());
    proxy
        .wait_error_log(
            &format!("upstream: \"http://[::1]:{port}/on\""),
            Duration::from_secs(5),
        )
        .unwrap_or_else(|l| panic!("{l}"));
    // ipv6=off: only A is asked, and there is none.
    let r = proxy.get("x", "/off");
    assert_eq!(r.status, 502, "{}", r.describe());
    proxy
        .wait_error_log(
            "six.test could not be resolved (3: Host not found)",
            Duration::from_secs(5),
        )
        .unwrap_or_else(|l| panic!("{l}"));
}

#[test]
fn an_unreachable_server_is_502_after_resolver_timeout() {
    // Nobody on this UDP port: the kernel refuses each query (ICMP port unreachable);
    // the query is sent again until resolver_timeout, as nginx resends it.
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap()
        .port();
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    resolver 127.0.0.1:{DNS} ipv6=off;
    resolver_timeout 1s;
    location / { set $h app.test; proxy_pass http://$h:8000; }
}
",
        &[("DNS", &port)],
    ));
    assert_502_after_resolver_timeout(&proxy, Duration::from_millis(900), "1s");
}

#[test]
fn a_name_with_several_addresses_spreads_requests_over_them() {
    let a = echo_on("127.0.0.2", 0);
    let b = echo_on("127.0.0.3", a.port);
    let dns = Dns::start(&[("app.test", "127.0.0.2"), ("app.test", "127.0.0.3")], 600);
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    resolver {DNS} ipv6=off;
    location / { set $h app.test; proxy_pass http://$h:{BACKEND}; }
}
",
        &[("DNS", &dns.addr()), ("BACKEND", &a.port)],
    ));
    let mut seen = std::collections::HashMap::new();
    for _ in 0..40 {
        *seen.entry(who(&proxy.get("x", "/"))).or_insert(0) += 1;
    }
    let (wa, wb) = (
        format!("127.0.0.2:{}", a.port),
        format!("127.0.0.3:{}", b.port),
    );
    // nginx starts each request at a random address of the cached answer.
    assert!(
        seen.get(&wa).copied().unwrap_or(0) >= 5 && seen.get(&wb).copied().unwrap_or(0) >= 5,
        "{seen:?}"
    );
    assert_eq!(dns.a_queries("app.test"), 1);
}
