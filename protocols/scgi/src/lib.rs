//! # junction-scgi
//!
//! The SCGI protocol (nginx `ngx_http_scgi_module`, <https://python.ca/scgi/protocol.txt>).
//! This crate owns only the request framing; the response head parser and the
//! body-until-close decoding state are shared with uwsgi and FastCGI and live in core
//! (`junction_core::cgi_head`, `junction_core::cgi_response`).
//!
//! ## Layout
//! - [`codec`]: [`encode_request_head`] (the netstring `len:` + `CONTENT_LENGTH\0n\0` +
//!   `SCGI\01\0` + `name\0value\0`… + `,`) and [`ScgiCodec`], the per-request
//!   [`UpstreamCodec`].
//! - [`directives`]: the `scgi_*` directives for the registry.
//!
//! ## Lifecycle of a request
//! 1. The backend builds the params (`scgi_param`, `HTTP_*` headers) and calls
//!    [`encode_request_head`] with the body length (a chunked request body is buffered
//!    first so the length is known); `CONTENT_LENGTH` goes first and `SCGI` second,
//!    whatever the params hold.
//! 2. The driver writes the netstring, then each body chunk through
//!    [`UpstreamCodec::encode_body`] (as-is); [`UpstreamCodec::encode_end`] adds nothing.
//! 3. The driver feeds response bytes to [`UpstreamCodec::decode`]: one `Head` (HTTP status
//!    line or CGI `Status:`; default 200, `Location` alone → 302; too big for
//!    `scgi_buffer_size` → `TooBigHeader`; not a head → `InvalidResponse`), then `Data`.
//! 4. When the upstream closes, [`UpstreamCodec::decode_eof`] yields what is left and
//!    `End { reusable: false }` — SCGI connections are never pooled. A close before the
//!    head is complete is `UpstreamClosed` ("upstream prematurely closed connection").
//!
//! [`UpstreamCodec`]: junction_core::codec::UpstreamCodec
//! [`UpstreamCodec::encode_body`]: junction_core::codec::UpstreamCodec::encode_body
//! [`UpstreamCodec::encode_end`]: junction_core::codec::UpstreamCodec::encode_end
//! [`UpstreamCodec::decode`]: junction_core::codec::UpstreamCodec::decode
//! [`UpstreamCodec::decode_eof`]: junction_core::codec::UpstreamCodec::decode_eof
#![forbid(unsafe_code)]

pub mod codec;

pub use codec::{encode_request_head, ScgiCodec};
pub mod backend;
pub mod directives;
