//! Active health checks (issue 7, beyond nginx OSS): `health_check interval=200ms fails=1
//! passes=1` in an `upstream` block probes every server in the upstream's own protocol.
//! HTTP: a backend whose `/health` starts answering 500 gets no client request after the
//! next probe and gets traffic again once it recovers. memcached (`version`) and FastCGI
//! (php-fpm's `ping.path`, with `match`): a server that accepts connections but does not
//! speak the protocol is taken out before any client request reaches it; likewise uwsgi
//! and SCGI (a real uWSGI, `uwsgi_kit`). Each transition
//! is an error-log line (warn down, info up). Skipped on nginx (no `health_check` in OSS).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod upstream_kit;
#[allow(unused_macros)]
mod uwsgi_kit;

use common::*;
use std::time::Duration;
use upstream_kit::*;

const WAIT: Duration = Duration::from_secs(10);

fn skip_on_nginx() -> bool {
    if proxy_kind() == Kind::Nginx {
        eprintln!("health_check is beyond nginx OSS: skipped on nginx");
        return true;
    }
    false
}

/// A full config around an http-level `body`, logging at info (health transitions are
/// warn and info lines).
fn start_full(body: &str, files: &[(&str, &str)]) -> Proxy {
    let main = format!("error_log error.log info;\nevents {{}}\nhttp {{\n{body}\n}}\n");
    let mut all: Vec<(&str, &str)> = vec![("junction.conf", &main)];
    all.extend_from_slice(files);
    Proxy::start_files(&all, "junction.conf")
}

/// The error-log lines that contain every one of `needles`, waiting for one.
fn wait_line(proxy: &Proxy, needles: &[&str]) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let log = proxy.error_log();
        if let Some(l) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return l.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no error-log line with {needles:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_backend_failing_its_health_uri_gets_no_requests_until_it_recovers() {
    if skip_on_nginx() {
        return;
    }
    let b = Backend::start_n(3);
    let ups = upstream_block(
        "app",
        &[(&b[0], ""), (&b[1], ""), (&b[2], "")],
        "health_check interval=200ms fails=1 passes=1 uri=/health;",
    );
    let proxy = start_full(&site(&ups, "app", ""), &[]);
    for x in &b {
        x.wait_probes(0, 1, WAIT);
    }
    let seen: Vec<String> = (0..30).map(|_| peer_of(&get(proxy.port, "/"))).collect();
    assert!(seen.iter().any(|p| p == "b"), "{seen:?}");

    b[1].set_health(500);
    let down = wait_line(&proxy, &[&b[1].addr(), "is down"]);
    assert!(down.contains("[warn]"), "{down}");
    assert!(down.contains("status 500"), "{down}");
    for x in &b {
        x.reset();
    }
    for _ in 0..60 {
        let r = get(proxy.port, "/");
        assert_eq!(r.status, 200, "{}", r.describe());
    }
    let hits: Vec<u64> = b.iter().map(|x| x.stats().hits).collect();
    assert_eq!(
        hits[1], 0,
        "the unhealthy backend got client requests: {hits:?}"
    );
    assert_eq!(hits[0] + hits[2], 60);
    // It is still probed.
    b[1].wait_probes(0, 1, WAIT);

    b[1].set_health(200);
    let up = wait_line(&proxy, &[&b[1].addr(), "is up"]);
    assert!(up.contains("[info]"), "{up}");
    let seen: Vec<String> = (0..30).map(|_| peer_of(&get(proxy.port, "/"))).collect();
    assert!(
        seen.iter().any(|p| p == "b"),
        "no traffic after recovery: {seen:?}"
    );
    eprintln!("down: {down}\nup:   {up}");
}

#[test]
fn memcached_servers_are_probed_with_version() {
    if skip_on_nginx() {
        return;
    }
    let mut mc = Memcached::start();
    mc.set("/k", 0, b"from memcached");
    // Accepts connections but speaks HTTP, not memcached: a connect check would pass it.
    let impostor = Backend::start("impostor");
    let body = format!(
        "upstream mc {{
    server 127.0.0.1:{};
    server {};
    health_check interval=200ms fails=1 passes=1;
}}
server {{
    listen 127.0.0.1:{{PORT}};
    location / {{
        set $memcached_key $uri;
        memcached_pass mc;
    }}
}}",
        mc.port,
        impostor.addr()
    );
    let proxy = start_full(&body, &[]);
    let down = wait_line(&proxy, &[&impostor.addr(), "is down"]);
    assert!(down.contains("memcached"), "{down}");
    for _ in 0..20 {
        let r = get(proxy.port, "/k");
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_eq!(r.text(), "from memcached");
    }
    assert_eq!(impostor.stats().hits, 0);
    // memcached itself stops: taken out too (all down → 502), back when it returns.
    let port = mc.port;
    mc.stop();
    wait_line(&proxy, &[&format!("127.0.0.1:{port}"), "is down"]);
    assert_eq!(get(proxy.port, "/k").status, 502);
    let mc = Memcached::start_on(port);
    mc.set("/k", 0, b"back");
    wait_line(&proxy, &[&format!("127.0.0.1:{port}"), "is up"]);
    let r = get(proxy.port, "/k");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "back"),
        "{}",
        r.describe()
    );
}

#[test]
fn php_fpm_is_probed_on_its_ping_path() {
    if skip_on_nginx() {
        return;
    }
    let fpm = PhpFpm::start_tcp("ping.path = /ping\nping.response = pong\n");
    let impostor = Backend::start("impostor");
    let root = manifest_dir().join("tests/peers/ups_php");
    let body = format!(
        "match pong {{
    status 200;
    body ~ \"^pong\";
}}
upstream php {{
    server {fpm};
    server {imp};
    health_check interval=200ms fails=1 passes=1 uri=/ping match=pong;
}}
upstream php_wrong_uri {{
    server {fpm};
    health_check interval=200ms uri=/not-the-ping-path;
}}
server {{
    listen 127.0.0.1:{{PORT}};
    root {root};
    location ~ \\.php$ {{
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_pass php;
    }}
    location /wrong/ {{
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME {root}/slow.php;
        fastcgi_pass php_wrong_uri;
    }}
}}",
        fpm = fpm.target(),
        imp = impostor.addr(),
        root = root.display()
    );
    let proxy = start_full(&body, &[]);
    // The impostor fails the FastCGI probe; php-fpm answers "pong" on its ping path.
    let down = wait_line(&proxy, &[&impostor.addr(), "is down"]);
    assert!(down.contains("fastcgi probe"), "{down}");
    for _ in 0..10 {
        let r = get(proxy.port, "/slow.php?ms=1");
        assert_eq!(r.status, 200, "{}", r.describe());
    }
    assert_eq!(impostor.stats().hits, 0);
    // The same php-fpm probed on a path that is not ping.path answers 404/403: out.
    let wrong = wait_line(&proxy, &[&fpm.target(), "php_wrong_uri", "is down"]);
    assert!(wrong.contains("status 4"), "{wrong}");
    assert_eq!(get(proxy.port, "/wrong/x").status, 502);
    let log = proxy.error_log();
    assert!(
        !log.lines().any(|l| l.contains("upstream \"php\"")
            && l.contains(&fpm.target())
            && l.contains("is down")),
        "php-fpm failed its ping probe:\n{log}"
    );
}

#[test]
fn uwsgi_and_scgi_servers_are_probed_in_their_protocol() {
    if skip_on_nginx() {
        return;
    }
    use uwsgi_kit::{Protocol, Uwsgi};
    let uw = Uwsgi::start(Protocol::Uwsgi, false);
    let sc = Uwsgi::start(Protocol::Scgi, false);
    let impostor = Backend::start("impostor");
    let body = format!(
        "upstream wsgi {{
    server {uw};
    server {imp};
    health_check interval=200ms fails=1 passes=1 uri=/;
}}
upstream wsgi_503 {{
    server {uw};
    health_check interval=200ms uri=/status?code=503;
}}
upstream scgi_app {{
    server {sc};
    server {imp};
    health_check interval=200ms fails=1 passes=1 uri=/;
}}
server {{
    listen 127.0.0.1:{{PORT}};
    location / {{
        include uwsgi_params;
        uwsgi_pass wsgi;
    }}
    location /bad/ {{
        include uwsgi_params;
        uwsgi_pass wsgi_503;
    }}
    location /s/ {{
        include scgi_params;
        scgi_pass scgi_app;
    }}
}}",
        uw = uw.target(),
        sc = sc.target(),
        imp = impostor.addr()
    );
    let proxy = start_full(&body, &[]);
    let imp = impostor.addr();
    let down = wait_line(&proxy, &[&imp, "upstream \"wsgi\"", "is down"]);
    assert!(down.contains("uwsgi probe"), "{down}");
    let down = wait_line(&proxy, &[&imp, "upstream \"scgi_app\"", "is down"]);
    assert!(down.contains("scgi probe"), "{down}");
    let bad = wait_line(&proxy, &[&uw.target(), "upstream \"wsgi_503\"", "is down"]);
    assert!(bad.contains("status 503"), "{bad}");
    for path in ["/", "/s/x"] {
        for _ in 0..10 {
            let r = get(proxy.port, path);
            assert_eq!(r.status, 200, "{path}: {}", r.describe());
        }
    }
    assert_eq!(get(proxy.port, "/bad/").status, 502);
    assert_eq!(impostor.stats().hits, 0);
    let log = proxy.error_log();
    assert!(
        !log.lines().any(|l| l.contains("is down")
            && (l.contains("upstream \"wsgi\"") || l.contains("upstream \"scgi_app\""))
            && !l.contains(&imp)),
        "uWSGI failed its probe:\n{log}"
    );
}
