//! `charset` / `charset_types` / `override_charset` / `source_charset` on a table (static
//! files, proxied responses with and without their own charset, Junction's own pages,
//! redirects); `log_not_found off`; `access_log … if=`, several access_log lines at one
//! level, `gzip=` logs; the sizing and cache knobs nginx configs carry are accepted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

const CONF: &str = "
log_format plain \"$request_uri $status\";
server {
    listen 127.0.0.1:{PORT};
    root {ROOT};
    access_log {DIR}/all.log plain;
    access_log {DIR}/cond.log plain if=$arg_log;
    access_log {DIR}/gz.log plain gzip=5 flush=1s;
    charset utf-8;
    location /s/ { alias {ROOT}/; }
    location /types/ { alias {ROOT}/; charset_types application/json; }
    location /off/ { alias {ROOT}/; charset off; }
    location /p/ { proxy_pass http://127.0.0.1:{B}/; }
    location /po/ { override_charset on; proxy_pass http://127.0.0.1:{B}/; }
    location /src/ { source_charset UTF-8; proxy_pass http://127.0.0.1:{B}/; }
    location /var/ { set $cs utf-8; charset $cs; proxy_pass http://127.0.0.1:{B}/; }
    location /r/ { return 302 /elsewhere; }
    location /ret/ { default_type text/plain; return 200 \"plain text\"; }
    location /quiet/ { alias {ROOT}/; log_not_found off; }
    location /loud/ { alias {ROOT}/; }
}
";

fn site() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a.html"), "<p>html</p>\n").unwrap();
    std::fs::write(d.path().join("a.txt"), "text\n").unwrap();
    std::fs::write(d.path().join("a.json"), "{}\n").unwrap();
    std::fs::write(d.path().join("a.png"), "png\n").unwrap();
    d
}

#[test]
fn charset_table() {
    let root = site();
    let backend = Peer::python("respond.py", &[]);
    let proxy = Proxy::start(&fill(
        CONF,
        &[("ROOT", &root.path().display()), ("B", &backend.port)],
    ));
    let rows: &[(&str, &str, Option<&str>)] = &[
        ("static html", "/s/a.html", Some("text/html; charset=utf-8")),
        (
            "static text/plain (default charset_types)",
            "/s/a.txt",
            Some("text/plain; charset=utf-8"),
        ),
        ("static png", "/s/a.png", Some("image/png")),
        (
            "charset_types replaced: json",
            "/types/a.json",
            Some("application/json; charset=utf-8"),
        ),
        (
            "charset_types replaced: text/plain no longer",
            "/types/a.txt",
            Some("text/plain"),
        ),
        (
            "charset_types replaced: text/html always",
            "/types/a.html",
            Some("text/html; charset=utf-8"),
        ),
        ("charset off", "/off/a.html", Some("text/html")),
        (
            "proxied html",
            "/p/?type=text/html",
            Some("text/html; charset=utf-8"),
        ),
        (
            "proxied with its own charset",
            "/p/?type=text/html;%20charset=koi8-r",
            Some("text/html; charset=koi8-r"),
        ),
        (
            "proxied with other parameters",
            "/p/?type=text/html;%20level=1",
            Some("text/html; level=1"),
        ),
        ("proxied image", "/p/?type=image/png", Some("image/png")),
        (
            "override_charset, same charset",
            "/po/?type=text/html;%20charset=UTF-8",
            Some("text/html; charset=utf-8"),
        ),
        (
            "override_charset, other charset (no charset_map)",
            "/po/?type=text/html;%20charset=koi8-r",
            Some("text/html; charset=koi8-r"),
        ),
        (
            "source_charset the same",
            "/src/?type=text/html",
            Some("text/html; charset=utf-8"),
        ),
        (
            "charset from a variable",
            "/var/?type=text/plain",
            Some("text/plain; charset=utf-8"),
        ),
        ("302 from return", "/r/", Some("text/html")),
        (
            "return 200 with default_type",
            "/ret/",
            Some("text/plain; charset=utf-8"),
        ),
        (
            "Junction's 404 page",
            "/s/missing.html",
            Some("text/html; charset=utf-8"),
        ),
    ];
    let mut failures = Vec::new();
    for (name, path, want) in rows {
        let r = proxy.get("cs.test", path);
        let got = r.header("Content-Type");
        if got != *want {
            failures.push(format!(
                "{name}: Content-Type {got:?}, expected {want:?}\n{}",
                r.describe()
            ));
        }
    }
    assert_table("charset", &failures, rows.len());
    let log = proxy
        .wait_error_log(
            "no \"charset_map\" between the charsets",
            Duration::from_secs(5),
        )
        .unwrap_or_else(|e| e);
    assert!(
        log.contains("between the charsets \"koi8-r\" and \"utf-8\""),
        "{log}"
    );
}

fn wait_for(path: &Path, pred: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let data = std::fs::read(path).unwrap_or_default();
        if pred(&data) {
            return data;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {:?}",
            path.display(),
            String::from_utf8_lossy(&data)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn log_not_found_off_silences_the_error_log_line() {
    let root = site();
    let backend = Peer::python("respond.py", &[]);
    let proxy = Proxy::start(&fill(
        CONF,
        &[("ROOT", &root.path().display()), ("B", &backend.port)],
    ));
    assert_eq!(
        proxy.get("lnf.test", "/quiet/nothing-here.html").status,
        404
    );
    assert_eq!(proxy.get("lnf.test", "/loud/also-missing.html").status, 404);
    // The second line is written after the first would have been: once it is there, the
    // first is known to be absent.
    let log = proxy
        .wait_error_log("also-missing.html", Duration::from_secs(5))
        .expect("the loud location logs its missing file");
    assert!(log.contains("open() \""), "{log}");
    assert!(
        !log.contains("nothing-here.html"),
        "log_not_found off still logged:\n{log}"
    );
    wait_for(&proxy.dir().join("all.log"), |d| {
        String::from_utf8_lossy(d).contains("/loud/also-missing.html 404")
    });
}

#[test]
fn access_log_if_several_logs_and_gzip() {
    let root = site();
    let backend = Peer::python("respond.py", &[]);
    let mut proxy = Proxy::start(&fill(
        CONF,
        &[("ROOT", &root.path().display()), ("B", &backend.port)],
    ));
    for path in [
        "/s/a.html?log=1",
        "/s/a.html?log=0",
        "/s/a.html",
        "/s/a.txt?log=yes",
    ] {
        assert_eq!(proxy.get("log.test", path).status, 200);
    }
    let all = wait_for(&proxy.dir().join("all.log"), |d| {
        String::from_utf8_lossy(d).lines().count() >= 4
    });
    assert_eq!(
        String::from_utf8_lossy(&all),
        "/s/a.html?log=1 200\n/s/a.html?log=0 200\n/s/a.html 200\n/s/a.txt?log=yes 200\n"
    );
    // `if=`: no line when the condition is empty or "0". Its lines are written in order
    // with all.log's, so the last one being there means the others were decided.
    let cond = wait_for(&proxy.dir().join("cond.log"), |d| {
        String::from_utf8_lossy(d).contains("/s/a.txt?log=yes")
    });
    assert_eq!(
        String::from_utf8_lossy(&cond),
        "/s/a.html?log=1 200\n/s/a.txt?log=yes 200\n"
    );
    // gzip: the file is gzip (members), the same lines inside. nginx writes its buffer
    // at flush= or exit: stop the proxy first.
    proxy.signal("QUIT");
    proxy.wait_exit(Duration::from_secs(10));
    let gz = std::fs::read(proxy.dir().join("gz.log")).unwrap();
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .expect("gz.log is gzip");
    assert_eq!(text, String::from_utf8_lossy(&all));
}

#[test]
fn knobs_and_new_directives_are_accepted() {
    let conf = "server {
    listen 127.0.0.1:8080;
    open_file_cache max=1000 inactive=20s;
    open_file_cache_valid 30s;
    open_file_cache_min_uses 2;
    open_file_cache_errors on;
    log_not_found off;
    log_subrequest on;
    client_body_in_single_buffer on;
    charset utf-8;
    charset_types text/css;
    override_charset off;
    source_charset utf-8;
    gzip on;
    gzip_buffers 16 8k;
    gzip_static on;
    access_log {DIR}/a.log combined buffer=32k flush=5s if=$arg_x;
}
";
    let main =
        "events {}\nhttp {\n    types_hash_max_size 2048;\n    types_hash_bucket_size 64;\n    \
         server_names_hash_bucket_size 64;\n    server_names_hash_max_size 512;\n    \
         variables_hash_max_size 1024;\n    variables_hash_bucket_size 64;\n    \
         map_hash_max_size 2048;\n    map_hash_bucket_size 64;\n    include site.conf;\n}\n";
    let (out, _dir) = check_config(&[("nginx.conf", main), ("site.conf", conf)], "nginx.conf");
    assert_eq!(out.code, Some(0), "{out:?}");
    for (line, msg) in [
        (
            "access_log logs/a.log combined flush=5s;",
            "no buffer is defined for access_log",
        ),
        (
            "access_log logs/a.log combined gzip=10;",
            "invalid compression level",
        ),
        (
            "access_log logs/a.log combined bogus=1;",
            "invalid parameter \"bogus=1\"",
        ),
        (
            "access_log logs/a.log nosuchformat;",
            "unknown log format \"nosuchformat\"",
        ),
        (
            "charset utf-8; source_charset koi8-r;",
            "no \"charset_map\" between the charsets \"koi8-r\" and \"utf-8\"",
        ),
    ] {
        let site = format!("server {{\n    listen 127.0.0.1:8080;\n    {line}\n}}\n");
        let (out, _dir) = check_config(&[("site.conf", &site)], "site.conf");
        assert_eq!(out.code, Some(1), "{line}: {out:?}");
        assert!(out.stderr.contains(msg), "{line}: {}", out.stderr);
    }
}
