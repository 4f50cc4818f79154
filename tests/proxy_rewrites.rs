//! `proxy_method`, `proxy_set_body`, `proxy_cookie_domain`, `proxy_cookie_path`,
//! `proxy_cookie_flags` on tables, against the echo and configurable-response peers; the
//! same expectations run against nginx in the reference mode.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

fn sha256_hex(data: &[u8]) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, hashlib; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())",
            std::str::from_utf8(data).unwrap(),
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn proxy_method_and_set_body() {
    let echo = Peer::python("echo.py", &[]);
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    location /m/ { proxy_method POST; proxy_pass http://127.0.0.1:{E}; }
    location /mv/ { set $m PUT; proxy_method $m; proxy_pass http://127.0.0.1:{E}; }
    location /b/ { proxy_set_body \"a=$arg_x&b=2\"; proxy_pass http://127.0.0.1:{E}; }
    location /be/ { proxy_set_body \"\"; proxy_pass http://127.0.0.1:{E}; }
    location /mb/ { proxy_method POST; proxy_set_body \"payload\"; proxy_pass http://127.0.0.1:{E}; }
}
",
        &[("E", &echo.port)],
    ));
    let send = |raw: &str| Echo::from_response(&proxy.request(raw.as_bytes()));
    let mut failures = Vec::new();
    let mut check = |name: &str, ok: bool, what: String| {
        if !ok {
            failures.push(format!("{name}: {what}"));
        }
    };
    let e = send("GET /m/ HTTP/1.1\r\nHost: pm.test\r\nConnection: close\r\n\r\n");
    check("proxy_method POST", e.method == "POST", e.method.clone());
    let e = send("GET /mv/ HTTP/1.1\r\nHost: pm.test\r\nConnection: close\r\n\r\n");
    check("proxy_method $var", e.method == "PUT", e.method.clone());
    let e = send(
        "POST /b/?x=1 HTTP/1.1\r\nHost: pm.test\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nclient body",
    );
    check(
        "proxy_set_body replaces the body",
        e.body_len == 7 && e.body_sha256 == sha256_hex(b"a=1&b=2"),
        format!("{} bytes {}", e.body_len, e.body_sha256),
    );
    check(
        "proxy_set_body: Content-Length of the new body",
        e.header("Content-Length") == Some("7"),
        format!("{:?}", e.header("Content-Length")),
    );
    check(
        "proxy_set_body: the client's Content-Type passes",
        e.header("Content-Type") == Some("text/plain"),
        format!("{:?}", e.header("Content-Type")),
    );
    check(
        "proxy_set_body keeps the method",
        e.method == "POST",
        e.method.clone(),
    );
    let e = send("GET /b/?x=zz HTTP/1.1\r\nHost: pm.test\r\nConnection: close\r\n\r\n");
    check(
        "proxy_set_body on a GET",
        e.body_len == 8 && e.header("Content-Length") == Some("8"),
        format!("{} {:?}", e.body_len, e.header("Content-Length")),
    );
    let e = send("GET /mb/ HTTP/1.1\r\nHost: pm.test\r\nConnection: close\r\n\r\n");
    check(
        "proxy_method + proxy_set_body",
        e.method == "POST" && e.body_len == 7,
        format!("{} {}", e.method, e.body_len),
    );
    assert_table("proxy_method/proxy_set_body", &failures, 8);
}

const COOKIE_CONF: &str = "
server {
    listen 127.0.0.1:{PORT};
    location /cd/ {
        proxy_cookie_domain localhost example.org;
        proxy_cookie_domain ~^([a-z]+)\\.internal$ $1.example.com;
        proxy_pass http://127.0.0.1:{B}/;
    }
    location /cp/ {
        proxy_cookie_path /app/ /;
        proxy_cookie_path ~*^/OLD(.*)$ /new$1;
        proxy_pass http://127.0.0.1:{B}/;
    }
    location /cf/ {
        proxy_cookie_flags one secure httponly;
        proxy_cookie_flags ~^t samesite=strict;
        proxy_cookie_flags off2 nosecure nohttponly nosamesite;
        proxy_cookie_flags $arg_c samesite=lax;
        proxy_pass http://127.0.0.1:{B}/;
    }
    location /all/ {
        proxy_cookie_domain localhost example.org;
        proxy_cookie_path / /base/;
        proxy_cookie_flags ~ secure;
        proxy_pass http://127.0.0.1:{B}/;
        location /all/off/ {
            proxy_cookie_domain off;
            proxy_pass http://127.0.0.1:{B}/;
        }
    }
}
";

fn q(cookie: &str) -> String {
    cookie
        .replace('%', "%25")
        .replace(';', "%3B")
        .replace(' ', "%20")
        .replace('&', "%26")
        .replace('=', "%3D")
}

#[test]
fn proxy_cookie_rewrites_table() {
    let backend = Peer::python("respond.py", &[]);
    let proxy = Proxy::start(&fill(COOKIE_CONF, &[("B", &backend.port)]));
    let rows: &[(&str, &str, &[&str], &[&str])] = &[
        (
            "domain",
            "/cd/",
            &["a=1; Domain=localhost; Path=/"],
            &["a=1; Domain=example.org; Path=/"],
        ),
        (
            "domain with a leading dot",
            "/cd/",
            &["a=1; domain=.localhost"],
            &["a=1; domain=.example.org"],
        ),
        (
            "domain in another case",
            "/cd/",
            &["a=1; Domain=LOCALHOST"],
            &["a=1; Domain=example.org"],
        ),
        (
            "other domain unchanged",
            "/cd/",
            &["a=1;  Domain=other.com"],
            &["a=1;  Domain=other.com"],
        ),
        (
            "domain regex with a capture",
            "/cd/",
            &["a=1; Domain=shop.internal"],
            &["a=1; Domain=shop.example.com"],
        ),
        (
            "path prefix",
            "/cp/",
            &["a=1; Path=/app/x"],
            &["a=1; Path=/x"],
        ),
        (
            "path not a prefix",
            "/cp/",
            &["a=1; Path=/application"],
            &["a=1; Path=/application"],
        ),
        (
            "path regex, caseless",
            "/cp/",
            &["a=1; Path=/old/thing"],
            &["a=1; Path=/new/thing"],
        ),
        (
            "flags added",
            "/cf/",
            &["one=1; Path=/"],
            &["one=1; Path=/; Secure; HttpOnly"],
        ),
        (
            "flags: name caseless, one present",
            "/cf/",
            &["One=1; secure"],
            &["One=1; secure; HttpOnly"],
        ),
        (
            "samesite replaced",
            "/cf/",
            &["token=x; SameSite=Lax"],
            &["token=x; SameSite=Strict"],
        ),
        (
            "samesite kept when equal",
            "/cf/",
            &["tok=x; samesite=strict"],
            &["tok=x; samesite=strict"],
        ),
        (
            "flags removed",
            "/cf/",
            &["off2=1; Secure; HttpOnly; SameSite=None"],
            &["off2=1"],
        ),
        (
            "no rule: untouched",
            "/cf/",
            &["zz=1;Path=/"],
            &["zz=1;Path=/"],
        ),
        (
            "cookie name from a variable",
            "/cf/?c=vv",
            &["vv=1"],
            &["vv=1; SameSite=Lax"],
        ),
        (
            "every Set-Cookie",
            "/all/",
            &["a=1; Domain=localhost", "b=2; Path=/x"],
            &[
                "a=1; Domain=example.org; Secure",
                "b=2; Path=/base/x; Secure",
            ],
        ),
        (
            "off in an inner location (others inherited)",
            "/all/off/",
            &["a=1; Domain=localhost; Path=/"],
            &["a=1; Domain=localhost; Path=/base/; Secure"],
        ),
    ];
    let mut failures = Vec::new();
    for (name, path, sent, want) in rows {
        let mut url = path.to_string();
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("len=2");
        for c in *sent {
            url.push_str(&format!("&h=Set-Cookie:{}", q(c)));
        }
        let r = proxy.get("ck.test", &url);
        let got = r.header_all("Set-Cookie");
        if got != *want {
            failures.push(format!("{name}: {got:?}, expected {want:?}"));
        }
    }
    assert_table("proxy_cookie_*", &failures, rows.len());
}

#[test]
fn cookie_directive_errors() {
    for (line, msg) in [
        (
            "proxy_cookie_domain example.org;",
            "invalid parameter \"example.org\"",
        ),
        (
            "proxy_cookie_path off; proxy_cookie_path / /x;",
            "is duplicate",
        ),
    ] {
        let site = format!(
            "server {{\n    listen 127.0.0.1:8080;\n    location / {{\n        {line}\n        proxy_pass http://127.0.0.1:9;\n    }}\n}}\n"
        );
        let (out, _dir) = check_config(&[("site.conf", &site)], "site.conf");
        assert_eq!(out.code, Some(1), "{line}: {out:?}");
        assert!(out.stderr.contains(msg), "{line}: {}", out.stderr);
    }
}
