//! The PHP-FPM front (issue 4, "What must be shown"): the server block every PHP
//! deployment uses, unchanged but for paths and ports, in front of a real php-fpm that
//! each test starts with its own pool (on a free TCP port, or on a unix socket).
//!
//! The app is `tests/peers/php/` (the document root): `index.php` is the front
//! controller and reports its CGI variables as JSON; the other scripts each show one
//! thing (status codes, a redirect, cookies, uploads, a big body, streaming, sleeping,
//! `error_log()`). `JUNCTION_TEST_PROXY=nginx` runs the same tests against nginx.
//!
//! Apart from paths and ports, the server block only gains `client_max_body_size 100m`
//! (the 10 MB upload is over the 1m default in nginx too) and, where a test says so,
//! one directive in the PHP location (`fastcgi_read_timeout 1s`, `fastcgi_buffering
//! off`, `fastcgi_keep_conn on` + an `upstream` with `keepalive`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// The server block; `{FPM}` is the fastcgi_pass target, `{EXTRA}` lines go into
/// the PHP location, `{UPSTREAM}` before the server.
const SITE: &str = "{UPSTREAM}
server {
    listen 127.0.0.1:{PORT};
    server_name php.test;
    root {ROOT};
    index index.php index.html;
    client_max_body_size 100m;

    location / {
        try_files $uri $uri/ /index.php?$query_string;
    }

    location ~ \\.php$ {
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_pass {FPM};
        {EXTRA}
    }
}
";

fn app_root() -> String {
    manifest_dir()
        .join("tests/peers/php")
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

/// The proxy on `site` (placeholders filled), with nginx's `fastcgi_params` and
/// `fastcgi.conf` next to it.
fn proxy_with(site: &str) -> Proxy {
    let read = |name: &str| {
        std::fs::read_to_string(manifest_dir().join("config").join(name))
            .unwrap_or_else(|e| panic!("config/{name}: {e}"))
    };
    let (params, conf) = (read("fastcgi_params"), read("fastcgi.conf"));
    Proxy::start_files(
        &[
            ("junction.conf", site),
            ("fastcgi_params", &params),
            ("fastcgi.conf", &conf),
        ],
        "junction.conf",
    )
}

fn php_proxy(fpm_target: &str, extra: &str) -> Proxy {
    proxy_with(&fill(
        SITE,
        &[
            ("UPSTREAM", &""),
            ("ROOT", &app_root()),
            ("FPM", &fpm_target),
            ("EXTRA", &extra),
        ],
    ))
}

fn get(proxy: &Proxy, path: &str) -> Response {
    proxy.get("php.test", path)
}

fn json(r: &Response) -> Json {
    assert_eq!(r.status, 200, "{}", r.describe());
    parse_json(r.text().trim()).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", r.describe()))
}

fn field<'a>(j: &'a Json, k: &str) -> &'a str {
    j.get(k)
        .and_then(Json::as_str)
        .unwrap_or_else(|| panic!("no {k} in {j:?}"))
}

/// The front controller's view of one request.
fn assert_front_controller(proxy: &Proxy, path: &str, query: &str) {
    let r = get(proxy, path);
    let j = json(&r);
    assert_eq!(field(&j, "REQUEST_URI"), path, "{}", r.describe());
    assert_eq!(field(&j, "QUERY_STRING"), query, "{}", r.describe());
    assert_eq!(field(&j, "SCRIPT_NAME"), "/index.php", "{}", r.describe());
    assert_eq!(
        field(&j, "SCRIPT_FILENAME"),
        format!("{}/index.php", app_root()),
        "{}",
        r.describe()
    );
    assert_eq!(field(&j, "REMOTE_ADDR"), "127.0.0.1", "{}", r.describe());
    // fastcgi_params (Debian's and ours) send HTTP_HOST as $host.
    assert_eq!(field(&j, "HTTP_HOST"), "php.test", "{}", r.describe());
    assert_eq!(
        field(&j, "SERVER_PORT"),
        proxy.port.to_string(),
        "{}",
        r.describe()
    );
    assert_eq!(field(&j, "REQUEST_METHOD"), "GET", "{}", r.describe());
    assert_eq!(
        field(&j, "GATEWAY_INTERFACE"),
        "CGI/1.1",
        "{}",
        r.describe()
    );
}

#[test]
fn front_controller_reports_cgi_variables() {
    let fpm = PhpFpm::start_tcp("");
    let proxy = php_proxy(&fpm.target(), "");
    assert_front_controller(&proxy, "/", "");
    assert_front_controller(&proxy, "/some/pretty/route?x=1", "x=1");
    let j = json(&get(&proxy, "/some/pretty/route?x=1"));
    assert_eq!(
        j.get("GET").and_then(|g| g.get("x")).and_then(Json::as_str),
        Some("1")
    );
    // HEAD goes to PHP too: its headers, no body.
    let r =
        proxy.request(b"HEAD /some/route HTTP/1.1\r\nHost: php.test\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert!(r.body.is_empty());
    // A request header becomes HTTP_NAME.
    let r = proxy.request(
        b"GET /blog/post?id=7 HTTP/1.1\r\nHost: php.test\r\nX-Test: hello\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(field(&json(&r), "HTTP_X_TEST"), "hello");
    // A POST to the front controller keeps its body through try_files and index.
    let r = proxy.request(
        b"POST / HTTP/1.1\r\nHost: php.test\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    let j = json(&r);
    assert_eq!(field(&j, "REQUEST_METHOD"), "POST");
    assert_eq!(field(&j, "SCRIPT_NAME"), "/index.php");
    assert_eq!(field(&j, "CONTENT_LENGTH"), "5");
    assert_eq!(j.get("body_len").and_then(Json::as_u64), Some(5), "{j:?}");
}

#[test]
fn static_files_are_served_by_the_proxy_with_type_304_206_and_head() {
    let fpm = PhpFpm::start_tcp("");
    let proxy = php_proxy(&fpm.target(), "");
    let css = std::fs::read(manifest_dir().join("tests/peers/php/style.css")).unwrap();
    let r = get(&proxy, "/style.css");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        r.header("Content-Type"),
        Some("text/css"),
        "{}",
        r.describe()
    );
    assert_eq!(r.body, css);
    assert!(
        r.header("X-Powered-By").is_none(),
        "served by php:\n{}",
        r.describe()
    );
    let lm = r
        .header("Last-Modified")
        .expect("Last-Modified")
        .to_string();
    let etag = r.header("ETag").expect("ETag").to_string();

    // Conditional GETs: If-Modified-Since with the same date, If-None-Match with the tag.
    for cond in [
        format!("If-Modified-Since: {lm}"),
        format!("If-None-Match: {etag}"),
    ] {
        let r = proxy.request(
            format!(
                "GET /style.css HTTP/1.1\r\nHost: php.test\r\n{cond}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 304, "{cond}: {}", r.describe());
        assert!(r.body.is_empty());
        assert_eq!(r.header("ETag"), Some(etag.as_str()));
    }
    // A different date or tag: the whole file.
    let r = proxy.request(
        b"GET /style.css HTTP/1.1\r\nHost: php.test\r\nIf-None-Match: \"other\"\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body, css);

    // Range → 206.
    let r = proxy.request(
        b"GET /style.css HTTP/1.1\r\nHost: php.test\r\nRange: bytes=0-3\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 206, "{}", r.describe());
    assert_eq!(r.body, &css[..4]);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes 0-3/{}", css.len()).as_str())
    );

    // HEAD: the length, no body.
    let r =
        proxy.request(b"HEAD /style.css HTTP/1.1\r\nHost: php.test\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Length"),
        Some(css.len().to_string().as_str())
    );
    assert!(r.body.is_empty());

    // A directory: $uri/ then index (index.php is first, but docs/ only has index.html).
    let r = get(&proxy, "/docs");
    assert_eq!(r.status, 301, "{}", r.describe());
    assert!(
        r.header("Location").is_some_and(|l| l.ends_with("/docs/")),
        "{}",
        r.describe()
    );
    let r = get(&proxy, "/docs/");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "docs index\n");
}

#[test]
fn php_status_codes_redirect_and_three_cookies_arrive_as_sent() {
    let fpm = PhpFpm::start_tcp("");
    let proxy = php_proxy(&fpm.target(), "");
    for code in [201u16, 404, 418, 503] {
        let r = get(&proxy, &format!("/status.php?code={code}"));
        assert_eq!(r.status, code, "{}", r.describe());
        assert_eq!(r.header("X-Php-Status"), Some(code.to_string().as_str()));
        assert_eq!(r.text(), format!("php says {code}\n"), "{}", r.describe());
    }
    let r = get(&proxy, "/redirect.php");
    assert_eq!(r.status, 302, "{}", r.describe());
    assert_eq!(
        r.header("Location"),
        Some("/landing?from=php"),
        "{}",
        r.describe()
    );
    let r = get(&proxy, "/redirect.php?code=301");
    assert_eq!(r.status, 301, "{}", r.describe());
    assert_eq!(r.header("Location"), Some("/landing?from=php"));

    let r = get(&proxy, "/cookies.php");
    assert_eq!(r.status, 200, "{}", r.describe());
    let cookies = r.header_all("Set-Cookie");
    assert_eq!(cookies.len(), 3, "{}", r.describe());
    assert_eq!(cookies[0], "first=one");
    assert_eq!(cookies[1], "second=two; path=/shop");
    assert_eq!(cookies[2], "third=three; HttpOnly");
    // CGI's own Status header is not passed on.
    assert!(r.header("Status").is_none(), "{}", r.describe());
}

/// A script's own `Server`, `Date` and `X-Pad` reach the client as nginx passes them
/// from FastCGI (fastcgi_hide_header hides neither), with no `Server` or `Date` of
/// the proxy's beside them; a script that sends none gets the proxy's.
#[test]
fn a_scripts_server_date_and_x_pad_pass_and_replace_the_proxys() {
    let fpm = PhpFpm::start_tcp("");
    let proxy = php_proxy(&fpm.target(), "");
    let r = get(&proxy, "/own_headers.php");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "own headers\n");
    assert_eq!(r.header_all("Server"), ["php-app"], "{}", r.describe());
    assert_eq!(
        r.header_all("Date"),
        ["Mon, 01 Jan 2024 00:00:00 GMT"],
        "{}",
        r.describe()
    );
    assert_eq!(r.header("X-Pad"), Some("pad"), "{}", r.describe());
    let r = get(&proxy, "/status.php?code=201");
    assert_eq!(r.header_all("Server").len(), 1, "{}", r.describe());
    assert!(
        r.header("Server").unwrap().starts_with(product()),
        "{}",
        r.describe()
    );
    assert_eq!(r.header_all("Date").len(), 1, "{}", r.describe());
}

#[test]
fn intercept_errors_on_lets_error_page_replace_php_errors() {
    let fpm = PhpFpm::start_tcp("");
    let proxy = php_proxy(
        &fpm.target(),
        "fastcgi_intercept_errors on; error_page 404 /custom404.html;",
    );
    let r = get(&proxy, "/status.php?code=404");
    assert_eq!(r.status, 404, "{}", r.describe());
    assert_eq!(
        r.text(),
        "<h1>custom not found page</h1>\n",
        "{}",
        r.describe()
    );
    // A status without an error_page passes unchanged.
    let r = get(&proxy, "/status.php?code=418");
    assert_eq!(r.status, 418);
    assert_eq!(r.text(), "php says 418\n");
}

/// `n` bytes that are not a short period (an LCG), so a lost or repeated piece shows.
fn pseudo_random(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) as u8
        })
        .collect()
}

#[test]
fn multipart_upload_of_10_mb_and_a_chunked_post_arrive_whole() {
    let fpm = PhpFpm::start_tcp("");
    let proxy = php_proxy(&fpm.target(), "");
    let file = pseudo_random(10 * 1024 * 1024);
    let md5 = md5_hex(&file);
    let boundary = "----junction-test-boundary-7d3f";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"blob.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut raw = format!(
        "POST /upload.php HTTP/1.1\r\nHost: php.test\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    let r = proxy.request(&raw);
    let j = json(&r);
    assert_eq!(field(&j, "kind"), "multipart", "{j:?}");
    assert_eq!(j.get("error").and_then(Json::as_u64), Some(0), "{j:?}");
    assert_eq!(
        j.get("size").and_then(Json::as_u64),
        Some(file.len() as u64),
        "{j:?}"
    );
    assert_eq!(field(&j, "md5"), md5, "md5 computed by PHP vs the client's");
    let rss = proxy.rss_kb();
    eprintln!("10 MB upload: proxy peak RSS {} KiB", rss.peak_kb);

    // A chunked body (no Content-Length): buffered so CONTENT_LENGTH is exact.
    let data = pseudo_random(1_500_000);
    let mut raw = b"POST /upload.php HTTP/1.1\r\nHost: php.test\r\nContent-Type: application/octet-stream\r\n\
Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        .to_vec();
    for piece in data.chunks(100_003) {
        raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        raw.extend_from_slice(piece);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = proxy.request(&raw);
    let j = json(&r);
    assert_eq!(field(&j, "kind"), "raw", "{j:?}");
    assert_eq!(field(&j, "content_length"), data.len().to_string(), "{j:?}");
    assert_eq!(
        j.get("size").and_then(Json::as_u64),
        Some(data.len() as u64),
        "{j:?}"
    );
    assert_eq!(field(&j, "md5"), md5_hex(&data));
}

#[test]
fn a_50_mb_php_response_is_byte_identical_and_proxy_rss_stays_under_64_mb() {
    const N: usize = 50 * 1024 * 1024;
    let fpm = PhpFpm::start_tcp("");
    let proxy = php_proxy(&fpm.target(), "");
    let mut stream = http_stream(
        proxy.port,
        get_request("php.test", &format!("/big.php?bytes={N}")).as_bytes(),
    );
    assert_eq!(stream.head.status, 200, "{}", stream.head.describe());
    let body = stream.read_to_end().expect("body");
    assert_eq!(body.len(), N);
    assert_eq!(
        big_mismatch(&body, N),
        None,
        "body differs from the pattern"
    );
    let rss = proxy.rss_kb();
    eprintln!(
        "50 MB response: proxy peak RSS {} KiB, current {} KiB",
        rss.peak_kb, rss.current_kb
    );
    assert!(rss.peak_kb < 64 * 1024, "peak RSS {} KiB", rss.peak_kb);
}

#[test]
fn unbuffered_first_part_arrives_before_the_script_ends() {
    let fpm = PhpFpm::start_tcp("");
    let proxy = php_proxy(&fpm.target(), "fastcgi_buffering off;");
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("flag");
    let mut stream = http_stream(
        proxy.port,
        get_request("php.test", &format!("/stream.php?flag={}", flag.display())).as_bytes(),
    );
    assert_eq!(stream.head.status, 200, "{}", stream.head.describe());
    // The script waits for the flag, which exists only after part one was read here.
    let first = stream.read_until(b"part one\n").expect("part one");
    assert_eq!(first, b"part one\n");
    std::fs::write(&flag, b"go").unwrap();
    let rest = stream.read_to_end().expect("rest");
    assert_eq!(rest, b"part two\n");
}

#[test]
fn x_accel_buffering_no_from_php_streams_with_buffering_on() {
    let fpm = PhpFpm::start_tcp("");
    let proxy = php_proxy(&fpm.target(), "");
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("flag");
    let mut stream = http_stream(
        proxy.port,
        get_request(
            "php.test",
            &format!("/stream.php?xab=no&flag={}", flag.display()),
        )
        .as_bytes(),
    );
    assert_eq!(stream.head.status, 200, "{}", stream.head.describe());
    // X-Accel-* headers are for the proxy, not the client.
    assert!(stream.head.header("X-Accel-Buffering").is_none());
    let first = stream.read_until(b"part one\n").expect("part one");
    assert_eq!(first, b"part one\n");
    std::fs::write(&flag, b"go").unwrap();
    assert_eq!(stream.read_to_end().expect("rest"), b"part two\n");
}

#[test]
fn a_php_header_over_fastcgi_buffer_size_is_502() {
    let fpm = PhpFpm::start_tcp("");
    let proxy = php_proxy(&fpm.target(), "");
    let r = get(&proxy, "/bigheader.php?bytes=8000");
    assert_eq!(r.status, 502, "{}", r.describe());
    if let Err(log) = proxy.wait_error_log("upstream sent too big header", Duration::from_secs(5)) {
        panic!("no \"too big header\" line:\n{log}");
    }
    // Within the buffer: passes.
    let r = get(&proxy, "/bigheader.php?bytes=1000");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.header("X-Big").map(str::len), Some(1000));
    // A bigger fastcgi_buffer_size lets the big one through.
    let proxy = php_proxy(
        &fpm.target(),
        "fastcgi_buffer_size 16k; fastcgi_buffers 8 16k;",
    );
    let r = get(&proxy, "/bigheader.php?bytes=8000");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.header("X-Big").map(str::len), Some(8000));
}

#[test]
fn hide_header_and_pass_request_headers_and_body_off() {
    let fpm = PhpFpm::start_tcp("");
    let variant = |path: &str, lines: &str| {
        format!(
            "    location = {path} {{
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $document_root/index.php;
        {lines}
        fastcgi_pass {fpm};
    }}

    location / {{",
            fpm = fpm.target()
        )
    };
    let site = fill(
        SITE,
        &[
            ("UPSTREAM", &""),
            ("ROOT", &app_root()),
            ("FPM", &fpm.target()),
            ("EXTRA", &""),
        ],
    )
    .replacen(
        "    location / {",
        &variant("/hidden", "fastcgi_hide_header X-Powered-By;"),
        1,
    )
    .replacen(
        "    location / {",
        &variant(
            "/bare",
            "fastcgi_pass_request_headers off; fastcgi_pass_request_body off;",
        ),
        1,
    );
    let proxy = proxy_with(&site);
    let req = |path: &str| {
        proxy.request(
            format!(
                "POST {path} HTTP/1.1\r\nHost: php.test\r\nX-Test: yes\r\n\
                 Content-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody"
            )
            .as_bytes(),
        )
    };
    // The default: PHP's X-Powered-By passes, headers and body reach PHP.
    let r = req("/index.php");
    assert!(r.header("X-Powered-By").is_some(), "{}", r.describe());
    let j = json(&r);
    assert_eq!(field(&j, "HTTP_X_TEST"), "yes");
    assert_eq!(j.get("body_len").and_then(Json::as_u64), Some(4));
    let r = req("/hidden");
    assert!(r.header("X-Powered-By").is_none(), "{}", r.describe());
    assert_eq!(field(&json(&r), "HTTP_X_TEST"), "yes");
    let r = req("/bare");
    let j = json(&r);
    assert!(
        j.get("HTTP_X_TEST").is_some_and(|v| *v == Json::Null),
        "{j:?}"
    );
    assert_eq!(j.get("body_len").and_then(Json::as_u64), Some(0), "{j:?}");
}

#[test]
fn keep_conn_with_upstream_keepalive_reuses_fastcgi_connections() {
    let fpm = PhpFpm::start_tcp("");
    // Connections are counted by a relay in front of php-fpm: php-fpm's status page
    // `accepted conn` counts requests, not connections (shown below).
    let relay = ConnCounter::start(SocketAddr::from((Ipv4Addr::LOCALHOST, fpm.port())));
    let site = fill(
        SITE,
        &[
            (
                "UPSTREAM",
                &format!(
                    "upstream php {{ server 127.0.0.1:{}; keepalive 8; }}",
                    relay.port
                ),
            ),
            ("ROOT", &app_root()),
            ("FPM", &"php"),
            ("EXTRA", &"fastcgi_keep_conn on;"),
        ],
    )
    .replace(
        "    location / {",
        "    location = /fpm-status {
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_pass php;
        fastcgi_keep_conn on;
    }

    location / {",
    );
    let proxy = proxy_with(&site);
    let accepted_conn = |proxy: &Proxy| -> u64 {
        let r = get(proxy, "/fpm-status");
        assert_eq!(r.status, 200, "{}", r.describe());
        r.text()
            .lines()
            .find_map(|l| l.strip_prefix("accepted conn:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no accepted conn in {}", r.text()))
    };
    let before = accepted_conn(&proxy);
    for i in 0..100 {
        let r = get(&proxy, &format!("/route/{i}?n={i}"));
        assert_eq!(field(&json(&r), "QUERY_STRING"), format!("n={i}"));
    }
    let after = accepted_conn(&proxy);
    // Every FastCGI connection of the test, the two status requests included.
    let conns = relay.accepted();
    eprintln!(
        "100 requests (+2 status): {conns} FastCGI connection(s); php-fpm accepted conn {before} -> {after}"
    );
    assert!(conns >= 1);
    assert!(
        conns < 5,
        "100 sequential requests opened {conns} FastCGI connections"
    );
    assert!(
        after - before >= 100,
        "php-fpm's accepted conn counts requests: {before} -> {after}"
    );
}

#[test]
fn without_keep_conn_every_request_opens_a_connection() {
    // The control for the keepalive test: the relay does count connections.
    let fpm = PhpFpm::start_tcp("");
    let relay = ConnCounter::start(SocketAddr::from((Ipv4Addr::LOCALHOST, fpm.port())));
    let proxy = php_proxy(&format!("127.0.0.1:{}", relay.port), "");
    for i in 0..20 {
        let r = get(&proxy, &format!("/r/{i}"));
        assert_eq!(r.status, 200, "{}", r.describe());
    }
    assert_eq!(relay.accepted(), 20);
}

#[test]
fn error_log_output_reaches_the_proxy_error_log() {
    let fpm = PhpFpm::start_tcp("");
    let proxy = php_proxy(&fpm.target(), "");
    let r = get(&proxy, "/log.php?m=hello-from-php");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "logged\n");
    let needle = "junction-stderr-marker hello-from-php";
    let log = proxy
        .wait_error_log(needle, Duration::from_secs(5))
        .unwrap_or_else(|log| panic!("error log lacks {needle:?}:\n{log}"));
    let line = log.lines().find(|l| l.contains(needle)).unwrap();
    assert!(line.contains("FastCGI sent in stderr"), "{line}");
    assert!(
        line.contains("[warn]") || line.contains("[error]"),
        "{line}"
    );
}

/// `fastcgi_catch_stderr`: stderr output before the head containing a caught string
/// makes the response an invalid header (502); the stderr line is the only error-log
/// line, as nginx's; other output still passes.
#[test]
fn fastcgi_catch_stderr_turns_a_caught_message_into_502() {
    let fpm = PhpFpm::start_tcp("");
    let proxy = php_proxy(
        &fpm.target(),
        "fastcgi_catch_stderr \"catch-me\";\n        fastcgi_catch_stderr \"also-this\";",
    );
    let r = get(&proxy, "/log.php?m=harmless");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "logged\n");
    for m in ["catch-me", "x-also-this-y"] {
        let r = get(&proxy, &format!("/log.php?m={m}"));
        assert_eq!(r.status, 502, "{m}: {}", r.describe());
        let needle = format!("junction-stderr-marker {m}");
        let log = proxy
            .wait_error_log(&needle, Duration::from_secs(5))
            .unwrap_or_else(|log| panic!("error log lacks {needle:?}:\n{log}"));
        assert!(
            !log.contains("invalid header") && !log.contains("caught string"),
            "nginx writes no second line for a caught stderr:\n{log}"
        );
    }
    // The next request is served as before.
    let r = get(&proxy, "/index.php");
    assert_eq!(r.status, 200, "{}", r.describe());
}

#[test]
fn stopped_php_fpm_is_502_and_a_script_past_read_timeout_is_504() {
    let mut fpm = PhpFpm::start_tcp("");
    let proxy = php_proxy(&fpm.target(), "fastcgi_read_timeout 1s;");
    let start = Instant::now();
    let r = get(&proxy, "/sleep.php?s=3");
    let took = start.elapsed();
    assert_eq!(r.status, 504, "{}", r.describe());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2900),
        "504 after {took:?}, want ~1 s"
    );
    assert_eq!(get(&proxy, "/").status, 200);
    fpm.stop();
    let r = get(&proxy, "/");
    assert_eq!(r.status, 502, "{}", r.describe());
    assert!(r.text().contains("502"), "{}", r.describe());
}

#[test]
fn split_path_info_sets_path_info_and_named_captures_work_in_params() {
    let fpm = PhpFpm::start_tcp("");
    let site = format!(
        "server {{
    listen 127.0.0.1:{{PORT}};
    server_name php.test;
    root {root};
    index index.php;

    location ~ ^/(?<app>[a-z]+)/(\\d+)/info$ {{
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $document_root/index.php;
        fastcgi_param APP_NAME $app;
        fastcgi_param APP_ID $2;
        fastcgi_pass {fpm};
    }}

    location ~ \\.php(/|$) {{
        fastcgi_split_path_info ^(.+\\.php)(/.+)$;
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_param PATH_INFO $fastcgi_path_info;
        fastcgi_pass {fpm};
    }}

    location / {{
        fastcgi_index index.php;
        include fastcgi.conf;
        fastcgi_pass {fpm};
    }}
}}
",
        root = app_root(),
        fpm = fpm.target()
    );
    let proxy = proxy_with(&site);
    let j = json(&get(&proxy, "/index.php/some/path?x=1"));
    assert_eq!(field(&j, "SCRIPT_NAME"), "/index.php", "{j:?}");
    assert_eq!(field(&j, "PATH_INFO"), "/some/path", "{j:?}");
    assert_eq!(
        field(&j, "REQUEST_URI"),
        "/index.php/some/path?x=1",
        "{j:?}"
    );
    assert_eq!(
        field(&j, "SCRIPT_FILENAME"),
        format!("{}/index.php", app_root())
    );
    // Without a path after the script: no PATH_INFO.
    let j = json(&get(&proxy, "/index.php"));
    assert_eq!(field(&j, "SCRIPT_NAME"), "/index.php", "{j:?}");
    assert!(
        j.get("PATH_INFO")
            .is_none_or(|v| v.as_str().unwrap_or("").is_empty()),
        "{j:?}"
    );
    // Named and positional captures of the location regex in fastcgi_param.
    let j = json(&get(&proxy, "/shop/42/info"));
    assert_eq!(field(&j, "APP_NAME"), "shop", "{j:?}");
    assert_eq!(field(&j, "APP_ID"), "42", "{j:?}");
    // fastcgi_index: a URI ending in / gets index.php appended to SCRIPT_NAME (and to
    // SCRIPT_FILENAME, which `include fastcgi.conf` sets).
    let j = json(&get(&proxy, "/"));
    assert_eq!(field(&j, "SCRIPT_NAME"), "/index.php", "{j:?}");
    assert_eq!(
        field(&j, "SCRIPT_FILENAME"),
        format!("{}/index.php", app_root())
    );
}

#[test]
fn unix_socket_pool_serves_the_front_controller_and_uploads() {
    let mut fpm = PhpFpm::start_unix("");
    let proxy = php_proxy(&fpm.target(), "");
    assert!(fpm.target().starts_with("unix:/"));
    assert_front_controller(&proxy, "/", "");
    assert_front_controller(&proxy, "/some/pretty/route?x=1", "x=1");
    let data = pseudo_random(300_000);
    let mut raw = format!(
        "POST /upload.php HTTP/1.1\r\nHost: php.test\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        data.len()
    )
    .into_bytes();
    raw.extend_from_slice(&data);
    let j = json(&proxy.request(&raw));
    assert_eq!(field(&j, "md5"), md5_hex(&data));
    let r = get(&proxy, "/style.css");
    assert_eq!(r.header("Content-Type"), Some("text/css"));
    fpm.stop();
    assert_eq!(get(&proxy, "/").status, 502);
}

#[test]
fn fastcgi_pass_needs_a_port_and_catch_stderr_loads() {
    let site = |pass: &str, extra: &str| {
        format!(
            "server {{
    listen 127.0.0.1:8080;
    location ~ \\.php$ {{
        include fastcgi_params;
        fastcgi_pass {pass};
        {extra}
    }}
}}
"
        )
    };
    let params = std::fs::read_to_string(manifest_dir().join("config/fastcgi_params")).unwrap();
    let (out, _dir) = check_config(
        &[
            ("site.conf", &site("127.0.0.1", "")),
            ("fastcgi_params", &params),
        ],
        "site.conf",
    );
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(
        out.stderr.contains("no port in upstream \"127.0.0.1\""),
        "{out:#?}"
    );
    let (out, _dir) = check_config(
        &[
            ("site.conf", &site("unix:/run/php/fpm.sock", "")),
            ("fastcgi_params", &params),
        ],
        "site.conf",
    );
    assert_eq!(out.code, Some(0), "{out:#?}");
    let (out, _dir) = check_config(
        &[
            (
                "site.conf",
                &site("127.0.0.1:9000", "fastcgi_catch_stderr \"PHP Fatal\";"),
            ),
            ("fastcgi_params", &params),
        ],
        "site.conf",
    );
    assert_eq!(out.code, Some(0), "{out:#?}");
}

/// POSTs `total` bytes of a per-MiB varying pattern to `/upload.php` on `port`, written
/// as generated (never whole in memory); returns the response and the body's md5.
fn post_streamed(port: u16, total: usize) -> (Response, String) {
    use md5::Digest;
    use std::io::{Read, Write};
    let mut sock = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = sock.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        writer.write_all(
            format!(
                "POST /upload.php HTTP/1.1\r\nHost: php.test\r\n\
                 Content-Type: application/octet-stream\r\nContent-Length: {total}\r\n\
                 Connection: close\r\n\r\n"
            )
            .as_bytes(),
        )?;
        let block = pseudo_random(1 << 20);
        let mut piece = block.clone();
        let mut sent = 0;
        let mut i: u64 = 0;
        let mut md5 = md5::Md5::new();
        while sent < total {
            piece[..8].copy_from_slice(&i.to_le_bytes());
            let n = (total - sent).min(piece.len());
            writer.write_all(&piece[..n])?;
            md5.update(&piece[..n]);
            sent += n;
            i += 1;
        }
        Ok::<_, std::io::Error>(md5.finalize())
    });
    let mut raw = Vec::new();
    sock.read_to_end(&mut raw).expect("read response");
    let digest = sender.join().unwrap().expect("send body");
    let md5: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    let resp = Response {
        version: "HTTP/1.1".into(),
        status,
        reason: String::new(),
        headers,
        body: raw[split + 4..].to_vec(),
    };
    (resp, md5)
}

#[test]
fn a_100_mb_upload_arrives_intact_with_bounded_proxy_memory() {
    const N: usize = 100 * 1024 * 1024;
    let fpm = PhpFpm::start_tcp("");
    // Buffered to a temp file first (the default), then streamed as it arrives.
    for extra in ["", "fastcgi_request_buffering off;"] {
        let proxy = php_proxy(&fpm.target(), extra);
        let (r, md5) = post_streamed(proxy.port, N);
        let j = json(&r);
        assert_eq!(
            j.get("size").and_then(Json::as_u64),
            Some(N as u64),
            "{extra}: {j:?}"
        );
        assert_eq!(
            field(&j, "md5"),
            md5,
            "{extra}: md5 computed by PHP vs the client's"
        );
        let rss = proxy.rss_kb();
        eprintln!(
            "100 MB upload ({}): proxy peak RSS {} KiB",
            if extra.is_empty() {
                "request buffering on"
            } else {
                extra
            },
            rss.peak_kb
        );
        assert!(
            rss.peak_kb < 64 * 1024,
            "{extra}: peak RSS {} KiB",
            rss.peak_kb
        );
    }
}
