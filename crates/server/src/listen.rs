//! Listening and accepting: every listen address bound once per worker
//! (`SO_REUSEPORT`, so the kernel spreads connections over the workers), the
//! accept loop with `worker_connections` as nginx's cap per worker, and the
//! hand-off of each accepted socket to the HTTP/1 connection.
//!
//! A pre-HTTP step on the accepted stream (the PROXY protocol header) belongs in
//! [`start`], before the connection starts.

use crate::build::{Listen, Runtime};
use crate::http1::conn::{self, Source};
use crate::serve::Stop;
use junction_core::ctx::ConnInfo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Connection serial numbers (`$connection`), unique across workers.
static CONNS: AtomicU64 = AtomicU64::new(0);

/// Binds every listen address (a wildcard address covers the specific ones on the
/// same port, as nginx does), once per worker: each worker gets its own sockets
/// with SO_REUSEPORT, so the kernel spreads new connections evenly over the workers.
/// Returns one list of std listeners per worker, to be served by [`serve`].
pub fn bind_all(rt: &Runtime, workers: usize) -> std::io::Result<Vec<Vec<std::net::TcpListener>>> {
    let mut out: Vec<Vec<std::net::TcpListener>> =
        (0..workers.max(1)).map(|_| Vec::new()).collect();
    for l in &rt.listens {
        let covered = !l.addr.ip().is_unspecified()
            && rt.listens.iter().any(|o| {
                o.addr.port() == l.addr.port()
                    && o.addr.ip().is_unspecified()
                    && o.addr.is_ipv4() == l.addr.is_ipv4()
            });
        if covered {
            continue;
        }
        for w in out.iter_mut() {
            w.push(bind_one(l.addr)?);
        }
    }
    Ok(out)
}

fn bind_one(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())
        .map_err(|e| std::io::Error::new(e.kind(), format!("bind() to {addr} failed ({e})")))?;
    sock.listen(511)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// Serves the bound listeners until `stop` says otherwise.
/// `config` carries the current runtime: a reload sends a new one, which every
/// connection takes at the start of its next request.
pub async fn serve(
    config: watch::Receiver<Arc<Runtime>>,
    listeners: Vec<std::net::TcpListener>,
    mut stop: watch::Receiver<Stop>,
) {
    let tracker = tokio_util::task::TaskTracker::new();
    let cap = config.borrow().main.worker_connections.max(1);
    let slots = Arc::new(Semaphore::new(cap));
    for l in listeners {
        let Ok(l) = TcpListener::from_std(l) else {
            continue;
        };
        let config = config.clone();
        let stop = stop.clone();
        let tracker2 = tracker.clone();
        tracker.spawn(accept_loop(config, l, stop, tracker2, slots.clone()));
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

async fn accept_loop(
    config: watch::Receiver<Arc<Runtime>>,
    l: TcpListener,
    mut stop: watch::Receiver<Stop>,
    tracker: tokio_util::task::TaskTracker,
    slots: Arc<Semaphore>,
) {
    let bound = l.local_addr().ok().filter(|a| !a.ip().is_unspecified());
    loop {
        // nginx's worker_connections: past the cap, stop accepting until one closes.
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                tracing::warn!("worker_connections are not enough");
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                    _ = stop.changed() => return,
                }
            }
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
        let _ = stream.set_nodelay(true);
        let id = CONNS.fetch_add(1, Ordering::Relaxed) + 1;
        let src = Source {
            config: config.clone(),
            stop: stop.clone(),
        };
        tracker.spawn(async move {
            start(stream, remote, local, id, src).await;
            drop(permit);
        });
    }
}

/// One accepted TCP connection: the pre-HTTP hook's place, then HTTP/1.
async fn start(
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    local: SocketAddr,
    id: u64,
    src: Source,
) {
    let info = Arc::new(ConnInfo {
        remote,
        local,
        scheme: "http",
        id,
    });
    conn::serve(stream, info, src).await;
}

/// The `listen` entry an accepted connection's local address belongs to.
pub(crate) fn listen_for(rt: &Runtime, local: SocketAddr) -> Option<&Listen> {
    rt.listens
        .iter()
        .find(|l| l.addr == local)
        .or_else(|| {
            rt.listens.iter().find(|l| {
                l.addr.port() == local.port()
                    && l.addr.ip().is_unspecified()
                    && l.addr.is_ipv4() == local.is_ipv4()
            })
        })
        .or_else(|| {
            // IPv4-mapped on a v6 socket and similar: match by port.
            rt.listens.iter().find(|l| l.addr.port() == local.port())
        })
}
