//! `client_body_in_file_only on|clean|off` and `$request_body_file`: the whole body in a
//! named file under `client_body_temp_path`, its path handed to the backend (the upload
//! pattern: `proxy_set_header X-File $request_body_file; proxy_pass_request_body off;`),
//! kept after the request (`on`) or removed (`clean`); no file when the body streams
//! (`proxy_request_buffering off`) or when there is none; `$request_body` empty then.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn wait_line(path: &Path, prefix: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.starts_with(prefix)) {
            return l.split('|').map(str::to_string).collect();
        }
        assert!(Instant::now() < deadline, "no line {prefix:?} in {text:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `path` is gone within a few seconds (`clean` removes the file once the
/// request has ended, after its response).
fn gone(path: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while path.exists() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn client_body_in_file_only_table() {
    let echo = Peer::python("echo.py", &[]);
    let proxy = Proxy::start(&fill(
        r#"
log_format bf '$uri|$request_body_file|$request_body';
server {
    listen 127.0.0.1:{PORT};
    client_body_temp_path {DIR}/bodies;
    access_log {DIR}/bf.log bf;
    proxy_set_header X-File $request_body_file;
    location /on/ { client_body_in_file_only on; proxy_pass http://127.0.0.1:{E}; }
    location /clean/ { client_body_in_file_only clean; proxy_pass http://127.0.0.1:{E}; }
    location /nobody/ {
        client_body_in_file_only clean;
        proxy_pass_request_body off;
        proxy_set_header X-File $request_body_file;
        proxy_set_header Content-Length "";
        proxy_pass http://127.0.0.1:{E};
    }
    location /stream/ {
        client_body_in_file_only on;
        proxy_request_buffering off;
        proxy_pass http://127.0.0.1:{E};
    }
    location /off/ { proxy_pass http://127.0.0.1:{E}; }
}
"#,
        &[("E", &echo.port)],
    ));
    let dir = proxy.dir().join("bodies");
    let log = proxy.dir().join("bf.log");
    let body = "upload=".to_string() + &"x".repeat(3000);
    // (uri, chunked, the body's file handed on, the body sent on, file kept afterwards)
    let rows: &[(&str, bool, bool, bool, bool)] = &[
        ("/on/a", false, true, true, true),
        ("/on/chunked", true, true, true, true),
        ("/clean/a", false, true, true, false),
        ("/clean/chunked", true, true, true, false),
        ("/nobody/a", false, true, false, false),
        ("/stream/a", false, false, true, false),
        ("/off/a", false, false, true, false),
    ];
    let mut failures = Vec::new();
    for &(uri, chunked, file, sent, kept) in rows {
        let framing = if chunked {
            format!(
                "Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                body.len()
            )
        } else {
            format!("Content-Length: {}\r\n\r\n{body}", body.len())
        };
        let r = proxy.request(
            format!("POST {uri} HTTP/1.1\r\nHost: bf.test\r\nConnection: close\r\n{framing}")
                .as_bytes(),
        );
        if r.status != 200 {
            failures.push(format!("{uri}: status {}", r.status));
            continue;
        }
        let e = Echo::from_response(&r);
        let f = wait_line(&log, &format!("{uri}|"));
        let x_file = e.header("X-File").map(str::to_string);
        let body_len = if sent { body.len() as u64 } else { 0 };
        if e.body_len != body_len {
            failures.push(format!("{uri}: backend got {} bytes", e.body_len));
        }
        match (&x_file, file) {
            (None, false) => {
                if f[1] != "-" {
                    failures.push(format!("{uri}: $request_body_file {:?} logged", f[1]));
                }
            }
            (Some(p), true) => {
                let path = Path::new(p);
                if path.parent() != Some(dir.as_path()) {
                    failures.push(format!("{uri}: file {p} not in {}", dir.display()));
                }
                if f[1] != *p {
                    failures.push(format!("{uri}: logged {:?}, header {p}", f[1]));
                }
                if f[2] != "-" {
                    failures.push(format!("{uri}: $request_body {:?} with a body file", f[2]));
                }
                if kept {
                    match std::fs::read_to_string(path) {
                        Ok(t) if t == body => {}
                        Ok(t) => failures.push(format!("{uri}: file holds {} bytes", t.len())),
                        Err(err) => failures.push(format!("{uri}: file {p}: {err}")),
                    }
                } else if !gone(path) {
                    failures.push(format!("{uri}: file {p} still there after the request"));
                }
            }
            (got, _) => failures.push(format!("{uri}: X-File {got:?}, want a file: {file}")),
        }
    }
    // No body at all: no file.
    let r = proxy.get("bf.test", "/on/get");
    let e = Echo::from_response(&r);
    if e.header("X-File").is_some() || wait_line(&log, "/on/get|")[1] != "-" {
        failures.push("/on/get: a file for a request without a body".into());
    }
    assert_table("client_body_in_file_only", &failures, rows.len() + 1);
}

/// `client_body_in_file_only` takes `on`, `clean` or `off`.
#[test]
fn client_body_in_file_only_bad_value() {
    let conf = "server {\n    listen 127.0.0.1:8080;\n    client_body_in_file_only yes;\n}\n";
    let (out, _dir) = check_config(&[("site.conf", conf)], "site.conf");
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    let text = &out.stderr;
    assert!(
        text.contains("invalid value \"yes\"") && text.contains(":3"),
        "{text}"
    );
}

/// The PHP upload pattern against a real php-fpm: `fastcgi_param REQUEST_BODY_FILE
/// $request_body_file; fastcgi_pass_request_body off;` — the script reads the body from
/// the file (`clean`: removed once the request is over); php-fpm reads `php://input`
/// from that file itself.
#[test]
fn php_reads_the_body_file() {
    let fpm = PhpFpm::start_tcp("");
    let root = manifest_dir().join("tests/peers/php");
    let params = std::fs::read_to_string(manifest_dir().join("config/fastcgi_params")).unwrap();
    let site = fill(
        r#"
server {
    listen 127.0.0.1:{PORT};
    root {ROOT};
    client_body_temp_path {DIR}/bodies;
    location = /body_file.php {
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        client_body_in_file_only clean;
        fastcgi_param REQUEST_BODY_FILE $request_body_file;
        fastcgi_pass_request_body off;
        fastcgi_pass {FPM};
    }
}
"#,
        &[("ROOT", &root.display()), ("FPM", &fpm.target())],
    );
    let proxy = Proxy::start_files(
        &[("site.conf", &site), ("fastcgi_params", &params)],
        "site.conf",
    );
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut raw = format!(
        "POST /body_file.php HTTP/1.1\r\nHost: php.test\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    let r = proxy.request(&raw);
    assert_eq!(r.status, 200, "{}", r.describe());
    let j = parse_json(r.text().trim()).unwrap();
    let file = j.get("file").and_then(Json::as_str).unwrap().to_string();
    assert!(
        Path::new(&file).starts_with(proxy.dir().join("bodies")),
        "{j:?}"
    );
    assert_eq!(j.get("exists").and_then(Json::as_bool), Some(true), "{j:?}");
    assert_eq!(
        j.get("md5").and_then(Json::as_str),
        Some(md5_hex(&body).as_str()),
        "{j:?}"
    );
    // php-fpm itself reads the body from REQUEST_BODY_FILE when stdin brought none
    // (`sapi_cgi_read_post`): php://input is the whole body.
    assert_eq!(
        j.get("stdin").and_then(Json::as_u64),
        Some(body.len() as u64),
        "{j:?}"
    );
    assert!(gone(Path::new(&file)), "{file} left after the request");
}
