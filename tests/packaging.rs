//! Running Junction as a service (issue 17, packaging): the systemd unit in
//! `deploy/systemd/` passes `systemd-analyze verify`; Junction speaks systemd's
//! readiness protocol (`Type=notify`: READY=1 once listening, RELOADING=1 + READY=1
//! around a reload, STOPPING=1) on a `$NOTIFY_SOCKET` the test provides, as systemd
//! would; the packaged and container configurations pass `-t`; the logrotate
//! snippet parses.
//!
//! nginx 1.22 has no readiness notification, so the notify test is Junction's only;
//! the configuration checks run against nginx too where nginx reads the file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn deploy(name: &str) -> String {
    let path = manifest_dir().join("deploy").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    // The unit names /usr/local/bin/junction, which verify wants to exist: point it at
    // the binary under test.
    let unit = deploy("systemd/junction.service")
        .replace("/usr/local/bin/junction", junction_bin().to_str().unwrap());
    assert!(
        unit.contains("Type=notify") && unit.contains("-s reload"),
        "{unit}"
    );
    let path = dir.path().join("junction.service");
    std::fs::write(&path, unit).unwrap();
    let out = run(Command::new("systemd-analyze").arg("verify").arg(&path));
    assert_eq!(
        out.code,
        Some(0),
        "systemd-analyze verify failed (apt-get install -y systemd):\n{}{}",
        out.stdout,
        out.stderr
    );
    // Problems in the unit (an unknown Type=, a bad key) are warnings on stderr.
    let ours: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("junction.service"))
        .collect();
    assert!(ours.is_empty(), "systemd-analyze: {ours:#?}");
}

/// Receives one datagram within `timeout`.
fn recv(sock: &UnixDatagram, timeout: Duration) -> String {
    sock.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 4096];
    match sock.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => panic!("no sd_notify message within {timeout:?}: {e}"),
    }
}

#[test]
fn sd_notify_ready_reloading_stopping() {
    if product() == "nginx" {
        eprintln!("nginx 1.22 has no sd_notify support: Junction-only test");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sock_path = d.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let port = free_port();
    let conf = d.join("junction.conf");
    std::fs::write(
        &conf,
        format!("server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"one\"; }} }}\n"),
    )
    .unwrap();
    let mut child = Command::new(junction_bin())
        .arg("-p")
        .arg(d)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(d.join("error.log"))
        .arg("-g")
        .arg(format!("pid {}/junction.pid;", d.display()))
        .env("NOTIFY_SOCKET", &sock_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();

    let ready = recv(&sock, Duration::from_secs(10));
    assert!(
        ready.lines().any(|l| l == "READY=1") && ready.contains(&format!("MAINPID={pid}")),
        "{ready:?}"
    );
    // READY=1 means serving: no retry loop needed.
    let r = http_request(
        port,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "one"));

    std::fs::write(
        &conf,
        format!("server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"two\"; }} }}\n"),
    )
    .unwrap();
    let kill = |sig: &str| {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(st.success());
    };
    kill("HUP");
    let reloading = recv(&sock, Duration::from_secs(10));
    assert!(
        reloading.lines().any(|l| l == "RELOADING=1")
            && reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    let ready = recv(&sock, Duration::from_secs(10));
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    let r = http_request(
        port,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "two"));

    kill("TERM");
    let stopping = recv(&sock, Duration::from_secs(10));
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "junction did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The packaged `/etc/junction/junction.conf` and the container's pass `-t` as shipped,
/// each installed (as `deploy/install.sh` would) next to a `mime.types`, with its log
/// and state directories moved into the test's temp dir (nginx's `-t` opens the log
/// and pid files).
#[test]
fn packaged_and_container_configs_pass_the_check() {
    let mut failures = Vec::new();
    for name in ["junction.conf", "docker/junction.conf"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let text = deploy(name)
            .replace("/var/log/junction", d)
            .replace("/var/lib/junction", d)
            .replace("/etc/junction/", &format!("{d}/"));
        std::fs::write(dir.path().join("junction.conf"), text).unwrap();
        std::fs::copy(
            manifest_dir().join("config/mime.types"),
            dir.path().join("mime.types"),
        )
        .unwrap();
        let out = check_config_file(&dir.path().join("junction.conf"));
        let all = format!("{}{}", out.stdout, out.stderr);
        if out.code != Some(0) || !all.contains("test is successful") {
            failures.push(format!("deploy/{name}: exit {:?}\n{all}", out.code));
        }
    }
    assert_table("deploy configs", &failures, 2);
}

/// The logrotate snippet parses and would rotate the files and run `-s reopen`.
#[test]
fn logrotate_snippet_parses() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let logs = d.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("access.log"), "line\n").unwrap();
    let snippet = deploy("logrotate/junction").replace("/var/log/junction", logs.to_str().unwrap());
    assert!(snippet.contains("-s reopen"), "{snippet}");
    let conf = d.join("junction.logrotate");
    std::fs::write(&conf, snippet).unwrap();
    let out = run(Command::new("logrotate")
        .arg("--debug")
        .arg("--state")
        .arg(d.join("state"))
        .arg(&conf));
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.code,
        Some(0),
        "logrotate (apt-get install -y logrotate):\n{all}"
    );
    assert!(!all.contains("error"), "{all}");
    assert!(all.contains("access.log"), "{all}");
}
