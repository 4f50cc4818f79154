//! Helpers for the `upstream {}` tests (`tests/upstream_*.rs`, issue 7):
//!
//! - [`Backend`]: a `tests/peers/ups_peer.py` process that answers with its own id and
//!   counts what it served ([`Backend::stats`]); [`Backend::kill`] / [`Backend::restart`]
//!   (same port) for failover; [`Backend::set_health`] flips its `/health` status.
//! - [`get_from`]: a GET from a chosen source address (127.0.x.y), for `ip_hash`.
//! - [`Nginx`]: the system nginx on the same `upstream`/`server` text, to compare
//!   Junction's picks with nginx's (skipped when nginx is not installed).
//! - [`Memcached`]: a memcached on a given or free port.
//! - [`FcgiGauge`]: a TCP relay in front of php-fpm that counts FastCGI requests in
//!   flight exactly (up from accept, down just before the END_REQUEST record is passed
//!   on, so its count never exceeds the proxy's own).
//!
//! No sleeps as synchronisation: readiness is a printed port or an accepted connection,
//! waiting for a probe polls a counter with a deadline.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use crate::common::{free_port, http_request, parse_json, Json, Peer, Response, READY_TIMEOUT};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------

/// One `ups_peer.py`.
pub struct Backend {
    pub id: String,
    pub port: u16,
    peer: Option<Peer>,
}

/// What a backend served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub hits: u64,
    pub posts: u64,
    pub health: u64,
}

impl Backend {
    pub fn start(id: &str) -> Backend {
        let peer = Peer::python("ups_peer.py", &["--id", id]);
        Backend {
            id: id.to_string(),
            port: peer.port,
            peer: Some(peer),
        }
    }

    /// `a`, `b`, `c`, …
    pub fn start_n(n: usize) -> Vec<Backend> {
        (0..n)
            .map(|i| Backend::start(&((b'a' + i as u8) as char).to_string()))
            .collect()
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills it (the port then refuses connections).
    pub fn kill(&mut self) {
        drop(self.peer.take());
        let deadline = Instant::now() + READY_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "backend {} still answers",
                self.id
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts it again on its port.
    pub fn restart(&mut self) {
        assert!(self.peer.is_none(), "restart of a running backend");
        let port = self.port.to_string();
        let peer = Peer::python("ups_peer.py", &["--id", &self.id, "--port", &port]);
        assert_eq!(peer.port, self.port);
        self.peer = Some(peer);
    }

    fn direct(&self, path: &str) -> Response {
        http_request(
            self.port,
            format!("GET {path} HTTP/1.1\r\nHost: peer\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    }

    pub fn stats(&self) -> Stats {
        let r = self.direct("/_stats");
        let j = parse_json(r.text().trim()).expect("stats JSON");
        let n = |k: &str| j.get(k).and_then(Json::as_u64).expect("counter");
        Stats {
            hits: n("hits"),
            posts: n("posts"),
            health: n("health"),
        }
    }

    pub fn reset(&self) {
        assert_eq!(self.direct("/_reset").status, 200);
    }

    /// Makes `/health` answer `code`.
    pub fn set_health(&self, code: u16) {
        assert_eq!(self.direct(&format!("/_health?code={code}")).status, 200);
    }

    /// Waits until its health endpoint was probed `more` more times than `since`.
    pub fn wait_probes(&self, since: u64, more: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let h = self.stats().health;
            if h >= since + more {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "backend {}: {} probes in {timeout:?}, want {}",
                self.id,
                h - since.min(h),
                more
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The backend id that answered (`X-Peer`, else the body's first line).
pub fn peer_of(r: &Response) -> String {
    r.header("X-Peer")
        .map(str::to_string)
        .unwrap_or_else(|| r.text().lines().next().unwrap_or_default().to_string())
}

/// `GET path` with `Connection: close`.
pub fn get(port: u16, path: &str) -> Response {
    http_request(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: ups.test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// `POST path` with a small body.
pub fn post(port: u16, path: &str) -> Response {
    http_request(
        port,
        format!(
            "POST {path} HTTP/1.1\r\nHost: ups.test\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        )
        .as_bytes(),
    )
}

/// A GET to 127.0.0.1:`port` from source address `src` (any 127.x.y.z works on Linux);
/// returns (status, answering peer).
pub fn get_from(src: Ipv4Addr, port: u16, path: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let std_stream = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().expect("socket");
        s.bind(SocketAddr::from((src, 0))).expect("bind source");
        let c = s
            .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .await
            .expect("connect");
        c.into_std().expect("into_std")
    });
    std_stream.set_nonblocking(false).expect("blocking");
    std_stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut s = std_stream;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: ups.test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("write");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let peer = text
        .lines()
        .find_map(|l| l.strip_prefix("X-Peer: "))
        .unwrap_or_default()
        .trim()
        .to_string();
    (status, peer)
}

/// `upstream NAME { server …; … }` for `backends` with per-server parameters and extra
/// block lines.
pub fn upstream_block(name: &str, servers: &[(&Backend, &str)], extra: &str) -> String {
    let mut s = format!("upstream {name} {{\n");
    for (b, params) in servers {
        s.push_str(&format!("    server {} {params};\n", b.addr()));
    }
    s.push_str(extra);
    s.push_str("\n}\n");
    s
}

/// A server block on `{PORT}` proxying `/` to upstream `name`, with extra location lines.
pub fn site(upstreams: &str, name: &str, location_extra: &str) -> String {
    format!(
        "{upstreams}
server {{
    listen 127.0.0.1:{{PORT}};
    server_name ups.test;
    location / {{
        proxy_pass http://{name};
        add_header X-Upstream $upstream_addr always;
        {location_extra}
    }}
}}
"
    )
}

// ---------------------------------------------------------------------------------------
// nginx, for comparison
// ---------------------------------------------------------------------------------------

/// The system nginx running a bare http-level config text (`{PORT}` is filled).
pub struct Nginx {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// `None` when nginx is not installed (the comparison is then skipped, said on stderr).
    pub fn start(site: &str) -> Option<Nginx> {
        let bin = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let dir = tempfile::Builder::new()
            .prefix("junction-ups-nginx-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path().display().to_string();
        let port = free_port();
        let conf = format!(
            "pid {d}/nginx.pid;\nerror_log {d}/error.log info;\nevents {{}}\nhttp {{\n\
             access_log off;\nclient_body_temp_path {d}/cb;\nproxy_temp_path {d}/pt;\n\
             fastcgi_temp_path {d}/ft;\nuwsgi_temp_path {d}/ut;\nscgi_temp_path {d}/st;\n{}\n}}\n",
            site.replace("{PORT}", &port.to_string())
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("nginx.conf");
        let child = Command::new(bin)
            .arg("-p")
            .arg(format!("{d}/"))
            .arg("-c")
            .arg(format!("{d}/nginx.conf"))
            .arg("-g")
            .arg("daemon off; master_process off;")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let mut n = Nginx {
            port,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = n.child.try_wait() {
                let log = std::fs::read_to_string(format!("{d}/error.log")).unwrap_or_default();
                panic!("nginx exited with {st}:\n{log}");
            }
            assert!(Instant::now() < deadline, "nginx not ready");
            thread::sleep(Duration::from_millis(20));
        }
        Some(n)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// FastCGI requests in flight
// ---------------------------------------------------------------------------------------

/// FastCGI record type END_REQUEST.
const FCGI_END_REQUEST: u8 = 3;

/// A relay 127.0.0.1:`port` → `target` that counts FastCGI requests in flight: +1 when a
/// connection is accepted (the proxy counted it before connecting), −1 just before the
/// END_REQUEST record is forwarded (the proxy releases it only after reading that).
pub struct FcgiGauge {
    pub port: u16,
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

/// Where the upstream→proxy stream is in FastCGI's framing.
struct RecordScan {
    header: Vec<u8>,
    /// Content + padding bytes left in the current record.
    left: usize,
    end_request: bool,
}

impl RecordScan {
    /// Feeds `data`; returns the offset just past the end of an END_REQUEST record, if
    /// this chunk completes one.
    fn feed(&mut self, data: &[u8]) -> Option<usize> {
        let mut i = 0;
        let mut done = None;
        while i < data.len() {
            if self.left == 0 && self.header.len() < 8 {
                self.header.push(data[i]);
                i += 1;
                if self.header.len() == 8 {
                    let h = &self.header;
                    self.end_request = h[1] == FCGI_END_REQUEST;
                    self.left = usize::from(u16::from_be_bytes([h[4], h[5]])) + usize::from(h[6]);
                    if self.left == 0 {
                        self.header.clear();
                        if self.end_request {
                            done = Some(i);
                        }
                    }
                }
                continue;
            }
            let take = self.left.min(data.len() - i);
            i += take;
            self.left -= take;
            if self.left == 0 {
                self.header.clear();
                if self.end_request {
                    done = Some(i);
                }
            }
        }
        done
    }
}

impl FcgiGauge {
    pub fn start(target: SocketAddr) -> FcgiGauge {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind gauge");
        let port = listener.local_addr().expect("addr").port();
        let now = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (n, m, st) = (now.clone(), max.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(down) = conn else { continue };
                let cur = n.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(cur, Ordering::SeqCst);
                let Ok(up) = TcpStream::connect(target) else {
                    n.fetch_sub(1, Ordering::SeqCst);
                    continue;
                };
                let (Ok(mut d_read), Ok(mut u_write)) = (down.try_clone(), up.try_clone()) else {
                    continue;
                };
                thread::spawn(move || {
                    let _ = std::io::copy(&mut d_read, &mut u_write);
                    let _ = u_write.shutdown(Shutdown::Write);
                });
                let n2 = n.clone();
                let (mut u_read, mut d_write) = (up, down);
                thread::spawn(move || {
                    let mut scan = RecordScan {
                        header: Vec::new(),
                        left: 0,
                        end_request: false,
                    };
                    let mut counted = true;
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        let k = match u_read.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(k) => k,
                        };
                        if scan.feed(&buf[..k]).is_some() && counted {
                            n2.fetch_sub(1, Ordering::SeqCst);
                            counted = false;
                        }
                        if d_write.write_all(&buf[..k]).is_err() {
                            break;
                        }
                    }
                    if counted {
                        n2.fetch_sub(1, Ordering::SeqCst);
                    }
                    let _ = d_write.shutdown(Shutdown::Write);
                });
            }
        });
        FcgiGauge {
            port,
            now,
            max,
            stop,
        }
    }

    /// The most requests seen in flight at once.
    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

impl Drop for FcgiGauge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

/// Runs `f(i)` for `i in 0..n` on `n` threads at once (released together).
pub fn concurrently<T: Send + 'static>(
    n: usize,
    f: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = Arc::new(f);
    let gate = Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (f, gate) = (f.clone(), gate.clone());
            thread::spawn(move || {
                gate.wait();
                f(i)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect()
}
