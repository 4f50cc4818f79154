//! ngx_http_realip_module: `set_real_ip_from ADDR|CIDR|unix:`, `real_ip_header
//! X-Real-IP|X-Forwarded-For|proxy_protocol|NAME`, `real_ip_recursive on|off`,
//! `$realip_remote_addr`, `$realip_remote_port`.
//!
//! As nginx: it runs in the post-read phase with the server's settings and again in
//! the preaccess phase with the location's, until it has changed the address once.
//! When the client's own address is trusted (`set_real_ip_from`), the address is
//! taken from the header: the last element of `X-Forwarded-For` (every such header,
//! the last one first), or with `real_ip_recursive on` the last one that is not
//! trusted itself (or the first when all are). An element may carry a port
//! (`1.2.3.4:80`, `[::1]:80`), which becomes `$remote_port` (empty without one).
//! From then on `$remote_addr`, `allow`/`deny`, the limits, the logs and
//! `X-Forwarded-For` to the upstream use that address.

use crate::access::{parse_cidr, Cidr};
use http::HeaderName;
use junction_config::model::{err, invalid, Scope};
use junction_config::ConfigError;
use junction_core::ctx::RequestCtx;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Where the address comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    XRealIp,
    XForwardedFor,
    ProxyProtocol,
    Header(HeaderName),
}

/// The realip settings of a level.
#[derive(Debug, Clone)]
pub struct RealIp {
    from: Arc<[Cidr]>,
    source: Source,
    recursive: bool,
}

impl Default for RealIp {
    fn default() -> Self {
        RealIp {
            from: Arc::from(Vec::new()),
            source: Source::XRealIp,
            recursive: false,
        }
    }
}

fn trusted(from: &[Cidr], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4),
        v4 => v4,
    };
    from.iter().any(|c| match (c, ip) {
        (Cidr::V4(addr, mask), IpAddr::V4(a)) => u32::from(a) & mask == *addr,
        (Cidr::V6(addr, mask), IpAddr::V6(a)) => u128::from(a) & mask == *addr,
        _ => false,
    })
}

/// `ngx_parse_addr_port`: `ADDR`, `ADDR:PORT`, `[ADDR6]`, `[ADDR6]:PORT` (port 0: none).
fn parse_addr_port(s: &str) -> Option<SocketAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 0));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        if after.is_empty() {
            return Some(SocketAddr::new(IpAddr::V6(h.parse::<Ipv6Addr>().ok()?), 0));
        }
        (h, after.strip_prefix(':')?)
    } else {
        s.split_once(':')?
    };
    let port: u16 = port.parse().ok().filter(|p| *p >= 1)?;
    let ip = host.parse::<IpAddr>().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// What walking one header value gave (`ngx_http_get_forwarded_addr_internal`).
#[derive(Debug, PartialEq, Eq)]
enum Walk {
    /// The client is not trusted, or nothing parsed.
    Declined,
    /// An address was found and the walk stopped at an untrusted one (or a bad element).
    Done,
    /// The walk reached the start of the value.
    Ok,
}

fn walk(addr: &mut SocketAddr, value: &[u8], from: &[Cidr], recursive: bool) -> Walk {
    let mut len = value.len();
    let mut found = false;
    loop {
        if !trusted(from, addr.ip()) {
            return if found { Walk::Done } else { Walk::Declined };
        }
        // trailing separators, then the last element
        let head = value.get(..len).unwrap_or(&[]);
        let end = head
            .iter()
            .rposition(|&b| b != b' ' && b != b',')
            .map_or(0, |i| i + 1);
        let start = head
            .get(..end)
            .unwrap_or(&[])
            .iter()
            .rposition(|&b| b == b' ' || b == b',')
            .map_or(0, |i| i + 1);
        let elem = head.get(start..end).unwrap_or(&[]);
        let parsed = std::str::from_utf8(elem).ok().and_then(parse_addr_port);
        let Some(a) = parsed else {
            return if found { Walk::Done } else { Walk::Declined };
        };
        *addr = a;
        found = true;
        if !(recursive && start > 0) {
            return Walk::Ok;
        }
        len = start - 1;
    }
}

impl RealIp {
    pub(crate) fn build(scope: &Scope<'_>) -> Result<RealIp, ConfigError> {
        let mut from = Vec::new();
        for d in scope.array("set_real_ip_from") {
            let Some(a) = d.args.first() else { continue };
            if a.value == "unix:" {
                continue; // no unix-socket listeners: never matches
            }
            from.push(
                parse_cidr(&a.value)
                    .ok_or_else(|| err(&a.span, format!("invalid parameter \"{}\"", a.value)))?,
            );
        }
        let source = match scope.arg("real_ip_header") {
            None => Source::XRealIp,
            Some((d, a)) => match a.value.as_str() {
                "X-Real-IP" => Source::XRealIp,
                "X-Forwarded-For" => Source::XForwardedFor,
                "proxy_protocol" => Source::ProxyProtocol,
                v => Source::Header(
                    HeaderName::from_bytes(v.to_ascii_lowercase().as_bytes())
                        .map_err(|_| invalid(d, a))?,
                ),
            },
        };
        Ok(RealIp {
            from: Arc::from(from),
            source,
            recursive: scope.flag("real_ip_recursive", false)?,
        })
    }

    /// `ngx_http_realip_handler`: changes the request's client address once.
    pub(crate) fn apply(&self, cx: &mut RequestCtx) {
        if self.from.is_empty() || cx.realip_remote.is_some() {
            return;
        }
        let mut addr = cx.conn.remote;
        let result = match &self.source {
            Source::XForwardedFor => {
                let values: Vec<&[u8]> = cx
                    .headers
                    .get_all(http::header::HeaderName::from_static("x-forwarded-for"))
                    .iter()
                    .map(|v| v.as_bytes())
                    .collect();
                if values.is_empty() {
                    return;
                }
                // the last header first (ngx_http_get_forwarded_addr)
                let mut rc = Walk::Declined;
                let mut found = false;
                for v in values.iter().rev() {
                    rc = walk(&mut addr, v, &self.from, self.recursive);
                    if !self.recursive {
                        break;
                    }
                    if rc == Walk::Declined && found {
                        rc = Walk::Done;
                        break;
                    }
                    if rc != Walk::Ok {
                        break;
                    }
                    found = true;
                }
                rc
            }
            Source::XRealIp | Source::Header(_) => {
                let name = match &self.source {
                    Source::Header(n) => n.clone(),
                    _ => HeaderName::from_static("x-real-ip"),
                };
                let Some(v) = cx.headers.get(&name) else {
                    return;
                };
                let v = v.as_bytes().to_vec();
                walk(&mut addr, &v, &self.from, self.recursive)
            }
            Source::ProxyProtocol => {
                let Some(pp) = cx.conn.proxy_protocol.clone() else {
                    return;
                };
                let r = walk(
                    &mut addr,
                    pp.src_addr.as_bytes(),
                    &self.from,
                    self.recursive,
                );
                addr.set_port(pp.src_port);
                r
            }
        };
        if result == Walk::Declined {
            return;
        }
        cx.realip_remote = Some(cx.conn.remote);
        let mut conn = (*cx.conn).clone();
        conn.remote = match addr.ip() {
            IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => SocketAddr::new(
                IpAddr::V4(a.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED)),
                addr.port(),
            ),
            _ => addr,
        };
        cx.conn = Arc::new(conn);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn from(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| parse_cidr(s).unwrap()).collect()
    }

    fn run(client: &str, value: &str, trusted: &[&str], recursive: bool) -> (Walk, String) {
        let mut a = SocketAddr::new(client.parse().unwrap(), 5000);
        let r = walk(&mut a, value.as_bytes(), &from(trusted), recursive);
        (r, a.to_string())
    }

    #[test]
    fn forwarded_chains_as_nginx_reads_them() {
        let t = ["127.0.0.0/8", "10.0.0.0/8"];
        // not trusted: nothing changes
        assert_eq!(run("192.0.2.1", "1.1.1.1", &t, false).0, Walk::Declined);
        // the last element
        assert_eq!(
            run("127.0.0.1", "1.1.1.1, 10.0.0.2", &t, false),
            (Walk::Ok, "10.0.0.2:0".into())
        );
        // recursive: the last untrusted one
        assert_eq!(
            run("127.0.0.1", "1.1.1.1, 2.2.2.2, 10.0.0.2", &t, true),
            (Walk::Done, "2.2.2.2:0".into())
        );
        // recursive, all trusted: the first
        assert_eq!(
            run("127.0.0.1", "10.0.0.3,10.0.0.2", &t, true),
            (Walk::Ok, "10.0.0.3:0".into())
        );
        // ports, IPv6, separators
        assert_eq!(
            run("127.0.0.1", " 1.1.1.1:8080 ,, ", &t, false),
            (Walk::Ok, "1.1.1.1:8080".into())
        );
        assert_eq!(
            run("127.0.0.1", "[2001:db8::1]:443", &t, false),
            (Walk::Ok, "[2001:db8::1]:443".into())
        );
        assert_eq!(
            run("127.0.0.1", "2001:db8::1", &t, false),
            (Walk::Ok, "[2001:db8::1]:0".into())
        );
        // garbage: declined, or the address found so far
        assert_eq!(run("127.0.0.1", "unknown", &t, true).0, Walk::Declined);
        assert_eq!(
            run("127.0.0.1", "junk, 10.0.0.9", &t, true),
            (Walk::Done, "10.0.0.9:0".into())
        );
    }
}
