//! The `uwsgi_pass` location handler: the shared CGI-style handler
//! ([`CgiPass`]) over the uwsgi packet ([`encode_request_head`] with
//! `uwsgi_modifier1`/`uwsgi_modifier2`) and [`UwsgiCodec`].

use crate::codec::{encode_request_head, UwsgiCodec};
use bytes::Bytes;
use junction_config::cgi_pass::{pass_group, CgiPass, CgiProtocol};
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
    /// The packet; vars over 65535 bytes are an `Encode` error (502), never truncated.
    fn encode_head(&self, params: &[(Bytes, Bytes)], _body_len: u64) -> Result<Bytes, Error> {
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
    if let Some(a) = scope.local("uwsgi_pass").and_then(|d| d.args.first()) {
        if a.value
            .get(..9)
            .is_some_and(|p| p.eq_ignore_ascii_case("suwsgi://"))
        {
            return Err(err(&a.span, "suwsgi:// (uwsgi over SSL) is not supported"));
        }
    }
    let Some(group) = pass_group(scope, "uwsgi_pass", &["uwsgi://"], bx)? else {
        return Ok(None);
    };
    let proto = Uwsgi {
        modifier1: modifier(scope, "uwsgi_modifier1")?,
        modifier2: modifier(scope, "uwsgi_modifier2")?,
    };
    Ok(Some(Arc::new(CgiPass::new(
        scope, "uwsgi", group, proto, bx,
    )?)))
}
