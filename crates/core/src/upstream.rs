//! Upstream servers: addresses (TCP and unix sockets), connecting with a source
//! address (`*_bind`) and `*_connect_timeout`, the keepalive pool, and server
//! groups (`upstream {}` blocks and the implicit group of a `*_pass` host name).
//! Written once, used by every protocol.

use crate::error::{Error, ErrorKind};
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream, UnixStream};

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
}

impl Stream {
    /// Whether the idle connection was closed (or sent unexpected bytes) by the peer.
    pub fn is_stale(&self) -> bool {
        let mut b = [0u8; 1];
        let r = match self {
            Stream::Tcp(s) => s.try_read(&mut b),
            Stream::Unix(s) => s.try_read(&mut b),
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
        }
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
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
                let s = sock.connect(*sa).await?;
                s.set_nodelay(true)?;
                Ok::<_, io::Error>(Stream::Tcp(s))
            }
            PeerAddr::Unix(p) => Ok(Stream::Unix(UnixStream::connect(p).await?)),
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(Error::new(
            ErrorKind::Connect,
            format!("connect() to {addr} failed ({}: {e})", e.raw_os_error().unwrap_or(0)),
        )),
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!("upstream timed out (110: Connection timed out) while connecting to upstream {addr}"),
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
}

/// One upstream server and its live state (the counters live here, in one place).
#[derive(Debug)]
pub struct Server {
    /// Its address.
    pub addr: PeerAddr,
    /// Its display name (`$upstream_addr`).
    pub name: String,
    /// Weight for round robin.
    pub weight: u32,
    /// `max_fails`.
    pub max_fails: u32,
    /// `fail_timeout`.
    pub fail_timeout: Duration,
    /// `backup`.
    pub backup: bool,
    /// `down`.
    pub down: bool,
    idle: Mutex<VecDeque<Conn>>,
    state: Mutex<ServerState>,
    /// Active connections.
    pub active: AtomicUsize,
    /// Requests sent.
    pub requests: AtomicU64,
}

#[derive(Debug, Default)]
struct ServerState {
    fails: u32,
    checked: Option<Instant>,
    current_weight: i64,
}

impl Server {
    /// A server with nginx's default parameters.
    pub fn new(addr: PeerAddr) -> Self {
        let name = addr.to_string();
        Server {
            addr,
            name,
            weight: 1,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            backup: false,
            down: false,
            idle: Mutex::new(VecDeque::new()),
            state: Mutex::new(ServerState::default()),
            active: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
        }
    }

    fn available(&self, now: Instant) -> bool {
        if self.down {
            return false;
        }
        let st = lock(&self.state);
        if self.max_fails == 0 || st.fails < self.max_fails {
            return true;
        }
        st.checked
            .is_some_and(|t| now.duration_since(t) >= self.fail_timeout)
    }

    /// Records the outcome of a request (passive health, as nginx: max_fails within fail_timeout).
    pub fn report(&self, ok: bool) {
        let mut st = lock(&self.state);
        let now = Instant::now();
        if ok {
            if st.fails > 0 {
                st.fails = 0;
            }
        } else {
            if st
                .checked
                .is_some_and(|t| now.duration_since(t) >= self.fail_timeout)
            {
                st.fails = 0;
            }
            st.fails += 1;
            st.checked = Some(now);
            if self.max_fails != 0 && st.fails == self.max_fails {
                tracing::warn!("upstream server temporarily disabled: {}", self.name);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// A group of servers: an `upstream {}` block or the implicit group of a `*_pass` address.
#[derive(Debug)]
pub struct Group {
    /// The group's name (`upstream NAME`, or `host:port` for implicit ones).
    pub name: String,
    /// Servers, primaries first.
    pub servers: Vec<Arc<Server>>,
    /// Keepalive.
    pub keepalive: KeepaliveConf,
}

impl Group {
    /// An implicit group (one or more resolved addresses of one `*_pass` target).
    pub fn implicit(name: String, addrs: Vec<PeerAddr>) -> Arc<Group> {
        Arc::new(Group {
            name,
            servers: addrs
                .into_iter()
                .map(|a| Arc::new(Server::new(a)))
                .collect(),
            keepalive: KeepaliveConf::default(),
        })
    }

    /// One server and no backup (nginx's `peers->single`): its failures are not counted.
    pub fn is_single(&self) -> bool {
        self.servers.len() == 1
    }

    /// Picks a server by smooth weighted round robin among the available ones not yet
    /// `tried`; backups only when no primary is available. `None`: all are down.
    pub fn pick(&self, tried: &[usize]) -> Option<usize> {
        let now = Instant::now();
        for backup in [false, true] {
            let mut best: Option<(usize, i64)> = None;
            let mut total = 0i64;
            let cands: Vec<usize> = (0..self.servers.len())
                .filter(|i| !tried.contains(i))
                .filter(|i| {
                    self.servers
                        .get(*i)
                        .is_some_and(|s| s.backup == backup && s.available(now))
                })
                .collect();
            if cands.is_empty() {
                continue;
            }
            for &i in &cands {
                let Some(s) = self.servers.get(i) else {
                    continue;
                };
                let mut st = lock(&s.state);
                st.current_weight += i64::from(s.weight);
                total += i64::from(s.weight);
                if best.is_none_or(|(_, w)| st.current_weight > w) {
                    best = Some((i, st.current_weight));
                }
            }
            if let Some((i, _)) = best {
                if let Some(s) = self.servers.get(i) {
                    lock(&s.state).current_weight -= total;
                }
                return Some(i);
            }
        }
        None
    }

    /// Takes an idle connection to server `i`, or opens a new one.
    pub async fn get(
        &self,
        i: usize,
        bind: Option<IpAddr>,
        timeout: Duration,
    ) -> Result<Conn, Error> {
        let Some(server) = self.servers.get(i) else {
            return Err(Error::internal("no such upstream server"));
        };
        if self.keepalive.max_idle > 0 {
            let now = Instant::now();
            let mut idle = lock(&server.idle);
            while let Some(mut c) = idle.pop_back() {
                if c.bind == bind
                    && now.duration_since(c.idle_since) < self.keepalive.idle_timeout
                    && now.duration_since(c.born) < self.keepalive.max_time
                    && !c.stream.is_stale()
                {
                    c.reused = true;
                    return Ok(c);
                }
            }
        }
        let stream = connect(&server.addr, bind, timeout).await?;
        Ok(Conn {
            stream,
            requests: 0,
            born: Instant::now(),
            reused: false,
            idle_since: Instant::now(),
            bind,
        })
    }

    /// Returns a connection after a complete exchange (`reusable`), or drops it.
    pub fn put(&self, i: usize, mut c: Conn, reusable: bool) {
        c.requests += 1;
        let ka = &self.keepalive;
        if !reusable
            || ka.max_idle == 0
            || c.requests >= ka.max_requests
            || c.born.elapsed() >= ka.max_time
        {
            return;
        }
        let Some(server) = self.servers.get(i) else {
            return;
        };
        let mut idle = lock(&server.idle);
        if idle.len() >= ka.max_idle {
            idle.pop_front();
        }
        c.idle_since = Instant::now();
        c.reused = false;
        idle.push_back(c);
    }
}

/// Resolves `host:port` (or `unix:/path`) into addresses, at config load time.
pub fn resolve(target: &str, default_port: u16) -> io::Result<Vec<PeerAddr>> {
    if let Some(p) = target.strip_prefix("unix:") {
        return Ok(vec![PeerAddr::Unix(PathBuf::from(p))]);
    }
    if let Ok(sa) = target.parse::<SocketAddr>() {
        return Ok(vec![PeerAddr::Tcp(sa)]);
    }
    let with_port = if target.starts_with('[') {
        if target.ends_with(']') {
            format!("{target}:{default_port}")
        } else {
            target.to_string()
        }
    } else if target.contains(':') {
        target.to_string()
    } else {
        format!("{target}:{default_port}")
    };
    use std::net::ToSocketAddrs;
    let mut out: Vec<PeerAddr> = Vec::new();
    for sa in with_port.to_socket_addrs()? {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn smooth_weighted_round_robin_matches_nginx() {
        let mk = |w: u32, port: u16| {
            let mut s = Server::new(PeerAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], port))));
            s.weight = w;
            Arc::new(s)
        };
        let g = Group {
            name: "g".into(),
            servers: vec![mk(5, 1), mk(1, 2), mk(1, 3)],
            keepalive: KeepaliveConf::default(),
        };
        let seq: Vec<usize> = (0..7).map(|_| g.pick(&[]).unwrap()).collect();
        // nginx's documented sequence for weights 5,1,1: a a b a c a a
        assert_eq!(seq, vec![0, 0, 1, 0, 2, 0, 0]);
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
