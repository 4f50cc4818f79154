//! A real uWSGI (Debian `uwsgi` + `uwsgi-plugin-python3`) serving `tests/peers/wsgi_app.py`,
//! for `tests/uwsgi_app.rs` (uwsgi protocol, `--socket`) and `tests/scgi_app.rs` (SCGI,
//! `--scgi-socket` of the same uWSGI).
//!
//! - [`Uwsgi::start`]: on a probed free 127.0.0.1 port or on a unix socket in its own temp
//!   dir; ready once its log says the workers are spawned and the socket accepts a
//!   connection (deadline [`READY_TIMEOUT`]); stopped with SIGINT (then SIGKILL) on drop.
//! - [`Uwsgi::release`]: creates a flag file the app waits for (`/stream`, `/slow`), so a test
//!   decides when the app goes on instead of sleeping.
//! - [`AppEcho`]: the JSON the app answers with (environ, body length and md5).
//! - Scenarios ([`setup`] + one function per behaviour, and `same_scenarios!` for the
//!   `#[test]`s both protocols run alike), parametrised by [`Protocol`].
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use crate::common::{
    big_mismatch, free_port, get_request, http_stream, manifest_dir, md5_hex, parse_json,
    proxy_kind, wait_for_peer, Json, Kind, Proxy, Response, READY_TIMEOUT,
};
use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const INSTALL: &str = "apt-get install -y uwsgi uwsgi-plugin-python3";

/// Which protocol the uWSGI socket speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `--socket`: the uwsgi protocol (`uwsgi_pass`).
    Uwsgi,
    /// `--scgi-socket`: SCGI (`scgi_pass`).
    Scgi,
}

/// Where the uWSGI socket is.
#[derive(Clone, Debug)]
pub enum Addr {
    Tcp(u16),
    Unix(PathBuf),
}

/// A running uWSGI master with two worker processes.
pub struct Uwsgi {
    pub addr: Addr,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

fn check_installed() {
    let ok = Command::new("uwsgi")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "uwsgi is not installed: {INSTALL}");
    let plugins = Path::new("/usr/lib/uwsgi/plugins");
    let has_python3 = fs::read_dir(plugins)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with("python3") && n.ends_with("_plugin.so")
        });
    assert!(
        has_python3,
        "the uwsgi python3 plugin is not installed (no {}/python3*_plugin.so): {INSTALL}",
        plugins.display()
    );
}

impl Uwsgi {
    /// Starts uWSGI speaking `protocol` on a free TCP port (`unix == false`) or on
    /// `DIR/app.sock`.
    pub fn start(protocol: Protocol, unix: bool) -> Uwsgi {
        check_installed();
        // A probed port can be taken by someone else before uWSGI binds it: try another.
        let mut started = Uwsgi::try_start(protocol, unix);
        for _ in 1..3 {
            match &started {
                Err(log) if log.contains("Address already in use") => {
                    started = Uwsgi::try_start(protocol, unix);
                }
                _ => break,
            }
        }
        started.unwrap_or_else(|log| panic!("uwsgi did not start:\n{log}"))
    }

    fn try_start(protocol: Protocol, unix: bool) -> Result<Uwsgi, String> {
        let dir = tempfile::Builder::new()
            .prefix("junction-uwsgi-")
            .tempdir()
            .expect("temp dir");
        let addr = if unix {
            Addr::Unix(dir.path().join("app.sock"))
        } else {
            Addr::Tcp(free_port())
        };
        let bind = match &addr {
            Addr::Tcp(port) => format!("127.0.0.1:{port}"),
            Addr::Unix(path) => path.to_str().expect("utf-8 path").to_string(),
        };
        let socket_opt = match protocol {
            Protocol::Uwsgi => "--socket",
            Protocol::Scgi => "--scgi-socket",
        };
        let flags = dir.path().join("flags");
        fs::create_dir(&flags).expect("mkdir flags");
        let log = fs::File::create(dir.path().join("uwsgi.log")).expect("uwsgi.log");
        let child = Command::new("uwsgi")
            .args(["--plugin", "python3", socket_opt, &bind, "--wsgi-file"])
            .arg(manifest_dir().join("tests/peers/wsgi_app.py"))
            .args([
                "--master",
                "--processes",
                "2",
                "--need-app",
                "--die-on-term",
                "--no-orphans",
                "--buffer-size",
                "65535",
                "--chmod-socket=600",
                "--env",
            ])
            .arg(format!("JUNCTION_TEST_FLAGS={}", flags.display()))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start uwsgi ({e}): {INSTALL}"));
        let mut u = Uwsgi {
            addr,
            child: Some(child),
            dir,
        };
        u.wait_ready()?;
        Ok(u)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let mut child = self.child.take();
        let ready = wait_for_peer(
            "uwsgi",
            &mut child,
            READY_TIMEOUT,
            || self.log().contains("spawned uWSGI worker 2") && self.accepts(),
            || self.log(),
        );
        self.child = child;
        ready
    }

    fn accepts(&self) -> bool {
        match &self.addr {
            Addr::Tcp(port) => TcpStream::connect((Ipv4Addr::LOCALHOST, *port)).is_ok(),
            Addr::Unix(path) => UnixStream::connect(path).is_ok(),
        }
    }

    /// The `*_pass` target: `127.0.0.1:PORT` or `unix:/path`.
    pub fn target(&self) -> String {
        match &self.addr {
            Addr::Tcp(port) => format!("127.0.0.1:{port}"),
            Addr::Unix(path) => format!("unix:{}", path.display()),
        }
    }

    /// The port (panics on a unix socket).
    pub fn port(&self) -> u16 {
        match &self.addr {
            Addr::Tcp(port) => *port,
            Addr::Unix(_) => panic!("uwsgi listens on a unix socket"),
        }
    }

    /// Creates the flag file `name` the app waits for.
    pub fn release(&self, name: &str) {
        let path = self.dir.path().join("flags").join(name);
        fs::File::create(&path)
            .and_then(|mut f| f.write_all(b"go"))
            .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    }

    /// uWSGI's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("uwsgi.log")).unwrap_or_default()
    }

    /// Stops uWSGI (master and workers) and waits until it is gone.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Uwsgi {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What `wsgi_app.py` answers on its echo route.
#[derive(Debug)]
pub struct AppEcho {
    /// Every str-valued environ variable.
    pub environ: Vec<(String, String)>,
    pub body_len: u64,
    pub body_md5: String,
}

impl AppEcho {
    /// Reads the app's answer; panics (showing the response) if it is not one.
    pub fn from_response(r: &Response) -> AppEcho {
        let fail =
            |why: &str| -> ! { panic!("not a wsgi_app.py answer ({why}):\n{}", r.describe()) };
        if r.status != 200 {
            fail("status");
        }
        let j = parse_json(&r.text()).unwrap_or_else(|e| fail(&e));
        let environ = match j.get("environ") {
            Some(Json::Object(m)) => m
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect(),
            _ => fail("environ"),
        };
        AppEcho {
            environ,
            body_len: j
                .get("body_len")
                .and_then(Json::as_u64)
                .unwrap_or_else(|| fail("body_len")),
            body_md5: j
                .get("body_md5")
                .and_then(Json::as_str)
                .unwrap_or_else(|| fail("body_md5"))
                .to_string(),
        }
    }

    /// The environ variable `name`.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.environ
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios shared by uwsgi_app.rs and scgi_app.rs
// ---------------------------------------------------------------------------------------------

impl Protocol {
    /// The directive prefix: `uwsgi` or `scgi`.
    pub fn prefix(self) -> &'static str {
        match self {
            Protocol::Uwsgi => "uwsgi",
            Protocol::Scgi => "scgi",
        }
    }
}

/// The parts of the site config a scenario changes. In each, `{P}` is the directive prefix
/// and `{TARGET}` the uWSGI socket (`127.0.0.1:PORT` or `unix:/path`).
#[derive(Clone, Copy, Default)]
pub struct Site<'a> {
    /// Before the `server` block (an `upstream`).
    pub top: &'a str,
    /// Inside `server`, before the location.
    pub server: &'a str,
    /// Inside `location /`, before `*_pass`.
    pub location: &'a str,
    /// The `*_pass` argument (default `{TARGET}`).
    pub pass: &'a str,
}

const SITE: &str = "{TOP}
server {
    listen 127.0.0.1:{PORT};
    server_name app.test;
    client_max_body_size 20m;
    {SERVER}
    location / {
        include {P}_params;
        {P}_param X_CUSTOM \"custom value\";
        {LOCATION}
        {P}_pass {PASS};
    }
    location = /fallback {
        return 200 \"fallback page\\n\";
    }
}
";

/// A uWSGI app behind the proxy under test.
pub struct Setup {
    pub app: Uwsgi,
    pub proxy: Proxy,
    pub protocol: Protocol,
}

/// Starts uWSGI (TCP or unix socket) and the proxy in front of it with nginx's own lines:
/// `include {P}_params; {P}_pass {TARGET};` plus what `site` adds.
pub fn setup(protocol: Protocol, unix: bool, site: Site<'_>) -> Setup {
    let app = Uwsgi::start(protocol, unix);
    let p = protocol.prefix();
    let pass = if site.pass.is_empty() {
        "{TARGET}"
    } else {
        site.pass
    };
    let config = SITE
        .replace("{TOP}", site.top)
        .replace("{SERVER}", site.server)
        .replace("{LOCATION}", site.location)
        .replace("{PASS}", pass)
        .replace("{P}", p)
        .replace("{TARGET}", &app.target());
    // nginx's params file next to the config (nginx resolves `include` there; junction
    // would also find its built-in copy).
    let params_name = format!("{p}_params");
    let params = fs::read_to_string(manifest_dir().join("config").join(&params_name))
        .expect("config/*_params");
    let proxy = Proxy::start_files(
        &[("site.conf", &config), (&params_name, &params)],
        "site.conf",
    );
    Setup {
        app,
        proxy,
        protocol,
    }
}

/// [`setup`] on TCP with `location` (`{P}` allowed) added to `location /`.
pub fn setup_location(protocol: Protocol, location: &str) -> Setup {
    setup(
        protocol,
        false,
        Site {
            location,
            ..Site::default()
        },
    )
}

/// Sends `raw` and returns the response (the raw client of the testkit).
pub fn send(s: &Setup, raw: &[u8]) -> Response {
    s.proxy.request(raw)
}

/// Asserts the error log mentions `needle` (waits a little: logging may be asynchronous).
pub fn assert_logged(proxy: &Proxy, needle: &str) {
    if let Err(log) = proxy.wait_error_log(needle, Duration::from_secs(5)) {
        panic!("error log does not mention {needle:?}:\n{log}");
    }
}

/// The environ the app sees: method, path, query, client address, HTTP_* headers, the
/// server name and port, and a custom `*_param`.
pub fn environ(protocol: Protocol, unix: bool) {
    let s = setup(protocol, unix, Site::default());
    let raw = "GET /some/path?a=1&b=two HTTP/1.1\r\nHost: app.test\r\n\
               X-Test-Header: hello there\r\nAccept: text/*\r\n\
               Cookie: a=1\r\nCookie: b=2\r\nConnection: close\r\n\r\n";
    let r = send(&s, raw.as_bytes());
    let e = AppEcho::from_response(&r);
    let port = s.proxy.port.to_string();
    // uwsgi_params names the path PATH_INFO, scgi_params DOCUMENT_URI; the SCGI netstring's
    // CONTENT_LENGTH is always a number.
    let (path_var, content_length) = match protocol {
        Protocol::Uwsgi => ("PATH_INFO", ""),
        Protocol::Scgi => ("DOCUMENT_URI", "0"),
    };
    let want: &[(&str, &str)] = &[
        ("REQUEST_METHOD", "GET"),
        (path_var, "/some/path"),
        ("QUERY_STRING", "a=1&b=two"),
        ("REQUEST_URI", "/some/path?a=1&b=two"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("SERVER_NAME", "app.test"),
        ("SERVER_PORT", &port),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("HTTP_HOST", "app.test"),
        ("HTTP_X_TEST_HEADER", "hello there"),
        ("HTTP_ACCEPT", "text/*"),
        ("X_CUSTOM", "custom value"),
        ("CONTENT_LENGTH", content_length),
    ];
    let mut failures = Vec::new();
    for (k, v) in want {
        if e.var(k) != Some(*v) {
            failures.push(format!("{k}: got {:?}, want {v:?}", e.var(k)));
        }
    }
    // Two Cookie lines are one HTTP_COOKIE joined by "; " (nginx 1.23+; nginx 1.22 sent
    // each line as its own var, and the app kept the last).
    let cookie = e.var("HTTP_COOKIE");
    if cookie != Some("a=1; b=2") && !(is_nginx() && cookie == Some("b=2")) {
        failures.push(format!("HTTP_COOKIE: got {cookie:?}, want \"a=1; b=2\""));
    }
    // Hop-by-hop headers are headers like the others for CGI: nginx passes them.
    if e.var("HTTP_CONNECTION") != Some("close") {
        failures.push(format!(
            "HTTP_CONNECTION: got {:?}",
            e.var("HTTP_CONNECTION")
        ));
    }
    if protocol == Protocol::Scgi && e.var("SCGI") != Some("1") {
        failures.push(format!("SCGI: got {:?}", e.var("SCGI")));
    }
    assert!(
        failures.is_empty(),
        "environ seen by the app:\n{}\n{:#?}",
        failures.join("\n"),
        e.environ
    );
    assert!(
        e.var("REMOTE_PORT")
            .is_some_and(|p| p.parse::<u16>().is_ok()),
        "{e:?}"
    );
    // The app's own header passes; the proxy's Server and Date replace the app's.
    assert_eq!(r.header("X-App"), Some("wsgi_app"), "{}", r.describe());
    assert!(r.header("Status").is_none(), "{}", r.describe());
}

/// Deterministic bytes that are not a short repeating pattern (xorshift).
pub fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// A 10 MB POST body arrives whole (the md5 the app computes equals the client's), a
/// chunked body gets an exact CONTENT_LENGTH, and the proxy's peak RSS stays under 64 MB.
pub fn post_md5(protocol: Protocol, site: Site<'_>) {
    let s = setup(protocol, false, site);
    let body = noise(10 * 1024 * 1024);
    let want_md5 = md5_hex(&body);
    let mut raw = format!(
        "POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    let e = AppEcho::from_response(&send(&s, &raw));
    assert_eq!(e.body_len, body.len() as u64);
    assert_eq!(e.body_md5, want_md5, "md5 of the 10 MB body");
    assert_eq!(e.var("CONTENT_LENGTH"), Some("10485760"));
    assert_eq!(e.var("CONTENT_TYPE"), Some("application/octet-stream"));
    assert_eq!(e.var("REQUEST_METHOD"), Some("POST"));

    // Chunked: buffered first so CONTENT_LENGTH is exact.
    let small = &body[..1024 * 1024 + 17];
    let mut raw = b"POST /chunked HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\
                    Connection: close\r\n\r\n"
        .to_vec();
    for piece in small.chunks(100_000) {
        raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        raw.extend_from_slice(piece);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let e = AppEcho::from_response(&send(&s, &raw));
    assert_eq!(e.body_len, small.len() as u64);
    assert_eq!(e.body_md5, md5_hex(small), "md5 of the chunked body");
    assert_eq!(
        e.var("CONTENT_LENGTH"),
        Some(small.len().to_string().as_str())
    );
    // The bodies went through a temp file, not memory.
    let rss = s.proxy.rss_kb();
    assert!(
        rss.peak_kb < 64 * 1024,
        "{:?} peak RSS {} KiB after a 10 MB upload, want < 64 MiB",
        proxy_kind(),
        rss.peak_kb
    );
    eprintln!(
        "{} 10 MB POST: proxy peak RSS {} KiB",
        protocol.prefix(),
        rss.peak_kb
    );
}

/// A 20 MB response arrives byte-identical, and the proxy's peak RSS stays under 64 MB.
pub fn large_response(protocol: Protocol, site: Site<'_>) -> u64 {
    let s = setup(protocol, false, site);
    let n = 20 * 1024 * 1024;
    let r = s.proxy.get("app.test", &format!("/big?n={n}"));
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        big_mismatch(&r.body, n),
        None,
        "20 MB body differs (len {})",
        r.body.len()
    );
    let rss = s.proxy.rss_kb();
    assert!(
        rss.peak_kb < 64 * 1024,
        "{:?} peak RSS {} KiB while relaying 20 MB, want < 64 MiB",
        proxy_kind(),
        rss.peak_kb
    );
    rss.peak_kb
}

/// With `*_buffering off`, a generator's first chunk reaches the client while the app has
/// not produced the last one yet (it waits for a flag this test sets after reading).
pub fn unbuffered_stream(protocol: Protocol) {
    let s = setup_location(protocol, "{P}_buffering off;");
    let mut stream = http_stream(
        s.proxy.port,
        get_request("app.test", "/stream?flag=go").as_bytes(),
    );
    assert_eq!(stream.head.status, 200, "{}", stream.head.describe());
    let first = stream.read_until(b"\n").expect("first chunk");
    assert_eq!(
        String::from_utf8_lossy(&first),
        "first\n",
        "the first chunk must arrive before the app produces the last"
    );
    s.app.release("go");
    let rest = stream.read_to_end().expect("rest of the stream");
    assert_eq!(String::from_utf8_lossy(&rest), "last\n");
}

/// The app gone → 502 with an error-log line naming it.
pub fn stopped_is_502(protocol: Protocol) {
    let mut s = setup(protocol, false, Site::default());
    let r = s.proxy.get("app.test", "/before");
    assert_eq!(r.status, 200, "{}", r.describe());
    s.app.stop();
    let r = s.proxy.get("app.test", "/after");
    assert_eq!(r.status, 502, "{}", r.describe());
    assert!(r.text().contains("502 Bad Gateway"), "{}", r.describe());
    assert_logged(&s.proxy, &format!("127.0.0.1:{}", s.app.port()));
}

/// An app that does not answer within `*_read_timeout 1s` → 504 after about a second.
pub fn read_timeout_is_504(protocol: Protocol) {
    let s = setup_location(protocol, "{P}_read_timeout 1s;");
    let start = Instant::now();
    let r = s.proxy.get("app.test", "/slow?flag=slow");
    let took = start.elapsed();
    s.app.release("slow");
    assert_eq!(r.status, 504, "{}", r.describe());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "504 after {took:?}, want about 1 s"
    );
    assert_logged(&s.proxy, "timed out");
    // The proxy is fine afterwards.
    let r = s.proxy.get("app.test", "/after");
    assert_eq!(r.status, 200, "{}", r.describe());
}

/// `*_pass_request_headers off` (no `HTTP_*` but the explicit params) and `*_hide_header`.
pub fn request_headers_off_and_hide_header(protocol: Protocol) {
    let s = setup_location(
        protocol,
        "{P}_pass_request_headers off; {P}_hide_header X-App;",
    );
    let raw = "GET /switches HTTP/1.1\r\nHost: app.test\r\nX-Test-Header: hello\r\n\
               Connection: close\r\n\r\n";
    let r = send(&s, raw.as_bytes());
    let e = AppEcho::from_response(&r);
    let http: Vec<&str> = e
        .environ
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("HTTP_") && *k != "HTTP_HOST")
        .collect();
    assert!(http.is_empty(), "no request headers: {http:?}");
    // HTTP_HOST is an explicit param of the *_params file.
    assert_eq!(e.var("HTTP_HOST"), Some("app.test"));
    assert_eq!(e.var("X_CUSTOM"), Some("custom value"));
    assert!(r.header("X-App").is_none(), "{}", r.describe());
    assert_eq!(r.header("Content-Type"), Some("application/json"));
}

/// The app's own `Server`, `Date` and `X-Pad` pass as nginx passes them (uwsgi and
/// SCGI hide none of them by default), with no `Server` or `Date` of the proxy's.
pub fn own_server_date(protocol: Protocol) {
    let s = setup_location(protocol, "");
    let r = s.proxy.get("app.test", "/own_headers");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "own headers\n");
    assert_eq!(r.header_all("Server"), ["wsgi-app"], "{}", r.describe());
    assert_eq!(
        r.header_all("Date"),
        ["Mon, 01 Jan 2024 00:00:00 GMT"],
        "{}",
        r.describe()
    );
    assert_eq!(r.header("X-Pad"), Some("pad"), "{}", r.describe());
}

/// `*_intercept_errors`: off, the app's 404 passes as is; on, `error_page` replaces it.
pub fn intercept_errors(protocol: Protocol) {
    let s = setup(
        protocol,
        false,
        Site {
            server: "error_page 404 = /fallback;",
            ..Site::default()
        },
    );
    let r = s.proxy.get("app.test", "/status?code=404");
    assert_eq!(r.status, 404, "{}", r.describe());
    assert_eq!(r.text(), "app says 404\n");
    drop(s);
    let s = setup(
        protocol,
        false,
        Site {
            server: "error_page 404 = /fallback;",
            location: "{P}_intercept_errors on;",
            ..Site::default()
        },
    );
    let r = s.proxy.get("app.test", "/status?code=404");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "fallback page\n");
    // Other statuses still pass.
    let r = s.proxy.get("app.test", "/status?code=201");
    assert_eq!(r.status, 201, "{}", r.describe());
}

/// Whether the proxy under test is nginx (some messages differ).
pub fn is_nginx() -> bool {
    proxy_kind() == Kind::Nginx
}

/// The scenarios every protocol runs the same way, as `#[test]`s of the including file
/// (which defines `const P: Protocol` and has `#[macro_use] mod uwsgi_kit;`).
macro_rules! same_scenarios {
    () => {
        #[test]
        fn environ_over_tcp() {
            environ(P, false);
        }

        #[test]
        fn environ_over_unix_socket() {
            environ(P, true);
        }

        #[test]
        fn unbuffered_generator_delivers_first_chunk_before_last() {
            unbuffered_stream(P);
        }

        #[test]
        fn app_stopped_is_502() {
            stopped_is_502(P);
        }

        #[test]
        fn slow_app_past_read_timeout_is_504() {
            read_timeout_is_504(P);
        }

        #[test]
        fn pass_request_headers_off_and_hide_header() {
            request_headers_off_and_hide_header(P);
        }

        #[test]
        fn intercept_errors_off_passes_the_apps_404_on_uses_error_page() {
            intercept_errors(P);
        }

        #[test]
        fn the_apps_server_date_and_x_pad_pass_and_replace_the_proxys() {
            own_server_date(P);
        }
    };
}
