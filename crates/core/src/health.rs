//! Active health checks (beyond nginx OSS): `health_check interval=T fails=N passes=N
//! [uri=/path] [timeout=T] [match=NAME] [mandatory]` in an `upstream` block.
//!
//! One task per group (started by the server at start, never by `-t`) probes every
//! server that is not `down`, all at once, every `interval`. A server that fails
//! `fails` probes in a row is taken out of service (`ServerStats::healthy`, which
//! every balancing method checks) before a client request reaches it; it comes back
//! after `passes` successes in a row. Both transitions are logged (warn when a server
//! goes down, info — nginx's notice — when it comes back).
//!
//! A probe speaks the upstream's own protocol: each protocol crate registers one on the
//! group when its `*_pass` uses it ([`Group::set_probe`], at build time). A
//! [`CodecProbe`] sends a protocol-encoded request (an HTTP `GET uri`, a FastCGI request
//! for `uri` — php-fpm's `ping.path` —, a uwsgi/SCGI request, memcached `version`)
//! and reads the answer with the protocol's [`UpstreamCodec`]; the status (and, with
//! `match=`, headers and body) decide. Without a registered probe a group's servers
//! are checked with a TCP connect ([`TcpProbe`]).

use crate::codec::{Decoded, ResponseHead, UpstreamCodec};
use crate::regex::Regex;
use crate::upstream::{connect, lock, Group, Server};
use bytes::{Bytes, BytesMut};
use futures_util::future::join_all;
use http::HeaderName;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a probe's answer must look like (`match` blocks).
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// Accepted status ranges (inclusive); empty: 200–399.
    pub status: Vec<(u16, u16)>,
    /// Status ranges that fail the check (`status ! 500-599;`).
    pub status_not: Vec<(u16, u16)>,
    /// Headers that must be present, each optionally matching a regex.
    pub headers: Vec<(HeaderName, Option<Regex>)>,
    /// A regex the body must match (`body ~ "…"`).
    pub body: Option<Regex>,
    /// A regex the body must not match (`body !~ "…"`).
    pub body_not: Option<Regex>,
}

impl Expect {
    fn status_ok(&self, s: u16) -> bool {
        let within = |r: &[(u16, u16)]| r.iter().any(|(a, b)| (*a..=*b).contains(&s));
        if within(&self.status_not) {
            return false;
        }
        if self.status.is_empty() {
            (200..400).contains(&s)
        } else {
            within(&self.status)
        }
    }

    fn needs_body(&self) -> bool {
        self.body.is_some() || self.body_not.is_some()
    }

    /// Checks a response head (and body when a body rule exists).
    pub fn check(&self, head: &ResponseHead, body: &[u8]) -> Result<(), String> {
        let s = head.status.as_u16();
        if !self.status_ok(s) {
            return Err(format!("status {s}"));
        }
        for (name, re) in &self.headers {
            let Some(v) = head.headers.get(name) else {
                return Err(format!("no \"{name}\" header"));
            };
            if re
                .as_ref()
                .is_some_and(|re| !re.is_match(v.as_bytes()).unwrap_or(false))
            {
                return Err(format!("header \"{name}\" does not match"));
            }
        }
        if self
            .body
            .as_ref()
            .is_some_and(|re| !re.is_match(body).unwrap_or(false))
        {
            return Err("body does not match".into());
        }
        if self
            .body_not
            .as_ref()
            .is_some_and(|re| re.is_match(body).unwrap_or(true))
        {
            return Err("body matches the excluded pattern".into());
        }
        Ok(())
    }
}

/// `health_check` of one group.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// Time between two rounds of probes.
    pub interval: Duration,
    /// Failed probes in a row that take a server out.
    pub fails: u32,
    /// Passed probes in a row that bring it back.
    pub passes: u32,
    /// The URI probed (HTTP, FastCGI, uwsgi, SCGI).
    pub uri: String,
    /// How long one probe may take.
    pub timeout: Duration,
    /// `mandatory`: servers start out of service until their first probe passes.
    pub mandatory: bool,
    /// What a healthy answer looks like.
    pub expect: Expect,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            interval: Duration::from_secs(5),
            fails: 1,
            passes: 1,
            uri: "/".into(),
            timeout: Duration::from_secs(5),
            mandatory: false,
            expect: Expect::default(),
        }
    }
}

/// A health probe: checks one server; `Err` carries the reason for the log.
#[async_trait::async_trait]
pub trait Probe: Send + Sync + std::fmt::Debug {
    /// The protocol spoken, for the log.
    fn protocol(&self) -> &'static str;

    /// Probes `server` once (the caller bounds it with `hc.timeout`).
    async fn check(&self, server: &Server, hc: &HealthCheck) -> Result<(), String>;
}

/// The default probe: the server accepts a connection.
#[derive(Debug, Clone, Copy)]
pub struct TcpProbe;

#[async_trait::async_trait]
impl Probe for TcpProbe {
    fn protocol(&self) -> &'static str {
        "tcp"
    }

    async fn check(&self, server: &Server, hc: &HealthCheck) -> Result<(), String> {
        connect(&server.addr, None, hc.timeout)
            .await
            .map(drop)
            .map_err(|e| e.message().to_string())
    }
}

/// A new codec per probe.
pub type CodecFactory = Arc<dyn Fn() -> Box<dyn UpstreamCodec> + Send + Sync>;

/// A probe in the upstream's own protocol: `head` (already encoded, no body) is sent,
/// the answer decoded with a fresh codec from `codec`, then judged by `hc.expect`.
pub struct CodecProbe {
    /// The protocol's name, for the log.
    pub protocol: &'static str,
    /// The encoded request.
    pub head: Bytes,
    /// Makes the codec that frames the (empty) body and decodes the answer.
    pub codec: CodecFactory,
}

impl std::fmt::Debug for CodecProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodecProbe")
            .field("protocol", &self.protocol)
            .field("head_len", &self.head.len())
            .finish_non_exhaustive()
    }
}

/// The most of a probe's answer that is read (head and body).
const PROBE_READ_LIMIT: usize = 64 * 1024;

#[async_trait::async_trait]
impl Probe for CodecProbe {
    fn protocol(&self) -> &'static str {
        self.protocol
    }

    async fn check(&self, server: &Server, hc: &HealthCheck) -> Result<(), String> {
        let conn = connect(&server.addr, None, hc.timeout)
            .await
            .map_err(|e| e.message().to_string())?;
        self.check_on(conn, hc).await
    }
}

impl CodecProbe {
    /// The probe's exchange on an open connection (plain, or after a TLS handshake).
    pub async fn check_on(
        &self,
        mut conn: crate::upstream::Stream,
        hc: &HealthCheck,
    ) -> Result<(), String> {
        let mut codec = (self.codec)();
        let mut frames = vec![self.head.clone()];
        codec.encode_end(&mut frames);
        for f in frames {
            conn.write_all(&f)
                .await
                .map_err(|e| format!("{} probe: send failed: {e}", self.protocol))?;
        }
        conn.flush()
            .await
            .map_err(|e| format!("{} probe: send failed: {e}", self.protocol))?;
        let mut buf = BytesMut::with_capacity(4096);
        let mut head: Option<ResponseHead> = None;
        let mut body = Vec::new();
        let proto = self.protocol;
        loop {
            match codec
                .decode(&mut buf)
                .map_err(|e| format!("{proto} probe: {}", e.message()))?
            {
                Some(Decoded::Head(h)) => {
                    if !hc.expect.needs_body() {
                        return hc.expect.check(&h, &[]);
                    }
                    head = Some(h);
                }
                Some(Decoded::Data(d)) => {
                    body.extend_from_slice(&d);
                    if body.len() >= PROBE_READ_LIMIT {
                        break;
                    }
                }
                Some(Decoded::Stderr(_)) => {}
                Some(Decoded::End { .. }) => break,
                None => {
                    if buf.len() >= PROBE_READ_LIMIT {
                        return Err(format!("{proto} probe: answer too big"));
                    }
                    buf.reserve(4096);
                    let n = conn
                        .read_buf(&mut buf)
                        .await
                        .map_err(|e| format!("{proto} probe: recv failed: {e}"))?;
                    if n == 0 {
                        match codec.decode_eof(&mut buf) {
                            Ok(Some(Decoded::Head(h))) if head.is_none() => head = Some(h),
                            Ok(Some(Decoded::Data(d))) => body.extend_from_slice(&d),
                            Ok(_) => {}
                            Err(e) if head.is_none() => {
                                return Err(format!("{proto} probe: {}", e.message()))
                            }
                            Err(_) => {}
                        }
                        break;
                    }
                }
            }
        }
        match head {
            Some(h) => hc.expect.check(&h, &body),
            None => Err(format!(
                "{proto} probe: connection closed before a response"
            )),
        }
    }
}

/// A [`CodecProbe`] over TLS (`proxy_pass https://` to a group with `health_check`):
/// the location's TLS settings, the handshake bounded by the probe's timeout.
#[derive(Debug)]
pub struct TlsProbe {
    /// The probe spoken once the handshake is done.
    pub probe: CodecProbe,
    /// The TLS client and name.
    pub tls: crate::upstream_tls::TlsTarget,
}

#[async_trait::async_trait]
impl Probe for TlsProbe {
    fn protocol(&self) -> &'static str {
        self.probe.protocol
    }

    async fn check(&self, server: &Server, hc: &HealthCheck) -> Result<(), String> {
        let conn = connect(&server.addr, None, hc.timeout)
            .await
            .map_err(|e| e.message().to_string())?;
        let conn = crate::upstream_tls::handshake(conn, &self.tls, hc.timeout)
            .await
            .map_err(|e| e.message().to_string())?;
        self.probe.check_on(conn, hc).await
    }
}

/// The CGI variables of a probe request for `uri` (FastCGI, uwsgi, SCGI): a plain
/// `GET uri` from 127.0.0.1, with `SCRIPT_NAME`/`SCRIPT_FILENAME`/`DOCUMENT_URI` set to
/// the URI too, so php-fpm's `ping.path` (matched against the script name) answers.
pub fn cgi_probe_params(uri: &str) -> crate::cgi::Params {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    crate::cgi::Params::from_pairs(
        [
            ("REQUEST_METHOD", "GET"),
            ("REQUEST_URI", uri),
            ("DOCUMENT_URI", path),
            ("SCRIPT_NAME", path),
            ("SCRIPT_FILENAME", path),
            ("PATH_INFO", ""),
            ("QUERY_STRING", query),
            ("CONTENT_LENGTH", ""),
            ("CONTENT_TYPE", ""),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("SERVER_SOFTWARE", "junction"),
            ("SERVER_NAME", "localhost"),
            ("SERVER_PORT", "80"),
            ("SERVER_ADDR", "127.0.0.1"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("REMOTE_PORT", "0"),
            ("HTTP_HOST", "localhost"),
            ("HTTP_USER_AGENT", "junction-health-check"),
        ]
        .iter()
        .map(|(k, val)| (k.as_bytes(), val.as_bytes())),
    )
}

/// Records one probe result and logs a transition.
fn record(group: &Group, server: &Server, hc: &HealthCheck, result: Result<(), String>) {
    let st = &server.stats;
    st.checks.fetch_add(1, Ordering::Relaxed);
    let mut streak = lock(&st.streak);
    match result {
        Ok(()) => {
            *streak = (0, streak.1.saturating_add(1));
            if !server.healthy() && streak.1 >= hc.passes {
                st.healthy.store(true, Ordering::Release);
                tracing::info!(
                    "upstream server {} in upstream \"{}\" is up: health check passed {} time(s)",
                    server.name,
                    group.name,
                    streak.1
                );
            }
        }
        Err(reason) => {
            st.check_fails.fetch_add(1, Ordering::Relaxed);
            *streak = (streak.0.saturating_add(1), 0);
            if server.healthy() && streak.0 >= hc.fails {
                st.healthy.store(false, Ordering::Release);
                tracing::warn!(
                    "upstream server {} in upstream \"{}\" is down: health check failed {} time(s) ({reason})",
                    server.name,
                    group.name,
                    streak.0
                );
            }
        }
    }
}

/// The health check task of `group` (returns at once when it has no `health_check`).
/// Runs until dropped.
pub async fn run(group: Arc<Group>) {
    let Some(hc) = group.health.clone() else {
        return;
    };
    let probe: Arc<dyn Probe> = group.probe().unwrap_or_else(|| Arc::new(TcpProbe));
    if hc.mandatory {
        for s in &group.current().servers {
            s.stats.healthy.store(false, Ordering::Release);
        }
    }
    let mut tick = tokio::time::interval(hc.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // A resolving group: the servers of this moment (new ones join the next round).
        let now = group.current();
        let rounds = now.servers.iter().filter(|s| !s.down).map(|s| {
            let probe = probe.clone();
            let hc = &hc;
            async move {
                let r = match tokio::time::timeout(hc.timeout, probe.check(s, hc)).await {
                    Ok(r) => r,
                    Err(_) => Err(format!(
                        "{} probe timed out after {:?}",
                        probe.protocol(),
                        hc.timeout
                    )),
                };
                (s, r)
            }
        });
        for (s, r) in join_all(rounds).await {
            record(&group, s, &hc, r);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::upstream::{GroupSpec, PeerAddr};
    use std::net::SocketAddr;
    use tokio::net::TcpListener;

    fn head(status: u16) -> ResponseHead {
        ResponseHead {
            status: http::StatusCode::from_u16(status).unwrap(),
            headers: http::HeaderMap::new(),
        }
    }

    #[test]
    fn default_expectation_is_2xx_or_3xx() {
        let e = Expect::default();
        assert!(e.check(&head(200), b"").is_ok());
        assert!(e.check(&head(302), b"").is_ok());
        assert!(e.check(&head(404), b"").is_err());
        assert!(e.check(&head(500), b"").is_err());
        let m = Expect {
            status: vec![(200, 200)],
            body: Some(Regex::compile("pong", false).unwrap()),
            ..Expect::default()
        };
        assert!(m.check(&head(200), b"pong\n").is_ok());
        assert!(m.check(&head(200), b"nope").is_err());
        assert!(m.check(&head(204), b"pong").is_err());
    }

    #[tokio::test]
    async fn a_server_goes_down_and_comes_back() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = l.local_addr().unwrap();
        let g = Group::new(GroupSpec {
            name: "h".into(),
            servers: vec![crate::upstream::Server::new(PeerAddr::Tcp(addr))],
            health: Some(HealthCheck {
                interval: Duration::from_millis(20),
                fails: 2,
                passes: 2,
                ..HealthCheck::default()
            }),
            ..GroupSpec::default()
        });
        let hc = g.health.clone().unwrap();
        let s = g.servers.first().unwrap().clone();
        let probe = TcpProbe;
        record(&g, &s, &hc, probe.check(&s, &hc).await);
        assert!(s.healthy());
        drop(l);
        record(&g, &s, &hc, probe.check(&s, &hc).await);
        assert!(s.healthy(), "one failure of two");
        record(&g, &s, &hc, probe.check(&s, &hc).await);
        assert!(!s.healthy());
        let _l = TcpListener::bind(addr).await.unwrap();
        record(&g, &s, &hc, probe.check(&s, &hc).await);
        assert!(!s.healthy(), "one pass of two");
        record(&g, &s, &hc, probe.check(&s, &hc).await);
        assert!(s.healthy());
        assert_eq!(s.stats.checks.load(Ordering::Relaxed), 5);
        assert_eq!(s.stats.check_fails.load(Ordering::Relaxed), 2);
    }
}
