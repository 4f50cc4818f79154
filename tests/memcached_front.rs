//! The memcached-backed caching front (issue 6, NGINX-SEMANTICS §16, §18, §22) against a
//! real memcached (Debian `memcached`, started here on a free port) and a real application
//! (`tests/peers/cache_app.py`, which fills the cache with PyPI `pymemcache`), with the
//! issue's config unchanged but for ports:
//!
//! ```nginx
//! location / {
//!     set $memcached_key "$uri?$args";
//!     memcached_pass 127.0.0.1:MC_PORT;
//!     error_page 404 502 504 = @app;
//! }
//! location @app { proxy_pass http://127.0.0.1:APP_PORT; }
//! ```
//!
//! Plus the `error_page` / `set` / named location / `internal` tables, and the config
//! errors. Every expectation holds for nginx too (`JUNCTION_TEST_PROXY=nginx`); where the
//! two differ on purpose the test says so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// The application and the front
// ---------------------------------------------------------------------------------------------

fn app(mc: &Memcached) -> Peer {
    Peer::python("cache_app.py", &["--memcached", &mc.port.to_string()])
}

/// The app's hit counter and the requests it saw: (method, target, body length).
fn app_hits(app: &Peer) -> (u64, Vec<(String, String, u64)>) {
    let r = app.request(get_request("app", "/__hits").as_bytes());
    let j = parse_json(&r.text()).unwrap_or_else(|e| panic!("{e}: {}", r.describe()));
    let reqs = j
        .get("requests")
        .and_then(Json::as_array)
        .unwrap()
        .iter()
        .map(|x| {
            let a = x.as_array().unwrap();
            (
                a[0].as_str().unwrap().to_string(),
                a[1].as_str().unwrap().to_string(),
                a[2].as_u64().unwrap(),
            )
        })
        .collect();
    (j.get("hits").and_then(Json::as_u64).unwrap(), reqs)
}

/// The issue's config, unchanged but for ports, plus `extra` locations.
const FRONT: &str = "server {
    listen 127.0.0.1:{PORT};
    server_name mc.test;

    location / {
        set $memcached_key \"$uri?$args\";
        memcached_pass 127.0.0.1:{MC};
        error_page 404 502 504 = @app;
    }
    location @app { proxy_pass http://127.0.0.1:{APP}; }
{EXTRA}
}
";

fn front(mc_port: u16, app_port: u16, extra: &str) -> Proxy {
    Proxy::start(&fill(
        FRONT,
        &[("MC", &mc_port), ("APP", &app_port), ("EXTRA", &extra)],
    ))
}

fn get(proxy: &Proxy, path: &str) -> Response {
    proxy.get("mc.test", path)
}

fn head(proxy: &Proxy, path: &str) -> Response {
    proxy.request(
        format!("HEAD {path} HTTP/1.1\r\nHost: mc.test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn assert_logged(proxy: &Proxy, needle: &str) {
    if let Err(log) = proxy.wait_error_log(needle, Duration::from_secs(5)) {
        panic!("error log does not mention {needle:?}:\n{log}");
    }
}

/// The proxy's own page for `status` (not an upstream's body).
fn assert_own_page(r: &Response, status: u16) {
    assert_eq!(r.status, status, "{}", r.describe());
    assert_eq!(
        r.header("Content-Type"),
        Some("text/html"),
        "{}",
        r.describe()
    );
    let text = r.text();
    assert!(
        text.contains(&format!("<title>{status} ")) && text.contains(product()),
        "{}",
        r.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// The caching front
// ---------------------------------------------------------------------------------------------

#[test]
fn miss_goes_to_the_app_which_fills_the_cache_and_the_next_request_is_a_hit() {
    let mc = Memcached::start();
    let app = app(&mc);
    let proxy = front(mc.port, app.port, "");

    // Miss: memcached's END → 404 → @app; the app answers and stores the page.
    let first = get(&proxy, "/articles/42.html?lang=en");
    assert_eq!(first.status, 200, "{}", first.describe());
    assert_eq!(first.text(), "GET /articles/42.html?lang=en hit 1\n");
    assert_eq!(
        first.header("Content-Type"),
        Some("application/x-cache-app")
    );
    assert_eq!(app_hits(&app).0, 1);
    assert_eq!(
        mc.get("/articles/42.html?lang=en").as_deref(),
        Some(&first.body[..]),
        "the app stored the page under $uri?$args"
    );

    // Hit: same body, from memcached (Content-Type from the extension), app not asked.
    for _ in 0..3 {
        let again = get(&proxy, "/articles/42.html?lang=en");
        assert_eq!(again.status, 200, "{}", again.describe());
        assert_eq!(again.body, first.body);
        assert_eq!(
            again.header("Content-Type"),
            Some("text/html"),
            "{}",
            again.describe()
        );
        assert_eq!(again.header("Content-Length"), Some("36"));
        assert!(again.header("Content-Encoding").is_none());
    }
    assert_eq!(app_hits(&app).0, 1, "hits are served by memcached alone");

    // HEAD of a hit: the head only, from memcached.
    let h = head(&proxy, "/articles/42.html?lang=en");
    assert_eq!(h.status, 200, "{}", h.describe());
    assert_eq!(h.header("Content-Length"), Some("36"));
    assert_eq!(h.header("Content-Type"), Some("text/html"));
    assert!(h.body.is_empty());
    assert_eq!(app_hits(&app).0, 1);

    // Other arguments are another key: a miss again, then a hit.
    let other = get(&proxy, "/articles/42.html?lang=fr");
    assert_eq!(other.text(), "GET /articles/42.html?lang=fr hit 2\n");
    assert_eq!(get(&proxy, "/articles/42.html?lang=fr").body, other.body);
    // No arguments: the key is "/articles/42.html?".
    let bare = get(&proxy, "/articles/42.html");
    assert_eq!(bare.text(), "GET /articles/42.html hit 3\n");
    assert!(mc.get("/articles/42.html?").is_some());
    let bare2 = get(&proxy, "/articles/42.html");
    assert_eq!(bare2.body, bare.body);
    // No extension: default_type.
    let noext = get(&proxy, "/feed");
    assert_eq!(noext.text(), "GET /feed hit 4\n");
    let noext2 = get(&proxy, "/feed");
    assert_eq!(
        noext2.text(),
        noext.text(),
        "{}\n--- error log ---\n{}\n--- app ---\n{}",
        noext2.describe(),
        proxy.error_log(),
        app.stderr()
    );
    assert_eq!(noext2.header("Content-Type"), Some("text/plain"));
    assert_eq!(app_hits(&app).0, 4);
}

/// `config/memcached.conf` (and its TOML twin) with only the ports changed.
fn shipped(name: &str, mc_port: u16, app_port: u16) -> String {
    let text = std::fs::read_to_string(manifest_dir().join("config").join(name)).expect(name);
    for needle in ["127.0.0.1:11211", "http://127.0.0.1:8000"] {
        assert!(text.contains(needle), "{name} no longer holds {needle}");
    }
    text.replace("listen 80;", "listen 127.0.0.1:{PORT};")
        .replace("listen = 80", "listen = \"127.0.0.1:{PORT}\"")
        .replace("127.0.0.1:11211", &format!("127.0.0.1:{mc_port}"))
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{app_port}"))
}

#[test]
fn the_shipped_config_and_its_toml_twin_run_the_caching_front() {
    let mc = Memcached::start();
    let app = app(&mc);
    let mut names = vec!["memcached.conf"];
    if proxy_kind() == Kind::Junction {
        names.push("memcached.toml");
    }
    for (i, name) in names.iter().enumerate() {
        let proxy = Proxy::start_files(&[(name, &shipped(name, mc.port, app.port))], name);
        let path = format!("/shipped/{i}.html?v=1");
        let miss = proxy.get("myapp", &path);
        assert_eq!(miss.status, 200, "{name}: {}", miss.describe());
        assert_eq!(miss.header("Content-Type"), Some("application/x-cache-app"));
        let hit = proxy.get("myapp", &path);
        assert_eq!(hit.body, miss.body, "{name}");
        assert_eq!(hit.header("Content-Type"), Some("text/html"), "{name}");
        assert_eq!(app_hits(&app).0, i as u64 + 1, "{name}");
    }
}

#[test]
fn a_miss_without_error_page_is_the_proxys_own_404() {
    let mc = Memcached::start();
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    server_name mc.test;
    location / {
        set $memcached_key $uri;
        memcached_pass 127.0.0.1:{MC};
    }
}
",
        &[("MC", &mc.port)],
    ));
    assert_own_page(&get(&proxy, "/nothing-here"), 404);
    mc.set("/there", 0, b"here");
    let r = get(&proxy, "/there");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "here"),
        "{}",
        r.describe()
    );
}

/// Deterministic "arbitrary" bytes with memcached's own framing spliced in.
fn nasty_value(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678 ^ len as u32;
    let mut v: Vec<u8> = (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    let traps: &[&[u8]] = &[
        b"\r\nEND\r\n",
        b"END\r\n",
        b"\r\nVALUE k 0 5\r\n",
        b"\0\r\n\r\n",
    ];
    for (i, t) in traps.iter().enumerate() {
        let at = (len / (traps.len() + 1)) * (i + 1);
        if at + t.len() <= len {
            v[at..at + t.len()].copy_from_slice(t);
        }
    }
    if len >= 7 {
        v[len - 7..].copy_from_slice(b"\r\nEND\r\n");
    }
    v
}

#[test]
fn values_of_any_bytes_and_sizes_arrive_byte_identical() {
    let mc = Memcached::start();
    let app = app(&mc);
    let proxy = front(mc.port, app.port, "");
    let cases: &[(&str, Vec<u8>)] = &[
        ("/v/empty", Vec::new()),
        ("/v/one", vec![0x0d]),
        ("/v/end", b"\r\nEND\r\n".to_vec()),
        ("/v/100k", nasty_value(100 * 1024)),
        ("/v/1m", nasty_value(1024 * 1024)),
    ];
    for (path, value) in cases {
        mc.set(&format!("{path}?"), 0, value);
    }
    for (path, value) in cases {
        let r = get(&proxy, path);
        assert_eq!(r.status, 200, "{path}: {}", r.describe());
        assert_eq!(
            r.header("Content-Length"),
            Some(value.len().to_string().as_str()),
            "{path}"
        );
        assert!(
            r.body == *value,
            "{path}: {} bytes back for {}, first difference at {:?}",
            r.body.len(),
            value.len(),
            r.body.iter().zip(value.iter()).position(|(a, b)| a != b)
        );
        let h = head(&proxy, path);
        assert_eq!(h.status, 200);
        assert_eq!(
            h.header("Content-Length"),
            Some(value.len().to_string().as_str())
        );
    }
    // The same over one keepalive connection, twice each, in mixed order.
    let mut c = KeepAliveClient::connect(proxy.port);
    for round in 0..2 {
        for (path, value) in cases.iter().rev() {
            let (status, _, body) = c.get("mc.test", path);
            assert_eq!(status, 200, "{path} round {round}");
            assert!(body == *value, "{path} round {round}: {} bytes", body.len());
        }
    }
    assert_eq!(app_hits(&app).0, 0, "every value came from memcached");
}

/// gzip of "hello, gzip\n" (Python's `gzip.compress(…, mtime=0)`).
const GZIPPED: &[u8] = &[
    31, 139, 8, 0, 0, 0, 0, 0, 2, 3, 203, 72, 205, 201, 201, 215, 81, 72, 175, 202, 44, 224, 2, 0,
    134, 31, 130, 164, 12, 0, 0, 0,
];

#[test]
fn gzip_flag_adds_content_encoding_only_when_the_flag_bit_is_set() {
    let mc = Memcached::start();
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    server_name mc.test;
    location /gz/ {
        set $memcached_key $uri;
        memcached_pass 127.0.0.1:{MC};
        memcached_gzip_flag 2;
    }
    location /plain/ {
        set $memcached_key $uri;
        memcached_pass 127.0.0.1:{MC};
    }
}
",
        &[("MC", &mc.port)],
    ));
    // (key, flags, Content-Encoding: gzip expected)
    let rows: &[(&str, u32, bool)] = &[
        ("/gz/f0", 0, false),
        ("/gz/f1", 1, false),
        ("/gz/f2", 2, true),
        ("/gz/f3", 3, true),
        ("/gz/f4", 4, false),
        ("/gz/f6", 6, true),
        ("/gz/fbig", 0xffff_fffe, true),
        ("/plain/f2", 2, false),
        ("/plain/f0", 0, false),
    ];
    let mut failures = Vec::new();
    for (key, flags, gz) in rows {
        mc.set(key, *flags, GZIPPED);
        let r = get(&proxy, key);
        let ce = r.header("Content-Encoding");
        let want = gz.then_some("gzip");
        if r.status != 200 || ce != want || r.body != GZIPPED {
            failures.push(format!(
                "{key} flags {flags}: {} Content-Encoding {ce:?} (want {want:?}), {} bytes",
                r.status,
                r.body.len()
            ));
        }
    }
    assert_table("memcached_gzip_flag", &failures, rows.len());
}

#[test]
fn memcached_down_goes_to_the_app_and_the_client_still_gets_the_page() {
    let mut mc = Memcached::start();
    let app = app(&mc);
    let silent = Peer::python("silent.py", &[]);
    let proxy = front(
        mc.port,
        app.port,
        &fill(
            "    location /slow/ {
        set $memcached_key $uri;
        memcached_pass 127.0.0.1:{SILENT};
        memcached_read_timeout 1s;
        error_page 504 = @app;
    }",
            &[("SILENT", &silent.port)],
        ),
    );
    let first = get(&proxy, "/home.html");
    assert_eq!(first.text(), "GET /home.html hit 1\n");
    assert_eq!(get(&proxy, "/home.html").body, first.body);
    assert_eq!(app_hits(&app).0, 1);

    mc.stop();
    // 502 (connection refused) → @app: the page still arrives, from the app.
    for n in 2..5 {
        let r = get(&proxy, "/home.html");
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_eq!(r.text(), format!("GET /home.html hit {n}\n"));
    }
    assert_logged(&proxy, &format!("127.0.0.1:{}", mc.port));

    // 504 (memcached_read_timeout) → @app as well.
    let t0 = Instant::now();
    let r = get(&proxy, "/slow/x");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "GET /slow/x hit 5\n");
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    assert_logged(&proxy, "timed out");
}

#[test]
fn unset_or_empty_memcached_key_is_500() {
    let mc = Memcached::start();
    let app = app(&mc);
    let proxy = front(
        mc.port,
        app.port,
        &fill(
            "    location /nokey { memcached_pass 127.0.0.1:{MC}; }
    location /empty { set $memcached_key \"\"; memcached_pass 127.0.0.1:{MC}; }
    location /nokey-fallback { memcached_pass 127.0.0.1:{MC}; error_page 500 = @app; }",
            &[("MC", &mc.port)],
        ),
    );
    assert_own_page(&get(&proxy, "/nokey"), 500);
    assert_logged(&proxy, "the \"$memcached_key\" variable is not set");
    assert_own_page(&get(&proxy, "/empty"), 500);
    // The 500 is the proxy's own: error_page applies to it.
    let r = get(&proxy, "/nokey-fallback");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "GET /nokey-fallback hit 1\n")
    );
}

#[test]
fn post_is_405_before_memcached_and_error_page_405_takes_it_to_the_app_with_its_body() {
    let mc = Memcached::start();
    let app = app(&mc);
    let proxy = front(
        mc.port,
        app.port,
        &fill(
            "    location /form/ {
        set $memcached_key \"$uri?$args\";
        memcached_pass 127.0.0.1:{MC};
        error_page 404 405 502 504 = @app;
    }",
            &[("MC", &mc.port)],
        ),
    );
    let post = |path: &str| {
        proxy.request(
            format!(
                "POST {path} HTTP/1.1\r\nHost: mc.test\r\nContent-Length: 11\r\n\
                 Content-Type: text/plain\r\nConnection: close\r\n\r\nhello=world"
            )
            .as_bytes(),
        )
    };
    // The issue's config: memcached only serves GET and HEAD.
    let r = post("/articles/1.html");
    assert_own_page(&r, 405);
    assert_eq!(r.reason, "Not Allowed", "nginx's status line");
    // With 405 in error_page (the classic front for forms): the app gets the POST and
    // its body; the named location keeps the method.
    let r = post("/form/send");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "POST /form/send hit 1\n");
    let (_, reqs) = app_hits(&app);
    assert_eq!(
        reqs,
        vec![("POST".to_string(), "/form/send".to_string(), 11)]
    );
    assert!(
        mc.get("/form/send?").is_none(),
        "POST answers are not cached"
    );
}

// ---------------------------------------------------------------------------------------------
// Keepalive toward memcached
// ---------------------------------------------------------------------------------------------

/// One client connection, many requests (Content-Length bodies only).
struct KeepAliveClient {
    r: BufReader<TcpStream>,
}

impl KeepAliveClient {
    fn connect(port: u16) -> KeepAliveClient {
        let s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        KeepAliveClient {
            r: BufReader::with_capacity(64 * 1024, s),
        }
    }

    /// (status, headers, body)
    fn get(&mut self, host: &str, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
        // One write: a request split over several segments would meet Nagle and
        // delayed ACKs (40 ms per request).
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        self.r.get_mut().write_all(req.as_bytes()).unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.r.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap();
            headers.push((k.to_string(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .expect("keepalive responses carry Content-Length");
        let mut body = vec![0; len];
        self.r.read_exact(&mut body).unwrap();
        (status, headers, body)
    }
}

/// 200 hits over one client keepalive connection: (new memcached connections, gets).
fn two_hundred_hits(mc: &Memcached, proxy: &Proxy) -> (u64, u64) {
    mc.set("/hot.html?", 0, b"<p>hot</p>");
    let mut ctl = mc.client();
    let before = ctl.stats();
    let mut c = KeepAliveClient::connect(proxy.port);
    for i in 0..200 {
        let (status, _, body) = c.get("mc.test", "/hot.html");
        assert_eq!(
            (status, &body[..]),
            (200, &b"<p>hot</p>"[..]),
            "request {i}"
        );
    }
    let after = ctl.stats();
    let d = |k: &str| after[k] - before[k];
    assert_eq!(d("get_hits"), 200, "every request was a memcached hit");
    (d("total_connections"), d("cmd_get"))
}

#[test]
fn two_hundred_hits_over_keepalive_open_a_handful_of_memcached_connections() {
    let mc = Memcached::start();
    let app = app(&mc);
    // The issue's config: an implicit group (memcached_pass host:port).
    let proxy = front(mc.port, app.port, "");
    let (conns, gets) = two_hundred_hits(&mc, &proxy);
    eprintln!("implicit group: 200 requests → {conns} memcached connections, {gets} gets");
    assert_eq!(gets, 200);
    match proxy_kind() {
        // Junction keeps idle upstream connections for every group.
        Kind::Junction => assert!(conns <= 4, "{conns} connections for 200 requests"),
        // nginx keeps none without `keepalive` in an upstream block: one per request.
        Kind::Nginx => assert!(conns >= 190, "{conns}"),
    }
    assert_eq!(app_hits(&app).0, 0);
}

#[test]
fn upstream_block_with_keepalive_reuses_connections_too() {
    let mc = Memcached::start();
    let proxy = Proxy::start(&fill(
        "upstream mc {
    server 127.0.0.1:{MC};
    keepalive 8;
}
server {
    listen 127.0.0.1:{PORT};
    server_name mc.test;
    location / {
        set $memcached_key \"$uri?$args\";
        memcached_pass mc;
    }
}
",
        &[("MC", &mc.port)],
    ));
    let (conns, gets) = two_hundred_hits(&mc, &proxy);
    eprintln!(
        "upstream mc {{ keepalive 8; }}: 200 requests → {conns} memcached connections, {gets} gets"
    );
    assert_eq!(gets, 200);
    assert!(conns <= 4, "{conns} connections for 200 requests");
}

// ---------------------------------------------------------------------------------------------
// error_page, named locations, internal, set
// ---------------------------------------------------------------------------------------------

/// Locations whose generated errors (`return CODE`) go through `error_page`; `/fb` and
/// `@app` are echo.py, which tells the method, the target and the body length it got.
const TABLE: &str = "server {
    listen 127.0.0.1:{PORT};
    server_name ep.test;
    set $srv \"S-$arg_x\";

    location /ep/keep { return 404; error_page 404 /fb; }
    location /ep/eq { return 404; error_page 404 = /fb; }
    location /ep/eq200 { return 404; error_page 404 =200 /fb; }
    location /ep/eq201 { return 404; error_page 404 =201 /fb; }
    location /ep/multi { return 503; error_page 500 502 503 504 =502 /fb; }
    location /ep/named { return 404; error_page 404 @app; }
    location /ep/namedeq { return 404; error_page 404 = @app; }
    location /ep/url { return 404; error_page 404 http://example.com/x; }
    location /ep/url301 { return 404; error_page 404 =301 http://example.com/x; }
    location /ep/url200 { return 404; error_page 404 =200 http://example.com/x; }
    location /ep/args { return 404; error_page 404 /fb?a=1; }
    location /ep/var { return 404; error_page 404 /fb?from=$uri; }
    location /ep/loop { return 404; error_page 404 /ep/loop2; }
    location /ep/loop2 { return 404; error_page 404 /ep/loop; }
    location /ep/rloop { recursive_error_pages on; return 404; error_page 404 /ep/rloop2; }
    location /ep/rloop2 { recursive_error_pages on; return 404; error_page 404 /ep/rloop; }
    location /ep/rnamed { recursive_error_pages on; return 404; error_page 404 @loop; }
    location @loop { recursive_error_pages on; return 404; error_page 404 @loop; }
    location /ep/missing { return 404; error_page 404 @nope; }
    location /ep/fbfail { return 404; error_page 404 /fbdown; }
    location /ep/other { return 404; error_page 500 /fb; }
    location /ep/toint { return 404; error_page 404 /int; }
    location /int { internal; proxy_pass http://127.0.0.1:{ECHO}; }
    location /int2 { internal; error_page 404 = /fb; }
    location /ic/on { proxy_pass http://127.0.0.1:{PORT}/gen404; proxy_intercept_errors on; error_page 404 = /fb; }
    location /ic/off { proxy_pass http://127.0.0.1:{PORT}/gen404; error_page 404 = /fb; }
    location /ic/nomatch { proxy_pass http://127.0.0.1:{PORT}/gen404; proxy_intercept_errors on; error_page 500 = /fb; }
    location = /gen404 { return 404 \"upstream's own 404\"; }
    location /set { set $loc \"$srv-L\"; set $loc \"$loc+$uri\"; return 200 \"$loc\"; }
    location /setargs { set $args \"a=1&b=2\"; return 200 \"$arg_b $args\"; }
    location /fbdown { proxy_pass http://127.0.0.1:{DOWN}; }
    location /fb { proxy_pass http://127.0.0.1:{ECHO}; }
    location @app { proxy_pass http://127.0.0.1:{ECHO}; }
}
";

/// What a row expects.
enum Want {
    /// Status, then echo.py saw (method, target, body length).
    Echo(u16, &'static str, &'static str, u64),
    /// The proxy's own page for this status.
    Page(u16),
    /// A redirect to the client: status, Location.
    Redirect(u16, &'static str),
    /// Status and exact body.
    Body(u16, &'static str),
    /// A HEAD answer: status and Content-Type, no body.
    Head(u16, &'static str),
}

/// (method, path, request body, expected)
const ROWS: &[(&str, &str, &str, Want)] = &[
    // `=` forms
    ("GET", "/ep/keep", "", Want::Echo(404, "GET", "/fb", 0)),
    ("GET", "/ep/eq", "", Want::Echo(200, "GET", "/fb", 0)),
    ("GET", "/ep/eq200", "", Want::Echo(200, "GET", "/fb", 0)),
    ("GET", "/ep/eq201", "", Want::Echo(201, "GET", "/fb", 0)),
    ("GET", "/ep/multi", "", Want::Echo(502, "GET", "/fb", 0)),
    // named vs URI targets (a named location keeps the URI, its arguments and the method)
    (
        "GET",
        "/ep/named?q=1",
        "",
        Want::Echo(404, "GET", "/ep/named?q=1", 0),
    ),
    (
        "GET",
        "/ep/namedeq",
        "",
        Want::Echo(200, "GET", "/ep/namedeq", 0),
    ),
    // URL targets: a redirect of the client, 302 unless =301/302/303/307/308
    (
        "GET",
        "/ep/url",
        "",
        Want::Redirect(302, "http://example.com/x"),
    ),
    (
        "GET",
        "/ep/url301",
        "",
        Want::Redirect(301, "http://example.com/x"),
    ),
    (
        "GET",
        "/ep/url200",
        "",
        Want::Redirect(302, "http://example.com/x"),
    ),
    (
        "POST",
        "/ep/url",
        "abc=1",
        Want::Redirect(302, "http://example.com/x"),
    ),
    // arguments: the target's own, else none
    ("GET", "/ep/keep?q=1", "", Want::Echo(404, "GET", "/fb", 0)),
    (
        "GET",
        "/ep/args?q=1",
        "",
        Want::Echo(404, "GET", "/fb?a=1", 0),
    ),
    (
        "GET",
        "/ep/var?q=1",
        "",
        Want::Echo(404, "GET", "/fb?from=/ep/var", 0),
    ),
    // methods: a URI target makes it GET (the unread body still follows), HEAD stays
    // HEAD, a named location keeps it
    (
        "POST",
        "/ep/keep",
        "abc=1",
        Want::Echo(404, "GET", "/fb", 5),
    ),
    ("PUT", "/ep/eq", "abc=1", Want::Echo(200, "GET", "/fb", 5)),
    ("DELETE", "/ep/keep", "", Want::Echo(404, "GET", "/fb", 0)),
    (
        "POST",
        "/ep/named",
        "abc=1",
        Want::Echo(404, "POST", "/ep/named", 5),
    ),
    (
        "POST",
        "/ep/namedeq",
        "abc=1",
        Want::Echo(200, "POST", "/ep/namedeq", 5),
    ),
    ("HEAD", "/ep/keep", "", Want::Head(404, "application/json")),
    // one error_page per request unless recursive_error_pages; loops end in 500
    ("GET", "/ep/loop", "", Want::Page(404)),
    ("GET", "/ep/rloop", "", Want::Page(500)),
    ("GET", "/ep/rnamed", "", Want::Page(500)),
    ("GET", "/ep/missing", "", Want::Page(500)),
    ("GET", "/ep/other", "", Want::Page(404)),
    // an error in the fallback is that error (the first status is not forced on it)
    ("GET", "/ep/fbfail", "", Want::Page(502)),
    // internal
    ("GET", "/int", "", Want::Page(404)),
    ("GET", "/ep/toint", "", Want::Echo(404, "GET", "/int", 0)),
    ("GET", "/int2", "", Want::Echo(200, "GET", "/fb", 0)),
    // *_intercept_errors: an upstream's status only with `on` and an error_page for it
    ("GET", "/ic/on", "", Want::Echo(200, "GET", "/fb", 0)),
    ("GET", "/ic/off", "", Want::Body(404, "upstream's own 404")),
    (
        "GET",
        "/ic/nomatch",
        "",
        Want::Body(404, "upstream's own 404"),
    ),
    // set: server level first, then the location's, in order, with variables
    ("GET", "/set/a?x=7", "", Want::Body(200, "S-7-L+/set/a")),
    ("GET", "/setargs?q=9", "", Want::Body(200, "2 a=1&b=2")),
];

#[test]
fn error_page_table_named_locations_internal_and_set() {
    let echo = Peer::python("echo.py", &[]);
    let down = closed_port();
    let proxy = Proxy::start(&fill(TABLE, &[("ECHO", &echo.port), ("DOWN", &down)]));
    let mut failures = Vec::new();
    for (method, path, body, want) in ROWS {
        let raw = if body.is_empty() {
            format!("{method} {path} HTTP/1.1\r\nHost: ep.test\r\nConnection: close\r\n\r\n")
        } else {
            format!(
                "{method} {path} HTTP/1.1\r\nHost: ep.test\r\nContent-Length: {}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        let r = proxy.request(raw.as_bytes());
        let row = format!("{method} {path}");
        let ok = match want {
            Want::Echo(status, m, target, len) => {
                if r.status != *status || r.header("Content-Type") != Some("application/json") {
                    false
                } else {
                    let e = Echo::from_response(&Response {
                        status: 200,
                        ..r.clone()
                    });
                    e.method == *m && e.path == *target && e.body_len == *len
                }
            }
            Want::Page(status) => {
                r.status == *status
                    && r.header("Content-Type") == Some("text/html")
                    && (*method == "HEAD" || r.text().contains(&format!("<title>{status} ")))
            }
            Want::Redirect(status, loc) => {
                r.status == *status
                    && r.header("Location") == Some(loc)
                    && (*status != 302 || r.reason == "Moved Temporarily")
            }
            Want::Body(status, text) => r.status == *status && r.text() == *text,
            Want::Head(status, ctype) => {
                r.status == *status && r.header("Content-Type") == Some(ctype) && r.body.is_empty()
            }
        };
        if !ok {
            failures.push(format!("{row:<24} → {}", r.describe().replace('\n', " | ")));
        }
    }
    assert_table("error_page", &failures, ROWS.len());
    assert_logged(
        &proxy,
        "rewrite or internal redirection cycle while internally redirecting to \"/ep/rloop",
    );
    assert_logged(
        &proxy,
        "rewrite or internal redirection cycle while redirect to named location \"@loop\"",
    );
    assert_logged(&proxy, "could not find named location \"@nope\"");
}

// ---------------------------------------------------------------------------------------------
// Config errors
// ---------------------------------------------------------------------------------------------

/// (a location body, a word the error must contain). Every row is an error for nginx -t too.
const BAD: &[(&str, &str)] = &[
    (
        "memcached_pass 127.0.0.1;",
        "no port in upstream \"127.0.0.1\"",
    ),
    (
        "memcached_pass memcached://127.0.0.1:11211;",
        "invalid host",
    ),
    ("memcached_pass 127.0.0.1:11211 x;", "memcached_pass"),
    (
        "memcached_pass 127.0.0.1:11211; memcached_gzip_flag abc;",
        "memcached_gzip_flag",
    ),
    (
        "memcached_pass 127.0.0.1:11211; memcached_gzip_flag -1;",
        "memcached_gzip_flag",
    ),
    (
        "memcached_pass 127.0.0.1:11211; memcached_next_upstream http_500;",
        "invalid value \"http_500\"",
    ),
    (
        "memcached_pass 127.0.0.1:11211; memcached_next_upstream invalid_header;",
        "invalid value \"invalid_header\"",
    ),
    (
        "memcached_pass 127.0.0.1:11211; memcached_buffers 8 4k;",
        "memcached_buffers",
    ),
    (
        "memcached_pass 127.0.0.1:11211; memcached_buffering off;",
        "memcached_buffering",
    ),
    (
        "memcached_pass 127.0.0.1:11211; memcached_buffer_size 1x;",
        "memcached_buffer_size",
    ),
    ("set foo 1;", "invalid variable name \"foo\""),
    ("set $uri /x;", "the duplicate \"uri\" variable"),
    ("set $a;", "set"),
    ("error_page = 404 /x;", "invalid value \"=\""),
    ("error_page 404 = 502 /x;", "invalid value \"=\""),
    ("error_page 404 =abc /x;", "invalid value \"=abc\""),
    ("error_page 499 /x;", "invalid value \"499\""),
    (
        "error_page 200 /x;",
        "value \"200\" must be between 300 and 599",
    ),
    ("error_page 404;", "error_page"),
    ("internal 1;", "internal"),
];

#[test]
fn config_errors_name_the_line_like_nginx() {
    let mut failures = Vec::new();
    for (body, needle) in BAD {
        // Line 4 holds the location; `set $memcached_key` elsewhere declares the variable.
        let site = format!(
            "server {{\n    listen 127.0.0.1:8080;\n    server_name check.test;\n    location /q {{ {body} }}\n    location /k {{ set $memcached_key $uri; }}\n}}\n"
        );
        let (out, dir) = check_config(&[("site.conf", &site)], "site.conf");
        let at = format!("{}:4", dir.path().join("site.conf").display());
        if out.code != Some(1) || !out.stderr.contains(&at) || !out.stderr.contains(needle) {
            failures.push(format!(
                "{body:<60} → exit {:?}, {:?} (want {at}, {needle:?})",
                out.code,
                out.stderr.trim()
            ));
        }
    }
    assert_table("config error", &failures, BAD.len());
}

#[test]
fn memcached_pass_without_any_set_memcached_key_is_a_config_error() {
    // nginx: `unknown "memcached_key" variable` (no `set` declares it anywhere).
    let site = "server {\n    listen 127.0.0.1:8080;\n    location / { memcached_pass 127.0.0.1:11211; }\n}\n";
    let (out, _dir) = check_config(&[("site.conf", site)], "site.conf");
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(
        out.stderr.contains("unknown \"memcached_key\" variable"),
        "{out:#?}"
    );
    // Declared in another server is enough, as for nginx.
    let site = "server {\n    listen 127.0.0.1:8080;\n    location / { memcached_pass unix:/run/memcached.sock; }\n}\n\
                server {\n    listen 127.0.0.1:8081;\n    set $memcached_key $uri;\n}\n";
    let (out, _dir) = check_config(&[("site.conf", site)], "site.conf");
    assert_eq!(out.code, Some(0), "{out:#?}");
}

// ---------------------------------------------------------------------------------------------
// Keys, addresses, misbehaving memcached
// ---------------------------------------------------------------------------------------------

#[test]
fn keys_are_escaped_as_nginx_does() {
    let mc = Memcached::start();
    let app = app(&mc);
    let proxy = front(mc.port, app.port, "");
    // `$uri` is decoded ("/with space/x.html"); nginx escapes the space as %20 in the
    // key, which is what the app, seeing the raw request target, stores under.
    for path in ["/with%20space/x.html", "/100%25.html"] {
        let miss = get(&proxy, path);
        assert_eq!(
            miss.header("Content-Type"),
            Some("application/x-cache-app"),
            "{path}: {}",
            miss.describe()
        );
        let hit = get(&proxy, path);
        assert_eq!(hit.status, 200, "{path}");
        assert_eq!(hit.body, miss.body, "{path}: the second request is a hit");
        assert_eq!(hit.header("Content-Type"), Some("text/html"), "{path}");
    }
    assert_eq!(app_hits(&app).0, 2);
    // `$args` is not decoded, so its `%` is escaped: the key is "/q.html?a=%2520b",
    // not what the app stored ("/q.html?a=%20b"): a miss every time, for nginx too.
    for n in 3..5 {
        let r = get(&proxy, "/q.html?a=%20b");
        assert_eq!(r.text(), format!("GET /q.html?a=%20b hit {n}\n"));
    }
    assert!(mc.get("/q.html?a=%20b").is_some());
    // Bytes above 0x7f go raw (UTF-8 as is); control bytes and `%` are escaped.
    mc.set("/caf\u{e9}.html?", 0, b"utf-8 key");
    let r = get(&proxy, "/caf%C3%A9.html");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "utf-8 key"),
        "{}",
        r.describe()
    );
    mc.set("/tab%09x?", 0, b"tab key");
    let r = get(&proxy, "/tab%09x");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "tab key"),
        "{}",
        r.describe()
    );
    assert_eq!(app_hits(&app).0, 4);
}

#[test]
fn memcached_on_a_unix_socket() {
    let dir = tempfile::Builder::new()
        .prefix("junction-mc-")
        .tempdir()
        .unwrap();
    let sock = dir.path().join("memcached.sock");
    let mc = Memcached::start_unix(&sock);
    mc.set("/u/page.html", 0, b"over a unix socket");
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    server_name mc.test;
    location /u/ {
        set $memcached_key $uri;
        memcached_pass unix:{SOCK};
    }
}
",
        &[("SOCK", &sock.display())],
    ));
    let r = get(&proxy, "/u/page.html");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "over a unix socket");
    assert_eq!(r.header("Content-Type"), Some("text/html"));
    assert_own_page(&get(&proxy, "/u/missing"), 404);
}

#[test]
fn memcached_bind_sets_the_source_address() {
    let mc = Memcached::start();
    mc.set("/b/x", 0, b"bound");
    // An upstream block with keepalive, so the connection stays for `stats conns`.
    let proxy = Proxy::start(&fill(
        "upstream mcb {
    server 127.0.0.1:{MC};
    keepalive 2;
}
server {
    listen 127.0.0.1:{PORT};
    server_name mc.test;
    location /b/ {
        set $memcached_key $uri;
        memcached_pass mcb;
        memcached_bind 127.0.0.2;
    }
}
",
        &[("MC", &mc.port)],
    ));
    let r = get(&proxy, "/b/x");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "bound"),
        "{}",
        r.describe()
    );
    let mut c = mc.client();
    c.r.get_mut().write_all(b"stats conns\r\n").unwrap();
    let mut conns = String::new();
    loop {
        let l = c.line();
        if l == b"END\r\n" || l.is_empty() {
            break;
        }
        conns.push_str(&String::from_utf8_lossy(&l));
    }
    assert!(
        conns.contains("tcp:127.0.0.2:"),
        "memcached sees no connection from 127.0.0.2:\n{conns}"
    );
}

#[test]
fn an_upstream_group_moves_past_a_dead_server() {
    let mc = Memcached::start();
    mc.set("/g/x?", 0, b"from the live one");
    let dead = closed_port();
    let proxy = Proxy::start(&fill(
        "upstream pool {
    server 127.0.0.1:{DEAD};
    server 127.0.0.1:{MC};
}
server {
    listen 127.0.0.1:{PORT};
    server_name mc.test;
    location / {
        set $memcached_key \"$uri?$args\";
        memcached_pass pool;
    }
}
",
        &[("MC", &mc.port), ("DEAD", &dead)],
    ));
    // memcached_next_upstream's default `error timeout`: every request gets the value.
    for i in 0..6 {
        let r = get(&proxy, "/g/x");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "from the live one"),
            "request {i}: {}",
            r.describe()
        );
    }
}

/// (mode of memcached_fake.py, the status without fallback, an error-log needle)
const MISBEHAVING: &[(&str, u16, &str)] = &[
    (
        "error",
        502,
        "memcached sent invalid response: \"SERVER_ERROR out of memory storing object\"",
    ),
    (
        "client_error",
        502,
        "memcached sent invalid response: \"CLIENT_ERROR bad command line format\"",
    ),
    (
        "garbage",
        502,
        "memcached sent invalid response: \"HTTP/1.1 200 OK\"",
    ),
    (
        "other_key",
        502,
        "memcached sent invalid key in response \"VALUE /not-/other_key/k 0 2\"",
    ),
    // The value arrived whole: the client gets it; the trailer is logged.
    ("bad_trailer", 200, "memcached sent invalid trailer"),
];

#[test]
fn a_misbehaving_memcached_is_502_and_error_page_applies() {
    let peers: Vec<(&str, Peer)> = MISBEHAVING
        .iter()
        .map(|(m, _, _)| (*m, Peer::python("memcached_fake.py", &["--mode", m])))
        .chain(std::iter::once((
            "cut",
            Peer::python("memcached_fake.py", &["--mode", "cut"]),
        )))
        .collect();
    let mut locations = String::new();
    for (mode, peer) in &peers {
        locations.push_str(&format!(
            "    location /{mode}/ {{ set $memcached_key $uri; memcached_pass 127.0.0.1:{p}; }}\n\
             \x20   location /fb/{mode}/ {{ set $memcached_key $uri; memcached_pass 127.0.0.1:{p}; error_page 502 = /fallback; }}\n",
            p = peer.port
        ));
    }
    let proxy = Proxy::start(&format!(
        "server {{\n    listen 127.0.0.1:{{PORT}};\n    server_name mc.test;\n{locations}    location = /fallback {{ return 200 \"fallback\"; }}\n}}\n"
    ));
    let mut failures = Vec::new();
    for (mode, status, needle) in MISBEHAVING {
        let r = get(&proxy, &format!("/{mode}/k"));
        let fb = get(&proxy, &format!("/fb/{mode}/k"));
        let want_fb = if *status == 502 { "fallback" } else { "ok" };
        let ok = r.status == *status
            && (*status != 502 || r.text().contains("<title>502 "))
            && (*status != 200 || r.text() == "ok")
            && fb.status == 200
            && fb.text() == want_fb
            && proxy.wait_error_log(needle, Duration::from_secs(5)).is_ok();
        if !ok {
            failures.push(format!(
                "{mode}: {} / fallback {} {:?} (want {status}, {want_fb:?}, log {needle:?})",
                r.describe().replace('\n', " | "),
                fb.status,
                fb.text()
            ));
        }
    }
    assert_table("misbehaving memcached", &failures, MISBEHAVING.len());
    // A value cut short after the head went out: the client sees a short body and the
    // connection closes (nginx does the same; error_page cannot apply any more).
    let mut s = http_stream(proxy.port, get_request("mc.test", "/cut/k").as_bytes());
    assert_eq!(s.head.status, 200);
    assert_eq!(s.head.header("Content-Length"), Some("100"));
    let rest = s.read_to_end();
    assert!(
        rest.is_err(),
        "a cut value must not look complete: {rest:?}"
    );
    assert_logged(&proxy, "prematurely closed");
}

#[test]
fn byte_ranges_of_a_hit_as_nginx() {
    let mc = Memcached::start();
    let app = app(&mc);
    let proxy = front(mc.port, app.port, "");
    let value = nasty_value(100 * 1024);
    let len = value.len();
    mc.set("/r/v?", 0, &value);
    // (Range, If-Range, status, expected body slice, Content-Range)
    type Row = (
        &'static str,
        bool,
        u16,
        Option<(usize, usize)>,
        Option<String>,
    );
    let rows: Vec<Row> = vec![
        ("", false, 200, Some((0, len)), None),
        (
            "bytes=0-0",
            false,
            206,
            Some((0, 1)),
            Some(format!("bytes 0-0/{len}")),
        ),
        (
            "bytes=50000-60000",
            false,
            206,
            Some((50000, 60001)),
            Some(format!("bytes 50000-60000/{len}")),
        ),
        (
            "bytes=-100",
            false,
            206,
            Some((len - 100, len)),
            Some(format!("bytes {}-{}/{len}", len - 100, len - 1)),
        ),
        (
            "bytes=102399-",
            false,
            206,
            Some((len - 1, len)),
            Some(format!("bytes {}-{}/{len}", len - 1, len - 1)),
        ),
        ("bytes=1-2,4-5", false, 200, Some((0, len)), None),
        ("bytes=0-10", true, 200, Some((0, len)), None),
        (
            "bytes=200000-",
            false,
            416,
            None,
            Some(format!("bytes */{len}")),
        ),
    ];
    let mut failures = Vec::new();
    for (range, if_range, status, slice, content_range) in &rows {
        let mut raw = "GET /r/v HTTP/1.1\r\nHost: mc.test\r\nConnection: close\r\n".to_string();
        if !range.is_empty() {
            raw.push_str(&format!("Range: {range}\r\n"));
        }
        if *if_range {
            raw.push_str("If-Range: \"some-etag\"\r\n");
        }
        raw.push_str("\r\n");
        let r = proxy.request(raw.as_bytes());
        let body_ok = match slice {
            Some((a, b)) => r.body == value[*a..*b],
            None => r.text().contains("<title>416 "),
        };
        let accept = (*status == 200).then_some("bytes");
        if r.status != *status
            || !body_ok
            || r.header("Content-Range") != content_range.as_deref()
            || r.header("Accept-Ranges") != accept
        {
            failures.push(format!(
                "Range {range:?} If-Range {if_range}: {} {} bytes, Content-Range {:?}, Accept-Ranges {:?}",
                r.status,
                r.body.len(),
                r.header("Content-Range"),
                r.header("Accept-Ranges")
            ));
        }
    }
    assert_table("memcached ranges", &failures, rows.len());
    assert_eq!(app_hits(&app).0, 0);
}

#[test]
fn next_upstream_not_found_asks_the_next_server_on_a_miss() {
    let first = Memcached::start();
    let second = Memcached::start();
    second.set("/nf/x", 0, b"on the second server");
    let proxy = Proxy::start(&fill(
        "upstream pair {
    server 127.0.0.1:{A};
    server 127.0.0.1:{B};
}
server {
    listen 127.0.0.1:{PORT};
    server_name mc.test;
    location /nf/ {
        set $memcached_key $uri;
        memcached_pass pair;
        memcached_next_upstream not_found;
    }
    location /plain/ {
        set $memcached_key \"/nf/x\";
        memcached_pass pair;
    }
}
",
        &[("A", &first.port), ("B", &second.port)],
    ));
    // With not_found, every request finds the value, whichever server comes first.
    for i in 0..4 {
        let r = get(&proxy, "/nf/x");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "on the second server"),
            "request {i}: {}",
            r.describe()
        );
    }
    // A key on neither server: the last miss is the answer.
    assert_own_page(&get(&proxy, "/nf/none"), 404);
    // Without it, round robin alternates: one of two requests misses.
    let statuses: Vec<u16> = (0..4).map(|_| get(&proxy, "/plain/").status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 404).count(),
        2,
        "{statuses:?}"
    );
}
