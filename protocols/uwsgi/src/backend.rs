//! The `uwsgi_pass` location handler: the shared CGI-style handler
//! ([`CgiPass`]) over the uwsgi packet ([`encode_request_head`] with
//! `uwsgi_modifier1`/`uwsgi_modifier2`) and [`UwsgiCodec`].

use crate::codec::{encode_request_head, UwsgiCodec};
use bytes::Bytes;
use junction_config::cgi_pass::{cgi_pass, pass_group, CgiProtocol};
use junction_config::model::{err, invalid, BuildCx, LocInfo, Scope};
use junction_config::ConfigError;
use junction_core::backend::Backend;
use junction_core::codec::UpstreamCodec;
use junction_core::Error;
use std::sync::Arc;

/// The uwsgi protocol of one location: its packet modifiers.
#[derive(Debug, Clone, Copy)]
pub struct Uwsgi {
    /// `uwsgi_modifier1` (0: a WSGI request).
    pub modifier1: u8,
    /// `uwsgi_modifier2`.
    pub modifier2: u8,
}

impl CgiProtocol for Uwsgi {
    type Framing = crate::codec::Vars;

    /// The packet; vars over 65535 bytes are an `Encode` error (502), never truncated.
    fn encode_head(
        &self,
        params: junction_core::cgi::Params,
        _body_len: u64,
    ) -> Result<Bytes, Error> {
        encode_request_head(self.modifier1, self.modifier2, params)
    }

    fn codec(&self, head_limit: usize) -> Box<dyn UpstreamCodec> {
        Box::new(UwsgiCodec::new(head_limit))
    }
}

/// `uwsgi_modifier1` / `uwsgi_modifier2`: a number 0–255, default 0.
fn modifier(scope: &Scope<'_>, name: &str) -> Result<u8, ConfigError> {
    match scope.arg(name) {
        None => Ok(0),
        Some((d, a)) => match a.value.parse::<u32>() {
            Err(_) => Err(invalid(d, a)),
            Ok(n) => u8::try_from(n).map_err(|_| err(&a.span, "value must be between 0 and 255")),
        },
    }
}

/// Builds the backend when the location has `uwsgi_pass` (`host:port`,
/// `uwsgi://host:port`, `unix:/path`, or an `upstream` name).
pub fn build(
    scope: &Scope<'_>,
    _loc: &LocInfo,
    bx: &mut BuildCx,
) -> Result<Option<Arc<dyn Backend>>, ConfigError> {
    // `suwsgi://`: the uwsgi protocol over TLS, with the `uwsgi_ssl_*` directives
    // (nginx's defaults: no verification, `uwsgi_ssl_name` = the host of the URL).
    let suwsgi = scope
        .local("uwsgi_pass")
        .and_then(|d| d.args.first())
        .filter(|a| {
            a.value
                .get(..9)
                .is_some_and(|p| p.eq_ignore_ascii_case("suwsgi://"))
        });
    let schemes: &[&str] = match suwsgi {
        Some(a) if a.value.contains('$') => {
            return Err(err(
                &a.span,
                "suwsgi:// with variables is not supported by junction yet",
            ))
        }
        Some(_) => &["suwsgi://"],
        None => &["uwsgi://"],
    };
    let Some(group) = pass_group(scope, "uwsgi_pass", schemes, bx)? else {
        return Ok(None);
    };
    let proto = Uwsgi {
        modifier1: modifier(scope, "uwsgi_modifier1")?,
        modifier2: modifier(scope, "uwsgi_modifier2")?,
    };
    let pass = cgi_pass(scope, "uwsgi", group, proto, bx)?;
    let Some(a) = suwsgi else {
        return Ok(Some(Arc::new(pass)));
    };
    let hostport = a.value.get(9..).unwrap_or_default();
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => hostport.rsplit_once(':').map_or(hostport, |(h, _)| h),
    };
    let tls = junction_config::upstream_tls::build(scope, "uwsgi", Some(host), &a.span, bx)?;
    Ok(Some(Arc::new(pass.with_tls(tls, "suwsgi://"))))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use junction_config::parse_nginx_str;
    use std::path::Path;

    fn modifier1(conf: &str) -> Result<u8, String> {
        let tree = parse_nginx_str(conf, Path::new("t.conf")).unwrap();
        modifier(&Scope::root(&tree), "uwsgi_modifier1").map_err(|e| e.msg)
    }

    #[test]
    fn modifiers_are_0_to_255_default_0() {
        assert_eq!(modifier1(""), Ok(0));
        assert_eq!(modifier1("uwsgi_modifier1 5;"), Ok(5));
        assert_eq!(modifier1("uwsgi_modifier1 255;"), Ok(255));
        assert_eq!(
            modifier1("uwsgi_modifier1 256;"),
            Err("value must be between 0 and 255".into())
        );
        assert_eq!(
            modifier1("uwsgi_modifier1 x;"),
            Err("invalid value \"x\" in \"uwsgi_modifier1\" directive".into())
        );
    }

    #[test]
    fn head_carries_the_modifiers() {
        let proto = Uwsgi {
            modifier1: 5,
            modifier2: 9,
        };
        let head = proto
            .encode_head(junction_core::cgi::Params::default(), 0)
            .unwrap();
        assert_eq!(&head[..], b"\x05\x00\x00\x09");
    }
}
