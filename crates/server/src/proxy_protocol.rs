//! `listen … proxy_protocol`: the PROXY protocol header read from an accepted
//! connection before HTTP starts, as ONE call ([`read`]) on the stream, so it does
//! not depend on how the HTTP connection is served. Exactly the header's bytes are
//! consumed (the stream is peeked, then read up to the header's end); what follows
//! is left for HTTP. The parser is `junction_core::proxy_protocol`.

use junction_core::proxy_protocol::{parse, Parsed, ProxyProtocol, V2_MAX_LEN};
use std::time::Duration;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

/// Why no header was read.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A malformed header (logged at error level, as nginx).
    Invalid(String),
    /// The client closed, an I/O error, or the header did not come in time.
    Gone(String),
}

/// Reads the PROXY protocol header at the start of `stream` (within `timeout`):
/// `Ok(None)` for a valid header without addresses (`UNKNOWN`, `LOCAL`, …).
pub(crate) async fn read(
    stream: &mut TcpStream,
    timeout: Duration,
) -> Result<Option<ProxyProtocol>, Failure> {
    match tokio::time::timeout(timeout, read_header(stream)).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Gone(
            "client timed out while reading PROXY protocol".into(),
        )),
    }
}

async fn read_header(stream: &mut TcpStream) -> Result<Option<ProxyProtocol>, Failure> {
    let mut head: Vec<u8> = Vec::with_capacity(128);
    let mut peeked = vec![0u8; 512];
    loop {
        let n = stream.peek(&mut peeked).await.map_err(|e| {
            Failure::Gone(format!("recv() failed ({e}) while reading PROXY protocol"))
        })?;
        if n == 0 {
            return Err(Failure::Gone(
                "client closed connection while reading PROXY protocol".into(),
            ));
        }
        let avail = peeked.get(..n).unwrap_or(&[]);
        let mut candidate = head.clone();
        candidate.extend_from_slice(avail);
        match parse(&candidate) {
            Parsed::Invalid(msg) => return Err(Failure::Invalid(msg)),
            Parsed::Header(h) => {
                let take = h.len.saturating_sub(head.len()).min(n);
                let mut sink = vec![0u8; take];
                stream
                    .read_exact(&mut sink)
                    .await
                    .map_err(|e| Failure::Gone(format!("recv() failed ({e})")))?;
                return Ok(h.info);
            }
            Parsed::Incomplete => {
                if candidate.len() > V2_MAX_LEN {
                    return Err(Failure::Invalid("header is too large".into()));
                }
                // every byte seen belongs to the header: consume them and wait for more
                let mut sink = vec![0u8; n];
                stream
                    .read_exact(&mut sink)
                    .await
                    .map_err(|e| Failure::Gone(format!("recv() failed ({e})")))?;
                head.extend_from_slice(&sink);
            }
        }
    }
}
