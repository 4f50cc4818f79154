//! Restarts that lose nothing (issue 17): a reload that changes the `listen` addresses
//! (new ones bound, kept ones untouched, removed ones closed once their requests
//! finish, a failed bind refusing the reload) and nginx's binary upgrade (`USR2`, then
//! `WINCH` and `QUIT` to the old master; a new binary that fails to start leaves the
//! old one running with its pid file). Every test runs against nginx too
//! (`JUNCTION_TEST_PROXY=nginx`, nginx with a master process); lines Junction adds to
//! the error log are checked on Junction only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod restart_kit;

use common::*;
use restart_kit::*;
use std::time::Duration;

/// A location answering `BODY`, and `/events` streamed from the sse peer (a request
/// that stays in flight until the test releases it).
fn servers(listens: &[&str], body: &str) -> String {
    let listens: String = listens
        .iter()
        .map(|l| format!("    listen 127.0.0.1:{{{l}}};\n"))
        .collect();
    format!(
        "server {{\n{listens}    location / {{ return 200 \"{body}\"; }}\n    \
         location /events {{ proxy_buffering off; proxy_pass http://127.0.0.1:{{BACKEND}}; }}\n}}"
    )
}

fn in_flight(port: u16) -> StreamingResponse {
    let mut s = http_stream(port, get_request("sse.test", "/events").as_bytes());
    s.set_read_timeout(Duration::from_secs(20));
    assert_eq!(s.head.status, 200);
    let first = s.read_until(b"\n\n").expect("event one");
    assert_eq!(String::from_utf8_lossy(&first), "data: one\n\n");
    s
}

fn finish(backend: &Peer, mut s: StreamingResponse) {
    let release = backend.request(get_request("sse", "/release").as_bytes());
    assert_eq!(release.text(), "released");
    let second = s.read_until(b"\n\n").expect("event two");
    assert_eq!(String::from_utf8_lossy(&second), "data: two (released)\n\n");
}

#[test]
fn reload_adding_a_listen_binds_it_and_keeps_the_others() {
    let backend = Peer::python("sse.py", &[]);
    let m = Master::start(&servers(&["PORT"], "one"), &[("BACKEND", &backend.port)]);
    let (p1, p2) = (m.ports[0], m.ports[1]);
    assert!(refused(p2));
    assert_eq!(body(p1, "/").unwrap(), "one");
    let stream = in_flight(p1);

    m.write(&servers(&["PORT", "PORT2"], "two"));
    m.reload();
    wait_until("the added port serves the new configuration", SLOW, || {
        body(p2, "/").is_ok_and(|b| b == "two")
    });
    // The kept port: new connections get the new configuration (nginx: once the old
    // worker has closed its listening sockets).
    wait_until("the kept port serves the new configuration", SLOW, || {
        body(p1, "/").is_ok_and(|b| b == "two")
    });
    // The request in flight on the kept port through the reload completes.
    finish(&backend, stream);
    if m.kind == Kind::Junction {
        let log = m.wait_log(&format!("listening on 127.0.0.1:{p2}"));
        assert!(!log.contains("stopped listening"), "{log}");
    }
}

#[test]
fn reload_removing_a_listen_closes_it_after_its_requests_finish() {
    let backend = Peer::python("sse.py", &[]);
    let m = Master::start(
        &servers(&["PORT", "PORT2"], "one"),
        &[("BACKEND", &backend.port)],
    );
    let (p1, p2) = (m.ports[0], m.ports[1]);
    assert_eq!(body(p2, "/").unwrap(), "one");
    let stream = in_flight(p2);

    m.write(&servers(&["PORT"], "two"));
    m.reload();
    wait_until("the removed port refuses connections", SLOW, || refused(p2));
    assert_eq!(body(p1, "/").unwrap(), "two", "{}", m.logs());
    // The request accepted on the removed port still completes.
    finish(&backend, stream);
    assert!(refused(p2));
    if m.kind == Kind::Junction {
        m.wait_log(&format!("stopped listening on 127.0.0.1:{p2}"));
    }
}

#[test]
fn reload_whose_bind_fails_is_refused_and_the_old_configuration_stays() {
    let backend = Peer::python("sse.py", &[]);
    // Someone else holds the port the new configuration wants.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().port();
    let m = Master::start(
        &servers(&["PORT"], "one"),
        &[("BACKEND", &backend.port), ("TAKEN", &taken)],
    );
    let p1 = m.ports[0];
    let mut conf = servers(&["PORT"], "two");
    conf = conf.replace(
        "    location / ",
        "    listen 127.0.0.1:{TAKEN};\n    location / ",
    );
    m.write(&conf);
    m.reload();
    let log = m.wait_log(&format!("bind() to 127.0.0.1:{taken} failed"));
    assert!(
        log.contains(&format!(
            "bind() to 127.0.0.1:{taken} failed (98: Address already in use)"
        )),
        "{log}"
    );
    // nginx tries the bind five times, half a second apart, before it gives up.
    m.wait_log(match m.kind {
        Kind::Junction => "reload refused",
        Kind::Nginx => "still could not bind()",
    });
    for _ in 0..3 {
        assert_eq!(body(p1, "/").unwrap(), "one", "the old configuration runs");
    }
    assert!(!m.error_log().contains("listening on 127.0.0.1"));
    drop(holder);
}

#[test]
fn usr2_starts_the_new_binary_and_winch_quit_retire_the_old_one() {
    let backend = Peer::python("sse.py", &[]);
    let conf = "server {\n    listen 127.0.0.1:{PORT};\n    location / { return 200 \"$pid\"; }\n    \
                location /events { proxy_buffering off; proxy_pass http://127.0.0.1:{BACKEND}; }\n}";
    let mut m = Master::start(conf, &[("BACKEND", &backend.port)]);
    let p = m.ports[0];
    let old = m.pid();
    let before = body(p, "/").unwrap();
    let stream = in_flight(p);

    let new = m.upgrade();
    assert_ne!(new, old);
    // Both serve on the same socket now.
    assert!(body(p, "/").is_ok());
    if m.kind == Kind::Junction {
        let log = m.wait_log("using inherited sockets");
        assert!(
            log.contains(&format!("start new binary process {new}")),
            "{log}"
        );
        // Junction's `$pid` is the master's: the new one answers some requests.
        wait_until("the new binary answers", SLOW, || {
            body(p, "/").is_ok_and(|b| b == new.to_string())
        });
    }

    // The old master's workers stop accepting and finish.
    m.signal("WINCH");
    // The old workers' line once they stopped accepting (nginx's too).
    m.wait_log("gracefully shutting down");
    if m.kind == Kind::Junction {
        for _ in 0..5 {
            assert_eq!(
                body(p, "/").unwrap(),
                new.to_string(),
                "only the new one accepts"
            );
        }
    }
    // The request the old binary had in flight completes.
    finish(&backend, stream);
    m.signal("QUIT");
    let status = m.wait_exit(SLOW).expect("the old master exits on QUIT");
    if let Some(s) = status {
        assert!(s.success(), "{s}");
    }
    assert!(
        !m.oldbin().exists(),
        "PID.oldbin is removed by the old master"
    );
    assert_eq!(m.read_pid(&m.pid_file()), Some(new));
    assert!(alive(new));
    let after = body(p, "/").unwrap();
    assert_ne!(after, before, "another process answers");
    if m.kind == Kind::Junction {
        assert_eq!(after, new.to_string());
    }
}

#[test]
fn usr2_with_a_new_binary_that_fails_keeps_the_old_one_and_its_pid_file() {
    let m = Master::start(
        "server { listen 127.0.0.1:{PORT}; location / { return 200 \"one\"; } }",
        &[],
    );
    let p = m.ports[0];
    let old = m.pid();
    // The new binary reads the configuration again: a broken one stops it.
    m.write("server { listen 127.0.0.1:{PORT}; bogus_directive on; }");
    m.signal("USR2");
    let log = m.wait_log("new binary process ");
    let log = if log.contains("exited with code") {
        log
    } else {
        m.wait_log("exited with code")
    };
    assert!(log.contains("exited with code 1"), "{log}");
    wait_until("the pid file is renamed back", SLOW, || {
        m.read_pid(&m.pid_file()) == Some(old) && !m.oldbin().exists()
    });
    assert_eq!(body(p, "/").unwrap(), "one");
    assert!(alive(old));
}

#[test]
fn rollback_hup_to_the_old_master_takes_over_again_and_quit_retires_the_new_one() {
    let mut m = Master::start(
        "server { listen 127.0.0.1:{PORT}; location / { return 200 \"$pid\"; } }",
        &[],
    );
    let p = m.ports[0];
    let old = m.pid();
    let new = m.upgrade();
    m.signal("WINCH");
    let starts = |m: &Master| m.error_log().matches("start worker processes").count();
    let before = starts(&m);
    // The old workers' line once they stopped accepting (nginx's too).
    m.wait_log("gracefully shutting down");
    // The new binary misbehaves: the old master starts workers again (on the
    // configuration it has), and the new one is told to quit.
    m.signal("HUP");
    wait_until("the old master's new workers", SLOW, || starts(&m) > before);
    kill(new, "QUIT");
    wait_until("the new master exits", SLOW, || !alive(new));
    wait_until("the pid file names the old master again", SLOW, || {
        m.read_pid(&m.pid_file()) == Some(old) && !m.oldbin().exists()
    });
    let b = body(p, "/").unwrap();
    if m.kind == Kind::Junction {
        assert_eq!(b, old.to_string());
    }
    assert!(
        m.wait_exit(Duration::from_millis(100)).is_none(),
        "the old master runs on"
    );
}

/// systemd (`Type=notify`, `NotifyAccess=all`): the new master of an upgrade says it is
/// the main process and ready; the old one, exiting after it, does not say STOPPING=1.
#[test]
fn upgrade_under_systemd_notify_hands_over_the_main_pid() {
    if product() == "nginx" {
        eprintln!("nginx 1.22 has no sd_notify support: Junction-only test");
        return;
    }
    let sock_dir = tempfile::tempdir().unwrap();
    let sock_path = sock_dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(SLOW)).unwrap();
    let recv = || {
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("an sd_notify message");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut m = Master::start_env(
        "worker_processes 1;",
        "server { listen 127.0.0.1:{PORT}; location / { return 200 \"$pid\"; } }",
        &[],
        &[("NOTIFY_SOCKET", &sock_path)],
    );
    let old = m.pid();
    let first = recv();
    assert!(
        first.contains(&format!("MAINPID={old}")) && first.contains("READY=1"),
        "{first}"
    );
    let new = m.upgrade();
    let mut msg = recv();
    while !msg.contains("MAINPID=") {
        msg = recv();
    }
    assert!(
        msg.contains(&format!("MAINPID={new}")) && msg.contains("READY=1"),
        "{msg}"
    );
    m.signal("WINCH");
    m.signal("QUIT");
    m.wait_exit(SLOW).expect("the old master exits");
    // Whatever the old master sent is queued by now.
    sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        let rest = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(!rest.contains("STOPPING=1"), "the old master said {rest:?}");
    }
    assert_eq!(body(m.ports[0], "/").unwrap(), new.to_string());
}

/// `GET /` over a unix socket: the body of a 200, or why not.
fn unix_body(path: &std::path::Path) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: unix.test\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out).into_owned();
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        _ => Err(text),
    }
}

#[test]
fn reload_adds_and_removes_a_unix_listen_and_deletes_its_file() {
    let conf = |unix: bool, body: &str| {
        let extra = if unix {
            "    listen unix:{DIR}/app.sock;\n"
        } else {
            ""
        };
        format!(
            "server {{\n    listen 127.0.0.1:{{PORT}};\n{extra}    location / {{ return 200 \"{body}\"; }}\n}}"
        )
    };
    let m = Master::start(&conf(false, "one"), &[]);
    let sock = m.path("app.sock");
    m.write(&conf(true, "two"));
    m.reload();
    wait_until("the unix socket serves", SLOW, || {
        unix_body(&sock).is_ok_and(|b| b == "two")
    });
    m.write(&conf(false, "three"));
    m.reload();
    wait_until("the unix socket's file is deleted", SLOW, || !sock.exists());
    assert!(unix_body(&sock).is_err());
    wait_until("the TCP port serves the last configuration", SLOW, || {
        body(m.ports[0], "/").is_ok_and(|b| b == "three")
    });
    m.wait_log(&format!("deleting socket {}", sock.display()));
}

#[test]
fn a_unix_listen_serves_through_a_binary_upgrade() {
    let mut m = Master::start(
        "server {\n    listen 127.0.0.1:{PORT};\n    listen unix:{DIR}/app.sock;\n    \
         location / { return 200 \"$pid\"; }\n}",
        &[],
    );
    let sock = m.path("app.sock");
    let before = unix_body(&sock).unwrap();
    let new = m.upgrade();
    assert!(unix_body(&sock).is_ok());
    m.signal("WINCH");
    m.wait_log("gracefully shutting down");
    m.signal("QUIT");
    m.wait_exit(SLOW).expect("the old master exits");
    // The old master leaves the socket file to the new one.
    let after = unix_body(&sock).unwrap();
    assert_ne!(after, before);
    if m.kind == Kind::Junction {
        assert_eq!(after, new.to_string());
        assert!(m.error_log().contains(&format!(
            "using 1 inherited socket(s) for unix:{}",
            sock.display()
        )));
    }
}

/// Each worker has its own `SO_REUSEPORT` socket per address: the new binary keeps all
/// of the old one's (fewer workers: some serve two), so none is left with connections
/// that nobody accepts once the old master is gone.
#[test]
fn an_upgrade_to_fewer_workers_serves_every_inherited_socket() {
    let conf = "server { listen 127.0.0.1:{PORT}; location / { return 200 \"$pid\"; } }";
    let mut m = Master::start_env("worker_processes 3;", conf, &[], &[]);
    let p = m.ports[0];
    m.set_main("worker_processes 2;");
    m.write(conf);
    let new = m.upgrade();
    m.signal("WINCH");
    m.wait_log("gracefully shutting down");
    m.signal("QUIT");
    m.wait_exit(SLOW).expect("the old master exits");
    if m.kind == Kind::Junction {
        assert!(m
            .error_log()
            .contains(&format!("using 3 inherited socket(s) for 127.0.0.1:{p}")));
    }
    // New connections spread over the three sockets by the kernel's hash: each
    // is answered (a socket nobody accepts on would leave its share hanging).
    for i in 0..60 {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], p));
        let mut s = http_stream_to(addr, get_request("w.test", "/").as_bytes())
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        s.set_read_timeout(Duration::from_secs(5));
        assert_eq!(s.head.status, 200, "connection {i}");
        let b = s.read_to_end().unwrap();
        if m.kind == Kind::Junction {
            assert_eq!(String::from_utf8_lossy(&b), new.to_string());
        }
    }
}

/// The backlog of a listening socket on 127.0.0.1:port, as `ss` shows it (Send-Q).
fn backlog(port: u16) -> Option<u32> {
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss is needed for this test (apt-get install -y iproute2)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.contains(&format!("127.0.0.1:{port}")))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
}

#[test]
fn reload_applies_a_new_backlog_to_the_kept_socket() {
    let conf = |n: u32| {
        format!(
            "server {{ listen 127.0.0.1:{{PORT}} backlog={n}; location / {{ return 200 \"{n}\"; }} }}"
        )
    };
    let m = Master::start(&conf(100), &[]);
    let p = m.ports[0];
    assert_eq!(backlog(p), Some(100));
    m.write(&conf(200));
    m.reload();
    wait_until("the new configuration answers", SLOW, || {
        body(p, "/").is_ok_and(|b| b == "200")
    });
    wait_until("the kept socket's backlog is 200", SLOW, || {
        backlog(p) == Some(200)
    });
}

/// A reload that changes `worker_processes` starts that many workers and retires the
/// old ones gracefully (nginx starts new worker processes; Junction's are threads).
#[test]
fn reload_changing_worker_processes_starts_the_new_count() {
    if product() == "nginx" {
        return; // nginx runs worker processes, not threads: Junction-only
    }
    let conf = "server { listen 127.0.0.1:{PORT}; location / { return 200 \"ok\"; } }";
    let m = Master::start_env("worker_processes 1;", conf, &[], &[]);
    let workers = || {
        std::fs::read_dir(format!("/proc/{}/task", m.pid()))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|c| c.starts_with("junction-worker"))
            .count()
    };
    assert_eq!(workers(), 1);
    m.set_main("worker_processes 3;");
    m.write(conf);
    m.reload();
    m.wait_log("reconfiguring: 3 worker processes");
    wait_until("three worker threads, the old one gone", SLOW, || {
        workers() == 3
    });
    for _ in 0..20 {
        assert_eq!(body(m.ports[0], "/").unwrap(), "ok");
    }
    m.set_main("worker_processes 2;");
    m.write(conf);
    m.reload();
    wait_until("two worker threads", SLOW, || workers() == 2);
    // Three sockets, two workers: every socket is served.
    for i in 0..60 {
        assert_eq!(body(m.ports[0], "/").unwrap(), "ok", "connection {i}");
    }
}

/// TERM to an old master whose workers are still finishing after WINCH stops it at once:
/// the request it had in flight is cut, the new binary serves on.
#[test]
fn term_after_winch_stops_the_old_master_at_once() {
    let backend = Peer::python("sse.py", &[]);
    let mut m = Master::start(
        "server {\n    listen 127.0.0.1:{PORT};\n    location / { return 200 \"$pid\"; }\n    \
         location /events { proxy_buffering off; proxy_pass http://127.0.0.1:{BACKEND}; }\n}",
        &[("BACKEND", &backend.port)],
    );
    let mut stream = in_flight(m.ports[0]);
    m.upgrade();
    m.signal("WINCH");
    m.wait_log("gracefully shutting down");
    m.signal("TERM");
    // The backend holds the response for 5 s: the old master does not wait for it.
    m.wait_exit(Duration::from_secs(4))
        .expect("the old master exits on TERM without finishing the request");
    let release = backend.request(get_request("sse", "/release").as_bytes());
    assert_eq!(
        release.text(),
        "released",
        "event two was not sent before the exit"
    );
    let rest = stream.read_to_end().unwrap_or_default();
    assert!(
        !contains(&rest, b"data: two"),
        "the request was cut: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(body(m.ports[0], "/").is_ok(), "the new binary serves");
}

/// A second upgrade, from the binary the first one started (once its old master is
/// gone), works the same way; while the old master runs, the new one ignores USR2.
#[test]
fn a_second_upgrade_from_the_new_binary_works() {
    let mut m = Master::start(
        "server { listen 127.0.0.1:{PORT}; location / { return 200 \"$pid\"; } }",
        &[],
    );
    let p = m.ports[0];
    let second = m.upgrade();
    // The new master ignores USR2 while the old one runs (nginx: "the changing binary
    // signal is ignored").
    kill(second, "USR2");
    let log = m.wait_log(", ignoring");
    assert!(log.contains("(SIGUSR2) received"), "{log}");
    m.signal("WINCH");
    m.signal("QUIT");
    m.wait_exit(SLOW).expect("the first master exits");
    assert_eq!(m.read_pid(&m.pid_file()), Some(second));
    assert!(!m.oldbin().exists(), "the ignored USR2 renamed nothing");
    kill(second, "USR2");
    let mut third = None;
    wait_until("the third master's pid file", SLOW, || {
        third = m.read_pid(&m.pid_file()).filter(|p| *p != second);
        third.is_some()
    });
    let third = third.unwrap();
    assert_eq!(m.read_pid(&m.oldbin()), Some(second));
    kill(second, "WINCH");
    kill(second, "QUIT");
    wait_until("the second master exits", SLOW, || !alive(second));
    assert!(!m.oldbin().exists());
    assert_eq!(m.read_pid(&m.pid_file()), Some(third));
    let b = body(p, "/").unwrap();
    if m.kind == Kind::Junction {
        assert_eq!(b, third.to_string());
    }
}

/// A reload with another `pid` path writes the pid file there and removes the old one
/// (nginx's ngx_init_cycle).
#[test]
fn reload_with_another_pid_path_moves_the_pid_file() {
    let conf = "server { listen 127.0.0.1:{PORT}; location / { return 200 \"ok\"; } }";
    let m = Master::start(conf, &[]);
    let moved = m.path("moved.pid");
    // The main context's `pid` comes from the template: point it elsewhere.
    let text = std::fs::read_to_string(m.conf()).unwrap().replace(
        &format!("pid {};", m.pid_file().display()),
        &format!("pid {};", moved.display()),
    );
    std::fs::write(m.conf(), text).unwrap();
    // `-s reload` would look for the master in the new path: signal it directly.
    m.signal("HUP");
    wait_until("the pid file at the new path", SLOW, || {
        m.read_pid(&moved) == Some(m.pid())
    });
    wait_until("the old pid file removed", SLOW, || !m.pid_file().exists());
    assert_eq!(body(m.ports[0], "/").unwrap(), "ok");
}
