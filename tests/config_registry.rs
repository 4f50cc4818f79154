//! The one directive registry (issue 11): every crate's directives in one table, each
//! with its value kind and its support, checked in one walk by `-t`. Bad values from the
//! tables of different crates (core, server, the generated `PREFIX_*` family) are all
//! reported, each with `FILE:LINE`; directives accepted without effect or obsolete warn
//! once per place; a directive not supported yet is an error. In the reference mode
//! (`JUNCTION_TEST_PROXY=nginx`) nginx 1.22 stops at the first bad value, on the same
//! line, and accepts the inert directives silently.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

/// One bad value from each table: core (line 3), server (4), the fastcgi, uwsgi and
/// memcached families (6, 7, 8).
const VALUES: &str = "server {
    listen 127.0.0.1:8080;
    keepalive_requests many;
    ssl_verify_depth deep;
    location / {
        fastcgi_buffers 8 big;
        uwsgi_read_timeout soon;
        memcached_socket_keepalive maybe;
    }
}
";

fn emerg_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains("[emerg]")).collect()
}

#[test]
fn bad_values_of_every_crates_directives_are_all_reported() {
    let (out, dir) = check_config(&[("values.conf", VALUES)], "values.conf");
    let file = dir.path().join("values.conf").display().to_string();
    assert_eq!(out.code, Some(1), "{out:#?}");
    let emerg = emerg_lines(&out.stderr);
    if proxy_kind() == Kind::Nginx {
        // nginx stops at the first, in its own words ("directive invalid number").
        assert_eq!(emerg.len(), 1, "{}", out.stderr);
        assert!(emerg[0].ends_with(&format!("{file}:3")), "{}", out.stderr);
        return;
    }
    let expected = [
        format!("invalid value \"many\" in \"keepalive_requests\" directive in {file}:3"),
        format!("invalid value \"deep\" in \"ssl_verify_depth\" directive in {file}:4"),
        format!("invalid value \"big\" in \"fastcgi_buffers\" directive in {file}:6"),
        format!("invalid value \"soon\" in \"uwsgi_read_timeout\" directive in {file}:7"),
        format!(
            "invalid value \"maybe\" in \"memcached_socket_keepalive\" directive, it must be \"on\" or \"off\" in {file}:8"
        ),
    ];
    assert_eq!(emerg.len(), expected.len(), "{}", out.stderr);
    for (line, want) in emerg.iter().zip(&expected) {
        assert!(
            line.ends_with(want.as_str()),
            "{line:?} does not end with {want:?}"
        );
    }
}

/// Inert directives of three tables; `inert.conf` is included twice (one place).
const INERT: &str = "server {
    listen 127.0.0.1:8080;
    sendfile on;
    http2_push_preload on;
    include inert.conf;
    location / {
        include inert.conf;
        return 204;
    }
}
";

#[test]
fn inert_directives_warn_once_per_place() {
    let (out, dir) = check_config(
        &[
            ("site.conf", INERT),
            ("inert.conf", "proxy_force_ranges on;\n"),
        ],
        "site.conf",
    );
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(out.stderr.contains("syntax is ok"), "{}", out.stderr);
    let warns: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("[warn]"))
        .collect();
    if proxy_kind() == Kind::Nginx {
        // nginx 1.22 implements them (http2_push_preload is obsolete from 1.25.1 on).
        assert_eq!(warns, Vec::<&str>::new(), "{}", out.stderr);
        return;
    }
    let site = dir.path().join("site.conf").display().to_string();
    let inert = dir.path().join("inert.conf").display().to_string();
    let expected = [
        format!("\"sendfile\" directive is accepted but has no effect in junction in {site}:3"),
        format!(
            "the \"http2_push_preload\" directive is obsolete, ignored in {site}:4"
        ),
        format!(
            "\"proxy_force_ranges\" directive is accepted but has no effect in junction in {inert}:1"
        ),
    ];
    assert_eq!(warns.len(), expected.len(), "{}", out.stderr);
    for (line, want) in warns.iter().zip(&expected) {
        assert!(
            line.ends_with(want.as_str()),
            "{line:?} does not end with {want:?}"
        );
    }
}

#[test]
fn a_directive_not_supported_yet_is_an_error_wherever_it_is() {
    if proxy_kind() == Kind::Nginx {
        eprintln!("nginx implements ssl_ocsp: Junction-only test");
        return;
    }
    // a plain server, no TLS listener: refused all the same, with the other errors
    let (out, dir) = check_config(
        &[(
            "ocsp.conf",
            "ssl_ech_file ech.pem;\n\n\n\
             server {\n    listen 127.0.0.1:8080;\n    ssl_ocsp on;\n    gzip maybe;\n}\n",
        )],
        "ocsp.conf",
    );
    let file = dir.path().join("ocsp.conf").display().to_string();
    assert_eq!(out.code, Some(1), "{out:#?}");
    let emerg = emerg_lines(&out.stderr);
    let expected = [
        format!(
            "\"ssl_ech_file\" directive is not supported by junction yet (see docs/directives.md) in {file}:1"
        ),
        format!(
            "\"ssl_ocsp\" directive is not supported by junction yet (see docs/directives.md) in {file}:6"
        ),
        format!(
            "invalid value \"maybe\" in \"gzip\" directive, it must be \"on\" or \"off\" in {file}:7"
        ),
    ];
    assert_eq!(emerg.len(), expected.len(), "{}", out.stderr);
    for (line, want) in emerg.iter().zip(&expected) {
        assert!(
            line.ends_with(want.as_str()),
            "{line:?} does not end with {want:?}"
        );
    }
}
