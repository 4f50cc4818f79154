//! `-t` reports every error of a file (issue 11), each with `FILE:LINE`, and exits 1:
//! the syntax errors of the registry (unknown directive, wrong place, wrong arity) and
//! the bad values of value-typed directives come from one walk over the tree. nginx
//! stops at the first error; in the reference mode (`JUNCTION_TEST_PROXY=nginx`) the
//! test checks that nginx names the first of the same errors the same way (listing the
//! others is Junction's own kindness).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

/// Three different mistakes, on lines 3, 6 and 7.
const SITE: &str = "server {
    listen 127.0.0.1:8080;
    proxy_pas http://127.0.0.1:8000;
    location / {
        proxy_pass http://127.0.0.1:8000;
        proxy_buffering maybe;
        client_max_body_size 10q;
    }
}
";

#[test]
fn three_mistakes_are_three_lines_with_file_and_line() {
    let (out, dir) = check_config(&[("site.conf", SITE)], "site.conf");
    let file = dir.path().join("site.conf").display().to_string();
    assert_eq!(out.code, Some(1), "{out:#?}");
    let expected = [
        format!("unknown directive \"proxy_pas\" in {file}:3"),
        format!(
            "invalid value \"maybe\" in \"proxy_buffering\" directive, it must be \"on\" or \"off\" in {file}:6"
        ),
        format!("invalid value \"10q\" in \"client_max_body_size\" directive in {file}:7"),
    ];
    let emerg: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("[emerg]"))
        .collect();
    let wanted = match proxy_kind() {
        Kind::Junction => &expected[..],
        // nginx 1.22 stops at the first error.
        Kind::Nginx => &expected[..1],
    };
    assert_eq!(emerg.len(), wanted.len(), "{}", out.stderr);
    for (line, want) in emerg.iter().zip(wanted) {
        assert!(
            line.ends_with(want.as_str()),
            "{line:?} does not end with {want:?}"
        );
    }
    assert!(out.stderr.contains("test failed"), "{}", out.stderr);
}

/// Three mistakes the build finds (not the syntax walk), in an `upstream` and two
/// `server` blocks: each block with an error is left out and the build goes on.
const BLOCKS: &str = "upstream u {
    server 127.0.0.1:1 weight=x;
}
server {
    listen 127.0.0.1:8080;
    location / {
        add_header X-A $nosuchvar;
    }
}
server {
    listen 127.0.0.1:8081;
    location / {
        fastcgi_pass 127.0.0.1;
    }
}
";

#[test]
fn a_mistake_in_each_of_three_blocks_is_three_lines() {
    let (out, dir) = check_config(&[("blocks.conf", BLOCKS)], "blocks.conf");
    let file = dir.path().join("blocks.conf").display().to_string();
    assert_eq!(out.code, Some(1), "{out:#?}");
    let expected = [
        format!("invalid parameter \"weight=x\" in {file}:2"),
        format!("unknown \"nosuchvar\" variable in {file}:7"),
        format!("no port in upstream \"127.0.0.1\" in {file}:13"),
    ];
    let emerg: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("[emerg]"))
        .collect();
    let wanted = match proxy_kind() {
        Kind::Junction => &expected[..],
        // nginx 1.22 stops at the first error.
        Kind::Nginx => &expected[..1],
    };
    assert_eq!(emerg.len(), wanted.len(), "{}", out.stderr);
    for (line, want) in emerg.iter().zip(wanted) {
        assert!(
            line.ends_with(want.as_str()),
            "{line:?} does not end with {want:?}"
        );
    }
}

#[test]
fn a_broken_upstream_is_one_error_not_one_more_per_user() {
    let site = "upstream u {
    server 127.0.0.1:1 weight=x;
}
server {
    listen 127.0.0.1:8080;
    location / {
        proxy_pass http://u;
    }
}
";
    let (out, dir) = check_config(&[("u.conf", site)], "u.conf");
    let file = dir.path().join("u.conf").display().to_string();
    assert_eq!(out.code, Some(1), "{out:#?}");
    let emerg: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("[emerg]"))
        .collect();
    assert_eq!(emerg.len(), 1, "{}", out.stderr);
    assert!(
        emerg[0].ends_with(&format!("invalid parameter \"weight=x\" in {file}:2")),
        "{}",
        out.stderr
    );
}
