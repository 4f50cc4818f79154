//! Upstream keep-alive connections closed by the peer just as a request arrives (issue
//! 11): what gunicorn, Node.js or php-fpm's `pm.max_requests` do every few seconds in
//! production. nginx (`ngx_http_upstream_next`) makes a request that failed on a cached
//! connection before any response byte again on another connection without using a
//! try, so 40 of 40 GETs answer 200 even with one server; a POST that was sent is not
//! made again unless `non_idempotent` is listed.
//!
//! The closing peer is `tests/peers/close_reused.py`, a relay in front of a real
//! upstream (ups_peer.py over HTTP, php-fpm, memcached) that passes the first request of
//! each connection and closes, without a byte, at the second: deterministic, unlike
//! waiting for a peer's idle timer. The php-fpm test also runs php-fpm itself with
//! `pm.max_requests = 2` behind `fastcgi_keep_conn on`.
//!
//! What the POST gets is compared with the system nginx in the same test (Junction
//! mode), and the whole file runs against nginx with `JUNCTION_TEST_PROXY=nginx`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod upstream_kit;

use common::Memcached;
use common::*;
use upstream_kit::{Backend, Nginx};

/// Sequential GETs per test.
const GETS: usize = 40;

/// `close_reused.py` in front of `target` (`127.0.0.1:PORT`).
fn closing_relay(target: &str) -> Peer {
    Peer::python("close_reused.py", &["--to", target])
}

fn dropped(relay: &Peer) -> usize {
    relay.stderr().lines().filter(|l| *l == "DROP").count()
}

/// The system nginx on the same site text, for a side-by-side answer (in Junction
/// mode; in the reference mode the proxy under test is nginx already).
fn nginx_on(site: &str) -> Option<Nginx> {
    if proxy_kind() == Kind::Nginx {
        return None;
    }
    // Its config lives in a temp dir: the params files are the ones shipped in config/.
    let params = manifest_dir().join("config/fastcgi_params");
    let site = site.replace(
        "include fastcgi_params;",
        &format!("include {};", params.display()),
    );
    let n = Nginx::start(&site);
    assert!(
        n.is_some(),
        "nginx is needed to compare answers (apt-get install -y nginx)"
    );
    n
}

fn request(port: u16, method: &str, path: &str, host: &str) -> Response {
    let body = if method == "POST" { "hello" } else { "" };
    let len = if method == "POST" {
        "Content-Length: 5\r\n"
    } else {
        ""
    };
    http_request(
        port,
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{len}Connection: close\r\n\r\n{body}")
            .as_bytes(),
    )
}

/// `GETS` sequential GETs of `path`: the statuses that were not 200, with their text.
fn get_run(port: u16, path: &str, host: &str, want_body: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for i in 0..GETS {
        let r = request(port, "GET", path, host);
        if r.status != 200 || !r.text().contains(want_body) {
            bad.push(format!("GET {i}: {}", r.describe()));
        }
    }
    bad
}

fn http_site(relay: &Peer) -> String {
    format!(
        "upstream app {{ server 127.0.0.1:{}; keepalive 8; }}
server {{
    listen 127.0.0.1:{{PORT}};
    server_name ups.test;
    location / {{
        proxy_pass http://app;
        proxy_http_version 1.1;
        proxy_set_header Connection \"\";
    }}
}}
",
        relay.port
    )
}

#[test]
fn http_keepalive_closed_by_the_peer_costs_no_get_and_a_post_gets_what_nginx_answers() {
    let app = Backend::start("a");
    let relay = closing_relay(&app.addr());
    let site = http_site(&relay);
    let proxy = Proxy::start(&site);
    let bad = get_run(proxy.port, "/", "ups.test", "");
    assert!(
        bad.is_empty(),
        "{} of {GETS} GETs failed:\n{}",
        bad.len(),
        bad.join("\n")
    );
    // Each GET after the first met a cached connection that the peer closed.
    assert!(
        dropped(&relay) >= GETS - 1,
        "the relay dropped {} requests: the test did not exercise reuse",
        dropped(&relay)
    );
    assert_eq!(
        app.stats().hits,
        GETS as u64,
        "each GET reached the app once"
    );

    // A POST on the (cached, about to be closed) connection: it was sent, so it is not
    // made again without `non_idempotent` (nginx 1.22 answers 502).
    let before = dropped(&relay);
    let r = request(proxy.port, "POST", "/", "ups.test");
    assert_eq!(
        r.status,
        502,
        "POST on a reused connection: {}",
        r.describe()
    );
    assert_eq!(dropped(&relay), before + 1);
    assert_eq!(app.stats().posts, 0, "the POST was not made again");
    drop(proxy);

    if let Some(nginx) = nginx_on(&site) {
        // nginx: warm its cache with a GET, then the same POST.
        let g = request(nginx.port, "GET", "/", "ups.test");
        assert_eq!(g.status, 200, "nginx GET: {}", g.describe());
        let n = request(nginx.port, "POST", "/", "ups.test");
        assert_eq!(
            n.status,
            r.status,
            "nginx answered the POST {}",
            n.describe()
        );
    }

    // With `non_idempotent`, the POST goes again on a fresh connection.
    app.reset();
    let site = site.replace(
        "proxy_http_version 1.1;",
        "proxy_http_version 1.1;\n        proxy_next_upstream error timeout non_idempotent;",
    );
    let proxy = Proxy::start(&site);
    assert_eq!(request(proxy.port, "GET", "/", "ups.test").status, 200);
    let r = request(proxy.port, "POST", "/", "ups.test");
    assert_eq!(r.status, 200, "POST with non_idempotent: {}", r.describe());
    assert_eq!(app.stats().posts, 1);
}

/// The proxy on a PHP site, with the shipped `fastcgi_params` next to it.
fn php_proxy(site: &str) -> Proxy {
    let params = std::fs::read_to_string(manifest_dir().join("config/fastcgi_params"))
        .expect("config/fastcgi_params");
    Proxy::start_files(
        &[("junction.conf", site), ("fastcgi_params", &params)],
        "junction.conf",
    )
}

fn php_site(upstream: &str) -> String {
    format!(
        "upstream php {{ server {upstream}; keepalive 8; }}
server {{
    listen 127.0.0.1:{{PORT}};
    server_name php.test;
    root {root};
    location ~ \\.php$ {{
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_pass php;
        fastcgi_keep_conn on;
    }}
}}
",
        root = manifest_dir().join("tests/peers/php").display()
    )
}

#[test]
fn fastcgi_keep_conn_with_php_fpm_max_requests_costs_no_get() {
    // php-fpm's one child exits after 2 requests, closing its kept connection.
    let fpm = PhpFpm::start_tcp("pm.max_children = 1\npm.max_requests = 2");
    let proxy = php_proxy(&php_site(&fpm.target()));
    let bad = get_run(proxy.port, "/status.php", "php.test", "php says 200");
    assert!(
        bad.is_empty(),
        "{} of {GETS} GETs failed:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn fastcgi_keep_conn_closed_by_the_peer_costs_no_get_and_a_post_gets_what_nginx_answers() {
    let fpm = PhpFpm::start_tcp("");
    let relay = closing_relay(&fpm.target());
    let site = php_site(&format!("127.0.0.1:{}", relay.port));
    let proxy = php_proxy(&site);
    let bad = get_run(proxy.port, "/status.php", "php.test", "php says 200");
    assert!(
        bad.is_empty(),
        "{} of {GETS} GETs failed:\n{}",
        bad.len(),
        bad.join("\n")
    );
    assert!(dropped(&relay) >= GETS - 1, "dropped {}", dropped(&relay));
    let r = request(proxy.port, "POST", "/status.php", "php.test");
    assert_eq!(
        r.status,
        502,
        "POST on a reused connection: {}",
        r.describe()
    );
    drop(proxy);
    if let Some(nginx) = nginx_on(&site) {
        assert_eq!(
            request(nginx.port, "GET", "/status.php", "php.test").status,
            200
        );
        let n = request(nginx.port, "POST", "/status.php", "php.test");
        assert_eq!(
            n.status,
            r.status,
            "nginx answered the POST {}",
            n.describe()
        );
    }
}

#[test]
fn memcached_keepalive_closed_by_the_peer_costs_no_get() {
    let mc = Memcached::start();
    mc.set("/page", 0, b"cached page");
    let relay = closing_relay(&format!("127.0.0.1:{}", mc.port));
    let site = format!(
        "upstream mc {{ server 127.0.0.1:{}; keepalive 8; }}
server {{
    listen 127.0.0.1:{{PORT}};
    server_name mc.test;
    location / {{
        set $memcached_key $uri;
        memcached_pass mc;
    }}
}}
",
        relay.port
    );
    let proxy = Proxy::start(&site);
    let bad = get_run(proxy.port, "/page", "mc.test", "cached page");
    assert!(
        bad.is_empty(),
        "{} of {GETS} GETs failed:\n{}",
        bad.len(),
        bad.join("\n")
    );
    assert!(dropped(&relay) >= GETS - 1, "dropped {}", dropped(&relay));
}
