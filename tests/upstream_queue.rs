//! `max_conns` with a queue (issue 7, beyond nginx OSS) in front of a real php-fpm whose
//! pool has `pm.max_children = 2`: with `server … max_conns=2; queue 100 timeout=10s;`,
//! 40 concurrent slow requests all get 200 and php-fpm never has more than 2 at once;
//! without a queue the surplus is nginx's 502 ("no live upstreams"), and past a small
//! queue it is 503. Between Junction and php-fpm sits [`FcgiGauge`], which counts the
//! FastCGI requests in flight exactly; the PHP script logs its own start and end too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod upstream_kit;

use common::*;
use std::net::SocketAddr;
use std::time::Instant;
use upstream_kit::*;

fn skip_on_nginx() -> bool {
    if proxy_kind() == Kind::Nginx {
        eprintln!("queue is beyond nginx OSS: skipped on nginx");
        return true;
    }
    false
}

/// The PHP location in front of `upstream php { {SERVERS} }`.
fn php_site(servers: &str) -> String {
    let root = manifest_dir().join("tests/peers/ups_php");
    format!(
        "upstream php {{
    {servers}
}}
server {{
    listen 127.0.0.1:{{PORT}};
    server_name php.test;
    root {};
    location ~ \\.php$ {{
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_pass php;
    }}
}}
",
        root.display()
    )
}

/// The most `start`/`end` intervals of the PHP log open at once.
fn php_overlap(log: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut events: Vec<(f64, i32)> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let kind = w.next()?;
            let t: f64 = w.next()?.parse().ok()?;
            Some((t, if kind == "start" { 1 } else { -1 }))
        })
        .collect();
    // At equal times an end comes first.
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        max = max.max(now);
    }
    max as usize
}

fn fpm() -> PhpFpm {
    PhpFpm::start_tcp("pm.max_children = 2\n")
}

#[test]
fn forty_concurrent_slow_requests_queue_for_two_php_children_and_all_succeed() {
    if skip_on_nginx() {
        return;
    }
    let fpm = fpm();
    let gauge = FcgiGauge::start(SocketAddr::from(([127, 0, 0, 1], fpm.port())));
    let proxy = Proxy::start(&php_site(&format!(
        "server 127.0.0.1:{} max_conns=2;\n    queue 100 timeout=10s;",
        gauge.port
    )));
    let log = proxy.dir().join("php-times.log");
    let path = format!("/slow.php?ms=200&log={}", log.display());
    let port = proxy.port;
    let started = Instant::now();
    let statuses = concurrently(40, move |_| get(port, &path).status);
    let took = started.elapsed();
    let bad: Vec<&u16> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(
        bad.is_empty(),
        "non-200 answers: {bad:?} of {statuses:?}\n{}",
        proxy.error_log()
    );
    let in_php = php_overlap(&log);
    eprintln!(
        "40 × 200 ms through max_conns=2 + queue: all 200 in {took:?}; FastCGI requests in \
         flight at most {} (gauge), PHP scripts running at once at most {in_php}",
        gauge.max()
    );
    assert!(
        gauge.max() <= 2,
        "{} FastCGI requests in flight at once",
        gauge.max()
    );
    assert_eq!(gauge.max(), 2, "the two children were not both used");
    assert!(in_php <= 2, "{in_php} PHP scripts ran at once");
    // 40 requests of 200 ms on two children: about 4 s, not 40 × 200 ms.
    assert!(took.as_secs_f64() < 9.0, "took {took:?}");
}

#[test]
fn without_a_queue_the_surplus_is_502_and_past_a_full_queue_503() {
    if skip_on_nginx() {
        return;
    }
    let fpm = fpm();
    let target = format!("127.0.0.1:{}", fpm.port());
    let run = |servers: String| -> Vec<u16> {
        let proxy = Proxy::start(&php_site(&servers));
        let port = proxy.port;
        concurrently(20, move |_| get(port, "/slow.php?ms=300").status)
    };
    // nginx's behaviour: every server at max_conns → "no live upstreams" → 502.
    let plain = run(format!("server {target} max_conns=2;"));
    let count = |v: &[u16], s: u16| v.iter().filter(|x| **x == s).count();
    eprintln!(
        "no queue: {} × 200, {} × 502",
        count(&plain, 200),
        count(&plain, 502)
    );
    assert!(count(&plain, 200) >= 2, "{plain:?}");
    assert!(count(&plain, 502) >= 1, "{plain:?}");
    assert_eq!(count(&plain, 200) + count(&plain, 502), 20, "{plain:?}");
    // A queue of 3 that waits 200 ms: the rest are 503, none 502.
    let small = run(format!(
        "server {target} max_conns=2;\n    queue 3 timeout=200ms;"
    ));
    eprintln!(
        "queue 3 timeout=200ms: {} × 200, {} × 503",
        count(&small, 200),
        count(&small, 503)
    );
    assert_eq!(count(&small, 502), 0, "{small:?}");
    assert!(count(&small, 503) >= 1, "{small:?}");
    assert!(count(&small, 200) >= 2, "{small:?}");
    assert_eq!(count(&small, 200) + count(&small, 503), 20, "{small:?}");
}

/// A client that goes away while the body is relayed (the upstream silent meanwhile)
/// releases its `max_conns` slot at once, buffered or not: the next request is served
/// by the only server instead of waiting for the upstream to finish.
#[test]
fn a_client_abort_during_the_body_releases_the_connection_slot() {
    if skip_on_nginx() {
        return;
    }
    let b = Backend::start("a");
    for buffering in ["on", "off"] {
        let proxy = Proxy::start(&site(
            &upstream_block("app", &[(&b, "max_conns=1")], ""),
            "app",
            &format!("proxy_buffering {buffering};"),
        ));
        // The head and half the body arrive, then the upstream is silent for 20 s.
        let mut s = http_stream(
            proxy.port,
            b"GET /big?stall=20000 HTTP/1.1\r\nHost: ups.test\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(s.head.status, 200);
        let _ = s.read_some();
        drop(s);
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let r = get(proxy.port, "/");
            if r.status == 200 {
                break;
            }
            assert_eq!(r.status, 502, "{}", r.describe());
            assert!(
                Instant::now() < deadline,
                "proxy_buffering {buffering}: the slot is still held 5 s after the client left"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// A client that goes away while the upstream is still working on the head releases the
/// slot too (nginx's broken-connection check).
#[test]
fn a_client_abort_before_the_head_releases_the_connection_slot() {
    if skip_on_nginx() {
        return;
    }
    let b = Backend::start("a");
    let proxy = Proxy::start(&site(
        &upstream_block("app", &[(&b, "max_conns=1")], ""),
        "app",
        "",
    ));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    std::io::Write::write_all(
        &mut s,
        b"GET /slow?sleep=20000 HTTP/1.1\r\nHost: ups.test\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    // The request reached the backend (and holds the only slot).
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    while b.stats().hits == 0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the backend"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(get(proxy.port, "/").status, 502, "max_conns=1 is taken");
    drop(s);
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = get(proxy.port, "/");
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot is still held 5 s after the client left: {}",
            r.describe()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
