//! The several-replicas example of `deploy/replicas/` (issue 17, packaging), run as it
//! is on this machine with loopback addresses: `haproxy.cfg` and `replica.conf` are
//! filled in (their `{NAME}` placeholders) and started — a real HAProxy (TCP mode,
//! `send-proxy-v2`, health checks on `/status`), two Junction replicas, a real
//! `dnsmasq` naming the application (`tests/dns_kit/`), a real memcached both replicas
//! share, and the caching application `tests/peers/cache_app.py` (which stores each page
//! in memcached with `pymemcache`) on 127.0.0.2 (and, for the DNS change, 127.0.0.3).
//!
//! Rows: requests through HAProxy are spread over both replicas (their `X-Replica`
//! header) and the client's address (curl from 127.0.0.20) reaches the application
//! through the PROXY protocol and `real_ip_header proxy_protocol`; the health-check
//! location refuses clients; a page cached through one replica is a memcached hit
//! through the other; a replica killed (SIGKILL) under load loses no request that
//! started after it died, and once HAProxy's check marks it down everything goes to the
//! other; a DNS change of the application's name is followed by both replicas without a
//! reload.
//!
//! Junction-only: the example uses `server … resolve` (nginx 1.27.3+, not in the
//! reference nginx 1.22), `metrics` and `api` (not in nginx OSS).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod dns_kit;

use common::*;
use dns_kit::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The application's name in the test's DNS (dnsmasq answers `*.test` only).
const APP_NAME: &str = "app.test";
/// Where curl sends the client's requests from (the address the app must see).
const CLIENT_IP: &str = "127.0.0.20";

fn junction_only() -> bool {
    if proxy_kind() == Kind::Nginx {
        eprintln!(
            "deploy_replicas: Junction-only (`server … resolve` is nginx 1.27.3+, `metrics` \
             and `api` are not nginx OSS): skipped on nginx"
        );
        return true;
    }
    false
}

fn example(name: &str) -> String {
    let path = manifest_dir().join("deploy/replicas").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `template` with its `{NAME}` placeholders filled; panics if one is left (so the
/// README's list of placeholders is the whole list).
fn fill_all(template: &str, vars: &[(&str, &dyn std::fmt::Display)], keep: &[&str]) -> String {
    let text = fill(template, vars);
    let mut rest = text.as_str();
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.is_empty() && after[name.len()..].starts_with('}') {
            assert!(
                keep.contains(&name.as_str()),
                "placeholder {{{name}}} left unfilled in:\n{text}"
            );
        }
        rest = after;
    }
    text
}

// ---------------------------------------------------------------------------------------------
// HAProxy
// ---------------------------------------------------------------------------------------------

fn haproxy_bin() -> PathBuf {
    for cand in ["/usr/sbin/haproxy", "/usr/bin/haproxy"] {
        if Path::new(cand).exists() {
            return cand.into();
        }
    }
    panic!("haproxy is needed by this test: install it with `apt-get install -y haproxy`");
}

/// HAProxy in the foreground on the filled `haproxy.cfg` (plus a stats socket the test
/// reads), stopped on drop.
struct Haproxy {
    front: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(replicas: &[&Proxy]) -> Haproxy {
        assert_eq!(replicas.len(), 2, "the example has two replicas");
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("junction-haproxy-")
                .tempdir()
                .unwrap();
            let front = free_port();
            let mut cfg = fill_all(
                &example("haproxy.cfg"),
                &[
                    ("FRONT", &format!("127.0.0.1:{front}")),
                    ("REPLICA1", &format!("127.0.0.1:{}", replicas[0].port)),
                    ("REPLICA2", &format!("127.0.0.1:{}", replicas[1].port)),
                ],
                &[],
            );
            // The test's view of the servers' states (HAProxy merges global sections).
            cfg.push_str(&format!(
                "\nglobal\n    stats socket {}/stats.sock mode 600 level admin\n",
                dir.path().display()
            ));
            let path = dir.path().join("haproxy.cfg");
            std::fs::write(&path, cfg).unwrap();
            let child = Command::new(haproxy_bin())
                .arg("-db")
                .arg("-f")
                .arg(&path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
                .spawn()
                .expect("start haproxy");
            let mut hp = Haproxy { front, child, dir };
            // Ready: the frontend accepts, and both replicas passed a health check.
            let ready = hp.wait(READY_TIMEOUT, |hp| {
                std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, hp.front)).is_ok()
                    && ["replica1", "replica2"].iter().all(|s| {
                        hp.server(s)
                            .is_some_and(|st| st.status == "UP" && st.check == "L7OK")
                    })
            });
            match ready {
                Ok(()) => return hp,
                Err(e) if e.contains("in use") || e.contains("cannot bind") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("haproxy did not start: {last}");
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// Polls `f` until it holds; an error with HAProxy's stderr if HAProxy exits or
    /// `within` passes.
    fn wait(&mut self, within: Duration, f: impl Fn(&Haproxy) -> bool) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!("haproxy exited with {st}:\n{}", self.stderr()));
            }
            if f(self) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "haproxy: condition not reached within {within:?}:\n{}\n{:?}",
                    self.stderr(),
                    ["replica1", "replica2"].map(|s| self.server(s))
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// One server's row of `show stat` (None before the socket is up).
    fn server(&self, name: &str) -> Option<ServerState> {
        let mut s = UnixStream::connect(self.dir.path().join("stats.sock")).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"show stat\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let mut lines = out.lines();
        let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
        let col = |n: &str| header.iter().position(|h| *h == n);
        let (sv, status, check) = (col("svname")?, col("status")?, col("check_status")?);
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find_map(|f| {
                (f.get(sv) == Some(&name)).then(|| ServerState {
                    status: f.get(status).unwrap_or(&"").to_string(),
                    check: f.get(check).unwrap_or(&"").to_string(),
                })
            })
    }
}

#[derive(Debug)]
struct ServerState {
    /// `UP`, `DOWN`, `UP 1/2` (going down), …
    status: String,
    /// The last check's result: `L7OK`, `L4CON` (refused), …
    check: String,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The deployment
// ---------------------------------------------------------------------------------------------

/// Everything of `deploy/replicas/` running on loopback addresses.
struct Deployment {
    haproxy: Haproxy,
    /// replica1, replica2 (the order of `haproxy.cfg`'s `server` lines).
    replicas: Vec<Proxy>,
    /// The application on 127.0.0.2 (the DNS name's first address).
    app: Peer,
    mc: Memcached,
    dns: Dns,
}

fn app_on(mc: &Memcached, ip: &str, port: u16) -> Peer {
    let (mc_port, port) = (mc.port.to_string(), port.to_string());
    Peer::python(
        "cache_app.py",
        &[
            "--memcached",
            &mc_port,
            "--bind",
            ip,
            "--port",
            &port,
            "--describe",
        ],
    )
}

fn deploy() -> Deployment {
    let mc = Memcached::start();
    let app = app_on(&mc, "127.0.0.2", 0);
    let dns = Dns::start(&[(APP_NAME, "127.0.0.2")], 1);
    let template = example("replica.conf");
    let replicas: Vec<Proxy> = ["replica1", "replica2"]
        .iter()
        .map(|name| {
            Proxy::start(&fill_all(
                &template,
                &[
                    ("LISTEN", &"127.0.0.1:{PORT}"),
                    ("STATUS", &"127.0.0.1:{PORT2}"),
                    ("LB", &"127.0.0.1"),
                    ("REPLICA", name),
                    ("RESOLVER", &format!("{} valid=1s ipv6=off", dns.addr())),
                    ("APP", &format!("{APP_NAME}:{}", app.port)),
                    ("MEMCACHED", &format!("127.0.0.1:{}", mc.port)),
                ],
                // Filled by the testkit with OS-chosen ports.
                &["PORT", "PORT2"],
            ))
        })
        .collect();
    let haproxy = Haproxy::start(&replicas.iter().collect::<Vec<_>>());
    Deployment {
        haproxy,
        replicas,
        app,
        mc,
        dns,
    }
}

/// An answer through HAProxy: status, X-Replica, Content-Type, body.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    replica: String,
    content_type: String,
    body: String,
}

impl Answer {
    fn from(r: &Response) -> Answer {
        Answer {
            status: r.status,
            replica: r.header("X-Replica").unwrap_or("").to_string(),
            content_type: r.header("Content-Type").unwrap_or("").to_string(),
            body: r.text(),
        }
    }

    /// The app instance (`ADDR:PORT`) that made this page.
    fn app(&self) -> &str {
        self.body
            .split_whitespace()
            .find_map(|w| w.strip_prefix("app="))
            .unwrap_or("")
    }
}

impl Deployment {
    fn front(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.haproxy.front))
    }

    /// `GET path` through HAProxy from 127.0.0.1.
    fn get(&self, path: &str) -> Answer {
        Answer::from(&http_request_to(
            self.front(),
            get_request("shop.test", path).as_bytes(),
        ))
    }

    /// `GET path` through HAProxy from [`CLIENT_IP`] (curl `--interface`).
    fn get_from_client(&self, path: &str) -> Answer {
        let out = Command::new("curl")
            .args(["-sS", "-i", "--max-time", "20", "--interface", CLIENT_IP])
            .args(["-H", "Host: shop.test"])
            .arg(format!("http://127.0.0.1:{}{path}", self.haproxy.front))
            .output()
            .expect("curl (apt-get install -y curl)");
        assert!(
            out.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("curl -i: head and body");
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {head}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Answer {
            status,
            replica: header_in(&headers, "X-Replica").unwrap_or("").to_string(),
            content_type: header_in(&headers, "Content-Type")
                .unwrap_or("")
                .to_string(),
            body: body.to_string(),
        }
    }

    /// How many pages the application on 127.0.0.2 made.
    fn app_hits(&self) -> u64 {
        hits("127.0.0.2", &self.app)
    }

    /// A replica's reload count (`generation` of its JSON API, on its `{STATUS}` listener).
    fn generation(&self, i: usize) -> u64 {
        let r = http_request(
            self.replicas[i].ports[1],
            get_request("monitor", "/api/9/nginx").as_bytes(),
        );
        let j = parse_json(&r.text()).unwrap_or_else(|e| panic!("{e}: {}", r.describe()));
        j.get("generation")
            .and_then(Json::as_u64)
            .unwrap_or_else(|| panic!("no generation in {}", r.describe()))
    }
}

/// How many pages the application on `ip` made (its `/__hits`, asked directly).
fn hits(ip: &str, app: &Peer) -> u64 {
    let addr = SocketAddr::new(ip.parse().unwrap(), app.port);
    let r = http_request_to(addr, get_request("app", "/__hits").as_bytes());
    let j = parse_json(&r.text()).unwrap_or_else(|e| panic!("{e}: {}", r.describe()));
    j.get("hits").and_then(Json::as_u64).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

#[test]
fn requests_are_spread_over_both_replicas_and_the_client_address_reaches_the_app() {
    if junction_only() {
        return;
    }
    let d = deploy();
    let mut per_replica: HashMap<String, usize> = HashMap::new();
    let mut failures = Vec::new();
    let n = 10;
    for i in 0..n {
        let path = format!("/spread/{i}.html");
        let a = d.get_from_client(&path);
        // A miss (each path is new): made by the app, which saw the client's address
        // in X-Real-IP — from the PROXY header HAProxy sent, via realip.
        let want_start = format!("GET {path} hit ");
        let want_end = format!(" client={CLIENT_IP} app=127.0.0.2:{}\n", d.app.port);
        if a.status != 200 || !a.body.starts_with(&want_start) || !a.body.ends_with(&want_end) {
            failures.push(format!("{path}: {a:?} (want {want_start}…{want_end:?})"));
        }
        *per_replica.entry(a.replica.clone()).or_default() += 1;
    }
    assert_table("through HAProxy from the client", &failures, n);
    assert_eq!(d.app_hits(), n as u64);
    // Round robin over two replicas: both serve, and nothing else answers.
    assert_eq!(
        per_replica
            .keys()
            .map(String::as_str)
            .collect::<std::collections::BTreeSet<_>>(),
        ["replica1", "replica2"].into_iter().collect(),
        "{per_replica:?}"
    );
    assert!(
        per_replica.values().all(|c| *c >= 3),
        "both replicas take a share: {per_replica:?}"
    );
    // The health-check location is HAProxy's only: a client through HAProxy is refused
    // ($remote_addr is the client's, not HAProxy's).
    let denied = d.get_from_client("/status");
    assert_eq!(denied.status, 403, "{denied:?}");
    // The monitoring listener answers on each replica.
    for (i, r) in d.replicas.iter().enumerate() {
        let m = http_request(r.ports[1], get_request("monitor", "/metrics").as_bytes());
        assert_eq!(m.status, 200, "replica{}: {}", i + 1, m.describe());
        assert!(m.text().contains("# TYPE"), "{}", m.describe());
    }
}

#[test]
fn a_page_cached_through_one_replica_is_a_hit_through_the_other() {
    if junction_only() {
        return;
    }
    let d = deploy();
    let path = "/articles/42.html";
    let first = d.get(path);
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(
        first.content_type, "application/x-cache-app",
        "a miss: {first:?}"
    );
    assert_eq!(d.app_hits(), 1);
    assert_eq!(
        d.mc.get(&format!("{path}?")).as_deref(),
        Some(first.body.as_bytes()),
        "the app stored the page in the shared memcached: {}",
        d.app.stderr()
    );
    // Round robin: the next requests alternate; find one served by the other replica.
    let mut other = None;
    for _ in 0..6 {
        let a = d.get(path);
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.body, first.body, "the cached page: {a:?}");
        // From memcached: its Content-Type comes from the extension, not the app.
        assert_eq!(a.content_type, "text/html", "a memcached hit: {a:?}");
        if a.replica != first.replica {
            other = Some(a.replica);
            break;
        }
    }
    let other =
        other.unwrap_or_else(|| panic!("no answer from a replica other than {}", first.replica));
    assert!(other.starts_with("replica"), "{other}");
    assert_eq!(
        d.app_hits(),
        1,
        "the hits through {other} never reached the app"
    );
}

/// One request of the load: when it started (connect), and how it ended.
struct Outcome {
    started: Instant,
    result: Result<Answer, String>,
}

#[test]
fn a_killed_replica_loses_no_request_once_it_is_gone_and_is_taken_out() {
    if junction_only() {
        return;
    }
    let mut d = deploy();
    let front = d.front();
    // Warm the cache: the load reads pages the replicas serve from memcached.
    for i in 0..4 {
        assert_eq!(d.get(&format!("/load/{i}.html")).status, 200);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let clients = 4;
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, outcomes) = (stop.clone(), outcomes.clone());
            thread::spawn(move || {
                let mut i = 0usize;
                // Bounded: at most 60 s of requests, whatever happens.
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    let path = format!("/load/{}.html", (c + i) % 4);
                    i += 1;
                    let started = Instant::now();
                    let result =
                        try_http_request_to(front, get_request("shop.test", &path).as_bytes())
                            .map_err(|e| e.to_string())
                            .and_then(|r| {
                                let a = Answer::from(&r);
                                if a.status == 200
                                    && a.body.starts_with(&format!("GET {path} hit "))
                                {
                                    Ok(a)
                                } else {
                                    Err(format!("{a:?}"))
                                }
                            });
                    outcomes.lock().unwrap().push(Outcome { started, result });
                }
            })
        })
        .collect();
    let served_by = |outs: &[Outcome], r: &str| {
        outs.iter()
            .filter(|o| o.result.as_ref().is_ok_and(|a| a.replica == r))
            .count()
    };
    // Load on both replicas before the kill.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ["replica1", "replica2"]
        .iter()
        .any(|r| served_by(&outcomes.lock().unwrap(), r) < 20)
    {
        assert!(
            Instant::now() < deadline,
            "the load did not reach both replicas"
        );
        thread::sleep(Duration::from_millis(20));
    }
    // A crash: SIGKILL, reaped (its sockets are closed from here on).
    let killed_at_signal = Instant::now();
    d.replicas[0].signal("KILL");
    assert!(
        d.replicas[0].wait_exit(Duration::from_secs(5)).is_some(),
        "replica1 did not die"
    );
    let dead = Instant::now();
    // HAProxy's health check marks it down (2 failed checks, 500 ms apart).
    d.haproxy
        .wait(Duration::from_secs(10), |hp| {
            hp.server("replica1").is_some_and(|s| s.status == "DOWN")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let down = Instant::now();
    // Then some more load with replica1 out.
    let n_at_down = outcomes.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(20);
    while outcomes.lock().unwrap().len() < n_at_down + 100 {
        assert!(
            Instant::now() < deadline,
            "the load stalled after replica1 went down"
        );
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let outs = outcomes.lock().unwrap();
    // Only a request that was already on its way when the process died may fail (an
    // L4 balancer cannot replay it); one that started after is refused by the dead
    // replica's port and HAProxy redispatches it (`retries`, `option redispatch`).
    let lost_after_death: Vec<String> = outs
        .iter()
        .filter(|o| o.started >= dead)
        .filter_map(|o| o.result.as_ref().err().cloned())
        .collect();
    assert!(
        lost_after_death.is_empty(),
        "{} of {} requests started after replica1 died failed: {lost_after_death:#?}",
        lost_after_death.len(),
        outs.iter().filter(|o| o.started >= dead).count()
    );
    // At the signal, each client had at most one request in flight.
    let in_flight_lost = outs
        .iter()
        .filter(|o| o.started < killed_at_signal && o.result.is_err())
        .count();
    assert!(
        in_flight_lost <= clients,
        "at most one request per client can be in flight at the kill: {in_flight_lost} lost"
    );
    // (Started while the process was dying: may have reached its listen queue.)
    let dying_lost = outs
        .iter()
        .filter(|o| o.started >= killed_at_signal && o.started < dead && o.result.is_err())
        .count();
    let after_down: Vec<&Answer> = outs
        .iter()
        .filter(|o| o.started >= down)
        .filter_map(|o| o.result.as_ref().ok())
        .collect();
    assert!(
        after_down.len() >= 50,
        "{} requests after the mark-down",
        after_down.len()
    );
    assert!(
        after_down.iter().all(|a| a.replica == "replica2"),
        "replica1 is down: every request goes to replica2"
    );
    eprintln!(
        "kill: {} requests, {} started after the death (all served), {in_flight_lost} in \
         flight lost, {dying_lost} started while it died lost, marked down {:?} after the \
         signal",
        outs.len(),
        outs.iter().filter(|o| o.started >= dead).count(),
        down - killed_at_signal
    );
}

#[test]
fn a_dns_change_of_the_app_name_is_followed_without_reload() {
    if junction_only() {
        return;
    }
    let mut d = deploy();
    let app1 = format!("127.0.0.2:{}", d.app.port);
    let app2_peer = app_on(&d.mc, "127.0.0.3", d.app.port);
    let app2 = format!("127.0.0.3:{}", app2_peer.port);
    let mut n = 0;
    let mut fresh = |d: &Deployment| {
        n += 1;
        d.get(&format!("/dns/{n}.html"))
    };
    for _ in 0..4 {
        let a = fresh(&d);
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.app(), app1, "{a:?}");
    }
    // The name moves to 127.0.0.3 (dnsmasq reread its hosts file: TTL 1 s, valid=1s).
    d.dns.set(&[(APP_NAME, "127.0.0.3")]);
    let changed = Instant::now();
    let mut moved: HashMap<String, bool> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(moved.get("replica1") == Some(&true) && moved.get("replica2") == Some(&true)) {
        assert!(
            Instant::now() < deadline,
            "the replicas did not follow the DNS change within 15 s: {moved:?}\n{}\n{}",
            d.replicas[0].error_log(),
            d.dns.log()
        );
        let a = fresh(&d);
        assert_eq!(a.status, 200, "{a:?}");
        assert!(a.app() == app1 || a.app() == app2, "{a:?}");
        moved.insert(a.replica.clone(), a.app() == app2);
        thread::sleep(Duration::from_millis(50));
    }
    let followed = changed.elapsed();
    // From now on the removed address gets nothing.
    let app1_hits = d.app_hits();
    for _ in 0..10 {
        let a = fresh(&d);
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.app(), app2, "{a:?}");
    }
    assert_eq!(
        d.app_hits(),
        app1_hits,
        "127.0.0.2 is no longer the name's address"
    );
    assert!(hits("127.0.0.3", &app2_peer) >= 10);
    // No reload took part: each replica still runs its first configuration.
    for i in 0..2 {
        assert_eq!(d.generation(i), 0, "replica{} reloaded", i + 1);
    }
    eprintln!("DNS change followed by both replicas within {followed:?}");
}
