//! The active health probe of `proxy_pass` groups: `GET uri HTTP/1.1` with the
//! `proxy_pass` host as `Host`, read with the proxy's own [`HttpCodec`].

use crate::codec::HttpCodec;
use bytes::Bytes;
use junction_core::codec::UpstreamCodec;
use junction_core::health::{CodecProbe, HealthCheck, Probe, TlsProbe};
use std::sync::Arc;

/// The most of a probe's response head that is read.
const HEAD_LIMIT: usize = 16 * 1024;

/// The probe for a group reached as `host` (the `Host` header sent), over TLS when the
/// `proxy_pass` is `https://`.
pub(crate) fn probe(
    hc: &HealthCheck,
    host: &str,
    tls: Option<&junction_core::upstream_tls::UpstreamTls>,
) -> Arc<dyn Probe> {
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: junction-health-check\r\nConnection: close\r\n\r\n",
        hc.uri
    );
    let probe = CodecProbe {
        protocol: "http",
        head: Bytes::from(head),
        codec: Arc::new(|| -> Box<dyn UpstreamCodec> {
            Box::new(HttpCodec::new(HEAD_LIMIT, false, false))
        }),
    };
    match tls {
        Some(t) => Arc::new(TlsProbe {
            probe,
            tls: t.probe_target(host),
        }),
        None => Arc::new(probe),
    }
}
