//! Listening and accepting: every listen address bound once per worker
//! (`SO_REUSEPORT`, so the kernel spreads connections over the workers), the
//! accept loop with `worker_connections` as nginx's cap per worker, and the
//! hand-off of each accepted socket to the HTTP/1 connection.
//!
//! A pre-HTTP step on the accepted stream (the PROXY protocol header, then the TLS
//! handshake of `crate::tls`) belongs in [`start`], before the connection starts.

use crate::build::{Listen, Runtime};
use crate::http1::conn::{self, Source};
use crate::serve::Stop;
use junction_config::model::{err, invalid};
use junction_config::tree::{ConfigError, Directive};
use junction_core::ctx::ConnInfo;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Connection serial numbers (`$connection`), unique across workers.
static CONNS: AtomicU64 = AtomicU64::new(0);

/// The `listen` parameters nginx applies to the socket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenOpts {
    /// `backlog=N` (511).
    pub backlog: Option<i32>,
    /// `so_keepalive=on|off|[idle]:[intvl]:[cnt]`.
    pub so_keepalive: Option<KeepaliveOpt>,
    /// `ipv6only=on|off` (on).
    pub ipv6only: Option<bool>,
    /// `bind`: a socket of its own even when a wildcard listen covers the address.
    pub bind: bool,
    /// `rcvbuf=SIZE`, `sndbuf=SIZE`.
    pub rcvbuf: Option<usize>,
    /// `sndbuf=SIZE`.
    pub sndbuf: Option<usize>,
    /// `reuseport` (Junction's workers always bind with `SO_REUSEPORT`).
    pub reuseport: bool,
    /// `deferred` (accepted; `TCP_DEFER_ACCEPT` is not set).
    pub deferred: bool,
}

/// `so_keepalive=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepaliveOpt {
    /// `off`.
    Off,
    /// `on`, or the TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT values given.
    On {
        /// Seconds idle before the first probe.
        idle: Option<u64>,
        /// Seconds between probes.
        intvl: Option<u64>,
        /// Probes before the connection is dropped.
        cnt: Option<u32>,
    },
}

impl ListenOpts {
    /// Parameters written on another `listen` of the same address add to these.
    pub(crate) fn merge(&mut self, o: &ListenOpts) {
        self.backlog = self.backlog.or(o.backlog);
        self.so_keepalive = self.so_keepalive.or(o.so_keepalive);
        self.ipv6only = self.ipv6only.or(o.ipv6only);
        self.bind |= o.bind;
        self.rcvbuf = self.rcvbuf.or(o.rcvbuf);
        self.sndbuf = self.sndbuf.or(o.sndbuf);
        self.reuseport |= o.reuseport;
        self.deferred |= o.deferred;
    }
}

/// The unix path of a `listen unix:PATH`.
pub(crate) fn unix_path(d: &Directive) -> Option<PathBuf> {
    d.args
        .first()
        .filter(|_| d.name == "listen")
        .and_then(|a| a.value.strip_prefix("unix:"))
        .map(PathBuf::from)
}

/// Reads the socket parameters of a `listen` directive (its address is read by
/// the build); an unknown parameter is an error with its `FILE:LINE`.
pub(crate) fn parse_params(d: &Directive) -> Result<(Option<PathBuf>, ListenOpts), ConfigError> {
    use junction_config::values::{parse_size, parse_time_secs};
    let mut o = ListenOpts::default();
    for p in d.args.iter().skip(1) {
        let v = p.value.as_str();
        let bad = || invalid(d, p);
        match v {
            "default_server" | "default" | "http2" | "ssl" | "quic" | "proxy_protocol" => {}
            "bind" => o.bind = true,
            "reuseport" => o.reuseport = true,
            "deferred" => o.deferred = true,
            _ => {
                if let Some(n) = v.strip_prefix("backlog=") {
                    o.backlog = Some(n.parse().map_err(|_| bad())?);
                } else if let Some(n) = v.strip_prefix("ipv6only=") {
                    o.ipv6only = Some(match n {
                        "on" => true,
                        "off" => false,
                        _ => return Err(bad()),
                    });
                } else if let Some(n) = v.strip_prefix("rcvbuf=") {
                    o.rcvbuf = Some(parse_size(n).ok_or_else(bad)? as usize);
                } else if let Some(n) = v.strip_prefix("sndbuf=") {
                    o.sndbuf = Some(parse_size(n).ok_or_else(bad)? as usize);
                } else if let Some(n) = v.strip_prefix("so_keepalive=") {
                    o.so_keepalive = Some(match n {
                        "on" => KeepaliveOpt::On {
                            idle: None,
                            intvl: None,
                            cnt: None,
                        },
                        "off" => KeepaliveOpt::Off,
                        spec => {
                            let mut it = spec.split(':');
                            let t = |s: Option<&str>| -> Result<Option<u64>, ConfigError> {
                                match s {
                                    None | Some("") => Ok(None),
                                    Some(x) => parse_time_secs(x).map(Some).ok_or_else(bad),
                                }
                            };
                            let idle = t(it.next())?;
                            let intvl = t(it.next())?;
                            let cnt = match it.next() {
                                None | Some("") => None,
                                Some(x) => Some(x.parse().map_err(|_| bad())?),
                            };
                            KeepaliveOpt::On { idle, intvl, cnt }
                        }
                    });
                } else {
                    return Err(err(&p.span, format!("invalid parameter \"{v}\"")));
                }
            }
        }
    }
    Ok((unix_path(d), o))
}

/// A bound listening socket.
#[derive(Debug)]
pub enum Bound {
    /// TCP.
    Tcp(std::net::TcpListener),
    /// A unix socket, with its path.
    Unix(std::os::unix::net::UnixListener, PathBuf),
}

/// Binds every listen address (a wildcard address covers the specific ones on the
/// same port, as nginx does, unless they say `bind`), once per worker: each worker
/// gets its own TCP sockets with SO_REUSEPORT, so the kernel spreads new
/// connections evenly over the workers; a unix socket is bound once and shared.
/// Returns one list of listeners per worker, to be served by [`serve`].
pub fn bind_all(rt: &Runtime, workers: usize) -> std::io::Result<Vec<Vec<Bound>>> {
    let mut out: Vec<Vec<Bound>> = (0..workers.max(1)).map(|_| Vec::new()).collect();
    for l in &rt.listens {
        if let Some(path) = &l.unix {
            let u = bind_unix(path, l.opts.backlog)?;
            for w in out.iter_mut() {
                w.push(Bound::Unix(u.try_clone()?, path.clone()));
            }
            continue;
        }
        let covered = !l.opts.bind
            && !l.addr.ip().is_unspecified()
            && rt.listens.iter().any(|o| {
                o.unix.is_none()
                    && o.addr.port() == l.addr.port()
                    && o.addr.ip().is_unspecified()
                    && o.addr.is_ipv4() == l.addr.is_ipv4()
            });
        if covered {
            continue;
        }
        for w in out.iter_mut() {
            w.push(Bound::Tcp(bind_one(l.addr, &l.opts)?));
        }
    }
    Ok(out)
}

pub(crate) fn bind_unix(
    path: &Path,
    backlog: Option<i32>,
) -> std::io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    // A socket file left by an earlier run that nobody listens on any more.
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if m.file_type().is_socket() && std::os::unix::net::UnixStream::connect(path).is_err() {
            let _ = std::fs::remove_file(path);
        }
    }
    let sock = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    let addr = socket2::SockAddr::unix(path)?;
    sock.bind(&addr).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("bind() to unix:{} failed ({})", path.display(), errno(&e)),
        )
    })?;
    sock.listen(backlog.unwrap_or(511))?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

pub(crate) fn bind_one(
    addr: SocketAddr,
    opts: &ListenOpts,
) -> std::io::Result<std::net::TcpListener> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(opts.ipv6only.unwrap_or(true))?;
    }
    if let Some(n) = opts.rcvbuf {
        sock.set_recv_buffer_size(n)?;
    }
    if let Some(n) = opts.sndbuf {
        sock.set_send_buffer_size(n)?;
    }
    match opts.so_keepalive {
        None => {}
        Some(KeepaliveOpt::Off) => sock.set_keepalive(false)?,
        Some(KeepaliveOpt::On { idle, intvl, cnt }) => {
            sock.set_keepalive(true)?;
            let mut k = socket2::TcpKeepalive::new();
            if let Some(t) = idle {
                k = k.with_time(Duration::from_secs(t));
            }
            if let Some(t) = intvl {
                k = k.with_interval(Duration::from_secs(t));
            }
            if let Some(c) = cnt {
                k = k.with_retries(c);
            }
            if idle.is_some() || intvl.is_some() || cnt.is_some() {
                sock.set_tcp_keepalive(&k)?;
            }
        }
    }
    sock.bind(&addr.into()).map_err(|e| {
        std::io::Error::new(e.kind(), format!("bind() to {addr} failed ({})", errno(&e)))
    })?;
    sock.listen(opts.backlog.unwrap_or(511))?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// An OS error as nginx writes it: `98: Address already in use`.
pub(crate) fn errno(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let text = e.to_string();
            let suffix = format!(" (os error {n})");
            format!("{n}: {}", text.strip_suffix(&suffix).unwrap_or(&text))
        }
        None => e.to_string(),
    }
}

/// Serves the bound listeners until `stop` says otherwise.
/// `config` carries the current runtime: a reload sends a new one, which every
/// connection takes at the start of its next request.
pub async fn serve(
    config: watch::Receiver<Arc<Runtime>>,
    listeners: Vec<Bound>,
    mut stop: watch::Receiver<Stop>,
) {
    let tracker = tokio_util::task::TaskTracker::new();
    let cap = config.borrow().main.worker_connections.max(1);
    let slots = Arc::new(Slots {
        free: Semaphore::new(cap),
        cap,
        drain: Arc::new(tokio::sync::Notify::new()),
        cache: Arc::default(),
    });
    for l in listeners {
        let config = config.clone();
        let stop = stop.clone();
        let tracker2 = tracker.clone();
        match l {
            Bound::Tcp(l) => {
                let Ok(l) = TcpListener::from_std(l) else {
                    continue;
                };
                tracker.spawn(accept_loop(config, l, stop, tracker2, slots.clone()));
            }
            Bound::Unix(l, path) => {
                let Ok(l) = tokio::net::UnixListener::from_std(l) else {
                    continue;
                };
                tracker.spawn(accept_unix(config, l, path, stop, tracker2, slots.clone()));
            }
        }
    }
    loop {
        if *stop.borrow() != Stop::Run {
            break;
        }
        if stop.changed().await.is_err() {
            break;
        }
    }
    if *stop.borrow() == Stop::Graceful {
        tracker.close();
        tracker.wait().await;
    }
}

pub(crate) async fn accept_loop(
    config: watch::Receiver<Arc<Runtime>>,
    l: TcpListener,
    mut stop: watch::Receiver<Stop>,
    tracker: tokio_util::task::TaskTracker,
    slots: Arc<Slots>,
) {
    let bound = l.local_addr().ok().filter(|a| !a.ip().is_unspecified());
    loop {
        // nginx's worker_connections: past the cap, stop accepting until one closes.
        let Some(permit) = slot(&slots, &mut stop).await else {
            return;
        };
        let accepted = tokio::select! {
            r = l.accept() => r,
            _ = stop.changed() => return,
        };
        let (stream, remote) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::error!("accept() failed ({e})");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // A listener on a specific address needs no getsockname() per connection.
        let local = match bound {
            Some(a) => a,
            None => stream.local_addr().unwrap_or(remote),
        };
        let id = CONNS.fetch_add(1, Ordering::Relaxed) + 1;
        let src = Source {
            config: config.clone(),
            stop: stop.clone(),
            unix: None,
            drain: slots.drain.clone(),
            cache: slots.cache.clone(),
            _slot: Some(permit),
        };
        // A connection with nothing before HTTP is spawned as the HTTP/1 connection's
        // future itself: no wrapper future around it (an idle keep-alive connection's
        // task is most of its memory).
        if pre_http(&config.borrow(), local) {
            // TLS (and what precedes HTTP) writes more than once before a response:
            // Nagle's algorithm is off from the start. A plain connection turns it off
            // when it first needs to (`Socket::set_nodelay`).
            let _ = stream.set_nodelay(true);
            tracker.spawn(start(stream, remote, local, id, src));
        } else {
            let info = Arc::new(ConnInfo {
                remote,
                local,
                scheme: "http",
                id,
                proxy_protocol: None,
                tls: None,
            });
            tracker.spawn(conn::serve(stream, info, src));
        }
    }
}

/// A worker's `worker_connections`: the free slots, and the signal that asks idle
/// keep-alive connections to give theirs back.
pub(crate) struct Slots {
    free: Semaphore,
    cap: usize,
    cache: Arc<std::sync::Mutex<conn::CurrentCache>>,
    drain: Arc<tokio::sync::Notify>,
}

/// A held slot.
pub(crate) struct Slot(Arc<Slots>);

impl Slots {
    /// A worker's `worker_connections` slots.
    pub(crate) fn new(cap: usize) -> Arc<Slots> {
        Arc::new(Slots {
            free: Semaphore::new(cap.max(1)),
            cap: cap.max(1),
            drain: Arc::new(tokio::sync::Notify::new()),
            cache: Arc::default(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.free.add_permits(1);
    }
}

/// Waits for a free `worker_connections` slot. With none free, as nginx's
/// `ngx_drain_connections`: the longest idle keep-alive connection is closed to
/// make room (`worker_connections are not enough, reusing connections`), and
/// accepting waits until some connection closes.
async fn slot(slots: &Arc<Slots>, stop: &mut watch::Receiver<Stop>) -> Option<Slot> {
    let mut logged = false;
    loop {
        if let Ok(p) = slots.free.try_acquire() {
            p.forget();
            return Some(Slot(slots.clone()));
        }
        if !logged {
            logged = true;
            tracing::warn!(
                "{} worker_connections are not enough, reusing connections",
                slots.cap
            );
        }
        slots.drain.notify_one();
        tokio::select! {
            p = slots.free.acquire() => {
                let p = p.ok()?;
                p.forget();
                return Some(Slot(slots.clone()));
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.changed() => return None,
        }
    }
}

/// The accept loop of a `listen unix:PATH` socket.
pub(crate) async fn accept_unix(
    config: watch::Receiver<Arc<Runtime>>,
    l: tokio::net::UnixListener,
    path: PathBuf,
    mut stop: watch::Receiver<Stop>,
    tracker: tokio_util::task::TaskTracker,
    slots: Arc<Slots>,
) {
    let path: Arc<Path> = Arc::from(path.as_path());
    // nginx's `$remote_addr` for a unix client is `unix:`; the address fields
    // hold a placeholder.
    let none = SocketAddr::from(([0, 0, 0, 0], 0));
    loop {
        let Some(permit) = slot(&slots, &mut stop).await else {
            return;
        };
        let accepted = tokio::select! {
            r = l.accept() => r,
            _ = stop.changed() => return,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::error!("accept() failed ({e})");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let id = CONNS.fetch_add(1, Ordering::Relaxed) + 1;
        let src = Source {
            config: config.clone(),
            stop: stop.clone(),
            unix: Some(path.clone()),
            drain: slots.drain.clone(),
            cache: slots.cache.clone(),
            _slot: Some(permit),
        };
        let info = Arc::new(ConnInfo {
            remote: none,
            local: none,
            scheme: "http",
            id,
            proxy_protocol: None,
            tls: None,
        });
        tracker.spawn(conn::serve(stream, info, src));
    }
}

/// Whether a connection accepted on `local` has work before HTTP (`proxy_protocol`,
/// the TLS handshake, or looking for the h2c preface under `http2`).
fn pre_http(rt: &Runtime, local: SocketAddr) -> bool {
    listen_for(rt, local).is_some_and(|l| l.proxy_protocol || l.tls.is_some())
        || crate::http2::h2c_timeout(rt, local).is_some()
}

/// One accepted TCP connection: the pre-HTTP hook's place, then HTTP/1.
async fn start(
    mut stream: tokio::net::TcpStream,
    remote: SocketAddr,
    local: SocketAddr,
    id: u64,
    src: Source,
) {
    // `listen … proxy_protocol`: the header comes before HTTP, within the default
    // server's client_header_timeout.
    let wants = {
        let rt = src.config.borrow();
        listen_for(&rt, local)
            .filter(|l| l.proxy_protocol)
            .map(|l| {
                l.servers
                    .get(l.default)
                    .and_then(|i| rt.servers.get(*i))
                    .map_or(Duration::from_secs(60), |s| s.client_header_timeout)
            })
    };
    let proxy_protocol = match wants {
        None => None,
        // Boxed: its buffers live only while the header is read, not in every
        // connection's task.
        Some(timeout) => match Box::pin(crate::proxy_protocol::read(&mut stream, timeout)).await {
            Ok(p) => p.map(Arc::new),
            Err(crate::proxy_protocol::Failure::Invalid(msg)) => {
                tracing::error!(
                    "*{id} {msg} while reading PROXY protocol, client: {}, server: {local}",
                    remote.ip()
                );
                return;
            }
            Err(crate::proxy_protocol::Failure::Gone(msg)) => {
                tracing::info!("*{id} {msg}, client: {}, server: {local}", remote.ip());
                return;
            }
        },
    };
    let info = ConnInfo {
        remote,
        local,
        scheme: "http",
        id,
        proxy_protocol,
        tls: None,
    };
    // `listen … ssl`: the TLS handshake, after the PROXY protocol header.
    let tls = listen_for(&src.config.borrow(), local).and_then(|l| l.tls.clone());
    if let Some(tls) = tls {
        // Boxed: a plain connection's task does not carry the TLS path's state.
        Box::pin(crate::tls::serve(stream, info, src, tls)).await;
        return;
    }
    let info = Arc::new(info);
    // `http2` on a plain listen: h2c with prior knowledge beside HTTP/1.1 (boxed, so
    // an HTTP/1 connection's task does not carry an HTTP/2 connection's state).
    let h2c = crate::http2::h2c_timeout(&src.config.borrow(), local);
    if let Some(timeout) = h2c {
        match Box::pin(crate::http2::sniff(&stream, timeout)).await {
            crate::http2::Sniffed::H2 => {
                return Box::pin(crate::http2::serve_h2(stream, info, src)).await
            }
            crate::http2::Sniffed::Gone => return,
            crate::http2::Sniffed::Http1 => {}
        }
    }
    conn::serve(stream, info, src).await;
}

/// The `listen` entry an accepted connection's local address belongs to.
pub(crate) fn listen_for(rt: &Runtime, local: SocketAddr) -> Option<&Listen> {
    rt.listens
        .iter()
        .filter(|l| l.unix.is_none())
        .find(|l| l.addr == local)
        .or_else(|| {
            rt.listens.iter().find(|l| {
                l.unix.is_none()
                    && l.addr.port() == local.port()
                    && l.addr.ip().is_unspecified()
                    && l.addr.is_ipv4() == local.is_ipv4()
            })
        })
        .or_else(|| {
            // IPv4-mapped on a v6 socket and similar: match by port.
            rt.listens
                .iter()
                .find(|l| l.unix.is_none() && l.addr.port() == local.port())
        })
}
