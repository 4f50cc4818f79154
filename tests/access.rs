//! The access phase, black-box and checked against nginx (`JUNCTION_TEST_PROXY=nginx`):
//! `allow`/`deny` (IPv4, IPv6, CIDRs, order, inheritance, `deny all` on dotfiles in a
//! PHP site), `auth_basic` with user files written by Apache's `htpasswd` and by
//! `openssl passwd` (and `$y$` yescrypt from `mkpasswd`), `satisfy any|all`, `limit_except`.
//!
//! Clients come from several loopback addresses (127.0.0.1–127.0.0.4 and ::1): the
//! requests are made with curl `--interface ADDR`, so the proxy sees each as its own
//! client address.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

/// What curl saw.
struct Seen {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }
}

fn curl_bin() -> &'static str {
    match Command::new("curl").arg("--version").output() {
        Ok(o) if o.status.success() => "curl",
        _ => panic!("curl is needed by this test: install it with `apt-get install -y curl`"),
    }
}

/// `METHOD http://HOST:port/path` from source address `src` (`::1` goes to `[::1]`),
/// with `-u user:password` when given.
fn request(port: u16, src: &str, method: &str, path: &str, user: Option<&str>) -> Seen {
    let host = if src.contains(':') {
        "[::1]".to_string()
    } else {
        "127.0.0.1".to_string()
    };
    let mut c = Command::new(curl_bin());
    c.args(["-sS", "-g", "-i", "--max-time", "20", "--interface", src]);
    if method == "HEAD" {
        c.arg("-I");
    } else {
        c.args(["-X", method]);
    }
    if let Some(u) = user {
        c.args(["-u", u]);
    }
    c.arg(format!("http://{host}:{port}{path}"));
    let out = c.output().expect("run curl");
    assert!(
        out.status.success(),
        "curl {method} {path} from {src} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Seen {
        status,
        headers,
        body: body.to_string(),
    }
}

fn get(port: u16, src: &str, path: &str) -> Seen {
    request(port, src, "GET", path, None)
}

const SRCS: [&str; 5] = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "::1"];

/// Every path below has a file `f` under `www/` saying `ok`.
const ACCESS_SITE: &str = r#"
server {
    listen {PORT};
    listen [::1]:{PORT};
    server_name _;
    root {DIR}/www;

    allow 127.0.0.1;
    deny all;

    location /inherit/ { }
    location /order/ { deny 127.0.0.2; allow 127.0.0.0/8; deny all; }
    location /cidr/ { allow 127.0.0.0/31; allow 127.0.0.3/32; deny all; }
    location /lowbits/ { allow 127.0.0.2/31; deny all; }
    location /v4only/ { deny 127.0.0.2; }
    location /v6/ { allow ::1; deny all; }
    location /v6cidr/ { deny ::/64; allow all; }
    location /allowall/ { allow all; }
    location /nested/ {
        allow 127.0.0.3;
        deny all;
        location /nested/inner/ { }
        location /nested/own/ { allow all; }
    }
    location = /exact/f { deny 127.0.0.4; allow all; }
    location ~ /regex/ { deny 127.0.0.3; allow all; }
}
"#;

const ACCESS_PATHS: [&str; 13] = [
    "/f",
    "/inherit/f",
    "/order/f",
    "/cidr/f",
    "/lowbits/f",
    "/v4only/f",
    "/v6/f",
    "/v6cidr/f",
    "/allowall/f",
    "/nested/inner/f",
    "/nested/own/f",
    "/exact/f",
    "/regex/f",
];

fn www_files(paths: &[&str]) -> Vec<(String, String)> {
    paths
        .iter()
        .map(|p| (format!("www{p}"), "ok\n".to_string()))
        .collect()
}

fn start(site: &str, extra: &[(String, String)]) -> Proxy {
    let mut files: Vec<(&str, &str)> = vec![("site.conf", site)];
    for (k, v) in extra {
        files.push((k, v));
    }
    Proxy::start_files(&files, "site.conf")
}

#[test]
fn allow_deny_table_ipv4_ipv6_cidr_order_inheritance() {
    let www = www_files(&ACCESS_PATHS);
    let proxy = start(ACCESS_SITE, &www);
    // (path, [127.0.0.1, .2, .3, .4, ::1])
    let table: &[(&str, [u16; 5])] = &[
        // server level: allow 127.0.0.1; deny all;
        ("/f", [200, 403, 403, 403, 403]),
        // a location without rules inherits the server's
        ("/inherit/f", [200, 403, 403, 403, 403]),
        // first match wins
        ("/order/f", [200, 403, 200, 200, 403]),
        ("/cidr/f", [200, 403, 200, 403, 403]),
        // 127.0.0.2/31 is 127.0.0.2–3 (nginx warns about the low bits)
        ("/lowbits/f", [403, 200, 200, 403, 403]),
        // rules of a level replace the outer ones; no IPv6 rule: IPv6 clients pass
        ("/v4only/f", [200, 403, 200, 200, 200]),
        // IPv6 rules do not apply to IPv4 clients; `deny all` does
        ("/v6/f", [403, 403, 403, 403, 200]),
        ("/v6cidr/f", [200, 200, 200, 200, 403]),
        ("/allowall/f", [200, 200, 200, 200, 200]),
        // nested locations inherit the nearest level that has rules
        ("/nested/inner/f", [403, 403, 200, 403, 403]),
        ("/nested/own/f", [200, 200, 200, 200, 200]),
        ("/exact/f", [200, 200, 200, 403, 200]),
        ("/regex/f", [200, 200, 403, 200, 200]),
    ];
    let mut failures = Vec::new();
    for (path, want) in table {
        for (src, want) in SRCS.iter().zip(want) {
            let r = get(proxy.port, src, path);
            if r.status != *want {
                failures.push(format!("{path} from {src}: {} (want {want})", r.status));
            } else if *want == 403 && !r.body.contains("<title>403 Forbidden</title>") {
                failures.push(format!(
                    "{path} from {src}: not nginx's 403 page: {}",
                    r.body
                ));
            } else if *want == 200 && r.body != "ok\n" {
                failures.push(format!("{path} from {src}: body {:?}", r.body));
            }
        }
    }
    assert_table("allow/deny", &failures, table.len() * SRCS.len());
    let log = proxy
        .wait_error_log("access forbidden by rule", Duration::from_secs(5))
        .unwrap_or_else(|l| panic!("no \"access forbidden by rule\" in the error log:\n{l}"));
    assert!(
        log.lines().any(
            |l| l.contains("access forbidden by rule, client: 127.0.0.2")
                && l.contains("request: \"GET /f HTTP/1.1\"")
        ),
        "{log}"
    );
}

#[test]
fn low_address_bits_are_a_warning_and_bad_addresses_an_error() {
    let (out, _dir) = check_config(
        &[(
            "site.conf",
            "server { listen 8080; set_real_ip_from 192.168.7.1/16;\n\
             location / { allow 10.1.2.3/8; deny all; } }\n",
        )],
        "site.conf",
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("low address bits of 10.1.2.3/8 are meaningless"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("low address bits of 192.168.7.1/16 are meaningless"),
        "{}",
        out.stderr
    );
    for bad in ["10.0.0.0/33", "300.1.1.1", "example.com", "::/129"] {
        let (out, _dir) = check_config(
            &[(
                "site.conf",
                &format!("server {{ listen 8080; location / {{ allow {bad}; }} }}\n"),
            )],
            "site.conf",
        );
        assert_ne!(out.code, Some(0), "{bad} accepted");
        assert!(
            out.stderr.contains(&format!("invalid parameter \"{bad}\"")),
            "{bad}: {}",
            out.stderr
        );
    }
}

/// nginx's PHP site (front controller, `\.php$` to php-fpm) with the `location ~ /\.ht
/// { deny all; }` nearly every published PHP config has.
#[test]
fn deny_all_on_dotfiles_in_a_php_site() {
    let fpm = PhpFpm::start_tcp("");
    let site = fill(
        r#"
server {
    listen {PORT};
    server_name _;
    root {DIR}/www;
    index index.php index.html;
    location / {
        try_files $uri $uri/ /index.php?$query_string;
    }
    location ~ \.php$ {
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_pass {FPM};
    }
    location ~ /\.ht {
        deny all;
    }
}
"#,
        &[("FPM", &fpm.target())],
    );
    let params = std::fs::read_to_string(manifest_dir().join("config/fastcgi_params"))
        .expect("config/fastcgi_params");
    let files = vec![
        ("fastcgi_params".to_string(), params),
        (
            "www/index.php".to_string(),
            "<?php echo 'front controller: ', $_SERVER['REQUEST_URI'];".to_string(),
        ),
        ("www/.htaccess".to_string(), "Deny from all\n".to_string()),
        ("www/sub/.htpasswd".to_string(), "u:secret\n".to_string()),
        ("www/style.css".to_string(), "body {}\n".to_string()),
    ];
    let proxy = start(&site, &files);
    let table: &[(&str, u16, &str)] = &[
        ("/", 200, "front controller: /"),
        ("/pretty/route", 200, "front controller: /pretty/route"),
        ("/style.css", 200, "body {}\n"),
        ("/.htaccess", 403, "403 Forbidden"),
        ("/sub/.htpasswd", 403, "403 Forbidden"),
        ("/.htpasswd.bak", 403, "403 Forbidden"),
        // the `\.php$` location comes first in the file: PHP answers
        ("/.ht.php", 404, "File not found."),
    ];
    let mut failures = Vec::new();
    for (path, status, body) in table {
        let r = get(proxy.port, "127.0.0.1", path);
        if r.status != *status || !r.body.contains(body) {
            failures.push(format!(
                "{path}: {} {:?} (want {status} with {body:?})",
                r.status, r.body
            ));
        }
    }
    assert_table("PHP dotfiles", &failures, table.len());
}

// ---------------------------------------------------------------------------------------------
// auth_basic
// ---------------------------------------------------------------------------------------------

fn htpasswd_bin() -> &'static str {
    match Command::new("htpasswd")
        .arg("-nb")
        .arg("a")
        .arg("b")
        .output()
    {
        Ok(o) if o.status.success() => "htpasswd",
        _ => panic!(
            "htpasswd is needed by this test: install it with `apt-get install -y apache2-utils`"
        ),
    }
}

/// `htpasswd -n -b FLAG user password` (one `user:hash` line).
fn htpasswd_line(flag: &str, user: &str, password: &str) -> String {
    let out = Command::new(htpasswd_bin())
        .args(["-n", "-b", flag, user, password])
        .output()
        .expect("run htpasswd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `openssl passwd FLAG password` (the hash).
fn openssl_hash(flag: &str, password: &str) -> String {
    let out = Command::new("openssl")
        .args(["passwd", flag, password])
        .output()
        .unwrap_or_else(|e| panic!("openssl is needed (apt-get install -y openssl): {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `mkpasswd -m yescrypt password` (Debian's whois package, over libxcrypt).
fn mkpasswd_yescrypt(password: &str) -> String {
    let out = Command::new("mkpasswd")
        .args(["-m", "yescrypt", password])
        .output()
        .unwrap_or_else(|e| panic!("mkpasswd is needed (apt-get install -y whois): {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `{SSHA}`: base64(SHA-1(password + salt) + salt), made with python3's hashlib.
fn ssha_hash(password: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import base64,hashlib,sys; s=b'NaCl4242'; \
             print('{SSHA}'+base64.b64encode(hashlib.sha1(sys.argv[1].encode()+s).digest()+s).decode())",
            password,
        ])
        .output()
        .expect("python3 (apt-get install -y python3)");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

const AUTH_SITE: &str = r#"
server {
    listen {PORT};
    listen [::1]:{PORT};
    server_name _;
    root {DIR}/www;
    add_header X-User "$remote_user" always;

    location /admin/ {
        auth_basic "Admin area";
        auth_basic_user_file {DIR}/htpasswd;
        location /admin/public/ { auth_basic off; }
    }
    location /var/ {
        auth_basic "realm of $host";
        auth_basic_user_file {DIR}/$arg_file;
    }
    location /custom401/ {
        auth_basic "Custom";
        auth_basic_user_file {DIR}/htpasswd;
        error_page 401 /401.html;
    }
    location = /401.html { }
    location /delayed/ {
        auth_basic "Slow";
        auth_basic_user_file {DIR}/htpasswd;
        auth_delay 600ms;
    }
    location /rel/ {
        auth_basic "Relative";
        auth_basic_user_file htpasswd;
    }
    location /missing/ {
        auth_basic "x";
        auth_basic_user_file {DIR}/no-such-file;
    }
    location /any/ {
        satisfy any;
        allow 127.0.0.1;
        deny all;
        auth_basic "Any";
        auth_basic_user_file {DIR}/htpasswd;
    }
    location /all/ {
        allow 127.0.0.1;
        deny all;
        auth_basic "All";
        auth_basic_user_file {DIR}/htpasswd;
    }
    location /limit/ {
        limit_except GET {
            allow 127.0.0.1;
            deny all;
        }
    }
    location /readonly/ {
        limit_except GET { deny all; }
    }
    location /post-auth/ {
        limit_except GET HEAD {
            auth_basic "Writers";
            auth_basic_user_file {DIR}/htpasswd;
        }
    }
}
"#;

const AUTH_PATHS: [&str; 12] = [
    "/delayed/f",
    "/custom401/f",
    "/rel/f",
    "/admin/f",
    "/admin/public/f",
    "/var/f",
    "/missing/f",
    "/any/f",
    "/all/f",
    "/limit/f",
    "/readonly/f",
    "/post-auth/f",
];

/// The user file: one user per password format.
fn user_file() -> (String, Vec<(&'static str, &'static str)>) {
    let mut lines = vec![
        "# users for the auth_basic tests".to_string(),
        String::new(),
    ];
    let users: Vec<(&str, &str)> = vec![
        ("md5", "htpasswd -m"),
        ("bcrypt", "htpasswd -B"),
        ("sha", "htpasswd -s"),
        ("crypt", "htpasswd -d"),
        ("plain", "htpasswd -p"),
        ("ossl1", "openssl passwd -1"),
        ("ossl5", "openssl passwd -5"),
        ("ossl6", "openssl passwd -6"),
        ("osslapr1", "openssl passwd -apr1"),
        ("ssha", "{SSHA} (python3 hashlib)"),
        ("plaintag", "{PLAIN}"),
        ("yes", "mkpasswd -m yescrypt"),
    ];
    for (user, how) in &users {
        let pw = format!("pw-{user}");
        let pw = if *user == "crypt" {
            "pwcrypt".to_string()
        } else {
            pw
        };
        let line = match *how {
            h if h.starts_with("htpasswd") => htpasswd_line(&h[9..], user, &pw),
            h if h.starts_with("openssl") => format!("{user}:{}", openssl_hash(&h[15..], &pw)),
            "{PLAIN}" => format!("{user}:{{PLAIN}}{pw}"),
            h if h.starts_with("mkpasswd") => format!("{user}:{}", mkpasswd_yescrypt(&pw)),
            _ => format!("{user}:{}", ssha_hash(&pw)),
        };
        lines.push(line);
    }
    (lines.join("\n") + "\n", users)
}

fn password_of(user: &str) -> String {
    if user == "crypt" {
        "pwcrypt".to_string()
    } else {
        format!("pw-{user}")
    }
}

#[test]
fn auth_basic_with_files_from_htpasswd_and_openssl() {
    let (file, users) = user_file();
    let mut extra = www_files(&AUTH_PATHS);
    extra.push(("htpasswd".to_string(), file.clone()));
    extra.push(("www/401.html".to_string(), "custom 401 page\n".to_string()));
    let proxy = start(AUTH_SITE, &extra);
    let port = proxy.port;

    // no credentials: 401 with the realm
    let r = get(port, "127.0.0.1", "/admin/f");
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Basic realm=\"Admin area\"")
    );
    assert!(
        r.body.contains("<title>401 Authorization Required</title>"),
        "{}",
        r.body
    );

    let mut failures = Vec::new();
    let mut rows = 0;
    for (user, how) in &users {
        let pw = password_of(user);
        // `htpasswd -p` writes the password as is, which nginx reads as a crypt(3) hash
        // (DES with the salt from its first two characters): it never matches.
        let right_status = if *user == "plain" { 401 } else { 200 };
        for (password, want) in [(pw.clone(), right_status), (format!("{pw}x"), 401)] {
            rows += 1;
            let cred = format!("{user}:{password}");
            let r = request(port, "127.0.0.1", "GET", "/admin/f", Some(&cred));
            if r.status != want {
                failures.push(format!(
                    "{user} ({how}) password {password:?}: {} (want {want})",
                    r.status
                ));
                continue;
            }
            if want == 200 && (r.body != "ok\n" || r.header("X-User") != Some(user)) {
                failures.push(format!(
                    "{user} ({how}): body {:?}, X-User {:?}",
                    r.body,
                    r.header("X-User")
                ));
            }
            if want == 401 && r.header("WWW-Authenticate") != Some("Basic realm=\"Admin area\"") {
                failures.push(format!("{user} ({how}) 401 without the realm"));
            }
        }
    }
    // an unknown user, an empty user
    for cred in ["nobody:pw-md5", ":pw-md5"] {
        rows += 1;
        let r = request(port, "127.0.0.1", "GET", "/admin/f", Some(cred));
        if r.status != 401 {
            failures.push(format!("{cred}: {} (want 401)", r.status));
        }
    }
    assert_table("auth_basic formats", &failures, rows);

    let log = proxy.error_log();
    for needle in [
        "user \"md5\": password mismatch",
        "user \"nobody\" was not found in \"",
    ] {
        assert!(
            log.contains(needle),
            "no {needle:?} in the error log:\n{log}"
        );
    }

    // `auth_basic off` in a nested location; `$remote_user` without auth_basic too
    let r = request(
        port,
        "127.0.0.1",
        "GET",
        "/admin/public/f",
        Some("who:ever"),
    );
    assert_eq!((r.status, r.header("X-User")), (200, Some("who")));

    // realm and file with variables
    let r = get(port, "127.0.0.1", "/var/f?file=htpasswd");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Basic realm=\"realm of 127.0.0.1\"")
    );
    let r = request(
        port,
        "127.0.0.1",
        "GET",
        "/var/f?file=htpasswd",
        Some("sha:pw-sha"),
    );
    assert_eq!(r.status, 200);
    let r = request(
        port,
        "127.0.0.1",
        "GET",
        "/var/f?file=nothing",
        Some("sha:pw-sha"),
    );
    assert_eq!(r.status, 403, "a missing user file is 403");
    // `error_page 401`: the custom page, with the realm still asked for
    let r = get(port, "127.0.0.1", "/custom401/f");
    assert_eq!((r.status, r.body.as_str()), (401, "custom 401 page\n"));
    assert_eq!(r.header("WWW-Authenticate"), Some("Basic realm=\"Custom\""));

    // auth_delay: a refusal waits, a success does not
    let t = std::time::Instant::now();
    let r = request(port, "127.0.0.1", "GET", "/delayed/f", Some("sha:wrong"));
    assert_eq!(r.status, 401);
    assert!(
        t.elapsed() >= Duration::from_millis(550),
        "{:?}",
        t.elapsed()
    );
    let t = std::time::Instant::now();
    let r = request(port, "127.0.0.1", "GET", "/delayed/f", Some("sha:pw-sha"));
    assert_eq!(r.status, 200);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );

    // a relative path is under the main configuration file's directory (conf prefix)
    let r = request(port, "127.0.0.1", "GET", "/rel/f", Some("sha:pw-sha"));
    assert_eq!(r.status, 200, "relative auth_basic_user_file");
    let r = request(port, "127.0.0.1", "GET", "/missing/f", Some("sha:pw-sha"));
    assert_eq!(r.status, 403);
    // The error log is written in the background: wait for the line.
    if let Err(log) = proxy.wait_error_log("no-such-file\" failed", Duration::from_secs(5)) {
        panic!("the open() failure is not logged:\n{log}");
    }

    // the file is read again when it changes
    let path = proxy.dir().join("htpasswd");
    std::fs::write(&path, format!("{file}newuser:{{PLAIN}}fresh-password\n")).unwrap();
    let r = request(
        port,
        "127.0.0.1",
        "GET",
        "/admin/f",
        Some("newuser:fresh-password"),
    );
    assert_eq!(r.status, 200, "a user added to the file is known at once");
    std::fs::write(&path, "newuser:{PLAIN}changed\n").unwrap();
    let r = request(
        port,
        "127.0.0.1",
        "GET",
        "/admin/f",
        Some("newuser:fresh-password"),
    );
    assert_eq!(r.status, 401, "a changed password applies at once");
    let r = request(port, "127.0.0.1", "GET", "/admin/f", Some("md5:pw-md5"));
    assert_eq!(r.status, 401, "a removed user is refused at once");
}

#[test]
fn satisfy_any_and_all_and_limit_except() {
    let (file, _) = user_file();
    let mut extra = www_files(&AUTH_PATHS);
    extra.push(("htpasswd".to_string(), file));
    let proxy = start(AUTH_SITE, &extra);
    let port = proxy.port;
    let ok = Some("md5:pw-md5");
    let bad = Some("md5:wrong");
    // (method, path, source, credentials, status)
    let table: &[(&str, &str, &str, Option<&str>, u16)] = &[
        // satisfy any: an allowed address needs no password, others need one
        ("GET", "/any/f", "127.0.0.1", None, 200),
        ("GET", "/any/f", "127.0.0.1", bad, 200),
        ("GET", "/any/f", "127.0.0.2", None, 401),
        ("GET", "/any/f", "127.0.0.2", bad, 401),
        ("GET", "/any/f", "127.0.0.2", ok, 200),
        ("GET", "/any/f", "::1", ok, 200),
        // satisfy all (the default): both
        ("GET", "/all/f", "127.0.0.1", None, 401),
        ("GET", "/all/f", "127.0.0.1", bad, 401),
        ("GET", "/all/f", "127.0.0.1", ok, 200),
        ("GET", "/all/f", "127.0.0.2", ok, 403),
        ("GET", "/all/f", "127.0.0.2", None, 403),
        // limit_except GET { allow 127.0.0.1; deny all; }: GET and HEAD for everyone
        ("GET", "/limit/f", "127.0.0.2", None, 200),
        ("HEAD", "/limit/f", "127.0.0.2", None, 200),
        ("POST", "/limit/f", "127.0.0.2", None, 403),
        ("DELETE", "/limit/f", "127.0.0.2", None, 403),
        // allowed through limit_except, then the static handler refuses POST
        ("POST", "/limit/f", "127.0.0.1", None, 405),
        // limit_except GET { deny all; }
        ("GET", "/readonly/f", "127.0.0.1", None, 200),
        ("HEAD", "/readonly/f", "127.0.0.1", None, 200),
        ("POST", "/readonly/f", "127.0.0.1", None, 403),
        ("PUT", "/readonly/f", "127.0.0.1", None, 403),
        ("OPTIONS", "/readonly/f", "127.0.0.1", None, 403),
        ("PATCH", "/readonly/f", "::1", None, 403),
        // auth_basic only for writes
        ("GET", "/post-auth/f", "127.0.0.1", None, 200),
        ("DELETE", "/post-auth/f", "127.0.0.1", None, 401),
        ("DELETE", "/post-auth/f", "127.0.0.1", bad, 401),
        ("DELETE", "/post-auth/f", "127.0.0.1", ok, 405),
    ];
    let mut failures = Vec::new();
    for (method, path, src, cred, want) in table {
        let r = request(port, src, method, path, *cred);
        if r.status != *want {
            failures.push(format!(
                "{method} {path} from {src} with {cred:?}: {} (want {want})",
                r.status
            ));
        }
        if r.status == 401 && r.header("WWW-Authenticate").is_none() {
            failures.push(format!(
                "{method} {path} from {src}: 401 without WWW-Authenticate"
            ));
        }
    }
    assert_table("satisfy / limit_except", &failures, table.len());
}
