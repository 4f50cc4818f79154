//! The active health probe of `memcached_pass` groups: `version\r\n`, answered by
//! `VERSION x.y.z\r\n` (anything else, or nothing, fails the check).

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use junction_core::codec::{Decoded, ResponseHead, UpstreamCodec};
use junction_core::health::{CodecProbe, HealthCheck, Probe};
use junction_core::Error;
use std::sync::Arc;

/// The longest `VERSION` line accepted.
const LINE_LIMIT: usize = 1024;

/// Decodes the one-line answer to `version`: `VERSION …` is a 200 head, then the end.
#[derive(Debug, Default)]
struct VersionCodec {
    done: bool,
}

impl UpstreamCodec for VersionCodec {
    fn encode_body(&mut self, _chunk: Bytes, _out: &mut Vec<Bytes>) {}

    fn encode_end(&mut self, _out: &mut Vec<Bytes>) {}

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Error> {
        if self.done {
            return Ok(Some(Decoded::End { reusable: true }));
        }
        let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
            if buf.len() > LINE_LIMIT {
                return Err(Error::invalid(
                    "memcached sent a too long line to \"version\"",
                ));
            }
            return Ok(None);
        };
        let line = buf.split_to(end + 2);
        if !line.starts_with(b"VERSION ") {
            return Err(Error::invalid(format!(
                "memcached answered \"version\" with \"{}\"",
                String::from_utf8_lossy(line.get(..end).unwrap_or(&[])).escape_default()
            )));
        }
        self.done = true;
        Ok(Some(Decoded::Head(ResponseHead {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
        })))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Error> {
        match self.decode(buf)? {
            Some(ev) => Ok(Some(ev)),
            None => Err(Error::new(
                junction_core::ErrorKind::UpstreamClosed,
                "memcached closed the connection before answering \"version\"",
            )),
        }
    }
}

/// The probe (the `health_check uri` does not apply to memcached).
pub(crate) fn probe(_hc: &HealthCheck) -> Arc<dyn Probe> {
    Arc::new(CodecProbe {
        protocol: "memcached",
        head: Bytes::from_static(b"version\r\n"),
        codec: Arc::new(|| -> Box<dyn UpstreamCodec> { Box::new(VersionCodec::default()) }),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn version_line() {
        let mut c = VersionCodec::default();
        let mut b = BytesMut::from(&b"VERSION 1.6"[..]);
        assert!(c.decode(&mut b).unwrap().is_none());
        b.extend_from_slice(b".21\r\n");
        assert!(matches!(c.decode(&mut b).unwrap(), Some(Decoded::Head(h)) if h.status == 200));
        assert!(matches!(
            c.decode(&mut b).unwrap(),
            Some(Decoded::End { .. })
        ));
        let mut c = VersionCodec::default();
        let mut b = BytesMut::from(&b"ERROR\r\n"[..]);
        assert!(c.decode(&mut b).is_err());
    }
}
