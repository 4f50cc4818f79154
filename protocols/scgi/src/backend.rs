//! The `scgi_pass` location handler: the shared CGI-style handler
//! ([`CgiPass`]) over the SCGI netstring ([`encode_request_head`]) and [`ScgiCodec`].

use crate::codec::{encode_request_head, ScgiCodec};
use bytes::Bytes;
use junction_config::cgi_pass::{cgi_pass, pass_group, CgiProtocol};
use junction_config::model::{BuildCx, LocInfo, Scope};
use junction_config::ConfigError;
use junction_core::backend::Backend;
use junction_core::codec::UpstreamCodec;
use junction_core::Error;
use std::sync::Arc;

/// The SCGI protocol (nothing to configure beyond the shared family).
#[derive(Debug, Clone, Copy)]
pub struct Scgi;

impl CgiProtocol for Scgi {
    /// The netstring: `CONTENT_LENGTH` (the exact body length) first, `SCGI` second.
    type Framing = crate::codec::Netstring;

    fn encode_head(
        &self,
        params: junction_core::cgi::Params,
        body_len: u64,
    ) -> Result<Bytes, Error> {
        Ok(encode_request_head(params, body_len))
    }

    fn codec(&self, head_limit: usize) -> Box<dyn UpstreamCodec> {
        Box::new(ScgiCodec::new(head_limit))
    }
}

/// Builds the backend when the location has `scgi_pass` (`host:port`, `unix:/path`,
/// or an `upstream` name).
pub fn build(
    scope: &Scope<'_>,
    _loc: &LocInfo,
    bx: &mut BuildCx,
) -> Result<Option<Arc<dyn Backend>>, ConfigError> {
    let Some(group) = pass_group(scope, "scgi_pass", &[], bx)? else {
        return Ok(None);
    };
    Ok(Some(Arc::new(cgi_pass(scope, "scgi", group, Scgi, bx)?)))
}
