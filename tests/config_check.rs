//! `-t` (test the configuration): errors name FILE:LINE and exit 1; good configs, including
//! every example in `config/`, exit 0 with nginx's two success lines.
//!
//! junction: `junction -t -c FILE`. nginx mode: `nginx -t` on the same file (a bare sites
//! file is included from a generated nginx.conf, so messages still name the file and line).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::fs;
use std::path::PathBuf;

/// A bare sites-available file whose line 4 is replaced by `line`.
fn site_with_line_4(line: &str) -> String {
    format!(
        "server {{
    listen 127.0.0.1:8080;
    server_name check.test;
    {line}
    location / {{
        proxy_pass http://127.0.0.1:8000;
    }}
}}
"
    )
}

fn assert_fails_at(out: &Output, file: &str, line: u32, needle: &str) {
    let at = format!("{file}:{line}");
    assert_eq!(out.code, Some(1), "exit code must be 1: {out:#?}");
    assert!(
        out.stderr.contains(&at),
        "stderr must name {at}: {:?}",
        out.stderr
    );
    assert!(
        out.stderr.contains(needle),
        "stderr must mention {needle:?}: {:?}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("test is successful") && !out.stdout.contains("test is successful"),
        "{out:#?}"
    );
}

fn assert_ok(out: &Output, what: &str) {
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.code, Some(0), "{what}: exit code must be 0: {out:#?}");
    assert!(all.contains("syntax is ok"), "{what}: {out:#?}");
    assert!(all.contains("test is successful"), "{what}: {out:#?}");
}

#[test]
fn good_config_passes() {
    let (out, _dir) = check_config(
        &[("site.conf", &site_with_line_4("proxy_buffers 8 2k;"))],
        "site.conf",
    );
    assert_ok(&out, "site.conf");
}

#[test]
fn unknown_directive_names_file_and_line() {
    let (out, dir) = check_config(
        &[("site.conf", &site_with_line_4("frobnicate on;"))],
        "site.conf",
    );
    let file = dir.path().join("site.conf");
    assert_fails_at(&out, file.to_str().unwrap(), 4, "frobnicate");
}

#[test]
fn unknown_directive_in_a_full_nginx_conf() {
    let main = "worker_processes 1;
events {
    worker_connections 64;
}
http {
    server {
        listen 127.0.0.1:8080;
        proxy_buffering on;
        no_such_directive 1;
    }
}
";
    let (out, dir) = check_config(&[("nginx.conf", main)], "nginx.conf");
    let file = dir.path().join("nginx.conf");
    assert_fails_at(&out, file.to_str().unwrap(), 9, "no_such_directive");
}

#[test]
fn error_in_an_included_file_names_that_file() {
    // include with a glob, relative to the main config's directory
    let main = "events {}
http {
    include conf.d/*.conf;
}
";
    let good = "server {\n    listen 127.0.0.1:8080;\n    server_name a.test;\n}\n";
    let bad = "server {\n    listen 127.0.0.1:8081;\n    proxy_read_timeout forever;\n}\n";
    let (out, dir) = check_config(
        &[
            ("nginx.conf", main),
            ("conf.d/a.conf", good),
            ("conf.d/b.conf", bad),
        ],
        "nginx.conf",
    );
    let file = dir.path().join("conf.d/b.conf");
    assert_fails_at(&out, file.to_str().unwrap(), 3, "proxy_read_timeout");
}

/// (line 4 of the site file, a word the error must contain)
const BAD_ARGUMENTS: &[(&str, &str)] = &[
    ("proxy_read_timeout abc;", "proxy_read_timeout"),
    ("proxy_buffers 8;", "proxy_buffers"),
    ("proxy_buffer_size 2q;", "proxy_buffer_size"),
    ("proxy_buffering maybe;", "proxy_buffering"),
    ("client_max_body_size lots;", "client_max_body_size"),
    ("listen 127.0.0.1:99999;", "listen"),
    ("return abc;", "return"),
    ("server_tokens sometimes;", "sometimes"),
    ("keepalive_timeout never;", "keepalive_timeout"),
    ("proxy_bind;", "proxy_bind"),
    // wrong context: proxy_pass belongs in location (or if in location)
    ("proxy_pass http://127.0.0.1:8000;", "proxy_pass"),
    // a URI part is not allowed in a regex location
    (
        "location ~ ^/x { proxy_pass http://127.0.0.1:8000/uri; }",
        "proxy_pass",
    ),
];

#[test]
fn bad_arguments_name_file_and_line() {
    let mut failures = Vec::new();
    for (line, needle) in BAD_ARGUMENTS {
        let (out, dir) = check_config(&[("site.conf", &site_with_line_4(line))], "site.conf");
        let at = format!("{}:4", dir.path().join("site.conf").display());
        if out.code != Some(1) || !out.stderr.contains(&at) || !out.stderr.contains(needle) {
            failures.push(format!(
                "{line:<50} → exit {:?}, stderr {:?} (want exit 1, {at}, {needle:?})",
                out.code,
                out.stderr.trim()
            ));
        }
    }
    assert_table("bad argument", &failures, BAD_ARGUMENTS.len());
}

#[test]
fn syntax_errors_name_file_and_line() {
    // a missing `;` turns two lines into one directive with too many arguments
    let (out, dir) = check_config(
        &[("site.conf", "server {\n    listen 127.0.0.1:8080;\n    server_tokens off\n    proxy_buffering on;\n}\n")],
        "site.conf",
    );
    let file = dir.path().join("site.conf");
    assert_fails_at(&out, file.to_str().unwrap(), 4, "server_tokens");
    // an unbalanced `}`
    let (out, dir) = check_config(
        &[("site.conf", "server {\n    listen 127.0.0.1:8080;\n}\n}\n")],
        "site.conf",
    );
    let file = dir.path().join("site.conf");
    assert_fails_at(&out, file.to_str().unwrap(), 4, "}");
}

/// Files in `config/` that are includes (params, mime types), not whole configs.
const NOT_WHOLE_CONFIGS: &[&str] = &[
    "fastcgi.conf",
    "fastcgi_params",
    "scgi_params",
    "uwsgi_params",
    "proxy_params",
    "mime.types",
    "koi-utf",
    "koi-win",
    "win-utf",
];

fn is_whole_config(path: &std::path::Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let ext_ok = name.ends_with(".conf") || name.ends_with(".toml");
    let stem = name.trim_end_matches(".conf").trim_end_matches(".toml");
    ext_ok
        && !NOT_WHOLE_CONFIGS.contains(&name)
        && !NOT_WHOLE_CONFIGS.contains(&stem)
        && !stem.ends_with("_params")
        && !stem.starts_with("mime")
}

/// `config/*.conf` and `config/*.toml` (one level of subdirectories too), minus includes.
fn example_configs() -> Vec<PathBuf> {
    let root = manifest_dir().join("config");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for entry in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() && d == root {
                dirs.push(p);
            } else if p.is_file() && is_whole_config(&p) {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_example_config_passes() {
    let files = example_configs();
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "conf")),
        "config/ must hold the example configs (the seed's basic, headers and buffers \
         configs and a TOML twin of each); found {files:?}"
    );
    if proxy_kind() == Kind::Junction {
        assert!(
            files
                .iter()
                .any(|f| f.extension().is_some_and(|e| e == "toml")),
            "config/ must hold the TOML twins; found {files:?}"
        );
    }
    let mut failures = Vec::new();
    let mut checked = 0;
    for f in &files {
        if proxy_kind() == Kind::Nginx && f.extension().is_some_and(|e| e == "toml") {
            continue; // nginx has no TOML form
        }
        if proxy_kind() == Kind::Nginx
            && fs::read_to_string(f)
                .is_ok_and(|t| t.contains("acme_issuer") || t.contains("http2 on;"))
        {
            // nginx 1.22 has no ACME module (ngx_http_acme_module is 1.29+) and no
            // `http2 on` (1.25.1+)
            continue;
        }
        checked += 1;
        let out = check_config_file(f);
        let all = format!("{}{}", out.stdout, out.stderr);
        if out.code != Some(0)
            || !all.contains("syntax is ok")
            || !all.contains("test is successful")
        {
            failures.push(format!(
                "{}: exit {:?}\n{}",
                f.display(),
                out.code,
                all.trim()
            ));
        }
    }
    assert_table("config/", &failures, checked);
}

/// `proxy_ssl_verify` and `proxy_ssl_server_name` were refused at load before TLS to
/// upstreams existed (issue 16); they load now, as in nginx (with an `http://` upstream
/// they have nothing to do).
#[test]
fn proxy_ssl_directives_now_load() {
    let cases = ["proxy_ssl_verify off;", "proxy_ssl_server_name on;"];
    let mut failures = Vec::new();
    for line in cases {
        let (out, _dir) = check_config(&[("site.conf", &site_with_line_4(line))], "site.conf");
        if out.code != Some(0) {
            failures.push(format!("{line:?} → {:?} {:?}", out.code, out.stderr));
        }
    }
    assert_table("proxy_ssl directive", &failures, cases.len());
    // `autoindex off` is nginx's default and harmless: accepted.
    let (out, _dir) = check_config(
        &[("site.conf", &site_with_line_4("autoindex off;"))],
        "site.conf",
    );
    assert_eq!(out.code, Some(0), "{out:?}");
}
