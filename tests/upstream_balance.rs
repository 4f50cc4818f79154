//! Balancing methods of `upstream {}` (issue 7, NGINX-SEMANTICS §12) with three (or four)
//! real backends (`tests/peers/ups_peer.py`, each answering its own id): weighted round
//! robin (shares and nginx's exact order), `ip_hash` stickiness, `hash … consistent`
//! remapping when a server is added, `backup` only when the primaries are down, all
//! down → 502. Where nginx is installed, the picks are compared with nginx's on the
//! same config (`upstream_kit::Nginx`); `JUNCTION_TEST_PROXY=nginx` runs it all on nginx.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod upstream_kit;

use common::*;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;
use upstream_kit::*;

fn sequence(port: u16, n: usize, path: &str) -> Vec<String> {
    (0..n)
        .map(|_| {
            let r = get(port, path);
            assert_eq!(r.status, 200, "{}", r.describe());
            peer_of(&r)
        })
        .collect()
}

#[test]
fn weighted_round_robin_3_1_1_shares_and_nginx_order() {
    let b = Backend::start_n(3);
    let conf = site(
        &upstream_block(
            "app",
            &[
                (&b[0], "weight=3"),
                (&b[1], "weight=1"),
                (&b[2], "weight=1"),
            ],
            "",
        ),
        "app",
        "",
    );
    let proxy = Proxy::start(&conf);
    let seq = sequence(proxy.port, 500, "/");
    let mut count: HashMap<&str, usize> = HashMap::new();
    for p in &seq {
        *count.entry(p.as_str()).or_default() += 1;
    }
    let share = |id: &str| *count.get(id).unwrap_or(&0) as f64 / 500.0 * 100.0;
    eprintln!(
        "weight 3/1/1 over 500: a {:.1}% b {:.1}% c {:.1}%",
        share("a"),
        share("b"),
        share("c")
    );
    for (id, want) in [("a", 60.0), ("b", 20.0), ("c", 20.0)] {
        assert!(
            (share(id) - want).abs() <= 3.0,
            "{id}: {:.1}% (want {want}% ± 3)",
            share(id)
        );
    }
    // Smooth weighted round robin, as nginx: a b a c a, repeated.
    let first: Vec<&str> = seq.iter().take(10).map(String::as_str).collect();
    assert_eq!(first, ["a", "b", "a", "c", "a", "a", "b", "a", "c", "a"]);
    match Nginx::start(&conf) {
        Some(ng) => assert_eq!(sequence(ng.port, 10, "/"), first, "nginx's first 10 picks"),
        None => eprintln!("nginx not installed: order not compared with nginx"),
    }
}

#[test]
fn ip_hash_keeps_each_client_on_one_server() {
    let b = Backend::start_n(3);
    let conf = site(
        &upstream_block("app", &[(&b[0], ""), (&b[1], ""), (&b[2], "")], "ip_hash;"),
        "app",
        "",
    );
    let proxy = Proxy::start(&conf);
    // Clients from 24 networks (127.0.N.0/24); within one /24 the last octet does not
    // matter (nginx hashes the first three octets).
    let mapping = |port: u16| -> Vec<String> {
        (0..24u8)
            .map(|net| {
                let picks: Vec<String> = (1..=5u8)
                    .map(|host| {
                        let (status, peer) = get_from(Ipv4Addr::new(127, 0, net, host), port, "/");
                        assert_eq!(status, 200);
                        peer
                    })
                    .collect();
                assert!(
                    picks.iter().all(|p| *p == picks[0]),
                    "client net 127.0.{net}.0/24 moved between servers: {picks:?}"
                );
                picks[0].clone()
            })
            .collect()
    };
    let ours = mapping(proxy.port);
    let distinct: std::collections::HashSet<&String> = ours.iter().collect();
    assert!(
        distinct.len() >= 2,
        "24 client networks all on {distinct:?}"
    );
    match Nginx::start(&conf) {
        Some(ng) => assert_eq!(
            mapping(ng.port),
            ours,
            "nginx maps the clients the same way"
        ),
        None => eprintln!("nginx not installed: ip_hash not compared with nginx"),
    }
}

#[test]
fn consistent_hash_remaps_few_keys_when_a_fourth_server_is_added() {
    let b = Backend::start_n(4);
    let ups = |n: usize| {
        let servers: Vec<(&Backend, &str)> = b.iter().take(n).map(|x| (x, "")).collect();
        site(
            &upstream_block("app", &servers, "hash $request_uri consistent;"),
            "app",
            "",
        )
    };
    let map = |port: u16| -> Vec<String> {
        (0..1000)
            .map(|k| {
                let r = get(port, &format!("/k/{k}"));
                assert_eq!(r.status, 200, "{}", r.describe());
                peer_of(&r)
            })
            .collect()
    };
    let three = map(Proxy::start(&ups(3)).port);
    // The same key always reaches the same server.
    assert_eq!(map(Proxy::start(&ups(3)).port)[..100], three[..100]);
    let conf4 = ups(4);
    let four = map(Proxy::start(&conf4).port);
    let moved = three.iter().zip(&four).filter(|(x, y)| x != y).count();
    eprintln!(
        "hash $request_uri consistent, 3 → 4 servers: {moved} of 1000 keys remapped ({:.1}%)",
        moved as f64 / 10.0
    );
    assert!(moved <= 350, "{moved} of 1000 keys remapped (want ≤ 35%)");
    assert!(
        three.iter().zip(&four).all(|(x, y)| x == y || y == "d"),
        "a remapped key went somewhere else than the new server"
    );
    match Nginx::start(&conf4) {
        Some(ng) => {
            let theirs = map(ng.port);
            let differ = theirs.iter().zip(&four).filter(|(x, y)| x != y).count();
            assert_eq!(
                differ, 0,
                "{differ} of 1000 keys map differently from nginx"
            );
        }
        None => eprintln!("nginx not installed: ketama not compared with nginx"),
    }
}

#[test]
fn backup_only_when_both_primaries_are_down_then_502() {
    let mut b = Backend::start_n(3);
    let conf = site(
        &upstream_block("app", &[(&b[0], ""), (&b[1], ""), (&b[2], "backup")], ""),
        "app",
        "",
    );
    let proxy = Proxy::start(&conf);
    let ok_from = |n: usize| -> Vec<String> { sequence(proxy.port, n, "/") };
    let seen = ok_from(20);
    assert!(
        seen.iter().all(|p| p != "c"),
        "backup used with both primaries up: {seen:?}"
    );
    b[0].kill();
    let seen = ok_from(20);
    assert!(seen.iter().all(|p| p == "b"), "one primary down: {seen:?}");
    assert_eq!(b[2].stats().hits, 0, "backup used with one primary up");
    b[1].kill();
    let seen = ok_from(20);
    assert!(
        seen.iter().all(|p| p == "c"),
        "both primaries down: {seen:?}"
    );
    b[2].kill();
    let r = get(proxy.port, "/");
    assert_eq!(r.status, 502, "{}", r.describe());
    let r = get(proxy.port, "/");
    assert_eq!(r.status, 502, "{}", r.describe());
    if let Err(log) = proxy.wait_error_log("no live upstreams", Duration::from_secs(5)) {
        panic!("no \"no live upstreams\" in the error log:\n{log}");
    }
}

#[test]
fn least_conn_and_random_spread_over_all_servers() {
    let b = Backend::start_n(3);
    for method in ["least_conn;", "random;", "random two least_conn;"] {
        let conf = site(
            &upstream_block("app", &[(&b[0], ""), (&b[1], ""), (&b[2], "")], method),
            "app",
            "",
        );
        let proxy = Proxy::start(&conf);
        let seq = sequence(proxy.port, 90, "/");
        for id in ["a", "b", "c"] {
            let n = seq.iter().filter(|p| *p == id).count();
            assert!(n >= 10, "{method}: {id} got {n} of 90");
        }
    }
}

#[test]
fn hash_key_maps_like_nginx_with_weights_and_a_down_server() {
    let b = Backend::start_n(3);
    let map = |port: u16| -> Vec<String> {
        (0..300)
            .map(|k| {
                let r = get(port, &format!("/?user=u{k}"));
                assert_eq!(r.status, 200, "{}", r.describe());
                peer_of(&r)
            })
            .collect()
    };
    // The second config rehashes every key that falls on the `down` server (nginx's
    // crc32 of "N KEY" with N the attempt, up to 20 tries).
    for second in ["", "down"] {
        let conf = site(
            &upstream_block(
                "app",
                &[(&b[0], "weight=2"), (&b[1], second), (&b[2], "")],
                "hash $arg_user;",
            ),
            "app",
            "",
        );
        let proxy = Proxy::start(&conf);
        let ours = map(proxy.port);
        assert_eq!(map(proxy.port), ours, "a key moved between two runs");
        if second.is_empty() {
            let a = ours.iter().filter(|p| *p == "a").count();
            assert!(
                (100..=200).contains(&a),
                "weight 2 of 4 got {a} of 300 keys"
            );
        } else {
            assert!(
                ours.iter().all(|p| p != "b"),
                "a key went to the down server"
            );
        }
        match Nginx::start(&conf) {
            Some(ng) => assert_eq!(map(ng.port), ours, "nginx maps the keys the same way"),
            None => eprintln!("nginx not installed: hash not compared with nginx"),
        }
    }
}
