//! A real DNS server for the tests that change upstream addresses (`tests/dns_resolver.rs`,
//! `tests/deploy_replicas.rs`): Debian's `dnsmasq` on a free UDP port of 127.0.0.1,
//! answering only from its own hosts file (`--no-resolv --no-hosts --addn-hosts=FILE
//! --local=/test/`: a `*.test` name it does not know is NXDOMAIN), with its TTL set by
//! `--local-ttl` and every query logged (`--log-queries`). [`Dns::set`] rewrites the file
//! and sends SIGHUP, then waits for dnsmasq's `read FILE` log line (the readiness signal
//! of the change).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use crate::common::READY_TIMEOUT;
use std::fs;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A dnsmasq answering from its own hosts file.
pub struct Dns {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
    reads: std::cell::Cell<usize>,
}

pub fn dnsmasq_bin() -> PathBuf {
    for p in ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/sbin/dnsmasq"] {
        if std::path::Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "dnsmasq is needed for the DNS tests and was not found: install it with \
         `apt-get install -y dnsmasq-base` (scripts/install-test-deps.sh does)"
    );
}

/// A port on 127.0.0.1 that is free for both a UDP socket and a TCP listener.
fn udp_and_tcp_port() -> u16 {
    for _ in 0..100 {
        let Ok(udp) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(port) = udp.local_addr().map(|a| a.port()) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

fn hosts_text(records: &[(&str, &str)]) -> String {
    records
        .iter()
        .map(|(name, ip)| format!("{ip} {name}\n"))
        .collect()
}

impl Dns {
    /// Starts dnsmasq with `records` (name, IPv4) and answers' TTL `ttl` seconds.
    pub fn start(records: &[(&str, &str)], ttl: u32) -> Dns {
        let bin = dnsmasq_bin();
        let user = String::from_utf8(
            Command::new("id")
                .arg("-un")
                .output()
                .expect("id -un")
                .stdout,
        )
        .expect("utf-8 user name");
        let mut last = String::new();
        for _ in 0..20 {
            let dir = tempfile::Builder::new()
                .prefix("junction-dns-")
                .tempdir()
                .expect("temp dir");
            let hosts = dir.path().join("hosts");
            fs::write(&hosts, hosts_text(records)).expect("hosts");
            // A port free for UDP and TCP alike (dnsmasq binds both): probed by binding
            // both, then released for dnsmasq.
            let port = udp_and_tcp_port();
            let log = dir.path().join("dns.log");
            let child = Command::new(&bin)
                .args([
                    "--keep-in-foreground",
                    "--conf-file=/dev/null",
                    "--pid-file=",
                    "--bind-interfaces",
                    "--listen-address=127.0.0.1",
                    "--no-resolv",
                    "--no-hosts",
                    "--local=/test/",
                    "--log-queries",
                ])
                .arg(format!("--user={}", user.trim()))
                .arg(format!("--port={port}"))
                .arg(format!("--addn-hosts={}", hosts.display()))
                .arg(format!("--local-ttl={ttl}"))
                .arg(format!("--log-facility={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut dns = Dns {
                port,
                child,
                dir,
                reads: std::cell::Cell::new(0),
            };
            // Any failure to come up (most often the probed port taken for TCP by
            // another test between the probe and the bind) is tried again on a new port.
            match dns.wait_reads(1) {
                Ok(()) => return dns,
                Err(e) => last = e,
            }
        }
        panic!("dnsmasq did not start: {last}");
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("dns.log")).unwrap_or_default()
    }

    /// Waits until dnsmasq logged its `n`-th read of the hosts file.
    pub fn wait_reads(&mut self, n: usize) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let reads = self.log().matches("read ").count();
            if reads >= n {
                self.reads.set(reads);
                return Ok(());
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                return Err(format!("dnsmasq exited ({st}): {err}{}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("dnsmasq not ready:\n{}", self.log()));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Replaces the records and waits until dnsmasq reread them.
    pub fn set(&mut self, records: &[(&str, &str)]) {
        fs::write(self.dir.path().join("hosts"), hosts_text(records)).expect("hosts");
        let n = self.reads.get() + 1;
        let _ = Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .status();
        self.wait_reads(n).expect("dnsmasq reread its hosts file");
    }

    /// How many `A` queries for `name` dnsmasq answered.
    pub fn a_queries(&self, name: &str) -> usize {
        self.log().matches(&format!("query[A] {name} from")).count()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
