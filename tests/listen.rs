//! `listen` as nginx reads it: `unix:PATH` sockets (served to curl
//! `--unix-socket`), and the socket parameters `backlog=`, `so_keepalive=`,
//! `bind`, `reuseport`, `deferred`, `default_server`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::io::Write;
use std::process::Command;

fn curl_unix(sock: &std::path::Path, url: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "5", "--unix-socket"])
        .arg(sock)
        .arg(url)
        .output()
        .expect("curl (apt-get install curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}

#[test]
fn listen_unix_serves_requests() {
    let proxy = Proxy::start(
        "server {
    listen 127.0.0.1:{PORT};
    listen unix:{DIR}/front.sock;
    server_name u.test;
    location / {
        return 200 \"unix $host $uri\";
    }
}
",
    );
    let sock = proxy.dir().join("front.sock");
    for i in 0..3 {
        let (head, body) = curl_unix(&sock, &format!("http://u.test/p{i}"));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, format!("unix u.test /p{i}"));
    }
    // The TCP listener still serves as well.
    assert_eq!(proxy.get("u.test", "/tcp").text(), "unix u.test /tcp");
}

/// A unix-socket client is `unix:` in `$remote_addr` (and `$binary_remote_addr`),
/// has an empty `$remote_port`, and `allow`/`deny unix:` apply to it, as nginx.
#[test]
fn a_unix_socket_client_is_unix_colon() {
    let proxy = Proxy::start(
        "server {
    listen 127.0.0.1:{PORT};
    listen unix:{DIR}/front.sock;
    server_name u.test;
    location / {
        return 200 \"[$remote_addr] [$remote_port] [$binary_remote_addr]\";
    }
    # (`return` would answer before the access phase: static files, 404 when let in)
    location /tcp-only/ {
        deny unix:;
        root {DIR};
    }
    location /unix-only/ {
        allow unix:;
        deny all;
        root {DIR};
    }
}
",
    );
    let sock = proxy.dir().join("front.sock");
    let (head, body) = curl_unix(&sock, "http://u.test/vars");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "[unix:] [] [unix:]");
    let (head, _) = curl_unix(&sock, "http://u.test/tcp-only/x");
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let (head, _) = curl_unix(&sock, "http://u.test/unix-only/x");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    // Over TCP: the address, and the other way round.
    let r = proxy.get("u.test", "/vars");
    assert!(r.text().starts_with("[127.0.0.1] ["), "{}", r.text());
    assert_eq!(proxy.get("u.test", "/tcp-only/x").status, 404);
    assert_eq!(proxy.get("u.test", "/unix-only/x").status, 403);
}

#[test]
fn listen_parameters_are_applied() {
    let proxy = Proxy::start(
        "server {
    listen 127.0.0.1:{PORT} default_server;
    server_name first.test;
    location / { return 200 \"first\"; }
}
server {
    listen 127.0.0.1:{PORT};
    listen 127.0.0.1:{PORT2} backlog=64 so_keepalive=30s:10s:3 reuseport deferred;
    server_name second.test;
    location / { return 200 \"second\"; }
}
",
    );
    // default_server answers a Host nobody names.
    assert_eq!(proxy.get("nobody.test", "/").text(), "first");
    assert_eq!(proxy.get("second.test", "/").text(), "second");
    let port2 = proxy.ports[1];
    assert_eq!(
        http_request(port2, get_request("x.test", "/").as_bytes()).text(),
        "second"
    );
    // so_keepalive: the accepted socket has a keepalive timer (ss shows it).
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port2)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: second.test\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let _ = std::io::Read::read(&mut s, &mut buf).unwrap();
    let out = Command::new("ss")
        .args(["-tnoH", "state", "established"])
        .arg(format!("( sport = :{port2} )"))
        .output()
        .expect("ss (apt-get install iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("keepalive"),
        "no keepalive timer on the accepted socket: {text}"
    );
}

/// `ipv6only=off` on `[::]:PORT`: one socket takes IPv4 clients too; the default
/// (`on`) leaves IPv4 to an IPv4 socket of its own.
#[test]
fn ipv6only_off_takes_ipv4_clients() {
    let proxy = Proxy::start(
        "server {
    listen 127.0.0.1:{PORT};
    listen [::]:{PORT2} ipv6only=off;
    server_name v6.test;
    location / { return 200 \"dual $server_port\"; }
}
",
    );
    let port2 = proxy.ports[1];
    let v4 = http_request(port2, get_request("v6.test", "/").as_bytes());
    assert_eq!(v4.text(), format!("dual {port2}"));
    let v6 = http_request_to(
        std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port2)),
        get_request("v6.test", "/").as_bytes(),
    );
    assert_eq!(v6.text(), format!("dual {port2}"));
}
