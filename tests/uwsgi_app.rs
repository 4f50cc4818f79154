//! A Python WSGI application served by a real uWSGI (Debian `uwsgi` +
//! `uwsgi-plugin-python3`, `--socket`: the uwsgi protocol) behind `uwsgi_pass`, with nginx's
//! own lines `include uwsgi_params; uwsgi_pass …;` (issue 5, NGINX-SEMANTICS §14–16, §20).
//! The app is `tests/peers/wsgi_app.py`; the scenarios live in `uwsgi_kit` and are shared
//! with `scgi_app.rs`. Every `*_pass` target form is used once: `host:port`, `unix:/path`,
//! `uwsgi://host:port`, an `upstream` name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
#[macro_use]
mod uwsgi_kit;

use uwsgi_kit::*;

const P: Protocol = Protocol::Uwsgi;

// environ (TCP and unix socket), buffering off, stopped → 502, timeout → 504,
// pass_request_headers off + hide_header, intercept_errors.
same_scenarios!();

#[test]
fn post_10mb_body_md5_matches() {
    // Through an `upstream` block.
    post_md5(
        P,
        Site {
            top: "upstream wsgi_app { server {TARGET}; }",
            pass: "wsgi_app",
            ..Site::default()
        },
    );
}

#[test]
fn response_20mb_is_identical_with_bounded_memory() {
    let peak = large_response(
        P,
        Site {
            pass: "uwsgi://{TARGET}",
            ..Site::default()
        },
    );
    eprintln!("uwsgi 20 MB response: proxy peak RSS {peak} KiB");
}

#[test]
fn vars_over_64k_are_a_clean_error_and_the_next_request_works() {
    // Five 14 000-byte headers: about 70 KB of HTTP_* vars, over the u16 packet size.
    let s = setup(
        P,
        false,
        Site {
            server: "large_client_header_buffers 8 16k;",
            ..Site::default()
        },
    );
    let big = "v".repeat(14_000);
    let mut raw = String::from("GET /too-big HTTP/1.1\r\nHost: app.test\r\n");
    for i in 0..5 {
        raw.push_str(&format!("X-Big-{i}: {big}\r\n"));
    }
    raw.push_str("Connection: close\r\n\r\n");
    let r = send(&s, raw.as_bytes());
    // nginx answers 500 ("uwsgi request is too big"); junction's encode error is a 502.
    let want = if is_nginx() { 500 } else { 502 };
    assert_eq!(r.status, want, "{}", r.describe());
    assert_logged(&s.proxy, "uwsgi request");
    // Nothing truncated reached uWSGI, and the next request works.
    let r = s.proxy.get("app.test", "/next");
    let e = AppEcho::from_response(&r);
    assert_eq!(e.var("PATH_INFO"), Some("/next"));
    assert!(!s.app.log().contains("/too-big"), "{}", s.app.log());
    assert!(
        !s.app.log().contains("invalid request block size"),
        "{}",
        s.app.log()
    );
    // Just under the limit still goes through (uWSGI runs with --buffer-size 65535).
    let mut raw = String::from("GET /almost HTTP/1.1\r\nHost: app.test\r\n");
    for i in 0..4 {
        raw.push_str(&format!("X-Big-{i}: {big}\r\n"));
    }
    raw.push_str("Connection: close\r\n\r\n");
    let e = AppEcho::from_response(&send(&s, raw.as_bytes()));
    assert_eq!(e.var("HTTP_X_BIG_3").map(str::len), Some(14_000));
}
