//! `limit_req`, `limit_conn` and `limit_rate`, black-box and checked against nginx
//! (`JUNCTION_TEST_PROXY=nginx`): a burst of 30 requests against `rate=10r/s
//! burst=5` (with `nodelay`, with `delay=3`, and queued); two keys limited apart,
//! dry run, `limit_req_status` and several limits in one location (at 1r/m, so no
//! request leaks out of a bucket during the test); the smallest zone
//! under 50,000 keys; a second concurrent download refused by `limit_conn 1`; a 1 MB
//! response at `limit_rate 100k`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const SITE: &str = r#"
limit_req_zone $binary_remote_addr zone=nodelay:1m rate=10r/s;
limit_req_zone $binary_remote_addr zone=delay3:1m rate=10r/s;
limit_req_zone $binary_remote_addr zone=queue:1m rate=10r/s;
limit_req_zone $http_x_client zone=bykey:1m rate=1r/m;
limit_req_zone $binary_remote_addr zone=dry:1m rate=1r/m;
limit_req_zone $binary_remote_addr zone=s429:1m rate=1r/m;
limit_req_zone $binary_remote_addr zone=wide:1m rate=1r/m;
limit_req_zone $http_x_client zone=narrow:1m rate=1r/m;
limit_req_zone $http_x_key zone=small:32k rate=1r/s;
limit_conn_zone $binary_remote_addr zone=addr:1m;

server {
    listen {PORT};
    server_name _;
    root {DIR}/www;
    add_header X-Limit-Req "$limit_req_status" always;
    add_header X-Limit-Conn "$limit_conn_status" always;

    location /nodelay/ { limit_req zone=nodelay burst=5 nodelay; }
    location /delay/ { limit_req zone=delay3 burst=5 delay=3; }
    location /queue/ { limit_req zone=queue burst=5; }
    location /keys/ { limit_req zone=bykey burst=2 nodelay; }
    location /dry/ { limit_req zone=dry burst=1 nodelay; limit_req_dry_run on; }
    location /s429/ { limit_req zone=s429 nodelay; limit_req_status 429; }
    location /two/ {
        limit_req zone=wide burst=8 nodelay;
        limit_req zone=narrow burst=1 nodelay;
    }
    location /small/ { limit_req zone=small; access_log off; }
    location /download/ { limit_conn addr 1; limit_rate 100k; }
    location /after/ { limit_rate 10k; limit_rate_after 1m; }
    location /setrate/ { alias {DIR}/www/after/; limit_rate 10k; set $limit_rate 4m; }
}
"#;

const FILES: [&str; 8] = [
    "nodelay/f",
    "delay/f",
    "queue/f",
    "keys/f",
    "dry/f",
    "s429/f",
    "two/f",
    "small/f",
];

fn start() -> Proxy {
    let big: String = (0..1024 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut files: Vec<(String, String)> = FILES
        .iter()
        .map(|p| (format!("www/{p}"), "ok\n".to_string()))
        .collect();
    files.push(("www/download/big".into(), big.clone()));
    files.push(("www/after/big".into(), big));
    // One worker, as the reference nginx runs: a burst checked against two zones in a
    // row is then counted the same way every time (with two workers racing, one
    // request's rollback of the first zone can make a concurrent one refuse).
    let main = "worker_processes 1;\nevents {}\nhttp {\n    include site.conf;\n}\n";
    let mut list: Vec<(&str, &str)> = vec![("nginx.conf", main), ("site.conf", SITE)];
    for (k, v) in &files {
        list.push((k, v));
    }
    Proxy::start_files(&list, "nginx.conf")
}

/// One response of a burst: status, `X-Limit-Req`, and how long it took.
#[derive(Debug, Clone)]
struct Hit {
    status: u16,
    limit: String,
    took: Duration,
    sent: Instant,
    done: Instant,
}

/// The tests of this file run one at a time: the 50,000-key test and the 10 s
/// download would otherwise share the CPU with the burst test's timing.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Requests that may have leaked out of a 10r/s bucket while the burst was being
/// looked up (one per 100 ms between the first send and the last refusal): 0 unless
/// the machine is so loaded that the burst took longer than 100 ms to arrive.
fn leaked(hits: &[Hit]) -> usize {
    let first = hits.iter().map(|h| h.sent).min();
    let last = hits
        .iter()
        .filter(|h| h.status != 200)
        .map(|h| h.done)
        .max();
    match (first, last) {
        (Some(f), Some(l)) => (l.saturating_duration_since(f).as_millis() / 100) as usize,
        _ => 0,
    }
}

/// `n_ok` responses 200 (plus at most what leaked), the rest 503.
fn assert_burst(hits: &[Hit], n_ok: usize) -> usize {
    let extra = leaked(hits);
    let ok = count(hits, 200);
    assert!(
        ok >= n_ok && ok <= n_ok + extra && ok + count(hits, 503) == hits.len(),
        "{ok} passed (want {n_ok}, +{extra} leaked): {hits:#?}"
    );
    if extra > 0 {
        eprintln!("burst took over 100 ms to arrive: {extra} request(s) may leak");
    }
    extra
}

/// `n` requests sent at the same moment, each on its own connection.
fn burst(port: u16, path: &str, n: usize, headers: &str) -> Vec<Hit> {
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let barrier = barrier.clone();
            let req =
                format!("GET {path} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n");
            thread::spawn(move || {
                let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
                s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                barrier.wait();
                let t = Instant::now();
                s.write_all(req.as_bytes()).unwrap();
                let mut out = Vec::new();
                s.read_to_end(&mut out).unwrap();
                let done = Instant::now();
                let took = done - t;
                let text = String::from_utf8_lossy(&out).into_owned();
                let status = text
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let limit = text
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("X-Limit-Req: ")
                            .or_else(|| l.strip_prefix("x-limit-req: "))
                    })
                    .unwrap_or("")
                    .trim()
                    .to_string();
                Hit {
                    status,
                    limit,
                    took,
                    sent: t,
                    done,
                }
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn count(hits: &[Hit], status: u16) -> usize {
    hits.iter().filter(|h| h.status == status).count()
}

fn slow(hits: &[Hit], status: u16, at_least: Duration) -> usize {
    hits.iter()
        .filter(|h| h.status == status && h.took >= at_least)
        .count()
}

#[test]
fn limit_req_burst_counts_delays_keys_and_dry_run() {
    let _serial = serial();
    let proxy = start();
    let p = proxy.port;

    // nodelay: the first request and the burst of 5 at once, the other 24 refused
    let hits = burst(p, "/nodelay/f", 30, "");
    assert_burst(&hits, 6);
    assert_eq!(slow(&hits, 200, Duration::from_millis(80)), 0, "{hits:#?}");
    assert!(hits.iter().all(|h| h.limit
        == if h.status == 200 {
            "PASSED"
        } else {
            "REJECTED"
        }));

    // delay=3: three of the burst at once, the 4th and 5th after 100 and 200 ms
    let hits = burst(p, "/delay/f", 30, "");
    if assert_burst(&hits, 6) == 0 {
        assert_eq!(slow(&hits, 200, Duration::from_millis(80)), 2, "{hits:#?}");
        assert_eq!(
            hits.iter().filter(|h| h.limit == "DELAYED").count(),
            2,
            "{hits:#?}"
        );
    }

    // no nodelay: the burst is queued, 100 ms apart
    let hits = burst(p, "/queue/f", 30, "");
    if assert_burst(&hits, 6) == 0 {
        assert_eq!(slow(&hits, 200, Duration::from_millis(80)), 5, "{hits:#?}");
        assert_eq!(slow(&hits, 200, Duration::from_millis(450)), 1, "{hits:#?}");
    }

    // two keys are two buckets
    let a = burst(p, "/keys/f", 10, "X-Client: a\r\n");
    let b = burst(p, "/keys/f", 10, "X-Client: b\r\n");
    assert_eq!((count(&a, 200), count(&b, 200)), (3, 3), "{a:#?} {b:#?}");
    // no key (empty value): not limited
    let none = burst(p, "/keys/f", 10, "");
    assert_eq!(count(&none, 200), 10, "{none:#?}");

    // dry run: everyone passes, the variable tells
    let hits = burst(p, "/dry/f", 10, "");
    assert_eq!(count(&hits, 200), 10, "{hits:#?}");
    assert_eq!(
        hits.iter()
            .filter(|h| h.limit == "REJECTED_DRY_RUN")
            .count(),
        8,
        "{hits:#?}"
    );

    // limit_req_status
    let hits = burst(p, "/s429/f", 5, "");
    assert_eq!((count(&hits, 200), count(&hits, 429)), (1, 4), "{hits:#?}");

    // two limits in one location: the stricter one decides for its key
    let hits = burst(p, "/two/f", 12, "X-Client: c\r\n");
    assert_eq!(count(&hits, 200), 2, "{hits:#?}");
    let hits = burst(p, "/two/f", 12, "X-Client: d\r\n");
    assert_eq!(count(&hits, 200), 2, "{hits:#?}");
    // without X-Client only the wide limit applies: 9 - 4 already used
    let hits = burst(p, "/two/f", 12, "");
    assert_eq!(count(&hits, 200), 5, "{hits:#?}");

    let log = proxy
        .wait_error_log("by zone \"nodelay\"", Duration::from_secs(5))
        .unwrap_or_else(|l| panic!("{l}"));
    assert!(log.contains("limiting requests, excess: "), "{log}");
    assert!(log.contains("by zone \"delay3\""), "{log}");
    if proxy_kind() == Kind::Nginx {
        // a warn-level line: the reference nginx logs at info, Junction's test log
        // keeps nginx's default level (error)
        assert!(log.contains("delaying request, excess: "), "{log}");
    }
    assert!(log.contains("limiting requests, dry run, excess:"), "{log}");
}

/// Reads `n` pipelined responses (each ends with the `ok\n` body or an error page).
fn read_statuses(s: &mut TcpStream, n: usize, buf: &mut Vec<u8>) -> Vec<u16> {
    let mut statuses = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        // complete responses: head + Content-Length body
        while let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() < end + 4 + len {
                break;
            }
            statuses.push(
                head.split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            );
            buf.drain(..end + 4 + len);
        }
        if statuses.len() >= n {
            return statuses;
        }
        let k = s.read(&mut chunk).expect("read");
        assert!(
            k > 0,
            "connection closed after {} responses",
            statuses.len()
        );
        buf.extend_from_slice(&chunk[..k]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn smallest_zone_under_50000_keys_keeps_serving_in_bounded_memory() {
    let _serial = serial();
    let proxy = start();
    let mut statuses = Vec::new();
    let mut mid = None;
    const BATCH: usize = 100;
    for b in 0..500 {
        // a connection per batch (nginx closes one after `keepalive_requests` 1000)
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port)).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut buf = Vec::new();
        let mut req = String::new();
        for i in 0..BATCH {
            let key = b * BATCH + i;
            req.push_str(&format!(
                "GET /small/f HTTP/1.1\r\nHost: t\r\nX-Key: key-{key}\r\n\r\n"
            ));
        }
        s.write_all(req.as_bytes()).unwrap();
        statuses.extend(read_statuses(&mut s, BATCH, &mut buf));
        if b == 49 {
            mid = Some(proxy.rss_kb().current_kb);
        }
    }
    let end = proxy.rss_kb().current_kb;
    let refused = statuses.iter().filter(|s| **s != 200).count();
    assert_eq!(statuses.len(), 50_000);
    assert_eq!(
        refused, 0,
        "every new key evicts the least recently used one"
    );
    let mid = mid.unwrap();
    assert!(
        end < mid + 2048,
        "RSS grew from {mid} KiB after 5,000 keys to {end} KiB after 50,000"
    );
    // the same key again right away: its state was evicted long ago, so it passes;
    // twice in a row: the second is refused (rate 1r/s, no burst)
    let r = proxy
        .request(b"GET /small/f HTTP/1.1\r\nHost: t\r\nX-Key: key-0\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    let r = proxy
        .request(b"GET /small/f HTTP/1.1\r\nHost: t\r\nX-Key: key-0\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 503);
}

#[test]
fn limit_conn_refuses_a_second_download_and_limit_rate_paces_the_first() {
    let _serial = serial();
    let proxy = start();
    let req = b"GET /download/big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let t = Instant::now();
    let mut first = http_stream(proxy.port, req);
    assert_eq!(first.head.status, 200);
    assert_eq!(first.head.header("X-Limit-Conn"), Some("PASSED"));
    let second = proxy.request(req);
    assert_eq!(second.status, 503, "{}", second.describe());
    assert_eq!(second.header("X-Limit-Conn"), Some("REJECTED"));
    let body = first.read_to_end().unwrap();
    let took = t.elapsed();
    eprintln!("1 MB at limit_rate 100k: {took:?}");
    assert_eq!(body.len(), 1024 * 1024);
    assert!(
        took >= Duration::from_secs(8) && took <= Duration::from_secs(12),
        "1 MB at limit_rate 100k took {took:?} (want about 10 s)"
    );
    // the count was given back with the end of the first response
    let third =
        proxy.request(b"HEAD /download/big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(third.status, 200, "{}", third.describe());
    let log = proxy.error_log();
    assert!(
        log.contains("limiting connections by zone \"addr\""),
        "{log}"
    );

    // limit_rate_after 1m: the first megabyte is not paced
    let t = Instant::now();
    let r = proxy.request(b"GET /after/big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(r.body.len(), 1024 * 1024);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // `set $limit_rate` for one request wins over `limit_rate`
    let t = Instant::now();
    let r = proxy.request(b"GET /setrate/big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(r.body.len(), 1024 * 1024);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

/// A reload that keeps a zone keeps its states (nginx keeps the shared memory zone).
#[test]
fn a_reload_keeps_the_limit_req_states() {
    let _serial = serial();
    if product() == "nginx" {
        return; // the reference run has no master process to reload
    }
    let conf = |port: &str, generation: &str| {
        format!(
            "limit_req_zone $binary_remote_addr zone=kept:1m rate=1r/m;\n\
             server {{\n    listen 127.0.0.1:{port};\n    root {{DIR}}/www;\n    \
             add_header X-Gen {generation} always;\n    \
             location / {{ limit_req zone=kept; }}\n}}\n"
        )
    };
    let proxy = Proxy::start_files(
        &[("site.conf", &conf("{PORT}", "one")), ("www/f", "ok\n")],
        "site.conf",
    );
    let get = || proxy.get("t", "/f");
    assert_eq!(get().status, 200);
    assert_eq!(get().status, 503);
    let text = conf(&proxy.port.to_string(), "two").replace("{DIR}", proxy.dir().to_str().unwrap());
    std::fs::write(proxy.dir().join("site.conf"), text).unwrap();
    proxy.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get();
        if r.header("X-Gen") == Some("two") {
            assert_eq!(
                r.status, 503,
                "the state of the zone was lost by the reload"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the reload never took effect");
        thread::sleep(Duration::from_millis(20));
    }
}

/// limit_conn holds its count for a WebSocket tunnel's whole life, as nginx does.
#[test]
fn limit_conn_counts_a_websocket_tunnel_until_it_closes() {
    let _serial = serial();
    let backend = Peer::python("echo.py", &[]);
    let proxy = Proxy::start(&fill(
        "limit_conn_zone $binary_remote_addr zone=ws:1m;
server {
    listen 127.0.0.1:{PORT};
    server_name _;
    location / {
        limit_conn ws 1;
        proxy_pass http://127.0.0.1:{BACKEND};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection \"upgrade\";
        proxy_read_timeout 10s;
    }
}
",
        &[("BACKEND", &backend.port)],
    ));
    let mut ws = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port)).unwrap();
    ws.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    ws.write_all(
        b"GET /switch HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(ws.read(&mut b).unwrap(), 1, "closed inside the head");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // bytes flow, and meanwhile a second request from the same address is refused
    ws.write_all(b"ping").unwrap();
    let mut echo = [0u8; 4];
    ws.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"ping");
    let r = proxy.get("t", "/x");
    assert_eq!(r.status, 503, "{}", r.describe());
    // the tunnel closes: the count is given back
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = proxy.get("t", "/x");
        if r.status != 503 {
            break;
        }
        assert!(Instant::now() < deadline, "the count was never given back");
        thread::sleep(Duration::from_millis(50));
    }
}
