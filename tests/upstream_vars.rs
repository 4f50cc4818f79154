//! The upstream variables in an access log line, with the values nginx writes: times as
//! `S.mmm` (`-` for a phase that did not happen), lengths in bytes, comma lists over
//! retries; `$upstream_cookie_NAME`; `$upstream_cache_status` empty (`-`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::time::{Duration, Instant};

const FORMAT: &str = "log_format up \"$uri|$upstream_addr|$upstream_status|$upstream_connect_time|$upstream_header_time|$upstream_response_time|$upstream_response_length|$upstream_bytes_sent|$upstream_cache_status|$upstream_cookie_sid\";\n";

fn wait_line(path: &std::path::Path, prefix: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.starts_with(prefix)) {
            return l.split('|').map(str::to_string).collect();
        }
        assert!(Instant::now() < deadline, "no line {prefix:?} in {text:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_time(s: &str) -> bool {
    let Some((a, b)) = s.split_once('.') else {
        return false;
    };
    !a.is_empty()
        && a.bytes().all(|c| c.is_ascii_digit())
        && b.len() == 3
        && b.bytes().all(|c| c.is_ascii_digit())
}

/// The size of the request as the echo peer received it.
fn request_size(e: &Echo) -> u64 {
    let mut n = format!("{} {} {}\r\n", e.method, e.path, e.version).len();
    for (k, v) in &e.headers {
        n += k.len() + 2 + v.len() + 2;
    }
    (n + 2) as u64 + e.body_len
}

#[test]
fn upstream_variables_in_the_access_log() {
    let echo = Peer::python("echo.py", &[]);
    let respond = Peer::python("respond.py", &[]);
    let dead = closed_port();
    let proxy = Proxy::start(&format!(
        "{FORMAT}{}",
        fill(
            "upstream two {
    server 127.0.0.1:{DEAD};
    server 127.0.0.1:{E};
}
server {
    listen 127.0.0.1:{PORT};
    access_log {DIR}/up.log up;
    location /one/ { proxy_pass http://127.0.0.1:{E}; }
    location /cookie/ { proxy_pass http://127.0.0.1:{R}/; }
    location /retry/ { proxy_pass http://two; }
    location /static/ { return 200 static; }
    location /fallback/ { proxy_pass http://127.0.0.1:{DEAD}; error_page 502 = @echo; }
    location @echo { proxy_pass http://127.0.0.1:{E}; }
}
",
            &[("E", &echo.port), ("R", &respond.port), ("DEAD", &dead)],
        )
    ));
    // One upstream: every phase happened.
    let r = proxy.request(
        b"POST /one/ HTTP/1.1\r\nHost: uv.test\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(r.status, 200);
    let e = Echo::from_response(&r);
    let f = wait_line(&proxy.dir().join("up.log"), "/one/|");
    assert_eq!(f[1], format!("127.0.0.1:{}", echo.port));
    assert_eq!(f[2], "200");
    for (i, name) in [(3, "connect"), (4, "header"), (5, "response")] {
        assert!(is_time(&f[i]), "{name} time {:?} in {f:?}", f[i]);
    }
    let ms = |s: &str| s.replace('.', "").parse::<u64>().unwrap();
    assert!(
        ms(&f[3]) <= ms(&f[4]) && ms(&f[4]) <= ms(&f[5]),
        "connect ≤ header ≤ response: {f:?}"
    );
    assert_eq!(f[6], r.body.len().to_string(), "response length");
    assert_eq!(
        f[7],
        request_size(&e).to_string(),
        "bytes sent = the request the peer got"
    );
    assert_eq!(f[8], "-", "no cache");
    assert_eq!(f[9], "-");

    // $upstream_cookie_NAME from the upstream's Set-Cookie.
    let r = proxy.get(
        "uv.test",
        "/cookie/?len=10&h=Set-Cookie:a=1&h=Set-Cookie:sid=xyz%3B%20Path=/",
    );
    assert_eq!(r.status, 200);
    let f = wait_line(&proxy.dir().join("up.log"), "/cookie/|");
    assert_eq!(f[6], "10");
    assert_eq!(f[9], "xyz");

    // A retry: comma lists, `-` for the phases the dead server never reached.
    let r = proxy.get("uv.test", "/retry/");
    assert_eq!(r.status, 200);
    let f = wait_line(&proxy.dir().join("up.log"), "/retry/|");
    assert_eq!(f[1], format!("127.0.0.1:{dead}, 127.0.0.1:{}", echo.port));
    assert_eq!(f[2], "502, 200");
    let parts = |s: &str| s.split(", ").map(str::to_string).collect::<Vec<_>>();
    let c = parts(&f[3]);
    assert_eq!(c[0], "-", "{f:?}");
    assert!(is_time(&c[1]), "{f:?}");
    let h = parts(&f[4]);
    assert_eq!(h[0], "-", "{f:?}");
    assert!(is_time(&h[1]), "{f:?}");
    let rt = parts(&f[5]);
    assert!(rt.len() == 2 && rt.iter().all(|t| is_time(t)), "{f:?}");
    assert_eq!(f[6], format!("0, {}", r.body.len()));
    let b = parts(&f[7]);
    assert_eq!(b[0], "0", "{f:?}");
    assert!(b[1].parse::<u64>().unwrap() > 0, "{f:?}");

    // An internal redirect to another upstream: ` : ` between the two requests' lists.
    let r = proxy.get("uv.test", "/fallback/");
    assert_eq!(r.status, 200);
    let f = wait_line(&proxy.dir().join("up.log"), "/fallback/|");
    assert_eq!(f[1], format!("127.0.0.1:{dead} : 127.0.0.1:{}", echo.port));
    assert_eq!(f[2], "502 : 200");
    assert!(f[3].starts_with("- : "), "{f:?}");

    // No upstream: every upstream variable is empty (`-`).
    assert_eq!(proxy.get("uv.test", "/static/").status, 200);
    let f = wait_line(&proxy.dir().join("up.log"), "/static/|");
    assert!(f[1..].iter().all(|v| v == "-"), "{f:?}");
}

/// The bytes respond.py writes for `len` bytes of body with `Content-Type: text/html`,
/// `Connection: close`, and Content-Length or chunked coding in `pieces` chunks.
/// Returns (head, body) sizes as framed on the wire.
fn respond_wire(len: usize, chunked: Option<usize>) -> (usize, usize) {
    let framing = match chunked {
        None => format!("Content-Length: {len}\r\n"),
        Some(_) => "Transfer-Encoding: chunked\r\n".to_string(),
    };
    let head =
        format!("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n{framing}Connection: close\r\n\r\n");
    let body = match chunked {
        None => len,
        Some(pieces) => {
            let step = len.div_ceil(pieces);
            let mut n = 0;
            let mut left = len;
            while left > 0 {
                let part = step.min(left);
                n += format!("{part:x}").len() + 2 + part + 2;
                left -= part;
            }
            n + 5
        }
    };
    (head.len(), body)
}

fn respond_wire_size(len: usize, chunked: Option<usize>) -> usize {
    let (h, b) = respond_wire(len, chunked);
    h + b
}

/// `$upstream_bytes_received` is what was read from the upstream connection, head and
/// chunked framing included (nginx's `u->state->bytes_received`), and
/// `$upstream_response_length` the body as read, chunked framing included (nginx's
/// `u->state->response_length`); `0` for a server that refused the connection, as a
/// comma list after a retry.
#[test]
fn upstream_bytes_received_counts_the_wire() {
    let respond = Peer::python("respond.py", &[]);
    let dead = closed_port();
    let proxy = Proxy::start(&fill(
        "log_format wire \"$request_uri|$upstream_bytes_received|$upstream_response_length|$upstream_status\";
upstream two {
    server 127.0.0.1:{DEAD};
    server 127.0.0.1:{R};
}
server {
    listen 127.0.0.1:{PORT};
    access_log {DIR}/wire.log wire;
    proxy_http_version 1.1;
    proxy_set_header Connection close;
    location /plain/ { proxy_pass http://127.0.0.1:{R}; }
    location /chunked/ { proxy_pass http://127.0.0.1:{R}; }
    location /unbuffered/ { proxy_buffering off; proxy_pass http://127.0.0.1:{R}; }
    location /retry/ { proxy_pass http://two; }
}
",
        &[("R", &respond.port), ("DEAD", &dead)],
    ));
    let log = proxy.dir().join("wire.log");
    // (uri, body length, chunked pieces)
    let rows: &[(&str, usize, Option<usize>)] = &[
        ("/plain/?len=1000", 1000, None),
        ("/plain/?len=0", 0, None),
        ("/chunked/?len=70000&chunked=1&pieces=7", 70000, Some(7)),
        ("/unbuffered/?len=200000", 200_000, None),
        ("/unbuffered/?len=3000&chunked=1&pieces=4", 3000, Some(4)),
    ];
    let mut failures = Vec::new();
    for &(uri, len, chunked) in rows {
        let r = proxy.get("wire.test", uri);
        if r.status != 200 || r.body.len() != len {
            failures.push(format!("{uri}: {} with {} bytes", r.status, r.body.len()));
            continue;
        }
        let f = wait_line(&log, &format!("{uri}|"));
        let (head, body) = respond_wire(len, chunked);
        let want = (head + body).to_string();
        if f[1] != want || f[2] != body.to_string() {
            failures.push(format!(
                "{uri}: received {} (want {want}), length {} (want {body})",
                f[1], f[2]
            ));
        }
    }
    assert_table("upstream_bytes_received", &failures, rows.len());

    let r = proxy.get("wire.test", "/retry/?len=10");
    assert_eq!(r.status, 200);
    let f = wait_line(&log, "/retry/?len=10|");
    assert_eq!(f[1], format!("0, {}", respond_wire_size(10, None)), "{f:?}");
    assert_eq!(f[3], "502, 200", "{f:?}");
}
