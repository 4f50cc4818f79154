//! Context in every error line (issue 11): each request is handled in one span, so an
//! error logged by the server, by the exchange or by the task that relays the upstream
//! body after the head went out ends as nginx's `ngx_http_log_error` lines do —
//! `*N MESSAGE, client: …, server: …, request: "…", upstream: "http://PEER/URI", host:
//! "…"`. Runs on nginx too (`JUNCTION_TEST_PROXY=nginx`): the same lines are expected.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::time::Duration;

fn site(upstream: &str) -> String {
    format!(
        "server {{
    listen 127.0.0.1:{{PORT}};
    server_name log.test;
    location / {{
        proxy_pass http://{upstream};
    }}
}}
"
    )
}

/// The error-log line holding `message`, checked to start with `*N ` (the connection
/// number) right after the `PID#TID: ` prefix; returns what follows the message.
fn line_after(proxy: &Proxy, message: &str) -> String {
    let log = proxy
        .wait_error_log(message, Duration::from_secs(5))
        .unwrap_or_else(|log| panic!("no {message:?} in the error log:\n{log}"));
    let line = log.lines().find(|l| l.contains(message)).unwrap();
    let (head, rest) = line.split_once(message).unwrap();
    let conn = head
        .rsplit_once(": *")
        .map(|(_, n)| n.trim_end())
        .unwrap_or_else(|| panic!("no *N before the message: {line}"));
    assert!(
        !conn.is_empty() && conn.bytes().all(|b| b.is_ascii_digit()),
        "connection number {conn:?} in {line}"
    );
    rest.to_string()
}

#[test]
fn a_refused_connect_is_logged_with_client_server_request_upstream_and_host() {
    let port = closed_port();
    let proxy = Proxy::start(&site(&format!("127.0.0.1:{port}")));
    let r = proxy.get("log.test", "/x?a=1");
    assert_eq!(r.status, 502, "{}", r.describe());
    let rest = line_after(
        &proxy,
        "connect() failed (111: Connection refused) while connecting to upstream",
    );
    assert_eq!(
        rest,
        format!(
            ", client: 127.0.0.1, server: log.test, request: \"GET /x?a=1 HTTP/1.1\", \
             upstream: \"http://127.0.0.1:{port}/x?a=1\", host: \"log.test\""
        )
    );
}

#[test]
fn a_body_cut_after_the_head_went_out_is_logged_in_the_request_context() {
    let peer = Peer::python("garbage.py", &["--mode", "cut"]);
    let proxy = Proxy::start(&site(&format!("127.0.0.1:{}", peer.port)));
    // The head and 10 bytes reach the client; then the connection is cut.
    let raw = raw_exchange(
        proxy.port,
        b"GET /cut HTTP/1.1\r\nHost: log.test\r\nConnection: close\r\n\r\n",
    );
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    let rest = line_after(
        &proxy,
        "upstream prematurely closed connection while reading upstream",
    );
    assert_eq!(
        rest,
        format!(
            ", client: 127.0.0.1, server: log.test, request: \"GET /cut HTTP/1.1\", \
             upstream: \"http://127.0.0.1:{}/cut\", host: \"log.test\"",
            peer.port
        )
    );
}

#[test]
fn a_missing_static_file_is_logged_once_with_the_request_context() {
    let root = tempfile::tempdir().unwrap();
    let root_s = root.path().display().to_string();
    let proxy = Proxy::start(&format!(
        "server {{
    listen 127.0.0.1:{{PORT}};
    server_name log.test;
    root {root_s};
}}
"
    ));
    let r = proxy.get("log.test", "/nofile");
    assert_eq!(r.status, 404, "{}", r.describe());
    let rest = line_after(
        &proxy,
        &format!("open() \"{root_s}/nofile\" failed (2: No such file or directory)"),
    );
    assert_eq!(
        rest,
        ", client: 127.0.0.1, server: log.test, request: \"GET /nofile HTTP/1.1\", host: \"log.test\""
    );
}

#[test]
fn rewrite_log_lines_carry_the_context_once() {
    // A full nginx.conf, for a main-level `error_log … info` (nginx logs these at notice).
    let conf = r#"
error_log {DIR}/error.log info;
events {}
http {
    server {
        listen 127.0.0.1:{PORT};
        server_name log.test;
        rewrite_log on;
        location /show/ { return 200 "show $uri"; }
        location /logme/ {
            rewrite ^/logme/(.*)$ /show/$1;
        }
    }
}
"#;
    let proxy = Proxy::start_files(&[("junction.conf", conf)], "junction.conf");
    let r = proxy.get("log.test", "/logme/x");
    assert_eq!(r.status, 200, "{}", r.describe());
    let rest = line_after(&proxy, "\"^/logme/(.*)$\" matches \"/logme/x\"");
    assert_eq!(
        rest,
        ", client: 127.0.0.1, server: log.test, request: \"GET /logme/x HTTP/1.1\", host: \"log.test\""
    );
}

#[test]
fn an_access_denial_is_logged_with_the_context_once() {
    let proxy = Proxy::start(
        "server {
    listen 127.0.0.1:{PORT};
    server_name log.test;
    location / {
        deny all;
    }
}
",
    );
    let r = proxy.get("log.test", "/x");
    assert_eq!(r.status, 403, "{}", r.describe());
    let rest = line_after(&proxy, "access forbidden by rule");
    assert_eq!(
        rest,
        ", client: 127.0.0.1, server: log.test, request: \"GET /x HTTP/1.1\", host: \"log.test\""
    );
}
