//! `error_log` as nginx: several main-level lines, each with its own level (files,
//! `syslog:server=ADDR:PORT`, `syslog:server=unix:PATH`), and `access_log syslog:…`.
//! The syslog server is real: a python3 UDP socket and a unix datagram socket
//! (`tests/peers/syslog_sink.py`) that record every datagram. Each datagram is
//! compared with the one nginx sends (`JUNCTION_TEST_PROXY=nginx` runs the same
//! test against nginx 1.22): `<PRI>Mmm dd hh:mm:ss HOST TAG: MESSAGE` (RFC 3164, as
//! `ngx_syslog.c`), the same apart from the times, the pid and the connection number.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const CONF: &str = r#"
error_log {DIR}/error.log info;
error_log syslog:server=127.0.0.1:{S},tag=jtest warn;
error_log syslog:server=unix:{SOCK},facility=daemon,nohostname error;
error_log {DIR}/warn.log warn;
error_log {DIR}/crit.log crit;
events {}
http {
    log_format j escape=json '{"s":$status,"u":"$request_uri"}';
    access_log {DIR}/access.log j;
    access_log syslog:server=127.0.0.1:{S} j;
    access_log syslog:server=unix:{SOCK},severity=notice,nohostname,tag=acc j;
    server {
        listen 127.0.0.1:{PORT};
        server_name log.test;
        root {WWW};
        location /u/ { return 200 "[$never]"; }
        location /set/ { set $never x; return 200 "$never"; }
    }
}
"#;

/// The datagrams `syslog_sink.py` recorded: (socket, bytes).
fn datagrams(path: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (kind, hex) = l.split_once(' ')?;
            let bytes = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            Some((kind.to_string(), bytes))
        })
        .collect()
}

fn wait_datagrams(path: &Path, f: impl Fn(&[(String, Vec<u8>)]) -> bool) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let d = datagrams(path);
        if f(&d) || Instant::now() > deadline {
            return d
                .into_iter()
                .map(|(k, b)| (k, String::from_utf8_lossy(&b).into_owned()))
                .collect();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `<PRI>Mmm dd hh:mm:ss REST` → `<PRI>TIME REST` after checking the time's shape;
/// in REST an error-log line's date, pid#tid and connection number become `DATE`,
/// `PID#TID` and `*C`, and the host name `HOST`.
fn normalize(d: &str, host: &str) -> String {
    let Some(close) = d.find('>') else {
        return format!("NO PRI: {d}");
    };
    let (pri, rest) = d.split_at(close + 1);
    let (time, rest) = rest.split_at(15.min(rest.len()));
    let t = time.as_bytes();
    let shape = MONTHS.contains(&&time[..3])
        && t[3] == b' '
        && (t[4] == b' ' || t[4].is_ascii_digit())
        && t[5].is_ascii_digit()
        && t[6] == b' '
        && time[7..].bytes().enumerate().all(|(i, c)| {
            if i == 2 || i == 5 {
                c == b':'
            } else {
                c.is_ascii_digit()
            }
        });
    if !shape {
        return format!("BAD TIME {time:?}: {d}");
    }
    let mut rest = rest.to_string();
    let with_host = format!(" {host} ");
    if rest.starts_with(&with_host) {
        rest = format!(" HOST {}", &rest[with_host.len()..]);
    }
    // `TAG: 2026/12/01 22:30:00 [error] 123#0: *4 …`
    if let Some(colon) = rest.find(": ") {
        let (tag, msg) = rest.split_at(colon + 2);
        let m = msg.as_bytes();
        if m.len() > 19 && m[4] == b'/' && m[7] == b'/' && m[13] == b':' {
            let after = &msg[19..];
            if let Some(lb) = after.find("] ") {
                let (level, tail) = after.split_at(lb + 2);
                // `PID#TID: ` (Junction's TID is 0, nginx's the thread's id)
                if let Some(hash) = tail.find(": ").filter(|&i| tail[..i].contains('#')) {
                    let mut tail = tail[hash + 2..].to_string();
                    if tail.starts_with('*') {
                        if let Some(sp) = tail.find(' ') {
                            tail = format!("*C{}", &tail[sp..]);
                        }
                    }
                    rest = format!("{tag}DATE{level}PID#TID: {tail}");
                }
            }
        }
    }
    format!("{pri}TIME{rest}")
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_ascii_lowercase()
}

#[test]
fn error_log_and_access_log_to_syslog() {
    let sink_dir = tempfile::tempdir().unwrap();
    let rec = sink_dir.path().join("datagrams");
    let sock = sink_dir.path().join("log.sock");
    let sink = Peer::python(
        "syslog_sink.py",
        &[rec.to_str().unwrap(), "--unix", sock.to_str().unwrap()],
    );
    let www = tempfile::tempdir().unwrap();
    let conf = fill(
        CONF,
        &[
            ("S", &sink.port),
            ("SOCK", &sock.display()),
            ("WWW", &www.path().display()),
        ],
    );
    let proxy = Proxy::start_files(&[("junction.conf", &conf)], "junction.conf");
    let root = www.path().display().to_string();

    // A 404 of a missing file (an error), then an uninitialized variable (a warning).
    assert_eq!(proxy.get("log.test", "/missing").status, 404);
    assert_eq!(proxy.get("log.test", "/u/").status, 200);

    let host = hostname();
    let ctx = |uri: &str| {
        format!(
            ", client: 127.0.0.1, server: log.test, request: \"GET {uri} HTTP/1.1\", host: \"log.test\""
        )
    };
    let open_failed = format!(
        "open() \"{root}/missing\" failed (2: No such file or directory){}",
        ctx("/missing")
    );
    let uninit = format!("using uninitialized \"never\" variable{}", ctx("/u/"));
    // (socket, datagram after normalize)
    let want: Vec<(&str, String)> = vec![
        // error_log …:PORT,tag=jtest warn: local7 (23) × 8 + error (3) = 187, warn 188.
        (
            "udp",
            format!("<187>TIME HOST jtest: DATE [error] PID#TID: *C {open_failed}"),
        ),
        // access_log syslog:server=…:PORT: local7.info = 190, tag nginx.
        (
            "udp",
            "<190>TIME HOST nginx: {\"s\":404,\"u\":\"/missing\"}".to_string(),
        ),
        (
            "udp",
            format!("<188>TIME HOST jtest: DATE [warn] PID#TID: *C {uninit}"),
        ),
        (
            "udp",
            "<190>TIME HOST nginx: {\"s\":200,\"u\":\"/u/\"}".to_string(),
        ),
        // error_log unix:…,facility=daemon,nohostname error: daemon (3) × 8 + 3 = 27;
        // the warning is not sent there.
        (
            "unix",
            format!("<27>TIME nginx: DATE [error] PID#TID: *C {open_failed}"),
        ),
        // access_log unix:…,severity=notice,nohostname,tag=acc: 23 × 8 + 5 = 189.
        (
            "unix",
            "<189>TIME acc: {\"s\":404,\"u\":\"/missing\"}".to_string(),
        ),
        (
            "unix",
            "<189>TIME acc: {\"s\":200,\"u\":\"/u/\"}".to_string(),
        ),
    ];
    // Wait until every wanted datagram is in (or the time is up).
    let got = wait_datagrams(&rec, |d| {
        want.iter().all(|(kind, w)| {
            d.iter()
                .any(|(k, b)| k == kind && normalize(&String::from_utf8_lossy(b), &host) == *w)
        })
    });
    // Only the datagrams of these two requests (a proxy may log other lines at start).
    let ours: Vec<(String, String)> = got
        .iter()
        .filter(|(_, d)| d.contains("log.test") || d.contains("{\"s\":"))
        .map(|(k, d)| (k.clone(), normalize(d, &host)))
        .collect();
    let mut failures = Vec::new();
    for (kind, w) in &want {
        if !ours.iter().any(|(k, d)| k == kind && d == w) {
            failures.push(format!("missing on {kind}: {w}"));
        }
    }
    for (k, d) in &ours {
        if !want.iter().any(|(kind, w)| kind == k && w == d) {
            failures.push(format!("unexpected on {k}: {d}"));
        }
    }
    assert_table("syslog datagrams", &failures, want.len());

    // The file targets, each from its own level on.
    let warn = wait_file_contains(&proxy.dir().join("warn.log"), "uninitialized");
    assert!(warn.contains(&open_failed), "{warn}");
    let info = wait_file_contains(&proxy.dir().join("error.log"), "uninitialized");
    assert!(info.contains(&open_failed), "{info}");
    let crit = std::fs::read_to_string(proxy.dir().join("crit.log")).unwrap_or_default();
    assert!(
        !crit.contains("open()") && !crit.contains("uninitialized"),
        "crit.log got lower levels:\n{crit}"
    );
    drop(sink);
}

#[test]
fn syslog_parameter_errors() {
    let rows: &[(&str, &str)] = &[
        ("error_log syslog:facility=local7;", "no syslog server specified"),
        (
            "error_log syslog:server=127.0.0.1,facility=local9;",
            "unknown syslog facility \"local9\"",
        ),
        (
            "error_log syslog:server=127.0.0.1,severity=err;",
            "unknown syslog severity \"err\"",
        ),
        (
            "error_log syslog:server=127.0.0.1,tag=a-b;",
            "syslog \"tag\" only allows alphanumeric characters and underscore",
        ),
        (
            "error_log syslog:server=127.0.0.1,foo=1;",
            "unknown syslog parameter \"foo=1\"",
        ),
        ("error_log {DIR}/e.log loud;", "invalid log level \"loud\""),
        (
            "http { server { listen 127.0.0.1:1; access_log syslog:server=127.0.0.1 combined buffer=32k; } }",
            "logs to syslog cannot be buffered",
        ),
    ];
    let mut failures = Vec::new();
    for (line, msg) in rows {
        let conf = if line.starts_with("http") {
            format!("events {{}}\n{line}\n")
        } else {
            format!("{line}\nevents {{}}\nhttp {{}}\n")
        };
        let (out, _dir) = check_config(&[("junction.conf", &conf)], "junction.conf");
        if out.code == Some(0) || !out.stderr.contains(msg) {
            failures.push(format!("{line}: exit {:?}, {}", out.code, out.stderr));
        }
    }
    assert_table("syslog parameter errors", &failures, rows.len());
}

#[test]
fn error_log_memory_is_refused_with_a_clear_message() {
    let (out, _dir) = check_config(
        &[(
            "junction.conf",
            "error_log memory:32m debug;\nevents {}\nhttp {}\n",
        )],
        "junction.conf",
    );
    match proxy_kind() {
        Kind::Junction => {
            assert_ne!(out.code, Some(0), "{}", out.stderr);
            assert!(
                out.stderr
                    .contains("\"memory:\" error logs are not supported"),
                "{}",
                out.stderr
            );
        }
        // Debian's nginx is built --with-debug, which has the memory log (a build
        // without it says "nginx was built without debug support").
        Kind::Nginx => assert_eq!(out.code, Some(0), "{}", out.stderr),
    }
}

#[test]
fn error_log_stderr_at_its_own_level() {
    let www = tempfile::tempdir().unwrap();
    let conf = format!(
        "error_log stderr warn;\nerror_log {{DIR}}/error.log info;\nevents {{}}\nhttp {{\n    server {{\n        listen 127.0.0.1:{{PORT}};\n        server_name log.test;\n        root {};\n        location /u/ {{ return 200 \"[$never]\"; }}\n        location /set/ {{ set $never x; return 200 \"$never\"; }}\n    }}\n}}\n",
        www.path().display()
    );
    let proxy = Proxy::start_files(&[("junction.conf", &conf)], "junction.conf");
    assert_eq!(proxy.get("log.test", "/u/").status, 200);
    assert_eq!(proxy.get("log.test", "/missing").status, 404);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut err = proxy.stderr();
    while !(err.contains("uninitialized") && err.contains("open()")) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        err = proxy.stderr();
    }
    let line = err
        .lines()
        .find(|l| l.contains("using uninitialized \"never\" variable"))
        .unwrap_or_else(|| panic!("no warning on stderr:\n{err}"));
    assert!(line.contains(" [warn] "), "{line}");
    assert!(
        line.ends_with(
            ", client: 127.0.0.1, server: log.test, request: \"GET /u/ HTTP/1.1\", host: \"log.test\""
        ),
        "{line}"
    );
    assert!(
        err.contains("[error]") && err.contains("/missing\" failed"),
        "{err}"
    );
}

const LEVELS_SITE: &str = r#"
server {
    listen 127.0.0.1:{PORT};
    server_name a.test;
    root {WWW};
    error_log {DIR}/server.log warn;
    location /own/ { error_log {DIR}/loc.log error; }
    location /ownu/ { error_log {DIR}/loc.log error; return 200 "[$never]"; }
    location /u/ { return 200 "[$never]"; }
    location /set/ { set $never x; return 200 "$never"; }
}
server {
    listen 127.0.0.1:{PORT};
    server_name b.test;
    root {WWW};
}
"#;

/// `error_log` in a server and in a location: a request's lines go to the nearest
/// level's targets (each at its level) instead of the main level's, as nginx does.
#[test]
fn server_and_location_error_logs() {
    let www = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&fill(LEVELS_SITE, &[("WWW", &www.path().display())]));
    for (host, path, status) in [
        ("a.test", "/missing", 404),
        ("a.test", "/own/missing", 404),
        ("a.test", "/u/", 200),
        ("a.test", "/ownu/", 200),
        ("b.test", "/missing2", 404),
    ] {
        assert_eq!(proxy.get(host, path).status, status, "{host}{path}");
    }
    let dir = proxy.dir();
    let server = wait_file_contains(&dir.join("server.log"), "uninitialized");
    let loc = wait_file_contains(&dir.join("loc.log"), "/own/missing\" failed");
    let main = proxy
        .wait_error_log("/missing2\" failed", Duration::from_secs(5))
        .unwrap_or_else(|l| panic!("no /missing2 line in the main error log:\n{l}"));
    let mut failures = Vec::new();
    let mut row = |what: &str, ok: bool, text: &str| {
        if !ok {
            failures.push(format!("{what}:\n{text}"));
        }
    };
    row(
        "server.log has the server's error",
        server.contains("/missing\" failed"),
        &server,
    );
    row(
        "server.log has the server's warning",
        server.contains("\"GET /u/ HTTP/1.1\""),
        &server,
    );
    row(
        "server.log has nothing of the location with its own error_log",
        !server.contains("/own/") && !server.contains("/ownu/"),
        &server,
    );
    row(
        "loc.log (error) has no warning",
        !loc.contains("uninitialized"),
        &loc,
    );
    row(
        "loc.log has nothing of the server's other locations",
        !loc.contains("GET /missing ") && !loc.contains("GET /u/"),
        &loc,
    );
    row(
        "the main log has nothing of a.test",
        !main.contains("a.test"),
        &main,
    );
    assert_table("error_log levels", &failures, 6);
}

/// A main level whose only `error_log` is syslog still writes the default file (here
/// the `-e` one; nginx: `ngx_log_open_default`), at `error`.
#[test]
fn syslog_only_keeps_the_default_file_log() {
    let sink_dir = tempfile::tempdir().unwrap();
    let rec = sink_dir.path().join("datagrams");
    let sink = Peer::python("syslog_sink.py", &[rec.to_str().unwrap()]);
    let www = tempfile::tempdir().unwrap();
    let conf = format!(
        "error_log syslog:server=127.0.0.1:{};\nevents {{}}\nhttp {{\n    server {{\n        listen 127.0.0.1:{{PORT}};\n        server_name log.test;\n        root {};\n    }}\n}}\n",
        sink.port,
        www.path().display()
    );
    let proxy = Proxy::start_files(&[("junction.conf", &conf)], "junction.conf");
    assert_eq!(proxy.get("log.test", "/gone").status, 404);
    let got = wait_datagrams(&rec, |d| {
        d.iter()
            .any(|(_, b)| String::from_utf8_lossy(b).contains("/gone\" failed"))
    });
    assert!(
        got.iter()
            .any(|(k, d)| k == "udp" && d.starts_with("<187>") && d.contains("/gone\" failed")),
        "{got:?}"
    );
    proxy
        .wait_error_log("/gone\" failed", Duration::from_secs(5))
        .unwrap_or_else(|l| panic!("the default error log did not get the line:\n{l}"));
}
