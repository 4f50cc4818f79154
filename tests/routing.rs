//! Server and location selection (NGINX-SEMANTICS §1–3), shown by `return 200 "name"` bodies.
//! Every expected value is nginx's answer (the tables pass with `JUNCTION_TEST_PROXY=nginx`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::net::{Ipv4Addr, SocketAddr};

const SERVERS: &str = r#"
server { listen 127.0.0.1:{PORT}; server_name first.test; return 200 "first"; }
server { listen 127.0.0.1:{PORT} default_server; server_name default.test; return 200 "default"; }
server { listen 127.0.0.1:{PORT}; server_name example.org www.example.org; return 200 "exact"; }
server { listen 127.0.0.1:{PORT}; server_name *.example.org; return 200 "wild-example-org"; }
server { listen 127.0.0.1:{PORT}; server_name *.sub.example.org; return 200 "wild-sub"; }
server { listen 127.0.0.1:{PORT}; server_name mail.*; return 200 "mail-wild"; }
server { listen 127.0.0.1:{PORT}; server_name .example.net; return 200 "dot-net"; }
server { listen 127.0.0.1:{PORT}; server_name ~^www\d+\.example\.com$; return 200 "regex-digits"; }
server { listen 127.0.0.1:{PORT}; server_name ~^www; return 200 "regex-www"; }

server { listen 127.0.0.1:{PORT2}; server_name a2.test; return 200 "port2-first"; }
server { listen 127.0.0.1:{PORT2}; server_name example.org; return 200 "port2-exact"; }

server { listen 127.0.0.2:{PORT}; server_name example.org; return 200 "addr2"; }
"#;

/// Which listener a case is sent to.
#[derive(Clone, Copy, Debug)]
enum To {
    /// 127.0.0.1:{PORT}
    Main,
    /// 127.0.0.1:{PORT2}
    Port2,
    /// 127.0.0.2:{PORT}
    Addr2,
}

/// (listener, raw request head without the final CRLF, expected body)
const SERVER_CASES: &[(To, &str, &str)] = &[
    (To::Main, "GET / HTTP/1.1\r\nHost: example.org", "exact"),
    // exact name beats the *.example.org wildcard
    (To::Main, "GET / HTTP/1.1\r\nHost: www.example.org", "exact"),
    // names are case-insensitive; the port and a trailing dot are not part of the name
    (To::Main, "GET / HTTP/1.1\r\nHost: EXAMPLE.Org", "exact"),
    (
        To::Main,
        "GET / HTTP/1.1\r\nHost: example.org:8080",
        "exact",
    ),
    (To::Main, "GET / HTTP/1.1\r\nHost: example.org.", "exact"),
    (
        To::Main,
        "GET / HTTP/1.1\r\nHost: foo.example.org",
        "wild-example-org",
    ),
    // the longest leading wildcard wins
    (
        To::Main,
        "GET / HTTP/1.1\r\nHost: a.sub.example.org",
        "wild-sub",
    ),
    (
        To::Main,
        "GET / HTTP/1.1\r\nHost: a.b.example.org",
        "wild-example-org",
    ),
    (
        To::Main,
        "GET / HTTP/1.1\r\nHost: mail.example.com",
        "mail-wild",
    ),
    // a leading wildcard beats a trailing one
    (
        To::Main,
        "GET / HTTP/1.1\r\nHost: mail.example.org",
        "wild-example-org",
    ),
    // .example.net = example.net and *.example.net
    (To::Main, "GET / HTTP/1.1\r\nHost: example.net", "dot-net"),
    (
        To::Main,
        "GET / HTTP/1.1\r\nHost: x.y.example.net",
        "dot-net",
    ),
    // regexes in config order, after all wildcards
    (
        To::Main,
        "GET / HTTP/1.1\r\nHost: www12.example.com",
        "regex-digits",
    ),
    (
        To::Main,
        "GET / HTTP/1.1\r\nHost: www.example.com",
        "regex-www",
    ),
    (To::Main, "GET / HTTP/1.1\r\nHost: wwwx.test", "regex-www"),
    (To::Main, "GET / HTTP/1.1\r\nHost: first.test", "first"),
    // unknown name → default_server (not the first server)
    (To::Main, "GET / HTTP/1.1\r\nHost: unknown.test", "default"),
    (To::Main, "GET / HTTP/1.0", "default"),
    // the host in an absolute request-target beats the Host header
    (
        To::Main,
        "GET http://example.org/ HTTP/1.1\r\nHost: unknown.test",
        "exact",
    ),
    // other ports and addresses have their own server lists; without default_server the
    // first server of the address:port is the default
    (
        To::Port2,
        "GET / HTTP/1.1\r\nHost: unknown.test",
        "port2-first",
    ),
    (
        To::Port2,
        "GET / HTTP/1.1\r\nHost: example.org",
        "port2-exact",
    ),
    (
        To::Port2,
        "GET / HTTP/1.1\r\nHost: foo.example.org",
        "port2-first",
    ),
    (To::Addr2, "GET / HTTP/1.1\r\nHost: example.org", "addr2"),
    (
        To::Addr2,
        "GET / HTTP/1.1\r\nHost: www12.example.com",
        "addr2",
    ),
];

#[test]
fn server_name_selection_table() {
    let proxy = Proxy::start(SERVERS);
    let mut failures = Vec::new();
    for (to, head, expected) in SERVER_CASES {
        let addr = match to {
            To::Main => SocketAddr::from((Ipv4Addr::LOCALHOST, proxy.port)),
            To::Port2 => SocketAddr::from((Ipv4Addr::LOCALHOST, proxy.ports[1])),
            To::Addr2 => SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), proxy.port)),
        };
        let raw = format!("{head}\r\nConnection: close\r\n\r\n");
        let r = http_request_to(addr, raw.as_bytes());
        let line = head.replace("\r\n", " | ");
        if r.status != 200 || r.text() != *expected {
            failures.push(format!(
                "{to:?} {line:<58} → {} {:?}, want {expected:?}",
                r.status,
                r.text()
            ));
        }
    }
    assert_table("server_name", &failures, SERVER_CASES.len());
}

const LOCATIONS: &str = r#"
server {
    listen 127.0.0.1:{PORT};
    server_name loc.test;

    location = / { return 200 "exact-root"; }
    location / { return 200 "root-prefix"; }
    location /docs/ { return 200 "docs"; }
    location /docs/api/ { return 200 "docs-api"; }
    location ^~ /static/ { return 200 "static"; }
    location ~ \.php$ { return 200 "php"; }
    location ~* \.(png|jpg)$ { return 200 "image"; }
    location /images/ { return 200 "images"; }
    location ~ ^/docs/api/v\d+/ { return 200 "api-versioned"; }
    location ~ ^/docs/api/v1/ { return 200 "api-v1-later-regex"; }
    location /nested/ {
        location /nested/inner/ { return 200 "nested-inner"; }
        location ~ \.txt$ { return 200 "nested-txt"; }
        return 200 "nested";
    }
    location = /exact { return 200 "exact"; }
    location /exact { return 200 "exact-prefix"; }
    location @named { return 200 "named"; }
}
"#;

/// (request-target, expected body)
const LOCATION_CASES: &[(&str, &str)] = &[
    ("/", "exact-root"),
    ("/index.html", "root-prefix"),
    ("/docs", "root-prefix"),
    ("/docs/", "docs"),
    ("/docs/guide", "docs"),
    // longest prefix
    ("/docs/api/list", "docs-api"),
    // a matching regex beats the longest prefix; the first regex in config order wins
    ("/docs/api/v2/list", "api-versioned"),
    ("/docs/api/v1/list", "api-versioned"),
    ("/x.php", "php"),
    ("/docs/x.php", "php"),
    // ^~ stops the regex search
    ("/static/x.php", "static"),
    ("/static/a.png", "static"),
    // ~ is case-sensitive, ~* is not
    ("/x.PHP", "root-prefix"),
    ("/IMAGES/A.PNG", "image"),
    ("/images/a.png", "image"),
    ("/images/a.gif", "images"),
    // nested locations; the inner level's regexes are tried before the outer level's
    ("/nested/", "nested"),
    ("/nested/inner/a", "nested-inner"),
    ("/nested/inner/a.txt", "nested-txt"),
    ("/nested/a.txt", "nested-txt"),
    ("/nested/a.php", "php"),
    // = beats the prefix of the same name, only for the exact URI
    ("/exact", "exact"),
    ("/exactly", "exact-prefix"),
    ("/exact?x=1", "exact"),
    // matching runs on the normalized URI: %XX decoded, // merged, . and .. resolved
    ("/docs%2Fapi%2Fx", "docs-api"),
    ("/%64ocs/", "docs"),
    ("//docs//guide", "docs"),
    ("/docs/./api/../guide", "docs"),
    ("/static/../x.php", "php"),
    ("/static%2F..%2Fx.php", "php"),
    // named locations are reached only internally
    ("/@named", "root-prefix"),
];

#[test]
fn location_selection_table() {
    let proxy = Proxy::start(LOCATIONS);
    let mut failures = Vec::new();
    for (target, expected) in LOCATION_CASES {
        let r = proxy.get("loc.test", target);
        if r.status != 200 || r.text() != *expected {
            failures.push(format!(
                "{target:<24} → {} {:?}, want {expected:?}",
                r.status,
                r.text()
            ));
        }
    }
    assert_table("location", &failures, LOCATION_CASES.len());
}

#[test]
fn dot_segments_above_the_root_are_rejected() {
    // A URI that climbs above "/" cannot be normalized: 400.
    let proxy = Proxy::start(LOCATIONS);
    for target in ["/..", "/../x.php", "/docs/../../x"] {
        let r = proxy.get("loc.test", target);
        assert_eq!(r.status, 400, "{target}:\n{}", r.describe());
    }
}

#[test]
fn proxied_prefix_with_slash_redirects_the_bare_path() {
    // NGINX-SEMANTICS §3: `location /app/ { proxy_pass … }` answers /app with 301 to /app/,
    // unless an exact location exists.
    let backend = Peer::python("echo.py", &[]);
    let proxy = Proxy::start(&fill(
        r#"
server {
    listen 127.0.0.1:{PORT};
    server_name redirect.test;
    location /app/ { proxy_pass http://127.0.0.1:{BACKEND}; }
    location /app2/ { proxy_pass http://127.0.0.1:{BACKEND}; }
    location = /app2 { return 200 "exact-app2"; }
    location /plain/ { return 200 "plain"; }
}
"#,
        &[("BACKEND", &backend.port)],
    ));
    let r = proxy.get("redirect.test", "/app");
    assert_eq!(r.status, 301, "{}", r.describe());
    let loc = r.header("Location").unwrap_or_default();
    assert!(
        loc == "/app/"
            || loc.ends_with(
                "redirect.test:{}/app/"
                    .replace("{}", &proxy.port.to_string())
                    .as_str()
            ),
        "Location {loc:?}"
    );
    let r = proxy.get("redirect.test", "/app?x=1");
    assert_eq!(r.status, 301, "{}", r.describe());
    assert!(
        r.header("Location")
            .unwrap_or_default()
            .ends_with("/app/?x=1"),
        "arguments kept: {}",
        r.describe()
    );
    let e = Echo::from_response(&proxy.get("redirect.test", "/app/"));
    assert_eq!(e.path, "/app/");
    let r = proxy.get("redirect.test", "/app2");
    assert_eq!((r.status, r.text().as_str()), (200, "exact-app2"));
    // only for *_pass handlers
    let r = proxy.get("redirect.test", "/plain");
    assert_eq!(r.status, 404, "{}", r.describe());
}

/// try_files' last argument is an internal redirect that carries only its own
/// arguments (nginx's `ngx_http_split_args`); `index` keeps the request's.
#[test]
fn try_files_fallback_carries_only_its_own_arguments() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("dir")).unwrap();
    std::fs::write(root.path().join("dir/index.html"), "index\n").unwrap();
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}};
    server_name tf.test;
    root {root};
    location /tf {{ try_files /nope /fb; }}
    location /tq {{ try_files /nope /fb?from=tq; }}
    location = /fb {{ return 200 "fb uri=$uri args=$args"; }}
}}
"#,
        root = root.path().display()
    );
    let proxy = Proxy::start(&conf);
    let body = |p: &str| String::from_utf8_lossy(&proxy.get("tf.test", p).body).into_owned();
    assert_eq!(body("/tf?q=1"), "fb uri=/fb args=");
    assert_eq!(body("/tq?q=1"), "fb uri=/fb args=from=tq");
    let r = proxy.get("tf.test", "/dir/?k=v");
    assert_eq!(
        (r.status, String::from_utf8_lossy(&r.body).as_ref()),
        (200, "index\n")
    );
}

/// Every location has one content handler: an `if` block without a `*_pass` of its
/// own serves static files under its own settings (`root`) and follows `index`
/// again after the redirect, and its 404 is the server's own page (so `error_page`
/// applies); an `if` in a `*_pass` location keeps the pass.
#[test]
fn static_files_and_passes_keep_their_handler_inside_if() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    for (dir, name) in [(&one, "one"), (&two, "two")] {
        std::fs::create_dir_all(dir.path().join("s")).unwrap();
        std::fs::write(dir.path().join("s/f.txt"), format!("{name} file\n")).unwrap();
        std::fs::write(dir.path().join("s/index.html"), format!("{name} index\n")).unwrap();
    }
    let backend = Peer::python("echo.py", &[]);
    let proxy = Proxy::start(&fill(
        r#"
server {
    listen 127.0.0.1:{PORT};
    server_name if.test;
    location /s/ {
        root ONE;
        error_page 404 = /nf;
        if ($arg_alt) { root TWO; }
    }
    location /p/ {
        proxy_pass http://127.0.0.1:{BACKEND};
        if ($arg_x) { add_header X-If yes; }
    }
    location = /nf { return 200 "not found page"; }
}
"#
        .replace("ONE", &one.path().display().to_string())
        .replace("TWO", &two.path().display().to_string())
        .as_str(),
        &[("BACKEND", &backend.port)],
    ));
    let get = |p: &str| {
        let r = proxy.get("if.test", p);
        (r.status, r.text())
    };
    assert_eq!(get("/s/f.txt"), (200, "one file\n".to_string()));
    assert_eq!(get("/s/f.txt?alt=1"), (200, "two file\n".to_string()));
    assert_eq!(get("/s/"), (200, "one index\n".to_string()));
    assert_eq!(get("/s/?alt=1"), (200, "two index\n".to_string()));
    assert_eq!(get("/s/none?alt=1"), (200, "not found page".to_string()));
    let r = proxy.get("if.test", "/p/a?x=1");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.header("X-If"), Some("yes"), "{}", r.describe());
    assert_eq!(Echo::from_response(&r).path, "/p/a?x=1");
}
