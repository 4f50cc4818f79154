//! proxy_pass URI rewriting (NGINX-SEMANTICS §4): what request-target the backend receives.
//!
//! Every expected value in the table is what nginx sends: the suite runs with
//! `JUNCTION_TEST_PROXY=nginx` against Debian's nginx (1.22.1) and this table passes there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

const CONFIG: &str = "
server {
    listen 127.0.0.1:{PORT};
    server_name uri.test;

    # no URI part: the original request-target goes through unchanged
    location /a/ { proxy_pass http://127.0.0.1:{BACKEND}; }
    location /f  { proxy_pass http://127.0.0.1:{BACKEND}; }
    location ~ ^/g/ { proxy_pass http://127.0.0.1:{BACKEND}; }

    # URI part: the matched prefix of the normalized URI is replaced by it
    location /b/ { proxy_pass http://127.0.0.1:{BACKEND}/; }
    location /c  { proxy_pass http://127.0.0.1:{BACKEND}/; }
    location /d/ { proxy_pass http://127.0.0.1:{BACKEND}/v1; }
    location /e/ { proxy_pass http://127.0.0.1:{BACKEND}/v1/; }
    location = /h { proxy_pass http://127.0.0.1:{BACKEND}/exact-target; }
}
";

/// (request-target sent by the client, request-target the backend must receive)
const CASES: &[(&str, &str)] = &[
    // --- without a URI part: byte-for-byte the client's request-target ---
    ("/a/x?q=1", "/a/x?q=1"),
    ("/a/x%20y", "/a/x%20y"),
    ("/a/x%2Fy", "/a/x%2Fy"),
    ("/a//x/../y", "/a//x/../y"),
    ("/a/caf%c3%a9", "/a/caf%c3%a9"),
    ("/f/x?y", "/f/x?y"),
    ("/fx", "/fx"),
    ("/g/x%20y?z=1", "/g/x%20y?z=1"),
    // --- with a URI part: normalized URI, matched prefix replaced, re-escaped ---
    ("/b/x", "/x"),
    ("/b/", "/"),
    ("/b/x?q=1&r=%20", "/x?q=1&r=%20"),
    ("/b/x?a=b/../c", "/x?a=b/../c"),
    ("/b/x%20y", "/x%20y"),
    ("/b/x%2Fy", "/x/y"),
    ("/b//x//y", "/x/y"),
    ("/b/x/../y", "/y"),
    ("/b/./x", "/x"),
    ("/b/x%2ey", "/x.y"),
    ("/b/%7Efoo", "/~foo"),
    ("/b/caf%c3%a9", "/caf%C3%A9"),
    ("/b/a%3Fb", "/a%3Fb"),
    // location without trailing slash + URI "/": plain concatenation
    ("/c/x", "//x"),
    ("/cx", "/x"),
    ("/c", "/"),
    // URI part without trailing slash
    ("/d/x", "/v1x"),
    ("/d/", "/v1"),
    ("/e/x", "/v1/x"),
    ("/e/x?y", "/v1/x?y"),
    // exact location: the whole URI is replaced, arguments kept
    ("/h", "/exact-target"),
    ("/h?q=1", "/exact-target?q=1"),
];

#[test]
fn proxy_pass_uri_table() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = Proxy::start(&fill(CONFIG, &[("BACKEND", &backend.port)]));
    let mut failures = Vec::new();
    for (sent, expected) in CASES {
        let r = proxy.get("uri.test", sent);
        if r.status != 200 {
            failures.push(format!("{sent:<22} → status {} (want 200)", r.status));
            continue;
        }
        let e = Echo::from_response(&r);
        if e.path != *expected {
            failures.push(format!(
                "{sent:<22} → backend got {:<18} want {expected}",
                e.path
            ));
        }
    }
    assert_table("proxy_pass URI", &failures, CASES.len());
}

#[test]
fn method_and_body_pass_through() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = Proxy::start(&fill(CONFIG, &[("BACKEND", &backend.port)]));
    let body = "x".repeat(10_000);
    let r = proxy.request(
        format!(
            "POST /b/form?k=v HTTP/1.1\r\nHost: uri.test\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let e = Echo::from_response(&r);
    assert_eq!(e.method, "POST");
    assert_eq!(e.path, "/form?k=v");
    assert_eq!(e.body_len, 10_000);
    assert_eq!(e.header("Content-Length"), Some("10000"));
    assert_eq!(e.header("Content-Type"), Some("text/plain"));
    assert_eq!(
        e.body_sha256, "e4ee97ec252749d2096447e849628d0d7734f51700416eefbb33574bf0b3ee75",
        "sha256 of 10000 × 'x'"
    );
}

#[test]
fn hop_by_hop_headers_are_not_forwarded() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = Proxy::start(&fill(CONFIG, &[("BACKEND", &backend.port)]));
    let r = proxy.request(
        b"GET /a/hop HTTP/1.1\r\nHost: uri.test\r\nKeep-Alive: timeout=5\r\n\
          Proxy-Connection: keep-alive\r\nTE: trailers\r\nX-Custom: kept\r\n\
          Connection: close\r\n\r\n",
    );
    let e = Echo::from_response(&r);
    for name in ["Keep-Alive", "TE"] {
        assert!(
            e.header(name).is_none(),
            "{name} must not reach the backend: {e:#?}"
        );
    }
    // NGINX-SEMANTICS §6 lists Proxy-Connection as not passed; nginx 1.22 does pass it
    // (it is not in nginx's built-in proxy_set_header list). Junction follows the spec.
    match proxy_kind() {
        Kind::Junction => assert!(
            e.header("Proxy-Connection").is_none(),
            "Proxy-Connection must not reach the backend: {e:#?}"
        ),
        Kind::Nginx => assert_eq!(e.header("Proxy-Connection"), Some("keep-alive")),
    }
    assert_eq!(e.header("X-Custom"), Some("kept"), "{e:#?}");
    assert_eq!(
        e.header_all("Host"),
        [format!("127.0.0.1:{}", backend.port)],
        "Host is $proxy_host"
    );
}

/// `proxy_pass` with variables: the value is the whole URL, evaluated per request
/// (NGINX-SEMANTICS §5); `$backend` set per location.
#[test]
fn proxy_pass_with_variables_is_the_whole_url() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    server_name var.test;
    set $backend 127.0.0.1:{BACKEND};
    location /v/ { proxy_pass http://$backend/fixed$is_args$args; }
    location /w/ { proxy_pass http://$backend; }
}
",
        &[("BACKEND", &backend.port)],
    ));
    let e = Echo::from_response(&proxy.get("var.test", "/v/anything?q=1"));
    assert_eq!(e.path, "/fixed?q=1");
    assert_eq!(
        e.header("Host"),
        Some(format!("127.0.0.1:{}", backend.port).as_str())
    );
    let e = Echo::from_response(&proxy.get("var.test", "/w/x%20y?z=2"));
    assert_eq!(
        e.path, "/w/x%20y?z=2",
        "no URI part: the client's request URI unchanged"
    );
}

/// The default `proxy_redirect` rewrites an upstream Location that points at the
/// proxied URL back to the location, and (as nginx's absolute_redirect) makes it
/// absolute with the request's host and port.
#[test]
fn default_proxy_redirect_rewrites_location() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    server_name redir.test;
    location /app/ { proxy_pass http://127.0.0.1:{BACKEND}/inner/; }
    location /off/ { proxy_pass http://127.0.0.1:{BACKEND}/inner/; proxy_redirect off; }
}
",
        &[("BACKEND", &backend.port)],
    ));
    let want_from = format!("http://127.0.0.1:{}/inner/next", backend.port);
    // echo.py answers /redirect?to=URL with a 302 to URL.
    let r = proxy.get("redir.test", &format!("/app/redirect?to={want_from}"));
    assert_eq!(r.status, 302, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("Location"),
        Some(format!("http://redir.test:{}/app/next", proxy.port).as_str())
    );
    let r = proxy.get("redir.test", &format!("/off/redirect?to={want_from}"));
    assert_eq!(r.header("Location"), Some(want_from.as_str()));
}
