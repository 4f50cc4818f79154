//! Whatever a client sends, the worker keeps serving: garbage, truncated heads,
//! absurd lengths and header floods get an error or a close, never a crash; a
//! normal request afterwards still works and the process is still the same one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PIECES: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"BREW ",
    b"/",
    b"/a?b=c",
    b"%00",
    b"%zz",
    b"/../..",
    b" HTTP/1.1",
    b" HTTP/1.0",
    b" HTTP/9.9",
    b"\r\n",
    b"\n",
    b"Host: r.test\r\n",
    b"Host: \r\n",
    b"Content-Length: 5\r\n",
    b"Content-Length: -1\r\n",
    b"Content-Length: 99999999999999999999\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip\r\n",
    b"0\r\n\r\n",
    b"zz\r\n",
    b"X: ",
    b"\x00\xff\xfe",
    b":",
    b" ",
    b"\t",
    b"\r\n\r\n",
    b"Connection: close\r\n",
    b"Expect: 100-continue\r\n",
    b"Upgrade: websocket\r\n",
];

/// Sends `raw`, reads whatever comes back within a short time, never panics.
fn poke(port: u16, raw: &[u8]) {
    let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        panic!("junction stopped accepting connections");
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
    let _ = s.write_all(raw);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

#[test]
fn garbage_never_stops_the_worker() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    server_name r.test;
    client_header_timeout 2s;
    client_body_timeout 2s;
    location / { proxy_pass http://127.0.0.1:{BACKEND}; }
    location /static/ { return 200 \"static\"; }
}
",
        &[("BACKEND", &backend.port)],
    ));
    let pid = proxy.pid();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..300 {
        let mut raw = Vec::new();
        for _ in 0..rng.below(12) + 1 {
            raw.extend_from_slice(PIECES[rng.below(PIECES.len() as u64) as usize]);
        }
        if rng.below(4) == 0 {
            for _ in 0..rng.below(64) {
                raw.push(rng.next() as u8);
            }
        }
        poke(proxy.port, &raw);
    }
    // Header floods and an oversized request line.
    let mut flood = b"GET / HTTP/1.1\r\nHost: r.test\r\n".to_vec();
    for i in 0..2000 {
        flood.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    flood.extend_from_slice(b"\r\n");
    poke(proxy.port, &flood);
    poke(
        proxy.port,
        format!(
            "GET /{} HTTP/1.1\r\nHost: r.test\r\n\r\n",
            "a".repeat(100_000)
        )
        .as_bytes(),
    );

    // Still the same process, still serving both kinds of location.
    assert_eq!(proxy.pid(), pid);
    let r = proxy.get("r.test", "/static/x");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"static"[..]));
    let e = Echo::from_response(&proxy.get("r.test", "/after?ok=1"));
    assert_eq!(e.path, "/after?ok=1");
    assert!(
        !proxy.stderr().contains("panicked"),
        "a panic was printed:\n{}",
        proxy.stderr()
    );
    assert!(
        !proxy.error_log().contains("panicked"),
        "a panic reached the error log:\n{}",
        proxy.error_log()
    );
}
