//! The one Content-Type lookup (nginx's `ngx_http_set_exten` + `ngx_http_set_content_type`)
//! for static files: the extension is after the last `.` of the last path segment, a dot
//! file such as `/.htaccess` has none (so `default_type`), and an upper-case extension is
//! looked up lower-cased. Runs on nginx too (`JUNCTION_TEST_PROXY=nginx`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

#[test]
fn static_files_are_typed_as_nginx_types_them() {
    let root = tempfile::tempdir().unwrap();
    for name in [".htaccess", "page.HTML", "style.css", "noext", "x.tar.gz"] {
        std::fs::write(root.path().join(name), "data\n").unwrap();
    }
    std::fs::create_dir(root.path().join("dir.css")).unwrap();
    std::fs::write(root.path().join("dir.css/file"), "data\n").unwrap();
    let conf = format!(
        "server {{
    listen 127.0.0.1:{{PORT}};
    server_name types.test;
    root {};
    default_type application/octet-stream;
    types {{ text/html html; application/gzip gz; text/css css; text/x-wrong htaccess; }}
}}
",
        root.path().display()
    );
    let proxy = Proxy::start(&conf);
    let rows = [
        ("/.htaccess", "application/octet-stream"),
        ("/page.HTML", "text/html"),
        ("/style.css", "text/css"),
        ("/noext", "application/octet-stream"),
        ("/x.tar.gz", "application/gzip"),
        ("/dir.css/file", "application/octet-stream"),
    ];
    let mut failures = Vec::new();
    for (path, want) in rows {
        let r = proxy.get("types.test", path);
        if r.status != 200 || r.header("Content-Type") != Some(want) {
            failures.push(format!(
                "{path}: want 200 {want}, got {} {:?}",
                r.status,
                r.header("Content-Type")
            ));
        }
    }
    assert_table("static Content-Type", &failures, rows.len());
}
