//! Debian's and Ubuntu's standard PHP block (issue 10): `sites-available/default` with
//! its PHP location uncommented as the file instructs, `snippets/fastcgi-php.conf`,
//! `fastcgi.conf` and Debian's `nginx.conf`, as `nginx-common` ships them
//! (`config/debian/etc-nginx/`; only paths and ports changed), in front of a real
//! php-fpm on a unix socket. Then a table of `$fastcgi_script_name` /
//! `$fastcgi_path_info` as read in `set`, `try_files`, `add_header` and the access log.
//!
//! In nginx these two variables are computed when read, from the current `$uri` and the
//! location's `fastcgi_split_path_info`/`fastcgi_index`; the FastCGI handler starts a
//! fresh context, so after `try_files` changed `$uri` the path info is gone (trac #321,
//! which the snippet's `set $path_info` works around). `JUNCTION_TEST_PROXY=nginx` runs
//! the same tests against nginx: every expectation here is nginx's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

fn debian(name: &str) -> String {
    let path = manifest_dir().join("config/debian/etc-nginx").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn shipped(name: &str) -> String {
    let path = manifest_dir().join("config").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn app_root() -> String {
    manifest_dir()
        .join("tests/peers/debian")
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

/// A php-fpm pool on a unix socket whose access log (one line per request it served)
/// is `log`.
fn fpm_with_access_log(log: &std::path::Path) -> PhpFpm {
    PhpFpm::start_unix(&format!(
        "access.log = {}\naccess.format = \"%m %r%Q%q %s\"",
        log.display()
    ))
}

/// Debian's nginx.conf and default site, with the paths moved into the test's dir,
/// the listen ports changed, the document root and the php-fpm socket replaced.
fn debian_files(fpm: &PhpFpm) -> Vec<(&'static str, String)> {
    let nginx_conf = debian("nginx.conf")
        .lines()
        .filter(|l| !l.starts_with("pid ")) // the test harness sets the pid file
        .collect::<Vec<_>>()
        .join("\n")
        .replace("/etc/nginx/", "{DIR}/")
        .replace("/var/log/nginx/", "{DIR}/");
    let site = debian("sites-available/default")
        .replace(
            "listen 80 default_server;",
            "listen 127.0.0.1:{PORT} default_server;",
        )
        .replace(
            "listen [::]:80 default_server;",
            "listen [::1]:{PORT2} default_server;",
        )
        .replace("root /var/www/html;", &format!("root {};", app_root()))
        .replace(
            "fastcgi_pass unix:/run/php/php8.2-fpm.sock;",
            &format!("fastcgi_pass {};", fpm.target()),
        );
    assert!(
        site.contains("{PORT2}") && site.contains(&fpm.target()) && site.contains(&app_root()),
        "the Debian default site changed shape:\n{site}"
    );
    vec![
        ("nginx.conf", nginx_conf),
        ("sites-enabled/default", site),
        (
            "snippets/fastcgi-php.conf",
            debian("snippets/fastcgi-php.conf"),
        ),
        ("fastcgi.conf", shipped("fastcgi.conf")),
        ("mime.types", shipped("mime.types")),
    ]
}

fn start(files: &[(&'static str, String)], main: &str) -> Proxy {
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    Proxy::start_files(&refs, main)
}

fn field(j: &Json, k: &str) -> String {
    j.get(k)
        .and_then(Json::as_str)
        .unwrap_or_else(|| panic!("no {k} in {j:?}"))
        .to_string()
}

fn php(proxy: &Proxy, path: &str) -> Json {
    let r = proxy.get("localhost", path);
    assert_eq!(r.status, 200, "GET {path}: {}", r.describe());
    parse_json(r.text().trim()).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", r.describe()))
}

#[test]
fn debian_stock_site_serves_php() {
    let logs = tempfile::tempdir().unwrap();
    let fpm_log = logs.path().join("fpm-access.log");
    let fpm = fpm_with_access_log(&fpm_log);
    let files = debian_files(&fpm);
    let proxy = start(&files, "nginx.conf");
    let root = app_root();

    let j = php(&proxy, "/index.php");
    assert_eq!(field(&j, "SCRIPT_NAME"), "/index.php");
    assert_eq!(field(&j, "PATH_INFO"), "");
    assert_eq!(field(&j, "SCRIPT_FILENAME"), format!("{root}/index.php"));
    assert_eq!(field(&j, "QUERY_STRING"), "");

    let j = php(&proxy, "/index.php?x=1&y=2");
    assert_eq!(field(&j, "SCRIPT_NAME"), "/index.php");
    assert_eq!(field(&j, "QUERY_STRING"), "x=1&y=2");
    assert_eq!(field(&j, "REQUEST_URI"), "/index.php?x=1&y=2");

    // `index index.php …`: the directory's index.php through the PHP block.
    let j = php(&proxy, "/dir/");
    assert_eq!(field(&j, "SCRIPT_NAME"), "/dir/index.php");
    assert_eq!(
        field(&j, "SCRIPT_FILENAME"),
        format!("{root}/dir/index.php")
    );
    assert_eq!(field(&j, "REQUEST_URI"), "/dir/");
    let j = php(&proxy, "/");
    assert_eq!(field(&j, "SCRIPT_NAME"), "/index.php");

    // `location ~ \.php$` does not take a path-info URI: `location /` answers 404,
    // exactly as nginx does with the stock block.
    assert_eq!(
        proxy.get("localhost", "/index.php/extra/path?x=1").status,
        404
    );

    // A missing script: 404 from the proxy, php-fpm never asked.
    let r = proxy.get("localhost", "/missing.php");
    assert_eq!(r.status, 404, "{}", r.describe());
    // Static files are served around the PHP block.
    let r = proxy.get("localhost", "/page.html");
    assert_eq!((r.status, r.text().as_str()), (200, "static\n"));

    // Over IPv6 too (the site's second listen).
    let r = http_request_to(
        std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, proxy.ports[1])),
        b"GET /index.php HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.describe());

    php(&proxy, "/index.php?last=1");
    let served = wait_file_contains(&fpm_log, "last=1");
    assert!(
        !served.contains("missing"),
        "php-fpm must not see /missing.php:\n{served}"
    );
    assert!(served.contains("/dir/index.php"), "{served}");
}

/// The same snippet under the PHP location nginx's own wiki gives for path info,
/// `location ~ [^/]\.php(/|$)`: PATH_INFO arrives through the snippet's
/// `set $path_info` (trac #321).
#[test]
fn debian_snippet_passes_path_info() {
    let logs = tempfile::tempdir().unwrap();
    let fpm_log = logs.path().join("fpm-access.log");
    let fpm = fpm_with_access_log(&fpm_log);
    let mut files = debian_files(&fpm);
    for (name, text) in &mut files {
        if *name == "sites-enabled/default" {
            *text = text.replace("location ~ \\.php$ {", "location ~ [^/]\\.php(/|$) {");
        }
    }
    let proxy = start(&files, "nginx.conf");
    let root = app_root();

    let j = php(&proxy, "/index.php/extra/path?x=1");
    assert_eq!(field(&j, "SCRIPT_NAME"), "/index.php");
    assert_eq!(field(&j, "PATH_INFO"), "/extra/path");
    assert_eq!(field(&j, "SCRIPT_FILENAME"), format!("{root}/index.php"));
    assert_eq!(field(&j, "QUERY_STRING"), "x=1");
    assert_eq!(field(&j, "REQUEST_URI"), "/index.php/extra/path?x=1");
    // try_files changed $uri to the script.
    assert_eq!(field(&j, "DOCUMENT_URI"), "/index.php");

    let j = php(&proxy, "/sub.php/x/y.php/z");
    assert_eq!(field(&j, "SCRIPT_NAME"), "/sub.php");
    assert_eq!(field(&j, "PATH_INFO"), "/x/y.php/z");

    assert_eq!(proxy.get("localhost", "/missing.php/a/b").status, 404);
    php(&proxy, "/index.php?last=1");
    let served = wait_file_contains(&fpm_log, "last=1");
    assert!(!served.contains("missing"), "{served}");
}

/// `$fastcgi_script_name` / `$fastcgi_path_info` read in `set` (rewrite phase),
/// `try_files`, `add_header` (after the handler) and the access log, for locations with
/// and without `fastcgi_split_path_info`. Columns: `$uri`, the two variables, and the
/// values `set` captured before try_files.
const VARS_SITE: &str = "
log_format fcgivars '[$request_uri] [$uri] [$fastcgi_script_name] [$fastcgi_path_info] [$sn] [$pi]';
server {
    listen 127.0.0.1:{PORT};
    root {ROOT};
    index index.php;
    fastcgi_index idx.php;
    access_log {DIR}/vars.log fcgivars;

    location ~ [^/]\\.php(/|$) {
        fastcgi_split_path_info ^(.+?\\.php)(/.*)$;
        set $sn $fastcgi_script_name;
        set $pi $fastcgi_path_info;
        try_files $fastcgi_script_name =404;
        add_header X-Vars \"[$uri] [$fastcgi_script_name] [$fastcgi_path_info] [$sn] [$pi]\" always;
        fastcgi_index index.php;
        include fastcgi.conf;
        fastcgi_param PATH_INFO $pi;
        fastcgi_pass {FPM};
    }

    location ^~ /s/ {
        set $sn $fastcgi_script_name;
        set $pi $fastcgi_path_info;
        add_header X-Vars \"[$uri] [$fastcgi_script_name] [$fastcgi_path_info] [$sn] [$pi]\" always;
        return 200 \"ok\";
    }
}
";

#[test]
fn fastcgi_script_name_and_path_info_in_every_phase() {
    let fpm = PhpFpm::start_unix("");
    let site = fill(VARS_SITE, &[("ROOT", &app_root()), ("FPM", &fpm.target())]);
    let proxy = Proxy::start_files(
        &[
            ("junction.conf", &site),
            ("fastcgi.conf", &shipped("fastcgi.conf")),
        ],
        "junction.conf",
    );
    // (request, status, X-Vars: [$uri] [$fastcgi_script_name] [$fastcgi_path_info] [$sn] [$pi])
    let rows: &[(&str, u16, &str)] = &[
        (
            "/index.php",
            200,
            "[/index.php] [/index.php] [] [/index.php] []",
        ),
        (
            "/index.php?x=1",
            200,
            "[/index.php] [/index.php] [] [/index.php] []",
        ),
        // try_files changes $uri to the script; the handler splits again: no path info.
        (
            "/index.php/extra/path?x=1",
            200,
            "[/index.php] [/index.php] [] [/index.php] [/extra/path]",
        ),
        (
            "/dir/index.php/",
            200,
            "[/dir/index.php] [/dir/index.php] [] [/dir/index.php] [/]",
        ),
        // The lazy `.+?` stops at the first `.php/`.
        (
            "/sub.php/x/y.php/z",
            200,
            "[/sub.php] [/sub.php] [] [/sub.php] [/x/y.php/z]",
        ),
        // `index index.php`: an internal redirect, the split starts over.
        (
            "/dir/",
            200,
            "[/dir/index.php] [/dir/index.php] [] [/dir/index.php] []",
        ),
        // Not found: no handler ran, the split made for `set` stays.
        (
            "/missing.php",
            404,
            "[/missing.php] [/missing.php] [] [/missing.php] []",
        ),
        (
            "/missing.php/a/b",
            404,
            "[/missing.php/a/b] [/missing.php] [/a/b] [/missing.php] [/a/b]",
        ),
        (
            "/a%20b.php/c",
            404,
            "[/a b.php/c] [/a b.php] [/c] [/a b.php] [/c]",
        ),
        // No split regex here: the whole URI; the server's fastcgi_index after a `/`.
        ("/s/", 200, "[/s/] [/s/idx.php] [] [/s/idx.php] []"),
        (
            "/s/a.php/b",
            200,
            "[/s/a.php/b] [/s/a.php/b] [] [/s/a.php/b] []",
        ),
        (
            "/s/d/?q=1",
            200,
            "[/s/d/] [/s/d/idx.php] [] [/s/d/idx.php] []",
        ),
    ];
    let mut failures = Vec::new();
    for (path, status, vars) in rows {
        let r = proxy.get("vars.test", path);
        let got = r.header("x-vars").unwrap_or("<none>");
        if r.status != *status || got != *vars {
            failures.push(format!(
                "{path}: got {} {got:?}, want {status} {vars:?}",
                r.status
            ));
        }
    }
    // The PHP side of the path-info row: PATH_INFO from `set`, the script from the split.
    let j = php(&proxy, "/index.php/extra/path?x=1&last=1");
    if (field(&j, "SCRIPT_NAME"), field(&j, "PATH_INFO"))
        != ("/index.php".into(), "/extra/path".into())
    {
        failures.push(format!("php saw {j:?}"));
    }
    // The access log reads them after the response, as add_header did.
    let log_path = proxy.dir().join("vars.log");
    let log = wait_file_contains(&log_path, "[/index.php/extra/path?x=1&last=1]");
    for (path, _, vars) in rows {
        let want = format!("[{path}] {vars}");
        if !log.lines().any(|l| l == want) {
            failures.push(format!("access log has no line {want:?}"));
        }
    }
    assert_table("fastcgi variables", &failures, rows.len() * 2 + 1);
}

/// The machine's own `/etc/nginx/nginx.conf` (Debian's, installed with the test peers)
/// passes `-t` as it is, sites-enabled and all.
#[test]
fn the_installed_debian_nginx_conf_passes_the_check() {
    let conf = std::path::Path::new("/etc/nginx/nginx.conf");
    assert!(
        conf.exists(),
        "/etc/nginx/nginx.conf is missing: apt-get install -y nginx (scripts/install-test-deps.sh)"
    );
    let out = check_config_file(conf);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.code, Some(0), "{all}");
    assert!(all.contains("test is successful"), "{all}");
}
