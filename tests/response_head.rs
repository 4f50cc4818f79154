//! The response head as nginx's `ngx_http_header_filter` writes it, on a table checked
//! against nginx (`JUNCTION_TEST_PROXY=nginx`): the header names in order and in
//! nginx's spelling (`ETag`, `Content-Type` for an upstream's `Content-type`), the
//! proxy's own `Server` and `Date` first, an upstream's `Server` and `Date` among the
//! other headers when `proxy_pass_header` lets them through (and then none of the
//! proxy's), a static file's and a redirect's own `Last-Modified` and `Location`
//! before `Connection`, `gzip_vary`'s `Vary` right after it, a static file's
//! `Accept-Ranges` last.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

const CONF: &str = "
server {
    listen 127.0.0.1:{PORT};
    root {ROOT};
    location /p/ { proxy_pass http://127.0.0.1:{B}/; }
    location /pass/ {
        proxy_pass http://127.0.0.1:{B}/;
        proxy_pass_header Server;
        proxy_pass_header Date;
    }
    location /padd/ { proxy_pass http://127.0.0.1:{B}/; add_header X-Added yes; }
    location /s/ { alias {ROOT}/; }
    location = /moved { return 302 /elsewhere; }
    location = /text { add_header X-Added yes; return 200 \"text\\n\"; }
    location /se/ { alias {ROOT}/; expires 1h; add_header X-Added yes; }
    location /sg/ { alias {ROOT}/; gzip on; gzip_types text/plain; gzip_min_length 1; gzip_vary on; }
    location /pg/ {
        proxy_pass http://127.0.0.1:{B}/;
        gzip on; gzip_types text/plain; gzip_min_length 1; gzip_proxied any; gzip_vary on;
    }
}
";

#[test]
fn header_order_and_spelling_are_nginxs() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("hello.txt"), "hello world\n").unwrap();
    let backend = Peer::http_server(root.path());
    let proxy = Proxy::start(&fill(
        CONF,
        &[("ROOT", &root.path().display()), ("B", &backend.port)],
    ));
    // (path, expected status, expected names in order, whose Server); a path ending in
    // `+gzip` is asked with `Accept-Encoding: gzip`.
    let own = "own";
    let upstream = "upstream";
    let rows: &[(&str, u16, &[&str], &str)] = &[
        (
            "/p/hello.txt",
            200,
            &[
                "Server",
                "Date",
                "Content-Type",
                "Content-Length",
                "Connection",
                "Last-Modified",
            ],
            own,
        ),
        (
            "/pass/hello.txt",
            200,
            &[
                "Content-Type",
                "Content-Length",
                "Connection",
                "Server",
                "Date",
                "Last-Modified",
            ],
            upstream,
        ),
        (
            "/padd/hello.txt",
            200,
            &[
                "Server",
                "Date",
                "Content-Type",
                "Content-Length",
                "Connection",
                "Last-Modified",
                "X-Added",
            ],
            own,
        ),
        (
            "/s/hello.txt",
            200,
            &[
                "Server",
                "Date",
                "Content-Type",
                "Content-Length",
                "Last-Modified",
                "Connection",
                "ETag",
                "Accept-Ranges",
            ],
            own,
        ),
        (
            "/moved",
            302,
            &[
                "Server",
                "Date",
                "Content-Type",
                "Content-Length",
                "Location",
                "Connection",
            ],
            own,
        ),
        (
            "/text",
            200,
            &[
                "Server",
                "Date",
                "Content-Type",
                "Content-Length",
                "Connection",
                "X-Added",
            ],
            own,
        ),
        (
            "/se/hello.txt",
            200,
            &[
                "Server",
                "Date",
                "Content-Type",
                "Content-Length",
                "Last-Modified",
                "Connection",
                "ETag",
                "Expires",
                "Cache-Control",
                "X-Added",
                "Accept-Ranges",
            ],
            own,
        ),
        (
            "/sg/hello.txt+gzip",
            200,
            &[
                "Server",
                "Date",
                "Content-Type",
                "Last-Modified",
                "Transfer-Encoding",
                "Connection",
                "Vary",
                "ETag",
                "Content-Encoding",
            ],
            own,
        ),
        (
            "/pg/hello.txt+gzip",
            200,
            &[
                "Server",
                "Date",
                "Content-Type",
                "Transfer-Encoding",
                "Connection",
                "Vary",
                "Last-Modified",
                "Content-Encoding",
            ],
            own,
        ),
    ];
    let mut failures = Vec::new();
    for (path, status, names, server) in rows {
        let r = match path.strip_suffix("+gzip") {
            Some(p) => proxy.request(
                format!(
                    "GET {p} HTTP/1.1\r\nHost: head.test\r\nAccept-Encoding: gzip\r\n\
                     Connection: close\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => proxy.get("head.test", path),
        };
        let got: Vec<&str> = r.headers.iter().map(|(k, _)| k.as_str()).collect();
        if r.status != *status || got != *names {
            failures.push(format!(
                "{path}: want {status} {names:?}, got {} {got:?}",
                r.status
            ));
            continue;
        }
        let servers = r.header_all("Server");
        let ok = match *server {
            "own" => servers.len() == 1 && servers[0].starts_with(product()),
            _ => servers.len() == 1 && servers[0].starts_with("SimpleHTTP/"),
        };
        if !ok || r.header_all("Date").len() != 1 {
            failures.push(format!(
                "{path}: want one {server} Server and one Date:\n{}",
                r.describe()
            ));
        }
    }
    assert_table("response head order", &failures, rows.len());
}
