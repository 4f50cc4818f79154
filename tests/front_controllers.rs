//! The PHP front controllers as their projects publish them (`config/wordpress.conf`,
//! `laravel.conf`, `symfony.conf`, `drupal.conf`), loaded from `config/` with only the
//! listen address, the document root, the PHP-FPM address and log paths changed, in front
//! of a real php-fpm. The app's `index.php` reports what PHP was given. Every expectation
//! is nginx's answer (`JUNCTION_TEST_PROXY=nginx`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

/// The published file with this test's addresses and paths.
fn site(name: &str, root: &str, fpm: &str) -> String {
    let text = std::fs::read_to_string(manifest_dir().join("config").join(name))
        .unwrap_or_else(|e| panic!("config/{name}: {e}"));
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim();
        let line = if t == "listen 80;" {
            line.replace("listen 80;", "listen 127.0.0.1:{PORT};")
        } else if t.starts_with("listen [::]:80") {
            continue;
        } else if t.starts_with("root ") {
            format!("    root {root};")
        } else if t.starts_with("fastcgi_pass unix:") {
            format!("        fastcgi_pass {fpm};")
        } else if t == "server 127.0.0.1:9000;" {
            format!("    server {fpm};")
        } else {
            line.replace("/var/log/nginx/", "{DIR}/")
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn docroot() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let php = manifest_dir().join("tests/peers/php");
    std::fs::copy(php.join("index.php"), d.path().join("index.php")).unwrap();
    std::fs::write(d.path().join("style.css"), "body{}\n").unwrap();
    std::fs::write(d.path().join("other.php"), "<?php echo 'other';\n").unwrap();
    d
}

fn start(name: &str, fpm: &PhpFpm, root: &std::path::Path) -> Proxy {
    let conf = site(name, root.to_str().unwrap(), &fpm.target());
    let read = |n: &str| std::fs::read_to_string(manifest_dir().join("config").join(n)).unwrap();
    Proxy::start_files(
        &[
            ("junction.conf", &conf),
            ("fastcgi_params", &read("fastcgi_params")),
        ],
        "junction.conf",
    )
}

/// What a row expects.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// index.php ran with this REQUEST_URI and QUERY_STRING.
    Front(&'static str, &'static str),
    /// 200 with this body.
    Body(&'static str),
    /// This status.
    Status(u16),
    /// A redirect with a Location ending so.
    Redirect(u16, &'static str),
}

fn check(proxy: &Proxy, host: &str, rows: &[(&str, Want)], failures: &mut Vec<String>) {
    for (target, want) in rows {
        let r = proxy.get(host, target);
        let ok = match want {
            Want::Front(uri, query) => {
                r.status == 200
                    && parse_json(r.text().trim()).is_ok_and(|j| {
                        j.get("REQUEST_URI").and_then(Json::as_str) == Some(uri)
                            && j.get("QUERY_STRING").and_then(Json::as_str) == Some(query)
                            && j.get("SCRIPT_NAME").and_then(Json::as_str) == Some("/index.php")
                    })
            }
            Want::Body(b) => r.status == 200 && r.text() == *b,
            Want::Status(s) => r.status == *s,
            Want::Redirect(s, end) => {
                r.status == *s && r.header("Location").is_some_and(|l| l.ends_with(end))
            }
        };
        if !ok {
            failures.push(format!(
                "{host} {target:<28} → {} {:?} Location={:?}, want {want:?}",
                r.status,
                r.text().chars().take(120).collect::<String>(),
                r.header("Location")
            ));
        }
    }
}

#[test]
fn wordpress_both_forms() {
    let fpm = PhpFpm::start_tcp("");
    let root = docroot();
    let proxy = start("wordpress.conf", &fpm, root.path());
    let rows: &[(&str, Want)] = &[
        ("/hello-world/?p=1", Want::Front("/hello-world/?p=1", "p=1")),
        ("/", Want::Front("/", "")),
        ("/style.css", Want::Body("body{}\n")),
        ("/other.php", Want::Body("other")),
    ];
    let legacy: &[(&str, Want)] = &[
        // `if (!-e $request_filename) { rewrite ^/(.*)$ /index.php?q=$1 last; }`
        (
            "/hello-world/",
            Want::Front("/hello-world/", "q=hello-world/"),
        ),
        ("/a/b?x=1", Want::Front("/a/b?x=1", "q=a/b&x=1")),
        ("/style.css", Want::Body("body{}\n")),
        ("/other.php", Want::Body("other")),
    ];
    let mut failures = Vec::new();
    check(&proxy, "wordpress", rows, &mut failures);
    check(&proxy, "wordpress-legacy", legacy, &mut failures);
    assert_table("wordpress", &failures, rows.len() + legacy.len());
}

#[test]
fn laravel() {
    let fpm = PhpFpm::start_tcp("");
    let root = docroot();
    let proxy = start("laravel.conf", &fpm, root.path());
    let rows: &[(&str, Want)] = &[
        ("/users/5?x=1", Want::Front("/users/5?x=1", "x=1")),
        ("/", Want::Front("/", "")),
        ("/style.css", Want::Body("body{}\n")),
        ("/.env", Want::Status(403)),
        ("/.well-known/acme", Want::Front("/.well-known/acme", "")),
    ];
    let mut failures = Vec::new();
    check(&proxy, "example.com", rows, &mut failures);
    let r = proxy.get("example.com", "/users/5");
    if r.header("X-Frame-Options") != Some("SAMEORIGIN")
        || r.header("X-Content-Type-Options") != Some("nosniff")
    {
        failures.push(format!("add_header: {}", r.describe()));
    }
    assert_table("laravel", &failures, rows.len() + 1);
}

#[test]
fn symfony() {
    let fpm = PhpFpm::start_tcp("");
    let root = docroot();
    let proxy = start("symfony.conf", &fpm, root.path());
    let rows: &[(&str, Want)] = &[
        ("/blog/1?x=2", Want::Front("/blog/1?x=2", "x=2")),
        ("/blog/1", Want::Front("/blog/1", "")),
        ("/style.css", Want::Body("body{}\n")),
        // the front controller is `internal`; other scripts are 404
        ("/index.php/some-path", Want::Status(404)),
        ("/other.php", Want::Status(404)),
    ];
    let mut failures = Vec::new();
    check(&proxy, "domain.tld", rows, &mut failures);
    assert_table("symfony", &failures, rows.len());
}

#[test]
fn drupal() {
    let fpm = PhpFpm::start_tcp("");
    let root = docroot();
    let proxy = start("drupal.conf", &fpm, root.path());
    let rows: &[(&str, Want)] = &[
        // the front controller: `try_files $uri /index.php?$query_string`, then the PHP
        // location's `try_files $fastcgi_script_name =404`
        ("/node/1?x=1", Want::Front("/node/1?x=1", "x=1")),
        ("/composer.json", Want::Front("/composer.json", "")),
        // a missing image goes through `@rewrite` (`rewrite ^ /index.php;`)
        ("/missing.png", Want::Front("/missing.png", "")),
        ("/missing.php", Want::Status(404)),
        ("/style.css", Want::Body("body{}\n")),
        ("/.git/config", Want::Status(403)),
        ("/sites/default/private/x", Want::Status(403)),
        ("/sites/default/files/x.php", Want::Status(403)),
        ("/vendor/lib/a.php", Want::Status(404)),
        ("/notes.txt", Want::Status(403)),
        // clean URLs: `if ($request_uri ~* "^(.*/)index\.php/(.*)") { return 307 $1$2; }`
        ("/index.php/my-page", Want::Redirect(307, "/my-page")),
        ("/a/index.php/b?c=1", Want::Redirect(307, "/a/b?c=1")),
    ];
    let mut failures = Vec::new();
    check(&proxy, "example.com", rows, &mut failures);
    assert_table("drupal", &failures, rows.len());
}
