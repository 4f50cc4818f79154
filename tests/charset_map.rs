//! `charset_map` conversions with `source_charset`/`charset`, as nginx's charset
//! filter: 8-bit → UTF-8 (nginx's own `koi-utf` map, included as configs do), UTF-8 →
//! 8-bit (unmapped characters as `&#N;`, invalid bytes as `?`), 8-bit ↔ 8-bit both
//! ways (unmapped high bytes as `?`, the length kept); static files and a proxied
//! response; `Content-Type` gets the new charset, `Content-Length` goes when the
//! length changes; the load errors of a bad map.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

/// "Привет, мир! ё" in KOI8-R.
const KOI: &[u8] = b"\xf0\xd2\xc9\xd7\xc5\xd4, \xcd\xc9\xd2! \xa3";
const TEXT: &str = "Привет, мир! ё";

#[test]
fn charset_map_conversions_table() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("koi.html"), KOI).unwrap();
    // UTF-8 with a character koi-utf lacks (中), and a lead byte whose next byte does
    // not continue it (both go as one `?`, as nginx's ngx_utf8_decode).
    let mut utf = TEXT.as_bytes().to_vec();
    utf.extend_from_slice("中".as_bytes());
    utf.extend_from_slice(b"\xc3A.");
    std::fs::write(root.path().join("utf.html"), &utf).unwrap();
    std::fs::write(root.path().join("x.html"), b"a\xc1\xc2\xc3z").unwrap();
    std::fs::write(root.path().join("w.html"), b"a\xe0\xe1\xe2z").unwrap();
    let backend = Peer::http_server(root.path());
    let koi_utf = "/etc/nginx/koi-utf";
    assert!(
        std::path::Path::new(koi_utf).exists(),
        "{koi_utf} (shipped with nginx) is needed: apt-get install -y nginx"
    );
    let proxy = Proxy::start(&fill(
        r#"
include {KOIUTF};
charset_map x-test windows-1251 {
    C1 E0;
    C2 E1;
}
server {
    listen 127.0.0.1:{PORT};
    root {ROOT};
    location /k2u/ { alias {ROOT}/; source_charset koi8-r; charset utf-8; }
    location /u2k/ { alias {ROOT}/; source_charset utf-8; charset koi8-r; }
    location /x2w/ { alias {ROOT}/; source_charset x-test; charset windows-1251; }
    location /w2x/ { alias {ROOT}/; source_charset windows-1251; charset x-test; }
    location /proxy/ { source_charset koi8-r; charset utf-8; proxy_pass http://127.0.0.1:{B}/; }
}
"#,
        &[
            ("KOIUTF", &koi_utf),
            ("ROOT", &root.path().display()),
            ("B", &backend.port),
        ],
    ));
    let mut u2k = KOI.to_vec();
    u2k.extend_from_slice(b"&#20013;?.");
    // (uri, body, charset in Content-Type, Content-Length kept)
    let rows: &[(&str, &[u8], &str, bool)] = &[
        ("/k2u/koi.html", TEXT.as_bytes(), "utf-8", false),
        ("/u2k/utf.html", &u2k, "koi8-r", false),
        ("/x2w/x.html", b"a\xe0\xe1?z", "windows-1251", true),
        ("/w2x/w.html", b"a\xc1\xc2?z", "x-test", true),
        ("/proxy/koi.html", TEXT.as_bytes(), "utf-8", false),
    ];
    let mut failures = Vec::new();
    for &(uri, want, charset, length_kept) in rows {
        let r = proxy.get("cm.test", uri);
        if r.status != 200 {
            failures.push(format!("{uri}: {}", r.describe()));
            continue;
        }
        if r.body != want {
            failures.push(format!(
                "{uri}: body {:?}, want {:?}",
                String::from_utf8_lossy(&r.body),
                String::from_utf8_lossy(want)
            ));
        }
        let ct = r.header("content-type").unwrap_or_default();
        if ct != format!("text/html; charset={charset}") {
            failures.push(format!("{uri}: Content-Type {ct:?}"));
        }
        let cl = r.header("content-length");
        let kept = cl == Some(want.len().to_string().as_str());
        if kept != length_kept {
            failures.push(format!("{uri}: Content-Length {cl:?}"));
        }
    }
    assert_table("charset_map", &failures, rows.len());
}

#[test]
fn charset_map_load_errors() {
    // (maps, error, nginx 1.22 has the check: the others came in later nginx, 2025-2026)
    let cases: &[(&str, &str, bool)] = &[
        (
            "charset_map a a { 80 81; }",
            "\"charset_map\" between the same charsets \"a\" and \"a\"",
            true,
        ),
        (
            "charset_map utf-8 koi8-r { 80 81; }",
            "\"charset_map\" with \"utf-8\" charset should be given in the second column",
            false,
        ),
        (
            "charset_map a b { 80 81; }\ncharset_map b a { 80 81; }",
            "duplicate \"charset_map\" between \"b\" and \"a\"",
            true,
        ),
        ("charset_map a b { 80 1FF; }", "invalid value \"1FF\"", true),
        (
            "charset_map a utf-8 { 80 E282ACAA; }",
            "invalid value \"E282ACAA\"",
            false,
        ),
        (
            "charset_map a utf-8 { 80 41; }",
            "invalid value \"41\"",
            true,
        ),
    ];
    let mut failures = Vec::new();
    let mut ran = 0;
    for &(maps, want, old_nginx) in cases {
        if !old_nginx && proxy_kind() == Kind::Nginx {
            eprintln!("{maps}: modern nginx's check (nginx 1.22 lacks it): skipped on nginx");
            continue;
        }
        ran += 1;
        let conf =
            format!("{maps}\nserver {{\n    listen 127.0.0.1:8080;\n    charset utf-8;\n}}\n");
        let (out, _dir) = check_config(&[("site.conf", &conf)], "site.conf");
        if out.code == Some(0) || !out.stderr.contains(want) {
            failures.push(format!("{maps}: {}", out.stderr));
        }
    }
    assert_table("charset_map errors", &failures, ran);
}
