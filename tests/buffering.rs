//! Response buffering (NGINX-SEMANTICS §14): big bodies through small buffers, slow clients,
//! and unbuffered streaming of server-sent events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::thread;
use std::time::{Duration, Instant};

/// The guide's "Buffers" excerpt in a server (ports changed).
const SEED_BUFFERS: &str = "server {
    listen 127.0.0.1:{PORT};
    server_name myapp;

location / {
    proxy_buffers 8 2k;
    proxy_buffer_size 2k;
    proxy_pass http://localhost:{BACKEND}/;
}
}
";

const TWENTY_MB: usize = 20 * 1024 * 1024;
const RSS_LIMIT_KB: u64 = 64 * 1024;

/// Polls big.py's /stats until `done` reaches `n`; false after `timeout`.
fn wait_big_done(backend: &Peer, n: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let stats = backend
            .request(get_request("stats", "/stats").as_bytes())
            .text();
        if stats.contains(&format!("done={n}")) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn twenty_mb_through_8x2k_buffers_is_byte_identical_and_rss_stays_small() {
    let backend = Peer::python("big.py", &[]);
    let proxy = Proxy::start(&fill(SEED_BUFFERS, &[("BACKEND", &backend.port)]));
    let r = proxy.get("myapp", &format!("/{TWENTY_MB}"));
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body.len(), TWENTY_MB, "body length");
    assert_eq!(
        big_mismatch(&r.body, TWENTY_MB),
        None,
        "first differing byte"
    );
    let rss = proxy.rss_kb();
    assert!(
        rss.peak_kb < RSS_LIMIT_KB,
        "proxy peak RSS {} KiB ≥ 64 MiB after a 20 MB response through 8×2k buffers",
        rss.peak_kb
    );
}

#[test]
fn slow_client_does_not_hold_the_upstream_and_memory_stays_bounded() {
    // With buffering on, the proxy reads the whole response from the upstream (into its
    // buffers and a temp file) while the client reads nothing; memory does not grow by the
    // size of the response.
    let backend = Peer::python("big.py", &[]);
    let proxy = Proxy::start(&fill(SEED_BUFFERS, &[("BACKEND", &backend.port)]));
    let before = proxy.rss_kb();
    let mut stream = http_stream(
        proxy.port,
        get_request("myapp", &format!("/{TWENTY_MB}")).as_bytes(),
    );
    assert_eq!(stream.head.status, 200, "{}", stream.head.describe());
    assert!(
        wait_big_done(&backend, 1, Duration::from_secs(30)),
        "the backend could not finish sending 20 MB while the client read nothing: \
         the proxy holds the upstream instead of buffering (temp file)"
    );
    let during = proxy.rss_kb();
    let body = stream.read_to_end().expect("read body");
    assert_eq!(body.len(), TWENTY_MB, "body length");
    assert_eq!(big_mismatch(&body, TWENTY_MB), None, "first differing byte");
    let after = proxy.rss_kb();
    assert!(
        after.peak_kb < RSS_LIMIT_KB,
        "peak RSS {} KiB",
        after.peak_kb
    );
    // Far less than the body: the response is not held in memory.
    let growth = after.peak_kb.saturating_sub(before.peak_kb);
    assert!(
        growth < 8 * 1024,
        "peak RSS grew by {growth} KiB for a 20 MiB response (before {before:?}, \
         with the body buffered {during:?}, after {after:?})"
    );
}

fn sse_first_event_before_second(config: &str, sse_args: &[&str]) {
    let backend = Peer::python("sse.py", sse_args);
    let proxy = Proxy::start(&fill(config, &[("BACKEND", &backend.port)]));
    let mut stream = http_stream(proxy.port, get_request("sse.test", "/events").as_bytes());
    stream.set_read_timeout(Duration::from_secs(15));
    assert_eq!(stream.head.status, 200, "{}", stream.head.describe());
    assert_eq!(
        stream.head.header("Content-Type"),
        Some("text/event-stream")
    );
    assert!(
        stream.head.header("X-Accel-Buffering").is_none(),
        "X-Accel-* headers are not passed to the client"
    );

    let first = stream.read_until(b"\n\n").expect("read event one");
    assert_eq!(
        String::from_utf8_lossy(&first),
        "data: one\n\n",
        "event one must arrive alone, before the backend sends event two \
         (\"two (timeout)\" means the proxy held event one until the backend gave up waiting)"
    );
    // Only now may the backend send event two.
    let release = backend.request(get_request("sse", "/release").as_bytes());
    assert_eq!(
        release.text(),
        "released",
        "event two was sent before the test released it"
    );
    let second = stream.read_until(b"\n\n").expect("read event two");
    assert_eq!(String::from_utf8_lossy(&second), "data: two (released)\n\n");
    let rest = stream.read_to_end().expect("read to end");
    assert!(rest.is_empty(), "nothing after event two: {rest:?}");
}

#[test]
fn buffering_off_delivers_the_first_sse_event_before_the_second_is_sent() {
    sse_first_event_before_second(
        "server {
    listen 127.0.0.1:{PORT};
    location / {
        proxy_buffering off;
        proxy_buffer_size 2k;
        proxy_pass http://127.0.0.1:{BACKEND};
    }
}
",
        &[],
    );
}

#[test]
fn x_accel_buffering_no_turns_buffering_off_for_that_response() {
    sse_first_event_before_second(
        "server {
    listen 127.0.0.1:{PORT};
    location / {
        proxy_buffering on;
        proxy_pass http://127.0.0.1:{BACKEND};
    }
}
",
        &["--accel-no"],
    );
}

#[test]
fn twenty_mb_with_buffering_off_is_byte_identical() {
    let backend = Peer::python("big.py", &[]);
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    location / {
        proxy_buffering off;
        proxy_buffer_size 2k;
        proxy_pass http://127.0.0.1:{BACKEND};
    }
}
",
        &[("BACKEND", &backend.port)],
    ));
    let r = proxy.get("big.test", &format!("/{TWENTY_MB}"));
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body.len(), TWENTY_MB);
    assert_eq!(
        big_mismatch(&r.body, TWENTY_MB),
        None,
        "first differing byte"
    );
    let rss = proxy.rss_kb();
    assert!(rss.peak_kb < RSS_LIMIT_KB, "peak RSS {} KiB", rss.peak_kb);
}

/// A plain proxy to the sse.py backend (buffering on, nginx's default).
const PROXY_TO_SSE: &str = "server {
    listen 127.0.0.1:{PORT};
    location / { proxy_pass http://127.0.0.1:{BACKEND}; }
}
";

/// A head the upstream sends alone (its body waits for the test's release), and what
/// the client has of the response before the release: with buffering, nothing (nginx's
/// write filter holds a head under `postpone_output` until body bytes follow); without,
/// the head.
fn head_before_the_body(config: &str, sse_args: &[&str]) -> (Vec<u8>, Vec<u8>) {
    use std::io::{Read, Write};
    let backend = Peer::python("sse.py", sse_args);
    let proxy = Proxy::start(&fill(config, &[("BACKEND", &backend.port)]));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    s.write_all(b"GET /events HTTP/1.1\r\nHost: sse.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_millis(600)))
        .unwrap();
    let mut before = vec![0u8; 4096];
    let n = match s.read(&mut before) {
        Ok(n) => n,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            0
        }
        Err(e) => panic!("reading before the release: {e}"),
    };
    before.truncate(n);
    let release = backend.request(get_request("sse", "/release").as_bytes());
    assert_eq!(
        release.text(),
        "released",
        "the body was sent before the release"
    );
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut after = Vec::new();
    s.read_to_end(&mut after).unwrap();
    (before, after)
}

#[test]
fn a_buffered_head_waits_for_the_first_body_bytes() {
    let (before, after) = head_before_the_body(PROXY_TO_SSE, &["--head-only"]);
    assert!(
        before.is_empty(),
        "nothing before the body, as nginx: {:?}",
        String::from_utf8_lossy(&before)
    );
    let all = String::from_utf8_lossy(&after);
    assert!(
        all.starts_with("HTTP/1.1 200") && all.contains("data: two (released)"),
        "{all}"
    );
}

#[test]
fn an_unbuffered_head_goes_at_once() {
    let (before, after) = head_before_the_body(PROXY_TO_SSE, &["--head-only", "--accel-no"]);
    let head = String::from_utf8_lossy(&before);
    assert!(
        head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"),
        "the head, alone, before the body: {head:?}"
    );
    assert!(
        String::from_utf8_lossy(&after).contains("data: two (released)"),
        "{}",
        String::from_utf8_lossy(&after)
    );
}
