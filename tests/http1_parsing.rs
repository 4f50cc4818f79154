//! nginx's answers to malformed and tricky requests, row by row: the status, and
//! whether the connection stays open (a follow-up request on it is answered) —
//! the same table passes against nginx (`JUNCTION_TEST_PROXY=nginx`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

fn proxy(backend: u16) -> Proxy {
    Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    server_name t.test;
    location / {
        proxy_pass http://127.0.0.1:{BACKEND};
    }
    location = /host {
        return 200 \"host=$host uri=$uri\";
    }
    location = /smuggled {
        return 200 \"SMUGGLED\";
    }
}
",
        &[("BACKEND", &backend)],
    ))
}

/// One response read off a connection.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Reads the next final response (skipping 1xx); `None` at EOF or on a timeout.
fn read_response(r: &mut BufReader<TcpStream>) -> Option<Resp> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let status: u16 = line.split(' ').nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).ok()? == 0 {
                return None;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':')?;
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        if (100..200).contains(&status) {
            continue;
        }
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if let Some(l) = get("content-length") {
            body.resize(l.parse().ok()?, 0);
            r.read_exact(&mut body).ok()?;
        } else if get("transfer-encoding").is_some() {
            loop {
                let mut sz = String::new();
                r.read_line(&mut sz).ok()?;
                let n = usize::from_str_radix(sz.trim(), 16).ok()?;
                let mut chunk = vec![0u8; n + 2];
                r.read_exact(&mut chunk).ok()?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else if get("connection").as_deref() == Some("close") {
            let _ = r.read_to_end(&mut body);
        }
        return Some(Resp {
            status,
            headers,
            body,
        });
    }
}

/// Sends `raw`; returns the first response's status (0: none) and whether a
/// follow-up request on the same connection is answered, plus every later
/// response's body (what a pipelined request got).
fn probe(port: u16, raw: &[u8]) -> (u16, bool, Vec<u8>, Vec<String>) {
    let s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut w = s.try_clone().unwrap();
    let _ = w.write_all(raw);
    let mut r = BufReader::new(s);
    let Some(first) = read_response(&mut r) else {
        return (0, false, Vec::new(), Vec::new());
    };
    let _ = w.write_all(b"GET /host HTTP/1.1\r\nHost: follow.test\r\n\r\n");
    let mut later = Vec::new();
    let mut open = false;
    while let Some(x) = read_response(&mut r) {
        let text = String::from_utf8_lossy(&x.body).into_owned();
        if text.contains("host=follow.test") {
            open = true;
            break;
        }
        later.push(text);
    }
    let _ = first.headers;
    (first.status, open, first.body, later)
}

fn big(n: usize) -> String {
    "a".repeat(n)
}

#[test]
fn malformed_and_tricky_requests_as_nginx() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = proxy(backend.port);
    let h = "Host: t.test\r\n";
    let long_line = format!("GET /{} HTTP/1.1\r\n{h}\r\n", big(9000));
    let long_header = format!("GET / HTTP/1.1\r\n{h}X-Big: {}\r\n\r\n", big(64 * 1024));
    let many_headers = format!(
        "GET / HTTP/1.1\r\n{h}{}\r\n",
        (0..5)
            .map(|i| format!("X-H{i}: {}\r\n", big(7000)))
            .collect::<String>()
    );
    let fits_large = format!(
        "GET /{} HTTP/1.1\r\n{h}X-A: {}\r\n\r\n",
        big(3000),
        big(6000)
    );
    let cases: Vec<(&str, Vec<u8>, u16, bool)> = vec![
        ("plain GET", format!("GET / HTTP/1.1\r\n{h}\r\n").into(), 200, true),
        ("leading empty line", format!("\r\nGET / HTTP/1.1\r\n{h}\r\n").into(), 200, true),
        ("CL and TE", format!("POST / HTTP/1.1\r\n{h}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").into(), 400, false),
        ("TE identity, chunked", format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n").into(), 501, false),
        ("TE gzip", format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: gzip\r\n\r\n").into(), 501, false),
        ("TE chunked, chunked", format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n").into(), 501, false),
        ("TE Chunked", format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n").into(), 200, true),
        ("TE CHUNKED", format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\n").into(), 200, true),
        ("chunk extension", format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n3;name=value\r\nabc\r\n0\r\n\r\n").into(), 200, true),
        ("chunk trailer", format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n").into(), 200, true),
        ("chunk size not hex", format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n").into(), 400, false),
        ("chunk data too long", format!("POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n").into(), 400, false),
        ("duplicate CL", format!("POST / HTTP/1.1\r\n{h}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc").into(), 400, false),
        ("CL not a number", format!("POST / HTTP/1.1\r\n{h}Content-Length: abc\r\n\r\n").into(), 400, false),
        ("CL negative", format!("POST / HTTP/1.1\r\n{h}Content-Length: -1\r\n\r\n").into(), 400, false),
        ("CL with plus", format!("POST / HTTP/1.1\r\n{h}Content-Length: +3\r\n\r\nabc").into(), 400, false),
        ("obs-fold", format!("GET / HTTP/1.1\r\n{h}X-A: a\r\n b\r\n\r\n").into(), 400, false),
        ("NUL in a header value", format!("GET / HTTP/1.1\r\n{h}X-A: a\0b\r\n\r\n").into(), 400, false),
        ("bare CR in a header value", format!("GET / HTTP/1.1\r\n{h}X-A: a\rb\r\n\r\n").into(), 400, false),
        ("space in the target", format!("GET /a b HTTP/1.1\r\n{h}\r\n").into(), 400, false),
        ("lower-case method", format!("get / HTTP/1.1\r\n{h}\r\n").into(), 400, false),
        ("header line without colon is ignored", format!("GET / HTTP/1.1\r\n{h}NoColon\r\n\r\n").into(), 200, true),
        ("HTTP/2.0 request line", format!("GET / HTTP/2.0\r\n{h}\r\n").into(), 505, false),
        ("HTTP/1.0 closes", format!("GET /host HTTP/1.0\r\n{h}\r\n").into(), 200, false),
        ("HTTP/1.0 keep-alive", format!("GET /host HTTP/1.0\r\n{h}Connection: keep-alive\r\n\r\n").into(), 200, true),
        ("HTTP/1.1 Connection: close", format!("GET /host HTTP/1.1\r\n{h}Connection: close\r\n\r\n").into(), 200, false),
        ("no Host in HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400, false),
        ("two Hosts", format!("GET / HTTP/1.1\r\n{h}{h}\r\n").into(), 400, false),
        ("underscore header ignored", format!("GET / HTTP/1.1\r\n{h}X_Under: 1\r\n\r\n").into(), 200, true),
        ("request line over large_client_header_buffers", long_line.into(), 414, false),
        ("64 KB header", long_header.into(), 400, false),
        ("five 7 KB headers: over 4 x 8k in all", many_headers.into(), 400, false),
        ("a 3 KB line and a 6 KB header fit the large buffers", fits_large.into(), 200, true),
        ("body on a return location is discarded", format!("POST /host HTTP/1.1\r\n{h}Content-Length: 5\r\n\r\nhello").into(), 200, true),
        ("raw UTF-8 in the target", b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: t.test\r\n\r\n".to_vec(), 200, true),
        ("raw UTF-8 in the Host", b"GET /host HTTP/1.1\r\nHost: caf\xc3\xa9.test\r\n\r\n".to_vec(), 200, true),
        ("HTTP/1.2 is served as 1.1", format!("GET /host HTTP/1.2\r\n{h}\r\n").into(), 200, true),
        ("HTTP/1.1 with a space before the colon", format!("GET / HTTP/1.1\r\n{h}X-A : 1\r\n\r\n").into(), 400, false),
        ("request line ending in a bare LF", b"GET /host HTTP/1.1\nHost: t.test\n\n".to_vec(), 200, true),
        ("CL with leading zeros", format!("POST / HTTP/1.1\r\n{h}Content-Length: 003\r\n\r\nabc").into(), 200, true),
        ("Expect 100-continue with body", format!("POST / HTTP/1.1\r\n{h}Expect: 100-continue\r\nContent-Length: 3\r\n\r\nabc").into(), 200, true),
    ];
    let mut failures = Vec::new();
    for (name, raw, status, open) in &cases {
        let (got, got_open, _, later) = probe(proxy.port, raw);
        if got != *status || got_open != *open {
            failures.push(format!(
                "{name}: expected {status} open={open}, got {got} open={got_open} {later:?}"
            ));
        }
    }
    assert_table("malformed requests", &failures, cases.len());
}

/// A request smuggled behind an ambiguous one (Content-Length with
/// Transfer-Encoding) never reaches a handler: one 400, then the close.
#[test]
fn a_request_pipelined_behind_a_smuggling_attempt_is_never_served() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = proxy(backend.port);
    for raw in [
        &b"POST / HTTP/1.1\r\nHost: t.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t.test\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: t.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t.test\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t.test\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t.test\r\n\r\n",
    ] {
        let all = raw_exchange(proxy.port, raw);
        let text = String::from_utf8_lossy(&all);
        assert!(!text.contains("SMUGGLED"), "{text}");
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
        assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    }
}

/// Pipelined requests are answered in order, each with its own body.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = proxy(backend.port);
    let mut raw = Vec::new();
    for i in 0..5 {
        raw.extend_from_slice(
            format!("GET /host?{i} HTTP/1.1\r\nHost: p{i}.test\r\n\r\n").as_bytes(),
        );
        raw.extend_from_slice(
            format!(
                "POST /echo{i} HTTP/1.1\r\nHost: t.test\r\nContent-Length: {i}\r\n\r\n{}",
                "x".repeat(i)
            )
            .as_bytes(),
        );
    }
    raw.extend_from_slice(b"GET /host HTTP/1.1\r\nHost: last.test\r\nConnection: close\r\n\r\n");
    let s = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    (&s).write_all(&raw).unwrap();
    let mut r = BufReader::new(s);
    for i in 0..5 {
        let a = read_response(&mut r).expect("response");
        assert_eq!(
            String::from_utf8_lossy(&a.body),
            format!("host=p{i}.test uri=/host")
        );
        let b = read_response(&mut r).expect("response");
        let text = String::from_utf8_lossy(&b.body).into_owned();
        assert!(text.contains(&format!("\"path\": \"/echo{i}\"")), "{text}");
        assert!(text.contains(&format!("\"body_len\": {i}")), "{text}");
    }
    let last = read_response(&mut r).expect("last response");
    assert_eq!(
        String::from_utf8_lossy(&last.body),
        "host=last.test uri=/host"
    );
}

/// An absolute-form target names the host (`$host`), whatever the Host header says.
#[test]
fn absolute_form_target_sets_host() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = proxy(backend.port);
    let all = raw_exchange(
        proxy.port,
        b"GET http://Abs.Test/host HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.ends_with("host=abs.test uri=/host"), "{text}");
}

/// `underscores_in_headers` and `ignore_invalid_headers` decide which header
/// lines reach the backend.
#[test]
fn underscored_and_invalid_header_names_as_nginx() {
    let backend = Peer::python("echo.py", &[]);
    let names = |extra: &str| {
        let proxy = Proxy::start(&fill(
            "server {
    listen 127.0.0.1:{PORT};
    server_name t.test;
    {EXTRA}
    location / { proxy_pass http://127.0.0.1:{BACKEND}; }
}
",
            &[("BACKEND", &backend.port), ("EXTRA", &extra)],
        ));
        let r = proxy.request(
            b"GET / HTTP/1.1\r\nHost: t.test\r\nX_Under: 1\r\nX@At: 2\r\nX-Fine: 3\r\nConnection: close\r\n\r\n",
        );
        let e = Echo::from_response(&r);
        e.headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .filter(|k| k.starts_with('x'))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(""), ["x-fine"]);
    assert_eq!(names("underscores_in_headers on;"), ["x_under", "x-fine"]);
}

/// A raw UTF-8 target reaches the backend as sent (`$request_uri` unchanged), and
/// routes on its decoded form.
#[test]
fn a_raw_utf8_target_is_passed_as_sent() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = proxy(backend.port);
    let r = proxy.request(
        b"GET /caf\xc3\xa9?q=\xc3\xa9 HTTP/1.1\r\nHost: t.test\r\nConnection: close\r\n\r\n",
    );
    let e = Echo::from_response(&r);
    // echo.py reads the target as Latin-1: the two raw bytes of "é" each.
    assert_eq!(e.path, "/caf\u{c3}\u{a9}?q=\u{c3}\u{a9}");
}

/// `merge_slashes`: on (the default) `/a//b` is matched as `/a/b`; off, as sent.
#[test]
fn merge_slashes_on_and_off() {
    let conf = |extra: &str| {
        format!(
            "server {{
    listen 127.0.0.1:{{PORT}};
    server_name m.test;
    {extra}
    location = /a//b {{ return 200 \"kept\"; }}
    location / {{ return 200 \"uri=$uri\"; }}
}}
"
        )
    };
    let on = Proxy::start(&conf(""));
    assert_eq!(on.get("m.test", "/a//b").text(), "uri=/a/b");
    assert_eq!(on.get("m.test", "//x///y/").text(), "uri=/x/y/");
    let off = Proxy::start(&conf("merge_slashes off;"));
    assert_eq!(off.get("m.test", "/a//b").text(), "kept");
    assert_eq!(off.get("m.test", "/x//y/../z").text(), "uri=/x//z");
}

/// HTTP/0.9 (`GET /path` without a version): the body alone, then the close;
/// another method is a 400 (its page alone too).
#[test]
fn http_0_9_gets_the_body_alone() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = proxy(backend.port);
    let all = raw_exchange(proxy.port, b"GET /host\r\n");
    assert_eq!(String::from_utf8_lossy(&all), "host=t.test uri=/host");
    let all = raw_exchange(proxy.port, b"POST /host\r\n");
    let text = String::from_utf8_lossy(&all);
    assert!(
        text.starts_with("<html>") && text.contains("400 Bad Request"),
        "{text}"
    );
}
