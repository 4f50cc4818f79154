//! HTTP/2 to clients (issue 16, part 2) over h2c with prior knowledge, against real
//! peers: `curl --http2-prior-knowledge` for the feature table (python3 `http.server`,
//! `echo.py`, php-fpm, uWSGI, memcached, static files, error_page, return/rewrite,
//! gzip, POST bodies, a 100 KB response, unbuffered streaming, the access log), and
//! the `h2` crate's client where a test needs to hold streams open, reset them or see
//! GOAWAY (concurrent streams, `http2_max_concurrent_streams`, a reset stream, graceful
//! stop, `keepalive_timeout`, `keepalive_requests`).
//!
//! Every test runs against nginx too (`JUNCTION_TEST_PROXY=nginx`): the configs use
//! `listen … http2`, which nginx 1.22 serves as h2c only. Rows that need nginx 1.25.1+
//! (`http2 on`, HTTP/1.1 beside h2c on one port) or a master process (stop, reload) are
//! Junction-only and say so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
#[allow(unused_macros)]
mod uwsgi_kit;

use bytes::Bytes;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// curl
// ---------------------------------------------------------------------------------------------

/// What curl saw.
#[derive(Debug)]
struct Got {
    /// `%{http_version}`: `2` for HTTP/2.
    version: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn describe(&self) -> String {
        format!(
            "HTTP/{} {} {:?} {:?}",
            self.version,
            self.status,
            self.headers,
            String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
        )
    }
}

fn require_curl_http2() {
    let out = Command::new("curl").arg("-V").output();
    let ok = out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("HTTP2"));
    assert!(
        ok,
        "curl with HTTP/2 support is needed: install it with `apt-get install -y curl`"
    );
}

/// `curl --http2-prior-knowledge` (unless `args` chooses another version) on the URL in
/// `args`: the head and the body. (One URL per run: curl 7.88 fails a second transfer
/// on a reused prior-knowledge connection, against nginx as well.)
fn curl(args: &[&str]) -> Got {
    require_curl_http2();
    let dir = tempfile::tempdir().unwrap();
    let hdr = dir.path().join("h");
    let body = dir.path().join("b");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20"]);
    if !args.iter().any(|a| a.starts_with("--http")) {
        cmd.arg("--http2-prior-knowledge");
    }
    cmd.arg("-D")
        .arg(&hdr)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_version}"])
        .args(args);
    let out = cmd.output().expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = stdout.split_whitespace().next().unwrap_or("").to_string();
    let head = std::fs::read_to_string(&hdr).unwrap_or_default();
    // The last response head (curl writes every transfer's and every 1xx's).
    let last = head
        .split("\r\n\r\n")
        .filter(|h| !h.trim().is_empty())
        .last()
        .unwrap_or("")
        .to_string();
    let mut lines = last.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Got {
        version,
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

fn url(port: u16, path: &str) -> String {
    format!("http://127.0.0.1:{port}{path}")
}

// ---------------------------------------------------------------------------------------------
// memcached (a real one)
// ---------------------------------------------------------------------------------------------

struct Memcached {
    port: u16,
    child: Child,
}

impl Memcached {
    fn start() -> Memcached {
        let present = Command::new("memcached")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            present,
            "memcached is needed and was not found: install it with `apt-get install -y memcached`"
        );
        let port = free_port();
        let child = Command::new("memcached")
            .args(["-u", "root", "-l", "127.0.0.1", "-U", "0", "-m", "16"])
            .args(["-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn memcached");
        let m = Memcached { port, child };
        let deadline = Instant::now() + READY_TIMEOUT;
        while m.command(b"version\r\n").is_none() {
            assert!(Instant::now() < deadline, "memcached on {port} not ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    fn command(&self, cmd: &[u8]) -> Option<String> {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).ok()?;
        s.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
        s.write_all(cmd).ok()?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).ok()?;
        Some(line)
    }

    fn set(&self, key: &str, value: &[u8]) {
        let mut cmd = format!("set {key} 0 0 {}\r\n", value.len()).into_bytes();
        cmd.extend_from_slice(value);
        cmd.extend_from_slice(b"\r\n");
        assert_eq!(self.command(&cmd).as_deref(), Some("STORED\r\n"));
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The feature table
// ---------------------------------------------------------------------------------------------

const TABLE_SITE: &str = r#"
server {
    listen 127.0.0.1:{PORT} http2;
    server_name h2.test;
    access_log {DIR}/h2.log;
    root {DIR}/www;
    gzip on;
    gzip_min_length 10;
    gzip_types text/plain;
    client_max_body_size 1m;

    location /files/ { proxy_pass http://127.0.0.1:{HS}/; }
    location /echo/ { proxy_pass http://127.0.0.1:{ECHO}; }
    location /events { proxy_pass http://127.0.0.1:{SSE}; proxy_buffering off; }
    location /release { proxy_pass http://127.0.0.1:{SSE}; }
    location ~ \.php$ {
        root {PHP};
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_param SERVER_PROTOCOL $server_protocol;
        fastcgi_pass {FPM};
    }
    location /wsgi/ { include uwsgi_params; uwsgi_pass {UWSGI}; }
    location /mc/ {
        set $memcached_key $uri;
        memcached_pass 127.0.0.1:{MC};
        error_page 404 = @miss;
    }
    location @miss { return 200 "missed $uri\n"; }
    location /vars { return 200 "$server_protocol|$host|$http_host|$request\n"; }
    location /moved { return 301 /static.txt; }
    location /rw { rewrite ^/rw/(.*)$ /static.txt last; }
    location /gone { error_page 404 /custom404.html; }
    location /small { client_max_body_size 1k; proxy_pass http://127.0.0.1:{ECHO}; }
}
"#;

/// Every backend and feature over h2c, each row checked the same way under nginx.
#[test]
fn every_backend_and_feature_over_h2c() {
    let files_dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..100 * 1024).map(big_byte).collect();
    std::fs::write(files_dir.path().join("hundred.bin"), &big).unwrap();
    std::fs::write(files_dir.path().join("hello.txt"), "hello world\n").unwrap();
    let hs = Peer::http_server(files_dir.path());
    let echo = Peer::python("echo.py", &[]);
    let sse = Peer::python("sse.py", &[]);
    let fpm = PhpFpm::start_tcp("");
    let uwsgi = uwsgi_kit::Uwsgi::start(uwsgi_kit::Protocol::Uwsgi, false);
    let mc = Memcached::start();
    let php = manifest_dir().join("tests/peers/php");
    let site = TABLE_SITE
        .replace("{HS}", &hs.port.to_string())
        .replace("{ECHO}", &echo.port.to_string())
        .replace("{SSE}", &sse.port.to_string())
        .replace("{PHP}", php.to_str().unwrap())
        .replace("{FPM}", &fpm.target())
        .replace("{UWSGI}", &uwsgi.target())
        .replace("{MC}", &mc.port.to_string());
    let read =
        |name: &str| std::fs::read_to_string(manifest_dir().join("config").join(name)).unwrap();
    let static_text = "static file body, long enough to be gzipped: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\n";
    let proxy = Proxy::start_files(
        &[
            ("junction.conf", &site),
            ("fastcgi_params", &read("fastcgi_params")),
            ("uwsgi_params", &read("uwsgi_params")),
            ("www/static.txt", static_text),
            ("www/custom404.html", "custom not found\n"),
        ],
        "junction.conf",
    );
    mc.set("/mc/page", b"from memcached\n");
    let p = proxy.port;
    let host = ["-H", "Host: h2.test"];
    let mut failures = Vec::new();
    let mut rows = 0;
    let mut row = |name: &str, got: &Got, ok: bool| {
        rows += 1;
        if got.version != "2" {
            failures.push(format!("{name}: not HTTP/2: {}", got.describe()));
        } else if !ok {
            failures.push(format!("{name}: {}", got.describe()));
        }
    };

    // python3 http.server through proxy_pass: a small file and 100 KB byte for byte.
    let g = curl(&[&url(p, "/files/hello.txt")]);
    row(
        "http.server small",
        &g,
        g.status == 200 && g.body == b"hello world\n",
    );
    let g = curl(&[&url(p, "/files/hundred.bin")]);
    row(
        "http.server 100 KB",
        &g,
        g.status == 200 && big_mismatch(&g.body, big.len()).is_none(),
    );
    // No connection-specific header reaches an HTTP/2 client (http.server sends none
    // over h2 anyway; the proxy's own response must not add them).
    row(
        "no connection headers",
        &g,
        ["connection", "keep-alive", "transfer-encoding", "upgrade"]
            .iter()
            .all(|h| g.header(h).is_none()),
    );

    // proxy_pass with a POST body: the upstream sees it whole, and the Host.
    let post: Vec<u8> = (0..50_000).map(|i| (i % 253) as u8).collect();
    let post_file = files_dir.path().join("post.bin");
    std::fs::write(&post_file, &post).unwrap();
    let at_post = format!("@{}", post_file.display());
    let g = curl(&[
        &url(p, "/echo/x?a=1"),
        host[0],
        host[1],
        "--data-binary",
        &at_post,
    ]);
    let e = if g.status == 200 {
        Some(Echo::from_response(&Response {
            status: g.status,
            headers: g.headers.clone(),
            body: g.body.clone(),
            ..Response::default()
        }))
    } else {
        None
    };
    row(
        "proxy_pass POST",
        &g,
        e.as_ref().is_some_and(|e| {
            e.method == "POST"
                && e.path == "/echo/x?a=1"
                && e.body_len == post.len() as u64
                && e.header("host")
                    == Some("127.0.0.1:".to_string() + &echo.port.to_string()).as_deref()
        }),
    );

    // php-fpm: SERVER_PROTOCOL is HTTP/2.0; a POST body's md5.
    let g = curl(&[
        &url(p, "/upload.php"),
        host[0],
        host[1],
        "--data-binary",
        &at_post,
    ]);
    row(
        "fastcgi POST",
        &g,
        g.status == 200 && g.text().contains(&md5_hex(&post)),
    );
    let g = curl(&[&url(p, "/index.php?q=1"), host[0], host[1]]);
    row(
        "fastcgi GET",
        &g,
        g.status == 200 && g.text().contains("\"HTTP_HOST\":\"h2.test\""),
    );

    // uWSGI: the environ says HTTP/2.0; a POST body's md5.
    let g = curl(&[
        &url(p, "/wsgi/env"),
        host[0],
        host[1],
        "--data-binary",
        &at_post,
    ]);
    row(
        "uwsgi POST",
        &g,
        g.status == 200
            && g.text().contains("\"SERVER_PROTOCOL\": \"HTTP/2.0\"")
            && g.text().contains(&md5_hex(&post)),
    );

    // memcached: a hit, and a miss through error_page to a named location.
    let g = curl(&[&url(p, "/mc/page"), host[0], host[1]]);
    row(
        "memcached hit",
        &g,
        g.status == 200 && g.body == b"from memcached\n",
    );
    let g = curl(&[&url(p, "/mc/none"), host[0], host[1]]);
    row(
        "memcached miss",
        &g,
        g.status == 200 && g.text() == "missed /mc/none\n",
    );

    // Static files, gzip, error_page, return, rewrite.
    let g = curl(&[&url(p, "/static.txt"), host[0], host[1]]);
    row("static", &g, g.status == 200 && g.text() == static_text);
    let g = curl(&[
        &url(p, "/static.txt"),
        host[0],
        host[1],
        "-H",
        "Accept-Encoding: gzip",
    ]);
    row(
        "gzip",
        &g,
        g.status == 200
            && g.header("content-encoding") == Some("gzip")
            && g.body.starts_with(&[0x1f, 0x8b]),
    );
    let g = curl(&[&url(p, "/gone/x"), host[0], host[1]]);
    row(
        "error_page",
        &g,
        g.status == 404 && g.text() == "custom not found\n",
    );
    let g = curl(&[&url(p, "/moved"), host[0], host[1]]);
    row(
        "return 301",
        &g,
        g.status == 301
            && g.header("location") == Some(format!("http://h2.test:{p}/static.txt")).as_deref(),
    );
    let g = curl(&[&url(p, "/rw/any"), host[0], host[1]]);
    row(
        "rewrite last",
        &g,
        g.status == 200 && g.text() == static_text,
    );

    // Variables: `:authority` is the Host; `$http_host` exists for it.
    let g = curl(&[&url(p, "/vars?x=1")]);
    row(
        "vars from :authority",
        &g,
        g.text() == format!("HTTP/2.0|127.0.0.1|127.0.0.1:{p}|GET /vars?x=1 HTTP/2.0\n"),
    );

    // client_max_body_size per stream: 413 (a body within the stream window, so the
    // client has sent it all when the answer comes).
    let small_file = files_dir.path().join("small.bin");
    std::fs::write(&small_file, vec![b'x'; 2048]).unwrap();
    let at_small = format!("@{}", small_file.display());
    let g = curl(&[
        &url(p, "/small"),
        host[0],
        host[1],
        "--data-binary",
        &at_small,
    ]);
    if product() == "nginx" && g.version == "0" {
        // nginx 1.22 may reset the stream with the 413 before curl 7.88 reads it
        // ("Stream error in the HTTP/2 framing layer"); its error log still says why.
        rows += 1;
        let log = proxy.error_log();
        if !log.contains("client intended to send too large body: 2048 bytes") {
            failures.push(format!("client_max_body_size: {log}"));
        }
    } else {
        row("client_max_body_size 413", &g, g.status == 413);
    }

    // proxy_buffering off: event one arrives before event two exists.
    rows += 1;
    match stream_sse(p) {
        Ok(()) => {}
        Err(e) => failures.push(format!("unbuffered stream: {e}")),
    }

    // The access log says HTTP/2.0.
    rows += 1;
    let log = wait_file_contains(
        &proxy.dir().join("h2.log"),
        "\"GET /static.txt HTTP/2.0\" 200",
    );
    if !log.contains("\"POST /upload.php HTTP/2.0\" 200") {
        failures.push(format!("access log:\n{log}"));
    }
    assert_table("h2c table", &failures, rows);
}

/// `curl -N` on the unbuffered SSE location: the first event is read before the
/// peer is told to send the second.
fn stream_sse(port: u16) -> Result<(), String> {
    let mut child = Command::new("curl")
        .args(["-sS", "-N", "--max-time", "20", "--http2-prior-knowledge"])
        .arg(url(port, "/events"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).map_err(|e| e.to_string())?;
    if first.trim() != "data: one" {
        let _ = child.kill();
        return Err(format!("first line {first:?}"));
    }
    let r = curl(&[&url(port, "/release")]);
    let mut rest = String::new();
    out.read_to_string(&mut rest).map_err(|e| e.to_string())?;
    let _ = child.wait();
    if r.text() != "released" || !rest.contains("data: two (released)") {
        return Err(format!("release {:?}, rest {rest:?}", r.text()));
    }
    Ok(())
}

/// nginx 1.25.1+: `http2 on` on a plain listen serves h2c with prior knowledge and
/// HTTP/1.1 on the same port (nginx 1.22 has no `http2` directive: Junction-only).
#[test]
fn http2_on_serves_h2c_and_http1_on_one_port() {
    if product() == "nginx" {
        eprintln!("nginx 1.22 has no \"http2\" directive (1.25.1): Junction-only test");
        return;
    }
    let proxy = Proxy::start(
        "server {
    listen 127.0.0.1:{PORT};
    http2 on;
    location / { return 200 \"$server_protocol\\n\"; }
}
",
    );
    let g = curl(&[&url(proxy.port, "/")]);
    assert_eq!(
        (g.version.as_str(), g.text().as_str()),
        ("2", "HTTP/2.0\n"),
        "{}",
        g.describe()
    );
    let g = curl(&["--http1.1", &url(proxy.port, "/")]);
    assert_eq!(
        (g.version.as_str(), g.text().as_str()),
        ("1.1", "HTTP/1.1\n"),
        "{}",
        g.describe()
    );
    // A request line that starts like the preface is still HTTP/1.
    let r = http_request(proxy.port, b"PRI / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.text(), "HTTP/1.1\n", "{}", r.describe());
    // Without `http2`, prior knowledge is not spoken: curl gets no HTTP/2 answer.
    let plain = Proxy::start(
        "server {
    listen 127.0.0.1:{PORT};
    location / { return 200 \"$server_protocol\\n\"; }
}
",
    );
    let g = curl(&[&url(plain.port, "/")]);
    assert_ne!(g.version, "2", "{}", g.describe());
}

/// `listen … http2` is deprecated (nginx 1.25.1+ warns); the obsolete `http2_*`
/// directives load with nginx's warnings; bad values are errors with FILE:LINE.
#[test]
fn http2_directives_load_with_nginx_warnings() {
    if product() == "nginx" {
        eprintln!("the warnings are nginx 1.25.1+'s wording: Junction-only test");
        return;
    }
    let (out, _dir) = check_config(
        &[(
            "j.conf",
            "server {
    listen 127.0.0.1:8080 http2;
    http2 on;
    http2_max_concurrent_streams 64;
    http2_chunk_size 16k;
    http2_body_preread_size 128k;
    http2_idle_timeout 3m;
    http2_max_field_size 4k;
    http2_push_preload on;
    location / { http2_push /style.css; return 204; }
}
",
        )],
        "j.conf",
    );
    let err = &out.stderr;
    assert_eq!(out.code, Some(0), "{err}");
    for w in [
        "the \"listen ... http2\" directive is deprecated, use the \"http2\" directive instead in ",
        "the \"http2_idle_timeout\" directive is obsolete, use the \"keepalive_timeout\" directive instead in ",
        "the \"http2_max_field_size\" directive is obsolete, use the \"large_client_header_buffers\" directive instead in ",
        "the \"http2_push_preload\" directive is obsolete, ignored in ",
        "the \"http2_push\" directive is obsolete, ignored in ",
    ] {
        assert!(err.contains(w), "missing {w:?} in:\n{err}");
    }
    assert!(err.contains("j.conf:2"), "{err}");
    let (out, _dir) = check_config(
        &[(
            "j.conf",
            "server {\n    listen 8080;\n    http2_chunk_size 0;\n}\n",
        )],
        "j.conf",
    );
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("the http2 chunk size cannot be zero")
            && out.stderr.contains("j.conf:3"),
        "{}",
        out.stderr
    );
    let (out, _dir) = check_config(
        &[(
            "j.conf",
            "server {\n    listen 8080;\n    location / { http2 on; }\n}\n",
        )],
        "j.conf",
    );
    assert!(
        out.stderr
            .contains("\"http2\" directive is not allowed here")
            && out.stderr.contains("j.conf:3"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Streams on one connection (the h2 crate's client)
// ---------------------------------------------------------------------------------------------

type Sender = h2::client::SendRequest<Bytes>;

/// An HTTP/2 connection with prior knowledge; the task driving it ends with the
/// connection (its result: how it ended).
async fn h2_connect(port: u16) -> (Sender, tokio::task::JoinHandle<Result<(), h2::Error>>) {
    let tcp = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .expect("connect");
    let (send, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let task = tokio::spawn(conn);
    (send, task)
}

fn get(port: u16, path: &str) -> http::Request<()> {
    http::Request::builder()
        .uri(url(port, path))
        .body(())
        .unwrap()
}

/// Sends a GET and reads the whole response: status and body.
async fn fetch(send: &mut Sender, req: http::Request<()>) -> Result<(u16, Vec<u8>), h2::Error> {
    let mut s = send.clone().ready().await?;
    let (resp, _) = s.send_request(req, true)?;
    let resp = resp.await?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    Ok((status, out))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// 100 concurrent streams on one connection through proxy_pass, fastcgi_pass and
/// uwsgi_pass, every body byte-identical.
#[test]
fn a_hundred_concurrent_streams_through_three_backends() {
    let big = Peer::python("big.py", &[]);
    let fpm = PhpFpm::start_tcp("");
    let uwsgi = uwsgi_kit::Uwsgi::start(uwsgi_kit::Protocol::Uwsgi, false);
    let php = manifest_dir().join("tests/peers/php");
    let site = format!(
        "server {{
    listen 127.0.0.1:{{PORT}} http2;
    location /big/ {{ proxy_pass http://127.0.0.1:{}/; }}
    location = /big {{ include uwsgi_params; uwsgi_pass {}; }}
    location ~ \\.php$ {{
        root {};
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_pass {};
    }}
}}
",
        big.port,
        uwsgi.target(),
        php.display(),
        fpm.target()
    );
    let read =
        |name: &str| std::fs::read_to_string(manifest_dir().join("config").join(name)).unwrap();
    let proxy = Proxy::start_files(
        &[
            ("junction.conf", &site),
            ("fastcgi_params", &read("fastcgi_params")),
            ("uwsgi_params", &read("uwsgi_params")),
        ],
        "junction.conf",
    );
    let port = proxy.port;
    rt().block_on(async move {
        let (send, task) = h2_connect(port).await;
        let mut jobs = Vec::new();
        for i in 0..100usize {
            let mut send = send.clone();
            let n = 20_000 + i * 731;
            let path = match i % 3 {
                0 => format!("/big/{n}"),
                1 => format!("/big?n={n}"),
                _ => format!("/big.php?bytes={n}"),
            };
            jobs.push(tokio::spawn(async move {
                let r = fetch(&mut send, get(port, &path)).await;
                (path, n, r)
            }));
        }
        let mut failures = Vec::new();
        for j in jobs {
            let (path, n, r) = j.await.unwrap();
            match r {
                Ok((200, body)) => {
                    if let Some(at) = big_mismatch(&body, n) {
                        failures.push(format!("{path}: differs at {at} of {}", body.len()));
                    }
                }
                other => failures.push(format!("{path}: {other:?}")),
            }
        }
        assert_table("100 streams", &failures, 100);
        drop(send);
        let _ = task.await;
    });
}

/// `http2_max_concurrent_streams` is the SETTINGS value the client gets and keeps to;
/// 20 requests through a limit of 5 all complete on the one connection.
#[test]
fn max_concurrent_streams_is_announced_and_kept() {
    let proxy = Proxy::start(
        "server {
    listen 127.0.0.1:{PORT} http2;
    http2_max_concurrent_streams 5;
    location / { return 200 \"ok $connection\\n\"; }
}
",
    );
    let port = proxy.port;
    rt().block_on(async move {
        let (send, task) = h2_connect(port).await;
        // The server's SETTINGS arrive with the first exchange.
        let mut s = send.clone();
        fetch(&mut s, get(port, "/")).await.unwrap();
        assert_eq!(send.current_max_send_streams(), 5);
        assert!(
            !send.is_extended_connect_protocol_enabled(),
            "no WebSocket over h2, as nginx"
        );
        let mut jobs = Vec::new();
        for _ in 0..20 {
            let mut s = send.clone();
            jobs.push(tokio::spawn(
                async move { fetch(&mut s, get(port, "/")).await },
            ));
        }
        let mut conns = std::collections::HashSet::new();
        for j in jobs {
            let (status, body) = j.await.unwrap().unwrap();
            assert_eq!(status, 200);
            conns.insert(body);
        }
        assert_eq!(conns.len(), 1, "one connection: {conns:?}");
        drop((s, send));
        let _ = task.await;
    });
}

/// A stream the client resets does not disturb the others on the connection; CONNECT
/// is refused (400: nginx wants `:scheme` and `:path` first).
#[test]
fn a_reset_stream_leaves_the_others_alone() {
    let sse = Peer::python("sse.py", &[]);
    let proxy = Proxy::start(&format!(
        "server {{
    listen 127.0.0.1:{{PORT}} http2;
    location /events {{ proxy_pass http://127.0.0.1:{}; proxy_buffering off; }}
    location / {{ return 200 \"fine\\n\"; }}
}}
",
        sse.port
    ));
    let port = proxy.port;
    rt().block_on(async move {
        let (mut send, task) = h2_connect(port).await;
        // A: the event stream, first event read, then reset by the client.
        let mut s = send.clone().ready().await.unwrap();
        let (resp, _) = s.send_request(get(port, "/events"), true).unwrap();
        drop(s);
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let first = body.data().await.unwrap().unwrap();
        assert!(first.starts_with(b"data: one"), "{first:?}");
        // B, opened while A streams.
        let b = fetch(&mut send, get(port, "/b")).await.unwrap();
        assert_eq!(b, (200, b"fine\n".to_vec()));
        drop(body); // RST_STREAM(CANCEL) for A
        for i in 0..5 {
            let r = fetch(&mut send, get(port, &format!("/after{i}")))
                .await
                .unwrap();
            assert_eq!(r, (200, b"fine\n".to_vec()));
        }
        // CONNECT over h2 (RFC 9113 §8.5: no :scheme, no :path) is refused.
        let connect = http::Request::builder()
            .method("CONNECT")
            .uri("127.0.0.1:9")
            .body(())
            .unwrap();
        let r = fetch(&mut send, connect).await;
        assert!(matches!(r, Ok((400, _))), "{r:?}");
        drop(send);
        let _ = task.await;
    });
}

/// `keepalive_requests`: the stream that reaches it is served, and the connection
/// says GOAWAY and closes once its streams are done.
#[test]
fn keepalive_requests_ends_the_connection_with_goaway() {
    let proxy = Proxy::start(
        "server {
    listen 127.0.0.1:{PORT} http2;
    keepalive_requests 2;
    location / { return 200 \"$connection\\n\"; }
}
",
    );
    let port = proxy.port;
    rt().block_on(async move {
        let (mut send, task) = h2_connect(port).await;
        let one = fetch(&mut send, get(port, "/")).await.unwrap();
        let two = fetch(&mut send, get(port, "/")).await.unwrap();
        assert_eq!((one.0, two.0), (200, 200));
        assert_eq!(one.1, two.1, "the same connection");
        let ended = tokio::time::timeout(Duration::from_secs(10), task).await;
        assert!(
            ended.is_ok(),
            "the connection stayed open after keepalive_requests"
        );
        assert!(fetch(&mut send, get(port, "/")).await.is_err());
        // A new connection is served.
        let (mut send, _task) = h2_connect(port).await;
        let three = fetch(&mut send, get(port, "/")).await.unwrap();
        assert_eq!(three.0, 200);
        assert_ne!(three.1, one.1);
    });
}

/// `keepalive_timeout`: an HTTP/2 connection without streams is closed after it.
#[test]
fn keepalive_timeout_closes_an_idle_connection() {
    let proxy = Proxy::start(
        "server {
    listen 127.0.0.1:{PORT} http2;
    keepalive_timeout 1s;
    location / { return 200 \"ok\\n\"; }
}
",
    );
    let port = proxy.port;
    rt().block_on(async move {
        let (mut send, task) = h2_connect(port).await;
        let t = Instant::now();
        assert_eq!(fetch(&mut send, get(port, "/")).await.unwrap().0, 200);
        let ended = tokio::time::timeout(Duration::from_secs(10), task).await;
        assert!(ended.is_ok(), "the idle connection was not closed");
        assert!(
            t.elapsed() >= Duration::from_millis(900),
            "{:?}",
            t.elapsed()
        );
    });
}

/// Waits until the connection refuses new streams (its GOAWAY arrived); the streams
/// sent before it may still be answered.
async fn wait_goaway(send: &mut Sender, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no GOAWAY");
        let r = fetch(send, get(port, "/quick")).await;
        match r {
            Err(e) => {
                eprintln!("goaway seen: {e:?}");
                return;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Graceful stop (SIGQUIT) sends GOAWAY and lets the stream in flight finish.
#[test]
fn graceful_stop_sends_goaway_and_finishes_streams_in_flight() {
    if product() == "nginx" {
        eprintln!("the reference run has no master process to stop gracefully: Junction-only");
        return;
    }
    let sse = Peer::python("sse.py", &[]);
    let mut proxy = Proxy::start(&format!(
        "server {{
    listen 127.0.0.1:{{PORT}} http2;
    location /events {{ proxy_pass http://127.0.0.1:{}; proxy_buffering off; }}
    location / {{ return 200 \"quick\\n\"; }}
}}
",
        sse.port
    ));
    let port = proxy.port;
    let sse_port = sse.port;
    let pid = proxy.pid();
    let elog = proxy.dir().join("error.log");
    rt().block_on(async move {
        let (mut send, task) = h2_connect(port).await;
        let mut s = send.clone().ready().await.unwrap();
        let (resp, _) = s.send_request(get(port, "/events"), true).unwrap();
        drop(s);
        let mut body = resp.await.unwrap().into_body();
        let first = body.data().await.unwrap().unwrap();
        assert!(first.starts_with(b"data: one"));
        let _ = Command::new("kill")
            .args(["-QUIT", &pid.to_string()])
            .status();
        wait_goaway(&mut send, port).await;
        // The stream in flight still gets the rest.
        let released = http_request(sse_port, b"GET /release HTTP/1.0\r\n\r\n");
        assert_eq!(released.text(), "released");
        let mut rest = Vec::new();
        while let Some(c) = body.data().await {
            match c {
                Ok(c) => rest.extend_from_slice(&c),
                Err(e) => panic!(
                    "{e:?}\n{}",
                    std::fs::read_to_string(&elog).unwrap_or_default()
                ),
            }
        }
        assert!(
            String::from_utf8_lossy(&rest).contains("data: two (released)"),
            "{rest:?}"
        );
        let ended = tokio::time::timeout(Duration::from_secs(10), task).await;
        assert!(
            ended.is_ok(),
            "the connection stayed open after its last stream"
        );
    });
    assert!(
        proxy.wait_exit(Duration::from_secs(10)).is_some(),
        "junction did not exit"
    );
}

/// A reload sends GOAWAY on open HTTP/2 connections (as nginx's old workers do); the
/// next connection runs the new configuration.
#[test]
fn reload_sends_goaway() {
    if product() == "nginx" {
        eprintln!("the reference run has no master process to reload: Junction-only");
        return;
    }
    let conf = |body: &str| {
        format!(
            "server {{
    listen 127.0.0.1:{{PORT}} http2;
    location / {{ return 200 \"{body}\"; }}
}}
"
        )
    };
    let proxy = Proxy::start(&conf("one"));
    let file = proxy.dir().join("junction.conf");
    let port = proxy.port;
    let text = std::fs::read_to_string(&file).unwrap();
    let port_line = text
        .lines()
        .find(|l| l.contains("listen"))
        .unwrap()
        .to_string();
    let pid = proxy.pid();
    rt().block_on(async move {
        let (mut send, task) = h2_connect(port).await;
        assert_eq!(fetch(&mut send, get(port, "/")).await.unwrap().1, b"one");
        std::fs::write(
            &file,
            conf("two").replace("    listen 127.0.0.1:{PORT} http2;", &port_line),
        )
        .unwrap();
        let _ = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status();
        let ended = tokio::time::timeout(Duration::from_secs(10), task).await;
        assert!(
            ended.is_ok(),
            "the connection was not closed after the reload"
        );
        let (mut send, _task) = h2_connect(port).await;
        assert_eq!(fetch(&mut send, get(port, "/")).await.unwrap().1, b"two");
    });
}

/// `http2_chunk_size`: no DATA frame of a response carries more.
#[test]
fn http2_chunk_size_bounds_each_data_frame() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..10_000).map(big_byte).collect();
    std::fs::write(dir.path().join("ten.bin"), &big).unwrap();
    let proxy = Proxy::start(&format!(
        "server {{
    listen 127.0.0.1:{{PORT}} http2;
    http2_chunk_size 1k;
    root {};
}}
",
        dir.path().display()
    ));
    let port = proxy.port;
    rt().block_on(async move {
        let (send, task) = h2_connect(port).await;
        let mut s = send.clone().ready().await.unwrap();
        let (resp, _) = s.send_request(get(port, "/ten.bin"), true).unwrap();
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        while let Some(c) = body.data().await {
            let c = c.unwrap();
            let _ = body.flow_control().release_capacity(c.len());
            sizes.push(c.len());
            all.extend_from_slice(&c);
        }
        assert_eq!(big_mismatch(&all, big.len()), None);
        assert!(sizes.iter().all(|&n| n <= 1024), "{sizes:?}");
        assert!(sizes.len() >= 10, "{sizes:?}");
        drop((s, send, body));
        let _ = task.await;
    });
}

/// `large_client_header_buffers` bounds a request's header list over HTTP/2, and one
/// header field must fit one buffer; a request within them is served.
#[test]
fn large_client_header_buffers_limit_the_header_list() {
    let proxy = Proxy::start(
        "server {
    listen 127.0.0.1:{PORT} http2;
    large_client_header_buffers 4 1k;
    location / { return 200 \"ok\\n\"; }
}
",
    );
    let u = url(proxy.port, "/");
    let fits = format!("X-A: {}", "a".repeat(900));
    let g = curl(&[&u, "-H", &fits]);
    assert_eq!(
        (g.version.as_str(), g.status),
        ("2", 200),
        "{}",
        g.describe()
    );
    // One field beyond one buffer: refused (Junction 400 "client sent too long header
    // line"; nginx: the connection ends with ENHANCE_YOUR_CALM). `~` because nginx
    // measures the field as sent (Huffman-coded): its code is 13 bits long.
    let field = format!("X-A: {}", "~".repeat(1500));
    let g = curl(&[&u, "-H", &field]);
    assert_ne!(g.status, 200, "{}", g.describe());
    // The list beyond number × size: refused (Junction: hyper's 431; nginx: GOAWAY
    // with ENHANCE_YOUR_CALM, "client sent too large header").
    let mut args = vec![u.clone()];
    for i in 0..6 {
        args.push("-H".into());
        args.push(format!("X-{i}: {}", "b".repeat(900)));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let g = curl(&args);
    assert_ne!(g.status, 200, "{}", g.describe());
}

/// The body of a request sent as the stream's flow control allows.
async fn send_body(mut tx: h2::SendStream<Bytes>, data: Bytes) -> Result<(), h2::Error> {
    let mut off = 0;
    while off < data.len() {
        tx.reserve_capacity((data.len() - off).min(256 * 1024));
        let cap = match std::future::poll_fn(|cx| tx.poll_capacity(cx)).await {
            Some(c) => c?,
            None => return Ok(()),
        };
        let n = cap.min(data.len() - off);
        if n == 0 {
            continue;
        }
        tx.send_data(data.slice(off..off + n), off + n == data.len())?;
        off += n;
    }
    Ok(())
}

fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils)");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// A 20 MB download and a 20 MB upload over one HTTP/2 connection through proxy_pass:
/// byte-identical, and the proxy's memory does not grow by the bodies (buffers and
/// temp files, as over HTTP/1).
#[test]
fn twenty_mb_each_way_with_bounded_memory() {
    const TWENTY_MB: usize = 20 * 1024 * 1024;
    let big = Peer::python("big.py", &[]);
    let echo = Peer::python("echo.py", &[]);
    let proxy = Proxy::start(&format!(
        "server {{
    listen 127.0.0.1:{{PORT}} http2;
    client_max_body_size 64m;
    location /big/ {{ proxy_pass http://127.0.0.1:{}/; }}
    location /echo {{ proxy_pass http://127.0.0.1:{}; }}
}}
",
        big.port, echo.port
    ));
    let port = proxy.port;
    let before = proxy.rss_kb();
    let upload: Bytes = (0..TWENTY_MB)
        .map(|i| (i % 249) as u8)
        .collect::<Vec<u8>>()
        .into();
    let want_sha = sha256_hex(&upload);
    let (down, up) = rt().block_on(async move {
        let (mut send, _task) = h2_connect(port).await;
        let down = fetch(&mut send, get(port, &format!("/big/{TWENTY_MB}")))
            .await
            .unwrap();
        let req = http::Request::builder()
            .method("POST")
            .uri(url(port, "/echo"))
            .header("content-length", TWENTY_MB.to_string())
            .body(())
            .unwrap();
        let mut s = send.clone().ready().await.unwrap();
        let (resp, tx) = s.send_request(req, false).unwrap();
        send_body(tx, upload).await.unwrap();
        let resp = resp.await.unwrap();
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut text = Vec::new();
        while let Some(c) = body.data().await {
            let c = c.unwrap();
            let _ = body.flow_control().release_capacity(c.len());
            text.extend_from_slice(&c);
        }
        (down, (status, text))
    });
    assert_eq!(down.0, 200);
    assert_eq!(big_mismatch(&down.1, TWENTY_MB), None, "download");
    assert_eq!(up.0, 200, "{}", String::from_utf8_lossy(&up.1));
    let e = Echo::from_response(&Response {
        status: up.0,
        body: up.1.clone(),
        ..Response::default()
    });
    assert_eq!(e.body_len, TWENTY_MB as u64);
    assert_eq!(e.body_sha256, want_sha);
    let after = proxy.rss_kb();
    let growth = after.peak_kb.saturating_sub(before.peak_kb);
    eprintln!("peak RSS: {before:?} -> {after:?} ({growth} KiB more)");
    assert!(
        growth < 12 * 1024,
        "peak RSS grew by {growth} KiB for 20 MiB each way (before {before:?}, after {after:?})"
    );
}

/// One HTTP/2 frame: length, type, flags, stream, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// `send_timeout`: a client that opened every window and stopped reading is
/// disconnected once the connection could not write for that long.
#[test]
fn send_timeout_ends_a_connection_nobody_reads() {
    const SIZE: usize = 48 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("huge.bin")).unwrap();
    file.set_len(SIZE as u64).unwrap();
    let proxy = Proxy::start(&format!(
        "server {{
    listen 127.0.0.1:{{PORT}} http2;
    send_timeout 1s;
    root {};
}}
",
        dir.path().display()
    ));
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port)).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // SETTINGS_INITIAL_WINDOW_SIZE = 2^31-1, and the connection window as large.
    out.extend(frame(0x4, 0, 0, &[0, 4, 0x7f, 0xff, 0xff, 0xff]));
    out.extend(frame(0x8, 0, 0, &(0x7fff_ffffu32 - 65535).to_be_bytes()));
    // HEADERS (END_STREAM | END_HEADERS): GET http://127.0.0.1:PORT/huge.bin, HPACK
    // literals without Huffman.
    let authority = format!("127.0.0.1:{}", proxy.port);
    let mut block = vec![0x82, 0x86, 0x44, 9];
    block.extend_from_slice(b"/huge.bin");
    block.push(0x41);
    block.push(authority.len() as u8);
    block.extend_from_slice(authority.as_bytes());
    out.extend(frame(0x1, 0x5, 1, &block));
    s.write_all(&out).unwrap();
    // Read nothing while the proxy fills the socket buffers and waits: the timeout is
    // what this test measures, so it waits past it.
    std::thread::sleep(Duration::from_secs(4));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let t = Instant::now();
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the connection was not closed"
        );
    }
    assert!(
        got < SIZE,
        "the whole body arrived ({got} bytes): nothing timed out"
    );
}

/// A client that goes silent (no streams, no answer to the GOAWAY's PING) is
/// disconnected after client_header_timeout and a short lingering, not kept forever.
#[test]
fn a_silent_client_is_disconnected() {
    let proxy = Proxy::start(
        "server {
    listen 127.0.0.1:{PORT} http2;
    client_header_timeout 1s;
    lingering_timeout 1s;
    location / { return 200 \"ok\\n\"; }
}
",
    );
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port)).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    s.write_all(&out).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("still open after {:?}: {e}", t.elapsed()),
        }
    }
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
}

/// The frames a raw HTTP/2 client reads until `stop` says enough (or the connection
/// ends): (type, flags, stream, payload).
fn read_frames(
    s: &mut TcpStream,
    mut stop: impl FnMut(u8, u32, &[u8]) -> bool,
) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut seen = Vec::new();
    let mut head = [0u8; 9];
    loop {
        if s.read_exact(&mut head).is_err() {
            return seen;
        }
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        if s.read_exact(&mut payload).is_err() {
            return seen;
        }
        let done = stop(head[3], stream, &payload);
        seen.push((head[3], head[4], stream, payload));
        if done {
            return seen;
        }
    }
}

/// `http2_max_concurrent_streams` is enforced on a client that ignores it: the stream
/// beyond the limit is refused with RST_STREAM(REFUSED_STREAM), the one within it served.
#[test]
fn streams_beyond_the_limit_are_refused() {
    let sse = Peer::python("sse.py", &[]);
    let proxy = Proxy::start(&format!(
        "server {{
    listen 127.0.0.1:{{PORT}} http2;
    http2_max_concurrent_streams 1;
    location /events {{ proxy_pass http://127.0.0.1:{}; proxy_buffering off; }}
}}
",
        sse.port
    ));
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port)).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let authority = format!("127.0.0.1:{}", proxy.port);
    let headers = |path: &str| {
        let mut block = vec![0x82, 0x86, 0x44, path.len() as u8];
        block.extend_from_slice(path.as_bytes());
        block.push(0x41);
        block.push(authority.len() as u8);
        block.extend_from_slice(authority.as_bytes());
        block
    };
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    s.write_all(&out).unwrap();
    // The server's SETTINGS first (then it has its limit in force), acknowledged.
    read_frames(&mut s, |kind, _, _| kind == 0x4);
    s.write_all(&frame(0x4, 0x1, 0, &[])).unwrap();
    // Stream 1 holds the only slot (the event stream stays open); stream 3 is one too many.
    s.write_all(&frame(0x1, 0x5, 1, &headers("/events")))
        .unwrap();
    read_frames(&mut s, |kind, stream, _| kind == 0x1 && stream == 1);
    s.write_all(&frame(0x1, 0x5, 3, &headers("/events")))
        .unwrap();
    let frames = read_frames(&mut s, |kind, stream, _| kind == 0x3 && stream == 3);
    let rst = frames.iter().find(|f| f.0 == 0x3 && f.2 == 3);
    assert_eq!(
        rst.map(|f| f.3.clone()),
        Some(vec![0, 0, 0, 7]),
        "stream 3 refused (REFUSED_STREAM): {:?}",
        frames.iter().map(|f| (f.0, f.2)).collect::<Vec<_>>()
    );
}
