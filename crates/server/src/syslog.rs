//! `syslog:server=ADDRESS[,facility=…][,severity=…][,tag=…][,nohostname]`, the log
//! target of `error_log` and `access_log`, as nginx's `ngx_syslog.c` has it.
//!
//! Each message is one datagram (UDP, or a unix datagram socket for
//! `server=unix:PATH`) in the BSD syslog format nginx sends (RFC 3164):
//! `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG: MESSAGE`, PRI = facility × 8 + severity, the
//! time in the process's time zone (UTC here, like every other time Junction logs),
//! the host name lower-cased, no newline at the end. Defaults: facility `local7`,
//! severity `info` (an error log message has its own level's severity), tag `nginx`
//! (nginx's, so existing syslog filters keep working), port 514.
//!
//! The socket is non-blocking and connected on first use (and again after a send
//! failed), as `ngx_syslog_send` does: a message that does not fit the socket's
//! buffer is dropped rather than make a request wait.

use junction_config::model::err;
use junction_config::{ConfigError, Span};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Mutex;

const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "intern", "lpr", "news", "uucp", "clock", "authpriv",
    "ftp", "ntp", "audit", "alert", "cron", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// nginx's level names, which are its syslog severities 0–7 (`error`, `warn` as in
/// nginx.conf, not `err`/`warning`).
pub const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug",
];

/// Where the datagrams go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    /// `server=ADDRESS[:PORT]`.
    Udp(SocketAddr),
    /// `server=unix:PATH`.
    Unix(PathBuf),
}

#[derive(Debug)]
enum Sock {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

/// One `syslog:` target.
#[derive(Debug)]
pub struct SyslogPeer {
    server: Server,
    facility: u8,
    severity: u8,
    tag: String,
    hostname: Option<String>,
    sock: Mutex<Option<Sock>>,
}

/// The host name as nginx puts it in the header (`gethostname()`, lower-cased).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
        .to_ascii_lowercase()
}

impl SyslogPeer {
    /// Parses the text after `syslog:` (`ngx_syslog_parse_args`); `span` names the
    /// directive in errors.
    pub fn parse(spec: &str, span: &Span) -> Result<SyslogPeer, ConfigError> {
        let (mut server, mut facility, mut severity, mut tag) = (None, None, None, None);
        let mut nohostname = false;
        for p in spec.split(',') {
            if let Some(v) = p.strip_prefix("server=") {
                if server.is_some() {
                    return Err(err(span, "duplicate syslog \"server\""));
                }
                server = Some(parse_server(v, span)?);
            } else if let Some(v) = p.strip_prefix("facility=") {
                if facility.is_some() {
                    return Err(err(span, "duplicate syslog \"facility\""));
                }
                let i = FACILITIES
                    .iter()
                    .position(|f| *f == v)
                    .ok_or_else(|| err(span, format!("unknown syslog facility \"{v}\"")))?;
                facility = Some(i as u8);
            } else if let Some(v) = p.strip_prefix("severity=") {
                if severity.is_some() {
                    return Err(err(span, "duplicate syslog \"severity\""));
                }
                let i = SEVERITIES
                    .iter()
                    .position(|f| *f == v)
                    .ok_or_else(|| err(span, format!("unknown syslog severity \"{v}\"")))?;
                severity = Some(i as u8);
            } else if let Some(v) = p.strip_prefix("tag=") {
                if tag.is_some() {
                    return Err(err(span, "duplicate syslog \"tag\""));
                }
                // RFC 3164: at most 32 alphanumeric characters (nginx adds `_`).
                if v.len() > 32 {
                    return Err(err(span, "syslog tag length exceeds 32"));
                }
                if !v.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
                    return Err(err(
                        span,
                        "syslog \"tag\" only allows alphanumeric characters and underscore",
                    ));
                }
                tag = Some(v.to_string());
            } else if p == "nohostname" {
                nohostname = true;
            } else {
                return Err(err(span, format!("unknown syslog parameter \"{p}\"")));
            }
        }
        let server = server.ok_or_else(|| err(span, "no syslog server specified"))?;
        Ok(SyslogPeer {
            server,
            facility: facility.unwrap_or(23),
            severity: severity.unwrap_or(6),
            tag: tag.unwrap_or_else(|| "nginx".to_string()),
            hostname: (!nohostname).then(hostname),
            sock: Mutex::new(None),
        })
    }

    /// Where it sends.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The configured severity (`severity=`, default `info`).
    pub fn severity(&self) -> u8 {
        self.severity
    }

    /// `<PRI>Mmm dd hh:mm:ss HOST TAG: ` with `severity` (`ngx_syslog_add_header`).
    pub fn header(&self, severity: u8, out: &mut impl std::io::Write) {
        let pri = u32::from(self.facility) * 8 + u32::from(severity.min(7));
        let time = junction_core::time::syslog_time(std::time::SystemTime::now());
        let _ = match &self.hostname {
            Some(h) => write!(out, "<{pri}>{time} {h} {}: ", self.tag),
            None => write!(out, "<{pri}>{time} {}: ", self.tag),
        };
    }

    /// Sends one datagram; a failure is dropped (and the socket made again next time).
    pub fn send(&self, msg: &[u8]) {
        let mut g = match self.sock.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.is_none() {
            *g = self.connect();
        }
        let ok = match g.as_ref() {
            Some(Sock::Udp(s)) => s.send(msg).is_ok(),
            Some(Sock::Unix(s)) => s.send(msg).is_ok(),
            None => return,
        };
        if !ok {
            *g = None;
        }
    }

    fn connect(&self) -> Option<Sock> {
        match &self.server {
            Server::Udp(addr) => {
                let local: SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let s = UdpSocket::bind(local).ok()?;
                s.connect(addr).ok()?;
                s.set_nonblocking(true).ok()?;
                Some(Sock::Udp(s))
            }
            Server::Unix(path) => {
                let s = UnixDatagram::unbound().ok()?;
                s.connect(path).ok()?;
                s.set_nonblocking(true).ok()?;
                Some(Sock::Unix(s))
            }
        }
    }
}

/// `ADDRESS[:PORT]` (default 514), `[IPv6][:PORT]`, `NAME[:PORT]` (resolved now, the
/// first address), or `unix:PATH` (`ngx_parse_url`).
fn parse_server(v: &str, span: &Span) -> Result<Server, ConfigError> {
    if let Some(path) = v.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(err(
                span,
                format!("no path in the unix domain socket in syslog server \"{v}\""),
            ));
        }
        return Ok(Server::Unix(PathBuf::from(path)));
    }
    if v.is_empty() {
        return Err(err(span, "no host in syslog server \"\""));
    }
    if let Ok(a) = v.parse::<SocketAddr>() {
        return Ok(Server::Udp(a));
    }
    if let Ok(ip) = v.parse::<std::net::IpAddr>() {
        return Ok(Server::Udp(SocketAddr::new(ip, 514)));
    }
    if let Some(inner) = v.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        let ip: std::net::Ipv6Addr = inner.parse().map_err(|_| {
            err(
                span,
                format!("invalid IPv6 address in syslog server \"{v}\""),
            )
        })?;
        return Ok(Server::Udp(SocketAddr::new(ip.into(), 514)));
    }
    let (host, port) = match v.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| err(span, format!("invalid port in syslog server \"{v}\"")))?,
        ),
        None => (v, 514),
    };
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .map(Server::Udp)
        .ok_or_else(|| err(span, format!("host not found in syslog server \"{v}\"")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn span() -> Span {
        Span {
            file: std::sync::Arc::new(PathBuf::from("t.conf")),
            line: 1,
            col: 0,
        }
    }

    #[test]
    fn parameters() {
        let p = SyslogPeer::parse("server=127.0.0.1", &span()).unwrap();
        assert_eq!(p.server, Server::Udp("127.0.0.1:514".parse().unwrap()));
        assert_eq!((p.facility, p.severity, p.tag.as_str()), (23, 6, "nginx"));
        let p = SyslogPeer::parse(
            "server=[::1]:5140,facility=local0,severity=warn,tag=web_1,nohostname",
            &span(),
        )
        .unwrap();
        assert_eq!(p.server, Server::Udp("[::1]:5140".parse().unwrap()));
        assert_eq!((p.facility, p.severity, p.tag.as_str()), (16, 4, "web_1"));
        assert!(p.hostname.is_none());
        let mut h = Vec::new();
        p.header(3, &mut h);
        let h = String::from_utf8(h).unwrap();
        assert!(h.starts_with("<131>"), "{h}");
        assert!(h.ends_with(" web_1: "), "{h}");
        let p = SyslogPeer::parse("server=unix:/dev/log", &span()).unwrap();
        assert_eq!(p.server, Server::Unix("/dev/log".into()));
    }

    #[test]
    fn errors() {
        for (spec, msg) in [
            ("facility=local7", "no syslog server specified"),
            (
                "server=127.0.0.1,server=127.0.0.2",
                "duplicate syslog \"server\"",
            ),
            (
                "server=127.0.0.1,facility=local9",
                "unknown syslog facility \"local9\"",
            ),
            (
                "server=127.0.0.1,severity=err",
                "unknown syslog severity \"err\"",
            ),
            ("server=127.0.0.1,tag=a-b", "syslog \"tag\" only allows"),
            (
                "server=127.0.0.1,foo=1",
                "unknown syslog parameter \"foo=1\"",
            ),
            ("server=127.0.0.1:99999", "invalid port"),
        ] {
            let e = SyslogPeer::parse(spec, &span()).unwrap_err();
            assert!(e.msg.contains(msg), "{spec}: {}", e.msg);
        }
    }
}
