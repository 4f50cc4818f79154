//! realip, black-box and checked against nginx (`JUNCTION_TEST_PROXY=nginx`): behind
//! `set_real_ip_from 127.0.0.0/8; real_ip_header X-Forwarded-For; real_ip_recursive
//! on;`, `$remote_addr` in the access log and in what the backend receives
//! (`X-Forwarded-For: $remote_addr`, `$proxy_add_x_forwarded_for`) for a table of
//! header chains; non-recursive; `X-Real-IP` at location level; `allow`/`deny` and
//! `limit_req` on the real address.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::time::{Duration, Instant};

const SITE: &str = r#"
log_format realip '$remote_addr|$realip_remote_addr|$http_x_forwarded_for|$request_uri';
limit_req_zone $binary_remote_addr zone=perclient:1m rate=1r/m;

server {
    listen {PORT};
    server_name _;
    set_real_ip_from 127.0.0.0/8;
    real_ip_header X-Forwarded-For;
    real_ip_recursive on;
    access_log {DIR}/realip.log realip;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Chain $proxy_add_x_forwarded_for;
    proxy_set_header X-Realip $realip_remote_addr;
    proxy_set_header X-Remote-Port $remote_port;

    location / { proxy_pass http://127.0.0.1:{BACKEND}; }
    location /deny/ { deny 1.1.1.1; allow all; proxy_pass http://127.0.0.1:{BACKEND}; }
    location /limited/ { limit_req zone=perclient; proxy_pass http://127.0.0.1:{BACKEND}; }
}

server {
    listen {PORT2};
    server_name _;
    set_real_ip_from 127.0.0.0/8;
    real_ip_header X-Forwarded-For;
    access_log {DIR}/realip.log realip;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Chain $proxy_add_x_forwarded_for;
    proxy_set_header X-Realip $realip_remote_addr;
    proxy_set_header X-Remote-Port $remote_port;
    location / { proxy_pass http://127.0.0.1:{BACKEND}; }
}

server {
    listen {PORT3};
    server_name _;
    access_log {DIR}/realip.log realip;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Chain $proxy_add_x_forwarded_for;
    proxy_set_header X-Realip $realip_remote_addr;
    proxy_set_header X-Remote-Port $remote_port;
    location / { proxy_pass http://127.0.0.1:{BACKEND}; }
    location /behind/ {
        set_real_ip_from 127.0.0.1;
        proxy_pass http://127.0.0.1:{BACKEND};
    }
}
"#;

/// (port index, path, extra header lines, $remote_addr, $remote_port when set by the header)
type Row = (
    usize,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

const ROWS: &[Row] = &[
    // recursive
    (0, "/a", "", "127.0.0.1", None),
    (0, "/b", "X-Forwarded-For: 1.1.1.1\r\n", "1.1.1.1", Some("")),
    (
        0,
        "/c",
        "X-Forwarded-For: 1.1.1.1, 2.2.2.2\r\n",
        "2.2.2.2",
        Some(""),
    ),
    (
        0,
        "/d",
        "X-Forwarded-For: 1.1.1.1, 127.0.0.5\r\n",
        "1.1.1.1",
        Some(""),
    ),
    (
        0,
        "/e",
        "X-Forwarded-For: 1.1.1.1,127.0.0.5, 127.0.0.6\r\n",
        "1.1.1.1",
        Some(""),
    ),
    (
        0,
        "/f",
        "X-Forwarded-For: 127.0.0.7, 127.0.0.5\r\n",
        "127.0.0.7",
        Some(""),
    ),
    (0, "/g", "X-Forwarded-For: garbage\r\n", "127.0.0.1", None),
    (
        0,
        "/h",
        "X-Forwarded-For: garbage, 2.2.2.2\r\n",
        "2.2.2.2",
        Some(""),
    ),
    (
        0,
        "/i",
        "X-Forwarded-For: 1.1.1.1, garbage, 127.0.0.5\r\n",
        "127.0.0.5",
        Some(""),
    ),
    (
        0,
        "/j",
        "X-Forwarded-For: 2001:db8::1\r\n",
        "2001:db8::1",
        Some(""),
    ),
    (
        0,
        "/k",
        "X-Forwarded-For: [2001:db8::1]:8443\r\n",
        "2001:db8::1",
        Some("8443"),
    ),
    (
        0,
        "/l",
        "X-Forwarded-For: 1.1.1.1:1234\r\n",
        "1.1.1.1",
        Some("1234"),
    ),
    (
        0,
        "/m",
        "X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 127.0.0.5\r\n",
        "1.1.1.1",
        Some(""),
    ),
    (0, "/n", "X-Real-IP: 3.3.3.3\r\n", "127.0.0.1", None),
    // not recursive: the last element, trusted or not
    (
        1,
        "/o",
        "X-Forwarded-For: 1.1.1.1, 127.0.0.5\r\n",
        "127.0.0.5",
        Some(""),
    ),
    (
        1,
        "/p",
        "X-Forwarded-For: 1.1.1.1, 2.2.2.2\r\n",
        "2.2.2.2",
        Some(""),
    ),
    (
        1,
        "/q",
        "X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 127.0.0.5\r\n",
        "127.0.0.5",
        Some(""),
    ),
    // location level, X-Real-IP (the default header)
    (2, "/r", "X-Real-IP: 3.3.3.3\r\n", "127.0.0.1", None),
    (
        2,
        "/behind/s",
        "X-Real-IP: 3.3.3.3\r\n",
        "3.3.3.3",
        Some(""),
    ),
    (
        2,
        "/behind/t",
        "X-Real-IP: 3.3.3.3\r\nX-Forwarded-For: 4.4.4.4\r\n",
        "3.3.3.3",
        Some(""),
    ),
];

#[test]
fn remote_addr_from_forwarded_chains_as_nginx() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = Proxy::start(&fill(SITE, &[("BACKEND", &backend.port)]));
    let mut failures = Vec::new();
    for (port, path, headers, want, port_want) in ROWS {
        let port = proxy.ports[*port];
        let raw = format!("GET {path} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n");
        let r = http_request(port, raw.as_bytes());
        let e = Echo::from_response(&r);
        let got = e.header("X-Forwarded-For").unwrap_or("");
        if got != *want {
            failures.push(format!(
                "{path} {headers:?}: $remote_addr {got} (want {want})"
            ));
        }
        if e.header("X-Realip") != Some("127.0.0.1") {
            failures.push(format!(
                "{path}: $realip_remote_addr {:?}",
                e.header("X-Realip")
            ));
        }
        // $proxy_add_x_forwarded_for: the incoming chain, then $remote_addr
        let incoming: Vec<&str> = headers
            .split("\r\n")
            .filter_map(|l| l.strip_prefix("X-Forwarded-For: "))
            .collect();
        let chain = if incoming.is_empty() {
            want.to_string()
        } else {
            format!("{}, {want}", incoming.join(", "))
        };
        if e.header("X-Chain") != Some(chain.as_str()) {
            failures.push(format!(
                "{path}: $proxy_add_x_forwarded_for {:?} (want {chain:?})",
                e.header("X-Chain")
            ));
        }
        let rp = e.header("X-Remote-Port").unwrap_or("");
        match port_want {
            Some(p) if rp != *p => {
                failures.push(format!("{path}: $remote_port {rp:?} (want {p:?})"))
            }
            None if rp.parse::<u16>().map_or(true, |p| p == 0) => {
                failures.push(format!("{path}: $remote_port {rp:?} (want the client's)"))
            }
            _ => {}
        }
    }
    assert_table("realip", &failures, ROWS.len());

    // the access log has the same $remote_addr, and the connection's own address
    let path = proxy.dir().join("realip.log");
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        if log.lines().count() >= ROWS.len() || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut failures = Vec::new();
    for (_, path, _, want, _) in ROWS {
        let line = log.lines().find(|l| l.ends_with(&format!("|{path}")));
        match line {
            Some(l) if l.starts_with(&format!("{want}|127.0.0.1|")) => {}
            other => failures.push(format!(
                "{path}: log line {other:?} (want {want}|127.0.0.1|…)"
            )),
        }
    }
    assert_table("realip access log", &failures, ROWS.len());
}

#[test]
fn allow_deny_apply_to_the_real_address() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = Proxy::start(&fill(SITE, &[("BACKEND", &backend.port)]));
    let r = proxy.request(
        b"GET /deny/x HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 1.1.1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 403);
    let r = proxy.request(
        b"GET /deny/x HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 1.1.1.2\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let log = proxy
        .wait_error_log("access forbidden by rule", Duration::from_secs(5))
        .unwrap_or_else(|l| panic!("{l}"));
    assert!(log.contains("client: 1.1.1.1"), "{log}");

    // limit_req keyed by $binary_remote_addr sees the real address: one bucket each
    let from = |ip: &str| {
        proxy
            .request(
                format!(
                    "GET /limited/x HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: {ip}\r\n\
                     Connection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .status
    };
    assert_eq!(from("5.5.5.5"), 200);
    assert_eq!(from("5.5.5.5"), 503);
    assert_eq!(from("6.6.6.6"), 200);
    assert_eq!(from("6.6.6.6"), 503);
}
