//! `autoindex on` in its four formats (html, json, jsonp, xml), `autoindex_exact_size off`,
//! names that need escaping or cutting, UTF-8 names with and without `charset utf-8`: the
//! output is compared byte for byte (and the JSON parsed), the same expectations run
//! against nginx in the reference mode.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::time::{Duration, UNIX_EPOCH};

/// 2024-03-05T07:08:09Z.
const MTIME: u64 = 1_709_622_489;
const LONG: &str = "long name with spaces and more characters to exceed fifty.txt";
const UML: &str = "ümlaut-naïve.txt";

fn set_mtime(p: &std::path::Path) {
    let f = std::fs::File::open(p).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(MTIME))
        .unwrap();
}

fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("list");
    std::fs::create_dir(&root).unwrap();
    for (name, size) in [
        ("a.txt", 5usize),
        ("amp&<x>.html", 3),
        ("big.bin", 20_000),
        (LONG, 1),
        (UML, 2),
        (".hidden", 1),
    ] {
        std::fs::write(root.join(name), vec![b'x'; size]).unwrap();
        set_mtime(&root.join(name));
    }
    for dir in ["sub", "Zed"] {
        std::fs::create_dir(root.join(dir)).unwrap();
        set_mtime(&root.join(dir));
    }
    std::fs::create_dir(d.path().join("withindex")).unwrap();
    std::fs::write(d.path().join("withindex/index.html"), "the index\n").unwrap();
    d
}

const CONF: &str = "
server {
    listen 127.0.0.1:{PORT};
    root {ROOT};
    location /list/ { autoindex on; }
    location /withindex/ { autoindex on; }
    location /approx/ { alias {ROOT}/list/; autoindex on; autoindex_exact_size off; }
    location /utf/ { alias {ROOT}/list/; autoindex on; charset utf-8; }
    location /json/ { alias {ROOT}/list/; autoindex on; autoindex_format json; }
    location /jsonp/ { alias {ROOT}/list/; autoindex on; autoindex_format jsonp; }
    location /xml/ { alias {ROOT}/list/; autoindex on; autoindex_format xml; }
    location /local/ { alias {ROOT}/list/; autoindex on; autoindex_localtime on; }
    location /noindex/ { alias {ROOT}/list/; }
}
";

/// One `<pre>` line: the link, the name padded to 50, the date, the size column.
fn line(href: &str, text: &str, visible: usize, size: &str) -> String {
    let pad = if visible > 50 {
        String::new()
    } else {
        " ".repeat(50 - visible)
    };
    format!("<a href=\"{href}\">{text}{pad} 05-Mar-2024 07:08 {size}\r\n")
}

fn html(uri: &str, exact: bool, utf8: bool) -> String {
    let size = |n: u64, approx: &str| {
        if exact {
            format!("{n:>19}")
        } else {
            approx.to_string()
        }
    };
    let dir = if exact {
        "                  -"
    } else {
        "      -"
    };
    let uml_visible = if utf8 { UML.chars().count() } else { UML.len() };
    let long_href = LONG.replace(' ', "%20");
    let mut s = format!(
        "<html>\r\n<head><title>Index of {uri}</title></head>\r\n<body>\r\n<h1>Index of {uri}</h1><hr><pre><a href=\"../\">../</a>\r\n"
    );
    s += &line("Zed/", "Zed/</a>", 4, dir);
    s += &line("sub/", "sub/</a>", 4, dir);
    s += &line("a.txt", "a.txt</a>", 5, &size(5, "      5"));
    s += &line(
        "amp%26%3Cx%3E.html",
        "amp&amp;&lt;x&gt;.html</a>",
        12,
        &size(3, "      3"),
    );
    s += &line("big.bin", "big.bin</a>", 7, &size(20_000, "    20K"));
    s += &line(
        &long_href,
        &format!("{}..&gt;</a>", &LONG[..47]),
        61,
        &size(1, "      1"),
    );
    s += &line(
        "%C3%BCmlaut-na%C3%AFve.txt",
        &format!("{UML}</a>"),
        uml_visible,
        &size(2, "      2"),
    );
    s += "</pre><hr></body>\r\n</html>\r\n";
    s
}

const DATE: &str = "Tue, 05 Mar 2024 07:08:09 GMT";

fn json_body() -> String {
    let e = |name: &str, kind: &str, size: Option<u64>| match size {
        Some(n) => format!(
            "{{ \"name\":\"{name}\", \"type\":\"{kind}\", \"mtime\":\"{DATE}\", \"size\":{n} }}"
        ),
        None => format!("{{ \"name\":\"{name}\", \"type\":\"{kind}\", \"mtime\":\"{DATE}\" }}"),
    };
    let items = [
        e("Zed", "directory", None),
        e("sub", "directory", None),
        e("a.txt", "file", Some(5)),
        e("amp&<x>.html", "file", Some(3)),
        e("big.bin", "file", Some(20_000)),
        e(LONG, "file", Some(1)),
        e(UML, "file", Some(2)),
    ];
    format!("[\r\n{}\r\n]", items.join(",\r\n"))
}

fn xml_body() -> String {
    let t = "2024-03-05T07:08:09Z";
    let mut s = "<?xml version=\"1.0\"?>\r\n<list>\r\n".to_string();
    s += &format!("<directory mtime=\"{t}\">Zed</directory>\r\n");
    s += &format!("<directory mtime=\"{t}\">sub</directory>\r\n");
    for (name, size) in [
        ("a.txt", 5),
        ("amp&amp;&lt;x&gt;.html", 3),
        ("big.bin", 20_000),
        (LONG, 1),
        (UML, 2),
    ] {
        s += &format!("<file mtime=\"{t}\" size=\"{size}\">{name}</file>\r\n");
    }
    s += "</list>\r\n";
    s
}

#[test]
fn autoindex_formats_byte_for_byte() {
    let root = tree();
    let proxy = Proxy::start(&fill(CONF, &[("ROOT", &root.path().display())]));
    let cases: Vec<(&str, &str, String)> = vec![
        ("/list/", "text/html", html("/list/", true, false)),
        ("/approx/", "text/html", html("/approx/", false, false)),
        (
            "/utf/",
            "text/html; charset=utf-8",
            html("/utf/", true, true),
        ),
        ("/local/", "text/html", html("/local/", true, false)),
        ("/json/", "application/json", json_body()),
        ("/jsonp/", "application/json", json_body()),
        (
            "/jsonp/?callback=cb.fn_1",
            "application/javascript",
            format!("/* callback */\r\ncb.fn_1({});", json_body()),
        ),
        ("/xml/", "text/xml; charset=utf-8", xml_body()),
    ];
    let mut failures = Vec::new();
    for (path, ctype, want) in &cases {
        let r = proxy.get("ai.test", path);
        let mut why = Vec::new();
        if r.status != 200 {
            why.push(format!("status {}", r.status));
        }
        if r.header("Content-Type") != Some(*ctype) {
            why.push(format!("Content-Type {:?}", r.header("Content-Type")));
        }
        if r.text() != *want {
            why.push(format!("body:\n{}\nexpected:\n{want}", r.text()));
        }
        if !why.is_empty() {
            failures.push(format!("{path}: {}", why.join("; ")));
        }
    }
    assert_table("autoindex", &failures, cases.len());
    // The JSON is JSON.
    let j = parse_json(&proxy.get("ai.test", "/json/").text()).expect("valid JSON");
    let items = j.as_array().unwrap();
    assert_eq!(items.len(), 7);
    assert_eq!(items[2].get("name").and_then(Json::as_str), Some("a.txt"));
    assert_eq!(items[4].get("size").and_then(Json::as_u64), Some(20_000));
    assert_eq!(
        items[0].get("type").and_then(Json::as_str),
        Some("directory")
    );
}

#[test]
fn autoindex_edges() {
    let root = tree();
    let proxy = Proxy::start(&fill(CONF, &[("ROOT", &root.path().display())]));
    // An index file wins.
    let r = proxy.get("ai.test", "/withindex/");
    assert_eq!(r.text(), "the index\n");
    // Without autoindex: 403.
    assert_eq!(proxy.get("ai.test", "/noindex/").status, 403);
    // An invalid JSONP callback: 400.
    assert_eq!(proxy.get("ai.test", "/jsonp/?callback=a(b)").status, 400);
    // HEAD: the head only.
    let r = proxy.request(b"HEAD /list/ HTTP/1.1\r\nHost: ai.test\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/html"));
    assert!(r.body.is_empty());
    // A directory without the slash: 301 to it.
    let r = proxy.get("ai.test", "/list/sub");
    assert_eq!(r.status, 301);
    // A missing directory: 404.
    assert_eq!(proxy.get("ai.test", "/list/nope/").status, 404);
}
