//! `resolver ADDRESS[:PORT] … [valid=TIME] [ipv4=on|off] [ipv6=on|off]
//! [status_zone=NAME]` and `resolver_timeout TIME` (http, server, location, and since
//! nginx 1.27.3 upstream), read at load into the core's
//! [`Resolver`](junction_core::resolver::Resolver).
//!
//! As nginx: each `resolver` directive is one resolver (one cache), shared by every
//! place that inherits it; an address is an IP address or a host name resolved once at
//! load (port 53 unless given); `valid=` overrides the answers' TTL; `ipv4` and `ipv6`
//! cannot both be off; `status_zone=` (NGINX Plus's statistics) is accepted without
//! effect. `resolver_timeout` defaults to 30s.

use crate::model::{err, BuildCx, Scope};
use crate::tree::{ConfigError, Directive};
use crate::values::{parse_flag, parse_time_ms};
use junction_core::resolver::{Resolver, ResolverConf, ResolverRef, DEFAULT_TIMEOUT};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Reads one `resolver` directive.
pub fn resolver_conf(d: &Directive) -> Result<ResolverConf, ConfigError> {
    let mut c = ResolverConf {
        servers: Vec::new(),
        valid: None,
        ipv4: true,
        ipv6: true,
    };
    for a in &d.args {
        let bad = || err(&a.span, format!("invalid parameter: {}", a.value));
        if let Some(v) = a.value.strip_prefix("valid=") {
            // nginx parses it in seconds (`ngx_parse_time(&s, 1)`: no `ms`).
            if v.contains("ms") {
                return Err(bad());
            }
            let ms = parse_time_ms(v).ok_or_else(bad)?;
            c.valid = Some(Duration::from_secs(ms / 1000));
        } else if let Some(v) = a.value.strip_prefix("ipv4=") {
            c.ipv4 = parse_flag(v).ok_or_else(bad)?;
        } else if let Some(v) = a.value.strip_prefix("ipv6=") {
            c.ipv6 = parse_flag(v).ok_or_else(bad)?;
        } else if a.value.starts_with("status_zone=") {
            // NGINX Plus's resolver statistics: nothing to count into here.
        } else {
            c.servers
                .extend(address(&a.value).map_err(|m| err(&a.span, m))?);
        }
    }
    if !c.ipv4 && !c.ipv6 {
        return Err(err(&d.span, "\"ipv4\" and \"ipv6\" cannot both be \"off\""));
    }
    Ok(c)
}

/// One server address: `IP`, `IP:PORT`, `[IPv6]:PORT`, a bare IPv6 address, or a
/// host name (looked up once, now).
fn address(v: &str) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, 53)]);
    }
    if let Ok(sa) = v.parse::<SocketAddr>() {
        return Ok(vec![sa]);
    }
    if let Some(inner) = v.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        if let Ok(ip) = inner.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, 53)]);
        }
    }
    let (host, port) = match v.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("invalid port in resolver \"{v}\""))?,
        ),
        None => (v, 53),
    };
    if host.is_empty() {
        return Err(format!("no host in resolver \"{v}\""));
    }
    use std::net::ToSocketAddrs;
    let found: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map(Iterator::collect)
        .unwrap_or_default();
    if found.is_empty() {
        return Err(format!("host not found in resolver \"{v}\""));
    }
    Ok(found)
}

/// The `resolver` and `resolver_timeout` in effect at `scope` (an upstream block's own
/// first, then the enclosing levels'). The resolver of one directive is built once
/// and shared.
pub fn resolver_at(scope: &Scope<'_>, bx: &mut BuildCx) -> Result<ResolverRef, ConfigError> {
    let timeout = scope.time("resolver_timeout", DEFAULT_TIMEOUT)?;
    let Some(d) = scope.get("resolver") else {
        return Ok(ResolverRef {
            resolver: None,
            timeout,
        });
    };
    let key = d as *const Directive as usize;
    let resolver = match bx.resolvers.get(&key) {
        Some(r) => r.clone(),
        None => {
            // A bad `resolver` is reported once, by `check_all`.
            let Ok(c) = resolver_conf(d) else {
                return Ok(ResolverRef {
                    resolver: None,
                    timeout,
                });
            };
            let r = Resolver::new(c);
            bx.resolvers.insert(key, r.clone());
            r
        }
    };
    Ok(ResolverRef {
        resolver: (!resolver.conf().servers.is_empty()).then_some(resolver),
        timeout,
    })
}

/// Checks every `resolver` of `tree` (also those no `*_pass` uses), so a bad one is a
/// load error as in nginx.
pub fn check_all(tree: &[Directive], errors: &mut Vec<ConfigError>) {
    for d in tree {
        if d.name == "resolver" {
            if let Err(e) = resolver_conf(d) {
                errors.push(e);
            }
        }
        if let Some(b) = &d.block {
            check_all(b, errors);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::Arc;

    fn conf(text: &str) -> Result<ResolverConf, String> {
        let tree = crate::parse_nginx_str(text, Path::new("t.conf")).map_err(|e| e.msg)?;
        resolver_conf(&tree[0]).map_err(|e| e.msg)
    }

    #[test]
    fn parameters_as_nginx() {
        let c =
            conf("resolver 127.0.0.1 127.0.0.2:5353 [::1]:54 valid=30s ipv6=off status_zone=z;")
                .unwrap();
        assert_eq!(
            c.servers,
            vec![
                "127.0.0.1:53".parse().unwrap(),
                "127.0.0.2:5353".parse().unwrap(),
                "[::1]:54".parse().unwrap()
            ]
        );
        assert_eq!(c.valid, Some(Duration::from_secs(30)));
        assert!(c.ipv4 && !c.ipv6);
        assert_eq!(
            conf("resolver ::1;").unwrap().servers,
            vec!["[::1]:53".parse().unwrap()]
        );
        assert_eq!(
            conf("resolver 127.0.0.1 valid=x;").unwrap_err(),
            "invalid parameter: valid=x"
        );
        assert_eq!(
            conf("resolver 127.0.0.1 valid=500ms;").unwrap_err(),
            "invalid parameter: valid=500ms"
        );
        assert_eq!(
            conf("resolver 127.0.0.1 ipv4=maybe;").unwrap_err(),
            "invalid parameter: ipv4=maybe"
        );
        assert_eq!(
            conf("resolver 127.0.0.1 ipv4=off ipv6=off;").unwrap_err(),
            "\"ipv4\" and \"ipv6\" cannot both be \"off\""
        );
        assert_eq!(
            conf("resolver 127.0.0.1:x;").unwrap_err(),
            "invalid port in resolver \"127.0.0.1:x\""
        );
        assert_eq!(
            conf("resolver no-such-host.invalid;").unwrap_err(),
            "host not found in resolver \"no-such-host.invalid\""
        );
    }

    #[test]
    fn one_resolver_per_directive_inherited() {
        let tree = crate::parse_nginx_str(
            "resolver 127.0.0.1; resolver_timeout 5s; server { location / { } location /b { resolver 127.0.0.2; } }",
            Path::new("t.conf"),
        )
        .unwrap();
        let mut bx = BuildCx::default();
        let http = Scope::root(&tree);
        let srv = http.child(tree[2].block.as_deref().unwrap());
        let blk = tree[2].block.as_deref().unwrap();
        let a = resolver_at(&srv.child(blk[0].block.as_deref().unwrap()), &mut bx).unwrap();
        let b = resolver_at(&http, &mut bx).unwrap();
        let c = resolver_at(&srv.child(blk[1].block.as_deref().unwrap()), &mut bx).unwrap();
        assert!(Arc::ptr_eq(
            a.resolver.as_ref().unwrap(),
            b.resolver.as_ref().unwrap()
        ));
        assert!(!Arc::ptr_eq(
            a.resolver.as_ref().unwrap(),
            c.resolver.as_ref().unwrap()
        ));
        assert_eq!(a.timeout, Duration::from_secs(5));
        let none = resolver_at(&Scope::root(&[]), &mut bx).unwrap();
        assert!(none.resolver.is_none());
        assert_eq!(none.timeout, Duration::from_secs(30));
    }
}
