//! A Python WSGI application behind `scgi_pass`, served by a real SCGI server: the same
//! uWSGI as `uwsgi_app.rs` (Debian `uwsgi` + `uwsgi-plugin-python3`) listening with
//! `--scgi-socket`, with nginx's own lines `include scgi_params; scgi_pass …;` (issue 5,
//! NGINX-SEMANTICS §14–16, §21). The scenarios live in `uwsgi_kit`. Target forms:
//! `host:port`, `unix:/path`, an `upstream` name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
#[macro_use]
mod uwsgi_kit;

use uwsgi_kit::*;

const P: Protocol = Protocol::Scgi;

// environ (TCP and unix socket), buffering off, stopped → 502, timeout → 504,
// pass_request_headers off + hide_header, intercept_errors.
same_scenarios!();

#[test]
fn post_10mb_body_md5_matches() {
    post_md5(P, Site::default());
}

#[test]
fn response_20mb_is_identical_with_bounded_memory() {
    let peak = large_response(
        P,
        Site {
            top: "upstream scgi_app { server {TARGET}; }",
            pass: "scgi_app",
            ..Site::default()
        },
    );
    eprintln!("scgi 20 MB response: proxy peak RSS {peak} KiB");
}
