//! Passive health and retries (issue 7, NGINX-SEMANTICS §11–12) with three real backends:
//! a backend killed in the middle of a run costs no client a failure (the request goes
//! to the next server), is skipped for `fail_timeout`, and serves again once restarted;
//! a POST is not sent twice without `non_idempotent`; `http_503` retries, and with no
//! tries left the last answer is passed on as it is. Runs on nginx too
//! (`JUNCTION_TEST_PROXY=nginx`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod upstream_kit;

use common::*;
use std::thread;
use std::time::{Duration, Instant};
use upstream_kit::*;

#[test]
fn a_backend_killed_during_300_gets_costs_no_client_a_failure() {
    let mut b = Backend::start_n(3);
    let ft = "fail_timeout=1s";
    let conf = site(
        &upstream_block("app", &[(&b[0], ft), (&b[1], ft), (&b[2], ft)], ""),
        "app",
        "",
    );
    let proxy = Proxy::start(&conf);
    let dead = b[0].addr();
    let mut attempts_on_dead: Vec<Instant> = Vec::new();
    let mut after_kill: Vec<String> = Vec::new();
    // A steady client: one GET every ~8 ms (about 2.4 s), backend `a` killed after 50.
    for i in 0..300 {
        if i == 50 {
            b[0].kill();
        }
        let r = get(proxy.port, "/");
        assert_eq!(r.status, 200, "request {i}: {}", r.describe());
        let tried = r.header("X-Upstream").unwrap_or_default().to_string();
        if i >= 50 {
            after_kill.push(peer_of(&r));
            if tried.contains(&dead) {
                assert!(tried.contains(", "), "request {i} was not retried: {tried}");
                attempts_on_dead.push(Instant::now());
            }
        }
        thread::sleep(Duration::from_millis(8));
    }
    assert!(after_kill.iter().all(|p| p != "a"));
    // The dead server is tried once, then left alone for fail_timeout (1 s) each time.
    assert!(
        !attempts_on_dead.is_empty(),
        "the dead server was never tried after the kill"
    );
    let gaps: Vec<Duration> = attempts_on_dead
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .collect();
    eprintln!(
        "after the kill: {} attempts on the dead server, gaps {gaps:?}",
        attempts_on_dead.len()
    );
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(900)),
        "the dead server was retried within fail_timeout: {gaps:?}"
    );
    assert!(
        attempts_on_dead.len() <= 4,
        "{} attempts in ~2 s",
        attempts_on_dead.len()
    );
    // Restarted on its port, it serves again once fail_timeout has passed.
    b[0].restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(proxy.port, "/");
        assert_eq!(r.status, 200, "{}", r.describe());
        if peer_of(&r) == "a" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "backend a never served after its restart"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn post_is_not_retried_without_non_idempotent() {
    let b = Backend::start_n(2);
    // max_fails=0: failures are not counted, so round robin keeps alternating.
    let ups = upstream_block("app", &[(&b[0], "max_fails=0"), (&b[1], "max_fails=0")], "");
    // `a` reads the request and closes without an answer.
    let path = "/p?close=1&only=a";

    let plain = Proxy::start(&site(&ups, "app", ""));
    let statuses: Vec<u16> = (0..4).map(|_| post(plain.port, path).status).collect();
    let (pa, pb) = (b[0].stats().posts, b[1].stats().posts);
    assert_eq!(
        pa + pb,
        4,
        "a POST was sent twice: a {pa}, b {pb} ({statuses:?})"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 502).count() as u64, pa);
    // A GET of the same is retried.
    for _ in 0..4 {
        let r = get(plain.port, path);
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_eq!(peer_of(&r), "b");
    }
    drop(plain);

    for x in &b {
        x.reset();
    }
    let retrying = Proxy::start(&site(
        &ups,
        "app",
        "proxy_next_upstream error timeout non_idempotent;",
    ));
    for _ in 0..4 {
        let r = post(retrying.port, path);
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_eq!(peer_of(&r), "b");
    }
    let (pa, pb) = (b[0].stats().posts, b[1].stats().posts);
    assert_eq!(pb, 4);
    assert!(pa >= 1, "a got no POST at all");
}

#[test]
fn http_503_goes_to_the_next_server_and_the_last_answer_is_passed_on() {
    let b = Backend::start_n(3);
    let ups = upstream_block("app", &[(&b[0], ""), (&b[1], ""), (&b[2], "")], "");
    let p = Proxy::start(&site(
        &ups,
        "app",
        "proxy_next_upstream error timeout http_503;",
    ));
    for _ in 0..6 {
        let r = get(p.port, "/s?status=503&only=b");
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_ne!(peer_of(&r), "b");
    }
    drop(p);
    // Every server answers 503: the third answer goes to the client (no 502). (max_fails=0:
    // `b` above was taken out for fail_timeout by its 503s, and a server out of service
    // ends the tries with "no live upstreams" in nginx too.)
    let ups0 = upstream_block(
        "app",
        &[
            (&b[0], "max_fails=0"),
            (&b[1], "max_fails=0"),
            (&b[2], "max_fails=0"),
        ],
        "",
    );
    let p = Proxy::start(&site(
        &ups0,
        "app",
        "proxy_next_upstream error timeout http_503;",
    ));
    let r = get(p.port, "/s?status=503");
    assert_eq!(r.status, 503, "{}", r.describe());
    assert_eq!(
        r.header("X-Upstream")
            .unwrap_or_default()
            .matches(", ")
            .count(),
        2,
        "three servers tried: {}",
        r.describe()
    );
    drop(p);
    // Without http_503 the 503 is the answer; with one try only as well.
    for extra in [
        "",
        "proxy_next_upstream error timeout http_503; proxy_next_upstream_tries 1;",
    ] {
        let p = Proxy::start(&site(&ups, "app", extra));
        let seen: Vec<u16> = (0..3)
            .map(|_| get(p.port, "/s?status=503&only=b").status)
            .collect();
        assert!(seen.contains(&503), "{extra:?}: {seen:?}");
    }
}
