//! `upstream NAME { … }` blocks → [`Group`]s, with nginx's parameters and messages:
//!
//! ```text
//! server ADDR [weight=N] [max_fails=N] [fail_timeout=T] [backup] [down] [max_conns=N]
//!             [resolve];
//! resolver ADDRESS … [valid=T] [ipv4=on|off] [ipv6=on|off]; resolver_timeout T;
//! least_conn; | ip_hash; | hash KEY [consistent]; | random [two [least_conn]];
//! keepalive N; keepalive_timeout T; keepalive_requests N; keepalive_time T;
//! zone NAME [SIZE];                      (needed by `resolve`; else no effect: groups are always shared)
//! health_check [interval=T] [fails=N] [passes=N] [uri=/path] [timeout=T]
//!              [match=NAME] [mandatory];  (beyond nginx OSS)
//! queue N [timeout=T];                    (beyond nginx OSS)
//! ```
//!
//! `match NAME { status …; header …; body ~ …; }` blocks (http level) say what a healthy
//! answer looks like for `health_check match=NAME`:
//! `status 200 204 300-399;`, `status ! 500-599;`, `header NAME;`, `header NAME ~ REGEX;`,
//! `header NAME = VALUE;`, `body ~ REGEX;`, `body !~ REGEX;`.
//!
//! An ADDR that is a host name resolving to several addresses gives one server per
//! address (all with the line's parameters, one "server line" for `hash … consistent`).
//! `backup` is refused with `ip_hash`, `hash` and `random`, as nginx does.
//!
//! `resolve` (nginx 1.27.3+): a host name on that line is not looked up at load but by
//! the group's resolver while running (`junction_core::discovery`); it needs `zone`
//! and a `resolver` (the block's own, else the http level's), as nginx says at load.
//! A name that does not resolve then is no error: the line starts with no server.
//! `service=` (SRV records) is refused at load.

use crate::model::{err, BuildCx};
use crate::tree::{Arg, ConfigError, Directive};
use crate::values::parse_time_ms;
use junction_core::balance::Balance;
use junction_core::discovery::{Discovery, Line};
use junction_core::health::{Expect, HealthCheck};
use junction_core::regex::Regex;
use junction_core::upstream::{Group, GroupSpec, KeepaliveConf, QueueConf, Server};
use std::sync::Arc;
use std::time::Duration;

/// `invalid parameter "X"` (nginx's words for a bad `server` / balancer parameter).
fn bad_param(a: &Arg) -> ConfigError {
    err(&a.span, format!("invalid parameter \"{}\"", a.value))
}

fn time_of(v: &str, a: &Arg) -> Result<Duration, ConfigError> {
    parse_time_ms(v)
        .map(Duration::from_millis)
        .ok_or_else(|| bad_param(a))
}

fn num_of<T: std::str::FromStr>(v: &str, a: &Arg) -> Result<T, ConfigError> {
    v.parse().map_err(|_| bad_param(a))
}

fn arity(d: &Directive, ok: bool) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(err(
            &d.span,
            format!("invalid number of arguments in \"{}\" directive", d.name),
        ))
    }
}

/// One directive value of a simple `NAME VALUE;` line, parsed or `invalid value`.
fn value(d: &Directive) -> Result<&Arg, ConfigError> {
    let a = d.args.first();
    arity(d, a.is_some() && d.args.len() == 1)?;
    a.ok_or_else(|| err(&d.span, "invalid number of arguments"))
}

fn invalid_value(d: &Directive, a: &Arg) -> ConfigError {
    crate::model::invalid(d, a)
}

/// Builds the group of one `upstream` block. `http` is the http level it sits in (for
/// `match` blocks); `bx` gives the variables a `hash` key may use and collects warnings.
pub fn build_upstream(
    d: &Directive,
    http: &[Directive],
    bx: &mut BuildCx,
) -> Result<Arc<Group>, ConfigError> {
    let name = d.args.first().map(|a| a.value.clone()).unwrap_or_default();
    let items = d.block.as_deref().unwrap_or(&[]);
    let mut balance: Option<(Balance, &Directive)> = None;
    let mut keepalive = KeepaliveConf::default();
    let mut health: Option<HealthCheck> = None;
    let mut queue: Option<QueueConf> = None;
    for s in items {
        let method = match s.name.as_str() {
            "least_conn" => Some(Balance::LeastConn),
            "ip_hash" => Some(Balance::IpHash),
            "hash" => {
                let key = s.args.first().ok_or_else(|| {
                    err(&s.span, "invalid number of arguments in \"hash\" directive")
                })?;
                let consistent = match s.args.get(1) {
                    None => false,
                    Some(a) if a.value == "consistent" => true,
                    Some(a) => return Err(bad_param(a)),
                };
                Some(Balance::Hash {
                    key: bx.template(key)?,
                    consistent,
                })
            }
            "random" => {
                let two = match s.args.first() {
                    None => false,
                    Some(a) if a.value == "two" => true,
                    Some(a) => return Err(bad_param(a)),
                };
                if let Some(a) = s.args.get(1) {
                    if a.value != "least_conn" {
                        return Err(bad_param(a));
                    }
                }
                Some(Balance::Random { two })
            }
            _ => None,
        };
        if let Some(m) = method {
            if balance.is_some() {
                bx.warnings
                    .push(format!("load balancing method redefined in {}", s.span));
            }
            balance = Some((m, s));
            continue;
        }
        match s.name.as_str() {
            "keepalive" => {
                let a = value(s)?;
                keepalive.max_idle = a
                    .value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| invalid_value(s, a))?;
            }
            "keepalive_timeout" => {
                let a = value(s)?;
                keepalive.idle_timeout = parse_time_ms(&a.value)
                    .map(Duration::from_millis)
                    .ok_or_else(|| invalid_value(s, a))?;
            }
            "keepalive_time" => {
                let a = value(s)?;
                keepalive.max_time = parse_time_ms(&a.value)
                    .map(Duration::from_millis)
                    .ok_or_else(|| invalid_value(s, a))?;
            }
            "keepalive_requests" => {
                let a = value(s)?;
                keepalive.max_requests = a.value.parse().map_err(|_| invalid_value(s, a))?;
            }
            "health_check" => {
                if health.is_some() {
                    return Err(err(&s.span, "\"health_check\" directive is duplicate"));
                }
                health = Some(health_check(s, http)?);
            }
            "queue" => {
                if queue.is_some() {
                    return Err(err(&s.span, "\"queue\" directive is duplicate"));
                }
                queue = Some(queue_conf(s)?);
            }
            _ => {}
        }
    }
    let hashed = matches!(
        balance,
        Some((
            Balance::IpHash | Balance::Hash { .. } | Balance::Random { .. },
            _
        ))
    );
    let mut servers = Vec::new();
    let mut lines = Vec::new();
    for s in items.iter().filter(|s| s.name == "server") {
        match server_line(s, hashed)? {
            ServerLine::Fixed(v) => {
                if lines.is_empty() {
                    servers.extend(v);
                } else {
                    lines.push(Line::fixed(v));
                }
            }
            ServerLine::Resolve(host, port, proto) => {
                if lines.is_empty() {
                    // The fixed lines before the first `resolve` one.
                    lines.push(Line::fixed(std::mem::take(&mut servers)));
                }
                lines.push(Line::resolve(host, port, *proto));
            }
        }
    }
    if servers.is_empty() && lines.is_empty() {
        return Err(err(
            &d.span,
            format!("no servers are inside upstream \"{name}\""),
        ));
    }
    if queue.is_some() && servers.iter().all(|s| s.max_conns == 0) && lines.is_empty() {
        bx.warnings.push(format!(
            "\"queue\" has no effect without \"max_conns\" on a server in upstream \"{name}\" in {}",
            d.span
        ));
    }
    let spec = GroupSpec {
        name,
        servers,
        keepalive,
        balance: balance.map(|(b, _)| b).unwrap_or_default(),
        health,
        queue,
    };
    let zone = items.iter().find(|z| z.name == "zone");
    if lines.is_empty() {
        // Groups are always shared by every worker: a zone only matters for `resolve`.
        if let Some(z) = zone {
            bx.warnings.push(format!(
                "\"zone\" directive is accepted but has no effect in junction in {}",
                z.span
            ));
        }
        return Ok(Group::new(spec));
    }
    let name = &spec.name;
    if zone.is_none() {
        return Err(err(
            &d.span,
            format!(
                "resolving names at run time requires upstream \"{name}\" to be in shared memory"
            ),
        ));
    }
    let here = crate::model::Scope::root(http).child(items);
    let resolver = crate::resolver::resolver_at(&here, bx)?;
    if resolver.resolver.is_none() {
        return Err(err(
            &d.span,
            format!("no resolver defined to resolve names at run time in upstream \"{name}\""),
        ));
    }
    Ok(Group::resolving(spec, Discovery::new(resolver, lines)))
}

/// What one `server` line gives.
enum ServerLine {
    /// Its addresses, found at load: one server each.
    Fixed(Vec<Server>),
    /// `resolve` with a host name: (host, port, the line's parameters).
    Resolve(String, u16, Box<Server>),
}

/// One `server` line: one server per resolved address, or a name to resolve later.
fn server_line(s: &Directive, hashed: bool) -> Result<ServerLine, ConfigError> {
    let a = s.args.first().ok_or_else(|| {
        err(
            &s.span,
            "invalid number of arguments in \"server\" directive",
        )
    })?;
    let resolve = s.args.iter().skip(1).any(|p| p.value == "resolve");
    if let Some(p) = s
        .args
        .iter()
        .skip(1)
        .find(|p| p.value.starts_with("service="))
    {
        return Err(err(
            &p.span,
            format!(
                "\"{}\": SRV records (\"service=\") are not supported by junction",
                p.value
            ),
        ));
    }
    let literal = junction_core::upstream::literal(&a.value, 80).ok();
    let later = match literal {
        Some(_) => None,
        None if resolve => {
            let (h, port) = junction_core::resolver::split_host_port(&a.value, 80)
                .ok_or_else(|| err(&a.span, format!("invalid port in upstream \"{}\"", a.value)))?;
            match h.parse::<std::net::IpAddr>() {
                Ok(_) => None,
                Err(_) => Some((h.to_string(), port)),
            }
        }
        None => None,
    };
    let addrs = match (&later, literal) {
        (Some(_), _) => Vec::new(),
        (None, Some(l)) => l,
        (None, None) => junction_core::upstream::resolve(&a.value, 80).map_err(|e| {
            err(
                &a.span,
                format!("host not found in upstream \"{}\" ({e})", a.value),
            )
        })?,
    };
    let first = match (&later, addrs.first()) {
        (_, Some(f)) => f.clone(),
        (Some(_), None) => {
            junction_core::upstream::PeerAddr::Tcp(std::net::SocketAddr::from(([0, 0, 0, 0], 0)))
        }
        (None, None) => {
            return Err(err(
                &a.span,
                format!("host not found in upstream \"{}\"", a.value),
            ))
        }
    };
    let mut proto = Server::new(first);
    proto.label = a.value.clone();
    for p in s.args.iter().skip(1) {
        let (k, v) = p.value.split_once('=').unwrap_or((p.value.as_str(), ""));
        match k {
            "weight" => {
                proto.weight = num_of::<u32>(v, p)?;
                if proto.weight == 0 {
                    return Err(bad_param(p));
                }
            }
            "max_fails" => proto.max_fails = num_of(v, p)?,
            "fail_timeout" => proto.fail_timeout = time_of(v, p)?,
            "max_conns" => proto.max_conns = num_of(v, p)?,
            "backup" if v.is_empty() && !hashed => proto.backup = true,
            "down" if v.is_empty() => proto.down = true,
            "resolve" if v.is_empty() => {}
            _ => return Err(bad_param(p)),
        }
    }
    if let Some((host, port)) = later {
        return Ok(ServerLine::Resolve(host, port, Box::new(proto)));
    }
    Ok(ServerLine::Fixed(
        addrs
            .into_iter()
            .map(|addr| Server::like(&proto, addr))
            .collect(),
    ))
}

/// `queue N [timeout=T]` (default timeout 60s, as NGINX Plus).
fn queue_conf(d: &Directive) -> Result<QueueConf, ConfigError> {
    let n = d.args.first().ok_or_else(|| {
        err(
            &d.span,
            "invalid number of arguments in \"queue\" directive",
        )
    })?;
    let max = n
        .value
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid_value(d, n))?;
    let mut timeout = Duration::from_secs(60);
    for a in d.args.iter().skip(1) {
        match a.value.strip_prefix("timeout=") {
            Some(t) => timeout = time_of(t, a)?,
            None => return Err(bad_param(a)),
        }
    }
    Ok(QueueConf { max, timeout })
}

/// `health_check …`.
fn health_check(d: &Directive, http: &[Directive]) -> Result<HealthCheck, ConfigError> {
    let mut hc = HealthCheck::default();
    let mut timeout_set = false;
    for a in &d.args {
        let (k, v) = a.value.split_once('=').unwrap_or((a.value.as_str(), ""));
        match k {
            "interval" => {
                hc.interval = time_of(v, a)?;
                if hc.interval.is_zero() {
                    return Err(bad_param(a));
                }
            }
            "fails" => hc.fails = num_of::<u32>(v, a)?.max(1),
            "passes" => hc.passes = num_of::<u32>(v, a)?.max(1),
            "timeout" => {
                hc.timeout = time_of(v, a)?;
                timeout_set = true;
            }
            "uri" if v.starts_with('/') => hc.uri = v.to_string(),
            "match" if !v.is_empty() => {
                let m = http
                    .iter()
                    .find(|m| m.name == "match" && m.args.first().is_some_and(|n| n.value == v))
                    .ok_or_else(|| err(&a.span, format!("match \"{v}\" not found")))?;
                hc.expect = match_block(m)?;
            }
            "mandatory" if v.is_empty() => hc.mandatory = true,
            _ => return Err(bad_param(a)),
        }
    }
    if !timeout_set {
        // A probe never outlives the next round, and gets at least a second.
        hc.timeout = hc.interval.max(Duration::from_secs(1));
    }
    Ok(hc)
}

fn status_ranges<'a>(
    d: &Directive,
    args: impl Iterator<Item = &'a Arg>,
) -> Result<Vec<(u16, u16)>, ConfigError> {
    let mut out = Vec::new();
    for a in args {
        let code = |s: &str| {
            s.parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| invalid_value(d, a))
        };
        out.push(match a.value.split_once('-') {
            Some((lo, hi)) => (code(lo)?, code(hi)?),
            None => {
                let c = code(&a.value)?;
                (c, c)
            }
        });
    }
    Ok(out)
}

fn regex(d: &Directive, a: &Arg) -> Result<Regex, ConfigError> {
    let _ = d;
    Regex::compile(&a.value, false).map_err(|e| err(&a.span, e))
}

/// A `match NAME { … }` block.
fn match_block(m: &Directive) -> Result<Expect, ConfigError> {
    let mut e = Expect::default();
    for d in m.block.as_deref().unwrap_or(&[]) {
        match d.name.as_str() {
            "status" => {
                let neg = d.args.first().is_some_and(|a| a.value == "!");
                let ranges = status_ranges(d, d.args.iter().skip(usize::from(neg)))?;
                arity(d, !ranges.is_empty())?;
                if neg {
                    e.status_not.extend(ranges);
                } else {
                    e.status.extend(ranges);
                }
            }
            "header" => {
                let n = d.args.first().ok_or_else(|| {
                    err(
                        &d.span,
                        "invalid number of arguments in \"header\" directive",
                    )
                })?;
                let name = http::HeaderName::from_bytes(n.value.as_bytes())
                    .map_err(|_| invalid_value(d, n))?;
                let re = match (d.args.get(1), d.args.get(2)) {
                    (None, None) => None,
                    (Some(op), Some(v)) if op.value == "~" => Some(regex(d, v)?),
                    (Some(op), Some(v)) if op.value == "=" => Some(
                        Regex::compile(&format!("^{}$", regex::escape(&v.value)), false)
                            .map_err(|_| invalid_value(d, v))?,
                    ),
                    (Some(op), _) => return Err(invalid_value(d, op)),
                    (None, Some(_)) => None,
                };
                e.headers.push((name, re));
            }
            "body" => {
                let (Some(op), Some(v)) = (d.args.first(), d.args.get(1)) else {
                    return Err(err(
                        &d.span,
                        "invalid number of arguments in \"body\" directive",
                    ));
                };
                match op.value.as_str() {
                    "~" => e.body = Some(regex(d, v)?),
                    "!~" => e.body_not = Some(regex(d, v)?),
                    _ => return Err(invalid_value(d, op)),
                }
            }
            _ => {}
        }
    }
    Ok(e)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::path::Path;

    fn build(text: &str) -> Result<Arc<Group>, String> {
        let tree = crate::parse_nginx_str(text, Path::new("t.conf")).map_err(|e| e.msg)?;
        let mut bx = BuildCx::default();
        let ups = tree.iter().find(|d| d.name == "upstream").unwrap();
        build_upstream(ups, &tree, &mut bx).map_err(|e| e.msg)
    }

    #[test]
    fn server_parameters() {
        let g = build(
            "upstream u { server 127.0.0.1:1 weight=3 max_fails=2 fail_timeout=5s max_conns=7;
               server 127.0.0.1:2 backup; server 127.0.0.1:3 down; }",
        )
        .unwrap();
        assert_eq!(g.servers.len(), 3);
        let s = &g.servers[0];
        assert_eq!((s.weight, s.max_fails, s.max_conns), (3, 2, 7));
        assert_eq!(s.fail_timeout, Duration::from_secs(5));
        assert!(g.servers[1].down && !g.servers[1].backup);
        assert!(g.servers[2].backup, "backups go last");
        assert_eq!(g.primaries(), 2);
    }

    #[test]
    fn nginx_errors() {
        let e = |t: &str| build(t).unwrap_err();
        assert_eq!(
            e("upstream u { server 127.0.0.1:1 weight=0; }"),
            "invalid parameter \"weight=0\""
        );
        assert_eq!(
            e("upstream u { server 127.0.0.1:1 foo; }"),
            "invalid parameter \"foo\""
        );
        assert_eq!(
            e("upstream u { ip_hash; server 127.0.0.1:1 backup; }"),
            "invalid parameter \"backup\""
        );
        assert_eq!(
            e("upstream u { hash $uri x; server 127.0.0.1:1; }"),
            "invalid parameter \"x\""
        );
        assert_eq!(
            e("upstream u { random three; server 127.0.0.1:1; }"),
            "invalid parameter \"three\""
        );
        assert_eq!(e("upstream u { }"), "no servers are inside upstream \"u\"");
        assert_eq!(
            e("upstream u { server 127.0.0.1:1; health_check match=nope; }"),
            "match \"nope\" not found"
        );
        assert_eq!(
            e("upstream u { server 127.0.0.1:1; queue 0; }"),
            "invalid value \"0\" in \"queue\" directive"
        );
    }

    #[test]
    fn methods_health_and_queue() {
        let g = build(
            "match ok { status 200-299; body ~ \"pong\"; header X-A = b; }
             upstream u { hash $request_uri consistent; server 127.0.0.1:1; server 127.0.0.1:2;
               keepalive 8; keepalive_timeout 5s; keepalive_requests 10; keepalive_time 1m;
               health_check interval=200ms fails=3 passes=2 uri=/health match=ok;
               queue 100 timeout=10s; }",
        )
        .unwrap();
        assert!(matches!(
            g.balance,
            Balance::Hash {
                consistent: true,
                ..
            }
        ));
        assert_eq!(g.keepalive.max_idle, 8);
        assert_eq!(g.keepalive.max_requests, 10);
        assert_eq!(g.keepalive.max_time, Duration::from_secs(60));
        let hc = g.health.as_ref().unwrap();
        assert_eq!(hc.interval, Duration::from_millis(200));
        assert_eq!((hc.fails, hc.passes, hc.uri.as_str()), (3, 2, "/health"));
        assert_eq!(hc.expect.status, vec![(200, 299)]);
        assert!(hc.expect.body.is_some());
        assert_eq!(hc.expect.headers.len(), 1);
        let q = g.queue.unwrap();
        assert_eq!((q.max, q.timeout), (100, Duration::from_secs(10)));
        let r = build("upstream u { random two least_conn; server 127.0.0.1:1; }").unwrap();
        assert!(matches!(r.balance, Balance::Random { two: true }));
    }

    #[test]
    fn a_host_name_gives_one_server_per_address_on_one_line() {
        let g = build("upstream u { server localhost:9 weight=2; }").unwrap();
        assert!(!g.servers.is_empty());
        assert!(g
            .servers
            .iter()
            .all(|s| s.label == "localhost:9" && s.weight == 2));
    }
}
