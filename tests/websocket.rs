//! WebSocket through `proxy_pass` with nginx's usual lines
//! (`proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";`):
//! the 101 reaches the client, then bytes flow both ways; an idle tunnel closes
//! after `proxy_read_timeout`; a 101 the client did not ask for is a 502.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

const CONFIG: &str = "server {
    listen 127.0.0.1:{PORT};
    server_name ws.test;
    location / {
        proxy_pass http://127.0.0.1:{BACKEND};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection \"upgrade\";
        proxy_read_timeout 1s;
    }
}
";

/// Reads until the end of the response head; returns it.
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut b).unwrap(),
            1,
            "closed inside the head: {head:?}"
        );
        head.push(b[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn websocket_upgrade_tunnels_both_ways_and_closes_when_idle() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = Proxy::start(&fill(CONFIG, &[("BACKEND", &backend.port)]));
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"GET /switch HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: websocket"), "{head}");
    assert!(lower.contains("connection: upgrade"), "{head}");

    for msg in [
        &b"hello"[..],
        &[0u8, 0x81, 0xff, b'\r', b'\n'][..],
        &vec![7u8; 100_000][..],
    ] {
        s.write_all(msg).unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, msg, "echo through the tunnel");
    }

    // Idle: the tunnel closes after proxy_read_timeout (1 s).
    let t = Instant::now();
    let mut b = [0u8; 16];
    let n = s.read(&mut b).unwrap_or(0);
    assert_eq!(n, 0, "the tunnel must be closed, not send data");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    // The server keeps serving.
    assert_eq!(proxy.get("ws.test", "/plain").status, 200);
}

#[test]
fn a_101_the_client_did_not_ask_for_is_a_502() {
    if product() == "nginx" {
        return; // nginx relays it and then tunnels
    }
    let backend = Peer::python("echo.py", &[]);
    let proxy = Proxy::start(&fill(CONFIG, &[("BACKEND", &backend.port)]));
    let r = proxy.get("ws.test", "/switch");
    assert_eq!(r.status, 502);
    proxy
        .wait_error_log("did not ask for an upgrade", Duration::from_secs(5))
        .expect("the reason is logged");
}
