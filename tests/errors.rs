//! Errors the proxy generates itself (issue 2 §7, NGINX-SEMANTICS §13–14, §24): upstream
//! down/silent/misbehaving, client limits, malformed requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::time::{Duration, Instant};

fn proxy_to(backend_port: u16, extra: &str) -> Proxy {
    Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    server_name err.test;
    {EXTRA}
    location / {
        proxy_pass http://127.0.0.1:{BACKEND};
    }
}
",
        &[("BACKEND", &backend_port), ("EXTRA", &extra)],
    ))
}

/// A generated error page: the status, and the proxy's name in the signature.
fn assert_error_page(r: &Response, status: u16) {
    assert_eq!(r.status, status, "{}", r.describe());
    assert!(
        r.text().contains(&status.to_string()),
        "error page names the status:\n{}",
        r.describe()
    );
    assert!(
        r.text().contains(product()),
        "error page signature names {}:\n{}",
        product(),
        r.describe()
    );
    assert!(
        r.header("Server")
            .unwrap_or_default()
            .starts_with(product()),
        "{}",
        r.describe()
    );
}

/// The error log mentions `needle` (waits a little: logging may be asynchronous).
fn assert_logged(proxy: &Proxy, needle: &str) {
    if let Err(log) = proxy.wait_error_log(needle, Duration::from_secs(5)) {
        panic!("error log does not mention {needle:?}:\n{log}");
    }
}

#[test]
fn backend_down_is_502() {
    let port = closed_port();
    let proxy = proxy_to(port, "");
    let r = proxy.get("err.test", "/");
    assert_error_page(&r, 502);
    // one line naming the upstream that failed
    assert_logged(&proxy, &format!("127.0.0.1:{port}"));
}

#[test]
fn silent_backend_with_read_timeout_1s_is_504_in_about_1s() {
    let backend = Peer::python("silent.py", &[]);
    let proxy = proxy_to(backend.port, "proxy_read_timeout 1s;");
    let start = Instant::now();
    let r = proxy.get("err.test", "/");
    let took = start.elapsed();
    assert_error_page(&r, 504);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "504 after {took:?}, want ~1 s"
    );
    assert_logged(&proxy, &format!("127.0.0.1:{}", backend.port));
}

#[test]
fn read_timeout_is_between_reads_not_for_the_whole_response() {
    // sse.py sends event one at once and event two only when released: a response that
    // takes longer than proxy_read_timeout as a whole is fine while data keeps coming…
    let backend = Peer::python("sse.py", &[]);
    let proxy = proxy_to(backend.port, "proxy_read_timeout 1s; proxy_buffering off;");
    let mut stream = http_stream(proxy.port, get_request("err.test", "/events").as_bytes());
    assert_eq!(stream.head.status, 200);
    let first = stream.read_until(b"\n\n").expect("event one");
    assert_eq!(first, b"data: one\n\n");
    // …but a gap longer than it ends the response: sse.py waits up to 5 s for /release,
    // the proxy gives up after 1 s and closes the connection without event two.
    let start = Instant::now();
    stream.set_read_timeout(Duration::from_secs(10));
    let rest = stream.read_to_end();
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "the proxy should give up after ~1 s of silence, took {took:?}"
    );
    // The chunked response is cut (no final chunk), so the client knows it is incomplete.
    match rest {
        Ok(rest) => panic!("the response ended cleanly after the read timeout: {rest:?}"),
        Err(e) => assert_ne!(
            e.kind(),
            std::io::ErrorKind::WouldBlock,
            "client timed out: {e}"
        ),
    }
}

#[test]
fn body_over_client_max_body_size_is_413() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = proxy_to(backend.port, "client_max_body_size 1m;");
    let body = vec![b'z'; 2 * 1024 * 1024];
    let mut raw = format!(
        "POST /upload HTTP/1.1\r\nHost: err.test\r\nContent-Length: {}\r\n\
         Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    assert_error_page(&proxy.request(&raw), 413);

    // The same body chunked (no Content-Length up front).
    let mut raw = b"POST /upload HTTP/1.1\r\nHost: err.test\r\nTransfer-Encoding: chunked\r\n\
                    Connection: close\r\n\r\n"
        .to_vec();
    for piece in body.chunks(64 * 1024) {
        raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        raw.extend_from_slice(piece);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(proxy.request(&raw).status, 413);

    // Under the limit passes.
    let small = vec![b'z'; 512 * 1024];
    let mut raw = format!(
        "POST /upload HTTP/1.1\r\nHost: err.test\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        small.len()
    )
    .into_bytes();
    raw.extend_from_slice(&small);
    let e = Echo::from_response(&proxy.request(&raw));
    assert_eq!(e.body_len, 512 * 1024);
}

/// Requests nginx rejects with 400.
const MALFORMED: &[&[u8]] = &[
    b"GET / HTTP/1.1 extra\r\nHost: err.test\r\n\r\n",
    b"GET /a b HTTP/1.1\r\nHost: err.test\r\n\r\n",
    b"G@T / HTTP/1.1\r\nHost: err.test\r\n\r\n",
    b"GET noslash HTTP/1.1\r\nHost: err.test\r\n\r\n",
    b"GET / FOO/1.1\r\nHost: err.test\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    // HTTP/1.1 needs a Host, and only one
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: bad/host\r\n\r\n",
    // body framing
    b"POST / HTTP/1.1\r\nHost: err.test\r\nContent-Length: abc\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: err.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
];

/// Content-Length together with Transfer-Encoding (request smuggling material):
/// 400 as nginx, and the request pipelined behind it is never answered.
#[test]
fn content_length_with_transfer_encoding_is_not_smuggled() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = proxy_to(backend.port, "");
    let raw = b"POST / HTTP/1.1\r\nHost: err.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: err.test\r\n\r\n";
    let all = raw_exchange(proxy.port, raw);
    assert!(
        all.starts_with(b"HTTP/1.1 400 "),
        "{}",
        String::from_utf8_lossy(&all)
    );
    assert_eq!(
        all.windows(9).filter(|w| w == b"HTTP/1.1 ").count(),
        1,
        "one response only: {}",
        String::from_utf8_lossy(&all)
    );
}

#[test]
fn malformed_requests_are_400() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = proxy_to(backend.port, "");
    let mut failures = Vec::new();
    for raw in MALFORMED {
        let r = proxy.request(raw);
        if r.status != 400 {
            failures.push(format!("{:?} → {}", String::from_utf8_lossy(raw), r.status));
        }
    }
    assert_table("malformed request", &failures, MALFORMED.len());
    // The connection-level error page carries the signature too.
    assert_error_page(&proxy.request(MALFORMED[0]), 400);
}

#[test]
fn oversized_request_line_is_414_and_oversized_header_is_400() {
    // large_client_header_buffers default 4 8k
    let backend = Peer::python("echo.py", &[]);
    let proxy = proxy_to(backend.port, "");
    let long_uri = format!("/{}", "u".repeat(9000));
    let r = proxy.get("err.test", &long_uri);
    assert_eq!(r.status, 414, "{}", r.describe());
    let raw = format!(
        "GET / HTTP/1.1\r\nHost: err.test\r\nX-Long: {}\r\nConnection: close\r\n\r\n",
        "h".repeat(9000)
    );
    let r = proxy.request(raw.as_bytes());
    assert_eq!(r.status, 400, "{}", r.describe());
    // just under the limit is fine
    let e = Echo::from_response(&proxy.get("err.test", &format!("/{}", "u".repeat(7000))));
    assert_eq!(e.path.len(), 7001);
}

#[test]
fn response_header_bigger_than_proxy_buffer_size_is_502() {
    let backend = Peer::python("bigheader.py", &[]);
    let proxy = proxy_to(backend.port, "proxy_buffer_size 2k;");
    let r = proxy.get("err.test", "/");
    assert_error_page(&r, 502);
    assert_logged(&proxy, "too big header");
}

#[test]
fn response_header_within_proxy_buffer_size_passes() {
    // Same 3 KiB header, buffer 8k: the limit is the configured size, not a constant.
    let backend = Peer::python("bigheader.py", &[]);
    let proxy = proxy_to(backend.port, "proxy_buffer_size 8k;");
    let r = proxy.get("err.test", "/");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.header("X-Big").map(str::len), Some(3072));
    assert_eq!(r.body, b"small body\n");
}

#[test]
fn upstream_closing_or_resetting_before_a_response_is_502() {
    for mode in ["close", "reset"] {
        let backend = Peer::python("garbage.py", &["--mode", mode]);
        let proxy = proxy_to(backend.port, "");
        let r = proxy.get("err.test", "/");
        assert_error_page(&r, 502);
        assert_logged(&proxy, &format!("127.0.0.1:{}", backend.port));
    }
}

#[test]
fn upstream_sending_garbage_is_502() {
    let backend = Peer::python("garbage.py", &["--mode", "garbage"]);
    let proxy = proxy_to(backend.port, "");
    match proxy_kind() {
        // Issue 2 §7: upstream garbage → 502.
        Kind::Junction => assert_error_page(&proxy.get("err.test", "/"), 502),
        // nginx differs: a reply that does not start with a status line is taken as an
        // HTTP/0.9 response ("upstream sent no valid HTTP/1.0 header") and relayed to the
        // client as is, without even a status line.
        Kind::Nginx => {
            let raw = raw_exchange(proxy.port, get_request("err.test", "/").as_bytes());
            assert!(raw.starts_with(b"\x00\x01this is not HTTP"), "{raw:?}");
            assert_logged(&proxy, "no valid HTTP");
        }
    }
}

#[test]
fn server_tokens_off_drops_the_version() {
    let port = closed_port();
    let proxy = proxy_to(port, "server_tokens off;");
    let r = proxy.get("err.test", "/");
    assert_error_page(&r, 502);
    assert_eq!(r.header("Server"), Some(product()), "{}", r.describe());
    assert!(
        !r.text().contains(&format!("{}/", product())),
        "no version in the signature:\n{}",
        r.describe()
    );

    let proxy = proxy_to(port, "");
    let r = proxy.get("err.test", "/");
    let server = r.header("Server").unwrap_or_default();
    assert!(
        server.starts_with(&format!("{}/", product())),
        "server_tokens on (default) shows the version: {server:?}"
    );
}
