//! Variables the rewrite-module configs use alongside: `$request_id`,
//! `$binary_remote_addr`, `$pipe` (nginx's answers: passes with `JUNCTION_TEST_PROXY=nginx`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

const CONF: &str = r#"
server {
    listen 127.0.0.1:{PORT};
    server_name vars.test;
    location /id { return 200 "$request_id $request_id"; }
    location /bin { return 200 "$binary_remote_addr"; }
    location /pipe { return 200 "$pipe"; }
}
"#;

#[test]
fn request_id_binary_remote_addr_and_pipe() {
    let proxy = Proxy::start(CONF);
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let r = proxy.get("vars.test", "/id");
            assert_eq!(r.status, 200, "{}", r.describe());
            let t = r.text();
            let (a, b) = t.split_once(' ').unwrap();
            // 32 hex digits, the same value for the whole request
            assert_eq!(a.len(), 32, "{t}");
            assert!(
                a.bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
                "{t}"
            );
            assert_eq!(a, b, "one value per request");
            a.to_string()
        })
        .collect();
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2],
        "random per request: {ids:?}"
    );
    // the client's address as 4 raw bytes
    let r = proxy.get("vars.test", "/bin");
    assert_eq!(r.body, vec![127, 0, 0, 1], "{}", r.describe());
    let r = proxy.get("vars.test", "/pipe");
    assert_eq!(r.text(), ".", "{}", r.describe());
}

/// `$request_body`: the body a `*_pass` read into memory (empty when it went to a temp
/// file, as nginx), here in an access log line.
#[test]
fn request_body_in_the_access_log() {
    let backend = Peer::python("echo.py", &[]);
    let conf = fill(
        r#"
log_format body '$request_method $uri [$request_body] $request_completion';
server {
    listen 127.0.0.1:{PORT};
    server_name body.test;
    access_log {DIR}/body.log body;
    location /mem { proxy_pass http://127.0.0.1:{BACKEND}; }
    location /file {
        client_body_buffer_size 4;
        proxy_pass http://127.0.0.1:{BACKEND};
    }
}
"#,
        &[("BACKEND", &backend.port)],
    );
    let proxy = Proxy::start(&conf);
    // 64 KiB over a 4-byte client_body_buffer_size: the body goes to a temp file
    let big = "x".repeat(64 * 1024);
    for (path, body) in [("/mem", "hello=world"), ("/file", big.as_str())] {
        let raw = format!(
            "POST {path} HTTP/1.1\r\nHost: body.test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let r = proxy.request(raw.as_bytes());
        assert_eq!(r.status, 200, "{}", r.describe());
    }
    let r = proxy.get("body.test", "/mem");
    assert_eq!(r.status, 200, "{}", r.describe());
    let want = "POST /mem [hello=world] OK\nPOST /file [-] OK\nGET /mem [-] OK\n";
    let log = proxy.dir().join("body.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut got = String::new();
    while std::time::Instant::now() < deadline {
        got = std::fs::read_to_string(&log).unwrap_or_default();
        if got.lines().count() >= 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(got, want);
}
