//! Zero loss (issue 17): under a running `wrk` load (keep-alive clients, and clients
//! sending `Connection: close`) on a proxy to a python3 backend, five reloads (one adding
//! a listen address, one removing it, three changing a header) and a binary upgrade (`USR2` → the new pid file →
//! `WINCH` → `QUIT` to the old master) fail no request: wrk counts no socket error and
//! no non-2xx response, and afterwards another process answers.
//! Runs against nginx too (`JUNCTION_TEST_PROXY=nginx`, with a master process).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod restart_kit;

use common::*;
use restart_kit::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long wrk runs (the issue asks for at least 10 s): long enough for every step below
/// on a loaded machine.
const LOAD: Duration = Duration::from_secs(10);

fn wrk(port: u16, conns: u32, close: bool, out: &std::path::Path) -> Child {
    let mut c = Command::new("wrk");
    c.args(["-t1", &format!("-c{conns}")])
        .arg(format!("-d{}s", LOAD.as_secs()))
        .args(["--timeout", "10s"]);
    if close {
        c.args(["-H", "Connection: close"]);
    }
    c.arg(format!("http://127.0.0.1:{port}/index.html"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("wrk is needed for this test (apt-get install -y wrk): {e}"))
}

/// wrk's summary.
struct Summary {
    requests: u64,
    /// `Socket errors: connect C, read R, write W, timeout T` (only printed when any).
    connect: u64,
    reset: u64,
    timeout: u64,
    /// `Non-2xx or 3xx responses: N`.
    non2xx: u64,
}

fn summary(text: &str) -> Summary {
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk's output:\n{text}"));
    let errors: Vec<u64> = text
        .lines()
        .find(|l| l.contains("Socket errors:"))
        .map_or_else(Vec::new, |l| {
            l.split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u64>().ok())
                .collect()
        });
    let e = |i: usize| errors.get(i).copied().unwrap_or(0);
    let non2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses:"))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    Summary {
        requests,
        connect: e(0),
        reset: e(1) + e(2),
        timeout: e(3),
        non2xx,
    }
}

#[test]
fn reloads_and_a_binary_upgrade_under_load_lose_no_request() {
    let app = seed_app_dir();
    let backend = Peer::http_server(app.path());
    let conf = |extra: &str, generation: u32| {
        format!(
            "upstream app {{ server 127.0.0.1:{{BACKEND}}; }}\n\
             server {{\n    listen 127.0.0.1:{{PORT}};\n{extra}    \
             location / {{ proxy_pass http://app; add_header X-Pid $pid always; \
             add_header X-Generation {generation} always; }}\n}}"
        )
    };
    let mut m = Master::start(&conf("", 0), &[("BACKEND", &backend.port)]);
    let (p, p2) = (m.ports[0], m.ports[1]);
    let pid_of = |port: u16| {
        let r = http_request(port, get_request("load.test", "/index.html").as_bytes());
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_eq!(r.text(), "hello world\n");
        r.header("X-Pid").unwrap().to_string()
    };
    let before = pid_of(p);

    let keep_out = m.path("wrk-keepalive.txt");
    let close_out = m.path("wrk-close.txt");
    let started = Instant::now();
    let mut keep = wrk(p, 4, false, &keep_out);
    let mut close = wrk(p, 2, true, &close_out);
    // wrk is running once the backend has answered through the proxy a few times;
    // the proxy's own readiness was checked above.
    wait_until("wrk's first requests", SLOW, || {
        backend.stderr().matches("GET /index.html").count() > 20
    });

    // A reload adding a listen address, one removing it, three changing a header.
    m.write(&conf("    listen 127.0.0.1:{PORT2};\n", 1));
    m.reload();
    wait_until("the added port serves", SLOW, || {
        body(p2, "/index.html").is_ok_and(|b| b == "hello world\n")
    });
    m.write(&conf("", 2));
    m.reload();
    wait_until("the removed port refuses", SLOW, || refused(p2));
    for generation in 3..=5 {
        m.write(&conf("", generation));
        m.reload();
        wait_until("the reloaded configuration answers", SLOW, || {
            let r = http_request(p, get_request("load.test", "/index.html").as_bytes());
            r.header("X-Generation") == Some(generation.to_string().as_str())
        });
    }

    // The binary upgrade.
    let new = m.upgrade();
    m.signal("WINCH");
    m.signal("QUIT");
    m.wait_exit(SLOW).expect("the old master exits on QUIT");
    let steps = started.elapsed();

    let k = keep.wait().unwrap();
    let c = close.wait().unwrap();
    assert!(k.success() && c.success(), "wrk failed: {k} {c}");
    assert!(
        steps < LOAD,
        "the reloads and the upgrade took {steps:?}, longer than the load ({LOAD:?}): \
         nothing was shown"
    );
    for (name, out) in [("keep-alive", &keep_out), ("Connection: close", &close_out)] {
        let text = std::fs::read_to_string(out).unwrap();
        let w = summary(&text);
        eprintln!(
            "{name}: {} requests, {} refused, {} reset, {} timed out, {} non-2xx",
            w.requests, w.connect, w.reset, w.timeout, w.non2xx
        );
        let failed = |what: &str| format!("{name}: {what}\n{text}\n{}", m.logs());
        assert!(w.requests > 0, "{}", failed("no request"));
        assert_eq!(w.connect, 0, "{}", failed("connections refused"));
        assert_eq!(w.timeout, 0, "{}", failed("requests timed out"));
        assert_eq!(w.non2xx, 0, "{}", failed("non-2xx responses"));
        // nginx closes idle keep-alive connections when its old workers stop (reload
        // and upgrade alike), so a keep-alive client whose next request is already on
        // its way gets a reset. Junction gives them a moment to arrive and answers them
        // with `Connection: close`: no reset at all.
        if m.kind == Kind::Junction || name == "Connection: close" {
            assert_eq!(w.reset, 0, "{}", failed("requests reset"));
        }
    }
    let after = pid_of(p);
    assert_ne!(after, before, "another process answers");
    if m.kind == Kind::Junction {
        assert_eq!(after, new.to_string());
    }
}
