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
