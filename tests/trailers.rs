//! `proxy_pass_trailers on` (nginx 1.27.2+): the trailer fields of a chunked upstream
//! response reach an HTTP/1.1 client after the chunked body, without the hidden ones
//! (`proxy_hide_header` and its defaults such as `X-Pad`), buffered or not, and
//! `$upstream_trailer_NAME` logs them; an HTTP/1.0 client gets the body without them.
//! Off (the default, and all nginx 1.22 has): no trailers reach the client and the
//! variable is empty. The rows with the directive are Junction-only in the reference
//! mode (nginx 1.22 does not know it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn wait_line(path: &Path, prefix: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.starts_with(prefix)) {
            return l.split('|').map(str::to_string).collect();
        }
        assert!(Instant::now() < deadline, "no line {prefix:?} in {text:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A raw response cut into its head, its body (chunked coding decoded when used) and
/// its trailer lines.
struct Raw {
    head: String,
    chunked: bool,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
}

fn parse_raw(raw: &[u8]) -> Raw {
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&raw[..at]).into_owned();
    let mut rest = &raw[at + 4..];
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let mut body = Vec::new();
    let mut trailers = Vec::new();
    if !chunked {
        body = rest.to_vec();
        return Raw {
            head,
            chunked,
            body,
            trailers,
        };
    }
    let line = |r: &mut &[u8]| -> String {
        let i = r.windows(2).position(|w| w == b"\r\n").expect("a line");
        let l = String::from_utf8_lossy(&r[..i]).into_owned();
        *r = &r[i + 2..];
        l
    };
    loop {
        let size = usize::from_str_radix(line(&mut rest).trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
    loop {
        let l = line(&mut rest);
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').expect("a field");
        trailers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    Raw {
        head,
        chunked,
        body,
        trailers,
    }
}

fn want_body(n: usize) -> Vec<u8> {
    b"abcdefghij\n".iter().copied().cycle().take(n).collect()
}

#[test]
fn proxy_pass_trailers_table() {
    let peer = Peer::python("trailers.py", &[]);
    let on = proxy_kind() == Kind::Junction;
    if !on {
        eprintln!("proxy_pass_trailers: nginx 1.27.2+, Junction-only rows skipped on nginx 1.22");
    }
    let pass = |extra: &str| {
        if on {
            format!("proxy_pass_trailers on; {extra}")
        } else {
            String::new()
        }
    };
    let proxy = Proxy::start(&fill(
        &format!(
            r#"
log_format tr '$request_uri|$upstream_trailer_x_sum|$upstream_trailer_x_keep';
server {{
    listen 127.0.0.1:{{PORT}};
    access_log {{DIR}}/tr.log tr;
    location /on/ {{ {ON} proxy_pass http://127.0.0.1:{{P}}; }}
    location /hide/ {{ {HIDE} proxy_pass http://127.0.0.1:{{P}}; }}
    location /unbuffered/ {{ {UNBUF} proxy_pass http://127.0.0.1:{{P}}; }}
    location /off/ {{ proxy_pass http://127.0.0.1:{{P}}; }}
    location /gzip/ {{
        {GZIP}
        gzip on; gzip_types text/plain; gzip_min_length 1; gzip_proxied any;
        proxy_pass http://127.0.0.1:{{P}};
    }}
}}
"#,
            ON = pass(""),
            HIDE = pass("proxy_hide_header X-Secret;"),
            UNBUF = pass("proxy_buffering off;"),
            GZIP = pass(""),
        ),
        &[("P", &peer.port)],
    ));
    let log = proxy.dir().join("tr.log");
    // (uri, HTTP version, Junction-only, trailers the client gets, $upstream_trailer_x_sum)
    type Row<'a> = (&'a str, &'a str, bool, &'a [(&'a str, &'a str)], &'a str);
    let rows: &[Row] = &[
        ("/on/a?t=X-Sum:abc", "1.1", true, &[("x-sum", "abc")], "abc"),
        (
            "/on/big?len=300000&t=X-Sum:big&t=X-Keep:2",
            "1.1",
            true,
            &[("x-sum", "big"), ("x-keep", "2")],
            "big",
        ),
        (
            "/hide/a?t=X-Pad:1&t=X-Secret:s&t=X-Keep:k&t=X-Sum:h",
            "1.1",
            true,
            &[("x-keep", "k"), ("x-sum", "h")],
            "h",
        ),
        (
            "/unbuffered/a?len=100000&t=X-Sum:u",
            "1.1",
            true,
            &[("x-sum", "u")],
            "u",
        ),
        ("/on/old?t=X-Sum:old", "1.0", true, &[], "old"),
        (
            "/gzip/a?len=5000&t=X-Sum:z",
            "1.1",
            true,
            &[("x-sum", "z")],
            "z",
        ),
        ("/off/a?t=X-Sum:abc", "1.1", false, &[], "-"),
        ("/off/big?len=300000&t=X-Sum:abc", "1.1", false, &[], "-"),
    ];
    let mut failures = Vec::new();
    let mut ran = 0;
    for &(uri, version, junction_only, want, logged) in rows {
        if junction_only && !on {
            continue;
        }
        ran += 1;
        let raw = raw_exchange(
            proxy.port,
            format!("GET {uri} HTTP/{version}\r\nHost: tr.test\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let mut r = parse_raw(&raw);
        if uri.starts_with("/gzip/") {
            // Compressed as relayed, the trailers after the gzip stream.
            let mut plain = Vec::new();
            let ok = r
                .head
                .to_ascii_lowercase()
                .contains("content-encoding: gzip")
                && std::io::Read::read_to_end(
                    &mut flate2::read::GzDecoder::new(&r.body[..]),
                    &mut plain,
                )
                .is_ok();
            if !ok {
                failures.push(format!("{uri}: not gzip: {}", r.head));
                continue;
            }
            r.body = plain;
        }
        let len = uri
            .split("len=")
            .nth(1)
            .map_or(11, |s| s.split('&').next().unwrap().parse().unwrap());
        if !r.head.starts_with("HTTP/1.1 200") || r.body != want_body(len) {
            failures.push(format!(
                "{uri}: head {:?}, {} body bytes",
                r.head.lines().next(),
                r.body.len()
            ));
            continue;
        }
        // (Without trailers Junction may send a body it read whole with Content-Length
        // where nginx sends it chunked: not a row here.)
        if !want.is_empty() && !r.chunked {
            failures.push(format!("{uri}: not chunked"));
        }
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if r.trailers != want {
            failures.push(format!("{uri}: trailers {:?}, want {want:?}", r.trailers));
        }
        let f = wait_line(&log, &format!("{uri}|"));
        if f[1] != logged {
            failures.push(format!("{uri}: $upstream_trailer_x_sum {:?}", f[1]));
        }
    }
    assert_table("proxy_pass_trailers", &failures, ran);
}
