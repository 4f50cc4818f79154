//! Building a CGI-style `*_pass` at load (uwsgi, SCGI; the handler itself,
//! [`CgiPass`], runs in `junction_core::pass`): [`pass_group`] reads the `PREFIX_pass`
//! target (`host:port`, `unix:/path`, an `upstream` name, optionally behind a scheme
//! such as `uwsgi://`; with variables, a stand-in group that each request evaluates), [`cgi_pass`] reads the `PREFIX_*` family and the
//! `PREFIX_param` array once and registers the protocol's health probe. Nothing here
//! runs per request.

use crate::model::{err, family, params, BuildCx, Scope};
use crate::tree::ConfigError;
pub use junction_core::pass::{CgiPass, CgiProtocol};
use junction_core::upstream::Group;
use std::sync::Arc;

/// The health probe of a CGI-style protocol: a `GET` of the `health_check uri` encoded
/// by the protocol, its answer read with the protocol's codec. A head the protocol
/// cannot encode (never for these fixed params) leaves the TCP-connect check.
fn cgi_probe<P: CgiProtocol + Clone>(
    proto: &P,
    prefix: &str,
    hc: &junction_core::health::HealthCheck,
) -> Arc<dyn junction_core::health::Probe> {
    let params = junction_core::health::cgi_probe_params(&hc.uri);
    match proto.encode_head(params, 0) {
        Ok(head) => {
            let p = proto.clone();
            Arc::new(junction_core::health::CodecProbe {
                protocol: match prefix {
                    "uwsgi" => "uwsgi",
                    "scgi" => "scgi",
                    _ => "cgi",
                },
                head,
                codec: Arc::new(move || p.codec(16 * 1024)),
            })
        }
        Err(_) => Arc::new(junction_core::health::TcpProbe),
    }
}

/// Whether a `*_pass` target names a port (`host:port`, `[v6]:port`): CGI-style
/// protocols have no default port, so nginx requires one.
pub fn has_port(target: &str) -> bool {
    junction_core::resolver::has_port(target)
}

/// The server group of the location's `directive` (`uwsgi_pass`, `scgi_pass`, …), or
/// `None` when the location has none. `schemes` are the accepted URL prefixes
/// (`uwsgi://`); a target names an `upstream`, a `unix:/path`, or `host:port` (a port
/// is required, as in nginx: `no port in upstream "X"`).
pub fn pass_group(
    scope: &Scope<'_>,
    directive: &str,
    schemes: &[&str],
    bx: &mut BuildCx,
) -> Result<Option<Arc<Group>>, ConfigError> {
    let Some(d) = scope.local(directive) else {
        return Ok(None);
    };
    let a = d.args.first().ok_or_else(|| {
        err(
            &d.span,
            format!("invalid number of arguments in \"{directive}\" directive"),
        )
    })?;
    let value = bx.template(a)?;
    if value.as_literal().is_none() {
        // Evaluated per request: an upstream, an address, or a name to resolve.
        return Ok(Some(Group::per_request(
            junction_core::resolver::VarTarget {
                target: value,
                schemes: schemes.iter().map(|s| s.to_ascii_lowercase()).collect(),
                upstreams: bx.upstreams.clone(),
                resolver: crate::resolver::resolver_at(scope, bx)?,
            },
        )));
    }
    let url = a.value.as_str();
    let target = schemes
        .iter()
        .find_map(|s| {
            url.get(..s.len())
                .filter(|p| p.eq_ignore_ascii_case(s))
                .and_then(|_| url.get(s.len()..))
        })
        .unwrap_or(url);
    if target.contains("://") {
        return Err(err(&a.span, format!("invalid host in upstream \"{url}\"")));
    }
    if !bx.upstreams.contains_key(target) && !target.starts_with("unix:") && !has_port(target) {
        return Err(err(&a.span, format!("no port in upstream \"{target}\"")));
    }
    bx.group(target, 0, &a.span).map(Some)
}

/// The backend of one location's CGI-style `*_pass` ([`CgiPass`], run by core): reads
/// the `PREFIX_*` family and `PREFIX_param` array of the location at `scope` (and
/// registers the protocol's health probe on the group).
pub fn cgi_pass<P: CgiProtocol + Clone>(
    scope: &Scope<'_>,
    prefix: &str,
    group: Arc<Group>,
    proto: P,
    bx: &mut BuildCx,
) -> Result<CgiPass<P>, ConfigError> {
    let fam = family(scope, prefix, group, bx)?;
    bx.probe(&fam.upstream.group, |hc| cgi_probe(&proto, prefix, hc));
    let mut params = params(scope, &format!("{prefix}_param"), bx)?;
    params.pass_request_headers = fam.pass_request_headers;
    Ok(CgiPass::new(proto, fam, params))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::tree::parse_nginx_str;
    use junction_core::upstream::PeerAddr;
    use std::path::Path;

    /// `pass_group` (for the `*_pass` of `line`'s prefix) on a location holding `line`.
    fn group_of(
        line: &str,
        schemes: &[&str],
        bx: &mut BuildCx,
    ) -> Result<Option<Arc<Group>>, String> {
        let tree = parse_nginx_str(line, Path::new("t.conf")).map_err(|e| e.msg)?;
        let prefix = tree
            .first()
            .and_then(|d| d.name.split('_').next())
            .unwrap_or_default();
        pass_group(&Scope::root(&tree), &format!("{prefix}_pass"), schemes, bx).map_err(|e| e.msg)
    }

    fn addrs(line: &str, schemes: &[&str]) -> Vec<String> {
        let g = group_of(line, schemes, &mut BuildCx::default())
            .unwrap()
            .unwrap();
        g.servers.iter().map(|s| s.addr.to_string()).collect()
    }

    #[test]
    fn ports() {
        assert!(has_port("127.0.0.1:11211"));
        assert!(has_port("[::1]:11211"));
        assert!(has_port("localhost:1"));
        assert!(!has_port("127.0.0.1"));
        assert!(!has_port("[::1]"));
        assert!(!has_port("host:"));
        assert!(!has_port("$x"));
    }

    #[test]
    fn target_forms() {
        assert_eq!(
            addrs("uwsgi_pass 127.0.0.1:3031;", &["uwsgi://"]),
            ["127.0.0.1:3031"]
        );
        assert_eq!(
            addrs("uwsgi_pass uwsgi://127.0.0.1:3031;", &["uwsgi://"]),
            ["127.0.0.1:3031"]
        );
        assert_eq!(
            addrs("uwsgi_pass UWSGI://[::1]:3031;", &["uwsgi://"]),
            ["[::1]:3031"]
        );
        let unix = group_of(
            "scgi_pass unix:/run/app.sock;",
            &[],
            &mut BuildCx::default(),
        )
        .unwrap()
        .unwrap();
        assert!(
            matches!(&unix.servers[0].addr, PeerAddr::Unix(p) if p == Path::new("/run/app.sock"))
        );
        let unix = group_of(
            "uwsgi_pass uwsgi://unix:/run/app.sock;",
            &["uwsgi://"],
            &mut BuildCx::default(),
        )
        .unwrap()
        .unwrap();
        assert!(matches!(&unix.servers[0].addr, PeerAddr::Unix(_)));
    }

    #[test]
    fn upstream_name_is_the_group() {
        let mut bx = BuildCx::default();
        let app = Group::implicit("app".into(), Vec::new());
        bx.upstreams.insert("app".into(), app.clone());
        let g = group_of("scgi_pass app;", &[], &mut bx).unwrap().unwrap();
        assert!(Arc::ptr_eq(&g, &app));
    }

    #[test]
    fn no_directive_is_none() {
        assert!(group_of("scgi_param X y;", &[], &mut BuildCx::default())
            .unwrap()
            .is_none());
    }

    #[test]
    fn errors_as_nginx() {
        let e = |line: &str, schemes: &[&str]| {
            group_of(line, schemes, &mut BuildCx::default()).unwrap_err()
        };
        assert_eq!(
            e("uwsgi_pass localhost;", &["uwsgi://"]),
            "no port in upstream \"localhost\""
        );
        assert_eq!(
            e("scgi_pass 127.0.0.1;", &[]),
            "no port in upstream \"127.0.0.1\""
        );
        assert_eq!(e("scgi_pass ::1;", &[]), "no port in upstream \"::1\"");
        assert_eq!(
            e("uwsgi_pass http://127.0.0.1:1;", &["uwsgi://"]),
            "invalid host in upstream \"http://127.0.0.1:1\""
        );
        assert_eq!(
            e("scgi_pass uwsgi://127.0.0.1:1;", &[]),
            "invalid host in upstream \"uwsgi://127.0.0.1:1\""
        );
        // Variables: evaluated per request (a stand-in group with no servers).
        let g = group_of("scgi_pass $host:9000;", &[], &mut BuildCx::default())
            .unwrap()
            .unwrap();
        assert!(g.servers.is_empty());
    }
}
