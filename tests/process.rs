//! Process control: SIGQUIT is a graceful stop (no new connections, in-flight
//! requests finish), `-s stop` signals the running process through its pid file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

#[test]
fn sigquit_finishes_in_flight_requests_then_exits() {
    if product() == "nginx" {
        // The testkit runs nginx with `master_process off`, where SIGQUIT does not
        // wait for in-flight requests; this behaviour is checked on junction only.
        return;
    }
    let backend = Peer::python("sse.py", &[]);
    let mut proxy = Proxy::start(&fill(
        "server {
    listen 127.0.0.1:{PORT};
    location / {
        proxy_buffering off;
        proxy_pass http://127.0.0.1:{BACKEND};
    }
}
",
        &[("BACKEND", &backend.port)],
    ));
    let mut stream = http_stream(proxy.port, get_request("sse.test", "/events").as_bytes());
    stream.set_read_timeout(Duration::from_secs(15));
    assert_eq!(stream.head.status, 200);
    let first = stream.read_until(b"\n\n").expect("event one");
    assert_eq!(String::from_utf8_lossy(&first), "data: one\n\n");

    // A graceful stop while the response is in flight.
    proxy.signal("QUIT");
    // The listener goes away first (poll: the signal is asynchronous).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still accepting 5 s after SIGQUIT"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        proxy.wait_exit(Duration::from_millis(200)).is_none(),
        "must not exit with a request in flight"
    );

    // The in-flight response completes.
    let release = backend.request(get_request("sse", "/release").as_bytes());
    assert_eq!(release.text(), "released");
    let second = stream.read_until(b"\n\n").expect("event two after SIGQUIT");
    assert_eq!(String::from_utf8_lossy(&second), "data: two (released)\n\n");
    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .expect("exits once the last request is done");
    assert!(status.success(), "exit status {status}");
}

/// `-s reopen` / SIGUSR1 after a log rotation: new lines go to a fresh file.
#[test]
fn sigusr1_reopens_the_logs_after_rotation() {
    if product() == "nginx" {
        return; // the reference run uses its own log layout
    }
    let mut proxy = Proxy::start(
        "server {
    listen 127.0.0.1:{PORT};
    access_log {DIR}/rotate.log;
    location / { return 200 \"ok\"; }
}
",
    );
    let log = proxy.dir().join("rotate.log");
    assert_eq!(proxy.get("log.test", "/first").status, 200);
    wait_file_contains(&log, "GET /first");
    let rotated = proxy.dir().join("rotate.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    proxy.signal("USR1");
    // The reopen is asynchronous: a request after it lands in the new file.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut n = 0;
    while !log.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no new log file after SIGUSR1"
        );
        n += 1;
        assert_eq!(proxy.get("log.test", &format!("/probe{n}")).status, 200);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(proxy.get("log.test", "/second").status, 200);
    let fresh = wait_file_contains(&log, "GET /second");
    assert!(
        !fresh.contains("GET /first"),
        "the new file starts empty: {fresh}"
    );
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        old.contains("GET /first") && !old.contains("GET /second"),
        "{old}"
    );
    let _ = proxy.terminate(Duration::from_secs(5));
}

/// `-s reload` / SIGHUP: the file is read again; new connections use the new
/// configuration; a broken one is refused and the running configuration stays.
#[test]
fn sighup_reloads_the_configuration() {
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
    let text = |p: &Proxy| String::from_utf8_lossy(&p.get("reload.test", "/").body).into_owned();
    assert_eq!(text(&proxy), "one");
    let port_line = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .find(|l| l.contains("listen"))
        .unwrap()
        .to_string();
    let write = |body: &str| {
        let new = conf(body).replace("    listen 127.0.0.1:{PORT};", &port_line);
        std::fs::write(&file, new).unwrap();
    };
    let until = |p: &Proxy, want: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if text(p) == want {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never answered {want:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    write("two");
    proxy.signal("HUP");
    until(&proxy, "two");

    // A broken file is refused; the running configuration stays.
    std::fs::write(
        &file,
        "server { listen 127.0.0.1:1; bogus_directive on; }\n",
    )
    .unwrap();
    proxy.signal("HUP");
    proxy
        .wait_error_log("reload refused", Duration::from_secs(5))
        .expect("the refused reload is in the error log");
    assert_eq!(text(&proxy), "two");
}

/// `worker_processes`: nginx's default is 1; `N` starts N worker threads.
#[test]
fn worker_processes_sets_the_worker_threads() {
    if product() == "nginx" {
        return; // nginx runs worker processes, not threads
    }
    let workers = |main: &str| {
        let conf = format!(
            "{main}\nevents {{}}\nhttp {{ server {{ listen 127.0.0.1:{{PORT}}; location / {{ return 200 \"ok\"; }} }} }}\n"
        );
        let proxy = Proxy::start_files(&[("nginx.conf", &conf)], "nginx.conf");
        assert_eq!(proxy.get("w.test", "/").status, 200);
        let tasks = std::fs::read_dir(format!("/proc/{}/task", proxy.pid())).unwrap();
        tasks
            .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
            .filter(|c| c.starts_with("junction-worker"))
            .count()
    };
    assert_eq!(workers(""), 1, "nginx's default");
    assert_eq!(workers("worker_processes 2;"), 2);
    assert_eq!(workers("worker_processes 3;"), 3);
}
