//! `geo` and `split_clients`: the same 100 addresses and 100 keys land in the same
//! buckets as under nginx (the expected strings are nginx 1.22's answers; the test passes
//! with `JUNCTION_TEST_PROXY=nginx`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

const CONF: &str = r#"
split_clients "${arg_k}salt" $bucket {
    10%    a;
    20.5%  b;
    0.5%   c;
    30%    d;
    *      e;
}

split_clients "$arg_k" $half {
    50%  x;
}

geo $arg_ip $net {
    default      def;
    10.0.0.0/8   ten;
    10.1.0.0/16  ten-one;
    10.1.2.0/24  ten-one-two;
    10.1.2.3     host;
    10.2.0.0/16  ten-two;
    delete       10.2.0.0/16;
    127.0.0.0/8  loop;
    192.168.0.0/16 lan;
    2001:db8::/32  doc6;
    ::1          lo6;
}

geo $arg_ip $range {
    ranges;
    default                 out;
    10.0.0.0-10.0.0.255     r1;
    10.0.1.0-10.0.3.255     r2;
    192.168.1.10-192.168.1.20 r3;
}

geo $arg_ip $overlap {
    ranges;
    default                 out;
    10.0.0.0-10.0.0.255     wide;
    10.0.0.10-10.0.0.20     narrow;
    10.0.0.15-10.0.0.16     inner;
    10.0.1.0-10.0.1.9       beside;
    10.0.1.0-10.0.1.9       beside-again;
}

geo $client {
    default      other;
    127.0.0.1    local;
}

geo $proxied {
    default      other;
    proxy        127.0.0.0/8;
    203.0.113.0/24  doc;
}

server {
    listen 127.0.0.1:{PORT};
    server_name gs.test;
    location /split { return 200 "$bucket$half"; }
    location /geo { return 200 "$net/$range"; }
    location /client { return 200 "$client $proxied"; }
    location /overlap { return 200 "$overlap"; }
}
"#;

/// nginx 1.22's buckets for `key0`…`key99` (`$bucket$half`), space-separated.
const SPLIT_WANT: &str = "b e ax b b d bx e d e d e e e bx ex dx e ex b e bx bx ex d d bx bx dx ex ex b dx d ax e dx a d ex ax d d e bx ex e e b ex ax e ex e e d dx bx e ex b d d b e d e d d dx d e a b ax d e b e dx ax bx ax dx e dx d dx bx e ax bx e ex dx b e ex dx a";

/// nginx 1.22's `$net/$range` for the 100 addresses of [`addresses`].
const GEO_WANT: &str = "ten/r1 ten-one-two/out ten/out loop/out lan/out def/out doc6/out lo6/out ten/r2 def/out ten-one-two/out ten-one-two/out ten/out loop/out lan/r3 def/out doc6/out lo6/out ten/r2 def/out ten/out host/out ten/out loop/out lan/out def/out doc6/out lo6/out ten/r2 def/out ten/r2 ten-one-two/out ten/out loop/out lan/out def/out doc6/out lo6/out ten/r2 def/out ten-one/out ten-one-two/out ten/out loop/out lan/r3 def/out doc6/out lo6/out ten/r2 def/out ten/out host/out ten/out loop/out lan/out def/out doc6/out lo6/out ten/r2 def/out ten/r1 ten-one-two/out ten/out loop/out lan/out def/out doc6/out lo6/out ten/r2 def/out ten-one-two/out ten-one-two/out ten/out loop/out lan/r3 def/out doc6/out lo6/out ten/r2 def/out ten/out host/out ten/out loop/out lan/out def/out doc6/out lo6/out ten/r2 def/out ten/r2 ten-one-two/out ten/out loop/out lan/out def/out doc6/out lo6/out ten/r2 def/out";

fn addresses() -> Vec<String> {
    let mut v = Vec::new();
    for i in 0..100u32 {
        v.push(match i % 10 {
            0 => format!("10.{}.{}.{}", i % 3, i % 4, i),
            1 => format!("10.1.2.{}", i % 6),
            2 => format!("10.2.{}.1", i),
            3 => format!("127.0.{}.1", i),
            4 => format!("192.168.1.{}", i % 30),
            5 => format!("172.16.0.{i}"),
            6 => format!("2001:db8::{i:x}"),
            7 => "::1".to_string(),
            8 => format!("10.0.{}.{}", i % 5, i),
            _ => format!("not-an-ip-{i}"),
        });
    }
    v
}

#[test]
fn split_clients_and_geo_match_nginx() {
    let proxy = Proxy::start(CONF);
    let split: Vec<String> = (0..100)
        .map(|i| {
            let r = proxy.get("gs.test", &format!("/split?k=key{i}"));
            assert_eq!(r.status, 200, "{}", r.describe());
            r.text()
        })
        .collect();
    let geo: Vec<String> = addresses()
        .iter()
        .map(|a| {
            let r = proxy.get("gs.test", &format!("/geo?ip={a}"));
            assert_eq!(r.status, 200, "{}", r.describe());
            r.text()
        })
        .collect();
    let split = split.join(" ");
    let geo = geo.join(" ");
    let mut failures = Vec::new();
    if split != SPLIT_WANT {
        failures.push(format!("split_clients: got\n{split}\nwant\n{SPLIT_WANT}"));
    }
    if geo != GEO_WANT {
        failures.push(format!("geo: got\n{geo}\nwant\n{GEO_WANT}"));
    }
    // every bucket and network is reached (the table exercises them all)
    for b in ["a", "b", "d", "e"] {
        if !split.split(' ').any(|s| s.starts_with(b)) {
            failures.push(format!("bucket {b} never chosen"));
        }
    }
    // geo on the client's address, and `proxy`: a trusted client is replaced by the
    // last X-Forwarded-For address
    let r = proxy.request(
        b"GET /client HTTP/1.1\r\nHost: gs.test\r\nX-Forwarded-For: 198.51.100.1, 203.0.113.9\r\nConnection: close\r\n\r\n",
    );
    if r.text() != "local doc" {
        failures.push(format!("client/proxy: {}", r.describe()));
    }
    // nested ranges: the innermost wins; the same range again replaces the value
    let overlap = [
        ("10.0.0.5", "wide"),
        ("10.0.0.12", "narrow"),
        ("10.0.0.15", "inner"),
        ("10.0.0.17", "narrow"),
        ("10.0.0.30", "wide"),
        ("10.0.1.2", "beside-again"),
        ("10.0.1.10", "out"),
    ];
    for (ip, want) in overlap {
        let r = proxy.get("gs.test", &format!("/overlap?ip={ip}"));
        if r.text() != want {
            failures.push(format!("overlap {ip} → {}, want {want}", r.text()));
        }
    }
    assert_table("geo/split_clients", &failures, 201 + overlap.len());
}

#[test]
fn crossing_geo_ranges_are_refused() {
    let conf = "geo $g {\n    ranges;\n    10.0.0.0-10.0.0.255 a;\n    10.0.0.100-10.0.1.5 b;\n}\nserver { listen 127.0.0.1:1; }\n";
    let (out, _dir) = check_config(&[("j.conf", conf)], "j.conf");
    let text = format!("{}{}", out.stdout, out.stderr);
    assert_ne!(out.code, Some(0), "{text}");
    assert!(
        text.contains("range \"10.0.0.100-10.0.1.5\" overlaps"),
        "{text}"
    );
    assert!(text.contains("j.conf:4"), "{text}");
}
