//! nginx's access phase: `allow`/`deny` (ngx_http_access_module), `auth_basic`
//! (ngx_http_auth_basic_module, see [`crate::auth_basic`]), `satisfy all|any` and
//! `limit_except` (ngx_http_core_module), built once per location at load and run
//! once per location the request enters (again after an internal redirect, as
//! nginx's `ngx_http_core_access_phase` does for the main request).
//!
//! The order is nginx's: the access module runs before auth_basic. With `satisfy all`
//! the first refusal ends the phase (403 from a rule, 401 from auth_basic); with
//! `satisfy any` the first module that grants access ends it, and otherwise the
//! refusal kept is 401 over 403 (`r->access_code`), answered in the post-access
//! phase. A module with nothing to say (no rule for the client's address family, no
//! rule matching it, `auth_basic off`) declines.

use crate::auth_basic::{AuthBasic, AuthResult};
use crate::pages::status_response;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use junction_config::model::{err, BuildCx, Scope};
use junction_config::{ConfigError, Directive};
use junction_core::body::Body;
use junction_core::ctx::RequestCtx;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

/// One `allow`/`deny` rule for IPv4 clients (address and mask, host order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule4 {
    addr: u32,
    mask: u32,
    deny: bool,
}

/// One rule for IPv6 clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule6 {
    addr: u128,
    mask: u128,
    deny: bool,
}

/// The rules of one level, split by address family as nginx keeps them: `all`
/// goes into the three lists, an address into its family's only. `None`: no rule
/// for that family at all (the module declines for such clients).
#[derive(Debug, Clone, Default)]
pub(crate) struct Rules {
    v4: Option<Arc<[Rule4]>>,
    v6: Option<Arc<[Rule6]>>,
    unix: Option<Arc<[bool]>>,
}

/// What one access module said (nginx's handler return codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// `NGX_DECLINED`: nothing to say.
    Declined,
    /// `NGX_OK`: access granted.
    Granted,
    /// `NGX_HTTP_FORBIDDEN` from a `deny` rule.
    Forbidden,
}

impl Rules {
    /// `allow`/`deny` of the innermost level that has any (nginx's merge: a level with
    /// at least one rule replaces its parent's rules entirely).
    pub(crate) fn build(scope: &Scope<'_>) -> Result<Rules, ConfigError> {
        let (mut v4, mut v6, mut unix) = (Vec::new(), Vec::new(), Vec::new());
        let list = scope.array_any(&["allow", "deny"]);
        for d in &list {
            let a = d.args.first().ok_or_else(|| {
                err(
                    &d.span,
                    format!("invalid number of arguments in \"{}\" directive", d.name),
                )
            })?;
            let deny = d.name == "deny";
            match a.value.as_str() {
                "all" => {
                    v4.push(Rule4 {
                        addr: 0,
                        mask: 0,
                        deny,
                    });
                    v6.push(Rule6 {
                        addr: 0,
                        mask: 0,
                        deny,
                    });
                    unix.push(deny);
                }
                "unix:" => unix.push(deny),
                v => match parse_cidr(v) {
                    Some(Cidr::V4(addr, mask)) => v4.push(Rule4 { addr, mask, deny }),
                    Some(Cidr::V6(addr, mask)) => v6.push(Rule6 { addr, mask, deny }),
                    None => {
                        return Err(err(&a.span, format!("invalid parameter \"{v}\"")));
                    }
                },
            }
        }
        Ok(Rules {
            v4: (!v4.is_empty()).then(|| Arc::from(v4)),
            v6: (!v6.is_empty()).then(|| Arc::from(v6)),
            unix: (!unix.is_empty()).then(|| Arc::from(unix)),
        })
    }

    /// Whether no rule applies anywhere (the phase can be skipped).
    fn is_empty(&self) -> bool {
        self.v4.is_none() && self.v6.is_none() && self.unix.is_none()
    }

    /// `ngx_http_access_handler`: the first rule matching the client's address decides;
    /// an IPv4-mapped IPv6 client is checked against the IPv4 rules when there are any.
    fn check(&self, ip: IpAddr) -> Verdict {
        let v4 = |a: Ipv4Addr, rules: &[Rule4]| {
            let a = u32::from(a);
            rules
                .iter()
                .find(|r| a & r.mask == r.addr)
                .map_or(Verdict::Declined, |r| found(r.deny))
        };
        match ip {
            IpAddr::V4(a) => match &self.v4 {
                Some(rules) => v4(a, rules),
                None => Verdict::Declined,
            },
            IpAddr::V6(a) => {
                if let (Some(rules), Some(m)) = (&self.v4, a.to_ipv4_mapped()) {
                    return v4(m, rules);
                }
                match &self.v6 {
                    Some(rules) => {
                        let a = u128::from(a);
                        rules
                            .iter()
                            .find(|r| a & r.mask == r.addr)
                            .map_or(Verdict::Declined, |r| found(r.deny))
                    }
                    None => Verdict::Declined,
                }
            }
        }
    }
}

impl Rules {
    /// The rules for a unix-socket client: `unix:` and `all` entries, in order.
    fn check_unix(&self) -> Verdict {
        self.unix
            .as_deref()
            .and_then(|r| r.first())
            .map_or(Verdict::Declined, |deny| found(*deny))
    }
}

fn found(deny: bool) -> Verdict {
    if deny {
        Verdict::Forbidden
    } else {
        Verdict::Granted
    }
}

/// A parsed `ADDRESS[/BITS]` (address bits beyond the mask cleared, as `ngx_ptocidr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cidr {
    V4(u32, u32),
    V6(u128, u128),
}

/// `ngx_ptocidr`: an IPv4 or IPv6 address with an optional `/bits`.
pub(crate) fn parse_cidr(s: &str) -> Option<Cidr> {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let bits = match bits {
        Some(b) if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) => {
            Some(b.parse::<u32>().ok()?)
        }
        Some(_) => return None,
        None => None,
    };
    if let Ok(a) = addr.parse::<Ipv4Addr>() {
        let n = bits.unwrap_or(32);
        if n > 32 {
            return None;
        }
        let mask = u32::MAX.checked_shl(32 - n).unwrap_or(0);
        return Some(Cidr::V4(u32::from(a) & mask, mask));
    }
    if let Ok(a) = addr.parse::<Ipv6Addr>() {
        let n = bits.unwrap_or(128);
        if n > 128 {
            return None;
        }
        let mask = u128::MAX.checked_shl(128 - n).unwrap_or(0);
        return Some(Cidr::V6(u128::from(a) & mask, mask));
    }
    None
}

/// Warnings nginx gives at load for rules written with address bits beyond the mask
/// (`low address bits of 10.0.0.1/8 are meaningless`).
pub(crate) fn low_bits_warnings(tree: &[Directive], out: &mut Vec<String>) {
    for d in tree {
        if d.name == "allow" || d.name == "deny" || d.name == "set_real_ip_from" {
            if let Some(a) = d.args.first() {
                if let (Some((addr, _)), Some(c)) = (a.value.split_once('/'), parse_cidr(&a.value))
                {
                    let exact = match c {
                        Cidr::V4(x, _) => addr.parse::<Ipv4Addr>().is_ok_and(|a| u32::from(a) == x),
                        Cidr::V6(x, _) => {
                            addr.parse::<Ipv6Addr>().is_ok_and(|a| u128::from(a) == x)
                        }
                    };
                    if !exact {
                        out.push(format!(
                            "low address bits of {} are meaningless in {}",
                            a.value, d.span
                        ));
                    }
                }
            }
        }
        if let Some(b) = &d.block {
            if d.name != "types" && d.name != "map" {
                low_bits_warnings(b, out);
            }
        }
    }
}

/// The access phase of one location (or of a `limit_except` block in it).
#[derive(Debug, Clone, Default)]
pub struct Access {
    rules: Rules,
    satisfy_any: bool,
    /// `auth_delay`: how long a 401 of the access phase waits.
    auth_delay: std::time::Duration,
    auth: Option<Arc<AuthBasic>>,
    /// `limit_except METHOD… { … }`: the methods it lets through, and the access
    /// phase for every other method.
    limit_except: Option<Arc<LimitExcept>>,
}

/// A `limit_except` block.
#[derive(Debug, Clone)]
struct LimitExcept {
    allowed: Vec<Method>,
    access: Access,
}

/// The methods `limit_except` accepts (`ngx_methods_names`); `GET` also allows `HEAD`.
const LIMIT_EXCEPT_METHODS: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "MKCOL",
    "COPY",
    "MOVE",
    "OPTIONS",
    "PROPFIND",
    "PROPPATCH",
    "LOCK",
    "UNLOCK",
    "PATCH",
];

impl Access {
    /// The access settings at `scope` (a location, a server, or a `limit_except` block).
    /// `conf_dir` is where relative `auth_basic_user_file` paths are resolved.
    pub(crate) fn build(
        scope: &Scope<'_>,
        bx: &BuildCx,
        conf_dir: &Path,
    ) -> Result<Access, ConfigError> {
        let satisfy_any = match scope.arg("satisfy") {
            None => false,
            Some((_, a)) if a.value == "all" => false,
            Some((_, a)) if a.value == "any" => true,
            Some((d, a)) => return Err(junction_config::model::invalid(d, a)),
        };
        let mut access = Access {
            rules: Rules::build(scope)?,
            satisfy_any,
            auth_delay: scope.time("auth_delay", std::time::Duration::ZERO)?,
            auth: AuthBasic::build(scope, bx, conf_dir)?.map(Arc::new),
            limit_except: None,
        };
        let mut blocks = scope.local_all("limit_except");
        if let Some(d) = blocks.next() {
            if let Some(dup) = blocks.next() {
                return Err(err(&dup.span, "\"limit_except\" directive is duplicate"));
            }
            let mut allowed = Vec::new();
            for a in &d.args {
                if !LIMIT_EXCEPT_METHODS.contains(&a.value.as_str()) {
                    return Err(err(&a.span, format!("invalid method \"{}\"", a.value)));
                }
                let m = Method::from_bytes(a.value.as_bytes())
                    .map_err(|_| err(&a.span, format!("invalid method \"{}\"", a.value)))?;
                if m == Method::GET {
                    allowed.push(Method::HEAD);
                }
                allowed.push(m);
            }
            let inner = scope.child(d.block.as_deref().unwrap_or(&[]));
            access.limit_except = Some(Arc::new(LimitExcept {
                allowed,
                access: Access::build(&inner, bx, conf_dir)?,
            }));
        }
        Ok(access)
    }

    /// The settings that apply to `method` (`limit_except` for the methods it does not list).
    fn for_method(&self, method: &Method) -> &Access {
        match &self.limit_except {
            Some(le) if !le.allowed.contains(method) => &le.access,
            _ => self,
        }
    }

    /// Runs the access phase: `None` lets the request through, else the response to
    /// send (403, 401 with `WWW-Authenticate`, or 500), to be finalized by the caller
    /// as a status Junction generated (so `error_page` applies).
    pub(crate) async fn check(
        &self,
        cx: &mut RequestCtx,
        tokens: bool,
    ) -> Option<http::Response<Body>> {
        let a = self.for_method(&cx.method);
        let r = a.decide(cx, tokens).await;
        // ngx_http_core_auth_delay: a 401 waits `auth_delay` (against timing attacks)
        if let Some(resp) = &r {
            if resp.status() == StatusCode::UNAUTHORIZED && !a.auth_delay.is_zero() {
                log(cx, "delaying unauthorized request", false, false);
                tokio::time::sleep(a.auth_delay).await;
            }
        }
        r
    }

    /// The access phase of these settings (`ngx_http_core_access_phase` over the
    /// access and auth_basic handlers, then `ngx_http_core_post_access_phase`).
    async fn decide(&self, cx: &mut RequestCtx, tokens: bool) -> Option<http::Response<Body>> {
        let a = self;
        if a.rules.is_empty() && a.auth.is_none() {
            return None;
        }
        // 1. the access module
        let rules = if cx.conn.client() == junction_core::ctx::ClientAddr::Unix {
            a.rules.check_unix()
        } else {
            a.rules.check(cx.conn.remote.ip())
        };
        let mut access_code: Option<Refusal> = None;
        match (rules, a.satisfy_any) {
            (Verdict::Forbidden, false) => {
                log(cx, "access forbidden by rule", true, false);
                return Some(status_response(StatusCode::FORBIDDEN, tokens));
            }
            (Verdict::Granted, true) => return None,
            (Verdict::Forbidden, true) => access_code = Some(Refusal::Forbidden),
            _ => {}
        }
        // 2. auth_basic
        if let Some(auth) = &a.auth {
            match auth.check(cx).await {
                AuthResult::Declined => {}
                AuthResult::Granted => {
                    if a.satisfy_any {
                        return None;
                    }
                }
                AuthResult::Unauthorized(realm) => {
                    if !a.satisfy_any {
                        return Some(unauthorized(&realm, tokens));
                    }
                    access_code = Some(Refusal::Unauthorized(realm));
                }
                AuthResult::Forbidden => {
                    if !a.satisfy_any {
                        return Some(status_response(StatusCode::FORBIDDEN, tokens));
                    }
                    if !matches!(access_code, Some(Refusal::Unauthorized(_))) {
                        access_code = Some(Refusal::Forbidden);
                    }
                }
                AuthResult::Error => {
                    return Some(status_response(StatusCode::INTERNAL_SERVER_ERROR, tokens))
                }
            }
        }
        // ngx_http_core_post_access_phase
        match access_code {
            None => None,
            Some(Refusal::Forbidden) => {
                log(cx, "access forbidden by rule", true, false);
                Some(status_response(StatusCode::FORBIDDEN, tokens))
            }
            Some(Refusal::Unauthorized(realm)) => Some(unauthorized(&realm, tokens)),
        }
    }
}

/// `r->access_code` under `satisfy any`.
enum Refusal {
    Forbidden,
    Unauthorized(Bytes),
}

/// 401 with `WWW-Authenticate: Basic realm="REALM"` (the realm as is, as nginx).
fn unauthorized(realm: &[u8], tokens: bool) -> http::Response<Body> {
    let mut r = status_response(StatusCode::UNAUTHORIZED, tokens);
    let mut v = Vec::with_capacity(realm.len() + 14);
    v.extend_from_slice(b"Basic realm=\"");
    v.extend_from_slice(realm);
    v.push(b'"');
    if let Ok(v) = HeaderValue::from_bytes(&v) {
        r.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
    }
    r
}

/// An error-log line: `error` level, `warn` level, else `info`. It is logged in the
/// request's span, so `crate::error_log` writes nginx's request context after it
/// (`*N MSG, client: …, server: …, request: "…", host: "…"`).
pub(crate) fn log(_cx: &RequestCtx, msg: &str, error: bool, warn: bool) {
    if error {
        tracing::error!("{msg}");
    } else if warn {
        tracing::warn!("{msg}");
    } else {
        tracing::info!("{msg}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use junction_config::parse_nginx_str;

    fn rules(src: &str) -> Rules {
        let tree = parse_nginx_str(src, Path::new("/nonexistent/a.conf")).unwrap();
        Rules::build(&Scope::root(&tree)).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_as_ngx_ptocidr() {
        assert_eq!(
            parse_cidr("10.1.2.3/8"),
            Some(Cidr::V4(0x0a00_0000, 0xff00_0000))
        );
        assert_eq!(parse_cidr("0.0.0.0/0"), Some(Cidr::V4(0, 0)));
        assert_eq!(
            parse_cidr("192.168.1.1"),
            Some(Cidr::V4(0xc0a8_0101, u32::MAX))
        );
        assert_eq!(parse_cidr("::1"), Some(Cidr::V6(1, u128::MAX)));
        assert_eq!(
            parse_cidr("2001:db8::1/32"),
            Some(Cidr::V6(0x2001_0db8_u128 << 96, u128::MAX << 96))
        );
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0/8",
            "x",
            "10.0.0.0/a",
        ] {
            assert_eq!(parse_cidr(bad), None, "{bad}");
        }
    }

    #[test]
    fn first_matching_rule_per_family() {
        let r = rules("deny 192.168.1.1; allow 192.168.1.0/24; allow 10.0.0.0/8; allow 2001:db8::/32; deny all;");
        assert_eq!(r.check(ip("192.168.1.1")), Verdict::Forbidden);
        assert_eq!(r.check(ip("192.168.1.2")), Verdict::Granted);
        assert_eq!(r.check(ip("10.200.0.1")), Verdict::Granted);
        assert_eq!(r.check(ip("11.0.0.1")), Verdict::Forbidden);
        assert_eq!(r.check(ip("2001:db8::5")), Verdict::Granted);
        assert_eq!(r.check(ip("::1")), Verdict::Forbidden);
        // IPv4-mapped addresses use the IPv4 rules
        assert_eq!(r.check(ip("::ffff:10.0.0.1")), Verdict::Granted);
        // no IPv6 rule at all: the module declines for IPv6 clients
        let r = rules("allow 127.0.0.1; deny 10.0.0.0/8;");
        assert_eq!(r.check(ip("::1")), Verdict::Declined);
        assert_eq!(r.check(ip("127.0.0.2")), Verdict::Declined);
        assert_eq!(r.check(ip("10.0.0.1")), Verdict::Forbidden);
        // `unix:` applies to unix-socket clients only
        assert_eq!(
            rules("deny unix:;").check(ip("127.0.0.1")),
            Verdict::Declined
        );
    }
}
