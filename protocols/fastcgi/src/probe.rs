//! The active health probe of `fastcgi_pass` groups: one FastCGI request for the
//! `health_check uri` (php-fpm answers its `ping.path` with `pong`, or runs the
//! script), read with the backend's own [`FastcgiCodec`].

use crate::codec::{encode_request_head, FastcgiCodec};
use junction_core::codec::UpstreamCodec;
use junction_core::health::{cgi_probe_params, CodecProbe, HealthCheck, Probe};
use std::sync::Arc;

/// The most of a probe's response head that is read.
const HEAD_LIMIT: usize = 16 * 1024;

/// The probe (request id 1, no `FCGI_KEEP_CONN`: the connection is closed after it).
pub(crate) fn probe(hc: &HealthCheck) -> Arc<dyn Probe> {
    let head = encode_request_head(1, false, cgi_probe_params(&hc.uri));
    Arc::new(CodecProbe {
        protocol: "fastcgi",
        head,
        codec: Arc::new(|| -> Box<dyn UpstreamCodec> {
            Box::new(FastcgiCodec::new(1, false, HEAD_LIMIT))
        }),
    })
}
