//! Seeing it run (issue 17): `stub_status` exactly as nginx prints it (checked against
//! nginx in the reference mode, field by field), and the `metrics` handler's
//! OpenMetrics text parsed by the Prometheus client library's own parser
//! (`prometheus_client.openmetrics.parser`), its counters equal to the traffic the
//! test sent. nginx has no metrics handler: that test is Junction's only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const STUB_SITE: &str = "
server {
    listen 127.0.0.1:{PORT};
    server_name stub.test;
    location = /status { stub_status; }
    location / { return 200 \"ok\"; }
}
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stub {
    active: u64,
    accepts: u64,
    handled: u64,
    requests: u64,
    reading: u64,
    writing: u64,
    waiting: u64,
}

/// Parses nginx's four lines, spaces included (`ngx_http_stub_status_handler`).
fn parse_stub(text: &str) -> Stub {
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines.len(), 5, "four lines and a final newline: {text:?}");
    let num = |s: &str| {
        s.parse::<u64>()
            .unwrap_or_else(|_| panic!("{s:?} in {text:?}"))
    };
    let active = lines[0]
        .strip_prefix("Active connections: ")
        .and_then(|s| s.strip_suffix(' '))
        .unwrap_or_else(|| panic!("line 1: {text:?}"));
    assert_eq!(lines[1], "server accepts handled requests", "{text:?}");
    let counts: Vec<u64> = lines[2]
        .strip_prefix(' ')
        .and_then(|s| s.strip_suffix(' '))
        .unwrap_or_else(|| panic!("line 3: {text:?}"))
        .split(' ')
        .map(num)
        .collect();
    assert_eq!(counts.len(), 3, "{text:?}");
    let states: Vec<&str> = lines[3]
        .strip_suffix(' ')
        .unwrap_or_else(|| panic!("line 4: {text:?}"))
        .split(' ')
        .collect();
    assert_eq!(
        [states[0], states[2], states[4]],
        ["Reading:", "Writing:", "Waiting:"],
        "{text:?}"
    );
    assert_eq!(lines[4], "", "{text:?}");
    Stub {
        active: num(active),
        accepts: counts[0],
        handled: counts[1],
        requests: counts[2],
        reading: num(states[1]),
        writing: num(states[3]),
        waiting: num(states[5]),
    }
}

fn stub(proxy: &Proxy) -> Stub {
    let r = proxy.get("stub.test", "/status");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        r.header("content-type"),
        Some("text/plain"),
        "{}",
        r.describe()
    );
    parse_stub(&r.text())
}

/// Polls until no connection but the status request's own (and `active - 1` others)
/// is open: a client connection is counted down when the server is done with it,
/// which can be a moment after the client read its last byte. Returns the page and
/// how many status requests it took.
fn stub_settled(proxy: &Proxy, active: u64) -> (Stub, u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut polls = 0;
    loop {
        let s = stub(proxy);
        polls += 1;
        if (s.active == active && s.writing == 1) || Instant::now() > deadline {
            return (s, polls);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn stub_status_as_nginx_prints_it() {
    let proxy = Proxy::start(STUB_SITE);
    let (s0, _) = stub_settled(&proxy, 1);
    assert_eq!(
        (s0.active, s0.reading, s0.writing, s0.waiting),
        (1, 0, 1, 0),
        "only the status request is open: {s0:?}"
    );
    assert_eq!(s0.accepts, s0.handled, "{s0:?}");
    for _ in 0..3 {
        assert_eq!(proxy.get("stub.test", "/x").text(), "ok");
    }
    let (s1, polls) = stub_settled(&proxy, 1);
    // Three requests on three connections, then the status requests, one each.
    assert_eq!(s1.requests, s0.requests + 3 + polls, "{s0:?} → {s1:?}");
    // (The harness's readiness probe may be accepted after the first status page.)
    assert!(
        (s0.accepts + 3 + polls..=s0.accepts + 4 + polls).contains(&s1.accepts),
        "{s0:?} → {s1:?}"
    );
    assert_eq!(s1.accepts, s1.handled, "{s1:?}");
    assert_eq!((s1.active, s1.writing), (1, 1), "{s1:?}");

    // An idle keep-alive connection is Waiting.
    let mut idle = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    idle.write_all(b"GET /x HTTP/1.1\r\nHost: stub.test\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    let mut got = Vec::new();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while !got.ends_with(b"ok") {
        let n = idle.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let (s2, _) = stub_settled(&proxy, 2);
    assert_eq!(
        (s2.active, s2.reading, s2.writing, s2.waiting),
        (2, 0, 1, 1),
        "{s2:?}"
    );
    drop(idle);

    // nginx's handler: GET and HEAD only.
    let r = http_request(
        proxy.port,
        b"POST /status HTTP/1.1\r\nHost: stub.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 405, "{}", r.describe());
    let r = http_request(
        proxy.port,
        b"HEAD /status HTTP/1.1\r\nHost: stub.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(r.body.is_empty(), "{}", r.describe());
}

/// One sample of a parsed scrape.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses the text with `prometheus_client.openmetrics.parser` (the reference parser;
/// it rejects anything that is not valid OpenMetrics) and returns every sample.
fn parse_metrics(text: &str) -> Vec<Sample> {
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append([s.name, sorted(s.labels.items()), s.value])
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser rejected the scrape (pip install prometheus-client / \
         apt-get install python3-prometheus-client):\n{}\n--- scrape ---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = parse_json(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let row = row.as_array().unwrap();
            let labels = row[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|kv| {
                    let kv = kv.as_array().unwrap();
                    (
                        kv[0].as_str().unwrap().to_string(),
                        kv[1].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let value = row[2]
                .as_f64()
                .unwrap_or_else(|| panic!("value {:?}", row[2]));
            Sample {
                name: row[0].as_str().unwrap().to_string(),
                labels,
                value,
            }
        })
        .collect()
}

/// Wanted labels of a sample.
type Labels<'a> = Vec<(&'a str, &'a str)>;

/// The value of the sample `name` whose labels include all of `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
        })
        .map(|s| s.value)
}

#[test]
fn metrics_count_the_traffic() {
    if product() == "nginx" {
        eprintln!("nginx has no metrics handler: Junction-only test");
        return;
    }
    let app = seed_app_dir();
    let backend = Peer::http_server(app.path());
    let dead = closed_port();
    let spare = closed_port();
    let site = fill(
        "
upstream app { server 127.0.0.1:{APP}; server 127.0.0.1:{SPARE} down; }
server {
    listen 127.0.0.1:{PORT};
    server_name metrics.test;
    location / { proxy_pass http://app; }
    location /dead/ { proxy_pass http://127.0.0.1:{DEAD}; }
}
server {
    listen 127.0.0.1:{PORT};
    server_name status.local;
    location = /metrics { metrics; }
}
",
        &[("APP", &backend.port), ("DEAD", &dead), ("SPARE", &spare)],
    );
    let proxy = Proxy::start(&site);
    for i in 0..100 {
        let r = proxy.get("metrics.test", &format!("/?n={i}"));
        assert_eq!(r.status, 200, "{}", r.describe());
    }
    for _ in 0..7 {
        assert_eq!(proxy.get("metrics.test", "/dead/x").status, 502);
    }
    // A request is counted when the server is done with it, a moment after the client
    // read its last byte: scrape until all 107 are in (or the time is up).
    let deadline = Instant::now() + Duration::from_secs(5);
    let r = loop {
        let r = proxy.get("status.local", "/metrics");
        assert_eq!(r.status, 200, "{}", r.describe());
        let n = value(
            &parse_metrics(&r.text()),
            "junction_http_request_duration_seconds_count",
            &[("server", "metrics.test")],
        );
        if n == Some(107.0) || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{}",
        r.describe()
    );
    let m = parse_metrics(&r.text());
    let server = ("server", "metrics.test");
    let http = ("protocol", "HTTP/1.1");
    let app_server = format!("127.0.0.1:{}", backend.port);
    let dead_server = format!("127.0.0.1:{dead}");
    let spare_server = format!("127.0.0.1:{spare}");
    let checks: Vec<(&str, Labels, f64)> = vec![
        (
            "junction_http_responses_total",
            vec![server, http, ("status", "2xx")],
            100.0,
        ),
        (
            "junction_http_responses_total",
            vec![server, http, ("status", "5xx")],
            7.0,
        ),
        (
            "junction_http_request_duration_seconds_count",
            vec![server],
            107.0,
        ),
        (
            "junction_upstream_requests_total",
            vec![("upstream", "app"), ("server", &app_server)],
            100.0,
        ),
        (
            "junction_upstream_responses_total",
            vec![("upstream", "app"), ("status", "2xx")],
            100.0,
        ),
        (
            "junction_upstream_failures_total",
            vec![("server", &dead_server)],
            7.0,
        ),
        (
            "junction_upstream_responses_total",
            vec![("server", &dead_server), ("status", "5xx")],
            7.0,
        ),
        (
            "junction_upstream_server_state",
            vec![("server", &spare_server), ("state", "down")],
            1.0,
        ),
        (
            "junction_upstream_server_state",
            vec![("server", &app_server), ("state", "up")],
            1.0,
        ),
        (
            "junction_upstream_response_duration_seconds_count",
            vec![("upstream", "app"), ("server", &app_server)],
            100.0,
        ),
        (
            "junction_build_info",
            vec![("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        ),
        ("junction_reloads_total", vec![("result", "ok")], 0.0),
    ];
    let mut failures = Vec::new();
    for (name, labels, want) in &checks {
        let got = value(&m, name, labels);
        if got != Some(*want) {
            failures.push(format!("{name}{labels:?}: got {got:?}, want {want}"));
        }
    }
    // 100 + 7 requests and the scrape itself (at least; the readiness probe connects only).
    match value(&m, "junction_requests_total", &[]) {
        Some(v) if v >= 108.0 => {}
        other => failures.push(format!("junction_requests_total: {other:?}")),
    }
    // The body bytes: 100 × "hello world\n" and seven 502 pages.
    match value(&m, "junction_http_sent_bytes_total", &[server]) {
        Some(v) if v > 1200.0 => {}
        other => failures.push(format!("junction_http_sent_bytes_total: {other:?}")),
    }
    // No URI ever becomes a label.
    if m.iter()
        .any(|s| s.labels.iter().any(|(_, v)| v.contains("n=")))
    {
        failures.push("a request URI became a label".into());
    }
    assert_table("metrics", &failures, checks.len() + 3);

    // A reload is counted.
    proxy.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = parse_metrics(&proxy.get("status.local", "/metrics").text());
        if value(&m, "junction_reloads_total", &[("result", "ok")]) == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "the reload was never counted");
        std::thread::sleep(Duration::from_millis(20));
    }
}
