//! `log_format NAME escape=default|json|none …` on a table of requests whose
//! User-Agent, URI and header values hold quotes, backslashes, control bytes, UTF-8
//! and raw bytes from 0x80: each row's line in three access logs (one per mode) must
//! be byte for byte what is written here, which is what nginx writes
//! (`JUNCTION_TEST_PROXY=nginx` runs the same table against nginx 1.22). Every line
//! of the `escape=json` log is then read by python's `json.loads` and its fields
//! compared with what the client sent.
//!
//! The format's own text (`{"row":"` …) is written as it is in every mode: only the
//! variables' values are escaped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONF: &str = r#"
log_format dflt '$arg_row "$request_uri" "$http_user_agent" "$http_x_v" $remote_user "$http_x_missing" $status';
log_format js escape=json '{"row":"$arg_row","uri":"$request_uri","ua":"$http_user_agent","v":"$http_x_v","user":"$remote_user","missing":"$http_x_missing","status":$status}';
log_format raw escape=none '$arg_row|$http_x_v|$http_x_missing|$remote_user|';
log_format late '$http_x_v ' escape=json;
server {
    listen 127.0.0.1:{PORT};
    access_log {DIR}/default.log dflt;
    access_log {DIR}/json.log js;
    access_log {DIR}/none.log raw;
    access_log {DIR}/late.log late;
    location / { return 200 "ok\n"; }
}
"#;

/// One request: its query's tail (after `row=N`), User-Agent, `X-V` (None: no such
/// header), and the lines expected in the default, json and none logs.
struct Row {
    name: &'static str,
    query: &'static [u8],
    ua: &'static [u8],
    v: Option<&'static [u8]>,
    default: &'static [u8],
    json: &'static [u8],
    none: &'static [u8],
}

const ROWS: &[Row] = &[
    Row {
        name: "plain values",
        query: b"",
        ua: b"curl/8.0",
        v: Some(b"hello world"),
        default: b"\"/?row=N\" \"curl/8.0\" \"hello world\" - \"-\" 200",
        json: b"\"uri\":\"/?row=N\",\"ua\":\"curl/8.0\",\"v\":\"hello world\",\"user\":\"\",\"missing\":\"\",\"status\":200}",
        none: b"|hello world|||",
    },
    Row {
        name: "double quotes",
        query: b"",
        ua: b"Mozilla \"quoted\"",
        v: Some(b"say \"hi\""),
        default: b"\"/?row=N\" \"Mozilla \\x22quoted\\x22\" \"say \\x22hi\\x22\" - \"-\" 200",
        json: b"\"uri\":\"/?row=N\",\"ua\":\"Mozilla \\\"quoted\\\"\",\"v\":\"say \\\"hi\\\"\",\"user\":\"\",\"missing\":\"\",\"status\":200}",
        none: b"|say \"hi\"|||",
    },
    Row {
        name: "backslashes",
        query: b"",
        ua: b"a\\\"b",
        v: Some(b"C:\\dir\\file"),
        default: b"\"/?row=N\" \"a\\x5C\\x22b\" \"C:\\x5Cdir\\x5Cfile\" - \"-\" 200",
        json: b"\"uri\":\"/?row=N\",\"ua\":\"a\\\\\\\"b\",\"v\":\"C:\\\\dir\\\\file\",\"user\":\"\",\"missing\":\"\",\"status\":200}",
        none: b"|C:\\dir\\file|||",
    },
    Row {
        name: "tab inside a value",
        query: b"",
        ua: b"x",
        v: Some(b"a\tb"),
        default: b"\"/?row=N\" \"x\" \"a\\x09b\" - \"-\" 200",
        json: b"\"uri\":\"/?row=N\",\"ua\":\"x\",\"v\":\"a\\tb\",\"user\":\"\",\"missing\":\"\",\"status\":200}",
        none: b"|a\tb|||",
    },
    Row {
        name: "UTF-8",
        query: b"",
        ua: "naïve ✓".as_bytes(),
        v: Some("héllo wörld".as_bytes()),
        default: b"\"/?row=N\" \"na\\xC3\\xAFve \\xE2\\x9C\\x93\" \"h\\xC3\\xA9llo w\\xC3\\xB6rld\" - \"-\" 200",
        json: "\"uri\":\"/?row=N\",\"ua\":\"naïve ✓\",\"v\":\"héllo wörld\",\"user\":\"\",\"missing\":\"\",\"status\":200}".as_bytes(),
        none: "|héllo wörld|||".as_bytes(),
    },
    Row {
        name: "raw bytes 0x80 and 0xff (not UTF-8)",
        query: b"",
        ua: b"x",
        v: Some(b"\x80-\xff"),
        default: b"\"/?row=N\" \"x\" \"\\x80-\\xFF\" - \"-\" 200",
        json: b"\"uri\":\"/?row=N\",\"ua\":\"x\",\"v\":\"\x80-\xff\",\"user\":\"\",\"missing\":\"\",\"status\":200}",
        none: b"|\x80-\xff|||",
    },
    Row {
        name: "an empty header is a value (not `-`)",
        query: b"",
        ua: b"x",
        v: Some(b""),
        default: b"\"/?row=N\" \"x\" \"\" - \"-\" 200",
        json: b"\"uri\":\"/?row=N\",\"ua\":\"x\",\"v\":\"\",\"user\":\"\",\"missing\":\"\",\"status\":200}",
        none: b"||||",
    },
    Row {
        name: "no such header",
        query: b"",
        ua: b"x",
        v: None,
        default: b"\"/?row=N\" \"x\" \"-\" - \"-\" 200",
        json: b"\"uri\":\"/?row=N\",\"ua\":\"x\",\"v\":\"\",\"user\":\"\",\"missing\":\"\",\"status\":200}",
        none: b"||||",
    },
    Row {
        name: "quote, backslash and raw bytes in the URI",
        query: b"&q=\"a\"\\b\xc3\xa9",
        ua: b"x",
        v: Some(b"u"),
        default: b"\"/?row=N&q=\\x22a\\x22\\x5Cb\\xC3\\xA9\" \"x\" \"u\" - \"-\" 200",
        json: b"\"uri\":\"/?row=N&q=\\\"a\\\"\\\\b\xc3\xa9\",\"ua\":\"x\",\"v\":\"u\",\"user\":\"\",\"missing\":\"\",\"status\":200}",
        none: b"|u|||",
    },
    Row {
        name: "format text that looks like an escape stays text",
        query: b"",
        ua: b"x",
        v: Some(b"{\"k\":1}"),
        default: b"\"/?row=N\" \"x\" \"{\\x22k\\x22:1}\" - \"-\" 200",
        json: b"\"uri\":\"/?row=N\",\"ua\":\"x\",\"v\":\"{\\\"k\\\":1}\",\"user\":\"\",\"missing\":\"\",\"status\":200}",
        none: b"|{\"k\":1}|||",
    },
];

fn request(port: u16, i: usize, row: &Row) -> Vec<u8> {
    let mut raw = format!("GET /?row={i}").into_bytes();
    raw.extend_from_slice(row.query);
    raw.extend_from_slice(b" HTTP/1.1\r\nHost: t\r\nUser-Agent: ");
    raw.extend_from_slice(row.ua);
    raw.extend_from_slice(b"\r\n");
    if let Some(v) = row.v {
        raw.extend_from_slice(b"X-V: ");
        raw.extend_from_slice(v);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"Connection: close\r\n\r\n");
    let r = http_request(port, &raw);
    assert_eq!(r.status, 200, "{}: {}", row.name, r.describe());
    raw
}

/// The file's lines once it has `n` of them (logs may be written in the background).
fn lines(path: &Path, n: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let data = std::fs::read(path).unwrap_or_default();
        let lines: Vec<Vec<u8>> = data
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {} lines, expected {n}:\n{}",
            path.display(),
            lines.len(),
            String::from_utf8_lossy(&data)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

#[test]
fn escape_modes_table() {
    let proxy = Proxy::start(CONF);
    for (i, row) in ROWS.iter().enumerate() {
        request(proxy.port, i, row);
    }
    let dir = proxy.dir();
    let default = lines(&dir.join("default.log"), ROWS.len());
    let json = lines(&dir.join("json.log"), ROWS.len());
    let none = lines(&dir.join("none.log"), ROWS.len());
    let late = lines(&dir.join("late.log"), ROWS.len());
    let mut failures = Vec::new();
    for (i, row) in ROWS.iter().enumerate() {
        let n = i.to_string();
        let fill = |t: &[u8]| -> Vec<u8> {
            let s = t.to_vec();
            // `row=N` → the row's number.
            let mut out = Vec::new();
            let mut k = 0;
            while k < s.len() {
                if s[k..].starts_with(b"row=N") {
                    out.extend_from_slice(b"row=");
                    out.extend_from_slice(n.as_bytes());
                    k += 5;
                } else {
                    out.push(s[k]);
                    k += 1;
                }
            }
            out
        };
        let mut want_default = format!("{i} ").into_bytes();
        want_default.extend(fill(row.default));
        let mut want_json = format!("{{\"row\":\"{i}\",").into_bytes();
        want_json.extend(fill(row.json));
        let mut want_none = format!("{i}").into_bytes();
        want_none.extend(fill(row.none));
        // `escape=` later than the first string is text of the format.
        let mut want_late = Vec::new();
        match row.v {
            None => want_late.push(b'-'),
            Some(_) => {
                let d = fill(row.default);
                // the third quoted field of the default line is X-V, escaped the same way
                let fields: Vec<&[u8]> = d.split(|&b| b == b'"').collect();
                want_late.extend_from_slice(fields[5]);
            }
        }
        want_late.extend_from_slice(b" escape=json");
        for (mode, got, want) in [
            ("default", &default[i], &want_default),
            ("json", &json[i], &want_json),
            ("none", &none[i], &want_none),
            ("escape= not first", &late[i], &want_late),
        ] {
            if got != want {
                failures.push(format!(
                    "{} [{mode}]:\n   got  {}\n   want {}",
                    row.name,
                    show(got),
                    show(want)
                ));
            }
        }
    }
    assert_table("log_format escape", &failures, ROWS.len() * 4);

    // python's json.loads reads every line of the json log, and its fields are what
    // the client sent. Bytes that are not UTF-8 are read with `surrogateescape`, the
    // way a log shipper keeps them (nginx writes bytes from 0x80 as they are).
    let script = r#"
import json, sys
for line in sys.stdin.buffer.read().split(b"\n"):
    if not line:
        continue
    o = json.loads(line.decode("utf-8", "surrogateescape"))
    enc = lambda s: s.encode("utf-8", "surrogateescape").hex()
    print(o["row"], enc(o["uri"]), enc(o["ua"]), enc(o["v"]), enc(o["user"]), enc(o["missing"]), o["status"])
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed: apt-get install -y python3");
    let data = std::fs::read(dir.join("json.log")).unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "json.loads refused a line of the json log: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        show(&data)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let parsed: Vec<&str> = text.lines().collect();
    assert_eq!(parsed.len(), ROWS.len(), "{text}");
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    for (i, row) in ROWS.iter().enumerate() {
        let mut uri = format!("/?row={i}").into_bytes();
        uri.extend_from_slice(row.query);
        let want = format!(
            "{i} {} {} {}   200",
            hex(&uri),
            hex(row.ua),
            hex(row.v.unwrap_or(b""))
        );
        assert_eq!(
            parsed[i], want,
            "{}: json.loads read other values",
            row.name
        );
    }
}

const URI_CONF: &str = r#"
log_format d '$uri|$arg_x';
log_format j escape=json '{"uri":"$uri"}';
log_format n escape=none '$uri';
server {
    listen 127.0.0.1:{PORT};
    access_log {DIR}/d.log d;
    access_log {DIR}/j.log j;
    access_log {DIR}/n.log n;
    location / { return 200 "ok\n"; }
}
"#;

/// Control bytes reach a log through `$uri`, which is the percent-decoded path (a
/// client's header value with control bytes other than tab is dropped by Junction's
/// HTTP/1 parser, where nginx keeps it: see docs/directives.md).
#[test]
fn control_bytes_in_the_decoded_uri() {
    let proxy = Proxy::start(URI_CONF);
    // (path sent, default line, json line, none line)
    type UriRow = (&'static str, &'static [u8], &'static [u8], &'static [u8]);
    let rows: &[UriRow] = &[
        (
            "/a%01b%08c%0Cd%1Fe%7Ff%09g%0Ah%0Di?x=%01",
            b"/a\\x01b\\x08c\\x0Cd\\x1Fe\\x7Ff\\x09g\\x0Ah\\x0Di|%01",
            b"{\"uri\":\"/a\\u0001b\\bc\\fd\\u001Fe\x7ff\\tg\\nh\\ri\"}",
            b"/a\x01b\x08c\x0cd\x1fe\x7ff\tg\nh\ri",
        ),
        (
            "/q%22%5C%C3%A9",
            b"/q\\x22\\x5C\\xC3\\xA9|-",
            b"{\"uri\":\"/q\\\"\\\\\xc3\xa9\"}",
            b"/q\"\\\xc3\xa9",
        ),
        // an argument given empty is a value (not `-`)
        ("/e?x=", b"/e|", b"{\"uri\":\"/e\"}", b"/e"),
    ];
    for (path, ..) in rows {
        let r = proxy.get("t", path);
        assert_eq!(r.status, 200, "{path}: {}", r.describe());
    }
    let dir = proxy.dir();
    let n = rows.len();
    let (d, j) = (lines(&dir.join("d.log"), n), lines(&dir.join("j.log"), n));
    // The none log holds raw newlines: read it whole.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut raw = Vec::new();
    while raw.iter().filter(|&&b| b == b'\n').count() < n + 1 && Instant::now() < deadline {
        raw = std::fs::read(dir.join("n.log")).unwrap_or_default();
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut want_raw = Vec::new();
    let mut failures = Vec::new();
    for (i, (path, wd, wj, wn)) in rows.iter().enumerate() {
        if d[i] != *wd {
            failures.push(format!(
                "{path} [default]: got {} want {}",
                show(&d[i]),
                show(wd)
            ));
        }
        if j[i] != *wj {
            failures.push(format!(
                "{path} [json]: got {} want {}",
                show(&j[i]),
                show(wj)
            ));
        }
        want_raw.extend_from_slice(wn);
        want_raw.push(b'\n');
    }
    if raw != want_raw {
        failures.push(format!(
            "[none]: got {} want {}",
            show(&raw),
            show(&want_raw)
        ));
    }
    assert_table("control bytes in $uri", &failures, n * 3);
}

#[test]
fn bad_escape_is_a_load_error() {
    let (out, _dir) = check_config(
        &[(
            "junction.conf",
            "log_format x escape=yaml '$status';\nserver { listen 127.0.0.1:1; }\n",
        )],
        "junction.conf",
    );
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("unknown log format escaping \"yaml\""),
        "{}",
        out.stderr
    );
    let (out, _dir) = check_config(
        &[(
            "junction.conf",
            "log_format x '$status';\nlog_format x '$uri';\nserver { listen 127.0.0.1:1; }\n",
        )],
        "junction.conf",
    );
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("duplicate \"log_format\" name \"x\""),
        "{}",
        out.stderr
    );
}
