//! Response compression (ngx_http_gzip_module, gzip_static, and Brotli): a table of
//! proxied responses × gzip settings × request headers, checked for whether the body was
//! compressed, `Vary`, `Content-Length` dropped, the ETag weakened and the decompressed body
//! byte-identical; a 5 MB proxied response; an unbuffered SSE stream compressed event by
//! event; `gzip_static`; `$gzip_ratio`. Brotli rows are Junction-only (nginx OSS has no
//! Brotli): they are skipped, saying so, in the reference mode.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// respond.py's body of `n` bytes.
fn body_of(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < n {
        out.extend_from_slice(format!("line {i} of a compressible response\n").as_bytes());
        i += 1;
    }
    out.truncate(n);
    out
}

fn gunzip(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .map_err(|e| format!("not gzip: {e}"))?;
    Ok(out)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Decodes Brotli with Python's `brotli` module (an implementation other than ours).
fn unbrotli(data: &[u8]) -> Result<Vec<u8>, String> {
    python_brotli_result(data, "decompress")
}

fn python_brotli(data: &[u8], op: &str) -> Vec<u8> {
    python_brotli_result(data, op).unwrap()
}

fn python_brotli_result(data: &[u8], op: &str) -> Result<Vec<u8>, String> {
    let script = format!(
        "import sys, brotli; sys.stdout.buffer.write(brotli.{op}(sys.stdin.buffer.read()))"
    );
    for py in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(py)
            .args(["-c", "import brotli"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            continue;
        }
        let mut child = Command::new(py)
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(data).unwrap();
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            return Err(format!(
                "not brotli: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        return Ok(out.stdout);
    }
    panic!(
        "Python's brotli module is needed to check Brotli output: \
         install it with `apt-get install -y python3-brotli` (scripts/install-test-deps.sh)"
    );
}

const TABLE_CONF: &str = "
log_format ratio \"$uri $gzip_ratio\";
server {
    listen 127.0.0.1:{PORT};
    access_log {DIR}/ratio.log ratio;
    gzip on;
    gzip_min_length 100;
    gzip_types text/plain application/json;
    gzip_vary on;
    location / { proxy_pass http://127.0.0.1:{B}; }
    location /any/ { gzip_proxied any; proxy_pass http://127.0.0.1:{B}/; }
    location /expired/ { gzip_proxied expired; proxy_pass http://127.0.0.1:{B}/; }
    location /cc/ { gzip_proxied no-cache no-store private; proxy_pass http://127.0.0.1:{B}/; }
    location /nolm/ { gzip_proxied no_last_modified no_etag; proxy_pass http://127.0.0.1:{B}/; }
    location /auth/ { gzip_proxied auth; proxy_pass http://127.0.0.1:{B}/; }
    location /off/ { gzip off; proxy_pass http://127.0.0.1:{B}/; }
    location /novary/ { gzip_vary off; proxy_pass http://127.0.0.1:{B}/; }
    location /http10/ { gzip_http_version 1.0; proxy_pass http://127.0.0.1:{B}/; }
    location /disable/ { gzip_disable \"curl/\" msie6; proxy_pass http://127.0.0.1:{B}/; }
    location /star/ { gzip_types *; proxy_pass http://127.0.0.1:{B}/; }
    location /level9/ { gzip_comp_level 9; proxy_pass http://127.0.0.1:{B}/; }
}
";

struct Row {
    name: &'static str,
    method: &'static str,
    version: &'static str,
    path: &'static str,
    headers: &'static [&'static str],
    /// Expected: compressed, `Vary: Accept-Encoding` present.
    gzip: bool,
    vary: bool,
    /// Expected ETag as sent (None: none).
    etag: Option<&'static str>,
}

const AE: &str = "Accept-Encoding: gzip, deflate";

const fn row(
    name: &'static str,
    path: &'static str,
    headers: &'static [&'static str],
    gzip: bool,
    vary: bool,
) -> Row {
    Row {
        name,
        method: "GET",
        version: "HTTP/1.1",
        path,
        headers,
        gzip,
        vary,
        etag: None,
    }
}

const PAST: &str = "Expires: Thu, 01 Jan 1970 00:00:01 GMT";
const FUTURE: &str = "Expires: Fri, 01 Jan 2100 00:00:00 GMT";

fn rows() -> Vec<Row> {
    vec![
        row("html, client accepts gzip", "/?len=1000", &[AE], true, true),
        row("html, no Accept-Encoding", "/?len=1000", &[], false, true),
        row(
            "gzip at q=0",
            "/?len=1000",
            &["Accept-Encoding: gzip;q=0"],
            false,
            true,
        ),
        row(
            "gzip at q=0.5 after deflate",
            "/?len=1000",
            &["Accept-Encoding: deflate, gzip;q=0.5"],
            true,
            true,
        ),
        row(
            "x-gzip only",
            "/?len=1000",
            &["Accept-Encoding: x-gzip"],
            false,
            true,
        ),
        row(
            "text/plain in gzip_types",
            "/?type=text/plain&len=1000",
            &[AE],
            true,
            true,
        ),
        row(
            "type with charset parameter",
            "/?type=text/html;%20charset=utf-8&len=1000",
            &[AE],
            true,
            true,
        ),
        row(
            "image/png not in gzip_types",
            "/?type=image/png&len=1000",
            &[AE],
            false,
            false,
        ),
        row("no Content-Type", "/?type=-&len=1000", &[AE], false, false),
        row(
            "shorter than gzip_min_length",
            "/?len=99",
            &[AE],
            false,
            false,
        ),
        row("exactly gzip_min_length", "/?len=100", &[AE], true, true),
        row(
            "chunked (length unknown) and short",
            "/?len=50&chunked=1",
            &[AE],
            true,
            true,
        ),
        row("upstream 404", "/?status=404&len=1000", &[AE], true, true),
        row("upstream 403", "/?status=403&len=1000", &[AE], true, true),
        row("upstream 500", "/?status=500&len=1000", &[AE], false, false),
        row("upstream 201", "/?status=201&len=1000", &[AE], false, false),
        row("upstream 204", "/?status=204&len=0", &[AE], false, false),
        row(
            "already encoded",
            "/?len=1000&h=Content-Encoding:identityx",
            &[AE],
            false,
            false,
        ),
        Row {
            etag: Some("W/\"abc\""),
            ..row(
                "strong ETag weakened",
                "/?len=1000&h=ETag:%22abc%22",
                &[AE],
                true,
                true,
            )
        },
        Row {
            etag: Some("W/\"abc\""),
            ..row(
                "weak ETag kept",
                "/?len=1000&h=ETag:W/%22abc%22",
                &[AE],
                true,
                true,
            )
        },
        Row {
            etag: None,
            ..row(
                "unquoted ETag dropped",
                "/?len=1000&h=ETag:abc",
                &[AE],
                true,
                true,
            )
        },
        Row {
            etag: Some("\"abc\""),
            ..row(
                "ETag kept when not compressed",
                "/?len=1000&h=ETag:%22abc%22",
                &[],
                false,
                true,
            )
        },
        row(
            "Via, gzip_proxied off",
            "/?len=1000",
            &[AE, "Via: 1.1 cache"],
            false,
            true,
        ),
        row(
            "Via, gzip_proxied any",
            "/any/?len=1000",
            &[AE, "Via: 1.1 cache"],
            true,
            true,
        ),
        row(
            "Via, expired, Expires past",
            "/expired/?len=1000&h=Expires:Thu,%2001%20Jan%201970%2000:00:01%20GMT",
            &[AE, "Via: 1.1 cache"],
            true,
            true,
        ),
        row(
            "Via, expired, Expires future",
            "/expired/?len=1000&h=Expires:Fri,%2001%20Jan%202100%2000:00:00%20GMT",
            &[AE, "Via: 1.1 cache"],
            false,
            true,
        ),
        row(
            "Via, expired, no Expires",
            "/expired/?len=1000",
            &[AE, "Via: 1.1 cache"],
            true,
            true,
        ),
        row(
            "Via, private, Cache-Control private",
            "/cc/?len=1000&h=Cache-Control:private,%20max-age=0",
            &[AE, "Via: 1.1 cache"],
            true,
            true,
        ),
        row(
            "Via, private, Cache-Control public",
            "/cc/?len=1000&h=Cache-Control:public",
            &[AE, "Via: 1.1 cache"],
            false,
            true,
        ),
        row(
            "Via, no-store",
            "/cc/?len=1000&h=Cache-Control:no-store",
            &[AE, "Via: 1.1 cache"],
            true,
            true,
        ),
        row(
            "Via, no_last_modified, has Last-Modified",
            "/nolm/?len=1000&h=Last-Modified:Thu,%2001%20Jan%201970%2000:00:01%20GMT",
            &[AE, "Via: 1.1 cache"],
            false,
            true,
        ),
        Row {
            etag: Some("\"e\""),
            ..row(
                "Via, no_etag, has ETag",
                "/nolm/?len=1000&h=ETag:%22e%22",
                &[AE, "Via: 1.1 cache"],
                false,
                true,
            )
        },
        row(
            "Via, no_last_modified no_etag, neither",
            "/nolm/?len=1000",
            &[AE, "Via: 1.1 cache"],
            true,
            true,
        ),
        row(
            "Via, auth, Authorization",
            "/auth/?len=1000",
            &[AE, "Via: 1.1 cache", "Authorization: Basic eDp5"],
            true,
            true,
        ),
        // nginx's ngx_http_gzip_ok falls through to "ok" when none of the tested headers is there.
        row(
            "Via, auth, no Authorization (nothing else to test)",
            "/auth/?len=1000",
            &[AE, "Via: 1.1 cache"],
            true,
            true,
        ),
        row(
            "Via, auth, no Authorization, Cache-Control",
            "/auth/?len=1000&h=Cache-Control:no-cache",
            &[AE, "Via: 1.1 cache"],
            false,
            true,
        ),
        row("gzip off", "/off/?len=1000", &[AE], false, false),
        row("gzip_vary off", "/novary/?len=1000", &[AE], true, false),
        Row {
            version: "HTTP/1.0",
            ..row(
                "HTTP/1.0 under gzip_http_version 1.1",
                "/?len=1000",
                &[AE],
                false,
                true,
            )
        },
        Row {
            version: "HTTP/1.0",
            ..row(
                "HTTP/1.0 under gzip_http_version 1.0",
                "/http10/?len=1000",
                &[AE],
                true,
                true,
            )
        },
        row(
            "gzip_disable regex matches",
            "/disable/?len=1000",
            &[AE, "User-Agent: curl/8.0"],
            false,
            true,
        ),
        row(
            "gzip_disable msie6",
            "/disable/?len=1000",
            &[
                AE,
                "User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)",
            ],
            false,
            true,
        ),
        row(
            "gzip_disable, MSIE 6 SV1",
            "/disable/?len=1000",
            &[
                AE,
                "User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)",
            ],
            true,
            true,
        ),
        row(
            "gzip_disable, other agent",
            "/disable/?len=1000",
            &[AE, "User-Agent: Firefox/120"],
            true,
            true,
        ),
        row(
            "gzip_types *",
            "/star/?type=image/png&len=1000",
            &[AE],
            true,
            true,
        ),
        row("gzip_comp_level 9", "/level9/?len=5000", &[AE], true, true),
        Row {
            method: "HEAD",
            ..row("HEAD", "/?len=1000", &[AE], true, true)
        },
    ]
}

#[test]
fn gzip_table_by_type_length_status_proxied_and_request_headers() {
    let _ = (PAST, FUTURE);
    let backend = Peer::python("respond.py", &[]);
    let proxy = Proxy::start(&fill(TABLE_CONF, &[("B", &backend.port)]));
    let rows = rows();
    let mut failures = Vec::new();
    for r in &rows {
        let mut raw = format!(
            "{} {} {}\r\nHost: gz.test\r\nConnection: close\r\n",
            r.method, r.path, r.version
        );
        for h in r.headers {
            raw.push_str(h);
            raw.push_str("\r\n");
        }
        raw.push_str("\r\n");
        let resp = proxy.request(raw.as_bytes());
        let mut why = Vec::new();
        let ce = resp.header("Content-Encoding");
        let compressed = ce == Some("gzip");
        if compressed != r.gzip {
            why.push(format!("compressed {compressed}, expected {}", r.gzip));
        }
        let vary = resp
            .header_all("Vary")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("Accept-Encoding"));
        if vary != r.vary {
            why.push(format!("Vary: Accept-Encoding {vary}, expected {}", r.vary));
        }
        if compressed && resp.header("Content-Length").is_some() {
            why.push("Content-Length kept on a compressed response".into());
        }
        if r.path.contains("ETag") && resp.header("ETag") != r.etag {
            why.push(format!(
                "ETag {:?}, expected {:?}",
                resp.header("ETag"),
                r.etag
            ));
        }
        let len: usize = r
            .path
            .split("len=")
            .nth(1)
            .and_then(|s| s.split('&').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(1000);
        let expect_body = if r.method == "HEAD" || r.path.contains("status=204") {
            Vec::new()
        } else {
            body_of(len)
        };
        let body = if compressed && r.method != "HEAD" {
            match gunzip(&resp.body) {
                Ok(b) => b,
                Err(e) => {
                    why.push(e);
                    Vec::new()
                }
            }
        } else {
            resp.body.clone()
        };
        if body != expect_body && ce.is_none_or(|c| c == "gzip") {
            why.push(format!(
                "decoded body differs ({} bytes, expected {})",
                body.len(),
                expect_body.len()
            ));
        }
        if !why.is_empty() {
            failures.push(format!(
                "{}: {}\n{}",
                r.name,
                why.join("; "),
                resp.describe()
            ));
        }
    }
    assert_table("gzip", &failures, rows.len());
}

/// Polls a log file until a line starting with `prefix` appears.
fn wait_line(path: &std::path::Path, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.starts_with(prefix)) {
            return l.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no log line {prefix:?} in {text:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn gzip_ratio_is_logged_as_nginx_computes_it() {
    let backend = Peer::python("respond.py", &[]);
    let proxy = Proxy::start(&fill(TABLE_CONF, &[("B", &backend.port)]));
    let r = proxy.request(
        format!(
            "GET /level9/?len=20000 HTTP/1.1\r\nHost: gz.test\r\nConnection: close\r\n{AE}\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(
        r.header("Content-Encoding"),
        Some("gzip"),
        "{}",
        r.describe()
    );
    let (zin, zout) = (20000u64, r.body.len() as u64);
    let mut int = zin / zout;
    let mut frac = (zin * 100 / zout) % 100;
    if (zin * 1000 / zout) % 10 > 4 {
        frac += 1;
        if frac > 99 {
            int += 1;
            frac = 0;
        }
    }
    let line = wait_line(&proxy.dir().join("ratio.log"), "/level9/");
    assert_eq!(line, format!("/level9/ {int}.{frac:02}"));
    // Not compressed: `-`.
    let r =
        proxy.request(b"GET /off/?len=10 HTTP/1.1\r\nHost: gz.test\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    let line = wait_line(&proxy.dir().join("ratio.log"), "/off/");
    assert_eq!(line, "/off/ -");
}

#[test]
fn five_mb_proxied_response_is_compressed_and_byte_identical() {
    const N: usize = 5 * 1024 * 1024;
    let backend = Peer::python("big.py", &[]);
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    gzip on;
    gzip_types application/octet-stream;
    location / { proxy_pass http://127.0.0.1:{B}; }
}
",
        &[("B", &backend.port)],
    ));
    let r = proxy.request(
        format!("GET /{N} HTTP/1.1\r\nHost: big.test\r\nConnection: close\r\n{AE}\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Encoding"),
        Some("gzip"),
        "{}",
        r.describe()
    );
    assert!(r.body.len() < N / 10, "{} compressed bytes", r.body.len());
    let body = gunzip(&r.body).unwrap();
    assert_eq!(body.len(), N);
    assert_eq!(big_mismatch(&body, N), None, "first differing byte");
}

/// The chunk sizes of a raw chunked HTTP/1.1 response (the head skipped).
fn chunk_sizes(raw: &[u8]) -> Vec<usize> {
    let mut rest = match raw.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => &raw[p + 4..],
        None => return Vec::new(),
    };
    let mut sizes = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8_lossy(&rest[..eol]).into_owned();
        let Ok(n) = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < eol + 2 + n + 2 {
            break;
        }
        sizes.push(n);
        rest = &rest[eol + 2 + n + 2..];
    }
    sizes
}

/// A fast upstream's body is compressed into pieces of a buffer (nginx's 4k
/// `gzip_buffers`) each, not a small chunk per upstream read.
#[test]
fn compressed_output_goes_out_a_buffer_at_a_time() {
    const N: usize = 1024 * 1024;
    let backend = Peer::python("big.py", &[]);
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    gzip on;
    gzip_comp_level 1;
    gzip_types application/octet-stream;
    location / { proxy_pass http://127.0.0.1:{B}; }
}
",
        &[("B", &backend.port)],
    ));
    let raw = raw_exchange(
        proxy.port,
        format!("GET /{N} HTTP/1.1\r\nHost: big.test\r\nConnection: close\r\n{AE}\r\n\r\n")
            .as_bytes(),
    );
    let sizes = chunk_sizes(&raw);
    let total: usize = sizes.iter().sum();
    assert!(
        !sizes.is_empty() && total > 4096,
        "a chunked, compressed body: {sizes:?}\n{}",
        String::from_utf8_lossy(&raw[..raw.len().min(400)])
    );
    let small: Vec<usize> = sizes[..sizes.len() - 1]
        .iter()
        .copied()
        .filter(|&n| n < 1024)
        .collect();
    assert!(
        small.is_empty(),
        "{} of {} chunks under 1 KB before the last ({total} bytes): {small:?}",
        small.len(),
        sizes.len()
    );
}

fn sse_compressed(location: &str, sse_args: &[&str]) {
    let backend = Peer::python("sse.py", sse_args);
    let conf = format!(
        "server {{
    listen 127.0.0.1:{{PORT}};
    gzip on;
    gzip_min_length 1;
    gzip_types text/event-stream;
    location / {{
        {location}
        proxy_pass http://127.0.0.1:{{B}};
    }}
}}
"
    );
    let proxy = Proxy::start(&fill(&conf, &[("B", &backend.port)]));
    let mut stream = http_stream(
        proxy.port,
        format!("GET /events HTTP/1.1\r\nHost: sse.test\r\nConnection: close\r\n{AE}\r\n\r\n")
            .as_bytes(),
    );
    stream.set_read_timeout(Duration::from_secs(15));
    assert_eq!(stream.head.status, 200, "{}", stream.head.describe());
    assert_eq!(stream.head.header("Content-Encoding"), Some("gzip"));
    let mut dec = flate2::write::GzDecoder::new(Vec::new());
    while !contains(dec.get_ref(), b"data: one\n\n") {
        let chunk = stream
            .read_some()
            .expect("read")
            .expect("the stream ended before event one could be decoded");
        dec.write_all(&chunk).unwrap();
        dec.flush().unwrap();
    }
    assert_eq!(dec.get_ref().as_slice(), b"data: one\n\n");
    let release = backend.request(get_request("sse", "/release").as_bytes());
    assert_eq!(
        release.text(),
        "released",
        "event two was sent before the test released it"
    );
    let rest = stream.read_to_end().expect("read to end");
    dec.write_all(&rest).unwrap();
    let all = dec.finish().unwrap();
    assert_eq!(all.as_slice(), b"data: one\n\ndata: two (released)\n\n");
}

#[test]
fn unbuffered_sse_first_event_arrives_compressed_before_the_second_is_sent() {
    sse_compressed("proxy_buffering off;", &[]);
}

#[test]
fn x_accel_buffering_no_sse_is_compressed_event_by_event() {
    sse_compressed("proxy_buffering on;", &["--accel-no"]);
}

fn static_site() -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let page = body_of(3000);
    std::fs::write(dir.path().join("page.html"), &page).unwrap();
    std::fs::write(dir.path().join("page.html.gz"), gzip(b"precompressed copy")).unwrap();
    std::fs::write(dir.path().join("only.txt.gz"), gzip(b"only the gz exists")).unwrap();
    std::fs::write(dir.path().join("plain.html"), &page).unwrap();
    (dir, page)
}

#[test]
fn gzip_static_serves_the_gz_beside_the_file() {
    let (site, page) = static_site();
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    root {ROOT};
    gzip_vary on;
    location / { gzip_static on; }
    location /always/ { alias {ROOT}/; gzip_static always; }
    location /filter/ { alias {ROOT}/; gzip on; }
}
",
        &[("ROOT", &site.path().display())],
    ));
    let get = |path: &str, headers: &str| {
        proxy.request(
            format!("GET {path} HTTP/1.1\r\nHost: st.test\r\nConnection: close\r\n{headers}\r\n")
                .as_bytes(),
        )
    };
    // Accepting client: the .gz, as is, with the original's type.
    let r = get("/page.html", &format!("{AE}\r\n"));
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        r.header("Content-Encoding"),
        Some("gzip"),
        "{}",
        r.describe()
    );
    assert_eq!(r.header("Content-Type"), Some("text/html"));
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    assert_eq!(gunzip(&r.body).unwrap(), b"precompressed copy");
    let gz_len = std::fs::metadata(site.path().join("page.html.gz"))
        .unwrap()
        .len();
    assert_eq!(
        r.header("Content-Length"),
        Some(gz_len.to_string().as_str())
    );
    // Not accepting: the file, with Vary (a .gz exists).
    let r = get("/page.html", "");
    assert_eq!(r.header("Content-Encoding"), None);
    assert_eq!(r.body, page);
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    // No .gz: the file, no Vary.
    let r = get("/plain.html", &format!("{AE}\r\n"));
    assert_eq!(r.header("Content-Encoding"), None);
    assert_eq!(r.header("Vary"), None);
    assert_eq!(r.body, page);
    // Only the .gz exists.
    let r = get("/only.txt", &format!("{AE}\r\n"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
    assert_eq!(gunzip(&r.body).unwrap(), b"only the gz exists");
    // always: even to a client that does not accept gzip.
    let r = get("/always/page.html", "");
    assert_eq!(
        r.header("Content-Encoding"),
        Some("gzip"),
        "{}",
        r.describe()
    );
    assert_eq!(gunzip(&r.body).unwrap(), b"precompressed copy");
    // The filter on a static file: compressed, Accept-Ranges dropped, ETag weak.
    let r = get("/filter/plain.html", &format!("{AE}\r\n"));
    assert_eq!(
        r.header("Content-Encoding"),
        Some("gzip"),
        "{}",
        r.describe()
    );
    assert_eq!(r.header("Accept-Ranges"), None);
    assert!(
        r.header("ETag").is_some_and(|e| e.starts_with("W/\"")),
        "{}",
        r.describe()
    );
    assert_eq!(gunzip(&r.body).unwrap(), page);
    // A range of a file the filter compresses: the whole file, compressed (nginx's range
    // filter runs after gzip dropped the length).
    let r = get(
        "/filter/plain.html",
        &format!("{AE}\r\nRange: bytes=0-9\r\n"),
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(gunzip(&r.body).unwrap(), page);
    // Without Accept-Encoding the range applies.
    let r = get("/filter/plain.html", "Range: bytes=0-9\r\n");
    assert_eq!(r.status, 206, "{}", r.describe());
    assert_eq!(r.body, &page[..10]);
    // A range of the .gz itself (gzip_static): bytes of the .gz — modern nginx (1.23.4,
    // "Gzip static: ranges support"); nginx 1.22 sends the whole .gz.
    let r = get("/page.html", &format!("{AE}\r\nRange: bytes=0-1\r\n"));
    match proxy_kind() {
        Kind::Junction => {
            assert_eq!(r.status, 206, "{}", r.describe());
            assert_eq!(r.body, b"\x1f\x8b");
        }
        Kind::Nginx => {
            assert_eq!(r.status, 200, "nginx 1.22: {}", r.describe());
            assert_eq!(gunzip(&r.body).unwrap(), b"precompressed copy");
        }
    }
}

fn junction_only(what: &str) -> bool {
    if proxy_kind() == Kind::Nginx {
        eprintln!("{what}: Junction-only (nginx OSS has no Brotli module): skipped on nginx");
        return true;
    }
    false
}

#[test]
fn brotli_is_chosen_by_preference_and_decodes_byte_identical() {
    if junction_only("brotli") {
        return;
    }
    let backend = Peer::python("respond.py", &[]);
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    gzip on;
    gzip_vary on;
    brotli on;
    brotli_comp_level 5;
    brotli_types application/json;
    location / { proxy_pass http://127.0.0.1:{B}; }
    location /gz/ { brotli off; proxy_pass http://127.0.0.1:{B}/; }
}
",
        &[("B", &backend.port)],
    ));
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("/?len=5000", "gzip, deflate, br", Some("br")),
        ("/?len=5000", "br;q=1.0, gzip;q=0.8", Some("br")),
        ("/?len=5000", "gzip;q=1.0, br;q=0.5", Some("gzip")),
        ("/?len=5000", "br", Some("br")),
        ("/?len=5000", "br;q=0, gzip", Some("gzip")),
        ("/?len=5000", "identity", None),
        ("/?len=5000&type=application/json", "br", Some("br")),
        ("/?len=5000&type=application/json", "gzip", None),
        ("/?len=10", "br", None),
        ("/gz/?len=5000", "br, gzip", Some("gzip")),
        ("/?len=300000&chunked=1&pieces=7", "br", Some("br")),
    ];
    let mut failures = Vec::new();
    for (path, ae, expect) in cases {
        let r = proxy.request(
            format!("GET {path} HTTP/1.1\r\nHost: br.test\r\nConnection: close\r\nAccept-Encoding: {ae}\r\n\r\n")
                .as_bytes(),
        );
        let len: usize = path
            .split("len=")
            .nth(1)
            .and_then(|s| s.split('&').next())
            .and_then(|s| s.parse().ok())
            .unwrap();
        let ce = r.header("Content-Encoding");
        let body = match ce {
            Some("br") => unbrotli(&r.body),
            Some("gzip") => gunzip(&r.body),
            _ => Ok(r.body.clone()),
        };
        let mut why = Vec::new();
        if ce != *expect {
            why.push(format!("Content-Encoding {ce:?}, expected {expect:?}"));
        }
        match body {
            Ok(b) if b == body_of(len) => {}
            Ok(b) => why.push(format!("decoded {} bytes, expected {len}", b.len())),
            Err(e) => why.push(e),
        }
        if expect.is_some() && r.header("Content-Length").is_some() {
            why.push("Content-Length kept".into());
        }
        if !why.is_empty() {
            failures.push(format!(
                "{path} with {ae}: {}\n{}",
                why.join("; "),
                r.describe()
            ));
        }
    }
    assert_table("brotli", &failures, cases.len());
}

#[test]
fn brotli_static_serves_the_br_beside_the_file() {
    if junction_only("brotli_static") {
        return;
    }
    let (site, page) = static_site();
    std::fs::write(
        site.path().join("page.html.br"),
        python_brotli(b"precompressed br", "compress"),
    )
    .unwrap();
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    root {ROOT};
    gzip_static on;
    brotli_static on;
}
",
        &[("ROOT", &site.path().display())],
    ));
    let get = |ae: &str| {
        proxy.request(format!("GET /page.html HTTP/1.1\r\nHost: st.test\r\nConnection: close\r\nAccept-Encoding: {ae}\r\n\r\n").as_bytes())
    };
    let r = get("gzip, br");
    assert_eq!(r.header("Content-Encoding"), Some("br"), "{}", r.describe());
    assert_eq!(unbrotli(&r.body).unwrap(), b"precompressed br");
    let r = get("gzip;q=1, br;q=0.1");
    assert_eq!(
        r.header("Content-Encoding"),
        Some("gzip"),
        "{}",
        r.describe()
    );
    assert_eq!(gunzip(&r.body).unwrap(), b"precompressed copy");
    let r = get("identity");
    assert_eq!(r.header("Content-Encoding"), None);
    assert_eq!(r.body, page);
}

#[test]
fn gunzip_decompresses_for_clients_without_gzip() {
    let (site, _page) = static_site();
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    root {ROOT};
    gzip_vary on;
    location / { gzip_static always; gunzip on; }
    location /plain/ { alias {ROOT}/; gzip_static always; }
}
",
        &[("ROOT", &site.path().display())],
    ));
    let get = |path: &str, headers: &str| {
        proxy.request(
            format!("GET {path} HTTP/1.1\r\nHost: gu.test\r\nConnection: close\r\n{headers}\r\n")
                .as_bytes(),
        )
    };
    // A client that takes gzip gets the .gz as it is.
    let r = get("/page.html", &format!("{AE}\r\n"));
    assert_eq!(
        r.header("Content-Encoding"),
        Some("gzip"),
        "{}",
        r.describe()
    );
    assert_eq!(gunzip(&r.body).unwrap(), b"precompressed copy");
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    // One that does not: decompressed, no Content-Length, weak ETag, Vary.
    let r = get("/page.html", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Encoding"), None, "{}", r.describe());
    assert_eq!(r.body, b"precompressed copy");
    assert_eq!(r.header("Content-Length"), None);
    assert_eq!(r.header("Accept-Ranges"), None);
    assert!(
        r.header("ETag").is_some_and(|e| e.starts_with("W/")),
        "{}",
        r.describe()
    );
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    // gzip;q=0 is "does not take gzip".
    let r = get("/page.html", "Accept-Encoding: gzip;q=0\r\n");
    assert_eq!(r.body, b"precompressed copy");
    // Without gunzip the .gz goes to everyone.
    let r = get("/plain/page.html", "");
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
}
