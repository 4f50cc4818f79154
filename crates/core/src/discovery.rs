//! `server NAME … resolve` in an `upstream {}` block (nginx 1.27.3+): the group's
//! servers follow DNS while Junction runs, without a reload.
//!
//! A resolving [`Group`] is a shell around a [`Discovery`]: its server lines in config
//! order (lines with a fixed address, and lines with a name to resolve, each with its
//! `server` parameters) and the *generation* requests use now, an ordinary `Group`
//! reached with [`Group::current`]. One background task per group ([`run`], started
//! with the health checks, never by `-t`) resolves each name through the configured
//! `resolver`, as `ngx_http_upstream_zone_module.c` does:
//! - an answer replaces that line's servers: addresses that stay keep their
//!   [`Server`] (counters, `max_fails` state, active health state, idle keep-alive
//!   connections), new ones get a new server with the line's parameters, removed
//!   ones are retired (their idle connections closed; requests on them finish);
//! - the name is resolved again when the answer expires (its TTL or `valid=`, plus a
//!   second); NXDOMAIN (or no address) empties the line (`N could not be resolved (3:
//!   Host not found)` in the error log) and is asked again after `valid=` or 10 s;
//!   any other failure (timeout, SERVFAIL) keeps the servers and is retried after
//!   `resolver_timeout` (at least a second);
//! - a new generation is built only when a line's addresses changed; the balancing
//!   state of servers that stay is carried over.
//!
//! A name that cannot be resolved at load is not an error: the line starts empty. A
//! request that comes before the first answers waits for them (up to
//! `resolver_timeout`) instead of failing; with no server at all it is nginx's 502
//! "no live upstreams".

use crate::resolver::{ResolveError, ResolverRef};
use crate::upstream::{lock, Group, PeerAddr, Server};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

/// One `server` line of a resolving group.
#[derive(Debug)]
pub struct Line {
    /// A name to resolve (`None`: a fixed line).
    resolve: Option<Resolve>,
    /// Its servers now.
    servers: Vec<Arc<Server>>,
    /// Whether the first lookup of the name ended (answer or error).
    first_done: bool,
}

#[derive(Debug)]
struct Resolve {
    host: String,
    port: u16,
    proto: Server,
}

impl Line {
    /// A line whose addresses were found at load (a literal address, or a name without
    /// `resolve`).
    pub fn fixed(servers: Vec<Server>) -> Line {
        Line {
            resolve: None,
            servers: servers.into_iter().map(Arc::new).collect(),
            first_done: true,
        }
    }

    /// `server HOST:PORT … resolve`: `proto` carries the line's parameters and label.
    pub fn resolve(host: String, port: u16, proto: Server) -> Line {
        Line {
            resolve: Some(Resolve { host, port, proto }),
            servers: Vec::new(),
            first_done: false,
        }
    }
}

/// The DNS side of a resolving group.
#[derive(Debug)]
pub struct Discovery {
    resolver: ResolverRef,
    lines: Mutex<Vec<Line>>,
    current: RwLock<Option<Arc<Group>>>,
    settled: AtomicBool,
    settled_tx: Notify,
    /// How many times the servers changed.
    pub changes: AtomicU64,
}

impl Discovery {
    /// A group's lines and the resolver its names go through.
    pub fn new(resolver: ResolverRef, lines: Vec<Line>) -> Discovery {
        let settled = lines.iter().all(|l| l.first_done);
        Discovery {
            resolver,
            lines: Mutex::new(lines),
            current: RwLock::new(None),
            settled: AtomicBool::new(settled),
            settled_tx: Notify::new(),
            changes: AtomicU64::new(0),
        }
    }

    /// The resolver and timeout in effect.
    pub fn resolver(&self) -> &ResolverRef {
        &self.resolver
    }

    /// The names resolved at run time (`host:port` as written).
    pub fn names(&self) -> Vec<String> {
        lock(&self.lines)
            .iter()
            .filter_map(|l| l.resolve.as_ref().map(|r| r.proto.label.clone()))
            .collect()
    }

    /// Every line's servers now, in config order.
    pub(crate) fn servers(&self) -> Vec<Arc<Server>> {
        lock(&self.lines)
            .iter()
            .flat_map(|l| l.servers.iter().cloned())
            .collect()
    }

    pub(crate) fn install(&self, g: Arc<Group>) {
        match self.current.write() {
            Ok(mut c) => *c = Some(g),
            Err(p) => *p.into_inner() = Some(g),
        }
    }

    /// The generation requests use now.
    pub(crate) fn current(&self) -> Arc<Group> {
        let c = match self.current.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        };
        // Always installed by `Group::resolving`; an empty group otherwise.
        c.unwrap_or_else(|| Group::implicit(String::new(), Vec::new()))
    }

    /// Waits until every name had its first answer (or error), up to
    /// `resolver_timeout`.
    pub(crate) async fn ready(&self) {
        if self.settled.load(Ordering::Acquire) {
            return;
        }
        let n = self.settled_tx.notified();
        tokio::pin!(n);
        n.as_mut().enable();
        if self.settled.load(Ordering::Acquire) {
            return;
        }
        let _ = tokio::time::timeout(self.resolver.timeout, n).await;
    }

    /// Replaces line `i`'s addresses (when they changed) and installs a new
    /// generation of `root`.
    fn update(&self, root: &Group, i: usize, addrs: &[IpAddr]) {
        let mut lines = lock(&self.lines);
        let Some(line) = lines.get_mut(i) else {
            return;
        };
        let Some(r) = &line.resolve else {
            return;
        };
        let mut want: Vec<PeerAddr> = addrs
            .iter()
            .map(|ip| PeerAddr::Tcp(SocketAddr::new(*ip, r.port)))
            .collect();
        want.dedup();
        let same = want.len() == line.servers.len()
            && want
                .iter()
                .all(|a| line.servers.iter().any(|s| s.addr == *a));
        let first = !line.first_done;
        line.first_done = true;
        if !same {
            let mandatory = root.health.as_ref().is_some_and(|h| h.mandatory);
            let old = std::mem::take(&mut line.servers);
            for a in want {
                match old.iter().find(|s| s.addr == a) {
                    Some(s) => line.servers.push(s.clone()),
                    None => {
                        let s = Server::like(&r.proto, a);
                        if mandatory {
                            s.stats.healthy.store(false, Ordering::Release);
                        }
                        line.servers.push(Arc::new(s));
                    }
                }
            }
            for s in &old {
                if !line.servers.iter().any(|n| Arc::ptr_eq(n, s)) {
                    s.retire();
                }
            }
            let names: Vec<&str> = line.servers.iter().map(|s| s.name.as_str()).collect();
            tracing::info!(
                "upstream \"{}\": {} resolved to [{}]",
                root.name,
                r.host,
                names.join(", ")
            );
            let servers = lines
                .iter()
                .flat_map(|l| l.servers.iter().cloned())
                .collect();
            let gen = Group::generation(root.parts(), servers, &self.current());
            self.install(gen);
            self.changes.fetch_add(1, Ordering::Relaxed);
        }
        if first && lines.iter().all(|l| l.first_done) {
            self.settled.store(true, Ordering::Release);
            self.settled_tx.notify_waiters();
        }
    }

    /// Notes that line `i`'s first lookup failed (its servers stay as they are).
    fn failed_first(&self, i: usize) {
        let mut lines = lock(&self.lines);
        if let Some(l) = lines.get_mut(i) {
            l.first_done = true;
        }
        if lines.iter().all(|l| l.first_done) {
            self.settled.store(true, Ordering::Release);
            self.settled_tx.notify_waiters();
        }
    }
}

/// The resolving task of `group` (returns at once for a group that does not
/// resolve). Runs until dropped.
pub async fn run(group: Arc<Group>) {
    let Some(d) = group.discovery().cloned() else {
        return;
    };
    let Some(resolver) = d.resolver.resolver.clone() else {
        return;
    };
    let timeout = d.resolver.timeout;
    let names: Vec<(usize, String)> = lock(&d.lines)
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.resolve.as_ref().map(|r| (i, r.host.clone())))
        .collect();
    let loops = names.into_iter().map(|(i, host)| {
        let (d, group, resolver) = (d.clone(), group.clone(), resolver.clone());
        async move {
            loop {
                let next = match resolver.resolve(&host, timeout).await {
                    Ok(found) => {
                        d.update(&group, i, &found.addrs);
                        tokio::time::Instant::from_std(found.valid_until) + Duration::from_secs(1)
                    }
                    Err(e) => {
                        tracing::error!("{host} could not be resolved ({e})");
                        if e == ResolveError::NotFound {
                            d.update(&group, i, &[]);
                            let valid = resolver.conf().valid.unwrap_or(Duration::from_secs(10));
                            tokio::time::Instant::now() + valid + Duration::from_secs(1)
                        } else {
                            d.failed_first(i);
                            tokio::time::Instant::now() + timeout.max(Duration::from_secs(1))
                        }
                    }
                };
                tokio::time::sleep_until(next).await;
            }
        }
    });
    futures_util::future::join_all(loops).await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::upstream::{GroupSpec, Outcome};

    fn proto(label: &str) -> Server {
        let mut s = Server::new(PeerAddr::Tcp("0.0.0.0:0".parse().unwrap()));
        s.label = label.into();
        s.max_fails = 3;
        s
    }

    #[test]
    fn servers_follow_the_answers_and_keep_their_state() {
        let fixed = Server::new(PeerAddr::Tcp("127.0.0.1:1".parse().unwrap()));
        let d = Discovery::new(
            ResolverRef::default(),
            vec![
                Line::fixed(vec![fixed]),
                Line::resolve("app.test".into(), 8000, proto("app.test:8000")),
            ],
        );
        let g = Group::resolving(
            GroupSpec {
                name: "u".into(),
                ..GroupSpec::default()
            },
            d,
        );
        let disc = g.discovery().unwrap().clone();
        assert_eq!(g.current().servers.len(), 1, "the fixed line only");
        assert!(!disc.settled.load(Ordering::Acquire));
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        disc.update(&g, 1, &[a, b]);
        assert!(disc.settled.load(Ordering::Acquire));
        let gen1 = g.current();
        let names: Vec<&str> = gen1.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["127.0.0.1:1", "127.0.0.2:8000", "127.0.0.3:8000"]);
        assert!(gen1.servers[1].max_fails == 3 && gen1.servers[1].label == "app.test:8000");
        // a failure on a staying address is remembered across the change
        gen1.report(1, Outcome::Failed);
        let kept = gen1.servers[1].clone();
        let gone = gen1.servers[2].clone();
        disc.update(&g, 1, &[a]);
        let gen2 = g.current();
        assert_eq!(gen2.servers.len(), 2);
        assert!(Arc::ptr_eq(&gen2.servers[1], &kept));
        assert_eq!(kept.stats.fails.load(Ordering::Relaxed), 1);
        assert_eq!(
            lock(&gen2.state)[1].fails,
            1,
            "passive health state carried over"
        );
        assert!(gone.retired.load(Ordering::Acquire));
        // the same answer again: no new generation
        disc.update(&g, 1, &[a]);
        assert!(Arc::ptr_eq(&gen2, &g.current()));
        assert_eq!(disc.changes.load(Ordering::Relaxed), 2);
        // NXDOMAIN empties the line
        disc.update(&g, 1, &[]);
        assert_eq!(g.current().servers.len(), 1);
    }
}
