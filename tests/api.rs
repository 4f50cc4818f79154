//! The `api` handler: a read-only JSON status API in the shape of nginx Plus's
//! `/api/9/…`, against real backends (python3 http.servers, one killed during the
//! test, one address nobody listens on behind a health check). Every body is read by
//! python's `json.loads` and checked for Plus's shape there; the numbers are checked
//! against the traffic the test sent and against `stub_status` and `metrics`.
//!
//! nginx OSS has no `api` (it is nginx Plus's): these tests run against Junction only
//! (with `JUNCTION_TEST_PROXY=nginx` they say so and return).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SITE: &str = "
upstream app {
    server 127.0.0.1:{A};
    server 127.0.0.1:{B} weight=2;
    server 127.0.0.1:{SPARE} down;
    server 127.0.0.1:{BK} backup;
    queue 5 timeout=1s;
}
upstream hc {
    server 127.0.0.1:{A};
    server 127.0.0.1:{DEAD};
    health_check interval=200ms fails=1 passes=1;
}
server {
    listen 127.0.0.1:{PORT};
    server_name app.test;
    location / { proxy_pass http://app; }
    location /hc/ { proxy_pass http://hc/; }
}
server {
    listen 127.0.0.1:{PORT};
    server_name status.local;
    location /api/ { api; allow 127.0.0.1; deny all; }
    location = /stub { stub_status; }
    location = /metrics { metrics; }
}
";

fn junction_only() -> bool {
    if proxy_kind() == Kind::Nginx {
        eprintln!("nginx OSS has no `api` handler (nginx Plus's): Junction-only test");
        return true;
    }
    false
}

/// Runs python's `json.loads` on each body and checks it against the shape its
/// name says (Plus's field names and types), all in one python process; panics with
/// python's message.
fn python_shapes(bodies: &[(String, String)]) {
    let script = r#"
import json, sys
def check(shape, o):
  if shape in ("upstream_one", "zone_one"):
      o = {"one": o}
      shape = {"upstream_one": "upstreams", "zone_one": "server_zones"}[shape]
  def need(obj, keys, kind):
      assert isinstance(obj, dict), obj
      for k in keys:
          assert k in obj, "missing %s in %s" % (k, obj)
          assert isinstance(obj[k], kind), "%s is %r" % (k, obj[k])
  classes = ["1xx", "2xx", "3xx", "4xx", "5xx", "total"]
  if shape == "versions":
      assert o == [9], o
  elif shape == "nginx":
      need(o, ["version", "build", "address", "load_timestamp", "timestamp"], str)
      need(o, ["generation", "pid", "ppid"], int)
      for k in ["load_timestamp", "timestamp"]:
          import datetime
          datetime.datetime.strptime(o[k], "%Y-%m-%dT%H:%M:%S.%fZ")
  elif shape == "connections":
      need(o, ["accepted", "dropped", "active", "idle"], int)
  elif shape == "requests":
      need(o, ["total", "current"], int)
  elif shape == "server_zones":
      for z in o.values():
          need(z, ["requests", "received", "sent"], int)
          need(z["responses"], classes, int)
  elif shape == "upstreams":
      for u in o.values():
          need(u, ["keepalive", "zombies"], int)
          need(u, ["zone"], str)
          assert isinstance(u["peers"], list) and u["peers"], u
          for p in u["peers"]:
              need(p, ["id", "weight", "active", "requests", "fails", "unavail"], int)
              need(p, ["server", "name", "state"], str)
              assert isinstance(p["backup"], bool), p
              assert p["state"] in ["up", "down", "unavail", "unhealthy"], p
              need(p["responses"], classes, int)
              need(p["health_checks"], ["checks", "fails"], int)
              need(p, ["sent"], int)
              if "selected" in p:
                  import datetime
                  datetime.datetime.strptime(p["selected"], "%Y-%m-%dT%H:%M:%S.%fZ")
  elif shape == "error":
      need(o, ["error"], dict)
      need(o["error"], ["status"], int)
      need(o["error"], ["text", "code"], str)
      need(o, ["request_id", "href"], str)
      assert len(o["request_id"]) == 32 and int(o["request_id"], 16) >= 0, o
      assert o["href"] == "https://nginx.org/en/docs/http/ngx_http_api_module.html", o
  elif shape == "fields":
      assert isinstance(o, dict), o
  else:
      assert isinstance(o, list), o
for i, (shape, text) in enumerate(json.loads(sys.stdin.read())):
    try:
        check(shape, json.loads(text))
    except Exception as e:
        print("body %d (%s): %r\n%s" % (i, shape, e, text), file=sys.stderr)
        sys.exit(1)
"#;
    let mut input = String::from("[");
    for (i, (shape, body)) in bodies.iter().enumerate() {
        if i > 0 {
            input.push(',');
        }
        input.push_str(&format!("[{},{}]", json_str(shape), json_str(body)));
    }
    input.push(']');
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed: apt-get install -y python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python rejected a body: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `s` as a JSON string.
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The bodies seen, checked by [`python_shapes`] at the end of a test.
type Seen = std::cell::RefCell<Vec<(String, String)>>;

fn api(seen: &Seen, proxy: &Proxy, path: &str, shape: &str) -> Json {
    let r = proxy.get("status.local", path);
    assert_eq!(r.status, 200, "{path}: {}", r.describe());
    assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
    seen.borrow_mut().push((shape.to_string(), r.text()));
    Json::parse(&r.text()).unwrap()
}

fn num(v: &Json, path: &[&str]) -> u64 {
    let mut cur = v;
    for k in path {
        cur = cur.get(k).unwrap_or_else(|| panic!("no {path:?} in {v:?}"));
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is {cur:?}"))
}

fn peer<'a>(ups: &'a Json, group: &str, port: u16) -> &'a Json {
    let server = format!("127.0.0.1:{port}");
    ups.get(group)
        .and_then(|g| g.get("peers"))
        .and_then(Json::as_array)
        .and_then(|ps| {
            ps.iter()
                .find(|p| p.get("server").and_then(Json::as_str) == Some(&server))
        })
        .unwrap_or_else(|| panic!("no peer {server} in {group}: {ups:?}"))
}

fn check(failures: &mut Vec<String>, what: &str, got: String, want: &str) {
    if got != want {
        failures.push(format!("{what}: got {got}, want {want}"));
    }
}

fn state(p: &Json) -> &str {
    p.get("state").and_then(Json::as_str).unwrap()
}

#[test]
fn api_reports_the_traffic_and_the_peers() {
    if junction_only() {
        return;
    }
    let dir_a = seed_app_dir();
    let a = Peer::http_server(dir_a.path());
    let dir_b = seed_app_dir();
    let b = Peer::http_server(dir_b.path());
    let (spare, bk, dead) = (closed_port(), closed_port(), closed_port());
    let site = fill(
        SITE,
        &[
            ("A", &a.port),
            ("B", &b.port),
            ("SPARE", &spare),
            ("BK", &bk),
            ("DEAD", &dead),
        ],
    );
    let proxy = Proxy::start(&site);
    let seen = Seen::default();
    let b_port = b.port;

    // 12 requests over A (weight 1) and B (weight 2): 4 and 8.
    for _ in 0..12 {
        let r = proxy.get("app.test", "/");
        assert_eq!(r.status, 200, "{}", r.describe());
    }
    // B goes away: its next turn fails (then A answers), and max_fails=1 takes it out.
    drop(b);
    for _ in 0..3 {
        let r = proxy.get("app.test", "/");
        assert_eq!(r.status, 200, "{}", r.describe());
    }

    // The health check finds DEAD down.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ups = loop {
        let ups = api(&seen, &proxy, "/api/9/http/upstreams", "upstreams");
        // (a request is counted when the server is done with it, a moment after the
        // client read its last byte)
        let settled = num(peer(&ups, "app", a.port), &["responses", "2xx"]) == 7;
        if (settled && state(peer(&ups, "hc", dead)) == "unhealthy") || Instant::now() > deadline {
            break ups;
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    let mut failures = Vec::new();
    let pa = peer(&ups, "app", a.port);
    let pb = peer(&ups, "app", b_port);
    check(
        &mut failures,
        "A requests",
        num(pa, &["requests"]).to_string(),
        "7",
    );
    check(
        &mut failures,
        "A 2xx",
        num(pa, &["responses", "2xx"]).to_string(),
        "7",
    );
    check(&mut failures, "A state", state(pa).into(), "up");
    // The request heads written to A.
    if num(pa, &["sent"]) < 7 * 20 {
        failures.push(format!("A sent: {:?}", pa.get("sent")));
    }
    for (what, p) in [("A", pa), ("B", pb)] {
        if p.get("header_time").and_then(Json::as_u64).is_none()
            || p.get("selected").and_then(Json::as_str).is_none()
        {
            failures.push(format!("{what}: no header_time/selected: {p:?}"));
        }
    }
    check(
        &mut failures,
        "A weight",
        num(pa, &["weight"]).to_string(),
        "1",
    );
    check(
        &mut failures,
        "B requests (8 answered, 1 failed)",
        num(pb, &["requests"]).to_string(),
        "9",
    );
    check(
        &mut failures,
        "B 2xx",
        num(pb, &["responses", "2xx"]).to_string(),
        "8",
    );
    check(
        &mut failures,
        "B fails",
        num(pb, &["fails"]).to_string(),
        "1",
    );
    check(
        &mut failures,
        "B unavail (times taken out)",
        num(pb, &["unavail"]).to_string(),
        "1",
    );
    check(&mut failures, "B state", state(pb).into(), "unavail");
    check(
        &mut failures,
        "B weight",
        num(pb, &["weight"]).to_string(),
        "2",
    );
    check(
        &mut failures,
        "spare state",
        state(peer(&ups, "app", spare)).into(),
        "down",
    );
    let pbk = peer(&ups, "app", bk);
    check(
        &mut failures,
        "backup flag",
        format!("{:?}", pbk.get("backup")),
        "Some(Bool(true))",
    );
    check(
        &mut failures,
        "backup requests",
        num(pbk, &["requests"]).to_string(),
        "0",
    );
    check(
        &mut failures,
        "hc DEAD state",
        state(peer(&ups, "hc", dead)).into(),
        "unhealthy",
    );
    check(
        &mut failures,
        "hc A state",
        state(peer(&ups, "hc", a.port)).into(),
        "up",
    );
    let hc_dead = peer(&ups, "hc", dead);
    check(
        &mut failures,
        "hc DEAD last_passed",
        format!(
            "{:?}",
            hc_dead
                .get("health_checks")
                .and_then(|h| h.get("last_passed"))
        ),
        "Some(Bool(false))",
    );
    if num(hc_dead, &["health_checks", "fails"]) == 0 {
        failures.push("hc DEAD: no failed health check counted".into());
    }
    check(
        &mut failures,
        "zone name",
        format!("{:?}", ups.get("app").and_then(|g| g.get("zone"))),
        "Some(String(\"app\"))",
    );
    // `queue 5`: nothing waited (no max_conns here), none refused.
    check(
        &mut failures,
        "app queue",
        format!("{:?}", ups.get("app").and_then(|g| g.get("queue"))),
        "Some(Object {\"max_size\": Number(5), \"overflows\": Number(0), \"size\": Number(0)})",
    );
    check(
        &mut failures,
        "hc has no queue",
        format!("{:?}", ups.get("hc").and_then(|g| g.get("queue"))),
        "None",
    );
    // peer ids are the order of the servers in the block
    check(&mut failures, "A id", num(pa, &["id"]).to_string(), "0");
    check(&mut failures, "B id", num(pb, &["id"]).to_string(), "1");

    // One upstream by name equals its entry in the list.
    let one = api(&seen, &proxy, "/api/9/http/upstreams/app", "upstream_one");
    check(
        &mut failures,
        "/upstreams/app peers",
        one.get("peers")
            .and_then(Json::as_array)
            .map_or(0, Vec::len)
            .to_string(),
        "4",
    );

    // Server zones: the 15 requests of app.test (the A/B traffic).
    let zones = api(&seen, &proxy, "/api/9/http/server_zones", "server_zones");
    let z = zones.get("app.test").unwrap();
    check(
        &mut failures,
        "zone requests",
        num(z, &["requests"]).to_string(),
        "15",
    );
    check(
        &mut failures,
        "zone 2xx",
        num(z, &["responses", "2xx"]).to_string(),
        "15",
    );
    check(
        &mut failures,
        "zone total",
        num(z, &["responses", "total"]).to_string(),
        "15",
    );
    // 15 × "hello world\n"
    check(
        &mut failures,
        "zone sent",
        num(z, &["sent"]).to_string(),
        "180",
    );
    if num(z, &["received"]) < 15 * 30 {
        failures.push(format!("zone received: {:?}", z.get("received")));
    }
    let one = api(
        &seen,
        &proxy,
        "/api/9/http/server_zones/app.test",
        "zone_one",
    );
    check(
        &mut failures,
        "zone by name",
        num(&one, &["requests"]).to_string(),
        "15",
    );

    // The process numbers equal stub_status's (each status request counts itself).
    let stub = proxy.get("status.local", "/stub").text();
    let line3: Vec<u64> = stub
        .lines()
        .nth(2)
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let conns = api(&seen, &proxy, "/api/9/connections", "connections");
    let reqs = api(&seen, &proxy, "/api/9/http/requests", "requests");
    check(
        &mut failures,
        "connections.accepted = stub accepts + 1",
        num(&conns, &["accepted"]).to_string(),
        &(line3[0] + 1).to_string(),
    );
    check(
        &mut failures,
        "connections.dropped",
        num(&conns, &["dropped"]).to_string(),
        "0",
    );
    check(
        &mut failures,
        "requests.total = stub requests + 2",
        num(&reqs, &["total"]).to_string(),
        &(line3[2] + 2).to_string(),
    );
    check(
        &mut failures,
        "requests.current (this request)",
        num(&reqs, &["current"]).to_string(),
        "1",
    );
    // …and the upstream counters equal metrics'.
    let metrics = proxy.get("status.local", "/metrics").text();
    let sample = format!(
        "junction_upstream_requests_total{{upstream=\"app\",server=\"127.0.0.1:{}\"}} ",
        a.port
    );
    let m_a = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&sample))
        .unwrap_or_else(|| panic!("no {sample} in\n{metrics}"));
    check(&mut failures, "metrics = api for A", m_a.to_string(), "7");

    // nginx: process fields.
    let n = api(&seen, &proxy, "/api/9/nginx", "nginx");
    check(
        &mut failures,
        "pid",
        num(&n, &["pid"]).to_string(),
        &proxy.pid().to_string(),
    );
    check(
        &mut failures,
        "generation",
        num(&n, &["generation"]).to_string(),
        "0",
    );
    check(
        &mut failures,
        "address",
        format!("{:?}", n.get("address")),
        "Some(String(\"127.0.0.1\"))",
    );
    check(
        &mut failures,
        "version",
        format!("{:?}", n.get("version")),
        &format!("Some(String({:?}))", env!("CARGO_PKG_VERSION")),
    );
    assert_table("api numbers", &failures, 34);

    // A reload is the next generation.
    let before = api(&seen, &proxy, "/api/9/nginx", "nginx");
    proxy.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = api(&seen, &proxy, "/api/9/nginx", "nginx");
        if num(&n, &["generation"]) == 1 {
            assert_ne!(
                n.get("load_timestamp"),
                before.get("load_timestamp"),
                "load_timestamp is the reload's"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the reload never showed: {n:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    python_shapes(&seen.borrow());
}

#[test]
fn api_lists_and_errors_as_plus() {
    if junction_only() {
        return;
    }
    let proxy = Proxy::start(&fill(
        SITE,
        &[
            ("A", &closed_port()),
            ("B", &closed_port()),
            ("SPARE", &closed_port()),
            ("BK", &closed_port()),
            ("DEAD", &closed_port()),
        ],
    ));
    let seen = Seen::default();
    let mut failures = Vec::new();
    let lists: &[(&str, &str)] = &[
        ("/api/", "[9]"),
        ("/api/9", "[\"nginx\",\"connections\",\"http\"]"),
        ("/api/9/", "[\"nginx\",\"connections\",\"http\"]"),
        (
            "/api/9/http",
            "[\"requests\",\"server_zones\",\"upstreams\"]",
        ),
    ];
    for (path, want) in lists {
        let r = proxy.get("status.local", path);
        seen.borrow_mut().push((
            if *path == "/api/" { "versions" } else { "list" }.to_string(),
            r.text(),
        ));
        if r.status != 200 || r.text() != *want {
            failures.push(format!("{path}: {} {}", r.status, r.text()));
        }
    }
    // (method, path, status, code)
    let errors: &[(&str, &str, u16, &str)] = &[
        ("GET", "/api/9/nope", 404, "PathNotFound"),
        ("GET", "/api/9/http/nope", 404, "PathNotFound"),
        ("GET", "/api/8/nginx", 404, "UnknownVersion"),
        ("GET", "/api/x/nginx", 404, "PathNotFound"),
        ("GET", "/api/9/http/upstreams/nope", 404, "UpstreamNotFound"),
        (
            "GET",
            "/api/9/http/server_zones/nope",
            404,
            "ServerZoneNotFound",
        ),
        ("POST", "/api/9/http/upstreams/app", 405, "MethodDisabled"),
        ("DELETE", "/api/9/http/upstreams/app", 405, "MethodDisabled"),
        ("PATCH", "/api/9/http/upstreams/app", 405, "MethodDisabled"),
        ("OPTIONS", "/api/9/nginx", 405, "MethodNotSupported"),
    ];
    for (method, path, status, code) in errors {
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: status.local\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let r = proxy.request(raw.as_bytes());
        seen.borrow_mut().push(("error".to_string(), r.text()));
        let j = Json::parse(&r.text()).unwrap();
        let e = j.get("error").unwrap();
        let got = (
            r.status,
            e.get("status").and_then(Json::as_u64),
            e.get("code").and_then(Json::as_str),
        );
        if got != (*status, Some(u64::from(*status)), Some(*code)) {
            failures.push(format!("{method} {path}: {got:?} {}", r.text()));
        }
    }
    // The text of the 404 for an unknown path, as Plus writes it.
    let r = proxy.get("status.local", "/api/9/nope");
    let j = Json::parse(&r.text()).unwrap();
    if j.get("error")
        .and_then(|e| e.get("text"))
        .and_then(Json::as_str)
        != Some("path not found")
    {
        failures.push(format!("404 text: {}", r.text()));
    }
    // `?fields=`: only those fields (of each group of a collection).
    let r = proxy.get("status.local", "/api/9/nginx?fields=version,pid");
    seen.borrow_mut().push(("fields".to_string(), r.text()));
    match Json::parse(&r.text()) {
        Ok(Json::Object(m))
            if m.keys().map(String::as_str).collect::<Vec<_>>() == ["pid", "version"] => {}
        _ => failures.push(format!("?fields=version,pid: {}", r.text())),
    }
    let r = proxy.get("status.local", "/api/9/http/upstreams?fields=zone");
    seen.borrow_mut().push(("fields".to_string(), r.text()));
    match Json::parse(&r.text()) {
        Ok(Json::Object(groups))
            if groups.len() == 2
                && groups.iter().all(|(name, g)| {
                    matches!(g, Json::Object(f) if f.len() == 1
                        && f.values().next().and_then(Json::as_str) == Some(name.as_str()))
                }) => {}
        _ => failures.push(format!("upstreams?fields=zone: {}", r.text())),
    }
    // HEAD: the headers only.
    let r = proxy
        .request(b"HEAD /api/9/nginx HTTP/1.1\r\nHost: status.local\r\nConnection: close\r\n\r\n");
    if r.status != 200 || !r.body.is_empty() {
        failures.push(format!("HEAD: {}", r.describe()));
    }
    assert_table(
        "api lists and errors",
        &failures,
        lists.len() + errors.len() + 2,
    );
}

#[test]
fn api_write_on_is_refused() {
    if junction_only() {
        return;
    }
    let (out, _dir) = check_config(
        &[(
            "junction.conf",
            "server { listen 127.0.0.1:1; location /api/ { api write=on; } }\n",
        )],
        "junction.conf",
    );
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("\"api write=on\" is not supported")
            && out.stderr.contains("junction.conf:1"),
        "{}",
        out.stderr
    );
}
