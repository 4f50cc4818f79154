//! The listening sockets of the process across reloads and binary upgrades, and the
//! worker loop that takes sockets added and removed while it runs.
//!
//! [`Sockets`] is the master's own copy of every listening socket, by address
//! ([`SockKey`]); each worker serves duplicates of them (`dup(2)`, the same socket).
//! - **Start**: [`Sockets::open`] binds what the configuration wants, or takes it from
//!   the sockets inherited from the old binary (matched by address: `getsockname`).
//!   A TCP address has one `SO_REUSEPORT` socket per worker; the sockets inherited for
//!   it are *all* kept (the old process's per-worker sockets, with the connections in
//!   their accept queues) and shared round-robin over the workers, and more siblings
//!   are bound when there are fewer than workers. Binding fresh siblings instead would
//!   lose the connections queued on the old sockets when the old process closes them.
//!   A unix socket is one socket, shared by every worker.
//! - **Reload** ([`Sockets::update`], nginx's `ngx_init_cycle`): sockets of addresses
//!   that stay are kept as they are (no re-bind, nothing dropped); new addresses are
//!   bound first, all or nothing (a failed `bind()` fails the reload and changes
//!   nothing); removed addresses are closed: each worker stops accepting on them and
//!   their connections finish as in a graceful stop (the request in flight completes,
//!   keep-alive ends). A removed unix socket's file is deleted, as nginx does.
//! - **Binary upgrade**: [`Sockets::fds`] are the sockets handed to the new binary.
//!
//! A `listen` that stays with other options: `backlog=`, `rcvbuf=`, `sndbuf=` and
//! `so_keepalive=` are applied to its kept sockets (as nginx does); `ipv6only=`,
//! `reuseport` and `bind` would need a new socket and keep their old values.

use crate::build::Runtime;
use crate::listen::{self, Bound, ListenOpts, Slots};
use crate::serve::Stop;
use std::fmt;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// What a listening socket is known by: its address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SockKey {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix socket's path.
    Unix(PathBuf),
}

impl fmt::Display for SockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SockKey::Tcp(a) => write!(f, "{a}"),
            SockKey::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A change a worker applies while it runs.
#[derive(Debug)]
pub enum Change {
    /// Serve these sockets (a new address) too.
    Add(SockKey, Vec<Bound>),
    /// Stop accepting on this address; its connections finish gracefully.
    Remove(SockKey),
}

/// The sockets one worker serves, with their addresses.
pub type Assigned = Vec<(SockKey, Bound)>;

/// What a reload changed: the addresses added and removed, and each worker's changes.
#[derive(Debug, Default)]
pub struct Update {
    /// Addresses bound by this reload.
    pub added: Vec<SockKey>,
    /// Addresses closed by this reload.
    pub removed: Vec<SockKey>,
    /// Per worker, the changes to send it (removals first).
    pub per_worker: Vec<Vec<Change>>,
}

/// The process's listening sockets (the master's copies).
#[derive(Debug)]
pub struct Sockets {
    workers: usize,
    sets: Vec<(SockKey, Vec<Bound>)>,
    /// The options each address was last configured with.
    opts: Vec<(SockKey, ListenOpts)>,
}

/// The sockets a configuration wants, in its order: a wildcard address covers the
/// specific ones on its port (unless they say `bind`), as in [`listen::bind_all`].
fn wanted(rt: &Runtime) -> Vec<(SockKey, ListenOpts)> {
    let mut out: Vec<(SockKey, ListenOpts)> = Vec::new();
    for l in &rt.listens {
        let key = match &l.unix {
            Some(p) => SockKey::Unix(p.clone()),
            None => {
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
                SockKey::Tcp(l.addr)
            }
        };
        if !out.iter().any(|(k, _)| *k == key) {
            out.push((key, l.opts.clone()));
        }
    }
    out
}

fn dup(b: &Bound) -> std::io::Result<Bound> {
    Ok(match b {
        Bound::Tcp(l) => Bound::Tcp(l.try_clone()?),
        Bound::Unix(l, p) => Bound::Unix(l.try_clone()?, p.clone()),
    })
}

fn fd_of(b: &Bound) -> BorrowedFd<'_> {
    match b {
        Bound::Tcp(l) => l.as_fd(),
        Bound::Unix(l, _) => l.as_fd(),
    }
}

/// An inherited socket, by the address it is bound to; `None` for anything that is
/// not a listening stream socket.
fn adopt(fd: OwnedFd) -> Option<(SockKey, Bound)> {
    let s = socket2::Socket::from(fd);
    if !s.is_listener().unwrap_or(false) || s.r#type().ok()? != socket2::Type::STREAM {
        return None;
    }
    let addr = s.local_addr().ok()?;
    s.set_nonblocking(true).ok()?;
    if let Some(a) = addr.as_socket() {
        return Some((SockKey::Tcp(a), Bound::Tcp(s.into())));
    }
    let path = addr.as_pathname()?.to_path_buf();
    Some((
        SockKey::Unix(path.clone()),
        Bound::Unix(
            std::os::unix::net::UnixListener::from(OwnedFd::from(s)),
            path,
        ),
    ))
}

/// Applies changed options to the kept sockets of an address; a failure is logged
/// and ignored, as nginx does.
fn reconfigure(key: &SockKey, socks: &[Bound], old: &ListenOpts, new: &ListenOpts) {
    for b in socks {
        let s = match b {
            Bound::Tcp(l) => socket2::SockRef::from(l),
            Bound::Unix(l, _) => socket2::SockRef::from(l),
        };
        let warn = |what: &str, e: std::io::Error| {
            tracing::warn!("{what} {key} failed ({e}), ignored");
        };
        if new.backlog != old.backlog {
            if let Err(e) = s.listen(new.backlog.unwrap_or(511)) {
                warn("listen() to", e);
            }
        }
        if let (Some(n), true) = (new.rcvbuf, new.rcvbuf != old.rcvbuf) {
            if let Err(e) = s.set_recv_buffer_size(n) {
                warn("setsockopt(SO_RCVBUF) for", e);
            }
        }
        if let (Some(n), true) = (new.sndbuf, new.sndbuf != old.sndbuf) {
            if let Err(e) = s.set_send_buffer_size(n) {
                warn("setsockopt(SO_SNDBUF) for", e);
            }
        }
        if let (Bound::Tcp(_), true) = (b, new.so_keepalive != old.so_keepalive) {
            let on = matches!(new.so_keepalive, Some(listen::KeepaliveOpt::On { .. }));
            if let Err(e) = s.set_keepalive(on) {
                warn("setsockopt(SO_KEEPALIVE) for", e);
            }
            if let Some(listen::KeepaliveOpt::On { idle, intvl, cnt }) = new.so_keepalive {
                let mut k = socket2::TcpKeepalive::new();
                if let Some(t) = idle {
                    k = k.with_time(std::time::Duration::from_secs(t));
                }
                if let Some(t) = intvl {
                    k = k.with_interval(std::time::Duration::from_secs(t));
                }
                if let Some(c) = cnt {
                    k = k.with_retries(c);
                }
                if idle.is_some() || intvl.is_some() || cnt.is_some() {
                    if let Err(e) = s.set_tcp_keepalive(&k) {
                        warn("setsockopt(TCP_KEEP*) for", e);
                    }
                }
            }
        }
    }
}

/// Binds one address's sockets: `n` for TCP (`SO_REUSEPORT` siblings), one for unix.
fn bind(key: &SockKey, opts: &ListenOpts, n: usize) -> std::io::Result<Vec<Bound>> {
    match key {
        SockKey::Unix(p) => Ok(vec![Bound::Unix(
            listen::bind_unix(p, opts.backlog)?,
            p.clone(),
        )]),
        SockKey::Tcp(a) => (0..n)
            .map(|_| listen::bind_one(*a, opts).map(Bound::Tcp))
            .collect(),
    }
}

impl Sockets {
    /// Binds the configuration's sockets for `workers` workers, taking the inherited
    /// ones (from the old binary) whose address matches; inherited sockets no
    /// address wants are closed. Returns the sockets and what each worker serves.
    pub fn open(
        rt: &Runtime,
        workers: usize,
        inherited: Vec<OwnedFd>,
    ) -> std::io::Result<(Sockets, Vec<Assigned>)> {
        let workers = workers.max(1);
        let mut pool: Vec<(SockKey, Bound)> = inherited.into_iter().filter_map(adopt).collect();
        let mut sets = Vec::new();
        for (key, opts) in wanted(rt) {
            let mut mine: Vec<Bound> = Vec::new();
            let mut i = 0;
            while i < pool.len() {
                if pool.get(i).is_some_and(|(k, _)| *k == key) {
                    mine.push(pool.swap_remove(i).1);
                } else {
                    i += 1;
                }
            }
            if !mine.is_empty() {
                tracing::info!("using {} inherited socket(s) for {key}", mine.len());
            }
            let want = match key {
                SockKey::Tcp(_) => workers,
                SockKey::Unix(_) => 1,
            };
            if mine.len() < want {
                mine.extend(bind(&key, &opts, want - mine.len())?);
            }
            sets.push((key, mine));
        }
        for (key, _) in &pool {
            tracing::info!("closing inherited socket {key}: not in the configuration");
        }
        let s = Sockets {
            workers,
            sets,
            opts: wanted(rt),
        };
        let per_worker = s.for_workers()?;
        Ok((s, per_worker))
    }

    /// What each worker serves: duplicates of the sockets, TCP ones spread
    /// round-robin (each worker its own), unix ones shared.
    pub fn for_workers(&self) -> std::io::Result<Vec<Assigned>> {
        let mut out: Vec<Assigned> = (0..self.workers).map(|_| Vec::new()).collect();
        for (key, socks) in &self.sets {
            for (w, socks) in self.share(socks)?.into_iter().enumerate() {
                if let Some(list) = out.get_mut(w) {
                    list.extend(socks.into_iter().map(|b| (key.clone(), b)));
                }
            }
        }
        Ok(out)
    }

    /// One address's sockets, duplicated per worker.
    fn share(&self, socks: &[Bound]) -> std::io::Result<Vec<Vec<Bound>>> {
        let mut out: Vec<Vec<Bound>> = (0..self.workers).map(|_| Vec::new()).collect();
        for (i, b) in socks.iter().enumerate() {
            match b {
                Bound::Unix(..) => {
                    for w in out.iter_mut() {
                        w.push(dup(b)?);
                    }
                }
                Bound::Tcp(_) => {
                    if let Some(w) = out.get_mut(i % self.workers) {
                        w.push(dup(b)?);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Applies a new configuration's addresses: binds the new ones (all or nothing:
    /// on an error nothing changed), closes the removed ones (here; the workers close
    /// theirs when they apply [`Update::per_worker`]).
    pub fn update(&mut self, rt: &Runtime) -> std::io::Result<Update> {
        let want = wanted(rt);
        let mut fresh: Vec<(SockKey, Vec<Bound>)> = Vec::new();
        for (key, opts) in &want {
            if !self.sets.iter().any(|(k, _)| k == key) {
                let n = match key {
                    SockKey::Tcp(_) => self.workers,
                    SockKey::Unix(_) => 1,
                };
                // An error drops (closes) what this reload bound so far.
                fresh.push((key.clone(), bind(key, opts, n)?));
            }
        }
        let mut up = Update {
            per_worker: (0..self.workers).map(|_| Vec::new()).collect(),
            ..Update::default()
        };
        let mut kept = Vec::with_capacity(want.len());
        for (key, socks) in std::mem::take(&mut self.sets) {
            if want.iter().any(|(k, _)| *k == key) {
                kept.push((key, socks));
                continue;
            }
            for w in up.per_worker.iter_mut() {
                w.push(Change::Remove(key.clone()));
            }
            drop(socks);
            if let SockKey::Unix(p) = &key {
                tracing::warn!("deleting socket {}", p.display());
                let _ = std::fs::remove_file(p);
            }
            up.removed.push(key);
        }
        for (key, socks) in fresh {
            for (w, mine) in self.share(&socks)?.into_iter().enumerate() {
                if let Some(list) = up.per_worker.get_mut(w) {
                    list.push(Change::Add(key.clone(), mine));
                }
            }
            up.added.push(key.clone());
            kept.push((key, socks));
        }
        // The configuration's order (it does not matter to the kernel, only to logs).
        kept.sort_by_key(|(k, _)| want.iter().position(|(w, _)| w == k));
        // Kept sockets take the options that can change on a listening socket
        // (nginx's ngx_configure_listening_sockets): backlog, buffers, keep-alive.
        for (key, socks) in &kept {
            let old = self.opts.iter().find(|(k, _)| k == key).map(|(_, o)| o);
            let new = want.iter().find(|(k, _)| k == key).map(|(_, o)| o);
            if let (Some(old), Some(new)) = (old, new) {
                if old != new {
                    reconfigure(key, socks, old, new);
                }
            }
        }
        self.sets = kept;
        self.opts = want;
        Ok(up)
    }

    /// Closes the master's copies (a stop: the workers close theirs as they stop).
    /// The files of unix sockets are removed unless `keep_files` (a new binary
    /// serves them).
    pub fn close(&mut self, keep_files: bool) {
        for (key, socks) in self.sets.drain(..) {
            drop(socks);
            if let (SockKey::Unix(p), false) = (&key, keep_files) {
                let _ = std::fs::remove_file(p);
            }
        }
    }

    /// The number of workers the sockets are shared over.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Shares the sockets over `workers` workers from now on ([`Sockets::for_workers`]),
    /// binding more `SO_REUSEPORT` siblings where a TCP address has fewer sockets; an
    /// error leaves the count as it was.
    pub fn resize(&mut self, workers: usize) -> std::io::Result<()> {
        let workers = workers.max(1);
        let mut more: Vec<(usize, Vec<Bound>)> = Vec::new();
        for (i, (key, socks)) in self.sets.iter().enumerate() {
            if let SockKey::Tcp(_) = key {
                if socks.len() < workers {
                    let opts = self
                        .opts
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, o)| o.clone())
                        .unwrap_or_default();
                    more.push((i, bind(key, &opts, workers - socks.len())?));
                }
            }
        }
        for (i, socks) in more {
            if let Some((_, set)) = self.sets.get_mut(i) {
                set.extend(socks);
            }
        }
        self.workers = workers;
        Ok(())
    }

    /// Every socket, for handing over to a new binary.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.sets
            .iter()
            .flat_map(|(_, socks)| socks.iter().map(fd_of))
            .collect()
    }

    /// The addresses bound, in order.
    pub fn keys(&self) -> Vec<SockKey> {
        self.sets.iter().map(|(k, _)| k.clone()).collect()
    }
}

/// A timer always due within a second, for the worker's whole life.
///
/// tokio's time driver wakes its thread through the I/O driver's eventfd (a `write(2)`)
/// whenever a timer is set earlier than the earliest one it will wake for, or when it
/// has none, even when the timer is set from that thread while it runs. That cost one
/// syscall per keep-alive request (a request's timeouts set while the driver had none
/// due sooner) and one per `Connection: close` connection (a worker between two has no
/// timer at all). With this timer armed, every usual timeout (a second or more) is
/// later than the driver's next wake, and setting one costs nothing; the price is one
/// wake-up a second.
async fn timer_anchor() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

/// One worker: serves its sockets, takes the [`Change`]s a reload sends, until `stop`
/// says otherwise (a graceful stop waits for every connection to finish).
pub async fn serve(
    config: watch::Receiver<Arc<Runtime>>,
    initial: Assigned,
    mut stop: watch::Receiver<Stop>,
    mut changes: mpsc::UnboundedReceiver<Change>,
) {
    let tracker = tokio_util::task::TaskTracker::new();
    let _anchor = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(timer_anchor()));
    // Declared after the anchor, so dropped first: every kept timer goes while the
    // worker's runtime still runs.
    let _timers = junction_core::time::TimerReuse::enable();
    let slots = Slots::new(config.borrow().main.worker_connections);
    // Each socket's own stop: the process's, or a graceful one of its own when its
    // address is removed (its connections then finish as in a graceful stop).
    let mut active: Vec<(SockKey, watch::Sender<Stop>)> = Vec::new();
    // The accept loops, to know when every one has stopped accepting.
    let mut loops: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    // Senders of removed sockets stay alive: a dropped sender would wake their
    // connections' waits as if stopped again.
    let mut retired: Vec<watch::Sender<Stop>> = Vec::new();
    let start = |key: SockKey,
                 b: Bound,
                 active: &mut Vec<(SockKey, watch::Sender<Stop>)>,
                 loops: &mut Vec<tokio::task::JoinHandle<()>>| {
        let (tx, rx) = watch::channel(Stop::Run);
        loops.retain(|h| !h.is_finished());
        match b {
            Bound::Tcp(l) => match TcpListener::from_std(l) {
                Ok(l) => {
                    loops.push(tracker.spawn(listen::accept_loop(
                        config.clone(),
                        l,
                        rx,
                        tracker.clone(),
                        slots.clone(),
                    )));
                }
                Err(e) => tracing::error!("cannot serve {key}: {e}"),
            },
            Bound::Unix(l, path) => match tokio::net::UnixListener::from_std(l) {
                Ok(l) => {
                    loops.push(tracker.spawn(listen::accept_unix(
                        config.clone(),
                        l,
                        path,
                        rx,
                        tracker.clone(),
                        slots.clone(),
                    )));
                }
                Err(e) => tracing::error!("cannot serve {key}: {e}"),
            },
        }
        active.push((key, tx));
    };
    for (key, b) in initial {
        start(key, b, &mut active, &mut loops);
    }
    let mut open = true;
    let how = loop {
        let now = *stop.borrow_and_update();
        if now != Stop::Run {
            break now;
        }
        tokio::select! {
            r = stop.changed() => if r.is_err() { break Stop::Fast },
            c = changes.recv(), if open => match c {
                None => open = false,
                Some(Change::Add(key, socks)) => {
                    for b in socks {
                        start(key.clone(), b, &mut active, &mut loops);
                    }
                }
                Some(Change::Remove(key)) => {
                    let mut i = 0;
                    while i < active.len() {
                        if active.get(i).is_some_and(|(k, _)| *k == key) {
                            let (_, tx) = active.swap_remove(i);
                            let _ = tx.send(Stop::Graceful);
                            retired.push(tx);
                        } else {
                            i += 1;
                        }
                    }
                }
            },
        }
    };
    for (_, tx) in &active {
        let _ = tx.send(how);
    }
    for tx in &retired {
        let _ = tx.send(how);
    }
    if how == Stop::Graceful {
        // nginx's worker lines: once no socket accepts any more, and at the end.
        for h in loops {
            let _ = h.await;
        }
        tracing::info!("gracefully shutting down");
        tracker.close();
        // A fast stop while draining ends it (the runtime's shutdown drops the rest).
        let fast = async {
            loop {
                if stop.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
                if *stop.borrow() == Stop::Fast {
                    return;
                }
            }
        };
        tokio::select! {
            _ = tracker.wait() => tracing::info!("exiting"),
            _ = fast => {}
        }
    }
}
