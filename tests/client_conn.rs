//! The client connection's timers and limits as nginx applies them:
//! `keepalive_timeout` for an idle connection, `client_header_timeout` for a
//! half-sent head, `keepalive_requests`, a 413 that reaches a client still
//! sending (lingering close), the memory an idle keep-alive connection costs,
//! and a reload reaching a connection opened before it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

fn site(extra: &str) -> String {
    format!(
        "server {{
    listen 127.0.0.1:{{PORT}};
    server_name c.test;
    {extra}
    location / {{
        return 200 \"ok\";
    }}
}}
"
    )
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one response with a `Content-Length` body; returns its head lines and body.
fn read_one(r: &mut BufReader<TcpStream>) -> Option<(Vec<String>, Vec<u8>)> {
    let mut head = Vec::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).ok()? == 0 {
            return None;
        }
        let l = l.trim_end().to_string();
        if l.is_empty() {
            break;
        }
        head.push(l);
    }
    let len: usize = head
        .iter()
        .find_map(|h| {
            h.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// Waits for the server to close `s`; returns how long that took from `from`.
fn closed_after(s: &mut impl Read, from: Instant) -> Duration {
    let mut b = [0u8; 256];
    loop {
        match s.read(&mut b) {
            Ok(0) => return from.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return from.elapsed(),
            Err(e) => panic!("not closed: {e}"),
        }
    }
}

#[test]
fn keepalive_timeout_closes_an_idle_connection_and_client_header_timeout_a_half_sent_head() {
    let proxy = Proxy::start(&site("keepalive_timeout 1s; client_header_timeout 3s;"));
    // Idle after a response: closed after keepalive_timeout.
    let s = connect(proxy.port);
    (&s).write_all(b"GET / HTTP/1.1\r\nHost: c.test\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let (head, body) = read_one(&mut r).expect("response");
    assert!(head[0].starts_with("HTTP/1.1 200"), "{head:?}");
    assert_eq!(body, b"ok");
    let idle = closed_after(&mut r, Instant::now());
    assert!(
        idle >= Duration::from_millis(800) && idle < Duration::from_millis(2800),
        "idle keep-alive closed after {idle:?}, keepalive_timeout is 1s"
    );
    // A head cut halfway: the connection waits client_header_timeout, not keepalive_timeout.
    let mut s = connect(proxy.port);
    let sent = Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\nHost: c.t").unwrap();
    let half = closed_after(&mut s, sent);
    assert!(
        half >= Duration::from_millis(2700) && half < Duration::from_millis(6000),
        "half-sent head closed after {half:?}, client_header_timeout is 3s"
    );
}

#[test]
fn keepalive_requests_3_closes_after_the_third_response() {
    let proxy = Proxy::start(&site("keepalive_requests 3;"));
    let s = connect(proxy.port);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for i in 1..=3 {
        w.write_all(b"GET / HTTP/1.1\r\nHost: c.test\r\n\r\n")
            .unwrap();
        let (head, body) = read_one(&mut r).unwrap_or_else(|| panic!("response {i}"));
        assert_eq!(body, b"ok");
        let conn = head
            .iter()
            .find(|h| h.to_ascii_lowercase().starts_with("connection:"))
            .map(|h| h.to_ascii_lowercase());
        let want = if i < 3 {
            "connection: keep-alive"
        } else {
            "connection: close"
        };
        assert_eq!(conn.as_deref(), Some(want), "response {i}: {head:?}");
    }
    let _ = w.write_all(b"GET / HTTP/1.1\r\nHost: c.test\r\n\r\n");
    assert!(
        read_one(&mut r).is_none(),
        "a fourth response on the same connection"
    );
}

/// The client keeps sending a body far over client_max_body_size: it reads the
/// 413 (nginx's lingering close reads and drops what still comes) rather than a
/// reset.
#[test]
fn a_client_still_sending_gets_its_413() {
    let proxy = Proxy::start(&site("client_max_body_size 1k;"));
    let s = connect(proxy.port);
    let mut w = s.try_clone().unwrap();
    let total = 8 * 1024 * 1024;
    let writer = std::thread::spawn(move || {
        let head = format!("POST / HTTP/1.1\r\nHost: c.test\r\nContent-Length: {total}\r\n\r\n");
        w.write_all(head.as_bytes())?;
        let piece = vec![b'x'; 64 * 1024];
        for _ in 0..total / piece.len() {
            w.write_all(&piece)?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut r = BufReader::new(s);
    let (head, body) = read_one(&mut r).expect("the 413 arrives");
    assert!(head[0].starts_with("HTTP/1.1 413"), "{head:?}");
    assert!(
        String::from_utf8_lossy(&body).contains("413"),
        "the error page"
    );
    let _ = writer.join();
}

/// 1,000 idle keep-alive connections (each served once) raise the RSS by < 2 MB.
#[test]
fn a_thousand_idle_connections_cost_under_2_mb() {
    let conf = "worker_processes 1;\nevents { worker_connections 2048; }\nhttp {\n".to_string()
        + &site("")
        + "}\n";
    let proxy = Proxy::start_files(&[("nginx.conf", &conf)], "nginx.conf");
    let request = b"GET / HTTP/1.1\r\nHost: c.test\r\n\r\n";
    let mut warm = Vec::new();
    for _ in 0..50 {
        let s = connect(proxy.port);
        (&s).write_all(request).unwrap();
        let mut r = BufReader::new(s);
        read_one(&mut r).expect("warm-up response");
        warm.push(r);
    }
    let before = proxy.rss_kb().current_kb;
    let mut conns = Vec::new();
    for i in 0..1000 {
        let s = connect(proxy.port);
        (&s).write_all(request).unwrap();
        let mut r = BufReader::new(s);
        read_one(&mut r).unwrap_or_else(|| panic!("response {i}"));
        conns.push(r);
    }
    let after = proxy.rss_kb().current_kb;
    let grew = after.saturating_sub(before);
    eprintln!("1000 idle connections: RSS {before} kB → {after} kB (+{grew} kB)");
    assert!(grew < 2048, "1000 idle connections cost {grew} kB");
    // Still served.
    let r = &mut conns[0];
    r.get_mut().write_all(request).unwrap();
    assert!(read_one(r).is_some());
}

/// A keep-alive connection opened before a reload takes the new configuration
/// at its next request.
#[test]
fn a_connection_across_a_reload_gets_the_new_configuration() {
    if product() == "nginx" {
        return; // the reference run has no master process to reload
    }
    let conf = |body: &str| {
        format!(
            "server {{
    listen 127.0.0.1:{{PORT}};
    location / {{ return 200 \"{body}\"; }}
}}
"
        )
    };
    let proxy = Proxy::start(&conf("one"));
    let file = proxy.dir().join("junction.conf");
    let s = connect(proxy.port);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let ask = |w: &mut TcpStream, r: &mut BufReader<TcpStream>| {
        w.write_all(b"GET / HTTP/1.1\r\nHost: r.test\r\n\r\n")
            .unwrap();
        String::from_utf8(read_one(r).expect("response on the same connection").1).unwrap()
    };
    assert_eq!(ask(&mut w, &mut r), "one");
    let port_line = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .find(|l| l.contains("listen"))
        .unwrap()
        .to_string();
    std::fs::write(
        &file,
        conf("two").replace("    listen 127.0.0.1:{PORT};", &port_line),
    )
    .unwrap();
    proxy.signal("HUP");
    // A fresh connection shows when the reload is done.
    let deadline = Instant::now() + Duration::from_secs(5);
    while String::from_utf8_lossy(&proxy.get("r.test", "/").body) != "two" {
        assert!(Instant::now() < deadline, "the reload never happened");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        ask(&mut w, &mut r),
        "two",
        "the old connection runs the new configuration"
    );
}

/// Graceful stop (SIGQUIT) closes idle keep-alive connections at once.
#[test]
fn graceful_stop_closes_idle_keepalive_connections_at_once() {
    if product() == "nginx" {
        return; // the reference run is not the master process
    }
    let mut proxy = Proxy::start(&site(""));
    let s = connect(proxy.port);
    (&s).write_all(b"GET / HTTP/1.1\r\nHost: c.test\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    read_one(&mut r).expect("response");
    let t = Instant::now();
    proxy.signal("QUIT");
    let took = closed_after(&mut r, t);
    assert!(
        took < Duration::from_secs(3),
        "idle connection closed after {took:?}"
    );
    assert!(
        proxy.wait_exit(Duration::from_secs(5)).is_some(),
        "the process exits"
    );
}

/// `Expect: 100-continue`: the 100 goes out when the body is read (a proxied
/// request) or discarded (`return`: before the response, as nginx's
/// `ngx_http_discard_request_body`), never for a body over `client_max_body_size`.
#[test]
fn expect_100_continue_is_sent_when_the_body_is_read_or_discarded_not_for_a_413() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    server_name c.test;
    client_max_body_size 1k;
    location / { proxy_pass http://127.0.0.1:{BACKEND}; }
    location = /ret { return 200 \"r\"; }
}
",
        &[("BACKEND", &backend.port)],
    ));
    let head = |path: &str, len: usize| {
        format!("POST {path} HTTP/1.1\r\nHost: c.test\r\nExpect: 100-continue\r\nContent-Length: {len}\r\n\r\n")
    };
    let first_line = |r: &mut BufReader<TcpStream>| {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        line
    };
    let skip_blank = |r: &mut BufReader<TcpStream>| {
        let mut blank = String::new();
        r.read_line(&mut blank).unwrap();
        assert_eq!(blank, "\r\n");
    };
    for path in ["/up", "/ret"] {
        let s = connect(proxy.port);
        (&s).write_all(head(path, 3).as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        let line = first_line(&mut r);
        assert!(line.starts_with("HTTP/1.1 100"), "{path}: {line:?}");
        skip_blank(&mut r);
        r.get_mut().write_all(b"abc").unwrap();
        let (h, body) = read_one(&mut r).expect("final response");
        assert!(h[0].starts_with("HTTP/1.1 200"), "{path}: {h:?}");
        if path == "/up" {
            assert!(String::from_utf8_lossy(&body).contains("\"body_len\": 3"));
        } else {
            assert_eq!(body, b"r");
        }
        // The body was read or discarded: the connection serves the next request.
        r.get_mut()
            .write_all(b"GET /ret HTTP/1.1\r\nHost: c.test\r\n\r\n")
            .unwrap();
        let (h, body) = read_one(&mut r).expect("next response");
        assert!(h[0].starts_with("HTTP/1.1 200"), "{path}: {h:?}");
        assert_eq!(body, b"r");
    }
    let s = connect(proxy.port);
    (&s).write_all(head("/up", 5000).as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let line = first_line(&mut r);
    assert!(line.starts_with("HTTP/1.1 413"), "{line:?}");
}

/// `worker_connections`: when a worker has none left, it closes its longest idle
/// keep-alive connections to make room (nginx's reusable connections), saying
/// `worker_connections are not enough`.
#[test]
fn past_worker_connections_idle_keepalive_connections_make_room() {
    let conf = "worker_processes 1;\nerror_log {DIR}/error.log info;\nevents { worker_connections 8; }\nhttp {\n".to_string()
        + &site("")
        + "}\n";
    let proxy = Proxy::start_files(&[("nginx.conf", &conf)], "nginx.conf");
    let request = b"GET / HTTP/1.1\r\nHost: c.test\r\n\r\n";
    let mut open = Vec::new();
    for i in 0..20 {
        let s = connect(proxy.port);
        (&s).write_all(request).unwrap();
        let mut r = BufReader::new(s);
        read_one(&mut r).unwrap_or_else(|| panic!("connection {i} not served"));
        open.push(r);
    }
    proxy
        .wait_error_log("worker_connections are not enough", Duration::from_secs(5))
        .expect("the error log says so");
    // The oldest idle connections were closed; the newest still serves.
    let first = &mut open[0];
    first
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut b = [0u8; 16];
    assert!(
        matches!(first.read(&mut b), Ok(0) | Err(_)),
        "the longest idle connection is closed"
    );
    let last = open.last_mut().unwrap();
    last.get_mut().write_all(request).unwrap();
    assert!(
        read_one(last).is_some(),
        "the newest connection still serves"
    );
}

/// `worker_rlimit_nofile` sets the open-file limit of the process.
#[test]
fn worker_rlimit_nofile_sets_the_open_file_limit() {
    if product() == "nginx" {
        return; // nginx sets it in its worker processes, not the process the test started
    }
    let conf = "worker_rlimit_nofile 4321;\nevents {}\nhttp {\n".to_string() + &site("") + "}\n";
    let proxy = Proxy::start_files(&[("nginx.conf", &conf)], "nginx.conf");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", proxy.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums, ["4321", "4321"], "{line}");
}

/// `send_timeout`: a client that stops reading is given up after that long
/// between two writes; the rest of the response never comes.
#[test]
fn send_timeout_gives_up_on_a_client_that_stops_reading() {
    let proxy = Proxy::start(
        "server {
    listen 127.0.0.1:{PORT};
    server_name c.test;
    send_timeout 1s;
    root {DIR}/www;
}
",
    );
    let www = proxy.dir().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let size = 32 * 1024 * 1024;
    std::fs::write(www.join("big.bin"), vec![b'b'; size]).unwrap();
    let s = connect(proxy.port);
    s.set_nodelay(true).unwrap();
    (&s).write_all(b"GET /big.bin HTTP/1.1\r\nHost: c.test\r\n\r\n")
        .unwrap();
    // Not reading: the server's writes stall; send_timeout (1s) passes meanwhile.
    std::thread::sleep(Duration::from_secs(4));
    let mut got = 0usize;
    let mut r = s;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(
        got < size,
        "the whole {size} bytes arrived ({got}): send_timeout did not apply"
    );
    assert!(got > 0, "the response began");
}

/// `keepalive_timeout 65 60` sends `Keep-Alive: timeout=60`; `keepalive_time`
/// ends keep-alive on a connection older than it.
#[test]
fn keepalive_header_and_keepalive_time() {
    let proxy = Proxy::start(&site("keepalive_timeout 65 60; keepalive_time 1s;"));
    let s = connect(proxy.port);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(b"GET / HTTP/1.1\r\nHost: c.test\r\n\r\n")
        .unwrap();
    let (head, _) = read_one(&mut r).expect("response");
    let has = |head: &[String], want: &str| head.iter().any(|h| h.eq_ignore_ascii_case(want));
    assert!(has(&head, "Keep-Alive: timeout=60"), "{head:?}");
    assert!(has(&head, "Connection: keep-alive"), "{head:?}");
    // The connection's age passes keepalive_time: the next response closes it.
    std::thread::sleep(Duration::from_millis(1300));
    w.write_all(b"GET / HTTP/1.1\r\nHost: c.test\r\n\r\n")
        .unwrap();
    let (head, _) = read_one(&mut r).expect("second response");
    assert!(has(&head, "Connection: close"), "{head:?}");
}

/// `reset_timedout_connection on`: a client that times out is reset, not closed.
#[test]
fn reset_timedout_connection_resets_a_timed_out_client() {
    let proxy = Proxy::start(&site(
        "client_header_timeout 1s; reset_timedout_connection on;",
    ));
    let mut s = connect(proxy.port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: c.t").unwrap();
    let mut b = [0u8; 64];
    let r = s.read(&mut b);
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{r:?}"
    );
}

/// The server a request chose decides its keep-alive (`keepalive_timeout 0` in a
/// server that is not the default one closes after its response).
#[test]
fn keepalive_settings_of_the_chosen_server_apply() {
    let proxy = Proxy::start(
        "server {
    listen 127.0.0.1:{PORT};
    server_name a.test;
    location / { return 200 \"a\"; }
}
server {
    listen 127.0.0.1:{PORT};
    server_name b.test;
    keepalive_timeout 0;
    location / { return 200 \"b\"; }
}
",
    );
    let s = connect(proxy.port);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .unwrap();
    let (head, body) = read_one(&mut r).expect("a");
    assert_eq!(body, b"a");
    assert!(
        head.iter()
            .any(|h| h.eq_ignore_ascii_case("Connection: keep-alive")),
        "{head:?}"
    );
    w.write_all(b"GET / HTTP/1.1\r\nHost: b.test\r\n\r\n")
        .unwrap();
    let (head, body) = read_one(&mut r).expect("b");
    assert_eq!(body, b"b");
    assert!(
        head.iter()
            .any(|h| h.eq_ignore_ascii_case("Connection: close")),
        "{head:?}"
    );
}

/// A location's own `keepalive_timeout`, `keepalive_requests` and the second
/// argument of `keepalive_timeout` decide what follows a request that ends there
/// (nginx's `ngx_http_update_location_config`); other locations keep the server's.
#[test]
fn location_level_keepalive_settings_apply_to_requests_ending_there() {
    let proxy = Proxy::start(&site(
        "location /short { keepalive_timeout 0; return 200 \"s\"; }
    location /two { keepalive_requests 2; return 200 \"t\"; }
    location /hdr { keepalive_timeout 30s 25s; return 200 \"h\"; }",
    ));
    let get = |r: &mut BufReader<TcpStream>, path: &str| {
        let req = format!("GET {path} HTTP/1.1\r\nHost: c.test\r\n\r\n");
        r.get_mut().write_all(req.as_bytes()).unwrap();
        read_one(r)
    };
    let header = |head: &[String], name: &str| {
        head.iter().find_map(|h| {
            let (n, v) = h.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    // `/` keeps the connection; `/short` on the same connection closes it.
    let mut r = BufReader::new(connect(proxy.port));
    let (head, body) = get(&mut r, "/").expect("first response");
    assert_eq!(body, b"ok");
    assert_eq!(
        header(&head, "Connection").as_deref(),
        Some("keep-alive"),
        "{head:?}"
    );
    let (head, body) = get(&mut r, "/short").expect("second response");
    assert_eq!(body, b"s");
    assert_eq!(
        header(&head, "Connection").as_deref(),
        Some("close"),
        "{head:?}"
    );
    let mut rest = Vec::new();
    assert_eq!(r.read_to_end(&mut rest).unwrap(), 0, "closed after /short");
    // `/two`: the second request on the connection is its last.
    let mut r = BufReader::new(connect(proxy.port));
    let (head, _) = get(&mut r, "/two").expect("first /two");
    assert_eq!(
        header(&head, "Connection").as_deref(),
        Some("keep-alive"),
        "{head:?}"
    );
    let (head, _) = get(&mut r, "/two").expect("second /two");
    assert_eq!(
        header(&head, "Connection").as_deref(),
        Some("close"),
        "{head:?}"
    );
    // `/hdr`: the `Keep-Alive: timeout=25` header of its own keepalive_timeout.
    let mut r = BufReader::new(connect(proxy.port));
    let (head, _) = get(&mut r, "/hdr").expect("/hdr");
    assert_eq!(
        header(&head, "Keep-Alive").as_deref(),
        Some("timeout=25"),
        "{head:?}"
    );
    let (head, _) = get(&mut r, "/").expect("/ after /hdr");
    assert_eq!(header(&head, "Keep-Alive"), None, "{head:?}");
}
