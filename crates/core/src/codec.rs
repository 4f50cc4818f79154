//! The small interface every upstream protocol implements. The shared driver
//! (`crate::upstream::exchange`) owns the socket, the timeouts, the pool and the
//! buffering; a codec only frames bytes, the way nginx's upstream module calls a
//! module's `create_request` / `process_header` / `input_filter`.
//!
//! The request head (FastCGI BEGIN_REQUEST + PARAMS, a uwsgi packet, an SCGI
//! netstring, `get key\r\n`, an HTTP request head) is encoded by the protocol's
//! backend before the exchange starts and handed to the driver as `Bytes`; the
//! codec then frames the request body and decodes the response.

use crate::error::Error;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};

/// A decoded upstream response head.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// Status (CGI `Status:` or the HTTP status line; 200 when absent).
    pub status: StatusCode,
    /// Response headers, in order, duplicates kept (`Set-Cookie`).
    pub headers: HeaderMap,
}

/// One event decoded from the upstream's bytes.
#[derive(Debug)]
pub enum Decoded {
    /// The response head. Emitted exactly once, before any `Data`.
    Head(ResponseHead),
    /// A piece of the response body.
    Data(Bytes),
    /// Diagnostic text the upstream wants logged (FastCGI STDERR): logged at error, as nginx does.
    Stderr(Bytes),
    /// The response is complete. `reusable`: the connection may go back to the pool.
    End {
        /// Whether the connection can carry another request.
        reusable: bool,
    },
}

/// Frames the request body and decodes the response of one exchange.
///
/// Implementations are created per request (they hold the decoding state) and must
/// never panic on any input: every length a peer sends is checked against a cap.
pub trait UpstreamCodec: Send {
    /// Frames one chunk of request body; frames are pushed to `out` (zero-copy slices
    /// of `chunk` where possible).
    fn encode_body(&mut self, chunk: Bytes, out: &mut Vec<Bytes>);

    /// Frames the end of the request body (FastCGI: empty STDIN record; HTTP chunked:
    /// `0\r\n\r\n`; others: nothing).
    fn encode_end(&mut self, out: &mut Vec<Bytes>);

    /// Decodes the next event from `buf`, consuming what it used. `Ok(None)`: more bytes
    /// are needed. The driver enforces the header size cap (`*_buffer_size`) on `buf`
    /// while no `Head` has been returned, so a codec must return `Head` as soon as the
    /// head is complete.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Error>;

    /// Called when the upstream closed its side. Returns the final events (an HTTP
    /// body delimited by close ends here with `End { reusable: false }`); a frame cut
    /// by EOF is an error (`ErrorKind::UpstreamClosed` / `InvalidResponse`).
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Error>;

    /// The response's trailer fields, once `End` was decoded (HTTP chunked trailers,
    /// kept only under `proxy_pass_trailers on`); `None` for protocols without them.
    fn take_trailers(&mut self) -> Option<http::HeaderMap> {
        None
    }
}
