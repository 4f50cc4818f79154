//! # junction-fastcgi
//!
//! Junction's FastCGI client: the wire format of FastCGI 1.0 (role RESPONDER), written
//! here rather than taken from a crate. This crate owns the bytes only; the shared
//! driver in `junction-core` owns the socket, the timeouts, the connection pool and the
//! response buffering, and the request's CGI params are built elsewhere and handed in
//! as `(name, value)` byte pairs.
//!
//! ## Layout
//! - [`codec`]: records (the 8-byte header, [`RecordType`], padding to 8), the request
//!   head encoder [`encode_request_head`], and [`FastcgiCodec`], the
//!   [`UpstreamCodec`](junction_core::codec::UpstreamCodec) that frames the request body
//!   as STDIN records and decodes STDOUT / STDERR / END_REQUEST records.
//! - `head` (private): the CGI response header (`Status:`, `Location:`, the rest) turned
//!   into a [`ResponseHead`](junction_core::codec::ResponseHead).
//! - [`directives`]: the `fastcgi_*` directives for the registry (its own lines and the
//!   shared family's part it has).
//!
//! ## Lifecycle of one request
//! 1. The backend calls [`encode_request_head`]: one BEGIN_REQUEST record (role
//!    RESPONDER, `FCGI_KEEP_CONN` when `fastcgi_keep_conn on`), the params as a stream of
//!    PARAMS records (a pair larger than a record spans records), then an empty PARAMS
//!    record. The driver writes these bytes first.
//! 2. It creates a [`FastcgiCodec`] with the same request id, `keep_conn` and header
//!    cap (`fastcgi_buffer_size`). Each request body chunk becomes STDIN records of at
//!    most 65535 bytes (zero-copy slices of the chunk); `encode_end` writes the empty
//!    STDIN record that tells the application the body is over.
//! 3. The driver feeds what it reads to `decode`. STDOUT content is first collected as
//!    the CGI header up to the blank line (at most `head_limit` bytes, else
//!    `TooBigHeader`); then `Decoded::Head` is returned, and every further STDOUT byte
//!    is returned as `Decoded::Data` (split off the read buffer, never copied). STDERR
//!    content is returned as `Decoded::Stderr`, for the error log, at any point.
//! 4. END_REQUEST ends the exchange: `FCGI_REQUEST_COMPLETE` gives
//!    `Decoded::End { reusable }` (reusable when `keep_conn` was asked and nothing
//!    followed the record); `FCGI_OVERLOADED` is an `Overloaded` error (503), the other
//!    statuses and END_REQUEST before the header are `InvalidResponse` (502).
//! 5. If the upstream closes before END_REQUEST, `decode_eof` returns an
//!    `UpstreamClosed` error: the response is cut even when its head was already sent.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
mod head;
mod probe;

pub use codec::{encode_request_head, FastcgiCodec, ProtocolStatus, RecordHeader, RecordType};
pub mod backend;
pub mod directives;
