//! nginx's `resolver`: host names looked up at run time through the DNS servers the
//! configuration names (never `/etc/resolv.conf` or `/etc/hosts`), for `*_pass` with
//! variables and for `server NAME … resolve` in `upstream {}` blocks.
//!
//! The DNS client is `hickory-resolver` (UDP, TCP when an answer is truncated), built
//! on first use, so `junction -t` opens no socket. On top of it, as
//! `ngx_resolver.c` does:
//! - answers are cached for their TTL, or for `valid=` when it is set; a failed
//!   lookup is cached for `valid=` or 10 seconds;
//! - concurrent lookups of one name wait for one query (one lock per name);
//! - a lookup gives up after `resolver_timeout` (nginx's `ctx->timeout`); a server that
//!   cannot be reached is tried again until then, as nginx resends its query;
//! - A and AAAA records are asked for (`ipv4=`/`ipv6=` switch either off);
//! - errors carry nginx's codes and words: `(3: Host not found)` for NXDOMAIN and
//!   for a name without addresses, `(2: Server failure)`, `(5: Operation refused)`,
//!   `(110: Operation timed out)`.
//!
//! Several addresses are asked in turn (two at a time, hickory's default), so one dead
//! server does not fail a lookup.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// nginx's default `resolver_timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a failed lookup is remembered without `valid=` (nginx: 10 s).
const ERROR_VALID: Duration = Duration::from_secs(10);

/// How long one query waits for an answer before it is sent again (nginx's
/// `resend_timeout`, 5 s; shorter when `resolver_timeout` is).
const RESEND: Duration = Duration::from_secs(5);

/// Cached names beyond which expired entries are dropped.
const CACHE_PRUNE_AT: usize = 1024;

/// `resolver ADDRESS … [valid=TIME] [ipv4=on|off] [ipv6=on|off]`, as read at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConf {
    /// The DNS servers (port 53 unless given).
    pub servers: Vec<SocketAddr>,
    /// `valid=`: overrides the TTL of answers.
    pub valid: Option<Duration>,
    /// `ipv4=` (default on).
    pub ipv4: bool,
    /// `ipv6=` (default on).
    pub ipv6: bool,
}

/// Why a name could not be resolved, with nginx's code and text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveError {
    /// FORMERR (1).
    Format,
    /// SERVFAIL (2).
    ServerFailure,
    /// NXDOMAIN, or no address of the asked family (3).
    NotFound,
    /// NOTIMP (4).
    Unimplemented,
    /// REFUSED (5).
    Refused,
    /// No answer within `resolver_timeout` (110).
    TimedOut,
    /// Anything else.
    Unknown,
}

impl ResolveError {
    /// nginx's `ctx->state` for this error.
    pub fn code(self) -> u32 {
        match self {
            ResolveError::Format => 1,
            ResolveError::ServerFailure => 2,
            ResolveError::NotFound => 3,
            ResolveError::Unimplemented => 4,
            ResolveError::Refused => 5,
            ResolveError::TimedOut => 110,
            ResolveError::Unknown => 0,
        }
    }
}

impl std::fmt::Display for ResolveError {
    /// `ngx_resolver_strerror`, with its code: `3: Host not found`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            ResolveError::Format => "Format error",
            ResolveError::ServerFailure => "Server failure",
            ResolveError::NotFound => "Host not found",
            ResolveError::Unimplemented => "Unimplemented",
            ResolveError::Refused => "Operation refused",
            ResolveError::TimedOut => "Operation timed out",
            ResolveError::Unknown => "Unknown error",
        };
        write!(f, "{}: {text}", self.code())
    }
}

/// The addresses of a name, and until when they hold.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The addresses, in the order of the answer (IPv4 first, as nginx lists them).
    pub addrs: Arc<[IpAddr]>,
    /// When the answer expires (TTL or `valid=`).
    pub valid_until: Instant,
}

type Answer = Result<Resolved, ResolveError>;

/// One cached name: the lock concurrent lookups of it wait on, and the last answer.
type Slot = Arc<tokio::sync::Mutex<Option<(Answer, Instant)>>>;

/// A `resolver` of the configuration: shared by every place that inherits it.
pub struct Resolver {
    conf: ResolverConf,
    client: OnceLock<hickory_resolver::TokioAsyncResolver>,
    cache: Mutex<HashMap<String, Slot>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("conf", &self.conf)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver for `conf` (the DNS client itself is made on first use).
    pub fn new(conf: ResolverConf) -> Arc<Resolver> {
        Arc::new(Resolver {
            conf,
            client: OnceLock::new(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// What it was built from.
    pub fn conf(&self) -> &ResolverConf {
        &self.conf
    }

    fn client(&self) -> &hickory_resolver::TokioAsyncResolver {
        self.client.get_or_init(|| {
            use hickory_resolver::config::{
                LookupIpStrategy, NameServerConfig, Protocol, ResolverConfig, ResolverOpts,
            };
            let mut rc = ResolverConfig::new();
            for sa in &self.conf.servers {
                rc.add_name_server(NameServerConfig::new(*sa, Protocol::Udp));
                rc.add_name_server(NameServerConfig::new(*sa, Protocol::Tcp));
            }
            let mut o = ResolverOpts::default();
            o.ndots = 0;
            o.use_hosts_file = false;
            o.timeout = RESEND;
            o.attempts = 1;
            o.ip_strategy = match (self.conf.ipv4, self.conf.ipv6) {
                (true, true) => LookupIpStrategy::Ipv4AndIpv6,
                (false, true) => LookupIpStrategy::Ipv6Only,
                _ => LookupIpStrategy::Ipv4Only,
            };
            // Junction keeps the answers itself (below); hickory's own cache never
            // holds one longer.
            o.cache_size = 0;
            o.preserve_intermediates = false;
            hickory_resolver::TokioAsyncResolver::tokio(rc, o)
        })
    }

    /// The addresses of `host` (a name; literal addresses are the caller's), from the
    /// cache while it is valid, else asked within `timeout`. A failure is cached too.
    pub async fn resolve(&self, host: &str, timeout: Duration) -> Answer {
        let lower;
        let key = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = host.to_ascii_lowercase();
            lower.as_str()
        } else {
            host
        };
        let slot = {
            let mut cache = crate::upstream::lock(&self.cache);
            // The usual case: a known name (no allocation).
            match cache.get(key) {
                Some(slot) => slot.clone(),
                None => {
                    if cache.len() >= CACHE_PRUNE_AT {
                        // Names may come from requests (`proxy_pass http://$http_host`):
                        // expired answers go first, past four times the mark every
                        // settled one.
                        let now = Instant::now();
                        cache.retain(|_, s| {
                            s.try_lock()
                                .map_or(true, |g| g.as_ref().is_some_and(|(_, until)| *until > now))
                        });
                        if cache.len() >= 4 * CACHE_PRUNE_AT {
                            cache.retain(|_, s| s.try_lock().is_err());
                        }
                    }
                    cache.entry(key.to_string()).or_default().clone()
                }
            }
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let Ok(mut entry) = tokio::time::timeout_at(deadline, slot.lock()).await else {
            return Err(ResolveError::TimedOut);
        };
        if let Some((answer, until)) = entry.as_ref() {
            if *until > Instant::now() {
                return answer.clone();
            }
        }
        let answer = self.query(key, deadline).await;
        let until = match &answer {
            Ok(r) => r.valid_until,
            Err(_) => Instant::now() + self.conf.valid.unwrap_or(ERROR_VALID),
        };
        // A timeout is not an answer: the next lookup asks again.
        if !matches!(answer, Err(ResolveError::TimedOut)) {
            *entry = Some((answer.clone(), until));
        }
        answer
    }

    /// Asks the servers until `deadline`: one that cannot be reached is asked again
    /// (nginx resends its query until `resolver_timeout`).
    async fn query(&self, host: &str, deadline: tokio::time::Instant) -> Answer {
        use hickory_resolver::error::ResolveErrorKind as K;
        use hickory_resolver::proto::op::ResponseCode as R;
        let fqdn = if host.ends_with('.') {
            host.to_string()
        } else {
            format!("{host}.")
        };
        loop {
            let r = tokio::time::timeout_at(deadline, self.client().lookup_ip(fqdn.as_str())).await;
            let e = match r {
                Err(_) => return Err(ResolveError::TimedOut),
                Ok(Ok(lookup)) => {
                    let mut addrs: Vec<IpAddr> = lookup.iter().collect();
                    // nginx lists the A records, then the AAAA ones.
                    addrs.sort_by_key(|a| a.is_ipv6());
                    addrs.dedup();
                    if addrs.is_empty() {
                        return Err(ResolveError::NotFound);
                    }
                    let ttl_until = lookup.valid_until();
                    let valid_until = match self.conf.valid {
                        Some(v) => Instant::now() + v,
                        None => ttl_until,
                    };
                    return Ok(Resolved {
                        addrs: addrs.into(),
                        valid_until,
                    });
                }
                Ok(Err(e)) => e,
            };
            match e.kind() {
                K::NoRecordsFound { response_code, .. } => {
                    return Err(match *response_code {
                        R::NoError | R::NXDomain => ResolveError::NotFound,
                        R::FormErr => ResolveError::Format,
                        R::ServFail => ResolveError::ServerFailure,
                        R::NotImp => ResolveError::Unimplemented,
                        R::Refused => ResolveError::Refused,
                        _ => ResolveError::Unknown,
                    })
                }
                K::Message(_) | K::Msg(_) => return Err(ResolveError::Unknown),
                _ => {
                    // Unreachable, or no answer yet: ask again, a little later.
                    tracing::debug!("resolving {host}: {e}; asking again");
                    let pause = tokio::time::Instant::now() + Duration::from_millis(500);
                    if pause >= deadline {
                        tokio::time::sleep_until(deadline).await;
                        return Err(ResolveError::TimedOut);
                    }
                    tokio::time::sleep_until(pause).await;
                }
            }
        }
    }
}

/// The `resolver` and `resolver_timeout` in effect at one place of the configuration.
#[derive(Debug, Clone)]
pub struct ResolverRef {
    /// The resolver (`None`: no `resolver` directive applies).
    pub resolver: Option<Arc<Resolver>>,
    /// `resolver_timeout`.
    pub timeout: Duration,
}

impl Default for ResolverRef {
    fn default() -> Self {
        ResolverRef {
            resolver: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// The error of a `*_pass` with variables whose host cannot be resolved (502, logged
/// as nginx does).
fn pass_error(host: &str, e: ResolveError) -> crate::Error {
    crate::Error::new(
        crate::ErrorKind::Connect,
        format!("{host} could not be resolved ({e})"),
    )
}

impl ResolverRef {
    /// The addresses of a `*_pass` target with variables, evaluated for this request:
    /// a unix path or a literal address as is; a name through the resolver (with the
    /// target's port, else `default_port`). Without a resolver: nginx's 502 `no
    /// resolver defined to resolve NAME`.
    pub async fn pass_addrs(
        &self,
        target: &str,
        default_port: u16,
    ) -> Result<Vec<crate::upstream::PeerAddr>, crate::Error> {
        use crate::upstream::PeerAddr;
        if let Ok(done) = crate::upstream::literal(target, default_port) {
            return Ok(done);
        }
        let (host, port) = split_host_port(target, default_port).ok_or_else(|| {
            crate::Error::internal(format!("invalid port in upstream \"{target}\""))
        })?;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![PeerAddr::Tcp(SocketAddr::new(ip, port))]);
        }
        let Some(r) = &self.resolver else {
            return Err(crate::Error::new(
                crate::ErrorKind::Connect,
                format!("no resolver defined to resolve {host}"),
            ));
        };
        let found = r
            .resolve(host, self.timeout)
            .await
            .map_err(|e| pass_error(host, e))?;
        // As nginx hands out a cached answer (`ngx_resolver_export` with rotation):
        // starting at a random address, so requests spread over all of them.
        let n = found.addrs.len();
        let start = if n > 1 {
            (crate::balance::random_u64() % n as u64) as usize
        } else {
            0
        };
        Ok(found
            .addrs
            .iter()
            .cycle()
            .skip(start)
            .take(n)
            .map(|ip| PeerAddr::Tcp(SocketAddr::new(*ip, port)))
            .collect())
    }
}

/// A CGI-style `*_pass` with variables (uwsgi, SCGI), evaluated per request: the
/// value, without one of `schemes` (`uwsgi://`), names an `upstream`, a `unix:/path`
/// or a `host:port` (a port is required, as nginx says: `no port in upstream`).
#[derive(Debug)]
pub struct VarTarget {
    /// The `*_pass` value.
    pub target: crate::vars::Template,
    /// The URL prefixes accepted (lower case).
    pub schemes: Vec<String>,
    /// The `upstream {}` groups by name.
    pub upstreams: HashMap<String, Arc<crate::upstream::Group>>,
    /// `resolver` / `resolver_timeout` where the `*_pass` is.
    pub resolver: ResolverRef,
}

impl VarTarget {
    /// The group of this request.
    pub async fn group(
        &self,
        cx: &crate::ctx::RequestCtx,
    ) -> Result<Arc<crate::upstream::Group>, crate::Error> {
        let v = self.target.eval_string(cx);
        let t = self
            .schemes
            .iter()
            .find_map(|s| {
                v.get(..s.len())
                    .filter(|p| p.eq_ignore_ascii_case(s))
                    .and_then(|_| v.get(s.len()..))
            })
            .unwrap_or(&v);
        if let Some(g) = self.upstreams.get(t) {
            return Ok(g.current_ready().await);
        }
        if t.contains("://") {
            return Err(crate::Error::internal(format!(
                "invalid host in upstream \"{v}\""
            )));
        }
        if !t.starts_with("unix:") && !has_port(t) {
            return Err(crate::Error::internal(format!(
                "no port in upstream \"{t}\""
            )));
        }
        let addrs = self.resolver.pass_addrs(t, 0).await?;
        Ok(crate::upstream::Group::implicit(t.to_string(), addrs))
    }
}

/// Whether a `*_pass` target names a port (`host:port`, `[v6]:port`): CGI-style
/// protocols have no default port, so nginx requires one.
pub fn has_port(target: &str) -> bool {
    target.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && !port.is_empty()
            && port.bytes().all(|c| c.is_ascii_digit())
            && (!host.contains(':') || host.ends_with(']'))
    })
}

/// `host[:port]` (IPv6 in brackets) → (host, port); `None` for a bad port.
pub fn split_host_port(target: &str, default_port: u16) -> Option<(&str, u16)> {
    if let Some(rest) = target.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((h, p.parse().ok()?)),
            None if after.is_empty() => Some((h, default_port)),
            None => None,
        };
    }
    match target.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, p.parse().ok()?)),
        Some(_) => Some((target, default_port)),
        None => Some((target, default_port)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_nginx() {
        assert_eq!(ResolveError::NotFound.to_string(), "3: Host not found");
        assert_eq!(
            ResolveError::TimedOut.to_string(),
            "110: Operation timed out"
        );
        assert_eq!(ResolveError::ServerFailure.to_string(), "2: Server failure");
        assert_eq!(ResolveError::Refused.to_string(), "5: Operation refused");
    }

    #[test]
    fn host_and_port() {
        assert_eq!(split_host_port("app.test", 80), Some(("app.test", 80)));
        assert_eq!(
            split_host_port("app.test:8080", 80),
            Some(("app.test", 8080))
        );
        assert_eq!(split_host_port("[::1]:9", 80), Some(("::1", 9)));
        assert_eq!(split_host_port("[::1]", 80), Some(("::1", 80)));
        assert_eq!(split_host_port("app.test:x", 80), None);
    }

    #[tokio::test]
    async fn no_resolver_is_nginx_502_and_literals_need_none() {
        let r = ResolverRef::default();
        let e = r.pass_addrs("app.test:81", 80).await.unwrap_err();
        assert_eq!(e.message(), "no resolver defined to resolve app.test");
        assert_eq!(e.status(), http::StatusCode::BAD_GATEWAY);
        let a = r.pass_addrs("127.0.0.1:81", 80).await.unwrap();
        assert_eq!(
            a,
            vec![crate::upstream::PeerAddr::Tcp(
                "127.0.0.1:81".parse().unwrap()
            )]
        );
        assert_eq!(r.pass_addrs("127.0.0.1", 80).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_silent_server_times_out_after_the_timeout() {
        // A UDP socket that never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let r = Resolver::new(ResolverConf {
            servers: vec![silent.local_addr().unwrap()],
            valid: None,
            ipv4: true,
            ipv6: false,
        });
        let t0 = Instant::now();
        let e = r.resolve("app.test", Duration::from_millis(300)).await;
        assert_eq!(e.unwrap_err(), ResolveError::TimedOut);
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(290), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
}
