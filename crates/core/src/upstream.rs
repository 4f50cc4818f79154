//! Upstream servers: addresses (TCP and unix sockets), connecting with a source
//! address (`*_bind`) and `*_connect_timeout`, the keepalive pool, and server
//! groups (`upstream {}` blocks and the implicit group of a `*_pass` host name).
//! Written once, used by every protocol.
//!
//! A [`Group`] holds its servers (primaries, then backups), the balancing method
//! ([`Balance`], run by `balance.rs`), the passive-health state of each server
//! (`max_fails` within `fail_timeout`, exactly as nginx), the `queue` for requests
//! that find every server at `max_conns`, and the probe its active health check uses
//! (`health.rs`). Every counter is in [`ServerStats`] / [`GroupStats`]; [`Group::snapshot`]
//! reads them all.
//!
//! Per request: [`Group::select`] returns an [`InUse`] (the server's `active` count is
//! held until it is dropped), the exchange reports the outcome with [`Group::report`].
//!
//! Two kinds of group change their servers while running, and the exchange asks
//! [`Group::for_request`] for the group to use: a *resolving* group (`server … resolve`,
//! `discovery.rs`) is a shell whose current *generation* — an ordinary group, rebuilt
//! when DNS answers change, sharing the [`Server`]s that stay and carrying over their
//! balancing state — serves each request (all of its tries); the stand-in of a `*_pass`
//! with variables ([`Group::per_request`]) evaluates its value into an `upstream` or
//! the addresses of a host (`resolver.rs`). Anything that lists servers (health
//! checks, metrics) reads [`Group::current`].

use crate::balance::{failed, select, Balance, PeerState, Pick, PickState};
use crate::error::{Error, ErrorKind};
use crate::health::{HealthCheck, Probe};
use crate::upstream_tls::TlsTarget;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream, UnixStream};
use tokio::sync::Notify;

/// Where an upstream server listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerAddr {
    /// TCP address.
    Tcp(SocketAddr),
    /// Unix-domain socket path.
    Unix(PathBuf),
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerAddr::Tcp(a) => write!(f, "{a}"),
            PeerAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A connection to an upstream.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix socket.
    Unix(UnixStream),
    /// TLS over either (`proxy_pass https://…`, `upstream_tls`).
    Tls(Box<tokio_rustls::client::TlsStream<Stream>>),
}

impl Stream {
    /// Sets TCP_NODELAY on the TCP socket underneath.
    pub fn set_nodelay(&self) {
        match self {
            Stream::Tcp(s) => {
                let _ = s.set_nodelay(true);
            }
            Stream::Unix(_) => {}
            Stream::Tls(t) => t.get_ref().0.set_nodelay(),
        }
    }

    /// Whether the idle connection was closed (or sent unexpected bytes) by the peer.
    pub fn is_stale(&self) -> bool {
        let mut b = [0u8; 1];
        let r = match self {
            Stream::Tcp(s) => s.try_read(&mut b),
            Stream::Unix(s) => s.try_read(&mut b),
            // Any record (a close_notify included) on an idle TLS connection ends it.
            Stream::Tls(s) => return s.get_ref().0.is_stale(),
        };
        !matches!(r, Err(ref e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            // A peer that closes without close_notify ends the stream, as nginx reads it
            // (SSL_OP_IGNORE_UNEXPECTED_EOF).
            Stream::Tls(s) => match Pin::new(s).poll_read(cx, buf) {
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    Poll::Ready(Ok(()))
                }
                other => other,
            },
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Connects to `addr` within `timeout`, binding the source address first when `bind` is set.
pub async fn connect(
    addr: &PeerAddr,
    bind: Option<IpAddr>,
    timeout: Duration,
) -> Result<Stream, Error> {
    let fut = async {
        match addr {
            PeerAddr::Tcp(sa) => {
                let sock = if sa.is_ipv4() {
                    TcpSocket::new_v4()
                } else {
                    TcpSocket::new_v6()
                }?;
                if let Some(ip) = bind {
                    sock.bind(SocketAddr::new(ip, 0))?;
                }
                // Nagle's algorithm stays on until a request needs a second write
                // (nginx sets no TCP_NODELAY on a plain upstream connection either).
                let s = sock.connect(*sa).await?;
                Ok::<_, io::Error>(Stream::Tcp(s))
            }
            PeerAddr::Unix(p) => Ok(Stream::Unix(UnixStream::connect(p).await?)),
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(Error::new(
            ErrorKind::Connect,
            // nginx's words; the peer is the log line's `upstream:` field.
            format!(
                "connect() failed ({}) while connecting to upstream",
                crate::error::os_error_text(&e)
            ),
        )),
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            "upstream timed out (110: Connection timed out) while connecting to upstream"
                .to_string(),
        )),
    }
}

/// Keepalive settings of a group (`keepalive`, `keepalive_timeout`, `keepalive_requests`,
/// `keepalive_time`).
#[derive(Debug, Clone, Copy)]
pub struct KeepaliveConf {
    /// Idle connections kept per server (0 = no pooling).
    pub max_idle: usize,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// Requests per connection before it is closed.
    pub max_requests: u64,
    /// Total lifetime of a connection.
    pub max_time: Duration,
}

impl Default for KeepaliveConf {
    fn default() -> Self {
        KeepaliveConf {
            max_idle: 32,
            idle_timeout: Duration::from_secs(60),
            max_requests: 1000,
            max_time: Duration::from_secs(3600),
        }
    }
}

/// A pooled connection with its bookkeeping.
#[derive(Debug)]
pub struct Conn {
    /// The socket.
    pub stream: Stream,
    /// Requests carried so far.
    pub requests: u64,
    /// When it was opened.
    pub born: Instant,
    /// Whether it came from the pool (a failure before any response byte may be retried).
    pub reused: bool,
    idle_since: Instant,
    bind: Option<IpAddr>,
    tls: Option<TlsTarget>,
    /// Whether Nagle's algorithm is off on it (`Conn::nodelay`).
    nodelay: bool,
}

impl Conn {
    /// Turns Nagle's algorithm off, once: before a request's second write (a small
    /// write would otherwise wait for the first one's acknowledgement), and for an
    /// upgraded connection. A TLS connection has it off from the connect.
    pub fn nodelay(&mut self) {
        if !self.nodelay {
            self.stream.set_nodelay();
            self.nodelay = true;
        }
    }
}

/// One upstream server: its `server` line parameters and its live counters.
#[derive(Debug)]
pub struct Server {
    /// Its address.
    pub addr: PeerAddr,
    /// Its display name (`$upstream_addr`).
    pub name: String,
    /// The `server` argument as written (what `hash … consistent` hashes, as nginx).
    pub label: String,
    /// `weight` (round robin, least_conn, hash, random).
    pub weight: u32,
    /// `max_fails` (0: failures are not counted).
    pub max_fails: u32,
    /// `fail_timeout`.
    pub fail_timeout: Duration,
    /// `backup`: used only when no primary is usable.
    pub backup: bool,
    /// `down`: never used.
    pub down: bool,
    /// `max_conns` (0: unlimited).
    pub max_conns: usize,
    idle: Arc<Mutex<Idle>>,
    /// Removed from its group by a DNS change (`server … resolve`): its connections
    /// are not pooled any more.
    pub(crate) retired: AtomicBool,
    /// The counters (one place, for the error log now and a metrics endpoint later).
    pub stats: ServerStats,
}

/// Live counters of one server. `active` is the number of connections in use by
/// requests (what `max_conns` and `least_conn` read); the rest only grow.
#[derive(Debug)]
pub struct ServerStats {
    /// Connections in use now.
    pub active: AtomicUsize,
    /// Requests sent (attempts).
    pub requests: AtomicU64,
    /// Attempts that failed (`*_next_upstream` failures: errors, timeouts, bad statuses).
    pub fails: AtomicU64,
    /// Times passive health took the server out (`max_fails` reached).
    pub disabled: AtomicU64,
    /// Whether active health checks have it in service (true without `health_check`).
    pub healthy: AtomicBool,
    /// Health probes run.
    pub checks: AtomicU64,
    /// Health probes that failed.
    pub check_fails: AtomicU64,
    /// Consecutive probe results (fails, passes) for the `fails=`/`passes=` thresholds.
    pub(crate) streak: Mutex<(u32, u32)>,
    /// Responses by status class (`1xx` … `5xx`; no response counts as a 502, as
    /// `$upstream_status` writes it).
    pub responses: [AtomicU64; 5],
    /// Time from the start of the attempt to its response (or failure).
    pub response_time: crate::stats::Histogram,
    /// Bytes to and from it, header times, last selection (the JSON API's peers).
    pub traffic: crate::stats::PeerTraffic,
}

impl ServerStats {
    /// Records one finished attempt (from the request's `$upstream_*` record).
    pub fn record_attempt(&self, status: Option<u16>, took: Duration) {
        if let Some(c) = self
            .responses
            .get(crate::stats::status_class(status.unwrap_or(502)))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.response_time.observe(took);
    }
}

impl Default for ServerStats {
    fn default() -> Self {
        ServerStats {
            active: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            fails: AtomicU64::new(0),
            disabled: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            checks: AtomicU64::new(0),
            check_fails: AtomicU64::new(0),
            streak: Mutex::new((0, 0)),
            responses: Default::default(),
            response_time: crate::stats::Histogram::default(),
            traffic: crate::stats::PeerTraffic::default(),
        }
    }
}

impl Server {
    /// A server with nginx's default parameters.
    pub fn new(addr: PeerAddr) -> Self {
        let name = addr.to_string();
        Server {
            addr,
            label: name.clone(),
            name,
            weight: 1,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            backup: false,
            down: false,
            max_conns: 0,
            idle: Arc::default(),
            retired: AtomicBool::new(false),
            stats: ServerStats::default(),
        }
    }

    /// A server at `addr` with the `server` line parameters of `proto` (the addresses
    /// of one name share its line).
    pub fn like(proto: &Server, addr: PeerAddr) -> Server {
        let mut s = Server::new(addr);
        s.label = proto.label.clone();
        s.weight = proto.weight;
        s.max_fails = proto.max_fails;
        s.fail_timeout = proto.fail_timeout;
        s.max_conns = proto.max_conns;
        s.backup = proto.backup;
        s.down = proto.down;
        s
    }

    /// Takes it out for good (its address left the DNS answer): idle keep-alive
    /// connections are closed now, and none is pooled again.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        lock(&self.idle).conns.clear();
    }

    /// Connections in use now.
    pub fn active(&self) -> usize {
        self.stats.active.load(Ordering::Relaxed)
    }

    /// Whether active health checks have it in service.
    pub fn healthy(&self) -> bool {
        self.stats.healthy.load(Ordering::Relaxed)
    }

    /// Whether it is at `max_conns`.
    pub fn at_max_conns(&self) -> bool {
        self.max_conns != 0 && self.active() >= self.max_conns
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// `queue N [timeout=T]` (beyond nginx OSS): requests wait for a server below
/// `max_conns` instead of failing.
#[derive(Debug, Clone, Copy)]
pub struct QueueConf {
    /// Requests that may wait at once.
    pub max: usize,
    /// How long one may wait.
    pub timeout: Duration,
}

/// How an attempt ended, for passive health (nginx's `NGX_PEER_FAILED` / `NGX_PEER_NEXT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response was taken.
    Ok,
    /// An error, a timeout, an invalid header, or a retried 5xx/429: counts toward `max_fails`.
    Failed,
    /// A retried 403/404: not a failure.
    Next,
}

/// Counters of a group as a whole.
#[derive(Debug, Default)]
pub struct GroupStats {
    /// Requests waiting in the queue now.
    pub queued: AtomicUsize,
    /// Requests that waited in the queue.
    pub queued_total: AtomicU64,
    /// Requests refused because the queue was full or their wait timed out (503).
    pub queue_rejected: AtomicU64,
    /// Selections that found no live server (502).
    pub no_live: AtomicU64,
}

/// Everything an `upstream {}` block (or an implicit group) is built from.
#[derive(Debug, Default)]
pub struct GroupSpec {
    /// Its name.
    pub name: String,
    /// Its servers, in config order (backups may be anywhere).
    pub servers: Vec<Server>,
    /// Keepalive settings.
    pub keepalive: KeepaliveConf,
    /// The balancing method.
    pub balance: Balance,
    /// `health_check`.
    pub health: Option<HealthCheck>,
    /// `queue`.
    pub queue: Option<QueueConf>,
}

/// A group of servers: an `upstream {}` block or the implicit group of a `*_pass` address.
/// Shared by every worker and every location that names it.
#[derive(Debug)]
pub struct Group {
    /// The group's name (`upstream NAME`, or `host:port` for implicit ones).
    pub name: String,
    /// Servers: the primaries in config order, then the backups.
    pub servers: Vec<Arc<Server>>,
    /// Keepalive.
    pub keepalive: KeepaliveConf,
    /// The balancing method.
    pub balance: Balance,
    /// Active health checks.
    pub health: Option<HealthCheck>,
    /// The queue for requests that find every server at `max_conns`.
    pub queue: Option<QueueConf>,
    /// Group-wide counters (shared by every generation of a resolving group).
    pub stats: Arc<GroupStats>,
    /// `server … resolve` (requests use [`Group::current`]) or a `*_pass` with
    /// variables (requests use [`Group::for_request`]).
    live: Option<Live>,
    primaries: usize,
    total_weight: u64,
    labels: Vec<usize>,
    points: Vec<(u32, usize)>,
    pub(crate) state: Mutex<Vec<PeerState>>,
    released: Notify,
    probe: OnceLock<Arc<dyn Probe>>,
}

/// A server chosen for one request: counted in its `active` connections until dropped
/// (after the response was read whole, on error, or when the client went away), which
/// also wakes one queued request.
#[derive(Debug)]
pub struct InUse {
    group: Arc<Group>,
    index: usize,
}

impl InUse {
    /// The server's index in the group.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The server.
    pub fn server(&self) -> Option<&Arc<Server>> {
        self.group.servers.get(self.index)
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        if let Some(s) = self.group.servers.get(self.index) {
            s.stats.active.fetch_sub(1, Ordering::AcqRel);
        }
        if self.group.queue.is_some() {
            self.group.released.notify_one();
        }
    }
}

impl Group {
    /// Builds a group: backups go last, the hash ring and weights are computed once.
    pub fn new(spec: GroupSpec) -> Arc<Group> {
        let parts = Parts {
            name: spec.name,
            keepalive: spec.keepalive,
            balance: spec.balance,
            health: spec.health,
            queue: spec.queue,
            stats: Arc::default(),
        };
        Arc::new(Group::assemble(
            parts,
            spec.servers.into_iter().map(Arc::new).collect(),
            None,
            None,
        ))
    }

    /// A group whose servers change while running (`server … resolve`): `spec` holds
    /// the method, keepalive and health settings, `discovery` the server lines. Until
    /// the first resolution its servers are the lines that need none.
    pub fn resolving(spec: GroupSpec, discovery: crate::discovery::Discovery) -> Arc<Group> {
        let parts = Parts {
            name: spec.name,
            keepalive: spec.keepalive,
            balance: spec.balance,
            health: spec.health,
            queue: spec.queue,
            stats: Arc::default(),
        };
        let first = Arc::new(Group::assemble(
            parts.clone(),
            discovery.servers(),
            None,
            None,
        ));
        discovery.install(first);
        Arc::new(Group::assemble(
            parts,
            Vec::new(),
            Some(Live::Resolving(Arc::new(discovery))),
            None,
        ))
    }

    /// The stand-in group of a `*_pass` with variables: each request evaluates
    /// `target` into the group it uses ([`Group::for_request`]).
    pub fn per_request(target: crate::resolver::VarTarget) -> Arc<Group> {
        let parts = Parts {
            name: String::new(),
            keepalive: KeepaliveConf::default(),
            balance: Balance::default(),
            health: None,
            queue: None,
            stats: Arc::default(),
        };
        Arc::new(Group::assemble(
            parts,
            Vec::new(),
            Some(Live::PerRequest(Arc::new(target))),
            None,
        ))
    }

    /// The settings a generation of a resolving group copies.
    pub(crate) fn parts(&self) -> Parts {
        Parts {
            name: self.name.clone(),
            keepalive: self.keepalive,
            balance: self.balance.clone(),
            health: self.health.clone(),
            queue: self.queue,
            stats: self.stats.clone(),
        }
    }

    /// A new generation with `servers`, keeping the passive-health state of the servers
    /// of `prev` that stay.
    pub(crate) fn generation(parts: Parts, servers: Vec<Arc<Server>>, prev: &Group) -> Arc<Group> {
        Arc::new(Group::assemble(parts, servers, None, Some(prev)))
    }

    fn assemble(
        parts: Parts,
        all: Vec<Arc<Server>>,
        live: Option<Live>,
        prev: Option<&Group>,
    ) -> Group {
        let (mut servers, backups): (Vec<Arc<Server>>, Vec<Arc<Server>>) =
            all.into_iter().partition(|s| !s.backup);
        let primaries = servers.len();
        servers.extend(backups);
        let total_weight = servers
            .iter()
            .take(primaries)
            .map(|s| u64::from(s.weight))
            .sum();
        let mut names: Vec<&str> = Vec::new();
        let labels: Vec<usize> = servers
            .iter()
            .map(|s| match names.iter().position(|n| *n == s.label) {
                Some(i) => i,
                None => {
                    names.push(&s.label);
                    names.len() - 1
                }
            })
            .collect();
        let mut points: Vec<(u32, usize)> = Vec::new();
        if matches!(
            parts.balance,
            Balance::Hash {
                consistent: true,
                ..
            }
        ) {
            for (s, l) in servers.iter().zip(&labels).take(primaries) {
                points.extend(
                    crate::balance::ketama_points(&s.label, s.weight)
                        .into_iter()
                        .map(|h| (h, *l)),
                );
            }
            points.sort_by_key(|p| p.0);
            points.dedup_by_key(|p| p.0);
        }
        let old = prev.map(|p| (lock(&p.state).clone(), &p.servers));
        let state = servers
            .iter()
            .map(|s| {
                old.as_ref()
                    .and_then(|(st, olds)| {
                        olds.iter()
                            .position(|o| Arc::ptr_eq(o, s))
                            .and_then(|i| st.get(i).cloned())
                    })
                    .unwrap_or_else(|| PeerState::new(s.weight))
            })
            .collect();
        Group {
            name: parts.name,
            servers,
            keepalive: parts.keepalive,
            balance: parts.balance,
            health: parts.health,
            queue: parts.queue,
            stats: parts.stats,
            live,
            primaries,
            total_weight,
            labels,
            points,
            state: Mutex::new(state),
            released: Notify::new(),
            probe: OnceLock::new(),
        }
    }

    /// The servers requests use now: the group itself, or for a resolving group its
    /// latest generation.
    pub fn current(self: &Arc<Self>) -> Arc<Group> {
        match &self.live {
            Some(Live::Resolving(d)) => d.current(),
            _ => self.clone(),
        }
    }

    /// Like [`Group::current`], but a resolving group not resolved yet (just started
    /// or reloaded) is waited for, up to its `resolver_timeout`.
    pub async fn current_ready(self: &Arc<Self>) -> Arc<Group> {
        match &self.live {
            Some(Live::Resolving(d)) => {
                d.ready().await;
                d.current()
            }
            _ => self.clone(),
        }
    }

    /// The group one request uses: [`Group::current_ready`], or for the stand-in of a
    /// `*_pass` with variables the group its value names (an upstream, or the
    /// addresses of a literal or resolved host).
    pub async fn for_request(
        self: &Arc<Self>,
        cx: &crate::ctx::RequestCtx,
    ) -> Result<Arc<Group>, Error> {
        match &self.live {
            // Boxed: a resolving future is large and rare (it would grow every request's).
            Some(Live::PerRequest(t)) => Box::pin(t.group(cx)).await,
            _ => Ok(self.current_ready().await),
        }
    }

    /// The DNS side of a resolving group (`server … resolve`), if it is one.
    pub fn discovery(&self) -> Option<&Arc<crate::discovery::Discovery>> {
        match &self.live {
            Some(Live::Resolving(d)) => Some(d),
            _ => None,
        }
    }

    /// An implicit group (one or more resolved addresses of one `*_pass` target).
    pub fn implicit(name: String, addrs: Vec<PeerAddr>) -> Arc<Group> {
        Group::new(GroupSpec {
            name,
            servers: addrs.into_iter().map(Server::new).collect(),
            ..GroupSpec::default()
        })
    }

    /// One server and no backup (nginx's `peers->single`): its failures are not counted.
    pub fn is_single(&self) -> bool {
        self.servers.len() == 1
    }

    /// Number of primary servers (they come first in `servers`).
    pub fn primaries(&self) -> usize {
        self.primaries
    }

    /// Sum of the primaries' weights.
    pub(crate) fn total_weight(&self) -> u64 {
        self.total_weight
    }

    /// The ketama ring: (point, server line id), sorted.
    pub(crate) fn points(&self) -> &[(u32, usize)] {
        &self.points
    }

    /// The server line id of server `i` (servers of one hostname share it).
    pub(crate) fn label_of(&self, i: usize) -> usize {
        self.labels.get(i).copied().unwrap_or(usize::MAX)
    }

    /// The key material of a request for this group's method: the client address
    /// (`ip_hash`) and the evaluated `hash` key.
    pub fn pick_state(&self, cx: &crate::ctx::RequestCtx) -> PickState {
        let key = match &self.balance {
            Balance::Hash { key, .. } => key.eval(cx),
            _ => bytes::Bytes::new(),
        };
        PickState::new(Some(cx.conn.remote.ip()), key)
    }

    /// One selection now, without waiting (the server is counted in use when chosen).
    pub fn pick(self: &Arc<Self>, st: &mut PickState) -> Result<InUse, Pick> {
        let now = crate::time::now();
        let mut ps = lock(&self.state);
        match select(self, &mut ps, st, now) {
            Pick::Got(i) => {
                if let Some(s) = self.servers.get(i) {
                    s.stats.active.fetch_add(1, Ordering::AcqRel);
                    s.stats.requests.fetch_add(1, Ordering::Relaxed);
                }
                st.tried.push(i);
                Ok(InUse {
                    group: self.clone(),
                    index: i,
                })
            }
            other => Err(other),
        }
    }

    /// Selects a server for a request. When every usable server is at `max_conns` and
    /// the group has a `queue`, waits (FIFO, woken as connections are released) up to
    /// the queue's timeout; a full queue or a timeout is `Overloaded` (503). No usable
    /// server at all is nginx's "no live upstreams" (502).
    pub async fn select(self: &Arc<Self>, st: &mut PickState) -> Result<InUse, Error> {
        let busy = match self.pick(st) {
            Ok(u) => return Ok(u),
            Err(p) => p == Pick::Busy,
        };
        let Some(q) = self.queue.filter(|_| busy) else {
            return Err(self.no_live());
        };
        if self.stats.queued.fetch_add(1, Ordering::AcqRel) >= q.max {
            self.stats.queued.fetch_sub(1, Ordering::AcqRel);
            self.stats.queue_rejected.fetch_add(1, Ordering::Relaxed);
            return Err(Error::new(
                ErrorKind::Overloaded,
                format!(
                    "upstream queue is full ({} waiting) while connecting to upstream \"{}\"",
                    q.max, self.name
                ),
            ));
        }
        self.stats.queued_total.fetch_add(1, Ordering::Relaxed);
        struct Leave<'a>(&'a AtomicUsize);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _leave = Leave(&self.stats.queued);
        let deadline = tokio::time::Instant::now() + q.timeout;
        loop {
            let notified = self.released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.pick(st) {
                Ok(u) => return Ok(u),
                Err(Pick::Busy) => {}
                Err(_) => return Err(self.no_live()),
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                // A last look: a release may have raced with the deadline.
                if let Ok(u) = self.pick(st) {
                    return Ok(u);
                }
                self.stats.queue_rejected.fetch_add(1, Ordering::Relaxed);
                return Err(Error::new(
                    ErrorKind::Overloaded,
                    format!(
                        "upstream queue timed out after {:?} while connecting to upstream \"{}\"",
                        q.timeout, self.name
                    ),
                ));
            }
        }
    }

    fn no_live(&self) -> Error {
        self.stats.no_live.fetch_add(1, Ordering::Relaxed);
        Error::new(
            ErrorKind::Connect,
            format!(
                "no live upstreams while connecting to upstream \"{}\"",
                self.name
            ),
        )
    }

    /// Passive health after an attempt on server `i`, as nginx's
    /// `ngx_http_upstream_free_round_robin_peer`: a failure counts, stamps the time and
    /// lowers the effective weight by `weight / max_fails`; a success after the server
    /// was picked past `fail_timeout` clears the count. A lone server is never counted.
    pub fn report(&self, i: usize, outcome: Outcome) {
        let Some(s) = self.servers.get(i) else {
            return;
        };
        if outcome == Outcome::Failed {
            s.stats.fails.fetch_add(1, Ordering::Relaxed);
        }
        if self.is_single() {
            return;
        }
        let mut ps = lock(&self.state);
        let Some(p) = ps.get_mut(i) else {
            return;
        };
        if outcome == Outcome::Failed {
            let now = Instant::now();
            p.fails += 1;
            p.accessed = Some(now);
            p.checked = Some(now);
            if let Some(drop_by) = s.weight.checked_div(s.max_fails) {
                p.effective_weight -= i64::from(drop_by);
                if p.fails >= s.max_fails {
                    s.stats.disabled.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "upstream server temporarily disabled: {} in upstream \"{}\"",
                        s.name,
                        self.name
                    );
                }
            }
            if p.effective_weight < 0 {
                p.effective_weight = 0;
            }
        } else if p.accessed < p.checked {
            p.fails = 0;
        }
    }

    /// Registers the probe of the protocol whose `*_pass` uses this group (the first
    /// one wins; without any, health checks only connect).
    pub fn set_probe(&self, probe: Arc<dyn Probe>) {
        let _ = self.probe.set(probe);
    }

    /// The registered probe, if any.
    pub fn probe(&self) -> Option<Arc<dyn Probe>> {
        self.probe.get().cloned()
    }

    /// A snapshot of every server's counters (for logs and a metrics endpoint).
    pub fn snapshot(&self) -> Vec<ServerSnapshot> {
        let now = Instant::now();
        let ps = lock(&self.state);
        self.servers
            .iter()
            .zip(ps.iter())
            .map(|(s, p)| ServerSnapshot {
                name: s.name.clone(),
                backup: s.backup,
                down: s.down,
                active: s.active(),
                requests: s.stats.requests.load(Ordering::Relaxed),
                fails: s.stats.fails.load(Ordering::Relaxed),
                failed_now: failed(s, p, now),
                healthy: s.healthy(),
                checks: s.stats.checks.load(Ordering::Relaxed),
                check_fails: s.stats.check_fails.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Idle keep-alive connections to server `i` now.
    pub fn idle_connections(&self, i: usize) -> usize {
        self.servers.get(i).map_or(0, |s| lock(&s.idle).conns.len())
    }

    /// Takes an idle connection to server `i`, or opens a new one (with a TLS
    /// handshake for `tls`; a pooled TLS connection is taken only for the same target).
    pub async fn get(
        &self,
        i: usize,
        bind: Option<IpAddr>,
        timeout: Duration,
        tls: Option<&TlsTarget>,
    ) -> Result<Conn, Error> {
        let Some(server) = self.servers.get(i) else {
            return Err(Error::internal("no such upstream server"));
        };
        if self.keepalive.max_idle > 0 {
            let now = crate::time::now();
            let mut guard = lock(&server.idle);
            let idle = &mut guard.conns;
            // The newest matching connection; expired ones go, live ones made for
            // another source address or TLS target stay for their own requests.
            let mut k = idle.len();
            while k > 0 {
                k -= 1;
                let Some(c) = idle.get(k) else { break };
                if c.expired(&self.keepalive, now) {
                    idle.remove(k);
                    continue;
                }
                if c.bind != bind || !same_tls(c.tls.as_ref(), tls) {
                    continue;
                }
                if let Some(mut c) = idle.remove(k) {
                    if !c.stream.is_stale() {
                        c.reused = true;
                        return Ok(c);
                    }
                }
            }
        }
        // Boxed: connecting (and a TLS handshake) is a large future and, with a
        // keepalive pool, rare: inline it would grow every request's future.
        Box::pin(self.connect_new(i, bind, timeout, tls)).await
    }

    /// Opens a new connection to server `i`, whatever the pool holds.
    pub async fn connect_new(
        &self,
        i: usize,
        bind: Option<IpAddr>,
        timeout: Duration,
        tls: Option<&TlsTarget>,
    ) -> Result<Conn, Error> {
        let Some(server) = self.servers.get(i) else {
            return Err(Error::internal("no such upstream server"));
        };
        let started = Instant::now();
        let mut stream = connect(&server.addr, bind, timeout).await?;
        if let Some(t) = tls {
            // The handshake and the request are writes in a row.
            stream.set_nodelay();
            // One `*_connect_timeout` for the connect and the handshake together, as
            // nginx's connect timer still runs while it shakes hands.
            let left = timeout.saturating_sub(started.elapsed());
            stream = crate::upstream_tls::handshake(stream, t, left).await?;
        }
        let now = crate::time::now();
        Ok(Conn {
            stream,
            requests: 0,
            born: now,
            reused: false,
            idle_since: now,
            bind,
            tls: tls.cloned(),
            nodelay: tls.is_some(),
        })
    }

    /// Returns a connection after a complete exchange (`reusable`), or drops it.
    pub fn put(&self, i: usize, mut c: Conn, reusable: bool) {
        c.requests += 1;
        let ka = &self.keepalive;
        if !reusable || ka.max_idle == 0 || c.requests >= ka.max_requests {
            return;
        }
        let now = crate::time::now();
        if now.saturating_duration_since(c.born) >= ka.max_time {
            return;
        }
        let Some(server) = self.servers.get(i) else {
            return;
        };
        let mut guard = lock(&server.idle);
        let Idle {
            conns: idle,
            sweeper,
        } = &mut *guard;
        // Over the cap the least recently used connection is closed, as nginx — once
        // it has been idle for SURPLUS_GRACE: a burst's connections coming back are
        // kept for the next burst (so more than `keepalive` are idle only while all
        // of them came back within the grace, and never more than twice as many).
        // Closed at once, a steady load whose concurrency swings across the cap from
        // one turn of the loop to the next (64 clients, `keepalive 32`) closed and
        // opened a connection for about one request in six.
        while idle.len() >= ka.max_idle {
            let expired = idle.front().is_some_and(|f| f.past_grace(now));
            if !expired && idle.len() < 2 * ka.max_idle {
                break;
            }
            idle.pop_front();
        }
        c.idle_since = now;
        c.reused = false;
        if server.retired.load(Ordering::Acquire) {
            return;
        }
        idle.push_back(c);
        if !*sweeper {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                *sweeper = true;
                drop(rt.spawn(sweep(Arc::downgrade(&server.idle), *ka)));
            }
        }
    }
}

impl Conn {
    /// When it expires while idle: `keepalive_timeout` after it came back, or
    /// `keepalive_time` after it was opened, whichever is first.
    fn expires(&self, ka: &KeepaliveConf) -> Option<Instant> {
        let idle_end = self.idle_since.checked_add(ka.idle_timeout);
        let life_end = self.born.checked_add(ka.max_time);
        idle_end.into_iter().chain(life_end).min()
    }

    /// Whether it has expired at `now` (see [`Conn::expires`]).
    fn expired(&self, ka: &KeepaliveConf, now: Instant) -> bool {
        now.saturating_duration_since(self.idle_since) >= ka.idle_timeout
            || now.saturating_duration_since(self.born) >= ka.max_time
    }

    /// Whether it has been idle for [`SURPLUS_GRACE`] at `now`.
    fn past_grace(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.idle_since) >= SURPLUS_GRACE
    }
}

/// A server's idle keep-alive connections, and whether a [`sweep`] task watches them.
#[derive(Debug, Default)]
pub(crate) struct Idle {
    conns: VecDeque<Conn>,
    sweeper: bool,
}

/// Closes a server's idle connections when they expire, as nginx's timers do rather
/// than at the next request to that server: past `keepalive_timeout` or
/// `keepalive_time`, and over the `keepalive` cap once idle for [`SURPLUS_GRACE`].
/// Ends when none is left (the next one pooled starts another).
async fn sweep(pool: std::sync::Weak<Mutex<Idle>>, ka: KeepaliveConf) {
    /// Marks the pool unwatched if the task is dropped (its runtime stopped).
    struct Watch(std::sync::Weak<Mutex<Idle>>);
    impl Drop for Watch {
        fn drop(&mut self) {
            if let Some(p) = self.0.upgrade() {
                lock(&p).sweeper = false;
            }
        }
    }
    let mut watch = Watch(pool.clone());
    loop {
        let Some(p) = pool.upgrade() else { return };
        // Closed after the lock is released.
        let mut closed = Vec::new();
        let next = {
            let mut idle = lock(&p);
            let now = crate::time::now();
            let mut k = 0;
            while let Some(c) = idle.conns.get(k) {
                if c.expired(&ka, now) {
                    closed.extend(idle.conns.remove(k));
                } else {
                    k += 1;
                }
            }
            while idle.conns.len() > ka.max_idle
                && idle.conns.front().is_some_and(|f| f.past_grace(now))
            {
                closed.extend(idle.conns.pop_front());
            }
            let surplus = idle.conns.len() > ka.max_idle;
            let next = idle
                .conns
                .iter()
                .filter_map(|c| c.expires(&ka))
                .chain(
                    idle.conns
                        .front()
                        .filter(|_| surplus)
                        .and_then(|f| f.idle_since.checked_add(SURPLUS_GRACE)),
                )
                .min();
            if next.is_none() {
                // Decided under the lock, so a connection pooled right after starts a
                // new sweeper.
                idle.sweeper = false;
                watch.0 = std::sync::Weak::new();
                return;
            }
            next
        };
        drop(closed);
        drop(p);
        if let Some(at) = next {
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        }
    }
}

/// How long a connection over the `keepalive` cap may stay idle ([`Group::put`]).
pub const SURPLUS_GRACE: Duration = Duration::from_millis(100);

/// What makes a group's servers change: DNS (`server … resolve`), or each request
/// (`*_pass` with variables).
#[derive(Debug, Clone)]
enum Live {
    Resolving(Arc<crate::discovery::Discovery>),
    PerRequest(Arc<crate::resolver::VarTarget>),
}

/// What every generation of a group shares: name, method, keepalive, health, queue
/// settings and the group-wide counters.
#[derive(Debug, Clone)]
pub(crate) struct Parts {
    name: String,
    keepalive: KeepaliveConf,
    balance: Balance,
    health: Option<HealthCheck>,
    queue: Option<QueueConf>,
    stats: Arc<GroupStats>,
}

/// Whether a pooled connection made for `have` may carry a request for `want`.
fn same_tls(have: Option<&TlsTarget>, want: Option<&TlsTarget>) -> bool {
    match (have, want) {
        (None, None) => true,
        (Some(a), Some(b)) => a.same(b),
        _ => false,
    }
}

/// One server's counters at one moment.
#[derive(Debug, Clone)]
pub struct ServerSnapshot {
    /// `$upstream_addr` form.
    pub name: String,
    /// `backup`.
    pub backup: bool,
    /// `down`.
    pub down: bool,
    /// Connections in use.
    pub active: usize,
    /// Attempts sent.
    pub requests: u64,
    /// Failed attempts.
    pub fails: u64,
    /// Out of service by passive health now.
    pub failed_now: bool,
    /// In service by active health.
    pub healthy: bool,
    /// Probes run.
    pub checks: u64,
    /// Probes failed.
    pub check_fails: u64,
}

/// Resolves `host:port` (or `unix:/path`) into addresses, at config load time.
pub fn resolve(target: &str, default_port: u16) -> io::Result<Vec<PeerAddr>> {
    match literal(target, default_port) {
        Ok(done) => Ok(done),
        Err(with_port) => {
            use std::net::ToSocketAddrs;
            collect(target, with_port.to_socket_addrs()?)
        }
    }
}

/// A unix path or a literal socket address as is; else the `host:port` to look up.
pub fn literal(target: &str, default_port: u16) -> Result<Vec<PeerAddr>, String> {
    if let Some(p) = target.strip_prefix("unix:") {
        return Ok(vec![PeerAddr::Unix(PathBuf::from(p))]);
    }
    if let Ok(sa) = target.parse::<SocketAddr>() {
        return Ok(vec![PeerAddr::Tcp(sa)]);
    }
    Err(if target.starts_with('[') {
        if target.ends_with(']') {
            format!("{target}:{default_port}")
        } else {
            target.to_string()
        }
    } else if target.contains(':') {
        target.to_string()
    } else {
        format!("{target}:{default_port}")
    })
}

fn collect(target: &str, addrs: impl Iterator<Item = SocketAddr>) -> io::Result<Vec<PeerAddr>> {
    let mut out: Vec<PeerAddr> = Vec::new();
    for sa in addrs {
        let p = PeerAddr::Tcp(sa);
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("host not found in upstream \"{target}\""),
        ));
    }
    Ok(out)
}

/// Splits a `*_pass` URL into (scheme, host[:port] or unix path, uri part).
pub fn split_url(url: &str) -> (Option<&str>, &str, Option<&str>) {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (url.get(..i), url.get(i + 3..).unwrap_or("")),
        None => (None, url),
    };
    if let Some(unix) = rest.strip_prefix("unix:") {
        // unix:/path/sock:/uri
        return match unix.find(':') {
            Some(i) => (
                scheme,
                rest.get(..5 + i).unwrap_or(rest),
                unix.get(i + 1..).filter(|s| !s.is_empty()),
            ),
            None => (scheme, rest, None),
        };
    }
    match rest.find('/') {
        Some(i) => (scheme, rest.get(..i).unwrap_or(rest), rest.get(i..)),
        None => (scheme, rest, None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn group(weights: &[u32], balance: Balance) -> Arc<Group> {
        let servers = weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let mut s = Server::new(PeerAddr::Tcp(SocketAddr::from((
                    [127, 0, 0, 1],
                    8001 + i as u16,
                ))));
                s.weight = *w;
                s
            })
            .collect();
        Group::new(GroupSpec {
            name: "g".into(),
            servers,
            balance,
            ..GroupSpec::default()
        })
    }

    fn seq(g: &Arc<Group>, n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| g.pick(&mut PickState::default()).unwrap().index())
            .collect()
    }

    #[test]
    fn smooth_weighted_round_robin_matches_nginx() {
        // nginx's documented sequence for weights 5,1,1: a a b a c a a
        assert_eq!(
            seq(&group(&[5, 1, 1], Balance::RoundRobin), 7),
            vec![0, 0, 1, 0, 2, 0, 0]
        );
        // 3,1,1 (what nginx 1.22 answers, checked in tests/upstream_balance.rs)
        assert_eq!(
            seq(&group(&[3, 1, 1], Balance::RoundRobin), 10),
            vec![0, 1, 0, 2, 0, 0, 1, 0, 2, 0]
        );
    }

    #[test]
    fn max_fails_within_fail_timeout_then_back() {
        let mut g = GroupSpec {
            name: "g".into(),
            ..GroupSpec::default()
        };
        for port in [1u16, 2] {
            let mut s = Server::new(PeerAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], port))));
            s.max_fails = 2;
            s.fail_timeout = Duration::from_millis(50);
            g.servers.push(s);
        }
        let g = Group::new(g);
        g.report(0, Outcome::Failed);
        // one failure of two: still in use
        assert!(seq(&g, 4).contains(&0));
        g.report(0, Outcome::Failed);
        assert_eq!(seq(&g, 4), vec![1, 1, 1, 1]);
        std::thread::sleep(Duration::from_millis(60));
        // after fail_timeout it is tried again; a success clears the count
        let picks = seq(&g, 2);
        assert!(picks.contains(&0), "{picks:?}");
        g.report(0, Outcome::Ok);
        g.report(0, Outcome::Failed);
        assert!(seq(&g, 4).contains(&0));
    }

    #[test]
    fn backups_only_when_primaries_are_out() {
        let mut spec = GroupSpec::default();
        for (port, backup) in [(1u16, false), (2, true), (3, false)] {
            let mut s = Server::new(PeerAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], port))));
            s.backup = backup;
            spec.servers.push(s);
        }
        let g = Group::new(spec);
        // backups go last
        assert!(g.servers[2].backup);
        assert!(seq(&g, 10).iter().all(|i| *i < 2));
        g.report(0, Outcome::Failed);
        assert_eq!(seq(&g, 3), vec![1, 1, 1]);
        g.report(1, Outcome::Failed);
        assert_eq!(seq(&g, 3), vec![2, 2, 2]);
        // a request that tried both primaries goes to the backup too
        let g2 = group(&[1, 1], Balance::RoundRobin);
        let mut st = PickState::default();
        let a = g2.pick(&mut st).unwrap();
        let b = g2.pick(&mut st).unwrap();
        assert_ne!(a.index(), b.index());
        assert!(matches!(g2.pick(&mut st), Err(Pick::NoLive)));
    }

    #[test]
    fn max_conns_is_busy_and_released_on_drop() {
        let mut spec = GroupSpec::default();
        for port in [1u16, 2] {
            let mut s = Server::new(PeerAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], port))));
            s.max_conns = 1;
            spec.servers.push(s);
        }
        let g = Group::new(spec);
        let a = g.pick(&mut PickState::default()).unwrap();
        let b = g.pick(&mut PickState::default()).unwrap();
        assert_ne!(a.index(), b.index());
        assert!(matches!(g.pick(&mut PickState::default()), Err(Pick::Busy)));
        drop(a);
        assert!(g.pick(&mut PickState::default()).is_ok());
        assert_eq!(g.servers.iter().map(|s| s.active()).sum::<usize>(), 1);
    }

    /// A group of one server, a listener on a port of the OS's choice, pooling as `ka`.
    async fn pooled(ka: KeepaliveConf) -> (tokio::net::TcpListener, Arc<Group>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let g = Group::new(GroupSpec {
            name: "g".into(),
            servers: vec![Server::new(PeerAddr::Tcp(addr))],
            keepalive: ka,
            ..GroupSpec::default()
        });
        (listener, g)
    }

    #[tokio::test]
    async fn idle_connections_over_the_cap_stay_for_the_grace_then_go() {
        let (_listener, g) = pooled(KeepaliveConf {
            max_idle: 2,
            ..KeepaliveConf::default()
        })
        .await;
        let t = Duration::from_secs(5);
        let mut conns = Vec::new();
        for _ in 0..5 {
            conns.push(g.connect_new(0, None, t, None).await.unwrap());
        }
        for c in conns {
            g.put(0, c, true);
        }
        // Five came back at once: twice the cap stay, the oldest went.
        assert_eq!(g.idle_connections(0), 4);
        // Taken and given back within the grace: still kept.
        let c = g.get(0, None, t, None).await.unwrap();
        assert!(c.reused);
        g.put(0, c, true);
        assert_eq!(g.idle_connections(0), 4);
        // Once they have idled past the grace, the next one back leaves the cap.
        tokio::time::sleep(SURPLUS_GRACE + Duration::from_millis(20)).await;
        let c = g.connect_new(0, None, t, None).await.unwrap();
        g.put(0, c, true);
        assert_eq!(g.idle_connections(0), 2);
    }

    /// Accepts `n` connections on `listener`; returns them.
    async fn accept_n(listener: &tokio::net::TcpListener, n: usize) -> Vec<tokio::net::TcpStream> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(listener.accept().await.unwrap().0);
        }
        out
    }

    /// Waits (at most 5 s) until the peer closes `s`.
    async fn closed_by_peer(s: &mut tokio::net::TcpStream) -> bool {
        use tokio::io::AsyncReadExt;
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await,
            Ok(Ok(0))
        )
    }

    #[tokio::test]
    async fn idle_connections_are_closed_on_time_without_another_request() {
        let (listener, g) = pooled(KeepaliveConf {
            max_idle: 1,
            idle_timeout: Duration::from_millis(400),
            ..KeepaliveConf::default()
        })
        .await;
        let t = Duration::from_secs(5);
        let mut conns = Vec::new();
        for _ in 0..2 {
            conns.push(g.connect_new(0, None, t, None).await.unwrap());
        }
        let mut peers = accept_n(&listener, 2).await;
        let started = std::time::Instant::now();
        for c in conns {
            g.put(0, c, true);
        }
        assert_eq!(
            g.idle_connections(0),
            2,
            "a burst's surplus stays for the grace"
        );
        // The surplus one (the older) goes after the grace, the other at keepalive_timeout.
        let [first, second] = &mut peers[..] else {
            panic!("two peers")
        };
        assert!(
            closed_by_peer(first).await,
            "the surplus connection is closed"
        );
        // Before the other: that one is still pooled.
        assert_eq!(g.idle_connections(0), 1);
        assert!(
            closed_by_peer(second).await,
            "the idle connection is closed"
        );
        assert!(started.elapsed() >= Duration::from_millis(400));
        assert_eq!(g.idle_connections(0), 0);
        // A connection pooled after the sweeper ended gets a new one.
        let c = g.connect_new(0, None, t, None).await.unwrap();
        let mut peer = accept_n(&listener, 1).await;
        g.put(0, c, true);
        assert!(closed_by_peer(&mut peer[0]).await, "watched again");
    }

    #[tokio::test]
    async fn queue_waits_for_a_release_then_times_out() {
        let mut s = Server::new(PeerAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 1))));
        s.max_conns = 1;
        let g = Group::new(GroupSpec {
            name: "q".into(),
            servers: vec![s],
            queue: Some(QueueConf {
                max: 1,
                timeout: Duration::from_millis(300),
            }),
            ..GroupSpec::default()
        });
        let held = g.pick(&mut PickState::default()).unwrap();
        let g2 = g.clone();
        let waiter = tokio::spawn(async move {
            g2.select(&mut PickState::default())
                .await
                .map(|u| u.index())
        });
        tokio::task::yield_now().await;
        while g.stats.queued.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        // the queue holds one: the next one is refused at once
        let e = g.select(&mut PickState::default()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Overloaded);
        drop(held);
        assert_eq!(waiter.await.unwrap().unwrap(), 0);
        // nobody releases: the wait times out with 503
        let _held = g.pick(&mut PickState::default()).unwrap();
        let e = g.select(&mut PickState::default()).await.unwrap_err();
        assert_eq!(e.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn least_conn_prefers_fewer_connections_per_weight() {
        let g = group(&[1, 2, 1], Balance::LeastConn);
        // all idle: round robin by weight among equals
        let first = g.pick(&mut PickState::default()).unwrap();
        assert_eq!(first.index(), 1);
        // server 1 now has 1 conn / weight 2 = 0.5; 0 and 2 have 0
        let second = g.pick(&mut PickState::default()).unwrap();
        assert_ne!(second.index(), 1);
        let third = g.pick(&mut PickState::default()).unwrap();
        assert_ne!(third.index(), 1);
        assert_ne!(third.index(), second.index());
    }

    #[test]
    fn ip_hash_uses_three_octets_and_skips_failed() {
        let g = group(&[1, 1, 1], Balance::IpHash);
        let pick = |ip: [u8; 4]| {
            let mut st = PickState::new(Some(IpAddr::from(ip)), bytes::Bytes::new());
            g.pick(&mut st).unwrap().index()
        };
        let a = pick([10, 1, 2, 3]);
        assert_eq!(pick([10, 1, 2, 200]), a);
        assert_eq!(pick([10, 1, 2, 3]), a);
        let spread: std::collections::HashSet<usize> =
            (0..50u8).map(|k| pick([10, k, 0, 1])).collect();
        assert_eq!(spread.len(), 3);
        g.report(a, Outcome::Failed);
        assert_ne!(pick([10, 1, 2, 3]), a);
    }

    #[test]
    fn consistent_hash_moves_few_keys_when_a_server_is_added() {
        let key = |k: usize| bytes::Bytes::from(format!("/k/{k}"));
        let map = |g: &Arc<Group>| -> Vec<String> {
            (0..1000)
                .map(|k| {
                    let mut st = PickState::new(None, key(k));
                    let i = g.pick(&mut st).unwrap().index();
                    g.servers[i].label.clone()
                })
                .collect()
        };
        let t = crate::vars::Template::literal(bytes::Bytes::new());
        let three = group(
            &[1, 1, 1],
            Balance::Hash {
                key: t.clone(),
                consistent: true,
            },
        );
        let four = group(
            &[1, 1, 1, 1],
            Balance::Hash {
                key: t,
                consistent: true,
            },
        );
        let (a, b) = (map(&three), map(&four));
        let moved = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert!(moved <= 350, "{moved} of 1000 keys moved");
        // every moved key went to the new server
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| x == y || y == "127.0.0.1:8004"));
    }

    #[test]
    fn random_two_spreads_and_respects_tried() {
        let g = group(&[1, 1, 1], Balance::Random { two: true });
        let mut seen = [0; 3];
        for _ in 0..300 {
            seen[g.pick(&mut PickState::default()).unwrap().index()] += 1;
        }
        assert!(seen.iter().all(|n| *n > 30), "{seen:?}");
        let mut st = PickState::default();
        let picks: std::collections::HashSet<usize> =
            (0..3).map(|_| g.pick(&mut st).unwrap().index()).collect();
        assert_eq!(picks.len(), 3);
    }

    #[test]
    fn resolves_targets() {
        assert_eq!(
            resolve("127.0.0.1:80", 80).unwrap(),
            vec![PeerAddr::Tcp("127.0.0.1:80".parse().unwrap())]
        );
        assert_eq!(
            resolve("unix:/tmp/x.sock", 80).unwrap(),
            vec![PeerAddr::Unix("/tmp/x.sock".into())]
        );
        assert!(!resolve("localhost", 8000).unwrap().is_empty());
    }
}
